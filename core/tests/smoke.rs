use dynamo_core::message::{ClientOp, ClientReply};
use dynamo_core::sim::{SimOptions, Simulation};
use dynamo_core::types::{Blob, NodeId};

#[test]
fn put_then_get_everywhere() {
    let mut sim = Simulation::new(SimOptions { trace: true, ..SimOptions::default() });
    let reply = sim.execute(NodeId(0), ClientOp::Put { key: "a".into(), value: "1".into() });
    assert_eq!(reply, Some(ClientReply::Written));
    for node in 0..5 {
        let reply = sim.execute(NodeId(node), ClientOp::Get { key: "a".into() });
        assert_eq!(reply, Some(ClientReply::Value(Some(Blob::from("1")))), "from node {node}");
    }
    println!("{} trace events, t={}", sim.trace().len(), sim.now());
}

#[test]
fn history_is_recorded() {
    let mut sim = Simulation::new(SimOptions::default());
    sim.execute(NodeId(0), ClientOp::Put { key: "a".into(), value: "1".into() });
    assert_eq!(sim.history().operations.len(), 1, "{:?}", sim.history());
    let report = dynamo_core::checker::check_history(sim.history());
    println!("{report:?}");
    assert_eq!(report.operations_checked, 1);
}

/// A run is reproduced exactly from its options: same history, same trace, same report.
#[test]
fn a_run_replays_exactly_from_its_seed() {
    use dynamo_core::sim::{run, CrashFaults};
    let options = |seed| SimOptions {
        seed,
        trace: true,
        crashes: Some(CrashFaults {
            up_min_ms: 50,
            up_max_ms: 300,
            down_min_ms: 50,
            down_max_ms: 300,
            down_at_once_max: 1,
            wipe_at_crash: None,
        }),
        ..SimOptions::swarm(seed)
    };
    let first = run(options(42));
    let again = run(options(42));
    let json = |report: &dynamo_core::sim::RunReport| serde_json::to_string(report).expect("serializable");
    assert_eq!(json(&first), json(&again));
    let mut a = Simulation::new(options(42));
    let mut b = Simulation::new(options(42));
    a.start_workload();
    b.start_workload();
    a.run_clients();
    b.run_clients();
    assert!(!a.trace().is_empty());
    assert_eq!(serde_json::to_string(a.trace()).unwrap(), serde_json::to_string(b.trace()).unwrap());
    // A different seed is a different run.
    assert_ne!(json(&first), json(&run(options(43))));
}

/// Fifty clients writing one key without pause (what `redis-benchmark -t set` does): writes
/// queued behind a round ride together in the next one, so they all finish, fast, and the
/// history stays linearizable.
#[test]
fn fifty_writers_on_one_key_all_finish() {
    use dynamo_core::sim::Workload;
    let workload = Workload {
        clients: 50,
        operations_per_client: 20,
        keys: 1,
        put_per_million: 700_000,
        delete_per_million: 100_000,
        think_time_max_us: 0,
        ..Workload::default()
    };
    let mut sim = Simulation::new(SimOptions { workload, ..SimOptions::default() });
    sim.start_workload();
    sim.run_clients();
    let stats = sim.stats().clone();
    assert_eq!(stats.operations_completed, 1_000, "{stats:?}");
    assert_eq!(stats.operations_unknown, 0);
    assert!(sim.now() < 10_000_000, "1,000 operations took {} simulated µs", sim.now());
    let report = dynamo_core::checker::check_history(sim.history());
    assert!(report.is_linearizable(), "{:?}", report.violations);
}

/// Latency changed in the middle of a run applies to the messages sent from then on.
#[test]
fn latency_can_change_during_a_run() {
    let mut sim = Simulation::new(SimOptions::default());
    sim.set_latency(1_000, 1_000);
    let timed = |sim: &mut Simulation, key: &str| {
        let started = sim.now();
        let reply = sim.execute(NodeId(0), ClientOp::Put { key: key.into(), value: "v".into() });
        assert_eq!(reply, Some(ClientReply::Written));
        sim.now() - started
    };
    let fast = timed(&mut sim, "a");
    sim.set_latency(40_000, 20_000);
    assert_eq!((sim.options().network.latency_min_us, sim.options().network.latency_max_us), (20_000, 40_000));
    let slow = timed(&mut sim, "b");
    // A write needs at least one round trip between the coordinator and another home.
    assert!(fast < 20_000 && slow >= 40_000, "fast {fast} µs, slow {slow} µs");
}
