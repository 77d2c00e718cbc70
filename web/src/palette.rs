//! How message kinds look: a handful of families, each with a colour from the Okabe-Ito
//! palette (safe for the common colour-vision deficiencies), and a shape that tells requests
//! (filled dots) from replies (rings), so colour is never the only cue.
//!
//! Presentation only: it must never be consulted for anything but drawing.

use dynamo_core::message::MessageKind;

/// A family of message kinds that share a colour and a legend entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// A receiving node handing a request to a coordinator, and its answers.
    Routing,
    /// Write phase 1.
    Prepare,
    /// Write phase 2 and its acknowledgements.
    Accept,
    Read,
    ReadRepair,
    Hint,
    Handoff,
    /// A restarted node copying what it missed.
    Recovery,
    /// The `*` query's scan.
    Scan,
    AntiEntropy,
    /// A node that started with nothing stored asking whether its peers remember it.
    Admission,
    /// Nodes telling each other their layout epoch, and sending the newer layout.
    Gossip,
    /// The layout Paxos deciding the next epoch of a membership change.
    LayoutChange,
}

impl Family {
    pub const ALL: [Family; 13] = [
        Family::Routing,
        Family::Prepare,
        Family::Accept,
        Family::Read,
        Family::ReadRepair,
        Family::Hint,
        Family::Handoff,
        Family::Recovery,
        Family::Scan,
        Family::AntiEntropy,
        Family::Admission,
        Family::Gossip,
        Family::LayoutChange,
    ];

    pub fn of(kind: MessageKind) -> Family {
        match kind {
            MessageKind::Forward | MessageKind::ForwardAck | MessageKind::ForwardReply => Family::Routing,
            MessageKind::Prepare | MessageKind::Promise => Family::Prepare,
            MessageKind::Accept | MessageKind::Accepted => Family::Accept,
            MessageKind::Read | MessageKind::ReadReply => Family::Read,
            MessageKind::ReadRepair => Family::ReadRepair,
            MessageKind::Hint => Family::Hint,
            MessageKind::Handoff => Family::Handoff,
            MessageKind::SyncRequest | MessageKind::SyncReply => Family::Recovery,
            MessageKind::ScanRequest | MessageKind::ScanReply => Family::Scan,
            MessageKind::Digest | MessageKind::DigestEntries | MessageKind::Records | MessageKind::Fetch => {
                Family::AntiEntropy
            }
            MessageKind::Probe | MessageKind::ProbeReply => Family::Admission,
            MessageKind::Gossip | MessageKind::Layout => Family::Gossip,
            MessageKind::LayoutPrepare
            | MessageKind::LayoutPromise
            | MessageKind::LayoutAccept
            | MessageKind::LayoutAccepted
            | MessageKind::TransitionQuery
            | MessageKind::TransitionReport => Family::LayoutChange,
        }
    }

    /// Okabe-Ito colours, tuned for the page's dark background.
    pub fn colour(self) -> &'static str {
        match self {
            Family::Routing => "#b8bec9",
            Family::Prepare => "#E69F00",
            Family::Accept => "#56B4E9",
            Family::Read => "#009E73",
            Family::ReadRepair => "#CC79A7",
            Family::Hint => "#D55E00",
            Family::Handoff => "#F0E442",
            Family::Recovery => "#0072B2",
            Family::Scan => "#ffffff",
            Family::AntiEntropy => "#6f7787",
            Family::Admission => "#a48be0",
            Family::Gossip => "#7fd1c7",
            Family::LayoutChange => "#ff9db8",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Family::Routing => "forward",
            Family::Prepare => "prepare / promise",
            Family::Accept => "accept / ack",
            Family::Read => "read",
            Family::ReadRepair => "read repair",
            Family::Hint => "hint",
            Family::Handoff => "handoff",
            Family::Recovery => "recovery sync",
            Family::Scan => "* scan",
            Family::AntiEntropy => "anti-entropy",
            Family::Admission => "admission probe",
            Family::Gossip => "layout gossip",
            Family::LayoutChange => "layout change",
        }
    }
}

/// Every message kind, in declaration order (bit `kind as u32` of `scene::kind_mask`).
pub const KINDS: [MessageKind; 30] = [
    MessageKind::Forward,
    MessageKind::ForwardAck,
    MessageKind::ForwardReply,
    MessageKind::Prepare,
    MessageKind::Promise,
    MessageKind::Read,
    MessageKind::ReadReply,
    MessageKind::Accept,
    MessageKind::ReadRepair,
    MessageKind::Handoff,
    MessageKind::Accepted,
    MessageKind::Hint,
    MessageKind::SyncRequest,
    MessageKind::SyncReply,
    MessageKind::ScanRequest,
    MessageKind::ScanReply,
    MessageKind::Digest,
    MessageKind::DigestEntries,
    MessageKind::Records,
    MessageKind::Fetch,
    MessageKind::Probe,
    MessageKind::ProbeReply,
    MessageKind::Gossip,
    MessageKind::Layout,
    MessageKind::LayoutPrepare,
    MessageKind::LayoutPromise,
    MessageKind::LayoutAccept,
    MessageKind::LayoutAccepted,
    MessageKind::TransitionQuery,
    MessageKind::TransitionReport,
];

/// True for kinds that answer another message; they are drawn as rings instead of dots.
pub fn is_reply(kind: MessageKind) -> bool {
    matches!(
        kind,
        MessageKind::ForwardAck
            | MessageKind::ForwardReply
            | MessageKind::Promise
            | MessageKind::ReadReply
            | MessageKind::Accepted
            | MessageKind::SyncReply
            | MessageKind::ScanReply
            | MessageKind::DigestEntries
            | MessageKind::ProbeReply
            | MessageKind::LayoutPromise
            | MessageKind::LayoutAccepted
            | MessageKind::TransitionReport
    )
}

/// A short human name for one kind (tooltips and the event log).
pub fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Forward => "forward",
        MessageKind::ForwardAck => "forward ack",
        MessageKind::ForwardReply => "forward reply",
        MessageKind::Prepare => "prepare",
        MessageKind::Promise => "promise",
        MessageKind::Read => "read",
        MessageKind::ReadReply => "read reply",
        MessageKind::Accept => "accept",
        MessageKind::ReadRepair => "read repair",
        MessageKind::Handoff => "handoff",
        MessageKind::Accepted => "accepted",
        MessageKind::Hint => "hint",
        MessageKind::SyncRequest => "sync request",
        MessageKind::SyncReply => "sync reply",
        MessageKind::ScanRequest => "scan request",
        MessageKind::ScanReply => "scan reply",
        MessageKind::Digest => "digest",
        MessageKind::DigestEntries => "digest entries",
        MessageKind::Records => "records",
        MessageKind::Fetch => "fetch",
        MessageKind::Probe => "probe",
        MessageKind::ProbeReply => "probe reply",
        MessageKind::Gossip => "gossip",
        MessageKind::Layout => "layout",
        MessageKind::LayoutPrepare => "layout prepare",
        MessageKind::LayoutPromise => "layout promise",
        MessageKind::LayoutAccept => "layout accept",
        MessageKind::LayoutAccepted => "layout accepted",
        MessageKind::TransitionQuery => "transition query",
        MessageKind::TransitionReport => "transition report",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_a_distinct_colour() {
        let mut colours: Vec<&str> = Family::ALL.iter().map(|family| family.colour()).collect();
        colours.sort();
        colours.dedup();
        assert_eq!(colours.len(), Family::ALL.len());
    }

    #[test]
    fn requests_and_replies_share_their_family() {
        assert_eq!(Family::of(MessageKind::Prepare), Family::of(MessageKind::Promise));
        assert_eq!(Family::of(MessageKind::Accept), Family::of(MessageKind::Accepted));
        assert!(is_reply(MessageKind::Promise) && !is_reply(MessageKind::Prepare));
        assert_eq!(Family::of(MessageKind::Handoff), Family::Handoff);
        assert_eq!(kind_name(MessageKind::ReadRepair), "read repair");
    }

    #[test]
    fn kinds_are_listed_once_each_at_their_own_bit() {
        for (index, kind) in KINDS.iter().enumerate() {
            assert_eq!(*kind as usize, index, "{kind:?}");
        }
    }
}
