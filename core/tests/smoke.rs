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
