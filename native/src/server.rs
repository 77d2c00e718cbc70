//! One node process: the core's `Node` driven by sockets, a disk and a clock.
//!
//! The driver is thin, in the quinn style: one task owns the `Node`; everything else (peer
//! links, client connections, the storage thread) talks to it through one input channel. It
//! turns frames, timers and disk completions into `Input`s and carries out the `Output`s:
//! sends go to the peer's link queue (never blocking: a full queue drops, and the core's
//! timeouts notice), replies to the waiting connection, batches to the group-commit thread,
//! trace events to subscribers. No replication decision is made here.
//!
//! Peer links are WebSockets (`/peer`): one per pair, dialed by the node with the lower id,
//! carrying postcard-encoded frames that batch many envelopes. A peer that sends garbage is
//! disconnected and logged. Failures are never inferred from connection state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dynamo_core::api::Inspection;
use dynamo_core::client::{Pending, Session, SessionPool};
use dynamo_core::config::Config;
use dynamo_core::message::{ClientError, ClientReply, ClientRequest, Envelope, Unavailable};
use dynamo_core::node::{Input, Node, NodeOptions, Output};
use dynamo_core::ring::Ring;
use dynamo_core::store::PersistBatch;
use dynamo_core::trace::{DropReason, TraceEvent, TraceKind};
use dynamo_core::types::NodeId;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use crate::cluster_file::ClusterFile;
use crate::storage::{batch_bytes, commit_or_exit, group_commit_loop, Storage};

/// Envelopes queued for one peer before new ones are dropped.
const LINK_QUEUE_MAX: usize = 100_000;
/// Redial backoff of a peer link: from 20 ms, doubling to 1 s while dials fail or links fall
/// at once; a link up for `LINK_STABLE` starts over from the minimum.
const LINK_BACKOFF_MIN: Duration = Duration::from_millis(20);
const LINK_BACKOFF_MAX: Duration = Duration::from_secs(1);
const LINK_STABLE: Duration = Duration::from_secs(1);
/// Envelopes per peer frame.
const FRAME_ENVELOPES_MAX: usize = 512;
/// Bytes a frame may carry besides its envelopes' messages: the frame's tag and length, and
/// each envelope's id (a generous bound; see `Message::wire_bytes_max`).
const FRAME_OVERHEAD_BYTES: usize = 32;
const ENVELOPE_OVERHEAD_BYTES: usize = 16;

/// The smallest frame limit: room for many small envelopes per frame, whatever the limits.
const FRAME_BYTES_MIN: usize = 8 << 20;

/// Largest frame accepted from a peer or a client, and the most a sender puts in one: room
/// for the largest message the core can send (`Config::message_bytes_max`), never under
/// `FRAME_BYTES_MIN`.
fn frame_bytes_max(config: &Config) -> usize {
    let largest = config.message_bytes_max() as usize + ENVELOPE_OVERHEAD_BYTES + FRAME_OVERHEAD_BYTES;
    largest.max(FRAME_BYTES_MIN)
}

/// WebSocket limits for peer links and client connections, on both ends.
fn websocket_config(config: &Config) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    let max = frame_bytes_max(config);
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        max_message_size: Some(max),
        max_frame_size: Some(max),
        ..Default::default()
    }
}
/// Trace events buffered per subscriber; a slower subscriber loses events, never the node.
const TRACE_BUFFER: usize = 16_384;

/// What peers say first on a link.
#[derive(Debug, Serialize, Deserialize)]
enum PeerFrame {
    Hello { cluster: Vec<String>, name: String, secret: Option<String> },
    Envelopes(Vec<Envelope>),
}

/// Something for the node task.
pub enum Event {
    Peer {
        from: NodeId,
        envelope: Envelope,
    },
    Client {
        request: ClientRequest,
        reply: oneshot::Sender<ClientReply>,
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

/// What connections need to reach the node.
#[derive(Clone)]
pub struct Handle {
    pub inputs: mpsc::UnboundedSender<Event>,
    pub traces: broadcast::Sender<TraceEvent>,
    pub ring: Arc<Ring>,
    pub file: Arc<ClusterFile>,
    pub id: NodeId,
    /// Client sessions for every connection of this node, with this incarnation's client ids
    /// (`Node::take_client_ids`).
    sessions: Arc<std::sync::Mutex<SessionPool>>,
    /// This node's incarnation, for INFO.
    pub incarnation: u64,
    /// Which peers this node suspects.
    liveness: Arc<std::sync::Mutex<Vec<bool>>>,
    /// Recent lifecycle events (restart, recovery, suspicion, hints), replayed to a new
    /// subscriber so a page that attaches after a restart still sees the recovery.
    pub recent: Arc<std::sync::Mutex<std::collections::VecDeque<TraceEvent>>>,
    /// KiB of client requests the node may work on at once, and the permits for them.
    admitted_kib: u64,
    admission: Arc<tokio::sync::Semaphore>,
}

impl Handle {
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

    /// Stops (or resumes) sending every message to `peer`: a one-way link cut.
    pub fn cut(&self, peer: NodeId, cut: bool) {
        let _ = self.inputs.send(Event::Cut { peer, cut });
    }

    /// The node's recent lifecycle events, oldest first, for a new subscriber.
    pub fn recent_lifecycle(&self) -> Vec<TraceEvent> {
        self.recent.lock().map(|recent| recent.iter().cloned().collect()).unwrap_or_default()
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

/// Runs node `index` of `file` until the process is killed.
pub async fn run_node(file: ClusterFile, index: usize) -> Result<(), Box<dyn std::error::Error>> {
    let file = Arc::new(file);
    let id = NodeId(index as u32);
    let me = file.nodes[index].clone();
    let config = file.config.clone();
    let ring = Arc::new(Ring::new(&config.nodes, config.tokens_per_node, config.replicas));
    let dir = file.data_dir.join(&me.name);
    let (storage, durable) = Storage::open(&dir, file.fsync)?;
    tracing::info!(node = %me.name, keys = durable.slots.len(), hints = durable.hints.len(), "storage loaded");

    let (inputs, mut events) = mpsc::unbounded_channel::<Event>();
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
    let options =
        NodeOptions { id, config: config.clone(), ring: ring.clone(), seed: epoch_micros ^ index as u64, trace: true };
    let mut outputs = Vec::new();
    let mut node = Node::start(options, durable, now(), &mut outputs)?;
    let start = node.started();
    let admitted_kib = file.admitted_bytes_max.div_ceil(1024).clamp(1, u32::MAX as u64);
    let handle = Handle {
        inputs: inputs.clone(),
        traces: traces.clone(),
        ring: ring.clone(),
        file: file.clone(),
        id,
        sessions: Arc::new(std::sync::Mutex::new(SessionPool::new(node.take_client_ids()))),
        incarnation: node.incarnation(),
        liveness: Arc::new(std::sync::Mutex::new(vec![false; file.nodes.len()])),
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
    let mut accepted: Vec<Option<mpsc::Sender<WebSocketStream<TcpStream>>>> = Vec::new();
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
            frame_bytes_max: frame_bytes_max(&config),
            websocket: websocket_config(&config),
        };
        tokio::spawn(link.run(rx, incoming));
    }

    let ws = TcpListener::bind(me.ws).await.map_err(|e| format!("cannot listen on {} (ws): {e}", me.ws))?;
    let resp = TcpListener::bind(me.resp).await.map_err(|e| format!("cannot listen on {} (resp): {e}", me.resp))?;
    tokio::spawn(accept_ws(ws, handle.clone(), Arc::new(accepted)));
    tokio::spawn(crate::resp::serve(resp, handle.clone()));

    let mut driver = Driver {
        id,
        cut: vec![false; file.nodes.len()],
        links,
        persister,
        traces,
        replies: HashMap::new(),
        next_handle: 0,
        names: file.nodes.iter().map(|node| node.name.clone()).collect(),
        liveness: handle.liveness.clone(),
        recent: handle.recent.clone(),
        now: Box::new(now),
    };
    driver.carry_out(&mut outputs);
    // Not println!: a closed stdout (`dynamo node ... | head -1`) must not stop the node. The
    // supervisor (`dynamo cluster`) waits for this line's "node NAME ready:".
    crate::say(format_args!("node {} ready: ws://{} resp {} ({:?})", me.name, me.ws, me.resp, start));
    tracing::info!(node = %me.name, ws = %me.ws, resp = %me.resp, ?start, incarnation = node.incarnation(), "ready");

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
        let Some(event) = event else { return Ok(()) };
        // Handle everything already waiting before going back to sleep.
        let mut next = Some(event);
        while let Some(event) = next.take() {
            let input = match event {
                Event::Peer { from, envelope } => Input::Message { from, envelope },
                Event::Persisted(batch) => {
                    driver.persister.reported(batch);
                    Input::Persisted { batch }
                }
                Event::Client { request, reply } => {
                    driver.next_handle += 1;
                    driver.replies.insert(driver.next_handle, reply);
                    Input::Client { handle: driver.next_handle, request }
                }
                Event::Inspect(reply) => {
                    let _ = reply.send(Inspection::of_node(&node));
                    next = events.try_recv().ok();
                    continue;
                }
                Event::Cut { peer, cut } => {
                    if let Some(flag) = driver.cut.get_mut(peer.index()) {
                        *flag = cut;
                    }
                    tracing::info!(peer = %file.nodes[peer.index()].name, cut, "link control");
                    next = events.try_recv().ok();
                    continue;
                }
            };
            driver.step(&mut node, now(), input, &mut outputs);
            next = events.try_recv().ok();
        }
    }
}

/// The effects half of the node task.
struct Driver {
    id: NodeId,
    /// Peers this node must not send to (one-way link cuts from the control API).
    cut: Vec<bool>,
    now: Box<dyn Fn() -> u64 + Send>,
    links: Vec<Option<mpsc::Sender<Envelope>>>,
    persister: Persister,
    traces: broadcast::Sender<TraceEvent>,
    replies: HashMap<u64, oneshot::Sender<ClientReply>>,
    next_handle: u64,
    /// Node names by index, for logs.
    names: Vec<String>,
    liveness: Arc<std::sync::Mutex<Vec<bool>>>,
    recent: Arc<std::sync::Mutex<std::collections::VecDeque<TraceEvent>>>,
}

/// Where persist batches go. With fsync, every batch goes to the group-commit thread. Without,
/// the node task commits small batches itself once the events at hand are handled: a journal
/// append costs microseconds, less than a hand-off to a thread and back (the one-key
/// benchmark lost about a sixth of its SETs per second with every commit on the thread). Large
/// batches go to the thread: fjall holds a writer back, in steps of 100 ms, while its memtables
/// wait to be flushed, which large values bring about, and the node task must keep answering
/// meanwhile. Batches stay in order: while the thread holds any not yet reported durable, every
/// batch goes there too.
struct Persister {
    thread: std::sync::mpsc::Sender<PersistBatch>,
    /// Without fsync: the storage the node task commits to.
    inline: Option<Storage>,
    /// Batches waiting for the node task's next inline commit, and about how many bytes.
    waiting: Vec<PersistBatch>,
    waiting_bytes: u64,
    /// The last batch handed to the thread, and the last one it reported durable.
    sent: u64,
    durable: u64,
}

/// Without fsync, the bytes of waiting batches the node task commits inline (see `Persister`).
const INLINE_COMMIT_BYTES_MAX: u64 = 64 << 10;

impl Persister {
    /// The storage thread reported every batch up to `batch` durable.
    fn reported(&mut self, batch: u64) {
        self.durable = self.durable.max(batch);
    }

    fn persist(&mut self, batch: PersistBatch) {
        let bytes = batch_bytes(&batch);
        let thread_idle = self.durable == self.sent;
        if self.inline.is_some() && thread_idle && self.waiting_bytes + bytes <= INLINE_COMMIT_BYTES_MAX {
            self.waiting_bytes += bytes;
            self.waiting.push(batch);
            return;
        }
        self.waiting_bytes = 0;
        for batch in self.waiting.drain(..).chain(std::iter::once(batch)) {
            self.sent = batch.seq;
            if self.thread.send(batch).is_err() {
                tracing::error!("storage thread is gone");
                std::process::exit(70);
            }
        }
    }
}

/// Lifecycle events kept for late subscribers.
const RECENT_EVENTS_MAX: usize = 256;

impl Driver {
    /// One input through the node, and its effects carried out.
    fn step(&mut self, node: &mut Node, now: u64, input: Input, outputs: &mut Vec<Output>) {
        // Trace events cost allocations: build them only while someone subscribes, or while
        // recovering (its progress is logged).
        node.set_trace(self.traces.receiver_count() > 0 || node.is_recovering());
        node.step(now, input, outputs);
        self.carry_out(outputs);
        self.update_liveness(node);
    }

    /// Commits the batches waiting for an inline commit (all the events handled since the last
    /// commit share it) and tells the node, until nothing waits.
    fn commit_inline(&mut self, node: &mut Node, now: u64, outputs: &mut Vec<Output>) {
        loop {
            let persister = &mut self.persister;
            let Some(storage) = &persister.inline else { return };
            let Some(last) = persister.waiting.last().map(|batch| batch.seq) else { return };
            commit_or_exit(storage, &persister.waiting);
            persister.waiting.clear();
            persister.waiting_bytes = 0;
            self.step(node, now, Input::Persisted { batch: last }, outputs);
        }
    }

    /// Copies which peers the node suspects, for INFO.
    fn update_liveness(&self, node: &Node) {
        if let Ok(mut list) = self.liveness.lock() {
            for (index, suspected) in list.iter_mut().enumerate() {
                *suspected = node.suspects(NodeId(index as u32));
            }
        }
    }

    fn carry_out(&mut self, outputs: &mut Vec<Output>) {
        for output in outputs.drain(..) {
            match output {
                Output::Send { to, envelope } => {
                    if self.cut.get(to.index()).copied().unwrap_or(false) {
                        if self.traces.receiver_count() > 0 {
                            let kind = TraceKind::MessageDropped {
                                id: envelope.id,
                                to,
                                kind: envelope.message.kind(),
                                reason: DropReason::Partition,
                            };
                            let _ = self.traces.send(TraceEvent { at: (self.now)(), node: self.id, kind });
                        }
                        continue;
                    }
                    if let Some(Some(link)) = self.links.get(to.index()) {
                        // A full queue means the peer is not keeping up; drop, timeouts follow.
                        let _ = link.try_send(envelope);
                    }
                }
                Output::Reply { handle, reply } => {
                    if let Some(waiting) = self.replies.remove(&handle) {
                        let _ = waiting.send(reply);
                    }
                }
                Output::Persist(batch) => self.persister.persist(batch),
                Output::Trace(event) => {
                    match &event.kind {
                        TraceKind::RecoveryStarted { peers } => {
                            tracing::info!(peers = peers.len(), "recovery: copying the writes missed while down")
                        }
                        TraceKind::RecoveryProgress { peer, records, peer_done } => {
                            let peer = self.names.get(peer.index()).map_or("?", String::as_str);
                            tracing::info!(peer, keys = records, done = peer_done, "recovery: copied keys")
                        }
                        TraceKind::RecoveryFinished { records } => {
                            tracing::info!(keys = records, "recovery finished; serving reads")
                        }
                        _ => {}
                    }
                    if event.kind.is_lifecycle() {
                        if let Ok(mut recent) = self.recent.lock() {
                            if recent.len() == RECENT_EVENTS_MAX {
                                recent.pop_front();
                            }
                            recent.push_back(event.clone());
                        }
                    }
                    if self.traces.receiver_count() > 0 {
                        let _ = self.traces.send(event);
                    }
                }
            }
        }
    }
}

/// One peer link: dials (lower id) or waits to be dialed, then carries frames both ways.
struct Link {
    me: String,
    /// The peer's name, for logs.
    name: String,
    cluster: Vec<String>,
    peer: NodeId,
    address: SocketAddr,
    dial: bool,
    inputs: mpsc::UnboundedSender<Event>,
    secret: Option<String>,
    /// `frame_bytes_max` of the cluster's config.
    frame_bytes_max: usize,
    websocket: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
}

impl Link {
    async fn run(
        self,
        mut outgoing: mpsc::Receiver<Envelope>,
        mut incoming: mpsc::Receiver<WebSocketStream<TcpStream>>,
    ) {
        let mut backoff = LINK_BACKOFF_MIN;
        loop {
            let up = Instant::now();
            let mut ended = if self.dial {
                match self.connect().await {
                    Ok(socket) => {
                        tracing::info!(peer = %self.name, "peer link up (dialed)");
                        self.carry(socket, &mut outgoing, &mut incoming).await
                    }
                    Err(error) => {
                        tracing::debug!(peer = %self.name, address = %self.address, %error, "dial failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(LINK_BACKOFF_MAX);
                        continue;
                    }
                }
            } else {
                match incoming.recv().await {
                    Some(socket) => {
                        tracing::info!(peer = %self.name, "peer link up (accepted)");
                        self.carry(socket, &mut outgoing, &mut incoming).await
                    }
                    None => return,
                }
            };
            // An accepted link is replaced when the peer dials again (it restarted).
            while let Ended::Replaced(socket) = ended {
                ended = self.carry(*socket, &mut outgoing, &mut incoming).await;
            }
            if let Ended::Closed(reason) = ended {
                tracing::warn!(peer = %self.name, %reason, "peer link down");
            }
            if outgoing.is_closed() {
                return;
            }
            // A link that fell at once (a peer that refuses our hello, or accepts and closes)
            // is dialed again only after the backoff, or the two nodes would spin thousands of
            // dials a second; one that stayed up redials at once (the peer restarted).
            if up.elapsed() < LINK_STABLE {
                if self.dial {
                    tokio::time::sleep(backoff).await;
                }
                backoff = (backoff * 2).min(LINK_BACKOFF_MAX);
            } else {
                backoff = LINK_BACKOFF_MIN;
            }
        }
    }

    async fn connect(&self) -> Result<WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>, String> {
        let url = format!("ws://{}/peer", self.address);
        // No Nagle: small frames must leave at once (with delayed ACKs, Nagle costs 40 ms).
        let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(self.websocket), true)
            .await
            .map_err(|e| e.to_string())?;
        let hello =
            PeerFrame::Hello { cluster: self.cluster.clone(), name: self.me.clone(), secret: self.secret.clone() };
        let bytes = postcard::to_allocvec(&hello).map_err(|e| e.to_string())?;
        socket.send(WsMessage::Binary(bytes)).await.map_err(|e| e.to_string())?;
        Ok(socket)
    }

    async fn carry<S>(
        &self,
        socket: WebSocketStream<S>,
        outgoing: &mut mpsc::Receiver<Envelope>,
        incoming: &mut mpsc::Receiver<WebSocketStream<TcpStream>>,
    ) -> Ended
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (mut sink, mut stream) = socket.split();
        // Reading and writing run side by side: a writer waiting for the peer to take a large
        // frame must not stop this end from reading, or two nodes sending each other large
        // frames at once would both wait forever with full socket buffers.
        let reading = async {
            loop {
                let frame = match stream.next().await {
                    Some(Ok(frame)) => frame,
                    Some(Err(error)) => return Ended::Closed(error.to_string()),
                    None => return Ended::Closed("closed".into()),
                };
                match frame {
                    WsMessage::Binary(bytes) => match postcard::from_bytes::<PeerFrame>(&bytes) {
                        Ok(PeerFrame::Envelopes(envelopes)) => {
                            for envelope in envelopes {
                                let _ = self.inputs.send(Event::Peer { from: self.peer, envelope });
                            }
                        }
                        _ => return Ended::Closed("garbage from peer; disconnected".into()),
                    },
                    WsMessage::Ping(_) | WsMessage::Pong(_) => {}
                    WsMessage::Close(_) => return Ended::Closed("closed by peer".into()),
                    _ => return Ended::Closed("unexpected frame from peer; disconnected".into()),
                }
            }
        };
        let writing = async {
            loop {
                let Some(first) = outgoing.recv().await else { return Ended::Closed("node stopped".into()) };
                // As many queued envelopes per frame as fit under the peer's limit, by each
                // message's size bound; one that does not fit opens the next frame.
                let mut next = Some(first);
                while let Some(envelope) = next.take() {
                    let bound = |envelope: &Envelope| envelope.message.wire_bytes_max() + ENVELOPE_OVERHEAD_BYTES;
                    let mut bytes = FRAME_OVERHEAD_BYTES + bound(&envelope);
                    let mut batch = vec![envelope];
                    while batch.len() < FRAME_ENVELOPES_MAX {
                        let Ok(more) = outgoing.try_recv() else { break };
                        if bytes + bound(&more) > self.frame_bytes_max {
                            next = Some(more);
                            break;
                        }
                        bytes += bound(&more);
                        batch.push(more);
                    }
                    let frame = match postcard::to_allocvec(&PeerFrame::Envelopes(batch)) {
                        Ok(frame) => frame,
                        Err(error) => return Ended::Closed(error.to_string()),
                    };
                    if let Err(error) = sink.send(WsMessage::Binary(frame)).await {
                        return Ended::Closed(error.to_string());
                    }
                }
            }
        };
        let replaced = async {
            if self.dial {
                return std::future::pending().await;
            }
            match incoming.recv().await {
                Some(socket) => Ended::Replaced(Box::new(socket)),
                None => Ended::Closed("node stopped".into()),
            }
        };
        let ended = tokio::select! {
            ended = reading => ended,
            ended = writing => ended,
            ended = replaced => ended,
        };
        if let Ended::Replaced(_) = ended {
            // The peer dialled again (it restarted): this connection is done.
            if let Ok(mut socket) = sink.reunite(stream) {
                let _ = socket.close(None).await;
            }
        }
        ended
    }
}

/// How a link's connection ended.
enum Ended {
    Closed(String),
    Replaced(Box<WebSocketStream<TcpStream>>),
}

/// Accepts WebSocket connections: `/peer` links (handed to their `Link`) and `/client` API
/// connections.
// tungstenite's handshake callback signature fixes its (large) error type.
#[allow(clippy::result_large_err)]
async fn accept_ws(
    listener: TcpListener,
    handle: Handle,
    accepted: Arc<Vec<Option<mpsc::Sender<WebSocketStream<TcpStream>>>>>,
) {
    loop {
        let Ok((stream, address)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let mut path = String::new();
            let allowed = &handle.file.allowed_origins;
            let callback =
                |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                 response: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    path = request.uri().path().to_string();
                    if path != "/peer" && path != "/client" {
                        let mut refusal = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(Some(
                            format!("no WebSocket endpoint at {path}; use /client (or /peer between nodes)"),
                        ));
                        *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
                        return Err(refusal);
                    }
                    // Browsers send Origin; a page from anywhere else must not drive the cluster.
                    // Clients without one (scripts, peers) are not browsers and pass.
                    if let Some(origin) = request.headers().get("origin") {
                        let origin = origin.to_str().unwrap_or("");
                        if !allowed.iter().any(|allowed| allowed == origin) {
                            let mut refusal = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(
                                Some(format!("origin {origin} is not allowed")),
                            );
                            *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::FORBIDDEN;
                            return Err(refusal);
                        }
                    }
                    Ok(response)
                };
            let config = websocket_config(&handle.file.config);
            let mut socket = match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
            {
                Ok(socket) => socket,
                // Whatever is not a WebSocket handshake (random bytes, a stray HTTP client) is
                // logged and dropped; the node carries on.
                Err(error) => return tracing::warn!(%address, %error, "websocket handshake failed; disconnected"),
            };
            if path == "/peer" {
                let hello = match socket.next().await {
                    Some(Ok(WsMessage::Binary(bytes))) => postcard::from_bytes::<PeerFrame>(&bytes).ok(),
                    _ => None,
                };
                let peer = match hello {
                    Some(PeerFrame::Hello { cluster, name, secret }) => {
                        let index = handle.file.nodes.iter().position(|node| node.name == name);
                        if cluster != handle.file.config.nodes {
                            Err(format!("{name} has another cluster file (nodes {})", cluster.join(", ")))
                        } else if secret != handle.file.secret {
                            Err(format!("{name} presented a different cluster secret"))
                        } else {
                            match index.map(|index| accepted.get(index).cloned().flatten()) {
                                Some(Some(link)) => Ok(link),
                                Some(None) => Err(format!("{name} is this node's own name")),
                                None => Err(format!("{name:?} is not a node of this cluster")),
                            }
                        }
                    }
                    _ => Err("the first frame was not a peer hello".to_string()),
                };
                match peer {
                    Ok(link) => {
                        let _ = link.send(socket).await;
                    }
                    Err(reason) => tracing::warn!(%address, %reason, "peer link refused"),
                }
            } else {
                crate::ws_client::serve(socket, handle).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_core::store::{Record, Slot};
    use dynamo_core::types::{Blob, ClientId, OpId};
    use dynamo_core::version::{Ballot, VectorClock};

    fn batch(seq: u64, value_bytes: usize) -> PersistBatch {
        let record = Record {
            ballot: Ballot { round: seq + 1, node: NodeId(0) },
            clock: VectorClock::new(),
            value: Some(Blob::new(&vec![7; value_bytes])),
            op: OpId { client: ClientId(1), seq },
            writers: Vec::new().into(),
        };
        let slot = Slot { promised: record.ballot, record: Some(record) };
        PersistBatch { seq, slots: vec![(Blob::from("k"), slot)], ..PersistBatch::default() }
    }

    /// Without fsync, small batches wait for the node task's inline commit and large ones go to
    /// the storage thread, taking every batch waiting before them along, in order; while the
    /// thread has batches not reported durable, small ones follow them there.
    #[test]
    fn large_batches_go_to_the_storage_thread_in_order() {
        let dir = std::env::temp_dir().join(format!("dynamo-persister-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (storage, _) = Storage::open(&dir, false).unwrap();
        let (thread, handed) = std::sync::mpsc::channel();
        let mut persister =
            Persister { thread, inline: Some(storage), waiting: Vec::new(), waiting_bytes: 0, sent: 0, durable: 0 };
        let seqs = |batches: &[PersistBatch]| batches.iter().map(|batch| batch.seq).collect::<Vec<_>>();

        persister.persist(batch(1, 100));
        persister.persist(batch(2, 100));
        assert_eq!(seqs(&persister.waiting), vec![1, 2], "small batches are committed inline");
        assert!(handed.try_recv().is_err());

        persister.persist(batch(3, INLINE_COMMIT_BYTES_MAX as usize));
        assert_eq!(handed.try_iter().map(|batch| batch.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(persister.waiting.is_empty());
        assert_eq!(persister.waiting_bytes, 0);

        persister.persist(batch(4, 100));
        assert_eq!(handed.try_iter().map(|batch| batch.seq).collect::<Vec<_>>(), vec![4], "behind batch 3");

        persister.reported(4);
        persister.persist(batch(5, 100));
        assert_eq!(seqs(&persister.waiting), vec![5], "the thread is idle again");
        assert!(handed.try_recv().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
