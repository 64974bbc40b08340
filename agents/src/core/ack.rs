//! Acks: how "this consumer is done with the event" reaches whoever delivered it.
//!
//! An event carries an [`AckRef`]: its source's [`Acker`], the event's id there (a Kafka
//! offset, or a channel's sequence number) and which of the source's consumers it was
//! delivered to (every agent subscribed to a topic gets each event, as consumer 0, 1, ...). A
//! ref is cheap to clone (one reference count) and acking is idempotent per consumer, so
//! clones of an event share its ack: acking any of them acks the event once. A [`Hold`] keeps
//! an event in processing until a write it caused is acknowledged.
//!
//! The Kafka runtime's acker is a partition's offset window (a slot update per ack, committed
//! once the prefix is done); channels use [`NoAcks`] unless given one, and test contexts
//! record acks.

use std::fmt;
use std::sync::Arc;

/// Receives the acks of one source's events. Implementations must be cheap: one call per
/// event and consumer.
pub trait Acker: Send + Sync + 'static {
    /// Consumer `consumer` finished event `id`. Returns `true` the first time.
    fn ack(&self, id: u64, consumer: u8) -> bool;
    /// Consumer `consumer` finished every event of `ids` (in one go, where the acker can).
    fn ack_all(&self, ids: &[u64], consumer: u8) {
        for &id in ids {
            self.ack(id, consumer);
        }
    }
    /// Keeps event `id` in processing until a [`release`](Acker::release) (a write it caused
    /// is in flight). `false` if the event is already done.
    fn hold(&self, id: u64) -> bool;
    /// Removes a hold of event `id`.
    fn release(&self, id: u64);
    /// Consumer `consumer` gives event `id` up without processing it: it is not committed
    /// (its record is read again after a restart or by the next owner).
    fn abandon(&self, id: u64, consumer: u8);
    /// Whether the source's events should still be processed: `false` once its partition
    /// is revoked or lost, and events still queued are then given up.
    fn is_live(&self) -> bool {
        true
    }
    /// The topic and partition whose offsets the ids are, for a source that is one (so that
    /// an error can name an event's coordinate without keeping its message).
    fn partition(&self) -> Option<(Arc<str>, i32)> {
        None
    }
}

/// An acker that ignores acks (channels and plain streams without acks).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAcks;

impl Acker for NoAcks {
    fn ack(&self, _id: u64, _consumer: u8) -> bool {
        true
    }
    fn hold(&self, _id: u64) -> bool {
        false
    }
    fn release(&self, _id: u64) {}
    fn abandon(&self, _id: u64, _consumer: u8) {}
}

/// One event's ack for one consumer: see the [module docs](self).
#[derive(Clone)]
pub struct AckRef {
    acker: Arc<dyn Acker>,
    id: u64,
    consumer: u8,
}

impl fmt::Debug for AckRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckRef")
            .field("id", &self.id)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl AckRef {
    /// The ack of event `id` of `acker`, delivered to `consumer`.
    pub fn new(acker: Arc<dyn Acker>, id: u64, consumer: u8) -> Self {
        AckRef {
            acker,
            id,
            consumer,
        }
    }

    /// The event's id at its source.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Which consumer of the source this ref acks for.
    pub fn consumer(&self) -> u8 {
        self.consumer
    }

    /// Acks the event; `true` the first time (for this consumer).
    pub fn ack(&self) -> bool {
        self.acker.ack(self.id, self.consumer)
    }

    /// Gives the event up without processing it (not committed).
    pub fn abandon(&self) {
        self.acker.abandon(self.id, self.consumer);
    }

    /// Keeps the event in processing until the returned [`Hold`] is released; `None` if the
    /// event is already done (or its source keeps no acks).
    pub fn hold(&self) -> Option<Hold> {
        self.acker.hold(self.id).then(|| Hold {
            acker: Some(Arc::clone(&self.acker)),
            id: self.id,
        })
    }

    /// Whether the event's source still wants it processed.
    pub fn is_live(&self) -> bool {
        self.acker.is_live()
    }

    /// Acks every ref of `refs` (emptying it), each run of refs of one acker and consumer in
    /// one call.
    pub fn ack_all(refs: &mut Vec<AckRef>) {
        // Ids go to their acker in runs of one acker and consumer, through a buffer on the
        // stack (no allocation).
        const RUN: usize = 64;
        let mut ids = [0u64; RUN];
        let mut n = 0;
        let mut run: Option<(Arc<dyn Acker>, u8)> = None;
        for r in refs.drain(..) {
            let same = run
                .as_ref()
                .is_some_and(|(a, c)| Arc::ptr_eq(a, &r.acker) && *c == r.consumer);
            if !same || n == RUN {
                if let Some((acker, consumer)) = run.take() {
                    acker.ack_all(&ids[..n], consumer);
                    n = 0;
                }
                run = Some((Arc::clone(&r.acker), r.consumer));
            }
            ids[n] = r.id;
            n += 1;
        }
        if let Some((acker, consumer)) = run {
            acker.ack_all(&ids[..n], consumer);
        }
    }
}

/// Keeps an event in processing (see [`AckRef::hold`]); released on drop.
pub struct Hold {
    acker: Option<Arc<dyn Acker>>,
    id: u64,
}

impl fmt::Debug for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hold").field("id", &self.id).finish()
    }
}

impl Hold {
    /// Releases the hold: the event is done if nothing else holds it and every consumer
    /// acked it.
    pub fn release(mut self) {
        if let Some(acker) = self.acker.take() {
            acker.release(self.id);
        }
    }

    /// The topic, partition and offset of the held event, when its source is a partition.
    pub fn coordinate(&self) -> Option<(Arc<str>, i32, i64)> {
        let (topic, partition) = self.acker.as_ref()?.partition()?;
        Some((topic, partition, i64::try_from(self.id).unwrap_or(i64::MAX)))
    }

    /// Keeps the event in processing for good (a write it caused failed and nobody took the
    /// record): its partition's commits stop before it, so it is read again after a restart.
    pub fn keep(mut self) {
        self.acker.take();
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            acker.release(self.id);
        }
    }
}

/// Records acks in memory, for tests and in-memory sources: an event is *done* once it was
/// acked and every hold on it was released; [`acked_seqs`](MemoryAcks::acked_seqs) lists the
/// done events in the order they became done.
#[derive(Debug, Default, Clone)]
pub struct MemoryAcks {
    state: Arc<std::sync::Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    requested: std::collections::HashSet<u64>,
    done: Vec<u64>,
    abandoned: Vec<u64>,
    holds: std::collections::HashMap<u64, usize>,
}

impl MemoryAcks {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The done ids, in the order they became done.
    pub fn acked_seqs(&self) -> Vec<u64> {
        self.lock().done.clone()
    }

    /// The ids given up, in order.
    pub fn abandoned(&self) -> Vec<u64> {
        self.lock().abandoned.clone()
    }

    /// Whether `id` was acked (it may still be held).
    pub fn is_acked(&self, id: u64) -> bool {
        self.lock().requested.contains(&id)
    }

    /// Holds not released yet.
    pub fn holds(&self) -> usize {
        self.lock().holds.values().sum()
    }
}

impl Acker for MemoryAcks {
    fn ack(&self, id: u64, _consumer: u8) -> bool {
        let mut s = self.lock();
        if !s.requested.insert(id) {
            return false;
        }
        if s.holds.get(&id).copied().unwrap_or(0) == 0 {
            s.done.push(id);
        }
        true
    }
    fn hold(&self, id: u64) -> bool {
        let mut s = self.lock();
        if s.done.contains(&id) {
            return false;
        }
        *s.holds.entry(id).or_default() += 1;
        true
    }
    fn release(&self, id: u64) {
        let mut s = self.lock();
        let left = match s.holds.get_mut(&id) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => return,
        };
        if left == 0 {
            s.holds.remove(&id);
            if s.requested.contains(&id) && !s.done.contains(&id) {
                s.done.push(id);
            }
        }
    }
    fn abandon(&self, id: u64, _consumer: u8) {
        self.lock().abandoned.push(id);
    }
}
