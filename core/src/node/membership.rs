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

    /// Records a voter's answer to the current phase (`stage`, under `instance` and `ballot`);
    /// false, and nothing recorded, for an answer that is late, duplicated or not a voter's.
    fn record(&mut self, stage: Stage, instance: u64, ballot: Ballot, from: NodeId, granted: bool) -> bool {
        if self.stage != stage
            || self.instance != instance
            || self.ballot != ballot
            || !self.voters.contains(&from)
            || self.answered.contains(&from)
        {
            return false;
        }
        self.answered.push(from);
        if granted {
            self.granted.push(from);
        } else {
            self.refused.push(from);
        }
        true
    }

    /// Whether the refusals leave no majority possible.
    fn lost(&self) -> bool {
        self.refused.len() > self.voters.len() - self.majority()
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
        if !proposal.record(Stage::Prepare, instance, ballot, from, result.is_ok()) {
            return;
        }
        if let Ok(Some((ballot, layout))) = result {
            if proposal.highest.as_ref().is_none_or(|(highest, _)| ballot > *highest) {
                proposal.highest = Some((ballot, *layout));
            }
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
        } else if proposal.lost() {
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
        if !proposal.record(Stage::Accept, instance, ballot, from, result.is_ok()) {
            return;
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
        } else if proposal.lost() {
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

    /// A layout this node accepted for the next epoch may have been decided by a proposer that
    /// crashed before anyone learned it (or be half-way). After a gossip interval without
    /// learning the epoch, this node runs the instance itself: the Paxos rule makes it propose
    /// the highest layout accepted by a majority, so a decided layout is learned and an
    /// undecided one is decided or replaced, never two.
    pub(super) fn finish_layout_instance(&mut self) {
        let Some(vote) = &self.layout_vote else { return };
        let waited = self.now >= self.layout_accepted_at + self.config.gossip_interval();
        if vote.instance != self.layout.epoch() + 1 || !waited || !self.layout.is_member(self.id) {
            return;
        }
        let Some((_, accepted)) = &vote.accepted else { return };
        let accepted = accepted.clone();
        if !self.txns.values().any(|txn| matches!(txn, Txn::Proposal(_))) {
            self.propose_layout(accepted, None, false);
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
                self.layout_accepted_at = self.now;
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

/// What the claimant of a joint epoch knows of its old homes (rebuilt by asking again after a
/// restart: every node's own progress is durable).
pub(super) struct Claim {
    epoch: u64,
    learned: std::collections::BTreeSet<NodeId>,
    synced: std::collections::BTreeSet<NodeId>,
    /// Once set, old homes are told to sync.
    barrier: bool,
}

/// This node rewriting the keys of its moving arcs in a joint epoch (the identity rounds).
pub(super) struct SyncWork {
    epoch: u64,
    queue: std::collections::VecDeque<crate::types::Blob>,
    /// Rewrites in flight: txn -> key.
    in_flight: std::collections::BTreeMap<u64, crate::types::Blob>,
    rewritten: u64,
}

/// Identity rounds one node keeps in flight while it syncs.
const SYNC_ROUNDS_MAX: usize = 64;

impl Node {
    // ----- A transition: barrier, sync, settle. -----

    /// The old homes of the moving arcs that can take part (not removed or replaced).
    fn old_homes(transition: &crate::layout::Transition) -> Vec<NodeId> {
        let mut olds: Vec<NodeId> = transition.moves.iter().flat_map(|arc| arc.from.iter().copied()).collect();
        olds.sort();
        olds.dedup();
        olds.retain(|node| !transition.silent.contains(node));
        olds
    }

    /// Whether every arc has at most `spare` old homes outside `done` (silent ones count as
    /// outside).
    fn every_arc_has(
        transition: &crate::layout::Transition,
        done: &std::collections::BTreeSet<NodeId>,
        spare: u32,
    ) -> bool {
        transition.moves.iter().all(|arc| arc.from.iter().filter(|node| !done.contains(node)).count() as u32 <= spare)
    }

    /// The claimant's timer: ask the old homes how far they are, and move the transition on.
    pub(super) fn transition_tick(&mut self) {
        self.schedule(self.now + self.config.request_timeout(), Timer::Transition);
        if self.admission != Admission::Admitted {
            return;
        }
        let Some(transition) = self.layout.transition() else {
            self.claim = None;
            return;
        };
        // The claimant drives; if it is gone (crashed for good, replaced by this very change),
        // the old homes take over one by one, each after a longer silence, so that one of them
        // soon queries the rest (which resets their wait). Several claimants at once are safe:
        // queries change nothing, and the settled epoch is decided by Paxos.
        if transition.claimant != self.id {
            let olds = Node::old_homes(transition);
            let Some(rank) = olds.iter().position(|node| *node == self.id) else { return };
            let patience = (rank as u64 + 2) * 2 * self.config.gossip_interval();
            if self.now < self.claim_heard_at + patience {
                return;
            }
        }
        let epoch = self.layout.epoch();
        if self.claim.as_ref().is_none_or(|claim| claim.epoch != epoch) {
            self.claim = Some(Claim { epoch, learned: Default::default(), synced: Default::default(), barrier: false });
        }
        self.transition_progress();
        let Some(claim) = &self.claim else { return };
        let Some(transition) = self.layout.transition() else { return };
        let waiting: Vec<NodeId> = Node::old_homes(transition)
            .into_iter()
            .filter(|node| if claim.barrier { !claim.synced.contains(node) } else { !claim.learned.contains(node) })
            .collect();
        let sync = claim.barrier;
        for node in waiting {
            self.send(node, Message::TransitionQuery { epoch, sync });
        }
    }

    /// Checks the barrier and the sync reports, and proposes the settled epoch once enough old
    /// homes are done (ARCHITECTURE.md: the barrier, every chosen value is carried over).
    fn transition_progress(&mut self) {
        let (read, write) = (self.config.read_quorum, self.config.write_quorum);
        let Some(transition) = self.layout.transition().cloned() else { return };
        let Some(claim) = &mut self.claim else { return };
        if claim.epoch != self.layout.epoch() {
            return;
        }
        if !claim.barrier && Node::every_arc_has(&transition, &claim.learned, read.min(write) - 1) {
            claim.barrier = true;
            let epoch = claim.epoch;
            self.emit(crate::trace::TraceKind::BarrierReached { epoch });
        }
        let Some(claim) = &self.claim else { return };
        if claim.barrier && Node::every_arc_has(&transition, &claim.synced, write - 1) {
            let settled = self.layout.settled().expect("a joint epoch settles");
            let proposing = self.txns.values().any(|txn| matches!(txn, Txn::Proposal(_)));
            if !proposing {
                self.propose_layout(settled, None, false);
            }
        }
    }

    pub(super) fn on_transition_query(&mut self, from: NodeId, epoch: u64, sync: bool) {
        if epoch != self.layout.epoch() || self.layout.transition().is_none() {
            // Behind: it learns the layout from the query's epoch first. Ahead: the claimant
            // learns the settled layout from this node's.
            return;
        }
        if from != self.id {
            self.claim_heard_at = self.now;
        }
        if sync && self.synced_epoch != epoch && self.sync.is_none() {
            self.start_sync(epoch);
        }
        let synced = self.synced_epoch == epoch;
        self.send(from, Message::TransitionReport { epoch, synced });
    }

    pub(super) fn on_transition_report(&mut self, from: NodeId, epoch: u64, synced: bool) {
        let Some(claim) = &mut self.claim else { return };
        if claim.epoch != epoch {
            return;
        }
        let news = claim.learned.insert(from) | (synced && claim.synced.insert(from));
        if news {
            self.transition_progress();
        }
    }

    /// Starts rewriting every key of a moving arc this node is an old home of: a joint write
    /// of its newest record under a fresh ballot (or a joint prepare that finds none), begun
    /// after this node durably learned `epoch`.
    fn start_sync(&mut self, epoch: u64) {
        let id = self.id;
        let queue = self
            .store
            .keys()
            .filter(|key| {
                let electorate = self.electorate(key.as_bytes());
                electorate.is_joint() && electorate.old.contains(&id)
            })
            .cloned()
            .collect();
        self.sync = Some(SyncWork { epoch, queue, in_flight: Default::default(), rewritten: 0 });
        self.emit(crate::trace::TraceKind::SyncStarted { epoch });
        self.sync_pump();
    }

    fn sync_pump(&mut self) {
        loop {
            let Some(sync) = &mut self.sync else { return };
            if sync.in_flight.len() >= SYNC_ROUNDS_MAX {
                return;
            }
            let Some(key) = sync.queue.pop_front() else { break };
            let txn = self.next_txn + 1;
            self.next_txn = txn;
            let Some(sync) = &mut self.sync else { return };
            sync.in_flight.insert(txn, key.clone());
            let op = crate::types::OpId { client: crate::types::ClientId(u64::MAX - self.id.0 as u64), seq: txn };
            self.start_write(txn, key, op, super::write::WriteValue::Rewrite, super::coordinate::ReplyTo::Sync(txn));
        }
        let Some(sync) = &self.sync else { return };
        if sync.in_flight.is_empty() {
            let sync = self.sync.take().expect("checked above");
            self.synced_epoch = sync.epoch;
            self.synced_epoch_unpersisted = true;
            self.emit(crate::trace::TraceKind::SyncFinished { epoch: sync.epoch, keys: sync.rewritten });
            if let Some(transition) = self.layout.transition() {
                let claimant = transition.claimant;
                self.send(claimant, Message::TransitionReport { epoch: sync.epoch, synced: true });
            }
        }
    }

    /// An identity round ended: done, or the key goes to the back of the queue.
    pub(super) fn sync_round_done(&mut self, txn: u64, reply: crate::message::ClientReply) {
        let Some(sync) = &mut self.sync else { return };
        let Some(key) = sync.in_flight.remove(&txn) else { return };
        if reply == crate::message::ClientReply::Written {
            sync.rewritten += 1;
        } else {
            sync.queue.push_back(key);
        }
        self.sync_pump();
    }

    /// A layout was taken in: work of an older transition ends, and the claimant of a new one
    /// starts counting.
    pub(super) fn transition_follows_layout(&mut self) {
        let epoch = self.layout.epoch();
        if self.sync.as_ref().is_some_and(|sync| sync.epoch != epoch) {
            self.sync = None;
        }
        if self.claim.as_ref().is_some_and(|claim| claim.epoch != epoch) {
            self.claim = None;
        }
        self.claim_heard_at = self.now;
        // Slots this node no longer votes on go once the layout is durable (`forget`).
        self.forget_pending = true;
    }

    /// Drops every slot whose key this node no longer votes on: its arc moved to other homes
    /// and the settled layout is durable here, so it refuses every vote of the joint epoch
    /// (the epoch fence). The round floor keeps its ballots unique without the promises.
    pub(super) fn forget(&mut self) {
        self.forget_pending = false;
        let id = self.id;
        let gone: Vec<crate::types::Blob> =
            self.store.keys().filter(|key| !self.electorate(key.as_bytes()).contains(id)).cloned().collect();
        if gone.is_empty() {
            return;
        }
        for key in &gone {
            self.store.remove(key);
            self.dirty_slots.remove(key);
            self.leases.remove(key);
        }
        self.anti_entropy = super::background::AntiEntropy::new(self.id, &self.layout, &self.ring, &self.store);
        self.round_floor = self.round;
        self.round_floor_unpersisted = true;
        self.emit(crate::trace::TraceKind::RangesForgotten { keys: gone.len() as u64 });
        self.slots_removed.extend(gone);
    }
}
