//! Versions: Dynamo's vector clocks, and the ballots that order them totally.
//!
//! A stored record carries a vector clock (Dynamo section 4.4): who wrote it after seeing what.
//! Vector clocks only order versions partially, and a linearizable register needs one winner,
//! so every record also carries a `Ballot`, a Lamport-style `(round, node)` pair that is unique
//! per write attempt. The coordinator of a write picks a ballot above every promise it saw from
//! a read quorum, and merges the clocks it saw before incrementing its own entry, so ballot
//! order is a linear extension of clock order: if clock `a` happened before clock `b`, then
//! `ballot(a) < ballot(b)`. Ties between concurrent clocks are broken by ballot, which is total.

use std::cmp::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// A totally ordered, unique stamp of one write attempt: compare `round` first, then `node`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u64,
    pub node: NodeId,
}

impl Ballot {
    /// Below every ballot a coordinator can pick (those have `round >= 1`).
    pub const ZERO: Ballot = Ballot { round: 0, node: NodeId(0) };

    /// The round of a key's first ballot: `(FIRST_ROUND, first home)` is reserved to the key's
    /// first home for the key's first write. Every other ballot has a higher round, so nothing
    /// can have been accepted below it, and like Paxos's lowest ballot it needs no phase 1.
    pub const FIRST_ROUND: u64 = 1;

    /// The first ballot of a key whose first home is `home`.
    pub fn first(home: NodeId) -> Ballot {
        Ballot { round: Ballot::FIRST_ROUND, node: home }
    }
}

/// How two vector clocks relate causally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Causality {
    Equal,
    Before,
    After,
    Concurrent,
}

/// A vector clock: `(node, counter)` entries sorted by node, zero counters omitted. Shared
/// copy-on-write: a record travels in many messages, and cloning it must not allocate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VectorClock {
    entries: Arc<Vec<(NodeId, u64)>>,
}

impl VectorClock {
    pub fn new() -> VectorClock {
        VectorClock::default()
    }

    pub fn entries(&self) -> &[(NodeId, u64)] {
        &self.entries
    }

    pub fn get(&self, node: NodeId) -> u64 {
        match self.entries.binary_search_by_key(&node, |entry| entry.0) {
            Ok(index) => self.entries[index].1,
            Err(_) => 0,
        }
    }

    /// Advances `node`'s entry by one: `node` coordinated a new version.
    pub fn increment(&mut self, node: NodeId) {
        match self.entries.binary_search_by_key(&node, |entry| entry.0) {
            Ok(index) => Arc::make_mut(&mut self.entries)[index].1 += 1,
            Err(index) => Arc::make_mut(&mut self.entries).insert(index, (node, 1)),
        }
    }

    /// The least clock that is at or after both `self` and `other`.
    pub fn merge(&mut self, other: &VectorClock) {
        let mut merged = Vec::with_capacity(self.entries.len().max(other.entries.len()));
        let (mut left, mut right) = (self.entries.iter().peekable(), other.entries.iter().peekable());
        loop {
            match (left.peek(), right.peek()) {
                (Some(a), Some(b)) => match a.0.cmp(&b.0) {
                    Ordering::Less => merged.push(*left.next().expect("peeked")),
                    Ordering::Greater => merged.push(*right.next().expect("peeked")),
                    Ordering::Equal => {
                        merged.push((a.0, a.1.max(b.1)));
                        left.next();
                        right.next();
                    }
                },
                (Some(_), None) => merged.push(*left.next().expect("peeked")),
                (None, Some(_)) => merged.push(*right.next().expect("peeked")),
                (None, None) => break,
            }
        }
        self.entries = Arc::new(merged);
    }

    /// Compares two clocks causally.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        let (mut less, mut greater) = (false, false);
        let mut nodes: Vec<NodeId> = self.entries.iter().map(|entry| entry.0).collect();
        nodes.extend(other.entries.iter().map(|entry| entry.0));
        for node in nodes {
            match self.get(node).cmp(&other.get(node)) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
        }
        match (less, greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(entries: &[(u32, u64)]) -> VectorClock {
        let mut clock = VectorClock::new();
        for &(node, count) in entries {
            for _ in 0..count {
                clock.increment(NodeId(node));
            }
        }
        clock
    }

    #[test]
    fn increment_and_get() {
        let mut c = VectorClock::new();
        assert_eq!(c.get(NodeId(3)), 0);
        c.increment(NodeId(3));
        c.increment(NodeId(1));
        c.increment(NodeId(3));
        assert_eq!(c.entries(), &[(NodeId(1), 1), (NodeId(3), 2)]);
    }

    #[test]
    fn causality_follows_the_paper() {
        // Dynamo figure 3: D1 ([Sx,1]) -> D2 ([Sx,2]) -> D3 ([Sx,2],[Sy,1]) || D4 ([Sx,2],[Sz,1]).
        let d1 = clock(&[(0, 1)]);
        let d2 = clock(&[(0, 2)]);
        let d3 = clock(&[(0, 2), (1, 1)]);
        let d4 = clock(&[(0, 2), (2, 1)]);
        assert_eq!(d1.compare(&d2), Causality::Before);
        assert_eq!(d3.compare(&d2), Causality::After);
        assert_eq!(d3.compare(&d4), Causality::Concurrent);
        assert_eq!(d3.compare(&d3.clone()), Causality::Equal);
        // D5 reconciles D3 and D4 at Sx: ([Sx,3],[Sy,1],[Sz,1]) descends from both.
        let mut d5 = d3.clone();
        d5.merge(&d4);
        d5.increment(NodeId(0));
        assert_eq!(d5.entries(), &[(NodeId(0), 3), (NodeId(1), 1), (NodeId(2), 1)]);
        assert_eq!(d5.compare(&d3), Causality::After);
        assert_eq!(d5.compare(&d4), Causality::After);
    }

    #[test]
    fn merge_is_commutative_and_idempotent() {
        let mut rng = crate::types::Rng::new(11);
        for _ in 0..200 {
            let a = clock(&[(rng.below(4) as u32, rng.below(3)), (rng.below(4) as u32, rng.below(3))]);
            let b = clock(&[(rng.below(4) as u32, rng.below(3)), (rng.below(4) as u32, rng.below(3))]);
            let mut ab = a.clone();
            ab.merge(&b);
            let mut ba = b.clone();
            ba.merge(&a);
            assert_eq!(ab, ba);
            let mut twice = ab.clone();
            twice.merge(&b);
            assert_eq!(twice, ab);
            assert!(matches!(ab.compare(&a), Causality::After | Causality::Equal));
        }
    }

    #[test]
    fn ballots_order_by_round_then_node() {
        let a = Ballot { round: 2, node: NodeId(4) };
        let b = Ballot { round: 3, node: NodeId(0) };
        let c = Ballot { round: 3, node: NodeId(1) };
        assert!(Ballot::ZERO < a && a < b && b < c);
    }
}
