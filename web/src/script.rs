//! What a run is made of: a `Setup` (seed and options) and the user's actions, each stamped
//! with the simulated time it took effect.
//!
//! The simulator is deterministic, so replaying the same actions at the same simulated times on
//! a simulation built from the same setup reproduces the run exactly; that is what a shared
//! link carries. This module must never hold simulation state: it only describes runs.

use dynamo_core::config::{Config, ConfigError, Consistency};
use dynamo_core::message::ClientOp;
use dynamo_core::sim::{FaultAction, SimOptions};
use dynamo_core::types::{Blob, Micros, NodeId};

/// The options a person can choose before a run starts; everything else is the core default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    pub seed: u64,
    /// N.
    pub replicas: u32,
    /// R.
    pub read_quorum: u32,
    /// W.
    pub write_quorum: u32,
    pub tokens_per_node: u32,
    /// Allows R + W <= N (for the anomaly demonstration).
    pub eventual: bool,
    pub latency_min_us: u64,
    pub latency_max_us: u64,
    pub request_timeout_ms: u64,
}

impl Default for Setup {
    fn default() -> Setup {
        let config = Config::default();
        let network = SimOptions::default().network;
        Setup {
            seed: 1,
            replicas: config.replicas,
            read_quorum: config.read_quorum,
            write_quorum: config.write_quorum,
            tokens_per_node: config.tokens_per_node,
            eventual: false,
            latency_min_us: network.latency_min_us,
            latency_max_us: network.latency_max_us,
            request_timeout_ms: config.request_timeout_ms,
        }
    }
}

impl Setup {
    /// The simulator options, validated by the core's only gate.
    pub fn options(&self) -> Result<SimOptions, ConfigError> {
        let mut options = SimOptions { seed: self.seed, trace: true, ..SimOptions::default() };
        // No random workload: every client operation comes from the person at the page.
        options.workload.clients = 0;
        let config = &mut options.config;
        config.replicas = self.replicas;
        config.read_quorum = self.read_quorum;
        config.write_quorum = self.write_quorum;
        config.tokens_per_node = self.tokens_per_node;
        config.consistency = if self.eventual { Consistency::Eventual } else { Consistency::Linearizable };
        config.request_timeout_ms = self.request_timeout_ms;
        // The operation timeout must leave room for a few request timeouts.
        config.operation_timeout_ms = config.operation_timeout_ms.max(self.request_timeout_ms * 4);
        options.network.latency_min_us = self.latency_min_us.min(self.latency_max_us);
        options.network.latency_max_us = self.latency_max_us;
        config.validate()?;
        Ok(options)
    }
}

/// Something a person (or a guided scenario) does to the running cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A client sends `op` to `node`.
    Request {
        node: NodeId,
        op: ClientOp,
    },
    Fault(FaultAction),
    /// Message loss from now on, in parts per million.
    Loss {
        per_million: u32,
    },
    /// One-way message latency from now on, uniform in `min_us..=max_us` (messages in the air
    /// keep theirs).
    Latency {
        min_us: u64,
        max_us: u64,
    },
}

impl Action {
    pub fn put(node: u32, key: &str, value: &str) -> Action {
        Action::Request { node: NodeId(node), op: ClientOp::Put { key: Blob::from(key), value: Blob::from(value) } }
    }

    pub fn get(node: u32, key: &str) -> Action {
        Action::Request { node: NodeId(node), op: ClientOp::Get { key: Blob::from(key) } }
    }

    pub fn delete(node: u32, key: &str) -> Action {
        Action::Request { node: NodeId(node), op: ClientOp::Delete { key: Blob::from(key) } }
    }
}

/// An action and the simulated time it took (or is to take) effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timed {
    pub at: Micros,
    pub action: Action,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_setup_is_the_core_default_with_tracing_and_no_workload() {
        let options = Setup::default().options().expect("the default is valid");
        assert!(options.trace);
        assert_eq!(options.workload.clients, 0);
        assert_eq!(options.config, Config::default());
    }

    #[test]
    fn weak_quorums_need_eventual_consistency() {
        let weak = Setup { read_quorum: 1, write_quorum: 1, ..Setup::default() };
        assert!(matches!(weak.options(), Err(ConfigError::QuorumsDoNotIntersect { .. })));
        let options = Setup { eventual: true, ..weak }.options().expect("allowed when eventual");
        assert_eq!(options.config.consistency, Consistency::Eventual);
    }
}
