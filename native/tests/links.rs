//! The WebSocket port of a real cluster: peers that misbehave, and clients that send wrong
//! requests or knock on the wrong path.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::Cluster;
use tokio_tungstenite::tungstenite::{self, Message};

/// Found in review: a peer that completed the WebSocket handshake and then dropped the link (a
/// node with another cluster secret does exactly that) was dialed again at once, thousands of
/// times a second, each time with a log line on both sides.
#[test]
fn a_peer_that_drops_every_link_is_dialed_with_backoff() {
    let mut cluster = Cluster::start("dropping-peer");
    // 5562 is dialed by the four others (the lower index dials); an impostor takes its port.
    cluster.kill(4);
    let listener = TcpListener::bind(("127.0.0.1", cluster.nodes[4].ws)).expect("take over 5562's port");
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let mut handshakes = 0;
    while start.elapsed() < Duration::from_secs(3) {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                if let Ok(mut socket) = tungstenite::accept(stream) {
                    handshakes += 1;
                    // Read the hello, then drop the link, as a node refusing it does.
                    let _ = socket.read();
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(error) => panic!("accept: {error}"),
        }
    }
    // With a backoff doubling from 20 ms to 1 s, each of the four dialers comes back about
    // eight times in three seconds; without one, hundreds of times.
    assert!(handshakes >= 4, "the four dialers came at all: {handshakes}");
    assert!(handshakes <= 60, "{handshakes} handshakes in 3 s: no backoff");
    // The cluster still serves without 5562.
    let mut c = cluster.redis(0, false);
    let _: () = redis::cmd("SET").arg("still").arg("here").query(&mut c).unwrap();
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

fn client(cluster: &Cluster, path: &str) -> Result<Socket, String> {
    let url = format!("ws://127.0.0.1:{}{path}", cluster.nodes[0].ws);
    let (socket, _) = tungstenite::connect(url).map_err(|error| error.to_string())?;
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    Ok(socket)
}

fn ask(socket: &mut Socket, request: &str) -> serde_json::Value {
    socket.send(Message::Text(request.to_string())).unwrap();
    loop {
        match socket.read().unwrap() {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

#[test]
fn wrong_requests_are_answered_with_their_id_and_unknown_paths_are_refused() {
    let cluster = Cluster::start("ws-client");
    let mut socket = client(&cluster, "/client").unwrap();
    let answer = ask(&mut socket, r#"{"id": 10, "op": "nope"}"#);
    assert_eq!(answer["id"], 10, "{answer}");
    assert!(answer["error"].as_str().unwrap().starts_with("bad request"), "{answer}");
    let answer = ask(&mut socket, r#"{"id": "x", "op": "put", "key": "k"}"#);
    assert_eq!(answer["id"], "x", "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("value"), "{answer}");
    let answer = ask(&mut socket, "not json");
    assert!(answer["id"].is_null() && answer["error"].is_string(), "{answer}");
    // The connection still serves.
    let answer = ask(&mut socket, r#"{"id": 11, "op": "put", "key": "k", "value": "v"}"#);
    assert_eq!((&answer["id"], &answer["reply"]), (&serde_json::json!(11), &serde_json::json!("Written")), "{answer}");
    assert!(answer["op"]["client"].is_u64() && answer["op"]["seq"].is_u64(), "the reply names its OpId: {answer}");
    // The answer is the type the page decodes.
    let decoded: dynamo_core::api::Answer = serde_json::from_value(answer.clone()).expect("an api::Answer");
    assert!(matches!(decoded, dynamo_core::api::Answer::Reply { .. }), "{answer}");
    // Only /client and /peer are WebSocket endpoints.
    let Err(refused) = client(&cluster, "/whatever") else { panic!("/whatever was served") };
    assert!(refused.contains("404"), "{refused}");
}

/// Found in review: a request over the message limit closed the connection without a word.
#[test]
fn a_request_over_the_limit_gets_a_close_frame_that_says_so() {
    use std::io::{Read, Write};
    let cluster = Cluster::start("ws-too-large");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", cluster.nodes[0].ws)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = cluster.nodes[0].ws;
    let handshake = format!(
        "GET /client HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).unwrap();
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        response.push(byte[0]);
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&response));
    // A masked text frame that declares 64 MiB, far over any limit; its payload never comes.
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(64u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    stream.write_all(&header).unwrap();
    let mut frame = [0u8; 2];
    stream.read_exact(&mut frame).unwrap();
    assert_eq!(frame[0], 0x88, "a close frame");
    let mut payload = vec![0u8; (frame[1] & 0x7f) as usize];
    stream.read_exact(&mut payload).unwrap();
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1009, "message too big");
    let reason = String::from_utf8_lossy(&payload[2..]);
    assert!(reason.contains("too large"), "{reason}");
}

/// Found in review: a connection answered one request at a time, so a request for a key whose
/// quorum was down held up every request sent after it, for the whole operation timeout.
#[test]
fn a_slow_operation_holds_up_only_those_on_its_key() {
    let mut cluster = Cluster::start("ws-concurrent");
    let mut socket = client(&cluster, "/client").unwrap();
    let owners = |socket: &mut Socket, key: &str| -> Vec<String> {
        let answer = ask(socket, &serde_json::json!({ "op": "owners", "key": key }).to_string());
        answer["owners"].as_array().unwrap().iter().map(|name| name.as_str().unwrap().to_string()).collect()
    };
    // Down: two homes of "slow" other than 5554, whose socket this is.
    let homes = owners(&mut socket, "slow");
    let down: Vec<usize> = (1..5).filter(|index| homes[..3].contains(&cluster.nodes[*index].name)).take(2).collect();
    assert_eq!(down.len(), 2, "two homes of 'slow' besides 5554: {homes:?}");
    // A key with at most one home down stays available.
    let down_names: Vec<String> = down.iter().map(|index| cluster.nodes[*index].name.clone()).collect();
    let fast = (0..100)
        .map(|i| format!("fast{i}"))
        .find(|key| owners(&mut socket, key)[..3].iter().filter(|home| down_names.contains(home)).count() <= 1)
        .expect("a key with a write quorum");
    for index in &down {
        cluster.kill(*index);
    }
    let start = Instant::now();
    for (id, request) in [
        (1, serde_json::json!({ "id": 1, "op": "put", "key": "slow", "value": "x" })),
        (2, serde_json::json!({ "id": 2, "op": "put", "key": fast, "value": "a" })),
        (3, serde_json::json!({ "id": 3, "op": "put", "key": fast, "value": "b" })),
        (4, serde_json::json!({ "id": 4, "op": "get", "key": fast })),
        (5, serde_json::json!({ "id": 5, "op": "inspect" })),
    ] {
        assert_eq!(request["id"], id);
        socket.send(Message::Text(request.to_string())).unwrap();
    }
    let mut order = Vec::new();
    let mut answers = std::collections::BTreeMap::new();
    while order.len() < 5 {
        let answer: serde_json::Value = match socket.read().unwrap() {
            Message::Text(text) => serde_json::from_str(&text).unwrap(),
            _ => continue,
        };
        let id = answer["id"].as_u64().unwrap();
        order.push((id, start.elapsed()));
        answers.insert(id, answer);
    }
    let at = |id: u64| order.iter().find(|(answered, _)| *answered == id).unwrap().1;
    // The slow put times out (unavailable) after everything else was answered.
    assert_eq!(order.last().unwrap().0, 1, "{order:?}");
    let unavailable = &answers[&1]["reply"]["Error"]["Unavailable"];
    assert_eq!(unavailable["reason"], "no write quorum answered in time", "{}", answers[&1]);
    assert_eq!(unavailable["cause"], "NoWriteQuorum", "{}", answers[&1]);
    for id in 2..=5 {
        assert!(at(id) < at(1), "answer {id} waited for the slow put: {order:?}");
    }
    // The same key's operations ran in the order sent: the get reads the second put.
    assert!(at(2) <= at(3) && at(3) <= at(4), "{order:?}");
    assert_eq!(answers[&4]["reply"], serde_json::json!({ "Value": "b" }), "{}", answers[&4]);
    assert!(answers[&5]["inspect"].is_object(), "{}", answers[&5]);
}

/// A subscribed connection is told each operation's `OpId` as it starts, before its trace
/// events, and the trace names that `OpId` in the request's arrival and in the round serving it:
/// what lets Live mode follow an operation without guessing.
#[test]
fn a_subscriber_learns_each_operations_op_id_before_its_trace() {
    let cluster = Cluster::start("ws-started");
    let mut socket = client(&cluster, "/client").unwrap();
    // A key this node coordinates, so its rounds are in this node's trace.
    let key = (0..100)
        .map(|i| format!("k{i}"))
        .find(|key| {
            ask(&mut socket, &serde_json::json!({ "op": "owners", "key": key }).to_string())["owners"][0] == "5554"
        })
        .expect("a key 5554 coordinates");
    assert_eq!(ask(&mut socket, r#"{"id": 1, "op": "subscribe"}"#)["subscribed"], true);
    let put = serde_json::json!({ "id": 2, "op": "put", "key": key, "value": "v" });
    socket.send(Message::Text(put.to_string())).unwrap();
    let mut started = None;
    let mut received = None;
    let mut in_phase = false;
    let mut reply_op = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while reply_op.is_none() && Instant::now() < deadline {
        let Ok(Message::Text(text)) = socket.read() else { continue };
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        if frame["id"] == 2 && !frame["started"].is_null() {
            assert!(received.is_none(), "the start is announced before the request's trace");
            started = Some(frame["started"].clone());
        }
        let kind = &frame["trace"]["kind"];
        if let Some(id) = kind.get("RequestReceived").map(|event| event["id"].clone()) {
            received = Some(id);
        }
        if let Some(ops) = kind.get("PhaseStarted").map(|event| event["ops"].clone()) {
            in_phase |= ops.as_array().unwrap().iter().any(|op| Some(op) == started.as_ref());
        }
        if frame["id"] == 2 && !frame["reply"].is_null() {
            reply_op = Some(frame["op"].clone());
        }
    }
    let started = started.expect("a started frame");
    assert_eq!(received.as_ref(), Some(&started), "RequestReceived names the same OpId");
    assert_eq!(reply_op.as_ref(), Some(&started), "so does the reply");
    assert!(in_phase, "a PhaseStarted lists it");
}
