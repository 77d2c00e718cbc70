//! Real five-process clusters on 127.0.0.1: every RESP command over RESP2 and RESP3 through a
//! Redis client library, recovery of missed writes after SIGKILL, linearizability of concurrent
//! clients while nodes are killed and restarted, and bad input.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_core::checker::{check_final_values, check_history};
use dynamo_core::history::{History, OpKind, Outcome};
use dynamo_core::types::{Blob, ClientId, Rng};
use redis::{Commands, Value};
use support::Cluster;

fn owners(connection: &mut redis::Connection, key: &str) -> Vec<String> {
    redis::cmd("DYN.OWNERS").arg(key).query(connection).expect("DYN.OWNERS")
}

fn local_pairs(connection: &mut redis::Connection) -> BTreeMap<String, String> {
    let flat: Vec<String> = redis::cmd("DYN.LOCAL").query(connection).expect("DYN.LOCAL");
    flat.chunks(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect()
}

#[test]
fn every_command_over_resp2_and_resp3() {
    let cluster = Cluster::start("commands");
    for resp3 in [false, true] {
        let mut c = cluster.redis(0, resp3);
        let pong: String = redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
        let echo: String = redis::cmd("ECHO").arg("hi").query(&mut c).unwrap();
        assert_eq!(echo, "hi");
        // HELLO answers with a map, as Redis does.
        let hello: Value = redis::cmd("HELLO").arg(if resp3 { "3" } else { "2" }).query(&mut c).unwrap();
        let text = format!("{hello:?}");
        assert!(text.contains("server") && text.contains("proto") && text.contains("version"), "{text}");
        if resp3 {
            assert!(matches!(hello, Value::Map(_)), "RESP3 HELLO is a map: {hello:?}");
        }
        let _: () = redis::cmd("CLIENT").arg("SETINFO").arg("LIB-NAME").arg("test").query(&mut c).unwrap();
        let _: () = redis::cmd("SELECT").arg(0).query(&mut c).unwrap();
        let _: Value = redis::cmd("CONFIG").arg("GET").arg("save").query(&mut c).unwrap();
        let _: Value = redis::cmd("COMMAND").arg("DOCS").query(&mut c).unwrap();
        let unknown: redis::RedisResult<Value> = redis::cmd("NOSUCHCOMMAND").query(&mut c);
        assert!(unknown.unwrap_err().to_string().contains("unknown command"));

        let keys = 30;
        for i in 0..keys {
            let via = i % 5;
            let mut other = cluster.redis(via, resp3);
            let _: () = other.set(format!("key{i}"), format!("value{i}")).unwrap();
        }
        for i in 0..keys {
            let value: String = c.get(format!("key{i}")).unwrap();
            assert_eq!(value, format!("value{i}"));
        }
        let missing: Option<String> = c.get("absent").unwrap();
        assert_eq!(missing, None, "GET of an absent key is nil");
        let exists: i64 = redis::cmd("EXISTS").arg("key1").arg("key2").arg("absent").query(&mut c).unwrap();
        assert_eq!(exists, 2);
        let mut listed: Vec<String> = c.keys("key1*").unwrap();
        listed.sort();
        assert_eq!(
            listed,
            ["key1", "key10", "key11", "key12", "key13", "key14", "key15", "key16", "key17", "key18", "key19"]
        );
        let size: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(size, keys as i64);
        // `@`: three copies of every key across the five nodes, each on one of its owners.
        let mut copies = 0;
        for node in 0..5 {
            let mut connection = cluster.redis(node, resp3);
            for key in local_pairs(&mut connection).keys() {
                assert!(owners(&mut connection, key)[..3].contains(&cluster.nodes[node].name));
                copies += 1;
            }
        }
        assert_eq!(copies, 3 * keys);
        let list = owners(&mut c, "key1");
        assert_eq!(list.len(), 5, "the whole preference list, coordinator first: {list:?}");
        // The ring: every token in position order with its node; one token each is the seed's
        // ring (5562, 5556, 5554, 5558, 5560), and a key's coordinator is the node of the first
        // token at or after the key's position.
        let ring: Vec<(String, String)> = redis::cmd("DYN.RING").query(&mut c).unwrap();
        let nodes: Vec<&str> = ring.iter().map(|(_, node)| node.as_str()).collect();
        assert_eq!(nodes, ["5562", "5556", "5554", "5558", "5560"], "{ring:?}");
        assert!(ring.windows(2).all(|pair| pair[0].0 < pair[1].0), "in position order: {ring:?}");
        assert_eq!(ring[2].0, "33d6357cfaaf0f72991b0ecd8c56da066613c089", "SHA-1 of 5554");
        let at = dynamo_core::ring::position_hex(&dynamo_core::ring::position(b"key1"));
        let first = ring.iter().find(|(position, _)| *position >= at).unwrap_or(&ring[0]);
        assert_eq!(first.1, list[0], "key1 at {at} belongs to the first token at or after it");
        let info: String = redis::cmd("INFO").query(&mut c).unwrap();
        assert!(
            info.contains("node:5554") && info.contains("read_quorum:2") && info.contains("peer_5556:ws="),
            "{info}"
        );
        // Pipelining.
        let mut pipe = redis::pipe();
        for i in 0..50 {
            pipe.set(format!("p{i}"), i).ignore();
        }
        for i in 0..50 {
            pipe.get(format!("p{i}"));
        }
        let values: Vec<i64> = pipe.query(&mut c).unwrap();
        assert_eq!(values, (0..50).collect::<Vec<i64>>());
        let deleted: i64 = c.del(&["key0", "key1", "absent"]).unwrap();
        assert_eq!(deleted, 2);
        let gone: Option<String> = c.get("key0").unwrap();
        assert_eq!(gone, None);
        // `@` delete on one node, then `*` delete.
        let mut node2 = cluster.redis(2, resp3);
        let local_before = local_pairs(&mut node2).len() as i64;
        let flushed: i64 = redis::cmd("DYN.FLUSHLOCAL").query(&mut node2).unwrap();
        assert_eq!(flushed, local_before);
        assert!(local_pairs(&mut node2).is_empty());
        let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
        let size: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(size, 0);
    }
}

#[test]
fn a_killed_node_recovers_the_writes_it_missed() {
    let mut cluster = Cluster::start("recovery");
    let victim = 2;
    let victim_name = cluster.nodes[victim].name.clone();
    let mut c = cluster.redis(0, false);
    let _: () = c.set("before", "1").unwrap();
    cluster.kill(victim);
    let mut written = BTreeMap::new();
    for i in 0..60 {
        let mut via = cluster.redis([0, 1, 3, 4][i % 4], false);
        let _: () = via.set(format!("missed{i}"), format!("v{i}")).unwrap();
        written.insert(format!("missed{i}"), format!("v{i}"));
    }
    cluster.restart(victim);
    let mut restarted = cluster.redis(victim, false);
    let local = local_pairs(&mut restarted);
    let mut owned = 0;
    for (key, value) in &written {
        if owners(&mut c, key)[..3].contains(&victim_name) {
            owned += 1;
            assert_eq!(local.get(key), Some(value), "{victim_name} lacks {key} after recovery");
        }
    }
    assert!(owned > 10, "the victim owns a fair share of the keys ({owned})");
    let log = std::fs::read_to_string(cluster.dir.join(format!("{victim_name}.log"))).unwrap();
    assert!(log.contains("Recover"), "the restarted node ran recovery:\n{log}");
    assert!(log.contains("recovery: copied keys") && log.contains("recovery finished"), "recovery is logged:\n{log}");
}

/// The ids of the messages node `index` sends while `work` runs, read from its trace stream.
fn message_ids_sent_during(cluster: &Cluster, index: usize, work: impl FnOnce()) -> Vec<u64> {
    use tokio_tungstenite::tungstenite::{self, Message};
    let url = format!("ws://127.0.0.1:{}/client", cluster.nodes[index].ws);
    let (mut socket, _) = tungstenite::connect(url).expect("the WebSocket API answers");
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    }
    socket.send(Message::Text(r#"{"op":"subscribe"}"#.into())).unwrap();
    work();
    let mut ids = Vec::new();
    while let Ok(frame) = socket.read() {
        let Message::Text(text) = frame else { continue };
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        if let Some(id) = frame["trace"]["kind"]["MessageSent"]["id"].as_u64() {
            ids.push(id);
        }
    }
    ids
}

fn incarnation(connection: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("server").query(connection).expect("INFO");
    let line = info.lines().find_map(|line| line.strip_prefix("incarnation:")).expect("INFO names the incarnation");
    line.trim().parse().expect("a number")
}

/// The incarnation is durable state of the node, one more on every start, and every id the node
/// makes carries it: a restarted node sends no message id of its earlier life again. (It came
/// from the wall clock before, so a clock set back could repeat ids; `dynamo-core`'s
/// `a_restart_with_the_clock_set_back_reuses_no_id` sets the clock back.)
#[test]
fn a_restarted_node_takes_the_next_incarnation_and_reuses_no_message_id() {
    let mut cluster = Cluster::start("incarnation");
    let node = 1;
    let mut seen = std::collections::BTreeSet::new();
    for life in 1..=3 {
        let mut c = cluster.redis(node, false);
        assert_eq!(incarnation(&mut c), life);
        let ids = message_ids_sent_during(&cluster, node, || {
            for i in 0..30 {
                let _: () = c.set(format!("life{life}-{i}"), "v").unwrap();
            }
        });
        assert!(ids.len() >= 30, "life {life}: {} messages seen", ids.len());
        for id in ids {
            assert!(seen.insert(id), "life {life} sent message id {id} again");
        }
        cluster.kill(node);
        cluster.restart(node);
    }
}

/// A node whose data directory was lost must not vote as if it were new (it could undo
/// acknowledged writes): its peers remember the disk it probed them with at the cluster's start,
/// so it exits with one line that says what happened and what to do, and the cluster keeps
/// serving what was written.
#[test]
fn a_node_whose_data_directory_was_deleted_refuses_to_serve() {
    let mut cluster = Cluster::start("amnesia");
    let node = 2;
    let mut c = cluster.redis(0, false);
    for i in 0..20 {
        let _: () = c.set(format!("kept{i}"), i).unwrap();
    }
    cluster.kill(node);
    std::fs::remove_dir_all(cluster.data_dir(node)).expect("delete the data directory");
    cluster.relaunch(node);
    let code = cluster.wait_exit(node, Duration::from_secs(20));
    let log = cluster.log(node);
    assert_eq!(code, Some(2), "the wiped node exits with code 2; its log:\n{log}");
    let name = &cluster.nodes[node].name;
    let line = format!("node {name} has nothing stored, but node ");
    assert!(log.contains(&line), "{log}");
    assert!(log.contains("its data directory was lost") && log.contains("Restore its data directory"), "{log}");
    for i in 0..20 {
        let value: i64 = c.get(format!("kept{i}")).unwrap();
        assert_eq!(value, i);
    }
}

/// Many values of the largest size (1 MiB) at once: a frame never outgrows the peer's limit
/// (a batch of large messages is split across frames), a link keeps reading while it writes,
/// and recovery and `*` scans move large records in pages bounded in bytes. Before, a
/// recovering node's first sync page of 1 MiB records was tens of MiB, over the 8 MiB frame
/// limit: the peer dropped the link, and recovery and `DBSIZE` never finished.
#[test]
fn many_values_of_the_largest_size_at_once() {
    // Long timeouts: this tests how large records travel, not how the cluster copes with a
    // disk it saturates (see docs/benchmarks.md).
    let settings = "fsync = false\nrequest_timeout_ms = 2000\noperation_timeout_ms = 20000\n";
    let mut cluster = Cluster::start_with("large-values", settings);
    let victim = 3;
    let victim_name = cluster.nodes[victim].name.clone();
    cluster.kill(victim);
    let value_of = |key: &str| {
        let mut value = vec![b'a' + (key.len() % 26) as u8; 1 << 20];
        value[..key.len()].copy_from_slice(key.as_bytes());
        value
    };
    let keys: Vec<String> = (0..48).map(|i| format!("large{i}")).collect();
    std::thread::scope(|scope| {
        for chunk in keys.chunks(3) {
            let mut connection = cluster.redis(0, false);
            scope.spawn(move || {
                for key in chunk {
                    let _: () = connection.set(key, value_of(key)).unwrap_or_else(|e| panic!("SET {key}: {e}"));
                }
            });
        }
    });
    cluster.restart(victim);
    let mut c = cluster.redis(1, false);
    let size: u64 = redis::cmd("DBSIZE").query(&mut c).expect("DBSIZE");
    assert_eq!(size, keys.len() as u64);
    let mut listed: Vec<String> = c.keys("large*").expect("KEYS");
    listed.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(listed, expected);
    for key in &keys {
        let value: Vec<u8> = c.get(key).expect("GET");
        assert!(value == value_of(key), "{key} came back changed ({} bytes)", value.len());
    }
    let mut restarted = cluster.redis(victim, false);
    let flat: Vec<Vec<u8>> = redis::cmd("DYN.LOCAL").query(&mut restarted).expect("DYN.LOCAL");
    let local: BTreeMap<String, Vec<u8>> =
        flat.chunks(2).map(|pair| (String::from_utf8_lossy(&pair[0]).into_owned(), pair[1].clone())).collect();
    let mut owned = 0;
    for key in &keys {
        if owners(&mut c, key)[..3].contains(&victim_name) {
            owned += 1;
            assert!(local.get(key).is_some_and(|value| *value == value_of(key)), "{victim_name} lacks {key}");
        }
    }
    assert!(owned > 10, "the restarted node owns a fair share of the keys ({owned})");
}

/// A node works on at most `admitted_bytes_max` of client requests at once; the rest wait in
/// their connections. Here the allowance is one request, and the key's write quorum is gone (two
/// of its three homes killed), so each write is worked on until its operation timeout (1 s)
/// and then answered `unavailable`: three writes sent at once end one after another, the last
/// more than two seconds in. Without admission all three ride in one round and end together
/// after about one second.
#[test]
fn a_node_works_on_at_most_its_admitted_bytes_at_once() {
    let mut cluster = Cluster::start_with("admission", "admitted_bytes_max = 1024\n");
    let key = "admitted";
    let names: Vec<String> = cluster.nodes.iter().map(|node| node.name.clone()).collect();
    let homes: Vec<usize> = {
        let mut c = cluster.redis(0, false);
        owners(&mut c, key)[..3].iter().map(|name| names.iter().position(|n| n == name).expect("a node")).collect()
    };
    cluster.kill(homes[0]);
    cluster.kill(homes[1]);
    let start = Instant::now();
    let ends: Vec<(Duration, String)> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..3)
            .map(|i| {
                let mut connection = cluster.redis(homes[2], false);
                scope.spawn(move || {
                    let result: redis::RedisResult<()> = connection.set(key, format!("v{i}"));
                    (start.elapsed(), format!("{result:?}"))
                })
            })
            .collect();
        writers.into_iter().map(|writer| writer.join().expect("writer")).collect()
    });
    for (_, answer) in &ends {
        assert!(answer.contains("unavailable"), "a write without its quorum fails: {answer}");
    }
    let last = ends.iter().map(|(end, _)| *end).max().expect("three");
    assert!(last >= Duration::from_millis(2_500), "the writes were worked on together: {ends:?}");
}

/// Every node killed with SIGKILL at once (a power cut, a crashed host) and restarted: each
/// acknowledged write is still there, read back through a quorum, in both durability modes.
/// Nothing can be recovered from a peer here, so this tests storage itself.
#[test]
fn a_whole_cluster_killed_at_once_keeps_every_acknowledged_write() {
    for (name, settings) in [("whole-fsync", ""), ("whole-nofsync", "fsync = false\n")] {
        let mut cluster = Cluster::start_with(name, settings);
        let mut written = BTreeMap::new();
        for i in 0..100 {
            let mut via = cluster.redis(i % 5, false);
            let _: () = via.set(format!("key{i}"), format!("value{i}")).unwrap();
            written.insert(format!("key{i}"), format!("value{i}"));
        }
        let mut via = cluster.redis(1, false);
        let deleted: usize = via.del("key7").unwrap();
        assert_eq!(deleted, 1);
        written.remove("key7");
        for index in 0..5 {
            cluster.kill(index);
        }
        for index in 0..5 {
            cluster.restart(index);
        }
        let mut c = cluster.redis(3, false);
        for i in 0..100 {
            let key = format!("key{i}");
            let value: Option<String> = c.get(&key).unwrap();
            assert_eq!(value.as_ref(), written.get(&key), "{name}: {key} after the whole cluster restarted");
        }
        let size: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(size, 99, "{name}");
    }
}

/// A client thread: random gets and puts on a few keys against random nodes, recording what
/// it saw. A failed connection makes the operation's outcome unknown.
fn client(cluster: Arc<Vec<String>>, id: u64, history: Arc<Mutex<History>>, start: Instant, until: Instant) {
    let mut rng = Rng::new(id);
    let now = || start.elapsed().as_micros() as u64;
    let mut connection: Option<redis::Connection> = None;
    let mut counter = 0;
    while Instant::now() < until {
        if connection.is_none() {
            let url = &cluster[rng.below(cluster.len() as u64) as usize];
            connection = redis::Client::open(url.as_str())
                .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
                .ok();
            if let Some(c) = &connection {
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            }
            if connection.is_none() {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        let c = connection.as_mut().expect("connected above");
        let key = format!("k{}", rng.below(4));
        if rng.below(2) == 0 {
            counter += 1;
            let value = format!("c{id}-{counter}");
            let index = history.lock().unwrap().invoke(
                ClientId(id),
                Blob::from(key.as_str()),
                OpKind::Put(Blob::from(value.as_str())),
                now(),
            );
            let result: redis::RedisResult<()> = c.set(&key, &value);
            let outcome = if result.is_ok() { Outcome::Written } else { Outcome::Unknown };
            history.lock().unwrap().complete(index, outcome, now());
            if result.is_err() {
                connection = None;
            }
        } else {
            let index = history.lock().unwrap().invoke(ClientId(id), Blob::from(key.as_str()), OpKind::Get, now());
            let result: redis::RedisResult<Option<String>> = c.get(&key);
            let outcome = match &result {
                Ok(value) => Outcome::Read(value.as_deref().map(Blob::from)),
                Err(_) => Outcome::Unknown,
            };
            history.lock().unwrap().complete(index, outcome, now());
            if result.is_err() {
                connection = None;
            }
        }
    }
}

#[test]
fn concurrent_clients_stay_linearizable_while_nodes_are_killed() {
    kill_nodes_under_load(Cluster::start("linearizable"), 12);
}

/// Without fsync a write is acknowledged once the operating system has it, so killing the
/// process still loses nothing (the node task commits these inline: a different code path).
#[test]
fn without_fsync_killed_nodes_still_lose_no_acknowledged_write() {
    kill_nodes_under_load(Cluster::start_with("linearizable-nofsync", "fsync = false\n"), 8);
}

/// Four clients on four keys while one node at a time is killed with SIGKILL and restarted,
/// for `seconds`; the history must be linearizable and the final values explained by it.
fn kill_nodes_under_load(mut cluster: Cluster, seconds: u64) {
    let urls: Arc<Vec<String>> = Arc::new((0..5).map(|i| cluster.url(i, false)).collect());
    let history = Arc::new(Mutex::new(History::default()));
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let clients: Vec<_> = (1..=4)
        .map(|id| {
            let (urls, history) = (urls.clone(), history.clone());
            std::thread::spawn(move || client(urls, id, history, start, until))
        })
        .collect();
    let mut rng = Rng::new(99);
    let mut kills = 0;
    while Instant::now() + Duration::from_secs(3) < until {
        std::thread::sleep(Duration::from_millis(700));
        let victim = rng.below(5) as usize;
        cluster.kill(victim);
        kills += 1;
        std::thread::sleep(Duration::from_millis(900));
        cluster.restart(victim);
    }
    assert!(kills >= 3, "only {kills} kills happened");
    for client in clients {
        client.join().expect("client thread");
    }
    let history = history.lock().unwrap().clone();
    let completed = history.operations.iter().filter(|op| op.outcome != Outcome::Unknown).count();
    assert!(completed > 100, "only {completed} operations completed");
    let report = check_history(&history);
    assert!(report.is_linearizable(), "{:?}", report.violations);
    // No acknowledged write lost: what a quorum read returns now is explained by the history.
    let mut c = cluster.redis(0, false);
    let finals: BTreeMap<Blob, Option<Blob>> = (0..4)
        .map(|k| {
            let key = format!("k{k}");
            let value: Option<String> = c.get(&key).unwrap();
            (Blob::from(key.as_str()), value.as_deref().map(Blob::from))
        })
        .collect();
    let report = check_final_values(&history, &finals);
    assert!(report.is_linearizable(), "{:?}", report.violations);
    println!("{completed} operations completed of {}", history.operations.len());
}

fn raw(cluster: &Cluster, node: usize) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", cluster.nodes[node].resp)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

fn read_some(stream: &mut TcpStream) -> String {
    let mut buffer = vec![0u8; 4096];
    let read = stream.read(&mut buffer).unwrap_or(0);
    String::from_utf8_lossy(&buffer[..read]).into_owned()
}

#[test]
fn bad_input_never_stops_a_node() {
    let cluster = Cluster::start("badinput");
    // Garbage: a protocol error, and only that connection closes.
    let mut garbage = raw(&cluster, 0);
    garbage.write_all(b"*2\r\n$3\r\nGET\r\n:oops\r\n").unwrap();
    assert!(read_some(&mut garbage).starts_with("-ERR protocol error"));
    assert_eq!(read_some(&mut garbage), "", "closed after a protocol error");
    // An oversized value: a clear error, and the connection stays usable.
    let mut big = raw(&cluster, 1);
    let value = vec![b'x'; (1 << 20) + 1];
    big.write_all(format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len()).as_bytes()).unwrap();
    big.write_all(&value).unwrap();
    big.write_all(b"\r\nPING\r\n").unwrap();
    let mut answer = String::new();
    while !answer.contains("PONG") {
        let more = read_some(&mut big);
        assert!(!more.is_empty(), "connection closed; got {answer:?}");
        answer.push_str(&more);
    }
    assert!(answer.starts_with("-ERR value too large"), "{answer}");
    // A value of exactly 1 MiB is accepted.
    let mut c = cluster.redis(1, false);
    let _: () = c.set("exact", vec![b'y'; 1 << 20]).unwrap();
    let back: Vec<u8> = c.get("exact").unwrap();
    assert_eq!(back.len(), 1 << 20);
    // The empty key is a key, as in Redis; the longest key the storage holds is taken and one
    // byte more is refused. Each of these once stopped the replicas that stored it.
    let _: () = c.set("", "nothing").unwrap();
    let value: String = c.get("").unwrap();
    assert_eq!(value, "nothing");
    let deleted: i64 = c.del("").unwrap();
    assert_eq!(deleted, 1);
    let longest = "k".repeat(65_531);
    let _: () = c.set(&longest, "long").unwrap();
    let value: String = c.get(&longest).unwrap();
    assert_eq!(value, "long");
    let refused: redis::RedisResult<()> = c.set(format!("{longest}k"), "long");
    let error = refused.unwrap_err().to_string();
    assert!(error.contains("key is 65532 bytes; the limit is 65531"), "{error}");
    // Unknown commands and wrong arity.
    let mut odd = raw(&cluster, 2);
    odd.write_all(b"FROB x\r\nGET\r\n").unwrap();
    let mut answer = String::new();
    while answer.matches("\r\n").count() < 2 {
        answer.push_str(&read_some(&mut odd));
    }
    assert!(answer.contains("unknown command") && answer.contains("wrong number of arguments"), "{answer}");
    // A half-closed socket and random bytes on the peer port.
    let mut half = raw(&cluster, 3);
    half.write_all(b"*1\r\n$4\r\nPI").unwrap();
    half.shutdown(Shutdown::Write).unwrap();
    let _ = read_some(&mut half);
    let mut peer_port = TcpStream::connect(("127.0.0.1", cluster.nodes[4].ws)).unwrap();
    peer_port.write_all(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]).unwrap();
    drop(peer_port);
    // Everyone still serves.
    for node in 0..5 {
        let mut c = cluster.redis(node, false);
        let _: () = c.set(format!("after{node}"), node).unwrap();
        let value: i64 = c.get(format!("after{node}")).unwrap();
        assert_eq!(value, node as i64);
    }
}
