//! Membership changes in the simulator: the layout Paxos that decides each epoch, and what the
//! operator is told (ARCHITECTURE.md, "Membership changes").

use dynamo_core::layout::Change;
use dynamo_core::membership::{AdminRefusal, AdminReply, AdminRequest};
use dynamo_core::sim::{NetworkOptions, SimOptions, Simulation};
use dynamo_core::types::{ms, NodeId};

/// Five nodes on links of 0.2 to 2 ms that lose `loss_per_million` of the messages.
fn options(seed: u64, loss_per_million: u32) -> SimOptions {
    let network =
        NetworkOptions { latency_min_us: 200, latency_max_us: 2_000, loss_per_million, ..NetworkOptions::default() };
    SimOptions { seed, network, ..SimOptions::default() }
}

fn cluster(seed: u64, loss_per_million: u32) -> Simulation {
    let mut sim = Simulation::new(options(seed, loss_per_million));
    // A new cluster's nodes first admit each other (every peer answers their probes).
    run_for(&mut sim, 1_000);
    sim
}

fn join(name: &str) -> Change {
    Change::Join { name: name.into() }
}

/// Runs `sim` for `millis` simulated milliseconds and returns the operator answers that came.
fn run_for(sim: &mut Simulation, millis: u64) -> Vec<(NodeId, u64, AdminReply)> {
    let until = sim.now() + ms(millis);
    sim.run_until(until);
    sim.take_admin_replies()
}

/// Every node that is up holds the same layout, at `epoch`.
fn assert_agreed(sim: &Simulation, epoch: u64) {
    let layout = sim.layout().clone();
    assert_eq!(layout.epoch(), epoch);
    for index in 0..layout.node_count() {
        let node = sim.node(NodeId(index as u32)).expect("every node is up");
        assert_eq!(node.layout(), &layout, "node {index} holds another layout");
    }
}

#[test]
fn a_committed_join_is_decided_once_and_reaches_every_node_including_the_new_one() {
    for seed in 0..20 {
        let mut sim = cluster(seed, 0);
        let handle = sim.admin(NodeId(2), AdminRequest::CommitChanges(vec![join("5564")]));
        let replies = run_for(&mut sim, 3_000);
        assert_eq!(replies, vec![(NodeId(2), handle, AdminReply::Committed { epoch: 2 })], "seed {seed}");
        // With no data to move, the joint epoch settles at once.
        assert_agreed(&sim, 3);
        assert_eq!(sim.layout().members().len(), 6);
        assert!(sim.layout().transition().is_none());
    }
}

#[test]
fn of_two_operators_committing_at_once_one_wins_and_the_other_is_told() {
    for seed in 0..40 {
        // Lossy links: phases go out again, and the two proposals interleave.
        let mut sim = cluster(seed, 100_000);
        let first = sim.admin(NodeId(0), AdminRequest::CommitChanges(vec![join("5564")]));
        let second = sim.admin(NodeId(3), AdminRequest::CommitChanges(vec![join("5566")]));
        let replies = run_for(&mut sim, 3_000);
        let committed: Vec<u64> = replies
            .iter()
            .filter(|(_, _, reply)| matches!(reply, AdminReply::Committed { epoch: 2 }))
            .map(|(_, handle, _)| *handle)
            .collect();
        assert_eq!(committed.len(), 1, "seed {seed}: exactly one change is decided: {replies:?}");
        let loser = if committed[0] == first { second } else { first };
        let told = replies.iter().any(|(_, handle, reply)| {
            *handle == loser
                && matches!(reply, AdminReply::Refused(AdminRefusal::Lost { epoch: 2 } | AdminRefusal::NoQuorum { .. }))
        });
        assert!(told, "seed {seed}: the other operator hears that it lost: {replies:?}");
        // Gossip brings every node to the decided layout, the lossy links notwithstanding.
        sim.set_loss(0);
        run_for(&mut sim, 3_000);
        assert_agreed(&sim, 3);
        let winner = if committed[0] == first { "5564" } else { "5566" };
        assert!(sim.layout().member_named(winner).is_some(), "seed {seed}");
        assert_eq!(sim.layout().members().len(), 6, "seed {seed}: only one of the joins is in");
    }
}

#[test]
fn staging_shows_a_plan_and_a_plan_made_on_an_older_epoch_is_refused() {
    let mut sim = cluster(5, 0);
    let node = NodeId(1);
    let ask = |sim: &mut Simulation, request| {
        let handle = sim.admin(node, request);
        let replies = run_for(sim, 3_000);
        let reply = replies.into_iter().find(|(_, h, _)| *h == handle).map(|(_, _, reply)| reply);
        reply.expect("every request is answered")
    };
    assert_eq!(
        ask(&mut sim, AdminRequest::Plan),
        AdminReply::Refused(AdminRefusal::Plan(dynamo_core::layout::PlanError::Empty))
    );
    assert_eq!(ask(&mut sim, AdminRequest::Stage(join("5564"))), AdminReply::Staged(vec![join("5564")]));
    let unknown = ask(&mut sim, AdminRequest::Stage(Change::Leave { name: "nobody".into() }));
    assert!(matches!(unknown, AdminReply::Refused(AdminRefusal::Plan(_))), "{unknown:?}");
    let AdminReply::Planned(plan) = ask(&mut sim, AdminRequest::Plan) else { panic!("a plan") };
    assert_eq!((plan.base_epoch, plan.changes.clone()), (1, vec![join("5564")]));
    assert!(!plan.moves.is_empty() && plan.moves.iter().all(|arc| arc.to.contains(&"5564".to_string())));
    // Another operator commits elsewhere first: the staged plan is now stale.
    let other = sim.admin(NodeId(4), AdminRequest::CommitChanges(vec![join("5566")]));
    let replies = run_for(&mut sim, 3_000);
    assert!(replies.contains(&(NodeId(4), other, AdminReply::Committed { epoch: 2 })), "{replies:?}");
    assert_eq!(ask(&mut sim, AdminRequest::Commit), AdminReply::Refused(AdminRefusal::Stale { base: 1, epoch: 3 }));
    assert_eq!(sim.layout().epoch(), 3, "a refused commit changes nothing");
    // The staged plan is kept until cleared.
    let AdminReply::Status(status) = ask(&mut sim, AdminRequest::Status) else { panic!("a status") };
    assert_eq!((status.epoch, status.staged.clone(), status.members.len()), (3, vec![join("5564")], 6));
    assert!(status.transitions.is_empty(), "the join of 5566 has settled");
    assert_eq!(ask(&mut sim, AdminRequest::Clear), AdminReply::Staged(Vec::new()));
}

/// A workload with a membership change committed in the middle of it: the history stays
/// linearizable, no acknowledged write is lost, the change settles, and every key ends on its
/// new homes alone.
fn change_under_load(seed: u64, changes: Vec<Change>, loss_per_million: u32) -> dynamo_core::sim::RunReport {
    let mut options = options(seed, loss_per_million);
    options.workload.keys = 8;
    let settle = ms(options.settle_ms);
    let mut sim = Simulation::new(options);
    sim.start_workload();
    run_for(&mut sim, 300);
    let at = NodeId((seed % 5) as u32);
    let handle = sim.admin(at, AdminRequest::CommitChanges(changes));
    sim.run_clients();
    sim.heal();
    let until = sim.now() + settle;
    sim.run_until(until);
    let replies = sim.take_admin_replies();
    let committed = replies.iter().any(|(_, h, reply)| *h == handle && matches!(reply, AdminReply::Committed { .. }));
    assert!(committed, "seed {seed}: the change is committed: {replies:?}");
    assert_eq!(sim.layout().epoch(), 3, "seed {seed}: the joint epoch settled");
    assert!(sim.layout().transition().is_none());
    // Every node holds exactly the keys it homes.
    let ring = sim.layout().ring();
    for index in 0..sim.layout().node_count() {
        let node = NodeId(index as u32);
        let Some(running) = sim.node(node) else { continue };
        for (key, _) in running.slots() {
            let homes = ring.homes(key.as_bytes());
            assert!(homes.contains(&node), "seed {seed}: node {index} still holds {key:?}, homed by {homes:?}");
        }
    }
    sim.report()
}

#[test]
fn a_join_under_load_stays_linearizable_and_settles() {
    for seed in 0..30 {
        let report = change_under_load(seed, vec![join("5564")], (seed % 2) as u32 * 50_000);
        assert!(report.passed(), "seed {seed}: {}", report.failure_summary());
    }
}

#[test]
fn a_leave_under_load_stays_linearizable_and_settles() {
    for seed in 0..30 {
        let leaving = ["5554", "5556", "5558", "5560", "5562"][(seed as usize + 2) % 5];
        let report = change_under_load(seed, vec![Change::Leave { name: leaving.into() }], 0);
        assert!(report.passed(), "seed {seed}: {}", report.failure_summary());
    }
}

/// `*` while ranges move lists every key once, with its newest value, and so does it after the
/// change settled; each node's `@` then holds exactly the keys it homes.
#[test]
fn the_global_query_is_right_during_and_after_a_transition() {
    use dynamo_core::message::{ClientOp, ClientReply};
    use dynamo_core::types::Blob;
    for seed in 0..10 {
        let mut sim = cluster(seed, 0);
        let mut expected = Vec::new();
        for index in 0..40 {
            let (key, value) = (format!("k{index:02}"), format!("v{index}-{seed}"));
            let put = ClientOp::Put { key: key.as_str().into(), value: value.as_str().into() };
            assert_eq!(sim.execute(NodeId(index % 5), put), Some(ClientReply::Written));
            expected.push((Blob::from(key.as_str()), Blob::from(value.as_str())));
        }
        let handle = sim.admin(NodeId(0), AdminRequest::CommitChanges(vec![join("5564")]));
        // Run until the change is decided: its ranges now move.
        while !sim.take_admin_replies().iter().any(|(_, h, _)| *h == handle) {
            let until = sim.now() + 100;
            sim.run_until(until);
        }
        assert!(sim.layout().transition().is_some(), "seed {seed}: queried while the ranges move");
        let during = sim.execute(NodeId(seed as u32 % 6), ClientOp::GlobalQuery);
        assert_eq!(during, Some(ClientReply::Pairs(expected.clone())), "seed {seed}: during the transition");
        run_for(&mut sim, 3_000);
        assert!(sim.layout().transition().is_none(), "seed {seed}: settled");
        let after = sim.execute(NodeId(5), ClientOp::GlobalQuery);
        assert_eq!(after, Some(ClientReply::Pairs(expected.clone())), "seed {seed}: after");
        let ring = sim.layout().ring();
        let mut held = 0;
        for index in 0..6u32 {
            let Some(ClientReply::Pairs(local)) = sim.execute(NodeId(index), ClientOp::LocalQuery) else {
                panic!("seed {seed}: @ at {index}")
            };
            assert!(local.iter().all(|(key, _)| ring.homes(key.as_bytes()).contains(&NodeId(index))), "seed {seed}");
            held += local.len();
        }
        assert_eq!(held, 3 * expected.len(), "seed {seed}: every key on exactly its three homes");
    }
}

/// For `key`: its first home C, which is to leave, its other homes A and B, and D, the home it
/// gains once C has left.
fn first_home_leaves(sim: &Simulation, key: &str) -> (Change, [NodeId; 4]) {
    let homes = sim.layout().ring().homes(key.as_bytes());
    let (c, a, b) = (homes[0], homes[1], homes[2]);
    let leave = Change::Leave { name: sim.layout().name(c).to_string() };
    let next = sim.layout().plan(std::slice::from_ref(&leave), 2, 2, NodeId(0)).unwrap().next;
    let d = *next.ring().homes(key.as_bytes()).iter().find(|node| ![a, b].contains(node)).expect("a new home");
    (leave, [c, a, b, d])
}

/// Commits `change` at `at` and runs, `step_ms` at a time, until `at` holds the settled epoch
/// (3); the change must have been committed.
fn commit_until_settled(sim: &mut Simulation, at: NodeId, change: Change, step_ms: u64, seed: u64) {
    let handle = sim.admin(at, AdminRequest::CommitChanges(vec![change]));
    let (mut waited, mut replies) = (0, Vec::new());
    while sim.node(at).is_some_and(|node| node.layout().epoch() < 3) {
        replies.extend(run_for(sim, step_ms));
        waited += step_ms;
        assert!(waited < 5_000, "seed {seed}: the change settles: {replies:?}");
    }
    let committed =
        |(_, h, reply): &(NodeId, u64, AdminReply)| *h == handle && matches!(reply, AdminReply::Committed { .. });
    assert!(replies.iter().any(committed), "seed {seed}: {replies:?}");
}

/// Waits for `writer`'s write of `key`, then reads `key` through D with its links to A cut both
/// ways, and checks the history; whether the write was acknowledged.
fn write_then_read_without_a(sim: &mut Simulation, writer: usize, key: &str, a: NodeId, d: NodeId, seed: u64) -> bool {
    use dynamo_core::checker::check_history;
    use dynamo_core::message::{ClientOp, ClientReply};
    use dynamo_core::sim::FaultAction;
    while sim.is_pending(writer) {
        run_for(sim, 10);
    }
    sim.fault(FaultAction::Cut { from: d, to: a });
    sim.fault(FaultAction::Cut { from: a, to: d });
    let read = sim.execute(d, ClientOp::Get { key: key.into() });
    let report = check_history(sim.history());
    assert!(
        report.is_linearizable(),
        "seed {seed}: the write at C answered {:?}, the read through D {read:?}: {:?}",
        sim.reply_of(writer),
        report.violations.first().map(|violation| &violation.explanation)
    );
    sim.reply_of(writer) == Some(ClientReply::Written)
}

/// A coordinator left behind by a change must not complete a round under the homes it had.
///
/// C is the first home of a key nobody has written yet, and leaves. While every link into C is
/// cut, the change is committed, carried out without C (one old home may miss it) and settles:
/// the key's homes are A, B and D. Then C hears A again (only A hears C) and a write of the key
/// reaches C. C still has the first layout, in which it may write the key at its reserved first
/// ballot, straight to phase 2: its accept needs C and one more of {A, B, C}, and A is one. A
/// read through D that cannot reach A then reads B and D, which never saw the write. The epoch
/// fence refuses C's accept at A (sent under epoch 1, A is at 3); C learns the layout from A,
/// no longer votes, and routes the write to A. Without the fence the write is acknowledged by C
/// and A alone whenever A's vote reaches C before A's layout does, and the read misses it.
#[test]
fn a_coordinator_left_behind_by_a_change_cannot_complete_under_its_old_homes() {
    use dynamo_core::message::ClientOp;
    use dynamo_core::sim::FaultAction;
    let mut acknowledged = 0;
    for seed in 0..40 {
        let mut options = options(seed, 0);
        // Anti-entropy would copy the write from A to the others behind the scenario's back.
        options.config.anti_entropy_interval_ms = 3_600_000;
        let mut sim = Simulation::new(options);
        run_for(&mut sim, 1_000);
        let key = "fresh";
        let (leave, [c, a, b, d]) = first_home_leaves(&sim, key);
        for node in 0..5 {
            sim.fault(FaultAction::Cut { from: NodeId(node), to: c });
        }
        commit_until_settled(&mut sim, a, leave, 10, seed);
        assert!(sim.node(c).is_some_and(|node| node.layout().epoch() == 1), "seed {seed}: C is behind");
        // Only A hears C again, and C's messages reach only A; the write reaches C at once.
        sim.fault(FaultAction::Heal { from: a, to: c });
        sim.fault(FaultAction::Cut { from: c, to: b });
        sim.fault(FaultAction::Cut { from: c, to: d });
        let writer = sim.spawn(c, ClientOp::Put { key: key.into(), value: "v".into() });
        acknowledged += write_then_read_without_a(&mut sim, writer, key, a, d, seed) as u32;
    }
    assert!(acknowledged > 20, "the writes at C are routed to the key's homes and written: {acknowledged} of 40");
}

/// A round in flight when its coordinator learns a new layout starts again under the new one.
///
/// C is the first home of a fresh key and leaves. Every link out of C is cut when a write of the
/// key reaches it: C writes it at its reserved first ballot (phase 2 at once), and only its own
/// vote counts so far. The change is committed, C hears of each epoch (links into it work) but
/// cannot answer, and it settles without C. Then C's link to A comes back (only that one). Were
/// C's round to go on under its first ballot and its old homes, its resent accept would carry
/// C's new epoch, pass A's fence, and complete with C and A, never reaching B or D: a read
/// through D that cannot reach A would miss the write. C starts the round again instead: it no
/// longer votes on the key, so it routes the write to A, which writes it on A, B and D.
#[test]
fn a_round_in_flight_starts_again_under_a_new_layout() {
    use dynamo_core::message::ClientOp;
    use dynamo_core::sim::FaultAction;
    let mut acknowledged = 0;
    for seed in 0..40 {
        let mut options = options(seed, 0);
        options.config.anti_entropy_interval_ms = 3_600_000;
        // C's round must still be waiting when the change has settled.
        options.config.operation_timeout_ms = 5_000;
        options.workload.timeouts.client_timeout_ms = 10_000;
        let mut sim = Simulation::new(options);
        run_for(&mut sim, 1_000);
        let key = "fresh";
        let (leave, [c, a, _, d]) = first_home_leaves(&sim, key);
        for node in 0..5 {
            sim.fault(FaultAction::Cut { from: c, to: NodeId(node) });
        }
        let writer = sim.spawn(c, ClientOp::Put { key: key.into(), value: "v".into() });
        run_for(&mut sim, 5);
        commit_until_settled(&mut sim, a, leave, 5, seed);
        assert!(sim.is_pending(writer), "seed {seed}: C's write waits");
        sim.fault(FaultAction::Heal { from: c, to: a });
        acknowledged += write_then_read_without_a(&mut sim, writer, key, a, d, seed) as u32;
    }
    assert!(acknowledged > 20, "the writes at C are routed to the key's homes and written: {acknowledged} of 40");
}

/// A node that lost its disk is refused even after every peer that first remembered its disk was
/// replaced: a new node takes in the disk ids its peers know before it is admitted (found in
/// review: with gossip slow, the replacements had never heard of the disk and admitted it).
#[test]
fn a_wiped_node_is_refused_after_all_its_first_peers_were_replaced() {
    use dynamo_core::node::Admission;
    use dynamo_core::sim::FaultAction;
    for seed in 0..10 {
        let mut options = options(seed, 0);
        // Gossip so slow that only the probes carry disk ids.
        options.config.gossip_interval_ms = 3_600_000;
        let mut sim = Simulation::new(options);
        run_for(&mut sim, 1_000);
        let a = NodeId(0);
        for (index, old) in ["5556", "5558", "5560", "5562"].iter().enumerate() {
            let old_id = sim.layout().member_named(old).expect("a member");
            // The new node's first messages are lost: its first peers learn of it only from
            // its probes, which they answer (nothing tells them of A's disk on the way).
            let fresh = NodeId(sim.layout().node_count() as u32);
            for other in 0..fresh.0 {
                sim.fault(FaultAction::Cut { from: fresh, to: NodeId(other) });
            }
            sim.fault_at(sim.now() + ms(150), FaultAction::HealAll);
            let replace = Change::Replace { old: old.to_string(), new: format!("r{index}") };
            let handle = sim.admin(a, AdminRequest::CommitChanges(vec![replace]));
            let replies = run_for(&mut sim, 3_000);
            assert!(
                replies.iter().any(|(_, h, reply)| *h == handle && matches!(reply, AdminReply::Committed { .. })),
                "seed {seed}: {replies:?}"
            );
            assert!(sim.layout().transition().is_none(), "seed {seed}: replacing {old} settles");
            sim.fault(FaultAction::Retire(old_id));
            run_for(&mut sim, 200);
        }
        sim.fault(FaultAction::Wipe(a));
        sim.fault(FaultAction::Restart(a));
        run_for(&mut sim, 2_000);
        let admission = sim.node(a).map(|node| node.admission().clone());
        assert!(matches!(admission, Some(Admission::Refused { .. })), "seed {seed}: the wiped node is {admission:?}");
    }
}
