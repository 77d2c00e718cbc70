//! The coordinator role: what a node does with a client request, and the transactions it
//! runs for them. This file is the entry and the bookkeeping (`Txn`, where answers go, the
//! timers); each kind of transaction has its own file:
//!
//! - `route.rs`: a receiving node forwards a key request to the first home replica it does not
//!   suspect, and fails over to the next one on the preference list when it times out;
//! - `write.rs`: quorum writes (Paxos rounds per key, with the first-ballot and lease
//!   shortcuts) and repair rewrites;
//! - `read.rs`: quorum reads with read repair;
//! - `scan.rs`: the `@` and `*` queries and the bulk deletes.
//!
//! Only home replicas vote; a hint on a fallback never counts toward a quorum.

use crate::message::{ClientError, ClientOp, ClientReply, ClientRequest, Invalid, Message, Unavailable};
use crate::trace::TraceKind;
use crate::types::{Micros, NodeId};

use super::read::Read;
use super::route::Route;
use super::scan::{Bulk, Scan};
use super::write::{Write, WriteValue};
use super::Node;

/// How many times a round that gets no quorum doubles its wait before sending its phase again
/// (so at most 2^3 request timeouts between sends); the operation deadline ends it anyway.
pub(super) const ROUND_WAIT_DOUBLINGS_MAX: u32 = 3;

/// Where the result of an operation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReplyTo {
    Client(u64),
    Peer {
        node: NodeId,
        txn: u64,
    },
    /// A child operation of a bulk delete.
    Parent(u64),
    /// Internal repair work; nobody waits.
    Nobody,
    /// An identity round of a transition's sync (`membership.rs`), by its txn.
    Sync(u64),
}

pub(super) enum Txn {
    Route(Route),
    Write(Write),
    Read(Read),
    Scan(Scan),
    Bulk(Bulk),
    /// A layout this node proposes for the next epoch (`membership.rs`).
    Proposal(Box<super::membership::Proposal>),
}

impl Node {
    pub(super) fn new_txn(&mut self) -> u64 {
        self.next_txn += 1;
        self.next_txn
    }

    fn invalid(&self, request: &ClientRequest) -> Option<Invalid> {
        let key_max = self.config.key_bytes_max;
        if let Some(key) = request.op.key() {
            if key.len() as u64 > key_max {
                return Some(Invalid::KeyTooLarge { bytes: key.len() as u64, max: key_max });
            }
        }
        if let ClientOp::Put { value, .. } = &request.op {
            let value_max = self.config.value_bytes_max;
            if value.len() as u64 > value_max {
                return Some(Invalid::ValueTooLarge { bytes: value.len() as u64, max: value_max });
            }
        }
        None
    }

    pub(super) fn handle_client(&mut self, handle: u64, request: ClientRequest) {
        if self.trace {
            self.emit(TraceKind::RequestReceived { handle, id: request.id, op: request.op.clone() });
        }
        if let Some(cause) = self.invalid(&request) {
            self.reply(handle, ClientReply::Error(ClientError::Invalid(cause)));
            return;
        }
        if request.op.key().is_none() {
            // `@` and `*` are answered by the receiving node itself.
            return self.coordinate(request, ReplyTo::Client(handle));
        }
        self.route(request, ReplyTo::Client(handle));
    }

    /// Starts coordinating a request here.
    pub(super) fn coordinate(&mut self, request: ClientRequest, reply_to: ReplyTo) {
        if let Some(key) = request.op.key() {
            if !self.electorate(key.as_bytes()).contains(self.id) {
                // Only a home replica coordinates a key (a stray forward goes on to one).
                return self.route(request, reply_to);
            }
        }
        self.coordinate_here(request, reply_to);
    }

    /// Coordinates here; for a key, this node is known to be one of its homes.
    pub(super) fn coordinate_here(&mut self, request: ClientRequest, reply_to: ReplyTo) {
        let txn = self.new_txn();
        let ClientRequest { id, op } = request;
        if self.trace {
            let homes = op.key().map(|key| self.electorate(key.as_bytes()).all()).unwrap_or_default();
            self.emit(TraceKind::CoordinationStarted { txn, id, op: op.clone(), homes });
        }
        match op {
            ClientOp::Get { key } => self.start_read(txn, key, id, reply_to),
            ClientOp::Put { key, value } => self.start_write(txn, key, id, WriteValue::Put(value), reply_to),
            ClientOp::Delete { key } => self.start_write(txn, key, id, WriteValue::Delete, reply_to),
            ClientOp::LocalQuery => self.local_query(reply_to),
            ClientOp::GlobalQuery => self.start_scan(txn, id, reply_to),
            ClientOp::LocalDelete => self.start_local_delete(txn, id, reply_to),
            ClientOp::GlobalDelete => self.start_global_delete(txn, id, reply_to),
        }
    }

    /// Delivers the result of an operation.
    pub(super) fn answer(&mut self, reply_to: ReplyTo, reply: ClientReply) {
        match reply_to {
            ReplyTo::Client(handle) => self.reply(handle, reply),
            ReplyTo::Peer { node, txn } => self.send(node, Message::ForwardReply { txn, reply }),
            ReplyTo::Parent(parent) => self.child_done(parent, reply),
            ReplyTo::Nobody => {}
            ReplyTo::Sync(txn) => self.sync_round_done(txn, reply),
        }
    }

    pub(super) fn finish(&mut self, txn: u64, reply_to: ReplyTo, reply: ClientReply) {
        if self.trace && reply_to != ReplyTo::Nobody {
            self.emit(TraceKind::CoordinationFinished { txn, reply: reply.clone() });
        }
        self.answer(reply_to, reply);
    }

    pub(super) fn unavailable(cause: Unavailable) -> ClientReply {
        ClientReply::Error(ClientError::Unavailable(cause))
    }

    pub(super) fn backoff(&mut self) -> Micros {
        self.now + self.rng.between(0, self.config.retry_backoff_max())
    }

    /// The pause before the `refusals`-th new ballot of one round in a row: random up to
    /// `retry_backoff_max` doubled per refusal (up to `ROUND_WAIT_DOUBLINGS_MAX + 3` times).
    /// Coordinators that keep fencing each other out (old homes rewriting the same keys while
    /// a change moves them, over disks slower than the longest pause) draw apart until one
    /// finishes.
    pub(super) fn backoff_after(&mut self, refusals: u32) -> Micros {
        let doublings = refusals.saturating_sub(1).min(ROUND_WAIT_DOUBLINGS_MAX + 3);
        self.now + self.rng.between(0, self.config.retry_backoff_max() << doublings)
    }

    // ----- Timers. -----

    pub(super) fn txn_timer(&mut self, txn: u64) {
        match self.txns.get(&txn) {
            Some(Txn::Write(_)) => self.write_timer(txn),
            Some(Txn::Read(_)) => self.read_timer(txn),
            Some(Txn::Scan(_)) => self.scan_timer(txn),
            Some(Txn::Route(_)) => self.route_timer(txn),
            Some(Txn::Proposal(_)) => self.proposal_timer(txn),
            _ => {}
        }
    }
}

/// Takes the requests whose deadline is `now` or earlier out of a combined round's `requests`,
/// and returns them with the earliest deadline of those left (`None` when none is left).
/// The homes that have not answered a round.
pub(super) fn silent(homes: &[NodeId], answered: &[NodeId]) -> Vec<NodeId> {
    homes.iter().filter(|home| !answered.contains(home)).copied().collect()
}

/// Until when a round waits after sending its phase again for the `resent`-th time: twice as
/// long each time, up to `ROUND_WAIT_DOUBLINGS_MAX` doublings, and never past its deadline
/// (when the requests whose time is up fail).
pub(super) fn resend_wait_until(now: Micros, timeout: Micros, resent: u32, deadline: Micros) -> Micros {
    (now + (timeout << resent.min(ROUND_WAIT_DOUBLINGS_MAX))).min(deadline.max(now + 1))
}

pub(super) fn take_expired<T>(
    requests: &mut Vec<T>,
    now: Micros,
    deadline: impl Fn(&T) -> Micros,
) -> (Vec<T>, Option<Micros>) {
    let (expired, live): (Vec<T>, Vec<T>) = requests.drain(..).partition(|request| deadline(request) <= now);
    *requests = live;
    (expired, requests.iter().map(deadline).min())
}
