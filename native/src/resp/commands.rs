//! The RESP command table: what each Redis command a client sends does, as single-key requests,
//! `@` / `*` queries and bulk deletes of the node, and the replies Redis tools expect (`INFO`,
//! `HELLO`, `CLIENT`, `CONFIG GET`, ...), byte for byte where clients depend on the text.

use std::collections::BTreeSet;

use dynamo_core::message::{ClientError, ClientOp, ClientReply};
use dynamo_core::ring::position_hex;
use dynamo_core::types::Blob;

use super::codec::{glob, Reply};
use super::Connection;

impl Connection {
    pub(super) async fn execute(&mut self, arguments: Vec<Vec<u8>>) -> Reply {
        let name = String::from_utf8_lossy(&arguments[0]).to_uppercase();
        let args = &arguments[1..];
        let key = |index: usize| Blob::new(&args[index]);
        // Redis's order: an unknown command or a wrong argument count is said even to a client
        // that has not authenticated; everything else waits for AUTH.
        let Some((least, most)) = arguments_allowed(&name) else { return Reply::Error(unknown_command(&arguments)) };
        if args.len() < least || most.is_some_and(|most| args.len() > most) {
            return wrong_arity(&name);
        }
        if !self.authenticated && !matches!(name.as_str(), "AUTH" | "HELLO" | "QUIT") {
            return Reply::Error("NOAUTH Authentication required.".into());
        }
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
                let ring = self.handle.ring();
                Reply::Array(ring.preference(&args[0]).iter().map(|node| Reply::text(ring.name(*node))).collect())
            }
            ("DYN.RING", 0) => {
                let ring = self.handle.ring();
                let token = |token: &dynamo_core::ring::Token| {
                    Reply::Array(vec![Reply::text(&position_hex(&token.position)), Reply::text(ring.name(token.node))])
                };
                Reply::Array(ring.tokens().iter().map(token).collect())
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
            ("AUTH", _) => self.auth(args),
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
            // `arguments_allowed` let through a count no arm above takes.
            _ => wrong_arity(&name),
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

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`, in Redis's order: the version is
    /// checked first, then the options from left to right (an `AUTH` takes effect at once, even
    /// if a later option is wrong), then whether the client is authenticated, and only then the
    /// protocol switches.
    fn hello(&mut self, args: &[Vec<u8>]) -> Reply {
        let mut protocol = self.protocol;
        if let Some(version) = args.first() {
            match std::str::from_utf8(version).ok().and_then(|text| text.parse::<i64>().ok()) {
                Some(version @ (2 | 3)) => protocol = version as u8,
                Some(_) => return Reply::Error("NOPROTO unsupported protocol version".into()),
                None => return Reply::Error("ERR Protocol version is not an integer or out of range".into()),
            }
        }
        let mut index = 1;
        while index < args.len() {
            let option = &args[index];
            if option.eq_ignore_ascii_case(b"AUTH") && index + 2 < args.len() {
                if let Err(refusal) = self.authenticate(Some(&args[index + 1]), &args[index + 2]) {
                    return refusal;
                }
                index += 3;
            } else if option.eq_ignore_ascii_case(b"SETNAME") && index + 1 < args.len() {
                self.name = Some(args[index + 1].clone());
                index += 2;
            } else {
                return Reply::Error(format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(option)));
            }
        }
        if !self.authenticated {
            return Reply::Error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH \
                 <user> <pass> option can be used to authenticate the client and select the RESP protocol version \
                 at the same time"
                    .into(),
            );
        }
        self.protocol = protocol;
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

    /// `AUTH password` or `AUTH default password`, as Redis answers them with `requirepass`
    /// (and without: then `AUTH default anything` passes and `AUTH password` is an error).
    fn auth(&mut self, args: &[Vec<u8>]) -> Reply {
        let (user, password) = match args {
            [password] => (None, password),
            [user, password] => (Some(user.as_slice()), password),
            _ => return Reply::Error("ERR syntax error".into()),
        };
        match self.authenticate(user, password) {
            Ok(()) => Reply::ok(),
            Err(refusal) => refusal,
        }
    }

    /// Checks a user (only `default` exists) and password; authenticates the connection on
    /// success. A failure never unauthenticates a connection that was (as in Redis), and a
    /// client that keeps failing is logged.
    fn authenticate(&mut self, user: Option<&[u8]>, password: &[u8]) -> Result<(), Reply> {
        let expected = self.handle.file.password.as_deref();
        let passed = match (user, expected) {
            (None, None) => {
                return Err(Reply::Error(
                    "ERR AUTH <password> called without any password configured for the default user. Are you \
                     sure your configuration is correct?"
                        .into(),
                ))
            }
            (Some(user), _) if user != b"default" => false,
            (Some(_), None) => true,
            (_, Some(expected)) => crate::password::matches(password, expected),
        };
        if passed {
            self.authenticated = true;
            return Ok(());
        }
        self.failed_auths += 1;
        crate::password::log_failure(self.address, "resp", self.failed_auths);
        Err(Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into()))
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
        server.push_str(&format!("admission:{}\r\n", self.handle.standing()));
        let replication = format!(
            "replicas:{}\r\nread_quorum:{}\r\nwrite_quorum:{}\r\ntokens_per_node:{}\r\nconsistency:{:?}\r\n",
            config.replicas, config.read_quorum, config.write_quorum, config.tokens_per_node, config.consistency
        );
        let current = self.handle.ring();
        let tokens: String = current
            .tokens()
            .iter()
            .enumerate()
            .map(|(index, token)| {
                format!(
                    "token_{index}:position={},node={}\r\n",
                    position_hex(&token.position),
                    current.name(token.node)
                )
            })
            .collect();
        let ring = format!("epoch:{}\r\n{tokens}", self.handle.epoch());
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

/// How many arguments (after the name) each command takes, at least and at most; `None` for a
/// command this port does not know. Checked before anything else, as Redis does.
fn arguments_allowed(name: &str) -> Option<(usize, Option<usize>)> {
    const ANY: Option<usize> = None;
    Some(match name {
        "PING" => (0, Some(1)),
        "ECHO" | "GET" | "KEYS" | "TYPE" | "TTL" | "PTTL" | "DYN.OWNERS" | "SELECT" => (1, Some(1)),
        "SET" => (2, ANY),
        "DEL" | "UNLINK" | "EXISTS" | "MGET" | "SCAN" | "CLIENT" | "CONFIG" | "AUTH" | "WATCH" => (1, ANY),
        "TIME" | "DBSIZE" | "DYN.LOCAL" | "DYN.FLUSHLOCAL" | "DYN.RING" | "MULTI" | "EXEC" | "DISCARD" | "UNWATCH" => {
            (0, Some(0))
        }
        "FLUSHALL" | "FLUSHDB" | "INFO" | "HELLO" | "COMMAND" | "QUIT" => (0, ANY),
        _ => return None,
    })
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

pub(super) fn error_reply(error: &ClientError) -> Reply {
    Reply::Error(format!("ERR {error}"))
}

#[cfg(test)]
mod tests {
    use super::super::codec::{Parsed, Parser};
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
}
