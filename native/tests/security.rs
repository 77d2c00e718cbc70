//! What keeps a cluster safe from the web pages in its user's browser and from whoever reaches
//! its ports: cross-protocol requests refused, DNS-rebinding `Host`s refused, foreign `Origin`s
//! refused. (Passwords, protected mode and TLS: `auth.rs`, `tls.rs`.)

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use redis::Commands;
use support::Cluster;

/// Sends `bytes` on a fresh RESP connection to node `index` and returns what came back before
/// the connection closed (or 2 s passed).
fn exchange(cluster: &Cluster, index: usize, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", cluster.nodes[index].resp)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (answer, true),
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
            Err(_) => return (answer, false),
        }
    }
}

/// Found as a new user would (2026-12-03): `curl -X POST --data-binary $'SET pwned yes\r\nFLUSHALL\r\n'
/// http://127.0.0.1:6554/` emptied the store, and any web page the user visits can send the same
/// with `fetch(..., {method: 'POST', mode: 'no-cors', body})`. Redis closes the connection on a
/// `POST` or `Host:` command before anything after it runs; so does the RESP port now.
#[test]
fn an_http_post_to_the_resp_port_runs_nothing_and_is_logged() {
    let cluster = Cluster::start("sec-post");
    let mut c = cluster.redis(0, false);
    let _: () = c.set("kept", "1").unwrap();
    let body = "SET pwned yes\r\nFLUSHALL\r\n";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: curl/8\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        cluster.nodes[0].resp,
        body.len()
    );
    let (answer, closed) = exchange(&cluster, 0, request.as_bytes());
    assert!(closed, "the connection is closed");
    assert!(answer.is_empty(), "nothing is answered: {:?}", String::from_utf8_lossy(&answer));
    assert_eq!(c.get::<_, Option<String>>("kept").unwrap().as_deref(), Some("1"), "FLUSHALL did not run");
    assert_eq!(c.get::<_, Option<String>>("pwned").unwrap(), None, "the SET did not run");
    let log = std::fs::read_to_string(cluster.dir.join("5554.log")).unwrap();
    assert!(
        log.contains("possible security attack") && log.contains("address=127.0.0.1:"),
        "a warning names the peer address:\n{log}"
    );
}

/// As in Redis: any case, inline or as a RESP array, `Host:` as well as `POST`, and commands
/// before it in the same read run but get no reply (the connection is aborted at once).
#[test]
fn post_or_host_in_any_form_closes_the_connection_at_once() {
    let cluster = Cluster::start("sec-forms");
    let mut c = cluster.redis(1, false);
    for bytes in [
        &b"post / HTTP/1.1\r\n"[..],
        b"Host: example.com\r\n",
        b"HOST: x\r\nSET after 1\r\n",
        b"*1\r\n$4\r\npOsT\r\n*3\r\n$3\r\nSET\r\n$5\r\nafter\r\n$1\r\n1\r\n",
        b"*2\r\n$5\r\nhost:\r\n$1\r\nx\r\n",
    ] {
        let (answer, closed) = exchange(&cluster, 1, bytes);
        assert!(closed && answer.is_empty(), "{:?} got {:?}", String::from_utf8_lossy(bytes), answer);
    }
    assert_eq!(c.get::<_, Option<String>>("after").unwrap(), None, "nothing after it ran");
    // Earlier commands of the same read ran, but their replies were not sent.
    let (answer, closed) = exchange(&cluster, 1, b"SET before 1\r\nPING\r\nPOST / HTTP/1.1\r\n");
    assert!(closed && answer.is_empty(), "{answer:?}");
    assert_eq!(c.get::<_, Option<String>>("before").unwrap().as_deref(), Some("1"));
    // `Host:` elsewhere than first, and words that only look alike, are ordinary.
    let (answer, _) = exchange(&cluster, 1, b"*3\r\n$3\r\nSET\r\n$5\r\nHost:\r\n$1\r\nx\r\nQUIT\r\n");
    assert_eq!(answer, b"+OK\r\n+OK\r\n");
    let (answer, _) = exchange(&cluster, 1, b"Host x\r\nQUIT\r\n");
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "-ERR unknown command 'Host', with args beginning with: 'x' \r\n+OK\r\n"
    );
}
