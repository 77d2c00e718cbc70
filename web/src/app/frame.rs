//! The frame loop: every animation frame advances the shown run, paints the canvases and the
//! readouts outside Yew, and decides whether Yew renders; the pointer's hit-tests run against
//! what was painted.

use super::*;

/// A readout the frame loop writes directly: Yew renders its element empty and never touches
/// the text, so it changes every frame without a re-render.
#[derive(Default)]
pub(super) struct Meter {
    pub(super) node: NodeRef,
    text: String,
    /// The element the text was written into (Yew may replace it).
    written: Option<web_sys::Node>,
}

impl Meter {
    pub(super) fn set(&mut self, text: String) {
        let Some(node) = self.node.get() else { return };
        if self.written.as_ref() != Some(&node) || text != self.text {
            node.set_text_content(Some(&text));
            self.text = text;
            self.written = Some(node);
        }
    }
}

impl App {
    pub(super) fn request_frame(&mut self, ctx: &Context<Self>) {
        let link = ctx.link().clone();
        self.frame =
            Some(gloo_render::request_animation_frame(move |timestamp| link.send_message(Msg::Frame(timestamp))));
    }

    /// One animation frame: advance the driver (in bounded slices, see `Simulated::advance`),
    /// paint the canvases and the readouts, and let Yew re-render only when the page may show
    /// something new, at most every `RENDER_MS`. Returns whether Yew should render.
    pub(super) fn frame(&mut self, ctx: &Context<Self>, timestamp: f64) -> bool {
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
        match &mut self.stage {
            // A scrubbed time being replayed to advances whether playing or not.
            Stage::Simulated(session) if self.playing || session.seeking().is_some() => {
                let seeking = session.seeking().is_some();
                session.advance(elapsed, self.speed);
                if seeking && session.seeking().is_none() {
                    // The scrubbed time is on screen: show every panel as it is there, now.
                    self.panels.all();
                    self.render_throttle.force();
                }
            }
            Stage::Replay(replay) => replay.advance(0, elapsed, speed),
            Stage::Live(live) => live.advance(browser::now_us(), elapsed, speed),
            Stage::Simulated(_) => {}
        }
        // Actions and the workload generator add to the script: the address bar follows, at
        // most every `PUBLISH_MS` (encoding the whole script per request grew with the run).
        if let Stage::Simulated(session) = &self.stage {
            let of = (self.epoch, session.script_size());
            if of != self.published.get() && self.publish_throttle.ready(started) {
                self.publish();
            }
        }
        // The attached cluster keeps up with its sockets while parked, in real time.
        if let Some(live) = &mut self.parked.live {
            live.advance(browser::now_us(), elapsed, 1.0);
        }
        self.paint(started);
        self.request_frame(ctx);
        let changed =
            took_in || self.stage.mode() != Mode::Simulated || self.stage.shown() != self.rendered_shown.get();
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
    pub(super) fn paint(&mut self, now_ms: f64) {
        let sizes = [&self.ring_canvas.surface, &self.diagram_canvas.surface]
            .map(|surface| surface.canvas().map(|canvas| (canvas.client_width(), canvas.client_height())));
        let stage = &self.stage;
        let (shown, latency_max) = (stage.shown(), stage.latency_max());
        let timeline = stage.timeline();
        let flights = timeline.flights();
        let focused = timeline.focused();
        let focus_index = timeline.focus();
        let stamp = fingerprint((
            self.epoch,
            self.stage.mode(),
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
            let op_votes = timeline.focus_text().map(|(_, text)| text).unwrap_or_default();
            let geometry =
                DiagramGeometry::new(DIAGRAM_WIDTH, DIAGRAM_HEIGHT, stage.ring().node_count(), shown, latency_max);
            let lines = scene::diagram_lines(flights, &geometry, latency_max);
            let clock = time_label(shown);
            self.dots = dots;
            self.lines = lines;
            self.geometry = Some(geometry);
            self.ring_canvas.paint(&self.dots, &self.layout, self.hovered, self.reduced_motion);
            self.ring_canvas.surface.painted = Some(stamp);
            self.diagram_canvas.paint(
                &self.lines,
                &geometry,
                self.hovered,
                fingerprint((self.epoch, self.stage.mode())),
            );
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
    pub(super) fn point(&mut self, drawing: Drawing, at: Option<Pointer>) -> bool {
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

    pub(super) fn frames_per_second(&self) -> f64 {
        let times: Vec<f64> = self.frame_times.iter().copied().filter(|time| *time > 0.0).collect();
        if times.is_empty() {
            return 0.0;
        }
        1_000.0 * times.len() as f64 / times.iter().sum::<f64>()
    }
}

/// Reports the pointer's position over a drawing, relative to the drawing's box `stage`, with
/// the box's width (the drawing may be scaled). The box comes from a `NodeRef`, not the event:
/// Yew delegates events, so their `currentTarget` is the page's root.
pub(super) fn pointer_handler(ctx: &Context<App>, drawing: Drawing, stage: &NodeRef) -> Callback<MouseEvent> {
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
