//! What the two canvases draw each frame, as plain lists: the message dots on the ring and the
//! message lines of the space-time diagram, and the hit-tests that find the message under the
//! pointer in either drawing (hovering one highlights the same message in the other).
//!
//! Everything here is geometry in the drawings' own units (the ring's 560 x 560 square, the
//! diagram's 560 x 250 box), computed from a driver's `Flights`, so it is tested natively.
//! Painting the lists is `paint`'s job; this module must never touch the browser.

use std::collections::BTreeSet;

use dynamo_core::message::MessageKind;
use dynamo_core::types::{Micros, NodeId};

use crate::flights::{Arrival, Flight, FlightKey, Flights};
use crate::focus::Operation;
use crate::layout::{curve_point, Point, RingLayout};

/// A message dot's radius, and the hovered one's.
pub const DOT_RADIUS: f64 = 5.5;
pub const DOT_RADIUS_HOVERED: f64 = 9.0;
/// How far outside a dot the pointer still counts as on it.
const DOT_SLACK: f64 = 3.0;
/// How far from a line or a route the pointer still counts as on it (the old SVG hit line
/// was 8 units wide).
const LINE_SLACK: f64 = 4.0;
/// Straight pieces a route's curve is cut into for hit-testing.
const CURVE_PIECES: usize = 12;
/// The diagram shows this many largest latencies of history.
pub const DIAGRAM_WINDOW_LATENCIES: u64 = 24;
/// Messages drawn in the space-time diagram (the newest).
pub const DIAGRAM_MESSAGES_MAX: usize = 300;

/// One message in the air, where the ring draws it now.
#[derive(Clone, Debug, PartialEq)]
pub struct Dot {
    pub key: FlightKey,
    pub kind: MessageKind,
    pub from: NodeId,
    pub to: NodeId,
    pub at: Point,
    pub opacity: f64,
    /// It will not arrive and is fading: a cross is drawn on it.
    pub lost: bool,
    /// It belongs to the operation in focus: drawn with a halo.
    pub focus: bool,
}

/// The messages in the air at `shown`, oldest first (so newer dots are drawn on top).
/// `focus` is the operation in focus, whose messages are marked.
pub fn ring_dots(
    flights: &Flights,
    layout: &RingLayout,
    shown: Micros,
    latency_max: Micros,
    focus: Option<&Operation>,
) -> Vec<Dot> {
    let mut in_air: Vec<_> = flights.in_air(shown, latency_max).collect();
    in_air.sort_unstable_by_key(|(flight, _)| (flight.sent_at, flight.key));
    in_air
        .into_iter()
        .map(|(flight, pose)| Dot {
            key: flight.key,
            kind: flight.kind,
            from: flight.key.from,
            to: flight.to,
            at: layout.message_point(flight.key.from, flight.to, pose.fraction),
            opacity: pose.opacity,
            lost: pose.doomed && pose.opacity < 1.0,
            focus: focus.is_some_and(|op| op.carries(flight.key.from, flight.to, flight.kind, flight.txn)),
        })
        .collect()
}

/// One bit per message kind present in `dots` (bit `kind as u32`): the set changes far less
/// often than the dots move, so the page rewrites its `data-kinds` only when this does.
pub fn kind_mask(dots: &[Dot]) -> u32 {
    dots.iter().fold(0, |mask, dot| mask | 1 << dot.kind as u32)
}

/// The message under `point` on the ring, if any: the nearest dot within reach, or with
/// reduced motion (routes drawn instead of dots) the nearest route. Ties go to the newest,
/// which is drawn on top.
pub fn hit_dot(dots: &[Dot], layout: &RingLayout, point: Point, reduced_motion: bool) -> Option<FlightKey> {
    let mut best: Option<(f64, FlightKey)> = None;
    for dot in dots {
        let distance = if reduced_motion {
            distance_to_curve(point, layout.message_curve(dot.from, dot.to))
        } else {
            distance(point, dot.at)
        };
        let reach = if reduced_motion { LINE_SLACK } else { DOT_RADIUS + DOT_SLACK };
        if distance <= reach && best.is_none_or(|(nearest, _)| distance <= nearest) {
            best = Some((distance, dot.key));
        }
    }
    best.map(|(_, key)| key)
}

/// The diagram's coordinates: one vertical lane per node, time downwards, the present at the
/// bottom edge (or higher while the run is younger than the window).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiagramGeometry {
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    pub nodes: usize,
    /// The oldest time shown (at `top`), the present (the lowest visible point) and the span.
    pub since: Micros,
    pub shown: Micros,
    pub window: Micros,
}

impl DiagramGeometry {
    pub fn new(width: f64, height: f64, nodes: usize, shown: Micros, latency_max: Micros) -> DiagramGeometry {
        let window = (latency_max * DIAGRAM_WINDOW_LATENCIES).max(1);
        DiagramGeometry {
            left: 46.0,
            right: width - 20.0,
            top: 22.0,
            bottom: height - 8.0,
            nodes,
            since: shown.saturating_sub(window),
            shown,
            window,
        }
    }

    pub fn lane(&self, node: NodeId) -> f64 {
        self.left + (self.right - self.left) * node.index() as f64 / (self.nodes.max(2) - 1) as f64
    }

    /// The height of time `at` (above `top` when older than the window).
    pub fn y(&self, at: Micros) -> f64 {
        self.top + (self.bottom - self.top) * (at as f64 - self.since as f64) / self.window as f64
    }

    /// The lowest visible height: the present.
    pub fn present(&self) -> f64 {
        self.y(self.shown)
    }
}

/// One message in the diagram, drawn whole; the drawing is clipped to `[top, present]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub key: FlightKey,
    pub kind: MessageKind,
    pub start: Point,
    pub end: Point,
    /// Where a lost message died (half way), once the screen has reached it.
    pub lost_at: Option<Point>,
    /// The line will not change any more (its end is known, and a lost message's end has been
    /// reached): it can be painted once on the `Tape`.
    pub settled: bool,
}

/// The newest `DIAGRAM_MESSAGES_MAX` messages in the window, oldest first.
pub fn diagram_lines(flights: &Flights, geometry: &DiagramGeometry, latency_max: Micros) -> Vec<Line> {
    let shown = geometry.shown;
    let mut visible: Vec<&Flight> = flights.window(geometry.since, shown, latency_max).collect();
    visible.sort_unstable_by_key(|flight| (flight.sent_at, flight.key));
    let skip = visible.len().saturating_sub(DIAGRAM_MESSAGES_MAX);
    visible
        .into_iter()
        .skip(skip)
        .map(|flight| {
            let end = match flight.arrival {
                Arrival::Delivered(at) | Arrival::Dropped { at, .. } => at.max(flight.sent_at),
                Arrival::Unknown => flight.sent_at + latency_max,
            };
            let lost = matches!(flight.arrival, Arrival::Dropped { .. }) && end <= shown;
            let settled = match flight.arrival {
                Arrival::Unknown => false,
                Arrival::Delivered(_) => true,
                Arrival::Dropped { .. } => lost,
            };
            let start = Point { x: geometry.lane(flight.key.from), y: geometry.y(flight.sent_at) };
            let x_end = start.x + (geometry.lane(flight.to) - start.x) * if lost { 0.5 } else { 1.0 };
            let end = Point { x: x_end, y: geometry.y(end) };
            Line { key: flight.key, kind: flight.kind, start, end, lost_at: lost.then_some(end), settled }
        })
        .collect()
}

/// Settled lines kept on the tape at most (then it is painted afresh).
const TAPE_LINES_MAX: usize = 4 * DIAGRAM_MESSAGES_MAX;

/// The diagram's lines scroll up every frame, but a settled line never changes: it is painted
/// once onto a *tape*, an offscreen picture two windows tall that starts at `origin`, and each
/// frame copies the visible part of the tape. The origin moves by whole windows, so the tape is
/// painted afresh about once per window of simulated time; lines that may still change are
/// painted every frame over the copy. `Tape` decides what goes where; `paint` draws it.
#[derive(Clone, Debug, Default)]
pub struct Tape {
    origin: Option<Micros>,
    /// What else the tape depends on (the run, the canvas size).
    signature: u64,
    taped: BTreeSet<FlightKey>,
}

/// One frame's work on the tape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapePlan {
    /// Clear the tape first (a new origin or signature).
    pub fresh: bool,
    pub origin: Micros,
    /// Lines (indexes into the frame's lines) to paint onto the tape.
    pub add: Vec<usize>,
    /// Lines to paint over the copy, this frame only.
    pub direct: Vec<usize>,
}

impl Tape {
    pub fn plan(&mut self, lines: &[Line], geometry: &DiagramGeometry, signature: u64) -> TapePlan {
        let origin = geometry.since - geometry.since % geometry.window;
        let fresh = self.origin != Some(origin) || self.signature != signature || self.taped.len() > TAPE_LINES_MAX;
        if fresh {
            self.taped.clear();
            self.origin = Some(origin);
            self.signature = signature;
        }
        let (mut add, mut direct) = (Vec::new(), Vec::new());
        for (index, line) in lines.iter().enumerate() {
            if !line.settled {
                direct.push(index);
            } else if self.taped.insert(line.key) {
                add.push(index);
            }
        }
        TapePlan { fresh, origin, add, direct }
    }

    /// Forgets everything: the next plan paints the tape afresh.
    pub fn reset(&mut self) {
        self.origin = None;
    }
}

impl DiagramGeometry {
    /// Height of the band between `top` and `bottom`, where one window of time is drawn.
    pub fn band(&self) -> f64 {
        self.bottom - self.top
    }

    /// How far (in drawing units) the window has scrolled past a tape starting at `origin`.
    pub fn scrolled(&self, origin: Micros) -> f64 {
        self.band() * (self.since as f64 - origin as f64) / self.window as f64
    }
}

/// The message under `point` in the diagram: the nearest visible part of a line within reach.
/// Ties go to the newest, which is drawn on top.
pub fn hit_line(lines: &[Line], geometry: &DiagramGeometry, point: Point) -> Option<FlightKey> {
    let (top, present) = (geometry.top, geometry.present());
    if point.y < top - LINE_SLACK || point.y > present + LINE_SLACK {
        return None;
    }
    let mut best: Option<(f64, FlightKey)> = None;
    for line in lines {
        let Some((start, end)) = clip_vertically(line.start, line.end, top, present) else { continue };
        let distance = distance_to_segment(point, start, end);
        if distance <= LINE_SLACK && best.is_none_or(|(nearest, _)| distance <= nearest) {
            best = Some((distance, line.key));
        }
    }
    best.map(|(_, key)| key)
}

/// The part of the segment between heights `top` and `bottom`, if any.
fn clip_vertically(start: Point, end: Point, top: f64, bottom: f64) -> Option<(Point, Point)> {
    let (upper, lower) = if start.y <= end.y { (start, end) } else { (end, start) };
    if lower.y < top || upper.y > bottom {
        return None;
    }
    let at = |y: f64| {
        let span = lower.y - upper.y;
        if span <= f64::EPSILON {
            upper
        } else {
            let t = (y - upper.y) / span;
            Point { x: upper.x + (lower.x - upper.x) * t, y }
        }
    };
    let from = if upper.y < top { at(top) } else { upper };
    let to = if lower.y > bottom { at(bottom) } else { lower };
    Some((from, to))
}

fn distance(a: Point, b: Point) -> f64 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

fn distance_to_segment(point: Point, start: Point, end: Point) -> f64 {
    let (dx, dy) = (end.x - start.x, end.y - start.y);
    let length = dx * dx + dy * dy;
    if length <= f64::EPSILON {
        return distance(point, start);
    }
    let t = (((point.x - start.x) * dx + (point.y - start.y) * dy) / length).clamp(0.0, 1.0);
    distance(point, Point { x: start.x + dx * t, y: start.y + dy * t })
}

fn distance_to_curve(point: Point, curve: [Point; 3]) -> f64 {
    (0..CURVE_PIECES)
        .map(|piece| {
            let a = curve_point(curve, piece as f64 / CURVE_PIECES as f64);
            let b = curve_point(curve, (piece + 1) as f64 / CURVE_PIECES as f64);
            distance_to_segment(point, a, b)
        })
        .fold(f64::INFINITY, f64::min)
}

/// A pointer position inside an element `shown_width` CSS pixels wide, in the units of a
/// drawing `logical_width` wide that is scaled uniformly to fill it.
pub fn to_drawing(offset_x: f64, offset_y: f64, shown_width: f64, logical_width: f64) -> Point {
    let scale = if shown_width > 0.0 { logical_width / shown_width } else { 1.0 };
    Point { x: offset_x * scale, y: offset_y * scale }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_core::config::Config;
    use dynamo_core::ring::Ring;
    use dynamo_core::trace::{DropReason, TraceEvent, TraceKind};

    const LATENCY_MAX: Micros = 4_000;

    fn layout() -> RingLayout {
        RingLayout::new(&Ring::new(&Config::default().nodes, 1, 3), 560.0)
    }

    fn sent(at: Micros, from: u32, id: u64, to: u32, kind: MessageKind) -> TraceEvent {
        TraceEvent {
            at,
            node: NodeId(from),
            kind: TraceKind::MessageSent { id, to: NodeId(to), kind, txn: None, key: None },
        }
    }

    fn delivered(at: Micros, from: u32, id: u64, to: u32) -> TraceEvent {
        TraceEvent {
            at,
            node: NodeId(to),
            kind: TraceKind::MessageDelivered { id, from: NodeId(from), kind: MessageKind::Prepare },
        }
    }

    fn flights(events: &[TraceEvent]) -> Flights {
        let mut flights = Flights::new(100);
        for event in events {
            flights.observe(event);
        }
        flights
    }

    fn key(from: u32, id: u64) -> FlightKey {
        FlightKey { from: NodeId(from), id, copy: 0 }
    }

    #[test]
    fn dots_are_listed_oldest_first_where_their_flights_are() {
        let layout = layout();
        let flights = flights(&[
            sent(500, 3, 9, 1, MessageKind::Promise),
            sent(0, 0, 1, 2, MessageKind::Prepare),
            delivered(2_000, 0, 1, 2),
            delivered(2_500, 3, 9, 1),
        ]);
        let dots = ring_dots(&flights, &layout, 1_000, LATENCY_MAX, None);
        assert_eq!(dots.iter().map(|dot| dot.key).collect::<Vec<_>>(), [key(0, 1), key(3, 9)]);
        let half = layout.message_point(NodeId(0), NodeId(2), 0.5);
        assert!(distance(dots[0].at, half) < 1e-9);
        assert_eq!(kind_mask(&dots), 1 << MessageKind::Prepare as u32 | 1 << MessageKind::Promise as u32);
    }

    #[test]
    fn the_pointer_hovers_the_nearest_dot_within_reach() {
        let layout = layout();
        let flights = flights(&[
            sent(0, 0, 1, 2, MessageKind::Prepare),
            delivered(2_000, 0, 1, 2),
            sent(0, 1, 4, 3, MessageKind::Read),
            delivered(2_000, 1, 4, 3),
        ]);
        let dots = ring_dots(&flights, &layout, 1_000, LATENCY_MAX, None);
        let on = dots[1].at;
        let check = |point: Point, expected: Option<FlightKey>| {
            assert_eq!(hit_dot(&dots, &layout, point, false), expected, "at {point:?}");
        };
        check(on, Some(key(1, 4)));
        check(Point { x: on.x + DOT_RADIUS + DOT_SLACK - 0.1, y: on.y }, Some(key(1, 4)));
        check(Point { x: on.x + DOT_RADIUS + DOT_SLACK + 0.1, y: on.y }, None);
        check(dots[0].at, Some(key(0, 1)));
        check(Point { x: 0.0, y: 0.0 }, None);
    }

    #[test]
    fn with_reduced_motion_the_pointer_hovers_routes() {
        let layout = layout();
        let flights = flights(&[sent(0, 0, 1, 2, MessageKind::Prepare), delivered(2_000, 0, 1, 2)]);
        let dots = ring_dots(&flights, &layout, 500, LATENCY_MAX, None);
        // Anywhere along the route counts, not just where the dot would be.
        let far_along = layout.message_point(NodeId(0), NodeId(2), 0.9);
        assert_eq!(hit_dot(&dots, &layout, far_along, true), Some(key(0, 1)));
        assert_eq!(hit_dot(&dots, &layout, far_along, false), None);
        assert_eq!(hit_dot(&dots, &layout, layout.center, true), None);
    }

    #[test]
    fn diagram_lines_run_from_the_senders_lane_to_the_receivers() {
        let geometry = DiagramGeometry::new(560.0, 250.0, 5, 10_000, LATENCY_MAX);
        assert_eq!(geometry.since, 0);
        assert_eq!(geometry.window, LATENCY_MAX * DIAGRAM_WINDOW_LATENCIES);
        let flights = flights(&[
            sent(1_000, 0, 1, 4, MessageKind::Prepare),
            delivered(3_000, 0, 1, 4),
            sent(2_000, 2, 5, 0, MessageKind::Read),
            TraceEvent {
                at: 2_000,
                node: NodeId(2),
                kind: TraceKind::MessageDropped {
                    id: 5,
                    to: NodeId(0),
                    kind: MessageKind::Read,
                    reason: DropReason::Loss,
                },
            },
        ]);
        let lines = diagram_lines(&flights, &geometry, LATENCY_MAX);
        assert_eq!(lines.len(), 2);
        let (line, lost) = (&lines[0], &lines[1]);
        assert_eq!((line.start.x, line.end.x), (geometry.lane(NodeId(0)), geometry.lane(NodeId(4))));
        assert_eq!((line.start.y, line.end.y), (geometry.y(1_000), geometry.y(3_000)));
        assert_eq!(line.lost_at, None);
        // A lost message stops half way across, with a cross where it died.
        let middle = (geometry.lane(NodeId(2)) + geometry.lane(NodeId(0))) / 2.0;
        assert_eq!(lost.lost_at, Some(Point { x: middle, y: geometry.y(2_000) }));
    }

    #[test]
    fn only_the_visible_part_of_a_line_can_be_hovered() {
        let geometry = DiagramGeometry::new(560.0, 250.0, 5, 31_000, LATENCY_MAX);
        // Sent at 1 ms, arriving at 61 ms: the screen is at 31 ms, so the lower half is not drawn yet.
        let flights = flights(&[sent(1_000, 0, 1, 4, MessageKind::Prepare), delivered(61_000, 0, 1, 4)]);
        let lines = diagram_lines(&flights, &geometry, LATENCY_MAX);
        let along = |t: f64| {
            let line = &lines[0];
            Point {
                x: line.start.x + (line.end.x - line.start.x) * t,
                y: line.start.y + (line.end.y - line.start.y) * t,
            }
        };
        assert_eq!(hit_line(&lines, &geometry, along(0.25)), Some(key(0, 1)));
        assert_eq!(hit_line(&lines, &geometry, Point { x: along(0.25).x + 3.5, y: along(0.25).y }), Some(key(0, 1)));
        assert_eq!(hit_line(&lines, &geometry, Point { x: along(0.25).x + 30.0, y: along(0.25).y }), None);
        assert_eq!(hit_line(&lines, &geometry, along(0.45)), Some(key(0, 1)));
        assert_eq!(hit_line(&lines, &geometry, along(0.6)), None, "below the present");
    }

    #[test]
    fn the_diagram_keeps_the_newest_messages() {
        let events: Vec<TraceEvent> = (0..DIAGRAM_MESSAGES_MAX as u64 + 10)
            .flat_map(|id| [sent(id, 0, id, 1, MessageKind::Read), delivered(id + 100, 0, id, 1)])
            .collect();
        let geometry = DiagramGeometry::new(560.0, 250.0, 5, 1_000, LATENCY_MAX);
        let lines = diagram_lines(&flights(&events), &geometry, LATENCY_MAX);
        assert_eq!(lines.len(), DIAGRAM_MESSAGES_MAX);
        assert_eq!(lines[0].key, key(0, 10));
    }

    #[test]
    fn settled_lines_go_on_the_tape_once_and_the_rest_every_frame() {
        let mut tape = Tape::default();
        // Sent at 1 ms and delivered at 3 ms; sent at 2 ms, arrival not known yet (a live stream).
        let events = [
            sent(1_000, 0, 1, 4, MessageKind::Prepare),
            delivered(3_000, 0, 1, 4),
            sent(2_000, 1, 2, 3, MessageKind::Read),
        ];
        let mut flights = flights(&events);
        let geometry = DiagramGeometry::new(560.0, 250.0, 5, 2_500, LATENCY_MAX);
        let lines = diagram_lines(&flights, &geometry, LATENCY_MAX);
        let plan = tape.plan(&lines, &geometry, 7);
        assert_eq!(plan, TapePlan { fresh: true, origin: 0, add: vec![0], direct: vec![1] });
        // The next frame: nothing new is settled, so nothing is painted on the tape.
        let geometry = DiagramGeometry::new(560.0, 250.0, 5, 2_600, LATENCY_MAX);
        let plan = tape.plan(&diagram_lines(&flights, &geometry, LATENCY_MAX), &geometry, 7);
        assert_eq!((plan.fresh, plan.add, plan.direct), (false, vec![], vec![1]));
        // Its delivery becomes known: it goes on the tape once.
        flights.observe(&delivered(4_000, 1, 2, 3));
        let plan = tape.plan(&diagram_lines(&flights, &geometry, LATENCY_MAX), &geometry, 7);
        assert_eq!((plan.fresh, plan.add, plan.direct), (false, vec![1], vec![]));
        // Another canvas size (signature): the tape is painted afresh.
        let plan = tape.plan(&diagram_lines(&flights, &geometry, LATENCY_MAX), &geometry, 8);
        assert_eq!((plan.fresh, plan.add), (true, vec![0, 1]));
    }

    #[test]
    fn the_tape_starts_again_when_the_window_passes_a_whole_window() {
        let mut tape = Tape::default();
        let window = LATENCY_MAX * DIAGRAM_WINDOW_LATENCIES;
        let at = |shown: Micros| DiagramGeometry::new(560.0, 250.0, 5, shown, LATENCY_MAX);
        let origins: Vec<(bool, Micros)> = [window + 10, window + 20, 2 * window - 1, 2 * window + 5]
            .into_iter()
            .map(|shown| {
                let plan = tape.plan(&[], &at(shown), 0);
                (plan.fresh, plan.origin)
            })
            .collect();
        assert_eq!(origins, [(true, 0), (false, 0), (false, 0), (true, window)]);
        // The copy scrolls by the time since the origin.
        let geometry = at(window + window / 2);
        assert!((geometry.scrolled(0) - geometry.band() / 2.0).abs() < 1e-9);
        tape.reset();
        assert!(tape.plan(&[], &geometry, 0).fresh);
    }

    #[test]
    fn pointer_positions_scale_into_the_drawing() {
        assert_eq!(to_drawing(100.0, 50.0, 280.0, 560.0), Point { x: 200.0, y: 100.0 });
        assert_eq!(to_drawing(10.0, 20.0, 0.0, 560.0), Point { x: 10.0, y: 20.0 });
    }

    #[test]
    fn clipping_keeps_the_part_between_the_heights() {
        let (a, b) = (Point { x: 0.0, y: 0.0 }, Point { x: 10.0, y: 100.0 });
        assert_eq!(clip_vertically(a, b, 50.0, 200.0), Some((Point { x: 5.0, y: 50.0 }, b)));
        assert_eq!(clip_vertically(a, b, 150.0, 200.0), None);
        assert_eq!(clip_vertically(a, b, -10.0, 20.0), Some((a, Point { x: 2.0, y: 20.0 })));
    }
}
