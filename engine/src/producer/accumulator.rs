//! The record accumulator: per-partition batches between `send` and the sender task, inside a
//! bounded memory budget.
//!
//! # Batches
//! Each partition has at most one *open* batch, which takes records, and a queue of *sealed*
//! batches (full ones, and retries put back by the sender). A record that does not fit in the
//! open batch (`batch_size`, counted in exact encoded bytes with the 61-byte header) seals it
//! and opens a new one; a record larger than `batch_size` alone gets a batch of its own. A
//! partition's front batch is *ready* when it is sealed, or when it has waited `linger`, or
//! when a flush or close is in progress, or when a `send` is waiting for memory (waiting for
//! linger then would only add latency to a producer that is already behind). The sender takes
//! at most one ready batch per partition per drain ([`Accumulator::drain`]).
//!
//! # Memory
//! `buffer_memory` is a semaphore of bytes, and what it counts is what the producer really
//! holds: records are encoded into their batch's buffer as they are appended (nothing else is
//! kept per record), and each batch holds permits for its buffer's capacity from its first
//! record until it is acknowledged or fails. To enter, a record reserves its encoded-size
//! bound plus a batch header ([`Accumulator::reserve`] waits, asynchronously and for at most
//! `max_block`, while the budget is used up); the batch keeps what its buffer has to grow by,
//! and the rest goes back to the budget (through a small credit kept under the lock and
//! returned in bulk, so that a record that fits costs no semaphore release). Buffers grow only
//! as far as the budget pays for, so the budget is never exceeded and never grows. A record
//! whose cost alone is above `buffer_memory`, or whose size with a batch header is above
//! `max_request_size`, is refused at once with [`ProduceError::RecordTooLarge`].
//!
//! Batch buffers are sized from the partition's previous batch (so that they rarely grow) and
//! come from a [`BufferPool`] of idle buffers (at most `buffer_memory / 16`, and 1 MiB; freed
//! when the producer has nothing left to send), which are the only memory outside the budget.
//!
//! # Time
//! Nothing here reads the clock but [`Accumulator::append`], and only when it opens a batch
//! without being given the time (so that queueing a record costs no clock read); every other
//! method that needs the time takes `now`, and
//! [`Drained::next_wakeup`] tells the sender when the next batch becomes ready or expires.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mephisto_wire::record::{record_size_bound, BATCH_HEADER_SIZE};
use tokio::sync::{Notify, Semaphore, SemaphorePermit};

use crate::producer::batch::{Batch, BufferPool, RecordData, RecordSlot, Tracker};
use crate::producer::error::ProduceError;
use crate::producer::fast_hash::FastMap;
use crate::producer::partitioner::StickyPartitioner;
use crate::producer::topic_partition::TopicPartition;

/// Smallest buffer a new batch starts with, in bytes.
const MIN_BATCH_BUFFER: usize = 1024;
/// Memory given back by records that fit in their batch's buffer is returned to the budget
/// once this much has collected (and at most `buffer_memory / 32`; at once when a `send`
/// finds the semaphore short).
const CREDIT_RETURN: usize = 64 * 1024;
/// Most idle batch buffers kept, in bytes (and at most `buffer_memory / 16`).
const MAX_POOL_BYTES: usize = 1024 * 1024;

/// The accumulator's share of the producer settings.
#[derive(Debug, Clone)]
pub(crate) struct AccumulatorConfig {
    pub(crate) linger: Duration,
    pub(crate) batch_size: usize,
    pub(crate) max_request_size: usize,
    pub(crate) buffer_memory: usize,
    pub(crate) delivery_timeout: Duration,
}

/// Where a record goes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A known partition (explicit, or murmur2 of the key).
    Partition(i32),
    /// The topic's sticky partition (unkeyed records): `num_partitions` partitions of which
    /// `available` have a leader.
    Sticky {
        num_partitions: i32,
        available: Arc<[i32]>,
    },
}

/// What [`Accumulator::append`] did.
#[derive(Debug)]
pub(crate) struct Appended {
    /// Where the record's result will be (and the partition it went to).
    pub(crate) slot: RecordSlot,
}

/// What [`Accumulator::drain`] hands the sender.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    /// Ready batches the sender admitted, at most one per partition.
    pub(crate) batches: Vec<Batch>,
    /// Batches whose delivery timeout passed while they waited; the sender fails them.
    pub(crate) expired: Vec<Batch>,
    /// When the earliest waiting batch becomes ready or expires.
    pub(crate) next_wakeup: Option<Instant>,
}

#[derive(Debug, Default)]
struct PartitionQueue {
    /// Sealed batches, oldest (lowest id) first.
    sealed: VecDeque<Batch>,
    /// The batch taking records.
    open: Option<Batch>,
}

impl PartitionQueue {
    fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.is_none()
    }

    /// Seals the open batch; returns its size.
    fn seal_open(&mut self) -> Option<usize> {
        let mut open = self.open.take()?;
        let size = open.size;
        open.full = true;
        self.sealed.push_back(open);
        Some(size)
    }
}

/// A partition's place in the accumulator's maps: its interned topic's address (every topic
/// name is interned once in `State::topics`, kept for the accumulator's life) and its
/// number, so that finding a record's queue hashes two words and compares no names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct QueueKey {
    topic: usize,
    partition: i32,
}

impl QueueKey {
    /// The key of `topic` (interned) and `partition`.
    fn new(topic: &Arc<str>, partition: i32) -> Self {
        QueueKey {
            topic: Arc::as_ptr(topic).cast::<u8>() as usize,
            partition,
        }
    }

    /// The key of a batch's partition (its topic is the interned one).
    fn of(tp: &TopicPartition) -> Self {
        QueueKey::new(&tp.topic, tp.partition)
    }
}

#[derive(Debug, Default)]
struct State {
    queues: FastMap<QueueKey, PartitionQueue>,
    /// Size in bytes of each partition's last batch that stopped taking records: what a new
    /// batch's buffer starts with (kept when the partition's queue empties).
    last_size: FastMap<QueueKey, usize>,
    topics: FastMap<String, Arc<str>>,
    /// The topic of the last record appended (one of `topics`).
    last_topic: Option<Arc<str>>,
    sticky: StickyPartitioner,
    next_batch_id: u64,
    /// Batches with a lower id are ready regardless of linger (flush).
    flush_upto: u64,
    /// Permits of the budget taken by `send` and not needed by the batch: returned to the
    /// semaphore in bulk (`CREDIT_RETURN`).
    credit: usize,
    closed: bool,
}

/// Records `size` as the size of `tp`'s last batch.
fn remember_size(last_size: &mut FastMap<QueueKey, usize>, key: QueueKey, size: usize) {
    match last_size.get_mut(&key) {
        Some(s) => *s = size,
        None => {
            last_size.insert(key, size);
        }
    }
}

/// Per-partition batches and the memory budget; see the module docs.
#[derive(Debug)]
pub(crate) struct Accumulator {
    config: AccumulatorConfig,
    memory: Arc<Semaphore>,
    memory_waiters: AtomicUsize,
    /// Credit above which it goes back to the semaphore.
    credit_return: usize,
    /// `state.closed`, readable without the lock (checked for every record).
    closed: AtomicBool,
    state: Mutex<State>,
    tracker: Arc<Tracker>,
    /// Idle batch buffers.
    pool: Arc<BufferPool>,
    /// Wakes the sender: a batch was sealed or opened, a flush or close started, memory ran out.
    wakeup: Notify,
}

impl Accumulator {
    /// An empty accumulator.
    pub(crate) fn new(config: AccumulatorConfig) -> Self {
        Accumulator {
            memory: Arc::new(Semaphore::new(config.buffer_memory)),
            credit_return: CREDIT_RETURN.min(config.buffer_memory / 32),
            pool: Arc::new(BufferPool::new(
                (config.buffer_memory / 16).min(MAX_POOL_BYTES),
            )),
            config,
            memory_waiters: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            tracker: Arc::new(Tracker::default()),
            wakeup: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The notification the sender waits on.
    pub(crate) fn wakeup(&self) -> &Notify {
        &self.wakeup
    }

    /// Bytes of buffer memory free right now.
    pub(crate) fn available_memory(&self) -> usize {
        let state = self.state();
        self.memory.available_permits() + state.credit
    }

    /// Returns the credit to the budget.
    fn return_credit(&self, state: &mut State) {
        let credit = std::mem::take(&mut state.credit);
        if credit > 0 {
            self.memory.add_permits(credit);
        }
    }

    /// The memory a record costs, or why it can never be accepted.
    pub(crate) fn check_size(&self, record: &RecordData) -> Result<usize, ProduceError> {
        let bound = record_size_bound(record).map_err(|e| ProduceError::Encode(Arc::new(e)))?;
        let with_header = bound + BATCH_HEADER_SIZE;
        if with_header > self.config.max_request_size {
            return Err(ProduceError::RecordTooLarge {
                size: with_header,
                max: self.config.max_request_size,
                limit: "max_request_size",
            });
        }
        // Enough to open a batch: the header, and the record at its largest.
        let cost = bound + BATCH_HEADER_SIZE;
        if cost > self.config.buffer_memory {
            return Err(ProduceError::RecordTooLarge {
                size: cost,
                max: self.config.buffer_memory,
                limit: "buffer_memory",
            });
        }
        Ok(cost)
    }

    /// Takes `cost` bytes of buffer memory if they are free now, without waiting.
    pub(crate) fn try_reserve(
        &self,
        cost: usize,
    ) -> Result<Option<SemaphorePermit<'_>>, ProduceError> {
        let n = u32::try_from(cost).map_err(|_| ProduceError::RecordTooLarge {
            size: cost,
            max: self.config.buffer_memory,
            limit: "buffer_memory",
        })?;
        if let Ok(permit) = self.memory.try_acquire_many(n) {
            return Ok(Some(permit));
        }
        // The credit may hold what is missing.
        let mut state = self.state();
        if state.credit == 0 {
            return Ok(None);
        }
        self.return_credit(&mut state);
        drop(state);
        Ok(self.memory.try_acquire_many(n).ok())
    }

    /// Takes `cost` bytes of buffer memory, waiting up to `max_block` for batches to complete.
    pub(crate) async fn reserve(
        &self,
        cost: usize,
        max_block: Duration,
    ) -> Result<SemaphorePermit<'_>, ProduceError> {
        let n = u32::try_from(cost).map_err(|_| ProduceError::RecordTooLarge {
            size: cost,
            max: self.config.buffer_memory,
            limit: "buffer_memory",
        })?;
        if let Ok(permit) = self.memory.try_acquire_many(n) {
            return Ok(permit);
        }
        {
            let mut state = self.state();
            if state.closed {
                return Err(ProduceError::Closed);
            }
            self.return_credit(&mut state);
        }
        // Make everything ready at once: waiting for linger would only delay the memory.
        self.memory_waiters.fetch_add(1, Ordering::SeqCst);
        self.wakeup.notify_one();
        let acquired = tokio::time::timeout(max_block, self.memory.acquire_many(n)).await;
        self.memory_waiters.fetch_sub(1, Ordering::SeqCst);
        match acquired {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(ProduceError::Closed),
            Err(_) => Err(ProduceError::BufferFull {
                size: cost,
                waited: max_block,
            }),
        }
    }

    /// Adds a record to `topic` at `target` with the memory `permit` reserved for it (what its
    /// batch's buffer does not need goes back to the budget). A batch it opens is created at
    /// `now`, or when `now` is `None` at the current time.
    pub(crate) fn append(
        &self,
        topic: &str,
        target: Target,
        record: RecordData,
        permit: SemaphorePermit<'_>,
        now: Option<Instant>,
    ) -> Result<Appended, ProduceError> {
        let mut guard = self.state();
        let state = &mut *guard;
        if state.closed {
            return Err(ProduceError::Closed);
        }
        let topic: Arc<str> = match &state.last_topic {
            // Most producers write to one topic: no hashing for it.
            Some(t) if **t == *topic => Arc::clone(t),
            _ => {
                let t = match state.topics.get(topic) {
                    Some(t) => Arc::clone(t),
                    None => {
                        let t: Arc<str> = Arc::from(topic);
                        state.topics.insert(topic.to_owned(), Arc::clone(&t));
                        t
                    }
                };
                state.last_topic = Some(Arc::clone(&t));
                t
            }
        };
        let partition = match &target {
            Target::Partition(p) => *p,
            Target::Sticky {
                num_partitions,
                available,
            } => {
                let Some(p) = state.sticky.partition(&topic, *num_partitions, available) else {
                    return Err(ProduceError::InvalidPartition {
                        topic: topic.to_string(),
                        partition: -1,
                        partitions: *num_partitions,
                    });
                };
                // KIP-480: a record that would start a new batch in the sticky partition moves
                // the topic to another partition first.
                let needs_new = state
                    .queues
                    .get(&QueueKey::new(&topic, p))
                    .and_then(|q| q.open.as_ref())
                    .is_none_or(|open| self.overflows(open, &record));
                if needs_new {
                    state
                        .sticky
                        .on_new_batch(&topic, p, *num_partitions, available);
                    state
                        .sticky
                        .partition(&topic, *num_partitions, available)
                        .unwrap_or(p)
                } else {
                    p
                }
            }
        };
        let key = QueueKey::new(&topic, partition);
        let queue = state.queues.entry(key).or_default();
        let mut wake = false;
        if queue
            .open
            .as_ref()
            .is_some_and(|open| self.overflows(open, &record))
        {
            if let Some(size) = queue.seal_open() {
                remember_size(&mut state.last_size, key, size);
            }
            wake = true;
        }
        let batch_size = self.config.batch_size;
        let open = match &mut queue.open {
            Some(open) => open,
            slot @ None => {
                let id = state.next_batch_id;
                state.next_batch_id += 1;
                // A new batch has a new linger deadline the sender must learn.
                wake = true;
                // Room for the partition's last batch and an eighth more (batches of a steady
                // stream stay about the same size), within the batch size.
                let last = state.last_size.get(&key).copied().unwrap_or(0);
                let capacity = (last + last / 8)
                    .clamp(MIN_BATCH_BUFFER, batch_size.max(MIN_BATCH_BUFFER))
                    .max(BATCH_HEADER_SIZE + record_size_bound(&record).unwrap_or(0));
                let now = now.unwrap_or_else(Instant::now);
                slot.insert(Batch::with_capacity(
                    id,
                    TopicPartition::new(topic, partition),
                    now,
                    &self.tracker,
                    &self.pool,
                    capacity,
                ))
            }
        };
        let mut spare = permit.num_permits() + std::mem::take(&mut state.credit);
        permit.forget();
        let pushed = open.push(&record, &mut spare, &self.memory, batch_size);
        if spare >= self.credit_return || self.memory_waiters.load(Ordering::Relaxed) > 0 {
            self.memory.add_permits(spare);
        } else {
            state.credit = spare;
        }
        let slot = pushed?;
        if open.size >= batch_size {
            if let Some(size) = queue.seal_open() {
                remember_size(&mut state.last_size, key, size);
            }
            wake = true;
        }
        drop(guard);
        if wake {
            self.wakeup.notify_one();
        }
        Ok(Appended { slot })
    }

    /// Frees the idle batch buffers if nothing is queued or unfinished (the sender calls it
    /// before it goes idle).
    pub(crate) fn release_idle_buffers(&self) {
        if self.tracker.len() == 0 {
            self.pool.clear();
            let mut state = self.state();
            self.return_credit(&mut state);
        }
    }

    /// Whether `record` does not fit in the non-empty batch `open`.
    fn overflows(&self, open: &Batch, record: &RecordData) -> bool {
        open.record_count() > 0
            && (open.size_with(record) > self.config.batch_size
                || open.record_count() >= i32::MAX as usize)
    }

    /// Takes the ready front batch of every partition that `admit` accepts, and the batches
    /// whose delivery timeout has passed.
    ///
    /// `admit` is called under the accumulator's lock with each ready candidate; it must be
    /// cheap and must not call back into the accumulator.
    pub(crate) fn drain(&self, now: Instant, mut admit: impl FnMut(&Batch) -> bool) -> Drained {
        let memory_pressure = self.memory_waiters.load(Ordering::SeqCst) > 0;
        let mut out = Drained::default();
        let mut guard = self.state();
        let state = &mut *guard;
        let closed = state.closed;
        let flush_upto = state.flush_upto;
        if memory_pressure {
            self.return_credit(state);
        }
        let last_size = &mut state.last_size;
        let linger = self.config.linger;
        let timeout = self.config.delivery_timeout;
        let wake = |at: Instant, next: &mut Option<Instant>| {
            *next = Some(next.map_or(at, |n| n.min(at)));
        };
        state.queues.retain(|_, queue| {
            loop {
                let (front, sealed) = match (queue.sealed.front(), &queue.open) {
                    (Some(b), _) => (b, true),
                    (None, Some(b)) => (b, false),
                    (None, None) => break,
                };
                let deadline = front.created + timeout;
                if now >= deadline {
                    let expired = if sealed {
                        queue.sealed.pop_front()
                    } else {
                        queue.open.take()
                    };
                    out.expired.extend(expired);
                    continue;
                }
                let ready = if sealed {
                    // Full, or a retry: ready unless backing off.
                    match front.retry_at {
                        Some(at) if at > now => {
                            wake(at, &mut out.next_wakeup);
                            false
                        }
                        _ => true,
                    }
                } else {
                    let linger_end = front.created + linger;
                    let ready =
                        now >= linger_end || front.id < flush_upto || closed || memory_pressure;
                    if !ready {
                        wake(linger_end, &mut out.next_wakeup);
                    }
                    ready
                };
                if ready && admit(front) {
                    let taken = if sealed {
                        queue.sealed.pop_front()
                    } else {
                        let open = queue.open.take();
                        if let Some(b) = &open {
                            remember_size(last_size, QueueKey::of(&b.tp), b.size);
                        }
                        open
                    };
                    out.batches.extend(taken);
                    if !queue.is_empty() {
                        // More may be ready behind it: the sender should drain again at once.
                        wake(now, &mut out.next_wakeup);
                    }
                } else {
                    // Not ready, or waiting for a leader or an in-flight slot (the sender wakes
                    // on its own events for those): wake for the delivery deadline at least.
                    wake(deadline, &mut out.next_wakeup);
                }
                break;
            }
            !queue.is_empty()
        });
        out
    }

    /// Puts a batch back for a retry, before every batch of its partition created after it.
    pub(crate) fn requeue(&self, batch: Batch) {
        let mut state = self.state();
        let queue = state.queues.entry(QueueKey::of(&batch.tp)).or_default();
        let pos = queue
            .sealed
            .iter()
            .position(|b| b.id > batch.id)
            .unwrap_or(queue.sealed.len());
        // An open batch is always younger than a batch that was already sent.
        queue.sealed.insert(pos, batch);
        drop(state);
        self.wakeup.notify_one();
    }

    /// Calls `f` on every queued batch, partition by partition, oldest first (the sender
    /// restamps sequences after a producer identity reset).
    pub(crate) fn for_each_queued(&self, mut f: impl FnMut(&mut Batch)) {
        let mut state = self.state();
        for queue in state.queues.values_mut() {
            for batch in queue.sealed.iter_mut() {
                f(batch);
            }
            if let Some(open) = &mut queue.open {
                f(open);
            }
        }
    }

    /// Makes every batch that exists now ready, and returns the id below which `flush` waits.
    pub(crate) fn begin_flush(&self) -> u64 {
        let mut state = self.state();
        state.flush_upto = state.flush_upto.max(state.next_batch_id);
        let upto = state.next_batch_id;
        drop(state);
        self.wakeup.notify_one();
        upto
    }

    /// Waits until every batch with an id below `upto` is finished.
    pub(crate) async fn wait_flushed(&self, upto: u64) {
        self.tracker.wait_below(upto).await;
    }

    /// Refuses new records from now on and makes every batch ready.
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        self.closed.store(true, Ordering::SeqCst);
        drop(state);
        self.wakeup.notify_one();
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Number of unfinished batches (queued, in flight or being handled).
    pub(crate) fn unfinished(&self) -> usize {
        self.tracker.len()
    }

    /// Whether nothing is queued (in-flight batches are the sender's).
    pub(crate) fn is_empty(&self) -> bool {
        self.state().queues.is_empty()
    }

    /// The topics with queued batches.
    pub(crate) fn queued_topics(&self) -> Vec<Arc<str>> {
        let state = self.state();
        let mut topics: Vec<Arc<str>> = state
            .queues
            .values()
            .filter_map(|q| q.open.as_ref().or(q.sealed.front()))
            .map(|b| Arc::clone(&b.tp.topic))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn config(batch_size: usize, buffer_memory: usize) -> AccumulatorConfig {
        AccumulatorConfig {
            linger: Duration::from_millis(5),
            batch_size,
            max_request_size: 1024 * 1024,
            buffer_memory,
            delivery_timeout: Duration::from_secs(120),
        }
    }

    fn record(value_len: usize) -> RecordData {
        RecordData {
            key: None,
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: Vec::new(),
            timestamp: 1_700_000_000_000,
        }
    }

    /// Reserves and appends one record to `t-partition` without waiting.
    fn add(acc: &Accumulator, partition: i32, value_len: usize, now: Instant) -> Appended {
        let r = record(value_len);
        let cost = acc.check_size(&r);
        let Ok(cost) = cost else {
            panic!("size check: {cost:?}")
        };
        let Ok(permit) = acc.memory.try_acquire_many(cost as u32) else {
            panic!("no memory for {cost}")
        };
        match acc.append("t", Target::Partition(partition), r, permit, Some(now)) {
            Ok(a) => a,
            Err(e) => panic!("append: {e}"),
        }
    }

    #[test]
    fn batch_waits_for_linger_then_drains() {
        let acc = Accumulator::new(config(1_000_000, 1 << 20));
        let t0 = Instant::now();
        add(&acc, 0, 100, t0);
        add(&acc, 0, 100, t0 + Duration::from_millis(1));
        let early = acc.drain(t0 + Duration::from_millis(4), |_| true);
        assert!(early.batches.is_empty(), "lingering");
        assert_eq!(early.next_wakeup, Some(t0 + Duration::from_millis(5)));
        let late = acc.drain(t0 + Duration::from_millis(5), |_| true);
        assert_eq!(late.batches.len(), 1);
        assert_eq!(late.batches[0].record_count(), 2);
        assert!(acc.is_empty());
        assert_eq!(
            acc.drain(t0 + Duration::from_secs(1), |_| true).next_wakeup,
            None
        );
    }

    #[test]
    fn full_batches_split_and_are_ready_at_once() {
        // Room for three 100-byte records (about 108 bytes each) after the 61-byte header.
        let acc = Accumulator::new(config(400, 1 << 20));
        let t0 = Instant::now();
        for _ in 0..7 {
            add(&acc, 0, 100, t0);
        }
        // A record larger than batch_size gets a batch of its own.
        add(&acc, 0, 1000, t0);
        let mut sizes = Vec::new();
        let mut counts = Vec::new();
        loop {
            let d = acc.drain(t0, |_| true);
            let Some(b) = d.batches.into_iter().next() else {
                break;
            };
            sizes.push(b.size);
            counts.push(b.record_count());
        }
        // Two full batches; the seventh record's batch was sealed by the big record that did
        // not fit after it, and the big record's batch is over batch_size on its own.
        assert_eq!(counts, vec![3, 3, 1, 1]);
        assert!(sizes[..3].iter().all(|&s| s <= 400), "{sizes:?}");
        assert!(sizes[3] > 1000, "{sizes:?}");
        // A last record lingers in a fresh batch.
        add(&acc, 0, 100, t0);
        assert!(acc.drain(t0, |_| true).batches.is_empty());
        let rest = acc.drain(t0 + Duration::from_millis(5), |_| true);
        assert_eq!(rest.batches.len(), 1);
    }

    #[test]
    fn one_batch_per_partition_per_drain_and_admit_filters() {
        let acc = Accumulator::new(config(200, 1 << 20));
        let t0 = Instant::now();
        for p in 0..3 {
            for _ in 0..4 {
                add(&acc, p, 100, t0);
            }
        }
        let d = acc.drain(t0, |b| b.tp.partition != 1);
        let mut parts: Vec<i32> = d.batches.iter().map(|b| b.tp.partition).collect();
        parts.sort_unstable();
        assert_eq!(parts, vec![0, 2]);
        assert!(d.next_wakeup.is_some());
    }

    #[test]
    fn oversized_records_are_refused() {
        let small_request = AccumulatorConfig {
            max_request_size: 1000,
            ..config(1_000_000, 1 << 20)
        };
        let acc = Accumulator::new(small_request);
        assert!(acc.check_size(&record(800)).is_ok());
        match acc.check_size(&record(1000)) {
            Err(ProduceError::RecordTooLarge { limit, max, size }) => {
                assert_eq!((limit, max), ("max_request_size", 1000));
                assert!(size > 1000);
            }
            other => panic!("{other:?}"),
        }
        let small_buffer = Accumulator::new(config(1_000_000, 600));
        match small_buffer.check_size(&record(600)) {
            Err(ProduceError::RecordTooLarge { limit, .. }) => assert_eq!(limit, "buffer_memory"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn back_pressure_blocks_then_resumes() {
        let r = record(100);
        let acc = Arc::new(Accumulator::new(config(1_000_000, 1 << 20)));
        let Ok(cost) = acc.check_size(&r) else {
            panic!("cost")
        };
        // Room for three records: each reserves its bound and a batch header to enter, and
        // the batch keeps what its buffer needs (the header once, the records' exact sizes).
        let acc = Arc::new(Accumulator::new(config(1_000_000, 3 * cost)));
        let t0 = Instant::now();
        let mut rxs = Vec::new();
        for _ in 0..3 {
            let permit = acc.reserve(cost, Duration::from_secs(5)).await;
            let Ok(permit) = permit else {
                panic!("reserve")
            };
            let appended = acc.append("t", Target::Partition(0), record(100), permit, Some(t0));
            let Ok(appended) = appended else {
                panic!("append")
            };
            rxs.push(appended.slot);
        }
        let free = acc.available_memory();
        assert!(free < cost, "{free} bytes free, a record needs {cost}");
        assert!(
            free > 0,
            "the records gave back what their batch did not need"
        );

        // The fourth blocks...
        let waiter = {
            let acc = Arc::clone(&acc);
            tokio::spawn(async move { acc.reserve(cost, Duration::from_secs(5)).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "send must wait while the buffer is full"
        );
        assert!(
            acc.available_memory() < cost,
            "the budget is never exceeded"
        );
        // ...and makes the lingering batch ready at once (memory pressure).
        let d = acc.drain(t0, |_| true);
        assert_eq!(d.batches.len(), 1);

        // Completing the batch frees its memory: the waiter gets its permit.
        for b in d.batches {
            b.succeed(0, -1);
        }
        let resumed = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(resumed, Ok(Ok(true))), "{resumed:?}");
        for (i, rx) in rxs.into_iter().enumerate() {
            let meta = rx.await.ok();
            assert_eq!(meta.map(|m| m.offset), Some(i as i64));
        }
        // The waiter's permit was dropped: everything is back.
        assert_eq!(acc.available_memory(), 3 * cost);
    }

    /// A batch holds the capacity of its buffer, which grows only as far as the budget pays
    /// for: whatever the records, what batches hold never exceeds `buffer_memory`, and it all
    /// comes back when they finish.
    #[test]
    fn batches_hold_their_buffer_capacity_within_the_budget() {
        let buffer = 64 * 1024;
        let acc = Accumulator::new(config(16 * 1024, buffer));
        let t0 = Instant::now();
        let mut appended = 0;
        for i in 0..10_000usize {
            let r = record(50 + (i * 37) % 400);
            let Ok(cost) = acc.check_size(&r) else {
                panic!("cost")
            };
            let Ok(Some(permit)) = acc.try_reserve(cost) else {
                break; // full: `send` would wait here
            };
            let partition = (i % 3) as i32;
            match acc.append("t", Target::Partition(partition), r, permit, Some(t0)) {
                Ok(_) => appended += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(appended > 100, "{appended} records appended");
        let mut held = 0;
        let mut data = 0;
        acc.for_each_queued(|b| {
            held += b.held_memory();
            data += b.size;
        });
        let free = acc.available_memory();
        assert_eq!(held + free, buffer, "every byte is a batch's or free");
        assert!(
            data <= held,
            "{data} bytes of batches in {held} bytes of buffers"
        );
        assert!(free < 1024, "the budget is used: {free} free");
        let mut drained = Vec::new();
        loop {
            let d = acc.drain(t0 + Duration::from_secs(1), |_| true);
            if d.batches.is_empty() {
                break;
            }
            drained.extend(d.batches);
        }
        for b in drained {
            b.succeed(0, -1);
        }
        assert_eq!(acc.available_memory(), buffer);
    }

    #[tokio::test]
    async fn reserve_gives_up_after_max_block() {
        let acc = Accumulator::new(config(1_000_000, 1000));
        let Ok(_held) = acc.reserve(900, Duration::from_secs(1)).await else {
            panic!("first reserve")
        };
        let second = acc.reserve(200, Duration::from_millis(30)).await;
        assert!(
            matches!(second, Err(ProduceError::BufferFull { size: 200, .. })),
            "{second:?}"
        );
    }

    #[tokio::test]
    async fn flush_makes_batches_ready_and_waits_for_them() {
        let acc = Arc::new(Accumulator::new(config(1_000_000, 1 << 20)));
        let t0 = Instant::now();
        let a = add(&acc, 0, 10, t0);
        add(&acc, 1, 10, t0);
        let upto = acc.begin_flush();
        let flushing = {
            let acc = Arc::clone(&acc);
            tokio::spawn(async move { acc.wait_flushed(upto).await })
        };
        // A record after the flush started lands in the existing batch of partition 0, and a
        // new batch for partition 2 is not waited for.
        add(&acc, 2, 10, t0);
        let d = acc.drain(t0, |_| true);
        let mut parts: Vec<i32> = d.batches.iter().map(|b| b.tp.partition).collect();
        parts.sort_unstable();
        assert_eq!(parts, vec![0, 1], "flushed batches are ready before linger");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!flushing.is_finished());
        for b in d.batches {
            b.succeed(5, -1);
        }
        let done = tokio::time::timeout(Duration::from_secs(5), flushing).await;
        assert!(done.is_ok(), "flush returns once its batches are done");
        assert_eq!(a.slot.await.ok().map(|m| m.offset), Some(5));
        assert_eq!(acc.unfinished(), 1, "partition 2's batch is still queued");
    }

    #[test]
    fn expired_batches_are_handed_back() {
        let acc = Accumulator::new(AccumulatorConfig {
            delivery_timeout: Duration::from_millis(100),
            ..config(1_000_000, 1 << 20)
        });
        let t0 = Instant::now();
        add(&acc, 0, 10, t0);
        let d = acc.drain(t0 + Duration::from_millis(50), |_| false);
        assert!(d.batches.is_empty() && d.expired.is_empty());
        assert_eq!(d.next_wakeup, Some(t0 + Duration::from_millis(100)));
        let d = acc.drain(t0 + Duration::from_millis(100), |_| true);
        assert_eq!(d.expired.len(), 1);
        assert!(d.batches.is_empty());
    }

    #[test]
    fn requeued_batches_go_first_in_creation_order_after_backoff() {
        let acc = Accumulator::new(config(150, 1 << 20));
        let t0 = Instant::now();
        for _ in 0..3 {
            add(&acc, 0, 100, t0); // one record per batch
        }
        let first = acc.drain(t0, |_| true).batches;
        let second = acc.drain(t0, |_| true).batches;
        assert_eq!((first.len(), second.len()), (1, 1));
        let (a, b) = (first[0].id, second[0].id);
        // Put them back in reverse order with a backoff.
        for mut batch in second.into_iter().chain(first) {
            batch.retry_at = Some(t0 + Duration::from_millis(100));
            acc.requeue(batch);
        }
        let waiting = acc.drain(t0 + Duration::from_millis(10), |_| true);
        assert!(waiting.batches.is_empty(), "backing off");
        assert_eq!(waiting.next_wakeup, Some(t0 + Duration::from_millis(100)));
        let mut order = Vec::new();
        for _ in 0..3 {
            let d = acc.drain(t0 + Duration::from_millis(100), |_| true);
            order.extend(d.batches.iter().map(|b| b.id));
        }
        assert_eq!(order.len(), 3);
        assert_eq!(&order[..2], &[a, b], "oldest first");
    }

    #[test]
    fn unkeyed_records_stick_until_the_batch_is_full() {
        let acc = Accumulator::new(config(400, 1 << 20));
        let t0 = Instant::now();
        let mut parts = Vec::new();
        for _ in 0..9 {
            let r = record(100);
            let Ok(cost) = acc.check_size(&r) else {
                panic!("cost")
            };
            let Ok(permit) = acc.memory.try_acquire_many(cost as u32) else {
                panic!("memory")
            };
            let target = Target::Sticky {
                num_partitions: 4,
                available: vec![0, 1, 2, 3].into(),
            };
            match acc.append("t", target, r, permit, Some(t0)) {
                Ok(a) => parts.push(a.slot.partition()),
                Err(e) => panic!("{e}"),
            }
        }
        // Three records fill a batch; then the topic moves to another partition.
        for chunk in parts.chunks(3) {
            assert!(chunk.iter().all(|&p| p == chunk[0]), "{parts:?}");
        }
        assert_ne!(parts[0], parts[3], "{parts:?}");
        assert_ne!(parts[3], parts[6], "{parts:?}");
    }

    #[test]
    fn closed_accumulator_refuses_records() {
        let acc = Accumulator::new(config(1_000_000, 1 << 20));
        acc.close();
        let Ok(permit) = acc.memory.try_acquire_many(1) else {
            panic!("memory")
        };
        let r = acc.append("t", Target::Partition(0), record(1), permit, None);
        assert!(matches!(r, Err(ProduceError::Closed)));
    }
}
