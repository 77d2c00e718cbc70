//! What a replica stores for a key, what it must persist, and what survives a crash.
//!
//! A replica is a Paxos-style acceptor per key: it keeps the highest ballot it promised and the
//! record it accepted last. `DurableState` is exactly what a crash leaves behind; a node's
//! in-memory state is rebuilt from it on restart. Nothing here does IO: drivers write a
//! `PersistBatch` wherever they keep data and report back with `Input::Persisted`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::layout::{Change, Layout, LayoutVote};
use crate::types::{Blob, ClientId, NodeId, OpId};
use crate::version::{Ballot, VectorClock};

/// The last write sequence number a client session applied to a key, for at-most-once retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    pub client: ClientId,
    pub seq: u64,
    /// Ballot round of the write that recorded it; the oldest entry is evicted first.
    pub round: u64,
    /// For a delete: whether it removed a live value (what a retry of it must answer).
    #[serde(default)]
    pub removed: bool,
}

/// One version of a key: its value (or tombstone), its versions and its write history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Total order among versions; unique per write attempt.
    pub ballot: Ballot,
    /// Causal history (Dynamo's vector clock).
    pub clock: VectorClock,
    /// `None` is a tombstone: the key was deleted.
    pub value: Option<Blob>,
    /// The request that wrote this version.
    pub op: OpId,
    /// Client sessions whose writes this version already includes, sorted by client. Shared:
    /// records are cloned into many messages and must not allocate each time.
    pub writers: Arc<[Writer]>,
}

/// The most bytes one integer, length, option or enum tag takes on the wire: a LEB128 `u64`,
/// as postcard writes it. Size bounds below count every such field at this width.
pub const WIRE_INT_BYTES_MAX: usize = 10;

/// An upper bound of a byte string's encoded size.
pub fn blob_wire_bytes_max(blob: &Blob) -> usize {
    WIRE_INT_BYTES_MAX + blob.len()
}

/// An upper bound of a `(key, record)` entry's encoded size, as batches carry them.
pub fn entry_wire_bytes_max(key: &Blob, record: &Record) -> usize {
    blob_wire_bytes_max(key) + record.wire_bytes_max()
}

impl Record {
    /// An upper bound of this record's encoded size, so that batches of records can be kept
    /// under a byte budget (`Config::batch_bytes_max`) without encoding them.
    pub fn wire_bytes_max(&self) -> usize {
        // ballot 2, clock 1 + 2 per entry, value tag and length 2, op 2, writers 1 + 4 each.
        let ints = 2 + 1 + 2 * self.clock.entries().len() + 2 + 2 + 1 + 4 * self.writers.len();
        ints * WIRE_INT_BYTES_MAX + self.value.as_ref().map_or(0, Blob::len)
    }

    /// True when this version already includes request `op` (or a later one of its client).
    pub fn includes(&self, op: OpId) -> bool {
        self.writers.iter().any(|writer| writer.client == op.client && writer.seq >= op.seq)
    }
}

/// Merges writer lists: per client the highest sequence number, at most `max` entries, evicting
/// the oldest (lowest round) first. Deterministic: the result is sorted by client.
pub fn merge_writers(lists: &[&[Writer]], max: usize) -> Vec<Writer> {
    let mut by_client: BTreeMap<ClientId, Writer> = BTreeMap::new();
    for list in lists {
        for writer in *list {
            by_client
                .entry(writer.client)
                .and_modify(|kept| {
                    if (writer.seq, writer.round) > (kept.seq, kept.round) {
                        *kept = *writer;
                    }
                })
                .or_insert(*writer);
        }
    }
    let mut merged: Vec<Writer> = by_client.into_values().collect();
    if merged.len() > max {
        let mut rounds: Vec<(u64, ClientId)> = merged.iter().map(|w| (w.round, w.client)).collect();
        rounds.sort();
        let evicted: Vec<ClientId> = rounds[..merged.len() - max].iter().map(|r| r.1).collect();
        merged.retain(|writer| !evicted.contains(&writer.client));
    }
    merged
}

/// Records one writer in a list that `merge_writers` made (sorted by client), in place: what
/// `merge_writers(&[writers, &[writer]], max)` returns, without rebuilding the list. A write
/// round on a hot key does this once per request it carries.
pub fn record_writer(writers: &mut Vec<Writer>, writer: Writer, max: usize) {
    if !writers.is_sorted_by_key(|kept| kept.client) {
        *writers = merge_writers(&[writers], usize::MAX);
    }
    match writers.binary_search_by_key(&writer.client, |kept| kept.client) {
        Ok(at) => {
            let kept = &mut writers[at];
            if (writer.seq, writer.round) > (kept.seq, kept.round) {
                *kept = writer;
            }
        }
        Err(at) => writers.insert(at, writer),
    }
    while writers.len() > max {
        let oldest = (0..writers.len()).min_by_key(|&at| (writers[at].round, writers[at].client)).expect("not empty");
        writers.remove(oldest);
    }
}

/// A replica's state for one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// No write with a lower ballot may be accepted any more.
    pub promised: Ballot,
    /// The accepted record with the highest ballot.
    pub record: Option<Record>,
}

impl Slot {
    pub fn accepted_ballot(&self) -> Ballot {
        self.record.as_ref().map_or(Ballot::ZERO, |record| record.ballot)
    }
}

/// One persist request: every change a step made, to be made durable atomically and in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistBatch {
    /// Increasing per node incarnation; `Input::Persisted` names the highest batch made durable.
    pub seq: u64,
    /// The node's new incarnation, in the first batch of each life (`Node::start`).
    #[serde(default)]
    pub incarnation: Option<u64>,
    pub slots: Vec<(Blob, Slot)>,
    /// Hints stored for another node (`home`); a later entry for the same pair replaces it.
    pub hints_stored: Vec<(NodeId, Blob, Record)>,
    pub hints_removed: Vec<(NodeId, Blob)>,
    /// `Some(true)` in the first batch of a node that started with nothing stored, `Some(false)`
    /// once it is admitted (`DurableState::unadmitted`).
    #[serde(default)]
    pub unadmitted: Option<bool>,
    /// The node's disk id, in the first batch of a disk (`DurableState::disk`).
    #[serde(default)]
    pub disk: Option<u64>,
    /// Peers' disk ids first heard in their probes (`DurableState::probed`).
    #[serde(default)]
    pub probed: Vec<(NodeId, u64)>,
    /// The node's layout, when it changed (`DurableState::layout`).
    #[serde(default)]
    pub layout: Option<Box<Layout>>,
    /// The node's layout Paxos vote, when it changed (`DurableState::layout_vote`).
    #[serde(default)]
    pub layout_vote: Option<Box<LayoutVote>>,
    /// The plan staged at this node, when it changed (`DurableState::staged`).
    #[serde(default)]
    pub staged: Option<Staged>,
    /// Slots forgotten: their keys' arcs moved to other homes (after a settled epoch).
    #[serde(default)]
    pub slots_removed: Vec<Blob>,
    /// `DurableState::round_floor`, when it rose.
    #[serde(default)]
    pub round_floor: Option<u64>,
    /// `DurableState::synced_epoch`, when it changed.
    #[serde(default)]
    pub synced_epoch: Option<u64>,
}

/// Changes an operator staged at a node, and the epoch the first was staged on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    pub base_epoch: u64,
    pub changes: Vec<Change>,
}

impl PersistBatch {
    pub fn is_empty(&self) -> bool {
        self.incarnation.is_none()
            && self.slots.is_empty()
            && self.hints_stored.is_empty()
            && self.hints_removed.is_empty()
            && self.unadmitted.is_none()
            && self.disk.is_none()
            && self.probed.is_empty()
            && self.layout.is_none()
            && self.layout_vote.is_none()
            && self.staged.is_none()
            && self.slots_removed.is_empty()
            && self.round_floor.is_none()
            && self.synced_epoch.is_none()
    }
}

/// Everything a node keeps across a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableState {
    /// The node's incarnation: 0 for a node that never started, then one more for every start.
    #[serde(default)]
    pub incarnation: u64,
    pub slots: BTreeMap<Blob, Slot>,
    pub hints: BTreeMap<(NodeId, Blob), Record>,
    /// The node started with nothing stored and has not yet heard from more than half of its
    /// peers that they remember no other disk of it: until then it votes in nothing (ARCHITECTURE.md,
    /// "amnesia never votes"). False for a data directory written before admission existed.
    #[serde(default)]
    pub unadmitted: bool,
    /// A random id drawn when the node first started with nothing stored (0: none yet, or a
    /// directory written before disk ids existed). Every probe names it.
    #[serde(default)]
    pub disk: u64,
    /// Per peer, the first disk id it probed this node with. More than half of the peers of an
    /// admitted node remember its disk.
    #[serde(default)]
    pub probed: BTreeMap<NodeId, u64>,
    /// The newest layout this node learned (the ring, its members and its epoch). `None` for a
    /// node that never started, or a directory written before layouts were stored: the node
    /// then builds the first layout from its configuration.
    #[serde(default)]
    pub layout: Option<Layout>,
    /// This node's vote in the layout Paxos of the epoch after its layout's (older ones are
    /// decided and matter no more).
    #[serde(default)]
    pub layout_vote: Option<LayoutVote>,
    /// The plan an operator staged at this node.
    #[serde(default)]
    pub staged: Staged,
    /// No ballot round of this node's is at or below this: the promises of forgotten slots
    /// are gone, and a ballot of its must never be used twice for a key.
    #[serde(default)]
    pub round_floor: u64,
    /// The joint epoch for which this node rewrote every key of its moving arcs.
    #[serde(default)]
    pub synced_epoch: u64,
}

impl DurableState {
    /// Applies a batch, as a driver does once the batch is on disk. A batch never both stores
    /// and removes the same hint (the node cancels one with the other), so the order of the two
    /// lists does not matter.
    pub fn apply(&mut self, batch: &PersistBatch) {
        if let Some(incarnation) = batch.incarnation {
            self.incarnation = incarnation;
        }
        for (key, slot) in &batch.slots {
            self.slots.insert(key.clone(), slot.clone());
        }
        for key in &batch.slots_removed {
            self.slots.remove(key);
        }
        if let Some(floor) = batch.round_floor {
            self.round_floor = floor;
        }
        if let Some(epoch) = batch.synced_epoch {
            self.synced_epoch = epoch;
        }
        for (home, key, record) in &batch.hints_stored {
            self.hints.insert((*home, key.clone()), record.clone());
        }
        for (home, key) in &batch.hints_removed {
            self.hints.remove(&(*home, key.clone()));
        }
        if let Some(unadmitted) = batch.unadmitted {
            self.unadmitted = unadmitted;
        }
        if let Some(disk) = batch.disk {
            self.disk = disk;
        }
        for (peer, disk) in &batch.probed {
            self.probed.insert(*peer, *disk);
        }
        if let Some(layout) = &batch.layout {
            self.layout = Some(Layout::clone(layout));
        }
        if let Some(vote) = &batch.layout_vote {
            self.layout_vote = Some(LayoutVote::clone(vote));
        }
        if let Some(staged) = &batch.staged {
            self.staged = staged.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(client: u64, seq: u64, round: u64) -> Writer {
        Writer { client: ClientId(client), seq, round, removed: false }
    }

    #[test]
    fn recording_one_writer_in_place_agrees_with_merging() {
        let mut rng = crate::types::Rng::new(7);
        for _ in 0..2_000 {
            let max = 1 + rng.below(6) as usize;
            let size = rng.below(8) as usize;
            let list: Vec<Writer> = (0..size).map(|_| writer(rng.below(6), rng.below(5), rng.below(5))).collect();
            let mut writers = merge_writers(&[&list], max);
            let one = writer(rng.below(6), rng.below(5), rng.below(5));
            let expected = merge_writers(&[&writers, &[one]], max);
            record_writer(&mut writers, one, max);
            assert_eq!(writers, expected, "list {list:?} max {max} writer {one:?}");
        }
        // An unsorted list (not made by merge_writers) is sorted first.
        let mut unsorted = vec![writer(3, 1, 1), writer(1, 1, 1)];
        record_writer(&mut unsorted, writer(2, 1, 1), 8);
        assert_eq!(unsorted, vec![writer(1, 1, 1), writer(2, 1, 1), writer(3, 1, 1)]);
    }

    #[test]
    fn writers_merge_keeps_latest_per_client_and_evicts_oldest() {
        let a = [writer(1, 5, 10), writer(2, 1, 3)];
        let b = [writer(1, 4, 12), writer(3, 9, 20)];
        let merged = merge_writers(&[&a, &b], 8);
        assert_eq!(merged, vec![writer(1, 5, 10), writer(2, 1, 3), writer(3, 9, 20)]);
        let bounded = merge_writers(&[&a, &b], 2);
        assert_eq!(bounded, vec![writer(1, 5, 10), writer(3, 9, 20)]);
    }

    #[test]
    fn durable_state_applies_batches_in_order() {
        let mut state = DurableState::default();
        let slot = Slot { promised: Ballot { round: 3, node: NodeId(1) }, record: None };
        state.apply(&PersistBatch { seq: 1, slots: vec![(Blob::from("k"), slot.clone())], ..Default::default() });
        assert_eq!(state.slots[&Blob::from("k")], slot);
        assert_eq!(state.incarnation, 0, "a batch without an incarnation leaves it");
        state.apply(&PersistBatch { seq: 2, incarnation: Some(3), ..Default::default() });
        assert_eq!(state.incarnation, 3);
    }
}
