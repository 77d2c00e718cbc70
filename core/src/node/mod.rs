//! A Dynamo node as a pure state machine: one door in (`Node::step`), a list of effects out.
//!
//! Inputs are peer messages, client requests, persist completions and timer ticks; outputs are
//! sends, client replies, persist batches and trace events. The node never reads a clock, never
//! draws OS randomness and never touches a socket or a file; `now` and a seed are parameters.
//!
//! Every node plays three roles at once:
//! - replica: a per-key acceptor (promise / accept) over its share of the ring (this file);
//! - coordinator: runs quorum reads and writes, forwards requests (`coordinate.rs`);
//! - background worker: hinted handoff, recovery after a restart and anti-entropy
//!   (`background.rs`).
//!
//! Before any of them, a node that started with nothing stored is admitted: it asks its peers
//! whether they remember another disk of it (`Admission`; ARCHITECTURE.md, "amnesia never
//! votes"), and until more than half of them answer that they do not, it is as if down.
//!
//! Invariant (the persistence barrier): a message or reply is released only once every state
//! change made before it was created is durable (reported by `Input::Persisted`), so a crash
//! can lose only state that nobody outside the node has seen. Requests that reveal no
//! acceptor state (`Message::reveals_state` is false: prepare, read, forward...) need not wait.

mod background;
mod coordinate;
mod membership;
mod read;
mod route;
mod scan;
mod write;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::client::ClientIds;
use crate::config::Config;
use crate::layout::{Electorate, Layout, LayoutVote};
use crate::membership::{AdminReply, AdminRequest};
use crate::message::{AcceptPurpose, ClientReply, ClientRequest, Envelope, Message, NextPromise, Refusal, Unavailable};
use crate::ring::Ring;
use crate::store::{DurableState, PersistBatch, Record, Slot, Staged};
use crate::trace::{TraceEvent, TraceKind};
use crate::types::{incarnation_base, Blob, Micros, NodeId, Rng, INCARNATION_MAX};
use crate::version::Ballot;

use background::{AntiEntropy, Recovery};
use coordinate::Txn;

/// An event for the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// A message from a peer.
    Message { from: NodeId, envelope: Envelope },
    /// A client request; `handle` is the driver's name for it, echoed in the reply.
    Client { handle: u64, request: ClientRequest },
    /// An operator's membership request (`dynamo admin`, the control API); `handle` is echoed.
    Admin { handle: u64, request: AdminRequest },
    /// Every persist batch up to and including `batch` is durable.
    Persisted { batch: u64 },
    /// Time passed; `Node::next_wakeup` says when the node wants one.
    Tick,
}

/// An effect for the driver to carry out, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    Send {
        to: NodeId,
        envelope: Envelope,
    },
    Reply {
        handle: u64,
        reply: ClientReply,
    },
    /// The answer to `Input::Admin`.
    AdminReply {
        handle: u64,
        reply: AdminReply,
    },
    /// Make this batch durable, then report `Input::Persisted`. Batches complete in order.
    Persist(PersistBatch),
    Trace(TraceEvent),
}

/// How a node started, as `Node::start` decided from what survived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Start {
    /// A node that never ran: nothing was ever written here, nothing to recover.
    Fresh,
    /// A restart: before serving reads, copy the writes missed while down.
    Recover,
}

/// Whether a node votes: a node that started with nothing stored first asks its peers
/// whether they remember another disk of it (ARCHITECTURE.md, "amnesia never votes").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Sent `Message::Probe` to every peer; `answered[i]` once peer i remembered no other disk.
    /// Admitted once more than half of the peers have.
    Probing {
        answered: Vec<bool>,
    },
    /// `peer` remembers another disk of this node: its data was lost. For good (until an
    /// operator replaces the node).
    Refused {
        peer: NodeId,
    },
}

/// Why a node cannot start.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartError {
    /// The node has started `INCARNATION_MAX` times: its ids would repeat.
    IncarnationsExhausted { incarnation: u64 },
    /// The node started with nothing stored, but `peer` remembers another disk of it: its data
    /// was lost (`Admission::Refused`; reported once the peers answer).
    Amnesia { node: String, peer: String },
    /// The node's id is not in its layout (a driver's mistake).
    NotInLayout { node: NodeId, nodes: u64 },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::IncarnationsExhausted { incarnation } => write!(
                f,
                "this node has started {incarnation} times, the most its ids allow; \
                 its data must be rebuilt under a new data directory"
            ),
            StartError::Amnesia { node, peer } => write!(
                f,
                "node {node} has nothing stored, but node {peer} remembers an earlier disk of it: its data \
                 directory was lost. A node that lost its data must not vote as if new (it could undo acknowledged \
                 writes), so it will not serve. Restore its data directory; rebuilding a node in place \
                 (`dynamo admin replace`) is not built yet"
            ),
            StartError::NotInLayout { node, nodes } => {
                write!(f, "node id {} is not in its layout of {nodes} node ids", node.0)
            }
        }
    }
}

impl std::error::Error for StartError {}

/// What a node is built from.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub id: NodeId,
    pub config: Config,
    /// Seed of the node's random choices (backoff, anti-entropy partner order).
    pub seed: u64,
    /// Whether to emit trace events (off for fast simulation).
    pub trace: bool,
}

/// The in-memory state of one key on this replica.
#[derive(Clone, Debug)]
struct KeyState {
    slot: Slot,
    /// Bit i set when node i is a home replica of the key.
    homes_mask: u64,
}

/// Why a timer was set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Txn(u64),
    Hints,
    AntiEntropy,
    Recovery,
    Admission,
    Gossip,
    Transition,
}

/// A Dynamo node. See the module documentation.
pub struct Node {
    id: NodeId,
    config: Config,
    /// The newest layout this node learned (durable), and the ring derived from it.
    layout: Layout,
    ring: Arc<Ring>,
    /// The layout is not in a persist batch yet.
    layout_unpersisted: bool,
    /// The persist batch that holds the layout; every message (it carries the epoch) waits for it.
    layout_batch: u64,
    /// Per peer: the epoch this node last sent it its layout at, and when (gossip is rate-limited
    /// to one layout per peer, epoch and request timeout).
    layout_told: Vec<(u64, Micros)>,
    /// Per peer: the newer epoch this node last asked it for, and when (rate-limited alike).
    layout_asked: Vec<(u64, Micros)>,
    /// This node's vote in the layout Paxos (durable), and whether it changed in this step.
    layout_vote: Option<LayoutVote>,
    layout_vote_unpersisted: bool,
    /// The highest layout Paxos round seen; this node's ballots go above it.
    layout_round: u64,
    /// When this node last accepted a layout for the next epoch (see `finish_layout_instance`).
    layout_accepted_at: Micros,
    /// The plan an operator staged here (durable), and whether it changed in this step.
    staged: Staged,
    staged_unpersisted: bool,
    /// As the claimant of a joint epoch: what its old homes reported.
    claim: Option<membership::Claim>,
    /// When this node last heard a claimant's query (or learned its layout): an old home that
    /// hears none for long takes the claimant's part.
    claim_heard_at: Micros,
    /// The identity rounds of a joint epoch, while this node runs them.
    sync: Option<membership::SyncWork>,
    /// The joint epoch whose identity rounds this node finished (durable).
    synced_epoch: u64,
    synced_epoch_unpersisted: bool,
    /// A layout was taken in: slots this node no longer votes on go once it is durable.
    forget_pending: bool,
    /// Slots forgotten in this step, for the persist batch.
    slots_removed: Vec<Blob>,
    /// Every ballot round of this node's is above it (durable; see `DurableState::round_floor`).
    round_floor: u64,
    round_floor_unpersisted: bool,
    rng: Rng,
    trace: bool,
    now: Micros,

    /// The highest ballot round this node has seen; new ballots go above it.
    round: u64,
    /// This life's incarnation (durable, one more than the last), in every id the node makes.
    incarnation: u64,
    /// The new incarnation is not in a persist batch yet (only at start).
    incarnation_unpersisted: bool,
    /// Whether `take_client_ids` has handed out this incarnation's client ids.
    client_ids_taken: bool,
    start: Start,
    admission: Admission,
    /// A change of `DurableState::unadmitted` not yet in a persist batch.
    admission_unpersisted: Option<bool>,
    /// Client requests that arrived while probing, with their deadlines.
    waiting_clients: Vec<(u64, ClientRequest, Micros)>,
    /// This node's disk id (`DurableState::disk`), and whether it is new in this life.
    disk: u64,
    disk_unpersisted: bool,
    /// Per peer, the first disk id it probed this node with (durable).
    probed: BTreeMap<NodeId, u64>,
    probed_unpersisted: BTreeMap<NodeId, u64>,
    store: BTreeMap<Blob, KeyState>,
    hints: BTreeMap<(NodeId, Blob), Record>,

    /// Changes of the current step, not yet in a persist batch.
    dirty_slots: BTreeSet<Blob>,
    hints_stored: Vec<(NodeId, Blob, Record)>,
    hints_removed: Vec<(NodeId, Blob)>,
    persist_issued: u64,
    persist_durable: u64,
    /// Sends and replies of this step, each with the persist batch it must wait for.
    pending: Vec<(u64, Output)>,
    /// Trace events of this step (never held).
    pending_traces: Vec<Output>,
    /// Outputs waiting for a persist batch: (batch they need, output).
    held: VecDeque<(u64, Output)>,
    /// Messages to self, delivered within the same step.
    local: VecDeque<(u64, Message)>,
    next_message: u64,

    next_txn: u64,
    txns: BTreeMap<u64, Txn>,
    timers: BTreeSet<(Micros, u64, Timer)>,
    next_timer: u64,
    suspected: Vec<bool>,
    /// Keys this node holds a prepared ballot for (R promises gathered on its last accept):
    /// its next write there skips phase 1.
    leases: BTreeMap<Blob, write::Lease>,
    /// Keys with a write round in flight here: key -> its txn.
    writing: BTreeMap<Blob, u64>,
    /// Writes waiting for the round in flight on their key.
    queued_writes: BTreeMap<Blob, Vec<write::WriteRequest>>,
    /// Keys with a read round in flight here: key -> its txn.
    reading: BTreeMap<Blob, u64>,
    /// Reads waiting for the round in flight on their key; they share the next one.
    queued_reads: BTreeMap<Blob, Vec<read::ReadRequest>>,
    /// Keys with a rewrite (a repair write) started: key -> its txn.
    rewrites: BTreeMap<Blob, u64>,
    /// Keys whose last repair round gave up after refusals, with how many (`Write::refusals`).
    contention: BTreeMap<Blob, u32>,

    recovery: Option<Recovery>,
    anti_entropy: AntiEntropy,
    /// In-flight hint handoffs: txn -> (home, key).
    handoffs: BTreeMap<u64, (NodeId, Blob)>,
}

impl Node {
    /// Builds a node from what survived (`durable`; empty for a node that never ran) and starts
    /// it. The node's incarnation goes up by one and is in the first persist batch; no message
    /// or reply leaves before that batch is durable, so ids of this life never repeat those of
    /// an earlier one, even if the node crashes at once. A node that ran before (its durable
    /// state is not empty) recovers what it missed before serving reads.
    pub fn start(
        options: NodeOptions,
        durable: DurableState,
        now: Micros,
        out: &mut Vec<Output>,
    ) -> Result<Node, StartError> {
        let NodeOptions { id, config, seed, trace } = options;
        debug_assert!(config.validate().is_ok(), "config is validated before nodes start");
        if durable.incarnation >= INCARNATION_MAX {
            return Err(StartError::IncarnationsExhausted { incarnation: durable.incarnation });
        }
        let incarnation = durable.incarnation + 1;
        // A node that never finished probing never voted: it starts over, with nothing to recover.
        let unadmitted = durable.incarnation == 0 || durable.unadmitted;
        let start = if unadmitted && durable.slots.is_empty() && durable.hints.is_empty() {
            Start::Fresh
        } else {
            Start::Recover
        };
        let layout_unpersisted = durable.layout.is_none();
        let layout = durable.layout.unwrap_or_else(|| Layout::from_config(&config));
        if id.index() >= layout.node_count() {
            return Err(StartError::NotInLayout { node: id, nodes: layout.node_count() as u64 });
        }
        let ring = Arc::new(layout.ring());
        let node_count = ring.node_count();
        // A node alone in its cluster has nobody to ask.
        let alone = (0..node_count as u32).map(NodeId).all(|node| node == id || !layout.takes_part(node));
        let admission = if unadmitted && !alone {
            Admission::Probing { answered: (0..node_count).map(|index| index == id.index()).collect() }
        } else {
            Admission::Admitted
        };
        let mut rng = Rng::new(seed ^ (incarnation.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        // A disk that never held an id gets one (never 0) in its first batch.
        let disk = if durable.disk == 0 { rng.next_u64().max(1) } else { durable.disk };
        // Above every promise it ever made, those of forgotten slots included.
        let mut round = durable.round_floor;
        let store: BTreeMap<Blob, KeyState> = durable
            .slots
            .into_iter()
            .map(|(key, slot)| {
                round = round.max(slot.promised.round);
                let homes_mask = Node::homes_mask(&layout, &ring, key.as_bytes());
                (key, KeyState { slot, homes_mask })
            })
            .collect();
        let mut node = Node {
            id,
            rng,
            anti_entropy: AntiEntropy::new(id, &layout, &ring, &store),
            config,
            layout,
            ring,
            layout_unpersisted,
            layout_batch: 0,
            layout_told: vec![(0, 0); node_count],
            layout_asked: vec![(0, 0); node_count],
            layout_round: durable.layout_vote.as_ref().map_or(0, |vote| vote.promised.round),
            layout_accepted_at: now,
            layout_vote: durable.layout_vote,
            layout_vote_unpersisted: false,
            staged: durable.staged,
            staged_unpersisted: false,
            claim: None,
            claim_heard_at: now,
            sync: None,
            synced_epoch: durable.synced_epoch,
            synced_epoch_unpersisted: false,
            forget_pending: false,
            slots_removed: Vec::new(),
            round_floor: durable.round_floor,
            round_floor_unpersisted: false,
            trace,
            now,
            round,
            incarnation,
            incarnation_unpersisted: true,
            client_ids_taken: false,
            start,
            admission_unpersisted: {
                let probing = admission != Admission::Admitted;
                (probing != durable.unadmitted).then_some(probing)
            },
            admission,
            waiting_clients: Vec::new(),
            disk,
            disk_unpersisted: durable.disk == 0,
            probed: durable.probed,
            probed_unpersisted: BTreeMap::new(),
            store,
            hints: durable.hints,
            dirty_slots: BTreeSet::new(),
            hints_stored: Vec::new(),
            hints_removed: Vec::new(),
            persist_issued: 0,
            persist_durable: 0,
            pending: Vec::new(),
            pending_traces: Vec::new(),
            held: VecDeque::new(),
            local: VecDeque::new(),
            next_message: incarnation_base(incarnation),
            next_txn: incarnation_base(incarnation),
            txns: BTreeMap::new(),
            timers: BTreeSet::new(),
            next_timer: 0,
            suspected: vec![false; node_count],
            leases: BTreeMap::new(),
            writing: BTreeMap::new(),
            queued_writes: BTreeMap::new(),
            reading: BTreeMap::new(),
            queued_reads: BTreeMap::new(),
            rewrites: BTreeMap::new(),
            contention: BTreeMap::new(),
            recovery: None,
            handoffs: BTreeMap::new(),
        };
        if durable.incarnation > 0 {
            node.emit(TraceKind::Restarted);
        }
        if start == Start::Recover {
            node.start_recovery();
        }
        if let Admission::Probing { .. } = node.admission {
            node.probe();
        }
        let hint_delay = node.rng.between(1, node.config.hint_handoff_interval());
        node.schedule(now + hint_delay, Timer::Hints);
        let ae_delay = node.rng.between(1, node.config.anti_entropy_interval());
        node.schedule(now + ae_delay, Timer::AntiEntropy);
        let gossip_delay = node.rng.between(1, node.config.gossip_interval());
        node.schedule(now + gossip_delay, Timer::Gossip);
        node.schedule(now + node.config.request_timeout(), Timer::Transition);
        node.flush(out);
        debug_assert_eq!(node.persist_issued, Node::START_BATCH, "the incarnation is in the first batch");
        Ok(node)
    }

    /// The persist batch holding a node's incarnation: every output waits for it.
    const START_BATCH: u64 = 1;

    /// This life's client ids, for the driver's `SessionPool`. Handed out once: two pools
    /// drawing from one incarnation's ids would give two sessions the same id.
    pub fn take_client_ids(&mut self) -> ClientIds {
        assert!(!self.client_ids_taken, "a node incarnation's client ids are handed out once");
        self.client_ids_taken = true;
        ClientIds::of(self.id, self.incarnation)
    }

    /// This life's incarnation: one more than the last life's.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// How the node started: fresh, or recovering what it missed.
    pub fn started(&self) -> Start {
        self.start
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ring of the node's current layout.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The ring of the node's current layout, shared (a driver hands it to its connections).
    pub fn ring_shared(&self) -> Arc<Ring> {
        self.ring.clone()
    }

    /// The newest layout this node learned.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// True until a restarted node has copied the writes it missed.
    pub fn is_recovering(&self) -> bool {
        self.recovery.is_some()
    }

    /// When the node next needs `Input::Tick`.
    pub fn next_wakeup(&self) -> Option<Micros> {
        self.timers.first().map(|timer| timer.0)
    }

    /// The record this replica holds for `key` (for inspectors and tests).
    pub fn record(&self, key: &[u8]) -> Option<&Record> {
        self.store.get(key).and_then(|state| state.slot.record.as_ref())
    }

    /// Every (key, slot) this replica holds, in key order (for inspectors and tests).
    pub fn slots(&self) -> impl Iterator<Item = (&Blob, &Slot)> {
        self.store.iter().map(|(key, state)| (key, &state.slot))
    }

    /// Hints this node keeps for others.
    pub fn hints(&self) -> impl Iterator<Item = (&(NodeId, Blob), &Record)> {
        self.hints.iter()
    }

    /// Number of operations this node is coordinating or forwarding.
    pub fn operations_in_flight(&self) -> usize {
        self.txns.len()
    }

    /// Turns trace events on or off (a driver with nobody watching saves their cost).
    pub fn set_trace(&mut self, trace: bool) {
        self.trace = trace;
    }

    /// Whether this node votes and serves, probes its peers first, or refused to (amnesia).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Why this node refuses to serve, for the driver to report and stop: its data was lost.
    pub fn refusal(&self) -> Option<StartError> {
        match &self.admission {
            Admission::Refused { peer } => Some(StartError::Amnesia {
                node: self.layout.name(self.id).to_string(),
                peer: self.layout.name(*peer).to_string(),
            }),
            _ => None,
        }
    }

    /// Whether this node currently suspects `peer` of having failed.
    pub fn suspects(&self, peer: NodeId) -> bool {
        self.suspected[peer.index()]
    }

    /// The one door in. Effects are appended to `out` in the order they must be carried out.
    pub fn step(&mut self, now: Micros, input: Input, out: &mut Vec<Output>) {
        debug_assert!(now >= self.now, "time never goes backwards");
        self.now = now.max(self.now);
        match input {
            Input::Message { from, envelope } => {
                if self.trace {
                    let kind = envelope.message.kind();
                    self.emit(TraceKind::MessageDelivered { id: envelope.id, from, kind });
                }
                // Refused for good: it takes in nothing but probes (to tell its disk's story).
                let refused = matches!(self.admission, Admission::Refused { .. });
                if from.index() >= self.layout.node_count() {
                    // A node this node's layout does not know yet: its layout is newer. Ask for
                    // it; the message itself waits for the sender's retry.
                    if !refused && envelope.epoch > self.layout.epoch() {
                        let gossip = self.gossip_message();
                        self.send(from, gossip);
                    }
                    self.drain_local();
                    self.flush(out);
                    return;
                }
                self.trust(from);
                if !refused {
                    self.heard_epoch(from, envelope.epoch);
                }
                // Not admitted: as if down. It votes in nothing, and takes in only probes and
                // the layout (which reveals nothing and tells it whom to probe).
                let layout_news = matches!(envelope.message, Message::Gossip { .. } | Message::Layout { .. });
                if self.admission == Admission::Admitted || envelope.message.is_probe() || (!refused && layout_news) {
                    self.handle_message(from, envelope.epoch, envelope.message);
                }
            }
            Input::Client { handle, request } => match &self.admission {
                Admission::Admitted => self.handle_client(handle, request),
                Admission::Probing { .. } => {
                    let deadline = self.now + self.config.operation_timeout();
                    self.waiting_clients.push((handle, request, deadline));
                }
                Admission::Refused { peer } => {
                    let reply = Self::unavailable(Unavailable::Amnesia { peer: *peer });
                    self.reply(handle, reply);
                }
            },
            Input::Admin { handle, request } => self.handle_admin(handle, request),
            Input::Persisted { batch } => {
                debug_assert!(batch <= self.persist_issued, "only issued batches complete");
                self.persist_durable = self.persist_durable.max(batch);
                if self.trace {
                    self.emit(TraceKind::Persisted { batch });
                }
                if self.forget_pending && !self.layout_unpersisted && self.layout_batch <= self.persist_durable {
                    self.forget();
                }
                self.release_held(out);
            }
            Input::Tick => {
                while let Some(&(at, seq, timer)) = self.timers.first() {
                    if at > now {
                        break;
                    }
                    self.timers.remove(&(at, seq, timer));
                    self.fire(timer);
                    self.drain_local();
                }
            }
        }
        self.drain_local();
        self.flush(out);
    }

    fn drain_local(&mut self) {
        while let Some((epoch, message)) = self.local.pop_front() {
            self.handle_message(self.id, epoch, message);
        }
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::Admission => self.admission_tick(),
            // Not admitted: background work waits (it would send).
            Timer::Hints if self.admission != Admission::Admitted => {
                self.schedule(self.now + self.config.hint_handoff_interval(), Timer::Hints)
            }
            Timer::AntiEntropy if self.admission != Admission::Admitted => {
                self.schedule(self.now + self.config.anti_entropy_interval(), Timer::AntiEntropy)
            }
            Timer::Gossip => self.gossip_tick(),
            Timer::Transition => self.transition_tick(),
            Timer::Txn(txn) => self.txn_timer(txn),
            Timer::Hints => self.hints_tick(),
            Timer::AntiEntropy => self.anti_entropy_tick(),
            Timer::Recovery => self.recovery_tick(),
        }
    }

    // ----- Admission: a node that started with nothing stored. -----

    /// Asks every peer that has not answered yet whether it remembers another disk of this
    /// node, and again after a request timeout.
    fn probe(&mut self) {
        let Admission::Probing { answered } = &self.admission else { return };
        let silent: Vec<NodeId> = self
            .admission_peers()
            .into_iter()
            .filter(|peer| !answered.get(peer.index()).copied().unwrap_or(false))
            .collect();
        let disk = self.disk;
        for peer in silent {
            self.send(peer, Message::Probe { disk });
        }
        self.schedule(self.now + self.config.request_timeout(), Timer::Admission);
    }

    fn admission_tick(&mut self) {
        let Admission::Probing { answered } = &self.admission else { return };
        let peers_waiting = answered.iter().filter(|answered| !**answered).count() as u64;
        let now = self.now;
        let (expired, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.waiting_clients).into_iter().partition(|(_, _, deadline)| *deadline <= now);
        self.waiting_clients = waiting;
        for (handle, _, _) in expired {
            self.reply(handle, Self::unavailable(Unavailable::Admitting { peers_waiting }));
        }
        self.probe();
    }

    /// A peer's probe: remember the first disk id it names (durably, before the answer leaves,
    /// as every answer waits for the state it reveals), and answer with the one remembered.
    fn on_probe(&mut self, from: NodeId, disk: u64) {
        let remembered = *self.probed.entry(from).or_insert_with(|| {
            self.probed_unpersisted.insert(from, disk);
            disk
        });
        let disks = self.known_disks();
        self.send(from, Message::ProbeReply { remembered, disks });
    }

    /// The nodes whose answers admit this node: the other members of its layout, and the old
    /// homes of a change in progress (gone nodes never answer).
    fn admission_peers(&self) -> Vec<NodeId> {
        (0..self.layout.node_count() as u32)
            .map(NodeId)
            .filter(|node| *node != self.id && self.layout.takes_part(*node))
            .collect()
    }

    /// `from` remembers (or told of) another disk of this node: its data was lost.
    fn refuse_admission(&mut self, from: NodeId) {
        self.admission = Admission::Refused { peer: from };
        self.emit(TraceKind::AmnesiaDetected { peer: from });
        for (handle, _, _) in std::mem::take(&mut self.waiting_clients) {
            self.reply(handle, Self::unavailable(Unavailable::Amnesia { peer: from }));
        }
    }

    fn on_probe_reply(&mut self, from: NodeId, remembered: u64) {
        let Admission::Probing { answered } = &mut self.admission else { return };
        if remembered != self.disk {
            return self.refuse_admission(from);
        }
        if answered.len() <= from.index() {
            answered.resize(from.index() + 1, false);
        }
        answered[from.index()] = true;
        self.admission_check();
    }

    /// Admitted once more than half of the admission peers remember this disk and no other:
    /// any two such sets of one layout meet, so a later probe from a node that lost this disk
    /// reaches a peer that remembers it (and gossip spreads every disk id to every node, for
    /// the layouts to come).
    fn admission_check(&mut self) {
        let Admission::Probing { answered } = &self.admission else { return };
        let peers = self.admission_peers();
        let yes = peers.iter().filter(|peer| answered.get(peer.index()).copied().unwrap_or(false)).count();
        if 2 * yes > peers.len() {
            self.admission = Admission::Admitted;
            self.admission_unpersisted = Some(false);
            self.emit(TraceKind::Admitted);
            for (handle, request, _) in std::mem::take(&mut self.waiting_clients) {
                self.handle_client(handle, request);
            }
        }
    }

    /// The epoch fence (ARCHITECTURE.md, "Membership changes"): a vote is cast only for a round
    /// sent under this replica's own layout epoch. A round of an older epoch counts its quorum
    /// among the wrong homes; a newer one, among homes this replica does not know yet.
    fn fence(&self, epoch: u64) -> Result<(), Refusal> {
        let mine = self.layout.epoch();
        if epoch == mine {
            Ok(())
        } else {
            Err(Refusal::Epoch(mine))
        }
    }

    fn handle_message(&mut self, from: NodeId, epoch: u64, message: Message) {
        match message {
            Message::Prepare { txn, key, ballot } => {
                let result = self.fence(epoch).and_then(|()| self.on_prepare(&key, ballot));
                self.send(from, Message::Promise { txn, ballot, result });
            }
            Message::Read { txn, key } => {
                let result = if self.recovery.is_some() {
                    Err(Refusal::Recovering)
                } else {
                    self.fence(epoch).map(|()| self.record(key.as_bytes()).cloned())
                };
                self.send(from, Message::ReadReply { txn, result });
            }
            Message::Accept { txn, key, record, purpose, next } => {
                let ballot = record.ballot;
                // A handoff is a copy, never a vote: it is not fenced. One for a key this node no
                // longer votes on is taken as done (the write is on a quorum of its homes) and
                // not stored.
                if purpose == AcceptPurpose::Handoff && !self.electorate(key.as_bytes()).contains(self.id) {
                    self.send(from, Message::Accepted { txn, ballot, result: Ok(()), next: None });
                    return;
                }
                let fenced = if purpose == AcceptPurpose::Handoff { Ok(()) } else { self.fence(epoch) };
                if let Err(refusal) = fenced {
                    let next = next.map(|_| NextPromise::Refused(refusal));
                    self.send(from, Message::Accepted { txn, ballot, result: Err(refusal), next });
                    return;
                }
                let result = self.on_accept(&key, record, purpose);
                let next = next.map(|next| match self.on_prepare(&key, next) {
                    Ok(held) if held.as_ref().map(|record| record.ballot) == Some(ballot) => NextPromise::HoldsAccepted,
                    Ok(held) => NextPromise::Holds(held),
                    Err(refusal) => NextPromise::Refused(refusal),
                });
                self.send(from, Message::Accepted { txn, ballot, result, next });
            }
            Message::Promise { txn, ballot, result } => self.on_promise(txn, from, ballot, result),
            Message::ReadReply { txn, result } => self.on_read_reply(txn, from, result),
            Message::Accepted { txn, ballot, result, next } => self.on_accepted(txn, from, ballot, result, next),
            Message::Forward { txn, request, attempt: _ } => {
                self.send(from, Message::ForwardAck { txn });
                let reply_to = coordinate::ReplyTo::Peer { node: from, txn };
                self.coordinate(request, reply_to);
            }
            Message::ForwardAck { txn } => self.on_forward_ack(txn),
            Message::ForwardReply { txn, reply } => self.on_forward_reply(txn, reply),
            Message::Hint { home, key, record } => self.store_hint(home, key, record),
            Message::SyncRequest { txn, for_node, after } => self.on_sync_request(from, txn, for_node, after),
            Message::SyncReply { txn, records, next } => self.on_sync_reply(from, txn, records, next),
            Message::ScanRequest { txn, after } => self.on_scan_request(from, txn, after),
            Message::ScanReply { txn, records, next } => self.on_scan_reply(from, txn, records, next),
            Message::Digest { txn, buckets } => self.on_digest(from, txn, buckets),
            Message::DigestEntries { txn: _, buckets, entries } => self.on_digest_entries(from, buckets, entries),
            Message::Records { records } => self.on_records(records),
            Message::Fetch { keys } => self.on_fetch(from, keys),
            Message::Probe { disk } => self.on_probe(from, disk),
            Message::ProbeReply { remembered, disks } => {
                // The disks first: one of them may be another disk of this node's.
                self.on_gossip(from, disks);
                self.on_probe_reply(from, remembered)
            }
            // The epoch it carries was taken in by `heard_epoch`.
            Message::Gossip { disks } => self.on_gossip(from, disks),
            Message::Layout { layout } => self.on_layout(from, *layout),
            Message::LayoutPrepare { txn, instance, ballot } => self.on_layout_prepare(from, txn, instance, ballot),
            Message::LayoutPromise { txn, instance, ballot, result } => {
                self.on_layout_promise(txn, from, instance, ballot, result)
            }
            Message::LayoutAccept { txn, instance, ballot, layout } => {
                self.on_layout_accept(from, txn, instance, ballot, *layout)
            }
            Message::LayoutAccepted { txn, instance, ballot, result } => {
                self.on_layout_accepted(txn, from, instance, ballot, result)
            }
            Message::TransitionQuery { epoch, sync } => self.on_transition_query(from, epoch, sync),
            Message::TransitionReport { epoch, synced } => self.on_transition_report(from, epoch, synced),
        }
    }

    // ----- The layout: learned from peers, gossiped. -----

    /// Gossip: every `gossip_interval`, one random member hears this node's epoch.
    fn gossip_tick(&mut self) {
        self.schedule(self.now + self.config.gossip_interval(), Timer::Gossip);
        if self.admission != Admission::Admitted {
            return;
        }
        self.finish_layout_instance();
        let peers: Vec<NodeId> = (0..self.layout.node_count() as u32)
            .map(NodeId)
            .filter(|node| *node != self.id && self.layout.takes_part(*node))
            .collect();
        if !peers.is_empty() {
            let peer = peers[self.rng.below(peers.len() as u64) as usize];
            let gossip = self.gossip_message();
            self.send(peer, gossip);
        }
    }

    /// This node's gossip: the first disk id it knows of every node, its own included.
    fn gossip_message(&self) -> Message {
        Message::Gossip { disks: self.known_disks() }
    }

    /// The first disk id this node knows of every node, its own included (gossip and probe
    /// answers carry it).
    fn known_disks(&self) -> Vec<(NodeId, u64)> {
        let mut disks: Vec<(NodeId, u64)> = self.probed.iter().map(|(node, disk)| (*node, *disk)).collect();
        disks.push((self.id, self.disk));
        disks
    }

    /// Takes in the disk ids a peer knows: the first one heard of each node is kept (durably,
    /// as a probe's). A node still probing that hears of another disk of its own was wiped.
    fn on_gossip(&mut self, from: NodeId, disks: Vec<(NodeId, u64)>) {
        for (node, disk) in disks {
            if node == self.id {
                if matches!(self.admission, Admission::Probing { .. }) && disk != self.disk {
                    self.refuse_admission(from);
                }
            } else if !self.probed.contains_key(&node) && node.index() < self.layout.node_count() {
                self.probed.insert(node, disk);
                self.probed_unpersisted.insert(node, disk);
            }
        }
    }

    /// Every peer message carries its sender's epoch: a peer that is behind is sent this
    /// node's layout, a peer that is ahead is asked for its own (by gossip, which it answers
    /// with its layout). At most once per peer, epoch and request timeout.
    fn heard_epoch(&mut self, from: NodeId, epoch: u64) {
        if from == self.id || from.index() >= self.layout_told.len() {
            return;
        }
        let mine = self.layout.epoch();
        if epoch == mine {
            return;
        }
        let (last, about) = if epoch < mine {
            (&mut self.layout_told[from.index()], mine)
        } else {
            (&mut self.layout_asked[from.index()], epoch)
        };
        if last.0 == about && self.now < last.1 + self.config.request_timeout() {
            return;
        }
        *last = (about, self.now);
        if epoch < mine {
            self.send(from, Message::Layout { layout: Box::new(self.layout.clone()) });
        } else {
            let gossip = self.gossip_message();
            self.send(from, gossip);
        }
    }

    /// A peer's layout: kept if it is newer than this node's, of the same cluster and sound.
    fn on_layout(&mut self, from: NodeId, layout: Layout) {
        if layout.epoch() <= self.layout.epoch() {
            return;
        }
        if let Err(problem) = layout.check(&self.layout, &self.config) {
            self.emit(TraceKind::LayoutRefused { from, epoch: layout.epoch(), problem });
            return;
        }
        self.adopt_layout(layout, Some(from));
    }

    /// Makes `layout` this node's (durably, in the step's batch: every message that carries its
    /// epoch waits for it), and everything derived from the ring follows it. Every member but
    /// `source` (which has it) hears of it at once.
    fn adopt_layout(&mut self, layout: Layout, source: Option<NodeId>) {
        // Who hears of it at once: every node with work in the new layout, and every member of
        // the old one (a node that leaves or is removed learns that it is gone).
        let mut told: Vec<NodeId> = (0..layout.node_count() as u32)
            .map(NodeId)
            .filter(|node| layout.takes_part(*node) || self.layout.is_member(*node))
            .collect();
        told.retain(|node| *node != self.id && Some(*node) != source);
        self.layout = layout;
        self.layout_unpersisted = true;
        self.ring = Arc::new(self.layout.ring());
        let node_count = self.ring.node_count();
        if self.suspected.len() < node_count {
            self.suspected.resize(node_count, false);
            self.layout_told.resize(node_count, (0, 0));
            self.layout_asked.resize(node_count, (0, 0));
        }
        for (key, state) in self.store.iter_mut() {
            state.homes_mask = Node::homes_mask(&self.layout, &self.ring, key.as_bytes());
        }
        self.anti_entropy = AntiEntropy::new(self.id, &self.layout, &self.ring, &self.store);
        self.emit(TraceKind::LayoutLearned { epoch: self.layout.epoch() });
        // A node still probing asks the members of its new layout.
        self.admission_check();
        self.proposals_overtaken(self.layout.epoch());
        // Every round's quorums were those of the old layout, and every message carries the
        // sender's epoch: a round goes on only under a new ballot with the new homes (a resend of
        // the old one would pass the fence as a round of the new epoch). Leases were promised by
        // the old homes.
        self.leases.clear();
        self.restart_rounds();
        self.transition_follows_layout();
        // At once: a change spreads in one round trip, not by chance.
        let epoch = self.layout.epoch();
        for peer in told {
            if self.layout_told[peer.index()].0 != epoch {
                self.layout_told[peer.index()] = (epoch, self.now);
                self.send(peer, Message::Layout { layout: Box::new(self.layout.clone()) });
            }
        }
    }

    /// Every round in flight goes on under the new layout (`adopt_layout`).
    fn restart_rounds(&mut self) {
        self.restart_write_rounds();
        self.restart_read_rounds();
    }

    /// Who votes on `key` in this node's layout: its homes, or both home sets while its arc
    /// moves.
    pub fn electorate(&self, key: &[u8]) -> Electorate {
        self.layout.electorate(&self.ring, &crate::ring::position(key))
    }

    /// Bit i set when node i votes on `key` (`KeyState::homes_mask`).
    fn homes_mask(layout: &Layout, ring: &Ring, key: &[u8]) -> u64 {
        let electorate = layout.electorate(ring, &crate::ring::position(key));
        electorate.all().iter().fold(0, |mask, node| mask | 1 << node.0)
    }

    // ----- The replica role: a per-key acceptor. -----

    /// One lookup: with a large store, every key comparison on the way down the tree is a
    /// cache miss (keys live behind their own pointers), and an accept used to look its key up
    /// nine times.
    fn slot_mut(&mut self, key: &Blob) -> &mut KeyState {
        match self.store.entry(key.clone()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                self.anti_entropy.key_added(key);
                let homes_mask = Node::homes_mask(&self.layout, &self.ring, key.as_bytes());
                entry.insert(KeyState { slot: Slot::default(), homes_mask })
            }
        }
    }

    fn observe(&mut self, ballot: Ballot) {
        self.round = self.round.max(ballot.round);
    }

    /// Phase 1: promise `ballot` unless a higher one was promised. Equal ballots come from the
    /// same coordinator attempt (a duplicated message), so promising again is harmless.
    fn on_prepare(&mut self, key: &Blob, ballot: Ballot) -> Result<Option<Record>, Refusal> {
        self.observe(ballot);
        let promised = self.store.get(key).map_or(Ballot::ZERO, |state| state.slot.promised);
        if ballot < promised {
            return Err(Refusal::Promised(promised));
        }
        if ballot > promised {
            self.dirty_slots.insert(key.clone());
            let slot = &mut self.slot_mut(key).slot;
            slot.promised = ballot;
            return Ok(slot.record.clone());
        }
        Ok(self.record(key.as_bytes()).cloned())
    }

    /// Phase 2 (and repairs, handoffs): accept `record` unless a higher ballot was promised.
    fn on_accept(&mut self, key: &Blob, record: Record, purpose: AcceptPurpose) -> Result<(), Refusal> {
        self.observe(record.ballot);
        match self.offer(key, record) {
            Offer::Stored | Offer::Duplicate => Ok(()),
            Offer::Stale { promised } => Err(Refusal::Promised(promised)),
            Offer::Blocked { promised } => {
                if purpose != AcceptPurpose::Write {
                    // A newer record exists but an abandoned promise fences it out; a fresh
                    // quorum write of the newest record repairs the key.
                    self.start_rewrite(key.clone());
                }
                Err(Refusal::Promised(promised))
            }
        }
    }

    /// Offers a record to this acceptor. Installs it when its ballot is above the accepted
    /// one and not below the promised one: exactly the rule of Paxos phase 2, so copies made
    /// by repair, handoff, recovery and anti-entropy can never revive a fenced-out write.
    fn offer(&mut self, key: &Blob, record: Record) -> Offer {
        let (promised, accepted) = match self.store.get(key) {
            Some(state) => (state.slot.promised, state.slot.accepted_ballot()),
            None => (Ballot::ZERO, Ballot::ZERO),
        };
        if record.ballot == accepted {
            // The same record again (a duplicate, a repair, a handoff). A different record under
            // the same ballot means the ballot was used twice (a node whose disk was wiped
            // writing a key's first ballot again): refused, so its coordinator prepares anew.
            let existing = self.store.get(key).and_then(|state| state.slot.record.as_ref());
            if existing.is_some_and(|existing| existing.op != record.op || existing.value != record.value) {
                return Offer::Stale { promised: promised.max(accepted) };
            }
            return Offer::Duplicate;
        }
        if record.ballot < accepted {
            return Offer::Stale { promised: promised.max(accepted) };
        }
        if record.ballot < promised {
            return Offer::Blocked { promised };
        }
        if self.trace {
            self.emit(TraceKind::RecordStored {
                key: key.clone(),
                ballot: record.ballot,
                tombstone: record.value.is_none(),
            });
        }
        let id = self.id;
        let ballot = record.ballot;
        let state = self.slot_mut(key);
        state.slot.promised = ballot;
        let homes_mask = state.homes_mask;
        let replaced = state.slot.record.replace(record).map(|old| old.ballot);
        if let Some(old) = replaced {
            self.anti_entropy.toggle(id, key, homes_mask, old);
        }
        self.anti_entropy.toggle(id, key, homes_mask, ballot);
        self.dirty_slots.insert(key.clone());
        Offer::Stored
    }

    // ----- Failure detection: timeouts suspect, any message trusts again. -----

    fn suspect(&mut self, peer: NodeId) {
        if peer != self.id && !self.suspected[peer.index()] {
            self.suspected[peer.index()] = true;
            self.emit(TraceKind::Suspected { peer });
        }
    }

    fn trust(&mut self, peer: NodeId) {
        if self.suspected[peer.index()] {
            self.suspected[peer.index()] = false;
            self.emit(TraceKind::Trusted { peer });
        }
    }

    // ----- Effects. -----

    fn send(&mut self, to: NodeId, message: Message) {
        if to == self.id {
            self.local.push_back((self.layout.epoch(), message));
        } else {
            let id = self.next_message;
            self.next_message += 1;
            // Every message carries ids of this incarnation and the layout's epoch, so none
            // leaves before both are durable.
            let layout = if self.layout_unpersisted { self.persist_issued + 1 } else { self.layout_batch };
            let need = if message.reveals_state() { self.batch_of_current_changes() } else { Node::START_BATCH };
            let epoch = self.layout.epoch();
            self.pending.push((need.max(layout), Output::Send { to, envelope: Envelope { id, epoch, message } }));
        }
    }

    fn reply(&mut self, handle: u64, reply: ClientReply) {
        let need = self.batch_of_current_changes();
        self.pending.push((need, Output::Reply { handle, reply }));
    }

    /// The persist batch that will hold every state change made so far: what an output
    /// created now depends on.
    fn batch_of_current_changes(&self) -> u64 {
        self.persist_issued + self.has_unpersisted_changes() as u64
    }

    /// Whether this step changed state that no persist batch holds yet.
    fn has_unpersisted_changes(&self) -> bool {
        self.incarnation_unpersisted
            || self.layout_unpersisted
            || self.layout_vote_unpersisted
            || self.staged_unpersisted
            || self.synced_epoch_unpersisted
            || self.round_floor_unpersisted
            || !self.slots_removed.is_empty()
            || self.admission_unpersisted.is_some()
            || self.disk_unpersisted
            || !self.probed_unpersisted.is_empty()
            || !self.dirty_slots.is_empty()
            || !self.hints_stored.is_empty()
            || !self.hints_removed.is_empty()
    }

    fn emit(&mut self, kind: TraceKind) {
        if self.trace {
            self.pending_traces.push(Output::Trace(TraceEvent { at: self.now, node: self.id, kind }));
        }
    }

    fn schedule(&mut self, at: Micros, timer: Timer) {
        self.next_timer += 1;
        self.timers.insert((at, self.next_timer, timer));
    }

    /// Ends a step: one persist batch for all its changes, then its sends and replies, held
    /// behind every batch not yet durable.
    fn flush(&mut self, out: &mut Vec<Output>) {
        out.append(&mut self.pending_traces);
        if self.has_unpersisted_changes() {
            self.persist_issued += 1;
            let slots = std::mem::take(&mut self.dirty_slots)
                .into_iter()
                .map(|key| {
                    let slot = self.store[&key].slot.clone();
                    (key, slot)
                })
                .collect();
            let incarnation = std::mem::take(&mut self.incarnation_unpersisted).then_some(self.incarnation);
            let layout = std::mem::take(&mut self.layout_unpersisted);
            if layout {
                self.layout_batch = self.persist_issued;
            }
            out.push(Output::Persist(PersistBatch {
                seq: self.persist_issued,
                incarnation,
                slots,
                hints_stored: std::mem::take(&mut self.hints_stored),
                hints_removed: std::mem::take(&mut self.hints_removed),
                unadmitted: self.admission_unpersisted.take(),
                disk: std::mem::take(&mut self.disk_unpersisted).then_some(self.disk),
                probed: std::mem::take(&mut self.probed_unpersisted).into_iter().collect(),
                layout: layout.then(|| Box::new(self.layout.clone())),
                layout_vote: std::mem::take(&mut self.layout_vote_unpersisted)
                    .then(|| self.layout_vote.clone().map(Box::new))
                    .flatten(),
                staged: std::mem::take(&mut self.staged_unpersisted).then(|| self.staged.clone()),
                slots_removed: std::mem::take(&mut self.slots_removed),
                round_floor: std::mem::take(&mut self.round_floor_unpersisted).then_some(self.round_floor),
                synced_epoch: std::mem::take(&mut self.synced_epoch_unpersisted).then_some(self.synced_epoch),
            }));
        }
        for (need, output) in std::mem::take(&mut self.pending) {
            if need <= self.persist_durable {
                // Depends on nothing still in flight (a request, or state already durable).
                self.release(output, out);
            } else {
                // A request held only for the start batch waits behind what is held already.
                let need = need.max(self.held.back().map_or(0, |held| held.0));
                self.held.push_back((need, output));
            }
        }
        self.release_held(out);
    }

    fn release_held(&mut self, out: &mut Vec<Output>) {
        while let Some((need, _)) = self.held.front() {
            if *need > self.persist_durable {
                break;
            }
            let (_, output) = self.held.pop_front().expect("front exists");
            self.release(output, out);
        }
    }

    fn release(&mut self, output: Output, out: &mut Vec<Output>) {
        if self.trace {
            let kind = match &output {
                Output::Send { to, envelope } => TraceKind::MessageSent {
                    id: envelope.id,
                    to: *to,
                    kind: envelope.message.kind(),
                    txn: envelope.message.txn(),
                    key: envelope.message.key().cloned(),
                },
                Output::Reply { handle, reply } => TraceKind::RequestAnswered { handle: *handle, reply: reply.clone() },
                Output::AdminReply { .. } => return out.push(output),
                _ => unreachable!("only sends and replies are held"),
            };
            out.push(Output::Trace(TraceEvent { at: self.now, node: self.id, kind }));
        }
        out.push(output);
    }
}

/// Keeps a batch of records or keys under `Config::batch_bytes_max` (by their
/// `wire_bytes_max`): one more item fits while the budget lasts, and the first always does.
struct ByteBudget {
    left: u64,
    items: usize,
}

impl ByteBudget {
    fn new(config: &Config) -> ByteBudget {
        ByteBudget { left: config.batch_bytes_max, items: 0 }
    }

    /// Takes `bytes` from the budget if they fit (or if nothing was taken yet).
    fn take(&mut self, bytes: usize) -> bool {
        let bytes = bytes as u64;
        if self.items > 0 && bytes > self.left {
            return false;
        }
        self.left = self.left.saturating_sub(bytes);
        self.items += 1;
        true
    }

    /// Takes a `(key, record)` entry's size bound from the budget if it fits.
    fn take_entry(&mut self, key: &Blob, record: &Record) -> bool {
        self.take(crate::store::entry_wire_bytes_max(key, record))
    }
}

/// What offering a record to this acceptor did.
enum Offer {
    Stored,
    Duplicate,
    /// The acceptor holds a newer record.
    Stale {
        promised: Ballot,
    },
    /// Newer than the accepted record but below the promise.
    Blocked {
        promised: Ballot,
    },
}

#[cfg(test)]
mod tests;
