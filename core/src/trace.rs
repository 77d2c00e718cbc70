//! Trace events: what a node did, in enough detail to animate an operation end to end.
//!
//! The visualizer and the live cluster draw exactly these events, so they are plain data,
//! serializable, and emitted in a deterministic order. Emitting them never changes behaviour.

use serde::{Deserialize, Serialize};

use crate::message::{ClientOp, ClientReply, MessageKind};
use crate::types::{Blob, Micros, NodeId, OpId};
use crate::version::Ballot;

/// A phase of a coordinated operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Prepare,
    Accept,
    Read,
    ReadRepair,
    Scan,
}

/// Why a message never arrived (emitted by the network, simulated or real).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DropReason {
    Loss,
    Partition,
    NodeDown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceKind {
    /// A message left this node.
    MessageSent {
        id: u64,
        to: NodeId,
        kind: MessageKind,
        txn: Option<u64>,
        key: Option<Blob>,
    },
    /// A message from `from` arrived at this node.
    MessageDelivered {
        id: u64,
        from: NodeId,
        kind: MessageKind,
    },
    /// A message from this node to `to` was lost.
    MessageDropped {
        id: u64,
        to: NodeId,
        kind: MessageKind,
        reason: DropReason,
    },
    /// A client request arrived; `handle` is the driver's name for it.
    RequestReceived {
        handle: u64,
        id: OpId,
        op: ClientOp,
    },
    /// The answer left for the client.
    RequestAnswered {
        handle: u64,
        reply: ClientReply,
    },
    /// Request `id` went to coordinator `to` (attempt 1 is the first try) under this node's
    /// route transaction `txn` (the forward, its acknowledgement and the reply carry it).
    Forwarded {
        txn: u64,
        id: OpId,
        to: NodeId,
        attempt: u32,
    },
    /// This node started coordinating an operation.
    CoordinationStarted {
        txn: u64,
        id: OpId,
        op: ClientOp,
        homes: Vec<NodeId>,
    },
    /// Round `txn` started a phase for the requests `ops` (a round carries every request
    /// queued behind the one before it on its key; a repair rewrite carries its own id).
    PhaseStarted {
        txn: u64,
        phase: Phase,
        ballot: Ballot,
        needed: u32,
        ops: Vec<OpId>,
    },
    VoteCounted {
        txn: u64,
        phase: Phase,
        from: NodeId,
        granted: bool,
        votes: u32,
        needed: u32,
    },
    QuorumReached {
        txn: u64,
        phase: Phase,
    },
    /// A coordinated operation finished; `reply` is what the coordinator answered.
    CoordinationFinished {
        txn: u64,
        reply: ClientReply,
    },
    /// The request was already applied (a retry): nothing new is written.
    RetryRecognized {
        txn: u64,
        id: OpId,
    },
    ReadRepair {
        txn: u64,
        key: Blob,
        to: NodeId,
        ballot: Ballot,
    },
    /// This node keeps a write for `home` (a hint).
    HintStored {
        home: NodeId,
        key: Blob,
    },
    HintHandedOff {
        home: NodeId,
        key: Blob,
    },
    HintDropped {
        home: NodeId,
        key: Blob,
    },
    /// This node accepted a record (a write, repair, handoff, sync or anti-entropy copy).
    RecordStored {
        key: Blob,
        ballot: Ballot,
        tombstone: bool,
    },
    RecoveryStarted {
        peers: Vec<NodeId>,
    },
    RecoveryProgress {
        peer: NodeId,
        records: u64,
        peer_done: bool,
    },
    RecoveryFinished {
        records: u64,
    },
    AntiEntropy {
        peer: NodeId,
        pushed: u64,
        fetched: u64,
    },
    Suspected {
        peer: NodeId,
    },
    Trusted {
        peer: NodeId,
    },
    Persisted {
        batch: u64,
    },
    Crashed,
    Restarted,
    /// A node that started with nothing stored heard from more than half of its peers that they
    /// remember no other disk of it: it votes and serves from now on.
    Admitted,
    /// A node not yet admitted learned from `peer` that it had another disk before: its data
    /// was lost, and it serves nothing.
    AmnesiaDetected {
        peer: NodeId,
    },
    /// The node took in a newer layout (the ring as replicated state) at `epoch`.
    LayoutLearned {
        epoch: u64,
    },
    /// A layout this node proposed was decided (accepted by a majority) as epoch `epoch`.
    LayoutDecided {
        epoch: u64,
    },
    /// As the claimant of joint epoch `epoch`: enough old homes learned it that no round of the
    /// old layout can gain a quorum any more; they are told to sync.
    BarrierReached {
        epoch: u64,
    },
    /// This node began rewriting the keys of its moving arcs (the identity rounds).
    SyncStarted {
        epoch: u64,
    },
    SyncFinished {
        epoch: u64,
        keys: u64,
    },
    /// Slots of arcs this node no longer homes were dropped (after a settled epoch).
    RangesForgotten {
        keys: u64,
    },
    /// A peer's layout was not taken in: `problem` says why (another cluster, malformed).
    LayoutRefused {
        from: NodeId,
        epoch: u64,
        problem: String,
    },
}

impl TraceKind {
    /// Whether this event changes what a node is (restarted, recovering, suspecting a peer,
    /// holding a hint), rather than being one step of an operation: a node keeps the recent
    /// ones for a viewer that attaches later, so it still sees a recovery that began before.
    pub fn is_lifecycle(&self) -> bool {
        matches!(
            self,
            TraceKind::Restarted
                | TraceKind::Admitted
                | TraceKind::AmnesiaDetected { .. }
                | TraceKind::LayoutLearned { .. }
                | TraceKind::LayoutDecided { .. }
                | TraceKind::BarrierReached { .. }
                | TraceKind::SyncStarted { .. }
                | TraceKind::SyncFinished { .. }
                | TraceKind::RangesForgotten { .. }
                | TraceKind::LayoutRefused { .. }
                | TraceKind::RecoveryStarted { .. }
                | TraceKind::RecoveryProgress { .. }
                | TraceKind::RecoveryFinished { .. }
                | TraceKind::Suspected { .. }
                | TraceKind::Trusted { .. }
                | TraceKind::HintStored { .. }
                | TraceKind::HintHandedOff { .. }
        )
    }
}

/// One trace event: what happened, where, when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    pub at: Micros,
    pub node: NodeId,
    pub kind: TraceKind,
}
