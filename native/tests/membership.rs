//! Membership changes on real processes: a live node leaves while a client writes, through the
//! WebSocket control API; the change settles, no acknowledged write is lost, and each node ends
//! holding exactly the keys it homes.

mod support;

use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::{json, Value};
use support::Cluster;

const SECRET: &str = "membership-test-secret";

/// One control request to node `index`'s WebSocket API; returns its answer.
fn admin(cluster: &Cluster, index: usize, request: Value) -> Value {
    use tokio_tungstenite::tungstenite::{self, Message};
    let url = format!("ws://127.0.0.1:{}/client", cluster.nodes[index].ws);
    let (mut socket, _) = tungstenite::connect(url).expect("the WebSocket API answers");
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    let frame = json!({"id": 1, "op": "admin", "secret": SECRET, "request": request});
    socket.send(Message::Text(frame.to_string())).unwrap();
    loop {
        let Message::Text(text) = socket.read().expect("an answer") else { continue };
        let answer: Value = serde_json::from_str(&text).unwrap();
        if answer["id"] == 1 {
            return answer;
        }
    }
}

fn status(cluster: &Cluster, index: usize) -> Value {
    admin(cluster, index, json!("Status"))["admin"]["Status"].clone()
}

#[test]
fn a_live_node_leaves_while_a_client_writes_and_every_node_keeps_exactly_its_keys() {
    let cluster = Cluster::start_with("leave", &format!("secret = \"{SECRET}\"\n"));
    let leaving = 4;
    let leaving_name = cluster.nodes[leaving].name.clone();
    let keys: Vec<String> = (0..60).map(|i| format!("key{i}")).collect();
    let mut c = cluster.redis(0, false);
    for key in &keys {
        let _: () = c.set(key, 0).unwrap();
    }
    // Joins and replacements are refused until nodes can start as new ids.
    let refused = admin(&cluster, 0, json!({"Stage": {"Join": {"name": "5564"}}}));
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("dynamo node --join")), "{refused}");
    let wrong = {
        use tokio_tungstenite::tungstenite::{self, Message};
        let url = format!("ws://127.0.0.1:{}/client", cluster.nodes[1].ws);
        let (mut socket, _) = tungstenite::connect(url).unwrap();
        let frame = json!({"id": 1, "op": "admin", "secret": "wrong", "request": "Status"});
        socket.send(Message::Text(frame.to_string())).unwrap();
        let Message::Text(text) = socket.read().unwrap() else { panic!("a text answer") };
        text.to_string()
    };
    assert!(wrong.contains("wrong or missing cluster secret"), "{wrong}");

    // One writer per key range: each SET is acknowledged before the next, and each read that
    // follows through another node must see it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let (stop, keys) = (stop.clone(), keys.clone());
            let (mut write, mut read) = (cluster.redis(writer, false), cluster.redis(2 + writer, false));
            std::thread::spawn(move || {
                let mut round = 1i64;
                let mut acknowledged = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for key in keys.iter().skip(writer).step_by(2) {
                        if write.set::<_, _, ()>(key, round).is_ok() {
                            acknowledged += 1;
                            let seen: Option<i64> = read.get(key).ok().flatten();
                            if let Some(seen) = seen {
                                assert!(seen >= round, "{key}: wrote {round}, then read {seen}");
                            }
                        }
                    }
                    round += 1;
                }
                (round - 1, acknowledged)
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(300));
    let committed = admin(&cluster, 1, json!({"CommitChanges": [{"Leave": {"name": leaving_name}}]}));
    assert_eq!(committed["admin"], json!({"Committed": {"epoch": 2}}), "{committed}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = status(&cluster, 0);
        if now["epoch"] == 3 && now["transitions"].as_array().is_some_and(Vec::is_empty) {
            assert_eq!(now["members"].as_array().map(Vec::len), Some(4), "{now}");
            break;
        }
        assert!(Instant::now() < deadline, "the leave did not settle: {now}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut last = Vec::new();
    for writer in writers {
        let (round, acknowledged) = writer.join().expect("no writer saw a write go back");
        assert!(acknowledged > 0);
        last.push(round);
    }

    // Every key holds its last round's value at least (a later SET may have taken effect
    // without its reply), read through every remaining node.
    for index in 0..4 {
        let mut c = cluster.redis(index, false);
        for (i, key) in keys.iter().enumerate() {
            let value: i64 = c.get(key).unwrap();
            assert!(value >= last[i % 2], "{key} through node {index}: {value} < {}", last[i % 2]);
        }
    }
    // Each node holds exactly the keys whose first three owners name it; the one that left, none.
    let mut c = cluster.redis(0, false);
    for index in 0..5 {
        let name = &cluster.nodes[index].name;
        let mut local = cluster.redis(index, false);
        let pairs: Vec<Vec<u8>> = redis::cmd("DYN.LOCAL").query(&mut local).unwrap();
        let held: std::collections::BTreeSet<String> =
            pairs.chunks(2).map(|pair| String::from_utf8(pair[0].clone()).unwrap()).collect();
        let homed: std::collections::BTreeSet<String> = keys
            .iter()
            .filter(|key| {
                let owners: Vec<String> = redis::cmd("DYN.OWNERS").arg(key).query(&mut c).unwrap();
                owners.iter().take(3).any(|owner| owner == name)
            })
            .cloned()
            .collect();
        assert_eq!(held, homed, "node {name} holds exactly the keys it homes");
        if index == leaving {
            assert!(held.is_empty(), "the node that left holds nothing");
        }
    }
}
