//! Routing: a receiving node hands each single-key request to a coordinator among the key's
//! home replicas (itself, if it is one and not suspected first in line). The coordinator
//! acknowledges at once (`ForwardAck`); silence for one request timeout makes the receiver
//! suspect it and try the next home, with the same request id; an acknowledged forward waits
//! for the coordinator's whole operation. Never a fallback node: a coordinator's own durable
//! promise is what keeps its ballots unique across its restarts, and only homes hold one.

use crate::message::{ClientReply, ClientRequest, Message, Unavailable};
use crate::trace::TraceKind;
use crate::types::{Micros, NodeId};

use super::coordinate::{ReplyTo, Txn};
use super::{Node, Timer};

/// A request this node hands to a coordinator: always a home replica of the key, whose own
/// durable promise keeps its ballots unique across its restarts.
pub(super) struct Route {
    reply_to: ReplyTo,
    request: ClientRequest,
    candidates: Vec<NodeId>,
    attempt: u32,
    target: NodeId,
    until: Micros,
    acknowledged: bool,
}

impl Node {
    /// Hands a single-key request to a coordinator among its home replicas (this node, if it
    /// is one and not suspected first in line).
    pub(super) fn route(&mut self, request: ClientRequest, reply_to: ReplyTo) {
        let key = request.op.key().expect("only single-key requests are routed");
        // Its voters, the new homes first while its arc moves: each holds a durable promise.
        let candidates = self.electorate(key.as_bytes()).all();
        let txn = self.new_txn();
        let mut route =
            Route { reply_to, request, candidates, attempt: 0, target: self.id, until: 0, acknowledged: false };
        if self.route_next(txn, &mut route) {
            self.txns.insert(txn, Txn::Route(route));
        }
    }

    /// Sends the request to the next coordinator; false when this node coordinates it.
    fn route_next(&mut self, txn: u64, route: &mut Route) -> bool {
        let homes = &route.candidates;
        let start = route.attempt as usize;
        // The first home this node does not suspect, from the attempt's position on (wrapping);
        // if every one is suspected, simply the next in order (suspicion is advice, not a
        // verdict). Never a fallback node: see `Route`.
        let pick = (0..homes.len())
            .map(|offset| homes[(start + offset) % homes.len()])
            .find(|node| !self.suspected[node.index()])
            .unwrap_or(homes[start % homes.len()]);
        route.attempt += 1;
        route.target = pick;
        if pick == self.id {
            // Picked among the key's homes: no need to check again.
            self.coordinate_here(route.request.clone(), route.reply_to);
            return false;
        }
        // A live coordinator acknowledges at once; silence for one round trip means it is down.
        route.until = self.now + self.config.request_timeout();
        route.acknowledged = false;
        self.emit(TraceKind::Forwarded { txn, id: route.request.id, to: pick, attempt: route.attempt });
        let message = Message::Forward { txn, request: route.request.clone(), attempt: route.attempt };
        self.send(pick, message);
        self.schedule(route.until, Timer::Txn(txn));
        true
    }

    pub(super) fn on_forward_ack(&mut self, txn: u64) {
        let until = self.now + self.config.forward_timeout();
        if let Some(Txn::Route(route)) = self.txns.get_mut(&txn) {
            if !route.acknowledged {
                route.acknowledged = true;
                route.until = until;
                self.schedule(until, Timer::Txn(txn));
            }
        }
    }

    pub(super) fn on_forward_reply(&mut self, txn: u64, reply: ClientReply) {
        if let Some(Txn::Route(route)) = self.txns.remove(&txn) {
            self.answer(route.reply_to, reply);
        }
    }

    /// A forward got no acknowledgement (or no answer) in time: suspect the coordinator and try
    /// the next one, until `coordinator_attempts_max` have been tried.
    pub(super) fn route_timer(&mut self, txn: u64) {
        let Some(Txn::Route(route)) = self.txns.get(&txn) else { return };
        if self.now < route.until {
            return;
        }
        let Some(Txn::Route(mut route)) = self.txns.remove(&txn) else { return };
        self.suspect(route.target);
        if route.attempt >= self.config.coordinator_attempts_max {
            self.answer(route.reply_to, Self::unavailable(Unavailable::NoCoordinator));
        } else if self.route_next(txn, &mut route) {
            self.txns.insert(txn, Txn::Route(route));
        }
    }
}
