//! The Redis protocol port: RESP2 and RESP3, so `redis-cli`, `redis-benchmark` and client
//! libraries work unchanged.
//!
//! Each connection is one client session (its own `ClientId`, increasing sequence numbers),
//! and its commands run in order, so pipelined commands see each other's effects as in Redis.
//! Parsing is incremental and bounded: an argument above the size limit is skipped as it
//! streams in and answered with an error, keeping the connection usable; malformed input gets
//! `-ERR protocol error` and only that connection is closed. Nothing a client sends can stop
//! the node.

mod codec;
mod commands;

use std::net::SocketAddr;
use std::time::Duration;

use dynamo_core::client::{Pending, Pipeline, Session, Started};
use dynamo_core::message::{ClientError, ClientOp, ClientReply, Unavailable};
use dynamo_core::types::{Blob, ClientId};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::node::Handle;
use codec::{Parsed, Parser, ProtocolError, Reply};
use commands::error_reply;
use tokio_rustls::TlsAcceptor;

/// The longest a connection waits for the node's answer (the node answers long before).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Requests of one multi-key command (DEL, EXISTS, MGET) in flight at once.
const KEYS_IN_FLIGHT_MAX: usize = 64;
/// How long a request may be pending before the replies computed ahead of it are sent.
const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// Accepts RESP connections forever, over TLS when `tls` is given (`redis-cli --tls`).
pub async fn serve(listener: TcpListener, handle: Handle, tls: Option<TlsAcceptor>) {
    loop {
        let Ok((tcp, address)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let (handle, tls) = (handle.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => connection(tcp, address, handle).await,
                Some(tls) => match crate::tls::accept(&tls, tcp).await {
                    Ok(stream) => connection(stream, address, handle).await,
                    Err(error) => tracing::warn!(%address, %error, "TLS handshake failed on the RESP port"),
                },
            }
        });
    }
}

/// Whether a command is what an HTTP request's first lines parse as (`POST / HTTP/1.1`,
/// `Host: ...`): a web page in the user's browser speaking HTTP to this port (cross-protocol
/// scripting: a `fetch` with `mode: 'no-cors'` can send any body). Redis closes such a
/// connection, running nothing after it, and so does this port.
fn is_http(arguments: &[Vec<u8>]) -> bool {
    let name = &arguments[0];
    name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:")
}

/// One client connection.
struct Connection {
    handle: Handle,
    /// The connection's client session while it is idle: commands run one at a time, so one
    /// session serves them all. `None` after a request given up without an answer (it may still
    /// be in flight), until the next command takes a fresh one.
    session: Option<Session>,
    /// The connection's id for `CLIENT ID` and `HELLO`: its first session's.
    id: ClientId,
    protocol: u8,
    name: Option<Vec<u8>>,
    quit: bool,
    /// MULTI was refused and no EXEC or DISCARD has come since: the commands a client sends
    /// after MULTI are meant to run only as one transaction, so none of them may run alone.
    transaction_refused: bool,
    /// Whether the client may run commands: at once without a client password, after `AUTH`
    /// (or `HELLO ... AUTH`) with one.
    authenticated: bool,
    /// Failed `AUTH`s on this connection, for the log.
    failed_auths: u64,
    /// The client's address, for the log.
    address: SocketAddr,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.handle.put_session(session);
        }
    }
}

async fn connection<S>(mut stream: S, address: SocketAddr, handle: Handle)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let argument_max = handle.file.config.value_bytes_max.max(handle.file.config.key_bytes_max);
    let mut parser = Parser::new(argument_max);
    let session = handle.take_session();
    let mut session = Connection {
        id: session.client(),
        session: Some(session),
        authenticated: handle.file.password.is_none(),
        handle,
        protocol: 2,
        name: None,
        quit: false,
        transaction_refused: false,
        failed_auths: 0,
        address,
    };
    let mut input = vec![0u8; 64 << 10];
    let mut output = Vec::new();
    loop {
        let read = match stream.read(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        parser.feed(&input[..read]);
        loop {
            match parser.next() {
                Ok(Some(Parsed::Command(arguments))) if is_http(&arguments) => {
                    // At once: nothing after it runs, and (as in Redis) not even the replies of
                    // the commands before it in this read are sent.
                    tracing::warn!(
                        %address,
                        "possible security attack: a client sent POST or Host: (an HTTP request, as a web page \
                         would through cross-protocol scripting); connection closed"
                    );
                    return;
                }
                Ok(Some(Parsed::Command(arguments))) => {
                    let reply = {
                        let pending = session.execute(arguments);
                        tokio::pin!(pending);
                        if output.is_empty() {
                            pending.await
                        } else {
                            // Replies already computed must not wait behind a slow request (one
                            // whose quorum is down takes the whole operation timeout). Flushing only
                            // once a request has been pending a while keeps a fast pipeline at one
                            // write per batch of commands, not one per command.
                            match tokio::time::timeout(FLUSH_AFTER, &mut pending).await {
                                Ok(reply) => reply,
                                Err(_) => {
                                    if stream.write_all(&output).await.is_err() {
                                        return;
                                    }
                                    output.clear();
                                    pending.await
                                }
                            }
                        }
                    };
                    reply.encode(session.protocol, &mut output);
                    if session.quit {
                        let _ = stream.write_all(&output).await;
                        return;
                    }
                }
                Ok(Some(Parsed::Oversized(bytes))) => {
                    let limit = session.handle.file.config.value_bytes_max;
                    Reply::Error(format!("ERR value too large ({bytes} bytes; the limit is {limit})"))
                        .encode(session.protocol, &mut output);
                }
                Ok(None) => break,
                Err(ProtocolError(reason)) => {
                    Reply::Error(format!("ERR protocol error: {reason}")).encode(session.protocol, &mut output);
                    let _ = stream.write_all(&output).await;
                    return;
                }
            }
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
    }
}

/// Sends a session's request to the node and waits (boundedly) for its answer; the session comes
/// back when the node answered.
async fn answer(handle: &Handle, pending: Pending) -> (ClientReply, Option<Session>) {
    match tokio::time::timeout(ANSWER_TIMEOUT, handle.request(pending)).await {
        Ok(answered) => answered,
        // Given up: the request may still be in flight, so its session is dropped with it.
        Err(_) => (ClientReply::Error(ClientError::Unavailable(Unavailable::NoAnswer)), None),
    }
}

impl Connection {
    async fn call(&mut self, op: ClientOp) -> ClientReply {
        let session = self.session.take().unwrap_or_else(|| self.handle.take_session());
        let (reply, session) = answer(&self.handle, session.start(op)).await;
        self.session = session;
        reply
    }

    /// The single-key requests of one command, up to `KEYS_IN_FLIGHT_MAX` at once; their
    /// answers in the order of `ops`, or the first error (after which no further request
    /// starts, and those already started are waited for).
    ///
    /// Each request in flight runs on a client session of its own (`Pipeline`); requests for
    /// the same key run in turn. A command's reply does not depend on the order of its keys, so
    /// running them side by side answers what running them in turn would.
    async fn call_many(&mut self, ops: Vec<ClientOp>) -> Result<Vec<ClientReply>, ClientError> {
        let handle = self.handle.clone();
        let mut pipeline = Pipeline::new(KEYS_IN_FLIGHT_MAX);
        let mut replies: Vec<Option<ClientReply>> = (0..ops.len()).map(|_| None).collect();
        let mut failed = None;
        let mut in_flight = FuturesUnordered::new();
        let mut ops = ops.into_iter().enumerate();
        loop {
            while failed.is_none() && pipeline.has_room() {
                let Some((index, op)) = ops.next() else { break };
                pipeline.submit(index, op);
            }
            for Started { tag, token, pending } in handle.with_sessions(|pool| pipeline.start_ready(pool)) {
                let handle = &handle;
                in_flight.push(async move { (tag, token, answer(handle, pending).await) });
            }
            let Some((index, token, (reply, session))) = in_flight.next().await else { break };
            handle.with_sessions(|pool| pipeline.finish(token, session, pool));
            match reply {
                ClientReply::Error(error) => {
                    failed.get_or_insert(error);
                }
                reply => replies[index] = Some(reply),
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(replies.into_iter().map(|reply| reply.expect("every request was answered")).collect()),
        }
    }

    /// The values of `keys`, in order (reads of one key named twice may run side by side).
    async fn gets(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Blob>>, Reply> {
        let ops = keys.iter().map(|key| ClientOp::Get { key: Blob::new(key) }).collect();
        let replies = self.call_many(ops).await.map_err(|error| error_reply(&error))?;
        replies
            .into_iter()
            .map(|reply| match reply {
                ClientReply::Value(value) => Ok(value),
                other => Err(Reply::Error(format!("ERR unexpected answer {other:?}"))),
            })
            .collect()
    }

    async fn pairs(&mut self, op: ClientOp) -> Result<Vec<(Blob, Blob)>, Reply> {
        match self.call(op).await {
            ClientReply::Pairs(pairs) => Ok(pairs),
            ClientReply::Error(error) => Err(error_reply(&error)),
            other => Err(Reply::Error(format!("ERR unexpected answer {other:?}"))),
        }
    }
}
