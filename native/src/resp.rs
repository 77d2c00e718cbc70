//! The Redis protocol port: RESP2 and RESP3, so `redis-cli`, `redis-benchmark` and client
//! libraries work unchanged.
//!
//! Each connection is one client session (its own `ClientId`, increasing sequence numbers),
//! and its commands run in order, so pipelined commands see each other's effects as in Redis.
//! Parsing is incremental and bounded: an argument above the size limit is skipped as it
//! streams in and answered with an error, keeping the connection usable; malformed input gets
//! `-ERR protocol error` and only that connection is closed. Nothing a client sends can stop
//! the node.

use std::collections::BTreeSet;
use std::time::Duration;

use dynamo_core::client::{Pending, Pipeline, Session, Started};
use dynamo_core::message::{ClientError, ClientOp, ClientReply, Unavailable};
use dynamo_core::types::{Blob, ClientId};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::server::Handle;

/// Arguments per command.
const ARGUMENTS_MAX: u64 = 1 << 20;
/// A declared argument length beyond this is a protocol error (Redis' proto-max-bulk-len).
const DECLARED_BYTES_MAX: u64 = 512 << 20;
/// Bytes of one inline command line.
const INLINE_BYTES_MAX: usize = 64 << 10;
/// The longest a connection waits for the node's answer (the node answers long before).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Requests of one multi-key command (DEL, EXISTS, MGET) in flight at once.
const KEYS_IN_FLIGHT_MAX: usize = 64;
/// How long a request may be pending before the replies computed ahead of it are sent.
const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// One parsed unit of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Command(Vec<Vec<u8>>),
    /// A command with an argument of this many bytes, over the limit; it was skipped.
    Oversized(u64),
}

/// Why the input cannot be parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

/// An argument being skipped because it is too large.
#[derive(Debug)]
struct Skip {
    bytes_left: u64,
    arguments_left: u64,
    oversized: u64,
}

/// Incremental RESP request parser.
#[derive(Debug)]
pub struct Parser {
    buffer: Vec<u8>,
    start: usize,
    skip: Option<Skip>,
    argument_bytes_max: u64,
}

impl Parser {
    pub fn new(argument_bytes_max: u64) -> Parser {
        Parser { buffer: Vec::new(), start: 0, skip: None, argument_bytes_max }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received and not yet parsed.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    fn line(&self, from: usize) -> Option<(usize, &[u8])> {
        let rest = &self.buffer[from..];
        let end = rest.iter().position(|byte| *byte == b'\n')?;
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some((from + end + 1, line))
    }

    fn number(line: &[u8]) -> Result<i64, ProtocolError> {
        std::str::from_utf8(line).ok().and_then(|text| text.parse().ok()).ok_or(ProtocolError("invalid length"))
    }

    /// The next complete unit, `Ok(None)` when more input is needed.
    pub fn next(&mut self) -> Result<Option<Parsed>, ProtocolError> {
        loop {
            if let Some(skip) = &mut self.skip {
                let available = (self.buffer.len() - self.start) as u64;
                let take = available.min(skip.bytes_left);
                self.start += take as usize;
                skip.bytes_left -= take;
                if skip.bytes_left > 0 {
                    return Ok(None);
                }
                if skip.arguments_left == 0 {
                    let oversized = skip.oversized;
                    self.skip = None;
                    return Ok(Some(Parsed::Oversized(oversized)));
                }
                // The next argument's header.
                let Some((after, line)) = self.line(self.start) else { return Ok(None) };
                if line.first() != Some(&b'$') {
                    return Err(ProtocolError("expected '$'"));
                }
                let length = Self::number(&line[1..])?;
                if !(0..=DECLARED_BYTES_MAX as i64).contains(&length) {
                    return Err(ProtocolError("invalid bulk length"));
                }
                let skip = self.skip.as_mut().expect("skipping");
                skip.bytes_left = length as u64 + 2;
                skip.arguments_left -= 1;
                self.start = after;
                continue;
            }
            if self.start == self.buffer.len() {
                return Ok(None);
            }
            if self.buffer[self.start] != b'*' {
                return self.inline();
            }
            return self.array();
        }
    }

    fn inline(&mut self) -> Result<Option<Parsed>, ProtocolError> {
        let Some((after, line)) = self.line(self.start) else {
            if self.buffered() > INLINE_BYTES_MAX {
                return Err(ProtocolError("too big inline request"));
            }
            return Ok(None);
        };
        let words = split_arguments(line)?;
        self.start = after;
        if words.is_empty() {
            return self.next();
        }
        Ok(Some(Parsed::Command(words)))
    }

    fn array(&mut self) -> Result<Option<Parsed>, ProtocolError> {
        let Some((mut at, line)) = self.line(self.start) else { return Ok(None) };
        let count = Self::number(&line[1..])?;
        if count > ARGUMENTS_MAX as i64 {
            return Err(ProtocolError("invalid multibulk length"));
        }
        if count <= 0 {
            // `*0` and `*-1` are empty requests; Redis ignores them without a reply.
            self.start = at;
            return self.next();
        }
        let mut arguments = Vec::with_capacity(count.min(64) as usize);
        for index in 0..count as u64 {
            let Some((after, line)) = self.line(at) else { return Ok(None) };
            if line.first() != Some(&b'$') {
                return Err(ProtocolError("expected '$'"));
            }
            let length = Self::number(&line[1..])?;
            if !(0..=DECLARED_BYTES_MAX as i64).contains(&length) {
                return Err(ProtocolError("invalid bulk length"));
            }
            let length = length as u64;
            if length > self.argument_bytes_max {
                // Skip it (and the rest of the command) as it streams in.
                self.start = after;
                self.skip =
                    Some(Skip { bytes_left: length + 2, arguments_left: count as u64 - index - 1, oversized: length });
                return self.next();
            }
            let end = after + length as usize;
            if self.buffer.len() < end + 2 {
                return Ok(None);
            }
            if &self.buffer[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string not terminated by CRLF"));
            }
            arguments.push(self.buffer[after..end].to_vec());
            at = end + 2;
        }
        self.start = at;
        if arguments.is_empty() {
            return self.next();
        }
        Ok(Some(Parsed::Command(arguments)))
    }
}

/// Splits an inline command line into arguments exactly as Redis' `sdssplitargs` does: words
/// separated by spaces; in double quotes `\n \r \t \b \a` and `\xHH` escapes (any other escaped
/// byte stands for itself); in single quotes only `\'`. A quote may open mid-word (`a"b c"` is
/// `ab c`). A closing quote must be followed by a space or the end of the line, and an unclosed
/// quote is an error: guessing what the client meant could store the wrong value.
pub fn split_arguments(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    const UNBALANCED: ProtocolError = ProtocolError("unbalanced quotes in request");
    // Redis works on a C string: the line ends at its first NUL byte.
    let line = &line[..line.iter().position(|byte| *byte == 0).unwrap_or(line.len())];
    let at = |index: usize| line.get(index).copied().unwrap_or(0);
    // C's isspace, which Redis uses around arguments.
    let space = |byte: u8| matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let hex = |byte: u8| (byte as char).to_digit(16).map(|digit| digit as u8);
    let mut arguments = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && space(line[p]) {
            p += 1;
        }
        if p == line.len() {
            return Ok(arguments);
        }
        // The quote the current word is inside, if any.
        let mut quote: Option<u8> = None;
        let mut current = Vec::new();
        loop {
            match quote {
                Some(open) => match (at(p), at(p + 1)) {
                    (b'\\', b'x') if open == b'"' && hex(at(p + 2)).is_some() && hex(at(p + 3)).is_some() => {
                        current.push(hex(at(p + 2)).expect("checked") * 16 + hex(at(p + 3)).expect("checked"));
                        p += 3;
                    }
                    (b'\\', escaped) if open == b'"' && escaped != 0 => {
                        current.push(match escaped {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        p += 1;
                    }
                    (b'\\', b'\'') if open == b'\'' => {
                        current.push(b'\'');
                        p += 1;
                    }
                    (byte, next) if byte == open => {
                        if next != 0 && !space(next) {
                            return Err(UNBALANCED);
                        }
                        p += 1;
                        break;
                    }
                    (0, _) => return Err(UNBALANCED),
                    (byte, _) => current.push(byte),
                },
                None => match at(p) {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        p = (p + 1).min(line.len());
                        break;
                    }
                    open @ (b'"' | b'\'') => quote = Some(open),
                    byte => current.push(byte),
                },
            }
            p += 1;
        }
        arguments.push(current);
    }
}

/// A reply, encoded for the connection's protocol version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    fn text(text: &str) -> Reply {
        Reply::Bulk(text.as_bytes().to_vec())
    }

    pub fn encode(&self, protocol: u8, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(text) => {
                out.push(b'+');
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Error(text) => {
                out.push(b'-');
                // An error line must not break the framing.
                out.extend(text.bytes().map(|byte| if byte == b'\r' || byte == b'\n' { b' ' } else { byte }));
                out.extend_from_slice(b"\r\n");
            }
            Reply::Integer(value) => out.extend_from_slice(format!(":{value}\r\n").as_bytes()),
            Reply::Bulk(bytes) => {
                out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Null => out.extend_from_slice(if protocol >= 3 { b"_\r\n" } else { b"$-1\r\n" }),
            Reply::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    item.encode(protocol, out);
                }
            }
            Reply::Map(pairs) => {
                if protocol >= 3 {
                    out.extend_from_slice(format!("%{}\r\n", pairs.len()).as_bytes());
                } else {
                    out.extend_from_slice(format!("*{}\r\n", pairs.len() * 2).as_bytes());
                }
                for (key, value) in pairs {
                    key.encode(protocol, out);
                    value.encode(protocol, out);
                }
            }
        }
    }
}

/// Shell-style glob matching as Redis' `KEYS` does: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut star_text) = (None, 0);
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some(p);
                    star_text = t;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(&pattern[p..], text[t]) {
                        if matched {
                            p += next;
                            t += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                byte => {
                    if byte == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some(position) => {
                p = position + 1;
                star_text += 1;
                t = star_text;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|byte| *byte == b'*')
}

/// Matches a `[...]` class at the start of `pattern`: (matched, bytes of the class).
fn class(pattern: &[u8], byte: u8) -> Option<(bool, usize)> {
    let mut index = 1;
    let negate = pattern.get(1) == Some(&b'^');
    if negate {
        index += 1;
    }
    let mut matched = false;
    while index < pattern.len() && pattern[index] != b']' {
        if pattern[index] == b'\\' && index + 1 < pattern.len() {
            matched |= pattern[index + 1] == byte;
            index += 2;
        } else if index + 2 < pattern.len() && pattern[index + 1] == b'-' && pattern[index + 2] != b']' {
            let (low, high) = (pattern[index].min(pattern[index + 2]), pattern[index].max(pattern[index + 2]));
            matched |= (low..=high).contains(&byte);
            index += 3;
        } else {
            matched |= pattern[index] == byte;
            index += 1;
        }
    }
    (index < pattern.len()).then_some((matched != negate, index + 1))
}

/// Accepts RESP connections forever.
pub async fn serve(listener: TcpListener, handle: Handle) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, handle.clone()));
    }
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
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.handle.put_session(session);
        }
    }
}

async fn connection(mut stream: TcpStream, handle: Handle) {
    let argument_max = handle.file.config.value_bytes_max.max(handle.file.config.key_bytes_max);
    let mut parser = Parser::new(argument_max);
    let session = handle.take_session();
    let mut session = Connection {
        id: session.client(),
        session: Some(session),
        handle,
        protocol: 2,
        name: None,
        quit: false,
        transaction_refused: false,
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

/// Whether `FLUSHALL`/`FLUSHDB` arguments are ones Redis accepts: none, `ASYNC` or `SYNC`.
/// Anything else is a syntax error that must delete nothing: a typo must never flush the store.
fn flush_arguments_valid(args: &[Vec<u8>]) -> bool {
    match args {
        [] => true,
        [mode] => mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC"),
        _ => false,
    }
}

/// Redis' text for an unknown command, byte for byte (clients and tests match on it): the name
/// and then each argument quoted and followed by a space, until 128 bytes of arguments are shown.
fn unknown_command(arguments: &[Vec<u8>]) -> String {
    const SHOWN_BYTES_MAX: usize = 128;
    let name = String::from_utf8_lossy(&arguments[0]);
    let mut shown = String::new();
    for argument in &arguments[1..] {
        if shown.len() >= SHOWN_BYTES_MAX {
            break;
        }
        let text = String::from_utf8_lossy(argument);
        let room = SHOWN_BYTES_MAX - shown.len();
        let cut = (0..=room.min(text.len())).rev().find(|at| text.is_char_boundary(*at)).unwrap_or(0);
        shown.push_str(&format!("'{}' ", &text[..cut]));
    }
    let name_cut = (0..=SHOWN_BYTES_MAX.min(name.len())).rev().find(|at| name.is_char_boundary(*at)).unwrap_or(0);
    format!("ERR unknown command '{}', with args beginning with: {shown}", &name[..name_cut])
}

fn wrong_arity(command: &str) -> Reply {
    Reply::Error(format!("ERR wrong number of arguments for '{}' command", command.to_lowercase()))
}

fn error_reply(error: &ClientError) -> Reply {
    Reply::Error(format!("ERR {error}"))
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

    async fn execute(&mut self, arguments: Vec<Vec<u8>>) -> Reply {
        let name = String::from_utf8_lossy(&arguments[0]).to_uppercase();
        let args = &arguments[1..];
        let key = |index: usize| Blob::new(&args[index]);
        if self.transaction_refused {
            // Like Redis after an error while queueing (EXECABORT): the client believes these
            // commands are queued for EXEC; running them one by one would leave half a
            // transaction behind, so none runs.
            match name.as_str() {
                "EXEC" => {
                    self.transaction_refused = false;
                    return Reply::Error(
                        "EXECABORT Transaction discarded because MULTI is not supported: nothing ran".into(),
                    );
                }
                "DISCARD" => {
                    self.transaction_refused = false;
                    return Reply::ok();
                }
                "MULTI" => return Reply::Error("ERR MULTI calls can not be nested".into()),
                "QUIT" => {}
                _ => {
                    return Reply::Error(
                        "ERR not executed: MULTI was refused (transactions are not supported), so nothing runs until \
                         EXEC or DISCARD"
                            .into(),
                    )
                }
            }
        }
        match (name.as_str(), args.len()) {
            ("PING", 0) => Reply::Simple("PONG".into()),
            ("PING", 1) => Reply::Bulk(args[0].clone()),
            ("ECHO", 1) => Reply::Bulk(args[0].clone()),
            ("SET", 2) => match self.call(ClientOp::Put { key: key(0), value: key(1) }).await {
                ClientReply::Written => Reply::ok(),
                ClientReply::Error(error) => error_reply(&error),
                other => Reply::Error(format!("ERR unexpected answer {other:?}")),
            },
            ("SET", n) if n > 2 => Reply::Error("ERR SET options (EX, NX, ...) are not supported".into()),
            ("GET", 1) => match self.call(ClientOp::Get { key: key(0) }).await {
                ClientReply::Value(Some(value)) => Reply::Bulk(value.as_bytes().to_vec()),
                ClientReply::Value(None) => Reply::Null,
                ClientReply::Error(error) => error_reply(&error),
                other => Reply::Error(format!("ERR unexpected answer {other:?}")),
            },
            ("DEL" | "UNLINK", n) if n >= 1 => {
                // A key named twice is deleted once: in turn, its second delete would find
                // nothing and count 0 (Redis: `DEL a a` is 1), and two deletes of one key at
                // once would race each other.
                let mut seen = BTreeSet::new();
                let ops = args
                    .iter()
                    .filter(|argument| seen.insert(argument.as_slice()))
                    .map(|argument| ClientOp::Delete { key: Blob::new(argument) })
                    .collect();
                match self.call_many(ops).await {
                    Ok(replies) => {
                        let mut deleted = 0;
                        for reply in replies {
                            match reply {
                                ClientReply::Deleted(count) => deleted += count as i64,
                                other => return Reply::Error(format!("ERR unexpected answer {other:?}")),
                            }
                        }
                        Reply::Integer(deleted)
                    }
                    Err(error) => error_reply(&error),
                }
            }
            // Every key counts as often as it is named, as in Redis.
            ("EXISTS", n) if n >= 1 => match self.gets(args).await {
                Ok(values) => Reply::Integer(values.iter().filter(|value| value.is_some()).count() as i64),
                Err(reply) => reply,
            },
            ("MGET", n) if n >= 1 => match self.gets(args).await {
                Ok(values) => Reply::Array(
                    values
                        .into_iter()
                        .map(|value| value.map_or(Reply::Null, |value| Reply::Bulk(value.as_bytes().to_vec())))
                        .collect(),
                ),
                Err(reply) => reply,
            },
            ("KEYS", 1) => match self.pairs(ClientOp::GlobalQuery).await {
                Ok(pairs) => Reply::Array(
                    pairs
                        .into_iter()
                        .filter(|(key, _)| glob(&args[0], key.as_bytes()))
                        .map(|(key, _)| Reply::Bulk(key.as_bytes().to_vec()))
                        .collect(),
                ),
                Err(reply) => reply,
            },
            ("SCAN", n) if n >= 1 => self.scan(args).await,
            ("TYPE", 1) => match self.gets(args).await {
                Ok(values) => Reply::Simple(if values[0].is_some() { "string" } else { "none" }.into()),
                Err(reply) => reply,
            },
            // No key ever expires here: -1 is "exists without expiry", -2 "does not exist".
            ("TTL" | "PTTL", 1) => match self.gets(args).await {
                Ok(values) => Reply::Integer(if values[0].is_some() { -1 } else { -2 }),
                Err(reply) => reply,
            },
            ("TIME", 0) => {
                // This node's wall clock, as Redis answers; nothing in the store depends on it.
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                Reply::Array(vec![
                    Reply::text(&now.as_secs().to_string()),
                    Reply::text(&now.subsec_micros().to_string()),
                ])
            }
            ("DBSIZE", 0) => match self.pairs(ClientOp::GlobalQuery).await {
                Ok(pairs) => Reply::Integer(pairs.len() as i64),
                Err(reply) => reply,
            },
            ("FLUSHALL" | "FLUSHDB", _) if !flush_arguments_valid(args) => Reply::Error("ERR syntax error".into()),
            ("FLUSHALL" | "FLUSHDB", _) => match self.call(ClientOp::GlobalDelete).await {
                ClientReply::Deleted(_) => Reply::ok(),
                ClientReply::Error(error) => error_reply(&error),
                other => Reply::Error(format!("ERR unexpected answer {other:?}")),
            },
            ("DYN.LOCAL", 0) => match self.pairs(ClientOp::LocalQuery).await {
                Ok(pairs) => Reply::Array(
                    pairs
                        .into_iter()
                        .flat_map(|(key, value)| {
                            [Reply::Bulk(key.as_bytes().to_vec()), Reply::Bulk(value.as_bytes().to_vec())]
                        })
                        .collect(),
                ),
                Err(reply) => reply,
            },
            ("DYN.FLUSHLOCAL", 0) => match self.call(ClientOp::LocalDelete).await {
                ClientReply::Deleted(count) => Reply::Integer(count as i64),
                ClientReply::Error(error) => error_reply(&error),
                other => Reply::Error(format!("ERR unexpected answer {other:?}")),
            },
            ("DYN.OWNERS", 1) => {
                let ring = &self.handle.ring;
                Reply::Array(ring.preference(&args[0]).iter().map(|node| Reply::text(ring.name(*node))).collect())
            }
            ("INFO", _) => Reply::Bulk(self.info(args).into_bytes()),
            ("HELLO", _) => self.hello(args),
            ("CLIENT", n) if n >= 1 => self.client(args),
            ("SELECT", 1) => {
                if args[0] == b"0" {
                    Reply::ok()
                } else {
                    Reply::Error("ERR DB index is out of range".into())
                }
            }
            ("CONFIG", n) if n >= 1 => {
                if String::from_utf8_lossy(&args[0]).eq_ignore_ascii_case("GET") {
                    // What tools ask for (redis-benchmark: save, appendonly), answered honestly:
                    // no snapshots, and durability comes from the storage engine, not an AOF.
                    let known = [("save", ""), ("appendonly", "no"), ("databases", "1")];
                    let pairs = args[1..]
                        .iter()
                        .flat_map(|pattern| known.iter().filter(move |(name, _)| glob(pattern, name.as_bytes())))
                        .map(|(name, value)| (Reply::text(name), Reply::text(value)))
                        .collect();
                    Reply::Map(pairs)
                } else {
                    Reply::Error("ERR CONFIG SET/RESETSTAT/REWRITE are not supported".into())
                }
            }
            ("COMMAND", _) => {
                let sub = args.first().map(|arg| String::from_utf8_lossy(arg).to_uppercase());
                match sub.as_deref() {
                    Some("COUNT") => Reply::Integer(0),
                    Some("DOCS") => Reply::Map(Vec::new()),
                    _ => Reply::Array(Vec::new()),
                }
            }
            ("AUTH", _) => {
                Reply::Error("ERR AUTH <password> called without any password configured for the default user".into())
            }
            ("MULTI", 0) => {
                self.transaction_refused = true;
                Reply::Error(
                    "ERR transactions are not supported (no multi-key isolation): MULTI is refused and the commands \
                     up to EXEC or DISCARD will not run"
                        .into(),
                )
            }
            ("EXEC", 0) => Reply::Error("ERR EXEC without MULTI".into()),
            ("DISCARD", 0) => Reply::Error("ERR DISCARD without MULTI".into()),
            ("WATCH" | "UNWATCH", _) => {
                Reply::Error(format!("ERR {name} is not supported: there are no transactions to watch for"))
            }
            ("QUIT", _) => {
                self.quit = true;
                Reply::ok()
            }
            (
                "PING" | "ECHO" | "SET" | "GET" | "DEL" | "UNLINK" | "EXISTS" | "KEYS" | "MGET" | "TYPE" | "TTL"
                | "PTTL" | "TIME" | "DBSIZE" | "MULTI" | "EXEC" | "DISCARD" | "DYN.LOCAL" | "DYN.FLUSHLOCAL"
                | "DYN.OWNERS" | "SELECT",
                _,
            ) => wrong_arity(&name),
            _ => Reply::Error(unknown_command(&arguments)),
        }
    }

    /// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`. The store has no cheap cursor over
    /// its keys, so the first call answers every matching key at once with the next cursor 0,
    /// which ends the iteration: valid SCAN semantics (every key present throughout is returned
    /// at least once), with COUNT only a hint, as in Redis. Any other cursor was never handed
    /// out and is refused.
    async fn scan(&mut self, args: &[Vec<u8>]) -> Reply {
        if args[0] != b"0" {
            return Reply::Error("ERR invalid cursor".into());
        }
        let mut pattern: &[u8] = b"*";
        let mut strings = true;
        let mut index = 1;
        while index < args.len() {
            let option = String::from_utf8_lossy(&args[index]).to_uppercase();
            let Some(value) = args.get(index + 1) else { return Reply::Error("ERR syntax error".into()) };
            match option.as_str() {
                "MATCH" => pattern = value,
                "COUNT" => match std::str::from_utf8(value).ok().and_then(|text| text.parse::<i64>().ok()) {
                    Some(count) if count >= 1 => {}
                    Some(_) => return Reply::Error("ERR syntax error".into()),
                    None => return Reply::Error("ERR value is not an integer or out of range".into()),
                },
                // Every value here is a string: another type matches no key.
                "TYPE" => strings = value.eq_ignore_ascii_case(b"string"),
                _ => return Reply::Error("ERR syntax error".into()),
            }
            index += 2;
        }
        let pairs = match self.pairs(ClientOp::GlobalQuery).await {
            Ok(pairs) => pairs,
            Err(reply) => return reply,
        };
        let keys = pairs
            .into_iter()
            .filter(|(key, _)| strings && glob(pattern, key.as_bytes()))
            .map(|(key, _)| Reply::Bulk(key.as_bytes().to_vec()))
            .collect();
        Reply::Array(vec![Reply::text("0"), Reply::Array(keys)])
    }

    fn hello(&mut self, args: &[Vec<u8>]) -> Reply {
        if let Some(version) = args.first() {
            match std::str::from_utf8(version).ok().and_then(|text| text.parse::<i64>().ok()) {
                Some(2) => self.protocol = 2,
                Some(3) => self.protocol = 3,
                Some(_) => return Reply::Error("NOPROTO unsupported protocol version".into()),
                None => return Reply::Error("ERR Protocol version is not an integer or out of range".into()),
            }
        }
        let mut index = 1;
        while index < args.len() {
            let option = String::from_utf8_lossy(&args[index]).to_uppercase();
            match option.as_str() {
                "SETNAME" if index + 1 < args.len() => {
                    self.name = Some(args[index + 1].clone());
                    index += 2;
                }
                "AUTH" if index + 2 < args.len() => index += 3,
                _ => return Reply::Error(format!("ERR syntax error in HELLO option '{option}'")),
            }
        }
        Reply::Map(vec![
            (Reply::text("server"), Reply::text("redis")),
            (Reply::text("version"), Reply::text("7.2.0")),
            (Reply::text("proto"), Reply::Integer(self.protocol as i64)),
            (Reply::text("id"), Reply::Integer((self.id.0 & 0x7fff_ffff) as i64)),
            (Reply::text("mode"), Reply::text("standalone")),
            (Reply::text("role"), Reply::text("master")),
            (Reply::text("modules"), Reply::Array(Vec::new())),
        ])
    }

    fn client(&mut self, args: &[Vec<u8>]) -> Reply {
        let sub = String::from_utf8_lossy(&args[0]).to_uppercase();
        match (sub.as_str(), args.len()) {
            ("SETINFO", 3) => Reply::ok(),
            ("SETNAME", 2) => {
                self.name = Some(args[1].clone());
                Reply::ok()
            }
            ("GETNAME", 1) => self.name.clone().map_or(Reply::Null, Reply::Bulk),
            ("ID", 1) => Reply::Integer((self.id.0 & 0x7fff_ffff) as i64),
            _ => Reply::Error(format!("ERR unsupported CLIENT subcommand '{sub}'")),
        }
    }

    /// `INFO [section ...]`: every section, or those named (any case); unknown names add nothing,
    /// as in Redis. Peers and ring tokens get a field each (`peer_5556:ws=...,state=trusted`), so
    /// that clients that parse INFO into a map (redis-py) keep all of them.
    fn info(&self, wanted: &[Vec<u8>]) -> String {
        let file = &self.handle.file;
        let config = &file.config;
        let me = &file.nodes[self.handle.id.index()];
        let suspected = self.handle.suspected();
        let mut server = String::from("redis_version:7.2.0\r\nserver_name:dynamo\r\n");
        server.push_str(&format!("dynamo_version:{}\r\n", env!("CARGO_PKG_VERSION")));
        server.push_str(&format!("node:{}\r\nws:{}\r\nresp:{}\r\n", me.name, me.ws, me.resp));
        server.push_str(&format!("incarnation:{}\r\n", self.handle.incarnation));
        let replication = format!(
            "replicas:{}\r\nread_quorum:{}\r\nwrite_quorum:{}\r\ntokens_per_node:{}\r\nconsistency:{:?}\r\n",
            config.replicas, config.read_quorum, config.write_quorum, config.tokens_per_node, config.consistency
        );
        let ring: String = self
            .handle
            .ring
            .tokens()
            .iter()
            .enumerate()
            .map(|(index, token)| {
                format!(
                    "token_{index}:position={},node={}\r\n",
                    dynamo_core::ring::position_hex(&token.position),
                    self.handle.ring.name(token.node)
                )
            })
            .collect();
        let peers: String = file
            .nodes
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != self.handle.id.index())
            .map(|(index, node)| {
                let state = if suspected.get(index).copied().unwrap_or(false) { "suspected" } else { "trusted" };
                format!("peer_{}:ws={},state={state}\r\n", node.name, node.ws)
            })
            .collect();
        let sections = [("Server", server), ("Replication", replication), ("Ring", ring), ("Peers", peers)];
        let named = |name: &str| wanted.iter().any(|wanted| wanted.eq_ignore_ascii_case(name.as_bytes()));
        let all = wanted.is_empty() || ["all", "default", "everything"].into_iter().any(named);
        let mut text = String::new();
        for (name, body) in sections {
            if all || named(name) {
                if !text.is_empty() {
                    text.push_str("\r\n");
                }
                text.push_str(&format!("# {name}\r\n{body}"));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(parser: &mut Parser) -> Vec<Parsed> {
        let mut all = Vec::new();
        while let Some(parsed) = parser.next().expect("valid input") {
            all.push(parsed);
        }
        all
    }

    fn command(words: &[&str]) -> Parsed {
        Parsed::Command(words.iter().map(|word| word.as_bytes().to_vec()).collect())
    }

    #[test]
    fn parses_pipelined_arrays_and_inline_commands_in_any_chunking() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for chunk in 1..input.len() {
            let mut parser = Parser::new(1024);
            let mut all = Vec::new();
            for piece in input.chunks(chunk) {
                parser.feed(piece);
                all.extend(parse_all(&mut parser));
            }
            assert_eq!(all, vec![command(&["SET", "k", "hello"]), command(&["PING"]), command(&["GET", "k"])]);
        }
    }

    #[test]
    fn an_oversized_argument_is_skipped_and_the_next_command_still_parses() {
        let mut parser = Parser::new(4);
        parser.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456");
        assert_eq!(parse_all(&mut parser), vec![]);
        parser.feed(b"789\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(parse_all(&mut parser), vec![Parsed::Oversized(10), command(&["PING"])]);
        let mut parser = Parser::new(4);
        parser.feed(b"*3\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n$2\r\nab\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(parse_all(&mut parser), vec![Parsed::Oversized(10), command(&["PING"])]);
    }

    #[test]
    fn malformed_input_is_a_protocol_error() {
        for bad in [&b"*2\r\n$3\r\nGET\r\n:5\r\n"[..], b"*x\r\n", b"*1\r\n$3\r\nGETX\r\n", b"*1\r\n$-5\r\n"] {
            let mut parser = Parser::new(1024);
            parser.feed(bad);
            assert!(parser.next().is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn replies_encode_for_resp2_and_resp3() {
        let encode = |reply: Reply, protocol| {
            let mut out = Vec::new();
            reply.encode(protocol, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(encode(Reply::Null, 2), "$-1\r\n");
        assert_eq!(encode(Reply::Null, 3), "_\r\n");
        let map = Reply::Map(vec![(Reply::text("proto"), Reply::Integer(3))]);
        assert_eq!(encode(map.clone(), 3), "%1\r\n$5\r\nproto\r\n:3\r\n");
        assert_eq!(encode(map, 2), "*2\r\n$5\r\nproto\r\n:3\r\n");
        assert_eq!(encode(Reply::Error("ERR a\r\nb".into()), 2), "-ERR a  b\r\n");
    }

    #[test]
    fn inline_commands_split_like_redis_sdssplitargs() {
        let check = |line: &str, expected: &[&[u8]]| {
            let words = split_arguments(line.as_bytes()).expect(line);
            assert_eq!(words, expected.iter().map(|word| word.to_vec()).collect::<Vec<_>>(), "{line:?}");
        };
        check("SET inl \"a b\"", &[b"SET", b"inl", b"a b"]);
        check("ECHO \"a\\x41\"", &[b"ECHO", b"aA"]);
        check("ECHO \"\\n\\r\\t\\b\\a\\\\\\\"\\q\"", &[b"ECHO", b"\n\r\t\x08\x07\\\"q"]);
        check("ECHO \"\\x4\"", &[b"ECHO", b"x4"]);
        check("ECHO 'a\\'b'", &[b"ECHO", b"a'b"]);
        check("ECHO 'a\\nb'", &[b"ECHO", b"a\\nb"]);
        check("  GET\tk  ", &[b"GET", b"k"]);
        check("ECHO \"\" ''", &[b"ECHO", b"", b""]);
        check("ECHO a\"b c\"", &[b"ECHO", b"ab c"]);
        check("", &[]);
        for bad in ["ECHO \"abc", "ECHO 'abc", "ECHO \"abc\"d", "ECHO 'a'b", "ECHO \"a\\\""] {
            assert_eq!(split_arguments(bad.as_bytes()), Err(ProtocolError("unbalanced quotes in request")), "{bad:?}");
        }
    }

    #[test]
    fn empty_requests_are_ignored_and_unknown_commands_are_named_as_redis_does() {
        let mut parser = Parser::new(1024);
        parser.feed(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(parse_all(&mut parser), vec![command(&["PING"])]);
        let args = |words: &[&str]| words.iter().map(|word| word.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(unknown_command(&args(&["x"])), "ERR unknown command 'x', with args beginning with: ");
        assert_eq!(
            unknown_command(&args(&["foo", "a", "b"])),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        let long = "y".repeat(200);
        let text = unknown_command(&args(&["foo", &long, "z"]));
        assert_eq!(text, format!("ERR unknown command 'foo', with args beginning with: '{}' ", "y".repeat(128)));
    }

    #[test]
    fn flush_takes_only_no_argument_async_or_sync() {
        let args = |words: &[&str]| words.iter().map(|word| word.as_bytes().to_vec()).collect::<Vec<_>>();
        for good in [&[][..], &["ASYNC"], &["sync"], &["Async"]] {
            assert!(flush_arguments_valid(&args(good)), "{good:?}");
        }
        for bad in [&["bogus"][..], &["ASYNC", "x"], &["SYNC", "SYNC"], &[""], &["ASYNCX"]] {
            assert!(!flush_arguments_valid(&args(bad)), "{bad:?}");
        }
    }

    #[test]
    fn glob_matches_like_redis() {
        assert!(glob(b"*", b"anything"));
        assert!(glob(b"k?y", b"key"));
        assert!(glob(b"user:*:name", b"user:42:name"));
        assert!(!glob(b"user:*:name", b"user:42:mail"));
        assert!(glob(b"h[ae]llo", b"hallo") && !glob(b"h[ae]llo", b"hillo"));
        assert!(glob(b"h[^e]llo", b"hallo") && !glob(b"h[^e]llo", b"hello"));
        assert!(glob(b"h[a-c]llo", b"hbllo"));
        assert!(glob(b"a\\*b", b"a*b") && !glob(b"a\\*b", b"axb"));
        assert!(!glob(b"", b"x") && glob(b"", b""));
    }
}
