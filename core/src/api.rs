//! The JSON APIs, one set of types for both ends: the client WebSocket API (`ws://node/client`),
//! the inspection snapshot it answers, and the supervisor's control API (`/api/cluster`,
//! `/api/control`). The node (`native/`) writes these and the page (`web/`) reads them, from the
//! same definitions, so the two cannot drift apart (they did: the page read a hint's `value`
//! where the node sent its `ballot`). docs/protocol.md documents every frame; the round-trip
//! tests below pin the JSON.
//!
//! Nothing here does IO; `serde_json::Value` appears only where the protocol echoes whatever
//! the client sent (a request's `id`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::membership::{AdminReply, AdminRequest};
use crate::message::{ClientError, ClientOp, ClientReply, Invalid, Unavailable};
use crate::node::Node;
use crate::ring::Ring;
use crate::store::{DurableState, Record, Slot};
use crate::trace::TraceEvent;
use crate::types::{Blob, NodeId, OpId};
use crate::version::Ballot;

// ----- The client WebSocket API. -----

/// One request frame: `{"id": 1, "op": "put", "key": "k", "value": "v"}`. The `id` (any JSON,
/// `null` when absent) is echoed in the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub id: Value,
    #[serde(flatten)]
    pub op: Op,
}

/// What a request asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
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
    /// The seed's `@` query.
    Local,
    /// The seed's `*` query.
    Global,
    LocalDelete,
    GlobalDelete,
    /// The key's preference list.
    Owners {
        key: Blob,
    },
    /// Authenticate the connection with the cluster's client password (`requirepass`); until
    /// then, with a password set, every other request is refused (`NOAUTH ...`). `user` may
    /// only be `default`, as in Redis.
    Auth {
        #[serde(default)]
        user: Option<String>,
        password: String,
    },
    /// Stream the node's trace events.
    Subscribe,
    /// A snapshot of the node's store for inspectors.
    Inspect,
    /// Control (needs the cluster secret): stop sending to `peer`, or start again.
    Cut {
        peer: String,
        secret: String,
    },
    Heal {
        peer: String,
        secret: String,
    },
    HealAll {
        secret: String,
    },
    /// Control (needs the cluster secret): a membership request (`dynamo admin`).
    Admin {
        request: AdminRequest,
        secret: String,
    },
}

impl Op {
    /// The client operation this request asks the node for, or the request itself when the
    /// connection answers it without the node's quorum machinery.
    pub fn into_client_op(self) -> Result<ClientOp, Op> {
        Ok(match self {
            Op::Get { key } => ClientOp::Get { key },
            Op::Put { key, value } => ClientOp::Put { key, value },
            Op::Delete { key } => ClientOp::Delete { key },
            Op::Local => ClientOp::LocalQuery,
            Op::Global => ClientOp::GlobalQuery,
            Op::LocalDelete => ClientOp::LocalDelete,
            Op::GlobalDelete => ClientOp::GlobalDelete,
            other => return Err(other),
        })
    }
}

impl From<ClientOp> for Op {
    fn from(op: ClientOp) -> Op {
        match op {
            ClientOp::Get { key } => Op::Get { key },
            ClientOp::Put { key, value } => Op::Put { key, value },
            ClientOp::Delete { key } => Op::Delete { key },
            ClientOp::LocalQuery => Op::Local,
            ClientOp::GlobalQuery => Op::Global,
            ClientOp::LocalDelete => Op::LocalDelete,
            ClientOp::GlobalDelete => Op::GlobalDelete,
        }
    }
}

/// `ClientReply` as the JSON API writes it: an error carries the text clients are shown
/// (`reason`, what `Display` renders) beside its typed cause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Value(Option<Blob>),
    Written,
    Pairs(Vec<(Blob, Blob)>),
    Deleted(u64),
    Error(ErrorReply),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorReply {
    Unavailable { reason: String, cause: Unavailable },
    Invalid { reason: String, cause: Invalid },
}

impl From<ClientReply> for Reply {
    fn from(reply: ClientReply) -> Reply {
        match reply {
            ClientReply::Value(value) => Reply::Value(value),
            ClientReply::Written => Reply::Written,
            ClientReply::Pairs(pairs) => Reply::Pairs(pairs),
            ClientReply::Deleted(count) => Reply::Deleted(count),
            ClientReply::Error(ClientError::Unavailable(cause)) => {
                Reply::Error(ErrorReply::Unavailable { reason: cause.to_string(), cause })
            }
            ClientReply::Error(ClientError::Invalid(cause)) => {
                Reply::Error(ErrorReply::Invalid { reason: cause.to_string(), cause })
            }
        }
    }
}

impl From<Reply> for ClientReply {
    /// The cause is the error; the reason is its rendering, so nothing is lost.
    fn from(reply: Reply) -> ClientReply {
        match reply {
            Reply::Value(value) => ClientReply::Value(value),
            Reply::Written => ClientReply::Written,
            Reply::Pairs(pairs) => ClientReply::Pairs(pairs),
            Reply::Deleted(count) => ClientReply::Deleted(count),
            Reply::Error(ErrorReply::Unavailable { cause, .. }) => ClientReply::Error(ClientError::Unavailable(cause)),
            Reply::Error(ErrorReply::Invalid { cause, .. }) => ClientReply::Error(ClientError::Invalid(cause)),
        }
    }
}

/// Every frame a node sends on a client connection. Each shape has a field no other has, so
/// the frame's fields say which it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    /// The node's answer to a client operation, with the operation's `OpId` (client session and
    /// sequence number: what its trace events name).
    Reply {
        id: Value,
        reply: Reply,
        op: OpId,
    },
    /// Sent to a subscribed connection when one of its operations starts, before its trace
    /// events: how a page follows its own requests through the trace.
    Started {
        id: Value,
        started: OpId,
    },
    /// A request that could not be read or served (`bad request: ...`, a wrong secret).
    Error {
        id: Value,
        error: String,
    },
    Owners {
        id: Value,
        owners: Vec<String>,
    },
    Subscribed {
        id: Value,
        subscribed: bool,
    },
    Inspect {
        id: Value,
        inspect: Box<Inspection>,
    },
    Ok {
        id: Value,
        ok: bool,
    },
    /// The node's answer to `Op::Admin`.
    Admin {
        id: Value,
        admin: AdminReply,
    },
    Trace {
        trace: Box<TraceEvent>,
    },
    /// Trace events a slow subscriber lost.
    Dropped {
        dropped: u64,
    },
}

impl Answer {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an answer always encodes")
    }
}

// ----- The inspection snapshot. -----

/// What a node stores, for inspectors: the answer to `{"op": "inspect"}`, and what the page's
/// inspectors show in every mode (a simulated node, its disk while it is down, a real node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    pub node: String,
    pub recovering: bool,
    /// Every key the node holds a slot for, in key order.
    pub slots: Vec<InspectedSlot>,
    pub hints: Vec<InspectedHint>,
    /// The peers this node suspects of having failed, by name.
    #[serde(default)]
    pub suspects: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectedSlot {
    pub key: Blob,
    /// `None` for a tombstone, or when no record was accepted (only a promise).
    pub value: Option<Blob>,
    /// A record is accepted and it is a delete's.
    pub tombstone: bool,
    /// The accepted record's ballot; `None` when only a promise is held.
    pub ballot: Option<Ballot>,
    pub promised: Ballot,
    /// The accepted record's vector clock: `[node, counter]` pairs.
    pub clock: Vec<(NodeId, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectedHint {
    /// The home the hint waits for, by name.
    pub home: String,
    pub key: Blob,
    /// `None` for a hinted tombstone.
    pub value: Option<Blob>,
    pub ballot: Ballot,
}

impl InspectedSlot {
    fn of(key: &Blob, slot: &Slot) -> InspectedSlot {
        let record = slot.record.as_ref();
        InspectedSlot {
            key: key.clone(),
            value: record.and_then(|record| record.value.clone()),
            tombstone: record.is_some_and(|record| record.value.is_none()),
            ballot: record.map(|record| record.ballot),
            promised: slot.promised,
            clock: record.map(|record| record.clock.entries().to_vec()).unwrap_or_default(),
        }
    }
}

impl InspectedHint {
    fn of(ring: &Ring, home: NodeId, key: &Blob, record: &Record) -> InspectedHint {
        InspectedHint {
            home: ring.name(home).to_string(),
            key: key.clone(),
            value: record.value.clone(),
            ballot: record.ballot,
        }
    }
}

impl Inspection {
    /// A running node's state.
    pub fn of_node(node: &Node) -> Inspection {
        let ring = node.ring();
        let peers = (0..ring.node_count() as u32).map(NodeId).filter(|peer| *peer != node.id());
        Inspection {
            node: ring.name(node.id()).to_string(),
            recovering: node.is_recovering(),
            slots: node.slots().map(|(key, slot)| InspectedSlot::of(key, slot)).collect(),
            hints: node.hints().map(|((home, key), record)| InspectedHint::of(ring, *home, key, record)).collect(),
            suspects: peers.filter(|peer| node.suspects(*peer)).map(|peer| ring.name(peer).to_string()).collect(),
        }
    }

    /// What a stopped node has on disk.
    pub fn of_disk(ring: &Ring, node: NodeId, durable: &DurableState) -> Inspection {
        Inspection {
            node: ring.name(node).to_string(),
            recovering: false,
            slots: durable.slots.iter().map(|(key, slot)| InspectedSlot::of(key, slot)).collect(),
            hints: durable
                .hints
                .iter()
                .map(|((home, key), record)| InspectedHint::of(ring, *home, key, record))
                .collect(),
            suspects: Vec::new(),
        }
    }
}

// ----- The supervisor's control API. -----

/// One node as `GET /api/cluster` describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    /// `host:port` of its WebSocket listener.
    pub ws: String,
    #[serde(default)]
    pub resp: String,
    /// Whether the supervisor's process for it runs.
    #[serde(default = "running")]
    pub up: bool,
}

fn running() -> bool {
    true
}

impl NodeInfo {
    /// The address of its client WebSocket API (`wss` when the cluster speaks TLS).
    pub fn client_url(&self, tls: bool) -> String {
        format!("{}://{}/client", if tls { "wss" } else { "ws" }, self.ws)
    }
}

/// The answer of `GET /api/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub nodes: Vec<NodeInfo>,
    pub config: Config,
    /// Whether the nodes' WebSocket ports speak TLS (`wss://`).
    #[serde(default)]
    pub tls: bool,
}

impl ClusterInfo {
    /// Decodes and checks an `/api/cluster` answer (see `check`).
    pub fn parse(text: &str) -> Result<ClusterInfo, String> {
        let info: ClusterInfo =
            serde_json::from_str(text).map_err(|error| format!("bad /api/cluster answer: {error}"))?;
        info.check()?;
        Ok(info)
    }

    /// The configuration must be valid and name the same nodes in the same order: trace events
    /// name nodes by that index.
    pub fn check(&self) -> Result<(), String> {
        self.config.validate().map_err(|error| format!("the cluster's configuration is invalid: {error}"))?;
        let names: Vec<&str> = self.nodes.iter().map(|node| node.name.as_str()).collect();
        if names != self.config.nodes.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(format!("/api/cluster lists nodes {names:?} but its configuration {:?}", self.config.nodes));
        }
        Ok(())
    }
}

/// A request to `POST /api/control`: what the supervisor does to real processes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// SIGKILL the node's process.
    Kill {
        node: String,
    },
    Restart {
        node: String,
    },
    /// `from` stops sending to `to` (one way).
    Cut {
        from: String,
        to: String,
    },
    Heal {
        from: String,
        to: String,
    },
    HealAll,
}

impl Control {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a control request always encodes")
    }
}

/// The answer of `POST /api/control`: `{"ok": true}` or `{"error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ControlAnswer {
    Ok { ok: bool },
    Error { error: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Encodes `value`, checks the JSON is `expected`, and decodes it back to `value`.
    fn round_trip<T>(value: T, expected: Value)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let text = serde_json::to_string(&value).expect("encodes");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected, "{value:?}");
        assert_eq!(serde_json::from_str::<T>(&text).expect("decodes"), value);
    }

    #[test]
    fn requests_are_the_documented_frames() {
        let request = |id: Value, op: Op| Request { id, op };
        round_trip(
            request(json!(1), Op::Put { key: "k".into(), value: "v".into() }),
            json!({ "id": 1, "op": "put", "key": "k", "value": "v" }),
        );
        round_trip(request(json!("a"), Op::LocalDelete), json!({ "id": "a", "op": "local_delete" }));
        round_trip(
            request(Value::Null, Op::HealAll { secret: "s".into() }),
            json!({ "id": null, "op": "heal_all", "secret": "s" }),
        );
        let bare: Request = serde_json::from_str(r#"{"op": "global"}"#).unwrap();
        assert_eq!(bare, request(Value::Null, Op::Global), "the id is optional");
        assert!(serde_json::from_str::<Request>(r#"{"op": "get", "key": "k", "extra": 1}"#).is_err());
        for op in [ClientOp::Get { key: "k".into() }, ClientOp::GlobalDelete, ClientOp::LocalQuery] {
            assert_eq!(Op::from(op.clone()).into_client_op(), Ok(op));
        }
        assert!(Op::Inspect.into_client_op().is_err());
    }

    #[test]
    fn replies_keep_the_documented_text_and_carry_the_typed_cause() {
        let id = OpId { client: crate::types::ClientId(9), seq: 2 };
        let unavailable = ClientReply::Error(ClientError::Unavailable(Unavailable::NoWriteQuorum));
        round_trip(
            Answer::Reply { id: json!(4), reply: unavailable.clone().into(), op: id },
            json!({ "id": 4, "op": { "client": 9, "seq": 2 }, "reply": { "Error": { "Unavailable": {
                "reason": "no write quorum answered in time", "cause": "NoWriteQuorum" } } } }),
        );
        let back: ClientReply = Reply::from(unavailable.clone()).into();
        assert_eq!(back, unavailable);
        let invalid = ClientReply::Error(ClientError::Invalid(Invalid::ValueTooLarge { bytes: 9, max: 4 }));
        round_trip(
            Reply::from(invalid),
            json!({ "Error": { "Invalid": { "reason": "value is 9 bytes; the limit is 4",
                "cause": { "ValueTooLarge": { "bytes": 9, "max": 4 } } } } }),
        );
        round_trip(Reply::from(ClientReply::Value(None)), json!({ "Value": null }));
        round_trip(Reply::from(ClientReply::Written), json!("Written"));
    }

    #[test]
    fn every_answer_shape_decodes_as_itself() {
        let op = OpId { client: crate::types::ClientId(1), seq: 1 };
        let event = TraceEvent { at: 5, node: NodeId(1), kind: crate::trace::TraceKind::Crashed };
        let answers = [
            (
                Answer::Reply { id: json!(1), reply: Reply::Deleted(1), op },
                json!({ "id": 1, "reply": { "Deleted": 1 }, "op": { "client": 1, "seq": 1 } }),
            ),
            (Answer::Started { id: json!(1), started: op }, json!({ "id": 1, "started": { "client": 1, "seq": 1 } })),
            (
                Answer::Error { id: json!(2), error: "bad request: x".into() },
                json!({ "id": 2, "error": "bad request: x" }),
            ),
            (Answer::Owners { id: json!(3), owners: vec!["5554".into()] }, json!({ "id": 3, "owners": ["5554"] })),
            (Answer::Subscribed { id: Value::Null, subscribed: true }, json!({ "id": null, "subscribed": true })),
            (Answer::Ok { id: json!(5), ok: true }, json!({ "id": 5, "ok": true })),
            (Answer::Trace { trace: Box::new(event) }, json!({ "trace": { "at": 5, "node": 1, "kind": "Crashed" } })),
            (Answer::Dropped { dropped: 7 }, json!({ "dropped": 7 })),
        ];
        for (answer, expected) in answers {
            round_trip(answer, expected);
        }
    }

    /// The hint's value is in the snapshot (the page once read a `value` the node never sent).
    #[test]
    fn an_inspection_carries_slots_hints_and_suspects() {
        let ballot = Ballot { round: 3, node: NodeId(1) };
        let inspection = Inspection {
            node: "5556".into(),
            recovering: false,
            slots: vec![InspectedSlot {
                key: "apple".into(),
                value: Some("red".into()),
                tombstone: false,
                ballot: Some(ballot),
                promised: ballot,
                clock: vec![(NodeId(1), 2)],
            }],
            hints: vec![InspectedHint { home: "5558".into(), key: "fig".into(), value: Some("ripe".into()), ballot }],
            suspects: vec!["5560".into()],
        };
        let ballot_json = json!({ "round": 3, "node": 1 });
        round_trip(
            Answer::Inspect { id: json!(8), inspect: Box::new(inspection) },
            json!({ "id": 8, "inspect": {
                "node": "5556", "recovering": false,
                "slots": [{ "key": "apple", "value": "red", "tombstone": false, "ballot": ballot_json,
                            "promised": ballot_json, "clock": [[1, 2]] }],
                "hints": [{ "home": "5558", "key": "fig", "value": "ripe", "ballot": ballot_json }],
                "suspects": ["5560"] } }),
        );
    }

    #[test]
    fn control_requests_and_answers_are_the_documented_json() {
        round_trip(Control::Kill { node: "5554".into() }, json!({ "action": "kill", "node": "5554" }));
        round_trip(
            Control::Cut { from: "5554".into(), to: "5556".into() },
            json!({ "action": "cut", "from": "5554", "to": "5556" }),
        );
        round_trip(Control::HealAll, json!({ "action": "heal_all" }));
        round_trip(ControlAnswer::Ok { ok: true }, json!({ "ok": true }));
        round_trip(
            ControlAnswer::Error { error: "no node named \"x\"".into() },
            json!({ "error": "no node named \"x\"" }),
        );
        let info = ClusterInfo {
            nodes: vec![NodeInfo {
                name: "5554".into(),
                ws: "127.0.0.1:1".into(),
                resp: "127.0.0.1:2".into(),
                up: true,
            }],
            config: Config::default(),
            tls: false,
        };
        assert_eq!(info.nodes[0].client_url(info.tls), "ws://127.0.0.1:1/client");
        assert_eq!(info.nodes[0].client_url(true), "wss://127.0.0.1:1/client");
        let text = serde_json::to_string(&info).unwrap();
        assert_eq!(serde_json::from_str::<ClusterInfo>(&text).unwrap(), info);
        assert!(ClusterInfo::parse(&text).is_err(), "one node against a configuration of five");
        assert!(ClusterInfo::parse("{}").is_err());
    }
}
