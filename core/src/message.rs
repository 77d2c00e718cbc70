//! Everything that crosses between nodes, and between clients and nodes.
//!
//! Peer messages carry the coordinator's transaction number (`txn`) so replies find their
//! operation; a reply to a finished or unknown transaction is ignored, which makes loss,
//! duplication and reordering harmless. Message types never carry local pointers or `usize`.

use serde::{Deserialize, Serialize};

use crate::layout::Layout;
use crate::store::{blob_wire_bytes_max, entry_wire_bytes_max, Record, WIRE_INT_BYTES_MAX};
use crate::types::{Blob, NodeId, OpId};
use crate::version::Ballot;

/// What a client can ask any node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    Get {
        key: Blob,
    },
    Put {
        key: Blob,
        value: Blob,
    },
    Delete {
        key: Blob,
    },
    /// The seed's `@` query: every live pair stored on the receiving node, replicas included.
    LocalQuery,
    /// The seed's `*` query: every live pair in the whole store.
    GlobalQuery,
    /// The seed's `@` delete: deletes (through quorum writes) every key the node stores.
    LocalDelete,
    /// The seed's `*` delete: deletes every key in the store.
    GlobalDelete,
}

impl ClientOp {
    pub fn key(&self) -> Option<&Blob> {
        match self {
            ClientOp::Get { key } | ClientOp::Put { key, .. } | ClientOp::Delete { key } => Some(key),
            _ => None,
        }
    }

    /// An upper bound of this operation's encoded size (see `Message::wire_bytes_max`).
    pub fn wire_bytes_max(&self) -> usize {
        WIRE_INT_BYTES_MAX
            + match self {
                ClientOp::Put { key, value } => blob_wire_bytes_max(key) + blob_wire_bytes_max(value),
                op => op.key().map_or(0, blob_wire_bytes_max),
            }
    }
}

/// A client request. `id` is the same on every retry, which is what makes retries safe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    pub id: OpId,
    pub op: ClientOp,
}

/// Why a request failed. Typed down to the cause; `Display` renders the text clients are
/// shown (the RESP port sends `-ERR <text>`, the JSON API a `reason` beside the cause).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientError {
    /// No quorum answered in time. A write may or may not have taken effect.
    Unavailable(Unavailable),
    /// The request was refused before anything happened (too large...).
    Invalid(Invalid),
}

/// Why a request got no answer in time: a write answered so may or may not have taken effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Unavailable {
    /// The receiving node tried `coordinator_attempts_max` coordinators; none answered.
    NoCoordinator,
    NoWriteQuorum,
    NoReadQuorum,
    /// A `*` scan did not hear from R home replicas of every range.
    ScanIncomplete,
    /// A bulk (`@` or `*`) delete: `failed` keys got no write quorum (each may or may not be
    /// deleted), `deleted` others were.
    BulkDeleteIncomplete {
        failed: u64,
        deleted: u64,
    },
    /// An `@` query waited an operation timeout for a recovery that `peers_waiting` peers have
    /// not answered.
    Recovering {
        peers_waiting: u64,
    },
    /// The node started with nothing stored and waited an operation timeout for
    /// `peers_waiting` peers to say whether they remember another disk of it.
    Admitting {
        peers_waiting: u64,
    },
    /// The node lost its data: `peer` remembers another disk of it. It serves nothing.
    Amnesia {
        peer: NodeId,
    },
    /// Made by a node's driver: the node is stopping and takes no more requests.
    ShuttingDown,
    /// Made by a node's driver: the node stopped with the request in it.
    Stopped,
    /// Made by a client: the node did not answer within the client's own bound.
    NoAnswer,
    /// Made by a client: it has no connection to that node.
    NotConnected {
        node: String,
    },
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NoCoordinator => f.write_str("no coordinator answered in time"),
            Unavailable::NoWriteQuorum => f.write_str("no write quorum answered in time"),
            Unavailable::NoReadQuorum => f.write_str("no read quorum answered in time"),
            Unavailable::ScanIncomplete => f.write_str("too few replicas answered the scan in time"),
            Unavailable::BulkDeleteIncomplete { failed, deleted } => write!(
                f,
                "{failed} keys got no write quorum in time, and each may or may not be deleted; \
                 {deleted} other keys were deleted"
            ),
            Unavailable::Recovering { peers_waiting } => write!(
                f,
                "this node is still recovering the writes it missed ({peers_waiting} peers have not sent theirs \
                 yet); it answers @ queries once it has them"
            ),
            Unavailable::Admitting { peers_waiting } => write!(
                f,
                "this node started with nothing stored and waits for {peers_waiting} peers to say whether \
                 they remember another disk of it; it serves once more than half of its peers have"
            ),
            Unavailable::Amnesia { peer } => write!(
                f,
                "this node lost its data (node {} remembers an earlier disk of it) and serves nothing",
                peer.0
            ),
            Unavailable::ShuttingDown => f.write_str("the node is shutting down"),
            Unavailable::Stopped => f.write_str("the node stopped"),
            Unavailable::NoAnswer => f.write_str("no answer in time"),
            Unavailable::NotConnected { node } => write!(f, "not connected to {node}"),
        }
    }
}

/// Why a request was refused before anything happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Invalid {
    KeyTooLarge {
        bytes: u64,
        max: u64,
    },
    ValueTooLarge {
        bytes: u64,
        max: u64,
    },
    /// Made by a client: the answer it got could not be read (`detail` says why).
    UnreadableAnswer {
        detail: String,
    },
    /// Made by a client: the node could not read the request it sent (`detail` is what the
    /// node said: a client's bug, never a user's).
    BadRequest {
        detail: String,
    },
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::KeyTooLarge { bytes, max } => write!(f, "key is {bytes} bytes; the limit is {max}"),
            Invalid::ValueTooLarge { bytes, max } => write!(f, "value is {bytes} bytes; the limit is {max}"),
            Invalid::UnreadableAnswer { detail } => write!(f, "unreadable answer: {detail}"),
            Invalid::BadRequest { detail } => write!(f, "the node could not read the request: {detail}"),
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unavailable(cause) => write!(f, "unavailable: {cause}"),
            ClientError::Invalid(cause) => write!(f, "invalid request: {cause}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// The answer to a client request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientReply {
    /// A get: the value, or `None` when absent.
    Value(Option<Blob>),
    /// A put took effect.
    Written,
    /// `@` or `*` query: pairs sorted by key.
    Pairs(Vec<(Blob, Blob)>),
    /// A delete took effect: how many live keys it removed (for one key, 0 or 1).
    Deleted(u64),
    Error(ClientError),
}

impl ClientReply {
    /// An upper bound of this reply's encoded size (see `Message::wire_bytes_max`).
    pub fn wire_bytes_max(&self) -> usize {
        let text = |text: &String| WIRE_INT_BYTES_MAX + text.len();
        WIRE_INT_BYTES_MAX
            + match self {
                ClientReply::Value(value) => WIRE_INT_BYTES_MAX + value.as_ref().map_or(0, blob_wire_bytes_max),
                ClientReply::Written => 0,
                ClientReply::Pairs(pairs) => {
                    WIRE_INT_BYTES_MAX
                        + pairs
                            .iter()
                            .map(|(key, value)| blob_wire_bytes_max(key) + blob_wire_bytes_max(value))
                            .sum::<usize>()
                }
                ClientReply::Deleted(_) => WIRE_INT_BYTES_MAX,
                // A tag per enum, a few integers, and the text a cause may carry.
                ClientReply::Error(error) => {
                    let carried = match error {
                        ClientError::Unavailable(Unavailable::NotConnected { node }) => text(node),
                        ClientError::Invalid(Invalid::UnreadableAnswer { detail } | Invalid::BadRequest { detail }) => {
                            text(detail)
                        }
                        _ => 0,
                    };
                    4 * WIRE_INT_BYTES_MAX + carried
                }
            }
    }
}

/// Why a replica refused a vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// It promised a higher ballot; the coordinator must retry above it.
    Promised(Ballot),
    /// It is recovering and does not serve reads yet.
    Recovering,
    /// The round was sent under another layout epoch than this replica's (the epoch fence,
    /// ARCHITECTURE.md): the coordinator learns the newer layout and retries under it.
    Epoch(u64),
}

/// The answer to a prepare piggybacked on an accept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NextPromise {
    /// Promised; the replica holds exactly the record of the accept (the common case, so it is
    /// not sent back).
    HoldsAccepted,
    /// Promised; the replica holds this record (or none).
    Holds(Option<Record>),
    Refused(Refusal),
}

/// Why a record is being offered to an acceptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AcceptPurpose {
    Write,
    ReadRepair,
    Handoff,
}

/// Buckets of an anti-entropy digest (`Message::Digest`): a one-level Merkle tree over the
/// keys two nodes share. More buckets mean fewer keys to compare when one key differs.
pub const DIGEST_BUCKETS: u32 = 1_024;

/// A message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A receiving node hands a request to a coordinator.
    Forward {
        txn: u64,
        request: ClientRequest,
        attempt: u32,
    },
    /// The coordinator got the request and works on it; the answer follows as `ForwardReply`.
    ForwardAck {
        txn: u64,
    },
    ForwardReply {
        txn: u64,
        reply: ClientReply,
    },
    /// Write phase 1: promise `ballot` and report the accepted record.
    Prepare {
        txn: u64,
        key: Blob,
        ballot: Ballot,
    },
    Promise {
        txn: u64,
        ballot: Ballot,
        result: Result<Option<Record>, Refusal>,
    },
    /// A quorum read.
    Read {
        txn: u64,
        key: Blob,
    },
    ReadReply {
        txn: u64,
        result: Result<Option<Record>, Refusal>,
    },
    /// Write phase 2 (or a read repair, or a hint handed off): accept `record`. With `next`,
    /// also phase 1 of the coordinator's next write on this key (promise `next` once the
    /// record is handled), so that write can skip straight to phase 2.
    Accept {
        txn: u64,
        key: Blob,
        record: Record,
        purpose: AcceptPurpose,
        next: Option<Ballot>,
    },
    /// `next` answers the piggybacked prepare.
    Accepted {
        txn: u64,
        ballot: Ballot,
        result: Result<(), Refusal>,
        next: Option<NextPromise>,
    },
    /// Keep `record` for `home`, which could not take it, and hand it off later.
    Hint {
        home: NodeId,
        key: Blob,
        record: Record,
    },
    /// Recovery: send me records of keys `for_node` is a home replica of, after `after`.
    SyncRequest {
        txn: u64,
        for_node: NodeId,
        after: Option<Blob>,
    },
    /// `next` is the cursor of the following page; `None` when done.
    SyncReply {
        txn: u64,
        records: Vec<(Blob, Record)>,
        next: Option<Blob>,
    },
    /// `*` query: send me your records after `after`.
    ScanRequest {
        txn: u64,
        after: Option<Blob>,
    },
    ScanReply {
        txn: u64,
        records: Vec<(Blob, Record)>,
        next: Option<Blob>,
    },
    /// Anti-entropy round: hashes of the (key, ballot) pairs both nodes store, per bucket.
    Digest {
        txn: u64,
        buckets: Vec<u64>,
    },
    /// The buckets that differ, and the responder's (key, ballot) pairs in them.
    DigestEntries {
        txn: u64,
        buckets: Vec<u32>,
        entries: Vec<(Blob, Ballot)>,
    },
    /// Records the receiver lacks or has older.
    Records {
        records: Vec<(Blob, Record)>,
    },
    /// Send me these keys' records.
    Fetch {
        keys: Vec<Blob>,
    },
    /// From a node not yet admitted: do you remember another disk of me? `disk` is the random
    /// id its disk got when it was new (`DurableState::disk`). The only message a node sends
    /// before it is admitted (ARCHITECTURE.md, "amnesia never votes"). The receiver durably
    /// remembers the first disk id it hears of each peer before it answers.
    Probe {
        disk: u64,
    },
    /// The disk id of the prober this node remembers (after taking in the probe).
    ProbeReply {
        remembered: u64,
        /// The first disk id the answering node knows of every node (as in `Gossip`): a node
        /// is admitted only after it took in those of more than half of its peers, so it
        /// remembers every disk they remember before it answers any probe itself.
        #[serde(default)]
        disks: Vec<(NodeId, u64)>,
    },
    /// Gossip: the sender's layout epoch is in the envelope; a receiver with a newer layout
    /// sends it (`Layout`), one with an older layout answers `Gossip` so that it is sent one.
    /// `disks` is the first disk id the sender knows of each node (its own included): every
    /// node comes to remember every node's disk, so a node that lost its disk is recognized
    /// even after the peers it first probed have left the cluster.
    Gossip {
        disks: Vec<(NodeId, u64)>,
    },
    /// The sender's layout, to a peer whose epoch is behind.
    Layout {
        layout: Box<Layout>,
    },
    /// Layout Paxos, phase 1: promise `ballot` for deciding epoch `instance` (sent to the
    /// members of epoch `instance - 1`).
    LayoutPrepare {
        txn: u64,
        instance: u64,
        ballot: Ballot,
    },
    /// The answer: the layout this acceptor accepted for the instance, if any.
    LayoutPromise {
        txn: u64,
        instance: u64,
        ballot: Ballot,
        result: Result<Option<(Ballot, Box<Layout>)>, LayoutRefusal>,
    },
    /// Layout Paxos, phase 2: accept `layout` as epoch `instance` under `ballot`.
    LayoutAccept {
        txn: u64,
        instance: u64,
        ballot: Ballot,
        layout: Box<Layout>,
    },
    LayoutAccepted {
        txn: u64,
        instance: u64,
        ballot: Ballot,
        result: Result<(), LayoutRefusal>,
    },
    /// From the claimant of joint epoch `epoch` to an old home of its moving arcs: report how
    /// far you are. `sync` once the barrier holds: rewrite every key of the moving arcs you hold.
    TransitionQuery {
        epoch: u64,
        sync: bool,
    },
    /// The answer (its envelope says the sender learned `epoch`, durably): `synced` once every
    /// key of its moving arcs was rewritten by a round begun in `epoch`.
    TransitionReport {
        epoch: u64,
        synced: bool,
    },
}

/// Why an acceptor of the layout Paxos refused a vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayoutRefusal {
    /// It promised a higher ballot for the instance.
    Promised(Ballot),
    /// Its layout's epoch is not the one before the instance: ahead (the instance is decided;
    /// it sends its layout) or behind (it is catching up).
    Epoch(u64),
    /// The proposed layout does not follow this acceptor's (`Layout::check`).
    Malformed(String),
}

/// The kind of a message, for trace events and drawing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MessageKind {
    Forward,
    ForwardAck,
    ForwardReply,
    Prepare,
    Promise,
    Read,
    ReadReply,
    Accept,
    ReadRepair,
    Handoff,
    Accepted,
    Hint,
    SyncRequest,
    SyncReply,
    ScanRequest,
    ScanReply,
    Digest,
    DigestEntries,
    Records,
    Fetch,
    Probe,
    ProbeReply,
    Gossip,
    Layout,
    LayoutPrepare,
    LayoutPromise,
    LayoutAccept,
    LayoutAccepted,
    TransitionQuery,
    TransitionReport,
}

impl Message {
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Forward { .. } => MessageKind::Forward,
            Message::ForwardAck { .. } => MessageKind::ForwardAck,
            Message::ForwardReply { .. } => MessageKind::ForwardReply,
            Message::Prepare { .. } => MessageKind::Prepare,
            Message::Promise { .. } => MessageKind::Promise,
            Message::Read { .. } => MessageKind::Read,
            Message::ReadReply { .. } => MessageKind::ReadReply,
            Message::Accept { purpose, .. } => match purpose {
                AcceptPurpose::Write => MessageKind::Accept,
                AcceptPurpose::ReadRepair => MessageKind::ReadRepair,
                AcceptPurpose::Handoff => MessageKind::Handoff,
            },
            Message::Accepted { .. } => MessageKind::Accepted,
            Message::Hint { .. } => MessageKind::Hint,
            Message::SyncRequest { .. } => MessageKind::SyncRequest,
            Message::SyncReply { .. } => MessageKind::SyncReply,
            Message::ScanRequest { .. } => MessageKind::ScanRequest,
            Message::ScanReply { .. } => MessageKind::ScanReply,
            Message::Digest { .. } => MessageKind::Digest,
            Message::DigestEntries { .. } => MessageKind::DigestEntries,
            Message::Records { .. } => MessageKind::Records,
            Message::Fetch { .. } => MessageKind::Fetch,
            Message::Probe { .. } => MessageKind::Probe,
            Message::ProbeReply { .. } => MessageKind::ProbeReply,
            Message::Gossip { .. } => MessageKind::Gossip,
            Message::Layout { .. } => MessageKind::Layout,
            Message::LayoutPrepare { .. } => MessageKind::LayoutPrepare,
            Message::LayoutPromise { .. } => MessageKind::LayoutPromise,
            Message::LayoutAccept { .. } => MessageKind::LayoutAccept,
            Message::LayoutAccepted { .. } => MessageKind::LayoutAccepted,
            Message::TransitionQuery { .. } => MessageKind::TransitionQuery,
            Message::TransitionReport { .. } => MessageKind::TransitionReport,
        }
    }

    /// The coordinator transaction this message belongs to, if any.
    pub fn txn(&self) -> Option<u64> {
        match self {
            Message::Forward { txn, .. }
            | Message::ForwardAck { txn }
            | Message::ForwardReply { txn, .. }
            | Message::Prepare { txn, .. }
            | Message::Promise { txn, .. }
            | Message::Read { txn, .. }
            | Message::ReadReply { txn, .. }
            | Message::Accept { txn, .. }
            | Message::Accepted { txn, .. }
            | Message::SyncRequest { txn, .. }
            | Message::SyncReply { txn, .. }
            | Message::ScanRequest { txn, .. }
            | Message::ScanReply { txn, .. }
            | Message::Digest { txn, .. }
            | Message::DigestEntries { txn, .. }
            | Message::LayoutPrepare { txn, .. }
            | Message::LayoutPromise { txn, .. }
            | Message::LayoutAccept { txn, .. }
            | Message::LayoutAccepted { txn, .. } => Some(*txn),
            Message::Hint { .. }
            | Message::Records { .. }
            | Message::Fetch { .. }
            | Message::Probe { .. }
            | Message::ProbeReply { .. }
            | Message::Gossip { .. }
            | Message::Layout { .. }
            | Message::TransitionQuery { .. }
            | Message::TransitionReport { .. } => None,
        }
    }

    /// Whether the message carries this node's acceptor state (a vote, a record, an answer), so
    /// that it must wait until that state is durable. Plain requests reveal nothing.
    pub fn reveals_state(&self) -> bool {
        !matches!(
            self,
            Message::Forward { .. }
                | Message::ForwardAck { .. }
                | Message::Prepare { .. }
                | Message::Read { .. }
                | Message::SyncRequest { .. }
                | Message::ScanRequest { .. }
                | Message::Fetch { .. }
                | Message::LayoutPrepare { .. }
                | Message::TransitionQuery { .. }
        )
    }

    /// Whether a node that is not admitted takes this message in: only probes and their answers.
    pub fn is_probe(&self) -> bool {
        matches!(self, Message::Probe { .. } | Message::ProbeReply { .. })
    }

    /// An upper bound of this message's encoded size. Every batch the core builds is kept
    /// under `Config::batch_bytes_max` by this measure, so every message stays under
    /// `Config::message_bytes_max`, which is what a driver must accept from a peer.
    pub fn wire_bytes_max(&self) -> usize {
        const INT: usize = WIRE_INT_BYTES_MAX;
        let maybe_record = |record: &Option<Record>| INT + record.as_ref().map_or(0, Record::wire_bytes_max);
        // A refusal is a tag and a ballot; a result tag comes on top.
        let refusal = 3 * INT;
        let entries = |records: &[(Blob, Record)]| {
            INT + records.iter().map(|(key, record)| entry_wire_bytes_max(key, record)).sum::<usize>()
        };
        let cursor = |after: &Option<Blob>| INT + after.as_ref().map_or(0, blob_wire_bytes_max);
        // Every variant: its tag and txn, then what it carries.
        2 * INT
            + match self {
                Message::Forward { request, .. } => 4 * INT + request.op.wire_bytes_max(),
                Message::ForwardAck { .. } => 0,
                Message::ForwardReply { reply, .. } => reply.wire_bytes_max(),
                Message::Prepare { key, .. } => blob_wire_bytes_max(key) + 2 * INT,
                Message::Promise { result, .. } | Message::ReadReply { result, .. } => {
                    3 * INT + refusal + result.as_ref().map_or(0, maybe_record)
                }
                Message::Read { key, .. } => blob_wire_bytes_max(key),
                Message::Accept { key, record, .. } => entry_wire_bytes_max(key, record) + 4 * INT,
                Message::Accepted { result, next, .. } => {
                    2 * INT
                        + INT
                        + result.as_ref().map_or(refusal, |()| 0)
                        + INT
                        + next.as_ref().map_or(0, |next| match next {
                            NextPromise::HoldsAccepted => INT,
                            NextPromise::Holds(held) => INT + maybe_record(held),
                            NextPromise::Refused(_) => INT + refusal,
                        })
                }
                Message::Hint { key, record, .. } => INT + entry_wire_bytes_max(key, record),
                Message::SyncRequest { after, .. } => INT + cursor(after),
                Message::SyncReply { records, next, .. } | Message::ScanReply { records, next, .. } => {
                    entries(records) + cursor(next)
                }
                Message::ScanRequest { after, .. } => cursor(after),
                Message::Digest { buckets, .. } => INT + buckets.len() * INT,
                Message::DigestEntries { buckets, entries, .. } => {
                    INT + buckets.len() * INT
                        + INT
                        + entries.iter().map(|(key, _)| blob_wire_bytes_max(key) + 2 * INT).sum::<usize>()
                }
                Message::Records { records } => entries(records),
                Message::Fetch { keys } => INT + keys.iter().map(blob_wire_bytes_max).sum::<usize>(),
                Message::Probe { .. } => INT,
                Message::ProbeReply { disks, .. } => 3 * INT + disks.len() * 2 * INT,
                Message::Gossip { disks } => INT + disks.len() * 2 * INT,
                Message::Layout { layout } | Message::LayoutAccept { layout, .. } => layout.wire_bytes_max() + 3 * INT,
                Message::LayoutPrepare { .. } => 3 * INT,
                Message::TransitionQuery { .. } | Message::TransitionReport { .. } => 2 * INT,
                // A refusal may carry `Layout::check`'s text, about a node name's length.
                Message::LayoutPromise { result, .. } => {
                    let accepted = result.as_ref().ok().and_then(Option::as_ref);
                    8 * INT + 256 + accepted.map_or(0, |(_, layout)| layout.wire_bytes_max())
                }
                Message::LayoutAccepted { .. } => 8 * INT + 256,
            }
    }

    /// The single key this message is about, if any.
    pub fn key(&self) -> Option<&Blob> {
        match self {
            Message::Forward { request, .. } => request.op.key(),
            Message::Prepare { key, .. }
            | Message::Read { key, .. }
            | Message::Accept { key, .. }
            | Message::Hint { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// A message with the id its sender gave it; ids are unique per sender incarnation and let the
/// visualizer match a send with its delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: u64,
    /// The sender's layout epoch when it sent the message: a receiver that is behind learns
    /// the newer layout, one that is ahead sends it (ARCHITECTURE.md, "Membership changes").
    pub epoch: u64,
    pub message: Message,
}
