//! Messages in the air: trace events turned into animations.
//!
//! A `MessageSent` event starts a flight; the `MessageDelivered` or `MessageDropped` event with
//! the same sender and message id ends it (ids are unique per sender across restarts, and a
//! duplicated message is delivered twice, so a second delivery becomes a second flight). The
//! session runs the simulation ahead of the time on screen by at least the largest network
//! latency, so by the time a flight is drawn its end is normally known and the dot moves at its
//! true speed. Finished flights are kept, up to a bound, for the space-time diagram.
//!
//! A live cluster (see `live`) is less tidy: events come from five processes over five sockets,
//! so a delivery can be reported before its send, and a subscriber that falls behind loses
//! events. An end seen before its start waits (bounded) for it, and `expire` retires flights
//! whose end never came.
//!
//! This module only reads trace events; it must never touch the simulation.

use std::collections::{BTreeMap, VecDeque};

use dynamo_core::message::MessageKind;
use dynamo_core::trace::{DropReason, TraceEvent, TraceKind};
use dynamo_core::types::{Blob, Micros, NodeId};

/// Names one flight: sender, message id, and which copy (duplicates have copy > 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlightKey {
    pub from: NodeId,
    pub id: u64,
    pub copy: u32,
}

/// How a flight ended, once known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Still travelling as far as the trace says.
    Unknown,
    Delivered(Micros),
    /// The network lost it (`at` is when it was dropped: the send time for loss and cuts, the
    /// arrival time when the receiver was down).
    Dropped {
        at: Micros,
        reason: DropReason,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flight {
    pub key: FlightKey,
    pub to: NodeId,
    pub kind: MessageKind,
    pub sent_at: Micros,
    pub arrival: Arrival,
    /// The single key the message is about, if any.
    pub subject: Option<Blob>,
    /// The transaction it belongs to (the sender's for requests, the receiver's for replies).
    pub txn: Option<u64>,
}

/// Where a flight is drawn at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    /// 0 at the sender, 1 at the receiver.
    pub fraction: f64,
    /// The message will not arrive: drawn fading, with a cross where it dies.
    pub doomed: bool,
    /// Opacity in `[0, 1]`.
    pub opacity: f64,
}

impl Flight {
    /// When the flight stops being drawn, given the network's largest latency.
    pub fn end(&self, latency_max: Micros) -> Micros {
        match self.arrival {
            Arrival::Unknown => self.sent_at + latency_max,
            Arrival::Delivered(at) => at,
            // A message lost on the wire is shown travelling half way, then fading out.
            Arrival::Dropped { reason: DropReason::Loss | DropReason::Partition, .. } => {
                self.sent_at + latency_max / 2 + latency_max / 4
            }
            Arrival::Dropped { at, reason: DropReason::NodeDown } => at + latency_max / 4,
        }
    }

    /// The pose at time `now`, or `None` when the flight is not in the air then.
    pub fn pose(&self, now: Micros, latency_max: Micros) -> Option<Pose> {
        if now < self.sent_at || now > self.end(latency_max) {
            return None;
        }
        let elapsed = (now - self.sent_at) as f64;
        let span = |end: Micros| (end.saturating_sub(self.sent_at)).max(1) as f64;
        let pose = match self.arrival {
            // Unknown only at the edge of the simulated horizon: never claim an arrival.
            Arrival::Unknown => {
                Pose { fraction: (elapsed / span(self.end(latency_max))).min(0.97), doomed: false, opacity: 1.0 }
            }
            Arrival::Delivered(at) => Pose { fraction: elapsed / span(at), doomed: false, opacity: 1.0 },
            Arrival::Dropped { reason: DropReason::Loss | DropReason::Partition, .. } => {
                let halfway = self.sent_at + latency_max / 2;
                let fraction = (elapsed / span(halfway)).min(1.0) * 0.5;
                let fade = now.saturating_sub(halfway) as f64 / (latency_max / 4).max(1) as f64;
                Pose { fraction, doomed: true, opacity: (1.0 - fade).clamp(0.15, 1.0) }
            }
            Arrival::Dropped { at, reason: DropReason::NodeDown } => {
                let fade = now.saturating_sub(at) as f64 / (latency_max / 4).max(1) as f64;
                Pose { fraction: (elapsed / span(at)).min(1.0), doomed: true, opacity: (1.0 - fade).clamp(0.15, 1.0) }
            }
        };
        Some(pose)
    }
}

/// Every flight the screen may still need.
#[derive(Clone, Debug, Default)]
pub struct Flights {
    active: BTreeMap<FlightKey, Flight>,
    /// Finished flights, oldest first, at most `history_max`.
    finished: VecDeque<Flight>,
    history_max: usize,
    /// Shortest flight drawn (live streams only): processes' clocks differ a little, so a
    /// delivery may be stamped before its send, and such a message would never be seen.
    min_flight: Micros,
    /// Ends seen before their send (live streams only), oldest first, at most `history_max`.
    early_ends: VecDeque<(NodeId, u64, Arrival)>,
    /// Every flight ever started (statistics).
    pub started: u64,
}

impl Flights {
    pub fn new(history_max: usize) -> Flights {
        Flights { history_max, ..Flights::default() }
    }

    /// Flights that last at least `min_flight` (see the field).
    pub fn with_min_flight(self, min_flight: Micros) -> Flights {
        Flights { min_flight, ..self }
    }

    fn at_least_min(&self, sent_at: Micros, arrival: Arrival) -> Arrival {
        match arrival {
            Arrival::Delivered(at) => Arrival::Delivered(at.max(sent_at + self.min_flight)),
            Arrival::Dropped { at, reason } => Arrival::Dropped { at: at.max(sent_at + self.min_flight), reason },
            Arrival::Unknown => Arrival::Unknown,
        }
    }

    /// Takes one trace event into account; events that are not about messages are ignored.
    pub fn observe(&mut self, event: &TraceEvent) {
        match &event.kind {
            TraceKind::MessageSent { id, to, kind, key, txn } => {
                let flight_key = FlightKey { from: event.node, id: *id, copy: 0 };
                let early = self.early_ends.iter().position(|(from, early, _)| *from == event.node && early == id);
                let arrival = early
                    .and_then(|index| self.early_ends.remove(index))
                    .map_or(Arrival::Unknown, |(_, _, arrival)| self.at_least_min(event.at, arrival));
                self.started += 1;
                self.active.insert(
                    flight_key,
                    Flight {
                        key: flight_key,
                        to: *to,
                        kind: *kind,
                        sent_at: event.at,
                        arrival,
                        subject: key.clone(),
                        txn: *txn,
                    },
                );
            }
            TraceKind::MessageDelivered { id, from, .. } => {
                self.end(*from, *id, Arrival::Delivered(event.at));
            }
            TraceKind::MessageDropped { id, reason, .. } => {
                self.end(event.node, *id, Arrival::Dropped { at: event.at, reason: *reason });
            }
            _ => {}
        }
    }

    fn end(&mut self, from: NodeId, id: u64, arrival: Arrival) {
        let first = FlightKey { from, id, copy: 0 };
        let copies: Vec<FlightKey> =
            self.active.range(first..=FlightKey { copy: u32::MAX, ..first }).map(|(key, _)| *key).collect();
        if let Some(open) = copies.iter().find(|key| self.active[key].arrival == Arrival::Unknown) {
            let sent_at = self.active[open].sent_at;
            let arrival = self.at_least_min(sent_at, arrival);
            self.active.get_mut(open).expect("the key was just listed").arrival = arrival;
            return;
        }
        // A duplicate: the network delivered a second copy of a message already accounted for.
        let Some(original) = copies.first().map(|key| self.active[key].clone()) else {
            // No send yet: it may still come (live streams are merged from several sockets).
            self.early_ends.push_back((from, id, arrival));
            while self.early_ends.len() > self.history_max {
                self.early_ends.pop_front();
            }
            return;
        };
        let copy = copies.last().map_or(0, |key| key.copy) + 1;
        let key = FlightKey { copy, ..first };
        self.started += 1;
        let arrival = self.at_least_min(original.sent_at, arrival);
        self.active.insert(key, Flight { key, arrival, ..original });
    }

    /// Flights in the air at `now`, with their poses.
    pub fn in_air(&self, now: Micros, latency_max: Micros) -> impl Iterator<Item = (&Flight, Pose)> {
        self.active.values().filter_map(move |flight| flight.pose(now, latency_max).map(|pose| (flight, pose)))
    }

    /// Moves flights that ended before `now` to the finished list.
    pub fn retire(&mut self, now: Micros, latency_max: Micros) {
        let done: Vec<FlightKey> = self
            .active
            .values()
            .filter(|flight| flight.arrival != Arrival::Unknown && flight.end(latency_max) < now)
            .map(|flight| flight.key)
            .collect();
        for key in done {
            let flight = self.active.remove(&key).expect("the key was just listed");
            self.finished.push_back(flight);
            while self.finished.len() > self.history_max {
                self.finished.pop_front();
            }
        }
    }

    /// Retires flights sent before `before` whose end is still unknown: on a live stream the end
    /// may have been lost (a dropped event, a killed receiver), and an open flight would stay
    /// forever. Returns how many were retired.
    pub fn expire(&mut self, before: Micros) -> usize {
        let stale: Vec<FlightKey> = self
            .active
            .values()
            .filter(|flight| flight.arrival == Arrival::Unknown && flight.sent_at < before)
            .map(|flight| flight.key)
            .collect();
        for key in &stale {
            let flight = self.active.remove(key).expect("the key was just listed");
            self.finished.push_back(flight);
        }
        while self.finished.len() > self.history_max {
            self.finished.pop_front();
        }
        stale.len()
    }

    /// Every known flight, finished ones first, sent at or before `now` and ending at or after
    /// `since` (the space-time diagram's window).
    pub fn window(&self, since: Micros, now: Micros, latency_max: Micros) -> impl Iterator<Item = &Flight> {
        self.finished
            .iter()
            .chain(self.active.values())
            .filter(move |flight| flight.sent_at <= now && flight.end(latency_max) >= since)
    }

    /// The flight named `key`, in the air or finished (the hovered message's tooltip).
    pub fn get(&self, key: FlightKey) -> Option<&Flight> {
        self.active.get(&key).or_else(|| self.finished.iter().rev().find(|flight| flight.key == key))
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATENCY_MAX: Micros = 4_000;

    fn sent(at: Micros, from: u32, id: u64, to: u32) -> TraceEvent {
        TraceEvent {
            at,
            node: NodeId(from),
            kind: TraceKind::MessageSent {
                id,
                to: NodeId(to),
                kind: MessageKind::Prepare,
                txn: Some(1),
                key: Some(Blob::from("apple")),
            },
        }
    }

    fn delivered(at: Micros, from: u32, id: u64, to: u32) -> TraceEvent {
        TraceEvent {
            at,
            node: NodeId(to),
            kind: TraceKind::MessageDelivered { id, from: NodeId(from), kind: MessageKind::Prepare },
        }
    }

    fn dropped(at: Micros, from: u32, id: u64, to: u32, reason: DropReason) -> TraceEvent {
        TraceEvent {
            at,
            node: NodeId(from),
            kind: TraceKind::MessageDropped { id, to: NodeId(to), kind: MessageKind::Prepare, reason },
        }
    }

    fn check(events: &[TraceEvent], now: Micros, expected: &[(u32, u64, f64, bool)]) {
        let mut flights = Flights::new(10);
        for event in events {
            flights.observe(event);
        }
        let poses: Vec<(u32, u64, f64, bool)> = flights
            .in_air(now, LATENCY_MAX)
            .map(|(flight, pose)| {
                (flight.key.from.0, flight.key.id, (pose.fraction * 100.0).round() / 100.0, pose.doomed)
            })
            .collect();
        assert_eq!(poses, expected);
    }

    #[test]
    fn a_delivered_message_moves_at_its_true_speed() {
        let events = [sent(1_000, 0, 7, 2), delivered(3_000, 0, 7, 2)];
        check(&events, 999, &[]);
        check(&events, 1_000, &[(0, 7, 0.0, false)]);
        check(&events, 2_000, &[(0, 7, 0.5, false)]);
        check(&events, 3_000, &[(0, 7, 1.0, false)]);
        check(&events, 3_001, &[]);
    }

    #[test]
    fn deliveries_match_by_sender_and_id() {
        // Two senders use the same id; each delivery ends its own flight.
        let events = [sent(0, 0, 1, 2), sent(0, 1, 1, 2), delivered(1_000, 1, 1, 2), delivered(4_000, 0, 1, 2)];
        check(&events, 500, &[(0, 1, 0.13, false), (1, 1, 0.5, false)]);
        check(&events, 2_000, &[(0, 1, 0.5, false)]);
    }

    #[test]
    fn an_unknown_arrival_never_reaches_the_receiver() {
        check(&[sent(0, 0, 1, 2)], LATENCY_MAX, &[(0, 1, 0.97, false)]);
    }

    #[test]
    fn lost_messages_die_half_way_and_down_receivers_at_the_door() {
        let lost = [sent(0, 0, 1, 2), dropped(0, 0, 1, 2, DropReason::Loss)];
        check(&lost, 1_000, &[(0, 1, 0.25, true)]);
        check(&lost, 2_500, &[(0, 1, 0.5, true)]);
        check(&lost, 3_001, &[]);
        let down = [sent(0, 0, 1, 2), dropped(2_000, 0, 1, 2, DropReason::NodeDown)];
        check(&down, 2_000, &[(0, 1, 1.0, true)]);
    }

    #[test]
    fn a_duplicate_delivery_becomes_a_second_flight() {
        let events = [sent(0, 0, 1, 2), delivered(1_000, 0, 1, 2), delivered(2_000, 0, 1, 2)];
        check(&events, 500, &[(0, 1, 0.5, false), (0, 1, 0.25, false)]);
    }

    #[test]
    fn a_delivery_reported_before_its_send_still_ends_the_flight() {
        let events = [delivered(2_000, 0, 7, 2), sent(1_000, 0, 7, 2)];
        check(&events, 1_500, &[(0, 7, 0.5, false)]);
        check(&events, 2_001, &[]);
    }

    #[test]
    fn a_minimum_flight_keeps_skewed_deliveries_visible() {
        let mut flights = Flights::new(10).with_min_flight(1_000);
        // The receiver's clock is behind: the delivery is stamped before the send.
        flights.observe(&sent(5_000, 0, 1, 2));
        flights.observe(&delivered(4_900, 0, 1, 2));
        let (flight, pose) = flights.in_air(5_500, LATENCY_MAX).next().expect("in the air");
        assert_eq!(flight.arrival, Arrival::Delivered(6_000));
        assert!((pose.fraction - 0.5).abs() < 1e-9);
    }

    #[test]
    fn flights_whose_end_never_comes_expire() {
        let mut flights = Flights::new(10);
        flights.observe(&sent(0, 0, 1, 2));
        flights.observe(&sent(5_000, 0, 2, 2));
        assert_eq!(flights.expire(1_000), 1);
        assert_eq!(flights.active_count(), 1);
        assert_eq!(flights.window(0, 10_000, LATENCY_MAX).count(), 2);
    }

    #[test]
    fn finished_flights_are_kept_for_the_diagram_up_to_a_bound() {
        let mut flights = Flights::new(3);
        for id in 0..5 {
            flights.observe(&sent(id * 10, 0, id, 1));
            flights.observe(&delivered(id * 10 + 5, 0, id, 1));
        }
        flights.retire(1_000, LATENCY_MAX);
        assert_eq!(flights.active_count(), 0);
        let ids: Vec<u64> = flights.window(0, 1_000, LATENCY_MAX).map(|flight| flight.key.id).collect();
        assert_eq!(ids, [2, 3, 4]);
        assert_eq!(flights.started, 5);
        let third = FlightKey { from: NodeId(0), id: 3, copy: 0 };
        assert_eq!(flights.get(third).map(|flight| flight.sent_at), Some(30));
        assert_eq!(flights.get(FlightKey { id: 0, ..third }), None, "pushed out of the history");
    }
}
