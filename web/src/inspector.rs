//! An inspector's model: what the page shows of one node's store, made from an inspection
//! snapshot (`dynamo_core::api::Inspection`) the same way in every mode.

use dynamo_core::api::Inspection;
use dynamo_core::ring::Ring;
use dynamo_core::types::{Blob, NodeId};
use dynamo_core::version::Ballot;

use crate::text::ballot_text;
use crate::timeline::NodeStatus;

/// One stored key as an inspector shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRow {
    pub key: String,
    /// `None`: a tombstone (the key was deleted).
    pub value: Option<String>,
    pub ballot: String,
    pub promised: String,
    pub clock: String,
    /// Whether this node is one of the key's home replicas.
    pub home: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintRow {
    pub home: String,
    pub key: String,
    pub value: Option<String>,
}

/// Everything a node's inspector shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub status: NodeStatus,
    /// True when the node is down and the rows come from its disk.
    pub from_disk: bool,
    pub keys: Vec<KeyRow>,
    pub hints: Vec<HintRow>,
    pub suspects: Vec<String>,
}

impl NodeView {
    /// The inspector of `node` from an inspection snapshot (`dynamo_core::api::Inspection`):
    /// the same in every mode, whether the snapshot is of a simulated node, of its disk while it
    /// is down, or a real node's answer.
    pub fn of(ring: &Ring, node: NodeId, inspection: &Inspection, status: NodeStatus, from_disk: bool) -> NodeView {
        let keys = inspection
            .slots
            .iter()
            .map(|slot| KeyRow {
                key: slot.key.to_text(),
                value: slot.value.as_ref().map(Blob::to_text),
                ballot: ballot_text(ring, slot.ballot.unwrap_or(Ballot::ZERO)),
                promised: ballot_text(ring, slot.promised),
                clock: slot
                    .clock
                    .iter()
                    .filter(|(node, _)| node.index() < ring.node_count())
                    .map(|(node, count)| format!("{}:{count}", ring.name(*node)))
                    .collect::<Vec<_>>()
                    .join(" "),
                home: ring.homes(slot.key.as_bytes()).contains(&node),
            })
            .collect();
        let hints = inspection
            .hints
            .iter()
            .map(|hint| HintRow {
                home: hint.home.clone(),
                key: hint.key.to_text(),
                value: hint.value.as_ref().map(Blob::to_text),
            })
            .collect();
        NodeView {
            name: ring.name(node).to_string(),
            status,
            from_disk,
            keys,
            hints,
            suspects: inspection.suspects.clone(),
        }
    }
}
