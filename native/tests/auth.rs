//! Client authentication, Redis's way: `requirepass` in the cluster file, `AUTH`, `HELLO ...
//! AUTH`, `-NOAUTH` until then, the same password on the WebSocket API; and protected mode,
//! which refuses a node reachable from other machines without one. The refusals are checked
//! byte for byte against Debian's redis-server 7 started beside the cluster (`./dev test`
//! installs it).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Commands;
use support::{free_ports, Cluster};
use tokio_tungstenite::tungstenite::{self, Message};

const PASSWORD: &str = "s3cret-for-tests";

fn protected(test: &str) -> Cluster {
    Cluster::start_with(test, &format!("requirepass = \"{PASSWORD}\"\n"))
}

/// A redis-server on a free port of 127.0.0.1, with `requirepass` or without, stopped on drop.
struct RedisServer {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl RedisServer {
    fn start(password: Option<&str>) -> RedisServer {
        let port = free_ports(1)[0];
        let dir = std::env::temp_dir().join(format!("dynamo-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new("redis-server");
        command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        command.arg("--dir").arg(&dir);
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect(
            "redis-server runs beside the cluster for these comparisons: install Debian's redis-server \
             (./dev test does)",
        );
        let server = RedisServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// RESP array of `words`.
fn array(words: &[&str]) -> Vec<u8> {
    let mut bytes = format!("*{}\r\n", words.len()).into_bytes();
    for word in words {
        bytes.extend_from_slice(format!("${}\r\n{word}\r\n", word.len()).as_bytes());
    }
    bytes
}

/// Sends `requests` in one write on a fresh connection and reads `lines` lines back.
fn exchange(port: u16, requests: &[Vec<u8>], lines: usize) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    stream.write_all(&requests.concat()).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while answer.windows(2).filter(|pair| pair == b"\r\n").count() < lines {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// What an unauthenticated client gets, and what AUTH answers, byte for byte as redis-server 7
/// with `requirepass` answers (the HELLO maps themselves differ: server, version and id).
#[test]
fn refusals_match_redis_server_with_requirepass_byte_for_byte() {
    let cluster = protected("auth-texts");
    let redis = RedisServer::start(Some(PASSWORD));
    let ours = cluster.nodes[0].resp;
    let auth_ok = array(&["AUTH", PASSWORD]);
    let cases: Vec<(Vec<Vec<u8>>, usize)> = vec![
        (vec![array(&["GET", "k"])], 1),
        (vec![array(&["SET", "k", "v"])], 1),
        (vec![array(&["PING"])], 1),
        (vec![array(&["PING", "hi"])], 1),
        (vec![array(&["ECHO", "x"])], 1),
        (vec![array(&["CLIENT", "ID"])], 1),
        (vec![array(&["CLIENT", "SETNAME", "x"])], 1),
        (vec![array(&["COMMAND"])], 1),
        (vec![array(&["INFO"])], 1),
        (vec![array(&["SELECT", "1"])], 1),
        (vec![array(&["MULTI"])], 1),
        (vec![array(&["HELLO"])], 1),
        (vec![array(&["HELLO", "3"])], 1),
        (vec![array(&["HELLO", "2"])], 1),
        (vec![array(&["HELLO", "3", "SETNAME", "foo"])], 1),
        (vec![array(&["HELLO", "3", "AUTH", "default", "wrong"])], 1),
        (vec![array(&["HELLO", "3", "AUTH", "nouser", PASSWORD])], 1),
        (vec![array(&["HELLO", "3", "AUTH", "default"])], 1),
        (vec![array(&["HELLO", "4"])], 1),
        (vec![array(&["HELLO", "x"])], 1),
        (vec![array(&["HELLO", "AUTH", "default", PASSWORD])], 1),
        (vec![array(&["AUTH", "wrong"])], 1),
        (vec![array(&["AUTH", "default", "wrong"])], 1),
        (vec![array(&["AUTH", ""])], 1),
        (vec![array(&["AUTH", "default", ""])], 1),
        (vec![array(&["AUTH", "a", "b", "c"])], 1),
        (vec![array(&["AUTH"])], 1),
        (vec![array(&["AUTH", "otheruser", PASSWORD])], 1),
        (vec![array(&["FOO"])], 1),
        (vec![array(&["FOO", "bar"])], 1),
        (vec![array(&["GET"])], 1),
        (vec![array(&["SET", "k"])], 1),
        (vec![array(&["CLIENT"])], 1),
        (vec![array(&["QUIT"])], 1),
        // Inline, pipelined around an AUTH.
        (vec![b"GET a\r\n".to_vec(), format!("AUTH {PASSWORD}\r\n").into_bytes(), b"GET a\r\n".to_vec()], 3),
        // A failed AUTH after a good one does not log the client out.
        (vec![auth_ok.clone(), array(&["AUTH", "wrong"]), array(&["GET", "nokey"])], 3),
        (vec![auth_ok, array(&["AUTH", "default", "wrong"]), array(&["GET", "nokey"])], 3),
        // HELLO's AUTH takes effect even when a later option is wrong; a failed HELLO does not
        // switch the protocol; a wrong version fails before the AUTH is looked at.
        (vec![array(&["HELLO", "3", "AUTH", "default", PASSWORD, "FOO"]), array(&["GET", "nokey"])], 2),
        (vec![array(&["HELLO", "4", "AUTH", "default", PASSWORD]), array(&["GET", "nokey"])], 2),
    ];
    for (requests, lines) in cases {
        let expected = exchange(redis.port, &requests, lines);
        let got = exchange(ours, &requests, lines);
        let shown: Vec<String> = requests.iter().map(|request| String::from_utf8_lossy(request).into_owned()).collect();
        assert_eq!(got, expected, "answers to {shown:?}");
    }
}

/// Without `requirepass`, AUTH answers as redis-server without one: the password form is an
/// error, `AUTH default <anything>` passes.
#[test]
fn without_a_password_auth_answers_as_redis_server_without_one() {
    let cluster = Cluster::start("auth-none");
    let redis = RedisServer::start(None);
    for words in [
        &["AUTH", "x"][..],
        &["AUTH", ""],
        &["AUTH", "default", "x"],
        &["AUTH", "default", ""],
        &["AUTH", "other", "x"],
        &["AUTH", "a", "b", "c"],
        &["HELLO", "3", "AUTH", "other", "x"],
    ] {
        let expected = exchange(redis.port, &[array(words)], 1);
        assert_eq!(exchange(cluster.nodes[2].resp, &[array(words)], 1), expected, "{words:?}");
    }
    let answer = exchange(cluster.nodes[2].resp, &[array(&["HELLO", "3", "AUTH", "default", "x"])], 1);
    assert!(answer.starts_with("%7\r\n"), "{answer:?}");
}

/// The `redis` crate authenticates as its URL says: `AUTH password` on RESP2, `HELLO 3 AUTH
/// default password` on RESP3; a wrong password is refused and an unauthenticated client can
/// do nothing.
#[test]
fn the_redis_crate_authenticates_over_resp2_and_resp3() {
    let cluster = protected("auth-crate");
    for resp3 in [false, true] {
        let mut c = cluster.redis(1, resp3);
        let key = format!("crate-{resp3}");
        let _: () = c.set(&key, "v").unwrap();
        assert_eq!(c.get::<_, String>(&key).unwrap(), "v");
    }
    let port = cluster.nodes[1].resp;
    let url = format!("redis://default:wrong@127.0.0.1:{port}/?protocol=resp3");
    let refused = redis::Client::open(url).unwrap().get_connection_with_timeout(Duration::from_secs(5));
    assert!(refused.is_err(), "a wrong password is refused");
    let mut anonymous =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().expect("connects");
    let error = anonymous.set::<_, _, ()>("k", "v").unwrap_err();
    assert_eq!(error.code(), Some("NOAUTH"), "{error}");
}

fn redis_cli(port: u16, arguments: &[&str]) -> (String, String) {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(arguments)
        .output()
        .expect("redis-cli (Debian's redis-tools; ./dev test installs it)");
    (
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    )
}

/// `redis-cli -a` (AUTH, RESP2) and `redis-cli -3 -a` (AUTH then HELLO 3) as users run it.
#[test]
fn redis_cli_authenticates_with_a_and_with_resp3() {
    let cluster = protected("auth-cli");
    let port = cluster.nodes[3].resp;
    assert_eq!(redis_cli(port, &["--no-auth-warning", "-a", PASSWORD, "SET", "cli", "yes"]).0, "OK");
    assert_eq!(redis_cli(port, &["--no-auth-warning", "-3", "-a", PASSWORD, "GET", "cli"]).0, "yes");
    assert_eq!(redis_cli(port, &["--user", "default", "--pass", PASSWORD, "--no-auth-warning", "GET", "cli"]).0, "yes");
    let (out, _) = redis_cli(port, &["GET", "cli"]);
    assert_eq!(out, "NOAUTH Authentication required.");
    let (out, err) = redis_cli(port, &["--no-auth-warning", "-a", "wrong", "GET", "cli"]);
    assert!(
        format!("{out}{err}").contains("WRONGPASS invalid username-password pair or user is disabled."),
        "{out} {err}"
    );
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

fn ask(socket: &mut Socket, request: serde_json::Value) -> serde_json::Value {
    socket.send(Message::Text(request.to_string())).unwrap();
    loop {
        if let Message::Text(text) = socket.read().unwrap() {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// The WebSocket API takes the same password: nothing before `{"op": "auth"}`, the same
/// refusals as RESP, and failures logged.
#[test]
fn the_websocket_api_takes_the_same_password_and_failures_are_logged() {
    let cluster = protected("auth-ws");
    let url = format!("ws://127.0.0.1:{}/client", cluster.nodes[0].ws);
    let (mut socket, _) = tungstenite::connect(url).unwrap();
    use serde_json::json;
    let refused = ask(&mut socket, json!({ "id": 1, "op": "put", "key": "k", "value": "v" }));
    assert_eq!(refused, json!({ "id": 1, "error": "NOAUTH Authentication required." }));
    assert_eq!(ask(&mut socket, json!({ "id": 2, "op": "subscribe" }))["error"], "NOAUTH Authentication required.");
    for id in 3..=5 {
        let wrong = ask(&mut socket, json!({ "id": id, "op": "auth", "password": "guess" }));
        assert_eq!(
            wrong,
            json!({ "id": id, "error": "WRONGPASS invalid username-password pair or user is disabled." })
        );
    }
    let other_user = ask(&mut socket, json!({ "id": 6, "op": "auth", "user": "admin", "password": PASSWORD }));
    assert!(other_user["error"].as_str().unwrap().starts_with("WRONGPASS"));
    assert_eq!(
        ask(&mut socket, json!({ "id": 7, "op": "auth", "password": PASSWORD })),
        json!({ "id": 7, "ok": true })
    );
    let put = ask(&mut socket, json!({ "id": 8, "op": "put", "key": "k", "value": "v" }));
    assert_eq!(put["reply"], "Written", "{put}");
    // RESP failures are logged too, with the client's address.
    let mut stream = TcpStream::connect(("127.0.0.1", cluster.nodes[0].resp)).unwrap();
    stream.write_all(&[array(&["AUTH", "guess"]), array(&["AUTH", "guess"])].concat()).unwrap();
    let mut answer = [0u8; 64];
    let _ = stream.read(&mut answer);
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(cluster.dir.join("5554.log")).unwrap();
    let failures: Vec<&str> = log.lines().filter(|line| line.contains("client authentication failed")).collect();
    assert!(failures.iter().any(|line| line.contains("port=\"ws\"") && line.contains("failures=3")), "{log}");
    assert!(failures.iter().any(|line| line.contains("port=\"resp\"") && line.contains("address=127.0.0.1:")), "{log}");
}

/// Protected mode: a node whose client ports listen beyond loopback, without a password, does
/// not start; one line says why and what to set, and exit code 2 says it is the file's fault.
#[test]
fn a_node_beyond_loopback_without_a_password_refuses_to_start() {
    let dir = std::env::temp_dir().join(format!("dynamo-protected-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ports = free_ports(10);
    let mut text = format!("data_dir = {:?}\n", dir.join("data"));
    for (index, name) in ["5554", "5556", "5558", "5560", "5562"].iter().enumerate() {
        let host = if index == 2 { "0.0.0.0" } else { "127.0.0.1" };
        text.push_str(&format!(
            "[[node]]\nname = \"{name}\"\nws = \"127.0.0.1:{}\"\nresp = \"{host}:{}\"\n",
            ports[2 * index],
            ports[2 * index + 1]
        ));
    }
    let file = dir.join("cluster.toml");
    std::fs::write(&file, &text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args(["node", "--config"])
        .arg(&file)
        .args(["--name", "5554"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("protected mode: node 5558 listens on 0.0.0.0:"), "{stderr}");
    assert!(stderr.contains("set requirepass (or password_file) and secret"), "{stderr}");
    assert!(!dir.join("data").exists(), "nothing was started");
    std::fs::remove_dir_all(&dir).unwrap();
}
