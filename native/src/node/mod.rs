//! One node process's node half: the core's `Node` driven by a disk, peer links and a clock.
//!
//! The driver is thin, in the quinn style: one task owns the `Node`; everything else (peer
//! links, client connections, the storage thread) talks to it through one input channel. It
//! turns frames, timers and disk completions into `Input`s and carries out the `Output`s
//! (`driver.rs`): sends go to the peer's link queue (never blocking: a full queue drops, and
//! the core's timeouts notice), replies to the waiting connection, batches to the storage,
//! trace events to subscribers. No replication decision is made here.
//!
//! The client front ends (`resp`, `ws_api`) reach the node only through `Handle`'s methods;
//! the event type behind them is private to this module. Peer links: `link.rs`.

mod driver;
mod link;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dynamo_core::api::Inspection;
use dynamo_core::client::{Pending, Session, SessionPool};
use dynamo_core::membership::{AdminReply, AdminRequest};
use dynamo_core::message::{ClientError, ClientReply, ClientRequest, Envelope, Unavailable};
use dynamo_core::node::{Input, Node, NodeOptions, Output, Start};
use dynamo_core::ring::Ring;
use dynamo_core::trace::TraceEvent;
use dynamo_core::types::NodeId;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::cluster_file::ClusterFile;
use crate::storage::{group_commit_loop, Storage};
use crate::tls::Tls;

use driver::{Driver, Persister};
pub use link::{websocket_config, Peers};
use link::{Link, LINK_QUEUE_MAX};

/// Trace events buffered per subscriber; a slower subscriber loses events, never the node.
const TRACE_BUFFER: usize = 16_384;

/// Something for the node task.
enum Event {
    Peer {
        from: NodeId,
        envelope: Envelope,
    },
    Client {
        request: ClientRequest,
        reply: oneshot::Sender<ClientReply>,
    },
    /// An operator's membership request (the control API).
    Admin {
        request: AdminRequest,
        reply: oneshot::Sender<AdminReply>,
    },
    Persisted(u64),
    /// A snapshot of the node's state for inspectors.
    Inspect(oneshot::Sender<Inspection>),
    /// Drop (or stop dropping) every message this node sends to `peer`: a one-way link cut.
    Cut {
        peer: NodeId,
        cut: bool,
    },
}

/// `Handle::standing`, as a number a node task can store for connections to read.
pub(super) fn standing_of(admission: &dynamo_core::node::Admission) -> u8 {
    match admission {
        dynamo_core::node::Admission::Admitted => 0,
        dynamo_core::node::Admission::Probing { .. } => 1,
        dynamo_core::node::Admission::Refused { .. } => 2,
    }
}

fn standing_name(standing: u8) -> &'static str {
    ["admitted", "probing", "refused"].get(standing as usize).copied().unwrap_or("refused")
}

/// What connections need to reach the node.
#[derive(Clone)]
pub struct Handle {
    inputs: mpsc::UnboundedSender<Event>,
    traces: broadcast::Sender<TraceEvent>,
    /// The ring of the node's current layout, with its epoch (the driver replaces it when the
    /// node learns a newer layout).
    ring: Arc<std::sync::RwLock<(u64, Arc<Ring>)>>,
    pub file: Arc<ClusterFile>,
    pub id: NodeId,
    /// Client sessions for every connection of this node, with this incarnation's client ids
    /// (`Node::take_client_ids`).
    sessions: Arc<std::sync::Mutex<SessionPool>>,
    /// This node's incarnation, for INFO.
    pub incarnation: u64,
    /// Which peers this node suspects.
    liveness: Arc<std::sync::Mutex<Vec<bool>>>,
    /// Whether the node votes (`standing_name`), for INFO.
    standing: Arc<std::sync::atomic::AtomicU8>,
    /// Recent lifecycle events (restart, recovery, suspicion, hints), replayed to a new
    /// subscriber so a page that attaches after a restart still sees the recovery.
    recent: Arc<std::sync::Mutex<std::collections::VecDeque<TraceEvent>>>,
    /// KiB of client requests the node may work on at once, and the permits for them.
    admitted_kib: u64,
    admission: Arc<tokio::sync::Semaphore>,
}

impl Handle {
    /// The ring of the node's current layout.
    pub fn ring(&self) -> Arc<Ring> {
        self.ring.read().map(|ring| ring.1.clone()).expect("ring lock")
    }

    /// The epoch of the node's current layout.
    pub fn epoch(&self) -> u64 {
        self.ring.read().map(|ring| ring.0).expect("ring lock")
    }

    /// An idle client session (the core allows a session one request outstanding at a time).
    pub fn take_session(&self) -> Session {
        self.sessions.lock().expect("sessions lock").take()
    }

    /// Gives an idle session back for reuse.
    pub fn put_session(&self, session: Session) {
        self.sessions.lock().expect("sessions lock").put(session);
    }

    /// Runs `work` with the node's session pool (for a `Pipeline`).
    pub fn with_sessions<R>(&self, work: impl FnOnce(&mut SessionPool) -> R) -> R {
        work(&mut self.sessions.lock().expect("sessions lock"))
    }

    /// A snapshot of the node's store, or `None` when the node stopped.
    pub async fn inspect(&self) -> Option<Inspection> {
        let (reply, snapshot) = oneshot::channel();
        self.inputs.send(Event::Inspect(reply)).ok()?;
        snapshot.await.ok()
    }

    /// Sends an operator's membership request to the node and waits for its answer (`None`
    /// when the node stopped first).
    pub async fn admin(&self, request: AdminRequest) -> Option<AdminReply> {
        let (reply, answer) = oneshot::channel();
        self.inputs.send(Event::Admin { request, reply }).ok()?;
        answer.await.ok()
    }

    /// Stops (or resumes) sending every message to `peer`: a one-way link cut.
    pub fn cut(&self, peer: NodeId, cut: bool) {
        let _ = self.inputs.send(Event::Cut { peer, cut });
    }

    /// A stream of the node's trace events from now on (a slow reader loses events, never the
    /// node).
    pub fn subscribe(&self) -> broadcast::Receiver<TraceEvent> {
        self.traces.subscribe()
    }

    /// The node's recent lifecycle events, oldest first, for a new subscriber.
    pub fn recent_lifecycle(&self) -> Vec<TraceEvent> {
        self.recent.lock().map(|recent| recent.iter().cloned().collect()).unwrap_or_default()
    }

    /// Whether this node votes: "admitted", "probing" (it started with nothing stored and asks
    /// its peers whether they remember another disk of it) or "refused" (its data was lost).
    pub fn standing(&self) -> &'static str {
        standing_name(self.standing.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Per node: whether this node currently suspects it.
    pub fn suspected(&self) -> Vec<bool> {
        self.liveness.lock().map(|list| list.clone()).unwrap_or_default()
    }

    /// Sends a session's request to the node and waits for the answer. The session comes back
    /// with it when the node answered (or never got the request); when the node stopped with
    /// the request in it, it may still be in flight somewhere, so the session is not reusable.
    pub async fn request(&self, pending: Pending) -> (ClientReply, Option<Session>) {
        // Admission (`ClusterFile::admitted_bytes_max`): the request's encoded-size bound, in
        // KiB, held until the answer. A request waits here, before the node starts its
        // operation timeout, while the requests already in hold the allowance.
        let cost = (pending.request().op.wire_bytes_max().div_ceil(1024) as u64).min(self.admitted_kib) as u32;
        let shutting_down = || ClientReply::Error(ClientError::Unavailable(Unavailable::ShuttingDown));
        let Ok(_admitted) = self.admission.acquire_many(cost).await else {
            return (shutting_down(), Some(pending.finish()));
        };
        let (reply, answer) = oneshot::channel();
        if self.inputs.send(Event::Client { request: pending.request().clone(), reply }).is_err() {
            return (shutting_down(), Some(pending.finish()));
        }
        match answer.await {
            Ok(reply) => (reply, Some(pending.finish())),
            Err(_) => (ClientReply::Error(ClientError::Unavailable(Unavailable::Stopped)), None),
        }
    }
}

/// A node started (its storage loaded, its core `Node` built, its peer links running) and not
/// yet running its task; `serve` binds its listeners in between.
pub struct Started {
    pub handle: Handle,
    /// Where accepted `/peer` connections go.
    pub peers: Peers,
    /// The node's TLS, when the cluster's ports speak it.
    pub tls: Option<Arc<Tls>>,
    /// How the core started it (fresh or recovering), for the ready line.
    pub start: Start,
    task: NodeTask,
}

/// The node task's state: the core `Node` and the driver that carries out its outputs.
struct NodeTask {
    node: Node,
    driver: Driver,
    events: mpsc::UnboundedReceiver<Event>,
    outputs: Vec<Output>,
    now: Box<dyn Fn() -> u64 + Send>,
}

/// Starts node `index` of `file`: opens its storage, builds the core `Node` (no output of which
/// leaves before the task runs) and starts its peer links.
pub fn start(file: Arc<ClusterFile>, index: usize) -> Result<Started, Box<dyn std::error::Error>> {
    let id = NodeId(index as u32);
    let me = file.nodes[index].clone();
    let config = file.config.clone();
    let tls = match &file.tls {
        Some(files) => Some(Arc::new(Tls::load(files, &me.name)?)),
        None => None,
    };
    let dir = file.data_dir.join(&me.name);
    let (storage, durable) = Storage::open(&dir, file.fsync)?;
    tracing::info!(node = %me.name, keys = durable.slots.len(), hints = durable.hints.len(), "storage loaded");

    let (inputs, events) = mpsc::unbounded_channel::<Event>();
    let (traces, _) = broadcast::channel(TRACE_BUFFER);
    // Read together, so trace times of processes on one machine agree to within microseconds.
    let epoch_micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    let clock = Instant::now();
    // Microseconds since the UNIX epoch, but monotonic: trace events of different processes on
    // one machine share a timeline, and time never goes backwards for the core. Nothing the
    // core makes durable or puts in an id depends on it.
    let now = move || epoch_micros + clock.elapsed().as_micros() as u64;
    // The node starts (its new incarnation is in the first persist batch, which the driver
    // carries out below, before any message can leave); nothing has left the process yet.
    let options = NodeOptions { id, config: config.clone(), seed: epoch_micros ^ index as u64, trace: true };
    let mut outputs = Vec::new();
    let mut node = Node::start(options, durable, now(), &mut outputs)?;
    tracing::info!(node = %me.name, incarnation = node.incarnation(), start = ?node.started(), "node started");
    let start = node.started();
    let admitted_kib = file.admitted_bytes_max.div_ceil(1024).clamp(1, u32::MAX as u64);
    let handle = Handle {
        inputs: inputs.clone(),
        traces: traces.clone(),
        ring: Arc::new(std::sync::RwLock::new((node.layout().epoch(), node.ring_shared()))),
        file: file.clone(),
        id,
        sessions: Arc::new(std::sync::Mutex::new(SessionPool::new(node.take_client_ids()))),
        incarnation: node.incarnation(),
        liveness: Arc::new(std::sync::Mutex::new(vec![false; file.nodes.len()])),
        standing: Arc::new(std::sync::atomic::AtomicU8::new(standing_of(node.admission()))),
        recent: Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new())),
        admitted_kib,
        admission: Arc::new(tokio::sync::Semaphore::new(admitted_kib as usize)),
    };

    // Storage: a thread doing group commits that reports back through the input channel, and
    // without fsync the node task's own inline commits of small batches (see `Persister`).
    let (persist, batches) = std::sync::mpsc::channel();
    let done = inputs.clone();
    let inline = (!storage.fsyncs()).then(|| storage.clone());
    std::thread::Builder::new().name("storage".into()).spawn(move || {
        group_commit_loop(storage, batches, |seq| {
            let _ = done.send(Event::Persisted(seq));
        })
    })?;
    let persister = Persister { thread: persist, inline, waiting: Vec::new(), waiting_bytes: 0, sent: 0, durable: 0 };

    // Peer links.
    let mut links: Vec<Option<mpsc::Sender<Envelope>>> = Vec::new();
    let mut accepted = Vec::new();
    for (peer_index, peer) in file.nodes.iter().enumerate() {
        if peer_index == index {
            links.push(None);
            accepted.push(None);
            continue;
        }
        let (tx, rx) = mpsc::channel(LINK_QUEUE_MAX);
        let (sockets, incoming) = mpsc::channel(4);
        links.push(Some(tx));
        accepted.push(Some(sockets));
        let link = Link {
            me: me.name.clone(),
            name: peer.name.clone(),
            cluster: config.nodes.clone(),
            peer: NodeId(peer_index as u32),
            address: peer.ws,
            dial: index < peer_index,
            inputs: inputs.clone(),
            secret: file.secret.clone(),
            frame_bytes_max: link::frame_bytes_max(&config),
            tls: tls.clone(),
            websocket: websocket_config(&config),
        };
        tokio::spawn(link.run(rx, incoming));
    }

    let driver = Driver {
        id,
        cut: vec![false; file.nodes.len()],
        links,
        persister,
        traces,
        replies: std::collections::HashMap::new(),
        admin_replies: std::collections::HashMap::new(),
        next_handle: 0,
        names: file.nodes.iter().map(|node| node.name.clone()).collect(),
        liveness: handle.liveness.clone(),
        standing: handle.standing.clone(),
        ring: handle.ring.clone(),
        recent: handle.recent.clone(),
        now: Box::new(now),
    };
    let peers = Peers { file, links: Arc::new(accepted) };
    let task = NodeTask { node, driver, events, outputs, now: Box::new(now) };
    Ok(Started { handle, peers, tls, start, task })
}

impl Started {
    /// Runs the node task until its input channel closes (the process is killed first).
    pub async fn run(self) {
        let NodeTask { mut node, mut driver, mut events, mut outputs, now } = self.task;
        driver.carry_out(&mut outputs);
        loop {
            driver.commit_inline(&mut node, now(), &mut outputs);
            let event = match node.next_wakeup() {
                Some(wake) => {
                    let delay = Duration::from_micros(wake.saturating_sub(now()));
                    tokio::select! {
                        event = events.recv() => event,
                        _ = tokio::time::sleep(delay) => {
                            driver.step(&mut node, now(), Input::Tick, &mut outputs);
                            continue;
                        }
                    }
                }
                None => events.recv().await,
            };
            let Some(event) = event else { return };
            // Handle everything already waiting before going back to sleep.
            let mut next = Some(event);
            while let Some(event) = next.take() {
                driver.take(&mut node, now(), event, &mut outputs);
                next = events.try_recv().ok();
            }
        }
    }
}
