//! The Yew components: the page the person sees. They stay thin on purpose: every control turns
//! into an `Action` (Simulated mode) or a socket frame or supervisor request (Live mode). No
//! simulation logic and no geometry lives here, so what matters is tested natively in the other
//! modules.
//!
//! Every animation frame asks the driver to advance and paints what moves (the message dots,
//! the diagram's lines, the clock and counters) outside Yew (`scene` computes it, `paint`
//! draws it); Yew re-renders the page only when it may show something new, at most every
//! `RENDER_MS`, refreshing one heavy panel per render in turn unless a control was used. The
//! frame-cost readout measures the page's own work per frame (the frame's handler and any
//! re-render after it) with the page clock.
//!
//! Three modes share every view through `Stage`: Simulated (a `Session`), Live (a `LiveSession`
//! attached to a real cluster through `connect`) and Replay (a `LiveSession` built from an
//! exported run). The supervisor's page carries an admin token in a meta tag; with it the page
//! starts in Live mode, without it Live is offered only when `/api/cluster` answers.
//!
//! Browser calls (animation frames, the URL fragment, key presses, the reduced-motion query,
//! the page clock) are confined to the `browser` helpers at the bottom and to `connect`; they
//! fail soft (a missing window means no link, not a panic).

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

use crate::connect::{self, Inbox, Incoming, Sockets};
use crate::flights::{Arrival, Flight, FlightKey};
use crate::layout::{RingLayout, Role};
use crate::link;
use crate::live::LiveSession;
use crate::pace::{FrameCosts, Rotation, Throttle};
use crate::paint::{DiagramPainter, RingPainter};
use crate::palette::{kind_name, Family, KINDS};
use crate::scenario::Scenario;
use crate::scene::{self, DiagramGeometry, Dot, Line};
use crate::script::{Action, Setup};
use crate::session::{
    slider_of, speed_label, speed_of, time_label, Answer, Session, WorkloadSettings, SPEED_SLIDER_MAX,
};
use crate::stage::Stage;
use crate::text::{op_text, reply_text, Tone};
use dynamo_core::api::{ClusterInfo, Control};

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
/// How often the address bar is rewritten while the workload generator adds requests.
const PUBLISH_MS: f64 = 1_000.0;
/// How often Live mode asks the supervisor which processes run, and each node for its store.
const POLL_MS: f64 = 1_000.0;

/// What the page shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The simulator, in the page.
    Simulated,
    /// A real cluster, through its sockets and supervisor.
    Live,
    /// A run exported from Live mode, opened from a file.
    Replay,
}

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

/// A readout the frame loop writes directly: Yew renders its element empty and never touches
/// the text, so it changes every frame without a re-render.
#[derive(Default)]
struct Meter {
    node: NodeRef,
    text: String,
    /// The element the text was written into (Yew may replace it).
    written: Option<web_sys::Node>,
}

impl Meter {
    fn set(&mut self, text: String) {
        let Some(node) = self.node.get() else { return };
        if self.written.as_ref() != Some(&node) || text != self.text {
            node.set_text_content(Some(&text));
            self.text = text;
            self.written = Some(node);
        }
    }
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

/// A piece of the page rendered once and shown until its `stamp` moves: Yew skips a component
/// whose props are equal, so an unchanged panel costs neither rendering nor diffing per frame.
#[derive(Properties, Clone)]
pub struct MemoProps {
    pub stamp: u64,
    pub content: Rc<Html>,
}

impl PartialEq for MemoProps {
    fn eq(&self, other: &Self) -> bool {
        self.stamp == other.stamp
    }
}

#[function_component(Memo)]
fn memo(props: &MemoProps) -> Html {
    (*props.content).clone()
}

/// One memoized panel: the fingerprint of what it was rendered from, and the rendering.
#[derive(Default)]
struct Cached {
    stamp: u64,
    html: Option<Rc<Html>>,
}

/// An inspector's cache: the node view it was rendered from.
#[derive(Default)]
struct CachedInspector {
    quick: u64,
    view: Option<crate::session::NodeView>,
    serial: u64,
    html: Option<Rc<Html>>,
}

/// The renderings reused between frames (`view` takes `&self`, hence the cell).
#[derive(Default)]
struct Memos {
    ring: Cached,
    history: Cached,
    events: Cached,
    inspectors: Vec<CachedInspector>,
}

/// What a share link was encoded from: the epoch and `Session::script_size`.
type ShareOf = (u64, (usize, usize));

fn fingerprint(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

pub struct App {
    mode: Mode,
    /// Bumped whenever the stage is replaced (restart, mode switch, an opened recording), so no
    /// memoized panel outlives the run it was drawn from.
    epoch: u64,
    memos: RefCell<Memos>,
    /// The share link and the (epoch, script size) it was encoded for: encoding the whole
    /// script every frame grew with the run.
    share: RefCell<Option<(ShareOf, AttrValue)>>,
    session: Session,
    /// The real cluster, once `/api/cluster` answered and Live mode was chosen.
    live: Option<LiveSession>,
    sockets: Option<Sockets>,
    /// An opened recording.
    replay: Option<LiveSession>,
    /// Browser events waiting for the next frame.
    inbox: Inbox,
    /// The supervisor's admin token, from the page's meta tag.
    token: Option<String>,
    /// The latest `/api/cluster` answer (Live is offered once there is one).
    cluster: Option<ClusterInfo>,
    /// Whether an `/api/cluster` request is out.
    polling: bool,
    polled_at: f64,
    inspected_at: f64,
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
        let (session, problem) = match Session::replay(setup.clone(), log) {
            Ok(session) => (session, problem),
            Err(error) => {
                let session = Session::new(Setup::default()).expect("the default setup is valid");
                (session, Some(format!("invalid configuration in the link: {error}")))
            }
        };
        let link = ctx.link().clone();
        let shortcuts = browser::on_key(move |key| link.send_message(Msg::Shortcut(key)));
        let link = ctx.link().clone();
        let motion = browser::on_reduced_motion(move |reduce| link.send_message(Msg::ReducedMotion(reduce)));
        let layout = RingLayout::new(session.ring(), RING_SIZE);
        let draft = session.setup().clone();
        let inbox = Inbox::default();
        // Served by the supervisor (a token) or not, ask whether a cluster is there to attach to.
        connect::fetch_cluster(inbox.clone());
        let mut app = App {
            mode: Mode::Simulated,
            epoch: 0,
            memos: RefCell::new(Memos::default()),
            share: RefCell::new(None),
            session,
            live: None,
            sockets: None,
            replay: None,
            inbox,
            token: browser::admin_token(),
            cluster: None,
            polling: true,
            polled_at: browser::now_ms(),
            inspected_at: 0.0,
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
            Msg::Focus(index) => match self.mode {
                Mode::Simulated => self.session.set_focus(Some(index)),
                Mode::Live => self.live.iter_mut().for_each(|live| live.set_focus(Some(index))),
                Mode::Replay => self.replay.iter_mut().for_each(|replay| replay.set_focus(Some(index))),
            },
            Msg::Speed(slider) => self.speed = speed_of(slider),
            Msg::Key(key) => self.key = key,
            Msg::Value(value) => self.value = value,
            Msg::Receiver(node) => self.receiver = node,
            Msg::Request(op) => self.request(NodeId(self.receiver), op),
            Msg::Burst => {
                let nodes = self.stage().ring().node_count() as u32;
                for index in 0..BURST_WRITES {
                    self.burst_count += 1;
                    // Keys cycle through 100 names so bursts overlap on few keys but rarely collide.
                    let key = Blob::from(format!("burst{}", self.burst_count % 100));
                    let value = Blob::from(format!("b{}", self.burst_count));
                    self.request(NodeId(index % nodes), ClientOp::Put { key, value });
                }
            }
            Msg::Fault(fault) => self.act(Action::Fault(fault)),
            Msg::Control(control) => connect::send_control(self.inbox.clone(), self.token.clone(), control),
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
                if self.mode == Mode::Simulated {
                    self.playing = false;
                    let target = (at_ms.max(0.0) * 1_000.0) as Micros;
                    if target < self.session.shown() {
                        // The session is rebuilt and replays: nothing drawn from the old one stays.
                        self.epoch += 1;
                        self.hovered = None;
                        self.hover_at = None;
                    }
                    self.session.scrub(target);
                }
            }
            Msg::Workload => {
                if self.mode == Mode::Simulated {
                    if self.session.workload().is_some() {
                        self.session.stop_workload();
                    } else {
                        self.session.start_workload(self.workload);
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
                    if self.mode == Mode::Simulated && self.session.workload().is_some() {
                        self.session.start_workload(self.workload);
                    }
                }
            }
            Msg::Scenario(scenario) => {
                if let Some(setup) = scenario.setup(self.session.setup()) {
                    self.restart(setup);
                }
                let key = if self.key.is_empty() { "apple".to_string() } else { self.key.clone() };
                for (after, action) in scenario.script(self.session.ring(), &key) {
                    self.session.schedule(after, action);
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
                let session = if self.mode == Mode::Replay { self.replay.as_ref() } else { self.live.as_ref() };
                if let Some(session) = session {
                    let name = format!("dynamo-live-{}.json", browser::now_us() / 1_000);
                    if let Err(error) = connect::download(&name, &session.recording().encode()) {
                        self.problem = Some(format!("cannot export: {error:?}"));
                    }
                }
            }
            Msg::OpenTrace(file) => connect::read_trace(self.inbox.clone(), file),
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
        self.rendered_shown.set(self.stage().shown());
        let simulated = self.mode == Mode::Simulated;
        html! {
            <div class={classes!("app", self.reduced_motion.then_some("reduced-motion"))} data-mode={self.mode_name()}>
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
    /// What every view draws: the driver of the current mode.
    fn stage(&self) -> &dyn Stage {
        match (self.mode, &self.live, &self.replay) {
            (Mode::Live, Some(live), _) => live,
            (Mode::Replay, _, Some(replay)) => replay,
            _ => &self.session,
        }
    }

    fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Simulated => "simulated",
            Mode::Live => "live",
            Mode::Replay => "replay",
        }
    }

    fn request_frame(&mut self, ctx: &Context<Self>) {
        let link = ctx.link().clone();
        self.frame =
            Some(gloo_render::request_animation_frame(move |timestamp| link.send_message(Msg::Frame(timestamp))));
    }

    /// One animation frame: advance the driver (in bounded slices, see `Session::advance`),
    /// paint the canvases and the readouts, and let Yew re-render only when the page may show
    /// something new, at most every `RENDER_MS`. Returns whether Yew should render.
    fn frame(&mut self, ctx: &Context<Self>, timestamp: f64) -> bool {
        let started = browser::now_ms();
        // The previous frame's work is complete once the next frame starts.
        if self.frames_seen > 0 {
            self.costs.push(self.work_ms);
        }
        self.frames_seen += 1;
        self.work_ms = 0.0;
        let elapsed = self.last_frame.map_or(0.0, |last| timestamp - last);
        self.last_frame = Some(timestamp);
        self.frame_times.push(elapsed);
        if self.frame_times.len() > FPS_FRAMES {
            self.frame_times.remove(0);
        }
        let took_in = self.tend_live();
        let speed = if self.playing { self.speed } else { 0.0 };
        match self.mode {
            // A scrubbed time being replayed to advances whether playing or not.
            Mode::Simulated if self.playing || self.session.seeking().is_some() => {
                let seeking = self.session.seeking().is_some();
                self.session.advance(elapsed, self.speed);
                if seeking && self.session.seeking().is_none() {
                    // The scrubbed time is on screen: show every panel as it is there, now.
                    self.panels.all();
                    self.render_throttle.force();
                }
                let of = (self.epoch, self.session.script_size());
                // The workload generator adds requests as time runs: keep the link up to date.
                if of != self.published.get() && self.publish_throttle.ready(started) {
                    self.publish();
                }
            }
            Mode::Replay => {
                if let Some(replay) = &mut self.replay {
                    replay.advance(0, elapsed, speed);
                }
            }
            _ => {}
        }
        // The live session keeps up with its sockets in every mode.
        let live_speed = if self.mode == Mode::Live { speed } else { 1.0 };
        if let Some(live) = &mut self.live {
            live.advance(browser::now_us(), elapsed, live_speed);
        }
        self.paint(started);
        self.request_frame(ctx);
        let changed = took_in || self.mode != Mode::Simulated || self.stage().shown() != self.rendered_shown.get();
        let render = changed && self.render_throttle.ready(started);
        if render {
            self.refresh |= self.panels.take();
        }
        self.work_ms += browser::now_ms() - started;
        render
    }

    /// Paints the canvases and the readouts. The scene is recomputed and repainted only when
    /// something it shows changed (time on screen, the flights, the hovered message, the
    /// motion setting, the canvases' sizes), so a paused page costs next to nothing.
    fn paint(&mut self, now_ms: f64) {
        let sizes = [&self.ring_canvas.surface, &self.diagram_canvas.surface]
            .map(|surface| surface.canvas().map(|canvas| (canvas.client_width(), canvas.client_height())));
        let stage = self.stage();
        let (shown, latency_max) = (stage.shown(), stage.latency_max());
        let flights = stage.flights();
        let focused = stage.focused();
        let focus_index = stage.focus();
        let stamp = fingerprint((
            self.epoch,
            self.mode,
            focus_index,
            focused.map(|op| (op.txns.len(), op.answer.is_some())),
            shown,
            flights.started,
            flights.active_count(),
            self.hovered,
            self.reduced_motion,
            sizes,
        ));
        if self.ring_canvas.surface.painted != Some(stamp) {
            let dots = scene::ring_dots(flights, &self.layout, shown, latency_max, focused);
            let op_votes = stage.focus_text().map(|(_, text)| text).unwrap_or_default();
            let geometry =
                DiagramGeometry::new(DIAGRAM_WIDTH, DIAGRAM_HEIGHT, stage.ring().node_count(), shown, latency_max);
            let lines = scene::diagram_lines(flights, &geometry, latency_max);
            let clock = time_label(shown);
            self.dots = dots;
            self.lines = lines;
            self.geometry = Some(geometry);
            self.ring_canvas.paint(&self.dots, &self.layout, self.hovered, self.reduced_motion);
            self.ring_canvas.surface.painted = Some(stamp);
            self.diagram_canvas.paint(&self.lines, &geometry, self.hovered, fingerprint((self.epoch, self.mode)));
            let focused = self.dots.iter().filter(|dot| dot.focus).count();
            if self.focused_dots != Some(focused) {
                if let Some(canvas) = self.ring_canvas.surface.canvas() {
                    canvas.set_attribute("data-focused", &focused.to_string()).ok();
                    self.focused_dots = Some(focused);
                }
            }
            let kinds = scene::kind_mask(&self.dots);
            if self.kinds != Some(kinds) {
                if let Some(canvas) = self.ring_canvas.surface.canvas() {
                    let names: Vec<String> = KINDS
                        .iter()
                        .filter(|kind| kinds & 1 << **kind as u32 != 0)
                        .map(|kind| kind_name(*kind).replace(' ', "-"))
                        .collect();
                    canvas.set_attribute("data-kinds", &names.join(" ")).ok();
                    self.kinds = Some(kinds);
                }
            }
            self.clock.set(clock);
            self.op_votes.set(op_votes);
            self.in_flight.set(format!("{} in flight", self.dots.len()));
        }
        if self.readout_throttle.ready(now_ms) {
            self.fps.set(format!("{:.0} fps", self.frames_per_second()));
            if let (Some(p50), Some(p95)) = (self.costs.percentile(50.0), self.costs.percentile(95.0)) {
                self.cost.set(format!("{p50:.1} ms/frame"));
                if let Some(element) = self.cost.node.cast::<web_sys::Element>() {
                    element.set_attribute("data-p50", &format!("{p50:.2}")).ok();
                    element.set_attribute("data-p95", &format!("{p95:.2}")).ok();
                    let max = self.costs.percentile(100.0).unwrap_or(p95);
                    element.set_attribute("data-max", &format!("{max:.2}")).ok();
                    element.set_attribute("data-frames", &self.costs.len().to_string()).ok();
                }
            }
        }
    }

    /// The pointer moved over a drawing: hit-test what is painted there now. Renders only
    /// when the hovered message changed (for its tooltip; the canvases repaint next frame).
    fn point(&mut self, drawing: Drawing, at: Option<Pointer>) -> bool {
        let hit = at.and_then(|pointer| {
            let found = match drawing {
                Drawing::Ring => {
                    let point = scene::to_drawing(pointer.x, pointer.y, pointer.width, RING_SIZE);
                    scene::hit_dot(&self.dots, &self.layout, point, self.reduced_motion)
                }
                Drawing::Diagram => {
                    let point = scene::to_drawing(pointer.x, pointer.y, pointer.width, DIAGRAM_WIDTH);
                    self.geometry.as_ref().and_then(|geometry| scene::hit_line(&self.lines, geometry, point))
                }
            };
            found.map(|key| (key, (drawing, pointer)))
        });
        let hovered = hit.map(|(key, _)| key);
        let hover_at = hit.map(|(_, at)| at);
        if hovered == self.hovered && (hovered.is_none() || self.hover_at.map(|at| at.0) == hover_at.map(|at| at.0)) {
            // The same message: keep its tooltip where it is rather than re-render per pixel.
            return false;
        }
        self.hovered = hovered;
        self.hover_at = hover_at;
        true
    }

    fn switch(&mut self, mode: Mode) {
        match mode {
            Mode::Live if self.live.is_none() => {
                let Some(cluster) = self.cluster.clone() else { return };
                let urls = (0..cluster.nodes.len() as u32)
                    .map(|node| cluster.nodes[node as usize].client_url(cluster.tls))
                    .collect();
                self.sockets = Some(Sockets::new(urls, self.inbox.clone()));
                let live = LiveSession::new(cluster, browser::time_origin_us(), browser::now_us());
                self.live = Some(live.with_password(browser::client_password()));
            }
            Mode::Replay if self.replay.is_none() => return,
            _ => {}
        }
        self.mode = mode;
        self.epoch += 1;
        self.layout = RingLayout::new(self.stage().ring(), RING_SIZE);
        let nodes = self.stage().ring().node_count() as u32;
        self.receiver = self.receiver.min(nodes - 1);
        self.cut_from = self.cut_from.min(nodes - 1);
        self.cut_to = self.cut_to.min(nodes - 1);
        self.hovered = None;
        self.hover_at = None;
        self.problem = None;
        self.panels.all();
        self.render_throttle.force();
        if mode == Mode::Simulated {
            self.publish();
        }
    }

    /// Live mode's chores, once per frame: take in what the browser received, redial closed
    /// sockets, poll the supervisor and the inspectors.
    /// Returns whether anything came in.
    fn tend_live(&mut self) -> bool {
        let now_ms = browser::now_ms();
        let now = browser::now_us();
        let incoming = std::mem::take(&mut *self.inbox.borrow_mut());
        let took_in = !incoming.is_empty();
        for item in incoming {
            self.take_in(item, now_ms, now);
        }
        let (Some(live), Some(sockets)) = (&mut self.live, &mut self.sockets) else { return took_in };
        for node in sockets.tend(now_ms) {
            live.socket_connecting(NodeId(node as u32));
        }
        if !self.polling && now_ms - self.polled_at >= POLL_MS {
            self.polling = true;
            self.polled_at = now_ms;
            connect::fetch_cluster(self.inbox.clone());
        }
        if now_ms - self.inspected_at >= POLL_MS {
            self.inspected_at = now_ms;
            for node in 0..live.ring().node_count() {
                if let Some(frame) = live.inspect(NodeId(node as u32)) {
                    sockets.send(node, &frame);
                }
            }
        }
        took_in
    }

    fn take_in(&mut self, item: Incoming, now_ms: f64, now: Micros) {
        match item {
            Incoming::Opened { node, generation }
            | Incoming::Text { node, generation, .. }
            | Incoming::Closed { node, generation }
                if !self.sockets.as_ref().is_some_and(|sockets| sockets.is_current(node, generation)) => {}
            Incoming::Opened { node, .. } => {
                let (Some(live), Some(sockets)) = (&mut self.live, &self.sockets) else { return };
                for frame in live.socket_opened(NodeId(node as u32)) {
                    sockets.send(node, &frame);
                }
            }
            Incoming::Text { node, text, .. } => {
                if let Some(live) = &mut self.live {
                    live.receive(NodeId(node as u32), &text, now);
                }
            }
            Incoming::Closed { node, .. } => {
                if let (Some(live), Some(sockets)) = (&mut self.live, &mut self.sockets) {
                    sockets.closed(node, now_ms);
                    live.socket_closed(NodeId(node as u32), now);
                }
            }
            Incoming::Cluster(result) => {
                self.polling = false;
                match result {
                    Ok(info) => {
                        if let Some(live) = &mut self.live {
                            live.polled(&info, now);
                        }
                        let first = self.cluster.is_none();
                        self.cluster = Some(info);
                        // The supervisor's page (it carries a token) opens in Live mode.
                        if first && self.token.is_some() && self.mode == Mode::Simulated {
                            self.switch(Mode::Live);
                        }
                    }
                    Err(error) if self.token.is_some() => self.problem = Some(error),
                    // Without a token, no cluster just means Simulated mode only.
                    Err(_) => {}
                }
            }
            Incoming::Controlled(control, Ok(())) => {
                let names = self.session_names();
                if let (Control::Restart { node }, Some(sockets)) = (&control, &mut self.sockets) {
                    if let Some(index) = names.iter().position(|name| name == node) {
                        sockets.hurry(index);
                    }
                }
                if let Some(live) = &mut self.live {
                    live.controlled(&control, now);
                }
            }
            Incoming::Controlled(_, Err(error)) => self.problem = Some(error),
            Incoming::Trace(Ok(recording)) => {
                self.replay = Some(LiveSession::replay(recording));
                self.epoch += 1;
                self.switch(Mode::Replay);
            }
            Incoming::Trace(Err(error)) => self.problem = Some(error),
        }
    }

    fn session_names(&self) -> Vec<String> {
        self.live.as_ref().map(|live| live.ring().names().to_vec()).unwrap_or_default()
    }

    fn step(&mut self) {
        match self.mode {
            Mode::Simulated => self.session.step(),
            Mode::Live => {
                if let Some(live) = &mut self.live {
                    live.step();
                }
            }
            Mode::Replay => {
                if let Some(replay) = &mut self.replay {
                    replay.step();
                }
            }
        }
    }

    /// Sends `op` to `node` in the current mode (a recording takes no requests).
    fn request(&mut self, node: NodeId, op: ClientOp) {
        match self.mode {
            Mode::Simulated => self.act(Action::Request { node, op }),
            Mode::Live => {
                let (Some(live), Some(sockets)) = (&mut self.live, &self.sockets) else { return };
                if let Some(frame) = live.request(node, op, browser::now_us()) {
                    sockets.send(node.index(), &frame);
                }
            }
            Mode::Replay => {}
        }
    }

    fn act(&mut self, action: Action) {
        if self.mode != Mode::Simulated {
            return;
        }
        self.session.act(action);
        self.publish();
    }

    /// Writes the run into the URL, so the address bar always holds a link that replays it.
    fn publish(&self) {
        self.published.set((self.epoch, self.session.script_size()));
        browser::set_fragment(&link::encode(self.session.setup(), &self.session.script()));
    }

    fn restart(&mut self, setup: Setup) {
        match Session::new(setup.clone()) {
            Ok(session) => {
                self.layout = RingLayout::new(session.ring(), RING_SIZE);
                self.session = session;
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
        let size = (self.epoch, self.session.script_size());
        let mut share = self.share.borrow_mut();
        match &*share {
            Some((of, href)) if *of == size => href.clone(),
            _ => {
                let href = AttrValue::from(format!("#{}", link::encode(self.session.setup(), &self.session.script())));
                *share = Some((size, href.clone()));
                href
            }
        }
    }

    fn frames_per_second(&self) -> f64 {
        let times: Vec<f64> = self.frame_times.iter().copied().filter(|time| *time > 0.0).collect();
        if times.is_empty() {
            return 0.0;
        }
        1_000.0 * times.len() as f64 / times.iter().sum::<f64>()
    }

    fn view_header(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let on_speed = link.callback(|event: InputEvent| Msg::Speed(input_value(&event).parse().unwrap_or(50.0)));
        let mode_button = |mode: Mode,
                           label: &'static str,
                           testid: &'static str,
                           enabled: bool,
                           title: &'static str| {
            html! {
                <button data-testid={testid} class={classes!((self.mode == mode).then_some("active"))} disabled={!enabled}
                    title={title} onclick={link.callback(move |_| Msg::Mode(mode))}>{ label }</button>
            }
        };
        let live_title = if self.cluster.is_some() {
            "attach to the real cluster that serves this page"
        } else {
            "no cluster answers /api/cluster here: start `dynamo cluster --http ... --web web/dist`"
        };
        let on_open = link.batch_callback(|event: Event| {
            let input = event.target_unchecked_into::<HtmlInputElement>();
            let file = input.files().and_then(|files| files.get(0));
            // Clearing the input lets the same file be opened again.
            input.set_value("");
            file.map(Msg::OpenTrace)
        });
        let exportable = match self.mode {
            Mode::Live => self.live.is_some(),
            Mode::Replay => self.replay.is_some(),
            Mode::Simulated => false,
        };
        let (live_meters, dropped, lag) = match (self.mode, &self.live, &self.replay) {
            (Mode::Live, Some(live), _) => (true, live.dropped(), Some(live.lag())),
            (Mode::Replay, _, Some(replay)) => (true, replay.dropped(), None),
            _ => (false, 0, None),
        };
        html! {
            <header class="top">
                <h1>{ "dynamo" }<span>{ " · replicated key-value store" }</span></h1>
                <div class="modes" role="group" aria-label="mode">
                    { mode_button(Mode::Simulated, "simulated", "mode-simulated", true, "the cluster simulated in this page") }
                    { mode_button(Mode::Live, "live", "mode-live", self.cluster.is_some() || self.live.is_some(), live_title) }
                    if self.replay.is_some() {
                        { mode_button(Mode::Replay, "recording", "mode-replay", true, "the opened recording") }
                    }
                </div>
                // The clock, the in-flight count and the frame readouts are written by the frame
                // loop (`Meter`), every frame, without a re-render.
                <div class="clock" data-testid="clock" ref={self.clock.node.clone()}
                    title={if self.mode == Mode::Simulated { "simulated time on screen" } else { "page time on screen" }}></div>
                <div class="transport">
                    <button data-testid="play" class={classes!(self.playing.then_some("active"))}
                        onclick={link.callback(|_| Msg::Play)} title="play (space)">{ "▶ play" }</button>
                    <button data-testid="pause" class={classes!((!self.playing).then_some("active"))}
                        onclick={link.callback(|_| Msg::Pause)} title="pause (space)">{ "❚❚ pause" }</button>
                    <button data-testid="step" onclick={link.callback(|_| Msg::Step)}
                        title="advance to the next event (.)">{ "▸| step" }</button>
                    <label class="speed" title={if self.mode == Mode::Simulated { "simulated seconds per second" } else { "slow motion while messages are in the air" }}>{ "speed " }
                        <input type="range" data-testid="speed" min="0" max={SPEED_SLIDER_MAX.to_string()} step="1"
                            value={format!("{:.0}", slider_of(self.speed))} oninput={on_speed} />
                        <span class="speed-label">{ speed_label(self.speed) }</span>
                    </label>
                    if self.mode == Mode::Simulated {
                        { self.view_scrubber(ctx) }
                    }
                </div>
                <div class="meters">
                    <span data-testid="in-flight" ref={self.in_flight.node.clone()}></span>
                    <span data-testid="fps" ref={self.fps.node.clone()} title="frames per second (the last 30 frames)"></span>
                    <span data-testid="frame-cost" class="cost" ref={self.cost.node.clone()}
                        title={format!("the page's own work per frame (simulation, canvases, re-rendering), median of the last {COST_FRAMES} frames; data-p95 holds the 95th percentile")}></span>
                    if live_meters {
                        <span data-testid="dropped" title="trace events the nodes dropped because the page fell behind">
                            { format!("{dropped} events dropped") }</span>
                    }
                    if let Some(lag) = lag {
                        <span data-testid="lag" title="how far the screen is behind the cluster (slow motion, pairing sends with deliveries)">
                            { format!("{:.1} s behind", lag as f64 / 1e6) }</span>
                    }
                    if self.mode == Mode::Simulated {
                        <a data-testid="share" href={self.share_link()}
                            title="this link replays the run">{ "link to this run" }</a>
                    }
                    <button data-testid="export" class="quiet" disabled={!exportable} onclick={link.callback(|_| Msg::Export)}
                        title="download this live run (cluster, trace events, history) as JSON">{ "export" }</button>
                    <label class="file" title="open an exported live run">{ "open trace" }
                        <input type="file" data-testid="open-trace" accept=".json,application/json" onchange={on_open} />
                    </label>
                </div>
            </header>
        }
    }

    /// The scrubber: simulated time from 0 to the furthest the run reached. Dragging it back
    /// replays the run from its link to that time; acting there branches the run.
    fn view_scrubber(&self, ctx: &Context<Self>) -> Html {
        let session = &self.session;
        let ms = |at: Micros| at as f64 / 1_000.0;
        let at = session.seeking().unwrap_or(session.shown());
        let on_scrub = ctx.link().callback(|event: InputEvent| Msg::Scrub(input_value(&event).parse().unwrap_or(0.0)));
        let (state, title) = match (session.seeking(), session.branched_at()) {
            (Some(target), _) => (format!("replaying to {}…", time_label(target)), "rebuilding the run from its link"),
            (None, _) if session.shown() < session.reached() => (
                format!("{} of {}", time_label(session.shown()), time_label(session.reached())),
                "scrubbed back: play replays the run; acting here branches it (later actions are dropped)",
            ),
            (None, Some(branched)) => (
                format!("branched at {}", time_label(branched)),
                "you acted after scrubbing back: the actions after that point were dropped",
            ),
            (None, None) => (String::new(), ""),
        };
        html! {
            <label class="scrub" title="scrub through the run: back replays it from its link, forward up to the furthest time reached">{ "time " }
                <input type="range" data-testid="scrubber" min="0" max={format!("{:.3}", ms(session.reached()))} step="any"
                    value={format!("{:.3}", ms(at))} oninput={on_scrub} />
                <span data-testid="scrub-state" class="scrub-state" title={title}>{ state }</span>
            </label>
        }
    }

    /// The ring: an SVG of everything that holds still (circle, ticks, cut links, nodes, the
    /// key's marker; memoized, it changes only with the key, the receiver, node states and
    /// cuts), under a canvas the frame loop paints the message dots on.
    fn view_ring(&self, ctx: &Context<Self>) -> Html {
        let session = self.stage();
        let layout = &self.layout;
        let center = layout.center;
        let nodes = session.ring().node_count() as u32;
        let statuses: Vec<_> = (0..nodes).map(|node| session.status(NodeId(node))).collect();
        let stamp = fingerprint((
            self.epoch,
            self.mode,
            &self.key,
            self.receiver,
            statuses,
            session.cuts(),
            self.reduced_motion,
        ));
        let still = {
            let mut memos = self.memos.borrow_mut();
            memoized(&mut memos.ring, stamp, || self.view_ring_still(ctx))
        };
        html! {
            <div class="drawing ring-stage" ref={self.ring_stage.clone()}
                onmousemove={pointer_handler(ctx, Drawing::Ring, &self.ring_stage)}
                onmouseleave={ctx.link().callback(|_| Msg::Pointer(Drawing::Ring, None))}>
                <svg class="ring" viewBox={format!("0 0 {RING_SIZE} {RING_SIZE}")} role="img"
                    aria-label="the consistent-hash ring with messages travelling between nodes">
                    <defs>
                        <marker id="arrow-cut" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                            <path d="M0 0 L10 5 L0 10 z" fill="#D55E00" />
                        </marker>
                    </defs>
                    <Memo stamp={stamp} content={still} />
                    <text class="ring-caption" x={f(center.x)} y={f(center.y - 8.0)}>{ "SHA-1 ring" }</text>
                    <text class="ring-caption small" x={f(center.x)} y={f(center.y + 12.0)}>
                        { format!("N={} R={} W={} · {} token{} per node", session.config().replicas, session.config().read_quorum,
                            session.config().write_quorum, session.config().tokens_per_node,
                            if session.config().tokens_per_node == 1 { "" } else { "s" }) }
                    </text>
                </svg>
                <canvas class="dots" data-testid="ring-canvas" ref={self.ring_canvas.surface.node.clone()}
                    data-hovered={self.hovered.map(flight_id).unwrap_or_default()}
                    data-motion={if self.reduced_motion { "reduced" } else { "full" }}
                    aria-hidden="true"></canvas>
                // Written by the frame loop, like the clock.
                <div class="op-votes" data-testid="op-votes" ref={self.op_votes.node.clone()}
                    title="the operation in focus (click a row of the history) and its quorum votes"></div>
                { self.view_flight_tip(Drawing::Ring) }
            </div>
        }
    }

    /// The hovered message's description, next to the pointer in the drawing it is hovered in.
    fn view_flight_tip(&self, drawing: Drawing) -> Html {
        let Some((at, pointer)) = self.hover_at else { return html! {} };
        let stage = self.stage();
        let Some(flight) = self.hovered.and_then(|key| stage.flights().get(key)) else { return html! {} };
        if at != drawing {
            return html! {};
        }
        // Below the pointer in the drawing's upper half, above it in the lower half.
        let style = if pointer.y > pointer.height / 2.0 {
            format!("left: {:.0}px; top: {:.0}px; transform: translateY(-100%)", pointer.x + 12.0, pointer.y - 12.0)
        } else {
            format!("left: {:.0}px; top: {:.0}px", pointer.x + 12.0, pointer.y + 12.0)
        };
        html! {
            <div class="flight-tip" data-testid="flight-tip" role="tooltip" style={style}>
                { flight_title(stage, flight) }
            </div>
        }
    }

    fn view_ring_still(&self, ctx: &Context<Self>) -> Html {
        let session = self.stage();
        let layout = &self.layout;
        let ring = session.ring();
        let place = (!self.key.is_empty()).then(|| layout.place_key(ring, self.key.as_bytes()));
        let role_of = |node: NodeId| {
            place.as_ref().and_then(|place| place.roles.iter().find(|(n, _)| *n == node)).map(|(_, role)| *role)
        };
        let center = layout.center;

        // The arc from the key to the token that owns it, in the coordinator's colour.
        let key_arc = place.as_ref().map(|place| {
            let owner = ring
                .tokens()
                .iter()
                .map(|token| crate::layout::turn_of(&token.position))
                .min_by(|a, b| (a - place.turn).rem_euclid(1.0).total_cmp(&(b - place.turn).rem_euclid(1.0)))
                .unwrap_or(place.turn);
            html! { <path class="key-arc" d={layout.arc_path(layout.radius, place.turn, owner)} /> }
        });
        let ticks = layout.ticks.iter().map(|tick| {
            let role = role_of(tick.node).map_or("", |role| role.label());
            html! {
                <line class={classes!("tick", role)} x1={f(tick.inner.x)} y1={f(tick.inner.y)} x2={f(tick.outer.x)} y2={f(tick.outer.y)}>
                    <title>{ format!("token of {}", ring.name(tick.node)) }</title>
                </line>
            }
        });
        let cuts = session.cuts().into_iter().map(|(from, to)| {
            html! { <path class="cut" d={layout.message_path(from, to)} marker-end="url(#arrow-cut)" /> }
        });
        let nodes = layout.nodes.iter().map(|place| {
            let status = session.status(place.node);
            let role = role_of(place.node);
            let fallback_rank = role
                .filter(|role| *role == Role::Fallback)
                .and_then(|_| self.layout_rank(place.node))
                .map(|rank| format!(" {rank}"))
                .unwrap_or_default();
            let state = if status.down {
                "down"
            } else if status.recovering {
                "recovering"
            } else {
                "up"
            };
            let node = place.node.0;
            let select = ctx.link().callback(move |_| Msg::Receiver(node));
            let selected = self.receiver == node;
            html! {
                <g class={classes!("node", state, role.map(|role| role.label()), selected.then_some("selected"))}
                    data-testid={format!("node-{}", place.name)} data-state={state} onclick={select}>
                    <title>{ format!("{} ({state}); click to send requests here", place.name) }</title>
                    <circle class="node-body" cx={f(place.point.x)} cy={f(place.point.y)} r="21" />
                    if status.down {
                        <text class="node-mark" x={f(place.point.x)} y={f(place.point.y + 6.0)}>{ "✕" }</text>
                    }
                    <text class="node-name" x={f(place.label.x)} y={f(place.label.y - 3.0)}>{ &place.name }</text>
                    <text class="node-role" x={f(place.label.x)} y={f(place.label.y + 12.0)}>
                        { match (status.down, status.recovering) {
                            (true, _) => "down".to_string(),
                            (false, true) => "recovering".to_string(),
                            _ => role.map(|role| format!("{}{fallback_rank}", role.label())).unwrap_or_default(),
                        } }
                    </text>
                </g>
            }
        });
        let key_marker = place.as_ref().map(|place| {
            let label = crate::layout::point_on_circle(center, layout.radius - 30.0, place.turn);
            html! {
                <g class="key-marker" data-testid="key-marker">
                    <rect x={f(place.point.x - 6.0)} y={f(place.point.y - 6.0)} width="12" height="12"
                        transform={format!("rotate(45 {} {})", f(place.point.x), f(place.point.y))} />
                    <text x={f(label.x)} y={f(label.y + 4.0)}>{ &self.key }</text>
                </g>
            }
        });
        html! {
            <>
                <circle class="ring-circle" cx={f(center.x)} cy={f(center.y)} r={f(layout.radius)} />
                { for key_arc }
                { for ticks }
                { for cuts }
                { for nodes }
                { for key_marker }
            </>
        }
    }

    /// 1-based rank of `node` among the chosen key's fallbacks.
    fn layout_rank(&self, node: NodeId) -> Option<usize> {
        let preference = self.stage().ring().preference(self.key.as_bytes());
        let homes = self.stage().ring().replicas();
        preference.iter().position(|n| *n == node).filter(|rank| *rank >= homes).map(|rank| rank - homes + 1)
    }

    fn view_client(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let key = Blob::from(self.key.as_str());
        let value = Blob::from(self.value.as_str());
        let put = {
            let (key, value) = (key.clone(), value.clone());
            link.callback(move |_| Msg::Request(ClientOp::Put { key: key.clone(), value: value.clone() }))
        };
        let get = {
            let key = key.clone();
            link.callback(move |_| Msg::Request(ClientOp::Get { key: key.clone() }))
        };
        let delete = link.callback(move |_| Msg::Request(ClientOp::Delete { key: key.clone() }));
        let stage = self.stage();
        // A recording takes no requests.
        let watching = self.mode == Mode::Replay;
        let latest = stage.requests().last();
        let (result, result_class) = match latest {
            None => ("no request yet".to_string(), "idle"),
            Some(request) => {
                let via = stage.name(request.node);
                match request.answer_at(stage.shown()) {
                    Answer::Waiting => (format!("{} via {via}: waiting…", op_text(&request.op)), "waiting"),
                    Answer::Replied { reply, .. } => {
                        let class = if matches!(reply, dynamo_core::message::ClientReply::Error(_)) {
                            "failed"
                        } else {
                            "done"
                        };
                        (format!("{} via {via}: {}", op_text(&request.op), reply_text(reply)), class)
                    }
                    Answer::GaveUp { .. } => {
                        (format!("{} via {via}: no answer, the client gave up", op_text(&request.op)), "failed")
                    }
                }
            }
        };
        html! {
            <div class="panel client">
                <h2>{ "Client" }</h2>
                <div class="row">
                    <label>{ "key" }<input data-testid="key" value={self.key.clone()}
                        oninput={link.callback(|event: InputEvent| Msg::Key(input_value(&event)))} /></label>
                    <label>{ "value" }<input data-testid="value" value={self.value.clone()}
                        oninput={link.callback(|event: InputEvent| Msg::Value(input_value(&event)))} /></label>
                    <label>{ "via" }
                        <select data-testid="receiver" onchange={link.callback(|event: Event| Msg::Receiver(select_value(&event).parse().unwrap_or(0)))}>
                            { for self.node_options(self.receiver) }
                        </select>
                    </label>
                </div>
                <div class="row buttons">
                    <button data-testid="put" disabled={watching} onclick={put}>{ "put" }</button>
                    <button data-testid="get" disabled={watching} onclick={get}>{ "get" }</button>
                    <button data-testid="delete" disabled={watching} onclick={delete}>{ "delete" }</button>
                    <button data-testid="local-query" disabled={watching} title="every pair stored on the receiving node"
                        onclick={link.callback(|_| Msg::Request(ClientOp::LocalQuery))}>{ "@" }</button>
                    <button data-testid="global-query" disabled={watching} title="every pair in the store"
                        onclick={link.callback(|_| Msg::Request(ClientOp::GlobalQuery))}>{ "*" }</button>
                    <button data-testid="burst" class="quiet" disabled={watching} title={format!("{BURST_WRITES} writes at once, to every node")}
                        onclick={link.callback(|_| Msg::Burst)}>{ "burst" }</button>
                </div>
                <div class={classes!("result", result_class)} data-testid="result" aria-live="polite">{ result }</div>
                if self.mode == Mode::Simulated {
                    { self.view_workload(ctx) }
                }
            </div>
        }
    }

    /// The workload generator: random gets and puts at a rate, over a few keys, each logged
    /// like a request sent by hand.
    fn view_workload(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let running = self.session.workload().is_some();
        let field = |label: &'static str, testid: &'static str, which: WorkloadField, value: u32, max: u32| {
            html! {
                <label>{ label }<input type="number" data-testid={testid} min="0" max={max.to_string()} value={value.to_string()}
                    onchange={link.callback(move |event: Event| Msg::WorkloadField(which, change_value(&event)))} /></label>
            }
        };
        let settings = self.workload;
        html! {
            <div class="row workload">
                { field("ops/s", "workload-rate", WorkloadField::Rate, settings.rate_per_second, WORKLOAD_RATE_MAX) }
                { field("keys", "workload-keys", WorkloadField::Keys, settings.keys, 1_000) }
                { field("reads %", "workload-reads", WorkloadField::Reads, settings.reads_percent, 100) }
                <button data-testid="workload" class={classes!(running.then_some("active"))} aria-pressed={running.to_string()}
                    title="random gets and puts on keys w0, w1, ... at this rate (per simulated second), from the run's seed"
                    onclick={link.callback(|_| Msg::Workload)}>{ if running { "stop workload" } else { "start workload" } }</button>
            </div>
        }
    }

    fn node_options(&self, selected: u32) -> impl Iterator<Item = Html> + '_ {
        self.stage().ring().names().iter().enumerate().map(move |(index, name)| {
            html! { <option value={index.to_string()} selected={index as u32 == selected}>{ name }</option> }
        })
    }

    fn view_history(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let session = self.stage();
        let shown = session.shown();
        let verdict = session.verdict();
        let verdict_class = if verdict.report.is_linearizable() { "ok" } else { "bad" };
        let focus = session.focus();
        let rows = session.requests().iter().enumerate().rev().take(HISTORY_ROWS).map(|(index, request)| {
            let (answer, class) = match request.answer_at(shown) {
                Answer::Waiting if request.sent_at > shown => ("sending".to_string(), "waiting"),
                Answer::Waiting => ("waiting".to_string(), "waiting"),
                Answer::Replied { reply, at } => {
                    let class =
                        if matches!(reply, dynamo_core::message::ClientReply::Error(_)) { "failed" } else { "done" };
                    (format!("{} ({})", reply_text(reply), duration_label(at - request.sent_at)), class)
                }
                Answer::GaveUp { .. } => ("gave up".to_string(), "failed"),
            };
            // Keyed by request: a new request is one inserted row, not every row rewritten.
            html! {
                <tr key={index} class={classes!(class, (focus == Some(index)).then_some("focus"))}
                    onclick={link.callback(move |_| Msg::Focus(index))}>
                    <td class="number">{ index + 1 }</td>
                    <td class="time">{ time_label(request.sent_at) }</td>
                    <td>{ session.name(request.node) }</td>
                    <td class="op">{ op_text(&request.op) }</td>
                    <td class="answer">{ answer }</td>
                </tr>
            }
        });
        html! {
            <div class="panel history">
                <h2>{ "History" }</h2>
                <div class={classes!("verdict", verdict_class)} data-testid="verdict" title="per-key linearizability (dynamo_core::checker)">
                    { verdict.text() }
                </div>
                <div class="scroll">
                    <table data-testid="history">
                        <thead><tr><th>{ "#" }</th><th>{ "sent" }</th><th>{ "via" }</th><th>{ "operation" }</th><th>{ "answer" }</th></tr></thead>
                        <tbody>{ for rows }</tbody>
                    </table>
                </div>
            </div>
        }
    }

    fn view_scenarios(&self, ctx: &Context<Self>) -> Html {
        let buttons = Scenario::ALL.iter().map(|scenario| {
            let scenario = *scenario;
            html! {
                <button data-testid={scenario.slug()} title={scenario.description()}
                    onclick={ctx.link().callback(move |_| Msg::Scenario(scenario))}>{ scenario.title() }</button>
            }
        });
        html! {
            <div class="panel scenarios">
                <h2>{ "Guided scenarios" }<span class="hint">{ " on the chosen key; hover for what to watch" }</span></h2>
                <div class="row buttons">{ for buttons }</div>
            </div>
        }
    }

    /// The space-time diagram: lanes, names and the time axis in SVG (re-rendered with the
    /// page), the message lines on a canvas the frame loop paints.
    fn view_diagram(&self, ctx: &Context<Self>) -> Html {
        let session = self.stage();
        let geometry = DiagramGeometry::new(
            DIAGRAM_WIDTH,
            DIAGRAM_HEIGHT,
            session.ring().node_count(),
            session.shown(),
            session.latency_max(),
        );
        let lanes = (0..geometry.nodes as u32).map(NodeId).map(|node| {
            let status = session.status(node);
            let class = if status.down {
                "lane down"
            } else if status.recovering {
                "lane recovering"
            } else {
                "lane"
            };
            let x = geometry.lane(node);
            html! {
                <g>
                    <line class={class} x1={f(x)} y1={f(geometry.top)} x2={f(x)} y2={f(geometry.bottom)} />
                    <text class="lane-name" x={f(x)} y="14">{ session.name(node) }</text>
                </g>
            }
        });
        html! {
            <div class="drawing diagram-stage" ref={self.diagram_stage.clone()}
                onmousemove={pointer_handler(ctx, Drawing::Diagram, &self.diagram_stage)}
                onmouseleave={ctx.link().callback(|_| Msg::Pointer(Drawing::Diagram, None))}>
                <svg class="diagram" data-testid="diagram" viewBox={format!("0 0 {DIAGRAM_WIDTH} {DIAGRAM_HEIGHT}")}>
                    { for lanes }
                    <text class="axis" x="4" y={f(geometry.top + 4.0)}>{ format!("-{}", duration_label(geometry.window)) }</text>
                    <text class="axis" x="4" y={f(geometry.bottom)}>{ "now" }</text>
                </svg>
                <canvas class="lines" data-testid="diagram-canvas" ref={self.diagram_canvas.surface.node.clone()}
                    data-hovered={self.hovered.map(flight_id).unwrap_or_default()} aria-hidden="true"></canvas>
                { self.view_flight_tip(Drawing::Diagram) }
            </div>
        }
    }

    fn view_events(&self) -> Html {
        let session = self.stage();
        let lines = session.log().iter().rev().take(LOG_LINES_SHOWN).map(|line| {
            let tone = match line.tone {
                Tone::Client => "client",
                Tone::Fault => "fault",
                Tone::Recovery => "recovery",
                Tone::Hint => "hint",
                Tone::Repair => "repair",
                Tone::Detail => "detail",
            };
            html! {
                <li class={tone}>
                    <span class="time">{ time_label(line.at) }</span>
                    <span class="who">{ session.name(line.node) }</span>
                    <span class="what">{ &line.text }</span>
                </li>
            }
        });
        html! { <ol class="events" data-testid="events">{ for lines }</ol> }
    }

    /// The inspectors, each re-rendered only when its node's state, its liveness or its store
    /// changed; the store is read again only when it is their turn to refresh, since
    /// reading it formats every row.
    fn view_inspectors(&self, ctx: &Context<Self>) -> Html {
        let stage = self.stage();
        let nodes = stage.ring().node_count();
        let mut memos = self.memos.borrow_mut();
        memos.inspectors.resize_with(nodes, CachedInspector::default);
        let items = memos.inspectors.iter_mut().enumerate().map(|(index, cached)| {
            let node = NodeId(index as u32);
            let up = stage.is_up(node);
            let quick = fingerprint((self.epoch, self.mode, index, up, stage.status(node)));
            if cached.html.is_none() || cached.quick != quick || self.refresh & PANEL_INSPECTORS != 0 {
                let view = stage.node_view(node);
                if cached.html.is_none() || cached.quick != quick || cached.view.as_ref() != Some(&view) {
                    cached.serial += 1;
                    cached.html = Some(Rc::new(self.view_inspector(ctx, node, &view, up)));
                    cached.view = Some(view);
                }
                cached.quick = quick;
            }
            let content = cached.html.clone().unwrap_or_else(|| Rc::new(Html::default()));
            html! { <Memo key={index} stamp={cached.serial} content={content} /> }
        });
        html! { <>{ for items }</> }
    }

    /// The history and verdict, re-rendered when a request, an answer on screen or the verdict
    /// changed, looked at only in its turn.
    fn memo_history(&self, ctx: &Context<Self>) -> Html {
        if let Some(kept) = self.kept(PANEL_HISTORY, |memos| &memos.history) {
            return kept;
        }
        let stage = self.stage();
        let shown = stage.shown();
        let requests = stage.requests();
        let rows: Vec<u8> = requests
            .iter()
            .rev()
            .take(HISTORY_ROWS)
            .map(|request| match request.answer_at(shown) {
                Answer::Waiting if request.sent_at > shown => 0,
                Answer::Waiting => 1,
                Answer::Replied { .. } => 2,
                Answer::GaveUp { .. } => 3,
            })
            .collect();
        let last = requests.last().map(|request| (request.sent_at, request.node));
        let focus = stage.focus();
        let stamp = fingerprint((self.epoch, self.mode, requests.len(), last, rows, focus, stage.verdict().text()));
        let content = memoized(&mut self.memos.borrow_mut().history, stamp, || self.view_history(ctx));
        html! { <Memo stamp={stamp} content={content} /> }
    }

    /// The events log, re-rendered when a line was added, looked at only in its turn.
    fn memo_events(&self) -> Html {
        if let Some(kept) = self.kept(PANEL_EVENTS, |memos| &memos.events) {
            return kept;
        }
        let log = self.stage().log();
        let newest = log.back().map(|line| (line.at, line.node, line.text.len()));
        let oldest = log.front().map(|line| line.at);
        let stamp = fingerprint((self.epoch, self.mode, log.len(), newest, oldest));
        let content = memoized(&mut self.memos.borrow_mut().events, stamp, || self.view_events());
        html! { <Memo stamp={stamp} content={content} /> }
    }

    /// A memoized panel as it is, when it is not `panel`'s turn to refresh.
    fn kept(&self, panel: u32, cached: impl Fn(&Memos) -> &Cached) -> Option<Html> {
        if self.refresh & panel != 0 {
            return None;
        }
        let memos = self.memos.borrow();
        let cached = cached(&memos);
        let content = cached.html.clone()?;
        Some(html! { <Memo stamp={cached.stamp} content={content} /> })
    }

    fn view_inspector(&self, ctx: &Context<Self>, node: NodeId, view: &crate::session::NodeView, up: bool) -> Html {
        let state = if view.status.down {
            "down"
        } else if view.status.recovering {
            "recovering"
        } else {
            "up"
        };
        let (fail, heal) = match self.mode {
            Mode::Simulated => (Msg::Fault(FaultAction::Crash(node)), Msg::Fault(FaultAction::Restart(node))),
            _ => (
                Msg::Control(Control::Kill { node: view.name.clone() }),
                Msg::Control(Control::Restart { node: view.name.clone() }),
            ),
        };
        let (fail, heal) = (ctx.link().callback(move |_| fail.clone()), ctx.link().callback(move |_| heal.clone()));
        // A recording is only watched.
        let controllable = self.mode != Mode::Replay;
        let hidden = view.keys.len().saturating_sub(INSPECTOR_ROWS_MAX);
        let rows = view.keys.iter().take(INSPECTOR_ROWS_MAX).map(|row| {
            html! {
                <tr key={row.key.clone()} class={classes!((!row.home).then_some("foreign"), row.value.is_none().then_some("tombstone"))}>
                    <td class="key">{ &row.key }</td>
                    <td>{ row.value.clone().unwrap_or_else(|| "⌫ tombstone".to_string()) }</td>
                    <td title={format!("promised {}", row.promised)}>{ &row.ballot }</td>
                    <td class="clock">{ &row.clock }</td>
                </tr>
            }
        });
        let hints = view.hints.iter().take(INSPECTOR_ROWS_MAX).map(|hint| {
            html! { <li>{ format!("{} = {} for {}", hint.key, hint.value.clone().unwrap_or_else(|| "⌫".to_string()), hint.home) }</li> }
        });
        html! {
            <div class={classes!("panel", "inspector", state)} data-testid={format!("inspector-{}", view.name)}>
                <div class="inspector-head">
                    <h3>{ &view.name }</h3>
                    <span class={classes!("chip", state)} data-testid={format!("status-{}", view.name)}>{ state }</span>
                    <button data-testid={format!("fail-{}", view.name)} class="danger" disabled={!up || !controllable} onclick={fail}
                        title={if self.mode == Mode::Simulated { "crash the node" } else { "SIGKILL the node's process" }}>{ "fail" }</button>
                    <button data-testid={format!("heal-{}", view.name)} disabled={up || !controllable} onclick={heal}
                        title={if self.mode == Mode::Simulated { "restart it from its disk" } else { "restart the node's process" }}>{ "heal" }</button>
                </div>
                if view.from_disk {
                    <div class="note">{ if self.mode == Mode::Simulated { "down: showing what its disk holds" } else { "down: showing its last inspection" } }</div>
                }
                if !view.suspects.is_empty() {
                    <div class="note">{ format!("suspects {}", view.suspects.join(", ")) }</div>
                }
                <table class="store">
                    <thead><tr><th>{ "key" }</th><th>{ "value" }</th><th>{ "ballot" }</th><th>{ "clock" }</th></tr></thead>
                    <tbody>{ for rows }</tbody>
                </table>
                if hidden > 0 {
                    <div class="note">{ format!("and {hidden} more keys") }</div>
                }
                if !view.hints.is_empty() {
                    <div class="hints"><h4>{ "hints held" }</h4><ul>{ for hints }</ul></div>
                }
            </div>
        }
    }

    fn view_network(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let (from, to) = (NodeId(self.cut_from), NodeId(self.cut_to));
        let simulated = self.mode == Mode::Simulated;
        let names = self.stage().ring().names();
        let (from_name, to_name) = (names[from.index()].clone(), names[to.index()].clone());
        let (cut, heal, heal_all) = if simulated {
            (
                Msg::Fault(FaultAction::Cut { from, to }),
                Msg::Fault(FaultAction::Heal { from, to }),
                Msg::Fault(FaultAction::HealAll),
            )
        } else {
            (
                Msg::Control(Control::Cut { from: from_name.clone(), to: to_name.clone() }),
                Msg::Control(Control::Heal { from: from_name, to: to_name }),
                Msg::Control(Control::HealAll),
            )
        };
        let controllable = self.mode != Mode::Replay;
        let cut_one = link.callback(move |_| cut.clone());
        let heal_one = link.callback(move |_| heal.clone());
        let heal_every = link.callback(move |_| heal_all.clone());
        let on_loss = link.callback(|event: InputEvent| {
            let percent: f64 = input_value(&event).parse().unwrap_or(0.0);
            Msg::Loss((percent * 10_000.0).round() as u32)
        });
        let on_latency = link.callback(|event: InputEvent| Msg::Latency(input_value(&event).parse().unwrap_or(5)));
        let stage = self.stage();
        let cuts: Vec<String> =
            stage.cuts().into_iter().map(|(from, to)| format!("{} → {}", stage.name(from), stage.name(to))).collect();
        html! {
            <>
                <h2>{ "Network" }</h2>
                <div class="row">
                    <label>{ "from" }<select data-testid="cut-from" onchange={link.callback(|event: Event| Msg::CutFrom(select_value(&event).parse().unwrap_or(0)))}>
                        { for self.node_options(self.cut_from) }</select></label>
                    <label>{ "to" }<select data-testid="cut-to" onchange={link.callback(|event: Event| Msg::CutTo(select_value(&event).parse().unwrap_or(1)))}>
                        { for self.node_options(self.cut_to) }</select></label>
                    <button data-testid="cut" disabled={from == to || !controllable} onclick={cut_one}>{ "cut one way" }</button>
                    <button data-testid="heal-link" disabled={!controllable} onclick={heal_one}>{ "heal" }</button>
                    <button data-testid="heal-all" disabled={!controllable} onclick={heal_every}>{ "heal all" }</button>
                </div>
                <div class="row">
                    if simulated {
                        <label class="wide">{ "message loss " }
                            <input type="range" data-testid="loss" min="0" max="30" step="1"
                                value={format!("{:.0}", self.session.loss_per_million() as f64 / 10_000.0)} oninput={on_loss} />
                            <span data-testid="loss-label">{ format!("{:.0}%", self.session.loss_per_million() as f64 / 10_000.0) }</span>
                        </label>
                        <label class="wide">{ "latency " }
                            <input type="range" data-testid="latency" min="1" max={LATENCY_SLIDER_MAX_MS.to_string()} step="1"
                                value={(self.session.latency().1 / 1_000).max(1).to_string()} oninput={on_latency} />
                            <span data-testid="latency-label">{ format!("{}–{}", duration_label(self.session.latency().0), duration_label(self.session.latency().1)) }</span>
                        </label>
                        <span class="note" data-testid="lost" title="messages the network lost to this setting, up to the time on screen">
                            { format!("{} lost", self.session.lost()) }</span>
                    }
                    <span class="note">{ if cuts.is_empty() { "no cut links".to_string() } else { format!("cut: {}", cuts.join(", ")) } }</span>
                </div>
            </>
        }
    }

    fn view_config(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let draft = &self.draft;
        let field = |label: &'static str, testid: &'static str, which: Field, value: String| {
            html! {
                <label>{ label }
                    <input data-testid={testid} type="number" min="0" value={value}
                        onchange={link.callback(move |event: Event| Msg::Draft(which, change_value(&event)))} />
                </label>
            }
        };
        html! {
            <>
                <h2>{ "Run" }<span class="hint">{ " restarting replays nothing: a fresh cluster from the seed" }</span></h2>
                <div class="row config">
                    { field("seed", "seed", Field::Seed, draft.seed.to_string()) }
                    { field("N", "config-n", Field::Replicas, draft.replicas.to_string()) }
                    { field("R", "config-r", Field::ReadQuorum, draft.read_quorum.to_string()) }
                    { field("W", "config-w", Field::WriteQuorum, draft.write_quorum.to_string()) }
                    { field("tokens", "config-tokens", Field::Tokens, draft.tokens_per_node.to_string()) }
                    { field("latency min µs", "latency-min", Field::LatencyMin, draft.latency_min_us.to_string()) }
                    { field("latency max µs", "latency-max", Field::LatencyMax, draft.latency_max_us.to_string()) }
                    { field("timeout ms", "config-timeout", Field::Timeout, draft.request_timeout_ms.to_string()) }
                    <label class="check">
                        <input type="checkbox" data-testid="config-eventual" checked={draft.eventual}
                            onchange={link.callback(|event: Event| {
                                let checked = event.target_unchecked_into::<HtmlInputElement>().checked();
                                Msg::Draft(Field::Eventual, checked.to_string())
                            })} />
                        { "eventual (allow R+W ≤ N)" }
                    </label>
                    <button data-testid="restart" onclick={link.callback(|_| Msg::Restart)}>{ "restart run" }</button>
                </div>
            </>
        }
    }
}

impl App {
    /// Live and Replay modes' stand-in for the run options: the real cluster's description.
    fn view_cluster(&self) -> Html {
        let session = if self.mode == Mode::Replay { self.replay.as_ref() } else { self.live.as_ref() };
        let Some(session) = session else { return html! {} };
        let config = session.config();
        let rows = session.cluster().nodes.iter().enumerate().map(|(index, node)| {
            let socket = match session.socket(NodeId(index as u32)) {
                crate::live::Socket::Open => "connected",
                crate::live::Socket::Connecting => "connecting",
                crate::live::Socket::Closed => "closed",
            };
            html! {
                <tr>
                    <td>{ &node.name }</td>
                    <td>{ format!("ws://{}/client", node.ws) }</td>
                    <td>{ &node.resp }</td>
                    <td>{ if session.is_up(NodeId(index as u32)) { "running" } else { "down" } }</td>
                    if !session.is_replay() {
                        <td>{ socket }</td>
                    }
                </tr>
            }
        });
        let title = if session.is_replay() { "Recording" } else { "Live cluster" };
        let hint = if session.is_replay() {
            " an exported live run, replayed: watch only".to_string()
        } else if self.token.is_some() {
            format!(" real processes; the screen is at most {} s behind them", crate::live::LAG_MAX / 1_000_000)
        } else {
            " real processes; no admin token, so faults will be refused (open the page from the supervisor)".to_string()
        };
        html! {
            <>
                <h2>{ title }<span class="hint">{ hint }</span></h2>
                <div class="note">{ format!("N={} R={} W={}, {} token(s) per node, request timeout {} ms, operation timeout {} ms",
                    config.replicas, config.read_quorum, config.write_quorum, config.tokens_per_node,
                    config.request_timeout_ms, config.operation_timeout_ms) }</div>
                <table class="store" data-testid="cluster">
                    <tbody>{ for rows }</tbody>
                </table>
            </>
        }
    }
}

fn view_legend() -> Html {
    let items = Family::ALL.iter().map(|family| {
        html! {
            <li><svg width="12" height="12"><circle cx="6" cy="6" r="5" fill={family.colour()} /></svg>{ family.label() }</li>
        }
    });
    html! {
        <ul class="legend" aria-label="message colours">
            { for items }
            <li class="shape"><svg width="12" height="12"><circle cx="6" cy="6" r="4" fill="none" stroke="#b8bec9" stroke-width="2" /></svg>{ "ring = reply" }</li>
            <li class="shape">{ "✕ = lost" }</li>
        </ul>
    }
}

fn flight_title(session: &dyn Stage, flight: &Flight) -> String {
    let mut title = format!(
        "{} {} → {}, sent {}",
        kind_name(flight.kind),
        session.name(flight.key.from),
        session.name(flight.to),
        time_label(flight.sent_at)
    );
    if let Some(subject) = &flight.subject {
        title.push_str(&format!(", key {subject}"));
    }
    match flight.arrival {
        Arrival::Delivered(at) => title.push_str(&format!(", arrives {}", time_label(at))),
        Arrival::Dropped { at, reason } => title.push_str(&format!(", lost at {} ({reason:?})", time_label(at))),
        Arrival::Unknown => {}
    }
    title
}

/// Returns the memoized rendering in `cached` if it was made from `stamp`, else renders anew.
fn memoized(cached: &mut Cached, stamp: u64, render: impl FnOnce() -> Html) -> Rc<Html> {
    match &cached.html {
        Some(html) if cached.stamp == stamp => html.clone(),
        _ => {
            let html = Rc::new(render());
            cached.stamp = stamp;
            cached.html = Some(html.clone());
            html
        }
    }
}

/// A flight's name in the drawings' `data-hovered` attributes: sender, id, copy.
fn flight_id(key: FlightKey) -> String {
    format!("{}.{}.{}", key.from.0, key.id, key.copy)
}

/// Reports the pointer's position over a drawing, relative to the drawing's box `stage`, with
/// the box's width (the drawing may be scaled). The box comes from a `NodeRef`, not the event:
/// Yew delegates events, so their `currentTarget` is the page's root.
fn pointer_handler(ctx: &Context<App>, drawing: Drawing, stage: &NodeRef) -> Callback<MouseEvent> {
    let stage = stage.clone();
    ctx.link().callback(move |event: MouseEvent| {
        let at = stage.cast::<web_sys::Element>().map(|element| {
            let rect = element.get_bounding_client_rect();
            Pointer {
                x: event.client_x() as f64 - rect.left(),
                y: event.client_y() as f64 - rect.top(),
                width: rect.width(),
                height: rect.height(),
            }
        });
        Msg::Pointer(drawing, at)
    })
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

/// The few browser calls outside Yew. Each fails soft: without a window there is no link, no
/// shortcut and no motion preference, but the page still works.
mod browser {
    use super::*;

    pub fn fragment() -> String {
        web_sys::window().and_then(|window| window.location().hash().ok()).unwrap_or_default()
    }

    pub fn set_fragment(fragment: &str) {
        let Some(window) = web_sys::window() else { return };
        if let Ok(history) = window.history() {
            // replaceState: the address bar follows the run without filling the back button.
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&format!("#{fragment}")));
        }
    }

    /// The page clock in milliseconds (`performance.now()`).
    pub fn now_ms() -> f64 {
        web_sys::window().and_then(|window| window.performance()).map_or(0.0, |performance| performance.now())
    }

    /// The page clock in microseconds: the time base of Live mode's history.
    pub fn now_us() -> Micros {
        (now_ms() * 1_000.0) as Micros
    }

    /// The page clock's origin in UNIX-epoch microseconds (`performance.timeOrigin`).
    pub fn time_origin_us() -> Micros {
        web_sys::window()
            .and_then(|window| window.performance())
            .map_or(0, |performance| (performance.time_origin() * 1_000.0) as Micros)
    }

    /// The admin token the supervisor writes into the page it serves.
    pub fn admin_token() -> Option<String> {
        meta("dynamo-admin-token")
    }

    /// The nodes' client password, which the supervisor writes into the page when it has one.
    pub fn client_password() -> Option<String> {
        meta("dynamo-password")
    }

    fn meta(name: &str) -> Option<String> {
        let document = web_sys::window()?.document()?;
        let meta = document.query_selector(&format!("meta[name=\"{name}\"]")).ok()??;
        crate::live::token_of(meta.get_attribute("content"))
    }

    pub fn prefers_reduced_motion() -> bool {
        web_sys::window()
            .and_then(|window| window.match_media("(prefers-reduced-motion: reduce)").ok().flatten())
            .is_some_and(|query| query.matches())
    }

    /// Calls `handle` with the new value whenever the system's reduced-motion setting changes.
    pub fn on_reduced_motion(handle: impl Fn(bool) + 'static) -> Option<Closure<dyn Fn(web_sys::Event)>> {
        let query = web_sys::window()?.match_media("(prefers-reduced-motion: reduce)").ok()??;
        let watched = query.clone();
        let closure = Closure::<dyn Fn(web_sys::Event)>::new(move |_| handle(watched.matches()));
        query.add_event_listener_with_callback("change", closure.as_ref().unchecked_ref()).ok()?;
        Some(closure)
    }

    /// Calls `handle` with the key of every key press outside text fields (space and `.` are
    /// typed into the key and value fields too).
    pub fn on_key(handle: impl Fn(String) + 'static) -> Option<Closure<dyn Fn(KeyboardEvent)>> {
        let document = web_sys::window()?.document()?;
        let closure = Closure::<dyn Fn(KeyboardEvent)>::new(move |event: KeyboardEvent| {
            let typing = event
                .target()
                .and_then(|target| target.dyn_into::<web_sys::Element>().ok())
                .is_some_and(|element| matches!(element.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA"));
            if typing || event.ctrl_key() || event.meta_key() || event.alt_key() {
                return;
            }
            let key = event.key();
            if key == " " || key == "." {
                event.prevent_default();
                handle(key);
            }
        });
        document.add_event_listener_with_callback("keydown", closure.as_ref().unchecked_ref()).ok()?;
        Some(closure)
    }
}
