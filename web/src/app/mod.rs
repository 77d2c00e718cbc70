//! The Yew component: the page the person sees. It stays thin on purpose: every control turns
//! into an `Action` (a simulated run) or a socket frame or supervisor request (a real cluster).
//! No simulation logic and no geometry lives here, so what matters is tested natively in the
//! other modules; each panel's view is a file of `panels`.
//!
//! Every animation frame (`frame`) asks the shown run to advance and paints what moves (the
//! message dots, the diagram's lines, the clock and counters) outside Yew (`scene` computes it,
//! `paint` draws it); Yew re-renders the page only when it may show something new, at most every
//! `RENDER_MS`, refreshing one heavy panel (`memo`) per render in turn unless a control was used.
//! The frame-cost readout measures the page's own work per frame (the frame's handler and any
//! re-render after it) with the page clock.
//!
//! The page shows one `Stage`: a simulated run, a real cluster (through `pump`), or a recording
//! of one; the runs not shown are parked, and the attached cluster keeps up with its sockets
//! while parked. The supervisor's page carries an admin token in a meta tag; with it the page
//! starts in Live mode, without it Live is offered only when `/api/cluster` answers.
//!
//! Browser calls (animation frames, the URL fragment, key presses, the reduced-motion query,
//! the page clock) are confined to `browser`, `connect` and `pump`; they fail soft (a missing
//! window means no link, not a panic).

mod browser;
mod frame;
mod memo;
mod panels;

use frame::{pointer_handler, Meter};
use memo::{fingerprint, memoized, CachedInspector, Memo, Memos};

use panels::view_legend;

use std::cell::{Cell, RefCell};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use gloo_render::AnimationFrame;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{HtmlInputElement, HtmlSelectElement, KeyboardEvent};
use yew::prelude::*;

use dynamo_core::message::ClientOp;
use dynamo_core::sim::FaultAction;
use dynamo_core::types::{Blob, Micros, NodeId};

use crate::connect;
use crate::flights::{Arrival, Flight, FlightKey};
use crate::inspector::NodeView;
use crate::layout::{RingLayout, Role};
use crate::link;
use crate::live::Live;
use crate::pace::{FrameCosts, Rotation, Throttle};
use crate::paint::{DiagramPainter, RingPainter};
use crate::palette::{kind_name, Family, KINDS};
use crate::pump::{Happened, Pump};
use crate::scenario::Scenario;
use crate::scene::{self, DiagramGeometry, Dot, Line};
use crate::script::{Action, Setup};
use crate::simulated::{slider_of, speed_label, speed_of, time_label, Simulated, WorkloadSettings, SPEED_SLIDER_MAX};
use crate::stage::{Mode, Stage};
use crate::text::{op_text, reply_text, Tone};
use crate::timeline::Answer;
use dynamo_core::api::Control;

/// Side of the ring's square canvas, in SVG units.
const RING_SIZE: f64 = 560.0;
/// The space-time diagram's canvas.
const DIAGRAM_WIDTH: f64 = 560.0;
const DIAGRAM_HEIGHT: f64 = 250.0;
/// Frames averaged for the frame-rate readout.
const FPS_FRAMES: usize = 30;
/// Frames the frame-cost readout summarizes.
const COST_FRAMES: usize = 60;
/// How often Yew re-renders the page while time runs. The message dots and the diagram's lines
/// are painted on canvases every frame, and the clock and in-flight count are written
/// directly, so nothing that moves waits for this.
const RENDER_MS: f64 = 100.0;
/// The heavy panels (the history and verdict, the events log, the inspectors): while time runs
/// each render refreshes one of them in turn, so each is refreshed every `3 x RENDER_MS`; any
/// control a person uses refreshes them all at once.
const PANEL_HISTORY: u32 = 1;
const PANEL_EVENTS: u32 = 1 << 1;
const PANEL_INSPECTORS: u32 = 1 << 2;
const PANELS: u32 = 3;
/// How often the frame-rate and frame-cost readouts change.
const READOUT_MS: f64 = 250.0;
/// The latency slider's top, in milliseconds of largest one-way latency.
const LATENCY_SLIDER_MAX_MS: u64 = 50;
/// The workload generator's highest rate, in operations per simulated second.
const WORKLOAD_RATE_MAX: u32 = 1_000;
/// Writes sent by one "burst" click.
const BURST_WRITES: u32 = 25;
/// Requests listed in the history (the newest).
const HISTORY_ROWS: usize = 40;
/// Log lines shown (the session keeps more).
const LOG_LINES_SHOWN: usize = 80;
/// Keys listed per inspector: a busy store re-renders its table often, so long tables cost frame rate.
const INSPECTOR_ROWS_MAX: usize = 16;
/// How often at most the address bar is rewritten as actions and the workload add requests.
const PUBLISH_MS: f64 = 1_000.0;

#[derive(Clone)]
pub enum Msg {
    Frame(f64),
    /// Focus a request of the history (an index into the stage's requests).
    Focus(usize),
    Play,
    Pause,
    Step,
    Speed(f64),
    Key(String),
    Value(String),
    Receiver(u32),
    Request(ClientOp),
    Burst,
    Fault(FaultAction),
    /// A fault on the real cluster (Live mode).
    Control(Control),
    CutFrom(u32),
    CutTo(u32),
    Loss(u32),
    /// The latency slider: the largest one-way latency, in milliseconds.
    Latency(u64),
    /// The scrubber: a simulated time in milliseconds.
    Scrub(f64),
    /// Start or stop the workload generator.
    Workload,
    WorkloadField(WorkloadField, String),
    Scenario(Scenario),
    /// The pointer moved over a drawing, or left it.
    Pointer(Drawing, Option<Pointer>),
    /// The system's reduced-motion setting changed.
    ReducedMotion(bool),
    Draft(Field, String),
    Restart,
    Shortcut(String),
    Mode(Mode),
    Export,
    OpenTrace(web_sys::File),
}

/// The two drawings that show messages; hovering one highlights the message in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drawing {
    Ring,
    Diagram,
}

/// Where the pointer is over a drawing: CSS pixels from the drawing's top left corner, and the
/// drawing's size on screen (it may be scaled).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pointer {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// A field of the workload generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadField {
    Rate,
    Keys,
    Reads,
}

/// A field of the configuration form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Seed,
    Replicas,
    ReadQuorum,
    WriteQuorum,
    Tokens,
    Eventual,
    LatencyMin,
    LatencyMax,
    Timeout,
}

/// What a share link was encoded from: the epoch and `Simulated::script_size`.
type ShareOf = (u64, (usize, usize));
/// The runs the page does not show: the simulation while a real cluster or a recording is on
/// screen, the attached cluster while the simulation or a recording is.
#[derive(Default)]
struct Parked {
    simulated: Option<Box<Simulated>>,
    live: Option<Box<Live>>,
    replay: Option<Box<Live>>,
}

pub struct App {
    /// The run on screen.
    stage: Stage,
    parked: Parked,
    /// Bumped whenever the stage is replaced (restart, mode switch, an opened recording), so no
    /// memoized panel outlives the run it was drawn from.
    epoch: u64,
    memos: RefCell<Memos>,
    /// The share link and the (epoch, script size) it was encoded for: encoding the whole
    /// script every frame grew with the run.
    share: RefCell<Option<(ShareOf, AttrValue)>>,
    /// What the page exchanges with a real cluster.
    pump: Pump,
    layout: RingLayout,
    playing: bool,
    speed: f64,
    last_frame: Option<f64>,
    frame: Option<AnimationFrame>,
    frame_times: Vec<f64>,
    key: String,
    value: String,
    receiver: u32,
    cut_from: u32,
    cut_to: u32,
    hovered: Option<FlightKey>,
    /// Where the pointer hovers a message: the drawing, and the pointer over it.
    hover_at: Option<(Drawing, Pointer)>,
    ring_canvas: RingPainter,
    diagram_canvas: DiagramPainter,
    /// The boxes the canvases fill, where the pointer is measured.
    ring_stage: NodeRef,
    diagram_stage: NodeRef,
    /// What the canvases show now; the hit-tests run against it.
    dots: Vec<Dot>,
    lines: Vec<Line>,
    geometry: Option<DiagramGeometry>,
    /// The message kinds on the ring canvas's `data-kinds`, as `scene::kind_mask` bits.
    kinds: Option<u32>,
    clock: Meter,
    /// The operation in focus and its quorum votes, written with the clock.
    op_votes: Meter,
    /// The focused operation's dots last written to the ring canvas's `data-focused`.
    focused_dots: Option<usize>,
    in_flight: Meter,
    fps: Meter,
    cost: Meter,
    render_throttle: Throttle,
    panels: Rotation,
    readout_throttle: Throttle,
    /// The heavy panels the next render refreshes (`PANEL_*` bits).
    refresh: u32,
    /// The time on screen at the last render.
    rendered_shown: Cell<Micros>,
    /// The page's own work per frame: the frame's handler and any rendering before the next.
    costs: FrameCosts,
    work_ms: f64,
    frames_seen: u64,
    view_started: Cell<Option<f64>>,
    draft: Setup,
    /// A link, configuration, file or request that could not be used.
    problem: Option<String>,
    reduced_motion: bool,
    burst_count: u32,
    /// The workload generator's fields (it runs in the session once started).
    workload: WorkloadSettings,
    /// What the address bar was last written from: (epoch, script size).
    published: Cell<ShareOf>,
    publish_throttle: Throttle,
    _shortcuts: Option<Closure<dyn Fn(KeyboardEvent)>>,
    _motion: Option<Closure<dyn Fn(web_sys::Event)>>,
}

impl Component for App {
    type Message = Msg;
    type Properties = ();

    fn create(ctx: &Context<Self>) -> Self {
        let (setup, log, problem) = match link::decode(&browser::fragment()) {
            Ok((setup, log)) => (setup, log, None),
            Err(error) => (Setup::default(), Vec::new(), Some(error.to_string())),
        };
        let (session, problem) = match Simulated::replay(setup.clone(), log) {
            Ok(session) => (session, problem),
            Err(error) => {
                let session = Simulated::new(Setup::default()).expect("the default setup is valid");
                (session, Some(format!("invalid configuration in the link: {error}")))
            }
        };
        let link = ctx.link().clone();
        let shortcuts = browser::on_key(move |key| link.send_message(Msg::Shortcut(key)));
        let link = ctx.link().clone();
        let motion = browser::on_reduced_motion(move |reduce| link.send_message(Msg::ReducedMotion(reduce)));
        let layout = RingLayout::new(session.ring(), RING_SIZE);
        let draft = session.setup().clone();
        let mut app = App {
            stage: Stage::Simulated(Box::new(session)),
            parked: Parked::default(),
            epoch: 0,
            memos: RefCell::new(Memos::default()),
            share: RefCell::new(None),
            pump: Pump::new(browser::admin_token(), browser::now_ms()),
            layout,
            playing: true,
            speed: speed_of(SPEED_SLIDER_MAX / 2.0),
            last_frame: None,
            frame: None,
            frame_times: Vec::new(),
            key: "apple".to_string(),
            value: "red".to_string(),
            receiver: 0,
            cut_from: 0,
            cut_to: 1,
            hovered: None,
            hover_at: None,
            ring_canvas: RingPainter::new(RING_SIZE),
            diagram_canvas: DiagramPainter::new(DIAGRAM_WIDTH),
            ring_stage: NodeRef::default(),
            diagram_stage: NodeRef::default(),
            dots: Vec::new(),
            lines: Vec::new(),
            geometry: None,
            kinds: None,
            clock: Meter::default(),
            op_votes: Meter::default(),
            focused_dots: None,
            in_flight: Meter::default(),
            fps: Meter::default(),
            cost: Meter::default(),
            render_throttle: Throttle::new(RENDER_MS),
            panels: Rotation::new(PANELS),
            readout_throttle: Throttle::new(READOUT_MS),
            refresh: u32::MAX,
            rendered_shown: Cell::new(0),
            costs: FrameCosts::new(COST_FRAMES),
            work_ms: 0.0,
            frames_seen: 0,
            view_started: Cell::new(None),
            draft,
            problem,
            reduced_motion: browser::prefers_reduced_motion(),
            burst_count: 0,
            workload: WorkloadSettings::default(),
            published: Cell::new((0, (0, 0))),
            publish_throttle: Throttle::new(PUBLISH_MS),
            _shortcuts: shortcuts,
            _motion: motion,
        };
        app.request_frame(ctx);
        app
    }

    fn update(&mut self, ctx: &Context<Self>, message: Msg) -> bool {
        match message {
            Msg::Frame(timestamp) => return self.frame(ctx, timestamp),
            Msg::Pointer(drawing, at) => return self.point(drawing, at),
            _ => {}
        }
        // Anything a person did shows at once, the heavy panels included.
        self.panels.all();
        self.refresh = self.panels.take();
        match message {
            Msg::Frame(_) | Msg::Pointer(..) => {}
            Msg::ReducedMotion(reduce) => self.reduced_motion = reduce,
            Msg::Play => self.playing = true,
            Msg::Pause => self.playing = false,
            Msg::Step => {
                self.playing = false;
                self.step();
            }
            Msg::Focus(index) => self.stage.set_focus(Some(index)),
            Msg::Speed(slider) => self.speed = speed_of(slider),
            Msg::Key(key) => self.key = key,
            Msg::Value(value) => self.value = value,
            Msg::Receiver(node) => self.receiver = node,
            Msg::Request(op) => self.request(NodeId(self.receiver), op),
            Msg::Burst => {
                let nodes = self.stage.ring().node_count() as u32;
                for index in 0..BURST_WRITES {
                    self.burst_count += 1;
                    // Keys cycle through 100 names so bursts overlap on few keys but rarely collide.
                    let key = Blob::from(format!("burst{}", self.burst_count % 100));
                    let value = Blob::from(format!("b{}", self.burst_count));
                    self.request(NodeId(index % nodes), ClientOp::Put { key, value });
                }
            }
            Msg::Fault(fault) => self.act(Action::Fault(fault)),
            Msg::Control(control) => self.pump.control(control),
            Msg::CutFrom(node) => self.cut_from = node,
            Msg::CutTo(node) => self.cut_to = node,
            Msg::Loss(per_million) => self.act(Action::Loss { per_million }),
            Msg::Latency(max_ms) => {
                // The slider sets the largest latency; the smallest is a tenth of it, as in the
                // default 0.5 to 5 ms.
                let max_us = max_ms.clamp(1, LATENCY_SLIDER_MAX_MS) * 1_000;
                self.act(Action::Latency { min_us: max_us / 10, max_us });
            }
            Msg::Scrub(at_ms) => {
                if let Stage::Simulated(session) = &mut self.stage {
                    self.playing = false;
                    let target = (at_ms.max(0.0) * 1_000.0) as Micros;
                    if target < session.shown() {
                        // The run is rebuilt and replays: nothing drawn from the old one stays.
                        self.epoch += 1;
                        self.hovered = None;
                        self.hover_at = None;
                    }
                    session.scrub(target);
                }
            }
            Msg::Workload => {
                if let Stage::Simulated(session) = &mut self.stage {
                    if session.workload().is_some() {
                        session.stop_workload();
                    } else {
                        session.start_workload(self.workload);
                        self.publish();
                    }
                }
            }
            Msg::WorkloadField(field, text) => {
                if let Ok(number) = text.trim().parse::<u32>() {
                    let settings = &mut self.workload;
                    match field {
                        WorkloadField::Rate => settings.rate_per_second = number.clamp(1, WORKLOAD_RATE_MAX),
                        WorkloadField::Keys => settings.keys = number.clamp(1, 1_000),
                        WorkloadField::Reads => settings.reads_percent = number.min(100),
                    }
                    // A running generator takes the new settings at once.
                    if let Stage::Simulated(session) = &mut self.stage {
                        if session.workload().is_some() {
                            session.start_workload(self.workload);
                        }
                    }
                }
            }
            Msg::Scenario(scenario) => {
                if let Some(setup) = scenario.setup(self.simulated().setup()) {
                    self.restart(setup);
                }
                let key = if self.key.is_empty() { "apple".to_string() } else { self.key.clone() };
                if let Stage::Simulated(session) = &mut self.stage {
                    for (after, action) in scenario.script(session.ring(), &key) {
                        session.schedule(after, action);
                    }
                }
                self.playing = true;
                self.publish();
            }
            Msg::Draft(field, text) => self.edit_draft(field, &text),
            Msg::Restart => self.restart(self.draft.clone()),
            Msg::Shortcut(key) => match key.as_str() {
                " " => self.playing = !self.playing,
                "." => {
                    self.playing = false;
                    self.step();
                }
                _ => return false,
            },
            Msg::Mode(mode) => self.switch(mode),
            Msg::Export => {
                if let Stage::Live(session) | Stage::Replay(session) = &self.stage {
                    let name = format!("dynamo-live-{}.json", browser::now_us() / 1_000);
                    if let Err(error) = connect::download(&name, &session.recording().encode()) {
                        self.problem = Some(format!("cannot export: {error:?}"));
                    }
                }
            }
            Msg::OpenTrace(file) => self.pump.open(file),
        }
        true
    }

    fn rendered(&mut self, _ctx: &Context<Self>, _first_render: bool) {
        if let Some(started) = self.view_started.take() {
            self.work_ms += browser::now_ms() - started;
        }
        self.refresh = 0;
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        self.view_started.set(Some(browser::now_ms()));
        self.rendered_shown.set(self.stage.shown());
        let simulated = self.stage.mode() == Mode::Simulated;
        html! {
            <div class={classes!("app", self.reduced_motion.then_some("reduced-motion"))} data-mode={self.stage.mode().name()}>
                { self.view_header(ctx) }
                if let Some(problem) = &self.problem {
                    <div class="problem" role="alert" data-testid="problem">{ problem }</div>
                }
                <main class="grid">
                    <section class="panel ring-panel">
                        { self.view_ring(ctx) }
                        { view_legend() }
                    </section>
                    <section class="side">
                        { self.view_client(ctx) }
                        { self.memo_history(ctx) }
                        if simulated {
                            { self.view_scenarios(ctx) }
                        }
                    </section>
                    <section class="panel diagram-panel">
                        <h2>{ "Space-time diagram" }<span class="hint">{ " newest at the bottom; hover a message" }</span></h2>
                        { self.view_diagram(ctx) }
                    </section>
                    <section class="panel events-panel">
                        <h2>{ "Events" }</h2>
                        { self.memo_events() }
                    </section>
                    <section class="inspectors">
                        { self.view_inspectors(ctx) }
                    </section>
                    <section class="panel network-panel">
                        { self.view_network(ctx) }
                    </section>
                    <section class="panel config-panel">
                        if simulated {
                            { self.view_config(ctx) }
                        } else {
                            { self.view_cluster() }
                        }
                    </section>
                </main>
            </div>
        }
    }
}

impl App {
    /// The simulation, shown or parked (it always exists in one place or the other).
    fn simulated(&self) -> &Simulated {
        match &self.stage {
            Stage::Simulated(session) => session,
            _ => self.parked.simulated.as_ref().expect("the simulation is shown or parked"),
        }
    }

    /// The attached cluster, shown or parked.
    fn live_mut<'a>(stage: &'a mut Stage, parked: &'a mut Parked) -> Option<&'a mut Live> {
        match stage {
            Stage::Live(live) => Some(live),
            _ => parked.live.as_deref_mut(),
        }
    }

    /// Shows `mode`'s run: the parked one, or (Live) a new session attached to the cluster, if
    /// the supervisor has described one. A mode without a run to show is not switched to.
    fn switch(&mut self, mode: Mode) {
        if self.stage.mode() == mode {
            return;
        }
        let next = match mode {
            Mode::Simulated => self.parked.simulated.take().map(Stage::Simulated),
            Mode::Live => self.parked.live.take().map(Stage::Live).or_else(|| {
                let live = self.pump.attach(browser::time_origin_us(), browser::now_us(), browser::client_password());
                live.map(|live| Stage::Live(Box::new(live)))
            }),
            Mode::Replay => self.parked.replay.take().map(Stage::Replay),
        };
        let Some(next) = next else { return };
        match std::mem::replace(&mut self.stage, next) {
            Stage::Simulated(session) => self.parked.simulated = Some(session),
            Stage::Live(live) => self.parked.live = Some(live),
            Stage::Replay(replay) => self.parked.replay = Some(replay),
        }
        self.epoch += 1;
        self.layout = RingLayout::new(self.stage.ring(), RING_SIZE);
        let nodes = self.stage.ring().node_count() as u32;
        self.receiver = self.receiver.min(nodes - 1);
        self.cut_from = self.cut_from.min(nodes - 1);
        self.cut_to = self.cut_to.min(nodes - 1);
        self.hovered = None;
        self.hover_at = None;
        self.problem = None;
        self.panels.all();
        self.render_throttle.force();
        self.publish();
    }

    /// Live mode's chores, once per frame (`Pump::tend`), and what they call for. Returns
    /// whether anything came in.
    fn tend_live(&mut self) -> bool {
        let live = App::live_mut(&mut self.stage, &mut self.parked);
        let (took_in, happened) = self.pump.tend(live, browser::now_ms(), browser::now_us());
        for event in happened {
            match event {
                // The supervisor's page (it carries a token) opens in Live mode.
                Happened::ClusterFound if self.stage.mode() == Mode::Simulated => self.switch(Mode::Live),
                Happened::ClusterFound => {}
                Happened::Recording(recording) => {
                    match &mut self.stage {
                        Stage::Replay(shown) => *shown = recording,
                        _ => {
                            self.parked.replay = Some(recording);
                            self.switch(Mode::Replay);
                        }
                    }
                    self.epoch += 1;
                }
                Happened::Problem(problem) => self.problem = Some(problem),
            }
        }
        took_in
    }

    fn step(&mut self) {
        self.stage.step();
    }

    /// Sends `op` to `node` in the current mode (a recording takes no requests).
    fn request(&mut self, node: NodeId, op: ClientOp) {
        match &mut self.stage {
            Stage::Simulated(_) => self.act(Action::Request { node, op }),
            Stage::Live(live) => {
                if let Some(frame) = live.request(node, op, browser::now_us()) {
                    self.pump.send(node, &frame);
                }
            }
            Stage::Replay(_) => {}
        }
    }

    /// Applies `action` to the simulation when it is shown. The address bar follows at once if
    /// it was not written in the last `PUBLISH_MS`, else on a coming frame: a burst is 25
    /// requests, and each publication encodes the whole script.
    fn act(&mut self, action: Action) {
        if let Stage::Simulated(session) = &mut self.stage {
            session.act(action);
            if self.publish_throttle.ready(browser::now_ms()) {
                self.publish();
            }
        }
    }

    /// Writes the simulated run into the URL, so the address bar always holds a link that
    /// replays it (while it is shown).
    fn publish(&self) {
        let Stage::Simulated(session) = &self.stage else { return };
        self.published.set((self.epoch, session.script_size()));
        browser::set_fragment(&link::encode(session.setup(), &session.script()));
    }

    /// A fresh simulated run from `setup`, replacing the simulation wherever it is.
    fn restart(&mut self, setup: Setup) {
        match Simulated::new(setup.clone()) {
            Ok(session) => {
                let session = Box::new(session);
                match &mut self.stage {
                    Stage::Simulated(shown) => {
                        self.layout = RingLayout::new(session.ring(), RING_SIZE);
                        *shown = session;
                    }
                    _ => self.parked.simulated = Some(session),
                }
                self.epoch += 1;
                self.draft = setup;
                self.problem = None;
                self.hovered = None;
                self.hover_at = None;
                self.publish();
            }
            Err(error) => self.problem = Some(format!("cannot start that run: {error}")),
        }
    }

    fn edit_draft(&mut self, field: Field, text: &str) {
        let number = text.trim().parse::<u64>().ok();
        let draft = &mut self.draft;
        match (field, number) {
            (Field::Eventual, _) => draft.eventual = text == "true",
            (Field::Seed, Some(value)) => draft.seed = value,
            (Field::Replicas, Some(value)) => draft.replicas = value as u32,
            (Field::ReadQuorum, Some(value)) => draft.read_quorum = value as u32,
            (Field::WriteQuorum, Some(value)) => draft.write_quorum = value as u32,
            (Field::Tokens, Some(value)) => draft.tokens_per_node = value.clamp(1, 64) as u32,
            (Field::LatencyMin, Some(value)) => draft.latency_min_us = value,
            (Field::LatencyMax, Some(value)) => draft.latency_max_us = value.max(1),
            (Field::Timeout, Some(value)) => draft.request_timeout_ms = value.max(1),
            _ => {}
        }
    }

    /// The link that replays the run, encoded again only when the script changed.
    fn share_link(&self) -> AttrValue {
        let session = self.simulated();
        let size = (self.epoch, session.script_size());
        let mut share = self.share.borrow_mut();
        match &*share {
            Some((of, href)) if *of == size => href.clone(),
            _ => {
                let href = AttrValue::from(format!("#{}", link::encode(session.setup(), &session.script())));
                *share = Some((size, href.clone()));
                href
            }
        }
    }
}

/// A flight's name in the drawings' `data-hovered` attributes: sender, id, copy.
fn flight_id(key: FlightKey) -> String {
    format!("{}.{}.{}", key.from.0, key.id, key.copy)
}
fn duration_label(duration: Micros) -> String {
    if duration >= 10_000 {
        format!("{} ms", duration / 1_000)
    } else {
        format!("{:.1} ms", duration as f64 / 1_000.0)
    }
}

/// A number for an SVG attribute.
fn f(value: f64) -> String {
    format!("{value:.1}")
}

fn input_value(event: &InputEvent) -> String {
    event.target_unchecked_into::<HtmlInputElement>().value()
}

fn change_value(event: &Event) -> String {
    event.target_unchecked_into::<HtmlInputElement>().value()
}

fn select_value(event: &Event) -> String {
    event.target_unchecked_into::<HtmlSelectElement>().value()
}
