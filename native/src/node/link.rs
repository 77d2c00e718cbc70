//! Peer links: one WebSocket (`/peer`) per pair of nodes, dialed by the node with the lower
//! index, carrying postcard-encoded frames that batch many envelopes, read and written side by
//! side. A peer that sends garbage is disconnected and logged. Failures are never inferred from
//! connection state: the core's timeouts decide that.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamo_core::config::Config;
use dynamo_core::message::Envelope;
use dynamo_core::types::NodeId;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::Event;
use crate::cluster_file::ClusterFile;
use crate::tls::{Stream, Tls};

/// Envelopes queued for one peer before new ones are dropped.
pub(super) const LINK_QUEUE_MAX: usize = 100_000;
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
pub(super) fn frame_bytes_max(config: &Config) -> usize {
    let largest = config.message_bytes_max() as usize + ENVELOPE_OVERHEAD_BYTES + FRAME_OVERHEAD_BYTES;
    largest.max(FRAME_BYTES_MIN)
}

/// WebSocket limits for peer links and client connections, on both ends.
pub fn websocket_config(config: &Config) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    let max = frame_bytes_max(config);
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        max_message_size: Some(max),
        max_frame_size: Some(max),
        ..Default::default()
    }
}
/// What peers say first on a link.
#[derive(Debug, Serialize, Deserialize)]
enum PeerFrame {
    Hello { cluster: Vec<String>, name: String, secret: Option<String> },
    Envelopes(Vec<Envelope>),
}

/// One peer link: dials (lower id) or waits to be dialed, then carries frames both ways.
pub(super) struct Link {
    pub(super) me: String,
    /// The peer's name, for logs.
    pub(super) name: String,
    pub(super) cluster: Vec<String>,
    pub(super) peer: NodeId,
    pub(super) address: SocketAddr,
    pub(super) dial: bool,
    pub(super) inputs: mpsc::UnboundedSender<Event>,
    pub(super) secret: Option<String>,
    /// `frame_bytes_max` of the cluster's config.
    pub(super) frame_bytes_max: usize,
    /// TLS to the peer, when the cluster's ports speak it.
    pub(super) tls: Option<Arc<Tls>>,
    pub(super) websocket: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
}

impl Link {
    pub(super) async fn run(
        self,
        mut outgoing: mpsc::Receiver<Envelope>,
        mut incoming: mpsc::Receiver<WebSocketStream<Stream>>,
    ) {
        let mut backoff = LINK_BACKOFF_MIN;
        // A dial that fails the same way again (a peer that is down) is not logged again; a new
        // reason (a certificate the peer refuses) is, once.
        let mut last_failure: Option<String> = None;
        loop {
            let up = Instant::now();
            let mut ended = if self.dial {
                match self.connect().await {
                    Ok(socket) => {
                        last_failure = None;
                        tracing::info!(peer = %self.name, "peer link up (dialed)");
                        self.carry(socket, &mut outgoing, &mut incoming).await
                    }
                    Err(DialError::Unreachable(error)) => {
                        tracing::debug!(peer = %self.name, address = %self.address, %error, "dial failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(LINK_BACKOFF_MAX);
                        continue;
                    }
                    Err(DialError::Refused(error)) => {
                        if last_failure.as_ref() != Some(&error) {
                            tracing::warn!(peer = %self.name, address = %self.address, %error, "peer link refused");
                            last_failure = Some(error);
                        }
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

    async fn connect(&self) -> Result<WebSocketStream<Stream>, DialError> {
        let unreachable = |error: std::io::Error| DialError::Unreachable(error.to_string());
        let refused = |error: &dyn std::fmt::Display| DialError::Refused(error.to_string());
        let tcp = TcpStream::connect(self.address).await.map_err(unreachable)?;
        // No Nagle: small frames must leave at once (with delayed ACKs, Nagle costs 40 ms).
        tcp.set_nodelay(true).map_err(unreachable)?;
        let (stream, scheme) = match &self.tls {
            // The peer's certificate must be the cluster CA's, for the address we dial.
            Some(tls) => (tls.dial(tcp, self.address.ip()).await.map_err(|e| refused(&format!("TLS: {e}")))?, "wss"),
            None => (Stream::Plain(tcp), "ws"),
        };
        let url = format!("{scheme}://{}/peer", self.address);
        // With TLS 1.3 a refused client certificate shows here, in the WebSocket handshake.
        let (mut socket, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(self.websocket))
            .await
            .map_err(|e| refused(&e))?;
        let hello =
            PeerFrame::Hello { cluster: self.cluster.clone(), name: self.me.clone(), secret: self.secret.clone() };
        let bytes = postcard::to_allocvec(&hello).map_err(|e| refused(&e))?;
        socket.send(WsMessage::Binary(bytes)).await.map_err(|e| refused(&e))?;
        Ok(socket)
    }

    async fn carry<S>(
        &self,
        socket: WebSocketStream<S>,
        outgoing: &mut mpsc::Receiver<Envelope>,
        incoming: &mut mpsc::Receiver<WebSocketStream<Stream>>,
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

/// Why a dial failed.
enum DialError {
    /// The peer's address does not answer (it is down): an everyday event, not logged loudly.
    Unreachable(String),
    /// The peer answered and the TLS or WebSocket handshake failed (a certificate refused, say).
    Refused(String),
}

/// How a link's connection ended.
enum Ended {
    Closed(String),
    Replaced(Box<WebSocketStream<Stream>>),
}

/// Where this node's accepted `/peer` connections go: the `Link` of each peer.
#[derive(Clone)]
pub struct Peers {
    pub(super) file: Arc<ClusterFile>,
    /// By node index: the link waiting for that peer's connections (`None` for this node).
    pub(super) links: Arc<Vec<Option<mpsc::Sender<WebSocketStream<Stream>>>>>,
}

impl Peers {
    /// Takes over an accepted `/peer` connection: reads the peer's hello and hands the socket to
    /// that peer's link, or refuses it (another cluster, a wrong secret, an unknown name) with a
    /// log line that says why.
    pub async fn accept(&self, mut socket: WebSocketStream<Stream>, address: SocketAddr) {
        let hello = match socket.next().await {
            Some(Ok(WsMessage::Binary(bytes))) => postcard::from_bytes::<PeerFrame>(&bytes).ok(),
            _ => None,
        };
        let peer = match hello {
            Some(PeerFrame::Hello { cluster, name, secret }) => {
                let index = self.file.nodes.iter().position(|node| node.name == name);
                let secret_matches = match (&secret, &self.file.secret) {
                    (Some(given), Some(expected)) => crate::password::matches(given.as_bytes(), expected),
                    (given, expected) => given == expected,
                };
                // With TLS, a peer proves it is the node it names: its certificate (signed by
                // the cluster CA, checked in the handshake) is for that node's address.
                let certified = |index: usize| {
                    self.file.tls.is_none() || socket.get_ref().certified_for(self.file.nodes[index].ws.ip())
                };
                if cluster != self.file.config.nodes {
                    Err(format!("{name} has another cluster file (nodes {})", cluster.join(", ")))
                } else if !secret_matches {
                    Err(format!("{name} presented a different cluster secret"))
                } else if index.is_some_and(|index| !certified(index)) {
                    Err(format!("{name} presented no certificate from the cluster CA for its address"))
                } else {
                    match index.map(|index| self.links.get(index).cloned().flatten()) {
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
    }
}
