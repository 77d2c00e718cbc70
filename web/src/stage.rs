//! What the page shows: a simulated run (`Simulated`), a real cluster (`Live`), or a recording
//! of one (`Live` built from it). One enum, so the page always shows a run that exists; the
//! panels read the shown run's `Timeline` and the few things that differ by mode through it.

use dynamo_core::config::Config;
use dynamo_core::ring::Ring;
use dynamo_core::types::{Micros, NodeId};

use crate::inspector::NodeView;
use crate::live::{Live, LIVE_LATENCY};
use crate::simulated::Simulated;
use crate::timeline::{NodeStatus, Timeline};

/// Which kind of run the page shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The simulator, in the page.
    Simulated,
    /// A real cluster, through its sockets and supervisor.
    Live,
    /// A run exported from Live mode, opened from a file.
    Replay,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Simulated => "simulated",
            Mode::Live => "live",
            Mode::Replay => "replay",
        }
    }
}

/// The run on screen.
pub enum Stage {
    Simulated(Box<Simulated>),
    Live(Box<Live>),
    Replay(Box<Live>),
}

impl Stage {
    pub fn mode(&self) -> Mode {
        match self {
            Stage::Simulated(_) => Mode::Simulated,
            Stage::Live(_) => Mode::Live,
            Stage::Replay(_) => Mode::Replay,
        }
    }

    /// The real cluster or the recording, when that is what is shown.
    fn live(&self) -> Option<&Live> {
        match self {
            Stage::Live(live) | Stage::Replay(live) => Some(live),
            Stage::Simulated(_) => None,
        }
    }

    pub fn timeline(&self) -> &Timeline {
        match self {
            Stage::Simulated(simulated) => simulated.timeline(),
            Stage::Live(live) | Stage::Replay(live) => live.timeline(),
        }
    }

    pub fn ring(&self) -> &Ring {
        match self {
            Stage::Simulated(simulated) => simulated.ring(),
            Stage::Live(live) | Stage::Replay(live) => live.ring(),
        }
    }

    pub fn config(&self) -> &Config {
        match self {
            Stage::Simulated(simulated) => &simulated.simulation().options().config,
            Stage::Live(live) | Stage::Replay(live) => live.config(),
        }
    }

    pub fn name(&self, node: NodeId) -> &str {
        self.ring().name(node)
    }

    /// The time on screen.
    pub fn shown(&self) -> Micros {
        match self {
            Stage::Simulated(simulated) => simulated.shown(),
            Stage::Live(live) | Stage::Replay(live) => live.shown(),
        }
    }

    /// The latency flights are drawn against (the diagram's scale, lost messages' fade).
    pub fn latency_max(&self) -> Micros {
        match self {
            Stage::Simulated(simulated) => simulated.latency_max(),
            Stage::Live(_) | Stage::Replay(_) => LIVE_LATENCY,
        }
    }

    /// A node as the screen shows it: from the trace in a simulation; from the supervisor and
    /// the node's socket for a real cluster.
    pub fn status(&self, node: NodeId) -> NodeStatus {
        match self {
            Stage::Simulated(simulated) => simulated.status(node),
            Stage::Live(live) | Stage::Replay(live) => live.status(node),
        }
    }

    /// Whether the node runs (what fail and heal toggle).
    pub fn is_up(&self, node: NodeId) -> bool {
        match self {
            Stage::Simulated(simulated) => simulated.simulation().is_up(node),
            Stage::Live(live) | Stage::Replay(live) => live.is_up(node),
        }
    }

    pub fn node_view(&self, node: NodeId) -> NodeView {
        match self {
            Stage::Simulated(simulated) => simulated.node_view(node),
            Stage::Live(live) | Stage::Replay(live) => live.node_view(node),
        }
    }

    /// Links cut one way, as (from, to).
    pub fn cuts(&self) -> Vec<(NodeId, NodeId)> {
        match self {
            Stage::Simulated(simulated) => simulated.simulation().cuts().iter().copied().collect(),
            Stage::Live(live) | Stage::Replay(live) => live.cuts().iter().copied().collect(),
        }
    }

    /// Trace events lost on the way (real clusters only).
    pub fn dropped(&self) -> Option<u64> {
        self.live().map(Live::dropped)
    }

    /// Focuses one request of the history (an index into the requests).
    pub fn set_focus(&mut self, index: Option<usize>) {
        match self {
            Stage::Simulated(simulated) => simulated.set_focus(index),
            Stage::Live(live) | Stage::Replay(live) => live.set_focus(index),
        }
    }

    /// Moves the screen to the next event (a single step while paused).
    pub fn step(&mut self) {
        match self {
            Stage::Simulated(simulated) => simulated.step(),
            Stage::Live(live) | Stage::Replay(live) => live.step(),
        }
    }
}
