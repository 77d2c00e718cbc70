//! How long the checker takes on a contended history: simulated clients hammering one key.
//!
//! cargo run --release -p dynamo-core --example checker_bench

use std::time::Instant;

use dynamo_core::checker::check_history;
use dynamo_core::sim::{SimOptions, Simulation, Workload};

fn main() {
    for (clients, operations) in [(16, 125), (20, 100), (50, 40)] {
        let workload = Workload {
            clients,
            operations_per_client: operations,
            keys: 1,
            think_time_max_us: 0,
            ..Workload::default()
        };
        let mut sim = Simulation::new(SimOptions { workload, ..SimOptions::default() });
        sim.start_workload();
        sim.run_clients();
        let started = Instant::now();
        let report = check_history(sim.history());
        let elapsed = started.elapsed();
        println!(
            "{} operations, {clients} concurrent clients, one key: checked in {elapsed:?} (linearizable: {}, inconclusive keys: {})",
            report.operations_checked,
            report.is_linearizable(),
            report.inconclusive.len()
        );
    }
}
