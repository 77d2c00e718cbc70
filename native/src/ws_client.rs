//! The WebSocket JSON API (`ws://host:port/client`) for browsers and scripts.
//!
//! Requests are JSON objects `{"id": 1, "op": "put", "key": "k", "value": "v"}`; each gets one
//! answer `{"id": 1, "reply": ...}` with the core's `ClientReply` as JSON. `{"op":
//! "subscribe"}` streams the node's trace events as `{"trace": {...}}`. A subscriber that falls
//! behind loses events (reported as `{"dropped": n}`), never slows the node. Every message is
//! documented in docs/protocol.md.

use dynamo_core::message::{ClientOp, ClientReply, ClientRequest};
use dynamo_core::types::{Blob, OpId};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::server::Handle;

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
}

#[derive(Debug, Deserialize)]
struct Request {
    #[serde(default)]
    id: serde_json::Value,
    #[serde(flatten)]
    op: Op,
}

pub async fn serve(socket: WebSocketStream<TcpStream>, handle: Handle) {
    let (mut sink, mut stream) = socket.split();
    let client = handle.new_client();
    let mut seq = 0;
    let mut traces: Option<tokio::sync::broadcast::Receiver<dynamo_core::trace::TraceEvent>> = None;
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            event = async { traces.as_mut().expect("guarded").recv().await }, if traces.is_some() => {
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
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
        };
        let answer = match serde_json::from_str::<Request>(&text) {
            Err(error) => json!({ "error": format!("bad request: {error}") }),
            Ok(Request { id, op }) => {
                let op = match op {
                    Op::Subscribe => {
                        traces = Some(handle.traces.subscribe());
                        let send = sink.send(Message::Text(json!({ "id": id, "subscribed": true }).to_string()));
                        if send.await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Op::Owners { key } => {
                        let names: Vec<&str> =
                            handle.ring.preference(key.as_bytes()).iter().map(|node| handle.ring.name(*node)).collect();
                        let send = sink.send(Message::Text(json!({ "id": id, "owners": names }).to_string()));
                        if send.await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Op::Get { key } => ClientOp::Get { key },
                    Op::Put { key, value } => ClientOp::Put { key, value },
                    Op::Delete { key } => ClientOp::Delete { key },
                    Op::Local => ClientOp::LocalQuery,
                    Op::Global => ClientOp::GlobalQuery,
                    Op::LocalDelete => ClientOp::LocalDelete,
                    Op::GlobalDelete => ClientOp::GlobalDelete,
                };
                seq += 1;
                let reply: ClientReply = handle.request(ClientRequest { id: OpId { client, seq }, op }).await;
                json!({ "id": id, "reply": reply })
            }
        };
        if sink.send(Message::Text(answer.to_string())).await.is_err() {
            return;
        }
    }
}
