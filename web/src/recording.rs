//! The export format of a live run (`Recording`): the cluster, the trace events and the page's
//! own requests and marks on the page clock, and the checker's history, complete enough to
//! replay it (`Live::replay`) and to check it again. `Live::recording` writes one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use dynamo_core::api::ClusterInfo;
use dynamo_core::history::History;
use dynamo_core::message::{ClientOp, ClientReply};
use dynamo_core::trace::TraceEvent;
use dynamo_core::types::{Micros, NodeId, OpId};

/// The `format` field of a recording.
pub const RECORDING_FORMAT: &str = "dynamo-live-run";
pub const RECORDING_VERSION: u32 = 1;

/// A request of the page as the export keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub node: NodeId,
    /// The `OpId` the node gave it (what its trace events name), when the page learnt it.
    #[serde(default)]
    pub op_id: Option<OpId>,
    pub op: ClientOp,
    pub sent_at: Micros,
    /// `None`: never answered (given up).
    pub answered_at: Option<Micros>,
    pub reply: Option<ClientReply>,
}

/// Something the page itself did or saw (a control request, a process going down or up).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub at: Micros,
    pub node: NodeId,
    /// The process's state from then on, when the mark says.
    pub up: Option<bool>,
    pub text: String,
}

/// The export format: a live run, complete enough to replay and to check again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// Always `RECORDING_FORMAT`.
    pub format: String,
    pub version: u32,
    pub cluster: ClusterInfo,
    /// The page clock's origin in UNIX-epoch microseconds; every other time is relative to it.
    pub clock_origin_unix_us: Micros,
    /// Trace events, with `at` on the page clock.
    pub events: Vec<TraceEvent>,
    /// Events the nodes reported dropped (`{"dropped": n}`) plus any the page did not keep.
    pub dropped: u64,
    pub marks: Vec<Mark>,
    pub requests: Vec<RecordedRequest>,
    /// The checker's input: single-key operations with the page's invoke and complete times.
    pub history: History,
}

impl Recording {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a recording always encodes")
    }

    pub fn decode(text: &str) -> Result<Recording, String> {
        let recording: Recording = from_json(text).map_err(|error| format!("not a dynamo live run: {error}"))?;
        if recording.format != RECORDING_FORMAT || recording.version != RECORDING_VERSION {
            return Err(format!(
                "unsupported recording {} version {} (this page reads {RECORDING_FORMAT} version {RECORDING_VERSION})",
                recording.format, recording.version
            ));
        }
        recording.cluster.check()?;
        let nodes = recording.cluster.nodes.len();
        let known = |node: NodeId| node.index() < nodes;
        if !recording.events.iter().all(|event| known(event.node))
            || !recording.requests.iter().all(|request| known(request.node))
            || !recording.marks.iter().all(|mark| known(mark.node))
        {
            return Err("the recording names a node its cluster does not have".to_string());
        }
        Ok(recording)
    }
}

/// Decodes JSON text through `serde_json::Value`. Socket frames must go through `Value` anyway
/// (their shape says what they are), so decoding everything the same way keeps one deserializer
/// per type in the `.wasm` instead of two.
fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::from_str::<Value>(text)?)
}
