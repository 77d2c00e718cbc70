//! Scripted fault scenarios, one per mechanism, each built so that it fails without that
//! mechanism. The swarm explores at random; these pin down the cases it reaches too rarely.

use dynamo_core::checker::check_history;
use dynamo_core::message::{ClientError, ClientOp, ClientReply};
use dynamo_core::sim::{FaultAction, NetworkOptions, SimOptions, Simulation};
use dynamo_core::types::{Blob, NodeId};

/// Five nodes with fast links (0.2 to 1 ms), no faults but those a scenario makes.
fn fast_links(seed: u64) -> SimOptions {
    SimOptions {
        seed,
        network: NetworkOptions { latency_min_us: 200, latency_max_us: 1_000, ..NetworkOptions::default() },
        ..SimOptions::default()
    }
}

/// A five-node cluster with fast links. Anti-entropy is pushed an hour out: it would otherwise
/// copy values between replicas behind a scenario's back and hide the mechanism under test.
fn cluster() -> Simulation {
    let mut options = fast_links(11);
    options.config.anti_entropy_interval_ms = 3_600_000;
    Simulation::new(options)
}

fn value(text: &str) -> Option<ClientReply> {
    Some(ClientReply::Value(Some(Blob::from(text))))
}

/// Read repair: a read that returns a value only one replica holds must first copy it to a
/// write quorum, or a later read can miss it and go back in time.
///
/// A write of `v2` reaches its coordinator only (its links to the other two homes are cut), so
/// it fails. The coordinator's next read finds `v2` on itself and `v1` on a second home: it
/// may return `v2` only after writing it back there. Then the coordinator crashes, and a read
/// through the second home must still see `v2`. Without read repair it sees `v1` on both
/// remaining homes, and the history is not linearizable.
#[test]
fn a_value_a_read_returned_is_not_lost_when_its_only_holder_crashes() {
    let mut sim = cluster();
    let key = "repaired";
    let homes = sim.ring().homes(key.as_bytes());
    let (first, second, third) = (homes[0], homes[1], homes[2]);
    let put = |value: &str| ClientOp::Put { key: key.into(), value: value.into() };
    let get = ClientOp::Get { key: key.into() };

    assert_eq!(sim.execute(first, put("v1")), Some(ClientReply::Written));

    sim.fault(FaultAction::Cut { from: first, to: second });
    sim.fault(FaultAction::Cut { from: first, to: third });
    let reply = sim.execute(first, put("v2"));
    assert!(
        matches!(reply, Some(ClientReply::Error(ClientError::Unavailable(_))) | None),
        "the write cannot reach a quorum: {reply:?}"
    );

    // Only the link to the second home comes back; the read is served by the first home.
    sim.fault(FaultAction::Heal { from: first, to: second });
    let seen = sim.execute(first, get.clone());
    assert!(seen == value("v2") || seen == value("v1"), "{seen:?}");

    sim.fault(FaultAction::Crash(first));
    let again = sim.execute(second, get);
    if seen == value("v2") {
        assert_eq!(again, value("v2"), "a read went back in time after the only holder of its value crashed");
    }
    let report = check_history(sim.history());
    assert!(report.is_linearizable(), "{:?}", report.violations);
    // The scenario is only a test if the first read did see the partial write.
    assert_eq!(seen, value("v2"), "the first read should have found the partial write on its coordinator");
}

fn pairs_of(reply: Option<ClientReply>) -> Vec<(Blob, Blob)> {
    match reply {
        Some(ClientReply::Pairs(pairs)) => pairs,
        other => panic!("expected pairs, got {other:?}"),
    }
}

/// A `*` scan of a store too large to page through within one operation timeout still
/// completes: it gives up only when no page comes for a whole timeout. Before, a scan had one
/// operation timeout in all, so `DBSIZE` and `KEYS` failed on every large store.
#[test]
fn a_scan_longer_than_the_operation_timeout_completes_while_pages_keep_coming() {
    let mut options = fast_links(12);
    options.config.anti_entropy_interval_ms = 3_600_000;
    options.config.request_timeout_ms = 20;
    options.config.operation_timeout_ms = 50;
    options.config.scan_records_max = 2;
    let mut sim = Simulation::new(options);
    let node = sim.ring().homes(b"k0")[0];
    let keys = 400;
    for index in 0..keys {
        let op = ClientOp::Put { key: format!("k{index}").as_str().into(), value: "v".into() };
        assert_eq!(sim.execute(node, op), Some(ClientReply::Written), "write {index}");
    }
    let started = sim.now();
    let pairs = pairs_of(sim.execute(node, ClientOp::GlobalQuery));
    assert_eq!(pairs.len(), keys);
    // The test is only a test if the scan outlasted one operation timeout.
    assert!(sim.now() - started > 50_000, "the scan took only {} µs", sim.now() - started);
}

/// Sync, scan and anti-entropy messages stay under `batch_bytes_max` (plus one record) when
/// records are large: the simulator refuses to send any message over `message_bytes_max`, as a
/// native peer refuses a frame over its limit. With batches bounded by record count alone, a
/// page of 40 KiB values would be 256 times that.
#[test]
fn large_values_move_in_byte_bounded_batches() {
    let mut options = fast_links(13);
    options.config.value_bytes_max = 48 << 10;
    options.config.batch_bytes_max = 100 << 10;
    options.config.anti_entropy_interval_ms = 200;
    // One hint at most: a replica cut off from its coordinator misses writes that only
    // anti-entropy gives back.
    options.config.hints_max = 1;
    let mut sim = Simulation::new(options);
    let value = Blob::new(&[7u8; 40 << 10]);
    let put = |index: usize| ClientOp::Put { key: format!("big{index}").as_str().into(), value: value.clone() };
    let node = sim.ring().homes(b"big0")[0];

    // Recovery: a home replica restarts after missing writes and syncs them in pages. It crashes
    // once it has started (its first batch, the new incarnation, is durable): a node that never
    // got that far has nothing on disk and starts as a new one.
    let down = sim.ring().homes(b"big0")[1];
    sim.run_until(sim.now() + 50_000);
    sim.fault(FaultAction::Crash(down));
    for index in 0..60 {
        assert_eq!(sim.execute(node, put(index)), Some(ClientReply::Written), "write {index}");
    }
    sim.fault(FaultAction::Restart(down));
    let local = pairs_of(sim.execute(down, ClientOp::LocalQuery));
    let owned = (0..60).filter(|index| sim.ring().homes(format!("big{index}").as_bytes()).contains(&down)).count();
    assert_eq!(local.len(), owned, "the restarted replica holds every write it owns");

    // Anti-entropy: a replica cut off from every other node (but not restarted, so no
    // recovery) misses writes, and the hints for it overflow.
    let cut = sim.ring().homes(b"big0")[2];
    for other in (0..5).map(NodeId).filter(|other| *other != cut) {
        sim.fault(FaultAction::Cut { from: other, to: cut });
        sim.fault(FaultAction::Cut { from: cut, to: other });
    }
    for index in 60..120 {
        assert_eq!(sim.execute(node, put(index)), Some(ClientReply::Written), "write {index}");
    }
    sim.fault(FaultAction::HealAll);
    let until = sim.now() + 5_000_000;
    sim.run_until(until);
    let missed: Vec<usize> = (60..120)
        .filter(|index| {
            let key = format!("big{index}");
            sim.ring().homes(key.as_bytes()).contains(&cut)
                && sim.durable(cut).slots.get(key.as_bytes()).and_then(|slot| slot.record.as_ref()).is_none()
        })
        .collect();
    assert!(missed.is_empty(), "anti-entropy did not bring back {missed:?}");
    // The test is only a test if anti-entropy had more to carry than one batch holds.
    let owned = (60..120).filter(|index| sim.ring().homes(format!("big{index}").as_bytes()).contains(&cut)).count();
    assert!(owned > 10, "only {owned} keys owned by the cut replica");

    // A scan of everything.
    assert_eq!(pairs_of(sim.execute(node, ClientOp::GlobalQuery)).len(), 120);
}

/// Disks slower than the request timeout: every persist batch takes up to 250 ms, while a
/// round waits 100 ms for its quorum. A round that times out goes on under the same ballot
/// and sends its phase again to the homes that have not answered, so a slow acknowledgement
/// still counts when it comes. Restarting under a new ballot instead would fence out the
/// answers on their way and need a new durable promise and accept every time: writes would
/// run out their one-second operation timeout (most of them did, before).
#[test]
fn replicas_slower_than_the_request_timeout_still_answer_every_request() {
    let mut options = fast_links(17);
    options.disk_latency_max_us = 250_000;
    options.config.anti_entropy_interval_ms = 3_600_000;
    let mut sim = Simulation::new(options);
    for index in 0..20 {
        let key = format!("slow{index}");
        let homes = sim.ring().homes(key.as_bytes());
        // Through the coordinator, then through a node that forwards to it.
        let entry = if index % 2 == 0 { homes[0] } else { (0..5).map(NodeId).find(|n| !homes.contains(n)).unwrap() };
        for value in ["a", "b"] {
            let put = ClientOp::Put { key: key.as_str().into(), value: value.into() };
            assert_eq!(sim.execute(entry, put), Some(ClientReply::Written), "write {value} of {key}");
        }
        let get = ClientOp::Get { key: key.as_str().into() };
        assert_eq!(sim.execute(entry, get), value("b"), "read of {key}");
    }
}

/// Amnesia: a node whose disk was lost must not vote as if new. Its probes reach peers that
/// remember its earlier disk, so it refuses to serve, and a read that could only be answered
/// with its (empty) vote is unavailable instead of losing an acknowledged write.
///
/// `v1` is written to the first and second homes only (the first home's link to the third is
/// cut). The first home's disk is wiped and it comes back empty; then the second home crashes.
/// A read through the third home has only the wiped node and itself to ask: if the wiped node
/// voted, both would say "absent" and the acknowledged `v1` would be lost.
#[test]
fn a_node_whose_disk_was_lost_does_not_vote_as_if_new() {
    let mut sim = cluster();
    let key = "remembered";
    let homes = sim.ring().homes(key.as_bytes());
    let (first, second, third) = (homes[0], homes[1], homes[2]);
    sim.run_until(10_000);
    for node in homes.iter().copied() {
        let admitted = sim.node(node).map(|node| node.admission().clone());
        assert_eq!(admitted, Some(dynamo_core::node::Admission::Admitted), "{node:?} admitted at birth");
    }

    sim.fault(FaultAction::Cut { from: first, to: third });
    let put = ClientOp::Put { key: key.into(), value: "v1".into() };
    assert_eq!(sim.execute(first, put), Some(ClientReply::Written));
    sim.fault(FaultAction::HealAll);

    sim.fault(FaultAction::Wipe(first));
    sim.fault(FaultAction::Restart(first));
    let settle = sim.now() + 50_000;
    sim.run_until(settle);
    let admission = sim.node(first).expect("up").admission().clone();
    assert!(
        matches!(admission, dynamo_core::node::Admission::Refused { .. }),
        "the wiped node learned that its peers remember its first disk: {admission:?}"
    );
    let refused = sim.execute(first, ClientOp::Get { key: key.into() });
    assert!(
        matches!(
            refused,
            Some(ClientReply::Error(ClientError::Unavailable(dynamo_core::message::Unavailable::Amnesia { .. })))
        ),
        "{refused:?}"
    );

    sim.fault(FaultAction::Crash(second));
    let read = sim.execute(third, ClientOp::Get { key: key.into() });
    assert!(read != Some(ClientReply::Value(None)), "the acknowledged write was lost: {read:?}");
    let report = check_history(sim.history());
    assert!(report.is_linearizable(), "{:?}", report.violations);
}
