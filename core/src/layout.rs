//! The layout: the ring as replicated state, and the plans that change it (issue 14; the
//! transition protocol that carries a plan out is described in ARCHITECTURE.md, "Membership
//! changes").
//!
//! A layout is a table of every node the cluster ever had (index = `NodeId`, never reused, so
//! a node that left keeps its entry and its id names no one else), each member's tokens, and
//! an epoch. Staged changes (`Change`) against one layout make a `Plan`: the next layout and
//! every arc of the ring whose home set differs (`Move`). A plan is pure: computing it twice on
//! the same layout gives the same plan, so a plan computed on an older epoch can be told apart
//! and refused.

use serde::{Deserialize, Serialize};

use crate::config::{Config, NODES_MAX, NODE_NAME_BYTES_MAX, TOKENS_PER_NODE_MAX};
use crate::ring::{position, Position, Ring, Token};
use crate::store::WIRE_INT_BYTES_MAX;
use crate::types::NodeId;

/// The most arcs `Layout::first_ballot_lost` keeps; past it the whole ring loses the
/// first-ballot shortcut (a safe coarsening: the shortcut is only ever an optimisation).
const FIRST_BALLOT_ARCS_MAX: usize = 1_024;

/// One entry of the node table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub name: String,
    /// Ring positions this node owns while it is a member; empty once it has gone.
    pub tokens: Vec<Position>,
    pub state: NodeState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    /// Holds tokens: a home of the keys its tokens lead.
    Member,
    /// Left, was removed or was replaced. Its id is never used again.
    Gone,
}

/// The ring as replicated state, at one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Drawn once when the first layout is made; every node keeps it, so a node of another
    /// cluster (or a wiped one that bootstrapped a ring of its own) is told apart.
    cluster: u64,
    epoch: u64,
    replicas: u32,
    tokens_per_node: u32,
    nodes: Vec<NodeEntry>,
    /// Arcs `(start, end]` whose first home has changed since the ring began: there no node
    /// may write a key at its reserved first ballot, for good (ARCHITECTURE.md, "the first
    /// ballot has one owner forever"). Sorted, adjacent arcs joined.
    first_ballot_lost: Vec<(Position, Position)>,
    /// Set in a joint epoch: the ring (`nodes`) is already the new one, and the arcs that move
    /// are homed by their old and their new homes at once. `None` in a settled epoch.
    #[serde(default)]
    transition: Option<Transition>,
}

/// A change being carried out (ARCHITECTURE.md, "Membership changes"): the joint epoch's arcs
/// and who drives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Every arc whose homes change, old homes (`from`) and new (`to`).
    pub moves: Vec<Move>,
    /// The node the change was committed at: it waits for the barrier, collects the sync
    /// reports and proposes the settled epoch.
    pub claimant: NodeId,
    /// Old homes that will never take part (removed or replaced nodes).
    pub silent: Vec<NodeId>,
    /// The changes, for status.
    pub changes: Vec<Change>,
}

/// Who votes on a key: its homes, or in a joint epoch for a key of a moving arc, its old homes
/// and its new homes, each set giving its own quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Electorate {
    /// The homes (old homes, while the key's arc moves), in preference order.
    pub old: Vec<NodeId>,
    /// The new homes of a moving arc, in preference order; empty otherwise.
    pub new: Vec<NodeId>,
}

impl Electorate {
    pub fn is_joint(&self) -> bool {
        !self.new.is_empty()
    }

    /// Every voter once: the new homes first (the ring's preference order), then the old homes
    /// that are not new.
    pub fn all(&self) -> Vec<NodeId> {
        if self.new.is_empty() {
            return self.old.clone();
        }
        let mut all = self.new.clone();
        all.extend(self.old.iter().filter(|node| !self.new.contains(node)));
        all
    }

    pub fn contains(&self, node: NodeId) -> bool {
        self.old.contains(&node) || self.new.contains(&node)
    }

    /// Whether `votes` hold `need` of the homes (and, joint, `need` of the old and `need` of
    /// the new homes).
    pub fn reached(&self, votes: &[NodeId], need: u32) -> bool {
        let count = |set: &[NodeId]| votes.iter().filter(|node| set.contains(node)).count() as u32;
        count(&self.old) >= need && (self.new.is_empty() || count(&self.new) >= need)
    }

    /// Whether `refused` leave fewer than `need` possible votes in one of the sets.
    pub fn lost(&self, refused: &[NodeId], need: u32) -> bool {
        let lost_in = |set: &[NodeId]| {
            let against = refused.iter().filter(|node| set.contains(node)).count() as u32;
            against > (set.len() as u32).saturating_sub(need)
        };
        lost_in(&self.old) || (!self.new.is_empty() && lost_in(&self.new))
    }
}

/// An acceptor's state in the layout Paxos of one instance (epoch), durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutVote {
    /// The epoch being decided: one more than the acceptor's layout's.
    pub instance: u64,
    pub promised: crate::version::Ballot,
    pub accepted: Option<(crate::version::Ballot, Layout)>,
}

/// One staged change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A new node takes tokens of its own.
    Join { name: String },
    /// A live member hands its ranges over, then goes.
    Leave { name: String },
    /// A dead member goes; its ranges are rebuilt from the surviving homes.
    Remove { name: String },
    /// `new` takes `old`'s tokens; `old` goes (dead or alive). `new` may be `old`'s own name on
    /// a new disk: it is a new entry, with a new id.
    Replace { old: String, new: String },
}

/// An arc of the ring, `(start, end]`, whose home set changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub start: Position,
    pub end: Position,
    /// Homes before, in preference order.
    pub from: Vec<NodeId>,
    /// Homes after, in preference order.
    pub to: Vec<NodeId>,
}

impl Move {
    /// Homes that hold the arc only after the change: they receive its keys.
    pub fn gaining(&self) -> Vec<NodeId> {
        self.to.iter().copied().filter(|node| !self.from.contains(node)).collect()
    }

    /// Homes that hold the arc only before the change: they forget it at the end.
    pub fn losing(&self) -> Vec<NodeId> {
        self.from.iter().copied().filter(|node| !self.to.contains(node)).collect()
    }

    /// Whether a key at `at` lies in the arc. An arc whose start equals its end is the whole
    /// ring.
    pub fn contains(&self, at: &Position) -> bool {
        arc_contains(&self.start, &self.end, at)
    }

    /// Whether the keys' coordinator (first home) changes.
    pub fn changes_first_home(&self) -> bool {
        self.from.first() != self.to.first()
    }
}

/// Whether `at` lies in `(start, end]`, wrapping past the top; `start == end` is the whole ring.
fn arc_contains(start: &Position, end: &Position, at: &Position) -> bool {
    if start < end {
        start < at && at <= end
    } else {
        at > start || at <= end
    }
}

/// Staged changes computed against one layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The epoch the plan was computed on; committing it on any other is refused.
    pub base_epoch: u64,
    pub changes: Vec<Change>,
    /// The layout once the changes are in (one epoch on).
    pub next: Layout,
    /// Every arc whose homes differ, in ring order.
    pub moves: Vec<Move>,
}

impl Plan {
    /// The move a key at `at` is part of, if its homes change.
    pub fn move_at(&self, at: &Position) -> Option<&Move> {
        self.moves.iter().find(|arc| arc.contains(at))
    }

    /// Of `keys`, how many change homes and how many home copies move (each key's copies on
    /// the homes it gains).
    pub fn moved<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> Moved {
        let mut moved = Moved::default();
        for key in keys {
            moved.keys += 1;
            if let Some(arc) = self.move_at(&position(key)) {
                moved.changed += 1;
                moved.copies += arc.gaining().len() as u64;
            }
        }
        moved
    }

    /// For each move (same order as `moves`), how many of `keys` it carries and their bytes
    /// (each key with the size a driver gives it, for instance its stored record's): what a
    /// plan shows as the keys and bytes that move, estimated from one node's store or a sample.
    /// A key in no move is counted nowhere.
    pub fn load<'a>(&self, keys: impl IntoIterator<Item = (&'a [u8], u64)>) -> Vec<MoveLoad> {
        let mut load = vec![MoveLoad::default(); self.moves.len()];
        for (key, bytes) in keys {
            let at = position(key);
            if let Some(index) = self.moves.iter().position(|arc| arc.contains(&at)) {
                load[index].keys += 1;
                load[index].bytes += bytes;
            }
        }
        load
    }
}

/// What one move carries, by `Plan::load`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveLoad {
    pub keys: u64,
    pub bytes: u64,
}

/// What `Plan::moved` counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub keys: u64,
    /// Keys whose home set changes.
    pub changed: u64,
    /// Home copies that move: one per home a key gains.
    pub copies: u64,
}

impl Moved {
    /// The share of the keys counted whose home set changes.
    pub fn key_share(&self) -> f64 {
        self.changed as f64 / self.keys.max(1) as f64
    }

    /// The share of their home copies (`replicas` per key) that move.
    pub fn copy_share(&self, replicas: u32) -> f64 {
        self.copies as f64 / (self.keys.max(1) * replicas as u64) as f64
    }
}

/// Why a set of changes cannot be planned. The texts are what `dynamo admin` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanError {
    /// Nothing staged.
    Empty,
    UnknownName {
        name: String,
    },
    AlreadyMember {
        name: String,
    },
    /// One node named by two staged changes.
    NamedTwice {
        name: String,
    },
    /// The plan would leave fewer members than replicas per key.
    TooFewMembers {
        left: u64,
        replicas: u32,
    },
    TooManyNodes {
        nodes: u64,
        max: u64,
    },
    /// An arc would lose more homes that cannot take part in the handover (removed or
    /// replaced) than its quorums can spare.
    TooManyLost {
        end: Position,
        lost: u64,
        max: u64,
    },
    NameTooLong {
        name: String,
        max: u64,
    },
    /// A change is still being carried out: one at a time.
    InTransition {
        epoch: u64,
    },
    /// The next layout (its moving arcs listed) would not fit in one message.
    TooLarge {
        bytes: u64,
        max: u64,
    },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::Empty => write!(f, "nothing is staged"),
            PlanError::UnknownName { name } => write!(f, "{name} is not a member"),
            PlanError::AlreadyMember { name } => write!(f, "{name} is already a member"),
            PlanError::NamedTwice { name } => write!(f, "{name} is named by two staged changes"),
            PlanError::TooFewMembers { left, replicas } => {
                write!(f, "the plan leaves {left} members, fewer than the {replicas} replicas of each key")
            }
            PlanError::TooManyNodes { nodes, max } => write!(f, "the plan makes {nodes} node ids, more than {max}"),
            PlanError::TooManyLost { end, lost, max } => write!(
                f,
                "the range ending at {} would lose {lost} homes that cannot hand it over, more than {max}; \
                 remove or replace dead nodes one plan at a time",
                crate::ring::position_hex(end)
            ),
            PlanError::NameTooLong { name, max } => write!(f, "the name {name:?} is longer than {max} bytes"),
            PlanError::InTransition { epoch } => {
                write!(f, "epoch {epoch} is still moving ranges; commit again once it has settled")
            }
            PlanError::TooLarge { bytes, max } => write!(
                f,
                "the plan's layout would take up to {bytes} bytes, more than the {max} a message carries; \
                 make fewer changes at once"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

impl Layout {
    /// An upper bound of a layout's encoded size: every id's entry (name, tokens, state) and
    /// the first-ballot arcs. `Config::message_bytes_max` makes room for it.
    pub const WIRE_BYTES_MAX: usize = {
        const INT: usize = WIRE_INT_BYTES_MAX;
        let token = INT + 20;
        let entry = INT + NODE_NAME_BYTES_MAX as usize + INT + TOKENS_PER_NODE_MAX as usize * token + INT;
        8 * INT + NODES_MAX as usize * entry + FIRST_BALLOT_ARCS_MAX * 2 * token
    };

    /// An upper bound of this layout's encoded size, its transition included. A plan whose next
    /// layout would exceed `WIRE_BYTES_MAX` is refused (`PlanError::TooLarge`), so every layout
    /// a node holds fits in a message.
    pub fn wire_bytes_max(&self) -> usize {
        const INT: usize = WIRE_INT_BYTES_MAX;
        let position = INT + 20;
        let name = |name: &str| INT + name.len();
        let entries: usize = self.nodes.iter().map(|e| name(&e.name) + INT + e.tokens.len() * position + INT).sum();
        let arcs = INT + self.first_ballot_lost.len() * 2 * position;
        let transition = self.transition.as_ref().map_or(INT, |t| {
            let moves: usize = t.moves.iter().map(|m| 2 * position + 2 * INT + (m.from.len() + m.to.len()) * INT).sum();
            let changes: usize = t
                .changes
                .iter()
                .map(|c| match c {
                    Change::Join { name: n } | Change::Leave { name: n } | Change::Remove { name: n } => INT + name(n),
                    Change::Replace { old, new } => INT + name(old) + name(new),
                })
                .sum();
            2 * INT + moves + INT + INT + t.silent.len() * INT + INT + changes
        });
        8 * INT + INT + entries + arcs + transition
    }

    /// The first layout of a cluster whose nodes are `config.nodes` (what every node of the
    /// cluster file builds when it starts with nothing stored). Its cluster id is derived from
    /// the members and their placement, so every node that bootstraps from the same file agrees
    /// on it without talking, and a node bootstrapped from another file is told apart.
    pub fn from_config(config: &Config) -> Layout {
        use sha1::{Digest, Sha1};
        let mut hash = Sha1::new();
        hash.update(b"dynamo layout v1\n");
        hash.update(config.replicas.to_be_bytes());
        hash.update(config.tokens_per_node.to_be_bytes());
        for name in &config.nodes {
            hash.update((name.len() as u64).to_be_bytes());
            hash.update(name.as_bytes());
        }
        let digest = hash.finalize();
        let cluster = u64::from_be_bytes(digest[..8].try_into().expect("a SHA-1 digest has 20 bytes"));
        Layout::bootstrap(cluster, &config.nodes, config.tokens_per_node, config.replicas)
    }

    /// The first layout (epoch 1): `names` as members, in `NodeId` order, each with
    /// `tokens_per_node` tokens at SHA-1 of its name and of "name#i", exactly as `Ring::new`.
    pub fn bootstrap(cluster: u64, names: &[String], tokens_per_node: u32, replicas: u32) -> Layout {
        let nodes = names
            .iter()
            .map(|name| NodeEntry {
                name: name.clone(),
                tokens: tokens_of(name, tokens_per_node),
                state: NodeState::Member,
            })
            .collect();
        Layout { cluster, epoch: 1, replicas, tokens_per_node, nodes, first_ballot_lost: Vec::new(), transition: None }
    }

    pub fn cluster(&self) -> u64 {
        self.cluster
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    pub fn nodes(&self) -> &[NodeEntry] {
        &self.nodes
    }

    /// The name of table entry `node` (member or gone).
    pub fn name(&self, node: NodeId) -> &str {
        &self.nodes[node.index()].name
    }

    /// Entries of the node table: every `NodeId` of the cluster's history is below it.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The change being carried out, in a joint epoch.
    pub fn transition(&self) -> Option<&Transition> {
        self.transition.as_ref()
    }

    /// The settled epoch that ends this joint epoch: one epoch on, the moving arcs homed by
    /// their new homes alone. `None` in a settled epoch.
    pub fn settled(&self) -> Option<Layout> {
        self.transition.as_ref()?;
        let mut settled = self.clone();
        settled.epoch += 1;
        settled.transition = None;
        Some(settled)
    }

    /// Who votes on a key at `at` (`ring` is this layout's ring, `Layout::ring`).
    pub fn electorate(&self, ring: &Ring, at: &Position) -> Electorate {
        if let Some(arc) =
            self.transition.as_ref().and_then(|transition| transition.moves.iter().find(|arc| arc.contains(at)))
        {
            return Electorate { old: arc.from.clone(), new: arc.to.clone() };
        }
        let mut homes = ring.preference_at(at);
        homes.truncate(self.replicas as usize);
        Electorate { old: homes, new: Vec::new() }
    }

    /// Every home set that must answer for some key: the homes of each range of the ring, and
    /// in a joint epoch the old homes of each moving arc too (its new homes are a range's).
    /// A quorum of each covers every key (the `*` scan, recovery).
    pub fn home_sets(&self, ring: &Ring) -> Vec<Vec<NodeId>> {
        let mut sets: Vec<Vec<NodeId>> = ring.ranges().into_iter().map(|range| range.homes).collect();
        if let Some(transition) = &self.transition {
            sets.extend(transition.moves.iter().map(|arc| arc.from.clone()));
        }
        sets.sort();
        sets.dedup();
        sets
    }

    /// Whether `node` has work in this layout: a member, or an old home of a moving arc.
    pub fn takes_part(&self, node: NodeId) -> bool {
        self.is_member(node)
            || self
                .transition
                .as_ref()
                .is_some_and(|transition| transition.moves.iter().any(|arc| arc.from.contains(&node)))
    }

    /// Whether a key at `at` may still be written at its reserved first ballot by its first home
    /// (which must also never have promised or accepted anything for it).
    pub fn first_ballot_allowed(&self, at: &Position) -> bool {
        !self.first_ballot_lost.iter().any(|(start, end)| arc_contains(start, end, at))
    }

    /// `first_ballot_allowed` for a key (hashing it only when some arc lost the shortcut).
    pub fn first_ballot_allowed_for(&self, key: &[u8]) -> bool {
        self.first_ballot_lost.is_empty() || self.first_ballot_allowed(&position(key))
    }

    /// Members in `NodeId` order.
    pub fn members(&self) -> Vec<NodeId> {
        (0..self.nodes.len() as u32).map(NodeId).filter(|node| self.is_member(*node)).collect()
    }

    pub fn is_member(&self, node: NodeId) -> bool {
        self.nodes.get(node.index()).is_some_and(|entry| entry.state == NodeState::Member)
    }

    /// The member called `name`, if any (a name may also label gone entries).
    pub fn member_named(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|entry| entry.state == NodeState::Member && entry.name == name)
            .map(|index| NodeId(index as u32))
    }

    /// The ring of this layout's members.
    pub fn ring(&self) -> Ring {
        let names = self.nodes.iter().map(|entry| entry.name.clone()).collect();
        let tokens = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.state == NodeState::Member)
            .flat_map(|(index, entry)| {
                entry.tokens.iter().map(move |position| Token { position: *position, node: NodeId(index as u32) })
            })
            .collect();
        Ring::from_tokens(names, tokens, self.replicas)
    }

    /// Whether a layout heard from a peer may replace `current`: the same cluster and
    /// placement rules, a node table that only grew (ids are never reused: every entry keeps
    /// its name, and a gone entry stays gone), and a ring that can be built. A peer is
    /// authenticated, but a bug or a mixed-up file must not stop this node.
    pub fn check(&self, current: &Layout, config: &Config) -> Result<(), String> {
        if self.cluster != current.cluster {
            return Err(format!("cluster id {:016x}, not this cluster's {:016x}", self.cluster, current.cluster));
        }
        if self.replicas != config.replicas || self.tokens_per_node != current.tokens_per_node {
            return Err(format!(
                "{} replicas and {} tokens per node, not {} and {}",
                self.replicas, self.tokens_per_node, config.replicas, current.tokens_per_node
            ));
        }
        if self.nodes.len() > NODES_MAX as usize || self.nodes.len() < current.nodes.len() {
            return Err(format!("{} node ids, against {} known", self.nodes.len(), current.nodes.len()));
        }
        for (index, (was, now)) in current.nodes.iter().zip(&self.nodes).enumerate() {
            if was.name != now.name || (was.state == NodeState::Gone && now.state != NodeState::Gone) {
                return Err(format!(
                    "node id {index} is {:?} ({:?}), was {:?} ({:?})",
                    now.name, now.state, was.name, was.state
                ));
            }
        }
        for entry in &self.nodes {
            let tokens = entry.tokens.len();
            let member = entry.state == NodeState::Member;
            if entry.name.len() as u64 > NODE_NAME_BYTES_MAX
                || tokens > TOKENS_PER_NODE_MAX as usize
                || member != (tokens > 0)
            {
                return Err(format!("node {:?} is malformed ({tokens} tokens, {:?})", entry.name, entry.state));
            }
        }
        if self.members().len() < self.replicas as usize {
            return Err(format!("{} members, fewer than {} replicas", self.members().len(), self.replicas));
        }
        if self.first_ballot_lost.len() > FIRST_BALLOT_ARCS_MAX {
            return Err(format!(
                "{} first-ballot arcs, more than {FIRST_BALLOT_ARCS_MAX}",
                self.first_ballot_lost.len()
            ));
        }
        Ok(())
    }

    /// Of two layouts of one cluster, the one to keep: the higher epoch. Each epoch is decided
    /// once (ARCHITECTURE.md), so two layouts of one epoch are equal; `None` when they are not,
    /// or belong to different clusters, which a caller must report, never merge.
    pub fn newest<'a>(&'a self, other: &'a Layout) -> Option<&'a Layout> {
        if self.cluster != other.cluster {
            return None;
        }
        match self.epoch.cmp(&other.epoch) {
            std::cmp::Ordering::Greater => Some(self),
            std::cmp::Ordering::Less => Some(other),
            std::cmp::Ordering::Equal => (self == other).then_some(self),
        }
    }

    /// Plans `changes` against this layout, for read and write quorums R and W. An arc may lose
    /// at most min(R, W) - 1 homes that will never learn the new layout (removed, or replaced),
    /// so that every quorum of its old homes holds one that does (ARCHITECTURE.md, "the
    /// barrier").
    pub fn plan(
        &self,
        changes: &[Change],
        read_quorum: u32,
        write_quorum: u32,
        claimant: NodeId,
    ) -> Result<Plan, PlanError> {
        if changes.is_empty() {
            return Err(PlanError::Empty);
        }
        if self.transition.is_some() {
            return Err(PlanError::InTransition { epoch: self.epoch });
        }
        let mut named: Vec<String> = Vec::new();
        let mut name_once = |name: &String| -> Result<(), PlanError> {
            if named.contains(name) {
                return Err(PlanError::NamedTwice { name: name.clone() });
            }
            named.push(name.clone());
            Ok(())
        };
        let mut next = self.clone();
        next.epoch += 1;
        // Old homes that will not hand over: they cannot learn the joint epoch.
        let mut silent: Vec<NodeId> = Vec::new();
        for change in changes {
            match change {
                Change::Join { name } => {
                    name_once(name)?;
                    if name.len() as u64 > NODE_NAME_BYTES_MAX {
                        return Err(PlanError::NameTooLong { name: name.clone(), max: NODE_NAME_BYTES_MAX });
                    }
                    if next.member_named(name).is_some() {
                        return Err(PlanError::AlreadyMember { name: name.clone() });
                    }
                    next.nodes.push(NodeEntry {
                        name: name.clone(),
                        tokens: tokens_of(name, self.tokens_per_node),
                        state: NodeState::Member,
                    });
                }
                Change::Leave { name } | Change::Remove { name } => {
                    name_once(name)?;
                    let node = next.member_named(name).ok_or_else(|| PlanError::UnknownName { name: name.clone() })?;
                    let entry = &mut next.nodes[node.index()];
                    entry.tokens.clear();
                    entry.state = NodeState::Gone;
                    if matches!(change, Change::Remove { .. }) {
                        silent.push(node);
                    }
                }
                Change::Replace { old, new } => {
                    name_once(old)?;
                    if new.len() as u64 > NODE_NAME_BYTES_MAX {
                        return Err(PlanError::NameTooLong { name: new.clone(), max: NODE_NAME_BYTES_MAX });
                    }
                    if new != old {
                        name_once(new)?;
                        if next.member_named(new).is_some() {
                            return Err(PlanError::AlreadyMember { name: new.clone() });
                        }
                    }
                    let node = next.member_named(old).ok_or_else(|| PlanError::UnknownName { name: old.clone() })?;
                    let entry = &mut next.nodes[node.index()];
                    let tokens = std::mem::take(&mut entry.tokens);
                    entry.state = NodeState::Gone;
                    silent.push(node);
                    next.nodes.push(NodeEntry { name: new.clone(), tokens, state: NodeState::Member });
                }
            }
        }
        let ids = next.nodes.len() as u64;
        if ids > NODES_MAX {
            return Err(PlanError::TooManyNodes { nodes: ids, max: NODES_MAX });
        }
        let left = next.members().len() as u64;
        if left < self.replicas as u64 {
            return Err(PlanError::TooFewMembers { left, replicas: self.replicas });
        }
        let moves = moves_between(&self.ring(), &next.ring(), self.replicas as usize);
        let max = read_quorum.min(write_quorum).saturating_sub(1) as u64;
        for arc in &moves {
            let lost = arc.losing().iter().filter(|node| silent.contains(node)).count() as u64;
            if lost > max {
                return Err(PlanError::TooManyLost { end: arc.end, lost, max });
            }
        }
        next.first_ballot_lost
            .extend(moves.iter().filter(|arc| arc.changes_first_home()).map(|arc| (arc.start, arc.end)));
        next.first_ballot_lost = join_arcs(std::mem::take(&mut next.first_ballot_lost));
        if next.first_ballot_lost.len() > FIRST_BALLOT_ARCS_MAX {
            // An arc whose start equals its end is the whole ring.
            next.first_ballot_lost = vec![(Position::default(), Position::default())];
        }
        next.transition = Some(Transition { moves: moves.clone(), claimant, silent, changes: changes.to_vec() });
        let bytes = next.wire_bytes_max();
        if bytes > Layout::WIRE_BYTES_MAX {
            return Err(PlanError::TooLarge { bytes: bytes as u64, max: Layout::WIRE_BYTES_MAX as u64 });
        }
        Ok(Plan { base_epoch: self.epoch, changes: changes.to_vec(), next, moves })
    }
}

/// `arcs` sorted by start, each run of adjacent arcs (one's end the next one's start) joined.
fn join_arcs(mut arcs: Vec<(Position, Position)>) -> Vec<(Position, Position)> {
    arcs.sort();
    arcs.dedup();
    let mut joined: Vec<(Position, Position)> = Vec::with_capacity(arcs.len());
    for (start, end) in arcs {
        match joined.last_mut() {
            Some(last) if last.1 == start && last.0 < last.1 => last.1 = end,
            _ => joined.push((start, end)),
        }
    }
    joined
}

/// A node's tokens: SHA-1 of its name, then of "name#1", "name#2", ...
fn tokens_of(name: &str, tokens_per_node: u32) -> Vec<Position> {
    (0..tokens_per_node)
        .map(
            |token| if token == 0 { position(name.as_bytes()) } else { position(format!("{name}#{token}").as_bytes()) },
        )
        .collect()
}

/// Every arc whose home set differs between `before` and `after`, adjacent arcs with the same
/// homes joined. Both rings' tokens cut the circle; within one cut both preference lists are
/// constant.
fn moves_between(before: &Ring, after: &Ring, replicas: usize) -> Vec<Move> {
    let mut cuts: Vec<Position> = before.tokens().iter().chain(after.tokens()).map(|token| token.position).collect();
    cuts.sort();
    cuts.dedup();
    let homes = |ring: &Ring, at: &Position| {
        let mut list = ring.preference_at(at);
        list.truncate(replicas);
        list
    };
    let same_set = |a: &[NodeId], b: &[NodeId]| a.len() == b.len() && a.iter().all(|node| b.contains(node));
    let mut moves: Vec<Move> = Vec::new();
    for (index, end) in cuts.iter().enumerate() {
        let start = cuts[(index + cuts.len() - 1) % cuts.len()];
        let (from, to) = (homes(before, end), homes(after, end));
        if same_set(&from, &to) {
            continue;
        }
        match moves.last_mut() {
            Some(last) if last.end == start && last.from == from && last.to == to => last.end = *end,
            _ => moves.push(Move { start, end: *end, from, to }),
        }
    }
    // The arc that wraps past the top of the circle may continue the first one.
    if moves.len() > 1 {
        let (first, last) = (&moves[0], &moves[moves.len() - 1]);
        if last.end == first.start && last.from == first.from && last.to == first.to {
            let last = moves.pop().expect("more than one");
            moves[0].start = last.start;
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|index| (5554 + 2 * index).to_string()).collect()
    }

    fn seed_layout(tokens: u32) -> Layout {
        Layout::bootstrap(7, &names(5), tokens, 3)
    }

    fn join(name: &str) -> Change {
        Change::Join { name: name.to_string() }
    }

    /// The share of `keys` sample keys whose homes change, and of home copies that move.
    fn moved_share(plan: &Plan, keys: u32) -> (f64, f64) {
        let keys: Vec<String> = (0..keys).map(|key| format!("key{key}")).collect();
        let moved = plan.moved(keys.iter().map(|key| key.as_bytes()));
        (moved.key_share(), moved.copy_share(3))
    }

    #[test]
    fn the_first_layout_is_the_seed_ring() {
        let layout = seed_layout(4);
        assert_eq!(layout.epoch(), 1);
        assert_eq!(layout.ring(), Ring::new(&names(5), 4, 3));
    }

    #[test]
    fn a_plan_moves_exactly_the_arcs_whose_homes_change() {
        let layout = seed_layout(8);
        let plan = layout.plan(&[join("5564")], 2, 2, NodeId(0)).expect("plans");
        assert_eq!(plan.base_epoch, 1);
        assert_eq!(plan.next.epoch(), 2);
        let (before, after) = (layout.ring(), plan.next.ring());
        let new = plan.next.member_named("5564").expect("joined");
        assert_eq!(new, NodeId(5));
        for key in 0..2_000 {
            let key = format!("key{key}");
            let at = position(key.as_bytes());
            let (from, to) = (before.homes(key.as_bytes()), after.homes(key.as_bytes()));
            let mut sorted = (from.clone(), to.clone());
            sorted.0.sort();
            sorted.1.sort();
            match plan.moves.iter().find(|arc| arc.contains(&at)) {
                Some(arc) => {
                    assert_eq!((&arc.from, &arc.to), (&from, &to), "{key}");
                    assert_eq!(arc.gaining(), vec![new], "a join only gives ranges to the new node");
                }
                None => assert_eq!(sorted.0, sorted.1, "{key} moved but is in no arc"),
            }
        }
        for pair in plan.moves.windows(2) {
            assert!(pair[0].end <= pair[1].start, "arcs are in ring order and do not overlap");
        }
    }

    #[test]
    fn a_join_moves_about_its_share_of_the_copies() {
        for tokens in [1, 16] {
            let plan = seed_layout(tokens).plan(&[join("5564")], 2, 2, NodeId(0)).expect("plans");
            let (keys, copies) = moved_share(&plan, 20_000);
            println!(
                "{tokens} tokens: {:.3} of keys gain a home, {:.3} of copies move (ideal 1/6 = 0.167)",
                keys, copies
            );
            // Each key that gains the new node moves one copy of three.
            assert!((copies - keys / 3.0).abs() < 1e-9);
            if tokens == 16 {
                assert!((copies - 1.0 / 6.0).abs() < 0.05, "16 tokens spread the load: {copies}");
            }
        }
    }

    #[test]
    fn leave_and_replace_keep_ids_and_move_tokens() {
        let layout = seed_layout(4);
        let plan = layout.plan(&[Change::Leave { name: "5556".into() }], 2, 2, NodeId(0)).expect("plans");
        assert!(!plan.next.is_member(NodeId(1)));
        assert_eq!(plan.next.nodes()[1].state, NodeState::Gone);
        assert!(plan.moves.iter().all(|arc| arc.losing() == vec![NodeId(1)]));

        let plan =
            layout.plan(&[Change::Replace { old: "5556".into(), new: "5556".into() }], 2, 2, NodeId(0)).expect("plans");
        let new = plan.next.member_named("5556").expect("the new disk is a member");
        assert_eq!(new, NodeId(5), "a replacement is a new id, even under the same name");
        assert_eq!(plan.next.nodes()[5].tokens, layout.nodes()[1].tokens, "it takes the old tokens");
        assert!(plan.moves.iter().all(|arc| arc.losing() == vec![NodeId(1)] && arc.gaining() == vec![new]));
        // A key moves exactly when the old node was one of its homes.
        let ring = layout.ring();
        for key in 0..2_000 {
            let key = format!("key{key}");
            let moved = plan.moves.iter().any(|arc| arc.contains(&position(key.as_bytes())));
            assert_eq!(moved, ring.homes(key.as_bytes()).contains(&NodeId(1)), "{key}");
        }
    }

    #[test]
    fn refusals_name_their_reason() {
        let layout = seed_layout(1);
        let plan =
            |changes: &[Change]| layout.plan(changes, 2, 2, NodeId(0)).map(|_| ()).map_err(|error| error.to_string());
        assert_eq!(plan(&[]), Err("nothing is staged".into()));
        assert_eq!(plan(&[join("5554")]), Err("5554 is already a member".into()));
        assert_eq!(plan(&[Change::Leave { name: "9999".into() }]), Err("9999 is not a member".into()));
        assert_eq!(
            plan(&[join("5564"), Change::Leave { name: "5564".into() }]),
            Err("5564 is named by two staged changes".into())
        );
        let small = Layout::bootstrap(7, &names(3), 1, 3);
        assert_eq!(
            small.plan(&[Change::Leave { name: "5554".into() }], 2, 2, NodeId(0)).map_err(|e| e.to_string()),
            Err("the plan leaves 2 members, fewer than the 3 replicas of each key".into())
        );
        // Two dead homes of one range at once: every quorum of the old homes could be silent.
        let error = layout.plan(
            &[Change::Remove { name: "5554".into() }, Change::Remove { name: "5556".into() }],
            2,
            2,
            NodeId(0),
        );
        assert!(matches!(error, Err(PlanError::TooManyLost { lost: 2, max: 1, .. })), "{error:?}");
        // Two live nodes leaving at once is fine: both hand over.
        let both = layout.plan(
            &[Change::Leave { name: "5554".into() }, Change::Leave { name: "5556".into() }],
            2,
            2,
            NodeId(0),
        );
        assert!(both.is_ok());
    }

    #[test]
    fn the_newer_epoch_wins_and_a_mismatch_is_reported() {
        let layout = seed_layout(2);
        let next = layout.plan(&[join("5564")], 2, 2, NodeId(0)).expect("plans").next;
        assert_eq!(layout.newest(&next), Some(&next));
        assert_eq!(next.newest(&layout), Some(&next));
        assert_eq!(next.newest(&next.clone()), Some(&next));
        let other = layout.plan(&[join("5566")], 2, 2, NodeId(0)).expect("plans").next;
        assert_eq!(next.newest(&other), None, "two layouts of one epoch must be the same");
        let foreign = Layout::bootstrap(8, &names(5), 2, 3);
        assert_eq!(layout.newest(&foreign), None, "another cluster's layout is never merged");
    }

    #[test]
    fn the_first_ballot_is_lost_for_good_where_the_first_home_changes() {
        let layout = seed_layout(8);
        let plan = layout.plan(&[join("5564")], 2, 2, NodeId(0)).expect("plans");
        let (before, after) = (layout.ring(), plan.next.ring());
        let (mut lost, mut kept) = (0, 0);
        for key in 0..2_000 {
            let key = format!("key{key}");
            let at = position(key.as_bytes());
            assert!(layout.first_ballot_allowed(&at), "nothing is lost on the first ring");
            let changed = before.homes(key.as_bytes())[0] != after.homes(key.as_bytes())[0];
            assert_eq!(plan.next.first_ballot_allowed(&at), !changed, "{key}");
            if changed {
                lost += 1
            } else {
                kept += 1
            }
        }
        assert!(lost > 0 && kept > 0, "{lost} lost, {kept} kept");
        // Moving the first home back does not give the shortcut back.
        let settled = plan.next.settled().expect("a joint epoch settles");
        let back = settled.plan(&[Change::Leave { name: "5564".into() }], 2, 2, NodeId(0)).expect("plans").next;
        assert_eq!(back.ring().tokens(), layout.ring().tokens());
        for key in 0..2_000 {
            let at = position(format!("key{key}").as_bytes());
            assert_eq!(back.first_ballot_allowed(&at), plan.next.first_ballot_allowed(&at));
        }
    }

    #[test]
    fn removals_are_bounded_by_the_smaller_quorum() {
        let layout = seed_layout(1);
        let remove = [Change::Remove { name: "5554".into() }];
        assert!(layout.plan(&remove, 2, 2, NodeId(0)).is_ok());
        // With R = 1 one old home alone is a read quorum: none may be left behind.
        assert!(matches!(layout.plan(&remove, 1, 3, NodeId(0)), Err(PlanError::TooManyLost { lost: 1, max: 0, .. })));
        assert!(
            layout.plan(&[Change::Leave { name: "5554".into() }], 1, 3, NodeId(0)).is_ok(),
            "a live node hands over"
        );
    }

    #[test]
    fn a_plan_counts_the_keys_and_bytes_each_move_carries() {
        let plan = seed_layout(4).plan(&[join("5564")], 2, 2, NodeId(0)).expect("plans");
        let keys: Vec<(String, u64)> = (0..5_000).map(|key| (format!("key{key}"), key as u64 % 7 + 1)).collect();
        let load = plan.load(keys.iter().map(|(key, bytes)| (key.as_bytes(), *bytes)));
        assert_eq!(load.len(), plan.moves.len());
        let moved: Vec<&(String, u64)> =
            keys.iter().filter(|(key, _)| plan.move_at(&position(key.as_bytes())).is_some()).collect();
        assert_eq!(load.iter().map(|load| load.keys).sum::<u64>(), moved.len() as u64);
        assert_eq!(load.iter().map(|load| load.bytes).sum::<u64>(), moved.iter().map(|(_, bytes)| bytes).sum::<u64>());
        assert_eq!(plan.moved(keys.iter().map(|(key, _)| key.as_bytes())).changed, moved.len() as u64);
        // Each move's count is the keys in its arc.
        for (arc, load) in plan.moves.iter().zip(&load) {
            let inside = keys.iter().filter(|(key, _)| arc.contains(&position(key.as_bytes()))).count() as u64;
            assert_eq!(load.keys, inside);
        }
    }

    #[test]
    fn a_plan_makes_a_joint_epoch_whose_moving_arcs_have_two_electorates() {
        let layout = seed_layout(4);
        let plan = layout.plan(&[join("5564")], 2, 2, NodeId(3)).expect("plans");
        let joint = &plan.next;
        let transition = joint.transition().expect("the next epoch is joint");
        assert_eq!((transition.claimant, transition.moves.len()), (NodeId(3), plan.moves.len()));
        let (old_ring, ring) = (layout.ring(), joint.ring());
        let (mut moving, mut staying) = (0, 0);
        for key in 0..2_000 {
            let at = position(format!("key{key}").as_bytes());
            let electorate = joint.electorate(&ring, &at);
            let mut old = old_ring.preference_at(&at);
            old.truncate(3);
            let mut new = ring.preference_at(&at);
            new.truncate(3);
            if electorate.is_joint() {
                moving += 1;
                assert_eq!((&electorate.old, &electorate.new), (&old, &new));
                let all = electorate.all();
                assert_eq!(&all[..3], &new[..], "new homes first");
                assert_eq!(all.len(), 4, "one join adds one home to an arc: {all:?}");
                // A quorum of one set only is not enough; one of each is.
                let both_but = |node: NodeId| all.iter().copied().filter(|n| *n != node).collect::<Vec<_>>();
                assert!(!electorate.reached(&old[..2], 2) || old[..2].iter().filter(|n| new.contains(n)).count() == 2);
                assert!(electorate.reached(&both_but(all[0]), 2));
                assert!(electorate.lost(&new[..2], 2), "two of three new homes refusing end the round");
            } else {
                staying += 1;
                assert_eq!((&electorate.old, electorate.new.is_empty()), (&old, true));
                assert_eq!(old, new, "an arc that does not move keeps its homes");
            }
        }
        assert!(moving > 0 && staying > moving, "{moving} moving, {staying} staying");
        // One transition at a time; the settled epoch is the next ring alone.
        let again = joint.plan(&[join("5566")], 2, 2, NodeId(0));
        assert_eq!(again.map(|_| ()), Err(PlanError::InTransition { epoch: 2 }));
        let settled = joint.settled().expect("a joint epoch settles");
        assert_eq!((settled.epoch(), settled.transition(), settled.ring()), (3, None, ring.clone()));
        assert!(settled.settled().is_none());
        assert!(settled.plan(&[join("5566")], 2, 2, NodeId(0)).is_ok());
    }

    /// Found in review: a large plan's joint layout outgrew the bound messages are sized by.
    #[test]
    fn a_plan_too_large_for_one_message_is_refused() {
        let layout = Layout::bootstrap(7, &names(16), TOKENS_PER_NODE_MAX, 3);
        let joins: Vec<Change> = (0..8).map(|i| join(&format!("new{i}"))).collect();
        let refused = layout.plan(&joins, 2, 2, NodeId(0));
        assert!(matches!(refused, Err(PlanError::TooLarge { .. })), "{:?}", refused.map(|plan| plan.moves.len()));
        let one = layout.plan(&joins[..1], 2, 2, NodeId(0)).expect("one join fits");
        assert!(one.next.wire_bytes_max() <= Layout::WIRE_BYTES_MAX);
        // The bound counts the transition: it grows with the moves.
        assert!(one.next.wire_bytes_max() > one.next.settled().expect("settles").wire_bytes_max());
    }

    #[test]
    fn planning_is_deterministic() {
        let layout = seed_layout(16);
        let changes = [join("5564"), Change::Remove { name: "5558".into() }];
        assert_eq!(layout.plan(&changes, 2, 2, NodeId(0)), layout.plan(&changes, 2, 2, NodeId(0)));
    }
}
