//! [`Batch`]: the records of one partition that travel together, from the first `send` to the
//! broker's answer, and the size arithmetic the accumulator fills batches with.
//!
//! A batch starts as owned records ([`Payload::Records`]); the sender encodes it into a v2
//! record batch with the wire encoder when it drains it ([`Batch::encode`]), which is also when
//! an idempotent batch gets its sequence, and from then on it keeps only the encoded bytes
//! (retries resend exactly those). It ends in [`Batch::succeed`] or [`Batch::fail`], which
//! resolve every record's future; dropping it releases its buffer memory and tells the
//! [`Tracker`] (what `flush` waits on) that it is done, even if it is dropped unresolved (the
//! records then fail with [`ProduceError::Closed`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use mephisto_wire::compression::Compression;
use mephisto_wire::record::{
    BatchEncoder, BatchSpec, EncodeError, NewHeader, NewRecord, BATCH_HEADER_SIZE,
};
use tokio::sync::{Notify, Semaphore, SemaphorePermit};

use crate::producer::error::ProduceError;
use crate::producer::record::{RecordHeader, RecordMetadata};
use crate::producer::sequence::ProducerIdentity;
use crate::producer::topic_partition::TopicPartition;

/// What a record's future resolves to.
pub(crate) type DeliveryResult = Result<RecordMetadata, ProduceError>;

/// Bytes of a zig-zag varint encoding `v`.
pub(crate) fn varint_len(v: i32) -> usize {
    let z = ((v << 1) ^ (v >> 31)) as u32;
    (32 - z.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Bytes of a zig-zag varlong encoding `v`.
pub(crate) fn varlong_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - z.leading_zeros() as usize).max(1).div_ceil(7)
}

fn nullable_len(len: Option<usize>) -> usize {
    match len {
        None => 1,
        Some(n) => varint_len(i32::try_from(n).unwrap_or(i32::MAX)) + n,
    }
}

/// Memory counted per record on top of its encoded size: the bookkeeping the producer keeps
/// for it until it is acknowledged (its data handles, its completion channel).
pub(crate) const RECORD_OVERHEAD: usize = std::mem::size_of::<RecordData>() + 96;

/// A record's data while it waits in an open batch.
#[derive(Debug)]
pub(crate) struct RecordData {
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<RecordHeader>,
    pub(crate) timestamp: i64,
}

impl RecordData {
    /// Encoded size of the record without its length prefix, timestamp delta and offset delta.
    fn body_len(&self) -> usize {
        let mut n = 1; // attributes
        n += nullable_len(self.key.as_ref().map(Bytes::len));
        n += nullable_len(self.value.as_ref().map(Bytes::len));
        n += varint_len(i32::try_from(self.headers.len()).unwrap_or(i32::MAX));
        for h in &self.headers {
            n += nullable_len(Some(h.key.len()));
            n += nullable_len(h.value.as_ref().map(Bytes::len));
        }
        n
    }

    /// An upper bound of the record's encoded size wherever it lands in a batch: the
    /// timestamp delta, offset delta and length prefix at their largest.
    pub(crate) fn size_bound(&self) -> usize {
        self.body_len() + 10 + 5 + 5
    }

    /// The record's exact encoded size at `offset_delta` in a batch whose first timestamp is
    /// `base_timestamp`.
    pub(crate) fn size_at(&self, offset_delta: i32, base_timestamp: i64) -> usize {
        let inner = self.body_len()
            + varlong_len(self.timestamp.wrapping_sub(base_timestamp))
            + varint_len(offset_delta);
        inner + varint_len(i32::try_from(inner).unwrap_or(i32::MAX))
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

impl std::future::Future for RecordSlot {
    type Output = DeliveryResult;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DeliveryResult> {
        let this = &mut *self;
        this.result
            .poll_record(cx, this.index, this.timestamp, &mut this.registered)
    }
}

/// A batch's records: owned until encoded, then the encoded v2 batch.
#[derive(Debug)]
pub(crate) enum Payload {
    /// Not encoded yet.
    Records(Vec<RecordData>),
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
    /// Timestamp of the first record (the batch's base timestamp).
    base_timestamp: Option<i64>,
    /// Produce attempts so far.
    pub(crate) attempts: u32,
    /// Why the last attempt failed, if one did (named when the batch finally times out).
    pub(crate) last_error: Option<Box<ProduceError>>,
    /// Not to be sent again before this instant (retry backoff).
    pub(crate) retry_at: Option<Instant>,
    /// No more records fit: it is ready regardless of linger.
    pub(crate) full: bool,
    pub(crate) payload: Payload,
    /// Number of records.
    count: usize,
    result: Arc<BatchResult>,
    /// The buffer memory its records hold, released when the batch is finished or dropped.
    memory: Option<Reserved>,
    ticket: Option<Ticket>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        // Release memory and the tracker before any result is visible (see `finish`); a batch
        // dropped unresolved fails its records with `Closed`.
        self.memory = None;
        self.ticket = None;
        self.result.complete(Outcome::Failed(ProduceError::Closed));
    }
}

impl Batch {
    /// An empty batch registered in `tracker`.
    #[cfg(test)]
    pub(crate) fn new(id: u64, tp: TopicPartition, now: Instant, tracker: &Arc<Tracker>) -> Self {
        Self::with_capacity(id, tp, now, tracker, 0)
    }

    /// An empty batch registered in `tracker`, with room for `capacity` records.
    pub(crate) fn with_capacity(
        id: u64,
        tp: TopicPartition,
        now: Instant,
        tracker: &Arc<Tracker>,
        capacity: usize,
    ) -> Self {
        tracker.insert(id);
        Batch {
            id,
            result: Arc::new(BatchResult::new(tp.clone())),
            tp,
            created: now,
            size: BATCH_HEADER_SIZE,
            base_timestamp: None,
            attempts: 0,
            last_error: None,
            retry_at: None,
            full: false,
            payload: Payload::Records(Vec::with_capacity(capacity)),
            count: 0,
            memory: None,
            ticket: Some(Ticket {
                id,
                tracker: Arc::clone(tracker),
            }),
        }
    }

    /// Number of records.
    pub(crate) fn record_count(&self) -> usize {
        self.count
    }

    /// The size the batch would have with `record` appended.
    pub(crate) fn size_with(&self, record: &RecordData) -> usize {
        let delta = i32::try_from(self.count).unwrap_or(i32::MAX);
        let base = self.base_timestamp.unwrap_or(record.timestamp);
        self.size + record.size_at(delta, base)
    }

    /// Appends a record with its memory permit (of the semaphore `memory`), which the batch
    /// then holds; returns where its result will be. `None` if the batch is already encoded
    /// (never the case for the accumulator's open batches).
    pub(crate) fn push(
        &mut self,
        record: RecordData,
        permit: SemaphorePermit<'_>,
        memory: &Arc<Semaphore>,
    ) -> Option<RecordSlot> {
        let size = self.size_with(&record);
        let Payload::Records(records) = &mut self.payload else {
            return None;
        };
        let index = u32::try_from(self.count).ok()?;
        let slot = RecordSlot {
            result: Arc::clone(&self.result),
            index,
            timestamp: record.timestamp,
            registered: None,
        };
        self.base_timestamp.get_or_insert(record.timestamp);
        self.count += 1;
        records.push(record);
        self.size = size;
        // No reference count per record: the batch holds the semaphore once and releases the
        // sum of its records' permits.
        let reserved = self.memory.get_or_insert_with(|| Reserved {
            memory: Arc::clone(memory),
            permits: 0,
        });
        reserved.permits += permit.num_permits();
        permit.forget();
        Some(slot)
    }

    /// The sequence of an encoded idempotent batch.
    pub(crate) fn base_sequence(&self) -> Option<i32> {
        match &self.payload {
            Payload::Encoded { base_sequence, .. } => *base_sequence,
            Payload::Records(_) => None,
        }
    }

    /// The encoded bytes, if encoded.
    pub(crate) fn bytes(&self) -> Option<&Bytes> {
        match &self.payload {
            Payload::Encoded { bytes, .. } => Some(bytes),
            Payload::Records(_) => None,
        }
    }

    /// Encodes the records into a v2 batch with `compression`, stamped with `identity` and
    /// `base_sequence` when given. Does nothing if already encoded.
    pub(crate) fn encode(
        &mut self,
        encoder: &mut BatchEncoder,
        compression: Compression,
        identity: Option<ProducerIdentity>,
        base_sequence: Option<i32>,
    ) -> Result<(), EncodeError> {
        let Payload::Records(records) = &self.payload else {
            return Ok(());
        };
        let mut spec = BatchSpec {
            compression,
            ..BatchSpec::default()
        };
        let stamped = match (identity, base_sequence) {
            (Some(id), Some(seq)) => {
                spec.producer_id = id.producer_id;
                spec.producer_epoch = id.epoch;
                spec.base_sequence = seq;
                Some(seq)
            }
            _ => None,
        };
        let mut out = Vec::with_capacity(match compression {
            Compression::None => self.size,
            _ => self.size / 2 + BATCH_HEADER_SIZE,
        });
        {
            let mut writer = encoder.writer(&spec, &mut out);
            let mut headers: Vec<NewHeader<'_>> = Vec::new();
            for r in records {
                headers.clear();
                headers.extend(r.headers.iter().map(|h| NewHeader {
                    key: &h.key,
                    value: h.value.as_deref(),
                }));
                let record = NewRecord {
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                    headers: &headers,
                    timestamp: r.timestamp,
                };
                writer.append(&record)?;
            }
            writer.finish()?;
        }
        self.payload = Payload::Encoded {
            bytes: Bytes::from(out),
            base_sequence: stamped,
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
        self.payload = Payload::Records(Vec::new());
        self.memory = None;
        self.ticket = None;
        self.result.complete(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mephisto_wire::record::{DecodeOptions, RecordBatches};
    use std::future::Future;
    use std::task::Waker;
    use std::time::{Duration, Instant};
    use tokio::sync::Semaphore;

    #[test]
    fn varint_lengths() {
        for (v, n) in [
            (0, 1),
            (-1, 1),
            (63, 1),
            (64, 2),
            (-64, 1),
            (-65, 2),
            (i32::MAX, 5),
            (i32::MIN, 5),
        ] {
            assert_eq!(varint_len(v), n, "{v}");
        }
        assert_eq!(varlong_len(0), 1);
        assert_eq!(varlong_len(i64::MAX), 10);
        assert_eq!(varlong_len(i64::MIN), 10);
        assert_eq!(varlong_len(1_700_000_000_000), 6);
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
            assert!(r.size_at(i as i32, 1_700_000_000_000) <= r.size_bound());
            let permit = sem.try_acquire_many(10);
            let Ok(permit) = permit else {
                panic!("permits")
            };
            assert!(batch.push(r, permit, &sem).is_some());
        }
        let expected = batch.size;
        let mut encoder = BatchEncoder::new();
        assert!(batch
            .encode(&mut encoder, Compression::None, None, None)
            .is_ok());
        let bytes = batch.bytes().cloned().unwrap_or_default();
        assert_eq!(bytes.len(), expected, "predicted size is the encoded size");
        let batches: Vec<_> = RecordBatches::new(bytes, DecodeOptions::default()).collect();
        assert_eq!(batches.len(), 1);
        assert_eq!(tracker.len(), 1);
        batch.succeed(10, -1);
        assert_eq!(tracker.len(), 0, "finished batches leave the tracker");
        assert_eq!(sem.available_permits(), 1 << 20, "memory is released");
    }

    #[tokio::test]
    async fn results_carry_offsets_and_failures() {
        let tracker = Arc::new(Tracker::default());
        let sem = Arc::new(Semaphore::new(100));
        let mut batch = Batch::new(3, TopicPartition::new("t", 2), Instant::now(), &tracker);
        let mut rxs = Vec::new();
        for i in 0..3 {
            let Ok(permit) = sem.try_acquire_many(1) else {
                panic!("permits")
            };
            rxs.push(batch.push(record(b"k", 1, 100 + i), permit, &sem));
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
        let Ok(permit) = sem.try_acquire_many(1) else {
            panic!("permits")
        };
        let rx = batch.push(record(b"k", 1, 1), permit, &sem);
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
        let mut batch =
            Batch::with_capacity(7, TopicPartition::new("t", 1), Instant::now(), &tracker, 4);
        let mut slots = Vec::new();
        for i in 0..6 {
            let Ok(permit) = sem.try_acquire_many(10) else {
                panic!("permits")
            };
            let Some(slot) = batch.push(record(b"k", 1, 500 + i), permit, &sem) else {
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
        let sem = Arc::new(Semaphore::new(100));
        let push = |batch: &mut Batch, ts| {
            let Ok(permit) = sem.try_acquire_many(1) else {
                panic!("permits")
            };
            batch.push(record(b"k", 1, ts), permit, &sem)
        };
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
