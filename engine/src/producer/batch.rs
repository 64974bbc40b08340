//! [`Batch`]: the records of one partition that travel together, from the first `send` to the
//! broker's answer, and the size arithmetic the accumulator fills batches with.
//!
//! A batch is one buffer from start to end: each record is encoded into it when it is queued
//! ([`Batch::push`], after a 61-byte placeholder for the batch header), so the producer keeps
//! no per-record allocation and the application's key and value are freed (on its own thread)
//! as soon as they are copied. The sender seals it when it drains it ([`Batch::encode`]):
//! it writes the header (producer id, epoch and sequence: an idempotent batch gets its sequence
//! here) and the CRC in place, or compresses the records into a second buffer, and from then
//! on the batch is those bytes (retries resend exactly them). The encoding is the wire crate's
//! ([`BatchState`]): the batch keeps its state next to the buffer, and does the buffer's
//! memory accounting around it. Buffers come from, and go back
//! to, a small [`BufferPool`], so batches of similar size reuse the same memory instead of a
//! `malloc`/`free` of up to `batch_size` bytes per batch on different threads.
//!
//! It ends in [`Batch::succeed`] or [`Batch::fail`], which resolve every record's future;
//! dropping it releases its buffer memory and tells the [`Tracker`] (what `flush` waits on)
//! that it is done, even if it is dropped unresolved (the records then fail with
//! [`ProduceError::Closed`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use mephisto_wire::compression::Compression;
use mephisto_wire::record::{
    BatchSpec, BatchState, EncodeError, NewHeader, RecordFields, BATCH_HEADER_SIZE,
};
use tokio::sync::{Notify, Semaphore};

use crate::producer::error::ProduceError;
use crate::producer::record::{RecordHeader, RecordMetadata};
use crate::producer::sequence::ProducerIdentity;
use crate::producer::topic_partition::TopicPartition;

/// What a record's future resolves to.
pub(crate) type DeliveryResult = Result<RecordMetadata, ProduceError>;

/// A record on its way into a batch: the application's handles, encoded into the batch's
/// buffer by [`Batch::push`] and dropped right after.
#[derive(Debug)]
pub(crate) struct RecordData {
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<RecordHeader>,
    pub(crate) timestamp: i64,
}

impl RecordFields for RecordData {
    #[inline]
    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    #[inline]
    fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    #[inline]
    fn timestamp(&self) -> i64 {
        self.timestamp
    }

    #[inline]
    fn headers(&self) -> impl Iterator<Item = NewHeader<'_>> {
        self.headers.iter().map(|h| NewHeader {
            key: &h.key,
            value: h.value.as_deref(),
        })
    }
}

/// Idle batch buffers kept for the next batches, up to `max_idle_bytes` of capacity.
///
/// A batch takes a buffer when it opens ([`take`](Self::take)); the buffer comes back when the
/// batch is finished and the last reference to its bytes is gone (the encoded [`Bytes`] own
/// a [`PooledBuf`]). Buffers that do not fit under the cap are freed.
#[derive(Debug)]
pub(crate) struct BufferPool {
    idle: Mutex<Idle>,
    max_idle_bytes: usize,
}

#[derive(Debug, Default)]
struct Idle {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl BufferPool {
    /// A pool keeping at most `max_idle_bytes` of idle capacity.
    pub(crate) fn new(max_idle_bytes: usize) -> Self {
        BufferPool {
            idle: Mutex::new(Idle::default()),
            max_idle_bytes,
        }
    }

    /// The smallest idle buffer with a capacity in `min..=max`, emptied, if there is one.
    pub(crate) fn take(&self, min: usize, max: usize) -> Option<Vec<u8>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let best = idle
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| (min..=max).contains(&b.capacity()))
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i)?;
        let buf = idle.buffers.swap_remove(best);
        idle.bytes -= buf.capacity();
        Some(buf)
    }

    /// Keeps `buf` for a later batch if there is room, else frees it (or the smallest idle
    /// buffers, to keep the larger one).
    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0 || cap > self.max_idle_bytes {
            return;
        }
        buf.clear();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let mut freed = Vec::new();
        while idle.bytes + cap > self.max_idle_bytes {
            let Some((i, _)) = idle
                .buffers
                .iter()
                .enumerate()
                .min_by_key(|(_, b)| b.capacity())
            else {
                break;
            };
            if idle.buffers[i].capacity() >= cap {
                // Every idle buffer is at least as large: drop the new one instead.
                drop(idle);
                return;
            }
            let small = idle.buffers.swap_remove(i);
            idle.bytes -= small.capacity();
            freed.push(small);
        }
        idle.bytes += cap;
        idle.buffers.push(buf);
        drop(idle);
        drop(freed);
    }

    /// Frees every idle buffer (the producer has nothing queued or in flight).
    pub(crate) fn clear(&self) {
        let buffers = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.bytes = 0;
            std::mem::take(&mut idle.buffers)
        };
        drop(buffers);
    }

    /// Capacity of the idle buffers.
    #[cfg(test)]
    pub(crate) fn idle_bytes(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

/// An encoded batch's buffer: the owner behind its [`Bytes`], given back to the pool when the
/// last reference is dropped (after the request is written and the batch is finished).
struct PooledBuf {
    buf: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

/// How a batch ended, shared by all its records' futures: each record derives its own
/// [`RecordMetadata`] from it with its index in the batch (one allocation per batch instead of
/// one channel per record).
#[derive(Debug, Clone)]
enum Outcome {
    /// Acknowledged: record `i` is at `base_offset + i` (or -1 when `base_offset` is -1), with
    /// the broker's `log_append_time` as timestamp when it is not -1.
    Acked {
        base_offset: i64,
        log_append_time: i64,
    },
    /// Failed (or dropped unresolved: [`ProduceError::Closed`]).
    Failed(ProduceError),
}

/// A batch's result, written once by the batch and read by each record's future.
#[derive(Debug)]
pub(crate) struct BatchResult {
    tp: TopicPartition,
    outcome: OnceLock<Outcome>,
    /// Tasks waiting for `outcome`.
    wakers: Mutex<Vec<Waker>>,
}

impl BatchResult {
    fn new(tp: TopicPartition) -> Self {
        BatchResult {
            tp,
            outcome: OnceLock::new(),
            wakers: Mutex::new(Vec::new()),
        }
    }

    /// Sets the outcome (the first one wins) and wakes every waiting future.
    fn complete(&self, outcome: Outcome) {
        if self.outcome.set(outcome).is_err() {
            return;
        }
        let wakers =
            std::mem::take(&mut *self.wakers.lock().unwrap_or_else(PoisonError::into_inner));
        for w in wakers {
            w.wake();
        }
    }

    fn resolve(&self, outcome: &Outcome, index: u32, timestamp: i64) -> DeliveryResult {
        match outcome {
            Outcome::Acked {
                base_offset,
                log_append_time,
            } => Ok(RecordMetadata {
                topic: Arc::clone(&self.tp.topic),
                partition: self.tp.partition,
                offset: if *base_offset < 0 {
                    -1
                } else {
                    base_offset.saturating_add(i64::from(index))
                },
                timestamp: if *log_append_time >= 0 {
                    *log_append_time
                } else {
                    timestamp
                },
            }),
            Outcome::Failed(error) => Err(error.clone()),
        }
    }

    /// The result of the record at `index` (created at `timestamp`), or registers the task to
    /// be woken when the batch ends.
    ///
    /// `registered` is the waker this record registered last: polled again by the same task,
    /// the record registers nothing and takes no lock (the registered waker is woken when the
    /// outcome is set).
    pub(crate) fn poll_record(
        &self,
        cx: &mut Context<'_>,
        index: u32,
        timestamp: i64,
        registered: &mut Option<Waker>,
    ) -> Poll<DeliveryResult> {
        if let Some(outcome) = self.outcome.get() {
            return Poll::Ready(self.resolve(outcome, index, timestamp));
        }
        if registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        // `complete` sets the outcome before it takes the wakers: checked again under the lock.
        if let Some(outcome) = self.outcome.get() {
            drop(wakers);
            return Poll::Ready(self.resolve(outcome, index, timestamp));
        }
        // Usually one task waits on many records of a batch: register it once.
        let waker = cx.waker();
        if !wakers.iter().rev().take(4).any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        drop(wakers);
        *registered = Some(waker.clone());
        Poll::Pending
    }
}

/// What a record's future needs to find its result: its batch's shared result and its place in
/// the batch.
#[derive(Debug)]
pub(crate) struct RecordSlot {
    pub(crate) result: Arc<BatchResult>,
    pub(crate) index: u32,
    pub(crate) timestamp: i64,
    /// The waker registered in `result` by the last poll.
    pub(crate) registered: Option<Waker>,
}

impl RecordSlot {
    /// The partition of the record's batch.
    pub(crate) fn partition(&self) -> i32 {
        self.result.tp.partition
    }
}

impl std::future::Future for RecordSlot {
    type Output = DeliveryResult;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DeliveryResult> {
        let this = &mut *self;
        this.result
            .poll_record(cx, this.index, this.timestamp, &mut this.registered)
    }
}

/// A batch's bytes: records being added, then the encoded v2 batch.
#[derive(Debug)]
pub(crate) enum Payload {
    /// Taking records: a zeroed batch header, then the uncompressed records.
    Open(Vec<u8>),
    /// Encoded; `base_sequence` is set when it carries a producer id.
    Encoded {
        bytes: Bytes,
        base_sequence: Option<i32>,
    },
}

/// Batches not finished yet, by id; `flush` waits until those older than its start are gone.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    incomplete: Mutex<BTreeSet<u64>>,
    done: Notify,
}

impl Tracker {
    fn insert(&self, id: u64) {
        self.incomplete
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }

    fn remove(&self, id: u64) {
        self.incomplete
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        self.done.notify_waiters();
    }

    /// Whether a batch with an id below `upto` is unfinished.
    pub(crate) fn any_below(&self, upto: u64) -> bool {
        self.incomplete
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .is_some_and(|&first| first < upto)
    }

    /// Number of unfinished batches.
    pub(crate) fn len(&self) -> usize {
        self.incomplete
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Waits until every batch with an id below `upto` is finished.
    pub(crate) async fn wait_below(&self, upto: u64) {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.any_below(upto) {
                return;
            }
            notified.await;
        }
    }
}

/// Buffer memory a batch holds: `permits` of `memory`, given back when dropped.
#[derive(Debug)]
struct Reserved {
    memory: Arc<Semaphore>,
    permits: usize,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.memory.add_permits(self.permits);
    }
}

/// Removes the batch from the tracker when the batch is dropped.
#[derive(Debug)]
struct Ticket {
    id: u64,
    tracker: Arc<Tracker>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.tracker.remove(self.id);
    }
}

/// One partition's batch; see the module docs.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Creation order; also the order of sequences within a partition.
    pub(crate) id: u64,
    pub(crate) tp: TopicPartition,
    /// When the first record was added (linger and delivery timeout count from it).
    pub(crate) created: Instant,
    /// Exact uncompressed encoded size, batch header included.
    pub(crate) size: usize,
    /// The encoder's state: record count, offset deltas, timestamps.
    state: BatchState,
    /// Capacity the buffer is allocated with at the first record (the accumulator's guess
    /// from the partition's previous batch).
    hint: usize,
    /// Produce attempts so far.
    pub(crate) attempts: u32,
    /// Why the last attempt failed, if one did (named when the batch finally times out).
    pub(crate) last_error: Option<Box<ProduceError>>,
    /// Not to be sent again before this instant (retry backoff).
    pub(crate) retry_at: Option<Instant>,
    /// No more records fit: it is ready regardless of linger.
    pub(crate) full: bool,
    pub(crate) payload: Payload,
    result: Arc<BatchResult>,
    /// The buffer memory it holds (its buffer's capacity), released when the batch is
    /// finished or dropped.
    memory: Option<Reserved>,
    ticket: Option<Ticket>,
    /// Where the buffer goes back.
    pool: Arc<BufferPool>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        // Release memory and the tracker before any result is visible (see `finish`); a batch
        // dropped unresolved fails its records with `Closed`.
        self.release_buffer();
        self.memory = None;
        self.ticket = None;
        self.result.complete(Outcome::Failed(ProduceError::Closed));
    }
}

impl Batch {
    /// An empty batch registered in `tracker`, with a buffer of its own.
    #[cfg(test)]
    pub(crate) fn new(id: u64, tp: TopicPartition, now: Instant, tracker: &Arc<Tracker>) -> Self {
        let pool = Arc::new(BufferPool::new(0));
        Self::with_capacity(id, tp, now, tracker, &pool, 0)
    }

    /// An empty batch registered in `tracker`; its first record takes a buffer from `pool`
    /// of about `capacity` bytes (header included), as the memory allows.
    pub(crate) fn with_capacity(
        id: u64,
        tp: TopicPartition,
        now: Instant,
        tracker: &Arc<Tracker>,
        pool: &Arc<BufferPool>,
        capacity: usize,
    ) -> Self {
        tracker.insert(id);
        Batch {
            id,
            result: Arc::new(BatchResult::new(tp.clone())),
            tp,
            created: now,
            size: BATCH_HEADER_SIZE,
            state: BatchState::new(),
            hint: capacity,
            attempts: 0,
            last_error: None,
            retry_at: None,
            full: false,
            payload: Payload::Open(Vec::new()),
            memory: None,
            ticket: Some(Ticket {
                id,
                tracker: Arc::clone(tracker),
            }),
            pool: Arc::clone(pool),
        }
    }

    /// Bytes of buffer memory the batch holds.
    #[cfg(test)]
    pub(crate) fn held_memory(&self) -> usize {
        self.memory.as_ref().map_or(0, |m| m.permits)
    }

    /// Gives the buffer back to the pool (an encoded one goes back once the last reference
    /// to its bytes is dropped).
    fn release_buffer(&mut self) {
        match std::mem::replace(&mut self.payload, Payload::Open(Vec::new())) {
            Payload::Open(buf) => self.pool.give(buf),
            Payload::Encoded { bytes, .. } => drop(bytes),
        }
    }

    /// Number of records.
    pub(crate) fn record_count(&self) -> usize {
        usize::try_from(self.state.record_count()).unwrap_or(0)
    }

    /// The size the batch would have with `record` appended (`usize::MAX` if it cannot take
    /// it).
    pub(crate) fn size_with(&self, record: &RecordData) -> usize {
        self.state
            .record_size(record)
            .map_or(usize::MAX, |size| self.size.saturating_add(size))
    }

    /// Encodes a record into the batch; returns where its result will be. Fails with
    /// [`ProduceError::Closed`] if the batch is already encoded (never the case for the
    /// accumulator's open batches), or with the encoder's error if the record cannot be
    /// encoded (`check_size` rejects those first).
    ///
    /// The batch holds permits of `memory` for its buffer's capacity. `spare` is the memory
    /// the caller holds for this record (at least its size bound plus a batch header, so that
    /// it always fits): when the buffer must grow, the growth is paid from `spare`, then from
    /// `memory` if it has permits free, and the buffer grows only as far as that pays for
    /// (at most by half, not past `max_size` unless the record needs it; the first record
    /// allocates the buffer at the batch's capacity hint). What is left of `spare` stays the
    /// caller's.
    pub(crate) fn push(
        &mut self,
        record: &RecordData,
        spare: &mut usize,
        memory: &Arc<Semaphore>,
        max_size: usize,
    ) -> Result<RecordSlot, ProduceError> {
        let Payload::Open(buf) = &mut self.payload else {
            return Err(ProduceError::Closed);
        };
        let index = u32::try_from(self.state.record_count()).map_err(|_| ProduceError::Closed)?;
        let Batch {
            size: batch_size,
            hint,
            pool,
            memory: held,
            ..
        } = self;
        // Measured once: the encoder hands the record's size to the closure, which makes the
        // room (and pays for it) before the record is written.
        let grow = |buf: &mut Vec<u8>, size: usize| {
            let needed = *batch_size + size;
            let cap = buf.capacity();
            if needed > cap {
                let want = if cap == 0 {
                    (*hint).max(needed)
                } else {
                    needed.max((cap + cap / 2).min(max_size.max(needed)))
                };
                // The first record takes an idle buffer of about that size if there is one.
                let pooled = if cap == 0 {
                    pool.take(want, want.saturating_mul(2))
                } else {
                    None
                };
                let want = pooled.as_ref().map_or(want, Vec::capacity);
                let short = (want - cap).saturating_sub(*spare);
                if short > 0 {
                    if let Some(more) = u32::try_from(short)
                        .ok()
                        .and_then(|n| memory.try_acquire_many(n).ok())
                    {
                        more.forget();
                        *spare += short;
                    }
                }
                // At least `needed`: `spare` covers the record and a header.
                let grow_to = want.min(cap + *spare).max(needed);
                if cap == 0 {
                    *buf = match pooled {
                        Some(pooled) if pooled.capacity() <= grow_to => pooled,
                        other => {
                            if let Some(pooled) = other {
                                pool.give(pooled);
                            }
                            Vec::with_capacity(grow_to)
                        }
                    };
                    BatchState::write_header_space(buf);
                } else {
                    buf.reserve_exact(grow_to - buf.len());
                }
                let paid = (buf.capacity() - cap).min(*spare);
                *spare -= paid;
                let reserved = held.get_or_insert_with(|| Reserved {
                    memory: Arc::clone(memory),
                    permits: 0,
                });
                reserved.permits += paid;
            }
            *batch_size = needed;
        };
        self.state
            .append_with(buf, record, grow)
            .map_err(|e| ProduceError::Encode(Arc::new(e)))?;
        debug_assert_eq!(
            buf.len(),
            self.size,
            "the encoder wrote the size it measured"
        );
        Ok(RecordSlot {
            result: Arc::clone(&self.result),
            index,
            timestamp: record.timestamp,
            registered: None,
        })
    }

    /// The sequence of an encoded idempotent batch.
    pub(crate) fn base_sequence(&self) -> Option<i32> {
        match &self.payload {
            Payload::Encoded { base_sequence, .. } => *base_sequence,
            Payload::Open(_) => None,
        }
    }

    /// The encoded bytes, if encoded.
    pub(crate) fn bytes(&self) -> Option<&Bytes> {
        match &self.payload {
            Payload::Encoded { bytes, .. } => Some(bytes),
            Payload::Open(_) => None,
        }
    }

    /// Seals the batch as a v2 batch with `compression`, stamped with `identity` and
    /// `base_sequence` when both are given: writes the header and the CRC in front of the
    /// records (uncompressed: in place, no copy), or compresses the records into a second
    /// buffer. Does nothing if already encoded; on error the batch stays open.
    pub(crate) fn encode(
        &mut self,
        compression: Compression,
        identity: Option<ProducerIdentity>,
        base_sequence: Option<i32>,
    ) -> Result<(), EncodeError> {
        let Payload::Open(buf) = &mut self.payload else {
            return Ok(());
        };
        let stamp = identity.zip(base_sequence);
        let mut spec = BatchSpec {
            compression,
            ..BatchSpec::default()
        };
        if let Some((identity, sequence)) = stamp {
            spec.producer_id = identity.producer_id;
            spec.producer_epoch = identity.epoch;
            spec.base_sequence = sequence;
        }
        let mut records = std::mem::take(buf);
        if records.is_empty() {
            // No record yet, so no buffer: an empty batch.
            BatchState::write_header_space(&mut records);
        }
        let sealed = match compression {
            Compression::None => self.state.seal(&spec, &mut records).map(|_| None),
            _ => {
                let body = records.get(BATCH_HEADER_SIZE..).unwrap_or_default();
                let want = body.len() / 2 + BATCH_HEADER_SIZE + 64;
                let mut out = self
                    .pool
                    .take(want, body.len() + BATCH_HEADER_SIZE + 64)
                    .unwrap_or_else(|| Vec::with_capacity(want));
                match self.state.seal_compressed(&spec, body, &mut out) {
                    Ok(_) => Ok(Some(out)),
                    Err(error) => {
                        self.pool.give(out);
                        Err(error)
                    }
                }
            }
        };
        let out = match sealed {
            Ok(None) => records,
            Ok(Some(compressed)) => {
                self.pool.give(records);
                compressed
            }
            Err(error) => {
                self.payload = Payload::Open(records);
                return Err(error);
            }
        };
        self.payload = Payload::Encoded {
            bytes: Bytes::from_owner(PooledBuf {
                buf: out,
                pool: Arc::clone(&self.pool),
            }),
            base_sequence: stamp.map(|(_, sequence)| sequence),
        };
        Ok(())
    }

    /// Replaces the encoded bytes (after [`restamp`](super::sequence::restamp)) and the sequence.
    pub(crate) fn set_encoded(&mut self, bytes: Bytes, base_sequence: Option<i32>) {
        self.payload = Payload::Encoded {
            bytes,
            base_sequence,
        };
    }

    /// Resolves every record: record `i` is at `base_offset + i` (or -1 when `base_offset` is
    /// -1), with the broker's `log_append_time` as timestamp when it is not -1.
    pub(crate) fn succeed(self, base_offset: i64, log_append_time: i64) {
        self.finish(Outcome::Acked {
            base_offset,
            log_append_time,
        });
    }

    /// Fails every record with `error`.
    pub(crate) fn fail(self, error: ProduceError) {
        self.finish(Outcome::Failed(error));
    }

    /// Drops the rest of the batch (records, memory permit, tracker ticket) before any result
    /// is visible, so a caller that sees its result can already use the freed memory and a
    /// `flush` that returns finds the batch finished; then publishes `outcome`.
    fn finish(mut self, outcome: Outcome) {
        self.release_buffer();
        self.memory = None;
        self.ticket = None;
        self.result.complete(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mephisto_wire::record::{record_size_bound, DecodeOptions, RecordBatches};
    use std::future::Future;
    use std::task::Waker;
    use std::time::{Duration, Instant};
    use tokio::sync::Semaphore;

    /// Pushes `r` with the reservation `send` takes for it (its bound and a batch header),
    /// giving back what the batch did not keep.
    fn push_with(batch: &mut Batch, r: &RecordData, sem: &Arc<Semaphore>) -> Option<RecordSlot> {
        let cost = record_size_bound(r).unwrap_or(0) + BATCH_HEADER_SIZE;
        let Ok(permit) = sem.try_acquire_many(cost as u32) else {
            panic!("permits")
        };
        permit.forget();
        let mut spare = cost;
        let slot = batch.push(r, &mut spare, sem, 1 << 20);
        sem.add_permits(spare);
        slot.ok()
    }

    fn record(key: &[u8], value: usize, ts: i64) -> RecordData {
        RecordData {
            key: Some(Bytes::copy_from_slice(key)),
            value: Some(Bytes::from(vec![b'x'; value])),
            headers: vec![RecordHeader {
                key: "h".into(),
                value: Some(Bytes::from_static(b"1")),
            }],
            timestamp: ts,
        }
    }

    #[test]
    fn size_arithmetic_is_exact_and_bounded() {
        let tracker = Arc::new(Tracker::default());
        let sem = Arc::new(Semaphore::new(1 << 20));
        let mut batch = Batch::new(0, TopicPartition::new("t", 0), Instant::now(), &tracker);
        for (i, value) in [0usize, 5, 100, 300, 20_000].into_iter().enumerate() {
            let r = record(b"key", value, 1_700_000_000_000 + 1000 * i as i64);
            let before = batch.size;
            let predicted = batch.size_with(&r);
            assert!(predicted - before <= record_size_bound(&r).unwrap_or(0));
            assert!(push_with(&mut batch, &r, &sem).is_some());
            assert_eq!(batch.size, predicted, "size_with is exact");
        }
        let expected = batch.size;
        assert!(batch.encode(Compression::None, None, None).is_ok());
        let bytes = batch.bytes().cloned().unwrap_or_default();
        assert_eq!(bytes.len(), expected, "predicted size is the encoded size");
        let batches: Vec<_> = RecordBatches::new(bytes, DecodeOptions::default()).collect();
        assert_eq!(batches.len(), 1);
        assert_eq!(tracker.len(), 1);
        batch.succeed(10, -1);
        assert_eq!(tracker.len(), 0, "finished batches leave the tracker");
        assert_eq!(sem.available_permits(), 1 << 20, "memory is released");
    }

    /// Records encoded at `push` and sealed by `encode` give the same bytes as the wire
    /// crate's batch encoder, for every codec, with and without a producer id; the buffers go
    /// back to the pool once the batch and its bytes are gone.
    #[test]
    fn encoding_matches_the_wire_encoder_and_buffers_are_reused() {
        use mephisto_wire::record::{BatchEncoder, BatchSpec, NewHeader, NewRecord};
        let tracker = Arc::new(Tracker::default());
        let sem = Arc::new(Semaphore::new(1 << 20));
        let pool = Arc::new(BufferPool::new(1 << 20));
        let records: Vec<RecordData> = (0..50i64)
            .map(|i| RecordData {
                key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
                value: (i % 7 != 0)
                    .then(|| Bytes::from(vec![b'a' + (i % 26) as u8; 90 + i as usize])),
                headers: (0..(i % 3))
                    .map(|h| RecordHeader {
                        key: format!("h{h}"),
                        value: (h != 1).then(|| Bytes::from_static(b"v")),
                    })
                    .collect(),
                // Out of order on purpose: the max timestamp is not the last one.
                timestamp: 1_700_000_000_000 + (i * 37) % 11 - 5,
            })
            .collect();
        let identity = ProducerIdentity {
            producer_id: 77,
            epoch: 3,
        };
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for stamp in [None, Some((identity, 1234))] {
                let mut batch = Batch::with_capacity(
                    1,
                    TopicPartition::new("t", 0),
                    Instant::now(),
                    &tracker,
                    &pool,
                    100,
                );
                for r in &records {
                    assert!(push_with(&mut batch, r, &sem).is_some());
                }
                let encoded = batch.encode(compression, stamp.map(|s| s.0), stamp.map(|s| s.1));
                assert!(encoded.is_ok(), "{encoded:?}");
                let ours = batch.bytes().cloned().unwrap_or_default();

                let mut spec = BatchSpec {
                    compression,
                    ..BatchSpec::default()
                };
                if let Some((id, seq)) = stamp {
                    spec.producer_id = id.producer_id;
                    spec.producer_epoch = id.epoch;
                    spec.base_sequence = seq;
                }
                let headers: Vec<Vec<NewHeader<'_>>> = records
                    .iter()
                    .map(|r| {
                        r.headers
                            .iter()
                            .map(|h| NewHeader {
                                key: &h.key,
                                value: h.value.as_deref(),
                            })
                            .collect()
                    })
                    .collect();
                let new: Vec<NewRecord<'_>> = records
                    .iter()
                    .zip(&headers)
                    .map(|(r, h)| NewRecord {
                        key: r.key.as_deref(),
                        value: r.value.as_deref(),
                        headers: h,
                        timestamp: r.timestamp,
                    })
                    .collect();
                let mut theirs = Vec::new();
                let done = BatchEncoder::new().encode(&spec, &new, &mut theirs);
                assert!(done.is_ok(), "{done:?}");
                assert_eq!(&ours[..], &theirs[..], "{compression:?} {stamp:?}");
                assert_eq!(batch.base_sequence(), stamp.map(|s| s.1));
                drop(ours);
                batch.succeed(0, -1);
                assert!(pool.idle_bytes() > 0, "the buffer went back to the pool");
            }
        }
        // A new batch takes an idle buffer instead of allocating (for its first record).
        pool.clear();
        pool.give(Vec::with_capacity(5000));
        let idle = pool.idle_bytes();
        let mut batch = Batch::with_capacity(
            2,
            TopicPartition::new("t", 0),
            Instant::now(),
            &tracker,
            &pool,
            4000,
        );
        assert_eq!(pool.idle_bytes(), idle, "no buffer before the first record");
        assert!(push_with(&mut batch, &records[1], &sem).is_some());
        assert_eq!(pool.idle_bytes(), 0, "the idle buffer was taken");
        drop(batch);
        assert_eq!(pool.idle_bytes(), idle);
        pool.clear();
        assert_eq!(pool.idle_bytes(), 0);
        assert_eq!(sem.available_permits(), 1 << 20);
    }

    /// The pool keeps at most its cap of idle capacity, preferring larger buffers.
    #[test]
    fn pool_keeps_within_its_cap() {
        let pool = BufferPool::new(10_000);
        pool.give(Vec::with_capacity(4000));
        pool.give(Vec::with_capacity(4000));
        assert!(pool.idle_bytes() >= 8000);
        // Too large for the cap: freed.
        pool.give(Vec::with_capacity(20_000));
        assert!(pool.idle_bytes() <= 10_000);
        // Larger than the idle ones: replaces a small one.
        pool.give(Vec::with_capacity(6000));
        assert!(pool.idle_bytes() <= 10_000, "{}", pool.idle_bytes());
        let big = pool.take(5000, 8000).map(|b| b.capacity());
        assert_eq!(big, Some(6000), "the smallest that fits");
        assert!(pool.take(5000, 8000).is_none(), "none left in range");
        assert!(pool.take(1000, 3000).is_none());
        assert_eq!(pool.take(1000, 4000).map(|b| b.capacity()), Some(4000));
    }

    #[tokio::test]
    async fn results_carry_offsets_and_failures() {
        let tracker = Arc::new(Tracker::default());
        let sem = Arc::new(Semaphore::new(1 << 20));
        let mut batch = Batch::new(3, TopicPartition::new("t", 2), Instant::now(), &tracker);
        let mut rxs = Vec::new();
        for i in 0..3 {
            rxs.push(push_with(&mut batch, &record(b"k", 1, 100 + i), &sem));
        }
        batch.succeed(40, -1);
        for (i, rx) in rxs.into_iter().enumerate() {
            let Some(rx) = rx else { panic!("receiver") };
            let meta = rx.await.ok();
            let Some(meta) = meta else { panic!("metadata") };
            assert_eq!((meta.partition, meta.offset), (2, 40 + i as i64));
            assert_eq!(meta.timestamp, 100 + i as i64);
        }
        let mut batch = Batch::new(4, TopicPartition::new("t", 2), Instant::now(), &tracker);
        let rx = push_with(&mut batch, &record(b"k", 1, 1), &sem);
        drop(batch);
        let Some(rx) = rx else { panic!("receiver") };
        assert!(
            rx.await.is_err(),
            "a dropped batch closes its records' channels"
        );
    }

    /// One shared result per batch: every record's future is woken, whichever task polls it,
    /// including a future first polled by one task and then awaited by another, and the one
    /// registration per task is enough for all the records that task waits on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_result_wakes_every_record_of_the_batch() {
        let tracker = Arc::new(Tracker::default());
        let sem = Arc::new(Semaphore::new(1000));
        let pool = Arc::new(BufferPool::new(1 << 20));
        let mut batch = Batch::with_capacity(
            7,
            TopicPartition::new("t", 1),
            Instant::now(),
            &tracker,
            &pool,
            4,
        );
        let mut slots = Vec::new();
        for i in 0..6 {
            let Some(slot) = push_with(&mut batch, &record(b"k", 1, 500 + i), &sem) else {
                panic!("slot")
            };
            slots.push(slot);
        }
        assert_eq!(batch.record_count(), 6);
        // Polled once here (a no-op waker registered), then awaited by another task.
        let mut first = slots.remove(0);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(std::pin::Pin::new(&mut first).poll(&mut cx).is_pending());
        assert!(
            std::pin::Pin::new(&mut first).poll(&mut cx).is_pending(),
            "polled again by the same task"
        );
        let moved = tokio::spawn(first);
        // One task waits on several records; each of the others on one.
        let mut rest = slots.into_iter();
        let (Some(a), Some(b)) = (rest.next(), rest.next()) else {
            panic!("slots")
        };
        let together = tokio::spawn(async move { (a.await, b.await) });
        let singles: Vec<_> = rest.map(tokio::spawn).collect();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        batch.succeed(100, -1);
        let wait = Duration::from_secs(5);
        let first = tokio::time::timeout(wait, moved).await;
        let Ok(Ok(Ok(first))) = first else {
            panic!("moved future not woken: {first:?}")
        };
        assert_eq!(
            (first.partition, first.offset, first.timestamp),
            (1, 100, 500)
        );
        let pair = tokio::time::timeout(wait, together).await;
        let Ok(Ok((Ok(a), Ok(b)))) = pair else {
            panic!("pair: {pair:?}")
        };
        assert_eq!((a.offset, b.offset), (101, 102));
        for (i, single) in singles.into_iter().enumerate() {
            let done = tokio::time::timeout(wait, single).await;
            let Ok(Ok(Ok(meta))) = done else {
                panic!("single {i}: {done:?}")
            };
            assert_eq!(meta.offset, 103 + i as i64);
            assert_eq!(meta.timestamp, 503 + i as i64);
            assert_eq!(&*meta.topic, "t");
        }
        assert_eq!(sem.available_permits(), 1000, "memory is released");
        assert_eq!(tracker.len(), 0);
    }

    /// A failed batch fails each record with the error, and the log append time replaces the
    /// create time when the broker gives one.
    #[tokio::test]
    async fn failures_and_log_append_time_reach_every_record() {
        let tracker = Arc::new(Tracker::default());
        let sem = Arc::new(Semaphore::new(1 << 20));
        let push = |batch: &mut Batch, ts| push_with(batch, &record(b"k", 1, ts), &sem);
        let mut batch = Batch::new(1, TopicPartition::new("t", 0), Instant::now(), &tracker);
        let slots: Vec<_> = (0..3).filter_map(|i| push(&mut batch, i)).collect();
        batch.fail(ProduceError::Closed);
        for slot in slots {
            assert!(matches!(slot.await, Err(ProduceError::Closed)));
        }
        let mut batch = Batch::new(2, TopicPartition::new("t", 0), Instant::now(), &tracker);
        let slots: Vec<_> = (0..2).filter_map(|i| push(&mut batch, i)).collect();
        batch.succeed(-1, 777);
        for slot in slots {
            let meta = slot.await.ok();
            assert_eq!(meta.map(|m| (m.offset, m.timestamp)), Some((-1, 777)));
        }
    }
}
