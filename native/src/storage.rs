//! Durable storage of a node's `DurableState` in redb, with group commit.
//!
//! The core hands out `PersistBatch`es and must hear `Input::Persisted` only once a batch is
//! durable. A dedicated thread takes every batch waiting in its queue, writes them all in one
//! redb write transaction and commits once (one fsync for many writes: group commit), then
//! reports the highest batch number. A failed commit stops the node: after a failed fsync the
//! state of the file is unknown, and carrying on could acknowledge a write that is not there.
//!
//! Why redb: a pure-Rust, ACID, copy-on-write B-tree with crash-safe commits and no C toolchain
//! needed; its `Durability::Immediate` commit is exactly "durable before acknowledged".

use std::path::Path;
use std::sync::mpsc;

use dynamo_core::store::{DurableState, PersistBatch, Record, Slot};
use dynamo_core::types::{Blob, NodeId};
use redb::{Database, Durability, ReadableTable, TableDefinition};

const SLOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("slots");
/// Key: home node id (4 bytes big-endian) followed by the key.
const HINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("hints");

#[derive(Debug)]
pub struct StorageError(pub String);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StorageError {}

fn fail(context: &str, error: impl std::fmt::Display) -> StorageError {
    StorageError(format!("{context}: {error}"))
}

fn hint_key(home: NodeId, key: &[u8]) -> Vec<u8> {
    let mut bytes = home.0.to_be_bytes().to_vec();
    bytes.extend_from_slice(key);
    bytes
}

pub struct Storage {
    db: Database,
    fsync: bool,
}

impl Storage {
    /// Opens (or creates) the database in `dir` and loads everything it holds.
    pub fn open(dir: &Path, fsync: bool) -> Result<(Storage, DurableState), StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| fail(&format!("cannot create {}", dir.display()), e))?;
        let path = dir.join("dynamo.redb");
        let db = Database::create(&path).map_err(|e| fail(&format!("cannot open {}", path.display()), e))?;
        let storage = Storage { db, fsync };
        // Create the tables so that reading a fresh database works.
        storage.commit(&[])?;
        let state = storage.load()?;
        Ok((storage, state))
    }

    fn load(&self) -> Result<DurableState, StorageError> {
        let read = self.db.begin_read().map_err(|e| fail("read transaction", e))?;
        let mut state = DurableState::default();
        let slots = read.open_table(SLOTS).map_err(|e| fail("slots table", e))?;
        for entry in slots.iter().map_err(|e| fail("slots scan", e))? {
            let (key, value) = entry.map_err(|e| fail("slots scan", e))?;
            let slot: Slot = postcard::from_bytes(value.value()).map_err(|e| fail("corrupt slot", e))?;
            state.slots.insert(Blob::new(key.value()), slot);
        }
        let hints = read.open_table(HINTS).map_err(|e| fail("hints table", e))?;
        for entry in hints.iter().map_err(|e| fail("hints scan", e))? {
            let (key, value) = entry.map_err(|e| fail("hints scan", e))?;
            let bytes = key.value();
            if bytes.len() < 4 {
                return Err(StorageError("corrupt hint key".into()));
            }
            let home = NodeId(u32::from_be_bytes(bytes[..4].try_into().expect("four bytes")));
            let record: Record = postcard::from_bytes(value.value()).map_err(|e| fail("corrupt hint", e))?;
            state.hints.insert((home, Blob::new(&bytes[4..])), record);
        }
        Ok(state)
    }

    /// Writes `batches` in one transaction and commits once.
    pub fn commit(&self, batches: &[PersistBatch]) -> Result<(), StorageError> {
        let mut write = self.db.begin_write().map_err(|e| fail("write transaction", e))?;
        write.set_durability(if self.fsync { Durability::Immediate } else { Durability::None });
        {
            let mut slots = write.open_table(SLOTS).map_err(|e| fail("slots table", e))?;
            let mut hints = write.open_table(HINTS).map_err(|e| fail("hints table", e))?;
            for batch in batches {
                for (key, slot) in &batch.slots {
                    let bytes = postcard::to_allocvec(slot).map_err(|e| fail("encode slot", e))?;
                    slots.insert(key.as_bytes(), bytes.as_slice()).map_err(|e| fail("write slot", e))?;
                }
                for (home, key, record) in &batch.hints_stored {
                    let bytes = postcard::to_allocvec(record).map_err(|e| fail("encode hint", e))?;
                    hints
                        .insert(hint_key(*home, key.as_bytes()).as_slice(), bytes.as_slice())
                        .map_err(|e| fail("write hint", e))?;
                }
                for (home, key) in &batch.hints_removed {
                    hints.remove(hint_key(*home, key.as_bytes()).as_slice()).map_err(|e| fail("remove hint", e))?;
                }
            }
        }
        write.commit().map_err(|e| fail("commit", e))
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
        if let Err(error) = storage.commit(&group) {
            tracing::error!(%error, "storage commit failed; stopping the node rather than risk acknowledging lost writes");
            std::process::exit(70);
        }
        let last = group.last().expect("group holds at least one batch").seq;
        done(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_core::types::{ClientId, OpId};
    use dynamo_core::version::{Ballot, VectorClock};

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dynamo-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn batches_survive_reopening() {
        let dir = temp_dir("reopen");
        let record = Record {
            ballot: Ballot { round: 4, node: NodeId(2) },
            clock: VectorClock::new(),
            value: Some(Blob::new(&[0, 159, 255])),
            op: OpId { client: ClientId(9), seq: 3 },
            writers: Vec::new().into(),
        };
        let slot = Slot { promised: record.ballot, record: Some(record.clone()) };
        let batch = PersistBatch {
            seq: 1,
            slots: vec![(Blob::from("k"), slot.clone())],
            hints_stored: vec![(NodeId(3), Blob::from("h"), record.clone()), (NodeId(1), Blob::from("x"), record)],
            hints_removed: vec![],
        };
        {
            let (storage, state) = Storage::open(&dir, true).unwrap();
            assert!(state.slots.is_empty());
            storage.commit(std::slice::from_ref(&batch)).unwrap();
            let removal =
                PersistBatch { seq: 2, hints_removed: vec![(NodeId(1), Blob::from("x"))], ..Default::default() };
            storage.commit(&[removal]).unwrap();
        }
        let (_, state) = Storage::open(&dir, true).unwrap();
        let mut expected = DurableState::default();
        expected.apply(&batch);
        expected.hints.remove(&(NodeId(1), Blob::from("x")));
        assert_eq!(state, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
