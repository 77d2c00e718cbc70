//! The operation in focus: which messages serve one client request, and its quorum votes.
//!
//! Trace events are taken in as the screen reaches them. A request is followed from its
//! `RequestReceived` to its `RequestAnswered`:
//!
//! - a `Forwarded` right after the request at the same node names its route transaction there
//!   (the forward, its acknowledgement and the forwarded reply carry it);
//! - `CoordinationStarted` with the request's `OpId` names the coordinator's transaction; when
//!   that transaction starts a phase at once, it is the round that serves the request;
//! - otherwise the request was queued behind a round already running on its key, and is served
//!   by the next round that coordinator starts on that key (a new transaction, which may serve
//!   several queued requests at once): the first new round whose first message names the key.
//!
//! The votes are the `VoteCounted` / `QuorumReached` events of the round serving the request,
//! frozen when each phase reaches its quorum (a late vote after it does not change the count).
//! This module only reads trace events and is tested natively.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use dynamo_core::message::{ClientOp, ClientReply, MessageKind};
use dynamo_core::trace::{Phase, TraceEvent, TraceKind};
use dynamo_core::types::{Blob, NodeId};

use crate::palette::is_reply;
use crate::session::{op_text, reply_text};

/// Rounds remembered for requests that have not claimed them yet.
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
    /// The coordinator's own transaction, while it waits for a round (queued on its key).
    waiting: Option<TxnAt>,
    /// The round serving it, whose votes are shown.
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
    /// By client (an `OpId`'s client; the page gives every request its own client).
    by_client: BTreeMap<u64, Operation>,
    order: VecDeque<u64>,
    /// (node, handle) -> client, until answered.
    handles: BTreeMap<(NodeId, u64), u64>,
    /// The request the last event at a node received (a `Forwarded` right after it is its).
    just_received: Option<(NodeId, u64)>,
    /// Coordinator transactions of requests (CoordinationStarted), by transaction.
    started: BTreeMap<TxnAt, u64>,
    /// Every round's votes, by transaction.
    rounds: BTreeMap<TxnAt, Vec<PhaseVotes>>,
    round_order: VecDeque<TxnAt>,
    /// Rounds started by no request (queued requests' rounds), until their first keyed message.
    unclaimed: BTreeSet<TxnAt>,
}

impl Operations {
    pub fn get(&self, client: u64) -> Option<&Operation> {
        self.by_client.get(&client)
    }

    /// The phases counted for a request's round.
    pub fn votes(&self, client: u64) -> &[PhaseVotes] {
        self.get(client).and_then(|op| op.round).and_then(|round| self.rounds.get(&round)).map_or(&[], Vec::as_slice)
    }

    /// One line for people: "put apple · prepare 2/2 · accept 2/2 · written".
    pub fn text(&self, client: u64) -> Option<String> {
        let operation = self.get(client)?;
        let mut text = op_text(&operation.op);
        for phase in self.votes(client) {
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
        let received = self.just_received.take();
        match &event.kind {
            TraceKind::RequestReceived { handle, id, op } => {
                let client = id.client.0;
                let entry = self.by_client.entry(client).or_insert_with(|| Operation {
                    node,
                    op: op.clone(),
                    txns: Vec::new(),
                    waiting: None,
                    round: None,
                    answer: None,
                });
                entry.node = node;
                if !self.order.contains(&client) {
                    self.order.push_back(client);
                    if self.order.len() > REQUESTS_MAX {
                        if let Some(old) = self.order.pop_front() {
                            self.by_client.remove(&old);
                        }
                    }
                }
                self.handles.insert((node, *handle), client);
                self.just_received = Some((node, client));
            }
            TraceKind::Forwarded { txn, .. } => {
                if let Some((at, client)) = received.filter(|(at, _)| *at == node) {
                    if let Some(operation) = self.by_client.get_mut(&client) {
                        push_new(&mut operation.txns, (node, *txn));
                    }
                    self.just_received = Some((at, client));
                }
            }
            TraceKind::CoordinationStarted { txn, id, .. } => {
                if let Some(operation) = self.by_client.get_mut(&id.client.0) {
                    push_new(&mut operation.txns, (node, *txn));
                    operation.waiting = Some((node, *txn));
                    self.started.insert((node, *txn), id.client.0);
                }
            }
            TraceKind::PhaseStarted { txn, phase, needed, .. } => {
                let at = (node, *txn);
                if !self.rounds.contains_key(&at) {
                    self.round_order.push_back(at);
                    if self.round_order.len() > ROUNDS_MAX {
                        if let Some(old) = self.round_order.pop_front() {
                            self.rounds.remove(&old);
                            self.unclaimed.remove(&old);
                            self.started.remove(&old);
                        }
                    }
                    match self.started.get(&at).and_then(|client| self.by_client.get_mut(client)) {
                        Some(operation) => {
                            operation.waiting = None;
                            operation.round = Some(at);
                        }
                        None => {
                            self.unclaimed.insert(at);
                        }
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
            TraceKind::MessageSent { txn: Some(txn), key: Some(key), kind, .. } if !is_reply(*kind) => {
                let at = (node, *txn);
                if self.unclaimed.remove(&at) {
                    self.claim(at, key, *kind);
                }
            }
            TraceKind::RequestAnswered { handle, reply } => {
                if let Some(client) = self.handles.remove(&(node, *handle)) {
                    if let Some(operation) = self.by_client.get_mut(&client) {
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

    /// A new round's first message names its key: it serves the requests queued on that key
    /// at that coordinator (reads for a read round, writes for a write round).
    fn claim(&mut self, at: TxnAt, key: &Blob, kind: MessageKind) {
        let read = matches!(kind, MessageKind::Read);
        for operation in self.by_client.values_mut() {
            let Some(waiting) = operation.waiting else { continue };
            let (op_key, op_read) = match &operation.op {
                ClientOp::Get { key } => (key, true),
                ClientOp::Put { key, .. } | ClientOp::Delete { key } => (key, false),
                _ => continue,
            };
            if waiting.0 == at.0 && op_key == key && op_read == read && operation.answer.is_none() {
                operation.waiting = None;
                operation.round = Some(at);
                push_new(&mut operation.txns, at);
            }
        }
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
    use dynamo_core::types::{ClientId, OpId};
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

    fn phase(node: u32, txn: u64, phase: Phase, needed: u32) -> TraceEvent {
        ev(node, TraceKind::PhaseStarted { txn, phase, ballot: Ballot::ZERO, needed })
    }

    fn vote(node: u32, txn: u64, phase: Phase, votes: u32) -> TraceEvent {
        ev(node, TraceKind::VoteCounted { txn, phase, from: NodeId(0), granted: true, votes, needed: 2 })
    }

    fn sent(node: u32, txn: u64, kind: MessageKind, key: &str) -> TraceEvent {
        ev(node, TraceKind::MessageSent { id: 1, to: NodeId(2), kind, txn: Some(txn), key: Some(Blob::from(key)) })
    }

    #[test]
    fn a_forwarded_put_counts_its_votes_until_the_answer() {
        let mut ops = Operations::default();
        let events = [
            ev(0, TraceKind::RequestReceived { handle: 7, id: id(1), op: put("apple") }),
            ev(0, TraceKind::Forwarded { txn: 3, to: NodeId(1), attempt: 1 }),
            ev(1, TraceKind::CoordinationStarted { txn: 9, id: id(1), op: put("apple"), homes: vec![] }),
            phase(1, 9, Phase::Prepare, 2),
            vote(1, 9, Phase::Prepare, 1),
            vote(1, 9, Phase::Prepare, 2),
            ev(1, TraceKind::QuorumReached { txn: 9, phase: Phase::Prepare }),
            phase(1, 9, Phase::Accept, 2),
            vote(1, 9, Phase::Accept, 1),
        ];
        for event in &events {
            ops.observe(event);
        }
        assert_eq!(ops.text(1).unwrap(), format!("{} · prepare 2/2 · accept 1/2 · waiting", op_text(&put("apple"))));
        let op = ops.get(1).unwrap();
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
        let text = ops.text(1).unwrap();
        assert!(text.ends_with("· prepare 2/2 · accept 2/2 · ok"), "{text}");
    }

    #[test]
    fn a_queued_write_is_served_by_the_next_round_on_its_key() {
        let mut ops = Operations::default();
        let events = [
            // Request 1 coordinated at node 1 (no forward), round 4 starts at once.
            ev(1, TraceKind::RequestReceived { handle: 1, id: id(1), op: put("k") }),
            ev(1, TraceKind::CoordinationStarted { txn: 4, id: id(1), op: put("k"), homes: vec![] }),
            phase(1, 4, Phase::Prepare, 2),
            sent(1, 4, MessageKind::Prepare, "k"),
            // Request 2 on the same key queues behind it.
            ev(1, TraceKind::RequestReceived { handle: 2, id: id(2), op: put("k") }),
            ev(1, TraceKind::CoordinationStarted { txn: 5, id: id(2), op: put("k"), homes: vec![] }),
            // Round 4 goes on: its accepts are not request 2's.
            phase(1, 4, Phase::Accept, 2),
            sent(1, 4, MessageKind::Accept, "k"),
            // A round on another key does not claim it.
            phase(1, 6, Phase::Prepare, 2),
            sent(1, 6, MessageKind::Prepare, "other"),
            // The next round on k serves request 2.
            phase(1, 7, Phase::Accept, 2),
            sent(1, 7, MessageKind::Accept, "k"),
            vote(1, 7, Phase::Accept, 1),
        ];
        for event in &events {
            ops.observe(event);
        }
        let second = ops.get(2).unwrap();
        assert!(second.carries(NodeId(1), NodeId(2), MessageKind::Accept, Some(7)));
        assert!(!second.carries(NodeId(1), NodeId(2), MessageKind::Accept, Some(4)));
        assert!(!second.carries(NodeId(1), NodeId(2), MessageKind::Prepare, Some(6)));
        assert!(ops.text(2).unwrap().ends_with(" · accept 1/2 · waiting"));
        assert!(ops.text(1).unwrap().contains("prepare 0/2 · accept 0/2"));
        assert_eq!(ops.text(3), None);
    }
}
