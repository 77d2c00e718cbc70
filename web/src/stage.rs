//! What the page draws, whatever produces it: a simulation (`Session`) or a real cluster or a
//! recording of one (`LiveSession`). The components read a `&dyn Stage` so the ring, the
//! message dots, the history and verdict, the space-time diagram, the events log and the
//! inspectors work unchanged in every mode.

use std::collections::VecDeque;

use dynamo_core::config::Config;
use dynamo_core::ring::Ring;
use dynamo_core::types::{Micros, NodeId};

use crate::flights::Flights;
use crate::focus::Operation;
use crate::live::{LiveSession, LIVE_LATENCY};
use crate::session::{LogLine, NodeStatus, NodeView, Request, Session, Verdict};

pub trait Stage {
    fn ring(&self) -> &Ring;
    fn config(&self) -> &Config;
    /// The time on screen.
    fn shown(&self) -> Micros;
    /// The latency flights are drawn against (the diagram's scale, lost messages' fade).
    fn latency_max(&self) -> Micros;
    fn flights(&self) -> &Flights;
    fn status(&self, node: NodeId) -> NodeStatus;
    /// Whether the node runs (what fail and heal toggle).
    fn is_up(&self, node: NodeId) -> bool;
    fn log(&self) -> &VecDeque<LogLine>;
    fn requests(&self) -> &[Request];
    fn verdict(&self) -> &Verdict;
    fn node_view(&self, node: NodeId) -> NodeView;
    /// Links cut one way, as (from, to).
    fn cuts(&self) -> Vec<(NodeId, NodeId)>;

    fn name(&self, node: NodeId) -> &str {
        self.ring().name(node)
    }

    /// The operation in focus (see `focus`), if this stage follows one.
    fn focused(&self) -> Option<&Operation> {
        None
    }

    /// The request in focus (an index into `requests`) and its readout.
    fn focus_text(&self) -> Option<(usize, String)> {
        None
    }

    /// The request in focus (an index into `requests`).
    fn focus(&self) -> Option<usize> {
        None
    }
}

impl Stage for Session {
    fn ring(&self) -> &Ring {
        Session::ring(self)
    }

    fn focused(&self) -> Option<&Operation> {
        Session::focused(self)
    }

    fn focus_text(&self) -> Option<(usize, String)> {
        Session::focus_text(self)
    }

    fn focus(&self) -> Option<usize> {
        Session::focus(self)
    }

    fn config(&self) -> &Config {
        &self.simulation().options().config
    }

    fn shown(&self) -> Micros {
        Session::shown(self)
    }

    fn latency_max(&self) -> Micros {
        Session::latency_max(self)
    }

    fn flights(&self) -> &Flights {
        Session::flights(self)
    }

    fn status(&self, node: NodeId) -> NodeStatus {
        Session::status(self, node)
    }

    fn is_up(&self, node: NodeId) -> bool {
        self.simulation().is_up(node)
    }

    fn log(&self) -> &VecDeque<LogLine> {
        Session::log(self)
    }

    fn requests(&self) -> &[Request] {
        Session::requests(self)
    }

    fn verdict(&self) -> &Verdict {
        Session::verdict(self)
    }

    fn node_view(&self, node: NodeId) -> NodeView {
        Session::node_view(self, node)
    }

    fn cuts(&self) -> Vec<(NodeId, NodeId)> {
        self.simulation().cuts().iter().copied().collect()
    }
}

impl Stage for LiveSession {
    fn ring(&self) -> &Ring {
        LiveSession::ring(self)
    }

    fn focused(&self) -> Option<&Operation> {
        LiveSession::focused(self)
    }

    fn focus_text(&self) -> Option<(usize, String)> {
        LiveSession::focus_text(self)
    }

    fn focus(&self) -> Option<usize> {
        LiveSession::focus(self)
    }

    fn config(&self) -> &Config {
        LiveSession::config(self)
    }

    fn shown(&self) -> Micros {
        LiveSession::shown(self)
    }

    fn latency_max(&self) -> Micros {
        LIVE_LATENCY
    }

    fn flights(&self) -> &Flights {
        LiveSession::flights(self)
    }

    fn status(&self, node: NodeId) -> NodeStatus {
        LiveSession::status(self, node)
    }

    fn is_up(&self, node: NodeId) -> bool {
        LiveSession::is_up(self, node)
    }

    fn log(&self) -> &VecDeque<LogLine> {
        self.lines()
    }

    fn requests(&self) -> &[Request] {
        LiveSession::requests(self)
    }

    fn verdict(&self) -> &Verdict {
        LiveSession::verdict(self)
    }

    fn node_view(&self, node: NodeId) -> NodeView {
        LiveSession::node_view(self, node)
    }

    fn cuts(&self) -> Vec<(NodeId, NodeId)> {
        LiveSession::cuts(self).iter().copied().collect()
    }
}
