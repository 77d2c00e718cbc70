//! Durable storage of a node's `DurableState` in fjall, with group commit.
//!
//! The core hands out `PersistBatch`es and must hear `Input::Persisted` only once a batch is
//! durable. Every batch waiting is written as one fjall write batch: one journal append and, with
//! `fsync = true`, one `fdatasync` for many writes (group commit). A failed commit stops the node:
//! after a failed write or fsync the state of the journal is unknown, and carrying on could
//! acknowledge a write that is not there.
//!
//! With `fsync = true` the commits run on their own thread (`group_commit_loop`) so the node
//! keeps working while the disk syncs. With `fsync = false` a commit only appends to the journal
//! in the page cache (a few microseconds), so the node task commits small batches inline
//! (`Storage::commit`), sparing a thread hand-off per batch, and leaves large ones (over 64 KiB,
//! `batch_bytes`) to the thread, since those are what make fjall hold writers back while its
//! memtables flush (`Persister` in `server.rs`). Either way a commit reaches the operating system
//! before `Persisted`, so `kill -9` loses no acknowledged write; without fsync a power loss can.
//!
//! Why fjall (docs/storage.md has the measurements): a pure-Rust, crash-safe LSM tree whose
//! write path is a journal append, which is what a replica accepting a stream of small writes
//! needs. redb, used first, copies B-tree pages on every commit: 99 µs per one-key commit without
//! fsync and 870 µs with, against fjall's 4.6 µs and 619 µs on the same disk.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use dynamo_core::store::{blob_wire_bytes_max, entry_wire_bytes_max, DurableState, PersistBatch, Record, Slot};
use dynamo_core::types::{Blob, NodeId};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

/// Why a node's storage could not be opened and loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The directory holds a database of the older redb format (left untouched).
    LegacyFormat {
        file: PathBuf,
        dir: PathBuf,
    },
    CreateDirectory {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// Another process holds the database (the node runs already).
    Locked {
        path: PathBuf,
    },
    /// fjall could not open the database or one of its keyspaces.
    Engine {
        what: String,
        source: fjall::Error,
    },
    /// Reading what the database holds failed.
    Read {
        what: &'static str,
        source: fjall::Error,
    },
    /// An entry that does not decode: `what` it was and why.
    Corrupt {
        what: &'static str,
        detail: String,
    },
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::LegacyFormat { file, dir } => write!(
                f,
                "{} was written by an older dynamo (redb storage), which this version cannot read; \
                 it is left untouched: move it away or remove {} to start this node empty",
                file.display(),
                dir.display()
            ),
            OpenError::CreateDirectory { dir, source } => write!(f, "cannot create {}: {source}", dir.display()),
            OpenError::Locked { path } => {
                write!(f, "cannot open {}: another process holds it (is this node already running?)", path.display())
            }
            OpenError::Engine { what, source } => write!(f, "cannot open {what}: {source}"),
            OpenError::Read { what, source } => write!(f, "cannot read {what}: {source}"),
            OpenError::Corrupt { what, detail } => write!(f, "corrupt {what}: {detail}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Why a commit failed. After one, the node stops (`commit_or_exit`).
#[derive(Debug)]
#[non_exhaustive]
pub enum CommitError {
    Encode { what: &'static str, source: postcard::Error },
    Engine(fjall::Error),
}

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitError::Encode { what, source } => write!(f, "cannot encode {what}: {source}"),
            CommitError::Engine(source) => write!(f, "commit: {source}"),
        }
    }
}

impl std::error::Error for CommitError {}

fn corrupt(what: &'static str) -> impl FnOnce(postcard::Error) -> OpenError {
    move |error| OpenError::Corrupt { what, detail: error.to_string() }
}

fn read(what: &'static str) -> impl FnOnce(fjall::Error) -> OpenError {
    move |source| OpenError::Read { what, source }
}

/// Hint keys: the home node id (4 bytes big-endian) followed by the key.
fn hint_key(home: NodeId, key: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + key.len());
    bytes.extend_from_slice(&home.0.to_be_bytes());
    bytes.extend_from_slice(key);
    bytes
}

/// The directory inside a node's data directory that holds its database.
const DATABASE_DIR: &str = "store";

/// The longest client key this storage holds: fjall keys are at most 65,535 bytes, and a hint's
/// key carries a 4-byte prefix. The cluster file caps the core's `key_bytes_max` at this, so a
/// longer key is refused at the door with a clear error rather than stopping a replica.
pub const KEY_BYTES_MAX: u64 = u16::MAX as u64 - 4;

/// fjall keys may not be empty, and the empty key is a valid client key (Redis takes it too):
/// its slot lives in a keyspace of its own, under this one entry.
const EMPTY_KEY_ENTRY: &[u8] = b"slot";

/// The node's incarnation (`DurableState::incarnation`, 8 bytes big-endian) in the `meta`
/// keyspace. Absent in a data directory written before incarnations were stored: 0.
const INCARNATION_ENTRY: &[u8] = b"incarnation";

/// Present (one byte, 1) while the node has not been admitted (`DurableState::unadmitted`).
const UNADMITTED_ENTRY: &[u8] = b"unadmitted";

/// `DurableState::disk`, 8 bytes big-endian.
const DISK_ENTRY: &[u8] = b"disk";

/// `DurableState::probed`: the prefix, then the peer's id (4 bytes big-endian); the value is
/// the peer's disk id (8 bytes big-endian).
const PROBED_PREFIX: &[u8] = b"probed/";

/// `DurableState::layout`, postcard-encoded.
const LAYOUT_ENTRY: &[u8] = b"layout";

/// `DurableState::layout_vote`, postcard-encoded.
const LAYOUT_VOTE_ENTRY: &[u8] = b"layout_vote";

/// `DurableState::staged`, postcard-encoded.
const STAGED_ENTRY: &[u8] = b"staged";

/// `DurableState::round_floor`, 8 bytes big-endian.
const ROUND_FLOOR_ENTRY: &[u8] = b"round_floor";

/// `DurableState::synced_epoch`, 8 bytes big-endian.
const SYNCED_EPOCH_ENTRY: &[u8] = b"synced_epoch";

/// An 8-byte big-endian meta entry.
fn u64_entry(value: &[u8], what: &'static str) -> Result<u64, OpenError> {
    let bytes: [u8; 8] =
        value.try_into().map_err(|_| OpenError::Corrupt { what, detail: format!("{} bytes, not 8", value.len()) })?;
    Ok(u64::from_be_bytes(bytes))
}

fn probed_entry(peer: NodeId) -> Vec<u8> {
    [PROBED_PREFIX, &peer.0.to_be_bytes()].concat()
}

/// Handles to one database: the node task (inline commits) and the storage thread may hold one
/// each; `Persister` in `server.rs` keeps their commits in order.
#[derive(Clone)]
pub struct Storage {
    db: Database,
    slots: Keyspace,
    /// The empty key's slot (`EMPTY_KEY_ENTRY`), which `slots` cannot hold.
    empty_key: Keyspace,
    hints: Keyspace,
    /// Node-wide state that is not a key's: the incarnation, the admission, the disk id, and the
    /// disk ids peers probed this node with.
    meta: Keyspace,
    fsync: bool,
}

impl Storage {
    /// Opens (or creates) the database in `dir` and loads everything it holds.
    pub fn open(dir: &Path, fsync: bool) -> Result<(Storage, DurableState), OpenError> {
        let legacy = dir.join("dynamo.redb");
        if legacy.exists() {
            return Err(OpenError::LegacyFormat { file: legacy, dir: dir.to_path_buf() });
        }
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDirectory { dir: dir.to_path_buf(), source })?;
        let path = dir.join(DATABASE_DIR);
        // One worker thread: flushes and compactions are rare next to journal appends, and the
        // node's cores belong to the network path.
        let db = Database::builder(&path).worker_threads(1).open().map_err(|error| match error {
            fjall::Error::Locked => OpenError::Locked { path: path.clone() },
            source => OpenError::Engine { what: path.display().to_string(), source },
        })?;
        let keyspace = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|source| OpenError::Engine { what: format!("the {name} keyspace"), source })
        };
        let (slots, empty_key, hints, meta) =
            (keyspace("slots")?, keyspace("empty_key")?, keyspace("hints")?, keyspace("meta")?);
        let storage = Storage { db, slots, empty_key, hints, meta, fsync };
        let state = storage.load()?;
        Ok((storage, state))
    }

    fn load(&self) -> Result<DurableState, OpenError> {
        let mut state = DurableState::default();
        if let Some(value) = self.meta.get(INCARNATION_ENTRY).map_err(read("the incarnation"))? {
            let bytes: [u8; 8] = value.as_ref().try_into().map_err(|_| OpenError::Corrupt {
                what: "incarnation",
                detail: format!("{} bytes, not 8", value.len()),
            })?;
            state.incarnation = u64::from_be_bytes(bytes);
        }
        state.unadmitted = self.meta.get(UNADMITTED_ENTRY).map_err(read("the admission"))?.is_some();
        if let Some(value) = self.meta.get(DISK_ENTRY).map_err(read("the disk id"))? {
            let bytes: [u8; 8] = value
                .as_ref()
                .try_into()
                .map_err(|_| OpenError::Corrupt { what: "disk id", detail: format!("{} bytes, not 8", value.len()) })?;
            state.disk = u64::from_be_bytes(bytes);
        }
        for entry in self.meta.prefix(PROBED_PREFIX) {
            let (key, value) = entry.into_inner().map_err(read("the probed disk ids"))?;
            let corrupt = || OpenError::Corrupt {
                what: "probed disk id",
                detail: format!("key of {} bytes and value of {} bytes", key.len(), value.len()),
            };
            let peer: [u8; 4] = key[PROBED_PREFIX.len()..].try_into().map_err(|_| corrupt())?;
            let disk: [u8; 8] = value.as_ref().try_into().map_err(|_| corrupt())?;
            state.probed.insert(NodeId(u32::from_be_bytes(peer)), u64::from_be_bytes(disk));
        }
        if let Some(value) = self.meta.get(LAYOUT_ENTRY).map_err(read("the layout"))? {
            state.layout = Some(postcard::from_bytes(&value).map_err(corrupt("layout"))?);
        }
        if let Some(value) = self.meta.get(LAYOUT_VOTE_ENTRY).map_err(read("the layout vote"))? {
            state.layout_vote = Some(postcard::from_bytes(&value).map_err(corrupt("layout vote"))?);
        }
        if let Some(value) = self.meta.get(STAGED_ENTRY).map_err(read("the staged plan"))? {
            state.staged = postcard::from_bytes(&value).map_err(corrupt("staged plan"))?;
        }
        if let Some(value) = self.meta.get(ROUND_FLOOR_ENTRY).map_err(read("the round floor"))? {
            state.round_floor = u64_entry(&value, "round floor")?;
        }
        if let Some(value) = self.meta.get(SYNCED_EPOCH_ENTRY).map_err(read("the synced epoch"))? {
            state.synced_epoch = u64_entry(&value, "synced epoch")?;
        }
        for entry in self.slots.iter() {
            let (key, value) = entry.into_inner().map_err(read("the slots"))?;
            let slot: Slot = postcard::from_bytes(&value).map_err(corrupt("slot"))?;
            state.slots.insert(Blob::new(&key), slot);
        }
        if let Some(value) = self.empty_key.get(EMPTY_KEY_ENTRY).map_err(read("the empty key's slot"))? {
            let slot: Slot = postcard::from_bytes(&value).map_err(corrupt("slot of the empty key"))?;
            state.slots.insert(Blob::new(&[]), slot);
        }
        for entry in self.hints.iter() {
            let (key, value) = entry.into_inner().map_err(read("the hints"))?;
            if key.len() < 4 {
                return Err(OpenError::Corrupt { what: "hint key", detail: format!("{} bytes, under 4", key.len()) });
            }
            let home = NodeId(u32::from_be_bytes(key[..4].try_into().expect("four bytes")));
            let record: Record = postcard::from_bytes(&value).map_err(corrupt("hint"))?;
            state.hints.insert((home, Blob::new(&key[4..])), record);
        }
        Ok(state)
    }

    /// Writes `batches` as one atomic write batch and commits once: in the page cache without
    /// fsync, on disk (`fdatasync`) with.
    pub fn commit(&self, batches: &[PersistBatch]) -> Result<(), CommitError> {
        // A batch without a durability mode stays in fjall's journal buffer, inside this process:
        // `Buffer` hands it to the operating system (survives kill -9), `SyncData` to the disk.
        let mode = if self.fsync { PersistMode::SyncData } else { PersistMode::Buffer };
        let mut write = self.db.batch().durability(Some(mode));
        for batch in batches {
            if let Some(incarnation) = batch.incarnation {
                write.insert(&self.meta, INCARNATION_ENTRY, incarnation.to_be_bytes());
            }
            match batch.unadmitted {
                Some(true) => write.insert(&self.meta, UNADMITTED_ENTRY, [1u8]),
                Some(false) => write.remove(&self.meta, UNADMITTED_ENTRY),
                None => {}
            }
            if let Some(disk) = batch.disk {
                write.insert(&self.meta, DISK_ENTRY, disk.to_be_bytes());
            }
            for (peer, disk) in &batch.probed {
                write.insert(&self.meta, probed_entry(*peer), disk.to_be_bytes());
            }
            let encode = |what, value: Result<Vec<u8>, postcard::Error>| {
                value.map_err(|source| CommitError::Encode { what, source })
            };
            if let Some(layout) = &batch.layout {
                write.insert(&self.meta, LAYOUT_ENTRY, encode("the layout", postcard::to_allocvec(layout))?);
            }
            if let Some(vote) = &batch.layout_vote {
                write.insert(&self.meta, LAYOUT_VOTE_ENTRY, encode("the layout vote", postcard::to_allocvec(vote))?);
            }
            if let Some(staged) = &batch.staged {
                write.insert(&self.meta, STAGED_ENTRY, encode("the staged plan", postcard::to_allocvec(staged))?);
            }
            if let Some(floor) = batch.round_floor {
                write.insert(&self.meta, ROUND_FLOOR_ENTRY, floor.to_be_bytes());
            }
            if let Some(epoch) = batch.synced_epoch {
                write.insert(&self.meta, SYNCED_EPOCH_ENTRY, epoch.to_be_bytes());
            }
            for key in &batch.slots_removed {
                if key.is_empty() {
                    write.remove(&self.empty_key, EMPTY_KEY_ENTRY);
                } else {
                    write.remove(&self.slots, key.as_bytes());
                }
            }
            for (key, slot) in &batch.slots {
                let bytes =
                    postcard::to_allocvec(slot).map_err(|source| CommitError::Encode { what: "a slot", source })?;
                if key.is_empty() {
                    write.insert(&self.empty_key, EMPTY_KEY_ENTRY, bytes);
                } else {
                    write.insert(&self.slots, key.as_bytes(), bytes);
                }
            }
            for (home, key, record) in &batch.hints_stored {
                let bytes =
                    postcard::to_allocvec(record).map_err(|source| CommitError::Encode { what: "a hint", source })?;
                write.insert(&self.hints, hint_key(*home, key.as_bytes()), bytes);
            }
            for (home, key) in &batch.hints_removed {
                write.remove(&self.hints, hint_key(*home, key.as_bytes()));
            }
        }
        write.commit().map_err(CommitError::Engine)
    }

    /// Whether commits fsync (and so belong on their own thread).
    pub fn fsyncs(&self) -> bool {
        self.fsync
    }
}

/// An upper bound of the bytes committing `batch` writes, by the core's wire-size bounds of its
/// keys and records.
pub fn batch_bytes(batch: &PersistBatch) -> u64 {
    let slots = batch.slots.iter().map(|(key, slot)| match &slot.record {
        Some(record) => entry_wire_bytes_max(key, record),
        None => blob_wire_bytes_max(key),
    });
    let stored = batch.hints_stored.iter().map(|(_, key, hint)| entry_wire_bytes_max(key, hint));
    let removed = batch.hints_removed.iter().map(|(_, key)| blob_wire_bytes_max(key));
    slots.chain(stored).chain(removed).sum::<usize>() as u64
}

/// Commits `batches` or stops the process: after a failed commit nothing may be acknowledged.
pub fn commit_or_exit(storage: &Storage, batches: &[PersistBatch]) {
    if let Err(error) = storage.commit(batches) {
        tracing::error!(%error, "storage commit failed; stopping the node rather than risk acknowledging lost writes");
        std::process::exit(70);
    }
}

/// Runs the group-commit loop on the current thread until `batches` closes. After each commit
/// `done` receives the highest batch number now durable.
pub fn group_commit_loop(storage: Storage, batches: mpsc::Receiver<PersistBatch>, done: impl Fn(u64)) {
    while let Ok(first) = batches.recv() {
        let mut group = vec![first];
        while let Ok(more) = batches.try_recv() {
            group.push(more);
        }
        commit_or_exit(&storage, &group);
        let last = group.last().expect("group holds at least one batch").seq;
        done(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_core::layout::Layout;
    use dynamo_core::types::{ClientId, OpId};
    use dynamo_core::version::{Ballot, VectorClock};

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dynamo-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn record(round: u64) -> Record {
        Record {
            ballot: Ballot { round, node: NodeId(2) },
            clock: VectorClock::new(),
            value: Some(Blob::new(&[0, 159, 255])),
            op: OpId { client: ClientId(9), seq: 3 },
            writers: Vec::new().into(),
        }
    }

    #[test]
    fn batches_survive_reopening() {
        for fsync in [true, false] {
            let dir = temp_dir(&format!("reopen-{fsync}"));
            let slot = Slot { promised: record(4).ballot, record: Some(record(4)) };
            let batch = PersistBatch {
                seq: 1,
                incarnation: Some(7),
                slots: vec![(Blob::from("k"), slot.clone()), (Blob::from("gone"), slot.clone())],
                hints_stored: vec![(NodeId(3), Blob::from("h"), record(4)), (NodeId(1), Blob::from("x"), record(4))],
                hints_removed: vec![],
                unadmitted: Some(true),
                disk: Some(u64::MAX - 1),
                probed: vec![(NodeId(2), 1 << 63)],
                layout: Some(Box::new(Layout::from_config(&dynamo_core::config::Config::default()))),
                layout_vote: Some(Box::new(dynamo_core::layout::LayoutVote {
                    instance: 2,
                    promised: record(4).ballot,
                    accepted: None,
                })),
                staged: Some(dynamo_core::store::Staged {
                    base_epoch: 1,
                    changes: vec![dynamo_core::layout::Change::Join { name: "5564".into() }],
                }),
                slots_removed: vec![],
                round_floor: Some(41),
                synced_epoch: Some(6),
            };
            let newer = Slot { promised: record(5).ballot, record: Some(record(5)) };
            let later = PersistBatch {
                seq: 2,
                slots: vec![(Blob::from("k"), newer.clone())],
                slots_removed: vec![Blob::from("gone")],
                hints_removed: vec![(NodeId(1), Blob::from("x"))],
                ..Default::default()
            };
            {
                let (storage, state) = Storage::open(&dir, fsync).unwrap();
                assert!(state.slots.is_empty());
                assert!(dir.join(DATABASE_DIR).exists());
                storage.commit(std::slice::from_ref(&batch)).unwrap();
                storage.commit(std::slice::from_ref(&later)).unwrap();
            }
            let (_, state) = Storage::open(&dir, fsync).unwrap();
            let mut expected = DurableState::default();
            expected.apply(&batch);
            expected.apply(&later);
            assert_eq!(state, expected, "fsync = {fsync}");
            assert_eq!(state.slots[&Blob::from("k")], newer);
            assert_eq!(state.hints.len(), 1);
            assert_eq!(state.incarnation, 7);
            assert!(state.unadmitted, "still probing");
            assert_eq!((state.disk, state.probed[&NodeId(2)]), (u64::MAX - 1, 1 << 63));
            assert_eq!(state.layout.as_ref().map(Layout::epoch), Some(1));
            assert_eq!(state.layout_vote.as_ref().map(|vote| vote.instance), Some(2));
            assert_eq!(state.staged.changes.len(), 1);
            assert_eq!((state.round_floor, state.synced_epoch), (41, 6));
            assert!(!state.slots.contains_key(&Blob::from("gone")), "a forgotten slot is gone");
            // Admitted: the entry goes.
            {
                let (storage, _) = Storage::open(&dir, fsync).unwrap();
                storage.commit(&[PersistBatch { seq: 3, unadmitted: Some(false), ..Default::default() }]).unwrap();
            }
            let (_, state) = Storage::open(&dir, fsync).unwrap();
            assert!(!state.unadmitted);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn the_empty_key_and_the_longest_key_are_stored_and_loaded() {
        let dir = temp_dir("key-edges");
        let empty = Blob::new(&[]);
        let longest = Blob::new(&vec![b'k'; KEY_BYTES_MAX as usize]);
        let slot = |round| Slot { promised: record(round).ballot, record: Some(record(round)) };
        let batch = PersistBatch {
            seq: 1,
            incarnation: None,
            slots: vec![(empty.clone(), slot(4)), (longest.clone(), slot(4)), (Blob::from("k"), slot(4))],
            hints_stored: vec![(NodeId(3), empty.clone(), record(4)), (NodeId(3), longest.clone(), record(4))],
            hints_removed: vec![],
            ..Default::default()
        };
        let later = PersistBatch {
            seq: 2,
            slots: vec![(empty.clone(), slot(6))],
            hints_removed: vec![(NodeId(3), empty.clone())],
            ..Default::default()
        };
        {
            let (storage, _) = Storage::open(&dir, false).unwrap();
            storage.commit(&[batch.clone(), later.clone()]).unwrap();
        }
        let (_, state) = Storage::open(&dir, false).unwrap();
        let mut expected = DurableState::default();
        expected.apply(&batch);
        expected.apply(&later);
        assert_eq!(state, expected);
        assert_eq!(state.slots[&empty], slot(6));
        assert_eq!(state.slots.len(), 3, "the empty key's entry is not mistaken for another key");
        assert_eq!(state.hints.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_database_in_use_is_refused_with_a_clear_error() {
        let dir = temp_dir("locked");
        let (_open, _) = Storage::open(&dir, false).unwrap();
        let error = Storage::open(&dir, false).err().expect("refused while open");
        assert!(matches!(error, OpenError::Locked { .. }), "{error:?}");
        assert!(error.to_string().contains("is this node already running?"), "{error}");
        drop(_open);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_entry_is_refused_with_what_it_is() {
        let dir = temp_dir("corrupt");
        {
            let (storage, _) = Storage::open(&dir, false).unwrap();
            storage.slots.insert(b"k", [0xffu8; 3]).unwrap();
            storage.meta.insert(INCARNATION_ENTRY, [1u8; 3]).unwrap();
            storage.db.persist(PersistMode::SyncAll).unwrap();
        }
        let error = Storage::open(&dir, false).err().expect("refused");
        assert!(matches!(error, OpenError::Corrupt { what: "incarnation", .. }), "{error:?}");
        assert_eq!(error.to_string(), "corrupt incarnation: 3 bytes, not 8");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_database_of_the_old_format_is_refused_and_left_alone() {
        let dir = temp_dir("legacy");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("dynamo.redb"), b"old bytes").unwrap();
        let error = Storage::open(&dir, true).err().expect("refused");
        assert!(matches!(error, OpenError::LegacyFormat { .. }), "{error:?}");
        assert!(error.to_string().contains("older dynamo"), "{error}");
        assert_eq!(std::fs::read(dir.join("dynamo.redb")).unwrap(), b"old bytes");
        assert!(!dir.join(DATABASE_DIR).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
