//! Cluster configuration: who the nodes are, N/R/W, and every limit, validated once.
//!
//! Every limit is a named field with its unit last. `Config::validate` is the only place that
//! decides whether a configuration is acceptable; everything downstream may assume it passed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::message::DIGEST_BUCKETS;
use crate::store::WIRE_INT_BYTES_MAX;
use crate::types::{ms, Micros};

/// Whether the cluster must be linearizable (R + W > N enforced) or may run a sloppier
/// configuration on purpose (for demonstrations such as the R=1, W=1 anomaly).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    Linearizable,
    Eventual,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Node names in `NodeId` order; a node's ring id is SHA-1 of its name.
    pub nodes: Vec<String>,
    /// N: home replicas per key.
    pub replicas: u32,
    /// R: replies a read waits for.
    pub read_quorum: u32,
    /// W: acknowledgements a write waits for.
    pub write_quorum: u32,
    /// Virtual nodes: ring tokens per physical node.
    pub tokens_per_node: u32,
    pub consistency: Consistency,
    /// How long one round trip to a replica may take before it is suspected.
    pub request_timeout_ms: u64,
    /// How long a coordinator works on one operation before answering "unavailable".
    pub operation_timeout_ms: u64,
    /// How many coordinators a receiving node tries, in preference order, for one request.
    pub coordinator_attempts_max: u32,
    /// Upper bound of the random pause before a coordinator retries a contended round.
    pub retry_backoff_max_ms: u64,
    /// How often a node tries to hand its hints back to their home replicas.
    pub hint_handoff_interval_ms: u64,
    /// How often a node compares its data with one peer (anti-entropy).
    pub anti_entropy_interval_ms: u64,
    /// How often a node tells one random member its layout epoch (gossip; it tells every
    /// member at once when it learns a new layout).
    pub gossip_interval_ms: u64,
    /// Records per sync or anti-entropy message.
    pub batch_records_max: u32,
    /// Records per page of a `*` scan.
    pub scan_records_max: u32,
    /// Bytes of records (or keys) per sync, scan or anti-entropy message, by
    /// `Message::wire_bytes_max`; a message always carries at least one, however large.
    pub batch_bytes_max: u64,
    /// Hints one node keeps for all others together; beyond it the oldest hint is dropped.
    pub hints_max: u32,
    /// Client sessions remembered per key for at-most-once retries.
    pub writers_per_key_max: u32,
    /// Deletes a bulk (`@` or `*`) delete keeps in flight at once.
    pub bulk_parallel_max: u32,
    /// Writes of one key that one write round carries: those queued behind a round in flight
    /// ride together in the next one, up to this many (the rest wait for the round after).
    pub writes_per_round_max: u32,
    /// Keys for which a coordinator keeps a prepared ballot (a lease: its next write there skips
    /// phase 1); beyond it the lease of the lowest key is dropped.
    pub leases_max: u32,
    /// Repair rewrites a node keeps track of; past it, the finished ones are forgotten.
    pub rewrites_max: u32,
    /// Hints a node offers back to their homes per handoff tick.
    pub handoffs_per_tick_max: u32,
    /// Largest value accepted, in bytes.
    pub value_bytes_max: u64,
    /// Largest key accepted, in bytes.
    pub key_bytes_max: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            nodes: ["5554", "5556", "5558", "5560", "5562"].iter().map(|name| name.to_string()).collect(),
            replicas: 3,
            read_quorum: 2,
            write_quorum: 2,
            tokens_per_node: 1,
            consistency: Consistency::Linearizable,
            request_timeout_ms: 100,
            operation_timeout_ms: 1_000,
            coordinator_attempts_max: 3,
            retry_backoff_max_ms: 20,
            hint_handoff_interval_ms: 250,
            anti_entropy_interval_ms: 1_000,
            gossip_interval_ms: 1_000,
            batch_records_max: 256,
            scan_records_max: 4_096,
            batch_bytes_max: 1 << 20,
            hints_max: 100_000,
            writers_per_key_max: 64,
            bulk_parallel_max: 16,
            writes_per_round_max: 256,
            leases_max: 16_384,
            rewrites_max: 256,
            handoffs_per_tick_max: 256,
            value_bytes_max: 1 << 20,
            key_bytes_max: 64 << 10,
        }
    }
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConfigError {
    NoNodes,
    TooManyNodes { nodes: u64, max: u64 },
    EmptyNodeName { index: u64 },
    DuplicateNodeName { name: String },
    ReplicasOutOfRange { replicas: u32, nodes: u64 },
    QuorumOutOfRange { name: &'static str, quorum: u32, replicas: u32 },
    QuorumsDoNotIntersect { read: u32, write: u32, replicas: u32 },
    ZeroLimit { name: &'static str },
    NodeNameTooLong { name: String, bytes: u64, max: u64 },
    TooManyTokens { tokens: u32, max: u32 },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoNodes => write!(f, "the cluster has no nodes"),
            ConfigError::TooManyNodes { nodes, max } => {
                write!(f, "the cluster has {nodes} nodes; at most {max} are supported")
            }
            ConfigError::EmptyNodeName { index } => write!(f, "node {index} has an empty name"),
            ConfigError::DuplicateNodeName { name } => {
                write!(f, "node name {name:?} appears more than once")
            }
            ConfigError::ReplicasOutOfRange { replicas, nodes } => {
                write!(f, "replicas (N) = {replicas} must be between 1 and the node count {nodes}")
            }
            ConfigError::QuorumOutOfRange { name, quorum, replicas } => {
                write!(f, "{name} = {quorum} must be between 1 and replicas (N) = {replicas}")
            }
            ConfigError::QuorumsDoNotIntersect { read, write, replicas } => write!(
                f,
                "R + W must exceed N for linearizable consistency, but R = {read}, W = {write}, \
                 N = {replicas}; choose eventual consistency to run it anyway"
            ),
            ConfigError::ZeroLimit { name } => write!(f, "{name} must be greater than zero"),
            ConfigError::NodeNameTooLong { name, bytes, max } => {
                write!(f, "node name {name:?} has {bytes} bytes; at most {max} are allowed")
            }
            ConfigError::TooManyTokens { tokens, max } => {
                write!(f, "tokens_per_node = {tokens}; at most {max} are supported")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Node ids are bits of a `u64` mask in a few places.
pub const NODES_MAX: u64 = 64;

/// The longest node name: names travel in every layout (see `Layout::WIRE_BYTES_MAX`).
pub const NODE_NAME_BYTES_MAX: u64 = 64;

/// The most ring tokens one node holds (virtual nodes), for the same reason.
pub const TOKENS_PER_NODE_MAX: u32 = 256;

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let nodes = self.nodes.len() as u64;
        if nodes == 0 {
            return Err(ConfigError::NoNodes);
        }
        if nodes > NODES_MAX {
            return Err(ConfigError::TooManyNodes { nodes, max: NODES_MAX });
        }
        for (index, name) in self.nodes.iter().enumerate() {
            if name.is_empty() {
                return Err(ConfigError::EmptyNodeName { index: index as u64 });
            }
            if self.nodes[..index].contains(name) {
                return Err(ConfigError::DuplicateNodeName { name: name.clone() });
            }
            if name.len() as u64 > NODE_NAME_BYTES_MAX {
                let bytes = name.len() as u64;
                return Err(ConfigError::NodeNameTooLong { name: name.clone(), bytes, max: NODE_NAME_BYTES_MAX });
            }
        }
        if self.tokens_per_node > TOKENS_PER_NODE_MAX {
            return Err(ConfigError::TooManyTokens { tokens: self.tokens_per_node, max: TOKENS_PER_NODE_MAX });
        }
        if self.replicas == 0 || self.replicas as u64 > nodes {
            return Err(ConfigError::ReplicasOutOfRange { replicas: self.replicas, nodes });
        }
        for (name, quorum) in [("read_quorum (R)", self.read_quorum), ("write_quorum (W)", self.write_quorum)] {
            if quorum == 0 || quorum > self.replicas {
                return Err(ConfigError::QuorumOutOfRange { name, quorum, replicas: self.replicas });
            }
        }
        if self.consistency == Consistency::Linearizable && self.read_quorum + self.write_quorum <= self.replicas {
            return Err(ConfigError::QuorumsDoNotIntersect {
                read: self.read_quorum,
                write: self.write_quorum,
                replicas: self.replicas,
            });
        }
        for (name, value) in [
            ("tokens_per_node", self.tokens_per_node as u64),
            ("request_timeout_ms", self.request_timeout_ms),
            ("operation_timeout_ms", self.operation_timeout_ms),
            ("coordinator_attempts_max", self.coordinator_attempts_max as u64),
            ("hint_handoff_interval_ms", self.hint_handoff_interval_ms),
            ("anti_entropy_interval_ms", self.anti_entropy_interval_ms),
            ("gossip_interval_ms", self.gossip_interval_ms),
            ("batch_records_max", self.batch_records_max as u64),
            ("scan_records_max", self.scan_records_max as u64),
            ("batch_bytes_max", self.batch_bytes_max),
            ("hints_max", self.hints_max as u64),
            ("writers_per_key_max", self.writers_per_key_max as u64),
            ("bulk_parallel_max", self.bulk_parallel_max as u64),
            ("writes_per_round_max", self.writes_per_round_max as u64),
            ("leases_max", self.leases_max as u64),
            ("rewrites_max", self.rewrites_max as u64),
            ("handoffs_per_tick_max", self.handoffs_per_tick_max as u64),
            ("value_bytes_max", self.value_bytes_max),
            ("key_bytes_max", self.key_bytes_max),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit { name });
            }
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Micros {
        ms(self.request_timeout_ms)
    }

    pub fn operation_timeout(&self) -> Micros {
        ms(self.operation_timeout_ms)
    }

    pub fn retry_backoff_max(&self) -> Micros {
        ms(self.retry_backoff_max_ms)
    }

    pub fn hint_handoff_interval(&self) -> Micros {
        ms(self.hint_handoff_interval_ms)
    }

    pub fn anti_entropy_interval(&self) -> Micros {
        ms(self.anti_entropy_interval_ms)
    }

    pub fn gossip_interval(&self) -> Micros {
        ms(self.gossip_interval_ms)
    }

    /// An upper bound of one record's encoded size: the largest key and value, a full
    /// writer list and a vector clock entry per node (see `Record::wire_bytes_max`).
    pub fn record_bytes_max(&self) -> u64 {
        let ints = 8 + 2 * self.nodes.len() as u64 + 4 * self.writers_per_key_max as u64;
        ints * WIRE_INT_BYTES_MAX as u64 + self.value_bytes_max
    }

    /// An upper bound of any message a node sends (`Message::wire_bytes_max`): a batch under
    /// `batch_bytes_max` (or a single larger entry), a cursor key and the fixed fields. A
    /// driver must accept peer messages of this size.
    pub fn message_bytes_max(&self) -> u64 {
        let int = WIRE_INT_BYTES_MAX as u64;
        let key = int + self.key_bytes_max;
        let entry = key + self.record_bytes_max();
        let request = key + int + self.value_bytes_max;
        // Fixed fields fit in 128 integers; a digest or its list of buckets in one per bucket.
        let layout = crate::layout::Layout::WIRE_BYTES_MAX as u64;
        self.batch_bytes_max.max(entry).max(request).max(layout) + key + (128 + DIGEST_BUCKETS as u64) * int
    }

    /// How long a receiving node waits for a coordinator it forwarded to: the coordinator's
    /// whole operation plus one round trip to carry the request and the answer.
    pub fn forward_timeout(&self) -> Micros {
        self.operation_timeout() + self.request_timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_seed_cluster_and_valid() {
        let config = Config::default();
        assert_eq!(config.nodes.len(), 5);
        assert_eq!((config.replicas, config.read_quorum, config.write_quorum), (3, 2, 2));
        config.validate().unwrap();
    }

    #[test]
    fn invalid_configurations_are_named() {
        let check = |change: fn(&mut Config), expected: &str| {
            let mut config = Config::default();
            change(&mut config);
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should mention {expected:?}");
        };
        check(|c| c.nodes.clear(), "no nodes");
        check(|c| c.nodes[1] = "5554".into(), "\"5554\" appears more than once");
        check(|c| c.replicas = 6, "replicas (N) = 6");
        check(|c| c.read_quorum = 0, "read_quorum (R) = 0");
        check(|c| (c.read_quorum, c.write_quorum) = (1, 2), "R + W must exceed N");
        check(|c| c.batch_records_max = 0, "batch_records_max");
        check(|c| c.writes_per_round_max = 0, "writes_per_round_max must be greater than zero");
        check(|c| c.leases_max = 0, "leases_max");
        let mut eventual = Config { consistency: Consistency::Eventual, ..Config::default() };
        (eventual.read_quorum, eventual.write_quorum) = (1, 1);
        eventual.validate().unwrap();
    }
}
