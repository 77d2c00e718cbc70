//! Where the RESP port must answer as redis-server 7 does, checked against a real five-process
//! cluster: through the `redis` client library, and byte for byte over raw sockets where the
//! exact reply (or its timing) is the point.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

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
