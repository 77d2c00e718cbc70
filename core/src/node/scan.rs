//! The seed's `@` and `*`: `@` is answered from the receiving node's own store (after its
//! recovery); `*` scans every node page by page and needs, for every range, R home replicas that
//! finished the scan; it gives up only when no page has come for an operation timeout, so a
//! large store takes as many timeouts as it needs. Bulk deletes (`@` and `*` deletes) are quorum
//! deletes of each key, `bulk_parallel_max` at a time.

use std::collections::BTreeMap;

use crate::message::{ClientOp, ClientReply, ClientRequest, Message, Unavailable};
use crate::store::Record;
use crate::trace::{Phase, TraceKind};
use crate::types::{Blob, Micros, NodeId, OpId};
use crate::version::Ballot;

use super::coordinate::{ReplyTo, Txn};
use super::{Node, Timer};

pub(super) struct Scan {
    reply_to: ReplyTo,
    /// An operation timeout after the last page that arrived.
    deadline: Micros,
    merged: BTreeMap<Blob, Record>,
    /// Per node: `None` when done, else the cursor of the page asked for and when.
    cursors: Vec<Option<(Option<Blob>, Micros)>>,
}

pub(super) struct Bulk {
    reply_to: ReplyTo,
    op: OpId,
    keys: Vec<Blob>,
    in_flight: u32,
    deleted: u64,
    failed: u64,
}

impl Node {
    // ----- `@` and `*`. -----

    fn live_keys(&self) -> Vec<Blob> {
        self.store
            .iter()
            .filter(|(_, state)| state.slot.record.as_ref().is_some_and(|record| record.value.is_some()))
            .map(|(key, _)| key.clone())
            .collect()
    }

    fn local_pairs(&self) -> Vec<(Blob, Blob)> {
        self.store
            .iter()
            .filter_map(|(key, state)| {
                let value = state.slot.record.as_ref()?.value.clone()?;
                Some((key.clone(), value))
            })
            .collect()
    }

    pub(super) fn local_query(&mut self, reply_to: ReplyTo) {
        if let Some(recovery) = &mut self.recovery {
            // The seed: a recovering node copies what it missed before it serves reads.
            recovery.waiting.push((reply_to, self.now + self.config.operation_timeout()));
        } else {
            let pairs = self.local_pairs();
            self.answer(reply_to, ClientReply::Pairs(pairs));
        }
    }

    pub(super) fn answer_local_queries(&mut self, waiting: Vec<ReplyTo>) {
        let pairs = self.local_pairs();
        for reply_to in waiting {
            self.answer(reply_to, ClientReply::Pairs(pairs.clone()));
        }
    }

    pub(super) fn start_scan(&mut self, txn: u64, op: OpId, reply_to: ReplyTo) {
        let now = self.now;
        let nodes = self.ring.node_count();
        // Nodes that left hold nothing that counts: they are not asked.
        let cursors =
            (0..nodes as u32).map(|node| self.layout.takes_part(NodeId(node)).then_some((None, now))).collect();
        let scan = Scan { reply_to, deadline: now + self.config.operation_timeout(), merged: BTreeMap::new(), cursors };
        self.txns.insert(txn, Txn::Scan(scan));
        self.emit(TraceKind::PhaseStarted {
            txn,
            phase: Phase::Scan,
            ballot: Ballot::ZERO,
            needed: self.config.read_quorum,
            ops: vec![op],
        });
        let asked: Vec<NodeId> = (0..nodes as u32).map(NodeId).filter(|node| self.layout.takes_part(*node)).collect();
        for node in asked {
            self.send(node, Message::ScanRequest { txn, after: None });
        }
        self.schedule(now + self.config.request_timeout(), Timer::Txn(txn));
    }

    pub(super) fn on_scan_request(&mut self, from: NodeId, txn: u64, after: Option<Blob>) {
        let (records, next) = self.page(after, self.config.scan_records_max, |_| true);
        self.send(from, Message::ScanReply { txn, records, next });
    }

    /// One page of records after `after` that pass `keep`, at most `max` of them and within
    /// `batch_bytes_max`, and the cursor of the next page.
    pub(super) fn page(
        &self,
        after: Option<Blob>,
        max: u32,
        keep: impl Fn(&super::KeyState) -> bool,
    ) -> (Vec<(Blob, Record)>, Option<Blob>) {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut budget = super::ByteBudget::new(&self.config);
        let mut records = Vec::new();
        for (key, state) in self.store.range((lower, Bound::Unbounded)) {
            let Some(record) = &state.slot.record else { continue };
            if !keep(state) {
                continue;
            }
            if records.len() == max as usize || !budget.take_entry(key, record) {
                let next = records.last().map(|(key, _): &(Blob, Record)| key.clone());
                return (records, next);
            }
            records.push((key.clone(), record.clone()));
        }
        (records, None)
    }

    pub(super) fn on_scan_reply(&mut self, from: NodeId, txn: u64, records: Vec<(Blob, Record)>, next: Option<Blob>) {
        let now = self.now;
        let Some(Txn::Scan(scan)) = self.txns.get_mut(&txn) else { return };
        // Only the page asked for counts (duplicates and stale pages are ignored).
        let expected = match &scan.cursors[from.index()] {
            Some((cursor, _)) => cursor.clone(),
            None => return,
        };
        let first = records.first().map(|(key, _)| key.clone());
        if let (Some(expected), Some(first)) = (&expected, &first) {
            if first <= expected {
                return;
            }
        }
        // A scan of a large store takes many pages: it gives up only when no page has come
        // for a whole operation timeout, not after one.
        scan.deadline = now + self.config.operation_timeout();
        for (key, record) in records {
            let newer = scan.merged.get(&key).is_none_or(|kept| record.ballot > kept.ballot);
            if newer {
                scan.merged.insert(key, record);
            }
        }
        match next {
            Some(cursor) => {
                scan.cursors[from.index()] = Some((Some(cursor.clone()), now));
                self.send(from, Message::ScanRequest { txn, after: Some(cursor) });
            }
            None => {
                scan.cursors[from.index()] = None;
                if scan.cursors.iter().all(Option::is_none) {
                    self.scan_done(txn);
                }
            }
        }
    }

    /// Every home set (both of a moving arc) has R of its nodes fully scanned: each key's newest
    /// completed write is then among the merged records.
    fn scan_covered(&self, scan: &Scan) -> bool {
        let needed = self.config.read_quorum as usize;
        let done = |home: &&NodeId| scan.cursors.get(home.index()).is_some_and(Option::is_none);
        self.layout.home_sets(&self.ring).iter().all(|homes| homes.iter().filter(done).count() >= needed)
    }

    pub(super) fn scan_timer(&mut self, txn: u64) {
        let now = self.now;
        let Some(Txn::Scan(scan)) = self.txns.get(&txn) else { return };
        let covered = self.scan_covered(scan);
        let past_deadline = now >= scan.deadline;
        let silent: Vec<(NodeId, Option<Blob>)> = scan
            .cursors
            .iter()
            .enumerate()
            .filter_map(|(node, cursor)| {
                let (after, asked) = cursor.as_ref()?;
                (now >= asked + self.config.request_timeout()).then(|| (NodeId(node as u32), after.clone()))
            })
            .collect();
        if covered && silent.iter().all(|(node, _)| self.suspected[node.index()] || past_deadline) {
            return self.scan_done(txn);
        }
        if past_deadline {
            let Some(Txn::Scan(scan)) = self.txns.remove(&txn) else { return };
            return self.finish(txn, scan.reply_to, Self::unavailable(Unavailable::ScanIncomplete));
        }
        for (node, after) in silent {
            self.suspect(node);
            if let Some(Txn::Scan(scan)) = self.txns.get_mut(&txn) {
                scan.cursors[node.index()] = Some((after.clone(), now));
            }
            self.send(node, Message::ScanRequest { txn, after });
        }
        self.schedule(now + self.config.request_timeout(), Timer::Txn(txn));
    }

    fn scan_done(&mut self, txn: u64) {
        let Some(Txn::Scan(scan)) = self.txns.remove(&txn) else { return };
        let pairs: Vec<(Blob, Blob)> =
            scan.merged.into_iter().filter_map(|(key, record)| Some((key, record.value?))).collect();
        match scan.reply_to {
            ReplyTo::Parent(parent) => {
                let keys = pairs.into_iter().map(|(key, _)| key).collect();
                if let Some(Txn::Bulk(bulk)) = self.txns.get_mut(&parent) {
                    bulk.in_flight -= 1;
                    bulk.keys = keys;
                    self.bulk_continue(parent);
                }
            }
            reply_to => self.finish(txn, reply_to, ClientReply::Pairs(pairs)),
        }
    }

    // ----- Bulk deletes (`@` and `*`): quorum deletes of many keys. -----

    /// The seed's `@` delete: a quorum delete of every live key this node stores.
    pub(super) fn start_local_delete(&mut self, txn: u64, op: OpId, reply_to: ReplyTo) {
        let keys = self.live_keys();
        self.start_bulk(txn, op, keys, reply_to);
    }

    /// The seed's `*` delete: a `*` scan, then a quorum delete of every key it found.
    pub(super) fn start_global_delete(&mut self, txn: u64, op: OpId, reply_to: ReplyTo) {
        let bulk = Bulk { reply_to, op, keys: Vec::new(), in_flight: 1, deleted: 0, failed: 0 };
        self.txns.insert(txn, Txn::Bulk(bulk));
        let scan = self.new_txn();
        self.start_scan(scan, op, ReplyTo::Parent(txn));
    }

    fn start_bulk(&mut self, txn: u64, op: OpId, mut keys: Vec<Blob>, reply_to: ReplyTo) {
        keys.reverse();
        self.txns.insert(txn, Txn::Bulk(Bulk { reply_to, op, keys, in_flight: 0, deleted: 0, failed: 0 }));
        self.bulk_continue(txn);
    }

    fn bulk_continue(&mut self, txn: u64) {
        let parallel = self.config.bulk_parallel_max;
        loop {
            let Some(Txn::Bulk(bulk)) = self.txns.get_mut(&txn) else { return };
            if bulk.in_flight >= parallel {
                return;
            }
            let Some(key) = bulk.keys.pop() else {
                if bulk.in_flight == 0 {
                    let Some(Txn::Bulk(bulk)) = self.txns.remove(&txn) else { return };
                    let reply = if bulk.failed == 0 {
                        ClientReply::Deleted(bulk.deleted)
                    } else {
                        Self::unavailable(Unavailable::BulkDeleteIncomplete {
                            failed: bulk.failed,
                            deleted: bulk.deleted,
                        })
                    };
                    self.finish(txn, bulk.reply_to, reply);
                }
                return;
            };
            bulk.in_flight += 1;
            let request = ClientRequest { id: bulk.op, op: ClientOp::Delete { key } };
            self.route(request, ReplyTo::Parent(txn));
        }
    }

    pub(super) fn child_done(&mut self, parent: u64, reply: ClientReply) {
        let Some(Txn::Bulk(bulk)) = self.txns.get_mut(&parent) else { return };
        bulk.in_flight -= 1;
        match reply {
            ClientReply::Deleted(count) => bulk.deleted += count,
            ClientReply::Pairs(_) => {}
            _ => bulk.failed += 1,
        }
        self.bulk_continue(parent);
    }
}
