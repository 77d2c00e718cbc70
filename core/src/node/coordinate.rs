//! The coordinator role: routing requests and running quorum operations.
//!
//! A receiving node forwards a key request to the first home replica it does not suspect and
//! fails over to the next one on the preference list when the coordinator times out.
//!
//! Writes run two phases per round, like single-decree Paxos: *prepare* a fresh ballot on R
//! home replicas (they promise to refuse lower ballots and report their records), then
//! *accept* the new record on W. The prepare fences out every older, unfinished write attempt,
//! so an abandoned attempt can never surface above a later write, and the newest record seen
//! in phase 1 (the register's current state; older records may be fenced-out attempts) tells
//! whether this request was already applied (a retry), so a request takes effect at most once. Reads ask R replicas, return the highest ballot and first write it back until
//! W replicas hold it (read repair), so no later read can see an older value.
//!
//! A key's first write by its first home starts at phase 2 as well: ballot `Ballot::first(home)`
//! (round 1) is reserved to that home, every other ballot has round 2 or more, so nothing can
//! have been accepted below it. See `may_write_first_ballot`.
//!
//! Every accept also prepares the coordinator's next ballot for the key. With R promises (and
//! the records those replicas report, never anything else) the next write there skips phase 1;
//! a refused accept falls back to a full round. Only what a promising quorum reported may be
//! built on: that is the Paxos rule that keeps the shortcut safe.
//!
//! Only home replicas vote; a hint on a fallback never counts toward a quorum.

use std::collections::BTreeMap;

use crate::message::{
    AcceptPurpose, ClientError, ClientOp, ClientReply, ClientRequest, Invalid, Message, NextPromise, Refusal,
    Unavailable,
};
use crate::store::{record_writer, Record, Writer};
use crate::trace::{Phase, TraceKind};
use crate::types::{Blob, ClientId, Micros, NodeId, OpId};
use crate::version::{Ballot, VectorClock};

use super::{Node, Timer};

/// How many times a round that gets no quorum doubles its wait before sending its phase again
/// (so at most 2^3 request timeouts between sends); the operation deadline ends it anyway.
const ROUND_WAIT_DOUBLINGS_MAX: u32 = 3;

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
}

pub(super) enum Txn {
    Route(Route),
    Write(Write),
    Read(Read),
    Scan(Scan),
    Bulk(Bulk),
}

/// A request this node hands to a coordinator: always a home replica of the key, whose own
/// durable promise keeps its ballots unique across its restarts.
pub(super) struct Route {
    reply_to: ReplyTo,
    request: ClientRequest,
    candidates: Vec<NodeId>,
    attempt: u32,
    target: NodeId,
    until: Micros,
    acknowledged: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum WriteValue {
    Put(Blob),
    Delete,
    /// Rewrite the newest record under a fresh ballot (a repair; no new version).
    Rewrite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Prepare,
    Accept,
    Backoff,
    /// Answered; waiting to leave hints for home replicas that did not acknowledge.
    Linger,
    Read,
    Repair,
}

/// One client write riding in a write round.
pub(super) struct WriteRequest {
    op: OpId,
    value: WriteValue,
    reply_to: ReplyTo,
    /// When this request gives up.
    deadline: Micros,
    /// The answer, decided at the round's accept phase and sent once W replicas acknowledge.
    reply: ClientReply,
}

/// A ballot for one key that R home replicas promised on this node's last accept there, with
/// the records they held: the next write on the key starts at phase 2 with it.
pub(super) struct Lease {
    ballot: Ballot,
    records: Vec<Record>,
}

/// A write round on one key. A coordinator runs at most one per key; writes arriving meanwhile
/// queue and ride together in the next round (they are all pending at once, so placing them
/// back to back at that round's accept is a valid linearization; the last one's value wins).
pub(super) struct Write {
    key: Blob,
    requests: Vec<WriteRequest>,
    homes: Vec<NodeId>,
    deadline: Micros,
    stage: Stage,
    ballot: Ballot,
    round_until: Micros,
    /// How many times this round's phase went out again to the homes that had not answered.
    resent: u32,
    /// Replicas that answered this round, and their records (phase 1).
    answered: Vec<NodeId>,
    records: Vec<Record>,
    refused: u32,
    record: Option<Record>,
    acked: Vec<NodeId>,
    /// The ballot prepared along with this round's accept, and who granted it with what.
    next: Ballot,
    next_granted: Vec<NodeId>,
    next_records: Vec<Record>,
    next_holds_accepted: bool,
}

impl Write {
    /// What the homes get in the round's current phase: the prepare of phase 1, or the accept
    /// of phase 2 (with the prepare of the next ballot). Nothing in backoff or after the answer.
    fn phase_message(&self, txn: u64) -> Option<Message> {
        let key = self.key.clone();
        match (self.stage, &self.record) {
            (Stage::Prepare, _) => Some(Message::Prepare { txn, key, ballot: self.ballot }),
            (Stage::Accept, Some(record)) => Some(Message::Accept {
                txn,
                key,
                record: record.clone(),
                purpose: AcceptPurpose::Write,
                next: Some(self.next),
            }),
            _ => None,
        }
    }
}

/// A read round on one key. Like writes, a coordinator runs at most one per key: reads that
/// arrive meanwhile wait and share the next round, which starts after each of them arrived and
/// ends before any is answered, so its result is a valid answer for every one of them.
pub(super) struct Read {
    key: Blob,
    homes: Vec<NodeId>,
    requests: Vec<ReadRequest>,
    /// The earliest deadline of `requests`.
    deadline: Micros,
    stage: Stage,
    round_until: Micros,
    /// As `Write::resent`.
    resent: u32,
    answered: Vec<NodeId>,
    refused: u32,
    best: Option<Record>,
    holders: Vec<NodeId>,
}

/// A read waiting for its answer.
pub(super) struct ReadRequest {
    op: OpId,
    reply_to: ReplyTo,
    deadline: Micros,
}

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
    fn new_txn(&mut self) -> u64 {
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

    /// Hands a single-key request to a coordinator among its home replicas (this node, if it
    /// is one and not suspected first in line).
    fn route(&mut self, request: ClientRequest, reply_to: ReplyTo) {
        let key = request.op.key().expect("only single-key requests are routed");
        let mut candidates = self.ring.preference(key.as_bytes());
        candidates.truncate(self.config.replicas as usize);
        let txn = self.new_txn();
        let mut route =
            Route { reply_to, request, candidates, attempt: 0, target: self.id, until: 0, acknowledged: false };
        if self.route_next(txn, &mut route) {
            self.txns.insert(txn, Txn::Route(route));
        }
    }

    /// Sends the request to the next coordinator; false when this node coordinates it.
    fn route_next(&mut self, txn: u64, route: &mut Route) -> bool {
        let homes = &route.candidates;
        let start = route.attempt as usize;
        // The first home this node does not suspect, from the attempt's position on (wrapping);
        // if every one is suspected, simply the next in order (suspicion is advice, not a
        // verdict). Never a fallback node: see `Route`.
        let pick = (0..homes.len())
            .map(|offset| homes[(start + offset) % homes.len()])
            .find(|node| !self.suspected[node.index()])
            .unwrap_or(homes[start % homes.len()]);
        route.attempt += 1;
        route.target = pick;
        if pick == self.id {
            // Picked among the key's homes: no need to check again.
            self.coordinate_here(route.request.clone(), route.reply_to);
            return false;
        }
        // A live coordinator acknowledges at once; silence for one round trip means it is down.
        route.until = self.now + self.config.request_timeout();
        route.acknowledged = false;
        self.emit(TraceKind::Forwarded { txn, id: route.request.id, to: pick, attempt: route.attempt });
        let message = Message::Forward { txn, request: route.request.clone(), attempt: route.attempt };
        self.send(pick, message);
        self.schedule(route.until, Timer::Txn(txn));
        true
    }

    pub(super) fn on_forward_ack(&mut self, txn: u64) {
        let until = self.now + self.config.forward_timeout();
        if let Some(Txn::Route(route)) = self.txns.get_mut(&txn) {
            if !route.acknowledged {
                route.acknowledged = true;
                route.until = until;
                self.schedule(until, Timer::Txn(txn));
            }
        }
    }

    pub(super) fn on_forward_reply(&mut self, txn: u64, reply: ClientReply) {
        if let Some(Txn::Route(route)) = self.txns.remove(&txn) {
            self.answer(route.reply_to, reply);
        }
    }

    /// Starts coordinating a request here.
    pub(super) fn coordinate(&mut self, request: ClientRequest, reply_to: ReplyTo) {
        if let Some(key) = request.op.key() {
            if !self.ring.homes(key.as_bytes()).contains(&self.id) {
                // Only a home replica coordinates a key (a stray forward goes on to one).
                return self.route(request, reply_to);
            }
        }
        self.coordinate_here(request, reply_to);
    }

    /// Coordinates here; for a key, this node is known to be one of its homes.
    fn coordinate_here(&mut self, request: ClientRequest, reply_to: ReplyTo) {
        let txn = self.new_txn();
        let ClientRequest { id, op } = request;
        if self.trace {
            let homes = op.key().map(|key| self.ring.homes(key.as_bytes())).unwrap_or_default();
            self.emit(TraceKind::CoordinationStarted { txn, id, op: op.clone(), homes });
        }
        match op {
            ClientOp::Get { key } => self.start_read(txn, key, id, reply_to),
            ClientOp::Put { key, value } => self.start_write(txn, key, id, WriteValue::Put(value), reply_to),
            ClientOp::Delete { key } => self.start_write(txn, key, id, WriteValue::Delete, reply_to),
            ClientOp::LocalQuery => self.local_query(reply_to),
            ClientOp::GlobalQuery => self.start_scan(txn, id, reply_to),
            ClientOp::LocalDelete => {
                let keys = self.live_keys();
                self.start_bulk(txn, id, keys, reply_to);
            }
            ClientOp::GlobalDelete => {
                self.txns.insert(
                    txn,
                    Txn::Bulk(Bulk { reply_to, op: id, keys: Vec::new(), in_flight: 1, deleted: 0, failed: 0 }),
                );
                let scan = self.new_txn();
                self.start_scan(scan, id, ReplyTo::Parent(txn));
            }
        }
    }

    /// Delivers the result of an operation.
    pub(super) fn answer(&mut self, reply_to: ReplyTo, reply: ClientReply) {
        match reply_to {
            ReplyTo::Client(handle) => self.reply(handle, reply),
            ReplyTo::Peer { node, txn } => self.send(node, Message::ForwardReply { txn, reply }),
            ReplyTo::Parent(parent) => self.child_done(parent, reply),
            ReplyTo::Nobody => {}
        }
    }

    fn finish(&mut self, txn: u64, reply_to: ReplyTo, reply: ClientReply) {
        if self.trace && reply_to != ReplyTo::Nobody {
            self.emit(TraceKind::CoordinationFinished { txn, reply: reply.clone() });
        }
        self.answer(reply_to, reply);
    }

    fn unavailable(cause: Unavailable) -> ClientReply {
        ClientReply::Error(ClientError::Unavailable(cause))
    }

    fn backoff(&mut self) -> Micros {
        self.now + self.rng.between(0, self.config.retry_backoff_max())
    }

    // ----- Writes. -----

    pub(super) fn start_write(&mut self, txn: u64, key: Blob, op: OpId, value: WriteValue, reply_to: ReplyTo) {
        let deadline = self.now + self.config.operation_timeout();
        let request = WriteRequest { op, value, reply_to, deadline, reply: ClientReply::Written };
        if self.writing.get(&key).is_some_and(|active| self.txns.contains_key(active)) {
            self.queued_writes.entry(key).or_default().push(request);
            return;
        }
        self.start_write_round(txn, key, vec![request]);
    }

    fn start_write_round(&mut self, txn: u64, key: Blob, requests: Vec<WriteRequest>) {
        let homes = self.ring.homes(key.as_bytes());
        // Ballot uniqueness across restarts rests on this: a home's own promise is durable
        // before its accept leaves, and a restart resumes rounds above every stored promise.
        assert!(homes.contains(&self.id), "only a home replica coordinates a write");
        let deadline = requests.iter().map(|request| request.deadline).min().unwrap_or(self.now);
        self.writing.insert(key.clone(), txn);
        let write = Write {
            key,
            requests,
            homes,
            deadline,
            stage: Stage::Prepare,
            ballot: Ballot::ZERO,
            round_until: 0,
            resent: 0,
            answered: Vec::new(),
            records: Vec::new(),
            refused: 0,
            record: None,
            acked: Vec::new(),
            next: Ballot::ZERO,
            next_granted: Vec::new(),
            next_records: Vec::new(),
            next_holds_accepted: false,
        };
        let mut lease = self.leases.remove(&write.key);
        if lease.is_none() && self.may_write_first_ballot(&write.key, &write.homes) {
            // The key's first write, by its first home: its ballot is the lowest there is, so
            // phase 1 has nothing to find. The promise to itself is durable before any accept
            // leaves (persistence barrier), so the ballot is never used twice.
            let ballot = Ballot::first(self.id);
            self.slot_mut(&write.key).slot.promised = ballot;
            self.dirty_slots.insert(write.key.clone());
            lease = Some(Lease { ballot, records: Vec::new() });
        }
        self.txns.insert(txn, Txn::Write(write));
        match lease {
            // Phase 1 already happened, piggybacked on the previous accept here, or is not
            // needed (the key's first ballot).
            Some(Lease { ballot, records }) => {
                if let Some(Txn::Write(write)) = self.txns.get_mut(&txn) {
                    write.ballot = ballot;
                    write.records = records;
                }
                self.accept_round(txn);
            }
            None => self.prepare_round(txn),
        }
    }

    /// Whether this node may write `key` at the key's first ballot: it is the key's first home
    /// and has never promised or accepted anything for the key (a node that did, even in an
    /// earlier life, remembers it durably). This rests on a slot never being removed once it
    /// holds a promise: a future garbage collection of tombstones must keep the promise.
    fn may_write_first_ballot(&self, key: &Blob, homes: &[NodeId]) -> bool {
        homes.first() == Some(&self.id)
            && self
                .store
                .get(key)
                .is_none_or(|state| state.slot.promised == Ballot::ZERO && state.slot.record.is_none())
    }

    /// A round above every ballot seen, and above the reserved first round.
    pub(super) fn next_round(&mut self) -> u64 {
        self.round = self.round.max(Ballot::FIRST_ROUND) + 1;
        self.round
    }

    /// The write round on `key` is over (answered or failed): start the next one with every
    /// write queued behind it.
    fn write_round_over(&mut self, key: &Blob) {
        self.writing.remove(key);
        let Some(mut queued) = self.queued_writes.remove(key) else { return };
        let max = self.config.writes_per_round_max as usize;
        if queued.len() > max {
            let rest = queued.split_off(max);
            self.queued_writes.insert(key.clone(), rest);
        }
        let txn = self.new_txn();
        self.start_write_round(txn, key.clone(), queued);
    }

    /// Answers every request of a write round.
    fn answer_writes(&mut self, txn: u64, requests: Vec<(ReplyTo, ClientReply)>) {
        for (reply_to, reply) in requests {
            self.finish(txn, reply_to, reply);
        }
    }

    /// Starts a write round: a fresh ballot above everything seen, promised by R homes.
    fn prepare_round(&mut self, txn: u64) {
        let ballot = Ballot { round: self.next_round(), node: self.id };
        let until = self.now + self.config.request_timeout();
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        // A full round supersedes any prepared ballot this node held for the key.
        self.leases.remove(&write.key);
        write.stage = Stage::Prepare;
        write.ballot = ballot;
        write.round_until = until;
        write.resent = 0;
        write.answered.clear();
        write.records.clear();
        write.refused = 0;
        write.record = None;
        write.acked.clear();
        let message = write.phase_message(txn).expect("a write in phase 1 has its prepare");
        let homes = write.homes.clone();
        let needed = self.config.read_quorum;
        if self.trace {
            let ops = write.requests.iter().map(|request| request.op).collect();
            self.emit(TraceKind::PhaseStarted { txn, phase: Phase::Prepare, ballot, needed, ops });
        }
        for home in homes {
            self.send(home, message.clone());
        }
        self.schedule(until, Timer::Txn(txn));
    }

    pub(super) fn on_promise(
        &mut self,
        txn: u64,
        from: NodeId,
        ballot: Ballot,
        result: Result<Option<Record>, Refusal>,
    ) {
        if let Err(Refusal::Promised(promised)) = result {
            self.observe(promised);
        }
        let needed = self.config.read_quorum;
        let replicas = self.config.replicas;
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        if write.stage != Stage::Prepare
            || write.ballot != ballot
            || write.answered.contains(&from)
            || !write.homes.contains(&from)
        {
            return;
        }
        write.answered.push(from);
        let granted = result.is_ok();
        match result {
            Ok(record) => write.records.extend(record),
            Err(_) => write.refused += 1,
        }
        let votes = write.answered.len() as u32 - write.refused;
        let refused = write.refused;
        if self.trace {
            self.emit(TraceKind::VoteCounted { txn, phase: Phase::Prepare, from, granted, votes, needed });
        }
        if votes == needed {
            self.emit(TraceKind::QuorumReached { txn, phase: Phase::Prepare });
            self.accept_round(txn);
        } else if refused > replicas - needed {
            self.retry_after_backoff(txn);
        }
    }

    /// Phase 2: decide the record from the promises and send it to every home replica.
    fn accept_round(&mut self, txn: u64) {
        let id = self.id;
        let writers_max = self.config.writers_per_key_max as usize;
        let until = self.now + self.config.request_timeout();
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        let newest = write.records.iter().max_by_key(|record| record.ballot).cloned();
        // The register's state is the newest record of the quorum, and only that: an older
        // record may be an unfinished attempt that this prepare has just fenced out for good,
        // so neither its value nor its writer sessions may count.
        let mut writers: Vec<Writer> = newest.as_ref().map(|record| record.writers.to_vec()).unwrap_or_default();
        let mut value = newest.as_ref().and_then(|record| record.value.clone());
        let mut last_op = None;
        let mut recognized = Vec::new();
        for request in &mut write.requests {
            let session = writers.iter().find(|w| w.client == request.op.client && w.seq >= request.op.seq).copied();
            let already = session.is_some();
            // Decided here, at the write's linearization point; a recognized retry answers what
            // its first application decided (kept in the writer session).
            request.reply = match (&request.value, session) {
                (WriteValue::Delete, Some(writer)) => {
                    ClientReply::Deleted((writer.seq == request.op.seq && writer.removed) as u64)
                }
                (WriteValue::Delete, None) => ClientReply::Deleted(value.is_some() as u64),
                _ => ClientReply::Written,
            };
            if already {
                // A retry of a request the state already includes: it takes effect once only.
                recognized.push(request.op);
                continue;
            }
            let removed = matches!(request.value, WriteValue::Delete) && value.is_some();
            match &request.value {
                WriteValue::Put(new) => value = Some(new.clone()),
                WriteValue::Delete => value = None,
                WriteValue::Rewrite => continue,
            }
            let writer = Writer { client: request.op.client, seq: request.op.seq, round: write.ballot.round, removed };
            record_writer(&mut writers, writer, writers_max);
            last_op = Some(request.op);
        }
        let record = match (last_op, newest) {
            // Nothing new to write and nothing written before: done.
            (None, None) => None,
            // Nothing new (a rewrite, or only retries): the newest record again, so that it is
            // on a write quorum before anyone is answered.
            (None, Some(newest)) => Some(Record { ballot: write.ballot, writers: writers.into(), ..newest }),
            (Some(op), _) => {
                let mut clock = VectorClock::new();
                for record in &write.records {
                    clock.merge(&record.clock);
                }
                clock.increment(id);
                Some(Record { ballot: write.ballot, clock, value, op, writers: writers.into() })
            }
        };
        let Some(record) = record else {
            let Some(Txn::Write(write)) = self.txns.remove(&txn) else { return };
            let replies = write.requests.into_iter().map(|r| (r.reply_to, r.reply)).collect();
            self.write_round_over(&write.key);
            self.answer_writes(txn, replies);
            return;
        };
        write.stage = Stage::Accept;
        write.round_until = until;
        write.resent = 0;
        write.answered.clear();
        write.refused = 0;
        write.record = Some(record.clone());
        write.acked.clear();
        write.next_granted.clear();
        write.next_records.clear();
        write.next_holds_accepted = false;
        let next = Ballot { round: self.next_round(), node: id };
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        write.next = next;
        let message = write.phase_message(txn).expect("a write in phase 2 has its record");
        let (homes, ballot) = (write.homes.clone(), write.ballot);
        let ops: Vec<OpId> =
            if self.trace { write.requests.iter().map(|request| request.op).collect() } else { Vec::new() };
        for id in recognized {
            self.emit(TraceKind::RetryRecognized { txn, id });
        }
        let needed = self.config.write_quorum;
        self.emit(TraceKind::PhaseStarted { txn, phase: Phase::Accept, ballot, needed, ops });
        for home in homes {
            self.send(home, message.clone());
        }
        self.schedule(until, Timer::Txn(txn));
    }

    pub(super) fn on_accepted(
        &mut self,
        txn: u64,
        from: NodeId,
        ballot: Ballot,
        result: Result<(), Refusal>,
        next: Option<NextPromise>,
    ) {
        if let Err(Refusal::Promised(promised)) = result {
            self.observe(promised);
        }
        if let Some(NextPromise::Refused(Refusal::Promised(promised))) = next {
            self.observe(promised);
        }
        if let Some((home, key)) = self.handoffs.remove(&txn) {
            self.handoff_done(home, key, ballot);
            return;
        }
        match self.txns.get(&txn) {
            Some(Txn::Write(_)) => {
                self.on_next_promise(txn, from, ballot, next);
                self.on_write_accepted(txn, from, ballot, result)
            }
            Some(Txn::Read(_)) => self.on_repair_accepted(txn, from, ballot, result),
            _ => {}
        }
    }

    /// Counts a promise for the ballot prepared along with an accept; with R of them, this node
    /// holds a lease on the key for its next write.
    fn on_next_promise(&mut self, txn: u64, from: NodeId, ballot: Ballot, next: Option<NextPromise>) {
        let needed = self.config.read_quorum as usize;
        let (held, holds_accepted) = match next {
            Some(NextPromise::HoldsAccepted) => (None, true),
            Some(NextPromise::Holds(record)) => (record, false),
            Some(NextPromise::Refused(_)) | None => return,
        };
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        let live = matches!(write.stage, Stage::Accept | Stage::Linger);
        if !live || write.ballot != ballot || write.next_granted.contains(&from) || !write.homes.contains(&from) {
            return;
        }
        write.next_granted.push(from);
        // The lease may build only on records the promising quorum reported: this round's own
        // record counts only if one of them holds it.
        write.next_records.extend(held);
        write.next_holds_accepted |= holds_accepted;
        if write.next_granted.len() == needed {
            // Only while no newer round on the key started here (it would have fenced this one).
            let current = self.writing.get(&write.key).is_none_or(|active| *active == txn);
            let newer = self.leases.get(&write.key).is_none_or(|lease| lease.ballot < write.next);
            if current && newer {
                let mut records = std::mem::take(&mut write.next_records);
                if write.next_holds_accepted {
                    records.extend(write.record.clone());
                }
                let lease = Lease { ballot: write.next, records };
                self.leases.insert(write.key.clone(), lease);
                if self.leases.len() > self.config.leases_max as usize {
                    self.leases.pop_first();
                }
            }
        }
    }

    fn on_write_accepted(&mut self, txn: u64, from: NodeId, ballot: Ballot, result: Result<(), Refusal>) {
        let needed = self.config.write_quorum;
        let replicas = self.config.replicas;
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        let live = matches!(write.stage, Stage::Accept | Stage::Linger);
        if !live || write.ballot != ballot || write.answered.contains(&from) || !write.homes.contains(&from) {
            return;
        }
        write.answered.push(from);
        let granted = result.is_ok();
        if granted {
            write.acked.push(from);
        } else {
            write.refused += 1;
        }
        let (votes, refused, stage) = (write.acked.len() as u32, write.refused, write.stage);
        if stage == Stage::Linger {
            if write.acked.len() == write.homes.len() {
                self.txns.remove(&txn);
            }
            return;
        }
        if self.trace {
            self.emit(TraceKind::VoteCounted { txn, phase: Phase::Accept, from, granted, votes, needed });
        }
        if votes == needed {
            self.emit(TraceKind::QuorumReached { txn, phase: Phase::Accept });
            let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
            write.stage = Stage::Linger;
            let replies: Vec<(ReplyTo, ClientReply)> =
                write.requests.drain(..).map(|request| (request.reply_to, request.reply)).collect();
            let key = write.key.clone();
            let done = write.acked.len() == write.homes.len();
            let suspected_missing =
                write.homes.iter().any(|home| !write.acked.contains(home) && self.suspected[home.index()]);
            self.write_round_over(&key);
            self.answer_writes(txn, replies);
            if done {
                self.txns.remove(&txn);
            } else if suspected_missing {
                self.leave_hints(txn);
            }
        } else if refused > replicas - needed {
            self.retry_after_backoff(txn);
        }
    }

    /// After a write succeeded: homes that did not acknowledge get the record as a hint on a
    /// fallback node, which hands it off when the home answers again.
    fn leave_hints(&mut self, txn: u64) {
        let Some(Txn::Write(write)) = self.txns.remove(&txn) else { return };
        let Some(record) = write.record else { return };
        let preference = self.ring.preference(write.key.as_bytes());
        let fallbacks = &preference[write.homes.len()..];
        for home in write.homes.iter().filter(|home| !write.acked.contains(home)) {
            let fallback = fallbacks.iter().find(|node| !self.suspected[node.index()]).or(fallbacks.first()).copied();
            if let Some(fallback) = fallback {
                let message = Message::Hint { home: *home, key: write.key.clone(), record: record.clone() };
                self.send(fallback, message);
            }
        }
    }

    fn retry_after_backoff(&mut self, txn: u64) {
        let resume = self.backoff();
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        write.stage = Stage::Backoff;
        write.round_until = resume;
        self.schedule(resume, Timer::Txn(txn));
    }

    fn write_timer(&mut self, txn: u64) {
        let now = self.now;
        let Some(Txn::Write(write)) = self.txns.get(&txn) else { return };
        if now < write.round_until {
            return;
        }
        match write.stage {
            Stage::Linger => return self.leave_hints(txn),
            Stage::Backoff => {}
            _ => {
                let silent = silent(&write.homes, &write.answered);
                for home in silent {
                    self.suspect(home);
                }
            }
        }
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        if now < write.deadline {
            return self.write_round_again(txn);
        }
        // The round's deadline is its earliest request's: those whose time is up fail; the
        // others, which joined the round later, keep their own time and the round goes on.
        let (expired, next) = take_expired(&mut write.requests, now, |request| request.deadline);
        let failure = Self::unavailable(Unavailable::NoWriteQuorum);
        let replies: Vec<(ReplyTo, ClientReply)> =
            expired.into_iter().map(|request| (request.reply_to, failure.clone())).collect();
        if let Some(deadline) = next {
            write.deadline = deadline;
            self.answer_writes(txn, replies);
            self.write_round_again(txn);
        } else {
            let Some(Txn::Write(write)) = self.txns.remove(&txn) else { return };
            self.write_round_over(&write.key);
            self.answer_writes(txn, replies);
        }
    }

    /// A round that timed out without a quorum goes on under the same ballot: its phase goes
    /// out again to the homes that have not answered, and the wait doubles each time (up to
    /// `ROUND_WAIT_DOUBLINGS_MAX` times), as TCP backs off its retransmissions. Silence is not a
    /// refusal, so a new ballot would only fence out the answers still on their way, and make
    /// a replica that is slow (a disk stalled, a large value in flight) redo its durable work
    /// under each new ballot, which only slows it down further. Only refusals start a new
    /// ballot (`retry_after_backoff`). A write that waited in backoff prepares anew.
    fn write_round_again(&mut self, txn: u64) {
        let now = self.now;
        let timeout = self.config.request_timeout();
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        let Some(message) = write.phase_message(txn) else { return self.prepare_round(txn) };
        write.resent += 1;
        write.round_until = resend_wait_until(now, timeout, write.resent, write.deadline);
        let until = write.round_until;
        let silent = silent(&write.homes, &write.answered);
        for home in silent {
            self.send(home, message.clone());
        }
        self.schedule(until, Timer::Txn(txn));
    }

    /// Repairs `key` by rewriting its newest record under a fresh ballot (no new version).
    pub(super) fn start_rewrite(&mut self, key: Blob) {
        // A write round already running on the key writes the newest state under a fresh
        // ballot anyway: that is exactly what a rewrite would do.
        let active = |txn: Option<&u64>| txn.is_some_and(|txn| self.txns.contains_key(txn));
        if active(self.rewrites.get(&key)) || active(self.writing.get(&key)) {
            return;
        }
        if self.rewrites.len() >= self.config.rewrites_max as usize {
            let txns = &self.txns;
            self.rewrites.retain(|_, txn| txns.contains_key(txn));
        }
        let txn = self.new_txn();
        self.rewrites.insert(key.clone(), txn);
        let op = OpId { client: ClientId(u64::MAX - self.id.0 as u64), seq: txn };
        self.start_write(txn, key, op, WriteValue::Rewrite, ReplyTo::Nobody);
    }

    // ----- Reads. -----

    fn start_read(&mut self, txn: u64, key: Blob, op: OpId, reply_to: ReplyTo) {
        let request = ReadRequest { op, reply_to, deadline: self.now + self.config.operation_timeout() };
        if self.reading.get(&key).is_some_and(|active| self.txns.contains_key(active)) {
            self.queued_reads.entry(key).or_default().push(request);
            return;
        }
        self.start_read_round(txn, key, vec![request]);
    }

    fn start_read_round(&mut self, txn: u64, key: Blob, requests: Vec<ReadRequest>) {
        let homes = self.ring.homes(key.as_bytes());
        let deadline = requests.iter().map(|request| request.deadline).min().unwrap_or(self.now);
        self.reading.insert(key.clone(), txn);
        let read = Read {
            key,
            homes,
            requests,
            deadline,
            stage: Stage::Read,
            round_until: 0,
            resent: 0,
            answered: Vec::new(),
            refused: 0,
            best: None,
            holders: Vec::new(),
        };
        self.txns.insert(txn, Txn::Read(read));
        self.read_round(txn);
    }

    fn read_round(&mut self, txn: u64) {
        let until = self.now + self.config.request_timeout();
        let Some(Txn::Read(read)) = self.txns.get_mut(&txn) else { return };
        read.stage = Stage::Read;
        read.round_until = until;
        read.resent = 0;
        read.answered.clear();
        read.refused = 0;
        read.best = None;
        read.holders.clear();
        let (key, homes) = (read.key.clone(), read.homes.clone());
        let needed = self.config.read_quorum;
        if self.trace {
            let ops = read.requests.iter().map(|request| request.op).collect();
            self.emit(TraceKind::PhaseStarted { txn, phase: Phase::Read, ballot: Ballot::ZERO, needed, ops });
        }
        for home in homes {
            self.send(home, Message::Read { txn, key: key.clone() });
        }
        self.schedule(until, Timer::Txn(txn));
    }

    pub(super) fn on_read_reply(&mut self, txn: u64, from: NodeId, result: Result<Option<Record>, Refusal>) {
        let needed = self.config.read_quorum;
        let replicas = self.config.replicas;
        let Some(Txn::Read(read)) = self.txns.get_mut(&txn) else { return };
        if read.answered.contains(&from) || !read.homes.contains(&from) {
            return;
        }
        let granted = result.is_ok();
        match (read.stage, result) {
            (Stage::Read, Ok(record)) => {
                read.answered.push(from);
                let ballot = record.as_ref().map(|record| record.ballot);
                let best = read.best.as_ref().map(|record| record.ballot);
                if ballot > best {
                    read.best = record;
                    read.holders = vec![from];
                } else if ballot == best {
                    read.holders.push(from);
                }
            }
            (Stage::Read, Err(_)) => {
                read.answered.push(from);
                read.refused += 1;
            }
            (Stage::Repair, Ok(record)) => {
                // A late reply during repair still counts if it already holds the value.
                read.answered.push(from);
                if record.map(|record| record.ballot) == read.best.as_ref().map(|record| record.ballot) {
                    read.holders.push(from);
                    self.read_maybe_done(txn);
                }
                return;
            }
            _ => return,
        }
        let votes = read.answered.len() as u32 - read.refused;
        let refused = read.refused;
        if self.trace {
            self.emit(TraceKind::VoteCounted { txn, phase: Phase::Read, from, granted, votes, needed });
        }
        if votes == needed {
            self.emit(TraceKind::QuorumReached { txn, phase: Phase::Read });
            self.read_repair(txn);
        } else if refused > replicas - needed {
            let resume = self.backoff();
            if let Some(Txn::Read(read)) = self.txns.get_mut(&txn) {
                read.stage = Stage::Backoff;
                read.round_until = resume;
            }
            self.schedule(resume, Timer::Txn(txn));
        }
    }

    /// The newest record must be on W replicas before the read answers; write it back to the
    /// stale ones.
    fn read_repair(&mut self, txn: u64) {
        let needed = self.config.write_quorum as usize;
        let until = self.now + self.config.request_timeout();
        let Some(Txn::Read(read)) = self.txns.get_mut(&txn) else { return };
        let Some(best) = read.best.clone() else {
            // No replica of the quorum holds anything: the key was never written.
            return self.read_maybe_done(txn);
        };
        if read.holders.len() >= needed {
            return self.read_maybe_done(txn);
        }
        read.stage = Stage::Repair;
        read.round_until = until;
        let stale: Vec<NodeId> = read.homes.iter().filter(|home| !read.holders.contains(home)).copied().collect();
        let key = read.key.clone();
        if self.trace {
            let ops = read.requests.iter().map(|request| request.op).collect();
            self.emit(TraceKind::PhaseStarted {
                txn,
                phase: Phase::ReadRepair,
                ballot: best.ballot,
                needed: needed as u32,
                ops,
            });
        }
        for home in stale {
            if self.trace {
                self.emit(TraceKind::ReadRepair { txn, key: key.clone(), to: home, ballot: best.ballot });
            }
            let message = Message::Accept {
                txn,
                key: key.clone(),
                record: best.clone(),
                purpose: AcceptPurpose::ReadRepair,
                next: None,
            };
            self.send(home, message);
        }
        self.schedule(until, Timer::Txn(txn));
    }

    fn on_repair_accepted(&mut self, txn: u64, from: NodeId, ballot: Ballot, result: Result<(), Refusal>) {
        let resume = self.backoff();
        let Some(Txn::Read(read)) = self.txns.get_mut(&txn) else { return };
        if read.stage != Stage::Repair
            || read.best.as_ref().map(|r| r.ballot) != Some(ballot)
            || read.holders.contains(&from)
        {
            return;
        }
        if result.is_ok() {
            read.holders.push(from);
            self.read_maybe_done(txn);
        } else {
            // A newer write is under way; read again after a pause.
            read.stage = Stage::Backoff;
            read.round_until = resume;
            self.schedule(resume, Timer::Txn(txn));
        }
    }

    fn read_maybe_done(&mut self, txn: u64) {
        let needed = self.config.write_quorum as usize;
        let Some(Txn::Read(read)) = self.txns.get(&txn) else { return };
        if read.best.is_some() && read.holders.len() < needed {
            return;
        }
        let Some(Txn::Read(read)) = self.txns.remove(&txn) else { return };
        self.read_round_over(&read.key);
        let reply = ClientReply::Value(read.best.and_then(|record| record.value));
        for request in read.requests {
            self.finish(txn, request.reply_to, reply.clone());
        }
    }

    /// The read round on `key` is over: the reads queued behind it share the next one.
    fn read_round_over(&mut self, key: &Blob) {
        self.reading.remove(key);
        if let Some(queued) = self.queued_reads.remove(key) {
            let txn = self.new_txn();
            self.start_read_round(txn, key.clone(), queued);
        }
    }

    fn read_timer(&mut self, txn: u64) {
        let now = self.now;
        let Some(Txn::Read(read)) = self.txns.get(&txn) else { return };
        if now < read.round_until {
            return;
        }
        if read.stage != Stage::Backoff {
            let silent = silent(&read.homes, &read.answered);
            for home in silent {
                self.suspect(home);
            }
        }
        let Some(Txn::Read(read)) = self.txns.get_mut(&txn) else { return };
        if now < read.deadline {
            return self.read_round_again(txn);
        }
        // Those whose time is up fail; reads that joined later keep their own time.
        let (expired, next) = take_expired(&mut read.requests, now, |request| request.deadline);
        let failure = Self::unavailable(Unavailable::NoReadQuorum);
        if let Some(deadline) = next {
            read.deadline = deadline;
            self.read_round_again(txn);
        } else if let Some(Txn::Read(read)) = self.txns.remove(&txn) {
            self.read_round_over(&read.key);
        }
        for request in expired {
            self.finish(txn, request.reply_to, failure.clone());
        }
    }

    /// As `write_round_again`: a read that timed out asks the homes that have not answered
    /// again, in the same round, waiting twice as long each time. A read that was refused or was
    /// repairing reads anew.
    fn read_round_again(&mut self, txn: u64) {
        let now = self.now;
        let timeout = self.config.request_timeout();
        let Some(Txn::Read(read)) = self.txns.get_mut(&txn) else { return };
        if read.stage != Stage::Read {
            return self.read_round(txn);
        }
        read.resent += 1;
        read.round_until = resend_wait_until(now, timeout, read.resent, read.deadline);
        let until = read.round_until;
        let silent = silent(&read.homes, &read.answered);
        let key = read.key.clone();
        for home in silent {
            self.send(home, Message::Read { txn, key: key.clone() });
        }
        self.schedule(until, Timer::Txn(txn));
    }

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

    fn local_query(&mut self, reply_to: ReplyTo) {
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

    fn start_scan(&mut self, txn: u64, op: OpId, reply_to: ReplyTo) {
        let now = self.now;
        let nodes = self.ring.node_count();
        let scan = Scan {
            reply_to,
            deadline: now + self.config.operation_timeout(),
            merged: BTreeMap::new(),
            cursors: vec![Some((None, now)); nodes],
        };
        self.txns.insert(txn, Txn::Scan(scan));
        self.emit(TraceKind::PhaseStarted {
            txn,
            phase: Phase::Scan,
            ballot: Ballot::ZERO,
            needed: self.config.read_quorum,
            ops: vec![op],
        });
        for node in 0..nodes {
            self.send(NodeId(node as u32), Message::ScanRequest { txn, after: None });
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

    /// Every range has R of its home replicas fully scanned: each key's newest completed write
    /// is then among the merged records.
    fn scan_covered(&self, scan: &Scan) -> bool {
        let needed = self.config.read_quorum as usize;
        self.ring
            .ranges()
            .iter()
            .all(|range| range.homes.iter().filter(|home| scan.cursors[home.index()].is_none()).count() >= needed)
    }

    fn scan_timer(&mut self, txn: u64) {
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

    fn child_done(&mut self, parent: u64, reply: ClientReply) {
        let Some(Txn::Bulk(bulk)) = self.txns.get_mut(&parent) else { return };
        bulk.in_flight -= 1;
        match reply {
            ClientReply::Deleted(count) => bulk.deleted += count,
            ClientReply::Pairs(_) => {}
            _ => bulk.failed += 1,
        }
        self.bulk_continue(parent);
    }

    // ----- Timers. -----

    pub(super) fn txn_timer(&mut self, txn: u64) {
        match self.txns.get(&txn) {
            Some(Txn::Write(_)) => self.write_timer(txn),
            Some(Txn::Read(_)) => self.read_timer(txn),
            Some(Txn::Scan(_)) => self.scan_timer(txn),
            Some(Txn::Route(route)) if self.now >= route.until => {
                let Some(Txn::Route(mut route)) = self.txns.remove(&txn) else { return };
                self.suspect(route.target);
                if route.attempt >= self.config.coordinator_attempts_max {
                    self.answer(route.reply_to, Self::unavailable(Unavailable::NoCoordinator));
                } else if self.route_next(txn, &mut route) {
                    self.txns.insert(txn, Txn::Route(route));
                }
            }
            _ => {}
        }
    }
}

/// Takes the requests whose deadline is `now` or earlier out of a combined round's `requests`,
/// and returns them with the earliest deadline of those left (`None` when none is left).
/// The homes that have not answered a round.
fn silent(homes: &[NodeId], answered: &[NodeId]) -> Vec<NodeId> {
    homes.iter().filter(|home| !answered.contains(home)).copied().collect()
}

/// Until when a round waits after sending its phase again for the `resent`-th time: twice as
/// long each time, up to `ROUND_WAIT_DOUBLINGS_MAX` doublings, and never past its deadline
/// (when the requests whose time is up fail).
fn resend_wait_until(now: Micros, timeout: Micros, resent: u32, deadline: Micros) -> Micros {
    (now + (timeout << resent.min(ROUND_WAIT_DOUBLINGS_MAX))).min(deadline.max(now + 1))
}

fn take_expired<T>(requests: &mut Vec<T>, now: Micros, deadline: impl Fn(&T) -> Micros) -> (Vec<T>, Option<Micros>) {
    let (expired, live): (Vec<T>, Vec<T>) = requests.drain(..).partition(|request| deadline(request) <= now);
    *requests = live;
    (expired, requests.iter().map(deadline).min())
}
