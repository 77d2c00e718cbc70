//! Simulator throughput: message deliveries per second on one core, trace recording off.
//!
//! cargo run --release -p dynamo-core --example bench
//!
//! Runs a long fault-free workload and a lossy one with crashes, and prints deliveries per
//! second of wall time for the simulation alone (the checker is not run).

use std::time::Instant;

use dynamo_core::sim::{CrashFaults, NetworkOptions, SimOptions, Simulation, Workload};

fn measure(name: &str, options: SimOptions) {
    let mut sim = Simulation::new(options);
    sim.start_workload();
    let started = Instant::now();
    sim.run_clients();
    let elapsed = started.elapsed().as_secs_f64();
    let stats = sim.stats();
    println!(
        "{name}: {} deliveries, {} events, {} operations in {elapsed:.2}s: {:.0} deliveries/s, {:.0} operations/s",
        stats.deliveries,
        stats.events,
        stats.operations_completed,
        stats.deliveries as f64 / elapsed,
        stats.operations_completed as f64 / elapsed,
    );
}

fn main() {
    let workload = Workload { clients: 50, operations_per_client: 4_000, keys: 1_000, ..Workload::default() };
    measure("fault-free, 50 clients, 1000 keys", SimOptions { workload: workload.clone(), ..SimOptions::default() });
    measure(
        "1% loss, 1% duplication, crashes",
        SimOptions {
            seed: 2,
            workload,
            network: NetworkOptions {
                loss_per_million: 10_000,
                duplicate_per_million: 10_000,
                ..NetworkOptions::default()
            },
            crashes: Some(CrashFaults {
                up_min_ms: 500,
                up_max_ms: 2_000,
                down_min_ms: 200,
                down_max_ms: 1_000,
                down_at_once_max: 1,
                wipe_at_crash: None,
            }),
            ..SimOptions::default()
        },
    );
}
