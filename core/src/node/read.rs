//! Quorum reads with read repair. A read asks the N homes and waits for R answers; if fewer
//! than W of them hold the newest record, it writes that record back to the stale ones (read
//! repair) until W hold it, and only then answers, so no later read can return something older.
//! Like writes, a coordinator runs at most one read round per key: reads that arrive meanwhile
//! wait and share the next round (never the one in flight, which may have read the replicas
//! before a write that finished since).

use crate::layout::Electorate;
use crate::message::{AcceptPurpose, ClientOp, ClientReply, ClientRequest, Message, Refusal, Unavailable};
use crate::store::Record;
use crate::trace::{Phase, TraceKind};
use crate::types::{Blob, Micros, NodeId, OpId};
use crate::version::Ballot;

use super::coordinate::{resend_wait_until, silent, take_expired, ReplyTo, Txn};
use super::{Node, Timer};

/// Where a read round is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadStage {
    Read,
    /// Writing the newest record back to the stale homes before answering.
    Repair,
    /// Refused: waiting a random pause before reading again.
    Backoff,
}

/// A read round on one key. Like writes, a coordinator runs at most one per key: reads that
/// arrive meanwhile wait and share the next round, which starts after each of them arrived and
/// ends before any is answered, so its result is a valid answer for every one of them.
pub(super) struct Read {
    key: Blob,
    /// Who is read (fixed per round: a new round takes the layout of its time), and every one
    /// of them once.
    electorate: Electorate,
    homes: Vec<NodeId>,
    requests: Vec<ReadRequest>,
    /// The earliest deadline of `requests`.
    deadline: Micros,
    stage: ReadStage,
    round_until: Micros,
    /// As `Write::resent`.
    resent: u32,
    answered: Vec<NodeId>,
    /// Those that answered with their record, and those that refused.
    granted: Vec<NodeId>,
    refused: Vec<NodeId>,
    best: Option<Record>,
    holders: Vec<NodeId>,
}

/// A read waiting for its answer.
pub(super) struct ReadRequest {
    op: OpId,
    reply_to: ReplyTo,
    deadline: Micros,
}

impl Node {
    pub(super) fn start_read(&mut self, txn: u64, key: Blob, op: OpId, reply_to: ReplyTo) {
        let request = ReadRequest { op, reply_to, deadline: self.now + self.config.operation_timeout() };
        if self.reading.get(&key).is_some_and(|active| self.txns.contains_key(active)) {
            self.queued_reads.entry(key).or_default().push(request);
            return;
        }
        self.start_read_round(txn, key, vec![request]);
    }

    fn start_read_round(&mut self, txn: u64, key: Blob, requests: Vec<ReadRequest>) {
        let electorate = self.electorate(key.as_bytes());
        let deadline = requests.iter().map(|request| request.deadline).min().unwrap_or(self.now);
        self.reading.insert(key.clone(), txn);
        let read = Read {
            key,
            homes: electorate.all(),
            electorate,
            requests,
            deadline,
            stage: ReadStage::Read,
            round_until: 0,
            resent: 0,
            answered: Vec::new(),
            granted: Vec::new(),
            refused: Vec::new(),
            best: None,
            holders: Vec::new(),
        };
        self.txns.insert(txn, Txn::Read(read));
        self.read_round(txn);
    }

    /// The layout changed: every read round still running reads again with the new
    /// electorate, or, where this node no longer votes on its key, is routed to one that does.
    pub(super) fn restart_read_rounds(&mut self) {
        let running: Vec<u64> =
            self.txns.iter().filter(|(_, txn)| matches!(txn, Txn::Read(_))).map(|(txn, _)| *txn).collect();
        for txn in running {
            let Some(Txn::Read(read)) = self.txns.get(&txn) else { continue };
            let electorate = self.electorate(read.key.as_bytes());
            if electorate.contains(self.id) {
                if let Some(Txn::Read(read)) = self.txns.get_mut(&txn) {
                    read.homes = electorate.all();
                    read.electorate = electorate;
                }
                self.read_round(txn);
                continue;
            }
            let Some(Txn::Read(read)) = self.txns.remove(&txn) else { continue };
            self.read_round_over(&read.key);
            for request in read.requests {
                let op = ClientOp::Get { key: read.key.clone() };
                self.route(ClientRequest { id: request.op, op }, request.reply_to);
            }
        }
    }

    fn read_round(&mut self, txn: u64) {
        let until = self.now + self.config.request_timeout();
        let Some(Txn::Read(read)) = self.txns.get_mut(&txn) else { return };
        read.stage = ReadStage::Read;
        read.round_until = until;
        read.resent = 0;
        read.answered.clear();
        read.granted.clear();
        read.refused.clear();
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
        let Some(Txn::Read(read)) = self.txns.get_mut(&txn) else { return };
        if read.answered.contains(&from) || !read.homes.contains(&from) {
            return;
        }
        let granted = result.is_ok();
        match (read.stage, result) {
            (ReadStage::Read, Ok(record)) => {
                read.answered.push(from);
                read.granted.push(from);
                let ballot = record.as_ref().map(|record| record.ballot);
                let best = read.best.as_ref().map(|record| record.ballot);
                if ballot > best {
                    read.best = record;
                    read.holders = vec![from];
                } else if ballot == best {
                    read.holders.push(from);
                }
            }
            (ReadStage::Read, Err(_)) => {
                read.answered.push(from);
                read.refused.push(from);
            }
            (ReadStage::Repair, Ok(record)) => {
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
        let votes = read.granted.len() as u32;
        let reached = read.electorate.reached(&read.granted, needed);
        let lost = read.electorate.lost(&read.refused, needed);
        if self.trace {
            self.emit(TraceKind::VoteCounted { txn, phase: Phase::Read, from, granted, votes, needed });
        }
        if reached {
            self.emit(TraceKind::QuorumReached { txn, phase: Phase::Read });
            self.read_repair(txn);
        } else if lost {
            let resume = self.backoff();
            if let Some(Txn::Read(read)) = self.txns.get_mut(&txn) {
                read.stage = ReadStage::Backoff;
                read.round_until = resume;
            }
            self.schedule(resume, Timer::Txn(txn));
        }
    }

    /// The newest record must be on W replicas (W of each home set, while the key's arc moves)
    /// before the read answers; write it back to the stale ones.
    fn read_repair(&mut self, txn: u64) {
        let needed = self.config.write_quorum;
        let until = self.now + self.config.request_timeout();
        let Some(Txn::Read(read)) = self.txns.get_mut(&txn) else { return };
        let Some(best) = read.best.clone() else {
            // No replica of the quorum holds anything: the key was never written.
            return self.read_maybe_done(txn);
        };
        if read.electorate.reached(&read.holders, needed) {
            return self.read_maybe_done(txn);
        }
        read.stage = ReadStage::Repair;
        read.round_until = until;
        let stale: Vec<NodeId> = read.homes.iter().filter(|home| !read.holders.contains(home)).copied().collect();
        let key = read.key.clone();
        if self.trace {
            let ops = read.requests.iter().map(|request| request.op).collect();
            self.emit(TraceKind::PhaseStarted { txn, phase: Phase::ReadRepair, ballot: best.ballot, needed, ops });
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

    pub(super) fn on_repair_accepted(&mut self, txn: u64, from: NodeId, ballot: Ballot, result: Result<(), Refusal>) {
        let resume = self.backoff();
        let Some(Txn::Read(read)) = self.txns.get_mut(&txn) else { return };
        if read.stage != ReadStage::Repair
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
            read.stage = ReadStage::Backoff;
            read.round_until = resume;
            self.schedule(resume, Timer::Txn(txn));
        }
    }

    fn read_maybe_done(&mut self, txn: u64) {
        let needed = self.config.write_quorum;
        let Some(Txn::Read(read)) = self.txns.get(&txn) else { return };
        if read.best.is_some() && !read.electorate.reached(&read.holders, needed) {
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

    pub(super) fn read_timer(&mut self, txn: u64) {
        let now = self.now;
        let Some(Txn::Read(read)) = self.txns.get(&txn) else { return };
        if now < read.round_until {
            return;
        }
        if read.stage != ReadStage::Backoff {
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
        if read.stage != ReadStage::Read {
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
}
