//! What an operator asks a node about membership, and what it answers (`dynamo admin`, the
//! WebSocket control API, the page and the simulator all speak it). The node decides
//! everything (`node/membership.rs`); drivers carry these in and out.

use serde::{Deserialize, Serialize};

use crate::layout::{Change, PlanError};
use crate::ring::{position_hex, Position};

/// One operator request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Adds a change to the plan staged at this node.
    Stage(Change),
    /// Forgets the staged changes.
    Clear,
    /// The plan the staged changes make on the current layout.
    Plan,
    /// Commits the staged plan: decides the next epoch (a joint one) and carries it out.
    Commit,
    /// Commits these changes at once (the simulator and the page; nothing is staged).
    CommitChanges(Vec<Change>),
    /// Members, epoch and the ranges in transition.
    Status,
}

/// A node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminReply {
    /// What is staged now.
    Staged(Vec<Change>),
    Planned(PlanSummary),
    /// The change is decided as epoch `epoch` (a joint epoch: its ranges now move).
    Committed {
        epoch: u64,
    },
    Status(ClusterStatus),
    Refused(AdminRefusal),
}

/// Why a change was refused: nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRefusal {
    Plan(PlanError),
    /// The staged plan was computed on an older epoch than the layout's now.
    Stale {
        base: u64,
        epoch: u64,
    },
    /// Another change was decided for the epoch first.
    Lost {
        epoch: u64,
    },
    /// This node is not a member: changes are committed at a member.
    NotMember {
        node: String,
    },
    /// No majority of the members answered in time; the change may still be decided (check
    /// `status`).
    NoQuorum {
        epoch: u64,
    },
    /// A commit is already being decided here.
    Busy,
    /// The node votes in nothing yet (it is being admitted) or refused to serve.
    NotServing,
}

impl std::fmt::Display for AdminRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminRefusal::Plan(error) => write!(f, "{error}"),
            AdminRefusal::Stale { base, epoch } => write!(
                f,
                "the staged plan was made on epoch {base}, but the layout is at epoch {epoch}; \
                 clear it and stage the changes again"
            ),
            AdminRefusal::Lost { epoch } => write!(f, "another change was committed as epoch {epoch} first"),
            AdminRefusal::NotMember { node } => {
                write!(f, "node {node} is not a member; commit changes at a member")
            }
            AdminRefusal::NoQuorum { epoch } => write!(
                f,
                "no majority of the members answered while deciding epoch {epoch}; \
                 the change may still be decided: run status"
            ),
            AdminRefusal::Busy => write!(f, "a change is being committed at this node; try again"),
            AdminRefusal::NotServing => {
                write!(f, "this node is not serving (it is being admitted, or its data was lost)")
            }
        }
    }
}

/// A plan as the operator sees it: every arc that moves, and what it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// The epoch the plan was made on; committing on another is refused.
    pub base_epoch: u64,
    pub changes: Vec<Change>,
    pub moves: Vec<MoveSummary>,
    /// Estimated keys that change homes, and their bytes (from this node's share of the data).
    pub keys_estimate: u64,
    pub bytes_estimate: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveSummary {
    /// The arc `(start, end]`, as hex ring positions.
    pub start: String,
    pub end: String,
    /// Homes before and after, by name.
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub keys_estimate: u64,
    pub bytes_estimate: u64,
}

impl MoveSummary {
    pub fn arc(start: &Position, end: &Position) -> (String, String) {
        (position_hex(start), position_hex(end))
    }
}

/// The cluster as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node: String,
    pub epoch: u64,
    /// Members by name, in id order.
    pub members: Vec<String>,
    /// Arcs that are moving (empty once the last change has settled).
    pub transitions: Vec<MoveSummary>,
    /// The transition's progress, as far as this node knows (its claimant knows all of it).
    pub progress: Option<TransitionProgress>,
    /// The plan staged here.
    pub staged: Vec<Change>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionProgress {
    pub claimant: String,
    /// Old homes that have learned the joint epoch, of those that must.
    pub learned: u64,
    pub learning: u64,
    /// Old homes that finished rewriting their keys onto the new homes.
    pub synced: u64,
    pub syncing: u64,
}
