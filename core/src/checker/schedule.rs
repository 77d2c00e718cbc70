//! The schedule: one key's events in time order, with bitset slots assigned to the operations
//! open at each instant. Slot assignment and value retirement depend only on the history, so
//! they are computed once, before the search.

use super::key::*;
use super::*;

/// One event of the sweep. Slot assignment and value retirement depend only on the history,
/// not on any configuration, so they are computed once up front.
#[derive(Debug)]
pub(super) enum Step {
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
pub(super) const INVOKE: u8 = 0;
pub(super) const COMPLETE: u8 = 1;

pub(super) struct Schedule {
    pub(super) steps: Vec<Step>,
    /// Number of bitset slots ever used at once.
    pub(super) slots: usize,
    /// Per value: observed by at least one read.
    pub(super) initially_live: Vec<bool>,
}

impl Schedule {
    pub(super) fn new(ops: &[KeyOp], value_count: usize) -> Schedule {
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
