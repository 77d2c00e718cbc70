//! The WebSocket JSON API (`ws://host:port/client`) for browsers and scripts.
//!
//! Frames are the types of `dynamo_core::api`, the same ones the page reads: requests are
//! `{"id": 1, "op": "put", "key": "k", "value": "v"}`, and each gets one answer
//! `{"id": 1, "reply": ..., "op": {"client": .., "seq": ..}}`. Operations run side by side and
//! are answered as they finish; those on one key run in the order sent (`serve`).
//! `{"op": "subscribe"}` streams the node's trace events as `{"trace": {...}}`, and announces each
//! operation of the connection as it starts (`{"id": 1, "started": <OpId>}`) so a page can
//! follow its requests through the trace. A subscriber that falls behind loses events
//! (reported as `{"dropped": n}`), never slows the node. Link control (`cut`, `heal`,
//! `heal_all`) needs the cluster secret. Every frame is documented in docs/protocol.md.

use dynamo_core::api::{Answer, Op, Request};
use dynamo_core::client::{Pipeline, Session as ClientSession, Started, Token};
use dynamo_core::message::ClientReply;
use dynamo_core::trace::TraceEvent;
use dynamo_core::types::{NodeId, OpId};
use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::node::Handle;
use crate::tls::Stream;

/// Client operations of one connection in flight or waiting at once. While that many are out,
/// the connection reads no more requests (they wait in the socket), so a client cannot make the
/// node hold an unbounded queue.
const OPERATIONS_MAX: usize = 64;

/// An operation answered by the node: its token, the request's id and `OpId`, the reply, and the
/// session when it can be reused.
type Done = (Token, Value, OpId, ClientReply, Option<ClientSession>);

/// One connection's state.
struct Connection {
    handle: Handle,
    /// At once without a client password; after `{"op": "auth"}` with one.
    authenticated: bool,
    failed_auths: u64,
    address: SocketAddr,
    traces: Option<Receiver<TraceEvent>>,
    /// The client operations sent and not answered (`OPERATIONS_MAX` at most).
    pipeline: Pipeline<Value>,
}

/// What a connection waits for next.
enum Next {
    Frame(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Answered(Done),
    Trace(Result<TraceEvent, RecvError>),
}

/// Serves one client connection. Operations run side by side (up to `OPERATIONS_MAX`) and each
/// is answered, with its id, when the node answers it, so a request for a key whose quorum is
/// down does not hold up the others. Operations on one key, and those that cover the whole
/// store, still run in the order they were sent: a client that sends a put and then a get of the
/// same key without waiting reads its own write, as it would have one at a time.
pub async fn serve(socket: WebSocketStream<Stream>, address: SocketAddr, handle: Handle) {
    let (mut sink, mut stream) = socket.split();
    let authenticated = handle.file.password.is_none();
    let mut session = Connection {
        handle,
        authenticated,
        failed_auths: 0,
        address,
        traces: None,
        pipeline: Pipeline::new(OPERATIONS_MAX),
    };
    let mut in_flight: FuturesUnordered<BoxFuture<'static, Done>> = FuturesUnordered::new();
    loop {
        let room = session.pipeline.has_room();
        let next = tokio::select! {
            frame = stream.next(), if room => Next::Frame(frame),
            Some(done) = in_flight.next(), if !in_flight.is_empty() => Next::Answered(done),
            event = async { session.traces.as_mut().expect("guarded").recv().await }, if session.traces.is_some() => {
                Next::Trace(event)
            }
            // Unreachable: with no room, an operation is in flight (the first one waiting
            // overlaps nothing before it, so it runs).
            else => return,
        };
        let text = match next {
            Next::Trace(event) => {
                let answer = match event {
                    Ok(event) => Answer::Trace { trace: Box::new(event) },
                    Err(RecvError::Lagged(count)) => Answer::Dropped { dropped: count },
                    Err(RecvError::Closed) => return,
                };
                if sink.send(Message::Text(answer.to_json())).await.is_err() {
                    return;
                }
                continue;
            }
            Next::Answered((token, id, op, reply, client_session)) => {
                let pipeline = &mut session.pipeline;
                session.handle.with_sessions(|pool| pipeline.finish(token, client_session, pool));
                let mut answers = session.start_ready(&mut in_flight);
                answers.insert(0, Answer::Reply { id, reply: reply.into(), op });
                for answer in answers {
                    if sink.send(Message::Text(answer.to_json())).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            Next::Frame(Some(Ok(Message::Text(text)))) => text,
            Next::Frame(Some(Ok(Message::Binary(bytes)))) => String::from_utf8_lossy(&bytes).into_owned(),
            Next::Frame(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => continue,
            Next::Frame(Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(error)))) => {
                // Too large to read: the rest of the message cannot be skipped, so the connection
                // ends, but with a close frame that says why (1009, message too big).
                let mut reason = format!("request too large: {error}");
                // A close frame carries at most 123 bytes of reason.
                while reason.len() > 123 {
                    reason.pop();
                }
                let frame = CloseFrame { code: CloseCode::Size, reason: reason.into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
            Next::Frame(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return,
        };
        // The id of a request that parses as JSON is echoed even when the request is wrong, so
        // that a client with several requests out knows which one failed.
        let parsed = serde_json::from_str::<Value>(&text);
        let id = parsed.as_ref().ok().and_then(|value| value.get("id")).cloned().unwrap_or(Value::Null);
        let answers = match parsed.and_then(serde_json::from_value::<Request>) {
            Err(error) => vec![Answer::Error { id, error: format!("bad request: {error}") }],
            Ok(Request { id, op: Op::Auth { user, password } }) => vec![session.authenticate(id, user, &password)],
            Ok(Request { id, .. }) if !session.authenticated => {
                vec![Answer::Error { id, error: "NOAUTH Authentication required.".into() }]
            }
            Ok(Request { id, op }) => match op.into_client_op() {
                Ok(op) => {
                    session.pipeline.submit(id, op);
                    session.start_ready(&mut in_flight)
                }
                Err(op) => session.answer(id, op).await,
            },
        };
        for answer in answers {
            if sink.send(Message::Text(answer.to_json())).await.is_err() {
                return;
            }
        }
    }
}

impl Connection {
    fn authorized(&self, secret: &str) -> bool {
        self.handle.file.secret.as_deref().is_some_and(|expected| expected == secret)
    }

    fn node_named(&self, name: &str) -> Option<NodeId> {
        self.handle.file.nodes.iter().position(|node| node.name == name).map(|index| NodeId(index as u32))
    }

    /// `{"op": "auth"}`: the same password, and the same answers, as the RESP port's `AUTH`.
    fn authenticate(&mut self, id: Value, user: Option<String>, password: &str) -> Answer {
        let expected = self.handle.file.password.as_deref();
        let passed = match (user.as_deref(), expected) {
            (Some(user), _) if user != "default" => false,
            (_, None) => true,
            (_, Some(expected)) => crate::password::matches(password.as_bytes(), expected),
        };
        if passed {
            self.authenticated = true;
            return Answer::Ok { id, ok: true };
        }
        self.failed_auths += 1;
        crate::password::log_failure(self.address, "ws", self.failed_auths);
        Answer::Error { id, error: "WRONGPASS invalid username-password pair or user is disabled.".into() }
    }

    /// Stops (or resumes) sending to `peer`.
    fn cut(&self, id: Value, peer: &str, cut: bool) -> Answer {
        match self.node_named(peer) {
            Some(node) => {
                self.handle.cut(node, cut);
                Answer::Ok { id, ok: true }
            }
            None => Answer::Error { id, error: format!("no node named {peer:?}") },
        }
    }

    /// Starts every operation the pipeline lets start (see `Pipeline`); for a subscribed
    /// connection, the frames that announce them.
    fn start_ready(&mut self, in_flight: &mut FuturesUnordered<BoxFuture<'static, Done>>) -> Vec<Answer> {
        let pipeline = &mut self.pipeline;
        let mut announced = Vec::new();
        for Started { tag: id, token, pending } in self.handle.with_sessions(|pool| pipeline.start_ready(pool)) {
            let op = pending.id();
            if self.traces.is_some() {
                announced.push(Answer::Started { id: id.clone(), started: op });
            }
            let handle = self.handle.clone();
            in_flight.push(Box::pin(async move {
                let (reply, session) = handle.request(pending).await;
                (token, id, op, reply, session)
            }));
        }
        announced
    }

    /// The answers of a request the connection answers itself, without the node's quorum
    /// machinery.
    async fn answer(&mut self, id: Value, op: Op) -> Vec<Answer> {
        let refused = |id| Answer::Error { id, error: "wrong or missing cluster secret".into() };
        let answer = match op {
            Op::Subscribe => {
                self.traces = Some(self.handle.subscribe());
                // Lifecycle events from before the subscription (a recovery that finished
                // before the page reconnected), oldest first, as ordinary trace frames.
                let backlog = self.handle.recent_lifecycle();
                let mut answers = vec![Answer::Subscribed { id, subscribed: true }];
                answers.extend(backlog.into_iter().map(|event| Answer::Trace { trace: Box::new(event) }));
                return answers;
            }
            Op::Owners { key } => {
                let ring = self.handle.ring();
                let owners = ring.preference(key.as_bytes()).iter().map(|node| ring.name(*node).to_string()).collect();
                Answer::Owners { id, owners }
            }
            Op::Inspect => match self.handle.inspect().await {
                Some(inspection) => Answer::Inspect { id, inspect: Box::new(inspection) },
                None => Answer::Error { id, error: "the node stopped".into() },
            },
            Op::Cut { secret, .. } | Op::Heal { secret, .. } | Op::HealAll { secret } | Op::Admin { secret, .. }
                if !self.authorized(&secret) =>
            {
                refused(id)
            }
            Op::Admin { request, .. } if adds_a_node(&request) => Answer::Error {
                id,
                error: "joins and replacements need a node started with `dynamo node --join`, which is not built \
                        yet; leave, remove, plan, status and clear work"
                    .into(),
            },
            Op::Admin { request, .. } => match self.handle.admin(request).await {
                Some(admin) => Answer::Admin { id, admin },
                None => Answer::Error { id, error: "the node stopped".into() },
            },
            Op::Cut { peer, .. } => self.cut(id, &peer, true),
            Op::Heal { peer, .. } => self.cut(id, &peer, false),
            Op::HealAll { .. } => {
                for index in 0..self.handle.file.nodes.len() {
                    self.handle.cut(NodeId(index as u32), false);
                }
                Answer::Ok { id, ok: true }
            }
            Op::Auth { .. }
            | Op::Get { .. }
            | Op::Put { .. }
            | Op::Delete { .. }
            | Op::Local
            | Op::Global
            | Op::LocalDelete
            | Op::GlobalDelete => {
                unreachable!("authentication and client operations are handled before (serve)")
            }
        };
        vec![answer]
    }
}

/// Whether a membership request would add a node id (a join, a replacement). A native node
/// finds its peers by name in its cluster file and has no way yet to learn a node it was not
/// started with, nor does a node start as a new id (`dynamo node --join`): such a change would
/// give arcs a new home that nobody can reach.
fn adds_a_node(request: &dynamo_core::membership::AdminRequest) -> bool {
    use dynamo_core::layout::Change;
    use dynamo_core::membership::AdminRequest;
    let adds = |change: &Change| matches!(change, Change::Join { .. } | Change::Replace { .. });
    match request {
        AdminRequest::Stage(change) => adds(change),
        AdminRequest::CommitChanges(changes) => changes.iter().any(adds),
        _ => false,
    }
}
