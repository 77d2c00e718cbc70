//! A narrated run of the simulated five-node cluster: a write, a crash, a write the crashed
//! node misses, its recovery, and reads, printed from the core's own trace events.
//!
//! cargo run --release -p dynamo-core --example demo

use dynamo_core::message::{ClientOp, MessageKind};
use dynamo_core::sim::{FaultAction, SimOptions, Simulation};
use dynamo_core::trace::{TraceEvent, TraceKind};
use dynamo_core::types::{ms, NodeId};

fn show(sim: &mut Simulation, title: &str) {
    println!("\n== {title}");
    for TraceEvent { at, node, kind } in sim.take_trace() {
        let name = sim.ring().name(node).to_string();
        let line = match kind {
            TraceKind::MessageSent { to, kind, .. }
                if kind != MessageKind::Digest && kind != MessageKind::DigestEntries =>
            {
                format!("{name} -> {}: {kind:?}", sim.ring().name(to))
            }
            TraceKind::QuorumReached { phase, .. } => format!("{name}: quorum reached ({phase:?})"),
            TraceKind::RequestAnswered { reply, .. } => format!("{name}: answers {reply:?}"),
            TraceKind::Suspected { peer } => format!("{name}: suspects {}", sim.ring().name(peer)),
            TraceKind::Trusted { peer } => format!("{name}: trusts {} again", sim.ring().name(peer)),
            TraceKind::HintStored { home, key } => {
                format!("{name}: keeps a hint of {key} for {}", sim.ring().name(home))
            }
            TraceKind::HintHandedOff { home, key } => format!("{name}: handed {key} off to {}", sim.ring().name(home)),
            TraceKind::RecoveryStarted { peers } => format!("{name}: recovery starts, asking {} peers", peers.len()),
            TraceKind::RecoveryProgress { peer, records, .. } => {
                format!("{name}: recovered {records} records from {}", sim.ring().name(peer))
            }
            TraceKind::RecoveryFinished { records } => format!("{name}: recovery finished ({records} records)"),
            TraceKind::Crashed => format!("{name}: CRASHED"),
            TraceKind::Restarted => format!("{name}: restarted from its disk"),
            _ => continue,
        };
        println!("{:>9.3} ms  {line}", at as f64 / 1_000.0);
    }
}

fn main() {
    let mut sim = Simulation::new(SimOptions { trace: true, ..SimOptions::default() });
    let homes: Vec<String> = sim.ring().homes(b"apple").iter().map(|n| sim.ring().name(*n).to_string()).collect();
    println!("key \"apple\" lives on {homes:?} (coordinator first)");
    let reply = sim.execute(NodeId(0), ClientOp::Put { key: "apple".into(), value: "red".into() });
    show(&mut sim, &format!("put apple=red via 5554 -> {reply:?}"));
    let coordinator = sim.ring().homes(b"apple")[0];
    let name = sim.ring().name(coordinator).to_string();
    sim.fault(FaultAction::Crash(coordinator));
    let reply = sim.execute(NodeId(0), ClientOp::Put { key: "apple".into(), value: "green".into() });
    show(&mut sim, &format!("{name} crashed; put apple=green via 5554 -> {reply:?}"));
    sim.fault(FaultAction::Restart(coordinator));
    let until = sim.now() + ms(500);
    sim.run_until(until);
    show(&mut sim, &format!("{name} restarts"));
    let reply = sim.execute(coordinator, ClientOp::LocalQuery);
    show(&mut sim, &format!("@ query on {name} -> {reply:?}"));
    let reply = sim.execute(NodeId(3), ClientOp::Get { key: "apple".into() });
    show(&mut sim, &format!("get apple via 5560 -> {reply:?}"));
}
