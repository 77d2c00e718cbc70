//! Client histories: what clients asked, when, and what they were told.
//!
//! A history is the checker's only input. It records operations as clients saw them, never what
//! the nodes did internally, so the checker judges the system the way a user would. This module
//! must never depend on node internals.

use serde::{Deserialize, Serialize};

use crate::types::{Blob, ClientId, Micros};

/// One single-key operation as a client issued it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    Get,
    Put(Blob),
    Delete,
}

/// What the client finally learned about an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A get completed and returned this value (`None`: the key was absent).
    Read(Option<Blob>),
    /// A put or delete was acknowledged.
    Written,
    /// The client never learned the outcome (timeout, unavailable, crash). A write with this
    /// outcome may have taken effect at any moment after its invocation, or never; a read with
    /// this outcome constrains nothing.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Position in the history; unique.
    pub index: u64,
    pub client: ClientId,
    pub key: Blob,
    pub kind: OpKind,
    /// When the client first sent the request.
    pub invoked_at: Micros,
    /// When the client received the final answer; `None` while pending or when `Unknown`.
    pub completed_at: Option<Micros>,
    pub outcome: Outcome,
}

/// A recorded client history, in invocation order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub operations: Vec<Operation>,
}

impl History {
    /// Appends an invocation and returns its index, to be completed later.
    pub fn invoke(&mut self, client: ClientId, key: Blob, kind: OpKind, now: Micros) -> u64 {
        let index = self.operations.len() as u64;
        self.operations.push(Operation {
            index,
            client,
            key,
            kind,
            invoked_at: now,
            completed_at: None,
            outcome: Outcome::Unknown,
        });
        index
    }

    /// Records the final answer of operation `index`.
    pub fn complete(&mut self, index: u64, outcome: Outcome, now: Micros) {
        let op = &mut self.operations[index as usize];
        debug_assert!(op.completed_at.is_none(), "an operation completes once");
        if outcome != Outcome::Unknown {
            op.completed_at = Some(now);
        }
        op.outcome = outcome;
    }
}
