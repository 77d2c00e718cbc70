//! One node process, wired: the node half (`node`), its listeners, and the client front ends
//! (`resp`, `ws_api`) on top of the node's `Handle`. Its WebSocket port serves two paths:
//! `/peer` for the other nodes (handed to `node::Peers`) and `/client` for the JSON API.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::cluster_file::ClusterFile;
use crate::node::{self, websocket_config, Handle, Peers};
use crate::tls::{Stream, Tls};

/// Runs node `index` of `file` until the process is killed.
pub async fn run(file: ClusterFile, index: usize) -> Result<(), Box<dyn std::error::Error>> {
    let file = Arc::new(file);
    let me = file.nodes[index].clone();
    let node = node::start(file, index)?;
    let ws = TcpListener::bind(me.ws).await.map_err(|e| format!("cannot listen on {} (ws): {e}", me.ws))?;
    let resp = TcpListener::bind(me.resp).await.map_err(|e| format!("cannot listen on {} (resp): {e}", me.resp))?;
    tokio::spawn(accept_ws(ws, node.handle.clone(), node.peers.clone(), node.tls.clone()));
    let resp_tls = node.tls.as_ref().and_then(|tls| tls.resp().cloned());
    tokio::spawn(crate::resp::serve(resp, node.handle.clone(), resp_tls.clone()));
    // Not println!: a closed stdout (`dynamo node ... | head -1`) must not stop the node. The
    // supervisor (`dynamo cluster`) waits for this line's "node NAME ready:".
    let (ws_scheme, resp_tls) =
        (if node.tls.is_some() { "wss" } else { "ws" }, if resp_tls.is_some() { " (TLS)" } else { "" });
    crate::say(format_args!(
        "node {} ready: {ws_scheme}://{} resp {}{resp_tls} ({:?})",
        me.name, me.ws, me.resp, node.start
    ));
    tracing::info!(node = %me.name, ws = %me.ws, resp = %me.resp, start = ?node.start, "ready");
    node.run().await;
    Ok(())
}

/// Accepts WebSocket connections: `/peer` links (handed to their `Link`) and `/client` API
/// connections.
// tungstenite's handshake callback signature fixes its (large) error type.
#[allow(clippy::result_large_err)]
async fn accept_ws(listener: TcpListener, handle: Handle, peers: Peers, tls: Option<Arc<Tls>>) {
    let Ok(served) = listener.local_addr() else { return };
    loop {
        let Ok((tcp, address)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let handle = handle.clone();
        let peers = peers.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let stream = match &tls {
                Some(tls) => match tls.accept_ws(tcp).await {
                    Ok(stream) => stream,
                    // A peer with a certificate from another CA ends here, and says so.
                    Err(error) => return tracing::warn!(%address, %error, "TLS handshake failed; disconnected"),
                },
                None => Stream::Plain(tcp),
            };
            let mut path = String::new();
            let allowed = &handle.file.allowed_origins;
            let callback =
                |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                 response: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    path = request.uri().path().to_string();
                    // DNS rebinding: a request for another domain that resolves here is refused.
                    let host = request.headers().get("host").and_then(|host| host.to_str().ok());
                    if !crate::host::allowed(host, served) {
                        let mut refusal = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(Some(
                            format!("this node answers only requests for {served} or localhost:{}", served.port()),
                        ));
                        *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::MISDIRECTED_REQUEST;
                        return Err(refusal);
                    }
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
            let socket = match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await {
                Ok(socket) => socket,
                // Whatever is not a WebSocket handshake (random bytes, a stray HTTP client) is
                // logged and dropped; the node carries on.
                Err(error) => return tracing::warn!(%address, %error, "websocket handshake failed; disconnected"),
            };
            if path == "/peer" {
                peers.accept(socket, address).await;
            } else {
                crate::ws_api::serve(socket, address, handle).await;
            }
        });
    }
}
