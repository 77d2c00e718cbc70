//! Unit tests of one node driven by hand: quorum counting, the persistence barrier, retries.

use std::sync::Arc;

use super::*;
use crate::message::{ClientError, ClientOp, ClientReply, ClientRequest, MessageKind};
use crate::types::{ClientId, OpId};

/// A node under test, with helpers to feed inputs and inspect outputs.
struct Harness {
    node: Node,
    now: Micros,
    out: Vec<Output>,
}

impl Harness {
    /// The seed ring; the node is the coordinator (first home) of `key`, and has promised a
    /// ballot of another home for it before, so its writes there run both phases.
    fn coordinator_of(key: &str) -> Harness {
        let mut h = Harness::home_of(key, 0, DurableState::default());
        let other = h.node.ring.homes(key.as_bytes())[1];
        let ballot = Ballot { round: 2, node: other };
        h.deliver(other, Message::Prepare { txn: 1, key: Blob::from(key), ballot });
        h.persist_all();
        h.out.clear();
        h
    }

    /// The coordinator (first home) of `key`, which has never seen the key.
    fn fresh_coordinator_of(key: &str) -> Harness {
        Harness::home_of(key, 0, DurableState::default())
    }

    /// Home number `index` of `key` (0: the first), started from `durable`.
    fn home_of(key: &str, index: usize, durable: DurableState) -> Harness {
        let config = Config::default();
        let ring = Arc::new(Ring::new(&config.nodes, 1, 3));
        let id = ring.homes(key.as_bytes())[index];
        let options = NodeOptions { id, config, seed: 1, trace: true };
        let mut out = Vec::new();
        let node = started(options, durable, &mut out);
        Harness { node, now: 0, out }
    }

    /// This node started again (no tracing) from `durable`.
    fn restarted(&self, durable: DurableState) -> Node {
        let options = NodeOptions { id: self.node.id, config: self.node.config.clone(), seed: 1, trace: false };
        started(options, durable, &mut Vec::new())
    }

    fn step(&mut self, input: Input) {
        self.out.clear();
        self.node.step(self.now, input, &mut self.out);
    }

    /// Makes every issued persist batch durable.
    fn persist_all(&mut self) {
        self.persist_through(self.node.persist_issued);
    }

    /// Makes every issued persist batch durable, adding what that releases to the outputs of the
    /// last step (which `persist_all` would replace).
    fn settle(&mut self) {
        let mut released = Vec::new();
        self.node.step(self.now, Input::Persisted { batch: self.node.persist_issued }, &mut released);
        self.out.extend(released);
    }

    /// Makes persist batches up to `batch` durable; outputs go to `out`.
    fn persist_through(&mut self, batch: u64) {
        self.out.clear();
        let mut all = Vec::new();
        self.node.step(self.now, Input::Persisted { batch }, &mut all);
        self.out.extend(all);
    }

    fn sends(&self) -> Vec<(NodeId, Message)> {
        self.out
            .iter()
            .filter_map(|output| match output {
                Output::Send { to, envelope } => Some((*to, envelope.message.clone())),
                _ => None,
            })
            .collect()
    }

    /// The transaction and ballot of the first prepare among the outputs.
    fn prepare_sent(&self) -> (u64, Ballot) {
        self.sends()
            .into_iter()
            .find_map(|(_, m)| match m {
                Message::Prepare { txn, ballot, .. } => Some((txn, ballot)),
                _ => None,
            })
            .expect("a prepare was sent")
    }

    /// The transaction and record of the first accept among the outputs.
    fn accept_sent(&self) -> (u64, Record) {
        self.sends()
            .into_iter()
            .find_map(|(_, m)| match m {
                Message::Accept { txn, record, .. } => Some((txn, record)),
                _ => None,
            })
            .expect("an accept was sent")
    }

    fn replies(&self) -> Vec<ClientReply> {
        self.out
            .iter()
            .filter_map(|output| match output {
                Output::Reply { reply, .. } => Some(reply.clone()),
                _ => None,
            })
            .collect()
    }

    fn deliver(&mut self, from: NodeId, message: Message) {
        self.step(Input::Message { from, envelope: Envelope { id: 0, epoch: 1, message } });
    }
}

/// Starts a node from `durable` and makes its first batch (its new incarnation) durable, which
/// every output waits for; the outputs go to `out`.
/// A node that started with nothing stored is admitted (every peer answers its probe that it
/// remembers another disk of it) and that batch is durable too; the probes are not in `out`.
fn started(options: NodeOptions, durable: DurableState, out: &mut Vec<Output>) -> Node {
    let mut node = Node::start(options, durable, 0, out).expect("the node starts");
    node.step(0, Input::Persisted { batch: Node::START_BATCH }, out);
    if let Admission::Probing { .. } = node.admission() {
        out.retain(|output| !matches!(output, Output::Send { envelope, .. } if envelope.message.is_probe()));
        let mut admission = Vec::new();
        let peers: Vec<NodeId> =
            (0..node.ring.node_count() as u32).map(NodeId).filter(|peer| *peer != node.id).collect();
        for peer in peers {
            let envelope =
                Envelope { id: 0, epoch: 1, message: Message::ProbeReply { remembered: node.disk, disks: Vec::new() } };
            node.step(0, Input::Message { from: peer, envelope }, &mut admission);
        }
        assert_eq!(node.admission(), &Admission::Admitted);
        node.step(0, Input::Persisted { batch: node.persist_issued }, &mut admission);
    }
    node
}

/// What a node that ran before (incarnation 1) left on disk, with nothing else in it.
fn ran_before() -> DurableState {
    DurableState { incarnation: 1, ..DurableState::default() }
}

/// A record written by `client` under ballot (`round`, `node`), with no history.
fn record_by(node: NodeId, round: u64, value: &str, client: u64) -> Record {
    Record {
        ballot: Ballot { round, node },
        clock: crate::version::VectorClock::new(),
        value: Some(value.into()),
        op: OpId { client: ClientId(client), seq: 1 },
        writers: Vec::new().into(),
    }
}

fn put(key: &str, value: &str, seq: u64) -> Input {
    let op = ClientOp::Put { key: key.into(), value: value.into() };
    Input::Client { handle: 9, request: ClientRequest { id: OpId { client: ClientId(1), seq }, op } }
}

#[test]
fn a_write_needs_r_promises_then_w_acks_and_waits_for_its_own_persist() {
    let mut h = Harness::coordinator_of("k");
    let start = h.node.persist_issued;
    let homes = h.node.ring.homes(b"k");
    h.step(put("k", "v", 1));
    // Prepares reveal nothing, so they leave at once, while the own promise is being persisted.
    let prepares: Vec<_> = h.sends().into_iter().filter(|(_, m)| matches!(m, Message::Prepare { .. })).collect();
    assert_eq!(prepares.len(), 2, "prepare goes to the two other homes");
    let (txn, ballot) = match &prepares[0].1 {
        Message::Prepare { txn, ballot, .. } => (*txn, *ballot),
        _ => unreachable!(),
    };
    // The coordinator's own promise is one vote; one more reaches R = 2. The accepts depend on
    // the own promise, which is not durable yet: they are held.
    h.deliver(homes[1], Message::Promise { txn, ballot, result: Ok(None) });
    assert!(h.sends().is_empty(), "accepts wait for the coordinator's own promise to be durable");
    // One batch holds the own promise, the next the own accept (made in the same step).
    assert_eq!(h.node.persist_issued, start + 2);
    h.persist_through(start + 1);
    let accepts: Vec<_> = h.sends().into_iter().filter(|(_, m)| matches!(m, Message::Accept { .. })).collect();
    assert_eq!(accepts.len(), 2, "accept goes to the two other homes after R promises");
    assert!(h.replies().is_empty());
    // A refusal is not a vote.
    let refusal = Err(Refusal::Promised(Ballot { round: 99, node: homes[2] }));
    h.deliver(homes[2], Message::Accepted { txn, ballot, result: refusal, next: None });
    assert!(h.replies().is_empty(), "own ack plus a refusal is not W = 2");
    h.deliver(homes[1], Message::Accepted { txn, ballot, result: Ok(()), next: None });
    assert!(h.replies().is_empty(), "the answer waits for the coordinator's own accept to be durable");
    h.persist_through(start + 2);
    assert_eq!(h.replies(), vec![ClientReply::Written]);
    // Duplicates after the answer change nothing.
    h.deliver(homes[1], Message::Accepted { txn, ballot, result: Ok(()), next: None });
    assert!(h.replies().is_empty());
}

#[test]
fn a_keys_first_write_by_its_first_home_skips_phase_one_behind_a_durable_own_promise() {
    let mut h = Harness::fresh_coordinator_of("k");
    let homes = h.node.ring.homes(b"k");
    let first = Ballot::first(h.node.id);
    let issued = h.node.persist_issued;
    h.step(put("k", "v", 1));
    assert!(h.sends().iter().all(|(_, m)| !matches!(m, Message::Prepare { .. })), "no phase 1: {:?}", h.sends());
    assert!(h.sends().is_empty(), "the accepts wait for the own promise of the first ballot to be durable");
    // The own promise (and the own accept, made in the same step) wait in one persist batch.
    assert!(h.node.store[&Blob::from("k")].slot.promised >= first);
    assert_eq!(h.node.persist_issued, issued + 1);
    h.settle();
    let accepts: Vec<Ballot> = h
        .sends()
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Accept { record, .. } => Some(record.ballot),
            _ => None,
        })
        .collect();
    assert_eq!(accepts, vec![first, first], "the first ballot goes to the two other homes");
    let (txn, _) = h.accept_sent();
    h.deliver(homes[1], Message::Accepted { txn, ballot: first, result: Ok(()), next: None });
    h.settle();
    assert_eq!(h.replies(), vec![ClientReply::Written]);
    // Any later round on the key prepares above the reserved first round.
    assert!(h.node.next_round() > Ballot::FIRST_ROUND);
}

#[test]
fn a_first_home_that_promised_anything_for_a_key_prepares_and_so_does_any_other_home() {
    // The first home with a promise on record (from another coordinator, or its own earlier
    // life) does not use the first ballot again.
    let mut h = Harness::coordinator_of("k");
    h.step(put("k", "v", 1));
    let (_, ballot) = h.prepare_sent();
    assert!(ballot.round > Ballot::FIRST_ROUND);
    // The second home never uses the first ballot, even for a key it has never seen.
    let mut second = Harness::home_of("k", 1, DurableState::default());
    let homes = second.node.ring.homes(b"k");
    let request = ClientRequest {
        id: OpId { client: ClientId(1), seq: 1 },
        op: ClientOp::Put { key: "k".into(), value: "v".into() },
    };
    // Forwarded to it (as after the first home stopped answering): it coordinates.
    second.deliver(homes[2], Message::Forward { txn: 5, request, attempt: 2 });
    let (_, ballot) = second.prepare_sent();
    assert!(ballot.round > Ballot::FIRST_ROUND);
}

#[test]
fn a_replica_refuses_a_different_record_under_a_ballot_it_already_holds() {
    // A first home whose disk was wiped could write a key's first ballot a second time, with
    // another value: replicas holding the first record must not acknowledge the second.
    let mut replica = Harness::home_of("k", 1, DurableState::default());
    let homes = replica.node.ring.homes(b"k");
    let ballot = Ballot::first(homes[0]);
    let key = Blob::from("k");
    let original = Record { ballot, ..record_by(homes[0], 1, "v1", 7) };
    let accept = |record: Record| Message::Accept {
        txn: 1,
        key: key.clone(),
        record,
        purpose: AcceptPurpose::Write,
        next: None,
    };
    replica.deliver(homes[0], accept(original.clone()));
    replica.settle();
    let answers = |h: &Harness| -> Vec<Result<(), Refusal>> {
        h.sends()
            .into_iter()
            .filter_map(|(_, m)| match m {
                Message::Accepted { result, .. } => Some(result),
                _ => None,
            })
            .collect()
    };
    assert_eq!(answers(&replica), vec![Ok(())]);
    // The same record again (a duplicate, a repair) is acknowledged.
    replica.deliver(homes[0], accept(original.clone()));
    replica.settle();
    assert_eq!(answers(&replica), vec![Ok(())]);
    // Another record under the same ballot is not.
    let other = Record { ballot, ..record_by(homes[0], 1, "v2", 8) };
    replica.deliver(homes[0], accept(other));
    replica.settle();
    assert!(matches!(answers(&replica)[..], [Err(Refusal::Promised(_))]), "{:?}", answers(&replica));
    assert_eq!(replica.node.store[&key].slot.record.as_ref().and_then(|r| r.value.clone()), Some(Blob::from("v1")));
}

#[test]
fn refused_promises_make_the_coordinator_retry_above_them() {
    let mut h = Harness::coordinator_of("k");
    let homes = h.node.ring.homes(b"k");
    h.step(put("k", "v", 1));
    let (txn, ballot) = h.prepare_sent();
    let high = Ballot { round: 50, node: homes[1] };
    h.deliver(homes[1], Message::Promise { txn, ballot, result: Err(Refusal::Promised(high)) });
    h.deliver(homes[2], Message::Promise { txn, ballot, result: Err(Refusal::Promised(high)) });
    // Two refusals out of three homes: R = 2 is impossible this round; back off and retry.
    h.now += 30_000;
    h.step(Input::Tick);
    let retried = h.sends().into_iter().find_map(|(_, m)| match m {
        Message::Prepare { ballot, .. } => Some(ballot),
        _ => None,
    });
    assert!(retried.is_some_and(|b| b > high), "the new ballot is above the promise it saw: {retried:?}");
}

#[test]
fn a_retried_request_is_recognized_and_not_applied_twice() {
    let mut h = Harness::coordinator_of("k");
    let homes = h.node.ring.homes(b"k");
    // A version that already includes request (client 1, seq 1), written over by client 2.
    let existing = Record {
        ballot: Ballot { round: 7, node: homes[1] },
        clock: crate::version::VectorClock::new(),
        value: Some("by client 2".into()),
        op: OpId { client: ClientId(2), seq: 4 },
        writers: vec![
            crate::store::Writer { client: ClientId(1), seq: 1, round: 3, removed: false },
            crate::store::Writer { client: ClientId(2), seq: 4, round: 7, removed: false },
        ]
        .into(),
    };
    h.step(put("k", "retried", 1));
    let (txn, ballot) = h.prepare_sent();
    h.deliver(homes[1], Message::Promise { txn, ballot, result: Ok(Some(existing)) });
    h.persist_all();
    let (_, record) = h.accept_sent();
    assert_eq!(record.value, Some("by client 2".into()), "the retry must not undo client 2's write");
    assert_eq!(record.op.client, ClientId(2));
}

#[test]
fn a_crash_loses_exactly_the_unpersisted_state() {
    let mut h = Harness::coordinator_of("k");
    let homes = h.node.ring.homes(b"k");
    let record = record_by(homes[1], 3, "v", 1);
    h.deliver(homes[1], Message::Accept { txn: 1, key: "k".into(), record, purpose: AcceptPurpose::Write, next: None });
    let batch = h.out.iter().find_map(|o| match o {
        Output::Persist(batch) => Some(batch.clone()),
        _ => None,
    });
    assert!(batch.is_some(), "accepting is persisted");
    assert!(h.sends().is_empty(), "the ack waits for the persist");
    // A crash before the batch is durable: the restarted node does not have the record.
    let restart = |durable: DurableState| h.restarted(durable);
    assert!(restart(DurableState::default()).record(b"k").is_none());
    // Once the batch is applied, the restarted node has it.
    let mut durable = DurableState::default();
    durable.apply(&batch.expect("checked above"));
    assert_eq!(restart(durable).record(b"k").and_then(|r| r.value.clone()), Some("v".into()));
    // After the persist the ack goes out.
    h.persist_all();
    assert!(h.sends().iter().any(|(_, m)| matches!(m, Message::Accepted { result: Ok(()), .. })));
}

/// Found in review: a delete recognized as already applied (its own first attempt's tombstone
/// came back in a later prepare round) answered `Deleted(0)` although it had removed the value.
#[test]
fn a_delete_retried_by_its_own_coordinator_still_reports_what_it_removed() {
    let mut h = Harness::coordinator_of("k");
    let homes = h.node.ring.homes(b"k");
    // An acknowledged value "v" on the two other homes (written earlier by client 2).
    let v = Record {
        ballot: Ballot { round: 1, node: NodeId(0) },
        clock: crate::version::VectorClock::new(),
        value: Some("v".into()),
        op: OpId { client: ClientId(2), seq: 1 },
        writers: vec![crate::store::Writer { client: ClientId(2), seq: 1, round: 1, removed: false }].into(),
    };
    let delete = Input::Client {
        handle: 9,
        request: ClientRequest { id: OpId { client: ClientId(1), seq: 1 }, op: ClientOp::Delete { key: "k".into() } },
    };
    h.step(delete);
    let (txn, ballot) = h.prepare_sent();
    h.deliver(homes[1], Message::Promise { txn, ballot, result: Ok(Some(v.clone())) });
    h.persist_all();
    let first: Vec<_> = h.sends().into_iter().filter(|(_, m)| matches!(m, Message::Accept { .. })).collect();
    assert_eq!(first.len(), 2);
    // Both other homes refuse the accept (they promised a higher ballot meanwhile, to a prepare
    // that was then abandoned); the coordinator's own accept of the tombstone stands.
    assert!(h.node.record(b"k").is_some_and(|r| r.value.is_none()));
    let (_, tombstone) = h.accept_sent();
    let higher = Ballot { round: ballot.round + 5, node: homes[2] };
    for home in [homes[1], homes[2]] {
        let result = Err(crate::message::Refusal::Promised(higher));
        h.deliver(home, Message::Accepted { txn, ballot: tombstone.ballot, result, next: None });
    }
    h.now += 150_000;
    h.step(Input::Tick);
    let (txn2, ballot2) = h.prepare_sent();
    assert!(ballot2 > ballot);
    h.persist_all();
    h.deliver(homes[1], Message::Promise { txn: txn2, ballot: ballot2, result: Ok(Some(v)) });
    h.settle();
    let (_, accept) = h.accept_sent();
    h.deliver(homes[1], Message::Accepted { txn: txn2, ballot: accept.ballot, result: Ok(()), next: None });
    h.settle();
    let replies = h.replies();
    // The key held "v" and nobody else deleted it: a linearizable delete removed 1 key.
    assert_eq!(replies.first(), Some(&ClientReply::Deleted(1)), "got {replies:?}");
}

/// Found in review: a coordinator that is not a home replica persists nothing before its accept
/// leaves, so after a crash it could reuse a ballot for another value. Only homes coordinate: a
/// write reaching any other node goes on to a home.
#[test]
fn a_node_that_is_not_a_home_passes_writes_on_instead_of_coordinating() {
    let config = Config::default();
    let ring = Arc::new(Ring::new(&config.nodes, 1, 3));
    let preference = ring.preference(b"k");
    let options = NodeOptions { id: preference[3], config, seed: 1, trace: false };
    let mut out = Vec::new();
    let mut node = started(options, DurableState::default(), &mut out);
    let issued = node.persist_issued;
    let request = ClientRequest {
        id: OpId { client: ClientId(1), seq: 1 },
        op: ClientOp::Put { key: "k".into(), value: "x".into() },
    };
    // A forward that a receiver's fourth attempt would once have sent to this fallback.
    let forward = Message::Forward { txn: 5, request, attempt: 4 };
    out.clear();
    node.step(
        0,
        Input::Message { from: preference[4], envelope: Envelope { id: 0, epoch: 1, message: forward } },
        &mut out,
    );
    let sends: Vec<(NodeId, MessageKind)> = out
        .iter()
        .filter_map(|output| match output {
            Output::Send { to, envelope } => Some((*to, envelope.message.kind())),
            _ => None,
        })
        .collect();
    assert!(sends.iter().all(|(_, kind)| *kind != MessageKind::Prepare && *kind != MessageKind::Accept), "{sends:?}");
    assert!(sends.contains(&(preference[0], MessageKind::Forward)), "passed on to the coordinator: {sends:?}");
    assert_eq!(node.persist_issued, issued, "nothing persisted beyond the start and the admission");
}

/// A replica never reveals state that is not durable yet: a read or a prepare that arrives
/// while an accepted record is still being persisted is answered only after the persist (a
/// crash in between would otherwise let a reader see a value that then disappears).
#[test]
fn answers_that_reveal_an_unpersisted_record_wait_for_it() {
    let mut h = Harness::coordinator_of("k");
    let homes = h.node.ring.homes(b"k");
    let record = record_by(homes[1], 3, "v", 1);
    h.deliver(homes[1], Message::Accept { txn: 1, key: "k".into(), record, purpose: AcceptPurpose::Write, next: None });
    assert!(h.sends().is_empty(), "the ack waits for the persist");
    h.deliver(homes[2], Message::Read { txn: 2, key: "k".into() });
    assert!(h.sends().is_empty(), "a read of the unpersisted record waits too");
    h.deliver(homes[2], Message::Prepare { txn: 3, key: "k".into(), ballot: Ballot { round: 4, node: homes[2] } });
    assert!(h.sends().is_empty(), "so does a promise that reports it");
    h.persist_all();
    let sent = h.sends();
    assert!(sent.iter().any(|(to, m)| *to == homes[1] && matches!(m, Message::Accepted { result: Ok(()), .. })));
    assert!(sent.iter().any(|(to, m)| *to == homes[2]
        && matches!(m, Message::ReadReply { result: Ok(Some(r)), .. } if r.value == Some("v".into()))));
    assert!(sent
        .iter()
        .any(|(to, m)| *to == homes[2] && matches!(m, Message::Promise { txn: 3, result: Ok(Some(_)), .. })));
}

fn put_by(client: u64, key: &str, value: &str, handle: u64) -> Input {
    let op = ClientOp::Put { key: key.into(), value: value.into() };
    Input::Client { handle, request: ClientRequest { id: OpId { client: ClientId(client), seq: 1 }, op } }
}

/// Writes queued behind a round ride the next one together, each with its own deadline: when
/// the earliest runs out only that write fails, and the round goes on for the others.
#[test]
fn a_write_that_joined_a_round_later_keeps_its_own_deadline() {
    let mut h = Harness::coordinator_of("k");
    let homes = h.node.ring.homes(b"k");
    let timeout = h.node.config.operation_timeout();
    // The first write's round is in flight; two more queue behind it, at 1 ms and at 500 ms.
    h.step(put_by(1, "k", "a", 1));
    let (txn, ballot) = h.prepare_sent();
    h.now = 1_000;
    h.step(put_by(2, "k", "b", 2));
    h.now = 500_000;
    h.step(put_by(3, "k", "c", 3));
    h.deliver(homes[1], Message::Promise { txn, ballot, result: Ok(None) });
    h.persist_all();
    h.deliver(homes[1], Message::Accepted { txn, ballot, result: Ok(()), next: None });
    h.settle();
    assert_eq!(h.replies(), vec![ClientReply::Written], "the first write is answered");
    // Its end starts the next round with both queued writes; nobody answers it any more.
    let prepare_of = |sends: Vec<(NodeId, Message)>| {
        sends.into_iter().find_map(|(_, m)| match m {
            Message::Prepare { txn, ballot, .. } => Some((txn, ballot)),
            _ => None,
        })
    };
    let mut prepare = prepare_of(h.sends()).expect("the next round prepares");
    let mut failed_at = None;
    let mut replies = Vec::new();
    // (A round notices its deadline when its request timer fires: within 100 ms of it.)
    while h.now < 1_000 + timeout + 200_000 {
        h.now += 10_000;
        h.step(Input::Tick);
        h.settle();
        for reply in h.replies() {
            failed_at.get_or_insert(h.now);
            replies.push(reply);
        }
        if let Some(sent) = prepare_of(h.sends()) {
            prepare = sent;
        }
    }
    assert!(matches!(replies.as_slice(), [ClientReply::Error(ClientError::Unavailable(_))]), "{replies:?}");
    let failed_at = failed_at.expect("the second write failed");
    assert!(failed_at >= 1_000 + timeout && failed_at < 500_000 + timeout, "at its own deadline: {failed_at}");
    // The third write is still being written: a quorum now answers, and it succeeds.
    let (txn, ballot) = prepare;
    h.deliver(homes[2], Message::Promise { txn, ballot, result: Ok(None) });
    h.settle();
    // The round goes on for the third write.
    let (_, record) = h.accept_sent();
    assert_eq!(record.value, Some("c".into()));
    h.deliver(homes[2], Message::Accepted { txn, ballot, result: Ok(()), next: None });
    h.settle();
    assert_eq!(h.replies(), vec![ClientReply::Written]);
}

fn get_by(client: u64, key: &str, handle: u64) -> Input {
    let op = ClientOp::Get { key: key.into() };
    Input::Client { handle, request: ClientRequest { id: OpId { client: ClientId(client), seq: 1 }, op } }
}

/// Reads of one key share rounds, but a read never shares a round that started before it
/// arrived: that round may have read the replicas before a write that finished in between.
#[test]
fn a_read_arriving_during_a_read_round_waits_for_the_next_one() {
    let mut h = Harness::coordinator_of("k");
    let homes = h.node.ring.homes(b"k");
    h.step(get_by(1, "k", 1));
    let first = h.sends().into_iter().find_map(|(_, m)| match m {
        Message::Read { txn, .. } => Some(txn),
        _ => None,
    });
    let first = first.expect("the first read asks the homes");
    // Meanwhile another home coordinates a write of "new" that finishes; then two more reads
    // arrive here, while the first round's replies (taken before the write) are on their way.
    h.now = 1_000;
    h.step(get_by(2, "k", 2));
    assert!(h.sends().is_empty(), "the second read waits for the round in flight");
    h.step(get_by(3, "k", 3));
    h.deliver(homes[1], Message::ReadReply { txn: first, result: Ok(None) });
    let mut replies: Vec<(u64, ClientReply)> = h
        .out
        .iter()
        .filter_map(|output| match output {
            Output::Reply { handle, reply } => Some((*handle, reply.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(replies, vec![(1, ClientReply::Value(None))], "only the first read is answered by the old round");
    let second: Vec<u64> = h
        .sends()
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Read { txn, .. } => Some(txn),
            _ => None,
        })
        .collect();
    // (The coordinator's own read is a local message, not a send.)
    assert!(second.len() == 2 && second[0] == second[1], "one new round for both waiting reads: {second:?}");
    let txn = second[0];
    let record = record_by(homes[1], 7, "new", 9);
    h.deliver(homes[1], Message::ReadReply { txn, result: Ok(Some(record.clone())) });
    h.deliver(homes[2], Message::ReadReply { txn, result: Ok(Some(record)) });
    h.settle();
    replies = h
        .out
        .iter()
        .filter_map(|output| match output {
            Output::Reply { handle, reply } => Some((*handle, reply.clone())),
            _ => None,
        })
        .collect();
    replies.sort_by_key(|(handle, _)| *handle);
    let new = ClientReply::Value(Some("new".into()));
    assert_eq!(replies, vec![(2, new.clone()), (3, new)]);
}

/// The digests a node keeps up to date on every stored record equal digests computed from
/// scratch over its store, for every peer, after records arrive, are replaced and are refused
/// in any order, and again after a restart rebuilds them from disk.
#[test]
fn incremental_digests_equal_digests_computed_from_scratch() {
    let mut h = Harness::fresh_coordinator_of("k0");
    let mut rng = crate::types::Rng::new(5);
    let from = h.node.ring.homes(b"k0")[1];
    for step in 0..3_000u64 {
        let key = format!("k{}", rng.below(200));
        let writer = NodeId(rng.below(5) as u32);
        let record = record_by(writer, 1 + rng.below(40), &format!("v{step}"), step);
        h.deliver(from, Message::Records { records: vec![(Blob::from(key.as_str()), record)] });
    }
    // The digest's definition, over the whole store.
    let from_scratch = |node: &Node, peer: NodeId| {
        let mut buckets = vec![0u64; crate::message::DIGEST_BUCKETS as usize];
        let mask = 1u64 << node.id.0 | 1u64 << peer.0;
        for (key, state) in &node.store {
            let Some(record) = &state.slot.record else { continue };
            if state.homes_mask & mask == mask {
                let hash = background::fnv(key.as_bytes());
                let entry = background::mix(hash ^ background::mix(record.ballot.round) ^ record.ballot.node.0 as u64);
                buckets[(hash % crate::message::DIGEST_BUCKETS as u64) as usize] ^= entry;
            }
        }
        buckets
    };
    let peers: Vec<NodeId> = (0..5).map(NodeId).filter(|peer| *peer != h.node.id).collect();
    let stored = h.node.store.values().filter(|state| state.slot.record.is_some()).count();
    assert!(stored > 100, "the test stores a fair number of keys ({stored})");
    for peer in &peers {
        assert_eq!(h.node.digest(*peer), from_scratch(&h.node, *peer), "digest for {peer:?}");
    }
    // A restart rebuilds them from what is durable.
    h.persist_all();
    let durable = DurableState {
        slots: h.node.store.iter().map(|(key, state)| (key.clone(), state.slot.clone())).collect(),
        hints: BTreeMap::new(),
        incarnation: 1,
        ..DurableState::default()
    };
    let restarted = h.restarted(durable);
    for peer in &peers {
        assert_eq!(restarted.digest(*peer), h.node.digest(*peer), "digest for {peer:?} after a restart");
    }
}

/// A round that gets no quorum in time is not abandoned: the phase goes again, under the same
/// ballot, to the homes that have not answered, and an answer to the first sending still
/// counts. The waits double: the third sending comes two request timeouts after the second.
#[test]
fn a_round_without_a_quorum_in_time_sends_its_phase_again_under_the_same_ballot() {
    let mut h = Harness::coordinator_of("k");
    let homes = h.node.ring.homes(b"k");
    let timeout = h.node.config.request_timeout();
    h.step(put("k", "v", 1));
    let (txn, ballot) = h.prepare_sent();
    h.persist_all();
    h.deliver(homes[1], Message::Promise { txn, ballot, result: Ok(None) });
    h.settle();
    let (_, record) = h.accept_sent();
    // homes[1] acknowledged the prepare but its accept is slow; homes[2] never answered.
    h.now += timeout;
    h.step(Input::Tick);
    let again: Vec<(NodeId, Ballot)> = h
        .sends()
        .into_iter()
        .map(|(to, m)| match m {
            Message::Accept { record, .. } => (to, record.ballot),
            other => panic!("only accepts go out again, got {other:?}"),
        })
        .collect();
    assert_eq!(again, vec![(homes[1], record.ballot), (homes[2], record.ballot)]);
    h.now += timeout;
    h.step(Input::Tick);
    assert!(h.sends().is_empty(), "the second wait is two request timeouts");
    h.now += timeout;
    h.step(Input::Tick);
    let accepts = h.sends().into_iter().filter(|(_, m)| matches!(m, Message::Accept { .. })).count();
    assert_eq!(accepts, 2, "the third sending");
    // The answer to the first accept arrives at last, and completes the write.
    h.deliver(homes[1], Message::Accepted { txn, ballot: record.ballot, result: Ok(()), next: None });
    h.settle();
    assert_eq!(h.replies(), vec![ClientReply::Written]);
}

/// Found in review: an `@` query to a node whose recovery could not finish (two of its peers
/// down) waited for ever; it answers unavailable after the operation timeout.
#[test]
fn an_at_query_during_a_recovery_that_cannot_finish_answers_unavailable_in_time() {
    let h = Harness::fresh_coordinator_of("k");
    let mut node = h.restarted(ran_before());
    assert!(node.is_recovering());
    let query = ClientRequest { id: OpId { client: ClientId(1), seq: 1 }, op: ClientOp::LocalQuery };
    let mut out = Vec::new();
    node.step(0, Input::Client { handle: 7, request: query }, &mut out);
    let answered = |out: &[Output]| {
        out.iter().find_map(|output| match output {
            Output::Reply { handle: 7, reply } => Some(reply.clone()),
            _ => None,
        })
    };
    assert_eq!(answered(&out), None, "a recovering node answers @ once it has what it missed");
    let timeout = node.config.operation_timeout();
    let mut now = 0;
    let mut reply = None;
    // No peer ever answers; the node only gets its ticks.
    while reply.is_none() && now <= 2 * timeout {
        now = node.next_wakeup().expect("a recovering node keeps a timer");
        out.clear();
        node.step(now, Input::Tick, &mut out);
        reply = answered(&out);
    }
    assert!(now >= timeout, "not before the operation timeout: {now}");
    assert!(now <= timeout + node.config.request_timeout(), "within a tick of it: {now}");
    match reply {
        Some(ClientReply::Error(ClientError::Unavailable(cause))) => {
            assert!(matches!(cause, crate::message::Unavailable::Recovering { peers_waiting: 4 }), "{cause:?}");
            assert!(cause.to_string().contains("still recovering"), "{cause}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(node.is_recovering(), "recovery itself carries on");
}

/// Every id a node makes (messages, transactions, client sessions) of one life, as the outputs
/// and its client id allocator show them.
fn ids_of_one_life(node: &mut Node, now: Micros, out: &mut Vec<Output>) -> BTreeSet<u64> {
    let mut ids: BTreeSet<u64> = BTreeSet::new();
    let mut client_ids = node.take_client_ids();
    ids.extend((0..100).map(|_| client_ids.mint().0));
    // A few writes and reads from a client of the node's own, then time for background work.
    for seq in 1..=20 {
        let op = if seq % 2 == 0 {
            ClientOp::Put { key: format!("k{seq}").into(), value: "v".into() }
        } else {
            ClientOp::Get { key: format!("k{seq}").into() }
        };
        let request = ClientRequest { id: OpId { client: ClientId(1), seq }, op };
        node.step(now, Input::Client { handle: seq, request }, out);
    }
    let later = now + node.config.anti_entropy_interval_ms * 2_000;
    while let Some(wake) = node.next_wakeup().filter(|wake| *wake <= later) {
        node.step(wake, Input::Tick, out);
        node.step(wake, Input::Persisted { batch: node.persist_issued }, out);
    }
    for output in out.iter() {
        if let Output::Send { envelope, .. } = output {
            ids.insert(envelope.id);
            ids.extend(envelope.message.txn());
        }
    }
    ids
}

/// Fix of a driver's decision: the incarnation was the wall clock's milliseconds, so a clock
/// set back (an NTP step, a restored VM) could hand out message, transaction and client ids of
/// an earlier life again. It is durable state of the core now: each start bumps it, and the
/// bump is durable before any message leaves.
#[test]
fn a_restart_with_the_clock_set_back_reuses_no_id() {
    let config = Config::default();
    let options = NodeOptions { id: NodeId(2), config, seed: 1, trace: false };
    let hour = 3_600_000_000;
    let mut durable = DurableState::default();
    let mut seen = BTreeSet::new();
    for (life, now) in [(1, 5 * hour), (2, 4 * hour), (3, 4 * hour), (4, hour)] {
        let mut out = Vec::new();
        let mut node = Node::start(options.clone(), durable.clone(), now, &mut out).expect("starts");
        assert_eq!(node.incarnation(), life);
        let first = out.iter().find_map(|output| match output {
            Output::Persist(batch) => Some(batch.clone()),
            _ => None,
        });
        let first = first.expect("the start persists the new incarnation");
        assert_eq!((first.seq, first.incarnation), (Node::START_BATCH, Some(life)));
        let ids = ids_of_one_life(&mut node, now, &mut out);
        assert!(ids.len() > 100, "life {life} made ids: {}", ids.len());
        let reused: Vec<&u64> = ids.intersection(&seen).collect();
        assert!(reused.is_empty(), "life {life} (clock at {now}) reused ids of an earlier life: {reused:?}");
        seen.extend(ids);
        for output in &out {
            if let Output::Persist(batch) = output {
                durable.apply(batch);
            }
        }
    }
}

/// The start batch is a barrier for everything: not even a request that reveals no state (a
/// prepare, a forward) leaves before the node's new incarnation is durable.
#[test]
fn nothing_leaves_a_started_node_before_its_incarnation_is_durable() {
    let config = Config::default();
    let ring = Arc::new(Ring::new(&config.nodes, 1, 3));
    let key = "k";
    let id = ring.preference(key.as_bytes())[3];
    let options = NodeOptions { id, config, seed: 1, trace: false };
    let mut out = Vec::new();
    let mut node = Node::start(options, DurableState::default(), 0, &mut out).expect("starts");
    out.clear();
    node.step(0, put(key, "v", 1), &mut out);
    assert!(!out.iter().any(|output| matches!(output, Output::Send { .. })), "the forward waits: {out:?}");
    node.step(0, Input::Persisted { batch: Node::START_BATCH }, &mut out);
    assert!(out.iter().any(|output| matches!(output, Output::Send { .. })), "then it leaves");
}

#[test]
#[should_panic(expected = "handed out once")]
fn client_ids_of_an_incarnation_are_handed_out_once() {
    let mut h = Harness::fresh_coordinator_of("k");
    let _first = h.node.take_client_ids();
    let _second = h.node.take_client_ids();
}

#[test]
fn a_node_that_ran_before_recovers_and_a_new_one_does_not() {
    let h = Harness::fresh_coordinator_of("k");
    assert_eq!(h.node.started(), Start::Fresh);
    assert!(!h.node.is_recovering());
    let restarted = h.restarted(ran_before());
    assert_eq!((restarted.started(), restarted.incarnation()), (Start::Recover, 2));
    assert!(restarted.is_recovering());
    // A data directory from before incarnations were stored: records, but incarnation 0.
    let mut old = DurableState::default();
    old.slots.insert("k".into(), Slot::default());
    assert_eq!(h.restarted(old).started(), Start::Recover);
}

#[test]
fn a_node_that_used_up_its_incarnations_refuses_to_start() {
    let config = Config::default();
    let options = NodeOptions { id: NodeId(0), config, seed: 1, trace: false };
    let durable = DurableState { incarnation: crate::types::INCARNATION_MAX, ..DurableState::default() };
    let error = Node::start(options, durable, 0, &mut Vec::new()).err().expect("refused");
    assert!(error.to_string().contains("started 16777214 times"), "{error}");
}

/// `writes_per_round_max` (a named limit, once `bulk_parallel_max * 16`): of the writes queued
/// behind a round, the next round carries that many, and the rest the round after.
#[test]
fn a_round_carries_at_most_writes_per_round_max_of_the_queued_writes() {
    let mut h = Harness::coordinator_of("k");
    h.node.config.writes_per_round_max = 2;
    let homes = h.node.ring.homes(b"k");
    h.step(put_by(1, "k", "a", 1));
    let (txn, ballot) = h.prepare_sent();
    for client in 2..=6 {
        h.step(put_by(client, "k", "queued", client));
    }
    h.persist_all();
    h.deliver(homes[1], Message::Promise { txn, ballot, result: Ok(None) });
    h.settle();
    let (txn, record) = h.accept_sent();
    h.deliver(homes[1], Message::Accepted { txn, ballot: record.ballot, result: Ok(()), next: None });
    h.settle();
    assert_eq!(h.replies().len(), 1, "the first round answers its one write");
    // The next round starts at once (a lease or a prepare) and carries two of the five.
    let mut carried = Vec::new();
    for _ in 0..3 {
        let (txn, record) = match h.sends().into_iter().find_map(|(_, m)| match m {
            Message::Accept { txn, record, .. } => Some((txn, record)),
            _ => None,
        }) {
            Some(accept) => accept,
            None => {
                let (txn, ballot) = h.prepare_sent();
                h.deliver(homes[1], Message::Promise { txn, ballot, result: Ok(None) });
                h.settle();
                h.accept_sent()
            }
        };
        h.deliver(homes[1], Message::Accepted { txn, ballot: record.ballot, result: Ok(()), next: None });
        h.settle();
        carried.push(h.replies().len());
    }
    assert_eq!(carried, vec![2, 2, 1]);
}

/// A node that starts with nothing stored (index 0 of the default five) probes its peers and
/// returns what it sent and the node.
fn probing(durable: DurableState) -> (Node, Vec<Output>) {
    let config = Config::default();
    let options = NodeOptions { id: NodeId(0), config, seed: 9, trace: true };
    let mut out = Vec::new();
    let mut node = Node::start(options, durable, 0, &mut out).expect("starts");
    node.step(0, Input::Persisted { batch: Node::START_BATCH }, &mut out);
    assert!(matches!(node.admission(), Admission::Probing { .. }));
    (node, out)
}

fn probe_reply(node: &mut Node, from: u32, remembered: u64) -> Vec<Output> {
    let mut out = Vec::new();
    let envelope =
        Envelope { id: incarnation_base(1), epoch: 1, message: Message::ProbeReply { remembered, disks: Vec::new() } };
    node.step(0, Input::Message { from: NodeId(from), envelope }, &mut out);
    out
}

/// Admission takes more than half of the peers (any two such sets meet); until then the node
/// sends nothing but probes, votes in nothing and keeps client requests waiting.
#[test]
fn a_node_with_nothing_stored_votes_only_once_most_peers_remember_no_other_disk_of_it() {
    let (mut node, out) = probing(DurableState::default());
    let probes =
        out.iter().filter(|o| matches!(o, Output::Send { envelope, .. } if envelope.message.is_probe())).count();
    assert_eq!(probes, 4, "one probe per peer");
    let batch = out.iter().find_map(|o| match o {
        Output::Persist(batch) => Some(batch.clone()),
        _ => None,
    });
    let batch = batch.expect("the start batch");
    assert_eq!((batch.unadmitted, batch.disk), (Some(true), Some(node.disk)), "the start batch records both");
    let mut held = Vec::new();
    node.step(0, put("k", "v", 1), &mut held);
    let ballot = Ballot { round: 5, node: NodeId(1) };
    let prepare =
        Envelope { id: incarnation_base(1), epoch: 1, message: Message::Prepare { txn: 1, key: "k".into(), ballot } };
    node.step(0, Input::Message { from: NodeId(1), envelope: prepare }, &mut held);
    assert!(!held.iter().any(|o| matches!(o, Output::Send { .. } | Output::Reply { .. })), "{held:?}");
    let disk = node.disk;
    probe_reply(&mut node, 1, disk);
    assert!(matches!(node.admission(), Admission::Probing { .. }), "one of four peers is not enough");
    probe_reply(&mut node, 2, disk);
    assert!(matches!(node.admission(), Admission::Probing { .. }), "two of four peers are not more than half");
    let mut out = probe_reply(&mut node, 3, disk);
    assert_eq!(node.admission(), &Admission::Admitted);
    let batch = out.iter().find_map(|o| match o {
        Output::Persist(batch) => Some(batch.clone()),
        _ => None,
    });
    assert_eq!(batch.and_then(|batch| batch.unadmitted), Some(false), "the admission is recorded");
    node.step(0, Input::Persisted { batch: node.persist_issued }, &mut out);
    let served = out.iter().any(|o| {
        matches!(o, Output::Send { envelope, .. } if !envelope.message.is_probe() && envelope.message.key() == Some(&Blob::from("k")))
    });
    assert!(served, "the waiting put is served once admitted: {out:?}");
}

#[test]
fn a_peer_that_remembers_another_disk_means_the_data_was_lost_for_every_later_life() {
    let (mut node, out) = probing(DurableState::default());
    let other = node.disk ^ 1;
    probe_reply(&mut node, 2, other);
    assert_eq!(node.admission(), &Admission::Refused { peer: NodeId(2) });
    let mut replies = Vec::new();
    node.step(0, put("k", "v", 1), &mut replies);
    node.step(0, Input::Persisted { batch: node.persist_issued }, &mut replies);
    let refused = replies.iter().any(|o| {
        matches!(
            o,
            Output::Reply { reply: ClientReply::Error(ClientError::Unavailable(Unavailable::Amnesia { .. })), .. }
        )
    });
    assert!(refused, "{replies:?}");

    // It crashes and starts again: its disk now holds its new id, which is still not the one
    // its peers remember, so it is refused again (a later life does not launder the loss).
    let mut durable = DurableState::default();
    for output in &out {
        if let Output::Persist(batch) = output {
            durable.apply(batch);
        }
    }
    assert_eq!(durable.disk, node.disk);
    let (mut again, _) = probing(durable.clone());
    assert_eq!(again.disk, node.disk, "a disk keeps its id across lives");
    probe_reply(&mut again, 3, other);
    assert_eq!(again.admission(), &Admission::Refused { peer: NodeId(3) });

    // A node that crashed while probing, whose peers remember the disk it still has, is no
    // amnesia.
    let (mut probing_again, _) = probing(durable);
    for peer in 1..4 {
        probe_reply(&mut probing_again, peer, node.disk);
    }
    assert_eq!(probing_again.admission(), &Admission::Admitted);
}

/// A probe is remembered before it is answered, and only the first disk id a peer names is
/// kept, so a wiped node's probes keep hearing of the disk it lost.
#[test]
fn a_probed_node_remembers_the_first_disk_durably_before_it_answers() {
    let mut h = Harness::home_of("k", 0, DurableState::default());
    let prober = NodeId((h.node.id.0 + 1) % 5);
    let probe = |disk| Envelope { id: incarnation_base(1), epoch: 1, message: Message::Probe { disk } };
    h.step(Input::Message { from: prober, envelope: probe(7) });
    assert!(h.sends().is_empty(), "the answer waits for the batch that remembers the probe");
    h.settle();
    let remembered = |h: &Harness| -> Vec<(NodeId, u64)> {
        h.sends()
            .into_iter()
            .filter_map(|(to, message)| match message {
                Message::ProbeReply { remembered, disks } => {
                    // The answer carries every disk the node knows, the prober's and its own.
                    assert!(disks.contains(&(prober, 7)) && disks.contains(&(h.node.id, h.node.disk)), "{disks:?}");
                    Some((to, remembered))
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(remembered(&h), vec![(prober, 7)]);
    h.step(Input::Message { from: prober, envelope: probe(8) });
    h.settle();
    assert_eq!(remembered(&h), vec![(prober, 7)], "the first disk stays");
}

// ----- The layout: durable, gossiped, followed. -----

/// The seed cluster's layout one step on: a sixth node joined.
fn layout_with_a_sixth_node() -> Layout {
    let config = Config::default();
    let change = crate::layout::Change::Join { name: "5564".into() };
    Layout::from_config(&config)
        .plan(&[change], config.read_quorum, config.write_quorum, NodeId(0))
        .expect("plans")
        .next
}

#[test]
fn a_node_stores_its_first_layout_with_its_incarnation_and_uses_it_after_a_restart() {
    let config = Config::default();
    let mut out = Vec::new();
    let options = NodeOptions { id: NodeId(0), config: config.clone(), seed: 1, trace: false };
    Node::start(options.clone(), ran_before(), 0, &mut out).expect("starts");
    let first = out.iter().find_map(|output| match output {
        Output::Persist(batch) => Some(batch.clone()),
        _ => None,
    });
    let first = first.expect("a start batch");
    assert_eq!(first.layout.as_deref(), Some(&Layout::from_config(&config)), "the bootstrap layout is stored");
    // A node that stored a newer layout starts with it, and does not store it again.
    let newer = layout_with_a_sixth_node();
    let durable = DurableState { incarnation: 2, layout: Some(newer.clone()), ..DurableState::default() };
    let mut out = Vec::new();
    let node = Node::start(options, durable, 0, &mut out).expect("starts");
    assert_eq!(node.layout(), &newer);
    assert_eq!(node.ring().member_count(), 6);
    let stored_again = out.iter().any(|output| matches!(output, Output::Persist(batch) if batch.layout.is_some()));
    assert!(!stored_again, "an unchanged layout is not written again");
}

#[test]
fn a_newer_layout_is_durable_before_any_message_carries_its_epoch() {
    let mut h = Harness::fresh_coordinator_of("k");
    let newer = layout_with_a_sixth_node();
    let peer = h.node.ring.homes(b"k")[1];
    h.deliver(peer, Message::Layout { layout: Box::new(newer.clone()) });
    assert_eq!(h.node.layout(), &newer, "a newer layout of this cluster is taken in");
    assert_eq!(h.node.ring().member_count(), 6, "and the ring follows it");
    let batch = h.out.iter().find_map(|output| match output {
        Output::Persist(batch) => Some(batch.clone()),
        _ => None,
    });
    assert_eq!(batch.and_then(|batch| batch.layout).as_deref(), Some(&newer), "in this step's batch");
    assert!(h.sends().is_empty(), "nothing carrying the new epoch leaves before it is durable");
    h.settle();
    // Every member but the sender and this node hears of it at once, the sixth node too.
    let told: Vec<NodeId> = h
        .sends()
        .into_iter()
        .filter(|(_, message)| matches!(message, Message::Layout { .. }))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(told.len(), 4, "told {told:?}");
    assert!(told.contains(&NodeId(5)) && !told.contains(&h.node.id) && !told.contains(&peer));
    let epochs: Vec<u64> = h
        .out
        .iter()
        .filter_map(|output| match output {
            Output::Send { envelope, .. } => Some(envelope.epoch),
            _ => None,
        })
        .collect();
    assert!(epochs.iter().all(|epoch| *epoch == 2), "every message carries the new epoch: {epochs:?}");
    // An older one is not taken in.
    h.deliver(peer, Message::Layout { layout: Box::new(Layout::from_config(&Config::default())) });
    assert_eq!(h.node.layout(), &newer);
}

#[test]
fn a_peer_that_is_behind_is_sent_the_layout_once_per_request_timeout() {
    let mut h = Harness::fresh_coordinator_of("k");
    let newer = layout_with_a_sixth_node();
    let peer = h.node.ring.homes(b"k")[1];
    h.deliver(peer, Message::Layout { layout: Box::new(newer) });
    h.settle();
    let layouts_to = |h: &Harness, to: NodeId| {
        h.sends().iter().filter(|(peer, message)| *peer == to && matches!(message, Message::Layout { .. })).count()
    };
    // The sender was not told at once (it has the layout), but if it speaks under epoch 1 it is.
    let behind = |h: &mut Harness| {
        h.step(Input::Message {
            from: peer,
            envelope: Envelope { id: 0, epoch: 1, message: Message::Gossip { disks: Vec::new() } },
        })
    };
    behind(&mut h);
    assert_eq!(layouts_to(&h, peer), 1, "a peer behind is sent the layout");
    behind(&mut h);
    assert_eq!(layouts_to(&h, peer), 0, "not again within a request timeout");
    h.now += h.node.config.request_timeout();
    behind(&mut h);
    assert_eq!(layouts_to(&h, peer), 1, "and again after one");
    // A peer ahead is asked for its layout.
    let ahead = Envelope { id: 0, epoch: 3, message: Message::Gossip { disks: Vec::new() } };
    let other = h.node.ring.homes(b"k")[2];
    h.step(Input::Message { from: other, envelope: ahead });
    let asked = h.sends().iter().any(|(to, message)| *to == other && matches!(message, Message::Gossip { .. }));
    assert!(asked, "a peer ahead is asked for its layout");
}

#[test]
fn a_layout_of_another_cluster_or_a_malformed_one_is_refused() {
    let mut h = Harness::fresh_coordinator_of("k");
    let peer = h.node.ring.homes(b"k")[1];
    let mut other = Config::default();
    other.nodes.push("5564".into());
    let join = |name: &str| [crate::layout::Change::Join { name: name.into() }];
    // A cluster bootstrapped from six names: another cluster id.
    let foreign = Layout::from_config(&other).plan(&join("5566"), 2, 2, NodeId(0)).expect("plans").next;
    let refused = |h: &Harness, what: &str| {
        h.out.iter().any(|output| {
            matches!(output, Output::Trace(TraceEvent { kind: TraceKind::LayoutRefused { problem, .. }, .. })
                if problem.contains(what))
        })
    };
    h.deliver(peer, Message::Layout { layout: Box::new(foreign) });
    assert_eq!(h.node.layout().epoch(), 1, "another cluster's layout is not taken in");
    assert!(refused(&h, "cluster id"), "and the refusal is traced: {:?}", h.out);
    // This cluster's, but an id renamed: ids are never reused.
    let mut renamed = Config::default();
    renamed.nodes[4] = "5599".into();
    let ours = Layout::from_config(&Config::default());
    let renamed =
        Layout::bootstrap(ours.cluster(), &renamed.nodes, 1, 3).plan(&join("5564"), 2, 2, NodeId(0)).expect("plans");
    h.deliver(peer, Message::Layout { layout: Box::new(renamed.next) });
    assert_eq!(h.node.layout().epoch(), 1);
    assert!(refused(&h, "node id 4"), "{:?}", h.out);
}
