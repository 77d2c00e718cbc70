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

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use serde::{Deserialize, Serialize};

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

// ---------------------------------------------------------------------------------------------
// One key's history, normalised for the search.
// ---------------------------------------------------------------------------------------------

/// Interned register value. Values are interned per key; ids index `KeyHistory::values`.
type ValueId = u32;

/// The merged "no remaining read can observe this" value (see the module docs).
const DEAD: ValueId = 0;

/// The id of `None` (key absent), the register's initial value.
const ABSENT: ValueId = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Get,
    Put,
    Delete,
}

/// One operation reduced to what the search needs.
#[derive(Clone, Debug)]
struct KeyOp {
    index: u64,
    client: ClientId,
    action: Action,
    /// The value a get returned, or the value a write stores.
    value: ValueId,
    invoked: Micros,
    /// `None` only for writes with unknown outcome: they may take effect at any point after
    /// their invocation, or never.
    completed: Option<Micros>,
}

impl KeyOp {
    fn is_read(&self) -> bool {
        self.action == Action::Get
    }

    /// Acknowledged writes and completed reads must be linearized by their completion.
    fn is_unknown_write(&self) -> bool {
        self.completed.is_none()
    }

    fn end(&self) -> Micros {
        self.completed.unwrap_or(Micros::MAX)
    }

    /// Real-time order: `self` completed strictly before `other` was invoked.
    fn precedes(&self, other: &KeyOp) -> bool {
        matches!(self.completed, Some(end) if end < other.invoked)
    }

    fn overlaps(&self, other: &KeyOp) -> bool {
        !self.precedes(other) && !other.precedes(self)
    }

    /// Whether the read `read` could have returned this write's value: the write began before
    /// the read ended. (Whether it was overwritten in between is for the search to decide.)
    fn may_be_read_by(&self, read: &KeyOp) -> bool {
        !read.precedes(self)
    }
}

/// The synthetic read appended by [`check_final_values`].
struct FinalRead {
    value: Option<Blob>,
    invoked_at: Micros,
}

struct KeyHistory<'k> {
    key: &'k Blob,
    /// Value table: `values[DEAD]` is a placeholder, `values[ABSENT]` is `None`.
    values: Vec<Option<Blob>>,
    /// Sorted by invocation time, then index, so every derived order is deterministic.
    ops: Vec<KeyOp>,
}

impl<'k> KeyHistory<'k> {
    fn new(key: &'k Blob, operations: &[&Operation], final_read: Option<FinalRead>) -> Self {
        let mut values = vec![None, None];
        let mut ids: BTreeMap<Option<Blob>, ValueId> = BTreeMap::from([(None, ABSENT)]);
        let mut intern = |value: Option<Blob>| {
            *ids.entry(value).or_insert_with_key(|value| {
                values.push(value.clone());
                (values.len() - 1) as ValueId
            })
        };
        let mut ops = Vec::with_capacity(operations.len() + 1);
        for op in operations.iter().filter(|op| op.key == *key) {
            let (action, value, completed) = match (&op.kind, &op.outcome) {
                (OpKind::Get, Outcome::Read(value)) => {
                    // A read whose completion time went unrecorded still returned its value
                    // at some point after invocation.
                    let completed = op.completed_at.unwrap_or(Micros::MAX);
                    (Action::Get, intern(value.clone()), Some(completed))
                }
                // A get without an answer constrains nothing.
                (OpKind::Get, _) => continue,
                (OpKind::Put(value), outcome) => (Action::Put, intern(Some(value.clone())), write_end(op, outcome)),
                (OpKind::Delete, outcome) => (Action::Delete, ABSENT, write_end(op, outcome)),
            };
            ops.push(KeyOp {
                index: op.index,
                client: op.client,
                action,
                value,
                invoked: op.invoked_at,
                // Tolerate clock-skewed input rather than build an empty interval.
                completed: completed.map(|end| end.max(op.invoked_at)),
            });
        }
        if let Some(read) = final_read {
            ops.push(KeyOp {
                index: FINAL_READ_INDEX,
                client: ClientId(u64::MAX),
                action: Action::Get,
                value: intern(read.value),
                invoked: read.invoked_at,
                completed: Some(read.invoked_at.saturating_add(1)),
            });
        }
        ops.sort_by_key(|op| (op.invoked, op.index));
        KeyHistory { key, values, ops }
    }

    fn verdict(&self, states_max: u64) -> KeyVerdict {
        match search(&self.ops, self.values.len(), states_max) {
            SearchResult::Linearizable => KeyVerdict::Linearizable,
            SearchResult::Inconclusive => KeyVerdict::Inconclusive,
            SearchResult::Stuck { failed, open } => KeyVerdict::Violation(self.violation(failed, &open)),
        }
    }

    /// Builds the report for a search that could not linearize `failed` (a position in `ops`);
    /// `open` lists the operations open at that moment.
    fn violation(&self, failed: usize, open: &[usize]) -> Violation {
        let (view, origin) = self.as_of(self.ops[failed].end());
        let view_failed = origin.binary_search(&failed).expect("the failed operation is in its own prefix");
        let (culprits, subject) = match view.culprits(view_failed) {
            Some(culprits) => {
                // Usually `failed` again; a subset may get stuck elsewhere, and the explanation
                // must match the operations it lists.
                let subject = view.stuck_at(&culprits).map_or(failed, |stuck| origin[stuck]);
                (culprits.iter().map(|&position| origin[position]).collect(), subject)
            }
            None => {
                // No small contradictory subset was found within the bounds: report the search
                // frontier instead, i.e. what was open, plus the writes that fixed the
                // register's value when the failed operation began.
                let mut frontier: BTreeSet<usize> = open.iter().copied().collect();
                frontier.insert(failed);
                frontier.extend(self.latest_preceding_writes(failed));
                (frontier.into_iter().collect::<Vec<usize>>(), failed)
            }
        };
        let mut operations: Vec<u64> = culprits
            .iter()
            .map(|&position| self.ops[position].index)
            .filter(|&index| index != FINAL_READ_INDEX)
            .collect();
        operations.sort_unstable();
        Violation { key: self.key.clone(), operations, explanation: self.explain(subject, &culprits) }
    }

    /// The history as it stood at `horizon`, with the positions its operations have in `ops`.
    ///
    /// Operations invoked later are left out; so are reads completing later, which constrain
    /// nothing up to `horizon`; writes completing later may or may not have taken effect by
    /// then, exactly like unknown-outcome writes. This history is linearizable iff the search
    /// over the full one survives past `horizon`, and its violations involve nothing after it.
    fn as_of(&self, horizon: Micros) -> (KeyHistory<'k>, Vec<usize>) {
        let mut ops = Vec::new();
        let mut origin = Vec::new();
        for (position, op) in self.ops.iter().enumerate().take_while(|(_, op)| op.invoked <= horizon) {
            let mut op = op.clone();
            if op.end() > horizon {
                if op.is_read() {
                    continue;
                }
                op.completed = None;
            }
            ops.push(op);
            origin.push(position);
        }
        (KeyHistory { key: self.key, values: self.values.clone(), ops }, origin)
    }

    /// A small non-linearizable subset of this history (which must be one) that contains
    /// `failed`, if one is found within the bounds: first the neighbourhood of `failed`,
    /// gathered more and more widely, then the whole history, each shrunk to a minimal
    /// contradiction.
    fn culprits(&self, failed: usize) -> Option<Vec<usize>> {
        let all = self.ops.len();
        for (related_max, suspects_max) in SUSPECT_TIERS {
            let suspects = self.suspects(failed, related_max, suspects_max);
            if self.stuck_at(&suspects).is_some() {
                return Some(self.shrink(suspects, failed));
            }
            if suspects.len() == all {
                return None;
            }
        }
        let everything: Vec<usize> = (0..all).collect();
        if all <= PREFIX_SHRINK_MAX && self.stuck_at(&everything).is_some() {
            return Some(self.shrink(everything, failed));
        }
        None
    }

    /// Gathers (sorted) operations that plausibly matter to the failure of `failed`: the writes
    /// that last preceded each gathered operation, the candidate writers of each gathered read
    /// and readers of each gathered write (at most `related_max` of each, nearest the failure
    /// first), and the operations overlapping `failed`, up to `suspects_max` in all.
    ///
    /// A read is only ever gathered together with a writer of its value (when there is one):
    /// a read without any writer is contradictory on its own, and shrinking would happily
    /// "explain" the failure with that artifact.
    fn suspects(&self, failed: usize, related_max: usize, suspects_max: usize) -> Vec<usize> {
        let mut gathered = Gathered { chosen: BTreeSet::new(), queue: VecDeque::new(), max: suspects_max };
        gathered.add(self, failed);
        let mut overlapping_added = false;
        while let Some(position) = gathered.queue.pop_front() {
            for writer in self.latest_preceding_writes(position) {
                gathered.add(self, writer);
            }
            let op = &self.ops[position];
            let mut related: Vec<usize> = (0..self.ops.len())
                .filter(|&other| {
                    let other_op = &self.ops[other];
                    other_op.value == op.value
                        && other_op.is_read() != op.is_read()
                        && if op.is_read() { other_op.may_be_read_by(op) } else { op.may_be_read_by(other_op) }
                })
                .collect();
            related.sort_by_key(|&other| std::cmp::Reverse(self.ops[other].invoked));
            for other in related.into_iter().take(related_max) {
                gathered.add(self, other);
            }
            // Concurrent operations come after `failed`'s own relations, so that they cannot
            // crowd those out.
            if !overlapping_added {
                overlapping_added = true;
                for other in 0..self.ops.len() {
                    if self.ops[other].overlaps(&self.ops[failed]) {
                        gathered.add(self, other);
                    }
                }
            }
        }
        gathered.chosen.into_iter().collect()
    }

    /// The acknowledged writes that precede `ops[position]` in real time and are not followed
    /// by another such write: the candidates for the register's value when that operation
    /// began.
    fn latest_preceding_writes(&self, position: usize) -> Vec<usize> {
        let target = &self.ops[position];
        let preceding: Vec<usize> = (0..self.ops.len())
            .filter(|&other| !self.ops[other].is_read() && self.ops[other].precedes(target))
            .collect();
        let Some(latest_start) = preceding.iter().map(|&other| self.ops[other].invoked).max() else {
            return Vec::new();
        };
        // A preceding write that finished before another preceding write began is certainly
        // overwritten; the rest are mutually concurrent and any of them may be last.
        preceding.into_iter().filter(|&other| self.ops[other].end() >= latest_start).collect()
    }

    /// Where the search over the sub-history `subset` (sorted positions) gets stuck, as a
    /// position in `ops`; `None` when it is linearizable or too expensive to decide.
    fn stuck_at(&self, subset: &[usize]) -> Option<usize> {
        let ops: Vec<KeyOp> = subset.iter().map(|&position| self.ops[position].clone()).collect();
        match search(&ops, self.values.len(), SHRINK_STATES_MAX) {
            SearchResult::Stuck { failed, .. } => Some(subset[failed]),
            SearchResult::Linearizable | SearchResult::Inconclusive => None,
        }
    }

    /// Drops operations from the non-linearizable `set` while it stays non-linearizable, always
    /// keeping `failed`: first in large chunks, then one at a time (delta debugging).
    ///
    /// Only drops that cannot *create* a violation are tried: reads, and writes whose value no
    /// remaining read observes (in any linearization such a write is immediately overwritten,
    /// so removing it keeps a linearizable history linearizable). Every accepted drop thus
    /// keeps a genuine contradiction, and the final one-at-a-time passes make the result
    /// minimal with respect to such drops.
    fn shrink(&self, mut set: Vec<usize>, failed: usize) -> Vec<usize> {
        let mut chunk = set.len().div_ceil(2).max(1);
        loop {
            let mut changed = false;
            let mut start = 0;
            while start < set.len() {
                let end = (start + chunk).min(set.len());
                let dropped = self.droppable(&set, start..end, failed);
                if !dropped.is_empty() {
                    let trial: Vec<usize> =
                        set.iter().copied().filter(|position| !dropped.contains(position)).collect();
                    if self.stuck_at(&trial).is_some() {
                        // Retry from the same place: the window now holds new operations.
                        set = trial;
                        changed = true;
                        continue;
                    }
                }
                start = end;
            }
            if chunk > 1 {
                chunk /= 2;
            } else if !changed {
                return set;
            }
        }
    }

    /// The operations of `set[range]` that may be dropped together without creating a
    /// violation: its reads (but never `failed`), and its writes whose value no read that
    /// stays in `set` observes.
    fn droppable(&self, set: &[usize], range: std::ops::Range<usize>, failed: usize) -> Vec<usize> {
        let dropped_reads: BTreeSet<usize> = set[range.clone()]
            .iter()
            .copied()
            .filter(|&position| position != failed && self.ops[position].is_read())
            .collect();
        let observed: BTreeSet<ValueId> = set
            .iter()
            .filter(|&&position| self.ops[position].is_read() && !dropped_reads.contains(&position))
            .map(|&position| self.ops[position].value)
            .collect();
        set[range]
            .iter()
            .copied()
            .filter(|&position| {
                dropped_reads.contains(&position)
                    || (!self.ops[position].is_read() && !observed.contains(&self.ops[position].value))
            })
            .collect()
    }

    fn explain(&self, failed: usize, culprits: &[usize]) -> String {
        let op = &self.ops[failed];
        let subject = self.describe(op);
        let never_written =
            op.is_read() && op.value != ABSENT && !self.ops.iter().any(|w| !w.is_read() && w.value == op.value);
        if never_written {
            return format!("{subject}, a value no put to this key ever wrote");
        }
        let others: Vec<&KeyOp> =
            culprits.iter().filter(|&&position| position != failed).map(|&position| &self.ops[position]).collect();
        let mut text = format!(
            "{subject}, but no order of it and the {} related operation{} allows that",
            others.len(),
            if others.len() == 1 { "" } else { "s" }
        );
        for (i, other) in others.iter().take(EXPLAINED_MAX).enumerate() {
            text.push_str(if i == 0 { ": " } else { "; " });
            text.push_str(&self.describe(other));
        }
        if others.len() > EXPLAINED_MAX {
            let _ = write!(text, "; and {} more", others.len() - EXPLAINED_MAX);
        }
        text
    }

    fn describe(&self, op: &KeyOp) -> String {
        let value = match &self.values[op.value as usize] {
            Some(value) => format!("{value:?}"),
            None => "absent".to_string(),
        };
        if op.index == FINAL_READ_INDEX {
            return format!("the final read after the run returned {value}");
        }
        let who = format!("client {} (op {})", op.client.0, op.index);
        let when = match op.completed {
            Some(end) => format!("at {}..{end}", op.invoked),
            None => format!("invoked at {}, outcome unknown", op.invoked),
        };
        match op.action {
            Action::Get => format!("get by {who} returned {value} {when}"),
            Action::Put => format!("put {value} by {who} {when}"),
            Action::Delete => format!("delete by {who} {when}"),
        }
    }
}

/// The operations gathered around a failure, and those still to expand.
struct Gathered {
    chosen: BTreeSet<usize>,
    queue: VecDeque<usize>,
    max: usize,
}

impl Gathered {
    /// Adds `position`, with a writer of its value if it is a read that has none gathered yet,
    /// unless that would exceed the limit.
    fn add(&mut self, history: &KeyHistory, position: usize) {
        if self.chosen.contains(&position) {
            return;
        }
        let op = &history.ops[position];
        let has_writer = |chosen: &BTreeSet<usize>| {
            chosen.iter().any(|&other| !history.ops[other].is_read() && history.ops[other].value == op.value)
        };
        let writer = if op.is_read() && !has_writer(&self.chosen) {
            // The latest write that may be its source, the likeliest to be.
            (0..history.ops.len())
                .filter(|&other| {
                    let other_op = &history.ops[other];
                    !other_op.is_read() && other_op.value == op.value && other_op.may_be_read_by(op)
                })
                .max_by_key(|&other| (history.ops[other].invoked, other))
        } else {
            None
        };
        if self.chosen.len() + 1 + usize::from(writer.is_some()) > self.max {
            return;
        }
        for added in std::iter::once(position).chain(writer) {
            if self.chosen.insert(added) {
                self.queue.push_back(added);
            }
        }
    }
}

/// The completion time of a write, or `None` when its outcome is unknown. A write that claims
/// an outcome but has no completion time is treated as unknown, the weaker claim, so malformed
/// input can never manufacture a violation.
fn write_end(op: &Operation, outcome: &Outcome) -> Option<Micros> {
    match outcome {
        Outcome::Unknown => None,
        Outcome::Written | Outcome::Read(_) => op.completed_at,
    }
}

// ---------------------------------------------------------------------------------------------
// The schedule: events in time order, with bitset slots assigned to open operations.
// ---------------------------------------------------------------------------------------------

/// One event of the sweep. Slot assignment and value retirement depend only on the history,
/// not on any configuration, so they are computed once up front.
#[derive(Debug)]
enum Step {
    /// `op` is invoked and occupies bit `slot` until it completes (or its value retires).
    Invoke { op: usize, slot: u32 },
    /// `op` completes: every surviving configuration must have linearized it.
    Complete { op: usize, slot: u32 },
    /// The last read observing `value` has completed, so from now on no read can observe it:
    /// it becomes `DEAD`, and the unknown-outcome writes of it (`freed`) no longer matter.
    Retire { value: ValueId, freed: Vec<u32> },
}

/// Event kinds, ordered so that invocations sort before completions at the same instant: equal
/// times are concurrent, so an operation invoked at t may linearize before one completing at t.
const INVOKE: u8 = 0;
const COMPLETE: u8 = 1;

struct Schedule {
    steps: Vec<Step>,
    /// Number of bitset slots ever used at once.
    slots: usize,
    /// Per value: observed by at least one read.
    initially_live: Vec<bool>,
}

impl Schedule {
    fn new(ops: &[KeyOp], value_count: usize) -> Schedule {
        let mut reads_left = vec![0usize; value_count];
        for op in ops.iter().filter(|op| op.is_read()) {
            reads_left[op.value as usize] += 1;
        }
        let initially_live: Vec<bool> =
            reads_left.iter().enumerate().map(|(value, &reads)| value != DEAD as usize && reads > 0).collect();
        let mut live = initially_live.clone();

        let mut events: Vec<(Micros, u8, usize)> = Vec::with_capacity(2 * ops.len());
        for (position, op) in ops.iter().enumerate() {
            events.push((op.invoked, INVOKE, position));
            if let Some(end) = op.completed {
                events.push((end, COMPLETE, position));
            }
        }
        events.sort_unstable();

        let mut steps = Vec::with_capacity(events.len());
        let mut used: Vec<bool> = Vec::new();
        let mut slot_of = vec![u32::MAX; ops.len()];
        let mut unknown_slots: Vec<Vec<u32>> = vec![Vec::new(); value_count];
        for (_, event, position) in events {
            let op = &ops[position];
            let value = op.value as usize;
            if event == INVOKE {
                if op.is_unknown_write() && !live[value] {
                    // Nobody can observe it any more; taking effect could only hurt.
                    continue;
                }
                // Lowest free slot keeps bitsets dense and the schedule deterministic.
                let slot = match used.iter().position(|&in_use| !in_use) {
                    Some(free) => free,
                    None => {
                        used.push(false);
                        used.len() - 1
                    }
                };
                used[slot] = true;
                let slot = slot as u32;
                slot_of[position] = slot;
                if op.is_unknown_write() {
                    unknown_slots[value].push(slot);
                }
                steps.push(Step::Invoke { op: position, slot });
            } else {
                let slot = slot_of[position];
                used[slot as usize] = false;
                steps.push(Step::Complete { op: position, slot });
                if op.is_read() {
                    reads_left[value] -= 1;
                    if reads_left[value] == 0 {
                        live[value] = false;
                        let freed = std::mem::take(&mut unknown_slots[value]);
                        for &slot in &freed {
                            used[slot as usize] = false;
                        }
                        steps.push(Step::Retire { value: op.value, freed });
                    }
                }
            }
        }
        Schedule { steps, slots: used.len(), initially_live }
    }
}

// ---------------------------------------------------------------------------------------------
// The search.
// ---------------------------------------------------------------------------------------------

enum SearchResult {
    Linearizable,
    /// No configuration could linearize `failed` by its completion; `open` lists the
    /// operations (positions) that were open at that moment.
    Stuck {
        failed: usize,
        open: Vec<usize>,
    },
    Inconclusive,
}

/// Runs the sweep over `ops` (sorted by invocation), creating at most `states_max`
/// configurations.
fn search(ops: &[KeyOp], value_count: usize, states_max: u64) -> SearchResult {
    let schedule = Schedule::new(ops, value_count);
    // Bitsets are fixed-size arrays so configurations are `Copy` and hash without allocating;
    // pick the smallest width that holds every slot.
    match schedule.slots.div_ceil(64) {
        0 | 1 => Search::<1>::new(ops, &schedule, states_max).run(),
        2 => Search::<2>::new(ops, &schedule, states_max).run(),
        3..=4 => Search::<4>::new(ops, &schedule, states_max).run(),
        5..=8 => Search::<8>::new(ops, &schedule, states_max).run(),
        9..=16 => Search::<16>::new(ops, &schedule, states_max).run(),
        17..=32 => Search::<32>::new(ops, &schedule, states_max).run(),
        words if words * 64 <= SLOTS_MAX => Search::<64>::new(ops, &schedule, states_max).run(),
        _ => SearchResult::Inconclusive,
    }
}

/// A fixed-width bitset over slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bits<const N: usize>([u64; N]);

impl<const N: usize> Bits<N> {
    const EMPTY: Self = Bits([0; N]);

    fn has(&self, slot: u32) -> bool {
        self.0[slot as usize / 64] & (1 << (slot % 64)) != 0
    }

    fn insert(&mut self, slot: u32) {
        self.0[slot as usize / 64] |= 1 << (slot % 64);
    }

    fn remove(&mut self, slot: u32) {
        self.0[slot as usize / 64] &= !(1 << (slot % 64));
    }

    fn union(mut self, other: Self) -> Self {
        for (word, other) in self.0.iter_mut().zip(other.0) {
            *word |= other;
        }
        self
    }

    fn intersect(mut self, other: Self) -> Self {
        for (word, other) in self.0.iter_mut().zip(other.0) {
            *word &= other;
        }
        self
    }

    fn minus(mut self, other: Self) -> Self {
        for (word, other) in self.0.iter_mut().zip(other.0) {
            *word &= !other;
        }
        self
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&word| word == 0)
    }

    fn iter(self) -> impl Iterator<Item = u32> {
        self.0.into_iter().enumerate().flat_map(|(i, mut word)| {
            std::iter::from_fn(move || {
                (word != 0).then(|| {
                    let bit = word.trailing_zeros();
                    word &= word - 1;
                    i as u32 * 64 + bit
                })
            })
        })
    }
}

/// One node of the search: the register's value and the status of the open operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Config<const N: usize> {
    value: ValueId,
    /// Open operations already linearized.
    linearized: Bits<N>,
    /// Open operations, not yet linearized, invoked before the latest write this
    /// configuration linearized at the end of its order. Any of them may still be placed
    /// *retroactively* in the gap just before that write: a write alone, or a write followed
    /// by reads of its value (a *block*). Nothing after the gap notices, because that later
    /// write overwrites whatever the block leaves. Deferring these placements until an
    /// operation's completion forces them is what keeps the search from branching on every
    /// order of overwritten writes.
    retro: Bits<N>,
}

impl<const N: usize> Config<N> {
    /// Forgets `slot` once its operation completed (it is linearized in every survivor).
    fn release(mut self, slot: u32) -> Self {
        self.linearized.remove(slot);
        self.retro.remove(slot);
        self
    }
}

impl<const N: usize> Hash for Config<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(self.value);
        for word in self.linearized.0.iter().chain(&self.retro.0) {
            state.write_u64(*word);
        }
    }
}

/// A small multiplicative hasher (FxHash). Configurations are plain integers, so SipHash's
/// flooding resistance buys nothing here, and a fixed hasher keeps runs reproducible.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n.into());
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type ConfigSet<const N: usize> = HashSet<Config<N>, BuildHasherDefault<FxHasher>>;

/// The budget ran out.
struct OutOfStates;

struct Search<'a, const N: usize> {
    ops: &'a [KeyOp],
    schedule: &'a Schedule,
    /// Per value: some read that has not completed yet observes it.
    live: Vec<bool>,
    slot_op: Vec<usize>,
    /// Every occupied slot.
    open: Bits<N>,
    /// Per value: open reads that observed it.
    reads_of: Vec<Bits<N>>,
    /// Per value: open acknowledged writes of it.
    writes_of: Vec<Bits<N>>,
    /// Per value: unknown-outcome writes of it (only while it is live).
    unknown_of: Vec<Bits<N>>,
    /// Open acknowledged writes whose value is dead.
    dead_writes: Bits<N>,
    /// Configurations created so far.
    states_created: u64,
    states_max: u64,
}

impl<'a, const N: usize> Search<'a, N> {
    fn new(ops: &'a [KeyOp], schedule: &'a Schedule, states_max: u64) -> Self {
        let config_bytes = std::mem::size_of::<Config<N>>() as u64;
        let values = schedule.initially_live.len();
        Search {
            ops,
            schedule,
            live: schedule.initially_live.clone(),
            slot_op: vec![usize::MAX; schedule.slots],
            open: Bits::EMPTY,
            reads_of: vec![Bits::EMPTY; values],
            writes_of: vec![Bits::EMPTY; values],
            unknown_of: vec![Bits::EMPTY; values],
            dead_writes: Bits::EMPTY,
            states_created: 0,
            states_max: states_max.min(SEARCH_BYTES_MAX / config_bytes),
        }
    }

    fn run(mut self) -> SearchResult {
        let initial_value = if self.live[ABSENT as usize] { ABSENT } else { DEAD };
        let mut frontier = vec![Config { value: initial_value, linearized: Bits::EMPTY, retro: Bits::EMPTY }];
        let schedule = self.schedule;
        for step in &schedule.steps {
            match *step {
                Step::Invoke { op, slot } => self.invoke(&mut frontier, op, slot),
                Step::Complete { op, slot } => {
                    let survivors = match self.complete(&frontier, op, slot) {
                        Ok(survivors) => survivors,
                        Err(OutOfStates) => return SearchResult::Inconclusive,
                    };
                    if survivors.is_empty() {
                        let open = self.open.iter().map(|slot| self.slot_op[slot as usize]).collect();
                        return SearchResult::Stuck { failed: op, open };
                    }
                    frontier = survivors;
                    self.close(op, slot);
                }
                Step::Retire { value, ref freed } => self.retire(&mut frontier, value, freed),
            }
        }
        SearchResult::Linearizable
    }

    fn op_in(&self, slot: u32) -> &'a KeyOp {
        &self.ops[self.slot_op[slot as usize]]
    }

    /// The value the write in `slot` stores, as far as the search can tell values apart.
    fn effective_value(&self, slot: u32) -> ValueId {
        let value = self.op_in(slot).value;
        if self.live[value as usize] {
            value
        } else {
            DEAD
        }
    }

    fn invoke(&mut self, frontier: &mut Vec<Config<N>>, op: usize, slot: u32) {
        self.slot_op[slot as usize] = op;
        self.open.insert(slot);
        let key_op = &self.ops[op];
        let value = key_op.value as usize;
        if key_op.is_read() {
            self.reads_of[value].insert(slot);
            // Eager read: linearize it wherever the register already holds its value.
            for config in frontier.iter_mut().filter(|config| config.value == key_op.value) {
                config.linearized.insert(slot);
            }
        } else if key_op.is_unknown_write() {
            self.unknown_of[value].insert(slot);
        } else {
            self.writes_of[value].insert(slot);
            if !self.live[value] {
                self.dead_writes.insert(slot);
                for config in frontier.iter_mut().filter(|config| config.value == DEAD) {
                    self.saturate(config);
                }
                // Saturation widens `retro`, which can make distinct configurations equal.
                dedup(frontier);
            }
        }
    }

    /// Applies the eager rules after a configuration's value (or the set of open operations)
    /// changed: linearize every open read of the current value; when the value is dead,
    /// linearize every open acknowledged write of a dead value too (it changes nothing and
    /// must happen anyway), which opens a new gap just before it.
    fn saturate(&self, config: &mut Config<N>) {
        if config.value == DEAD {
            let eaten = self.dead_writes.minus(config.linearized);
            if !eaten.is_empty() {
                config.linearized = config.linearized.union(eaten);
                config.retro = config.retro.union(self.open.minus(config.linearized));
            }
        } else {
            config.linearized = config.linearized.union(self.reads_of[config.value as usize]);
        }
        config.retro = config.retro.minus(config.linearized);
    }

    /// Linearizes the write in `slot` now, at the end of the order: the register takes its
    /// value, and everything still open becomes placeable in the gap just before it.
    fn visible(&self, config: &Config<N>, slot: u32) -> Config<N> {
        let mut next = *config;
        next.retro = next.retro.union(self.open.minus(next.linearized));
        next.linearized.insert(slot);
        next.value = self.effective_value(slot);
        self.saturate(&mut next);
        next
    }

    /// Places the write in `slot` (which must be in `retro`) retroactively, followed by every
    /// retroactively placeable read of its value. The current value is unchanged.
    fn block(&self, config: &Config<N>, slot: u32) -> Config<N> {
        let mut next = *config;
        next.linearized.insert(slot);
        let value = self.effective_value(slot);
        if value != DEAD {
            next.linearized = next.linearized.union(self.reads_of[value as usize].intersect(next.retro));
        }
        next.retro = next.retro.minus(next.linearized);
        next
    }

    /// The write of `value`, among those not yet linearized in `config` and in `within`, that
    /// is best to linearize; writes of equal value are interchangeable except for how long
    /// they stay available, so using any other one is never better. That is an acknowledged
    /// write completing first (the others remain usable for longer), else the earliest
    /// unknown-outcome write (those never complete, and the later ones are as good).
    fn writer(&self, config: &Config<N>, value: ValueId, within: Bits<N>) -> Option<u32> {
        let acknowledged = self.writes_of[value as usize].intersect(within).minus(config.linearized);
        if let Some(slot) = acknowledged.iter().min_by_key(|&slot| (self.op_in(slot).end(), slot)) {
            return Some(slot);
        }
        let unknown = self.unknown_of[value as usize].minus(config.linearized);
        let earliest = unknown.iter().min_by_key(|&slot| (self.op_in(slot).invoked, self.slot_op[slot as usize]));
        earliest.filter(|&slot| within.has(slot))
    }

    /// Extends every configuration so that operation `op` (in `slot`) is linearized, dropping
    /// those that cannot; returns the survivors with `slot` released.
    ///
    /// Only the last step of any extension is chosen here: a write of `op`'s value placed
    /// retroactively or at the end (for a read), or `op` itself placed either way (for a
    /// write). Any other write that a linearization would need before this one can be placed
    /// retroactively later, when its own completion or a read of its value forces it.
    fn complete(&mut self, frontier: &[Config<N>], op: usize, slot: u32) -> Result<Vec<Config<N>>, OutOfStates> {
        let key_op = &self.ops[op];
        let mut survivors = ConfigSet::<N>::default();
        for config in frontier {
            let mut next = [None, None];
            if config.linearized.has(slot) {
                next[0] = Some(*config);
            } else if key_op.is_read() {
                if config.retro.has(slot) {
                    next[0] = self.writer(config, key_op.value, config.retro).map(|head| self.block(config, head));
                }
                next[1] = self.writer(config, key_op.value, self.open).map(|head| self.visible(config, head));
            } else {
                if config.retro.has(slot) {
                    next[0] = Some(self.block(config, slot));
                }
                next[1] = Some(self.visible(config, slot));
            }
            for config in next.into_iter().flatten() {
                if survivors.insert(config.release(slot)) {
                    self.states_created += 1;
                    if self.states_created > self.states_max {
                        return Err(OutOfStates);
                    }
                }
            }
        }
        // The frontier's order never affects the verdict: every step explores all of it.
        Ok(survivors.into_iter().collect())
    }

    /// Frees the slot of a completed operation.
    fn close(&mut self, op: usize, slot: u32) {
        let value = self.ops[op].value as usize;
        self.open.remove(slot);
        self.reads_of[value].remove(slot);
        self.writes_of[value].remove(slot);
        self.dead_writes.remove(slot);
    }

    fn retire(&mut self, frontier: &mut Vec<Config<N>>, value: ValueId, freed: &[u32]) {
        self.live[value as usize] = false;
        self.dead_writes = self.dead_writes.union(self.writes_of[value as usize]);
        let mut freed_bits = Bits::EMPTY;
        for &slot in freed {
            freed_bits.insert(slot);
        }
        self.open = self.open.minus(freed_bits);
        self.unknown_of[value as usize] = Bits::EMPTY;
        for config in frontier.iter_mut() {
            // Taken or not, a freed unknown write no longer matters.
            config.linearized = config.linearized.minus(freed_bits);
            config.retro = config.retro.minus(freed_bits);
            if config.value == value {
                config.value = DEAD;
            }
            self.saturate(config);
        }
        dedup(frontier);
    }
}

/// Removes duplicate configurations, keeping the first of each.
fn dedup<const N: usize>(frontier: &mut Vec<Config<N>>) {
    let mut seen = ConfigSet::<N>::default();
    frontier.retain(|config| seen.insert(*config));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Rng;

    /// Builds histories one operation per line.
    #[derive(Default)]
    struct Builder {
        history: History,
    }

    impl Builder {
        fn push(
            &mut self,
            client: u64,
            key: &str,
            kind: OpKind,
            span: (Micros, Option<Micros>),
            outcome: Outcome,
        ) -> u64 {
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
        fn explore(
            ops: &[Op],
            remaining: u32,
            value: &Option<Blob>,
            failed: &mut HashSet<(u32, Option<Blob>)>,
        ) -> bool {
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
}
