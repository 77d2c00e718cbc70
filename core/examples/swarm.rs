//! Runs the swarm: many seeds, each with options drawn from the seed, all checked.
//!
//! cargo run --release -p dynamo-core --example swarm -- [--seeds N] [--first S] [--threads T] [--hot]
//!
//! `--hot` draws options with `SimOptions::swarm_hot` (hot keys, slow-message tail, overlapping
//! crashes) instead of `SimOptions::swarm`.
//! Prints a line per failing seed (replay one with `--first S --seeds 1`) and a summary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dynamo_core::sim::{run, SimOptions};

fn main() {
    let mut seeds = 1_000u64;
    let mut first = 1u64;
    let mut threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let mut verbose = false;
    let mut profile: fn(u64) -> SimOptions = SimOptions::swarm;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| usage(&arg));
        match arg.as_str() {
            "--seeds" => seeds = value(),
            "--first" => first = value(),
            "--threads" => threads = value().max(1),
            "--verbose" => verbose = true,
            "--hot" => profile = SimOptions::swarm_hot,
            _ => usage(&arg),
        }
    }
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(first));
    let failures = Arc::new(AtomicU64::new(0));
    let deliveries = Arc::new(AtomicU64::new(0));
    let operations = Arc::new(AtomicU64::new(0));
    let end = first + seeds;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (next, failures, deliveries, operations) =
                (next.clone(), failures.clone(), deliveries.clone(), operations.clone());
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let report = run(profile(seed));
                deliveries.fetch_add(report.stats.deliveries, Ordering::Relaxed);
                operations
                    .fetch_add(report.stats.operations_completed + report.stats.operations_unknown, Ordering::Relaxed);
                if verbose {
                    println!("seed {seed}: {:?}", report.stats);
                }
                if !report.passed() {
                    failures.fetch_add(1, Ordering::Relaxed);
                    println!("seed {seed} FAILED: {}", report.failure_summary());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker panicked");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    println!(
        "swarm: seeds {first}..{end}: {} passed, {failed} failed in {elapsed:.1}s on {threads} threads; {} operations, {} deliveries ({:.0} deliveries/s)",
        seeds - failed,
        operations.load(Ordering::Relaxed),
        deliveries.load(Ordering::Relaxed),
        deliveries.load(Ordering::Relaxed) as f64 / elapsed,
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

fn usage(arg: &str) -> ! {
    eprintln!("unexpected argument {arg:?}; usage: swarm [--seeds N] [--first S] [--threads T] [--verbose] [--hot]");
    std::process::exit(2);
}
