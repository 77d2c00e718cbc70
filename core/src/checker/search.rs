//! The search: Lowe's just-in-time linearization over the schedule, configurations kept in
//! hash sets (WGL's memo table), bounded by `SEARCH_STATES_MAX`.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use super::key::*;
use super::schedule::*;
use super::*;

pub(super) enum SearchResult {
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
pub(super) fn search(ops: &[KeyOp], value_count: usize, states_max: u64) -> SearchResult {
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
pub(super) struct Bits<const N: usize>([u64; N]);

impl<const N: usize> Bits<N> {
    const EMPTY: Self = Bits([0; N]);

    pub(super) fn has(&self, slot: u32) -> bool {
        self.0[slot as usize / 64] & (1 << (slot % 64)) != 0
    }

    pub(super) fn insert(&mut self, slot: u32) {
        self.0[slot as usize / 64] |= 1 << (slot % 64);
    }

    pub(super) fn remove(&mut self, slot: u32) {
        self.0[slot as usize / 64] &= !(1 << (slot % 64));
    }

    pub(super) fn union(mut self, other: Self) -> Self {
        for (word, other) in self.0.iter_mut().zip(other.0) {
            *word |= other;
        }
        self
    }

    pub(super) fn intersect(mut self, other: Self) -> Self {
        for (word, other) in self.0.iter_mut().zip(other.0) {
            *word &= other;
        }
        self
    }

    pub(super) fn minus(mut self, other: Self) -> Self {
        for (word, other) in self.0.iter_mut().zip(other.0) {
            *word &= !other;
        }
        self
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.iter().all(|&word| word == 0)
    }

    pub(super) fn iter(self) -> impl Iterator<Item = u32> {
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
pub(super) struct Config<const N: usize> {
    pub(super) value: ValueId,
    /// Open operations already linearized.
    pub(super) linearized: Bits<N>,
    /// Open operations, not yet linearized, invoked before the latest write this
    /// configuration linearized at the end of its order. Any of them may still be placed
    /// *retroactively* in the gap just before that write: a write alone, or a write followed
    /// by reads of its value (a *block*). Nothing after the gap notices, because that later
    /// write overwrites whatever the block leaves. Deferring these placements until an
    /// operation's completion forces them is what keeps the search from branching on every
    /// order of overwritten writes.
    pub(super) retro: Bits<N>,
}

impl<const N: usize> Config<N> {
    /// Forgets `slot` once its operation completed (it is linearized in every survivor).
    pub(super) fn release(mut self, slot: u32) -> Self {
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
pub(super) struct FxHasher(u64);

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

pub(super) type ConfigSet<const N: usize> = HashSet<Config<N>, BuildHasherDefault<FxHasher>>;

/// The budget ran out.
pub(super) struct OutOfStates;

pub(super) struct Search<'a, const N: usize> {
    pub(super) ops: &'a [KeyOp],
    pub(super) schedule: &'a Schedule,
    /// Per value: some read that has not completed yet observes it.
    pub(super) live: Vec<bool>,
    pub(super) slot_op: Vec<usize>,
    /// Every occupied slot.
    pub(super) open: Bits<N>,
    /// Per value: open reads that observed it.
    pub(super) reads_of: Vec<Bits<N>>,
    /// Per value: open acknowledged writes of it.
    pub(super) writes_of: Vec<Bits<N>>,
    /// Per value: unknown-outcome writes of it (only while it is live).
    pub(super) unknown_of: Vec<Bits<N>>,
    /// Open acknowledged writes whose value is dead.
    pub(super) dead_writes: Bits<N>,
    /// Configurations created so far.
    pub(super) states_created: u64,
    pub(super) states_max: u64,
}

impl<'a, const N: usize> Search<'a, N> {
    pub(super) fn new(ops: &'a [KeyOp], schedule: &'a Schedule, states_max: u64) -> Self {
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

    pub(super) fn run(mut self) -> SearchResult {
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

    pub(super) fn op_in(&self, slot: u32) -> &'a KeyOp {
        &self.ops[self.slot_op[slot as usize]]
    }

    /// The value the write in `slot` stores, as far as the search can tell values apart.
    pub(super) fn effective_value(&self, slot: u32) -> ValueId {
        let value = self.op_in(slot).value;
        if self.live[value as usize] {
            value
        } else {
            DEAD
        }
    }

    pub(super) fn invoke(&mut self, frontier: &mut Vec<Config<N>>, op: usize, slot: u32) {
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
    pub(super) fn saturate(&self, config: &mut Config<N>) {
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
    pub(super) fn visible(&self, config: &Config<N>, slot: u32) -> Config<N> {
        let mut next = *config;
        next.retro = next.retro.union(self.open.minus(next.linearized));
        next.linearized.insert(slot);
        next.value = self.effective_value(slot);
        self.saturate(&mut next);
        next
    }

    /// Places the write in `slot` (which must be in `retro`) retroactively, followed by every
    /// retroactively placeable read of its value. The current value is unchanged.
    pub(super) fn block(&self, config: &Config<N>, slot: u32) -> Config<N> {
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
    pub(super) fn writer(&self, config: &Config<N>, value: ValueId, within: Bits<N>) -> Option<u32> {
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
    pub(super) fn complete(
        &mut self,
        frontier: &[Config<N>],
        op: usize,
        slot: u32,
    ) -> Result<Vec<Config<N>>, OutOfStates> {
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
    pub(super) fn close(&mut self, op: usize, slot: u32) {
        let value = self.ops[op].value as usize;
        self.open.remove(slot);
        self.reads_of[value].remove(slot);
        self.writes_of[value].remove(slot);
        self.dead_writes.remove(slot);
    }

    pub(super) fn retire(&mut self, frontier: &mut Vec<Config<N>>, value: ValueId, freed: &[u32]) {
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
pub(super) fn dedup<const N: usize>(frontier: &mut Vec<Config<N>>) {
    let mut seen = ConfigSet::<N>::default();
    frontier.retain(|config| seen.insert(*config));
}
