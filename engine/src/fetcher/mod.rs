//! The fetcher: assigned partitions in, `Bytes`-backed record batches out (no copy per record).
//!
//! ```no_run
//! # async fn demo(cluster: mephisto_engine::Cluster) -> Result<(), Box<dyn std::error::Error>> {
//! use mephisto_engine::fetcher::{FetchPosition, Fetcher, FetcherConfig, TopicPartition};
//!
//! let fetcher = Fetcher::new(cluster, FetcherConfig::default())?;
//! fetcher.assign(TopicPartition::new("events", 0), FetchPosition::Earliest)?;
//! loop {
//!     let batch = fetcher.next_batch().await?;
//!     for record in batch.records()? {
//!         let record = record?;
//!         println!("{}-{}@{}: {:?}", batch.topic, batch.partition, record.offset(), record.value());
//!     }
//! }
//! # }
//! ```
//!
//! # How it works
//! - The **router** (`router`) finds each assigned partition's leader in the cluster metadata
//!   and starts one **fetch loop** per leader broker (`broker`).
//! - A fetch loop resolves pending positions (`Earliest`, `Latest`, or a reset after
//!   OFFSET_OUT_OF_RANGE) with ListOffsets to the leader, then sends long-poll Fetch requests
//!   (max wait, min bytes, max bytes per request and per partition) holding **every** fetchable
//!   partition the broker leads, one at a time, on the broker's `Fetch` connection.
//! - Each partition's answer is framed and CRC-checked in the loop (`response`): a truncated
//!   trailing batch ends the data silently, control batches and (read_committed) aborted
//!   transactions are dropped, and the next fetch offset is the last complete batch's base
//!   offset + last offset delta + 1. Partitions are fetched ahead of the application (one
//!   partition's worth at most) while their data waits in the buffer.
//! - NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION and the other "metadata is stale"
//!   codes (and dead connections) send the partition back to the router on refreshed
//!   metadata; other retriable codes back off; OFFSET_OUT_OF_RANGE resets per
//!   [`OffsetReset`] or stops the partition with [`FetchError::OffsetOutOfRange`].
//! - [`Fetcher::next_batch`] hands out buffered batches, round-robin over partitions (one
//!   response's worth of a partition at a time), as [`FetchedBatch`]es: the wire crate's
//!   [`RecordBatch`](mephisto_wire::record::RecordBatch), a `Bytes` slice of the Fetch response
//!   frame when the response holds one partition's data; when it holds several, each
//!   partition's data is copied once, whole, into a buffer of its own (see Memory). Records are
//!   never copied one by one.
//!
//! # Memory
//! Record data waiting for the application is counted against
//! [`FetcherConfig::max_buffered_bytes`]. A loop sends a Fetch only when at least
//! [`min(max_partition_bytes, max_buffered_bytes)`](FetcherConfig::max_partition_bytes) / 2 is
//! free, asking for no more than what is free (minus what other requests in flight may bring),
//! so when the application does not keep up, fetching stops; the buffer exceeds its cap by at
//! most one oversized first batch (which brokers return whole, KIP-74) per request.
//!
//! A record the application keeps (an event waiting in an agent's queue, a value in a take
//! batch) keeps its buffer alive. Were that the whole response, one record of each of a few
//! partitions could pin several responses far past the budget, so a response holding several
//! partitions' data is split into one buffer per partition: what a kept record pins is its
//! partition's share, the size the budget counted.
//!
//! # Layout
//! - [`config`]: [`FetcherConfig`], [`IsolationLevel`], [`OffsetReset`].
//! - [`batch`]: [`FetchedBatch`], [`FetchedRecords`], [`FetchedRecordsView`].
//! - [`error`](mod@error): [`FetchError`].
//! - `state`: assigned partitions, positions, the prefetch buffer and the planning of requests.
//! - `request`, `response`: building requests and decoding one partition's answer.
//! - `broker`, `router`: the tasks.
//!
//! Not implemented: incremental fetch sessions (KIP-227; every Fetch is a full request), fetching
//! from followers (KIP-392), log truncation detection by leader epoch (KIP-320's
//! OffsetsForLeaderEpoch), and client-side throttling on `throttle_time_ms`.

pub mod batch;
mod broker;
pub mod config;
pub mod error;
mod request;
mod response;
mod router;
mod state;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};

use kafka_protocol::messages::BrokerId;
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

use crate::cluster::Cluster;

pub use crate::producer::TopicPartition;
pub use batch::{FetchedBatch, FetchedRecords, FetchedRecordsView};
pub use config::{FetcherConfig, IsolationLevel, OffsetReset};
pub use error::FetchError;
pub use state::{FetchPosition, FetcherStats};

use state::{State, TakeOf};

/// What the fetcher's handle and tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    cluster: Cluster,
    config: FetcherConfig,
    state: Mutex<State>,
    /// Wakes the router and the broker loops (assignment, positions, buffer space changed).
    wake_loops: watch::Sender<()>,
    /// Wakes the application (data or errors queued, closed).
    wake_app: watch::Sender<()>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify_loops(&self) {
        self.wake_loops.send_replace(());
    }

    fn notify_app(&self) {
        self.wake_app.send_replace(());
    }

    fn spawn_loop(self: &Arc<Self>, broker: BrokerId) {
        let handle = tokio::spawn(broker::run(Arc::clone(self), broker));
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle.abort_handle());
    }
}

/// Fetches records of assigned partitions; see the [module docs](self).
///
/// All methods take `&self`; share it behind an `Arc` to assign from one task while another
/// awaits [`next_batch`](Self::next_batch). Dropping it (or [`close`](Self::close)) stops its
/// tasks.
#[derive(Debug)]
pub struct Fetcher {
    shared: Arc<Shared>,
}

impl Fetcher {
    /// A fetcher over `cluster`'s connections and metadata, with nothing assigned. Must be
    /// called inside a tokio runtime (it spawns its router task there).
    pub fn new(cluster: Cluster, config: FetcherConfig) -> Result<Self, FetchError> {
        config.validate().map_err(FetchError::Config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            FetchError::Config("a fetcher must be created inside a tokio runtime".into())
        })?;
        let client = cluster.config();
        let state = State::new(
            config.clone(),
            (client.retry_backoff, client.retry_backoff_max),
        );
        let shared = Arc::new(Shared {
            cluster,
            config,
            state: Mutex::new(state),
            wake_loops: watch::Sender::new(()),
            wake_app: watch::Sender::new(()),
            tasks: Mutex::new(Vec::new()),
        });
        let router = runtime.spawn(router::run(Arc::clone(&shared)));
        shared
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(router.abort_handle());
        Ok(Self { shared })
    }

    /// The settings.
    pub fn config(&self) -> &FetcherConfig {
        &self.shared.config
    }

    /// Starts fetching `partition` from `position`. Assigning a partition that is already
    /// assigned starts it over from `position`, dropping what was prefetched and un-pausing it.
    pub fn assign(
        &self,
        partition: TopicPartition,
        position: FetchPosition,
    ) -> Result<(), FetchError> {
        {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(FetchError::Closed);
            }
            state.assign(partition, position)?;
        }
        self.shared.notify_loops();
        Ok(())
    }

    /// Stops fetching `partition` and drops what was prefetched for it; `false` if it was not
    /// assigned.
    pub fn unassign(&self, partition: &TopicPartition) -> bool {
        let removed = self.shared.lock().unassign(partition);
        if removed {
            self.shared.notify_loops();
        }
        removed
    }

    /// The assigned partitions, sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        let mut partitions: Vec<TopicPartition> =
            self.shared.lock().partitions.keys().cloned().collect();
        partitions.sort();
        partitions
    }

    /// Moves `partition` to `position`: what was prefetched is dropped, and a partition stopped
    /// by an error fetches again.
    pub fn seek(
        &self,
        partition: &TopicPartition,
        position: FetchPosition,
    ) -> Result<(), FetchError> {
        self.shared.lock().seek(partition, position)?;
        self.shared.notify_loops();
        Ok(())
    }

    /// Stops handing out and fetching `partition`'s records; what is buffered stays.
    pub fn pause(&self, partition: &TopicPartition) -> Result<(), FetchError> {
        self.shared.lock().set_paused(partition, true)
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&self, partition: &TopicPartition) -> Result<(), FetchError> {
        self.shared.lock().set_paused(partition, false)?;
        self.shared.notify_loops();
        self.shared.notify_app();
        Ok(())
    }

    /// The offset of the next record [`next_batch`](Self::next_batch) will hand out for
    /// `partition` (past every batch handed out, and past control and aborted batches); `None`
    /// if it is not assigned or its position is still being looked up.
    pub fn position(&self, partition: &TopicPartition) -> Option<i64> {
        self.shared
            .lock()
            .partitions
            .get(partition)
            .and_then(|ps| ps.position)
    }

    /// `partition`'s high watermark as the last Fetch response reported it.
    pub fn high_watermark(&self, partition: &TopicPartition) -> Option<i64> {
        self.shared
            .lock()
            .partitions
            .get(partition)
            .and_then(|ps| ps.marks)
            .map(|m| m.high_watermark)
    }

    /// Counters and the buffer level.
    pub fn stats(&self) -> FetcherStats {
        self.shared.lock().stats()
    }

    /// The next batch, waiting for one if none is buffered.
    ///
    /// Errors are partition errors (the partition stops until a [`seek`](Self::seek)), request
    /// errors that retrying does not fix (the fetcher keeps retrying with backoff), or
    /// [`FetchError::Closed`]. Cancel-safe: dropping the future loses nothing.
    pub async fn next_batch(&self) -> Result<FetchedBatch, FetchError> {
        let mut wake = self.shared.wake_app.subscribe();
        loop {
            wake.borrow_and_update();
            if let Some(item) = self.try_next_batch() {
                return item;
            }
            if wake.changed().await.is_err() {
                return Err(FetchError::Closed);
            }
        }
    }

    /// The next batch if one is buffered, without waiting.
    pub fn try_next_batch(&self) -> Option<Result<FetchedBatch, FetchError>> {
        let (item, freed) = {
            let mut state = self.shared.lock();
            if state.closed {
                return Some(Err(FetchError::Closed));
            }
            state.take()
        };
        if freed {
            self.shared.notify_loops();
        }
        item
    }

    /// A reader of `partition` alone, for a task that processes that partition (see
    /// [`PartitionReader`]); `None` if it is not assigned. The reader belongs to this
    /// assignment of the partition: once it is unassigned (or assigned again), the reader
    /// ends.
    pub fn reader(&self, partition: &TopicPartition) -> Option<PartitionReader> {
        let notify = Arc::clone(&self.shared.lock().partitions.get(partition)?.notify);
        Some(PartitionReader {
            shared: Arc::clone(&self.shared),
            partition: partition.clone(),
            notify,
        })
    }

    /// Stops the fetcher's tasks and drops what is buffered; later calls fail with
    /// [`FetchError::Closed`].
    pub fn close(&self) {
        {
            let mut state = self.shared.lock();
            state.closed = true;
            let assigned: Vec<TopicPartition> = state.partitions.keys().cloned().collect();
            for tp in &assigned {
                state.unassign(tp);
            }
        }
        for task in self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
        self.shared.notify_app();
        self.shared.notify_loops();
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.close();
    }
}

/// The batches of one assigned partition, for the task that processes it: the partition-task
/// counterpart of [`Fetcher::next_batch`] (which serves every partition round-robin). Get one
/// with [`Fetcher::reader`].
///
/// A partition whose task stops taking batches keeps at most one partition's worth
/// ([`FetcherConfig::max_partition_bytes`]) prefetched and is not fetched further; its task
/// [pauses](Self::pause) it when it will not take data for a while (its consumers are
/// full), and then, while another partition's reader waits for data and the buffer is full,
/// its prefetched data is dropped to make room (after it has been paused for `max_wait`) and
/// fetched again when it resumes. Taking a batch resumes the partition.
#[derive(Debug)]
pub struct PartitionReader {
    shared: Arc<Shared>,
    partition: TopicPartition,
    notify: Arc<Notify>,
}

impl PartitionReader {
    /// The partition read.
    pub fn partition(&self) -> &TopicPartition {
        &self.partition
    }

    /// The partition's next batch (or its error), waiting for one; `None` once the partition
    /// is unassigned (or assigned again) or the fetcher is closed. Cancel-safe.
    pub async fn next_batch(&self) -> Option<Result<FetchedBatch, FetchError>> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(item) = self.try_next_batch() {
                return item;
            }
            notified.await;
        }
    }

    /// The partition's next batch if one is buffered: `Some(None)` once the partition is gone,
    /// `None` when nothing is buffered yet.
    pub fn try_next_batch(&self) -> Option<Option<Result<FetchedBatch, FetchError>>> {
        let (outcome, freed) = self.shared.lock().take_of(&self.partition, &self.notify);
        if freed {
            self.shared.notify_loops();
        }
        match outcome {
            TakeOf::Item(item) => Some(Some(item)),
            TakeOf::Gone => Some(None),
            TakeOf::Empty => None,
        }
    }

    /// Stops fetching the partition until its next batch is asked for; what is prefetched
    /// stays unless another partition needs the room (see the type's docs).
    pub fn pause(&self) {
        let mut state = self.shared.lock();
        let same = state
            .partitions
            .get(&self.partition)
            .is_some_and(|ps| Arc::ptr_eq(&ps.notify, &self.notify));
        if same {
            let _ = state.set_paused(&self.partition, true);
        }
        drop(state);
        // A starving partition may now take this one's room.
        self.shared.notify_loops();
    }

    /// The position: the offset of the next record this reader will hand out (`None` while
    /// it is being looked up, or once the partition is gone).
    pub fn position(&self) -> Option<i64> {
        self.shared
            .lock()
            .partitions
            .get(&self.partition)
            .filter(|ps| Arc::ptr_eq(&ps.notify, &self.notify))
            .and_then(|ps| ps.position)
    }
}
