//! Simulation options, and swarm testing: options drawn from a seed.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::types::Rng;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkOptions {
    /// One-way latency is uniform in `latency_min_us..=latency_max_us`; messages overtake
    /// each other whenever their draws differ, which is how reordering happens.
    pub latency_min_us: u64,
    pub latency_max_us: u64,
    pub loss_per_million: u32,
    pub duplicate_per_million: u32,
    /// A heavy tail: this many messages per million are slow, taking up to
    /// `slow_latency_max_us` more than the slowest ordinary message. Real networks stall now
    /// and then (a retransmission, a paused process); a slow message is what overtaking needs
    /// most, since everything sent after it can arrive first.
    pub slow_per_million: u32,
    pub slow_latency_max_us: u64,
}

impl Default for NetworkOptions {
    fn default() -> NetworkOptions {
        NetworkOptions {
            latency_min_us: 500,
            latency_max_us: 5_000,
            loss_per_million: 0,
            duplicate_per_million: 0,
            slow_per_million: 0,
            slow_latency_max_us: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientTimeouts {
    /// How long a client waits for an answer before resending (same request id).
    pub client_timeout_ms: u64,
    /// Sends per request before the client gives up (outcome unknown).
    pub attempts_max: u32,
}

impl Default for ClientTimeouts {
    fn default() -> ClientTimeouts {
        ClientTimeouts { client_timeout_ms: 2_500, attempts_max: 3 }
    }
}

/// Random clients: each issues `operations_per_client` single-key operations in sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Workload {
    pub clients: u32,
    pub operations_per_client: u32,
    /// Keys are `key0`..`key{keys-1}`.
    pub keys: u32,
    pub put_per_million: u32,
    pub delete_per_million: u32,
    /// Pause between a client's operations, uniform in `0..=think_time_max_us`.
    pub think_time_max_us: u64,
    pub timeouts: ClientTimeouts,
}

impl Default for Workload {
    fn default() -> Workload {
        Workload {
            clients: 5,
            operations_per_client: 40,
            keys: 5,
            put_per_million: 450_000,
            delete_per_million: 50_000,
            think_time_max_us: 20_000,
            timeouts: ClientTimeouts::default(),
        }
    }
}

/// Crash and restart nodes: one at a time, as the seed assumes, unless `down_at_once_max` allows
/// more. Safety must hold however many nodes are down; only availability needs a quorum up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashFaults {
    pub up_min_ms: u64,
    pub up_max_ms: u64,
    pub down_min_ms: u64,
    pub down_max_ms: u64,
    /// How many nodes may be down at once (at least 1).
    #[serde(default = "one")]
    pub down_at_once_max: u32,
    /// The crash with this number (1: the first) also erases the node's disk: it comes back
    /// with nothing stored and must refuse to serve for the rest of the run (amnesia).
    #[serde(default)]
    pub wipe_at_crash: Option<u64>,
}

fn one() -> u32 {
    1
}

/// Commit random membership changes (joins, leaves, removals of nodes that are down,
/// replacements) every now and then, while everything else goes on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipFaults {
    pub interval_min_ms: u64,
    pub interval_max_ms: u64,
    /// At most this many changes per run.
    pub changes_max: u32,
}

/// Cut random links (one-way or both ways) for a while.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionFaults {
    pub healed_min_ms: u64,
    pub healed_max_ms: u64,
    pub cut_min_ms: u64,
    pub cut_max_ms: u64,
    pub one_way: bool,
    /// Of the cuts, this many per million isolate one node instead of cutting one link: every
    /// link into it (and, unless one-way, out of it) at once. A node that hears nothing misses
    /// every layout, as a machine cut off from its network does.
    #[serde(default)]
    pub isolate_per_million: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimOptions {
    pub seed: u64,
    pub config: Config,
    pub network: NetworkOptions,
    /// A persist batch becomes durable after a delay uniform in `0..=disk_latency_max_us`.
    pub disk_latency_max_us: u64,
    pub workload: Workload,
    pub crashes: Option<CrashFaults>,
    pub partitions: Option<PartitionFaults>,
    pub membership: Option<MembershipFaults>,
    /// After the workload: how long the healed cluster runs before replicas must agree.
    pub settle_ms: u64,
    /// Safety bound on simulated time for the workload phase.
    pub time_limit_ms: u64,
    /// Record trace events (off for speed).
    pub trace: bool,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            seed: 1,
            config: Config::default(),
            network: NetworkOptions::default(),
            disk_latency_max_us: 1_000,
            workload: Workload::default(),
            crashes: None,
            partitions: None,
            membership: None,
            settle_ms: 20_000,
            time_limit_ms: 600_000,
            trace: false,
        }
    }
}

impl SimOptions {
    /// Swarm testing: every option drawn from the seed, so each seed explores a different mix
    /// of latency, loss, duplication, crashes, partitions, virtual nodes and contention.
    pub fn swarm(seed: u64) -> SimOptions {
        let mut rng = Rng::new(seed ^ 0x5DEE_CE66_D1CE_4E5B);
        let mut options = SimOptions { seed, ..SimOptions::default() };
        options.config.tokens_per_node = [1, 1, 2, 4, 8][rng.below(5) as usize];
        options.network.latency_min_us = rng.between(100, 2_000);
        options.network.latency_max_us = options.network.latency_min_us + rng.between(0, 20_000);
        options.network.loss_per_million = [0, 0, 10_000, 50_000][rng.below(4) as usize];
        options.network.duplicate_per_million = [0, 0, 10_000, 50_000][rng.below(4) as usize];
        // Slow disks widen the window in which an acknowledged-but-not-durable write could be
        // lost by a crash: that is how the swarm checks the persistence barrier.
        options.disk_latency_max_us = [0, 1_000, 10_000, 50_000, 200_000][rng.below(5) as usize];
        options.workload.clients = rng.between(2, 8) as u32;
        options.workload.operations_per_client = rng.between(10, 30) as u32;
        options.workload.keys = rng.between(1, 8) as u32;
        options.workload.put_per_million = rng.between(200_000, 600_000) as u32;
        options.workload.delete_per_million = rng.between(0, 150_000) as u32;
        options.workload.think_time_max_us = rng.between(0, 50_000);
        // Drawn apart, so that adding wipes moved no other choice of a seed.
        let mut wipes = Rng::new(seed ^ 0x71BE_D15C_A11E_0001);
        if rng.below(3) > 0 {
            options.crashes = Some(CrashFaults {
                up_min_ms: 50,
                up_max_ms: rng.between(100, 2_000),
                down_min_ms: 50,
                down_max_ms: rng.between(100, 3_000),
                down_at_once_max: 1,
                wipe_at_crash: (wipes.below(3) == 0).then(|| wipes.between(1, 4)),
            });
        }
        if rng.below(3) == 0 {
            options.partitions = Some(PartitionFaults {
                healed_min_ms: 50,
                healed_max_ms: rng.between(100, 2_000),
                cut_min_ms: 20,
                cut_max_ms: rng.between(50, 1_500),
                one_way: rng.below(2) == 0,
                isolate_per_million: 0,
            });
        }
        // Drawn apart as well: membership changes on a third of the seeds, and on half of those
        // partitions that isolate a node (so that it misses the layouts while ranges move).
        let mut changes = Rng::new(seed ^ 0x3E3B_E125_C4A7_0001);
        if changes.below(3) == 0 {
            options.membership = Some(MembershipFaults {
                interval_min_ms: 100,
                interval_max_ms: changes.between(300, 2_000),
                changes_max: changes.between(1, 4) as u32,
            });
            if changes.below(2) == 0 {
                options.partitions = Some(PartitionFaults {
                    healed_min_ms: 50,
                    healed_max_ms: changes.between(100, 1_000),
                    cut_min_ms: 50,
                    cut_max_ms: changes.between(100, 1_500),
                    one_way: changes.below(2) == 0,
                    isolate_per_million: 500_000,
                });
            }
        }
        options
    }

    /// A harsher swarm for the races that `swarm` reaches too rarely: one or two hot keys, many
    /// clients with little think time (so rounds are combined and overlap), a heavy tail of slow
    /// messages (so replies overtake each other by whole rounds), and on half of the seeds a
    /// storm of crashes, two nodes down at once at times, over disks slower than a round trip
    /// (so crashes land between a write and its durability). Disks stay faster than the request
    /// timeout: slower ones leave no round able to finish, and replicas never converge.
    /// Mutation-checked (see ARCHITECTURE.md): it catches a read joining a round already in
    /// flight and answers sent before durability, which 3,000 `swarm` seeds missed.
    pub fn swarm_hot(seed: u64) -> SimOptions {
        let mut options = SimOptions::swarm(seed);
        let mut rng = Rng::new(seed ^ 0x0B5E_55ED_C0FF_EE11);
        options.workload.keys = rng.between(1, 2) as u32;
        options.workload.clients = rng.between(6, 16) as u32;
        options.workload.think_time_max_us = [0, 0, 1_000, 5_000][rng.below(4) as usize];
        options.network.slow_per_million = [10_000, 50_000][rng.below(2) as usize];
        options.network.slow_latency_max_us = rng.between(10_000, 200_000);
        if rng.below(2) == 0 {
            options.disk_latency_max_us = [20_000, 50_000, 90_000][rng.below(3) as usize];
            let mut wipes = Rng::new(seed ^ 0x71BE_D15C_A11E_0002);
            options.crashes = Some(CrashFaults {
                up_min_ms: 10,
                up_max_ms: rng.between(20, 100),
                down_min_ms: 10,
                down_max_ms: rng.between(20, 100),
                down_at_once_max: 2,
                wipe_at_crash: (wipes.below(3) == 0).then(|| wipes.between(1, 20)),
            });
        }
        // Changes back to back on half of the seeds: each one is committed as soon as the last
        // one has settled.
        let mut changes = Rng::new(seed ^ 0x3E3B_E125_C4A7_0002);
        if changes.below(2) == 0 {
            options.membership = Some(MembershipFaults {
                interval_min_ms: 5,
                interval_max_ms: 50,
                changes_max: changes.between(2, 8) as u32,
            });
        }
        options
    }
}
