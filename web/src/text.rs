//! Words for what the page shows: operations, replies, ballots, and the log line of a trace
//! event. Shared by every mode and every panel; it reads core types and decides nothing.

use dynamo_core::message::{ClientOp, ClientReply};
use dynamo_core::ring::Ring;
use dynamo_core::trace::{DropReason, Phase, TraceKind};
use dynamo_core::types::NodeId;
use dynamo_core::version::Ballot;

/// What a log line is about, for its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Client,
    Fault,
    Recovery,
    Hint,
    Repair,
    Detail,
}

pub fn ballot_text(ring: &Ring, ballot: Ballot) -> String {
    if ballot == Ballot::ZERO {
        "-".to_string()
    } else {
        format!("{}.{}", ballot.round, ring.name(ballot.node))
    }
}

pub fn reply_text(reply: &ClientReply) -> String {
    match reply {
        ClientReply::Value(Some(value)) => format!("value {value}"),
        ClientReply::Value(None) => "not found".to_string(),
        ClientReply::Written => "ok".to_string(),
        ClientReply::Pairs(pairs) if pairs.is_empty() => "no pairs".to_string(),
        ClientReply::Pairs(pairs) => {
            let shown: Vec<String> = pairs.iter().take(12).map(|(key, value)| format!("{key}={value}")).collect();
            let more = if pairs.len() > 12 { format!(" and {} more", pairs.len() - 12) } else { String::new() };
            format!("{} pairs: {}{more}", pairs.len(), shown.join(", "))
        }
        ClientReply::Deleted(count) => format!("deleted {count} keys"),
        ClientReply::Error(error) => error.to_string(),
        // `ClientReply` may grow; show what we do not know rather than fail.
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

pub fn op_text(op: &ClientOp) -> String {
    match op {
        ClientOp::Get { key } => format!("get {key}"),
        ClientOp::Put { key, value } => format!("put {key}={value}"),
        ClientOp::Delete { key } => format!("delete {key}"),
        ClientOp::LocalQuery => "@ query".to_string(),
        ClientOp::GlobalQuery => "* query".to_string(),
        ClientOp::LocalDelete => "@ delete".to_string(),
        ClientOp::GlobalDelete => "* delete".to_string(),
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Prepare => "prepare",
        Phase::Accept => "accept",
        Phase::Read => "read",
        Phase::ReadRepair => "read repair",
        Phase::Scan => "scan",
    }
}

/// A log line for the events worth reading; message traffic is drawn, not written.
pub fn describe(ring: &Ring, kind: &TraceKind) -> Option<(String, Tone)> {
    let name = |node: &NodeId| ring.name(*node).to_string();
    let line = match kind {
        TraceKind::RequestReceived { op, .. } => (format!("receives {}", op_text(op)), Tone::Client),
        TraceKind::RequestAnswered { reply, .. } => {
            (format!("answers the client: {}", reply_text(reply)), Tone::Client)
        }
        TraceKind::Forwarded { to, attempt, .. } if *attempt > 1 => {
            (format!("fails over to coordinator {} (attempt {attempt})", name(to)), Tone::Fault)
        }
        TraceKind::Forwarded { to, .. } => (format!("forwards to coordinator {}", name(to)), Tone::Detail),
        TraceKind::CoordinationStarted { op, homes, .. } => {
            let homes: Vec<String> = homes.iter().map(name).collect();
            (format!("coordinates {} on {}", op_text(op), homes.join(", ")), Tone::Detail)
        }
        TraceKind::QuorumReached { phase, .. } => (format!("{} quorum reached", phase_name(*phase)), Tone::Detail),
        TraceKind::CoordinationFinished { reply, .. } => (format!("finishes: {}", reply_text(reply)), Tone::Detail),
        TraceKind::RetryRecognized { .. } => ("recognizes a retry: nothing new written".to_string(), Tone::Detail),
        TraceKind::ReadRepair { key, to, .. } => (format!("read-repairs {key} on {}", name(to)), Tone::Repair),
        TraceKind::HintStored { home, key } => (format!("keeps a hint of {key} for {}", name(home)), Tone::Hint),
        TraceKind::HintHandedOff { home, key } => (format!("hands {key} off to {}", name(home)), Tone::Hint),
        TraceKind::HintDropped { home, key } => (format!("drops the hint of {key} for {}", name(home)), Tone::Hint),
        TraceKind::RecoveryStarted { peers } => {
            let peers: Vec<String> = peers.iter().map(name).collect();
            (format!("recovery starts, syncing from {}", peers.join(", ")), Tone::Recovery)
        }
        TraceKind::RecoveryProgress { peer, records, peer_done } => {
            let done = if *peer_done { " (done)" } else { "" };
            (format!("recovered {records} records from {}{done}", name(peer)), Tone::Recovery)
        }
        TraceKind::RecoveryFinished { records } => {
            (format!("recovery finished ({records} records): serving reads"), Tone::Recovery)
        }
        TraceKind::AntiEntropy { peer, pushed, fetched } if pushed + fetched > 0 => {
            (format!("anti-entropy with {}: pushed {pushed}, fetched {fetched}", name(peer)), Tone::Repair)
        }
        TraceKind::Suspected { peer } => (format!("suspects {}", name(peer)), Tone::Fault),
        TraceKind::Trusted { peer } => (format!("trusts {} again", name(peer)), Tone::Detail),
        TraceKind::MessageDropped { to, reason: DropReason::Partition, .. } => {
            (format!("message to {} blocked by a cut link", name(to)), Tone::Fault)
        }
        TraceKind::Crashed => ("CRASHED".to_string(), Tone::Fault),
        TraceKind::Restarted => ("restarted from its disk".to_string(), Tone::Recovery),
        TraceKind::Admitted => ("admitted: its peers remember no other disk of it".to_string(), Tone::Recovery),
        TraceKind::AmnesiaDetected { peer } => {
            (format!("lost its data: {} remembers an earlier disk of it; it refuses to serve", name(peer)), Tone::Fault)
        }
        _ => return None,
    };
    Some(line)
}
