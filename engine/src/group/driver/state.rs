//! The driver's own state: the member, the offset tracker, the owned partitions with their
//! acks, and the rebalance and commit bookkeeping. Nothing here is shared with the handle:
//! the handle sees the [`Status`] published from it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use mephisto_consumer_group::membership::{GroupError, Member, PartitionSet};
use mephisto_consumer_group::offsets::{CommitId, OffsetTracker, PartitionHandle};
use tokio::sync::oneshot;

use crate::fetcher::TopicPartition;
use crate::group::acks::PartitionAcks;
use crate::group::error::GroupConsumerError;
use crate::group::shared::{Listener, Shared, Status};

/// A callback to run once a step is over.
pub(super) type Notice = (Listener, PartitionSet);

/// A partition whose position is known: assigned in the fetcher, tracked, with its acks.
pub(super) struct Owned {
    pub(super) handle: PartitionHandle,
    pub(super) acks: Arc<PartitionAcks>,
    /// The committable offset last reported to the tracker.
    pub(super) synced: i64,
}

/// A `commit().await` waiting for the tracker's requested commit.
pub(super) struct CommitWaiter {
    pub(super) reply: oneshot::Sender<Result<(), GroupConsumerError>>,
    /// When to give up (the request timeout after the call).
    pub(super) deadline: Instant,
    /// The commit that answers it once sent; `None` until then (and again while a
    /// retriable failure waits for its retry).
    pub(super) ticket: Option<CommitId>,
}

/// Everything the driver task owns.
pub(super) struct DriverState {
    pub(super) shared: Arc<Shared>,
    pub(super) member: Member,
    pub(super) tracker: OffsetTracker,
    /// Partitions assigned in the fetcher and the tracker (committed position known).
    pub(super) owned: BTreeMap<TopicPartition, Owned>,
    /// Assigned partitions waiting for their committed offsets (OffsetFetch), each with the
    /// token of the assignment it belongs to: a lookup answers only the assignment that
    /// started it (a partition revoked and assigned again needs a fresh lookup).
    pub(super) awaiting: BTreeMap<TopicPartition, u64>,
    /// Last token handed out.
    pub(super) assignment_token: u64,
    /// Revocations waiting for what is in processing to finish (or for the deadline), oldest
    /// first; then they go to `revoking`.
    pub(super) draining: VecDeque<(PartitionSet, Instant)>,
    /// Revocations waiting for their forced commit, oldest first.
    pub(super) revoking: VecDeque<PartitionSet>,
    /// Set by `close()`: revocations then skip the drain (the application is stopping).
    pub(super) closing: bool,
    /// The tracker's commit in flight.
    pub(super) commit_in_flight: Option<CommitId>,
    /// `commit().await` calls waiting for their commit.
    pub(super) commit_waiters: Vec<CommitWaiter>,
    /// Set once the member is closed or failed: the driver stops.
    pub(super) finished: Option<Result<(), GroupError>>,
    /// Acks counted into the tracker so far.
    pub(super) acks_seen: u64,
    /// The application's last poll passed to the member.
    pub(super) polled: Option<Instant>,
    /// Callbacks to run after the step.
    pub(super) notices: Vec<Notice>,
    /// Answers to `commit().await` calls, sent once the status they imply is published.
    pub(super) replies: Vec<Reply>,
}

/// An answer to a `commit().await`.
pub(super) type Reply = (
    oneshot::Sender<Result<(), GroupConsumerError>>,
    Result<(), GroupConsumerError>,
);

impl DriverState {
    pub(super) fn new(shared: Arc<Shared>, member: Member, tracker: OffsetTracker) -> Self {
        Self {
            shared,
            member,
            tracker,
            owned: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            assignment_token: 0,
            draining: VecDeque::new(),
            revoking: VecDeque::new(),
            closing: false,
            commit_in_flight: None,
            commit_waiters: Vec::new(),
            finished: None,
            acks_seen: 0,
            polled: None,
            notices: Vec::new(),
            replies: Vec::new(),
        }
    }

    /// Reports what the partitions' acks and the application's polls did since the last
    /// step to the tracker and the member.
    pub(super) fn sync(&mut self) {
        let total = self.shared.counter().total();
        self.tracker
            .count_acks(total.saturating_sub(self.acks_seen));
        self.acks_seen = total;
        for owned in self.owned.values_mut() {
            let committable = owned.acks.committable();
            if committable != owned.synced {
                // A stale handle means the tracker dropped the partition already.
                let _ = self.tracker.progress_at(owned.handle, committable);
                owned.synced = committable;
            }
        }
        if let Some(poll) = self.shared.last_poll() {
            if self.polled.is_none_or(|p| poll > p) {
                self.polled = Some(poll);
                self.member.record_poll(poll);
            }
        }
    }

    /// What the handle sees.
    pub(super) fn status(&self) -> Status {
        Status {
            member_state: self.member.state(),
            generation: self
                .member
                .generation()
                .map(|g| (self.member.member_id().to_owned(), g)),
            owned: self.member.owned().clone(),
            committed: self
                .owned
                .keys()
                .filter_map(|tp| Some((tp.clone(), self.tracker.committed(tp)?)))
                .collect(),
            finished: self.finished.clone(),
        }
    }

    /// Whether a commit can be sent now (stable generation and a known coordinator).
    pub(super) fn can_commit(&self) -> bool {
        self.member.commit_context().is_some() && self.member.coordinator().is_some()
    }
}
