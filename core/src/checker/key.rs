//! One key's history, normalised for the search: values interned, reads and writes sorted into
//! the shape the search works on, the final read appended, and a failure shrunk to what a
//! person can read.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use super::*;

/// Interned register value. Values are interned per key; ids index `KeyHistory::values`.
pub(super) type ValueId = u32;

/// The merged "no remaining read can observe this" value (see the module docs).
pub(super) const DEAD: ValueId = 0;

/// The id of `None` (key absent), the register's initial value.
pub(super) const ABSENT: ValueId = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    Get,
    Put,
    Delete,
}

/// One operation reduced to what the search needs.
#[derive(Clone, Debug)]
pub(super) struct KeyOp {
    pub(super) index: u64,
    pub(super) client: ClientId,
    pub(super) action: Action,
    /// The value a get returned, or the value a write stores.
    pub(super) value: ValueId,
    pub(super) invoked: Micros,
    /// `None` only for writes with unknown outcome: they may take effect at any point after
    /// their invocation, or never.
    pub(super) completed: Option<Micros>,
}

impl KeyOp {
    pub(super) fn is_read(&self) -> bool {
        self.action == Action::Get
    }

    /// Acknowledged writes and completed reads must be linearized by their completion.
    pub(super) fn is_unknown_write(&self) -> bool {
        self.completed.is_none()
    }

    pub(super) fn end(&self) -> Micros {
        self.completed.unwrap_or(Micros::MAX)
    }

    /// Real-time order: `self` completed strictly before `other` was invoked.
    pub(super) fn precedes(&self, other: &KeyOp) -> bool {
        matches!(self.completed, Some(end) if end < other.invoked)
    }

    pub(super) fn overlaps(&self, other: &KeyOp) -> bool {
        !self.precedes(other) && !other.precedes(self)
    }

    /// Whether the read `read` could have returned this write's value: the write began before
    /// the read ended. (Whether it was overwritten in between is for the search to decide.)
    pub(super) fn may_be_read_by(&self, read: &KeyOp) -> bool {
        !read.precedes(self)
    }
}

/// The synthetic read appended by [`check_final_values`].
pub(super) struct FinalRead {
    pub(super) value: Option<Blob>,
    pub(super) invoked_at: Micros,
}

pub(super) struct KeyHistory<'k> {
    pub(super) key: &'k Blob,
    /// Value table: `values[DEAD]` is a placeholder, `values[ABSENT]` is `None`.
    pub(super) values: Vec<Option<Blob>>,
    /// Sorted by invocation time, then index, so every derived order is deterministic.
    pub(super) ops: Vec<KeyOp>,
}

impl<'k> KeyHistory<'k> {
    pub(super) fn new(key: &'k Blob, operations: &[&Operation], final_read: Option<FinalRead>) -> Self {
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

    pub(super) fn verdict(&self, states_max: u64) -> KeyVerdict {
        match search(&self.ops, self.values.len(), states_max) {
            SearchResult::Linearizable => KeyVerdict::Linearizable,
            SearchResult::Inconclusive => KeyVerdict::Inconclusive,
            SearchResult::Stuck { failed, open } => KeyVerdict::Violation(self.violation(failed, &open)),
        }
    }

    /// Builds the report for a search that could not linearize `failed` (a position in `ops`);
    /// `open` lists the operations open at that moment.
    pub(super) fn violation(&self, failed: usize, open: &[usize]) -> Violation {
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
    pub(super) fn as_of(&self, horizon: Micros) -> (KeyHistory<'k>, Vec<usize>) {
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
    pub(super) fn culprits(&self, failed: usize) -> Option<Vec<usize>> {
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
    pub(super) fn suspects(&self, failed: usize, related_max: usize, suspects_max: usize) -> Vec<usize> {
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
    pub(super) fn latest_preceding_writes(&self, position: usize) -> Vec<usize> {
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
    pub(super) fn stuck_at(&self, subset: &[usize]) -> Option<usize> {
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
    pub(super) fn shrink(&self, mut set: Vec<usize>, failed: usize) -> Vec<usize> {
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
    pub(super) fn droppable(&self, set: &[usize], range: std::ops::Range<usize>, failed: usize) -> Vec<usize> {
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

    pub(super) fn explain(&self, failed: usize, culprits: &[usize]) -> String {
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

    pub(super) fn describe(&self, op: &KeyOp) -> String {
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
pub(super) struct Gathered {
    pub(super) chosen: BTreeSet<usize>,
    pub(super) queue: VecDeque<usize>,
    pub(super) max: usize,
}

impl Gathered {
    /// Adds `position`, with a writer of its value if it is a read that has none gathered yet,
    /// unless that would exceed the limit.
    pub(super) fn add(&mut self, history: &KeyHistory, position: usize) {
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
pub(super) fn write_end(op: &Operation, outcome: &Outcome) -> Option<Micros> {
    match outcome {
        Outcome::Unknown => None,
        Outcome::Written | Outcome::Read(_) => op.completed_at,
    }
}
