//! Guided scenarios: short scripts of timed actions that show one mechanism each.
//!
//! A scenario is computed from the ring and the chosen key (who coordinates it, who its other
//! homes and fallbacks are), so it hits the right nodes under any configuration. Scenarios only
//! schedule ordinary actions: they must never reach into the simulation, so a scenario run is
//! replayable from its link like any other.

use dynamo_core::message::ClientOp;
use dynamo_core::ring::Ring;
use dynamo_core::sim::FaultAction;
use dynamo_core::types::{ms, Blob, Micros, NodeId};

use crate::script::{Action, Setup};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    FailureDuringWrites,
    CrashAndRecover,
    HintedHandoff,
    ReadRepair,
    WeakQuorumAnomaly,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::FailureDuringWrites,
        Scenario::CrashAndRecover,
        Scenario::HintedHandoff,
        Scenario::ReadRepair,
        Scenario::WeakQuorumAnomaly,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Scenario::FailureDuringWrites => "Failure during writes",
            Scenario::CrashAndRecover => "Crash and recover",
            Scenario::HintedHandoff => "Hinted handoff",
            Scenario::ReadRepair => "Read repair",
            Scenario::WeakQuorumAnomaly => "R=1 W=1 anomaly",
        }
    }

    /// Used as the button's `data-testid`.
    pub fn slug(self) -> &'static str {
        match self {
            Scenario::FailureDuringWrites => "scenario-failure",
            Scenario::CrashAndRecover => "scenario-recover",
            Scenario::HintedHandoff => "scenario-handoff",
            Scenario::ReadRepair => "scenario-repair",
            Scenario::WeakQuorumAnomaly => "scenario-anomaly",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Scenario::FailureDuringWrites => {
                "A home replica crashes in the middle of a write; the quorum still answers, later reads agree, \
                 and the replica recovers what it missed."
            }
            Scenario::CrashAndRecover => {
                "The coordinator crashes mid-operation: the receiving node fails over to the next home, and the \
                 restarted node syncs before it serves reads again."
            }
            Scenario::HintedHandoff => {
                "A home replica is down during a write: a fallback keeps the write as a hint and hands it off \
                 when the home is back."
            }
            Scenario::ReadRepair => {
                "A cut link leaves one home stale; a read that meets the stale copy writes the newest version back \
                 before it answers."
            }
            Scenario::WeakQuorumAnomaly => {
                "With R = 1 and W = 1 (eventual consistency) quorums need not meet: an acknowledged write is \
                 followed by a stale read, and the checker reports the violation."
            }
        }
    }

    /// The setup this scenario needs, if the current one does not do (the run restarts).
    pub fn setup(self, current: &Setup) -> Option<Setup> {
        match self {
            Scenario::WeakQuorumAnomaly if !(current.read_quorum == 1 && current.write_quorum == 1) => {
                Some(Setup { read_quorum: 1, write_quorum: 1, eventual: true, ..current.clone() })
            }
            Scenario::WeakQuorumAnomaly => None,
            _ if current.eventual => {
                Some(Setup { read_quorum: 2, write_quorum: 2, eventual: false, ..current.clone() })
            }
            _ => None,
        }
    }

    /// The actions, with their delays from the moment the scenario starts. Needs a ring of at
    /// least N + 1 nodes (the default five nodes with N = 3 always qualify).
    pub fn script(self, ring: &Ring, key: &str) -> Vec<(Micros, Action)> {
        let preference = ring.preference(key.as_bytes());
        let homes = ring.replicas().min(preference.len());
        let coordinator = preference[0];
        let replica = preference[1.min(homes - 1)];
        let last_home = preference[homes - 1];
        // A node that is not a home receives the client requests, so every request is forwarded.
        let outsider = preference.get(homes).copied().unwrap_or(coordinator);
        let other = preference.get(homes + 1).copied().unwrap_or(outsider);
        let request = |node: NodeId, op: ClientOp| Action::Request { node, op };
        let put =
            |node: NodeId, value: &str| request(node, ClientOp::Put { key: Blob::from(key), value: Blob::from(value) });
        let get = |node: NodeId| request(node, ClientOp::Get { key: Blob::from(key) });
        let fault = Action::Fault;
        match self {
            Scenario::FailureDuringWrites => vec![
                (0, put(outsider, "v1")),
                (ms(4), fault(FaultAction::Crash(replica))),
                (ms(60), put(other, "v2")),
                (ms(250), get(outsider)),
                (ms(450), fault(FaultAction::Restart(replica))),
                (ms(900), get(replica)),
            ],
            Scenario::CrashAndRecover => vec![
                (0, put(outsider, "before")),
                (ms(60), put(outsider, "during")),
                (ms(64), fault(FaultAction::Crash(coordinator))),
                (ms(400), get(other)),
                (ms(600), fault(FaultAction::Restart(coordinator))),
                (ms(610), request(coordinator, ClientOp::LocalQuery)),
                (ms(1_200), get(coordinator)),
            ],
            Scenario::HintedHandoff => vec![
                (0, fault(FaultAction::Crash(last_home))),
                (ms(5), put(outsider, "hinted")),
                (ms(300), fault(FaultAction::Restart(last_home))),
                (ms(1_000), request(last_home, ClientOp::LocalQuery)),
            ],
            Scenario::ReadRepair => vec![
                (0, fault(FaultAction::Cut { from: coordinator, to: last_home })),
                (ms(1), put(coordinator, "fresh")),
                (ms(30), fault(FaultAction::Heal { from: coordinator, to: last_home })),
                (ms(30), fault(FaultAction::Cut { from: coordinator, to: replica })),
                (ms(31), get(coordinator)),
                (ms(150), fault(FaultAction::Heal { from: coordinator, to: replica })),
            ],
            Scenario::WeakQuorumAnomaly => vec![
                (0, put(coordinator, "old")),
                (ms(40), fault(FaultAction::Cut { from: coordinator, to: replica })),
                (ms(40), fault(FaultAction::Cut { from: coordinator, to: last_home })),
                (ms(45), put(coordinator, "new")),
                (ms(80), fault(FaultAction::Crash(coordinator))),
                (ms(85), get(replica)),
                (ms(500), fault(FaultAction::HealAll)),
                (ms(600), fault(FaultAction::Restart(coordinator))),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulated::Simulated;

    fn run(scenario: Scenario, setup: Setup) -> Simulated {
        let setup = scenario.setup(&setup).unwrap_or(setup);
        let mut session = Simulated::new(setup).expect("valid setup");
        // As on the page, the scenario starts once the new cluster is up (its nodes admitted).
        for _ in 0..10 {
            session.advance(16.0, 0.5);
        }
        for (after, action) in scenario.script(session.ring(), "apple") {
            session.schedule(after, action);
        }
        for _ in 0..400 {
            session.advance(16.0, 0.5);
        }
        session
    }

    fn lines(session: &Simulated) -> Vec<String> {
        session.timeline().lines().iter().map(|line| format!("{} {}", session.name(line.node), line.text)).collect()
    }

    #[test]
    fn safe_scenarios_stay_linearizable_and_show_their_mechanism() {
        let expected = [
            (Scenario::FailureDuringWrites, "recovery finished"),
            (Scenario::CrashAndRecover, "fails over"),
            (Scenario::HintedHandoff, "hands apple off"),
            (Scenario::ReadRepair, "read-repairs apple"),
        ];
        for (scenario, mechanism) in expected {
            let session = run(scenario, Setup::default());
            let verdict = session.timeline().verdict().text();
            assert!(verdict.starts_with("linearizable"), "{scenario:?}: {verdict}");
            let lines = lines(&session);
            assert!(
                lines.iter().any(|line| line.contains(mechanism)),
                "{scenario:?} never showed {mechanism:?}: {lines:#?}"
            );
        }
    }

    #[test]
    fn the_weak_quorum_anomaly_is_caught_by_the_checker() {
        let session = run(Scenario::WeakQuorumAnomaly, Setup::default());
        assert!(session.setup().eventual);
        let verdict = session.timeline().verdict().text();
        assert!(verdict.starts_with("violation"), "{verdict}\n{:#?}", lines(&session));
    }
}
