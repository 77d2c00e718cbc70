//! Ring geometry for the drawing: where nodes, virtual-node tokens, keys and travelling
//! messages go on the SVG canvas.
//!
//! Pure arithmetic on `dynamo-core`'s ring, so it is tested natively. An angle is a *turn*, the
//! fraction of the full circle in `[0, 1)`, starting at the top and going clockwise like the
//! ring's positions. This module must never decide anything about placement itself: which node
//! stores a key always comes from `Ring::preference`, never from the geometry.

use dynamo_core::ring::{position, Position, Ring};
use dynamo_core::types::NodeId;

/// A point on the SVG canvas (y grows downwards).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    fn lerp(self, other: Point, fraction: f64) -> Point {
        Point { x: self.x + (other.x - self.x) * fraction, y: self.y + (other.y - self.y) * fraction }
    }
}

/// The turn of a ring position: its leading 53 bits (all an `f64` holds exactly) as a fraction
/// of 2^53, which is the position as a fraction of 2^160 to within 2^-53, far below a pixel.
pub fn turn_of(position: &Position) -> f64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&position[..8]);
    (u64::from_be_bytes(head) >> 11) as f64 / (1u64 << 53) as f64
}

/// The point at `turn` on a circle; turn 0 is at the top, a quarter turn at the right.
pub fn point_on_circle(center: Point, radius: f64, turn: f64) -> Point {
    let angle = turn * std::f64::consts::TAU;
    Point { x: center.x + radius * angle.sin(), y: center.y - radius * angle.cos() }
}

/// The point a fraction `fraction` (clamped to `[0, 1]`) along a quadratic curve.
pub fn curve_point([start, control, end]: [Point; 3], fraction: f64) -> Point {
    let t = fraction.clamp(0.0, 1.0);
    start.lerp(control, t).lerp(control.lerp(end, t), t)
}

/// Where one node is drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct NodePlace {
    pub node: NodeId,
    pub name: String,
    /// The turn of the node's first token, SHA-1 of its name.
    pub turn: f64,
    pub point: Point,
    /// Outside the circle, for the name.
    pub label: Point,
}

/// One virtual-node token, drawn as a tick across the circle.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub node: NodeId,
    pub turn: f64,
    pub inner: Point,
    pub outer: Point,
}

/// A key's place in the ring and the nodes that serve it.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyPlace {
    pub turn: f64,
    pub point: Point,
    /// The whole preference list with each node's role, in preference order.
    pub roles: Vec<(NodeId, Role)>,
}

/// A node's role for one key (see ARCHITECTURE.md's glossary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The first home replica: it coordinates the key's operations.
    Coordinator,
    /// Another home replica.
    Replica,
    /// Not a home: it keeps hints when a home is unreachable.
    Fallback,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Replica => "replica",
            Role::Fallback => "fallback",
        }
    }
}

/// The whole ring drawing.
#[derive(Clone, Debug, PartialEq)]
pub struct RingLayout {
    pub center: Point,
    pub radius: f64,
    pub nodes: Vec<NodePlace>,
    pub ticks: Vec<Tick>,
}

/// How far (as a fraction of the chord) a message path bends towards the centre, so that
/// paths are told apart from the circle itself.
const BEND_INWARD: f64 = 0.18;
/// Sideways offset of a path, in canvas units, so A->B and B->A travel on separate lanes.
const LANE_OFFSET: f64 = 14.0;
/// Nodes closer than this (in turns) would have overlapping names: the second name goes inside.
const LABEL_GAP_TURNS: f64 = 0.06;

impl RingLayout {
    /// Lays out `ring` in a square canvas of side `size`.
    pub fn new(ring: &Ring, size: f64) -> RingLayout {
        let center = Point { x: size / 2.0, y: size / 2.0 };
        let radius = size * 0.39;
        let mut nodes: Vec<NodePlace> = ring
            .names()
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let turn = turn_of(&position(name.as_bytes()));
                NodePlace {
                    node: NodeId(index as u32),
                    name: name.clone(),
                    turn,
                    point: point_on_circle(center, radius, turn),
                    label: point_on_circle(center, radius + 40.0, turn),
                }
            })
            .collect();
        // SHA-1 puts nodes where it likes; when two names would collide, move one inside.
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by(|a, b| nodes[*a].turn.total_cmp(&nodes[*b].turn));
        let mut previous: Option<(f64, bool)> = None;
        for index in order {
            let turn = nodes[index].turn;
            let inside = previous.is_some_and(|(before, was_inside)| !was_inside && turn - before < LABEL_GAP_TURNS);
            if inside {
                nodes[index].label = point_on_circle(center, radius - 50.0, turn);
            }
            previous = Some((turn, inside));
        }
        let ticks = ring
            .tokens()
            .iter()
            .map(|token| {
                let turn = turn_of(&token.position);
                Tick {
                    node: token.node,
                    turn,
                    inner: point_on_circle(center, radius - 9.0, turn),
                    outer: point_on_circle(center, radius + 9.0, turn),
                }
            })
            .collect();
        RingLayout { center, radius, nodes, ticks }
    }

    pub fn node_point(&self, node: NodeId) -> Point {
        self.nodes[node.index()].point
    }

    /// Where `key` falls and the roles of every node for it.
    pub fn place_key(&self, ring: &Ring, key: &[u8]) -> KeyPlace {
        let turn = turn_of(&position(key));
        let homes = ring.replicas();
        let roles = ring
            .preference(key)
            .into_iter()
            .enumerate()
            .map(|(rank, node)| {
                let role = match rank {
                    0 => Role::Coordinator,
                    rank if rank < homes => Role::Replica,
                    _ => Role::Fallback,
                };
                (node, role)
            })
            .collect();
        KeyPlace { turn, point: point_on_circle(self.center, self.radius, turn), roles }
    }

    /// The control point of the quadratic curve a message from `from` to `to` follows.
    fn control(&self, from: Point, to: Point) -> Point {
        let middle = from.lerp(to, 0.5);
        let inward = middle.lerp(self.center, BEND_INWARD);
        let (dx, dy) = (to.x - from.x, to.y - from.y);
        let length = (dx * dx + dy * dy).sqrt().max(1e-9);
        // The left-hand normal of the direction of travel: reversed messages use the other side.
        Point { x: inward.x + dy / length * LANE_OFFSET, y: inward.y - dx / length * LANE_OFFSET }
    }

    /// The quadratic curve a message from `from` to `to` follows: start, control point, end.
    pub fn message_curve(&self, from: NodeId, to: NodeId) -> [Point; 3] {
        let (start, end) = (self.node_point(from), self.node_point(to));
        [start, self.control(start, end), end]
    }

    /// The point a fraction `fraction` (0 = sent, 1 = arrived) along a message's path.
    pub fn message_point(&self, from: NodeId, to: NodeId, fraction: f64) -> Point {
        curve_point(self.message_curve(from, to), fraction)
    }

    /// The SVG path data of a message's whole route.
    pub fn message_path(&self, from: NodeId, to: NodeId) -> String {
        let [start, control, end] = self.message_curve(from, to);
        format!("M{:.1} {:.1} Q{:.1} {:.1} {:.1} {:.1}", start.x, start.y, control.x, control.y, end.x, end.y)
    }

    /// The SVG path data of the arc from turn `from` clockwise to turn `to` at `radius`.
    pub fn arc_path(&self, radius: f64, from: f64, to: f64) -> String {
        let sweep = (to - from).rem_euclid(1.0);
        let (start, end) = (point_on_circle(self.center, radius, from), point_on_circle(self.center, radius, to));
        let large = if sweep > 0.5 { 1 } else { 0 };
        format!("M{:.1} {:.1} A{radius:.1} {radius:.1} 0 {large} 1 {:.1} {:.1}", start.x, start.y, end.x, end.y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_core::config::Config;

    fn ring(tokens: u32) -> Ring {
        Ring::new(&Config::default().nodes, tokens, 3)
    }

    fn close(a: Point, b: Point) -> bool {
        (a.x - b.x).abs() < 1e-6 && (a.y - b.y).abs() < 1e-6
    }

    #[test]
    fn turns_follow_the_leading_bytes() {
        assert_eq!(turn_of(&[0; 20]), 0.0);
        let mut half = [0u8; 20];
        half[0] = 0x80;
        assert_eq!(turn_of(&half), 0.5);
        assert!(turn_of(&[0xff; 20]) < 1.0);
    }

    #[test]
    fn circle_starts_at_the_top_and_goes_clockwise() {
        let center = Point { x: 100.0, y: 100.0 };
        assert!(close(point_on_circle(center, 10.0, 0.0), Point { x: 100.0, y: 90.0 }));
        assert!(close(point_on_circle(center, 10.0, 0.25), Point { x: 110.0, y: 100.0 }));
        assert!(close(point_on_circle(center, 10.0, 0.5), Point { x: 100.0, y: 110.0 }));
    }

    #[test]
    fn nodes_sit_in_the_seed_ring_order() {
        let layout = RingLayout::new(&ring(1), 500.0);
        let mut by_turn: Vec<&NodePlace> = layout.nodes.iter().collect();
        by_turn.sort_by(|a, b| a.turn.total_cmp(&b.turn));
        let names: Vec<&str> = by_turn.iter().map(|place| place.name.as_str()).collect();
        assert_eq!(names, ["5562", "5556", "5554", "5558", "5560"]);
        // One token per node: each tick is exactly at its node.
        assert_eq!(layout.ticks.len(), 5);
        for tick in &layout.ticks {
            assert!((tick.turn - layout.nodes[tick.node.index()].turn).abs() < 1e-12);
        }
    }

    #[test]
    fn close_nodes_get_their_names_on_both_sides_of_the_circle() {
        let layout = RingLayout::new(&ring(1), 500.0);
        let distance = |a: Point, b: Point| ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt();
        for a in &layout.nodes {
            for b in layout.nodes.iter().filter(|b| b.node != a.node) {
                assert!(distance(a.label, b.label) > 30.0, "{} and {} labels collide", a.name, b.name);
            }
        }
    }

    #[test]
    fn every_virtual_node_gets_a_tick() {
        let layout = RingLayout::new(&ring(8), 500.0);
        assert_eq!(layout.ticks.len(), 40);
        assert!(layout.ticks.windows(2).all(|pair| pair[0].turn <= pair[1].turn));
    }

    #[test]
    fn key_roles_follow_the_preference_list() {
        let ring = ring(1);
        let layout = RingLayout::new(&ring, 500.0);
        let place = layout.place_key(&ring, b"apple");
        let homes = ring.homes(b"apple");
        assert_eq!(place.roles.len(), 5);
        assert_eq!(place.roles[0], (homes[0], Role::Coordinator));
        assert_eq!(place.roles[1], (homes[1], Role::Replica));
        assert_eq!(place.roles[2], (homes[2], Role::Replica));
        assert!(place.roles[3..].iter().all(|(_, role)| *role == Role::Fallback));
        // The coordinator is the first node clockwise from the key.
        let gap = |turn: f64| (turn - place.turn).rem_euclid(1.0);
        let nearest = layout.nodes.iter().min_by(|a, b| gap(a.turn).total_cmp(&gap(b.turn))).expect("five nodes");
        assert_eq!(nearest.node, homes[0]);
    }

    #[test]
    fn messages_start_and_end_at_their_nodes_on_separate_lanes() {
        let layout = RingLayout::new(&ring(1), 500.0);
        let (a, b) = (NodeId(0), NodeId(3));
        assert!(close(layout.message_point(a, b, 0.0), layout.node_point(a)));
        assert!(close(layout.message_point(a, b, 1.0), layout.node_point(b)));
        let there = layout.message_point(a, b, 0.5);
        let back = layout.message_point(b, a, 0.5);
        let apart = ((there.x - back.x).powi(2) + (there.y - back.y).powi(2)).sqrt();
        assert!(apart > 10.0, "the two directions share a lane: {apart}");
        assert!(layout.message_path(a, b).starts_with('M'));
    }
}
