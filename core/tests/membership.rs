//! Membership changes in the simulator: the layout Paxos that decides each epoch, and what the
//! operator is told (ARCHITECTURE.md, "Membership changes").

use dynamo_core::layout::Change;
use dynamo_core::membership::{AdminRefusal, AdminReply, AdminRequest};
use dynamo_core::sim::{NetworkOptions, SimOptions, Simulation};
use dynamo_core::types::{ms, NodeId};

fn cluster(seed: u64, loss_per_million: u32) -> Simulation {
    let options = SimOptions {
        seed,
        network: NetworkOptions {
            latency_min_us: 200,
            latency_max_us: 2_000,
            loss_per_million,
            ..NetworkOptions::default()
        },
        ..SimOptions::default()
    };
    let mut sim = Simulation::new(options);
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
        assert_agreed(&sim, 2);
        assert_eq!(sim.layout().members().len(), 6);
        assert_eq!(sim.layout().transition().map(|t| t.claimant), Some(NodeId(2)));
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
        assert_agreed(&sim, 2);
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
    assert_eq!(ask(&mut sim, AdminRequest::Commit), AdminReply::Refused(AdminRefusal::Stale { base: 1, epoch: 2 }));
    assert_eq!(sim.layout().epoch(), 2, "a refused commit changes nothing");
    // The staged plan is kept until cleared.
    let AdminReply::Status(status) = ask(&mut sim, AdminRequest::Status) else { panic!("a status") };
    assert_eq!((status.epoch, status.staged.clone(), status.members.len()), (2, vec![join("5564")], 6));
    assert!(!status.transitions.is_empty(), "the join of 5566 is moving ranges");
    assert_eq!(ask(&mut sim, AdminRequest::Clear), AdminReply::Staged(Vec::new()));
}
