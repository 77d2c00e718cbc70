//! Per-key linearizability checking of recorded client histories.
//!
//! Given what clients asked and what they were told, this module decides, key by key, whether a
//! single-copy register could have produced exactly those answers with every operation taking
//! effect at one instant inside its own time interval. It is a pure function of its input: it
//! must never do IO, read a clock or draw randomness, and its reports must be deterministic
//! (keys sorted, operation indexes sorted) so that a replayed run yields an identical report.
//!
//! # Algorithm
//!
//! Linearizability is compositional, so each key's sub-history is checked on its own. For one
//! key the checker sweeps the invocation and completion events in time order, following Lowe's
//! just-in-time linearization (a breadth-first relative of the Wing & Gong search): it keeps
//! the set of *configurations* reachable at the current instant (the register's value plus,
//! for each open operation, whether it is already linearized) and, whenever an operation
//! completes, keeps only the extensions of each configuration in which that operation is
//! linearized. An empty set means no linearization exists. Configurations are deduplicated in
//! hash sets, which play the role of WGL's memo table of (linearized bitset, register state).
//!
//! Reductions keep the set small; each rests on "if any linearization exists, one of this
//! shape exists", and the tests check the result against an exhaustive search:
//! - a read is linearized as soon as the register holds its value (reads change nothing, so
//!   moving one earlier can only help);
//! - values that no remaining read observes are merged into one `DEAD` value. Writes of a dead
//!   value are linearized as soon as the register is dead, and unknown-outcome writes of a
//!   dead value (in particular those whose value no read ever returned) are dropped, since
//!   taking effect could never help any read;
//! - placement is lazy: a write is put at the end of the order only when its own completion,
//!   or the completion of a read of its value, demands it. Whatever else is open at that
//!   moment may later be placed *retroactively* in the gap just before that write (a write
//!   alone, or a write followed by reads of its value), as that write overwrites whatever they
//!   leave. So the search never branches on the order of writes nobody observed, and each
//!   completion gives each configuration at most two successors;
//! - writes of the same value are interchangeable except for how long they stay available, so
//!   the one that expires first is always used first.
//!
//! The search is bounded by [`SEARCH_STATES_MAX`]: a key that needs more is reported as
//! inconclusive rather than allowed to run without bound.
//!
//! When a key fails, the checker re-checks sub-histories of the history as it stood at the
//! failure, shrinking it to a minimal set of operations that cannot be ordered, so that a
//! person can read the violation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod key;
mod schedule;
mod search;
#[cfg(test)]
mod tests;

use key::*;
use search::*;

use crate::history::{History, OpKind, Operation, Outcome};
use crate::types::{Blob, ClientId, Micros};

/// Most search configurations one key may create before it is declared inconclusive.
pub const SEARCH_STATES_MAX: u64 = 2_000_000;

/// Memory ceiling for one key's search; with many simultaneously open operations each
/// configuration is large, so this lowers the state bound for such keys.
const SEARCH_BYTES_MAX: u64 = 512 << 20;

/// Most simultaneously open operations (bitset slots) the search supports on one key.
const SLOTS_MAX: usize = 64 * 64;

/// How widely to gather operations around a failure before shrinking them to a minimal
/// contradiction, tried in turn: (candidate writers per read and readers per write, total).
const SUSPECT_TIERS: [(usize, usize); 2] = [(4, 64), (16, 256)];

/// Longest history prefix shrunk whole when the gathered neighbourhoods are not contradictory.
const PREFIX_SHRINK_MAX: usize = 1_024;

/// State bound for each re-check of a sub-history while shrinking a violation.
const SHRINK_STATES_MAX: u64 = 100_000;

/// Most related operations spelled out in a violation's explanation.
const EXPLAINED_MAX: usize = 8;

/// `Operation::index` of the synthetic final read added by [`check_final_values`]; never
/// reported, since it names no recorded operation.
const FINAL_READ_INDEX: u64 = u64::MAX;

/// The verdict over a whole history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub keys_checked: u64,
    pub operations_checked: u64,
    /// At most one per key, sorted by key.
    pub violations: Vec<Violation>,
    /// Keys whose search exceeded its bound, sorted. Not violations: nothing was proven.
    pub inconclusive: Vec<Blob>,
}

impl CheckReport {
    /// True when no key was proven non-linearizable (inconclusive keys do not count).
    pub fn is_linearizable(&self) -> bool {
        self.violations.is_empty()
    }

    fn record(&mut self, key: &Blob, verdict: KeyVerdict) {
        self.keys_checked += 1;
        match verdict {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Violation(violation) => self.violations.push(violation),
            KeyVerdict::Inconclusive => self.inconclusive.push(key.clone()),
        }
    }
}

/// Proof that one key's history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub key: Blob,
    /// Indexes (`Operation::index`, sorted) of a small set of operations that cannot be ordered
    /// among themselves: the operation that could not be linearized and those it conflicts
    /// with. Usually minimal: leaving out any read, or any write whose value no listed read
    /// returned, makes the rest linearizable.
    pub operations: Vec<u64>,
    /// One line for people: the operation that could not be linearized and what it conflicts
    /// with.
    pub explanation: String,
}

/// The outcome of checking one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyVerdict {
    Linearizable,
    Violation(Violation),
    /// The search bound was exceeded before an answer was found.
    Inconclusive,
}

/// Checks every key of `history` independently.
pub fn check_history(history: &History) -> CheckReport {
    let mut report = CheckReport { operations_checked: history.operations.len() as u64, ..CheckReport::default() };
    for (key, operations) in operations_by_key(history) {
        report.record(key, check_key(key, &operations));
    }
    report
}

/// Checks the operations of one key (operations on other keys are ignored).
pub fn check_key(key: &Blob, operations: &[&Operation]) -> KeyVerdict {
    check_key_with_limit(key, operations, SEARCH_STATES_MAX)
}

/// [`check_key`] with an explicit search bound in place of [`SEARCH_STATES_MAX`].
pub fn check_key_with_limit(key: &Blob, operations: &[&Operation], states_max: u64) -> KeyVerdict {
    KeyHistory::new(key, operations, None).verdict(states_max)
}

/// "No acknowledged write lost": checks that each key's final value is explained by its history.
///
/// `final_values`: for each key, the value a fault-free quorum read returns at the end of the run
/// (`None` = absent). For each such key a synthetic get, invoked after every recorded operation
/// completed and returning the final value, is appended to the key's history, which is then
/// checked for linearizability. The final value must therefore be the value of some write
/// (acknowledged or unknown) that no acknowledged write certainly overwrote, and a key never
/// written must be absent. A key whose history is itself not linearizable is reported here too.
/// Keys missing from `final_values` are not checked.
pub fn check_final_values(history: &History, final_values: &BTreeMap<Blob, Option<Blob>>) -> CheckReport {
    let by_key = operations_by_key(history);
    let last_event =
        history.operations.iter().flat_map(|op| [Some(op.invoked_at), op.completed_at]).flatten().max().unwrap_or(0);
    let mut report = CheckReport::default();
    for (key, value) in final_values {
        let operations = by_key.get(key).map(Vec::as_slice).unwrap_or(&[]);
        report.operations_checked += operations.len() as u64;
        let final_read = FinalRead { value: value.clone(), invoked_at: last_event.saturating_add(1) };
        let verdict = KeyHistory::new(key, operations, Some(final_read)).verdict(SEARCH_STATES_MAX);
        report.record(key, verdict);
    }
    report
}

/// Groups a history's operations by key, keys sorted so reports come out in key order.
fn operations_by_key(history: &History) -> BTreeMap<&Blob, Vec<&Operation>> {
    let mut by_key: BTreeMap<&Blob, Vec<&Operation>> = BTreeMap::new();
    for op in &history.operations {
        by_key.entry(&op.key).or_default().push(op);
    }
    by_key
}
