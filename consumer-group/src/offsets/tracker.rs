//! [`OffsetTracker`]: the partitions we own, their windows, and the commit policy as pure
//! decisions (time passed in).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::OffsetCommitResponse;

use super::commit_error::{classify_commit_error, CommitErrorKind};
use super::config::CommitConfig;
use super::error::TrackError;
use super::window::PartitionWindow;
use crate::topic_partition::TopicPartition;

/// Identifies one commit; hand it back with the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(pub u64);

/// A commit to send (OffsetCommit with the member's
/// [`CommitContext`](crate::membership::CommitContext)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a commit must be sent and its outcome reported"]
pub struct OffsetsToCommit {
    /// Id to report the outcome with.
    pub id: CommitId,
    /// Next offset to read, per partition; only partitions whose offset advanced.
    pub offsets: BTreeMap<TopicPartition, i64>,
    /// Whether this commit must complete before partitions are revoked (send it at once and
    /// wait for it; the member sends no JoinGroup/LeaveGroup until revocations are done).
    pub forced: bool,
}

/// What a finished commit changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The commit id was not the one in flight: nothing changed.
    pub stale: bool,
    /// Offsets now committed.
    pub committed: BTreeMap<TopicPartition, i64>,
    /// Partitions whose offset was not committed, and why.
    pub failed: Vec<(TopicPartition, CommitErrorKind)>,
}

#[derive(Debug, Clone)]
struct Tracked {
    window: PartitionWindow,
    committed: i64,
    revoking: bool,
}

/// A partition's place in the tracker, for the per-record fast path
/// ([`OffsetTracker::delivered_at`], [`OffsetTracker::acked_at`]): an index into the
/// tracker's slots, no topic name to compare or hash.
///
/// Get one with [`OffsetTracker::partition_handle`] once per partition (or per fetched batch)
/// and keep it with the records. A handle is valid for one assignment of its partition: once
/// the partition is lost, dropped after its revocation, or assigned again, the old handle is
/// refused with [`TrackError::StaleHandle`] (acks of an earlier assignment never count
/// in a later one). Handles of one tracker mean nothing to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartitionHandle {
    slot: u32,
    epoch: u32,
}

/// One slot of the tracker: a partition of the current assignment, or free.
#[derive(Debug, Clone)]
struct Slot {
    /// Bumped every time the slot is (re)used: handles carry it.
    epoch: u32,
    tracked: Option<Tracked>,
}

#[derive(Debug, Clone)]
struct InFlight {
    id: CommitId,
    offsets: BTreeMap<TopicPartition, i64>,
    covers: BTreeSet<TopicPartition>,
    /// Sent for a [`OffsetTracker::request_commit`]: retried after a retriable failure.
    requested: bool,
}

/// Offsets of the partitions we own, and when to commit them.
///
/// # Driver contract
/// - [`assign`](Self::assign) each assigned partition at its fetch position;
///   [`delivered`](Self::delivered) each record handed to the application, in offset order;
///   [`acked`](Self::acked) when processing finished (any order). On the per-record path,
///   take [`partition_handle`](Self::partition_handle) once per partition (or fetched batch)
///   and use [`delivered_at`](Self::delivered_at) and [`acked_at`](Self::acked_at).
/// - For a synchronous commit outside the policy: [`request_commit`](Self::request_commit),
///   then poll as below; [`cancel_commit_request`](Self::cancel_commit_request) if the caller
///   stops waiting.
/// - After inputs and at [`poll_timeout`](Self::poll_timeout): [`poll_commit`](Self::poll_commit);
///   send what it returns and report the result with
///   [`handle_commit_response`](Self::handle_commit_response) /
///   [`commit_succeeded`](Self::commit_succeeded) / [`commit_failed`](Self::commit_failed).
///   One commit is in flight at a time.
/// - On `Revoked`: [`revoke`](Self::revoke), then keep polling commits; once
///   [`settled`](Self::settled) is true for those partitions (committed, nothing to commit,
///   or given up) acknowledge the revocation to the member. On `Lost`: [`lose`](Self::lose).
///   On close: [`revoke_all`](Self::revoke_all).
#[derive(Debug, Clone)]
pub struct OffsetTracker {
    config: CommitConfig,
    /// Every tracked partition, in order, with its slot.
    partitions: BTreeMap<TopicPartition, u32>,
    /// The partitions' state, indexed by [`PartitionHandle`].
    slots: Vec<Slot>,
    /// Free slots, reused first.
    free: Vec<u32>,
    acks_since_commit: u64,
    interval_start: Instant,
    dirty: bool,
    in_flight: Option<InFlight>,
    forced_since: Option<Instant>,
    retry_at: Option<Instant>,
    /// A commit was asked for outside the policy ([`OffsetTracker::request_commit`]).
    requested: bool,
    next_id: u64,
}

impl OffsetTracker {
    /// An empty tracker; `now` starts the first commit interval.
    pub fn new(config: CommitConfig, now: Instant) -> Self {
        Self {
            config,
            partitions: BTreeMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            acks_since_commit: 0,
            interval_start: now,
            dirty: false,
            in_flight: None,
            forced_since: None,
            retry_at: None,
            requested: false,
            next_id: 0,
        }
    }

    /// Starts (or restarts) tracking `tp` at `position`, the next offset to read (the
    /// committed offset from OffsetFetch, or where the reset policy put us). Nothing is
    /// committed for `tp` until it advances past `position`.
    ///
    /// Handles of an earlier assignment of `tp` stop working.
    pub fn assign(&mut self, tp: TopicPartition, position: i64) {
        let tracked = Tracked {
            window: PartitionWindow::new(position, self.config.max_outstanding.max(1)),
            committed: position,
            revoking: false,
        };
        let slot = match self.partitions.get(&tp) {
            Some(&slot) => slot,
            None => {
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        let slot = u32::try_from(self.slots.len())
                            .expect("fewer than 2^32 partitions tracked");
                        self.slots.push(Slot {
                            epoch: 0,
                            tracked: None,
                        });
                        slot
                    }
                };
                self.partitions.insert(tp, slot);
                slot
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.epoch = entry.epoch.wrapping_add(1);
        entry.tracked = Some(tracked);
    }

    /// The handle of `tp` in its current assignment, for [`delivered_at`](Self::delivered_at)
    /// and [`acked_at`](Self::acked_at); `None` if `tp` is not tracked.
    pub fn partition_handle(&self, tp: &TopicPartition) -> Option<PartitionHandle> {
        let &slot = self.partitions.get(tp)?;
        Some(PartitionHandle {
            slot,
            epoch: self.slots[slot as usize].epoch,
        })
    }

    /// Records that the record at `offset` of `tp` was handed to the application.
    pub fn delivered(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), TrackError> {
        self.tracked_mut(tp)?.window.delivered(offset)?;
        self.dirty = true;
        Ok(())
    }

    /// [`delivered`](Self::delivered) by handle: no partition lookup.
    pub fn delivered_at(&mut self, handle: PartitionHandle, offset: i64) -> Result<(), TrackError> {
        self.tracked_at(handle)?.window.delivered(offset)?;
        self.dirty = true;
        Ok(())
    }

    /// Records that the record at `offset` of `tp` was processed. `Ok(false)` for a
    /// repeated or already committed ack.
    pub fn acked(&mut self, tp: &TopicPartition, offset: i64) -> Result<bool, TrackError> {
        let new = self.tracked_mut(tp)?.window.acked(offset)?;
        self.count_ack(new);
        Ok(new)
    }

    /// [`acked`](Self::acked) by handle: an index and an O(1) window update for dense
    /// offsets, no partition lookup. The per-record path of the engine.
    #[inline]
    pub fn acked_at(&mut self, handle: PartitionHandle, offset: i64) -> Result<bool, TrackError> {
        let new = self.tracked_at(handle)?.window.acked(offset)?;
        self.count_ack(new);
        Ok(new)
    }

    /// Records progress made outside the tracker, for a partition whose per-offset window is
    /// kept by whoever processes it (the engine's partition acks): its processed prefix now
    /// ends at `committable`. Nothing must be [delivered](Self::delivered_at) to such a
    /// partition. Returns whether the committable offset moved.
    pub fn progress_at(
        &mut self,
        handle: PartitionHandle,
        committable: i64,
    ) -> Result<bool, TrackError> {
        let window = &mut self.tracked_at(handle)?.window;
        let before = window.committable();
        window.advance_to(committable);
        let moved = window.committable() > before;
        if moved {
            self.dirty = true;
        }
        Ok(moved)
    }

    /// Counts `acks` acks made outside the tracker (see [`progress_at`](Self::progress_at))
    /// towards the commit policy's `every`.
    pub fn count_acks(&mut self, acks: u64) {
        if acks > 0 {
            self.acks_since_commit = self.acks_since_commit.saturating_add(acks);
            self.dirty = true;
        }
    }

    #[inline]
    fn count_ack(&mut self, new: bool) {
        if new {
            self.acks_since_commit = self.acks_since_commit.saturating_add(1);
            self.dirty = true;
        }
    }

    /// The offset that would be committed for `tp` now.
    pub fn committable(&self, tp: &TopicPartition) -> Option<i64> {
        self.tracked(tp).map(|t| t.window.committable())
    }

    /// The last offset committed for `tp` (or its starting position).
    pub fn committed(&self, tp: &TopicPartition) -> Option<i64> {
        self.tracked(tp).map(|t| t.committed)
    }

    /// Outstanding window entries of `tp` (at most `max_outstanding`).
    pub fn outstanding(&self, tp: &TopicPartition) -> Option<usize> {
        self.tracked(tp).map(|t| t.window.len())
    }

    /// Whether `tp` is tracked (assigned, and not yet dropped after a revoke or loss).
    pub fn is_tracked(&self, tp: &TopicPartition) -> bool {
        self.partitions.contains_key(tp)
    }

    /// Marks `partitions` as revoked: a forced commit is due, after which they are dropped.
    pub fn revoke<'a>(
        &mut self,
        now: Instant,
        partitions: impl IntoIterator<Item = &'a TopicPartition>,
    ) {
        let mut any = false;
        for tp in partitions {
            if let Ok(t) = self.tracked_mut(tp) {
                t.revoking = true;
                any = true;
            }
        }
        if any {
            self.forced_since.get_or_insert(now);
        }
    }

    /// Revokes every tracked partition (close).
    pub fn revoke_all(&mut self, now: Instant) {
        let all: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        self.revoke(now, all.iter());
    }

    /// Drops `partitions` without committing (they were lost).
    pub fn lose<'a>(&mut self, partitions: impl IntoIterator<Item = &'a TopicPartition>) {
        for tp in partitions {
            if let Some(slot) = self.partitions.remove(tp) {
                self.release(slot);
            }
        }
        self.update_forced();
    }

    /// Whether none of `partitions` still waits for its forced commit.
    pub fn settled<'a>(&self, partitions: impl IntoIterator<Item = &'a TopicPartition>) -> bool {
        partitions
            .into_iter()
            .all(|tp| self.tracked(tp).is_none_or(|t| !t.revoking))
    }

    /// Asks for a commit of every acked offset not committed yet, outside the policy (the
    /// application's synchronous `commit()`): the next [`poll_commit`](Self::poll_commit)
    /// returns one (after the commit in flight, if any), or settles the request with nothing
    /// to commit. If that commit fails retriably (for example the coordinator moved), the
    /// request stands again and the commit is retried after `retry_backoff`.
    /// [`commit_requested`](Self::commit_requested) tells whether it is still waiting for
    /// that poll.
    pub fn request_commit(&mut self) {
        self.requested = true;
    }

    /// Withdraws a [`request_commit`](Self::request_commit) nobody waits for any more (the
    /// caller gave up): a requested commit in flight is not retried after a failure, and the
    /// policy alone decides the next commit (what is left to commit stays due at the next
    /// interval or count).
    pub fn cancel_commit_request(&mut self) {
        self.requested = false;
        if let Some(in_flight) = &mut self.in_flight {
            in_flight.requested = false;
        }
        if self.forced_since.is_none() {
            self.retry_at = None;
        }
    }

    /// Whether a [`request_commit`](Self::request_commit) has not been turned into a commit
    /// (or found nothing to commit) yet.
    pub fn commit_requested(&self) -> bool {
        self.requested
    }

    /// Whether some tracked partition has acked offsets beyond its committed one (a commit
    /// would carry something; a commit in flight does not count as committed until answered).
    pub fn has_uncommitted(&self) -> bool {
        self.iter_tracked()
            .any(|(_, t)| t.window.committable() > t.committed)
    }

    /// The commit to send now, if the policy says so: a forced commit is pending, a commit
    /// was requested, `every` acks arrived, or `interval` passed with progress. Only advanced
    /// offsets are included; `None` if nothing advanced (a pending forced commit or a
    /// request then settles at once).
    pub fn poll_commit(&mut self, now: Instant) -> Option<OffsetsToCommit> {
        if self.in_flight.is_some() {
            return None;
        }
        if let Some(since) = self.forced_since {
            if since
                .checked_add(self.config.forced_timeout)
                .is_some_and(|give_up| now >= give_up)
            {
                tracing::warn!("forced commit timed out: revoked partitions given up");
                self.drop_revoking(|_| true);
                self.retry_at = None;
            }
        }
        if (self.forced_since.is_some() || self.requested)
            && self.retry_at.is_some_and(|at| now < at)
        {
            return None;
        }
        let forced = self.forced_since.is_some();
        let due = forced
            || self.requested
            || self.acks_since_commit >= self.config.every.max(1)
            || (self.dirty && self.interval_deadline().is_some_and(|d| now >= d));
        if !due {
            return None;
        }
        self.interval_start = now;
        self.acks_since_commit = 0;
        self.dirty = false;
        self.retry_at = None;
        let requested = std::mem::take(&mut self.requested);
        let offsets: BTreeMap<TopicPartition, i64> = self
            .iter_tracked()
            .filter(|(_, t)| t.window.committable() > t.committed)
            .map(|(tp, t)| (tp.clone(), t.window.committable()))
            .collect();
        let covers: BTreeSet<TopicPartition> = self
            .iter_tracked()
            .filter(|(_, t)| t.revoking)
            .map(|(tp, _)| tp.clone())
            .collect();
        if offsets.is_empty() {
            // Nothing to commit: revoked partitions are settled.
            self.drop_revoking(|_| true);
            return None;
        }
        self.next_id += 1;
        let id = CommitId(self.next_id);
        self.in_flight = Some(InFlight {
            id,
            offsets: offsets.clone(),
            covers,
            requested,
        });
        Some(OffsetsToCommit {
            id,
            offsets,
            forced,
        })
    }

    /// When [`poll_commit`](Self::poll_commit) must next be called, if anything waits on time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        if let Some(since) = self.forced_since {
            let at = self.retry_at.unwrap_or(since);
            let give_up = since.checked_add(self.config.forced_timeout);
            return Some(give_up.map_or(at, |g| at.min(g)));
        }
        if self.requested {
            return Some(self.retry_at.unwrap_or(self.interval_start));
        }
        self.dirty.then(|| self.interval_deadline()).flatten()
    }

    /// Commit `id` succeeded for all its partitions.
    pub fn commit_succeeded(&mut self, now: Instant, id: CommitId) -> CommitOutcome {
        self.complete(now, id, |_| None)
    }

    /// Commit `id` failed as a whole (no response: pass
    /// [`CommitErrorKind::CoordinatorMoved`]; a top-level error: its classification).
    pub fn commit_failed(
        &mut self,
        now: Instant,
        id: CommitId,
        kind: CommitErrorKind,
    ) -> CommitOutcome {
        self.complete(now, id, |_| Some(kind))
    }

    /// Commit `id` was answered: applies each partition's result. Partitions missing from
    /// the response count as retriable failures.
    pub fn handle_commit_response(
        &mut self,
        now: Instant,
        id: CommitId,
        response: &OffsetCommitResponse,
    ) -> CommitOutcome {
        let mut results: BTreeMap<TopicPartition, Option<ResponseError>> = BTreeMap::new();
        for (tp, error) in commit_response_errors(response) {
            results.insert(tp, error);
        }
        self.complete(now, id, |tp| match results.get(tp) {
            Some(error) => error.map(classify_commit_error),
            None => Some(CommitErrorKind::Retriable),
        })
    }

    fn complete(
        &mut self,
        now: Instant,
        id: CommitId,
        result: impl Fn(&TopicPartition) -> Option<CommitErrorKind>,
    ) -> CommitOutcome {
        let Some(in_flight) = self.in_flight.take_if(|f| f.id == id) else {
            return CommitOutcome {
                stale: true,
                ..CommitOutcome::default()
            };
        };
        let mut outcome = CommitOutcome::default();
        let mut retry = BTreeSet::new();
        for (tp, offset) in &in_flight.offsets {
            match result(tp) {
                None => {
                    if let Ok(t) = self.tracked_mut(tp) {
                        t.committed = t.committed.max(*offset);
                    }
                    outcome.committed.insert(tp.clone(), *offset);
                }
                Some(kind) => {
                    if kind.is_retriable() {
                        retry.insert(tp.clone());
                    }
                    outcome.failed.push((tp.clone(), kind));
                }
            }
        }
        if !outcome.failed.is_empty() {
            // What failed is still to commit at the next trigger.
            self.dirty = true;
        }
        // Revoked partitions this commit covered are settled unless a retry may still
        // commit them.
        self.drop_revoking(|tp| in_flight.covers.contains(tp) && !retry.contains(tp));
        if in_flight.requested && !retry.is_empty() {
            // A requested commit is retried (after the backoff) until it succeeds or fails
            // for good.
            self.requested = true;
        }
        if (self.forced_since.is_some() || self.requested) && !retry.is_empty() {
            self.retry_at = now.checked_add(self.config.retry_backoff);
        }
        outcome
    }

    /// Drops revoking partitions matching `which`, and clears the forced flag if none is left.
    fn drop_revoking(&mut self, which: impl Fn(&TopicPartition) -> bool) {
        let dropped: Vec<u32> = self
            .partitions
            .iter()
            .filter(|(tp, &slot)| {
                self.slots[slot as usize]
                    .tracked
                    .as_ref()
                    .is_some_and(|t| t.revoking)
                    && which(tp)
            })
            .map(|(_, &slot)| slot)
            .collect();
        if !dropped.is_empty() {
            self.partitions.retain(|_, slot| !dropped.contains(slot));
            for slot in dropped {
                self.release(slot);
            }
        }
        self.update_forced();
    }

    /// Frees `slot` (its handles stop working).
    fn release(&mut self, slot: u32) {
        let entry = &mut self.slots[slot as usize];
        entry.tracked = None;
        self.free.push(slot);
    }

    /// Tracked partitions in order.
    fn iter_tracked(&self) -> impl Iterator<Item = (&TopicPartition, &Tracked)> {
        self.partitions
            .iter()
            .filter_map(|(tp, &slot)| self.slots[slot as usize].tracked.as_ref().map(|t| (tp, t)))
    }

    fn tracked(&self, tp: &TopicPartition) -> Option<&Tracked> {
        let &slot = self.partitions.get(tp)?;
        self.slots[slot as usize].tracked.as_ref()
    }

    /// End of the current commit interval (`None`: never, for an interval too large to add).
    fn interval_deadline(&self) -> Option<Instant> {
        self.interval_start.checked_add(self.config.interval)
    }

    fn update_forced(&mut self) {
        if !self
            .slots
            .iter()
            .any(|s| s.tracked.as_ref().is_some_and(|t| t.revoking))
        {
            self.forced_since = None;
            self.retry_at = None;
        }
    }

    fn tracked_mut(&mut self, tp: &TopicPartition) -> Result<&mut Tracked, TrackError> {
        let unknown = || TrackError::UnknownPartition {
            topic: tp.topic.to_string(),
            partition: tp.partition,
        };
        let &slot = self.partitions.get(tp).ok_or_else(unknown)?;
        self.slots[slot as usize]
            .tracked
            .as_mut()
            .ok_or_else(unknown)
    }

    #[inline]
    fn tracked_at(&mut self, handle: PartitionHandle) -> Result<&mut Tracked, TrackError> {
        match self.slots.get_mut(handle.slot as usize) {
            Some(Slot {
                epoch,
                tracked: Some(tracked),
                ..
            }) if *epoch == handle.epoch => Ok(tracked),
            _ => Err(TrackError::StaleHandle),
        }
    }
}

/// Every partition of an OffsetCommit response with its error (`None` when committed).
pub fn commit_response_errors(
    response: &OffsetCommitResponse,
) -> Vec<(TopicPartition, Option<ResponseError>)> {
    response
        .topics
        .iter()
        .flat_map(|topic| {
            let name: Arc<str> = Arc::from(topic.name.0.as_str());
            topic.partitions.iter().map(move |p| {
                (
                    TopicPartition::new(Arc::clone(&name), p.partition_index),
                    ResponseError::try_from_code(p.error_code),
                )
            })
        })
        .collect()
}
