//! The page's model of a run, the same in every mode: trace events, taken in as the screen
//! reaches them, become each node's status, the events log, the operations followed through the
//! trace (the focus and its quorum votes), and messages lost; the requests the page made and
//! the checker's verdict on their history sit beside them. A simulation (`simulated`) and a
//! real cluster or a recording of one (`live`) each own a `Timeline` and feed it; the panels
//! read it through `Stage`. Plain Rust, tested natively; it decides nothing about replication.

use std::collections::VecDeque;

use dynamo_core::checker::{check_history, CheckReport};
use dynamo_core::history::History;
use dynamo_core::message::{ClientOp, ClientReply};
use dynamo_core::ring::Ring;
use dynamo_core::trace::{DropReason, TraceEvent, TraceKind};
use dynamo_core::types::{Micros, NodeId, OpId};

use crate::flights::Flights;
use crate::focus::{Operation, Operations};
use crate::text::{describe, op_text, Tone};

/// Lines kept in the events log.
const LOG_LINES_MAX: usize = 400;

/// A node as the screen shows it (from trace events up to the time on screen).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeStatus {
    pub down: bool,
    pub recovering: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub at: Micros,
    pub node: NodeId,
    pub text: String,
    pub tone: Tone,
}

/// The answer a request got, as far as the page knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Waiting,
    Replied {
        at: Micros,
        reply: ClientReply,
    },
    /// The client used up its attempts (or its patience) without an answer.
    GaveUp {
        at: Micros,
    },
}

/// One client request issued from the page (or a scenario, or a replayed link).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The simulation's client that sent it, or (live) the request's index.
    pub client: usize,
    /// The request's `OpId`, once known: what its trace events name.
    pub op_id: Option<OpId>,
    pub node: NodeId,
    pub op: ClientOp,
    pub sent_at: Micros,
    pub answer: Answer,
}

impl Request {
    /// The answer, once the screen has reached it.
    pub fn answer_at(&self, shown: Micros) -> &Answer {
        match &self.answer {
            Answer::Replied { at, .. } | Answer::GaveUp { at } if *at > shown => &Answer::Waiting,
            answer => answer,
        }
    }
}

/// The checker's verdict on the history so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub report: CheckReport,
}

impl Verdict {
    /// One line for people; it starts with "linearizable" or "violation".
    pub fn text(&self) -> String {
        let report = &self.report;
        if let Some(violation) = report.violations.first() {
            return format!("violation on key {}: {}", violation.key, violation.explanation);
        }
        let mut text =
            format!("linearizable: {} operations on {} keys checked", report.operations_checked, report.keys_checked);
        if !report.inconclusive.is_empty() {
            text.push_str(&format!(" ({} keys inconclusive)", report.inconclusive.len()));
        }
        text
    }
}

/// See the module documentation.
pub struct Timeline {
    flights: Flights,
    status: Vec<NodeStatus>,
    lines: VecDeque<LogLine>,
    /// Messages the network lost (not those cut links or down nodes dropped).
    lost: u64,
    requests: Vec<Request>,
    /// Every request followed from its arrival to its answer, as far as the screen shows.
    tracked: Operations,
    /// The request in focus (an index into `requests`); the newest when `None`.
    focus: Option<usize>,
    verdict: Verdict,
    /// (operations, settled) of the history the verdict was computed for.
    verdict_of: (usize, usize),
}

impl Timeline {
    pub fn new(nodes: usize, flights: Flights) -> Timeline {
        Timeline {
            flights,
            status: vec![NodeStatus::default(); nodes],
            lines: VecDeque::new(),
            lost: 0,
            requests: Vec::new(),
            tracked: Operations::default(),
            focus: None,
            verdict: Verdict::default(),
            verdict_of: (0, 0),
        }
    }

    pub fn flights(&self) -> &Flights {
        &self.flights
    }

    pub fn flights_mut(&mut self) -> &mut Flights {
        &mut self.flights
    }

    /// What the trace says of `node` so far.
    pub fn status(&self, node: NodeId) -> NodeStatus {
        self.status[node.index()]
    }

    pub fn status_mut(&mut self, node: NodeId) -> &mut NodeStatus {
        &mut self.status[node.index()]
    }

    pub fn lines(&self) -> &VecDeque<LogLine> {
        &self.lines
    }

    pub fn lost(&self) -> u64 {
        self.lost
    }

    pub fn requests(&self) -> &[Request] {
        &self.requests
    }

    pub fn requests_mut(&mut self) -> &mut [Request] {
        &mut self.requests
    }

    pub fn push_request(&mut self, request: Request) {
        self.requests.push(request);
    }

    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Takes in one trace event as the screen reaches it.
    pub fn take_in(&mut self, ring: &Ring, event: &TraceEvent) {
        self.tracked.observe(event);
        let status = &mut self.status[event.node.index()];
        match &event.kind {
            TraceKind::Crashed => *status = NodeStatus { down: true, recovering: false },
            TraceKind::Restarted | TraceKind::Admitted | TraceKind::AmnesiaDetected { .. } => status.down = false,
            TraceKind::RecoveryStarted { .. } => status.recovering = true,
            TraceKind::RecoveryFinished { .. } => status.recovering = false,
            TraceKind::MessageDropped { reason: DropReason::Loss, .. } => self.lost += 1,
            _ => {}
        }
        if let Some((text, tone)) = describe(ring, &event.kind) {
            self.log(LogLine { at: event.at, node: event.node, text, tone });
        }
    }

    /// A line of the events log that no trace event made (a control request, a process's state).
    pub fn log(&mut self, line: LogLine) {
        self.lines.push_back(line);
        while self.lines.len() > LOG_LINES_MAX {
            self.lines.pop_front();
        }
    }

    /// Checks `history` again if it changed: more operations, or `settled` more of them (or of
    /// the page's requests) know their outcome.
    pub fn refresh_verdict(&mut self, history: &History, settled: usize) {
        let signature = (history.operations.len(), settled);
        if signature != self.verdict_of {
            self.verdict_of = signature;
            self.verdict = Verdict { report: check_history(history) };
        }
    }

    /// Focuses one request (an index into `requests`), or the newest with `None`.
    pub fn set_focus(&mut self, focus: Option<usize>) {
        self.focus = focus.filter(|index| *index < self.requests.len());
    }

    /// The request in focus: the chosen one, else the newest.
    pub fn focus(&self) -> Option<usize> {
        self.focus.or(self.requests.len().checked_sub(1))
    }

    /// The operation in focus, once its `OpId` is known and the screen has shown it arrive.
    pub fn focused(&self) -> Option<&Operation> {
        let request = self.requests.get(self.focus()?)?;
        self.tracked.get(request.op_id?)
    }

    /// The request in focus and its readout ("#1 put apple=red · prepare 2/2 · accept 2/2 · ok").
    pub fn focus_text(&self) -> Option<(usize, String)> {
        let index = self.focus()?;
        let request = self.requests.get(index)?;
        let text = request
            .op_id
            .and_then(|id| self.tracked.text(id))
            .unwrap_or_else(|| format!("{} · sending", op_text(&request.op)));
        Some((index, format!("#{} {text}", index + 1)))
    }
}
