//! The operation in focus: which messages serve one client request, and its quorum votes.
//!
//! Trace events are taken in as the screen reaches them. A request is followed by its `OpId`
//! from its `RequestReceived` to its `RequestAnswered`, through the transactions the trace names
//! for it: the route transactions of the receiving node (`Forwarded` carries the `OpId`; the
//! forward, its acknowledgement and the forwarded reply carry the transaction), and the rounds
//! that serve it (`PhaseStarted` lists the `OpId`s of every request a round carries: a write
//! round carries all the writes queued behind the round before it on its key). Nothing is
//! guessed from timing or keys.
//!
//! The votes are the `VoteCounted` / `QuorumReached` events of the latest round serving the
//! request, frozen when each phase reaches its quorum (a late vote after it does not change the
//! count). This module only reads trace events and is tested natively.

use std::collections::{BTreeMap, VecDeque};

use dynamo_core::message::{ClientOp, ClientReply, MessageKind};
use dynamo_core::trace::{Phase, TraceEvent, TraceKind};
use dynamo_core::types::{NodeId, OpId};

use crate::palette::is_reply;
use crate::text::{op_text, reply_text};

/// Rounds remembered (the newest).
const ROUNDS_MAX: usize = 4096;
/// Requests remembered (the newest).
const REQUESTS_MAX: usize = 4096;

/// One phase of a round as counted so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseVotes {
    pub phase: Phase,
    pub votes: u32,
    pub needed: u32,
    pub reached: bool,
}

/// A transaction at one node.
pub type TxnAt = (NodeId, u64);

/// One request as far as the trace has shown it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub node: NodeId,
    pub op: ClientOp,
    /// Route transactions (at the receiving node) and coordinator rounds serving it.
    pub txns: Vec<TxnAt>,
    /// The latest round serving it, whose votes are shown.
    round: Option<TxnAt>,
    pub answer: Option<ClientReply>,
}

impl Operation {
    /// Whether a message belongs to this operation: it carries one of its transactions, at the
    /// node that owns it (the sender of a request, the receiver of a reply).
    pub fn carries(&self, from: NodeId, to: NodeId, kind: MessageKind, txn: Option<u64>) -> bool {
        let Some(txn) = txn else { return false };
        let owner = if is_reply(kind) { to } else { from };
        self.txns.contains(&(owner, txn))
    }
}

#[derive(Clone, Debug, Default)]
pub struct Operations {
    by_op: BTreeMap<OpId, Operation>,
    order: VecDeque<OpId>,
    /// (node, handle) -> request, until answered.
    handles: BTreeMap<(NodeId, u64), OpId>,
    /// Every round's votes, by transaction.
    rounds: BTreeMap<TxnAt, Vec<PhaseVotes>>,
    round_order: VecDeque<TxnAt>,
}

impl Operations {
    pub fn get(&self, op: OpId) -> Option<&Operation> {
        self.by_op.get(&op)
    }

    /// The phases counted for a request's round.
    pub fn votes(&self, op: OpId) -> &[PhaseVotes] {
        self.get(op)
            .and_then(|operation| operation.round)
            .and_then(|round| self.rounds.get(&round))
            .map_or(&[], Vec::as_slice)
    }

    /// One line for people: "put apple · prepare 2/2 · accept 2/2 · written".
    pub fn text(&self, op: OpId) -> Option<String> {
        let operation = self.get(op)?;
        let mut text = op_text(&operation.op);
        for phase in self.votes(op) {
            text.push_str(&format!(" · {} {}/{}", phase_label(phase.phase), phase.votes, phase.needed));
        }
        match &operation.answer {
            Some(reply) => text.push_str(&format!(" · {}", reply_text(reply))),
            None => text.push_str(" · waiting"),
        }
        Some(text)
    }

    pub fn observe(&mut self, event: &TraceEvent) {
        let node = event.node;
        match &event.kind {
            TraceKind::RequestReceived { handle, id, op } => {
                let entry = self.by_op.entry(*id).or_insert_with(|| Operation {
                    node,
                    op: op.clone(),
                    txns: Vec::new(),
                    round: None,
                    answer: None,
                });
                entry.node = node;
                if !self.order.contains(id) {
                    self.order.push_back(*id);
                    if self.order.len() > REQUESTS_MAX {
                        if let Some(old) = self.order.pop_front() {
                            self.by_op.remove(&old);
                        }
                    }
                }
                self.handles.insert((node, *handle), *id);
            }
            TraceKind::Forwarded { txn, id, .. } | TraceKind::CoordinationStarted { txn, id, .. } => {
                if let Some(operation) = self.by_op.get_mut(id) {
                    push_new(&mut operation.txns, (node, *txn));
                }
            }
            TraceKind::PhaseStarted { txn, phase, needed, ops, .. } => {
                let at = (node, *txn);
                if !self.rounds.contains_key(&at) {
                    self.round_order.push_back(at);
                    if self.round_order.len() > ROUNDS_MAX {
                        if let Some(old) = self.round_order.pop_front() {
                            self.rounds.remove(&old);
                        }
                    }
                }
                for id in ops {
                    if let Some(operation) = self.by_op.get_mut(id) {
                        operation.round = Some(at);
                        push_new(&mut operation.txns, at);
                    }
                }
                let phases = self.rounds.entry(at).or_default();
                let fresh = PhaseVotes { phase: *phase, votes: 0, needed: *needed, reached: false };
                match phases.last_mut() {
                    // A retried phase (a new ballot) counts again.
                    Some(last) if last.phase == *phase => *last = fresh,
                    _ => phases.push(fresh),
                }
            }
            TraceKind::VoteCounted { txn, phase, votes, needed, .. } => {
                if let Some(last) = self.phase_mut((node, *txn), *phase) {
                    if !last.reached {
                        last.votes = *votes;
                        last.needed = *needed;
                    }
                }
            }
            TraceKind::QuorumReached { txn, phase } => {
                if let Some(last) = self.phase_mut((node, *txn), *phase) {
                    last.reached = true;
                    last.votes = last.votes.max(last.needed);
                }
            }
            TraceKind::RequestAnswered { handle, reply } => {
                if let Some(id) = self.handles.remove(&(node, *handle)) {
                    if let Some(operation) = self.by_op.get_mut(&id) {
                        operation.answer = Some(reply.clone());
                    }
                }
            }
            _ => {}
        }
    }

    fn phase_mut(&mut self, at: TxnAt, phase: Phase) -> Option<&mut PhaseVotes> {
        self.rounds.get_mut(&at)?.iter_mut().rev().find(|votes| votes.phase == phase)
    }
}

fn push_new(txns: &mut Vec<TxnAt>, at: TxnAt) {
    if !txns.contains(&at) {
        txns.push(at);
    }
}

fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::Prepare => "prepare",
        Phase::Accept => "accept",
        Phase::Read => "read",
        Phase::ReadRepair => "repair",
        Phase::Scan => "scan",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_core::types::{Blob, ClientId};
    use dynamo_core::version::Ballot;

    fn ev(node: u32, kind: TraceKind) -> TraceEvent {
        TraceEvent { at: 0, node: NodeId(node), kind }
    }

    fn put(key: &str) -> ClientOp {
        ClientOp::Put { key: Blob::from(key), value: Blob::from("v") }
    }

    fn id(client: u64) -> OpId {
        OpId { client: ClientId(client), seq: 1 }
    }

    fn phase(node: u32, txn: u64, phase: Phase, needed: u32, ops: &[OpId]) -> TraceEvent {
        ev(node, TraceKind::PhaseStarted { txn, phase, ballot: Ballot::ZERO, needed, ops: ops.to_vec() })
    }

    fn vote(node: u32, txn: u64, phase: Phase, votes: u32) -> TraceEvent {
        ev(node, TraceKind::VoteCounted { txn, phase, from: NodeId(0), granted: true, votes, needed: 2 })
    }

    #[test]
    fn a_forwarded_put_counts_its_votes_until_the_answer() {
        let mut ops = Operations::default();
        let events = [
            ev(0, TraceKind::RequestReceived { handle: 7, id: id(1), op: put("apple") }),
            ev(0, TraceKind::Forwarded { txn: 3, id: id(1), to: NodeId(1), attempt: 1 }),
            ev(1, TraceKind::CoordinationStarted { txn: 9, id: id(1), op: put("apple"), homes: vec![] }),
            phase(1, 9, Phase::Prepare, 2, &[id(1)]),
            vote(1, 9, Phase::Prepare, 1),
            vote(1, 9, Phase::Prepare, 2),
            ev(1, TraceKind::QuorumReached { txn: 9, phase: Phase::Prepare }),
            phase(1, 9, Phase::Accept, 2, &[id(1)]),
            vote(1, 9, Phase::Accept, 1),
        ];
        for event in &events {
            ops.observe(event);
        }
        assert_eq!(
            ops.text(id(1)).unwrap(),
            format!("{} · prepare 2/2 · accept 1/2 · waiting", op_text(&put("apple")))
        );
        let op = ops.get(id(1)).unwrap();
        // The forward (sent by the receiving node) and its reply (received there) are its own.
        assert!(op.carries(NodeId(0), NodeId(1), MessageKind::Forward, Some(3)));
        assert!(op.carries(NodeId(1), NodeId(0), MessageKind::ForwardReply, Some(3)));
        // The coordinator's prepare and the promise coming back.
        assert!(op.carries(NodeId(1), NodeId(2), MessageKind::Prepare, Some(9)));
        assert!(op.carries(NodeId(2), NodeId(1), MessageKind::Promise, Some(9)));
        // The same number at another node is another transaction.
        assert!(!op.carries(NodeId(2), NodeId(1), MessageKind::Prepare, Some(9)));
        assert!(!op.carries(NodeId(1), NodeId(2), MessageKind::Prepare, None));
        ops.observe(&vote(1, 9, Phase::Accept, 2));
        ops.observe(&ev(1, TraceKind::QuorumReached { txn: 9, phase: Phase::Accept }));
        // A late vote after the quorum does not change the count.
        ops.observe(&vote(1, 9, Phase::Accept, 3));
        ops.observe(&ev(0, TraceKind::RequestAnswered { handle: 7, reply: ClientReply::Written }));
        let text = ops.text(id(1)).unwrap();
        assert!(text.ends_with("· prepare 2/2 · accept 2/2 · ok"), "{text}");
    }

    #[test]
    fn a_queued_write_is_served_by_the_round_that_names_it() {
        let mut ops = Operations::default();
        let events = [
            // Request 1 coordinated at node 1 (no forward), round 4 starts at once.
            ev(1, TraceKind::RequestReceived { handle: 1, id: id(1), op: put("k") }),
            ev(1, TraceKind::CoordinationStarted { txn: 4, id: id(1), op: put("k"), homes: vec![] }),
            phase(1, 4, Phase::Prepare, 2, &[id(1)]),
            // Requests 2 and 3 on the same key queue behind it.
            ev(1, TraceKind::RequestReceived { handle: 2, id: id(2), op: put("k") }),
            ev(1, TraceKind::CoordinationStarted { txn: 5, id: id(2), op: put("k"), homes: vec![] }),
            ev(1, TraceKind::RequestReceived { handle: 3, id: id(3), op: put("k") }),
            ev(1, TraceKind::CoordinationStarted { txn: 6, id: id(3), op: put("k"), homes: vec![] }),
            // Round 4 goes on: its accepts are not request 2's.
            phase(1, 4, Phase::Accept, 2, &[id(1)]),
            // A round on another key, started in between, is nobody's here.
            phase(1, 8, Phase::Prepare, 2, &[id(9)]),
            // The next round on k carries both queued writes.
            phase(1, 7, Phase::Accept, 2, &[id(2), id(3)]),
            vote(1, 7, Phase::Accept, 1),
        ];
        for event in &events {
            ops.observe(event);
        }
        for queued in [id(2), id(3)] {
            let operation = ops.get(queued).unwrap();
            assert!(operation.carries(NodeId(1), NodeId(2), MessageKind::Accept, Some(7)));
            assert!(!operation.carries(NodeId(1), NodeId(2), MessageKind::Accept, Some(4)));
            assert!(!operation.carries(NodeId(1), NodeId(2), MessageKind::Prepare, Some(8)));
            assert!(ops.text(queued).unwrap().ends_with(" · accept 1/2 · waiting"));
        }
        assert!(ops.text(id(1)).unwrap().contains("prepare 0/2 · accept 0/2"));
        assert_eq!(ops.text(id(4)), None);
    }
}
