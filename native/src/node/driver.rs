//! The effects half of the node task: carries out what the core's `Node` outputs (sends to the
//! peer links, replies to the waiting connections, persist batches to the storage, trace events
//! to subscribers), and `Persister`, which decides nothing but where a batch is committed.

use std::collections::HashMap;
use std::sync::Arc;

use dynamo_core::message::{ClientReply, Envelope};
use dynamo_core::node::{Admission, Input, Node, Output};
use dynamo_core::store::PersistBatch;
use dynamo_core::trace::{DropReason, TraceEvent, TraceKind};
use dynamo_core::types::NodeId;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::Event;
use crate::storage::{batch_bytes, commit_or_exit, Storage};
use dynamo_core::api::Inspection;

/// The effects half of the node task.
pub(super) struct Driver {
    pub(super) id: NodeId,
    /// Peers this node must not send to (one-way link cuts from the control API).
    pub(super) cut: Vec<bool>,
    pub(super) now: Box<dyn Fn() -> u64 + Send>,
    pub(super) links: Vec<Option<mpsc::Sender<Envelope>>>,
    pub(super) persister: Persister,
    pub(super) traces: broadcast::Sender<TraceEvent>,
    pub(super) replies: HashMap<u64, oneshot::Sender<ClientReply>>,
    pub(super) admin_replies: HashMap<u64, oneshot::Sender<dynamo_core::membership::AdminReply>>,
    pub(super) next_handle: u64,
    /// Node names by index, for logs.
    pub(super) names: Vec<String>,
    pub(super) liveness: Arc<std::sync::Mutex<Vec<bool>>>,
    pub(super) standing: Arc<std::sync::atomic::AtomicU8>,
    /// The node's current ring and its epoch, for connections (`Handle::ring`).
    pub(super) ring: Arc<std::sync::RwLock<(u64, Arc<dynamo_core::ring::Ring>)>>,
    pub(super) recent: Arc<std::sync::Mutex<std::collections::VecDeque<TraceEvent>>>,
}

/// Where persist batches go. With fsync, every batch goes to the group-commit thread. Without,
/// the node task commits small batches itself once the events at hand are handled: a journal
/// append costs microseconds, less than a hand-off to a thread and back (the one-key
/// benchmark lost about a sixth of its SETs per second with every commit on the thread). Large
/// batches go to the thread: fjall holds a writer back, in steps of 100 ms, while its memtables
/// wait to be flushed, which large values bring about, and the node task must keep answering
/// meanwhile. Batches stay in order: while the thread holds any not yet reported durable, every
/// batch goes there too.
pub(super) struct Persister {
    pub(super) thread: std::sync::mpsc::Sender<PersistBatch>,
    /// Without fsync: the storage the node task commits to.
    pub(super) inline: Option<Storage>,
    /// Batches waiting for the node task's next inline commit, and about how many bytes.
    pub(super) waiting: Vec<PersistBatch>,
    pub(super) waiting_bytes: u64,
    /// The last batch handed to the thread, and the last one it reported durable.
    pub(super) sent: u64,
    pub(super) durable: u64,
}

/// Without fsync, the bytes of waiting batches the node task commits inline (see `Persister`).
const INLINE_COMMIT_BYTES_MAX: u64 = 64 << 10;

impl Persister {
    /// The storage thread reported every batch up to `batch` durable.
    fn reported(&mut self, batch: u64) {
        self.durable = self.durable.max(batch);
    }

    fn persist(&mut self, batch: PersistBatch) {
        let bytes = batch_bytes(&batch);
        let thread_idle = self.durable == self.sent;
        if self.inline.is_some() && thread_idle && self.waiting_bytes + bytes <= INLINE_COMMIT_BYTES_MAX {
            self.waiting_bytes += bytes;
            self.waiting.push(batch);
            return;
        }
        self.waiting_bytes = 0;
        for batch in self.waiting.drain(..).chain(std::iter::once(batch)) {
            self.sent = batch.seq;
            if self.thread.send(batch).is_err() {
                tracing::error!("storage thread is gone");
                std::process::exit(70);
            }
        }
    }
}

/// Lifecycle events kept for late subscribers.
const RECENT_EVENTS_MAX: usize = 256;

impl Driver {
    /// Takes in one event for the node task: most become an input of the node.
    pub(super) fn take(&mut self, node: &mut Node, now: u64, event: Event, outputs: &mut Vec<Output>) {
        let input = match event {
            Event::Peer { from, envelope } => Input::Message { from, envelope },
            Event::Persisted(batch) => {
                self.persister.reported(batch);
                Input::Persisted { batch }
            }
            Event::Client { request, reply } => {
                self.next_handle += 1;
                self.replies.insert(self.next_handle, reply);
                Input::Client { handle: self.next_handle, request }
            }
            Event::Admin { request, reply } => {
                self.next_handle += 1;
                self.admin_replies.insert(self.next_handle, reply);
                Input::Admin { handle: self.next_handle, request }
            }
            Event::Inspect(reply) => {
                let _ = reply.send(Inspection::of_node(node));
                return;
            }
            Event::Cut { peer, cut } => {
                if let Some(flag) = self.cut.get_mut(peer.index()) {
                    *flag = cut;
                }
                let peer = self.names.get(peer.index()).map_or("?", String::as_str);
                tracing::info!(peer, cut, "link control");
                return;
            }
        };
        self.step(node, now, input, outputs);
    }

    /// One input through the node, and its effects carried out.
    pub(super) fn step(&mut self, node: &mut Node, now: u64, input: Input, outputs: &mut Vec<Output>) {
        // Trace events cost allocations: build them only while someone subscribes, or while
        // recovering (its progress is logged).
        let probing = matches!(node.admission(), Admission::Probing { .. });
        node.set_trace(self.traces.receiver_count() > 0 || node.is_recovering() || probing);
        node.step(now, input, outputs);
        self.carry_out(outputs);
        self.update_liveness(node);
        if let Some(refusal) = node.refusal() {
            // Its data was lost: it must not vote as if new, and serving nothing is no use.
            tracing::error!("{refusal}");
            std::process::exit(2);
        }
    }

    /// Commits the batches waiting for an inline commit (all the events handled since the last
    /// commit share it) and tells the node, until nothing waits.
    pub(super) fn commit_inline(&mut self, node: &mut Node, now: u64, outputs: &mut Vec<Output>) {
        loop {
            let persister = &mut self.persister;
            let Some(storage) = &persister.inline else { return };
            let Some(last) = persister.waiting.last().map(|batch| batch.seq) else { return };
            commit_or_exit(storage, &persister.waiting);
            persister.waiting.clear();
            persister.waiting_bytes = 0;
            self.step(node, now, Input::Persisted { batch: last }, outputs);
        }
    }

    /// Copies which peers the node suspects, for INFO.
    fn update_liveness(&self, node: &Node) {
        self.standing.store(super::standing_of(node.admission()), std::sync::atomic::Ordering::Relaxed);
        let epoch = node.layout().epoch();
        if self.ring.read().is_ok_and(|ring| ring.0 != epoch) {
            if let Ok(mut ring) = self.ring.write() {
                *ring = (epoch, node.ring_shared());
            }
        }
        if let Ok(mut list) = self.liveness.lock() {
            for (index, suspected) in list.iter_mut().enumerate() {
                *suspected = node.suspects(NodeId(index as u32));
            }
        }
    }

    pub(super) fn carry_out(&mut self, outputs: &mut Vec<Output>) {
        for output in outputs.drain(..) {
            match output {
                Output::Send { to, envelope } => {
                    if self.cut.get(to.index()).copied().unwrap_or(false) {
                        if self.traces.receiver_count() > 0 {
                            let kind = TraceKind::MessageDropped {
                                id: envelope.id,
                                to,
                                kind: envelope.message.kind(),
                                reason: DropReason::Partition,
                            };
                            let _ = self.traces.send(TraceEvent { at: (self.now)(), node: self.id, kind });
                        }
                        continue;
                    }
                    if let Some(Some(link)) = self.links.get(to.index()) {
                        // A full queue means the peer is not keeping up; drop, timeouts follow.
                        let _ = link.try_send(envelope);
                    }
                }
                Output::Reply { handle, reply } => {
                    if let Some(waiting) = self.replies.remove(&handle) {
                        let _ = waiting.send(reply);
                    }
                }
                Output::AdminReply { handle, reply } => {
                    if let Some(waiting) = self.admin_replies.remove(&handle) {
                        let _ = waiting.send(reply);
                    }
                }
                Output::Persist(batch) => self.persister.persist(batch),
                Output::Trace(event) => {
                    match &event.kind {
                        TraceKind::RecoveryStarted { peers } => {
                            tracing::info!(peers = peers.len(), "recovery: copying the writes missed while down")
                        }
                        TraceKind::RecoveryProgress { peer, records, peer_done } => {
                            let peer = self.names.get(peer.index()).map_or("?", String::as_str);
                            tracing::info!(peer, keys = records, done = peer_done, "recovery: copied keys")
                        }
                        TraceKind::RecoveryFinished { records } => {
                            tracing::info!(keys = records, "recovery finished; serving reads")
                        }
                        TraceKind::Admitted => {
                            tracing::info!("admitted: its peers remember no other disk of this node; serving")
                        }
                        _ => {}
                    }
                    if event.kind.is_lifecycle() {
                        if let Ok(mut recent) = self.recent.lock() {
                            if recent.len() == RECENT_EVENTS_MAX {
                                recent.pop_front();
                            }
                            recent.push_back(event.clone());
                        }
                    }
                    if self.traces.receiver_count() > 0 {
                        let _ = self.traces.send(event);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_core::store::{Record, Slot};
    use dynamo_core::types::{Blob, ClientId, OpId};
    use dynamo_core::version::{Ballot, VectorClock};

    fn batch(seq: u64, value_bytes: usize) -> PersistBatch {
        let record = Record {
            ballot: Ballot { round: seq + 1, node: NodeId(0) },
            clock: VectorClock::new(),
            value: Some(Blob::new(&vec![7; value_bytes])),
            op: OpId { client: ClientId(1), seq },
            writers: Vec::new().into(),
        };
        let slot = Slot { promised: record.ballot, record: Some(record) };
        PersistBatch { seq, slots: vec![(Blob::from("k"), slot)], ..PersistBatch::default() }
    }

    /// Without fsync, small batches wait for the node task's inline commit and large ones go to
    /// the storage thread, taking every batch waiting before them along, in order; while the
    /// thread has batches not reported durable, small ones follow them there.
    #[test]
    fn large_batches_go_to_the_storage_thread_in_order() {
        let dir = std::env::temp_dir().join(format!("dynamo-persister-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (storage, _) = Storage::open(&dir, false).unwrap();
        let (thread, handed) = std::sync::mpsc::channel();
        let mut persister =
            Persister { thread, inline: Some(storage), waiting: Vec::new(), waiting_bytes: 0, sent: 0, durable: 0 };
        let seqs = |batches: &[PersistBatch]| batches.iter().map(|batch| batch.seq).collect::<Vec<_>>();

        persister.persist(batch(1, 100));
        persister.persist(batch(2, 100));
        assert_eq!(seqs(&persister.waiting), vec![1, 2], "small batches are committed inline");
        assert!(handed.try_recv().is_err());

        persister.persist(batch(3, INLINE_COMMIT_BYTES_MAX as usize));
        assert_eq!(handed.try_iter().map(|batch| batch.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(persister.waiting.is_empty());
        assert_eq!(persister.waiting_bytes, 0);

        persister.persist(batch(4, 100));
        assert_eq!(handed.try_iter().map(|batch| batch.seq).collect::<Vec<_>>(), vec![4], "behind batch 3");

        persister.reported(4);
        persister.persist(batch(5, 100));
        assert_eq!(seqs(&persister.waiting), vec![5], "the thread is idle again");
        assert!(handed.try_recv().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
