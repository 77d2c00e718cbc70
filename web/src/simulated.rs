//! The visualizer's driver: one `Simulation` advanced in bounded slices, with the time on
//! screen kept behind the simulated time.
//!
//! The simulation runs ahead of the screen by the largest network latency (the *lookahead*), so
//! every message drawn has a known arrival and moves at its true speed. Trace events wait in
//! `upcoming` until the screen reaches their time. Each frame simulates at most
//! `EVENTS_PER_FRAME_MAX` events, in slices of `SLICE_US`; when a frame runs out of budget the
//! screen simply advances less, so no speed setting can freeze the page.
//!
//! Actions (client requests, faults, loss) take effect at the simulation's current time, always
//! on a slice boundary, and are logged with that time: replaying the log on a simulation built
//! from the same `Setup` (`Simulated::replay`) reproduces the run exactly. What the screen shows
//! of the run is a `Timeline`, fed as the screen reaches each trace event. This module is plain
//! Rust, tested natively; it must never touch the browser, and it makes no replication decision
//! of its own (all of that is `dynamo-core`'s).

use std::collections::VecDeque;

use dynamo_core::api::Inspection;
use dynamo_core::config::ConfigError;
use dynamo_core::history::Outcome;
use dynamo_core::message::ClientOp;
use dynamo_core::ring::Ring;
use dynamo_core::sim::{FaultAction, Simulation};
use dynamo_core::trace::{TraceEvent, TraceKind};
use dynamo_core::types::{ms, Blob, Micros, NodeId, Rng};

use crate::flights::Flights;
use crate::inspector::NodeView;
use crate::script::{Action, Setup, Timed};
use crate::timeline::{Answer, NodeStatus, Request, Timeline};

/// Most simulator events one frame may process.
pub const EVENTS_PER_FRAME_MAX: u64 = 4_000;
/// Most simulator events one frame may process while replaying to a scrubbed time: more than
/// while playing (nothing is animated on the way), still bounded so a long run never freezes
/// the tab; the page shows "replaying" meanwhile.
pub const REPLAY_EVENTS_PER_FRAME_MAX: u64 = 20_000;
/// Simulated time per `run_until` call, so the event budget is checked often.
const SLICE_US: Micros = 200;
/// Most wall-clock time one frame accounts for (a tab left in the background does not jump).
const FRAME_WALL_MS_MAX: f64 = 100.0;
/// Finished flights kept for the space-time diagram.
const FLIGHT_HISTORY_MAX: usize = 800;
/// How far `step` looks for the next event before giving up.
const STEP_SEARCH_MAX: Micros = ms(5_000);

/// A simulated run on screen: see the module documentation.
pub struct Simulated {
    setup: Setup,
    sim: Simulation,
    lookahead: Micros,
    /// The simulated time on screen.
    shown: Micros,
    /// Fractional microseconds carried between frames.
    carry: f64,
    upcoming: VecDeque<TraceEvent>,
    /// What the screen shows of the run: flights, status, log, requests, focus, verdict.
    timeline: Timeline,
    /// For each request, its operation in the simulation's history (key operations only): the
    /// history knows the exact time the client got its answer.
    operations: Vec<Option<usize>>,
    /// Actions applied so far, in time order.
    log: Vec<Timed>,
    /// Actions still to apply, in time order (a replayed link, a guided scenario).
    queue: VecDeque<Timed>,
    loss_per_million: u32,
    /// The furthest time the screen has shown in this run: the scrubber's end.
    reached: Micros,
    /// The time the scrubber asked for, while the screen is still on its way there.
    seek: Option<Micros>,
    /// Where the run last branched: a person acted after scrubbing back, which dropped every
    /// action after that point.
    branched_at: Option<Micros>,
    /// The current one-way latency range (the setup's, until a latency action).
    latency: (Micros, Micros),
    workload: Option<Workload>,
}

/// The workload generator's settings, as the client panel sets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WorkloadSettings {
    /// Operations per simulated second.
    pub rate_per_second: u32,
    /// Keys drawn from (`w0`, `w1`, ...).
    pub keys: u32,
    /// Share of reads, in percent; the rest are puts.
    pub reads_percent: u32,
}

impl Default for WorkloadSettings {
    fn default() -> WorkloadSettings {
        WorkloadSettings { rate_per_second: 20, keys: 5, reads_percent: 50 }
    }
}

/// A running workload generator: requests at random times (mean gap `1 / rate`), drawn from a
/// generator seeded by the run's seed and the start time, so a run is the same whatever the
/// frame rate. Each request is logged as an ordinary `Action::Request`: the link replays the
/// requests, not the generator.
#[derive(Clone, Debug)]
struct Workload {
    settings: WorkloadSettings,
    rng: Rng,
    next_at: Micros,
    sent: u64,
}

impl Workload {
    fn gap(&mut self) -> Micros {
        let mean = 1_000_000 / u64::from(self.settings.rate_per_second.max(1));
        self.rng.between(mean / 2, mean + mean / 2).max(1)
    }
}

impl Simulated {
    pub fn new(setup: Setup) -> Result<Simulated, ConfigError> {
        Simulated::replay(setup, Vec::new())
    }

    /// A session that will apply `log` at its recorded times.
    pub fn replay(setup: Setup, log: Vec<Timed>) -> Result<Simulated, ConfigError> {
        let options = setup.options()?;
        let lookahead = options.network.latency_max_us.max(1);
        let setup_latency = (options.network.latency_min_us, options.network.latency_max_us);
        let nodes = options.config.nodes.len();
        let sim = Simulation::new(options);
        let mut session = Simulated {
            setup,
            sim,
            lookahead,
            shown: 0,
            carry: 0.0,
            upcoming: VecDeque::new(),
            timeline: Timeline::new(nodes, Flights::new(FLIGHT_HISTORY_MAX)),
            operations: Vec::new(),
            log: Vec::new(),
            queue: log.into(),
            loss_per_million: 0,
            reached: 0,
            seek: None,
            branched_at: None,
            latency: (setup_latency.0, setup_latency.1),
            workload: None,
        };
        session.absorb();
        Ok(session)
    }

    // ----- Reading. -----

    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    pub fn ring(&self) -> &Ring {
        self.sim.ring()
    }

    pub fn simulation(&self) -> &Simulation {
        &self.sim
    }

    /// The simulated time on screen.
    pub fn shown(&self) -> Micros {
        self.shown
    }

    pub fn latency_max(&self) -> Micros {
        self.lookahead
    }

    /// What the screen shows of the run.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Focuses one request (an index into the requests), or the newest with `None`.
    pub fn set_focus(&mut self, focus: Option<usize>) {
        self.timeline.set_focus(focus);
    }

    /// What the trace shows of `node` up to the time on screen.
    pub fn status(&self, node: NodeId) -> NodeStatus {
        self.timeline.status(node)
    }

    pub fn loss_per_million(&self) -> u32 {
        self.loss_per_million
    }

    /// Every action of the run, applied or still scheduled: what a shared link carries.
    pub fn script(&self) -> Vec<Timed> {
        self.log.iter().chain(self.queue.iter()).cloned().collect()
    }

    /// (applied, scheduled) actions: changes whenever `script` does, and costs nothing to read.
    pub fn script_size(&self) -> (usize, usize) {
        (self.log.len(), self.queue.len())
    }

    pub fn name(&self, node: NodeId) -> &str {
        self.sim.ring().name(node)
    }

    /// The furthest time the screen has shown in this run (the scrubber's end).
    pub fn reached(&self) -> Micros {
        self.reached.max(self.shown)
    }

    /// The time the screen is being moved to, while replaying or advancing to a scrubbed time.
    pub fn seeking(&self) -> Option<Micros> {
        self.seek
    }

    /// Where the run last branched (a person acted after scrubbing back).
    pub fn branched_at(&self) -> Option<Micros> {
        self.branched_at
    }

    /// The one-way latency range messages are sent with now, in microseconds.
    pub fn latency(&self) -> (Micros, Micros) {
        self.latency
    }

    /// The workload generator's settings, while it runs.
    pub fn workload(&self) -> Option<WorkloadSettings> {
        self.workload.as_ref().map(|workload| workload.settings)
    }

    // ----- Acting. -----

    /// Applies `action` now (at the simulation's current time). After scrubbing back, the run
    /// branches here first: the actions that followed are dropped (see `branch`).
    pub fn act(&mut self, action: Action) {
        self.branch();
        let at = self.sim.now();
        self.apply(Timed { at, action });
    }

    /// If the screen is behind the furthest time the run reached (the scrubber moved back),
    /// makes the present the end of the run: the scheduled actions after it are dropped, so
    /// the script (and the link) is exactly what led to the screen, plus what comes next.
    fn branch(&mut self) {
        if self.seek.is_none() && self.shown >= self.reached {
            return;
        }
        // Acting while still on the way to a scrubbed time: the run branches where the screen is.
        self.seek = None;
        self.queue.clear();
        self.reached = self.shown;
        self.branched_at = Some(self.shown);
    }

    /// Moves the screen to `target` (clamped to the furthest time reached). Backwards, the run
    /// is rebuilt from its setup and script and replayed; forwards, it advances. Either way
    /// the work is spread over frames by `advance` (`seeking` says when it is done). The
    /// workload generator stops when scrubbing back: its requests are in the script already.
    pub fn scrub(&mut self, target: Micros) {
        let target = target.min(self.reached());
        if target < self.shown {
            let mut rebuilt = Simulated::replay(self.setup.clone(), self.script())
                .expect("this session was built from the same setup");
            rebuilt.reached = self.reached();
            rebuilt.branched_at = self.branched_at;
            *self = rebuilt;
        }
        self.seek = (target > self.shown).then_some(target);
    }

    /// Starts the workload generator (or changes its settings); it sends its first request now.
    pub fn start_workload(&mut self, settings: WorkloadSettings) {
        self.branch();
        let now = self.sim.now();
        let rng = Rng::new(self.setup.seed ^ now.rotate_left(32) ^ 0x5eed_0f10_ad00_0000);
        self.workload = Some(Workload { settings, rng, next_at: now, sent: 0 });
        self.generate();
    }

    pub fn stop_workload(&mut self) {
        self.workload = None;
    }

    /// Sends the workload's requests that are due (at the simulation's current time).
    fn generate(&mut self) {
        let now = self.sim.now();
        let nodes = self.sim.ring().node_count() as u64;
        let mut due = Vec::new();
        if let Some(workload) = &mut self.workload {
            while workload.next_at <= now {
                let WorkloadSettings { keys, reads_percent, .. } = workload.settings;
                let node = NodeId(workload.rng.below(nodes) as u32);
                let key = Blob::from(format!("w{}", workload.rng.below(u64::from(keys.max(1)))));
                let read = workload.rng.below(100) < u64::from(reads_percent);
                workload.sent += 1;
                let op = if read {
                    ClientOp::Get { key }
                } else {
                    ClientOp::Put { key, value: Blob::from(format!("v{}", workload.sent)) }
                };
                due.push(Action::Request { node, op });
                let gap = workload.gap();
                workload.next_at += gap;
            }
        }
        for action in due {
            self.apply(Timed { at: now, action });
        }
    }

    /// Schedules `action` `after` microseconds from now.
    pub fn schedule(&mut self, after: Micros, action: Action) {
        let at = self.sim.now() + after;
        let index = self.queue.partition_point(|timed| timed.at <= at);
        self.queue.insert(index, Timed { at, action });
    }

    fn apply(&mut self, timed: Timed) {
        debug_assert_eq!(timed.at, self.sim.now(), "actions apply on a slice boundary");
        match &timed.action {
            Action::Request { node, op } => {
                let keyed = matches!(op, ClientOp::Get { .. } | ClientOp::Put { .. } | ClientOp::Delete { .. });
                self.operations.push(keyed.then(|| self.sim.history().operations.len()));
                let client = self.sim.spawn(*node, op.clone());
                self.timeline.push_request(Request {
                    client,
                    op_id: self.sim.op_of(client),
                    node: *node,
                    op: op.clone(),
                    sent_at: timed.at,
                    answer: Answer::Waiting,
                });
            }
            Action::Fault(fault) => self.sim.fault(fault.clone()),
            Action::Loss { per_million } => {
                self.loss_per_million = *per_million;
                self.sim.set_loss(*per_million);
            }
            Action::Latency { min_us, max_us } => {
                let (min_us, max_us) = ((*min_us).min(*max_us), (*min_us).max(*max_us));
                self.sim.set_latency(min_us, max_us);
                self.latency = (min_us, max_us);
                // Messages already in the air keep their latency: the screen stays behind by
                // the largest latency of the run, so every drawn message has a known arrival.
                self.lookahead = self.lookahead.max(max_us.max(1));
            }
        }
        self.log.push(timed);
    }

    fn apply_due(&mut self) {
        while self.queue.front().is_some_and(|timed| timed.at <= self.sim.now()) {
            let mut timed = self.queue.pop_front().expect("front was just checked");
            // An action dated in the past (a hand-edited link) takes effect now.
            timed.at = self.sim.now();
            self.apply(timed);
        }
        self.generate();
    }

    // ----- Time. -----

    /// One animation frame: `wall_ms` of real time at `speed` simulated seconds per second.
    /// Returns the number of simulator events processed.
    /// While the scrubber moved the screen, frames go to getting there instead, whatever the
    /// speed (at most `REPLAY_EVENTS_PER_FRAME_MAX` events each).
    pub fn advance(&mut self, wall_ms: f64, speed: f64) -> u64 {
        if let Some(target) = self.seek {
            let events = self.simulate(target + self.lookahead, REPLAY_EVENTS_PER_FRAME_MAX, false);
            let reachable = self.sim.now().saturating_sub(self.lookahead);
            self.show_until(target.min(reachable));
            if self.shown >= target {
                self.seek = None;
            }
            return events;
        }
        let wanted = wall_ms.clamp(0.0, FRAME_WALL_MS_MAX) * 1_000.0 * speed.max(0.0) + self.carry;
        let whole = wanted.floor();
        self.carry = wanted - whole;
        let target = self.shown + whole as Micros;
        let events = self.simulate_until(target + self.lookahead, EVENTS_PER_FRAME_MAX);
        let reachable = self.sim.now().saturating_sub(self.lookahead);
        self.show_until(target.min(reachable));
        events
    }

    /// Moves the screen to the next visible event (a single step).
    pub fn step(&mut self) {
        let mut searched = 0;
        loop {
            let next = self.upcoming.iter().find(|event| event.at > self.shown && visible(&event.kind)).map(|e| e.at);
            if let Some(next) = next {
                self.simulate_until(next + self.lookahead, EVENTS_PER_FRAME_MAX);
                let reachable = self.sim.now().saturating_sub(self.lookahead);
                self.show_until(next.min(reachable));
                return;
            }
            let before = self.sim.now();
            if searched >= STEP_SEARCH_MAX {
                return;
            }
            // Straight to the simulator's next event (a quiet cluster may have none for a while).
            let horizon = self.sim.next_event_at().map_or(before + ms(10), |at| at.clamp(before + 1, before + ms(10)));
            self.simulate_until(horizon, EVENTS_PER_FRAME_MAX);
            searched += (self.sim.now() - before).max(1);
        }
    }

    /// Runs the simulation up to `limit` or until `budget` events were processed; returns the
    /// number processed.
    fn simulate_until(&mut self, limit: Micros, budget: u64) -> u64 {
        self.simulate(limit, budget, true)
    }

    /// `simulate_until`; with `at_limit` false, actions due exactly at `limit` wait for the
    /// next call, so a replay that stops there shows what the run showed before taking them.
    fn simulate(&mut self, limit: Micros, budget: u64, at_limit: bool) -> u64 {
        let start = self.sim.stats().events;
        if at_limit || self.sim.now() < limit {
            self.apply_due();
        }
        while self.sim.now() < limit {
            let mut next = (self.sim.now() + SLICE_US).min(limit);
            if let Some(timed) = self.queue.front() {
                next = next.min(timed.at.max(self.sim.now()));
            }
            if let Some(workload) = &self.workload {
                next = next.min(workload.next_at.max(self.sim.now()));
            }
            self.sim.run_until(next);
            if at_limit || self.sim.now() < limit {
                self.apply_due();
            }
            if self.sim.stats().events - start >= budget {
                break;
            }
        }
        self.absorb();
        self.sim.stats().events - start
    }

    /// Takes the new trace events, polls the clients and refreshes the verdict.
    fn absorb(&mut self) {
        for event in self.sim.take_trace() {
            self.timeline.flights_mut().observe(&event);
            self.upcoming.push_back(event);
        }
        let now = self.sim.now();
        let operations = &self.sim.history().operations;
        for (request, operation) in self.timeline.requests_mut().iter_mut().zip(&self.operations) {
            if request.answer != Answer::Waiting || self.sim.is_pending(request.client) {
                continue;
            }
            // When the client got it: exact for key operations, whatever the frame pacing
            // (so a replay to a scrubbed time shows the same), else the time it was noticed.
            let at = operation.and_then(|index| operations.get(index)?.completed_at).unwrap_or(now);
            // A finished client either got a reply or used up its attempts.
            request.answer = match self.sim.reply_of(request.client) {
                Some(reply) => Answer::Replied { at, reply },
                None => Answer::GaveUp { at: now },
            };
        }
        let history = self.sim.history();
        let settled = history.operations.iter().filter(|op| op.outcome != Outcome::Unknown).count()
            + self.timeline.requests().iter().filter(|r| matches!(r.answer, Answer::GaveUp { .. })).count();
        self.timeline.refresh_verdict(history, settled);
    }

    /// Moves the screen to `time`, taking in every trace event up to it.
    fn show_until(&mut self, time: Micros) {
        self.shown = self.shown.max(time);
        self.reached = self.reached.max(self.shown);
        while self.upcoming.front().is_some_and(|event| event.at <= self.shown) {
            let event = self.upcoming.pop_front().expect("front was just checked");
            self.timeline.take_in(self.sim.ring(), &event);
        }
        self.timeline.flights_mut().retire(self.shown, self.lookahead);
    }
}

/// Whether a single step should stop at this event (persist completions are invisible).
fn visible(kind: &TraceKind) -> bool {
    !matches!(kind, TraceKind::Persisted { .. })
}

impl Simulated {
    /// The inspector of `node`, from the simulation's current state (the live node, or its disk
    /// while it is down).
    pub fn node_view(&self, node: NodeId) -> NodeView {
        let ring = self.sim.ring();
        let (inspection, from_disk) = match self.sim.node(node) {
            Some(live) => (Inspection::of_node(live), false),
            None => (Inspection::of_disk(ring, node, self.sim.durable(node)), true),
        };
        NodeView::of(ring, node, &inspection, self.status(node), from_disk)
    }

    /// Whether the link from `from` to `to` is cut (simulation state, for the link controls).
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.sim.cuts().contains(&(from, to))
    }

    /// Crash or restart, whichever applies to `node` now.
    pub fn toggle(&mut self, node: NodeId) {
        let fault = if self.sim.is_up(node) { FaultAction::Crash(node) } else { FaultAction::Restart(node) };
        self.act(Action::Fault(fault));
    }
}

/// The speed slider's range, `0..=SPEED_SLIDER_MAX`, maps to speeds `1e-4..=1` on a log scale.
pub const SPEED_SLIDER_MAX: f64 = 100.0;

/// Simulated seconds per wall-clock second for a slider position (log scale, 1/10,000 to 1).
pub fn speed_of(slider: f64) -> f64 {
    10f64.powf(-4.0 + 4.0 * slider.clamp(0.0, SPEED_SLIDER_MAX) / SPEED_SLIDER_MAX)
}

/// The slider position of a speed (the inverse of `speed_of`).
pub fn slider_of(speed: f64) -> f64 {
    ((speed.log10() + 4.0) / 4.0 * SPEED_SLIDER_MAX).clamp(0.0, SPEED_SLIDER_MAX)
}

/// A speed as people read it: "1/100×" below real time, "1×" at real time.
pub fn speed_label(speed: f64) -> String {
    if speed >= 0.999 {
        format!("{speed:.0}×")
    } else {
        format!("1/{:.0}×", 1.0 / speed)
    }
}

/// Simulated time in milliseconds with microsecond precision.
pub fn time_label(at: Micros) -> String {
    format!("{}.{:03} ms", at / 1_000, at % 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::reply_text;
    use dynamo_core::trace::DropReason;

    #[test]
    fn the_speed_slider_is_logarithmic() {
        assert!((speed_of(0.0) - 1e-4).abs() < 1e-12);
        assert!((speed_of(50.0) - 1e-2).abs() < 1e-12);
        assert!((speed_of(100.0) - 1.0).abs() < 1e-12);
        assert!((slider_of(speed_of(37.0)) - 37.0).abs() < 1e-9);
        assert_eq!(speed_label(speed_of(50.0)), "1/100×");
        assert_eq!(speed_label(1.0), "1×");
        assert_eq!(time_label(12_345), "12.345 ms");
    }

    /// Plays `session` for `wall_ms` of frames of 16 ms at `speed`.
    fn play(session: &mut Simulated, wall_ms: u64, speed: f64) {
        for _ in 0..wall_ms / 16 {
            session.advance(16.0, speed);
        }
    }

    fn answers(session: &Simulated) -> Vec<String> {
        session
            .timeline()
            .requests()
            .iter()
            .map(|request| match request.answer_at(session.shown()) {
                Answer::Waiting => "waiting".to_string(),
                Answer::Replied { reply, .. } => reply_text(reply),
                Answer::GaveUp { .. } => "gave up".to_string(),
            })
            .collect()
    }

    #[test]
    fn a_put_then_a_get_answer_on_screen() {
        let mut session = Simulated::new(Setup::default()).expect("default setup");
        session.act(Action::put(0, "apple", "red"));
        play(&mut session, 1_000, 0.05);
        assert_eq!(answers(&session), ["ok"]);
        session.act(Action::get(3, "apple"));
        play(&mut session, 1_000, 0.05);
        assert_eq!(answers(&session), ["ok", "value red"]);
        assert!(
            session.timeline().verdict().text().starts_with("linearizable"),
            "{}",
            session.timeline().verdict().text()
        );
        assert!(session.timeline().flights().started > 10);
        // The screen stays behind the simulation by the lookahead, never ahead of it.
        assert!(session.shown() + session.latency_max() <= session.simulation().now());
    }

    #[test]
    fn the_focused_operation_counts_its_votes_and_ends_with_the_answer() {
        let mut session = Simulated::new(Setup::default()).expect("default setup");
        session.act(Action::put(0, "apple", "red"));
        session.act(Action::get(2, "apple"));
        play(&mut session, 1_000, 0.05);
        // The newest request is in focus by default.
        let (index, text) = session.timeline().focus_text().expect("a request");
        assert_eq!(index, 1);
        assert!(text.starts_with("#2 get apple · read 2/2"), "{text}");
        session.set_focus(Some(0));
        let (_, text) = session.timeline().focus_text().expect("a request");
        assert!(text.starts_with("#1 put apple"), "{text}");
        assert!(text.contains("accept 2/2"), "{text}");
        assert!(text.ends_with(" · ok"), "{text}");
        // Its messages are the ones carrying its transactions.
        let focused = session.timeline().focused().expect("seen").clone();
        let ours = session
            .timeline()
            .flights()
            .window(0, session.shown(), session.latency_max())
            .filter(|flight| focused.carries(flight.key.from, flight.to, flight.kind, flight.txn))
            .count();
        assert!(ours >= 4, "{ours}");
    }

    #[test]
    fn lost_messages_are_counted_when_the_screen_reaches_them() {
        let mut session = Simulated::new(Setup { seed: 3, ..Setup::default() }).expect("valid");
        session.act(Action::Loss { per_million: 300_000 });
        for index in 0..10 {
            session.act(Action::put(index % 5, &format!("key{index}"), "v"));
        }
        assert_eq!(session.timeline().lost(), 0);
        play(&mut session, 2_000, 0.05);
        let lost = session.timeline().lost();
        assert!(lost > 0, "30% loss lost nothing");
        // Every loss counted was on screen: its flight is a dropped one sent before the present.
        let shown = session.shown();
        let dropped = session
            .timeline()
            .flights()
            .window(0, shown, session.latency_max())
            .filter(|flight| {
                matches!(flight.arrival, crate::flights::Arrival::Dropped { reason: DropReason::Loss, at } if at <= shown)
            })
            .count() as u64;
        assert_eq!(lost, dropped);
    }

    #[test]
    fn a_frame_never_exceeds_its_event_budget() {
        let mut session = Simulated::new(Setup::default()).expect("default setup");
        for index in 0..50 {
            session.act(Action::put(index % 5, &format!("key{index}"), "v"));
        }
        // An absurd speed: an hour of simulated time per frame.
        let events = session.advance(16.0, 225_000.0);
        assert!(events <= EVENTS_PER_FRAME_MAX + 200, "{events} events in one frame");
        assert!(session.shown() < ms(3_600_000));
    }

    #[test]
    fn the_screen_shows_a_crash_and_the_recovery() {
        let mut session = Simulated::new(Setup::default()).expect("default setup");
        session.act(Action::put(0, "apple", "red"));
        play(&mut session, 500, 0.05);
        session.toggle(NodeId(2));
        play(&mut session, 200, 0.05);
        assert!(session.status(NodeId(2)).down);
        assert!(session.node_view(NodeId(2)).from_disk);
        session.act(Action::put(0, "apple", "green"));
        play(&mut session, 2_000, 0.1);
        assert_eq!(answers(&session), ["ok", "ok"]);
        session.toggle(NodeId(2));
        play(&mut session, 2_000, 0.5);
        assert!(!session.status(NodeId(2)).down);
        let texts: Vec<&str> = session.timeline().lines().iter().map(|line| line.text.as_str()).collect();
        assert!(texts.iter().any(|text| text.starts_with("recovery finished")), "{texts:?}");
        let view = session.node_view(NodeId(2));
        assert!(!view.from_disk && !view.status.recovering);
    }

    #[test]
    fn a_request_to_a_down_node_gives_up() {
        let mut session = Simulated::new(Setup::default()).expect("default setup");
        session.toggle(NodeId(1));
        session.act(Action::get(1, "apple"));
        play(&mut session, 2_000, 5.0);
        assert_eq!(answers(&session), ["gave up"]);
    }

    #[test]
    fn steps_move_the_screen_to_the_next_event() {
        let mut session = Simulated::new(Setup::default()).expect("default setup");
        session.act(Action::put(0, "apple", "red"));
        let mut times = Vec::new();
        for _ in 0..5 {
            session.step();
            times.push(session.shown());
        }
        assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "{times:?}");
    }

    #[test]
    fn replaying_the_log_reproduces_the_run() {
        let mut session = Simulated::new(Setup { seed: 7, ..Setup::default() }).expect("valid");
        session.act(Action::put(0, "apple", "red"));
        play(&mut session, 300, 0.05);
        session.toggle(NodeId(4));
        session.act(Action::Loss { per_million: 100_000 });
        session.act(Action::put(2, "apple", "green"));
        play(&mut session, 700, 0.2);
        session.toggle(NodeId(4));
        session.act(Action::get(1, "apple"));
        play(&mut session, 1_500, 0.3);
        let until = session.simulation().now();

        let (setup, log) =
            crate::link::decode(&crate::link::encode(session.setup(), &session.script())).expect("the link decodes");
        let mut replayed = Simulated::replay(setup, log).expect("valid");
        // Different frame pacing: the result must not depend on it.
        while replayed.simulation().now() + ms(10) < until {
            replayed.advance(33.0, 0.17);
        }
        replayed.simulate_until(until, u64::MAX);
        assert_eq!(replayed.simulation().history(), session.simulation().history());
        assert_eq!(answers(&replayed)[..], answers(&session)[..]);
        assert_eq!(replayed.script(), session.script());
    }

    /// Time on screen, answers, verdict, inspectors, log lines, messages lost.
    type Screen = (Micros, Vec<String>, String, Vec<NodeView>, Vec<String>, u64);

    /// Everything the page shows of a session at the time on screen.
    fn on_screen(session: &Simulated) -> Screen {
        let views = (0..5).map(|node| session.node_view(NodeId(node))).collect();
        let lines = session
            .timeline()
            .lines()
            .iter()
            .map(|line| format!("{} {} {}", line.at, line.node.0, line.text))
            .collect();
        (
            session.shown(),
            answers(session),
            session.timeline().verdict().text(),
            views,
            lines,
            session.timeline().lost(),
        )
    }

    /// Frames until the scrubber's target is on screen; returns how many it took.
    fn settle(session: &mut Simulated) -> usize {
        let mut frames = 0;
        while session.seeking().is_some() {
            let events = session.advance(16.0, 0.0);
            assert!(events <= REPLAY_EVENTS_PER_FRAME_MAX + 200, "{events} events in one frame");
            frames += 1;
            assert!(frames < 10_000, "the scrubber never got there");
        }
        frames
    }

    /// A run with requests, a crash, loss and a latency change, and what it showed on the way.
    fn eventful_run() -> (Simulated, Vec<(Micros, Screen)>) {
        let mut session = Simulated::new(Setup { seed: 11, ..Setup::default() }).expect("valid");
        let mut seen = Vec::new();
        session.act(Action::put(0, "apple", "red"));
        play(&mut session, 400, 0.05);
        seen.push((session.shown(), on_screen(&session)));
        session.toggle(NodeId(2));
        session.act(Action::Loss { per_million: 100_000 });
        session.act(Action::put(3, "apple", "green"));
        play(&mut session, 600, 0.1);
        seen.push((session.shown(), on_screen(&session)));
        session.act(Action::Latency { min_us: 3_000, max_us: 12_000 });
        session.toggle(NodeId(2));
        session.act(Action::get(1, "apple"));
        play(&mut session, 1_000, 0.2);
        seen.push((session.shown(), on_screen(&session)));
        (session, seen)
    }

    #[test]
    fn scrubbing_back_shows_what_the_run_showed_then_and_forward_again() {
        let (mut session, seen) = eventful_run();
        let end = session.shown();
        assert_eq!(session.reached(), end);
        for (at, expected) in seen.iter().rev() {
            session.scrub(*at);
            settle(&mut session);
            assert_eq!(&on_screen(&session), expected, "scrubbed back to {at}");
            assert_eq!(session.reached(), end, "scrubbing back keeps the end of the run");
        }
        // Forward again, past the end: it stops at the furthest time reached.
        session.scrub(end + ms(1_000));
        settle(&mut session);
        assert_eq!(session.shown(), end);
        assert_eq!(on_screen(&session), seen.last().expect("three points").1);
    }

    #[test]
    fn acting_after_scrubbing_back_branches_the_run() {
        let (mut session, seen) = eventful_run();
        let whole = session.script();
        let back = seen[0].0;
        session.scrub(back);
        settle(&mut session);
        // Nothing changed yet: the link still holds the whole run, to scrub forward through.
        assert_eq!(session.script(), whole);
        assert_eq!(session.branched_at(), None);
        session.act(Action::get(4, "apple"));
        let branched = session.script();
        let now = session.simulation().now();
        let kept: Vec<Timed> = whole.iter().filter(|timed| timed.at < now).cloned().collect();
        assert_eq!(branched[..kept.len()], kept[..]);
        assert_eq!(branched.len(), kept.len() + 1, "only the new action follows: {branched:?}");
        assert!(kept.len() < whole.len());
        assert_eq!(session.branched_at(), Some(back));
        assert_eq!(session.reached(), back);
        // The branch's link replays the branch.
        play(&mut session, 800, 0.1);
        let (setup, log) =
            crate::link::decode(&crate::link::encode(session.setup(), &session.script())).expect("decodes");
        let mut replayed = Simulated::replay(setup, log).expect("valid");
        replayed.simulate_until(session.simulation().now(), u64::MAX);
        assert_eq!(replayed.simulation().history(), session.simulation().history());
    }

    #[test]
    fn the_workload_generator_logs_requests_that_replay() {
        let mut session = Simulated::new(Setup { seed: 5, ..Setup::default() }).expect("valid");
        let settings = WorkloadSettings { rate_per_second: 200, keys: 3, reads_percent: 30 };
        session.start_workload(settings);
        assert_eq!(session.workload(), Some(settings));
        play(&mut session, 1_000, 0.1);
        session.stop_workload();
        play(&mut session, 1_000, 0.1);
        let script = session.script();
        let gets = script
            .iter()
            .filter(|timed| matches!(&timed.action, Action::Request { op: ClientOp::Get { .. }, .. }))
            .count();
        let puts = script
            .iter()
            .filter(|timed| matches!(&timed.action, Action::Request { op: ClientOp::Put { .. }, .. }))
            .count();
        // 100 ms of simulated time at 200 per second: about 20 requests.
        assert!((10..=30).contains(&(gets + puts)), "{gets} gets and {puts} puts");
        assert!(gets > 0 && puts > 0);
        assert!(
            session.timeline().verdict().text().starts_with("linearizable"),
            "{}",
            session.timeline().verdict().text()
        );
        assert!(answers(&session).iter().all(|answer| answer != "waiting"));
        let (setup, log) = crate::link::decode(&crate::link::encode(session.setup(), &script)).expect("decodes");
        let mut replayed = Simulated::replay(setup, log).expect("valid");
        replayed.simulate_until(session.simulation().now(), u64::MAX);
        assert_eq!(replayed.simulation().history(), session.simulation().history());
        // The same seed and start time generate the same requests.
        let mut again = Simulated::new(Setup { seed: 5, ..Setup::default() }).expect("valid");
        again.start_workload(settings);
        play(&mut again, 1_000, 0.1);
        again.stop_workload();
        assert_eq!(again.script(), script);
    }

    #[test]
    fn the_latency_action_slows_requests_down() {
        let took = |latency: Option<(u64, u64)>| {
            let mut session = Simulated::new(Setup::default()).expect("valid");
            if let Some((min_us, max_us)) = latency {
                session.act(Action::Latency { min_us, max_us });
            }
            session.act(Action::put(0, "apple", "red"));
            play(&mut session, 3_000, 0.2);
            match &session.timeline().requests()[0].answer {
                Answer::Replied { at, .. } => *at - session.timeline().requests()[0].sent_at,
                other => panic!("{other:?}"),
            }
        };
        let normal = took(None);
        let slow = took(Some((20_000, 30_000)));
        assert!(slow > 4 * normal, "{normal} µs, then {slow} µs");
    }
}
