//! Live mode's pump, beside `connect`: what the page exchanges with a real cluster, once per
//! frame. It takes in what the browser received (socket frames, the supervisor's answers, an
//! opened recording), redials closed sockets, and polls the supervisor and the inspectors; it
//! hands the socket frames to the `Live` session and tells the page what it must react to.

use dynamo_core::api::{ClusterInfo, Control};
use dynamo_core::types::{Micros, NodeId};

use crate::connect::{self, Inbox, Incoming, Sockets};
use crate::live::Live;

/// How often the pump asks the supervisor which processes run, and each node for its store.
const POLL_MS: f64 = 1_000.0;

/// What the page must react to.
pub enum Happened {
    /// `/api/cluster` answered for the first time on a page the supervisor served (it carries
    /// an admin token): the page attaches at once.
    ClusterFound,
    /// A recording was opened.
    Recording(Box<Live>),
    /// Something could not be done; the page says so.
    Problem(String),
}

pub struct Pump {
    inbox: Inbox,
    sockets: Option<Sockets>,
    /// The supervisor's admin token, from the page's meta tag.
    token: Option<String>,
    /// The latest `/api/cluster` answer (Live is offered once there is one).
    cluster: Option<ClusterInfo>,
    /// Whether an `/api/cluster` request is out.
    polling: bool,
    polled_at: f64,
    inspected_at: f64,
}

impl Pump {
    /// Starts asking whether a cluster is there to attach to, whether the page was served by
    /// the supervisor (a token) or not.
    pub fn new(token: Option<String>, now_ms: f64) -> Pump {
        let inbox = Inbox::default();
        connect::fetch_cluster(inbox.clone());
        Pump { inbox, sockets: None, token, cluster: None, polling: true, polled_at: now_ms, inspected_at: 0.0 }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn cluster(&self) -> Option<&ClusterInfo> {
        self.cluster.as_ref()
    }

    /// Opens a socket to every node of the cluster and a session over them (`None` until
    /// `/api/cluster` answered).
    pub fn attach(&mut self, origin_us: Micros, now: Micros, password: Option<String>) -> Option<Live> {
        let cluster = self.cluster.clone()?;
        let urls = cluster.nodes.iter().map(|node| node.client_url(cluster.tls)).collect();
        self.sockets = Some(Sockets::new(urls, self.inbox.clone()));
        Some(Live::new(cluster, origin_us, now).with_password(password))
    }

    /// Sends a frame to node `node`'s socket.
    pub fn send(&self, node: NodeId, frame: &str) {
        if let Some(sockets) = &self.sockets {
            sockets.send(node.index(), frame);
        }
    }

    /// Asks the supervisor to do `control` to the real processes.
    pub fn control(&self, control: Control) {
        connect::send_control(self.inbox.clone(), self.token.clone(), control);
    }

    /// Reads an exported run from `file`; it comes back as `Happened::Recording`.
    pub fn open(&self, file: web_sys::File) {
        connect::read_trace(self.inbox.clone(), file);
    }

    /// One frame's chores at page time `now_ms` / `now`: everything received goes to `live`
    /// (the attached session, shown or not). Returns whether anything came in, and what the
    /// page must react to.
    pub fn tend(&mut self, mut live: Option<&mut Live>, now_ms: f64, now: Micros) -> (bool, Vec<Happened>) {
        let incoming = std::mem::take(&mut *self.inbox.borrow_mut());
        let took_in = !incoming.is_empty();
        let mut happened = Vec::new();
        for item in incoming {
            self.take_in(item, live.as_deref_mut(), now_ms, now, &mut happened);
        }
        let (Some(live), Some(sockets)) = (live, &mut self.sockets) else { return (took_in, happened) };
        for node in sockets.tend(now_ms) {
            live.socket_connecting(NodeId(node as u32));
        }
        if !self.polling && now_ms - self.polled_at >= POLL_MS {
            self.polling = true;
            self.polled_at = now_ms;
            connect::fetch_cluster(self.inbox.clone());
        }
        if now_ms - self.inspected_at >= POLL_MS {
            self.inspected_at = now_ms;
            for node in 0..live.ring().node_count() {
                if let Some(frame) = live.inspect(NodeId(node as u32)) {
                    sockets.send(node, &frame);
                }
            }
        }
        (took_in, happened)
    }

    fn take_in(
        &mut self,
        item: Incoming,
        live: Option<&mut Live>,
        now_ms: f64,
        now: Micros,
        happened: &mut Vec<Happened>,
    ) {
        match item {
            Incoming::Opened { node, generation }
            | Incoming::Text { node, generation, .. }
            | Incoming::Closed { node, generation }
                if !self.sockets.as_ref().is_some_and(|sockets| sockets.is_current(node, generation)) => {}
            Incoming::Opened { node, .. } => {
                let (Some(live), Some(sockets)) = (live, &self.sockets) else { return };
                for frame in live.socket_opened(NodeId(node as u32)) {
                    sockets.send(node, &frame);
                }
            }
            Incoming::Text { node, text, .. } => {
                if let Some(live) = live {
                    live.receive(NodeId(node as u32), &text, now);
                }
            }
            Incoming::Closed { node, .. } => {
                if let (Some(live), Some(sockets)) = (live, &mut self.sockets) {
                    sockets.closed(node, now_ms);
                    live.socket_closed(NodeId(node as u32), now);
                }
            }
            Incoming::Cluster(result) => {
                self.polling = false;
                match result {
                    Ok(info) => {
                        if let Some(live) = live {
                            live.polled(&info, now);
                        }
                        let first = self.cluster.is_none();
                        self.cluster = Some(info);
                        if first && self.token.is_some() {
                            happened.push(Happened::ClusterFound);
                        }
                    }
                    Err(error) if self.token.is_some() => happened.push(Happened::Problem(error)),
                    // Without a token, no cluster just means Simulated mode only.
                    Err(_) => {}
                }
            }
            Incoming::Controlled(control, Ok(())) => {
                let Some(live) = live else { return };
                if let (Control::Restart { node }, Some(sockets)) = (&control, &mut self.sockets) {
                    if let Some(index) = live.ring().names().iter().position(|name| name == node) {
                        sockets.hurry(index);
                    }
                }
                live.controlled(&control, now);
            }
            Incoming::Controlled(_, Err(error)) => happened.push(Happened::Problem(error)),
            Incoming::Trace(Ok(recording)) => happened.push(Happened::Recording(Box::new(Live::replay(recording)))),
            Incoming::Trace(Err(error)) => happened.push(Happened::Problem(error)),
        }
    }
}
