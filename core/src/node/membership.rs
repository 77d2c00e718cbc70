//! Membership: the operator's requests, and the layout Paxos that decides every epoch
//! (ARCHITECTURE.md, "Membership changes").
//!
//! Epoch e + 1 is a single-decree Paxos instance among the members of epoch e. Every node is an
//! acceptor of the instance after its own layout's (`LayoutVote`, durable); the node an
//! operator commits at proposes. A proposer that finds a layout already accepted for the
//! instance proposes that one and reports its own change as lost, so at most one layout is
//! ever decided per epoch, and two operators committing at once are safe. A decided layout is
//! taken in by the proposer and spreads by gossip.

use crate::layout::{Layout, LayoutVote, Plan};
use crate::membership::{
    AdminRefusal, AdminReply, AdminRequest, ClusterStatus, MoveSummary, PlanSummary, TransitionProgress,
};
use crate::message::{LayoutRefusal, Message};
use crate::ring::Position;
use crate::store::Staged;
use crate::types::{Micros, NodeId};
use crate::version::Ballot;

use super::coordinate::{resend_wait_until, silent, Txn};
use super::{Admission, Node, Output, Timer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Prepare,
    Accept,
    /// Refused: waiting a random pause before a higher ballot.
    Backoff,
}

/// A layout this node proposes for the next epoch.
pub(super) struct Proposal {
    instance: u64,
    ballot: Ballot,
    stage: Stage,
    /// What this node wants decided.
    own: Layout,
    /// What phase 2 proposes: the highest layout accepted by the promising majority, else `own`.
    value: Option<Layout>,
    voters: Vec<NodeId>,
    answered: Vec<NodeId>,
    granted: Vec<NodeId>,
    refused: Vec<NodeId>,
    highest: Option<(Ballot, Layout)>,
    /// The operator request waiting for the outcome, if any.
    handle: Option<u64>,
    /// The plan was the one staged here: once it is decided, nothing is staged any more.
    from_staged: bool,
    until: Micros,
    deadline: Micros,
    resent: u32,
}

impl Proposal {
    fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn phase_message(&self, txn: u64) -> Option<Message> {
        let (instance, ballot) = (self.instance, self.ballot);
        match (self.stage, &self.value) {
            (Stage::Prepare, _) => Some(Message::LayoutPrepare { txn, instance, ballot }),
            (Stage::Accept, Some(value)) => {
                Some(Message::LayoutAccept { txn, instance, ballot, layout: Box::new(value.clone()) })
            }
            _ => None,
        }
    }
}

impl Node {
    // ----- Operator requests. -----

    pub(super) fn handle_admin(&mut self, handle: u64, request: AdminRequest) {
        if self.admission != Admission::Admitted {
            return self.admin_reply(handle, AdminReply::Refused(AdminRefusal::NotServing));
        }
        let reply = match request {
            AdminRequest::Status => AdminReply::Status(self.status()),
            AdminRequest::Stage(change) => {
                let base_epoch =
                    if self.staged.changes.is_empty() { self.layout.epoch() } else { self.staged.base_epoch };
                let mut changes = self.staged.changes.clone();
                changes.push(change);
                // Staged only if the plan would still be valid (on the layout it is staged on).
                match self.plan(&changes) {
                    Err(error) if base_epoch == self.layout.epoch() => AdminReply::Refused(AdminRefusal::Plan(error)),
                    _ => {
                        self.staged = Staged { base_epoch, changes };
                        self.staged_unpersisted = true;
                        AdminReply::Staged(self.staged.changes.clone())
                    }
                }
            }
            AdminRequest::Clear => {
                if !self.staged.changes.is_empty() {
                    self.staged = Staged::default();
                    self.staged_unpersisted = true;
                }
                AdminReply::Staged(Vec::new())
            }
            AdminRequest::Plan => match self.staged_plan() {
                Ok(plan) => AdminReply::Planned(self.summary(&plan)),
                Err(refusal) => AdminReply::Refused(refusal),
            },
            AdminRequest::Commit => match self.staged_plan() {
                Ok(plan) => return self.commit(plan, handle, true),
                Err(refusal) => AdminReply::Refused(refusal),
            },
            AdminRequest::CommitChanges(changes) => match self.plan(&changes) {
                Ok(plan) => return self.commit(plan, handle, false),
                Err(error) => AdminReply::Refused(AdminRefusal::Plan(error)),
            },
        };
        self.admin_reply(handle, reply);
    }

    fn admin_reply(&mut self, handle: u64, reply: AdminReply) {
        let need = self.batch_of_current_changes();
        self.pending.push((need, Output::AdminReply { handle, reply }));
    }

    fn plan(&self, changes: &[crate::layout::Change]) -> Result<Plan, crate::layout::PlanError> {
        self.layout.plan(changes, self.config.read_quorum, self.config.write_quorum, self.id)
    }

    /// The staged changes' plan, refused if they were staged on another epoch.
    fn staged_plan(&self) -> Result<Plan, AdminRefusal> {
        let epoch = self.layout.epoch();
        if !self.staged.changes.is_empty() && self.staged.base_epoch != epoch {
            return Err(AdminRefusal::Stale { base: self.staged.base_epoch, epoch });
        }
        self.plan(&self.staged.changes).map_err(AdminRefusal::Plan)
    }

    fn commit(&mut self, plan: Plan, handle: u64, from_staged: bool) {
        if !self.layout.is_member(self.id) {
            let node = self.layout.name(self.id).to_string();
            return self.admin_reply(handle, AdminReply::Refused(AdminRefusal::NotMember { node }));
        }
        self.propose_layout(plan.next, Some(handle), from_staged);
    }

    /// What a plan moves, by name, with the keys and bytes estimated from this node's store: a
    /// node holds about `replicas / members` of the keys, spread evenly around the ring.
    fn summary(&self, plan: &Plan) -> PlanSummary {
        let members = self.layout.members().len().max(1) as f64;
        let scale = members / self.config.replicas as f64;
        let (mut keys, mut bytes) = (0u64, 0u64);
        for (key, state) in &self.store {
            if state.slot.record.is_some() {
                keys += 1;
                bytes += (key.len() + state.slot.record.as_ref().map_or(0, |r| r.wire_bytes_max())) as u64;
            }
        }
        let (total_keys, total_bytes) = (keys as f64 * scale, bytes as f64 * scale);
        let name = |node: &NodeId| plan.next.name(*node).to_string();
        let moves: Vec<MoveSummary> = plan
            .moves
            .iter()
            .map(|arc| {
                let share = arc_share(&arc.start, &arc.end);
                let (start, end) = MoveSummary::arc(&arc.start, &arc.end);
                MoveSummary {
                    start,
                    end,
                    from: arc.from.iter().map(name).collect(),
                    to: arc.to.iter().map(name).collect(),
                    keys_estimate: (total_keys * share).round() as u64,
                    bytes_estimate: (total_bytes * share).round() as u64,
                }
            })
            .collect();
        PlanSummary {
            base_epoch: plan.base_epoch,
            changes: plan.changes.clone(),
            keys_estimate: moves.iter().map(|arc| arc.keys_estimate).sum(),
            bytes_estimate: moves.iter().map(|arc| arc.bytes_estimate).sum(),
            moves,
        }
    }

    fn status(&self) -> ClusterStatus {
        let layout = &self.layout;
        let name = |node: &NodeId| layout.name(*node).to_string();
        let transitions = layout
            .transition()
            .map(|transition| {
                transition
                    .moves
                    .iter()
                    .map(|arc| {
                        let (start, end) = MoveSummary::arc(&arc.start, &arc.end);
                        let (from, to) = (arc.from.iter().map(name).collect(), arc.to.iter().map(name).collect());
                        MoveSummary { start, end, from, to, keys_estimate: 0, bytes_estimate: 0 }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let progress = layout.transition().map(|transition| TransitionProgress {
            claimant: name(&transition.claimant),
            learned: 0,
            learning: 0,
            synced: 0,
            syncing: 0,
        });
        ClusterStatus {
            node: name(&self.id),
            epoch: layout.epoch(),
            members: layout.members().iter().map(name).collect(),
            transitions,
            progress,
            staged: self.staged.changes.clone(),
        }
    }

    // ----- The layout Paxos: proposer. -----

    /// Proposes `own` as the next epoch; `handle` hears the outcome.
    pub(super) fn propose_layout(&mut self, own: Layout, handle: Option<u64>, from_staged: bool) {
        let busy = self.txns.values().any(|txn| matches!(txn, Txn::Proposal(_)));
        if busy {
            if let Some(handle) = handle {
                self.admin_reply(handle, AdminReply::Refused(AdminRefusal::Busy));
            }
            return;
        }
        debug_assert_eq!(own.epoch(), self.layout.epoch() + 1, "a proposal is for the next epoch");
        let txn = self.new_txn();
        let proposal = Proposal {
            instance: own.epoch(),
            ballot: Ballot::ZERO,
            stage: Stage::Prepare,
            own,
            value: None,
            voters: self.layout.members(),
            answered: Vec::new(),
            granted: Vec::new(),
            refused: Vec::new(),
            highest: None,
            handle,
            from_staged,
            until: 0,
            deadline: self.now + self.config.operation_timeout(),
            resent: 0,
        };
        self.txns.insert(txn, Txn::Proposal(Box::new(proposal)));
        self.proposal_prepare(txn);
    }

    fn next_layout_round(&mut self) -> u64 {
        self.layout_round += 1;
        self.layout_round
    }

    fn observe_layout_ballot(&mut self, ballot: Ballot) {
        self.layout_round = self.layout_round.max(ballot.round);
    }

    fn proposal_prepare(&mut self, txn: u64) {
        let ballot = Ballot { round: self.next_layout_round(), node: self.id };
        let until = self.now + self.config.request_timeout();
        let Some(Txn::Proposal(proposal)) = self.txns.get_mut(&txn) else { return };
        proposal.ballot = ballot;
        proposal.stage = Stage::Prepare;
        proposal.value = None;
        proposal.highest = None;
        proposal.answered.clear();
        proposal.granted.clear();
        proposal.refused.clear();
        proposal.until = until;
        proposal.resent = 0;
        self.send_phase(txn);
        self.schedule(until, Timer::Txn(txn));
    }

    fn send_phase(&mut self, txn: u64) {
        let Some(Txn::Proposal(proposal)) = self.txns.get(&txn) else { return };
        let Some(message) = proposal.phase_message(txn) else { return };
        for voter in silent(&proposal.voters, &proposal.answered) {
            self.send(voter, message.clone());
        }
    }

    pub(super) fn on_layout_promise(
        &mut self,
        txn: u64,
        from: NodeId,
        instance: u64,
        ballot: Ballot,
        result: Result<Option<(Ballot, Box<Layout>)>, LayoutRefusal>,
    ) {
        if let Err(LayoutRefusal::Promised(promised)) = &result {
            self.observe_layout_ballot(*promised);
        }
        let Some(Txn::Proposal(proposal)) = self.txns.get_mut(&txn) else { return };
        if proposal.stage != Stage::Prepare
            || proposal.instance != instance
            || proposal.ballot != ballot
            || !proposal.voters.contains(&from)
            || proposal.answered.contains(&from)
        {
            return;
        }
        proposal.answered.push(from);
        match result {
            Ok(accepted) => {
                proposal.granted.push(from);
                if let Some((ballot, layout)) = accepted {
                    if proposal.highest.as_ref().is_none_or(|(highest, _)| ballot > *highest) {
                        proposal.highest = Some((ballot, *layout));
                    }
                }
            }
            Err(_) => proposal.refused.push(from),
        }
        if proposal.granted.len() == proposal.majority() {
            // The Paxos rule: a layout a promising acceptor accepted may have been decided.
            let value = match proposal.highest.take() {
                Some((_, layout)) => layout,
                None => proposal.own.clone(),
            };
            proposal.value = Some(value);
            proposal.stage = Stage::Accept;
            proposal.answered.clear();
            proposal.granted.clear();
            proposal.refused.clear();
            proposal.resent = 0;
            proposal.until = self.now + self.config.request_timeout();
            let until = proposal.until;
            self.send_phase(txn);
            self.schedule(until, Timer::Txn(txn));
        } else if proposal.refused.len() > proposal.voters.len() - proposal.majority() {
            self.proposal_backoff(txn);
        }
    }

    pub(super) fn on_layout_accepted(
        &mut self,
        txn: u64,
        from: NodeId,
        instance: u64,
        ballot: Ballot,
        result: Result<(), LayoutRefusal>,
    ) {
        if let Err(LayoutRefusal::Promised(promised)) = &result {
            self.observe_layout_ballot(*promised);
        }
        let Some(Txn::Proposal(proposal)) = self.txns.get_mut(&txn) else { return };
        if proposal.stage != Stage::Accept
            || proposal.instance != instance
            || proposal.ballot != ballot
            || !proposal.voters.contains(&from)
            || proposal.answered.contains(&from)
        {
            return;
        }
        proposal.answered.push(from);
        match result {
            Ok(()) => proposal.granted.push(from),
            Err(_) => proposal.refused.push(from),
        }
        if proposal.granted.len() == proposal.majority() {
            let Some(Txn::Proposal(proposal)) = self.txns.remove(&txn) else { return };
            let decided = proposal.value.clone().expect("phase 2 has a value");
            let epoch = decided.epoch();
            let won = decided == proposal.own;
            self.emit(crate::trace::TraceKind::LayoutDecided { epoch });
            if self.layout.epoch() < epoch {
                self.adopt_layout(decided, None);
            }
            self.proposal_over(proposal, won, epoch);
        } else if proposal.refused.len() > proposal.voters.len() - proposal.majority() {
            self.proposal_backoff(txn);
        }
    }

    fn proposal_backoff(&mut self, txn: u64) {
        let resume = self.backoff();
        let Some(Txn::Proposal(proposal)) = self.txns.get_mut(&txn) else { return };
        proposal.stage = Stage::Backoff;
        proposal.until = resume;
        self.schedule(resume, Timer::Txn(txn));
    }

    pub(super) fn proposal_timer(&mut self, txn: u64) {
        let now = self.now;
        let timeout = self.config.request_timeout();
        let Some(Txn::Proposal(proposal)) = self.txns.get_mut(&txn) else { return };
        if now < proposal.until {
            return;
        }
        if now >= proposal.deadline {
            let Some(Txn::Proposal(proposal)) = self.txns.remove(&txn) else { return };
            if let Some(handle) = proposal.handle {
                let refusal = AdminRefusal::NoQuorum { epoch: proposal.instance };
                self.admin_reply(handle, AdminReply::Refused(refusal));
            }
            return;
        }
        if proposal.stage == Stage::Backoff {
            return self.proposal_prepare(txn);
        }
        // Silence is not a refusal: the phase goes out again to those that have not answered.
        proposal.resent += 1;
        proposal.until = resend_wait_until(now, timeout, proposal.resent, proposal.deadline);
        let until = proposal.until;
        self.send_phase(txn);
        self.schedule(until, Timer::Txn(txn));
    }

    /// The node took in a layout of epoch `epoch`: a proposal for that epoch or an older one is
    /// over (decided by someone else, or by a majority this node did not hear from).
    pub(super) fn proposals_overtaken(&mut self, epoch: u64) {
        let over: Vec<u64> = self
            .txns
            .iter()
            .filter(|(_, txn)| matches!(txn, Txn::Proposal(proposal) if proposal.instance <= epoch))
            .map(|(txn, _)| *txn)
            .collect();
        for txn in over {
            let Some(Txn::Proposal(proposal)) = self.txns.remove(&txn) else { continue };
            let won = proposal.instance == epoch && self.layout == proposal.own;
            let instance = proposal.instance;
            self.proposal_over(proposal, won, instance);
        }
    }

    /// Answers the operator: the proposal's layout was decided (`won`), or another one.
    fn proposal_over(&mut self, proposal: Box<Proposal>, won: bool, epoch: u64) {
        if won && proposal.from_staged {
            self.staged = Staged::default();
            self.staged_unpersisted = true;
        }
        if let Some(handle) = proposal.handle {
            let reply =
                if won { AdminReply::Committed { epoch } } else { AdminReply::Refused(AdminRefusal::Lost { epoch }) };
            self.admin_reply(handle, reply);
        }
    }

    // ----- The layout Paxos: acceptor. -----

    /// This node votes on the instance after its own layout's epoch only: an older one is
    /// decided (the proposer learns the layout by gossip), a newer one it cannot judge yet.
    fn layout_vote_for(&mut self, instance: u64) -> Result<&mut LayoutVote, LayoutRefusal> {
        let epoch = self.layout.epoch();
        if instance != epoch + 1 || !self.layout.is_member(self.id) {
            return Err(LayoutRefusal::Epoch(epoch));
        }
        if self.layout_vote.as_ref().is_none_or(|vote| vote.instance != instance) {
            self.layout_vote = Some(LayoutVote { instance, promised: Ballot::ZERO, accepted: None });
        }
        Ok(self.layout_vote.as_mut().expect("just set"))
    }

    pub(super) fn on_layout_prepare(&mut self, from: NodeId, txn: u64, instance: u64, ballot: Ballot) {
        self.observe_layout_ballot(ballot);
        let result = match self.layout_vote_for(instance) {
            Err(refusal) => Err(refusal),
            Ok(vote) if ballot < vote.promised => Err(LayoutRefusal::Promised(vote.promised)),
            Ok(vote) => {
                let accepted = vote.accepted.clone().map(|(ballot, layout)| (ballot, Box::new(layout)));
                if ballot > vote.promised {
                    vote.promised = ballot;
                    self.layout_vote_unpersisted = true;
                }
                Ok(accepted)
            }
        };
        self.send(from, Message::LayoutPromise { txn, instance, ballot, result });
    }

    pub(super) fn on_layout_accept(&mut self, from: NodeId, txn: u64, instance: u64, ballot: Ballot, layout: Layout) {
        self.observe_layout_ballot(ballot);
        let sound = if layout.epoch() != instance {
            Err(format!("epoch {} proposed for instance {instance}", layout.epoch()))
        } else {
            layout.check(&self.layout, &self.config)
        };
        let result = match (sound, self.layout_vote_for(instance)) {
            (_, Err(refusal)) => Err(refusal),
            (Err(problem), _) => Err(LayoutRefusal::Malformed(problem)),
            (Ok(()), Ok(vote)) if ballot < vote.promised => Err(LayoutRefusal::Promised(vote.promised)),
            (Ok(()), Ok(vote)) => {
                vote.promised = ballot;
                vote.accepted = Some((ballot, layout));
                self.layout_vote_unpersisted = true;
                Ok(())
            }
        };
        self.send(from, Message::LayoutAccepted { txn, instance, ballot, result });
    }
}

/// The fraction of the ring an arc `(start, end]` covers (the whole ring when they are equal).
fn arc_share(start: &Position, end: &Position) -> f64 {
    let value = |position: &Position| u64::from_be_bytes(position[..8].try_into().expect("20 bytes")) as f64;
    let span = value(end) - value(start);
    let ring = u64::MAX as f64 + 1.0;
    if span > 0.0 {
        span / ring
    } else {
        (span + ring) / ring
    }
}
