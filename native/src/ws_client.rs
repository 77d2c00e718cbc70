//! The WebSocket JSON API (`ws://host:port/client`) for browsers and scripts.
//!
//! Requests are JSON objects `{"id": 1, "op": "put", "key": "k", "value": "v"}`; each gets one
//! answer `{"id": 1, "reply": ...}` with the core's `ClientReply` as JSON. Operations run side
//! by side and are answered as they finish; those on one key run in the order sent (`serve`). `{"op":
//! "subscribe"}` streams the node's trace events as `{"trace": {...}}`. A subscriber that falls
//! behind loses events (reported as `{"dropped": n}`), never slows the node. Link control
//! (`cut`, `heal`, `heal_all`) needs the cluster secret. Every message is documented in
//! docs/protocol.md.

use dynamo_core::client::{Pipeline, Session as ClientSession, Started, Token};
use dynamo_core::message::{ClientOp, ClientReply};
use dynamo_core::trace::TraceEvent;
use dynamo_core::types::{Blob, NodeId};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::server::{Event, Handle};

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    Get {
        key: Blob,
    },
    Put {
        key: Blob,
        value: Blob,
    },
    Delete {
        key: Blob,
    },
    /// The seed's `@` query.
    Local,
    /// The seed's `*` query.
    Global,
    LocalDelete,
    GlobalDelete,
    Owners {
        key: Blob,
    },
    Subscribe,
    /// A snapshot of this node's store for inspectors.
    Inspect,
    /// Control (needs the cluster secret): stop sending to `peer`, or start again.
    Cut {
        peer: String,
        secret: String,
    },
    Heal {
        peer: String,
        secret: String,
    },
    HealAll {
        secret: String,
    },
}

#[derive(Debug, Deserialize)]
struct Request {
    #[serde(default)]
    id: Value,
    #[serde(flatten)]
    op: Op,
}

/// Client operations of one connection in flight or waiting at once. While that many are out,
/// the connection reads no more requests (they wait in the socket), so a client cannot make the
/// node hold an unbounded queue.
const OPERATIONS_MAX: usize = 64;

/// An operation answered by the node: its token, the request's id, the reply, and the session
/// when it can be reused.
type Done = (Token, Value, ClientReply, Option<ClientSession>);

/// One connection's state.
struct Connection {
    handle: Handle,
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
pub async fn serve(socket: WebSocketStream<TcpStream>, handle: Handle) {
    let (mut sink, mut stream) = socket.split();
    let mut session = Connection { handle, traces: None, pipeline: Pipeline::new(OPERATIONS_MAX) };
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
                let text = match event {
                    Ok(event) => json!({ "trace": event }).to_string(),
                    Err(RecvError::Lagged(count)) => json!({ "dropped": count }).to_string(),
                    Err(RecvError::Closed) => return,
                };
                if sink.send(Message::Text(text)).await.is_err() {
                    return;
                }
                continue;
            }
            Next::Answered((token, id, reply, client_session)) => {
                let pipeline = &mut session.pipeline;
                session.handle.with_sessions(|pool| pipeline.finish(token, client_session, pool));
                session.start_ready(&mut in_flight);
                if sink.send(Message::Text(json!({ "id": id, "reply": reply }).to_string())).await.is_err() {
                    return;
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
        let answer = match parsed.and_then(serde_json::from_value::<Request>) {
            Err(error) => json!({ "id": id, "error": format!("bad request: {error}") }),
            Ok(Request { id, op }) => match session.answer(op).await {
                Ok(mut answer) => {
                    answer["id"] = id;
                    answer
                }
                Err(op) => {
                    session.pipeline.submit(id, op);
                    session.start_ready(&mut in_flight);
                    continue;
                }
            },
        };
        if sink.send(Message::Text(answer.to_string())).await.is_err() {
            return;
        }
        if answer.get("subscribed").is_some() {
            // Lifecycle events from before the subscription (a recovery that finished before the
            // page reconnected), oldest first, as ordinary trace messages.
            let backlog: Vec<TraceEvent> =
                session.handle.recent.lock().map(|recent| recent.iter().cloned().collect()).unwrap_or_default();
            for event in backlog {
                if sink.send(Message::Text(json!({ "trace": event }).to_string())).await.is_err() {
                    return;
                }
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

    fn cut(&self, peer: &str, secret: &str, cut: bool) -> Value {
        if !self.authorized(secret) {
            return json!({ "error": "wrong or missing cluster secret" });
        }
        match self.node_named(peer) {
            Some(peer) => {
                let _ = self.handle.inputs.send(Event::Cut { peer, cut });
                json!({ "ok": true })
            }
            None => json!({ "error": format!("no node named {peer:?}") }),
        }
    }

    /// Starts every operation the pipeline lets start (see `Pipeline`).
    fn start_ready(&mut self, in_flight: &mut FuturesUnordered<BoxFuture<'static, Done>>) {
        let pipeline = &mut self.pipeline;
        for Started { tag: id, token, pending } in self.handle.with_sessions(|pool| pipeline.start_ready(pool)) {
            let handle = self.handle.clone();
            in_flight.push(Box::pin(async move {
                let (reply, session) = handle.request(pending).await;
                (token, id, reply, session)
            }));
        }
    }

    /// The answer of a request the connection answers itself, or the client operation to send
    /// to the node.
    async fn answer(&mut self, op: Op) -> Result<Value, ClientOp> {
        Err(match op {
            Op::Subscribe => {
                self.traces = Some(self.handle.traces.subscribe());
                return Ok(json!({ "subscribed": true }));
            }
            Op::Owners { key } => {
                let ring = &self.handle.ring;
                let names: Vec<&str> = ring.preference(key.as_bytes()).iter().map(|node| ring.name(*node)).collect();
                return Ok(json!({ "owners": names }));
            }
            Op::Inspect => {
                let (reply, snapshot) = tokio::sync::oneshot::channel();
                let _ = self.handle.inputs.send(Event::Inspect(reply));
                return Ok(match snapshot.await {
                    Ok(snapshot) => json!({ "inspect": snapshot }),
                    Err(_) => json!({ "error": "the node stopped" }),
                });
            }
            Op::Cut { peer, secret } => return Ok(self.cut(&peer, &secret, true)),
            Op::Heal { peer, secret } => return Ok(self.cut(&peer, &secret, false)),
            Op::HealAll { secret } => {
                if !self.authorized(&secret) {
                    return Ok(json!({ "error": "wrong or missing cluster secret" }));
                }
                for index in 0..self.handle.file.nodes.len() {
                    let _ = self.handle.inputs.send(Event::Cut { peer: NodeId(index as u32), cut: false });
                }
                return Ok(json!({ "ok": true }));
            }
            Op::Get { key } => ClientOp::Get { key },
            Op::Put { key, value } => ClientOp::Put { key, value },
            Op::Delete { key } => ClientOp::Delete { key },
            Op::Local => ClientOp::LocalQuery,
            Op::Global => ClientOp::GlobalQuery,
            Op::LocalDelete => ClientOp::LocalDelete,
            Op::GlobalDelete => ClientOp::GlobalDelete,
        })
    }
}
