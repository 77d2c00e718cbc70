//! Background work that keeps replicas whole: hinted handoff, recovery, anti-entropy.
//!
//! - Hinted handoff (Dynamo 4.6): a fallback node keeps a write for a home replica that did not
//!   acknowledge it and offers it back on a timer until the home answers.
//! - Recovery (the seed): a restarted node asks the other home replicas of its ranges for every
//!   record it should hold and refuses quorum reads until, for each of its ranges, enough of them
//!   (N - W, so at least one member of every write quorum) have sent everything.
//! - Anti-entropy (Dynamo 4.7): a node periodically compares a digest of the keys it shares with
//!   one peer, bucket by bucket, and exchanges the records that differ.
//!
//! Every copy goes through the acceptor rule (`Node::offer`), so none of this can undo a write.

use std::collections::{BTreeMap, BTreeSet};

use crate::layout::Layout;
use crate::message::{AcceptPurpose, ClientError, ClientReply, Message, Unavailable, DIGEST_BUCKETS};
use crate::ring::Ring;
use crate::store::{blob_wire_bytes_max, Record, WIRE_INT_BYTES_MAX};
use crate::trace::TraceKind;
use crate::types::{Blob, Micros, NodeId};
use crate::version::Ballot;

use super::coordinate::ReplyTo;
use super::{ByteBudget, KeyState, Node, Offer, Timer};

pub(super) struct Recovery {
    /// Peers still sending: peer -> (cursor asked for, txn of the request, when asked).
    asking: Vec<(NodeId, Option<Blob>, u64, u64)>,
    done: BTreeSet<NodeId>,
    /// The home replicas of each range this node is a home of (the ring, computed once).
    ranges: Vec<Vec<NodeId>>,
    records: u64,
    /// `@` queries waiting for recovery to finish, with their deadlines: a recovery that cannot
    /// finish (too many peers down) answers them unavailable rather than never.
    pub(super) waiting: Vec<(ReplyTo, Micros)>,
}

pub(super) struct AntiEntropy {
    /// Peers sharing at least one range with this node, in round-robin order.
    partners: Vec<NodeId>,
    next: usize,
    /// Per node (by index), `DIGEST_BUCKETS` sums: the digest of what this node shares with
    /// it. Per bucket, the XOR of `entry(key, ballot)` over the keys with a record that both
    /// store. `Node::offer` keeps it current, so a digest costs nothing to produce however
    /// large the store.
    sums: Vec<u64>,
    /// The keys of the store by bucket, so that the keys of a few differing buckets are found
    /// without a scan of the store.
    keys: BTreeSet<(u32, Blob)>,
    /// The bucket the next list of differing buckets starts from: it moves on past the
    /// buckets listed last, so that none waits forever behind others that keep changing.
    start: u32,
}

impl AntiEntropy {
    pub(super) fn new(id: NodeId, layout: &Layout, ring: &Ring, store: &BTreeMap<Blob, KeyState>) -> AntiEntropy {
        let mut partners: Vec<NodeId> = layout
            .home_sets(ring)
            .into_iter()
            .filter(|homes| homes.contains(&id))
            .flatten()
            .filter(|node| *node != id)
            .collect();
        partners.sort();
        partners.dedup();
        let mut anti_entropy = AntiEntropy {
            partners,
            next: 0,
            sums: vec![0; DIGEST_BUCKETS as usize * ring.node_count()],
            keys: BTreeSet::new(),
            start: 0,
        };
        for (key, state) in store {
            anti_entropy.key_added(key);
            if let Some(record) = &state.slot.record {
                anti_entropy.toggle(id, key, state.homes_mask, record.ballot);
            }
        }
        anti_entropy
    }

    /// `key` entered the store.
    pub(super) fn key_added(&mut self, key: &Blob) {
        self.keys.insert((bucket_of(key.as_bytes()), key.clone()));
    }

    /// Adds `(key, ballot)` to, or removes it from, the digest of every peer that shares the
    /// key with `id` (XOR is its own inverse). A record replaced is toggled out, its
    /// successor in.
    pub(super) fn toggle(&mut self, id: NodeId, key: &Blob, homes_mask: u64, ballot: Ballot) {
        if homes_mask & (1 << id.0) == 0 {
            return;
        }
        let hash = fnv(key.as_bytes());
        let bucket = (hash % DIGEST_BUCKETS as u64) as usize;
        let entry = mix(hash ^ mix(ballot.round) ^ ballot.node.0 as u64);
        for (peer, sums) in self.sums.chunks_mut(DIGEST_BUCKETS as usize).enumerate() {
            if peer != id.index() && homes_mask & (1 << peer) != 0 {
                sums[bucket] ^= entry;
            }
        }
    }
}

/// FNV-1a, a stable hash for digests (the same on every platform and run).
pub(super) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ *byte as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

pub(super) fn mix(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xff51_afd7_ed55_8ccd);
    value ^= value >> 33;
    value
}

fn bucket_of(key: &[u8]) -> u32 {
    (fnv(key) % DIGEST_BUCKETS as u64) as u32
}

impl Node {
    // ----- Hinted handoff. -----

    pub(super) fn store_hint(&mut self, home: NodeId, key: Blob, record: Record) {
        let slot = (home, key.clone());
        if self.hints.get(&slot).is_some_and(|kept| kept.ballot >= record.ballot) {
            return;
        }
        if self.hints.len() as u64 >= self.config.hints_max as u64 && !self.hints.contains_key(&slot) {
            // Bounded: drop the first hint in key order; anti-entropy still repairs its home.
            if let Some(((old_home, old_key), _)) = self.hints.pop_first() {
                self.hints_stored.retain(|stored| (stored.0, &stored.1) != (old_home, &old_key));
                self.hints_removed.push((old_home, old_key.clone()));
                self.emit(TraceKind::HintDropped { home: old_home, key: old_key });
            }
        }
        self.emit(TraceKind::HintStored { home, key: key.clone() });
        self.hints_removed.retain(|removed| *removed != (home, key.clone()));
        self.hints_stored.push((home, key.clone(), record.clone()));
        self.hints.insert(slot, record);
    }

    pub(super) fn hints_tick(&mut self) {
        self.handoffs.clear();
        self.retarget_hints();
        // A bounded number per tick, within one batch's bytes: hints of large values must not
        // flood the links (each tick offers them again until their homes answer).
        let batch = self.config.handoffs_per_tick_max as usize;
        let mut budget = ByteBudget::new(&self.config);
        let offers: Vec<((NodeId, Blob), Record)> = self
            .hints
            .iter()
            .take(batch)
            .take_while(|((_, key), record)| budget.take_entry(key, record))
            .map(|(slot, record)| (slot.clone(), record.clone()))
            .collect();
        for ((home, key), record) in offers {
            let txn = self.next_txn + 1;
            self.next_txn = txn;
            self.handoffs.insert(txn, (home, key.clone()));
            self.send(home, Message::Accept { txn, key, record, purpose: AcceptPurpose::Handoff, next: None });
        }
        let next = self.now + self.config.hint_handoff_interval();
        self.schedule(next, Timer::Hints);
    }

    /// Hints for a home that no longer votes on their key (its arc moved) go to the key's
    /// first voter other than this node.
    fn retarget_hints(&mut self) {
        let moved: Vec<(NodeId, Blob)> =
            self.hints.keys().filter(|(home, key)| !self.electorate(key.as_bytes()).contains(*home)).cloned().collect();
        for (home, key) in moved {
            let Some(record) = self.hints.remove(&(home, key.clone())) else { continue };
            self.hints_stored.retain(|stored| (stored.0, &stored.1) != (home, &key));
            self.hints_removed.push((home, key.clone()));
            let id = self.id;
            if let Some(voter) = self.electorate(key.as_bytes()).all().into_iter().find(|node| *node != id) {
                self.store_hint(voter, key, record);
            }
        }
    }

    /// The home answered the handoff: it holds the record or something newer, so drop the hint.
    pub(super) fn handoff_done(&mut self, home: NodeId, key: Blob, ballot: Ballot) {
        let slot = (home, key.clone());
        if self.hints.get(&slot).is_some_and(|kept| kept.ballot == ballot) {
            self.hints.remove(&slot);
            self.hints_stored.retain(|stored| (stored.0, &stored.1) != (home, &key));
            self.hints_removed.push((home, key.clone()));
            self.emit(TraceKind::HintHandedOff { home, key });
        }
    }

    // ----- Recovery. -----

    /// Peers whose sync is needed: the other home replicas of this node's ranges.
    fn recovery_peers(&self) -> Vec<NodeId> {
        let mut peers = self.anti_entropy.partners.clone();
        peers.sort();
        peers
    }

    pub(super) fn start_recovery(&mut self) {
        let peers = self.recovery_peers();
        self.emit(TraceKind::RecoveryStarted { peers: peers.clone() });
        let id = self.id;
        let ranges = self.layout.home_sets(&self.ring).into_iter().filter(|homes| homes.contains(&id)).collect();
        let mut recovery =
            Recovery { asking: Vec::new(), done: BTreeSet::new(), ranges, records: 0, waiting: Vec::new() };
        for peer in peers {
            self.next_txn += 1;
            let txn = self.next_txn;
            recovery.asking.push((peer, None, txn, self.now));
            self.send(peer, Message::SyncRequest { txn, for_node: self.id, after: None });
        }
        self.recovery = Some(recovery);
        self.schedule(self.now + self.config.request_timeout(), Timer::Recovery);
        self.check_recovered();
    }

    pub(super) fn on_sync_request(&mut self, from: NodeId, txn: u64, for_node: NodeId, after: Option<Blob>) {
        let bit = 1u64 << for_node.0;
        let (records, next) = self.page(after, self.config.batch_records_max, |state| state.homes_mask & bit != 0);
        self.send(from, Message::SyncReply { txn, records, next });
    }

    pub(super) fn on_sync_reply(&mut self, from: NodeId, txn: u64, records: Vec<(Blob, Record)>, next: Option<Blob>) {
        let Some(recovery) = &mut self.recovery else { return };
        let Some(index) = recovery.asking.iter().position(|asking| asking.0 == from && asking.2 == txn) else {
            return;
        };
        let count = records.len() as u64;
        recovery.records += count;
        for (key, record) in records {
            self.copy_record(key, record);
        }
        let Some(recovery) = &mut self.recovery else { return };
        let peer_done = next.is_none();
        match next {
            Some(cursor) => {
                self.next_txn += 1;
                let txn = self.next_txn;
                recovery.asking[index] = (from, Some(cursor.clone()), txn, self.now);
                self.send(from, Message::SyncRequest { txn, for_node: self.id, after: Some(cursor) });
            }
            None => {
                recovery.asking.remove(index);
                recovery.done.insert(from);
            }
        }
        self.emit(TraceKind::RecoveryProgress { peer: from, records: count, peer_done });
        self.check_recovered();
    }

    /// Recovered when every range of this node has N - W other home replicas fully synced (at
    /// least one): every write acknowledged while this node was down is on one of them.
    fn check_recovered(&mut self) {
        let Some(recovery) = &self.recovery else { return };
        let needed = (self.config.replicas - self.config.write_quorum).max(1) as usize;
        let complete = recovery.ranges.iter().all(|homes| {
            let others = homes.len() - 1;
            let synced = homes.iter().filter(|home| recovery.done.contains(home)).count();
            synced >= needed.min(others)
        });
        if complete {
            let recovery = self.recovery.take().expect("checked above");
            self.emit(TraceKind::RecoveryFinished { records: recovery.records });
            let waiting = recovery.waiting.into_iter().map(|(reply_to, _)| reply_to).collect();
            self.answer_local_queries(waiting);
        }
    }

    pub(super) fn recovery_tick(&mut self) {
        let now = self.now;
        let timeout = self.config.request_timeout();
        let Some(recovery) = &mut self.recovery else { return };
        let mut resend = Vec::new();
        for asking in &mut recovery.asking {
            if now >= asking.3 + timeout {
                self.next_txn += 1;
                asking.2 = self.next_txn;
                asking.3 = now;
                resend.push((asking.0, asking.1.clone(), asking.2));
            }
        }
        let (expired, waiting) = recovery.waiting.drain(..).partition(|(_, deadline)| now >= *deadline);
        recovery.waiting = waiting;
        let pending = recovery.asking.len();
        for (peer, after, txn) in resend {
            self.suspect(peer);
            self.send(peer, Message::SyncRequest { txn, for_node: self.id, after });
        }
        for (reply_to, _) in expired {
            let cause = Unavailable::Recovering { peers_waiting: pending as u64 };
            self.answer(reply_to, ClientReply::Error(ClientError::Unavailable(cause)));
        }
        self.schedule(now + timeout, Timer::Recovery);
    }

    /// Copies a record learned from a peer through the acceptor rule, for a key this node
    /// votes on (a peer of another epoch may offer one whose arc moved away).
    fn copy_record(&mut self, key: Blob, record: Record) {
        if !self.electorate(key.as_bytes()).contains(self.id) {
            return;
        }
        self.observe(record.ballot);
        if let Offer::Blocked { .. } = self.offer(&key, record) {
            self.start_rewrite(key);
        }
    }

    // ----- Anti-entropy. -----

    /// Per bucket, an order-independent hash of the (key, ballot) pairs both nodes store.
    pub(super) fn digest(&self, peer: NodeId) -> Vec<u64> {
        let buckets = DIGEST_BUCKETS as usize;
        self.anti_entropy.sums[peer.index() * buckets..][..buckets].to_vec()
    }

    /// The keys in `bucket` both nodes store with a record, with this node's ballot for each.
    fn entries(&self, peer: NodeId, bucket: u32) -> Vec<(Blob, Ballot)> {
        let mask = 1u64 << self.id.0 | 1u64 << peer.0;
        let first = Blob::new(&[]);
        self.anti_entropy
            .keys
            .range((bucket, first.clone())..(bucket + 1, first))
            .map(|(_, key)| key)
            .filter_map(|key| {
                let state = self.store.get(key)?;
                (state.homes_mask & mask == mask).then_some(())?;
                Some((key.clone(), state.slot.record.as_ref()?.ballot))
            })
            .collect()
    }

    pub(super) fn anti_entropy_tick(&mut self) {
        let next = self.now + self.config.anti_entropy_interval();
        self.schedule(next, Timer::AntiEntropy);
        if self.anti_entropy.partners.is_empty() || self.recovery.is_some() {
            return;
        }
        let index = self.anti_entropy.next % self.anti_entropy.partners.len();
        self.anti_entropy.next += 1;
        let peer = self.anti_entropy.partners[index];
        let buckets = self.digest(peer);
        self.next_txn += 1;
        let txn = self.next_txn;
        self.send(peer, Message::Digest { txn, buckets });
    }

    pub(super) fn on_digest(&mut self, from: NodeId, txn: u64, theirs: Vec<u64>) {
        let mine = self.digest(from);
        if theirs.len() != mine.len() {
            return;
        }
        // The differing buckets, from where the last list stopped.
        let start = self.anti_entropy.start;
        let differing: Vec<u32> = (0..DIGEST_BUCKETS)
            .map(|offset| (start + offset) % DIGEST_BUCKETS)
            .filter(|b| mine[*b as usize] != theirs[*b as usize])
            .collect();
        if differing.is_empty() {
            return;
        }
        // Whole buckets while the byte budget lasts: the peer compares only the buckets listed,
        // so a listed bucket must come with all its entries. The rest wait for a later round.
        // A first bucket too large for one message is cut short, which only makes the peer
        // push records this node already has (the acceptor rule ignores them).
        let entry_bytes = |(key, _): &(Blob, Ballot)| blob_wire_bytes_max(key) + 2 * WIRE_INT_BYTES_MAX;
        let mut budget = self.config.batch_bytes_max as usize;
        let (mut buckets, mut entries) = (Vec::new(), Vec::new());
        for bucket in differing {
            let listed = self.entries(from, bucket);
            let bytes: usize = listed.iter().map(entry_bytes).sum();
            if !buckets.is_empty() && bytes > budget {
                break;
            }
            buckets.push(bucket);
            if bytes <= budget {
                budget -= bytes;
                entries.extend(listed);
            } else {
                entries.extend(listed.into_iter().take_while(|entry| {
                    let bytes = entry_bytes(entry);
                    let fits = bytes <= budget;
                    budget = budget.saturating_sub(bytes);
                    fits
                }));
                break;
            }
        }
        let last = *buckets.last().expect("at least one bucket is listed");
        self.anti_entropy.start = (last + 1) % DIGEST_BUCKETS;
        self.send(from, Message::DigestEntries { txn, buckets, entries });
    }

    pub(super) fn on_digest_entries(&mut self, from: NodeId, buckets: Vec<u32>, theirs: Vec<(Blob, Ballot)>) {
        let batch = self.config.batch_records_max as usize;
        let mine: Vec<(Blob, Ballot)> = buckets
            .iter()
            .filter(|bucket| **bucket < DIGEST_BUCKETS)
            .flat_map(|bucket| self.entries(from, *bucket))
            .collect();
        let theirs_map: std::collections::BTreeMap<&Blob, Ballot> = theirs.iter().map(|(k, b)| (k, *b)).collect();
        let mut push = Vec::new();
        let mut budget = ByteBudget::new(&self.config);
        for (key, ballot) in &mine {
            if push.len() == batch {
                break;
            }
            if theirs_map.get(key).is_none_or(|their| their < ballot) {
                let record = self.record(key.as_bytes()).cloned().expect("listed keys have records");
                if !budget.take_entry(key, &record) {
                    break;
                }
                push.push((key.clone(), record));
            }
        }
        let mine_map: std::collections::BTreeMap<&Blob, Ballot> = mine.iter().map(|(k, b)| (k, *b)).collect();
        let mut budget = ByteBudget::new(&self.config);
        let fetch: Vec<Blob> = theirs
            .iter()
            .filter(|(key, ballot)| mine_map.get(key).is_none_or(|my| my < ballot))
            .take(batch)
            .take_while(|(key, _)| budget.take(blob_wire_bytes_max(key)))
            .map(|(key, _)| key.clone())
            .collect();
        self.emit(TraceKind::AntiEntropy { peer: from, pushed: push.len() as u64, fetched: fetch.len() as u64 });
        if !push.is_empty() {
            self.send(from, Message::Records { records: push });
        }
        if !fetch.is_empty() {
            self.send(from, Message::Fetch { keys: fetch });
        }
    }

    pub(super) fn on_records(&mut self, records: Vec<(Blob, Record)>) {
        for (key, record) in records {
            self.copy_record(key, record);
        }
    }

    pub(super) fn on_fetch(&mut self, from: NodeId, keys: Vec<Blob>) {
        let mut budget = ByteBudget::new(&self.config);
        let records: Vec<(Blob, Record)> = keys
            .into_iter()
            .take(self.config.batch_records_max as usize)
            .filter_map(|key| {
                let record = self.record(key.as_bytes())?.clone();
                Some((key, record))
            })
            .take_while(|(key, record)| budget.take_entry(key, record))
            .collect();
        if !records.is_empty() {
            self.send(from, Message::Records { records });
        }
    }
}
