//! Quorum writes. Writes run two phases per round, like single-decree Paxos: *prepare* a fresh
//! ballot on R home replicas (they promise to refuse lower ballots and report their records),
//! then *accept* the new record on W. The prepare fences out every older, unfinished write
//! attempt, so an abandoned attempt can never surface above a later write, and the newest record
//! seen in phase 1 (the register's current state; older records may be fenced-out attempts)
//! tells whether this request was already applied (a retry), so a request takes effect at most
//! once.
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
//! A coordinator runs at most one write round per key; writes arriving meanwhile queue and ride
//! together in the next round (up to `writes_per_round_max`).

use crate::layout::Electorate;
use crate::message::{AcceptPurpose, ClientOp, ClientReply, ClientRequest, Message, NextPromise, Refusal, Unavailable};
use crate::store::{record_writer, Record, Writer};
use crate::trace::{Phase, TraceKind};
use crate::types::{Blob, ClientId, Micros, NodeId, OpId};
use crate::version::{Ballot, VectorClock};

use super::coordinate::{resend_wait_until, silent, take_expired, ReplyTo, Txn};
use super::{Node, Timer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum WriteValue {
    Put(Blob),
    Delete,
    /// Rewrite the newest record under a fresh ballot (a repair; no new version).
    Rewrite,
}

/// Where a write round is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteStage {
    Prepare,
    Accept,
    /// Refused: waiting a random pause before a new ballot.
    Backoff,
    /// Answered; waiting to leave hints for home replicas that did not acknowledge.
    Linger,
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
    /// The layout epoch whose homes promised it: a lease of another epoch was promised by
    /// another electorate, and is not used.
    epoch: u64,
}

/// A write round on one key. A coordinator runs at most one per key; writes arriving meanwhile
/// queue and ride together in the next round (they are all pending at once, so placing them
/// back to back at that round's accept is a valid linearization; the last one's value wins).
pub(super) struct Write {
    key: Blob,
    requests: Vec<WriteRequest>,
    /// Who votes in this round (fixed per ballot: a new ballot takes the layout of its time),
    /// and every one of them once, the new homes first.
    electorate: Electorate,
    homes: Vec<NodeId>,
    deadline: Micros,
    stage: WriteStage,
    ballot: Ballot,
    round_until: Micros,
    /// How many times this round's phase went out again to the homes that had not answered.
    resent: u32,
    /// Replicas that answered this round, and their records (phase 1).
    answered: Vec<NodeId>,
    records: Vec<Record>,
    /// Those that granted the current phase, and those that refused it.
    granted: Vec<NodeId>,
    refused: Vec<NodeId>,
    record: Option<Record>,
    acked: Vec<NodeId>,
    /// The ballot prepared along with this round's accept, and who granted it with what.
    next: Ballot,
    next_granted: Vec<NodeId>,
    next_records: Vec<Record>,
    next_holds_accepted: bool,
    /// The next ballot's promises reached a quorum (a lease was taken, once).
    next_reached: bool,
    /// New ballots this round took after refusals: each doubles the pause before the next.
    refusals: u32,
    /// Only repairs ride in it (rewrites, identity rounds): nobody outside waits for it.
    internal: bool,
    /// The layout epoch of the current ballot (the electorate's): a lease built from its
    /// promises is stamped with it, not with the epoch the promises happen to arrive in.
    epoch: u64,
}

impl Write {
    /// What the homes get in the round's current phase: the prepare of phase 1, or the accept
    /// of phase 2 (with the prepare of the next ballot). Nothing in backoff or after the answer.
    fn phase_message(&self, txn: u64) -> Option<Message> {
        let key = self.key.clone();
        match (self.stage, &self.record) {
            (WriteStage::Prepare, _) => Some(Message::Prepare { txn, key, ballot: self.ballot }),
            (WriteStage::Accept, Some(record)) => Some(Message::Accept {
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

impl Node {
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
        let electorate = self.electorate(key.as_bytes());
        // Ballot uniqueness across restarts rests on this: a home's own promise is durable
        // before its accept leaves, and a restart resumes rounds above every stored promise.
        // Writes that queued here before the layout moved the key away go to its homes now.
        if !electorate.contains(self.id) {
            return self.route_writes(key, requests);
        }
        let deadline = requests.iter().map(|request| request.deadline).min().unwrap_or(self.now);
        // Repairs of one key by several nodes (a rewrite after a blocked copy, every old home's
        // identity round while a change moves the key) fence each other out; each one's next
        // attempt keeps the last one's backoff, so that they draw apart across attempts.
        let internal = requests.iter().all(|request| request.value == WriteValue::Rewrite);
        let refusals = if internal { self.contention.remove(&key).unwrap_or(0) } else { 0 };
        self.writing.insert(key.clone(), txn);
        let write = Write {
            key,
            requests,
            homes: electorate.all(),
            electorate,
            deadline,
            stage: WriteStage::Prepare,
            ballot: Ballot::ZERO,
            round_until: 0,
            resent: 0,
            answered: Vec::new(),
            records: Vec::new(),
            granted: Vec::new(),
            refused: Vec::new(),
            record: None,
            acked: Vec::new(),
            next: Ballot::ZERO,
            next_granted: Vec::new(),
            next_records: Vec::new(),
            next_holds_accepted: false,
            next_reached: false,
            refusals,
            internal,
            epoch: self.layout.epoch(),
        };
        let epoch = self.layout.epoch();
        let mut lease = self.leases.remove(&write.key).filter(|lease| lease.epoch == epoch);
        if lease.is_none() && self.may_write_first_ballot(&write.key, &write.homes) {
            // The key's first write, by its first home: its ballot is the lowest there is, so
            // phase 1 has nothing to find. The promise to itself is durable before any accept
            // leaves (persistence barrier), so the ballot is never used twice.
            let ballot = Ballot::first(self.id);
            self.slot_mut(&write.key).slot.promised = ballot;
            self.dirty_slots.insert(write.key.clone());
            lease = Some(Lease { ballot, records: Vec::new(), epoch });
        }
        self.txns.insert(txn, Txn::Write(write));
        match lease {
            // Phase 1 already happened, piggybacked on the previous accept here, or is not
            // needed (the key's first ballot).
            Some(Lease { ballot, records, .. }) => {
                if let Some(Txn::Write(write)) = self.txns.get_mut(&txn) {
                    write.ballot = ballot;
                    write.records = records;
                }
                self.accept_round(txn);
            }
            None => self.prepare_round(txn),
        }
    }

    /// Whether this node may write `key` at the key's first ballot: it is the key's first home,
    /// the key's arc has had that first home since the ring began (`Layout::first_ballot_allowed`:
    /// a slot forgotten when its arc moved away must not make the shortcut look safe again), and
    /// it has never promised or accepted anything for the key (a node that did, even in an
    /// earlier life, remembers it durably).
    fn may_write_first_ballot(&self, key: &Blob, homes: &[NodeId]) -> bool {
        homes.first() == Some(&self.id)
            && self
                .store
                .get(key)
                .is_none_or(|state| state.slot.promised == Ballot::ZERO && state.slot.record.is_none())
            && self.layout.first_ballot_allowed_for(key.as_bytes())
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

    /// The layout changed: every write round still deciding goes on under a new ballot with the
    /// new electorate, or, where this node no longer votes on its key, its requests are routed
    /// again to one that does.
    pub(super) fn restart_write_rounds(&mut self) {
        let deciding: Vec<u64> = self
            .txns
            .iter()
            .filter(|(_, txn)| matches!(txn, Txn::Write(write) if write.stage != WriteStage::Linger))
            .map(|(txn, _)| *txn)
            .collect();
        for txn in deciding {
            let Some(Txn::Write(write)) = self.txns.get(&txn) else { continue };
            let electorate = self.electorate(write.key.as_bytes());
            if electorate.contains(self.id) {
                if let Some(Txn::Write(write)) = self.txns.get_mut(&txn) {
                    write.homes = electorate.all();
                    write.electorate = electorate;
                }
                self.prepare_round(txn);
                continue;
            }
            let Some(Txn::Write(write)) = self.txns.remove(&txn) else { continue };
            self.write_round_over(&write.key);
            self.route_writes(write.key, write.requests);
        }
    }

    /// Routes writes this node no longer votes on to a coordinator that does.
    fn route_writes(&mut self, key: Blob, requests: Vec<WriteRequest>) {
        for request in requests {
            let op = match request.value {
                WriteValue::Put(value) => ClientOp::Put { key: key.clone(), value },
                WriteValue::Delete => ClientOp::Delete { key: key.clone() },
                // A repair is the new homes' business now.
                WriteValue::Rewrite => continue,
            };
            self.route(ClientRequest { id: request.op, op }, request.reply_to);
        }
    }

    /// Starts a write round: a fresh ballot above everything seen, promised by R homes.
    fn prepare_round(&mut self, txn: u64) {
        let ballot = Ballot { round: self.next_round(), node: self.id };
        let until = self.now + self.config.request_timeout();
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        // A full round supersedes any prepared ballot this node held for the key.
        self.leases.remove(&write.key);
        write.stage = WriteStage::Prepare;
        write.ballot = ballot;
        write.epoch = self.layout.epoch();
        write.round_until = until;
        write.resent = 0;
        write.answered.clear();
        write.records.clear();
        write.granted.clear();
        write.refused.clear();
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
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        if write.stage != WriteStage::Prepare
            || write.ballot != ballot
            || write.answered.contains(&from)
            || !write.homes.contains(&from)
        {
            return;
        }
        write.answered.push(from);
        let granted = result.is_ok();
        match result {
            Ok(record) => {
                write.records.extend(record);
                write.granted.push(from);
            }
            Err(_) => write.refused.push(from),
        }
        let votes = write.granted.len() as u32;
        let reached = write.electorate.reached(&write.granted, needed);
        let lost = write.electorate.lost(&write.refused, needed);
        if self.trace {
            self.emit(TraceKind::VoteCounted { txn, phase: Phase::Prepare, from, granted, votes, needed });
        }
        if reached {
            self.emit(TraceKind::QuorumReached { txn, phase: Phase::Prepare });
            self.accept_round(txn);
        } else if lost {
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
        write.stage = WriteStage::Accept;
        write.round_until = until;
        write.resent = 0;
        write.answered.clear();
        write.granted.clear();
        write.refused.clear();
        write.record = Some(record.clone());
        write.acked.clear();
        write.next_granted.clear();
        write.next_records.clear();
        write.next_holds_accepted = false;
        write.next_reached = false;
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
        let needed = self.config.read_quorum;
        let (held, holds_accepted) = match next {
            Some(NextPromise::HoldsAccepted) => (None, true),
            Some(NextPromise::Holds(record)) => (record, false),
            Some(NextPromise::Refused(_)) | None => return,
        };
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        let live = matches!(write.stage, WriteStage::Accept | WriteStage::Linger);
        if !live || write.ballot != ballot || write.next_granted.contains(&from) || !write.homes.contains(&from) {
            return;
        }
        write.next_granted.push(from);
        // The lease may build only on records the promising quorum reported: this round's own
        // record counts only if one of them holds it.
        write.next_records.extend(held);
        write.next_holds_accepted |= holds_accepted;
        if !write.next_reached && write.electorate.reached(&write.next_granted, needed) {
            write.next_reached = true;
            // Only while no newer round on the key started here (it would have fenced this one).
            let current = self.writing.get(&write.key).is_none_or(|active| *active == txn);
            let newer = self.leases.get(&write.key).is_none_or(|lease| lease.ballot < write.next);
            if current && newer {
                let mut records = std::mem::take(&mut write.next_records);
                if write.next_holds_accepted {
                    records.extend(write.record.clone());
                }
                let lease = Lease { ballot: write.next, records, epoch: write.epoch };
                self.leases.insert(write.key.clone(), lease);
                if self.leases.len() > self.config.leases_max as usize {
                    self.leases.pop_first();
                }
            }
        }
    }

    fn on_write_accepted(&mut self, txn: u64, from: NodeId, ballot: Ballot, result: Result<(), Refusal>) {
        let needed = self.config.write_quorum;
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        let live = matches!(write.stage, WriteStage::Accept | WriteStage::Linger);
        if !live || write.ballot != ballot || write.answered.contains(&from) || !write.homes.contains(&from) {
            return;
        }
        write.answered.push(from);
        let granted = result.is_ok();
        if granted {
            write.acked.push(from);
        } else {
            write.refused.push(from);
        }
        let (votes, stage) = (write.acked.len() as u32, write.stage);
        let reached = write.electorate.reached(&write.acked, needed);
        let lost = write.electorate.lost(&write.refused, needed);
        if stage == WriteStage::Linger {
            if write.acked.len() == write.homes.len() {
                self.txns.remove(&txn);
            }
            return;
        }
        if self.trace {
            self.emit(TraceKind::VoteCounted { txn, phase: Phase::Accept, from, granted, votes, needed });
        }
        if reached {
            self.emit(TraceKind::QuorumReached { txn, phase: Phase::Accept });
            let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
            write.stage = WriteStage::Linger;
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
        } else if lost {
            self.retry_after_backoff(txn);
        }
    }

    /// After a write succeeded: homes that did not acknowledge get the record as a hint on a
    /// fallback node, which hands it off when the home answers again.
    fn leave_hints(&mut self, txn: u64) {
        let Some(Txn::Write(write)) = self.txns.remove(&txn) else { return };
        let Some(record) = write.record else { return };
        let preference = self.ring.preference(write.key.as_bytes());
        let fallbacks: Vec<NodeId> = preference.into_iter().filter(|node| !write.electorate.contains(*node)).collect();
        for home in write.homes.iter().filter(|home| !write.acked.contains(home)) {
            let fallback = fallbacks.iter().find(|node| !self.suspected[node.index()]).or(fallbacks.first()).copied();
            if let Some(fallback) = fallback {
                let message = Message::Hint { home: *home, key: write.key.clone(), record: record.clone() };
                self.send(fallback, message);
            }
        }
    }

    fn retry_after_backoff(&mut self, txn: u64) {
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        write.refusals += 1;
        let refusals = write.refusals;
        let resume = self.backoff_after(refusals);
        let Some(Txn::Write(write)) = self.txns.get_mut(&txn) else { return };
        write.stage = WriteStage::Backoff;
        write.round_until = resume;
        self.schedule(resume, Timer::Txn(txn));
    }

    pub(super) fn write_timer(&mut self, txn: u64) {
        let now = self.now;
        let Some(Txn::Write(write)) = self.txns.get(&txn) else { return };
        if now < write.round_until {
            return;
        }
        match write.stage {
            WriteStage::Linger => return self.leave_hints(txn),
            WriteStage::Backoff => {}
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
            if write.refusals > 0 && write.requests.is_empty() && write.internal {
                // The next repair of the key starts from this contention, not from scratch.
                self.contention.insert(write.key.clone(), write.refusals);
                if self.contention.len() > self.config.rewrites_max as usize {
                    self.contention.pop_first();
                }
            }
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
}
