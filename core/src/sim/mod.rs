//! A deterministic, discrete-event simulator of a whole cluster: nodes, network, disks, clients.
//!
//! Everything random is drawn from one seeded generator, events at equal times are ordered by
//! insertion, and nodes only see time through `step(now, ..)`, so a run is reproduced exactly
//! from its `SimOptions` (seed included). The network delays, loses, duplicates and reorders
//! messages and honours one-way cuts; a crash drops a node with every persist batch that was not
//! yet durable. Clients record a `History` for the checker.
//!
//! The simulator is pure computation (no IO, no clock), so the browser runs it too.

mod options;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use options::{
    ClientTimeouts, CrashFaults, MembershipFaults, NetworkOptions, PartitionFaults, SimOptions, Workload,
};

use crate::checker::{check_final_values, check_history, CheckReport};
use crate::client::{Pending, Session};
use crate::history::{History, OpKind, Outcome};
use crate::layout::{Change, Layout};
use crate::membership::{AdminReply, AdminRequest};
use crate::message::{ClientOp, ClientReply, ClientRequest, Envelope};
use crate::node::{Admission, Input, Node, NodeOptions, Output};
use crate::ring::Ring;
use crate::store::{DurableState, PersistBatch, Record};
use crate::trace::{DropReason, TraceEvent, TraceKind};
use crate::types::{ms, Blob, ClientId, Micros, NodeId, OpId, Rng};

/// Something the simulator will do at a given time.
#[derive(Clone, Debug)]
enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        envelope: Envelope,
    },
    Request {
        to: NodeId,
        handle: u64,
        request: ClientRequest,
    },
    Response {
        client: usize,
        seq: u64,
        reply: ClientReply,
    },
    /// An operator's membership request arrives at `to`.
    Admin {
        to: NodeId,
        handle: u64,
        request: AdminRequest,
    },
    Tick {
        node: NodeId,
    },
    PersistDone {
        node: NodeId,
        life: u64,
    },
    ClientWake {
        client: usize,
        generation: u64,
    },
    Fault(FaultAction),
    /// The random crash plan: restart `down` if set, else crash a random node.
    CrashPlan {
        down: Option<NodeId>,
    },
    /// The random partition plan: heal `cut` if set, else cut a random link.
    PartitionPlan {
        cut: Option<Cut>,
    },
    /// The random membership plan: commit a random change.
    MembershipPlan,
}

/// A cut the random partition plan made, to heal.
#[derive(Clone, Copy, Debug)]
enum Cut {
    Link { from: NodeId, to: NodeId, both: bool },
    Isolate { node: NodeId, both: bool },
}

/// A fault a script or the random fault plan injects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultAction {
    Crash(NodeId),
    Restart(NodeId),
    /// Crash the node (if it is up) and erase its disk: it comes back (on `Restart`) with
    /// nothing stored, as a machine whose data directory was lost.
    Wipe(NodeId),
    /// Drop every message from `from` to `to` (one way).
    Cut {
        from: NodeId,
        to: NodeId,
    },
    Heal {
        from: NodeId,
        to: NodeId,
    },
    HealAll,
    /// Crash the node for good: its machine is decommissioned (a node removed or replaced).
    Retire(NodeId),
}

/// Boxed: a message with its record is large, and the heap moves entries on every push and pop.
struct Scheduled {
    at: Micros,
    seq: u64,
    event: Box<Event>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: `BinaryHeap` pops the earliest event, ties in insertion order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct NodeSlot {
    node: Option<Node>,
    durable: DurableState,
    /// Counts the node's boots and crashes, so a disk completion of an earlier life is ignored
    /// (the simulator's bookkeeping; the node's own incarnation is in `durable`).
    life: u64,
    /// Batches handed to the disk, oldest first.
    persisting: VecDeque<PersistBatch>,
    persist_free_at: Micros,
    tick_at: Option<Micros>,
    /// Decommissioned (`FaultAction::Retire`): never restarted.
    retired: bool,
}

/// A client's request in progress.
struct InFlight {
    /// The request, and the client's session while it is busy with it.
    pending: Pending,
    /// Index in the history (single-key operations only).
    history: Option<u64>,
    attempts: u32,
}

struct Client {
    /// The client's session while it is idle (`None` while `pending` holds it).
    session: Option<Session>,
    operations_left: u32,
    pending: Option<InFlight>,
    /// Bumped on every state change so stale wake-ups are ignored.
    generation: u64,
    /// Scripted clients send to this node; workload clients pick one at random per attempt.
    target: Option<NodeId>,
    /// The answer to the last finished request (`None` inside: it never came).
    last_reply: Option<Option<ClientReply>>,
    /// The id of the client's latest request.
    last_op: Option<OpId>,
}

/// Counters of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    pub events: u64,
    pub deliveries: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub crashes: u64,
    /// Crashes that also erased the disk (`FaultAction::Wipe`).
    pub wipes: u64,
    /// Membership changes the membership plan committed.
    #[serde(default)]
    pub membership_changes: u64,
    pub operations_completed: u64,
    pub operations_unknown: u64,
}

/// The simulator. See the module documentation.
pub struct Simulation {
    options: SimOptions,
    /// The newest layout any node holds, and its ring: what the checks judge homes by.
    layout: Layout,
    ring: Arc<Ring>,
    rng: Rng,
    now: Micros,
    queue: BinaryHeap<Scheduled>,
    next_seq: u64,
    nodes: Vec<NodeSlot>,
    cuts: BTreeSet<(NodeId, NodeId)>,
    loss_per_million: u32,
    duplicate_per_million: u32,
    clients: Vec<Client>,
    /// Handles of client requests in flight at nodes: handle -> (client, seq).
    handles: BTreeMap<u64, (usize, u64)>,
    next_handle: u64,
    history: History,
    trace: Vec<TraceEvent>,
    stats: SimStats,
    outputs: Vec<Output>,
    /// Set when the random fault plans stop (start of the liveness phase).
    faults_stopped: bool,
    next_value: u64,
    /// Answers to operator requests, in the order they came: (node, handle, reply).
    admin_replies: Vec<(NodeId, u64, AdminReply)>,
    /// The membership plan's change in flight: its handle, and the nodes to retire once it is
    /// committed (the old node of a replacement).
    membership_pending: Option<(u64, Vec<NodeId>)>,
    /// Names the membership plan has given to new nodes.
    names_made: u64,
    /// Nodes whose disk was wiped and that have not been admitted again: they refuse to serve
    /// until replaced.
    lost: BTreeSet<NodeId>,
}

impl Simulation {
    /// A cluster of fresh nodes; no clients yet. Panics on an invalid config (validate first).
    pub fn new(options: SimOptions) -> Simulation {
        options.config.validate().expect("SimOptions::config must be valid");
        let layout = Layout::from_config(&options.config);
        let ring = Arc::new(layout.ring());
        let mut rng = Rng::new(options.seed);
        let mut sim = Simulation {
            layout,
            ring: ring.clone(),
            rng: rng.fork(),
            now: 0,
            queue: BinaryHeap::new(),
            next_seq: 0,
            nodes: Vec::new(),
            cuts: BTreeSet::new(),
            loss_per_million: options.network.loss_per_million,
            duplicate_per_million: options.network.duplicate_per_million,
            clients: Vec::new(),
            handles: BTreeMap::new(),
            next_handle: 0,
            history: History::default(),
            trace: Vec::new(),
            stats: SimStats::default(),
            outputs: Vec::new(),
            faults_stopped: false,
            next_value: 0,
            admin_replies: Vec::new(),
            membership_pending: None,
            names_made: 0,
            lost: BTreeSet::new(),
            options,
        };
        for _ in 0..ring.node_count() {
            sim.add_slot(DurableState::default());
        }
        sim
    }

    /// A new node slot (the next `NodeId`) with `durable` on its disk, booted.
    fn add_slot(&mut self, durable: DurableState) {
        self.nodes.push(NodeSlot {
            node: None,
            durable,
            life: 0,
            persisting: VecDeque::new(),
            persist_free_at: 0,
            tick_at: None,
            retired: false,
        });
        self.boot(NodeId(self.nodes.len() as u32 - 1));
    }

    /// Follows the newest layout: the checks judge homes by it, and a node id it adds (a join,
    /// a replacement) becomes a new process that starts empty with that layout, as a node
    /// started with `--join` fetches it.
    fn follow_layout(&mut self, id: NodeId) {
        let Some(node) = self.nodes[id.index()].node.as_ref() else { return };
        if node.layout().epoch() <= self.layout.epoch() {
            return;
        }
        self.layout = node.layout().clone();
        self.ring = Arc::new(self.layout.ring());
        while self.nodes.len() < self.layout.node_count() {
            let durable = DurableState { layout: Some(self.layout.clone()), ..DurableState::default() };
            self.add_slot(durable);
        }
    }

    /// The newest layout any node holds.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn now(&self) -> Micros {
        self.now
    }

    pub fn options(&self) -> &SimOptions {
        &self.options
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn trace(&self) -> &[TraceEvent] {
        &self.trace
    }

    /// Takes the trace recorded so far (for streaming to a viewer).
    pub fn take_trace(&mut self) -> Vec<TraceEvent> {
        std::mem::take(&mut self.trace)
    }

    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Sends an operator's membership request to `node` now (lost if the node is down); its
    /// answer comes in `take_admin_replies` under the returned handle.
    pub fn admin(&mut self, node: NodeId, request: AdminRequest) -> u64 {
        self.next_handle += 1;
        let handle = self.next_handle;
        let at = self.now;
        self.schedule(at, Event::Admin { to: node, handle, request });
        handle
    }

    /// The answers to operator requests since the last call: (node, handle, reply).
    pub fn take_admin_replies(&mut self) -> Vec<(NodeId, u64, AdminReply)> {
        std::mem::take(&mut self.admin_replies)
    }

    pub fn node(&self, node: NodeId) -> Option<&Node> {
        self.nodes[node.index()].node.as_ref()
    }

    pub fn is_up(&self, node: NodeId) -> bool {
        self.nodes[node.index()].node.is_some()
    }

    /// What `node` has on disk (survives crashes).
    pub fn durable(&self, node: NodeId) -> &DurableState {
        &self.nodes[node.index()].durable
    }

    pub fn cuts(&self) -> &BTreeSet<(NodeId, NodeId)> {
        &self.cuts
    }

    pub fn set_loss(&mut self, per_million: u32) {
        self.loss_per_million = per_million;
    }

    /// One-way latency of messages sent from now on: uniform in `min_us..=max_us` (swapped if
    /// given the wrong way round). Messages already in flight keep their arrival times.
    pub fn set_latency(&mut self, min_us: u64, max_us: u64) {
        let network = &mut self.options.network;
        network.latency_min_us = min_us.min(max_us);
        network.latency_max_us = min_us.max(max_us);
    }

    fn schedule(&mut self, at: Micros, event: Event) {
        self.next_seq += 1;
        self.queue.push(Scheduled { at, seq: self.next_seq, event: Box::new(event) });
    }

    fn record(&mut self, node: NodeId, kind: TraceKind) {
        if self.options.trace {
            self.trace.push(TraceEvent { at: self.now, node, kind });
        }
    }

    fn boot(&mut self, id: NodeId) {
        let slot = &mut self.nodes[id.index()];
        let options = NodeOptions {
            id,
            config: self.options.config.clone(),
            // Each life draws its own randomness (a wiped disk gets a new disk id).
            seed: self.options.seed ^ ((id.0 as u64 + 1) << 32) ^ slot.life.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            trace: self.options.trace,
        };
        let mut outputs = std::mem::take(&mut self.outputs);
        let node = Node::start(options, slot.durable.clone(), self.now, &mut outputs)
            .expect("a simulated node never restarts INCARNATION_MAX times");
        self.nodes[id.index()].node = Some(node);
        self.nodes[id.index()].tick_at = None;
        self.carry_out(id, &mut outputs);
        self.outputs = outputs;
    }

    fn step_node(&mut self, id: NodeId, input: Input) {
        let mut outputs = std::mem::take(&mut self.outputs);
        let now = self.now;
        match self.nodes[id.index()].node.as_mut() {
            Some(node) => node.step(now, input, &mut outputs),
            None => return self.outputs = outputs,
        }
        self.carry_out(id, &mut outputs);
        self.outputs = outputs;
    }

    /// Carries out a node's outputs: the driver half of the sans-IO split.
    fn carry_out(&mut self, id: NodeId, outputs: &mut Vec<Output>) {
        for output in outputs.drain(..) {
            match output {
                Output::Send { to, envelope } => self.transmit(id, to, envelope),
                Output::Reply { handle, reply } => {
                    if let Some((client, seq)) = self.handles.remove(&handle) {
                        if self.rng.chance(self.loss_per_million) {
                            self.stats.dropped += 1;
                        } else {
                            let at = self.now + self.latency();
                            self.schedule(at, Event::Response { client, seq, reply });
                        }
                    }
                }
                Output::AdminReply { handle, reply } => {
                    if let Some((pending, retire)) = self.membership_pending.take() {
                        if pending != handle {
                            self.membership_pending = Some((pending, retire));
                        } else if matches!(reply, AdminReply::Committed { .. }) {
                            self.stats.membership_changes += 1;
                            for node in retire {
                                self.fault(FaultAction::Retire(node));
                                self.lost.remove(&node);
                            }
                        }
                    }
                    self.admin_replies.push((id, handle, reply))
                }
                Output::Persist(batch) => {
                    let slot = &mut self.nodes[id.index()];
                    let latency = self.rng.between(0, self.options.disk_latency_max_us);
                    let at = slot.persist_free_at.max(self.now + latency);
                    slot.persist_free_at = at;
                    slot.persisting.push_back(batch);
                    let life = slot.life;
                    self.schedule(at, Event::PersistDone { node: id, life });
                }
                Output::Trace(event) => {
                    if self.options.trace {
                        self.trace.push(event);
                    }
                }
            }
        }
        let slot = &mut self.nodes[id.index()];
        if let Some(wake) = slot.node.as_ref().and_then(Node::next_wakeup) {
            if slot.tick_at.is_none_or(|at| wake < at) {
                slot.tick_at = Some(wake);
                self.schedule(wake.max(self.now), Event::Tick { node: id });
            }
        }
        self.follow_layout(id);
    }

    fn latency(&mut self) -> Micros {
        let network = &self.options.network;
        let (low, high) = (network.latency_min_us, network.latency_max_us);
        let (slow, slow_max) = (network.slow_per_million, network.slow_latency_max_us);
        // Without a tail no extra draw is made, so runs without one replay as they always did.
        if slow > 0 && self.rng.chance(slow) {
            return high + self.rng.between(0, slow_max);
        }
        self.rng.between(low, high)
    }

    fn transmit(&mut self, from: NodeId, to: NodeId, envelope: Envelope) {
        // What a native peer would refuse as too large must never be sent.
        let bytes = envelope.message.wire_bytes_max() as u64;
        let max = self.options.config.message_bytes_max();
        assert!(bytes <= max, "{:?} of up to {bytes} bytes exceeds message_bytes_max {max}", envelope.message.kind());
        let reason = if self.cuts.contains(&(from, to)) {
            Some(DropReason::Partition)
        } else if self.rng.chance(self.loss_per_million) {
            Some(DropReason::Loss)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.stats.dropped += 1;
            let kind = TraceKind::MessageDropped { id: envelope.id, to, kind: envelope.message.kind(), reason };
            self.record(from, kind);
            return;
        }
        if self.rng.chance(self.duplicate_per_million) {
            self.stats.duplicated += 1;
            let at = self.now + self.latency();
            self.schedule(at, Event::Deliver { from, to, envelope: envelope.clone() });
        }
        let at = self.now + self.latency();
        self.schedule(at, Event::Deliver { from, to, envelope });
    }

    /// Applies a fault now.
    pub fn fault(&mut self, action: FaultAction) {
        match action {
            FaultAction::Crash(node) => {
                let slot = &mut self.nodes[node.index()];
                if slot.node.take().is_some() {
                    // Whatever was not yet durable is gone.
                    slot.persisting.clear();
                    slot.life += 1;
                    slot.tick_at = None;
                    self.stats.crashes += 1;
                    self.record(node, TraceKind::Crashed);
                }
            }
            FaultAction::Wipe(node) => {
                self.fault(FaultAction::Crash(node));
                // It comes back as a node started with `--join` would: empty, with the layout
                // fetched from a member (for a node of the first ring, starting with nothing
                // builds that ring's layout, which is no different for the amnesia check).
                let layout = (self.layout.epoch() > 1).then(|| self.layout.clone());
                self.nodes[node.index()].durable = DurableState { layout, ..DurableState::default() };
                self.lost.insert(node);
                self.stats.wipes += 1;
            }
            FaultAction::Retire(node) => {
                self.fault(FaultAction::Crash(node));
                self.nodes[node.index()].retired = true;
            }
            FaultAction::Restart(node) => {
                if self.nodes[node.index()].node.is_none() && !self.nodes[node.index()].retired {
                    self.nodes[node.index()].life += 1;
                    self.boot(node);
                }
            }
            FaultAction::Cut { from, to } => {
                self.cuts.insert((from, to));
            }
            FaultAction::Heal { from, to } => {
                self.cuts.remove(&(from, to));
            }
            FaultAction::HealAll => self.cuts.clear(),
        }
    }

    /// Schedules a fault at an absolute time.
    pub fn fault_at(&mut self, at: Micros, action: FaultAction) {
        self.schedule(at, Event::Fault(action));
    }

    /// Processes the next event; false when nothing is left.
    pub fn step(&mut self) -> bool {
        let Some(Scheduled { at, event, .. }) = self.queue.pop() else { return false };
        let event = *event;
        debug_assert!(at >= self.now);
        self.now = at;
        self.stats.events += 1;
        match event {
            Event::Deliver { from, to, envelope } => {
                if self.nodes[to.index()].node.is_none() {
                    self.stats.dropped += 1;
                    let kind = TraceKind::MessageDropped {
                        id: envelope.id,
                        to,
                        kind: envelope.message.kind(),
                        reason: DropReason::NodeDown,
                    };
                    self.record(from, kind);
                } else {
                    self.stats.deliveries += 1;
                    self.step_node(to, Input::Message { from, envelope });
                }
            }
            Event::Request { to, handle, request } => {
                if self.nodes[to.index()].node.is_some() {
                    self.step_node(to, Input::Client { handle, request });
                } else {
                    self.handles.remove(&handle);
                }
            }
            Event::Response { client, seq, reply } => self.client_response(client, seq, reply),
            Event::Admin { to, handle, request } => {
                if self.nodes[to.index()].node.is_some() {
                    self.step_node(to, Input::Admin { handle, request });
                }
            }
            Event::Tick { node } => {
                let slot = &mut self.nodes[node.index()];
                if slot.tick_at.is_some_and(|tick| tick <= at) {
                    slot.tick_at = None;
                }
                if slot.node.as_ref().and_then(Node::next_wakeup).is_some_and(|wake| wake <= at) {
                    self.step_node(node, Input::Tick);
                }
            }
            Event::PersistDone { node, life } => {
                let slot = &mut self.nodes[node.index()];
                if slot.life == life {
                    if let Some(batch) = slot.persisting.pop_front() {
                        slot.durable.apply(&batch);
                        self.step_node(node, Input::Persisted { batch: batch.seq });
                    }
                }
            }
            Event::ClientWake { client, generation } => self.client_wake(client, generation),
            Event::Fault(action) => self.fault(action),
            Event::CrashPlan { down } => self.crash_plan(down),
            Event::PartitionPlan { cut } => self.partition_plan(cut),
            Event::MembershipPlan => self.membership_plan(),
        }
        true
    }

    /// Nodes that are not decommissioned.
    fn serving_slots(&self) -> Vec<NodeId> {
        (0..self.nodes.len()).filter(|index| !self.nodes[*index].retired).map(|index| NodeId(index as u32)).collect()
    }

    /// One random membership change, committed at a random member that is up: a replacement
    /// of a node that refused to serve (its disk was lost: that is the way back), else a join,
    /// a leave, a replacement of a live node (under a new name or its own), or the removal of
    /// a node that is down (retired for good). Refused changes (one is still moving, too few
    /// members) are simply not made.
    fn membership_plan(&mut self) {
        let Some(plan) = self.options.membership.clone() else { return };
        if self.faults_stopped || self.stats.membership_changes >= plan.changes_max as u64 {
            return;
        }
        let next = self.rng.between(plan.interval_min_ms, plan.interval_max_ms);
        self.schedule(self.now + ms(next), Event::MembershipPlan);
        if self.membership_pending.is_some() {
            return;
        }
        let members = self.layout.members();
        let up: Vec<NodeId> = members.iter().copied().filter(|node| self.is_up(*node)).collect();
        if up.is_empty() {
            return;
        }
        let at = up[self.rng.below(up.len() as u64) as usize];
        let name = |node: NodeId| self.layout.name(node).to_string();
        // A wiped node that was admitted again (it had never voted) is not lost.
        let admitted_again: Vec<NodeId> = (self.lost.iter().copied())
            .filter(|node| self.node(*node).is_some_and(|node| node.admission() == &Admission::Admitted))
            .collect();
        for node in admitted_again {
            self.lost.remove(&node);
        }
        let refused = members.iter().copied().find(|node| self.lost.contains(node));
        let down: Vec<NodeId> = members.iter().copied().filter(|node| !self.is_up(*node)).collect();
        self.names_made += 1;
        let fresh = format!("n{}", self.names_made);
        let (change, retire) = if let Some(lost) = refused {
            (Change::Replace { old: name(lost), new: name(lost) }, vec![lost])
        } else if !self.lost.is_empty() {
            // A lost node waits to be admitted again (or found refused): nothing else is retired.
            (Change::Join { name: fresh }, Vec::new())
        } else {
            let victim = members[self.rng.below(members.len() as u64) as usize];
            match self.rng.below(5) {
                0 | 1 => (Change::Join { name: fresh }, Vec::new()),
                2 => (Change::Leave { name: name(victim) }, Vec::new()),
                3 if !down.is_empty() => {
                    let dead = down[self.rng.below(down.len() as u64) as usize];
                    (Change::Remove { name: name(dead) }, vec![dead])
                }
                _ if self.rng.below(2) == 0 => (Change::Replace { old: name(victim), new: fresh }, vec![victim]),
                _ => (Change::Replace { old: name(victim), new: name(victim) }, vec![victim]),
            }
        };
        let handle = self.admin(at, AdminRequest::CommitChanges(vec![change]));
        self.membership_pending = Some((handle, retire));
    }

    fn crash_plan(&mut self, down: Option<NodeId>) {
        let Some(plan) = self.options.crashes.clone() else { return };
        if let Some(node) = down {
            self.fault(FaultAction::Restart(node));
        }
        if self.faults_stopped {
            return;
        }
        if plan.down_at_once_max > 1 {
            return self.crash_plan_overlapping(&plan, down.is_some());
        }
        let next = if down.is_some() || self.nodes.iter().any(|slot| slot.node.is_none() && !slot.retired) {
            let up = self.rng.between(plan.up_min_ms, plan.up_max_ms);
            self.schedule(self.now + ms(up), Event::CrashPlan { down: None });
            return;
        } else {
            let serving = self.serving_slots();
            serving[self.rng.below(serving.len() as u64) as usize]
        };
        self.planned_crash(&plan, next);
        let down_for = self.rng.between(plan.down_min_ms, plan.down_max_ms);
        self.schedule(self.now + ms(down_for), Event::CrashPlan { down: Some(next) });
    }

    /// A crash of the fault plan; the one numbered `wipe_at_crash` erases the disk too.
    fn planned_crash(&mut self, plan: &CrashFaults, node: NodeId) {
        // One permanent failure at a time: a disk is lost only while no change is moving ranges
        // and no node waits to be replaced (two lost homes of one arc are beyond N = 3).
        let quiet = self.layout.transition().is_none() && self.lost.is_empty() && self.membership_pending.is_none();
        let wipe = plan.wipe_at_crash == Some(self.stats.crashes + 1) && quiet;
        self.fault(if wipe { FaultAction::Wipe(node) } else { FaultAction::Crash(node) });
    }

    /// Crashes that may overlap: one chain of crash events, each crashing a node that is up
    /// (while fewer than `down_at_once_max` are down) and scheduling that node's restart.
    fn crash_plan_overlapping(&mut self, plan: &CrashFaults, restarted: bool) {
        if restarted {
            return;
        }
        let serving = self.serving_slots();
        let up: Vec<NodeId> = serving.iter().copied().filter(|node| self.is_up(*node)).collect();
        let down = serving.len() - up.len();
        if down < plan.down_at_once_max as usize && !up.is_empty() {
            let victim = up[self.rng.below(up.len() as u64) as usize];
            self.planned_crash(plan, victim);
            let down_for = self.rng.between(plan.down_min_ms, plan.down_max_ms);
            self.schedule(self.now + ms(down_for), Event::CrashPlan { down: Some(victim) });
        }
        let next = self.rng.between(plan.up_min_ms, plan.up_max_ms);
        self.schedule(self.now + ms(next), Event::CrashPlan { down: None });
    }

    fn partition_plan(&mut self, cut: Option<Cut>) {
        let Some(plan) = self.options.partitions.clone() else { return };
        match cut {
            Some(Cut::Link { from, to, both }) => {
                self.fault(FaultAction::Heal { from, to });
                if both {
                    self.fault(FaultAction::Heal { from: to, to: from });
                }
            }
            Some(Cut::Isolate { node, both }) => {
                for other in 0..self.nodes.len() as u32 {
                    self.fault(FaultAction::Heal { from: NodeId(other), to: node });
                    if both {
                        self.fault(FaultAction::Heal { from: node, to: NodeId(other) });
                    }
                }
            }
            None => {}
        }
        if self.faults_stopped {
            return;
        }
        if cut.is_some() {
            let healed = self.rng.between(plan.healed_min_ms, plan.healed_max_ms);
            self.schedule(self.now + ms(healed), Event::PartitionPlan { cut: None });
            return;
        }
        let count = self.nodes.len() as u64;
        let a = NodeId(self.rng.below(count) as u32);
        let both = !plan.one_way || self.rng.below(2) == 0;
        let cut = if plan.isolate_per_million > 0 && self.rng.chance(plan.isolate_per_million) {
            for other in 0..count as u32 {
                self.fault(FaultAction::Cut { from: NodeId(other), to: a });
                if both {
                    self.fault(FaultAction::Cut { from: a, to: NodeId(other) });
                }
            }
            Cut::Isolate { node: a, both }
        } else {
            let b = NodeId(((a.0 as u64 + 1 + self.rng.below(count - 1)) % count) as u32);
            self.fault(FaultAction::Cut { from: a, to: b });
            if both {
                self.fault(FaultAction::Cut { from: b, to: a });
            }
            Cut::Link { from: a, to: b, both }
        };
        let cut_for = self.rng.between(plan.cut_min_ms, plan.cut_max_ms);
        self.schedule(self.now + ms(cut_for), Event::PartitionPlan { cut: Some(cut) });
    }

    /// Ends the fault phase: restarts crashed nodes, heals every link, stops loss and
    /// duplication. What follows is the liveness phase, in which replicas must converge.
    pub fn heal(&mut self) {
        self.faults_stopped = true;
        self.fault(FaultAction::HealAll);
        self.loss_per_million = 0;
        self.duplicate_per_million = 0;
        for index in 0..self.nodes.len() {
            self.fault(FaultAction::Restart(NodeId(index as u32)));
        }
    }

    /// Runs until `time` (events at `time` included).
    pub fn run_until(&mut self, time: Micros) {
        while self.queue.peek().is_some_and(|next| next.at <= time) {
            self.step();
        }
        self.now = self.now.max(time);
    }

    // ----- Clients. -----

    /// Adds a client that sends every request to `target` (or a random node per attempt).
    pub fn add_client(&mut self, target: Option<NodeId>, operations: u32) -> usize {
        let index = self.clients.len();
        self.clients.push(Client {
            session: Some(Session::new(ClientId(index as u64 + 1))),
            operations_left: operations,
            pending: None,
            generation: 0,
            target,
            last_reply: None,
            last_op: None,
        });
        index
    }

    /// Starts `op` on an idle client.
    pub fn submit(&mut self, client: usize, op: ClientOp) {
        let session = self.clients[client].session.take().expect("a client has one request outstanding");
        let now = self.now;
        let id = session.client();
        let history = match &op {
            ClientOp::Get { key } => Some(self.history.invoke(id, key.clone(), OpKind::Get, now)),
            ClientOp::Put { key, value } => Some(self.history.invoke(id, key.clone(), OpKind::Put(value.clone()), now)),
            ClientOp::Delete { key } => Some(self.history.invoke(id, key.clone(), OpKind::Delete, now)),
            _ => None,
        };
        let pending = session.start(op);
        self.clients[client].last_op = Some(pending.id());
        self.clients[client].pending = Some(InFlight { pending, history, attempts: 0 });
        self.client_send(client);
    }

    fn client_send(&mut self, client: usize) {
        let target = match self.clients[client].target {
            Some(target) => target,
            None => {
                let serving = self.serving_slots();
                serving[self.rng.below(serving.len() as u64) as usize]
            }
        };
        let timeout = ms(self.options.workload.timeouts.client_timeout_ms);
        let c = &mut self.clients[client];
        let Some(in_flight) = &mut c.pending else { return };
        in_flight.attempts += 1;
        c.generation += 1;
        // Every attempt sends the same request: the same `OpId`, so it takes effect once.
        let request = in_flight.pending.request().clone();
        let (seq, generation) = (request.id.seq, c.generation);
        self.next_handle += 1;
        let handle = self.next_handle;
        self.handles.insert(handle, (client, seq));
        if self.rng.chance(self.loss_per_million) {
            self.stats.dropped += 1;
        } else {
            let at = self.now + self.latency();
            self.schedule(at, Event::Request { to: target, handle, request });
        }
        self.schedule(self.now + timeout, Event::ClientWake { client, generation });
    }

    fn client_response(&mut self, client: usize, seq: u64, reply: ClientReply) {
        let attempts_max = self.options.workload.timeouts.attempts_max;
        let c = &mut self.clients[client];
        let Some(in_flight) = &mut c.pending else { return };
        if in_flight.pending.id().seq != seq {
            return;
        }
        let retry = matches!(reply, ClientReply::Error(_)) && in_flight.attempts < attempts_max;
        if retry {
            // A definite error from one node: try again (another node, same request id).
            return self.client_send(client);
        }
        self.client_finish(client, Some(reply));
    }

    fn client_wake(&mut self, client: usize, generation: u64) {
        let attempts_max = self.options.workload.timeouts.attempts_max;
        let c = &self.clients[client];
        if c.generation != generation {
            return;
        }
        match &c.pending {
            Some(in_flight) if in_flight.attempts < attempts_max => self.client_send(client),
            Some(_) => self.client_finish(client, None),
            None => self.workload_next(client),
        }
    }

    fn client_finish(&mut self, client: usize, reply: Option<ClientReply>) {
        let now = self.now;
        let c = &mut self.clients[client];
        let Some(in_flight) = c.pending.take() else { return };
        c.generation += 1;
        let outcome = match (&reply, &in_flight.pending.request().op) {
            (Some(ClientReply::Value(value)), ClientOp::Get { .. }) => Outcome::Read(value.clone()),
            (Some(ClientReply::Written), ClientOp::Put { .. }) => Outcome::Written,
            (Some(ClientReply::Deleted(_)), ClientOp::Delete { .. }) => Outcome::Written,
            _ => Outcome::Unknown,
        };
        if outcome == Outcome::Unknown {
            self.stats.operations_unknown += 1;
        } else {
            self.stats.operations_completed += 1;
        }
        if let Some(index) = in_flight.history {
            self.history.complete(index, outcome, now);
        }
        let c = &mut self.clients[client];
        c.session = Some(in_flight.pending.finish());
        c.last_reply = Some(reply);
        if c.target.is_none() && c.operations_left > 0 {
            let think = self.rng.between(0, self.options.workload.think_time_max_us);
            let generation = self.clients[client].generation;
            self.schedule(now + think, Event::ClientWake { client, generation });
        }
    }

    /// Issues the next random operation of a workload client.
    fn workload_next(&mut self, client: usize) {
        if self.clients[client].operations_left == 0 {
            return;
        }
        self.clients[client].operations_left -= 1;
        let workload = &self.options.workload;
        let key = Blob::from(format!("key{}", self.rng.below(workload.keys as u64)));
        let roll = self.rng.below(1_000_000) as u32;
        let op = if roll < workload.put_per_million {
            self.next_value += 1;
            ClientOp::Put { key, value: Blob::from(format!("v{}", self.next_value)) }
        } else if roll < workload.put_per_million + workload.delete_per_million {
            ClientOp::Delete { key }
        } else {
            ClientOp::Get { key }
        };
        self.submit(client, op);
    }

    /// Starts `op` from a new client that sends to `node`; returns the client.
    pub fn spawn(&mut self, node: NodeId, op: ClientOp) -> usize {
        let client = self.add_client(Some(node), 0);
        self.submit(client, op);
        client
    }

    /// Runs until every client is idle (bounded by the time limit).
    pub fn wait_all(&mut self) {
        self.run_clients();
    }

    /// Whether `client` is still waiting for an answer.
    pub fn is_pending(&self, client: usize) -> bool {
        self.clients[client].pending.is_some()
    }

    /// When the next event happens, if any (to advance a viewer exactly to it).
    pub fn next_event_at(&self) -> Option<Micros> {
        self.queue.peek().map(|next| next.at)
    }

    /// The id of `client`'s latest request (what its trace events name).
    pub fn op_of(&self, client: usize) -> Option<OpId> {
        self.clients[client].last_op
    }

    /// The answer `client` got to its last request (`None`: it never got one).
    pub fn reply_of(&self, client: usize) -> Option<ClientReply> {
        self.clients[client].last_reply.clone().flatten()
    }

    /// Runs `op` against `node` from a new client and waits for the answer.
    pub fn execute(&mut self, node: NodeId, op: ClientOp) -> Option<ClientReply> {
        let client = self.spawn(node, op);
        let limit = self.now + ms(self.options.time_limit_ms);
        while self.clients[client].pending.is_some() && self.now < limit && self.step() {}
        self.reply_of(client)
    }

    /// Idle when no client has work left.
    pub fn clients_done(&self) -> bool {
        self.clients.iter().all(|c| c.pending.is_none() && (c.operations_left == 0 || c.target.is_some()))
    }
}

/// What one complete run produced and what the checks found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    pub options: SimOptions,
    pub stats: SimStats,
    pub history: History,
    /// Per-key linearizability of the client history.
    pub linearizability: CheckReport,
    /// The final (converged) values against the history: no acknowledged write lost.
    pub durability: CheckReport,
    /// Keys whose home replicas still disagree after the liveness phase.
    pub divergent_keys: Vec<Blob>,
    /// Clients still waiting when the run stopped (a liveness failure).
    pub clients_unfinished: u64,
    /// Nodes that found at the end that they had lost their data and refuse to serve.
    pub refused_nodes: u64,
    pub finished_at: Micros,
    /// The newest layout's epoch at the end, and whether a change was still moving ranges.
    #[serde(default)]
    pub epoch: u64,
    #[serde(default)]
    pub in_transition: bool,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.linearizability.is_linearizable()
            && self.durability.is_linearizable()
            && self.divergent_keys.is_empty()
            && self.clients_unfinished == 0
            && !self.in_transition
    }

    /// One paragraph saying what failed, for test output.
    pub fn failure_summary(&self) -> String {
        let mut lines = Vec::new();
        for violation in &self.linearizability.violations {
            lines.push(format!("not linearizable: {}", violation.explanation));
        }
        for violation in &self.durability.violations {
            lines.push(format!("final value unexplained (lost write?): {}", violation.explanation));
        }
        if !self.divergent_keys.is_empty() {
            lines.push(format!("replicas diverge after healing on keys {:?}", self.divergent_keys));
        }
        if self.clients_unfinished > 0 {
            lines.push(format!("{} clients never finished", self.clients_unfinished));
        }
        if self.in_transition {
            lines.push(format!("the change of epoch {} never settled", self.epoch));
        }
        lines.join("\n")
    }
}

impl Simulation {
    /// Starts the random workload and the random fault plans of the options.
    pub fn start_workload(&mut self) {
        for _ in 0..self.options.workload.clients {
            let client = self.add_client(None, self.options.workload.operations_per_client);
            let start = self.rng.between(0, self.options.workload.think_time_max_us);
            self.schedule(self.now + start, Event::ClientWake { client, generation: 0 });
        }
        if let Some(plan) = &self.options.crashes {
            let first = self.rng.between(plan.up_min_ms, plan.up_max_ms);
            self.schedule(self.now + ms(first), Event::CrashPlan { down: None });
        }
        if let Some(plan) = &self.options.partitions {
            let first = self.rng.between(plan.healed_min_ms, plan.healed_max_ms);
            self.schedule(self.now + ms(first), Event::PartitionPlan { cut: None });
        }
        if let Some(plan) = &self.options.membership {
            let first = self.rng.between(plan.interval_min_ms, plan.interval_max_ms);
            self.schedule(self.now + ms(first), Event::MembershipPlan);
        }
    }

    /// Runs until every client finished or the time limit passed.
    pub fn run_clients(&mut self) {
        let limit = self.now + ms(self.options.time_limit_ms);
        while !self.clients_done() && self.now < limit && self.step() {}
    }

    /// For each key any node stores: the newest record among its home replicas, and whether
    /// all home replicas hold that same version.
    pub fn replica_agreement(&self) -> BTreeMap<Blob, (Option<Record>, bool)> {
        let mut keys = BTreeSet::new();
        for slot in &self.nodes {
            if let Some(node) = &slot.node {
                keys.extend(node.slots().map(|(key, _)| key.clone()));
            }
        }
        keys.into_iter()
            .map(|key| {
                let homes = self.ring.homes(key.as_bytes());
                // A node that lost its disk and refuses to serve holds nothing that counts.
                let records: Vec<Option<&Record>> = homes
                    .iter()
                    .map(|home| self.nodes[home.index()].node.as_ref())
                    .filter(|node| !node.is_some_and(|node| matches!(node.admission(), Admission::Refused { .. })))
                    .map(|node| node.and_then(|node| node.record(key.as_bytes())))
                    .collect();
                let newest = records.iter().flatten().max_by_key(|record| record.ballot).map(|r| (*r).clone());
                let ballot = newest.as_ref().map(|record| record.ballot);
                let agree = records.iter().all(|record| record.map(|r| r.ballot) == ballot);
                (key, (newest, agree))
            })
            .collect()
    }

    /// Checks the run so far: the history, the final values, and replica agreement.
    pub fn report(&self) -> RunReport {
        let agreement = self.replica_agreement();
        let divergent_keys = agreement.iter().filter(|(_, (_, agree))| !agree).map(|(key, _)| key.clone()).collect();
        let final_values: BTreeMap<Blob, Option<Blob>> =
            agreement.into_iter().map(|(key, (record, _))| (key, record.and_then(|r| r.value))).collect();
        RunReport {
            options: self.options.clone(),
            stats: self.stats.clone(),
            history: self.history.clone(),
            linearizability: check_history(&self.history),
            durability: check_final_values(&self.history, &final_values),
            divergent_keys,
            clients_unfinished: self.clients.iter().filter(|c| c.pending.is_some()).count() as u64,
            refused_nodes: (self.nodes.iter().flat_map(|slot| &slot.node))
                .filter(|node| matches!(node.admission(), Admission::Refused { .. }))
                .count() as u64,
            finished_at: self.now,
            epoch: self.layout.epoch(),
            in_transition: self.layout.transition().is_some(),
        }
    }
}

/// One whole run: workload with faults, then healing and a settle period, then the checks.
pub fn run(options: SimOptions) -> RunReport {
    let settle = ms(options.settle_ms);
    let mut sim = Simulation::new(options);
    sim.start_workload();
    sim.run_clients();
    sim.heal();
    let until = sim.now() + settle;
    sim.run_until(until);
    sim.report()
}
