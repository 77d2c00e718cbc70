//! Paints `scene`'s lists on the two canvases, once per frame, with the 2D context: the message
//! dots (or, with reduced motion, their routes) over the ring, and the message lines of the
//! space-time diagram. This is the page's only per-frame drawing; it bypasses Yew's virtual
//! DOM on purpose, because diffing hundreds of moving SVG elements every frame cost most of
//! the frame.
//!
//! Rasterizing paths is what a canvas frame costs (chromium without a GPU does it on the main
//! thread), so little is rasterized per frame: every dot is a copy of a small picture drawn
//! once per family and shape (`Sprites`), and the diagram's settled lines are drawn once onto
//! a scrolling tape (`scene::Tape`) that each frame copies.
//!
//! Browser plumbing only: what to draw and where is decided in `scene`, the colours come from
//! `palette`. It fails soft: without a canvas or a context nothing is drawn.

use std::f64::consts::TAU;

use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};
use yew::NodeRef;

use crate::flights::FlightKey;
use crate::layout::RingLayout;
use crate::palette::{is_reply, Family};
use crate::scene::{DiagramGeometry, Dot, Line, Tape, DOT_RADIUS, DOT_RADIUS_HOVERED};

/// The page's background, inside reply rings.
const BACKGROUND: &str = "#11151c";
/// A lost message's cross.
const LOST: &str = "#ff8a5c";
const LOST_FONT: &str = "700 13px system-ui, sans-serif";
const DOT_STROKE: f64 = 2.2;
/// The halo around the messages of the operation in focus.
const FOCUS: &str = "#f5f7fa";
const FOCUS_WIDTH: f64 = 2.0;
const FOCUS_GAP: f64 = 3.0;
const LINE_WIDTH: f64 = 1.6;
const LINE_WIDTH_HOVERED: f64 = 4.0;

/// A canvas made with the 2D context, in the DOM or not.
fn new_canvas(width: u32, height: u32) -> Option<(HtmlCanvasElement, CanvasRenderingContext2d)> {
    let canvas = web_sys::window()?.document()?.create_element("canvas").ok()?.dyn_into::<HtmlCanvasElement>().ok()?;
    canvas.set_width(width.max(1));
    canvas.set_height(height.max(1));
    let context = canvas.get_context("2d").ok()??.dyn_into::<CanvasRenderingContext2d>().ok()?;
    Some((canvas, context))
}

/// One canvas of the page and its context, sized to the element in device pixels and scaled
/// so the drawing's own units (`logical_width` across) fill it.
pub struct Surface {
    pub node: NodeRef,
    logical_width: f64,
    context: Option<(HtmlCanvasElement, CanvasRenderingContext2d)>,
    /// A fingerprint of the picture last painted, so an unchanged picture is not repainted.
    pub painted: Option<u64>,
}

/// A surface ready for one frame: cleared, its transform scaled to the drawing's units.
pub struct Page {
    pub context: CanvasRenderingContext2d,
    /// Device pixels per drawing unit, and the canvas's size in device pixels.
    pub scale: f64,
    pub width: u32,
    pub height: u32,
}

impl Surface {
    pub fn new(logical_width: f64) -> Surface {
        Surface { node: NodeRef::default(), logical_width, context: None, painted: None }
    }

    /// The canvas element, once Yew has created it.
    pub fn canvas(&self) -> Option<HtmlCanvasElement> {
        self.node.cast::<HtmlCanvasElement>()
    }

    /// The context, cleared and scaled, after matching the backing store to the element's
    /// size. `None` before the canvas exists.
    pub fn begin(&mut self) -> Option<Page> {
        let canvas = self.canvas()?;
        let stale = self.context.as_ref().is_none_or(|(element, _)| *element != canvas);
        if stale {
            let context = canvas.get_context("2d").ok()??.dyn_into::<CanvasRenderingContext2d>().ok()?;
            self.context = Some((canvas.clone(), context));
        }
        let (_, context) = self.context.as_ref()?;
        let ratio = web_sys::window().map_or(1.0, |window| window.device_pixel_ratio()).max(1.0);
        let width = (canvas.client_width().max(1) as f64 * ratio).round() as u32;
        let height = (canvas.client_height().max(1) as f64 * ratio).round() as u32;
        if canvas.width() != width || canvas.height() != height {
            canvas.set_width(width);
            canvas.set_height(height);
        }
        let scale = width as f64 / self.logical_width;
        context.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0).ok()?;
        context.clear_rect(0.0, 0.0, width as f64, height as f64);
        context.set_transform(scale, 0.0, 0.0, scale, 0.0, 0.0).ok()?;
        context.set_global_alpha(1.0);
        Some(Page { context: context.clone(), scale, width, height })
    }
}

/// Every dot's picture, once per family and shape (filled request, ringed reply), side by
/// side on one offscreen canvas at the page's scale.
struct Sprites {
    scale: f64,
    /// Side of one picture, in device pixels.
    cell: f64,
    sheet: HtmlCanvasElement,
}

impl Sprites {
    fn new(scale: f64) -> Option<Sprites> {
        let cell = ((DOT_RADIUS + DOT_STROKE) * 2.0 * scale).ceil() + 2.0;
        let count = Family::ALL.len() * 2;
        let (sheet, context) = new_canvas((cell * count as f64) as u32, cell as u32)?;
        context.set_line_width(DOT_STROKE * scale);
        for (index, family) in Family::ALL.iter().enumerate() {
            for reply in [false, true] {
                let center = (Sprites::index(index, reply) as f64 + 0.5) * cell;
                context.begin_path();
                context.arc(center, cell / 2.0, DOT_RADIUS * scale, 0.0, TAU).ok()?;
                context.set_fill_style_str(if reply { BACKGROUND } else { family.colour() });
                context.fill();
                context.set_stroke_style_str(family.colour());
                context.stroke();
            }
        }
        Some(Sprites { scale, cell, sheet })
    }

    fn index(family: usize, reply: bool) -> usize {
        family * 2 + usize::from(reply)
    }

    /// Copies the dot's picture to its place; the context's transform must be the identity.
    fn draw(&self, context: &CanvasRenderingContext2d, dot: &Dot) {
        let family = Family::ALL.iter().position(|family| *family == Family::of(dot.kind)).unwrap_or(0);
        let source = Sprites::index(family, is_reply(dot.kind)) as f64 * self.cell;
        let half = self.cell / 2.0;
        context
            .draw_image_with_html_canvas_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
                &self.sheet,
                source,
                0.0,
                self.cell,
                self.cell,
                dot.at.x * self.scale - half,
                dot.at.y * self.scale - half,
                self.cell,
                self.cell,
            )
            .ok();
    }
}

/// The ring's canvas.
pub struct RingPainter {
    pub surface: Surface,
    sprites: Option<Sprites>,
}

impl RingPainter {
    pub fn new(logical_width: f64) -> RingPainter {
        RingPainter { surface: Surface::new(logical_width), sprites: None }
    }

    /// The message dots over the ring: filled dots for requests, rings for replies, a cross on
    /// a lost message as it fades; with reduced motion the routes instead of the dots. The
    /// hovered message is drawn last, larger, with its route.
    pub fn paint(&mut self, dots: &[Dot], layout: &RingLayout, hovered: Option<FlightKey>, reduced_motion: bool) {
        let Some(page) = self.surface.begin() else { return };
        let context = &page.context;
        context.set_line_dash(&Array::new()).ok();
        let others = || dots.iter().filter(|dot| Some(dot.key) != hovered);
        if reduced_motion {
            routes(context, layout, others());
        } else {
            if self.sprites.as_ref().is_none_or(|sprites| sprites.scale != page.scale) {
                self.sprites = Sprites::new(page.scale);
            }
            if let Some(sprites) = &self.sprites {
                context.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0).ok();
                for dot in others() {
                    context.set_global_alpha(dot.opacity);
                    sprites.draw(context, dot);
                }
                context.set_transform(page.scale, 0.0, 0.0, page.scale, 0.0, 0.0).ok();
            }
        }
        focus_halos(context, layout, dots, reduced_motion);
        crosses(context, dots.iter().filter(|dot| dot.lost).map(|dot| (dot.at.x, dot.at.y + 5.0, dot.opacity)));
        if let Some(dot) = dots.iter().find(|dot| Some(dot.key) == hovered) {
            let colour = Family::of(dot.kind).colour();
            context.set_global_alpha(0.9 * dot.opacity);
            context.set_stroke_style_str(colour);
            context.set_line_width(2.5);
            context.begin_path();
            route(context, layout, dot);
            context.stroke();
            context.set_global_alpha(dot.opacity);
            context.set_fill_style_str(if is_reply(dot.kind) { BACKGROUND } else { colour });
            context.set_line_width(DOT_STROKE);
            context.begin_path();
            context.arc(dot.at.x, dot.at.y, DOT_RADIUS_HOVERED, 0.0, TAU).ok();
            context.fill();
            context.stroke();
        }
        context.set_global_alpha(1.0);
    }
}

/// The operation in focus: a light halo around each of its dots, or (reduced motion) a light
/// outline along its routes.
fn focus_halos(context: &CanvasRenderingContext2d, layout: &RingLayout, dots: &[Dot], reduced_motion: bool) {
    let mut ours = dots.iter().filter(|dot| dot.focus).peekable();
    if ours.peek().is_none() {
        return;
    }
    context.set_stroke_style_str(FOCUS);
    context.set_line_width(FOCUS_WIDTH);
    for dot in ours {
        context.set_global_alpha(0.9 * dot.opacity);
        context.begin_path();
        if reduced_motion {
            route(context, layout, dot);
        } else {
            context.arc(dot.at.x, dot.at.y, DOT_RADIUS + FOCUS_GAP, 0.0, TAU).ok();
        }
        context.stroke();
    }
    context.set_global_alpha(1.0);
}

/// Routes, for reduced motion: the steady ones in one path per family, the fading ones one by
/// one.
fn routes<'a>(context: &CanvasRenderingContext2d, layout: &RingLayout, dots: impl Iterator<Item = &'a Dot> + Clone) {
    context.set_line_width(1.5);
    for family in Family::ALL {
        let ours = dots.clone().filter(|dot| Family::of(dot.kind) == family);
        context.set_stroke_style_str(family.colour());
        context.set_global_alpha(0.5);
        context.begin_path();
        let mut any = false;
        for dot in ours.clone().filter(|dot| dot.opacity >= 1.0) {
            route(context, layout, dot);
            any = true;
        }
        if any {
            context.stroke();
        }
        for dot in ours.filter(|dot| dot.opacity < 1.0) {
            context.set_global_alpha(0.5 * dot.opacity);
            context.begin_path();
            route(context, layout, dot);
            context.stroke();
        }
    }
    context.set_global_alpha(1.0);
}

fn route(context: &CanvasRenderingContext2d, layout: &RingLayout, dot: &Dot) {
    let [start, control, end] = layout.message_curve(dot.from, dot.to);
    context.move_to(start.x, start.y);
    context.quadratic_curve_to(control.x, control.y, end.x, end.y);
}

/// The diagram's canvas and its tape.
pub struct DiagramPainter {
    pub surface: Surface,
    tape: Option<(HtmlCanvasElement, CanvasRenderingContext2d)>,
    planner: Tape,
}

impl DiagramPainter {
    pub fn new(logical_width: f64) -> DiagramPainter {
        DiagramPainter { surface: Surface::new(logical_width), tape: None, planner: Tape::default() }
    }

    /// The diagram's message lines, clipped to the window (above the present): replies dashed,
    /// the hovered message thicker and last, a cross where a lost message died. `run` names
    /// what the lines belong to (a new run starts a new tape).
    pub fn paint(&mut self, lines: &[Line], geometry: &DiagramGeometry, hovered: Option<FlightKey>, run: u64) {
        let Some(page) = self.surface.begin() else { return };
        let context = &page.context;
        let band = (geometry.band() * page.scale).ceil() as u32;
        let tape_height = 2 * band;
        if self.tape.as_ref().is_none_or(|(tape, _)| tape.width() != page.width || tape.height() != tape_height) {
            self.tape = new_canvas(page.width, tape_height);
            self.planner.reset();
        }
        let plan = self.planner.plan(lines, geometry, run);
        let scrolled = geometry.scrolled(plan.origin);
        let visible = geometry.present() - geometry.top;
        if let Some((tape, tape_context)) = &self.tape {
            if plan.fresh {
                tape_context.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0).ok();
                tape_context.clear_rect(0.0, 0.0, page.width as f64, tape_height as f64);
            }
            if !plan.add.is_empty() {
                // Tape units: the drawing's, shifted so the tape's top is the origin's time.
                let shift = (scrolled - geometry.top) * page.scale;
                tape_context.set_transform(page.scale, 0.0, 0.0, page.scale, 0.0, shift).ok();
                let added = plan.add.iter().map(|index| &lines[*index]);
                stroke_lines(tape_context, added.clone(), LINE_WIDTH);
                crosses(tape_context, added.filter_map(|line| line.lost_at).map(|at| (at.x, at.y + 4.0, 1.0)));
            }
            let (source, height) = ((scrolled * page.scale).round(), (visible * page.scale).round());
            if height >= 1.0 {
                context.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0).ok();
                context
                    .draw_image_with_html_canvas_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
                        tape,
                        0.0,
                        source,
                        page.width as f64,
                        height,
                        0.0,
                        (geometry.top * page.scale).round(),
                        page.width as f64,
                        height,
                    )
                    .ok();
                context.set_transform(page.scale, 0.0, 0.0, page.scale, 0.0, 0.0).ok();
            }
        }
        context.save();
        context.begin_path();
        context.rect(0.0, geometry.top, page.width as f64 / page.scale, visible.max(0.0));
        context.clip();
        let direct = plan.direct.iter().map(|index| &lines[*index]);
        stroke_lines(context, direct.filter(|line| Some(line.key) != hovered), LINE_WIDTH);
        if self.tape.is_none() {
            // No tape (no offscreen canvas): everything every frame.
            let settled = lines.iter().filter(|line| line.settled && Some(line.key) != hovered);
            stroke_lines(context, settled, LINE_WIDTH);
            crosses(context, lines.iter().filter_map(|line| line.lost_at).map(|at| (at.x, at.y + 4.0, 1.0)));
        }
        stroke_lines(context, lines.iter().filter(|line| Some(line.key) == hovered), LINE_WIDTH_HOVERED);
        context.restore();
    }
}

/// Strokes lines in one path per family and shape (replies dashed).
fn stroke_lines<'a>(context: &CanvasRenderingContext2d, lines: impl Iterator<Item = &'a Line> + Clone, width: f64) {
    let (solid, dashed) = (Array::new(), Array::of2(&JsValue::from(4.0), &JsValue::from(3.0)));
    context.set_line_width(width);
    for family in Family::ALL {
        for reply in [false, true] {
            let mut ours = lines.clone().filter(|line| Family::of(line.kind) == family && is_reply(line.kind) == reply);
            let Some(first) = ours.next() else { continue };
            context.set_line_dash(if reply { &dashed } else { &solid }).ok();
            context.set_stroke_style_str(family.colour());
            context.begin_path();
            for line in std::iter::once(first).chain(ours) {
                context.move_to(line.start.x, line.start.y);
                context.line_to(line.end.x, line.end.y);
            }
            context.stroke();
        }
    }
    context.set_line_dash(&solid).ok();
}

/// Crosses at (x, baseline, opacity).
fn crosses(context: &CanvasRenderingContext2d, marks: impl Iterator<Item = (f64, f64, f64)>) {
    let mut marks = marks.peekable();
    if marks.peek().is_none() {
        return;
    }
    context.set_font(LOST_FONT);
    context.set_text_align("center");
    context.set_fill_style_str(LOST);
    for (x, y, opacity) in marks {
        context.set_global_alpha(opacity);
        context.fill_text("✕", x, y).ok();
    }
    context.set_global_alpha(1.0);
}
