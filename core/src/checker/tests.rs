//! The checker against exhaustive search and hand-made histories.

use std::collections::HashSet;

use super::*;
use crate::types::Rng;

/// Builds histories one operation per line.
#[derive(Default)]
struct Builder {
    history: History,
}

impl Builder {
    fn push(&mut self, client: u64, key: &str, kind: OpKind, span: (Micros, Option<Micros>), outcome: Outcome) -> u64 {
        let index = self.history.operations.len() as u64;
        self.history.operations.push(Operation {
            index,
            client: ClientId(client),
            key: Blob::from(key),
            kind,
            invoked_at: span.0,
            completed_at: span.1,
            outcome,
        });
        index
    }

    fn put(&mut self, client: u64, key: &str, value: &str, start: u64, end: u64) -> u64 {
        let kind = OpKind::Put(Blob::from(value));
        self.push(client, key, kind, (start, Some(end)), Outcome::Written)
    }

    fn put_unknown(&mut self, client: u64, key: &str, value: &str, start: u64) -> u64 {
        let kind = OpKind::Put(Blob::from(value));
        self.push(client, key, kind, (start, None), Outcome::Unknown)
    }

    fn delete(&mut self, client: u64, key: &str, start: u64, end: u64) -> u64 {
        self.push(client, key, OpKind::Delete, (start, Some(end)), Outcome::Written)
    }

    fn delete_unknown(&mut self, client: u64, key: &str, start: u64) -> u64 {
        self.push(client, key, OpKind::Delete, (start, None), Outcome::Unknown)
    }

    fn get(&mut self, client: u64, key: &str, value: Option<&str>, start: u64, end: u64) -> u64 {
        let outcome = Outcome::Read(value.map(Blob::from));
        self.push(client, key, OpKind::Get, (start, Some(end)), outcome)
    }

    fn get_unknown(&mut self, client: u64, key: &str, start: u64) -> u64 {
        self.push(client, key, OpKind::Get, (start, None), Outcome::Unknown)
    }

    fn check(&self) -> CheckReport {
        check_history(&self.history)
    }
}

fn only_violation(report: &CheckReport) -> &Violation {
    assert_eq!(report.violations.len(), 1, "{report:#?}");
    &report.violations[0]
}

#[test]
fn sequential_puts_and_gets_are_linearizable() {
    let mut b = Builder::default();
    b.get(1, "k", None, 0, 5);
    b.put(1, "k", "v1", 10, 20);
    b.get(2, "k", Some("v1"), 30, 40);
    b.put(2, "k", "v2", 50, 60);
    b.get(1, "k", Some("v2"), 70, 80);
    let report = b.check();
    assert!(report.is_linearizable(), "{report:#?}");
    assert_eq!(report.keys_checked, 1);
    assert_eq!(report.operations_checked, 5);
    assert!(report.inconclusive.is_empty());
}

#[test]
fn get_of_never_written_key_returns_none() {
    let mut b = Builder::default();
    b.put(1, "a", "v1", 0, 10);
    b.get(2, "b", None, 20, 30);
    assert!(b.check().is_linearizable());

    let mut b = Builder::default();
    let read = b.get(2, "b", Some("v1"), 20, 30);
    b.put(1, "a", "v1", 0, 10);
    let violation = only_violation(&b.check()).clone();
    assert_eq!(violation.key, Blob::from("b"));
    assert_eq!(violation.operations, vec![read]);
}

#[test]
fn stale_read_after_completed_write_is_a_violation() {
    let mut b = Builder::default();
    let first = b.put(1, "k", "v1", 0, 10);
    let second = b.put(1, "k", "v2", 20, 30);
    b.get(3, "other", None, 0, 100);
    let stale = b.get(2, "k", Some("v1"), 40, 50);
    let violation = only_violation(&b.check()).clone();
    assert_eq!(violation.key, Blob::from("k"));
    assert_eq!(violation.operations, vec![first, second, stale]);
    assert!(
        violation.explanation.starts_with("get by client 2 (op 3) returned \"v1\" at 40..50"),
        "{}",
        violation.explanation
    );
    assert!(violation.explanation.contains("put \"v2\" by client 1 (op 1) at 20..30"));
}

#[test]
fn concurrent_puts_may_be_seen_in_either_order() {
    for (first, second) in [("v1", "v2"), ("v2", "v1")] {
        let mut b = Builder::default();
        b.put(1, "k", "v1", 0, 100);
        b.put(2, "k", "v2", 10, 90);
        b.get(3, "k", Some(first), 20, 30);
        b.get(4, "k", Some(second), 40, 50);
        b.get(3, "k", Some(second), 110, 120);
        assert!(b.check().is_linearizable(), "{first} then {second}");
    }
}

#[test]
fn reads_flipping_back_to_a_single_put_are_a_violation() {
    let mut b = Builder::default();
    let p1 = b.put(1, "k", "v1", 0, 100);
    let p2 = b.put(2, "k", "v2", 10, 90);
    let r1 = b.get(3, "k", Some("v1"), 20, 30);
    let r2 = b.get(4, "k", Some("v2"), 40, 50);
    let r3 = b.get(3, "k", Some("v1"), 60, 70);
    let violation = only_violation(&b.check()).clone();
    assert_eq!(violation.operations, vec![p1, p2, r1, r2, r3]);

    // The same shape with two puts of v1 is fine.
    b.put(5, "k", "v1", 45, 55);
    assert!(b.check().is_linearizable());
}

#[test]
fn delete_semantics() {
    let mut b = Builder::default();
    b.put(1, "k", "v1", 0, 10);
    b.delete(1, "k", 20, 30);
    b.get(2, "k", None, 40, 50);
    b.put(1, "k", "v2", 60, 70);
    b.delete(2, "k", 65, 75);
    b.get(3, "k", None, 80, 90);
    assert!(b.check().is_linearizable());

    let mut b = Builder::default();
    let put = b.put(1, "k", "v1", 0, 10);
    let delete = b.delete(1, "k", 20, 30);
    let read = b.get(2, "k", Some("v1"), 40, 50);
    assert_eq!(only_violation(&b.check()).operations, vec![put, delete, read]);

    // Absent after a put that certainly finished, with no delete: a violation.
    let mut b = Builder::default();
    let put = b.put(1, "k", "v1", 0, 10);
    let read = b.get(2, "k", None, 20, 30);
    assert_eq!(only_violation(&b.check()).operations, vec![put, read]);
}

#[test]
fn read_of_a_value_never_written_is_a_violation() {
    let mut b = Builder::default();
    b.put(1, "k", "v1", 0, 10);
    let read = b.get(2, "k", Some("ghost"), 5, 15);
    let violation = only_violation(&b.check()).clone();
    assert_eq!(violation.operations, vec![read]);
    assert!(violation.explanation.contains("no put to this key ever wrote"));
}

#[test]
fn unknown_put_may_or_may_not_take_effect() {
    let mut b = Builder::default();
    b.put(1, "k", "v1", 0, 10);
    b.put_unknown(2, "k", "v2", 20);
    b.get(3, "k", Some("v1"), 30, 40);
    b.get(3, "k", Some("v2"), 1_000, 1_010);
    assert!(b.check().is_linearizable());

    let mut b = Builder::default();
    b.put(1, "k", "v1", 0, 10);
    b.put_unknown(2, "k", "v2", 20);
    b.get(3, "k", Some("v1"), 30, 40);
    assert!(b.check().is_linearizable());

    // But it cannot take effect before it was invoked.
    let mut b = Builder::default();
    b.get(3, "k", Some("v2"), 0, 10);
    b.put_unknown(2, "k", "v2", 20);
    assert!(!b.check().is_linearizable());
}

#[test]
fn unknown_put_seen_then_unseen_is_a_violation() {
    let mut b = Builder::default();
    let put = b.put_unknown(1, "k", "v1", 0);
    let seen = b.get(2, "k", Some("v1"), 10, 20);
    let unseen = b.get(2, "k", None, 30, 40);
    let violation = only_violation(&b.check()).clone();
    assert_eq!(violation.operations, vec![put, seen, unseen]);

    // An unknown delete in between explains it.
    b.delete_unknown(3, "k", 5);
    assert!(b.check().is_linearizable());
}

#[test]
fn unknown_get_is_ignored() {
    let mut b = Builder::default();
    b.put(1, "k", "v1", 0, 10);
    b.get_unknown(2, "k", 20);
    b.get(2, "k", Some("v1"), 30, 40);
    let report = b.check();
    assert!(report.is_linearizable());
    assert_eq!(report.operations_checked, 3);
}

#[test]
fn equal_times_are_concurrent() {
    // The get starts exactly when the put completes, so it may precede it.
    let mut b = Builder::default();
    b.put(1, "k", "v1", 0, 10);
    b.get(2, "k", None, 10, 20);
    assert!(b.check().is_linearizable());

    let mut b = Builder::default();
    b.put(1, "k", "v1", 0, 10);
    b.get(2, "k", None, 11, 20);
    assert!(!b.check().is_linearizable());
}

#[test]
fn keys_are_independent_and_reported_in_order() {
    let mut b = Builder::default();
    for key in ["z", "a", "m"] {
        b.put(1, key, "v1", 0, 10);
        b.put(1, key, "v2", 20, 30);
        b.get(2, key, Some("v1"), 40, 50);
    }
    b.put(1, "ok", "v1", 0, 10);
    b.get(2, "ok", Some("v1"), 40, 50);
    let report = b.check();
    assert_eq!(report.keys_checked, 4);
    let keys: Vec<Blob> = report.violations.iter().map(|v| v.key.clone()).collect();
    assert_eq!(keys, vec![Blob::from("a"), Blob::from("m"), Blob::from("z")]);
    // Deterministic: the same history always yields the same report.
    assert_eq!(report, b.check());
}

#[test]
fn exceeding_the_search_bound_is_inconclusive() {
    // Twelve fully concurrent put/get pairs: the search must track which pairs are done at
    // each completion, far more than ten configurations.
    let mut b = Builder::default();
    for client in 0..12 {
        b.put(client, "k", &format!("v{client}"), 0, 100);
        b.get(client + 100, "k", Some(&format!("v{client}")), 0, 100);
    }
    let ops: Vec<&Operation> = b.history.operations.iter().collect();
    let key = Blob::from("k");
    assert_eq!(check_key_with_limit(&key, &ops, 10), KeyVerdict::Inconclusive);
    assert_eq!(check_key(&key, &ops), KeyVerdict::Linearizable);
}

#[test]
fn report_round_trips_through_json() {
    let mut b = Builder::default();
    b.put(1, "k", "v1", 0, 10);
    b.put(1, "k", "v2", 20, 30);
    b.get(2, "k", Some("v1"), 40, 50);
    let report = b.check();
    let json = serde_json::to_string(&report).unwrap();
    assert_eq!(serde_json::from_str::<CheckReport>(&json).unwrap(), report);
}

// --- Final values -----------------------------------------------------------------------

#[test]
fn final_values_catch_a_lost_acknowledged_write() {
    let mut b = Builder::default();
    let first = b.put(1, "k", "v1", 0, 10);
    let second = b.put(1, "k", "v2", 20, 30);
    let finals = BTreeMap::from([(Blob::from("k"), Some(Blob::from("v1")))]);
    let report = check_final_values(&b.history, &finals);
    let violation = only_violation(&report);
    assert_eq!(violation.operations, vec![first, second]);
    assert!(violation.explanation.starts_with("the final read after the run returned \"v1\""));

    let finals = BTreeMap::from([(Blob::from("k"), Some(Blob::from("v2")))]);
    assert!(check_final_values(&b.history, &finals).is_linearizable());
    let finals = BTreeMap::from([(Blob::from("k"), None)]);
    assert!(!check_final_values(&b.history, &finals).is_linearizable());
}

#[test]
fn final_value_from_an_unknown_write_is_accepted() {
    let mut b = Builder::default();
    b.put(1, "k", "v1", 0, 10);
    b.put_unknown(2, "k", "v2", 5);
    b.get(3, "k", Some("v1"), 20, 30);
    let report = check_final_values(&b.history, &BTreeMap::from([(Blob::from("k"), Some(Blob::from("v2")))]));
    assert!(report.is_linearizable(), "{report:#?}");
    // It was never acknowledged, so losing it is fine too.
    let report = check_final_values(&b.history, &BTreeMap::from([(Blob::from("k"), Some(Blob::from("v1")))]));
    assert!(report.is_linearizable());
}

#[test]
fn final_value_of_an_unwritten_key_must_be_absent() {
    let mut b = Builder::default();
    b.put(1, "k", "v1", 0, 10);
    let finals = BTreeMap::from([(Blob::from("k"), Some(Blob::from("v1"))), (Blob::from("never"), None)]);
    let report = check_final_values(&b.history, &finals);
    assert!(report.is_linearizable());
    assert_eq!(report.keys_checked, 2);
    assert_eq!(report.operations_checked, 1);

    let finals = BTreeMap::from([(Blob::from("never"), Some(Blob::from("v1")))]);
    let report = check_final_values(&b.history, &finals);
    let violation = only_violation(&report);
    assert_eq!(violation.key, Blob::from("never"));
    assert!(violation.operations.is_empty());
}

// --- Randomized -------------------------------------------------------------------------

/// A history produced by a real register: operation `i` takes effect at time
/// `(i + 1) * SPACING + reach` and its interval is stretched randomly around that point, so
/// intervals overlap but the effect points always give a valid linearization. Clients
/// take turns, and `reach` keeps one client's operations from overlapping each other.
fn generate(rng: &mut Rng, operations: usize, clients: u64, keys: u64) -> History {
    const SPACING: u64 = 10;
    let reach = SPACING * clients / 2 - 1;
    let mut register: BTreeMap<Blob, Blob> = BTreeMap::new();
    let mut ops = Vec::with_capacity(operations);
    for i in 0..operations {
        let point = (i as u64 + 1) * SPACING + reach;
        let invoked_at = point - rng.between(0, reach);
        let completed_at = point + rng.between(0, reach);
        let key = Blob::from(format!("k{}", rng.below(keys)));
        let roll = rng.below(100);
        let (kind, outcome, completed_at) = if roll < 45 {
            if rng.chance(50_000) {
                (OpKind::Get, Outcome::Unknown, None)
            } else {
                let value = register.get(&key).cloned();
                (OpKind::Get, Outcome::Read(value), Some(completed_at))
            }
        } else {
            let kind = if roll < 85 { OpKind::Put(Blob::from(format!("v{i}"))) } else { OpKind::Delete };
            let unknown = rng.chance(100_000);
            if !unknown || rng.chance(500_000) {
                match &kind {
                    OpKind::Put(value) => register.insert(key.clone(), value.clone()),
                    _ => register.remove(&key),
                };
            }
            if unknown {
                (kind, Outcome::Unknown, None)
            } else {
                (kind, Outcome::Written, Some(completed_at))
            }
        };
        ops.push(Operation {
            index: 0,
            client: ClientId(i as u64 % clients),
            key,
            kind,
            invoked_at,
            completed_at,
            outcome,
        });
    }
    ops.sort_by_key(|op| op.invoked_at);
    for (index, op) in ops.iter_mut().enumerate() {
        op.index = index as u64;
    }
    History { operations: ops }
}

/// Makes one read return the value of an acknowledged put that another acknowledged write
/// certainly overwrote before the read began. Returns the read's index.
fn corrupt(history: &mut History, rng: &mut Rng) -> Option<u64> {
    let ops = &history.operations;
    let acked = |op: &Operation| op.outcome == Outcome::Written;
    let precedes = |a: &Operation, b: &Operation| a.completed_at.unwrap() < b.invoked_at;
    let mut choices = Vec::new();
    for read in ops.iter().filter(|op| matches!(op.outcome, Outcome::Read(_))) {
        for put in ops.iter().filter(|op| op.key == read.key && acked(op)) {
            let OpKind::Put(value) = &put.kind else {
                continue;
            };
            let overwritten = ops.iter().any(|other| {
                other.key == read.key
                    && other.index != put.index
                    && other.kind != OpKind::Get
                    && acked(other)
                    && precedes(put, other)
                    && precedes(other, read)
            });
            if overwritten {
                choices.push((read.index, value.clone()));
            }
        }
    }
    if choices.is_empty() {
        return None;
    }
    let (read, value) = choices.swap_remove(rng.below(choices.len() as u64) as usize);
    history.operations[read as usize].outcome = Outcome::Read(Some(value));
    Some(read)
}

fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("CHECKER_SEED") {
        Ok(seed) => vec![seed.parse().expect("CHECKER_SEED must be an integer")],
        Err(_) => default.collect(),
    }
}

#[test]
fn randomized_register_histories() {
    let mut corrupted = 0;
    for seed in seeds(0..200) {
        let mut rng = Rng::new(seed);
        let operations = rng.between(20, 200) as usize;
        let clients = rng.between(2, 10);
        let keys = rng.between(1, 3);
        let mut history = generate(&mut rng, operations, clients, keys);
        let report = check_history(&history);
        assert!(report.is_linearizable() && report.inconclusive.is_empty(), "seed {seed}: {report:#?}");

        let Some(read) = corrupt(&mut history, &mut rng) else {
            continue;
        };
        corrupted += 1;
        let key = history.operations[read as usize].key.clone();
        let report = check_history(&history);
        let violation = only_violation(&report);
        assert_eq!(violation.key, key, "seed {seed}");
        assert!(violation.operations.contains(&read), "seed {seed}: read {read} not in {violation:#?}");
    }
    assert!(corrupted > 0 || std::env::var("CHECKER_SEED").is_ok());
}

/// Exhaustive reference: tries every order, memoising failed (remaining set, value) pairs.
fn brute_force_linearizable(ops: &[&Operation]) -> bool {
    struct Op {
        read: bool,
        value: Option<Blob>,
        invoked: Micros,
        completed: Option<Micros>,
    }
    let ops: Vec<Op> = ops
        .iter()
        .filter_map(|op| match (&op.kind, &op.outcome) {
            (OpKind::Get, Outcome::Read(value)) => {
                Some(Op { read: true, value: value.clone(), invoked: op.invoked_at, completed: op.completed_at })
            }
            (OpKind::Get, _) => None,
            (kind, outcome) => Some(Op {
                read: false,
                value: match kind {
                    OpKind::Put(value) => Some(value.clone()),
                    _ => None,
                },
                invoked: op.invoked_at,
                completed: if *outcome == Outcome::Unknown { None } else { op.completed_at },
            }),
        })
        .collect();
    assert!(ops.len() <= 32);
    fn explore(ops: &[Op], remaining: u32, value: &Option<Blob>, failed: &mut HashSet<(u32, Option<Blob>)>) -> bool {
        let mandatory = (0..ops.len()).any(|i| remaining & (1 << i) != 0 && ops[i].completed.is_some());
        if !mandatory {
            return true;
        }
        if failed.contains(&(remaining, value.clone())) {
            return false;
        }
        for (i, op) in ops.iter().enumerate() {
            if remaining & (1 << i) == 0 {
                continue;
            }
            let blocked = (0..ops.len())
                .any(|j| remaining & (1 << j) != 0 && matches!(ops[j].completed, Some(end) if end < op.invoked));
            if blocked || (op.read && op.value != *value) {
                continue;
            }
            let next = if op.read { value } else { &op.value };
            if explore(ops, remaining & !(1 << i), next, failed) {
                return true;
            }
        }
        failed.insert((remaining, value.clone()));
        false
    }
    explore(&ops, (1u32 << ops.len()) - 1, &None, &mut HashSet::new())
}

/// Small histories over a tiny value alphabet (so values repeat), with arbitrary answers.
fn arbitrary_history(rng: &mut Rng) -> History {
    let mut b = Builder::default();
    let values = ["a", "b", "c"];
    for _ in 0..rng.between(1, 11) {
        let client = rng.below(4);
        let start = rng.below(30);
        let end = start + rng.below(12);
        let value = values[rng.below(3) as usize];
        match rng.below(10) {
            0..=3 => {
                let read = if rng.chance(300_000) { None } else { Some(value) };
                b.get(client, "k0", read, start, end)
            }
            4 => b.get_unknown(client, "k0", start),
            5..=6 => b.put(client, "k0", value, start, end),
            7 => b.put_unknown(client, "k0", value, start),
            8 => b.delete(client, "k0", start, end),
            _ => b.delete_unknown(client, "k0", start),
        };
    }
    b.history
}

#[test]
fn agrees_with_brute_force_on_small_histories() {
    let key = Blob::from("k0");
    let mut violations = 0;
    for seed in seeds(0..5_000) {
        let mut rng = Rng::new(seed);
        let history = if rng.chance(500_000) {
            arbitrary_history(&mut rng)
        } else {
            let operations = rng.between(1, 12) as usize;
            let mut history = generate(&mut rng, operations, 3, 1);
            corrupt(&mut history, &mut rng);
            history
        };
        let ops: Vec<&Operation> = history.operations.iter().collect();
        let expected = brute_force_linearizable(&ops);
        match check_key(&key, &ops) {
            KeyVerdict::Linearizable => assert!(expected, "seed {seed}: {history:#?}"),
            KeyVerdict::Inconclusive => panic!("seed {seed}: inconclusive"),
            KeyVerdict::Violation(violation) => {
                violations += 1;
                assert!(!expected, "seed {seed}: {violation:#?} {history:#?}");
                // The reported operations are contradictory on their own.
                let culprits: Vec<&Operation> =
                    ops.iter().copied().filter(|op| violation.operations.contains(&op.index)).collect();
                assert!(!brute_force_linearizable(&culprits), "seed {seed}: {violation:#?} {history:#?}");
            }
        }
    }
    assert!(violations > 0 || std::env::var("CHECKER_SEED").is_ok());
}

#[test]
fn performance_sanity_2000_operations_16_clients() {
    for clients in [16, 20] {
        let mut rng = Rng::new(clients);
        let history = generate(&mut rng, 2_000, clients, 1);
        // Timed by the checker_bench example, not here: the core never reads a clock.
        let report = check_history(&history);
        assert!(report.is_linearizable(), "{report:#?}");
        assert!(report.inconclusive.is_empty(), "{report:#?}");
    }
}
