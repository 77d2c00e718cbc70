//! The header: the mode switch, the clock, play / pause / step and speed, the scrubber
//! (simulated runs), the frame and live readouts, the share link, export and open.

use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::app::*;

impl App {
    pub(in crate::app) fn view_header(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let on_speed = link.callback(|event: InputEvent| Msg::Speed(input_value(&event).parse().unwrap_or(50.0)));
        let mode_button = |mode: Mode,
                           label: &'static str,
                           testid: &'static str,
                           enabled: bool,
                           title: &'static str| {
            html! {
                <button data-testid={testid} class={classes!((self.stage.mode() == mode).then_some("active"))} disabled={!enabled}
                    title={title} onclick={link.callback(move |_| Msg::Mode(mode))}>{ label }</button>
            }
        };
        let live_title = if self.pump.cluster().is_some() {
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
        let exportable = self.stage.mode() != Mode::Simulated;
        let (live_meters, dropped, lag) = match &self.stage {
            Stage::Live(live) => (true, live.dropped(), Some(live.lag())),
            Stage::Replay(replay) => (true, replay.dropped(), None),
            Stage::Simulated(_) => (false, 0, None),
        };
        let attached = self.parked.live.is_some() || self.stage.mode() == Mode::Live;
        let recording = self.parked.replay.is_some() || self.stage.mode() == Mode::Replay;
        html! {
            <header class="top">
                <h1>{ "dynamo" }<span>{ " · replicated key-value store" }</span></h1>
                <div class="modes" role="group" aria-label="mode">
                    { mode_button(Mode::Simulated, "simulated", "mode-simulated", true, "the cluster simulated in this page") }
                    { mode_button(Mode::Live, "live", "mode-live", self.pump.cluster().is_some() || attached, live_title) }
                    if recording {
                        { mode_button(Mode::Replay, "recording", "mode-replay", true, "the opened recording") }
                    }
                </div>
                // The clock, the in-flight count and the frame readouts are written by the frame
                // loop (`Meter`), every frame, without a re-render.
                <div class="clock" data-testid="clock" ref={self.clock.node.clone()}
                    title={if self.stage.mode() == Mode::Simulated { "simulated time on screen" } else { "page time on screen" }}></div>
                <div class="transport">
                    <button data-testid="play" class={classes!(self.playing.then_some("active"))}
                        onclick={link.callback(|_| Msg::Play)} title="play (space)">{ "▶ play" }</button>
                    <button data-testid="pause" class={classes!((!self.playing).then_some("active"))}
                        onclick={link.callback(|_| Msg::Pause)} title="pause (space)">{ "❚❚ pause" }</button>
                    <button data-testid="step" onclick={link.callback(|_| Msg::Step)}
                        title="advance to the next event (.)">{ "▸| step" }</button>
                    <label class="speed" title={if self.stage.mode() == Mode::Simulated { "simulated seconds per second" } else { "slow motion while messages are in the air" }}>{ "speed " }
                        <input type="range" data-testid="speed" min="0" max={SPEED_SLIDER_MAX.to_string()} step="1"
                            value={format!("{:.0}", slider_of(self.speed))} oninput={on_speed} />
                        <span class="speed-label">{ speed_label(self.speed) }</span>
                    </label>
                    if self.stage.mode() == Mode::Simulated {
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
                    if self.stage.mode() == Mode::Simulated {
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
    pub(in crate::app) fn view_scrubber(&self, ctx: &Context<Self>) -> Html {
        let session = self.simulated();
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
}
