//! Client sessions: how whoever hands requests to a node numbers them.
//!
//! The core recognizes a retried request by its `OpId` (client session and sequence number) and
//! lets a request take effect at most once through the writer sessions kept in each record.
//! That rests on two rules every front end must keep, and this module is where they are kept,
//! so that the RESP port, the WebSocket API, the simulator's clients and the page all keep them
//! the same way:
//!
//! - a session has at most one request outstanding, and numbers its requests in increasing
//!   order (`Session::start` consumes the session; only the answered request gives it back);
//! - no two sessions share a `ClientId`, across the cluster and across restarts (`ClientIds`,
//!   which only a started `Node` hands out: its ids carry the node's durable incarnation).
//!
//! `SessionPool` keeps idle sessions for reuse, so a node serving many connections over a long
//! life does not run through its id space. `Pipeline` runs one connection's operations side by
//! side, at most `capacity` at once, while keeping those on one key (and those that cover the
//! whole store) in the order they were sent. Nothing here does IO.

use std::collections::VecDeque;

use crate::message::{ClientOp, ClientRequest};
use crate::types::{Blob, ClientId, NodeId, OpId, INCARNATION_MAX};

/// Bits of a node-minted `ClientId` below the node index: the session counter.
const CLIENT_COUNTER_BITS: u32 = 32;
/// Bits of a node-minted `ClientId` for the node index, below the incarnation.
const CLIENT_NODE_BITS: u32 = 8;

/// The client ids one node incarnation may hand out: `incarnation | node | counter`, high bits
/// to low. Incarnations start at 1, so these never meet the small ids the simulator's clients
/// and the page's history use (`ClientIds::unbound`), nor the ids the core reserves for its own
/// repair writes (incarnation bits all ones, which no incarnation reaches).
#[derive(Debug)]
pub struct ClientIds {
    base: u64,
    next: u64,
    end: u64,
}

impl ClientIds {
    /// The ids of `node` in `incarnation` (what `Node::take_client_ids` hands out once).
    pub(crate) fn of(node: NodeId, incarnation: u64) -> ClientIds {
        assert!((1..=INCARNATION_MAX).contains(&incarnation), "incarnation {incarnation} out of range");
        assert!((node.0 as u64) < 1 << CLIENT_NODE_BITS, "node index {} too large for a client id", node.0);
        let base = incarnation << (CLIENT_COUNTER_BITS + CLIENT_NODE_BITS) | (node.0 as u64) << CLIENT_COUNTER_BITS;
        ClientIds { base, next: 0, end: 1 << CLIENT_COUNTER_BITS }
    }

    /// Ids 1, 2, 3, ... for sessions whose requests never reach a node's at-most-once
    /// bookkeeping under these ids (the page's own history of a live cluster, whose requests
    /// the nodes number themselves) or that come from outside every node (simulated clients).
    pub fn unbound() -> ClientIds {
        ClientIds { base: 0, next: 1, end: 1 << CLIENT_COUNTER_BITS }
    }

    /// A client id no session of this node incarnation has had. Panics once the counter's 2^32
    /// ids are used up: a pool reuses sessions, so only sessions abandoned with a request in
    /// flight ever consume new ids, and a restart (a new incarnation) starts the counter anew.
    pub fn mint(&mut self) -> ClientId {
        assert!(self.next < self.end, "this node incarnation has handed out all of its client ids; restart the node");
        let id = ClientId(self.base | self.next);
        self.next += 1;
        id
    }
}

/// A client session with no request outstanding. Not `Clone` and not `Copy`: a session is in
/// exactly one place, idle (here) or busy (inside the `Pending` of its one request).
#[derive(Debug, PartialEq, Eq)]
pub struct Session {
    client: ClientId,
    /// The sequence number of the session's last request.
    seq: u64,
}

impl Session {
    pub fn new(client: ClientId) -> Session {
        Session { client, seq: 0 }
    }

    pub fn client(&self) -> ClientId {
        self.client
    }

    /// The session's next request. The session is busy until the request is answered
    /// (`Pending::finish`); resending `Pending::request` is a retry of the same request.
    pub fn start(self, op: ClientOp) -> Pending {
        let seq = self.seq + 1;
        let request = ClientRequest { id: OpId { client: self.client, seq }, op };
        Pending { session: Session { client: self.client, seq }, request }
    }
}

/// A session's one outstanding request.
#[derive(Debug)]
#[must_use = "a pending request must be finished once answered, or its session is lost"]
pub struct Pending {
    session: Session,
    request: ClientRequest,
}

impl Pending {
    /// The request; every retry sends exactly this again (same `OpId`).
    pub fn request(&self) -> &ClientRequest {
        &self.request
    }

    pub fn id(&self) -> OpId {
        self.request.id
    }

    /// The request was answered: the session is idle again.
    pub fn finish(self) -> Session {
        self.session
    }
}

/// Idle sessions for reuse, and the ids for new ones.
#[derive(Debug)]
pub struct SessionPool {
    ids: ClientIds,
    idle: Vec<Session>,
}

impl SessionPool {
    pub fn new(ids: ClientIds) -> SessionPool {
        SessionPool { ids, idle: Vec::new() }
    }

    /// An idle session: a reused one, or a new one.
    pub fn take(&mut self) -> Session {
        self.idle.pop().unwrap_or_else(|| Session::new(self.ids.mint()))
    }

    /// Gives an idle session back.
    pub fn put(&mut self, session: Session) {
        self.idle.push(session);
    }

    /// Sessions waiting for reuse.
    pub fn idle(&self) -> usize {
        self.idle.len()
    }
}

/// What an operation reads or writes: one key, or the whole store (`@`, `*` and their deletes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Key(Blob),
    Store,
}

impl Scope {
    pub fn of(op: &ClientOp) -> Scope {
        op.key().map_or(Scope::Store, |key| Scope::Key(key.clone()))
    }

    fn overlaps(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Key(one), Scope::Key(other)) => one == other,
            _ => true,
        }
    }
}

/// One operation a `Pipeline` started: its tag, its request (holding a session of its own), and
/// the token that finishes it.
#[derive(Debug)]
pub struct Started<T> {
    pub tag: T,
    pub token: Token,
    pub pending: Pending,
}

/// Names one started operation of a `Pipeline`, to finish it once. Not `Clone`.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a started operation must be finished once answered"]
pub struct Token(u64);

/// One connection's client operations: submitted in order, started side by side (each on a
/// session of its own, at most `capacity` at once, waiting ones included), except that an
/// operation waits while an earlier unfinished one overlaps its scope. A client that sends a
/// put and then a get of the same key without waiting so reads its own write, as it would one
/// at a time, and a request for a key whose quorum is down holds up no other key.
#[derive(Debug)]
pub struct Pipeline<T> {
    capacity: usize,
    waiting: VecDeque<(T, ClientOp)>,
    /// The scopes of the operations started and not finished, by token.
    running: Vec<(u64, Scope)>,
    next_token: u64,
}

impl<T> Pipeline<T> {
    pub fn new(capacity: usize) -> Pipeline<T> {
        assert!(capacity > 0, "a pipeline runs at least one operation");
        Pipeline { capacity, waiting: VecDeque::new(), running: Vec::new(), next_token: 0 }
    }

    /// Whether another operation may be submitted (the connection reads no further requests
    /// while not, so a client cannot make the node hold an unbounded queue).
    pub fn has_room(&self) -> bool {
        self.waiting.len() + self.running.len() < self.capacity
    }

    /// Operations submitted and not finished.
    pub fn len(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `op` behind everything submitted before it. Panics without room (`has_room`).
    pub fn submit(&mut self, tag: T, op: ClientOp) {
        assert!(self.has_room(), "Pipeline::submit without room");
        self.waiting.push_back((tag, op));
    }

    /// Starts, in submission order, every waiting operation that overlaps no unfinished one
    /// before it, each on a session from `pool`.
    pub fn start_ready(&mut self, pool: &mut SessionPool) -> Vec<Started<T>> {
        let mut started = Vec::new();
        let mut index = 0;
        while index < self.waiting.len() {
            let scope = Scope::of(&self.waiting[index].1);
            let blocked = self.running.iter().any(|(_, running)| running.overlaps(&scope))
                || self.waiting.iter().take(index).any(|(_, earlier)| Scope::of(earlier).overlaps(&scope));
            if blocked {
                index += 1;
                continue;
            }
            let (tag, op) = self.waiting.remove(index).expect("index is within waiting");
            let token = self.next_token;
            self.next_token += 1;
            self.running.push((token, scope));
            started.push(Started { tag, token: Token(token), pending: pool.take().start(op) });
        }
        started
    }

    /// The operation of `token` is over: those waiting behind it may start (`start_ready`). Its
    /// session goes back to `pool` when the node answered the request (`Pending::finish`); an
    /// operation given up without an answer may still be in flight, so its session is never
    /// used again (`None`).
    pub fn finish(&mut self, token: Token, session: Option<Session>, pool: &mut SessionPool) {
        let before = self.running.len();
        self.running.retain(|(running, _)| *running != token.0);
        assert_eq!(self.running.len() + 1, before, "a token finishes an operation of its own pipeline");
        if let Some(session) = session {
            pool.put(session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> ClientOp {
        ClientOp::Put { key: key.into(), value: "v".into() }
    }

    fn get(key: &str) -> ClientOp {
        ClientOp::Get { key: key.into() }
    }

    #[test]
    fn a_session_numbers_its_requests_and_is_busy_until_answered() {
        let session = Session::new(ClientId(7));
        let first = session.start(get("a"));
        assert_eq!(first.id(), OpId { client: ClientId(7), seq: 1 });
        // `session` was moved into `first`: a second request cannot start until it is finished.
        let second = first.finish().start(get("b"));
        assert_eq!(second.id(), OpId { client: ClientId(7), seq: 2 });
        assert_eq!(second.request().op, get("b"));
    }

    #[test]
    fn node_client_ids_carry_incarnation_and_node_and_never_meet() {
        let mut seen = std::collections::BTreeSet::new();
        for incarnation in [1, 2, 3, INCARNATION_MAX] {
            for node in [0, 1, 63] {
                let mut ids = ClientIds::of(NodeId(node), incarnation);
                for _ in 0..1_000 {
                    assert!(seen.insert(ids.mint()), "an id was handed out twice");
                }
            }
        }
        let mut unbound = ClientIds::unbound();
        for _ in 0..1_000 {
            assert!(seen.insert(unbound.mint()), "an unbound id met a node's");
        }
        // The core's own repair writes use `u64::MAX - node`: beyond every incarnation.
        assert!(seen.iter().all(|id| id.0 < u64::MAX - 64));
    }

    #[test]
    fn a_pool_reuses_idle_sessions_and_their_numbering_goes_on() {
        let mut pool = SessionPool::new(ClientIds::unbound());
        let pending = pool.take().start(get("a"));
        let client = pending.id().client;
        pool.put(pending.finish());
        let again = pool.take().start(get("b"));
        assert_eq!(again.id(), OpId { client, seq: 2 }, "the same session, its next number");
        let other = pool.take();
        assert_ne!(other.client(), client, "a busy session is never handed out twice");
    }

    #[test]
    fn a_pipeline_runs_other_keys_side_by_side_and_one_key_in_order() {
        let mut pool = SessionPool::new(ClientIds::unbound());
        let mut pipeline = Pipeline::new(4);
        pipeline.submit("put a", put("a"));
        pipeline.submit("get a", get("a"));
        pipeline.submit("get b", get("b"));
        let started = pipeline.start_ready(&mut pool);
        let tags: Vec<&str> = started.iter().map(|started| started.tag).collect();
        assert_eq!(tags, ["put a", "get b"], "the get of a waits for the put of a");
        let clients: Vec<ClientId> = started.iter().map(|started| started.pending.id().client).collect();
        assert_ne!(clients[0], clients[1], "each operation in flight has a session of its own");
        pipeline.submit("scan", ClientOp::GlobalQuery);
        assert!(!pipeline.has_room());
        let mut started = started.into_iter();
        let put_a = started.next().unwrap();
        pipeline.finish(put_a.token, Some(put_a.pending.finish()), &mut pool);
        let next: Vec<&str> = pipeline.start_ready(&mut pool).into_iter().map(|started| started.tag).collect();
        assert_eq!(next, ["get a"], "the scan waits for everything before it");
        // Given up without an answer: its session may still be busy, so it is not reused.
        let get_b = started.next().unwrap();
        let lost = get_b.pending.id().client;
        pipeline.finish(get_b.token, None, &mut pool);
        assert!(pipeline.start_ready(&mut pool).is_empty(), "get a still runs");
        assert_eq!(pipeline.len(), 2);
        assert_eq!(pool.idle(), 0, "the put's session went on to the get of a; the lost one is not back");
        assert_ne!(pool.take().client(), lost);
    }
}
