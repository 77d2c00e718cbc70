//! The consistent-hash ring: where keys live.
//!
//! Positions are SHA-1 digests compared as 160-bit big-endian numbers, exactly like the seed's
//! `genHash` hex strings. A node's first token is SHA-1 of its name ("5554"), so with one token
//! per node the ring is the seed's static five-partition ring; further tokens (virtual nodes)
//! are SHA-1 of "name#i". A key belongs to the first token at or after its position, walking
//! clockwise and wrapping around. The ring is immutable and pure: it never changes under a node.
//! A membership change builds a new one (`layout::Layout::ring`); node ids index a table that
//! may hold nodes without tokens (those that left), which no key's preference list names.

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::types::NodeId;

/// A position on the ring: a SHA-1 digest.
pub type Position = [u8; 20];

/// SHA-1 of `bytes`, the position of a key or a token.
pub fn position(bytes: &[u8]) -> Position {
    let mut hasher = Sha1::new();
    hasher.update(bytes);
    hasher.finalize().into()
}

/// Lower-case hex of a position, as the seed prints node ids.
pub fn position_hex(position: &Position) -> String {
    position.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// One token of the ring: a position owned by a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub position: Position,
    pub node: NodeId,
}

/// A contiguous arc of the ring, `(start, end]`, and the nodes that store its keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Exclusive start: the previous token's position.
    pub start: Position,
    /// Inclusive end: this range's token.
    pub end: Position,
    /// The range's first `replicas` distinct nodes clockwise: its home replicas.
    pub homes: Vec<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    /// Node names in `NodeId` order.
    names: Vec<String>,
    /// Sorted by position.
    tokens: Vec<Token>,
    /// Distinct nodes that hold tokens: the length of every preference list.
    members: usize,
    replicas: usize,
}

impl Ring {
    /// Builds the ring for `names` (index = `NodeId`), with `tokens_per_node` tokens each and
    /// `replicas` home replicas per key. Panics on an empty cluster, zero tokens, or more
    /// replicas than nodes: `Config::validate` rejects those first.
    pub fn new(names: &[String], tokens_per_node: u32, replicas: u32) -> Ring {
        assert!(!names.is_empty() && tokens_per_node > 0, "validated by Config");
        assert!(replicas as usize <= names.len(), "validated by Config");
        let mut tokens = Vec::with_capacity(names.len() * tokens_per_node as usize);
        for (index, name) in names.iter().enumerate() {
            for token in 0..tokens_per_node {
                let label = if token == 0 { name.clone() } else { format!("{name}#{token}") };
                tokens.push(Token { position: position(label.as_bytes()), node: NodeId(index as u32) });
            }
        }
        Ring::from_tokens(names.to_vec(), tokens, replicas)
    }

    /// Builds the ring from explicit tokens. `names` is the whole node table (index =
    /// `NodeId`), including nodes that hold no token. Panics on no tokens, a token naming a
    /// node outside the table, or fewer distinct token holders than `replicas`: the layout
    /// refuses those first.
    pub fn from_tokens(names: Vec<String>, mut tokens: Vec<Token>, replicas: u32) -> Ring {
        assert!(!tokens.is_empty(), "a ring has tokens");
        assert!(tokens.iter().all(|token| token.node.index() < names.len()), "tokens name table entries");
        tokens.sort_by(|a, b| a.position.cmp(&b.position).then(a.node.cmp(&b.node)));
        let mut holders: Vec<NodeId> = tokens.iter().map(|token| token.node).collect();
        holders.sort();
        holders.dedup();
        assert!(replicas as usize <= holders.len(), "validated by Config and Layout");
        Ring { names, tokens, members: holders.len(), replicas: replicas as usize }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn name(&self, node: NodeId) -> &str {
        &self.names[node.index()]
    }

    /// Entries of the node table (every `NodeId` is below it), members or not.
    pub fn node_count(&self) -> usize {
        self.names.len()
    }

    /// Nodes that hold tokens.
    pub fn member_count(&self) -> usize {
        self.members
    }

    pub fn replicas(&self) -> usize {
        self.replicas
    }

    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Index of the first token at or after `position`, wrapping to 0.
    fn successor(&self, position: &Position) -> usize {
        let index = self.tokens.partition_point(|token| token.position < *position);
        if index == self.tokens.len() {
            0
        } else {
            index
        }
    }

    /// Every node, in the order a key at `position` prefers them: distinct physical nodes
    /// clockwise from the key. The first `replicas` are its home replicas, the first of those
    /// its coordinator, the rest fallbacks.
    pub fn preference_at(&self, position: &Position) -> Vec<NodeId> {
        let mut order = Vec::with_capacity(self.members);
        let start = self.successor(position);
        for step in 0..self.tokens.len() {
            let node = self.tokens[(start + step) % self.tokens.len()].node;
            if !order.contains(&node) {
                order.push(node);
                if order.len() == self.members {
                    break;
                }
            }
        }
        order
    }

    /// The preference list of `key`.
    pub fn preference(&self, key: &[u8]) -> Vec<NodeId> {
        self.preference_at(&position(key))
    }

    /// The home replicas of `key` (the first `replicas` of its preference list).
    pub fn homes(&self, key: &[u8]) -> Vec<NodeId> {
        let mut list = self.preference(key);
        list.truncate(self.replicas);
        list
    }

    /// Bit `i` set when node `i` is a home replica of the key (clusters up to 64 nodes).
    pub fn homes_mask(&self, key: &[u8]) -> u64 {
        self.homes(key).iter().fold(0, |mask, node| mask | 1 << node.0)
    }

    /// Every range of the ring with its home replicas, in ring order.
    pub fn ranges(&self) -> Vec<Range> {
        (0..self.tokens.len())
            .map(|index| {
                let previous = (index + self.tokens.len() - 1) % self.tokens.len();
                let end = self.tokens[index].position;
                let mut homes = self.preference_at(&end);
                homes.truncate(self.replicas);
                Range { start: self.tokens[previous].position, end, homes }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_ring(tokens: u32) -> Ring {
        let names: Vec<String> = ["5554", "5556", "5558", "5560", "5562"].iter().map(|name| name.to_string()).collect();
        Ring::new(&names, tokens, 3)
    }

    fn names(ring: &Ring, nodes: &[NodeId]) -> Vec<String> {
        nodes.iter().map(|node| ring.name(*node).to_string()).collect()
    }

    #[test]
    fn node_ids_are_sha1_of_the_name() {
        assert_eq!(position_hex(&position(b"5554")), "33d6357cfaaf0f72991b0ecd8c56da066613c089");
    }

    #[test]
    fn one_token_per_node_is_the_seed_ring() {
        let ring = seed_ring(1);
        let order: Vec<String> = ring.tokens().iter().map(|token| ring.name(token.node).to_string()).collect();
        // SHA-1 order of the emulator ports, as every SimpleDynamo implementation has it.
        assert_eq!(order, ["5562", "5556", "5554", "5558", "5560"]);
        let hexes: Vec<String> = ring.tokens().iter().map(|token| position_hex(&token.position)).collect();
        let mut sorted = hexes.clone();
        sorted.sort();
        assert_eq!(hexes, sorted, "tokens are in position order");
    }

    #[test]
    fn a_key_belongs_to_its_successor_and_the_next_two() {
        let ring = seed_ring(1);
        // A node's own id maps to that node (position equal to the token is "at or after").
        for token in ring.tokens() {
            assert_eq!(ring.preference_at(&token.position)[0], token.node);
        }
        // Just past the last token wraps to the first one.
        let mut beyond = ring.tokens().last().unwrap().position;
        *beyond.last_mut().unwrap() = beyond.last().unwrap().wrapping_add(1);
        assert_eq!(names(&ring, &ring.preference_at(&beyond)[..3]), ["5562", "5556", "5554"]);
        // Between 5556 and 5554: coordinator 5554, then 5558 and 5560.
        let between = ring.tokens()[1].position;
        let mut after_5556 = between;
        *after_5556.last_mut().unwrap() = between.last().unwrap().wrapping_add(1);
        assert_eq!(names(&ring, &ring.preference_at(&after_5556)), ["5554", "5558", "5560", "5562", "5556"]);
    }

    #[test]
    fn preference_lists_hold_distinct_nodes_with_virtual_nodes() {
        let ring = seed_ring(16);
        assert_eq!(ring.tokens().len(), 80);
        for key in 0..500 {
            let list = ring.preference(format!("key{key}").as_bytes());
            let mut sorted = list.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 5, "every node exactly once");
            assert_eq!(ring.homes(format!("key{key}").as_bytes()), list[..3]);
        }
    }

    #[test]
    fn ranges_cover_the_ring_once() {
        let ring = seed_ring(8);
        let ranges = ring.ranges();
        assert_eq!(ranges.len(), 40);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert_eq!(ranges.last().unwrap().end, ranges[0].start);
        for range in &ranges {
            assert_eq!(ring.preference_at(&range.end)[..3], range.homes[..]);
        }
    }
}
