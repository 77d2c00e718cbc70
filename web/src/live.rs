//! Live mode: a real cluster of `dynamo` processes, drawn with the same pieces as a simulation.
//!
//! The page talks to every node's JSON WebSocket API (docs/protocol.md) and to the supervisor's
//! `/api/cluster` and `/api/control`; the browser side of that lives in `connect` and `pump`.
//! This module is the part that needs no browser, tested natively: it decodes what the sockets
//! say, pairs `MessageSent` with `MessageDelivered` across five event streams, keeps the client
//! history (invoke and complete times from the page's clock) for the checker, and writes and
//! reads the export format (`recording`). It never decides anything about replication.
//!
//! Time. Every time here is microseconds of the page's clock (`performance.now()`, from page
//! load). Trace events carry UNIX-epoch microseconds from one machine, so subtracting the
//! page's own epoch origin (`performance.timeOrigin`) puts them on the same axis as the history.
//!
//! Drawing. Events wait `PAIRING_DELAY` in a reorder buffer, so a delivery reported by one
//! process before the other process reported the send still meets its send. A message between
//! processes of one machine takes well under a millisecond, which no eye can follow in real
//! time, so the screen runs in slow motion (the speed slider) while messages are in the air and
//! jumps ahead to the next event, or to the present, when none are. It is never more than
//! `LAG_MAX` behind the present: a live stream cannot be scrubbed ahead, only shown late.
//!
//! A `Live` built from a recording (`Recording`, the export format) replays it on the
//! same timeline, with the same rules minus the lag bound.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use dynamo_core::api::{self, ClusterInfo, Control, Inspection, Op, Request as ApiRequest};
use dynamo_core::client::{ClientIds, Pending, SessionPool};
use dynamo_core::config::Config;
use dynamo_core::history::{History, OpKind, Outcome};
use dynamo_core::message::{ClientError, ClientOp, ClientReply, Invalid, Unavailable};
use dynamo_core::ring::Ring;
use dynamo_core::trace::{TraceEvent, TraceKind};
use dynamo_core::types::{Micros, NodeId};

use crate::flights::{Arrival, Flights};
use crate::inspector::NodeView;
use crate::recording::{Mark, RecordedRequest, Recording, RECORDING_FORMAT, RECORDING_VERSION};
use crate::text::Tone;
use crate::timeline::{Answer, LogLine, NodeStatus, Request, Timeline};

/// How long events wait before they are drawn, so sends and deliveries from different sockets
/// meet (the brief allows a few hundred milliseconds).
pub const PAIRING_DELAY: Micros = 300_000;
/// The screen is never further behind the present than this in live mode.
pub const LAG_MAX: Micros = 3_000_000;
/// A request with no answer after this long is given up (its outcome is unknown).
pub const REQUEST_TIMEOUT: Micros = 10_000_000;
/// How long a message without a known arrival is drawn travelling (real latencies on one
/// machine are far below it; this only bounds the animation).
pub const LIVE_LATENCY: Micros = 2_000;
/// Shortest flight drawn: the nodes' clocks may differ by a few milliseconds, which can stamp a
/// delivery before its send.
pub const LIVE_FLIGHT_MIN: Micros = 500;
/// Messages that take longer than this (a peer queue held while its receiver was down) are drawn
/// at their true speed but do not slow the screen down: they could hold it for seconds.
const SLOW_MOTION_FLIGHT_MAX: Micros = 100_000;
/// A flight whose end never arrived is retired after this long.
const FLIGHT_EXPIRY: Micros = 1_000_000;
/// Trace events kept for the export; beyond it the oldest are dropped (and counted).
const EVENTS_KEPT_MAX: usize = 200_000;
/// Finished flights kept for the space-time diagram.
const FLIGHT_HISTORY_MAX: usize = 800;
/// What the page's log says the supervisor did.
fn describe_control(control: &Control) -> String {
    match control {
        Control::Kill { node } => format!("killed {node} (SIGKILL)"),
        Control::Restart { node } => format!("restarted {node}'s process"),
        Control::Cut { from, to } => format!("cut the link {from} → {to}"),
        Control::Heal { from, to } => format!("healed the link {from} → {to}"),
        Control::HealAll => "healed every link".to_string(),
    }
}

/// The state of the page's socket to one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socket {
    Connecting,
    Open,
    Closed,
}

/// What an answer with this id is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Awaited {
    Request(usize),
    Inspect(NodeId),
}

/// Where the screen's time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// A connected cluster: the page clock, shown at most `LAG_MAX` late.
    Live,
    /// A recording: everything has arrived; the timeline ends at `end`.
    Replay { end: Micros },
}

/// A real cluster on screen, or a recording of one: see the module documentation.
pub struct Live {
    cluster: ClusterInfo,
    ring: Ring,
    clock: Clock,
    /// The page clock's origin in UNIX-epoch microseconds.
    origin_unix: Micros,
    /// The latest page time seen.
    now: Micros,
    /// The time on screen.
    shown: Micros,
    /// Arrived events not yet released, by (time, arrival order).
    arrived: BTreeMap<(Micros, u64), TraceEvent>,
    arrivals: u64,
    /// Events up to this time have been released to `flights` and `upcoming`.
    released: Micros,
    /// Released events not yet on screen, in time order.
    upcoming: VecDeque<TraceEvent>,
    /// Marks of a recording not yet on screen (replay only).
    upcoming_marks: VecDeque<Mark>,
    /// What the screen shows of the run: flights, status, log, requests, focus, verdict.
    timeline: Timeline,
    /// Whether the supervisor says the process is up.
    reported_up: Vec<bool>,
    sockets: Vec<Socket>,
    /// Per request, its operation in `history` (key operations only).
    history_index: Vec<Option<u64>>,
    history: History,
    /// The history's client sessions: one per request in flight, reused once it is answered
    /// (the nodes number the requests themselves; these only name the history's clients).
    sessions: SessionPool,
    /// Per request, its history session while it waits for its answer.
    waiting: Vec<Option<Pending>>,
    /// The nodes' client password, if the cluster has one.
    password: Option<String>,
    awaited: BTreeMap<u64, Awaited>,
    next_id: u64,
    dropped: u64,
    /// Every event taken in (for the export), oldest first.
    events: VecDeque<TraceEvent>,
    marks: Vec<Mark>,
    inspections: Vec<Option<Inspection>>,
    cuts: BTreeSet<(NodeId, NodeId)>,
}

impl Live {
    /// A session attached to `cluster`; `origin_unix` is the page clock's origin
    /// (`performance.timeOrigin`) in UNIX-epoch microseconds, `now` the page time.
    pub fn new(cluster: ClusterInfo, origin_unix: Micros, now: Micros) -> Live {
        let nodes = cluster.nodes.len();
        let ring = Ring::new(&cluster.config.nodes, cluster.config.tokens_per_node, cluster.config.replicas);
        let reported_up = cluster.nodes.iter().map(|node| node.up).collect();
        let start = now.saturating_sub(PAIRING_DELAY);
        Live {
            cluster,
            ring,
            clock: Clock::Live,
            origin_unix,
            now,
            shown: start,
            arrived: BTreeMap::new(),
            arrivals: 0,
            released: start,
            upcoming: VecDeque::new(),
            upcoming_marks: VecDeque::new(),
            timeline: Timeline::new(nodes, Flights::new(FLIGHT_HISTORY_MAX).with_min_flight(LIVE_FLIGHT_MIN)),
            reported_up,
            sockets: vec![Socket::Connecting; nodes],
            history_index: Vec::new(),
            history: History::default(),
            sessions: SessionPool::new(ClientIds::unbound()),
            waiting: Vec::new(),
            password: None,
            awaited: BTreeMap::new(),
            next_id: 1,
            dropped: 0,
            events: VecDeque::new(),
            marks: Vec::new(),
            inspections: vec![None; nodes],
            cuts: BTreeSet::new(),
        }
    }

    /// A session that replays `recording` from its first event.
    pub fn replay(recording: Recording) -> Live {
        let end = recording
            .events
            .iter()
            .map(|event| event.at)
            .chain(recording.requests.iter().map(|request| request.answered_at.unwrap_or(request.sent_at)))
            .chain(recording.marks.iter().map(|mark| mark.at))
            .max()
            .unwrap_or(0);
        let start = recording
            .events
            .iter()
            .map(|event| event.at)
            .chain(recording.requests.iter().map(|request| request.sent_at))
            .chain(recording.marks.iter().map(|mark| mark.at))
            .min()
            .unwrap_or(0)
            .saturating_sub(1);
        let mut session = Live::new(recording.cluster, recording.clock_origin_unix_us, start);
        session.clock = Clock::Replay { end };
        session.shown = start;
        session.released = start;
        session.sockets.fill(Socket::Closed);
        session.dropped = recording.dropped;
        for event in recording.events {
            session.arrive(event);
        }
        let mut marks = recording.marks;
        marks.sort_by_key(|mark| mark.at);
        session.upcoming_marks = marks.into();
        for recorded in recording.requests {
            let answer = match (recorded.answered_at, recorded.reply) {
                (Some(at), Some(reply)) => Answer::Replied { at, reply },
                (at, _) => Answer::GaveUp { at: at.unwrap_or(recorded.sent_at + REQUEST_TIMEOUT) },
            };
            let client = session.timeline.requests().len();
            session.timeline.push_request(Request {
                client,
                op_id: recorded.op_id,
                node: recorded.node,
                op: recorded.op,
                sent_at: recorded.sent_at,
                answer,
            });
            session.history_index.push(None);
            session.waiting.push(None);
        }
        session.history = recording.history;
        session.refresh_verdict();
        session
    }

    // ----- Reading. -----

    pub fn cluster(&self) -> &ClusterInfo {
        &self.cluster
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    pub fn config(&self) -> &Config {
        &self.cluster.config
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.clock, Clock::Replay { .. })
    }

    pub fn shown(&self) -> Micros {
        self.shown
    }

    /// How far the screen is behind the present.
    pub fn lag(&self) -> Micros {
        self.now.saturating_sub(self.shown)
    }

    /// What the screen shows of the run.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    pub fn status(&self, node: NodeId) -> NodeStatus {
        let index = node.index();
        let down = match self.clock {
            Clock::Live => !self.reported_up[index] || self.sockets[index] != Socket::Open,
            Clock::Replay { .. } => !self.reported_up[index],
        };
        NodeStatus { down, recovering: !down && self.timeline.status(node).recovering }
    }

    /// Whether the supervisor says the node's process runs (what fail and heal act on).
    pub fn is_up(&self, node: NodeId) -> bool {
        self.reported_up[node.index()]
    }

    pub fn socket(&self, node: NodeId) -> Socket {
        self.sockets[node.index()]
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// Trace events lost on the way: reported by the nodes, or beyond what the page keeps.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn cuts(&self) -> &BTreeSet<(NodeId, NodeId)> {
        &self.cuts
    }

    pub fn name(&self, node: NodeId) -> &str {
        self.ring.name(node)
    }

    // ----- Sockets. -----

    /// The nodes' client password (`requirepass`), which each socket presents first.
    pub fn with_password(mut self, password: Option<String>) -> Live {
        self.password = password;
        self
    }

    /// The socket to `node` opened: returns what to send on it (the password when the cluster
    /// has one, then the trace subscription).
    pub fn socket_opened(&mut self, node: NodeId) -> Vec<String> {
        self.sockets[node.index()] = Socket::Open;
        let auth = self.password.clone().map(|password| Op::Auth { user: None, password });
        auth.into_iter()
            .chain([Op::Subscribe])
            .map(|op| serde_json::to_string(&ApiRequest { id: Value::Null, op }).expect("a request encodes"))
            .collect()
    }

    pub fn socket_connecting(&mut self, node: NodeId) {
        self.sockets[node.index()] = Socket::Connecting;
    }

    /// The socket to `node` closed: its unanswered requests will never be answered on it.
    pub fn socket_closed(&mut self, node: NodeId, now: Micros) {
        self.now = self.now.max(now);
        self.sockets[node.index()] = Socket::Closed;
        self.timeline.status_mut(node).recovering = false;
        let lost: Vec<(u64, Awaited)> = self
            .awaited
            .iter()
            .filter(|(_, awaited)| match awaited {
                Awaited::Request(index) => self.timeline.requests()[*index].node == node,
                Awaited::Inspect(inspected) => *inspected == node,
            })
            .map(|(id, awaited)| (*id, *awaited))
            .collect();
        for (id, awaited) in lost {
            self.awaited.remove(&id);
            if let Awaited::Request(index) = awaited {
                self.give_up(index, now);
            }
        }
    }

    /// Takes in one text frame from `node`'s socket (a `dynamo_core::api::Answer`), received at
    /// page time `now`.
    pub fn receive(&mut self, _node: NodeId, text: &str, now: Micros) {
        self.now = self.now.max(now);
        let Ok(frame) = serde_json::from_str::<Value>(text) else { return };
        let answer = match serde_json::from_value::<api::Answer>(frame.clone()) {
            Ok(answer) => answer,
            Err(error) => {
                // An answer to one of the page's requests that cannot be read still ends it.
                if let Some(Awaited::Request(index)) = self.take_awaited(&frame["id"]) {
                    let cause = Invalid::UnreadableAnswer { detail: error.to_string() };
                    self.complete(index, ClientReply::Error(ClientError::Invalid(cause)), now);
                }
                return;
            }
        };
        match answer {
            api::Answer::Trace { trace } => {
                let mut event = *trace;
                if event.node.index() < self.ring.node_count() {
                    event.at = event.at.saturating_sub(self.origin_unix);
                    self.arrive(event);
                }
            }
            api::Answer::Dropped { dropped } => self.dropped += dropped,
            api::Answer::Started { id, started } => {
                if let Some(Awaited::Request(index)) = id.as_u64().and_then(|id| self.awaited.get(&id)).copied() {
                    self.timeline.requests_mut()[index].op_id = Some(started);
                }
            }
            api::Answer::Reply { id, reply, op } => {
                if let Some(Awaited::Request(index)) = self.take_awaited(&id) {
                    self.timeline.requests_mut()[index].op_id = Some(op);
                    self.complete(index, reply.into(), now);
                }
            }
            api::Answer::Error { id, error } => {
                if let Some(Awaited::Request(index)) = self.take_awaited(&id) {
                    let cause = Invalid::BadRequest { detail: error };
                    self.complete(index, ClientReply::Error(ClientError::Invalid(cause)), now);
                }
            }
            api::Answer::Inspect { id, inspect } => {
                if let Some(Awaited::Inspect(inspected)) = self.take_awaited(&id) {
                    self.timeline.status_mut(inspected).recovering = inspect.recovering;
                    self.inspections[inspected.index()] = Some(*inspect);
                }
            }
            // The page sends no membership requests over a node's socket (they go to the supervisor).
            api::Answer::Owners { .. }
            | api::Answer::Subscribed { .. }
            | api::Answer::Ok { .. }
            | api::Answer::Admin { .. } => {}
        }
    }

    /// What an answer with this id was awaited for, no longer awaited.
    fn take_awaited(&mut self, id: &Value) -> Option<Awaited> {
        id.as_u64().and_then(|id| self.awaited.remove(&id))
    }

    /// Focuses one request (an index into the requests), or the newest with `None`.
    pub fn set_focus(&mut self, focus: Option<usize>) {
        self.timeline.set_focus(focus);
    }

    // ----- Acting. -----

    /// Records a request of `op` to `node` at page time `now`; returns the frame to send, or
    /// `None` when the node's socket is not open (the request then fails at once).
    pub fn request(&mut self, node: NodeId, op: ClientOp, now: Micros) -> Option<String> {
        self.now = self.now.max(now);
        let index = self.timeline.requests().len();
        let kind = match &op {
            ClientOp::Get { .. } => Some(OpKind::Get),
            ClientOp::Put { value, .. } => Some(OpKind::Put(value.clone())),
            ClientOp::Delete { .. } => Some(OpKind::Delete),
            _ => None,
        };
        // A history client per request in flight: the page may have several out at once.
        let pending = self.sessions.take().start(op.clone());
        let client = pending.id().client;
        let history = kind.zip(op.key()).map(|(kind, key)| self.history.invoke(client, key.clone(), kind, now));
        self.timeline.push_request(Request {
            client: index,
            op_id: None,
            node,
            op: op.clone(),
            sent_at: now,
            answer: Answer::Waiting,
        });
        self.history_index.push(history);
        self.waiting.push(Some(pending));
        if self.sockets[node.index()] != Socket::Open {
            let cause = Unavailable::NotConnected { node: self.ring.name(node).to_string() };
            self.complete(index, ClientReply::Error(ClientError::Unavailable(cause)), now);
            return None;
        }
        let id = self.next_id();
        self.awaited.insert(id, Awaited::Request(index));
        Some(serde_json::to_string(&ApiRequest { id: Value::from(id), op: op.into() }).expect("a request encodes"))
    }

    /// The frame asking `node` for its store, or `None` when it cannot be asked now.
    pub fn inspect(&mut self, node: NodeId) -> Option<String> {
        if self.sockets[node.index()] != Socket::Open
            || self.awaited.values().any(|awaited| *awaited == Awaited::Inspect(node))
        {
            return None;
        }
        let id = self.next_id();
        self.awaited.insert(id, Awaited::Inspect(node));
        Some(serde_json::to_string(&ApiRequest { id: Value::from(id), op: Op::Inspect }).expect("a request encodes"))
    }

    /// The supervisor carried out `control` (it answered 200).
    pub fn controlled(&mut self, control: &Control, now: Micros) {
        self.now = self.now.max(now);
        let node_of = |name: &str| self.ring.names().iter().position(|known| known == name).map(|i| NodeId(i as u32));
        let (node, up) = match control {
            Control::Kill { node } => (node_of(node), Some(false)),
            Control::Restart { node } => (node_of(node), Some(true)),
            Control::Cut { from, to } | Control::Heal { from, to } => {
                if let (Some(from), Some(to)) = (node_of(from), node_of(to)) {
                    if matches!(control, Control::Cut { .. }) {
                        self.cuts.insert((from, to));
                    } else {
                        self.cuts.remove(&(from, to));
                    }
                }
                (node_of(from), None)
            }
            Control::HealAll => {
                self.cuts.clear();
                (Some(NodeId(0)), None)
            }
        };
        if let Some(node) = node {
            if let Some(up) = up {
                self.reported_up[node.index()] = up;
            }
            self.mark(Mark { at: now, node, up, text: describe_control(control) });
        }
    }

    /// The supervisor's view of which processes run (`/api/cluster`, polled).
    pub fn polled(&mut self, info: &ClusterInfo, now: Micros) {
        self.now = self.now.max(now);
        for (index, node) in info.nodes.iter().enumerate().take(self.reported_up.len()) {
            if node.up != self.reported_up[index] {
                self.reported_up[index] = node.up;
                let text = if node.up { "process is up" } else { "process is down" };
                self.mark(Mark { at: now, node: NodeId(index as u32), up: Some(node.up), text: text.to_string() });
            }
        }
    }

    fn mark(&mut self, mark: Mark) {
        let tone = if mark.up == Some(false) { Tone::Fault } else { Tone::Recovery };
        self.timeline.log(LogLine { at: mark.at, node: mark.node, text: mark.text.clone(), tone });
        self.marks.push(mark);
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn complete(&mut self, index: usize, reply: ClientReply, now: Micros) {
        let request = &mut self.timeline.requests_mut()[index];
        if request.answer != Answer::Waiting {
            return;
        }
        let outcome = match (&reply, &request.op) {
            (ClientReply::Value(value), ClientOp::Get { .. }) => Outcome::Read(value.clone()),
            (ClientReply::Written, ClientOp::Put { .. }) | (ClientReply::Deleted(_), ClientOp::Delete { .. }) => {
                Outcome::Written
            }
            // An error says nothing certain: a write may still have taken effect.
            _ => Outcome::Unknown,
        };
        request.answer = Answer::Replied { at: now, reply };
        if let Some(pending) = self.waiting[index].take() {
            self.sessions.put(pending.finish());
        }
        if let Some(operation) = self.history_index[index] {
            self.history.complete(operation, outcome, now);
        }
        self.refresh_verdict();
    }

    fn give_up(&mut self, index: usize, now: Micros) {
        let request = &mut self.timeline.requests_mut()[index];
        if request.answer != Answer::Waiting {
            return;
        }
        request.answer = Answer::GaveUp { at: now };
        // Its outcome stays unknown for ever: its history client takes no further operation.
        self.waiting[index] = None;
        if let Some(operation) = self.history_index[index] {
            self.history.complete(operation, Outcome::Unknown, now);
        }
        self.refresh_verdict();
    }

    fn refresh_verdict(&mut self) {
        let settled = self.timeline.requests().iter().filter(|request| request.answer != Answer::Waiting).count();
        self.timeline.refresh_verdict(&self.history, settled);
    }

    // ----- Time. -----

    /// One animation frame at page time `now`, `wall_ms` after the previous one; `speed` is
    /// the slow motion while messages are in the air (1: real time; 0: paused).
    pub fn advance(&mut self, now: Micros, wall_ms: f64, speed: f64) {
        self.now = self.now.max(now);
        if self.clock == Clock::Live {
            let overdue: Vec<(u64, usize)> = self
                .awaited
                .iter()
                .filter_map(|(id, awaited)| match awaited {
                    Awaited::Request(index) if self.timeline.requests()[*index].sent_at + REQUEST_TIMEOUT <= now => {
                        Some((*id, *index))
                    }
                    _ => None,
                })
                .collect();
            for (id, index) in overdue {
                self.awaited.remove(&id);
                self.give_up(index, now);
            }
        }
        let horizon = self.horizon();
        self.release(horizon.min(self.shown + PAIRING_DELAY));
        // Only messages with a known, short flight hold the clock: after the pairing delay, one
        // without an end is lost (a killed receiver), and one queued for seconds while its
        // receiver was down would only let the screen fall behind.
        let busy = self.timeline.flights().in_air(self.shown, LIVE_LATENCY).any(|(flight, _)| match flight.arrival {
            Arrival::Unknown => false,
            _ => flight.end(LIVE_LATENCY) <= flight.sent_at + SLOW_MOTION_FLIGHT_MAX,
        });
        let mut target = if speed <= 0.0 {
            // Paused (the lag bound below still applies: a live stream cannot be held).
            self.shown
        } else if busy {
            self.shown + (wall_ms.clamp(0.0, 100.0) * 1_000.0 * speed.max(0.0)).round() as Micros
        } else {
            // Nothing moving: straight to the next message, or to the present; events between
            // here and there are taken in on the way.
            self.next_send_at().unwrap_or(horizon)
        };
        target = target.min(horizon);
        if self.clock == Clock::Live {
            target = target.max(horizon.saturating_sub(LAG_MAX));
        }
        self.show_until(target);
    }

    /// Moves the screen to the next event (a single step while paused).
    pub fn step(&mut self) {
        let horizon = self.horizon();
        self.release(horizon.min(self.shown + PAIRING_DELAY));
        if let Some(next) = self.next_event_at() {
            self.show_until(next.min(horizon));
        }
    }

    /// The latest time that may be shown.
    fn horizon(&self) -> Micros {
        match self.clock {
            Clock::Live => self.now.saturating_sub(PAIRING_DELAY),
            Clock::Replay { end } => end,
        }
    }

    fn next_event_at(&self) -> Option<Micros> {
        let after = |at: Micros| (at > self.shown).then_some(at);
        let event = self.upcoming.front().map(|event| event.at).or_else(|| self.arrived.keys().next().map(|key| key.0));
        let mark = self.upcoming_marks.front().map(|mark| mark.at);
        let request = self
            .timeline
            .requests()
            .iter()
            .filter_map(|request| match request.answer {
                Answer::Replied { at, .. } | Answer::GaveUp { at } if at > self.shown => Some(at),
                _ => None,
            })
            .min();
        [event, mark, request].into_iter().flatten().filter_map(after).min()
    }

    /// When the next message not yet on screen leaves its sender.
    fn next_send_at(&self) -> Option<Micros> {
        let is_send =
            |event: &&TraceEvent| matches!(event.kind, TraceKind::MessageSent { .. }) && event.at > self.shown;
        let upcoming = self.upcoming.iter().find(is_send).map(|event| event.at);
        upcoming.or_else(|| self.arrived.values().find(is_send).map(|event| event.at))
    }

    fn arrive(&mut self, event: TraceEvent) {
        self.events.push_back(event.clone());
        if self.events.len() > EVENTS_KEPT_MAX {
            self.events.pop_front();
            self.dropped += 1;
        }
        if event.at <= self.released {
            // Late (a slow socket): too late to wait, but still worth drawing and logging.
            self.timeline.flights_mut().observe(&event);
            let index = self.upcoming.partition_point(|known| known.at <= event.at);
            self.upcoming.insert(index, event);
        } else {
            self.arrived.insert((event.at, self.arrivals), event);
            self.arrivals += 1;
        }
    }

    /// Releases arrived events up to `until` into the flights and the upcoming queue.
    fn release(&mut self, until: Micros) {
        while let Some(entry) = self.arrived.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let event = entry.remove();
            self.timeline.flights_mut().observe(&event);
            self.upcoming.push_back(event);
        }
        self.released = self.released.max(until);
    }

    fn show_until(&mut self, time: Micros) {
        self.shown = self.shown.max(time);
        self.release(self.shown);
        while self.upcoming.front().is_some_and(|event| event.at <= self.shown) {
            let event = self.upcoming.pop_front().expect("front was just checked");
            self.take_in(&event);
        }
        while self.upcoming_marks.front().is_some_and(|mark| mark.at <= self.shown) {
            let mark = self.upcoming_marks.pop_front().expect("front was just checked");
            if let Some(up) = mark.up {
                self.reported_up[mark.node.index()] = up;
            }
            let tone = if mark.up == Some(false) { Tone::Fault } else { Tone::Recovery };
            self.timeline.log(LogLine { at: mark.at, node: mark.node, text: mark.text, tone });
        }
        self.timeline.flights_mut().retire(self.shown, LIVE_LATENCY);
        self.timeline.flights_mut().expire(self.shown.saturating_sub(FLIGHT_EXPIRY));
    }

    fn take_in(&mut self, event: &TraceEvent) {
        self.timeline.take_in(&self.ring, event);
    }

    // ----- Inspectors and export. -----

    /// `node`'s inspector, from its latest `inspect` answer (kept while the node is down).
    pub fn node_view(&self, node: NodeId) -> NodeView {
        let status = self.status(node);
        let inspection = self.inspections[node.index()].clone().unwrap_or_default();
        let from_disk = status.down && self.inspections[node.index()].is_some();
        NodeView::of(&self.ring, node, &inspection, status, from_disk)
    }

    /// The run so far in the export format.
    pub fn recording(&self) -> Recording {
        let requests = self
            .timeline
            .requests()
            .iter()
            .map(|request| {
                let (answered_at, reply) = match &request.answer {
                    Answer::Replied { at, reply } => (Some(*at), Some(reply.clone())),
                    Answer::GaveUp { at } => (Some(*at), None),
                    Answer::Waiting => (None, None),
                };
                RecordedRequest {
                    node: request.node,
                    op_id: request.op_id,
                    op: request.op.clone(),
                    sent_at: request.sent_at,
                    answered_at,
                    reply,
                }
            })
            .collect();
        let mut events: Vec<TraceEvent> = self.events.iter().cloned().collect();
        events.sort_by_key(|event| event.at);
        Recording {
            format: RECORDING_FORMAT.to_string(),
            version: RECORDING_VERSION,
            cluster: self.cluster.clone(),
            clock_origin_unix_us: self.origin_unix,
            events,
            dropped: self.dropped,
            marks: self.marks.clone(),
            requests,
            history: self.history.clone(),
        }
    }
}

/// The admin token the supervisor writes into the page (`<meta name="dynamo-admin-token">`),
/// from the document's `content` attribute; an empty one counts as none.
pub fn token_of(content: Option<String>) -> Option<String> {
    content.map(|token| token.trim().to_string()).filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_core::api::{InspectedHint, InspectedSlot, NodeInfo};
    use dynamo_core::message::MessageKind;
    use dynamo_core::types::Blob;
    use dynamo_core::version::Ballot;
    use serde_json::json;

    /// The node's answer to request `id`: `reply` (JSON), as the node's operation `seq`.
    fn answered(id: u64, reply: Value) -> String {
        json!({ "id": id, "reply": reply, "op": { "client": 77, "seq": id } }).to_string()
    }

    const ORIGIN: Micros = 1_700_000_000_000_000;

    fn cluster() -> ClusterInfo {
        let config = Config::default();
        let nodes = config
            .nodes
            .iter()
            .enumerate()
            .map(|(index, name)| NodeInfo {
                name: name.clone(),
                ws: format!("127.0.0.1:{}", 11_000 + index),
                resp: format!("127.0.0.1:{}", 6_000 + index),
                up: true,
            })
            .collect();
        ClusterInfo { nodes, config, tls: false }
    }

    fn connected(now: Micros) -> Live {
        let mut session = Live::new(cluster(), ORIGIN, now);
        for node in 0..5 {
            assert_eq!(session.socket_opened(NodeId(node)), [r#"{"id":null,"op":"subscribe"}"#]);
        }
        session
    }

    #[test]
    fn a_socket_presents_the_password_before_it_subscribes() {
        let mut session = Live::new(cluster(), ORIGIN, 0).with_password(Some("s3cret".into()));
        assert_eq!(
            session.socket_opened(NodeId(0)),
            [r#"{"id":null,"op":"auth","user":null,"password":"s3cret"}"#, r#"{"id":null,"op":"subscribe"}"#]
        );
    }

    fn trace(at: Micros, node: u32, kind: TraceKind) -> String {
        json!({ "trace": TraceEvent { at: ORIGIN + at, node: NodeId(node), kind } }).to_string()
    }

    fn sent(at: Micros, from: u32, id: u64, to: u32) -> String {
        trace(
            at,
            from,
            TraceKind::MessageSent { id, to: NodeId(to), kind: MessageKind::Prepare, txn: Some(1), key: None },
        )
    }

    fn delivered(at: Micros, from: u32, id: u64, to: u32) -> String {
        trace(at, to, TraceKind::MessageDelivered { id, from: NodeId(from), kind: MessageKind::Prepare })
    }

    fn id_of(frame: &str) -> u64 {
        serde_json::from_str::<Value>(frame).expect("json")["id"].as_u64().expect("an id")
    }

    #[test]
    fn cluster_answers_are_checked_against_their_configuration() {
        let text = serde_json::to_string(&cluster()).expect("encodes");
        let info = ClusterInfo::parse(&text).expect("valid");
        assert_eq!(info.nodes[2].client_url(info.tls), "ws://127.0.0.1:11002/client");
        let mut wrong = cluster();
        wrong.nodes.swap(0, 1);
        assert!(ClusterInfo::parse(&serde_json::to_string(&wrong).expect("encodes")).is_err());
        assert!(ClusterInfo::parse("{}").is_err());
    }

    #[test]
    fn control_requests_match_the_supervisor_contract() {
        assert_eq!(Control::Kill { node: "5554".into() }.to_json(), r#"{"action":"kill","node":"5554"}"#);
        assert_eq!(
            Control::Cut { from: "5554".into(), to: "5556".into() }.to_json(),
            r#"{"action":"cut","from":"5554","to":"5556"}"#
        );
        assert_eq!(Control::HealAll.to_json(), r#"{"action":"heal_all"}"#);
    }

    #[test]
    fn requests_and_answers_make_a_checked_history() {
        let mut session = connected(1_000_000);
        let put = session.request(NodeId(0), ClientOp::Put { key: "apple".into(), value: "red".into() }, 1_000_000);
        let put = put.expect("connected");
        assert_eq!(
            serde_json::from_str::<Value>(&put).expect("json"),
            json!({ "id": id_of(&put), "op": "put", "key": "apple", "value": "red" })
        );
        session.receive(NodeId(0), &answered(id_of(&put), json!("Written")), 1_004_000);
        let get = session.request(NodeId(3), ClientOp::Get { key: "apple".into() }, 1_010_000).expect("connected");
        session.receive(NodeId(3), &answered(id_of(&get), json!({ "Value": "red" })), 1_012_000);
        let operations = &session.history().operations;
        assert_eq!(operations.len(), 2);
        assert_eq!((operations[0].invoked_at, operations[0].completed_at), (1_000_000, Some(1_004_000)));
        assert_eq!(operations[1].outcome, Outcome::Read(Some("red".into())));
        assert!(
            session.timeline().verdict().text().starts_with("linearizable: 2 operations"),
            "{}",
            session.timeline().verdict().text()
        );

        // A stale read after the write completed is a violation.
        let get = session.request(NodeId(1), ClientOp::Get { key: "apple".into() }, 1_020_000).expect("connected");
        session.receive(NodeId(1), &answered(id_of(&get), json!({ "Value": null })), 1_021_000);
        assert!(
            session.timeline().verdict().text().starts_with("violation on key apple"),
            "{}",
            session.timeline().verdict().text()
        );
    }

    /// Live mode follows the operation in focus as the simulated mode does: the node names the
    /// request's `OpId` when it starts it, and the trace names that `OpId` in every round.
    #[test]
    fn the_operation_in_focus_shows_its_quorum_votes() {
        use dynamo_core::trace::Phase;
        let mut session = connected(1_000_000);
        let frame = session.request(NodeId(0), ClientOp::Put { key: "apple".into(), value: "red".into() }, 1_000_000);
        let id = id_of(&frame.expect("connected"));
        assert_eq!(
            session.timeline().focus_text().map(|(_, text)| text).as_deref(),
            Some("#1 put apple=red · sending")
        );
        let op = dynamo_core::types::OpId { client: dynamo_core::types::ClientId(77), seq: 3 };
        session.receive(NodeId(0), &json!({ "id": id, "started": op }).to_string(), 1_000_050);
        let kinds = [
            (
                1_000_100,
                TraceKind::RequestReceived {
                    handle: 1,
                    id: op,
                    op: ClientOp::Put { key: "apple".into(), value: "red".into() },
                },
            ),
            (
                1_000_200,
                TraceKind::PhaseStarted {
                    txn: 5,
                    phase: Phase::Accept,
                    ballot: Ballot::first(NodeId(0)),
                    needed: 2,
                    ops: vec![op],
                },
            ),
            (
                1_000_300,
                TraceKind::VoteCounted {
                    txn: 5,
                    phase: Phase::Accept,
                    from: NodeId(1),
                    granted: true,
                    votes: 1,
                    needed: 2,
                },
            ),
        ];
        for (at, kind) in kinds {
            session.receive(NodeId(0), &trace(at, 0, kind), at + 10);
        }
        session.advance(1_000_300 + PAIRING_DELAY + 1, 16.0, 1.0);
        assert_eq!(
            session.timeline().focus_text().map(|(_, text)| text).as_deref(),
            Some("#1 put apple=red · accept 1/2 · waiting")
        );
        let focused = session.timeline().focused().expect("the request is followed");
        assert!(focused.carries(NodeId(0), NodeId(1), MessageKind::Accept, Some(5)));
    }

    #[test]
    fn unanswered_requests_become_unknown() {
        let mut session = connected(0);
        session.request(NodeId(0), ClientOp::Put { key: "a".into(), value: "1".into() }, 0).expect("connected");
        session.request(NodeId(1), ClientOp::Put { key: "b".into(), value: "1".into() }, 0).expect("connected");
        session.socket_closed(NodeId(1), 5_000);
        assert!(matches!(session.timeline().requests()[1].answer, Answer::GaveUp { at: 5_000 }));
        session.advance(REQUEST_TIMEOUT - 1, 16.0, 1.0);
        assert_eq!(session.timeline().requests()[0].answer, Answer::Waiting);
        session.advance(REQUEST_TIMEOUT, 16.0, 1.0);
        assert!(matches!(session.timeline().requests()[0].answer, Answer::GaveUp { .. }));
        assert!(session.history().operations.iter().all(|op| op.outcome == Outcome::Unknown));
        // A node that is not connected fails at once, without a frame to send.
        assert_eq!(session.request(NodeId(1), ClientOp::Get { key: "a".into() }, 6_000), None);
        assert!(matches!(
            &session.timeline().requests()[2].answer,
            Answer::Replied { reply: ClientReply::Error(_), .. }
        ));
    }

    #[test]
    fn sends_and_deliveries_from_different_sockets_pair_up() {
        let mut session = connected(0);
        // The delivery (node 2's socket) arrives before the send (node 0's socket).
        session.receive(NodeId(2), &delivered(1_000_400, 0, 9, 2), 1_000_500);
        session.receive(NodeId(0), &sent(1_000_000, 0, 9, 2), 1_000_600);
        session.receive(NodeId(0), &json!({ "dropped": 3 }).to_string(), 1_000_700);
        assert_eq!(session.dropped(), 3);
        // Nothing is drawn before the pairing delay has passed.
        session.advance(1_100_000, 16.0, 0.01);
        assert_eq!(session.timeline().flights().started, 0);
        session.advance(1_000_000 + PAIRING_DELAY + 1, 16.0, 0.01);
        assert_eq!(session.shown(), 1_000_000, "an idle screen jumps to the next event");
        assert_eq!(session.timeline().flights().started, 1);
        // Slow motion while the message is in the air: 16 ms of frames move 160 µs.
        session.advance(1_000_000 + PAIRING_DELAY + 16_000, 16.0, 0.01);
        assert_eq!(session.shown(), 1_000_160);
        // 160 µs of a 400 µs flight, drawn as the 500 µs minimum.
        let (_, pose) = session.timeline().flights().in_air(session.shown(), LIVE_LATENCY).next().expect("in the air");
        assert!((pose.fraction - 160.0 / LIVE_FLIGHT_MIN as f64).abs() < 1e-9, "{pose:?}");
        // Never more than LAG_MAX behind the present.
        session.advance(10_000_000, 16.0, 0.01);
        assert_eq!(session.shown(), 10_000_000 - PAIRING_DELAY - LAG_MAX);
        // Once idle, the screen catches up with the present (minus the pairing delay).
        session.advance(10_000_016, 16.0, 0.01);
        assert_eq!(session.shown(), 10_000_016 - PAIRING_DELAY);
    }

    #[test]
    fn messages_that_never_arrive_do_not_hold_the_clock() {
        let mut session = connected(0);
        session.receive(NodeId(0), &sent(1_000_000, 0, 9, 2), 1_000_100);
        session.advance(1_000_000 + PAIRING_DELAY, 16.0, 0.01);
        assert_eq!(session.shown(), 1_000_000);
        session.advance(1_000_000 + PAIRING_DELAY + 16_000, 16.0, 0.01);
        assert_eq!(session.shown(), 1_000_000 + 16_000, "no slow motion for a message with no delivery");
    }

    #[test]
    fn messages_held_for_seconds_do_not_hold_the_clock() {
        let mut session = connected(0);
        // 200 ms on the way: a peer link held it while its receiver was away.
        session.receive(NodeId(0), &sent(1_000_000, 0, 9, 2), 1_000_100);
        session.receive(NodeId(2), &delivered(1_200_000, 0, 9, 2), 1_200_100);
        session.advance(1_000_000 + PAIRING_DELAY, 16.0, 0.01);
        assert_eq!(session.shown(), 1_000_000);
        // Once its delivery is known, it does not slow the screen down (slow motion would have
        // moved it 160 µs).
        session.advance(1_000_000 + PAIRING_DELAY + 216_000, 16.0, 0.01);
        assert_eq!(session.shown(), 1_216_000);
        assert_eq!(session.timeline().flights().started, 1);
    }

    #[test]
    fn recovery_and_process_state_reach_the_screen() {
        let mut session = connected(0);
        session.controlled(&Control::Kill { node: "5558".into() }, 1_000);
        assert!(session.status(NodeId(2)).down && !session.is_up(NodeId(2)));
        session.socket_closed(NodeId(2), 2_000);
        let mut info = cluster();
        info.nodes[2].up = true;
        session.polled(&info, 3_000_000);
        session.socket_opened(NodeId(2));
        assert!(!session.status(NodeId(2)).down);
        session.receive(
            NodeId(2),
            &trace(3_100_000, 2, TraceKind::RecoveryStarted { peers: vec![NodeId(0)] }),
            3_100_100,
        );
        session.advance(3_500_000, 16.0, 0.01);
        assert!(session.status(NodeId(2)).recovering);
        session.receive(NodeId(2), &trace(3_600_000, 2, TraceKind::RecoveryFinished { records: 4 }), 3_600_100);
        session.advance(4_000_000, 16.0, 0.01);
        assert!(!session.status(NodeId(2)).recovering);
        let texts: Vec<&str> = session.timeline().lines().iter().map(|line| line.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "killed 5558 (SIGKILL)",
                "process is up",
                "recovery starts, syncing from 5554",
                "recovery finished (4 records): serving reads"
            ]
        );
    }

    #[test]
    fn inspections_fill_the_inspector() {
        let mut session = connected(0);
        let frame = session.inspect(NodeId(1)).expect("connected");
        assert_eq!(session.inspect(NodeId(1)), None, "one inspection at a time");
        // What a node sends (`dynamo_core::api::Inspection`, the type it encodes with).
        let ballot = |round, node| Ballot { round, node: NodeId(node) };
        let slot = |key: &str, value: Option<&str>, round, node, clock: Vec<(NodeId, u64)>| InspectedSlot {
            key: key.into(),
            value: value.map(Blob::from),
            tombstone: value.is_none(),
            ballot: Some(ballot(round, node)),
            promised: ballot(round + 1, node),
            clock,
        };
        let inspection = Inspection {
            node: "5556".into(),
            recovering: false,
            slots: vec![
                slot("apple", Some("red"), 3, 1, vec![(NodeId(1), 2), (NodeId(4), 1)]),
                slot("pear", None, 1, 0, vec![]),
            ],
            hints: vec![InspectedHint {
                home: "5558".into(),
                key: "fig".into(),
                value: Some("ripe".into()),
                ballot: ballot(1, 1),
            }],
            suspects: vec!["5560".into()],
        };
        let answer = api::Answer::Inspect { id: json!(id_of(&frame)), inspect: Box::new(inspection) };
        session.receive(NodeId(1), &answer.to_json(), 10);
        let view = session.node_view(NodeId(1));
        assert_eq!(view.keys.len(), 2);
        assert_eq!(
            (view.keys[0].value.as_deref(), view.keys[0].ballot.as_str(), view.keys[0].clock.as_str()),
            (Some("red"), "3.5556", "5556:2 5562:1")
        );
        assert_eq!(view.keys[0].promised, "4.5556", "Live shows promises");
        assert_eq!(view.keys[1].value, None);
        let hint = &view.hints[0];
        assert_eq!((hint.home.as_str(), hint.key.as_str(), hint.value.as_deref()), ("5558", "fig", Some("ripe")));
        assert_eq!(view.suspects, ["5560"], "Live shows suspicions");
        session.socket_closed(NodeId(1), 20);
        assert!(session.node_view(NodeId(1)).from_disk, "a down node keeps its last inspection");
    }

    #[test]
    fn a_recording_round_trips_and_replays() {
        let mut session = connected(0);
        let put = session.request(NodeId(0), ClientOp::Put { key: "apple".into(), value: "red".into() }, 1_000_000);
        session.receive(NodeId(0), &sent(1_000_100, 0, 1, 2), 1_000_200);
        session.receive(NodeId(2), &delivered(1_000_300, 0, 1, 2), 1_000_400);
        session.receive(NodeId(0), &answered(id_of(&put.expect("sent")), json!("Written")), 1_001_000);
        session.controlled(&Control::Kill { node: "5556".into() }, 1_500_000);
        let text = session.recording().encode();
        let recording = Recording::decode(&text).expect("decodes");
        assert_eq!(recording, session.recording());
        assert_eq!(recording.events[0].at, 1_000_100, "times are on the page clock");

        let mut replay = Live::replay(recording);
        assert!(replay.is_replay());
        assert!(replay.timeline().verdict().text().starts_with("linearizable: 1 operations"));
        assert_eq!(replay.timeline().requests()[0].answer_at(replay.shown()), &Answer::Waiting);
        for _ in 0..1_000 {
            replay.advance(0, 16.0, 0.01);
        }
        assert_eq!(replay.timeline().flights().started, 1);
        assert!(matches!(replay.timeline().requests()[0].answer_at(replay.shown()), Answer::Replied { .. }));
        assert!(replay.status(NodeId(1)).down, "marks replay the process state");

        assert!(Recording::decode("{}").is_err());
        let mut foreign = session.recording();
        foreign.format = "something else".to_string();
        assert!(Recording::decode(&foreign.encode()).is_err());
        foreign = session.recording();
        foreign.events[0].node = NodeId(9);
        assert!(Recording::decode(&foreign.encode()).is_err());
    }

    #[test]
    fn the_admin_token_comes_from_the_meta_tag() {
        assert_eq!(token_of(Some(" abc ".to_string())), Some("abc".to_string()));
        assert_eq!(token_of(Some(String::new())), None);
        assert_eq!(token_of(None), None);
    }
}
