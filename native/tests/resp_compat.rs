//! Where the RESP port must answer as redis-server 7 does, checked against a real five-process
//! cluster: through the `redis` client library, and byte for byte over raw sockets where the
//! exact reply (or its timing) is the point.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redis::Commands;
use support::Cluster;

fn raw(cluster: &Cluster, node: usize) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", cluster.nodes[node].resp)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

/// Reads until `expected` bytes arrived (or the connection closed or timed out) and returns
/// them as text.
fn read_exactly(stream: &mut TcpStream, expected: usize) -> String {
    let mut answer = Vec::new();
    let mut buffer = vec![0u8; 4096];
    while answer.len() < expected {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Writes `request` in one piece and reads exactly `expected.len()` bytes back.
fn exchange(stream: &mut TcpStream, request: &[u8], expected: &str) {
    stream.write_all(request).unwrap();
    assert_eq!(read_exactly(stream, expected.len()), expected, "reply to {:?}", String::from_utf8_lossy(request));
}

fn dbsize(connection: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(connection).expect("DBSIZE")
}

#[test]
fn flush_with_a_bad_argument_is_a_syntax_error_and_deletes_nothing() {
    let cluster = Cluster::start("respflush");
    let mut c = cluster.redis(0, false);
    let _: () = c.set("kept", "1").unwrap();
    let mut stream = raw(&cluster, 0);
    for command in ["FLUSHALL bogus", "FLUSHDB bogus", "FLUSHALL ASYNC x", "FLUSHDB SYNC SYNC", "FLUSHALL ASYNCX"] {
        exchange(&mut stream, format!("{command}\r\n").as_bytes(), "-ERR syntax error\r\n");
        assert_eq!(dbsize(&mut c), 1, "{command} deleted keys");
    }
    exchange(&mut stream, b"FLUSHDB async\r\n", "+OK\r\n");
    assert_eq!(dbsize(&mut c), 0);
    let _: () = c.set("again", "1").unwrap();
    exchange(&mut stream, b"FLUSHALL SYNC\r\n", "+OK\r\n");
    assert_eq!(dbsize(&mut c), 0);
}

/// Reads until `count` lines (each ending in CRLF) arrived; fewer when the connection closes
/// or the read times out.
fn read_lines(stream: &mut TcpStream, count: usize) -> Vec<String> {
    let mut answer = Vec::new();
    let mut buffer = vec![0u8; 4096];
    while answer.windows(2).filter(|pair| pair == b"\r\n").count() < count {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    String::from_utf8_lossy(&answer).split_terminator("\r\n").map(str::to_string).collect()
}

#[test]
fn nothing_sent_after_a_refused_multi_runs() {
    let cluster = Cluster::start("respmulti");
    let mut c = cluster.redis(0, false);
    // What redis-py's default pipeline writes at once.
    let mut stream = raw(&cluster, 0);
    stream.write_all(b"MULTI\r\nSET tx1 a\r\nDEL kept\r\nEXEC\r\nGET tx1\r\n").unwrap();
    let lines = read_lines(&mut stream, 5);
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines[0].starts_with("-ERR transactions are not supported"), "{lines:?}");
    assert!(lines[1].starts_with("-ERR not executed") && lines[2].starts_with("-ERR not executed"), "{lines:?}");
    assert!(lines[3].starts_with("-EXECABORT"), "{lines:?}");
    assert_eq!(lines[4], "$-1", "EXEC left the refused state and tx1 was never written");
    // DISCARD leaves the state too, and what follows runs again.
    let _: () = c.set("kept", "1").unwrap();
    stream.write_all(b"MULTI\r\nDEL kept\r\nDISCARD\r\nEXISTS kept\r\nEXEC\r\nDISCARD\r\n").unwrap();
    let lines = read_lines(&mut stream, 6);
    assert!(lines[1].starts_with("-ERR not executed"), "{lines:?}");
    assert_eq!(lines[2..], ["+OK", ":1", "-ERR EXEC without MULTI", "-ERR DISCARD without MULTI"]);
    // A client library's atomic pipeline fails as a whole and leaves nothing behind.
    let result: redis::RedisResult<()> = redis::pipe().atomic().set("tx2", "b").del("kept").query(&mut c);
    assert!(result.is_err());
    let tx2: Option<String> = c.get("tx2").unwrap();
    assert_eq!(tx2, None);
    let kept: Option<String> = c.get("kept").unwrap();
    assert_eq!(kept.as_deref(), Some("1"));
    for command in ["WATCH kept", "UNWATCH"] {
        stream.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let lines = read_lines(&mut stream, 1);
        assert!(lines[0].starts_with("-ERR") && lines[0].contains("not supported"), "{lines:?}");
    }
}

/// The index of the node called `name`.
fn node_index(cluster: &Cluster, name: &str) -> usize {
    cluster.nodes.iter().position(|node| node.name == name).expect("a node of the cluster")
}

#[test]
fn replies_ahead_of_a_slow_request_are_not_held_back() {
    let mut cluster = Cluster::start("respflushearly");
    // Two of the key's three homes down: no write quorum, so SET waits out the operation
    // timeout (1 s) before it answers -ERR unavailable.
    let owners: Vec<String> = redis::cmd("DYN.OWNERS").arg("q3").query(&mut cluster.redis(0, false)).unwrap();
    let homes: Vec<usize> = owners[..3].iter().map(|name| node_index(&cluster, name)).collect();
    let via = (0..5).find(|index| !homes[..2].contains(index)).expect("a node that stays up");
    cluster.kill(homes[0]);
    cluster.kill(homes[1]);
    let mut stream = raw(&cluster, via);
    let start = Instant::now();
    stream.write_all(b"PING\r\nSET q3 y\r\nPING\r\n").unwrap();
    let mut first = [0u8; 7];
    stream.read_exact(&mut first).unwrap();
    let first_at = start.elapsed();
    let rest = read_lines(&mut stream, 2);
    let slow_at = start.elapsed();
    assert_eq!(&first, b"+PONG\r\n");
    assert!(rest[0].starts_with("-ERR unavailable") && rest[1] == "+PONG", "{rest:?}");
    assert!(slow_at > Duration::from_millis(500), "the SET was slow, as this test needs ({slow_at:?})");
    assert!(first_at < Duration::from_millis(200), "the first PONG came after {first_at:?}, the SET after {slow_at:?}");
}

/// Average time of one request of `command` on a key, then `rest`, sent alone (its reply
/// awaited before the next).
fn one_at_a_time(c: &mut redis::Connection, command: &str, rest: &[&str]) -> Duration {
    let rounds = 100;
    let start = Instant::now();
    for i in 0..rounds {
        let _: redis::Value = redis::cmd(command).arg(format!("calibrate{i}")).arg(rest).query(c).unwrap();
    }
    start.elapsed() / rounds
}

#[test]
fn multi_key_commands_run_their_keys_side_by_side() {
    let cluster = Cluster::start("respmultikey");
    let mut c = cluster.redis(0, false);
    let count = 3000;
    let keys: Vec<String> = (0..count).map(|i| format!("many{i}")).collect();
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.set(key, "v").ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();

    // Counted as Redis counts: EXISTS every time a key is named, DEL each key once.
    let exists: i64 = redis::cmd("EXISTS").arg("many0").arg("many0").arg("absent").arg("many1").query(&mut c).unwrap();
    assert_eq!(exists, 3);
    let values: Vec<Option<String>> = redis::cmd("MGET").arg("many1").arg("absent").arg("many0").query(&mut c).unwrap();
    assert_eq!(values, [Some("v".to_string()), None, Some("v".to_string())]);
    let deleted: i64 = redis::cmd("DEL").arg("many0").arg("many0").arg("absent").query(&mut c).unwrap();
    assert_eq!(deleted, 1);

    // One at a time, EXISTS of `count` keys would take `count` reads; side by side a fraction.
    let read = one_at_a_time(&mut c, "GET", &[]);
    let start = Instant::now();
    let exists: i64 = redis::cmd("EXISTS").arg(&keys).query(&mut c).unwrap();
    let took = start.elapsed();
    assert_eq!(exists, count - 1);
    assert!(took < read * count as u32 / 4, "EXISTS of {count} keys took {took:?}, one read {read:?}");
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
    assert_eq!(values.iter().filter(|value| value.as_deref() == Some("v")).count() as i64, count - 1);
    assert_eq!(values[0], None, "replies in the order of the keys");

    let write = one_at_a_time(&mut c, "SET", &["v"]);
    let start = Instant::now();
    let deleted: i64 = redis::cmd("DEL").arg(&keys).query(&mut c).unwrap();
    let took = start.elapsed();
    assert_eq!(deleted, count - 1);
    assert!(took < write * count as u32 / 4, "DEL of {count} keys took {took:?}, one write {write:?}");
    assert_eq!(dbsize(&mut c), 100, "only the calibration keys are left");
}

#[test]
fn inline_commands_honour_quotes_and_refuse_unbalanced_ones() {
    let cluster = Cluster::start("respinline");
    let mut stream = raw(&cluster, 0);
    exchange(&mut stream, b"SET inl \"a b\"\r\nGET inl\r\n", "+OK\r\n$3\r\na b\r\n");
    exchange(&mut stream, b"ECHO \"a\\x41\" 'it\\'s'\r\n", "-ERR wrong number of arguments for 'echo' command\r\n");
    exchange(&mut stream, b"ECHO \"a\\x41\"\r\n", "$2\r\naA\r\n");
    let closing = "-ERR protocol error: unbalanced quotes in request\r\n";
    exchange(&mut stream, b"SET inl \"abc\r\n", closing);
    assert_eq!(read_exactly(&mut stream, 1), "", "the connection is closed");
    let mut c = cluster.redis(0, false);
    let kept: String = c.get("inl").unwrap();
    assert_eq!(kept, "a b", "the unbalanced SET did not run");
}

#[test]
fn scan_type_ttl_and_time_answer_as_tools_expect() {
    let cluster = Cluster::start("respscan");
    let mut c = cluster.redis(0, false);
    for i in 0..25 {
        let _: () = c.set(format!("scan:{i}"), "v").unwrap();
    }
    let _: () = c.set("other", "v").unwrap();
    // What redis-py's scan_iter and `redis-cli --scan` do: follow the cursor until it is 0.
    let mut found: Vec<String> = c.scan_match("scan:*").unwrap().collect();
    found.sort();
    let mut expected: Vec<String> = (0..25).map(|i| format!("scan:{i}")).collect();
    expected.sort();
    assert_eq!(found, expected);
    let (cursor, keys): (String, Vec<String>) =
        redis::cmd("SCAN").arg("0").arg("COUNT").arg(5).arg("TYPE").arg("string").query(&mut c).unwrap();
    assert_eq!((cursor.as_str(), keys.len()), ("0", 26));
    let (_, keys): (String, Vec<String>) = redis::cmd("SCAN").arg("0").arg("TYPE").arg("list").query(&mut c).unwrap();
    assert!(keys.is_empty());
    let mut stream = raw(&cluster, 0);
    exchange(&mut stream, b"SCAN 17\r\n", "-ERR invalid cursor\r\n");
    exchange(&mut stream, b"SCAN abc\r\n", "-ERR invalid cursor\r\n");
    exchange(&mut stream, b"SCAN 0 MATCH\r\n", "-ERR syntax error\r\n");
    exchange(&mut stream, b"SCAN 0 COUNT x\r\n", "-ERR value is not an integer or out of range\r\n");
    exchange(&mut stream, b"SCAN 0 COUNT 0\r\n", "-ERR syntax error\r\n");
    exchange(&mut stream, b"TYPE other\r\nTYPE absent\r\n", "+string\r\n+none\r\n");
    exchange(&mut stream, b"TTL other\r\nPTTL other\r\nTTL absent\r\nPTTL absent\r\n", ":-1\r\n:-1\r\n:-2\r\n:-2\r\n");
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query(&mut c).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(seconds.abs_diff(now) < 5 && micros < 1_000_000, "{seconds} {micros}");
}

#[test]
fn small_replies_match_redis_byte_for_byte() {
    let cluster = Cluster::start("respsmall");
    let mut stream = raw(&cluster, 0);
    exchange(&mut stream, b"*-1\r\n*0\r\nPING\r\n", "+PONG\r\n");
    exchange(&mut stream, b"FOO a b\r\n", "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n");
    exchange(&mut stream, b"HELLO abc\r\n", "-ERR Protocol version is not an integer or out of range\r\n");
    exchange(&mut stream, b"HELLO 4\r\n", "-NOPROTO unsupported protocol version\r\n");
}

/// Found in review: `INFO <section>` returned everything, and clients that parse INFO into a map
/// (redis-py) kept only the last of the repeated `peer:` lines.
#[test]
fn info_answers_the_sections_asked_for_with_a_field_per_peer() {
    let cluster = Cluster::start("respinfo");
    let mut c = cluster.redis(0, false);
    let info = |c: &mut redis::Connection, sections: &[&str]| -> String {
        redis::cmd("INFO").arg(sections).query(c).expect("INFO")
    };
    let all = info(&mut c, &[]);
    for header in ["# Server\r\n", "# Replication\r\n", "# Ring\r\n", "# Peers\r\n"] {
        assert!(all.contains(header), "{all}");
    }
    assert_eq!(info(&mut c, &["everything"]), all);
    let replication = info(&mut c, &["REPLICATION"]);
    assert!(replication.starts_with("# Replication\r\n") && replication.contains("read_quorum:2\r\n"), "{replication}");
    assert!(!replication.contains("# Server"), "{replication}");
    assert_eq!(info(&mut c, &["nosuchsection"]), "");
    let two = info(&mut c, &["server", "peers"]);
    assert!(two.contains("node:5554\r\n") && two.contains("# Peers") && !two.contains("# Ring"), "{two}");
    for peer in ["5556", "5558", "5560", "5562"] {
        assert!(two.contains(&format!("peer_{peer}:ws=127.0.0.1:")), "{two}");
    }
    assert!(two.contains(",state=trusted\r\n"), "{two}");
    let ring = info(&mut c, &["ring"]);
    assert_eq!(ring.matches("token_").count(), 5, "one token per node by default: {ring}");
    assert!(ring.starts_with("# Ring\r\nepoch:1\r\n"), "a new cluster's first layout: {ring}");
}
