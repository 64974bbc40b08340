//! The fetcher's shared state: every assigned partition with its position, leader and
//! prefetched chunks, the byte accounting of the prefetch buffer, and the decisions made under
//! its lock (what a broker loop fetches next, which batch the application gets next).
//!
//! Pure code driven by the tasks in `broker` and `router` and by the [`Fetcher`] handle; no
//! I/O and no `await` under the lock.
//!
//! [`Fetcher`]: super::Fetcher

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::BrokerId;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::batch::{FetchedBatch, Watermarks};
use super::config::{FetcherConfig, IsolationLevel, OffsetReset};
use super::error::FetchError;
use super::request::{FetchTarget, OffsetTarget};
use super::response::{Chunk, ChunkError};
use crate::backoff::Backoff;
use crate::cluster::Leader;
use crate::error::KafkaError;
use crate::producer::TopicPartition;

/// Where a partition starts (or restarts) reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchPosition {
    /// This offset (the next record the application gets has this offset, or the first one
    /// after it if it is gone through compaction).
    Offset(i64),
    /// The log start offset, asked of the leader (ListOffsets).
    Earliest,
    /// The log end offset (the last stable offset with read_committed), asked of the leader:
    /// only records written from now on.
    Latest,
}

/// Which end of the log a pending reset goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetTo {
    Earliest,
    Latest,
}

impl ResetTo {
    /// The ListOffsets timestamp that asks for it.
    pub(crate) fn timestamp(self) -> i64 {
        match self {
            Self::Earliest => -2,
            Self::Latest => -1,
        }
    }
}

/// Counters and gauges of a fetcher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetcherStats {
    /// Fetch requests sent.
    pub fetch_requests: u64,
    /// ListOffsets requests sent (position resets).
    pub list_offsets_requests: u64,
    /// Record bytes received in Fetch responses.
    pub fetched_bytes: u64,
    /// Record bytes of the largest Fetch response (all partitions).
    pub largest_response_bytes: usize,
    /// The most partitions that carried records in one Fetch response.
    pub max_partitions_per_response: usize,
    /// Bytes in the prefetch buffer now.
    pub buffered_bytes: usize,
    /// The most bytes the prefetch buffer ever held.
    pub peak_buffered_bytes: usize,
    /// Batches handed to the application.
    pub batches_delivered: u64,
    /// Times the prefetched data of a paused partition was dropped (to be fetched again on
    /// resume) to make room for a partition whose reader was waiting.
    pub evictions: u64,
}

/// One assigned partition.
#[derive(Debug)]
pub(crate) struct PartitionState {
    /// Bumped by every seek: answers to requests sent before it are dropped.
    pub epoch: u64,
    /// The next offset the application gets; `None` until a pending reset resolves.
    pub position: Option<i64>,
    /// A ListOffsets to do before fetching.
    pub reset: Option<ResetTo>,
    /// The next offset to fetch (ahead of `position` by the prefetched chunks).
    pub fetch_offset: i64,
    /// Where to fetch from; `None` until the router finds the leader.
    pub leader: Option<Leader>,
    pub paused: bool,
    /// Since when the partition is paused.
    pub paused_since: Option<Instant>,
    /// Wakes the partition's [reader](super::PartitionReader) when data or an error is
    /// queued for it, or when it is unassigned. One per assignment of the partition: a reader
    /// of an earlier assignment is told apart by it.
    pub notify: Arc<Notify>,
    /// The partition's reader found nothing to take and waits for data.
    pub reader_waiting: bool,
    /// Id of the request (Fetch or ListOffsets) this partition is part of.
    pub in_flight: Option<u64>,
    /// An error is queued or was delivered: not fetched again before a seek.
    pub stopped: bool,
    /// Not before this instant (after a retriable partition error).
    pub retry_at: Option<Instant>,
    pub backoff: Backoff,
    /// Prefetched data, in offset order.
    pub chunks: VecDeque<Chunk>,
    /// Bytes of `chunks` still accounted to the buffer.
    pub buffered: usize,
    /// Whether the partition is in the ready list.
    pub queued: bool,
    /// Offsets from the latest response.
    pub marks: Option<Watermarks>,
}

/// What a broker loop should do next.
#[derive(Debug)]
pub(crate) enum Plan {
    /// No partition is led by this broker: the loop ends.
    Idle,
    /// Resolve these positions with ListOffsets.
    Reset { id: u64, targets: Vec<OffsetTarget> },
    /// Fetch these partitions with at most `max_bytes` in the response. `long_poll` is false
    /// for the periodic poll of partitions at their end while others, with data known to be
    /// available, are held back by their prefetch room: the broker must answer at once (max
    /// wait 0) so that the loop is free to fetch those as soon as the application drains them.
    Fetch {
        id: u64,
        targets: Vec<FetchTarget>,
        max_bytes: i32,
        long_poll: bool,
    },
    /// Nothing to do before something changes, or before this instant.
    Wait(Option<Instant>),
}

/// What [`State::take_of`] found for one partition.
#[derive(Debug)]
pub(crate) enum TakeOf {
    /// The next batch, or the partition's error.
    Item(Result<FetchedBatch, FetchError>),
    /// Nothing buffered yet.
    Empty,
    /// The partition is not assigned (any more) under this reader's assignment.
    Gone,
}

/// The state behind the fetcher's lock.
#[derive(Debug)]
pub(crate) struct State {
    pub partitions: HashMap<TopicPartition, PartitionState>,
    /// Partitions with chunks, served round-robin.
    ready: VecDeque<TopicPartition>,
    /// Request-level errors for the application (bounded).
    errors: VecDeque<FetchError>,
    pub buffered_bytes: usize,
    /// Response space promised to Fetch requests in flight.
    pub reserved_bytes: usize,
    pub stats: FetcherStats,
    pub closed: bool,
    /// Brokers with a running loop.
    pub loops: std::collections::HashSet<BrokerId>,
    next_epoch: u64,
    next_request: u64,
    rotation: usize,
    /// Per broker: since when partitions with data available have been held back by prefetch
    /// room while all its fetchable partitions were at their end (see [`State::plan`]).
    held_since: HashMap<BrokerId, Instant>,
    config: FetcherConfig,
    retry_backoff: (Duration, Duration),
}

/// At most this many request-level errors wait for the application; older ones are dropped.
const MAX_QUEUED_ERRORS: usize = 16;

impl State {
    pub(crate) fn new(config: FetcherConfig, retry_backoff: (Duration, Duration)) -> Self {
        Self {
            partitions: HashMap::new(),
            ready: VecDeque::new(),
            errors: VecDeque::new(),
            buffered_bytes: 0,
            reserved_bytes: 0,
            stats: FetcherStats::default(),
            closed: false,
            loops: std::collections::HashSet::new(),
            next_epoch: 1,
            next_request: 1,
            rotation: 0,
            held_since: HashMap::new(),
            config,
            retry_backoff,
        }
    }

    fn epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    fn apply_position(ps: &mut PartitionState, position: FetchPosition) {
        match position {
            FetchPosition::Offset(offset) => {
                ps.position = Some(offset);
                ps.fetch_offset = offset;
                ps.reset = None;
            }
            FetchPosition::Earliest => {
                ps.position = None;
                ps.reset = Some(ResetTo::Earliest);
            }
            FetchPosition::Latest => {
                ps.position = None;
                ps.reset = Some(ResetTo::Latest);
            }
        }
    }

    fn check_offset(tp: &TopicPartition, position: FetchPosition) -> Result<(), FetchError> {
        match position {
            FetchPosition::Offset(offset) if offset < 0 => Err(FetchError::InvalidOffset {
                partition: tp.clone(),
                offset,
            }),
            _ => Ok(()),
        }
    }

    /// Assigns `tp` (or re-assigns it, dropping what was prefetched) at `position`.
    pub(crate) fn assign(
        &mut self,
        tp: TopicPartition,
        position: FetchPosition,
    ) -> Result<(), FetchError> {
        Self::check_offset(&tp, position)?;
        self.unassign(&tp);
        let epoch = self.epoch();
        let (base, max) = self.retry_backoff;
        let mut ps = PartitionState {
            epoch,
            position: None,
            reset: None,
            fetch_offset: 0,
            leader: None,
            paused: false,
            paused_since: None,
            notify: Arc::new(Notify::new()),
            reader_waiting: false,
            in_flight: None,
            stopped: false,
            retry_at: None,
            backoff: Backoff::new(base, max),
            chunks: VecDeque::new(),
            buffered: 0,
            queued: false,
            marks: None,
        };
        Self::apply_position(&mut ps, position);
        self.partitions.insert(tp, ps);
        Ok(())
    }

    /// Drops `tp` and its prefetched data; `false` if it was not assigned.
    pub(crate) fn unassign(&mut self, tp: &TopicPartition) -> bool {
        match self.partitions.remove(tp) {
            Some(ps) => {
                // Its reader sees the partition gone.
                ps.notify.notify_one();
                self.release(ps.buffered);
                if ps.queued {
                    self.ready.retain(|t| t != tp);
                }
                true
            }
            None => false,
        }
    }

    /// Moves `tp` to `position`, dropping what was prefetched and clearing a stop.
    pub(crate) fn seek(
        &mut self,
        tp: &TopicPartition,
        position: FetchPosition,
    ) -> Result<(), FetchError> {
        Self::check_offset(tp, position)?;
        let epoch = self.epoch();
        let Some(ps) = self.partitions.get_mut(tp) else {
            return Err(FetchError::NotAssigned(tp.clone()));
        };
        let freed = std::mem::take(&mut ps.buffered);
        ps.chunks.clear();
        ps.epoch = epoch;
        ps.stopped = false;
        ps.retry_at = None;
        ps.backoff.reset();
        Self::apply_position(ps, position);
        let queued = std::mem::take(&mut ps.queued);
        self.release(freed);
        if queued {
            self.ready.retain(|t| t != tp);
        }
        Ok(())
    }

    /// Pauses or resumes `tp`.
    pub(crate) fn set_paused(
        &mut self,
        tp: &TopicPartition,
        paused: bool,
    ) -> Result<(), FetchError> {
        match self.partitions.get_mut(tp) {
            Some(ps) => {
                if ps.paused != paused {
                    ps.paused = paused;
                    ps.paused_since = paused.then(Instant::now);
                }
                Ok(())
            }
            None => Err(FetchError::NotAssigned(tp.clone())),
        }
    }

    fn release(&mut self, bytes: usize) {
        self.buffered_bytes = self.buffered_bytes.saturating_sub(bytes);
    }

    /// Queues a request-level error for the application.
    pub(crate) fn push_error(&mut self, error: FetchError) {
        if self.errors.len() >= MAX_QUEUED_ERRORS {
            self.errors.pop_front();
        }
        self.errors.push_back(error);
    }

    // -----------------------------------------------------------------------------------------
    // The application's side.

    /// The next batch (or error) for the application, if one is buffered. The flag says
    /// whether buffer space or a partition's prefetch room was freed (the loops may fetch).
    pub(crate) fn take(&mut self) -> (Option<Result<FetchedBatch, FetchError>>, bool) {
        if let Some(error) = self.errors.pop_front() {
            return (Some(Err(error)), false);
        }
        let mut freed = false;
        let room = self.partition_room();
        for _ in 0..self.ready.len() {
            let Some(tp) = self.ready.pop_front() else {
                break;
            };
            let Some(ps) = self.partitions.get_mut(&tp) else {
                continue;
            };
            if ps.paused && !ps.chunks.is_empty() {
                self.ready.push_back(tp);
                continue;
            }
            let before = ps.buffered;
            let (item, released, finished) = Self::take_from(&tp, ps);
            // A finished chunk, or a partition back under its prefetch room, may be fetched.
            freed |= finished || (before >= room && ps.buffered < room);
            self.buffered_bytes = self.buffered_bytes.saturating_sub(released);
            let more = !ps.chunks.is_empty();
            ps.queued = more;
            if let Some(item) = item {
                if more {
                    // Stay on this partition until its current chunk is drained.
                    if finished {
                        self.ready.push_back(tp);
                    } else {
                        self.ready.push_front(tp);
                    }
                }
                if item.is_ok() {
                    self.stats.batches_delivered += 1;
                }
                return (Some(item), freed);
            }
        }
        (None, freed)
    }

    /// Takes the next batch or error from `ps`'s chunks, finishing drained chunks on the way.
    /// Returns it, the bytes released and whether a chunk was finished.
    /// The next batch (or error) of `tp` alone, for the reader of the assignment that owns
    /// `notify`. A reader asking for data un-pauses its partition. The flag says whether
    /// buffer room was freed (the broker loops may fetch again).
    pub(crate) fn take_of(&mut self, tp: &TopicPartition, notify: &Arc<Notify>) -> (TakeOf, bool) {
        let room = self.partition_room();
        let Some(ps) = self
            .partitions
            .get_mut(tp)
            .filter(|ps| Arc::ptr_eq(&ps.notify, notify))
        else {
            return (TakeOf::Gone, false);
        };
        let resumed = std::mem::take(&mut ps.paused);
        ps.paused_since = None;
        let before = ps.buffered;
        let (item, released, finished) = Self::take_from(tp, ps);
        let freed = resumed || finished || (before >= room && ps.buffered < room);
        ps.reader_waiting = item.is_none();
        let drained = ps.chunks.is_empty() && ps.queued;
        if drained {
            ps.queued = false;
        }
        self.buffered_bytes = self.buffered_bytes.saturating_sub(released);
        if drained {
            self.ready.retain(|t| t != tp);
        }
        match item {
            Some(item) => {
                if item.is_ok() {
                    self.stats.batches_delivered += 1;
                }
                (TakeOf::Item(item), freed)
            }
            None => (TakeOf::Empty, freed),
        }
    }

    /// Makes room for partitions whose reader waits for data (starving) by dropping what
    /// paused partitions prefetched, largest first, if they have been paused for at least
    /// `max_wait` (a partition paused only for a moment keeps its data). Their position is
    /// kept: the data is fetched again after they resume. Returns when the next paused
    /// partition becomes old enough to be evicted, if room is still missing.
    fn evict_for_starving(&mut self, now: Instant) -> Option<Instant> {
        let min_free = self.config.min_free_bytes();
        let cap = self.config.max_buffered_bytes;
        let free = |s: &Self| cap.saturating_sub(s.buffered_bytes + s.reserved_bytes);
        if free(self) >= min_free {
            return None;
        }
        let starving = self
            .partitions
            .values()
            .any(|ps| ps.reader_waiting && ps.chunks.is_empty() && !ps.paused && !ps.stopped);
        if !starving {
            return None;
        }
        let patience = self.config.max_wait;
        let mut later: Option<Instant> = None;
        let mut candidates: Vec<(usize, TopicPartition)> = Vec::new();
        for (tp, ps) in &self.partitions {
            let Some(since) = ps.paused_since.filter(|_| ps.paused && ps.buffered > 0) else {
                continue;
            };
            if now >= since + patience {
                candidates.push((ps.buffered, tp.clone()));
            } else {
                let at = since + patience;
                later = Some(later.map_or(at, |l| l.min(at)));
            }
        }
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        for (_, tp) in candidates {
            if free(self) >= min_free {
                return None;
            }
            let epoch = self.epoch();
            let Some(ps) = self.partitions.get_mut(&tp) else {
                continue;
            };
            let freed = std::mem::take(&mut ps.buffered);
            ps.chunks.clear();
            ps.epoch = epoch;
            if let Some(position) = ps.position {
                ps.fetch_offset = position;
            }
            let queued = std::mem::take(&mut ps.queued);
            self.release(freed);
            if queued {
                self.ready.retain(|t| *t != tp);
            }
            self.stats.evictions += 1;
            tracing::debug!(partition = %tp, bytes = freed, "paused partition's prefetched data dropped for a starving one");
        }
        if free(self) >= min_free {
            None
        } else {
            later
        }
    }

    fn take_from(
        tp: &TopicPartition,
        ps: &mut PartitionState,
    ) -> (Option<Result<FetchedBatch, FetchError>>, usize, bool) {
        let mut released = 0;
        let mut finished = false;
        while let Some(front) = ps.chunks.front_mut() {
            if let Some(batch) = front.batches.pop_front() {
                let size = batch.size_in_bytes().min(front.bytes);
                front.bytes -= size;
                released += size;
                let next = batch.next_offset();
                ps.position = Some(ps.position.map_or(next, |p| p.max(next)));
                let fetched = FetchedBatch::new(
                    Arc::clone(&tp.topic),
                    tp.partition,
                    front.marks,
                    batch,
                    front.start_offset,
                );
                if front.batches.is_empty() && front.error.is_none() {
                    released += Self::finish_front(ps);
                    finished = true;
                }
                ps.buffered = ps.buffered.saturating_sub(released);
                return (Some(Ok(fetched)), released, finished);
            }
            if let Some(error) = front.error.take() {
                released += Self::finish_front(ps);
                ps.buffered = ps.buffered.saturating_sub(released);
                return (Some(Err(chunk_error(tp, error))), released, true);
            }
            released += Self::finish_front(ps);
            finished = true;
        }
        ps.buffered = ps.buffered.saturating_sub(released);
        (None, released, finished)
    }

    /// Drops the front chunk (its batches are all handed out), moving the position past it;
    /// returns its remaining accounted bytes.
    fn finish_front(ps: &mut PartitionState) -> usize {
        match ps.chunks.pop_front() {
            Some(chunk) => {
                if chunk.error.is_none() {
                    let next = chunk.next_offset;
                    ps.position = Some(ps.position.map_or(next, |p| p.max(next)));
                }
                chunk.bytes
            }
            None => 0,
        }
    }

    // -----------------------------------------------------------------------------------------
    // The broker loops' side.

    /// What the loop of `broker` should do now.
    pub(crate) fn plan(&mut self, broker: BrokerId, now: Instant) -> Plan {
        let mut led = 0usize;
        let mut wake_at: Option<Instant> = self.evict_for_starving(now);
        let mut resets: Vec<(TopicPartition, ResetTo, Option<i32>)> = Vec::new();
        let mut fetchable: Vec<TopicPartition> = Vec::new();
        // Partitions held back only by their prefetch room, a retry backoff or a pause while the
        // broker has more for them.
        let mut held = 0usize;
        // Whether a fetchable partition may have data now (not known to be at its end).
        let mut may_have_data = false;
        let partition_room = self.partition_room();
        let committed = self.config.isolation_level == IsolationLevel::ReadCommitted;
        for (tp, ps) in &self.partitions {
            let Some(leader) = ps.leader.filter(|l| l.broker == broker) else {
                continue;
            };
            led += 1;
            if ps.in_flight.is_some() || ps.stopped {
                continue;
            }
            if let Some(at) = ps.retry_at.filter(|at| *at > now) {
                wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
                if ps.reset.is_none() && !ps.paused && !Self::at_end(ps, committed) {
                    held += 1;
                }
                continue;
            }
            if let Some(reset) = ps.reset {
                resets.push((tp.clone(), reset, leader.epoch));
            } else if !ps.paused {
                let at_end = Self::at_end(ps, committed);
                if ps.buffered < partition_room {
                    may_have_data |= !at_end;
                    fetchable.push(tp.clone());
                } else if !at_end {
                    held += 1;
                }
            } else if !Self::at_end(ps, committed) {
                // Paused with data at the broker: it is resumed once the application drains
                // it (flow control), and must not then wait behind a long poll.
                held += 1;
            }
        }
        if led == 0 {
            self.held_since.remove(&broker);
            return Plan::Idle;
        }
        if !resets.is_empty() {
            let id = self.request_id();
            let targets = resets
                .into_iter()
                .filter_map(|(tp, reset, epoch)| {
                    let ps = self.partitions.get_mut(&tp)?;
                    ps.in_flight = Some(id);
                    Some(OffsetTarget {
                        topic: Arc::clone(&tp.topic),
                        partition: tp.partition,
                        timestamp: reset.timestamp(),
                        leader_epoch: epoch,
                    })
                })
                .collect();
            return Plan::Reset { id, targets };
        }
        let cap = self.config.max_buffered_bytes;
        let free = cap.saturating_sub(self.buffered_bytes + self.reserved_bytes);
        if fetchable.is_empty() || free < self.config.min_free_bytes() {
            self.held_since.remove(&broker);
            return Plan::Wait(wake_at);
        }
        // Some partitions have data waiting at the broker but no prefetch room (or are in a
        // retry backoff, or paused), and every fetchable one is at its end. A long poll for the latter
        // would be held by the broker for max_wait, keeping the loop (one Fetch at a time) from
        // fetching the former once the application drains them: the consume stall. Wait for
        // the application instead; the fetchable partitions are still polled, without waiting
        // at the broker, once per max_wait, so new data on them is not delayed longer than by a
        // long poll. (When a fetchable partition may have data, the broker answers a long poll
        // at once.)
        let mut long_poll = true;
        if held > 0 && !may_have_data {
            let since = *self.held_since.entry(broker).or_insert(now);
            let due = since + self.config.max_wait;
            if now < due {
                return Plan::Wait(Some(wake_at.map_or(due, |w| w.min(due))));
            }
            long_poll = false;
        }
        self.held_since.remove(&broker);
        fetchable.sort();
        let len = fetchable.len();
        fetchable.rotate_left(self.rotation % len);
        self.rotation = self.rotation.wrapping_add(1);
        let max_bytes = i32::try_from(free)
            .unwrap_or(i32::MAX)
            .min(self.config.max_bytes);
        let partition_bytes = self.config.max_partition_bytes.min(max_bytes);
        let id = self.request_id();
        let targets = fetchable
            .into_iter()
            .filter_map(|tp| {
                let ps = self.partitions.get_mut(&tp)?;
                ps.in_flight = Some(id);
                Some(FetchTarget {
                    topic: Arc::clone(&tp.topic),
                    partition: tp.partition,
                    offset: ps.fetch_offset,
                    leader_epoch: ps.leader.and_then(|l| l.epoch),
                    max_bytes: partition_bytes,
                    epoch: ps.epoch,
                })
            })
            .collect();
        self.reserved_bytes += usize::try_from(max_bytes).unwrap_or(0);
        self.stats.fetch_requests += 1;
        Plan::Fetch {
            id,
            targets,
            max_bytes,
            long_poll,
        }
    }

    /// The prefetch room of a partition: it is fetched while it buffers less than this.
    fn partition_room(&self) -> usize {
        usize::try_from(self.config.max_partition_bytes)
            .unwrap_or(0)
            .max(1)
    }

    /// Whether `ps` is known to have been fetched up to the end of what it can read (the high
    /// watermark, or the last stable offset with read_committed). Unknown before its first
    /// answer.
    fn at_end(ps: &PartitionState, committed: bool) -> bool {
        ps.marks.is_some_and(|m| {
            let end = if committed {
                m.last_stable_offset.unwrap_or(m.high_watermark)
            } else {
                m.high_watermark
            };
            ps.fetch_offset >= end
        })
    }

    /// Releases the response space reserved by a Fetch that was answered or failed.
    pub(crate) fn unreserve(&mut self, bytes: usize) {
        self.reserved_bytes = self.reserved_bytes.saturating_sub(bytes);
    }

    /// The partition if it is still part of request `id`.
    fn in_request(&mut self, id: u64, tp: &TopicPartition) -> Option<&mut PartitionState> {
        self.partitions
            .get_mut(tp)
            .filter(|ps| ps.in_flight == Some(id))
    }

    /// Ends request `id` for `tp` without a result (no answer for it).
    pub(crate) fn unmark(&mut self, id: u64, tp: &TopicPartition) {
        if let Some(ps) = self.in_request(id, tp) {
            ps.in_flight = None;
        }
    }

    /// Ends request `id` for `tp` because its leader is stale: the router must find it again.
    pub(crate) fn reroute(&mut self, id: u64, tp: &TopicPartition) {
        if let Some(ps) = self.in_request(id, tp) {
            ps.in_flight = None;
            ps.leader = None;
        }
    }

    /// Ends request `id` for `tp` with a retriable error: try again after a backoff.
    pub(crate) fn retry_later(&mut self, id: u64, tp: &TopicPartition, now: Instant) {
        if let Some(ps) = self.in_request(id, tp) {
            ps.in_flight = None;
            ps.retry_at = Some(now + ps.backoff.next_delay());
        }
    }

    /// Ends request `id` for `tp` with an error the application must see; the partition stops.
    pub(crate) fn fail(&mut self, id: u64, tp: &TopicPartition, error: KafkaError) {
        let partition = tp.clone();
        self.stop_with(id, tp, FetchError::Kafka { partition, error });
    }

    fn stop_with(&mut self, id: u64, tp: &TopicPartition, error: FetchError) {
        let Some(ps) = self.in_request(id, tp) else {
            return;
        };
        ps.in_flight = None;
        ps.stopped = true;
        let marks = ps.marks.unwrap_or(Watermarks {
            high_watermark: -1,
            last_stable_offset: None,
            log_start_offset: None,
        });
        ps.chunks.push_back(Chunk {
            batches: VecDeque::new(),
            start_offset: ps.fetch_offset,
            next_offset: ps.fetch_offset,
            marks,
            bytes: 0,
            error: Some(ChunkError::Delivered(error)),
        });
        self.enqueue(tp);
    }

    fn enqueue(&mut self, tp: &TopicPartition) {
        if let Some(ps) = self.partitions.get_mut(tp) {
            ps.notify.notify_one();
            if !ps.queued {
                ps.queued = true;
                self.ready.push_back(tp.clone());
            }
        }
    }

    /// Applies a ListOffsets answer for `tp` in request `id`.
    pub(crate) fn reset_done(&mut self, id: u64, tp: &TopicPartition, offset: i64) {
        if let Some(ps) = self.in_request(id, tp) {
            ps.in_flight = None;
            if ps.reset.is_some() {
                ps.reset = None;
                ps.position = Some(offset);
                ps.fetch_offset = offset;
                ps.backoff.reset();
                tracing::debug!(partition = %tp, offset, "position reset");
            }
        }
    }

    /// Applies OFFSET_OUT_OF_RANGE for `tp` in request `id`: reset per policy (dropping what
    /// was prefetched) or stop with [`FetchError::OffsetOutOfRange`].
    pub(crate) fn out_of_range(&mut self, id: u64, tp: &TopicPartition) {
        let policy = self.config.auto_offset_reset;
        let epoch = self.epoch();
        let Some(ps) = self.in_request(id, tp) else {
            return;
        };
        let offset = ps.fetch_offset;
        let reset = match policy {
            OffsetReset::Earliest => ResetTo::Earliest,
            OffsetReset::Latest => ResetTo::Latest,
            OffsetReset::None => {
                tracing::warn!(partition = %tp, offset, "offset out of range, no reset policy");
                let partition = tp.clone();
                self.stop_with(id, tp, FetchError::OffsetOutOfRange { partition, offset });
                return;
            }
        };
        tracing::info!(partition = %tp, offset, ?reset, "offset out of range, resetting");
        ps.in_flight = None;
        ps.epoch = epoch;
        ps.reset = Some(reset);
        ps.position = None;
        let freed = std::mem::take(&mut ps.buffered);
        ps.chunks.clear();
        let queued = std::mem::take(&mut ps.queued);
        self.release(freed);
        if queued {
            self.ready.retain(|t| t != tp);
        }
    }

    /// Applies the data of `tp` from Fetch `id` asked at `offset` in epoch `epoch`; returns
    /// whether something was queued for the application.
    pub(crate) fn data(&mut self, id: u64, tp: &TopicPartition, epoch: u64, chunk: Chunk) -> bool {
        let Some(ps) = self.in_request(id, tp) else {
            return false;
        };
        ps.in_flight = None;
        if ps.epoch != epoch || ps.fetch_offset != chunk.start_offset || ps.reset.is_some() {
            return false;
        }
        ps.marks = Some(chunk.marks);
        ps.backoff.reset();
        ps.fetch_offset = chunk.next_offset.max(ps.fetch_offset);
        if chunk.batches.is_empty() && chunk.error.is_none() {
            // Nothing to hand out (no new data, or only control / aborted batches).
            if ps.chunks.is_empty() {
                let next = chunk.next_offset;
                ps.position = Some(ps.position.map_or(next, |p| p.max(next)));
                return false;
            }
        }
        if chunk.error.is_some() {
            ps.stopped = true;
        }
        let bytes = chunk.bytes;
        ps.buffered += bytes;
        ps.chunks.push_back(chunk);
        self.buffered_bytes += bytes;
        self.stats.peak_buffered_bytes = self.stats.peak_buffered_bytes.max(self.buffered_bytes);
        self.enqueue(tp);
        true
    }

    /// Snapshot of the counters.
    pub(crate) fn stats(&self) -> FetcherStats {
        FetcherStats {
            buffered_bytes: self.buffered_bytes,
            ..self.stats.clone()
        }
    }
}

/// The application-facing error for a chunk's fault.
fn chunk_error(tp: &TopicPartition, error: ChunkError) -> FetchError {
    match error {
        ChunkError::Corrupt { offset, source } => FetchError::Corrupt {
            partition: tp.clone(),
            offset,
            source,
        },
        ChunkError::NoProgress { offset, size } => FetchError::NoProgress {
            partition: tp.clone(),
            offset,
            size,
        },
        ChunkError::Delivered(error) => error,
    }
}
