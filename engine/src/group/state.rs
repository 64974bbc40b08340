//! What the application side and the driver task share: the member, the offset tracker and
//! the bookkeeping between them, behind one mutex that is never held across an await.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use mephisto_consumer_group::assignor::TopicPartition;
use mephisto_consumer_group::membership::{Member, PartitionSet};
use mephisto_consumer_group::offsets::{CommitId, OffsetTracker};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::config::GroupConfig;
use super::driver::Msg;
use super::error::GroupConsumerError;
use super::record::ConsumedRecord;
use crate::cluster::Cluster;
use crate::fetcher::Fetcher;

/// A rebalance callback.
pub(crate) type Listener = Arc<dyn Fn(&PartitionSet) + Send + Sync>;

/// The three callbacks.
#[derive(Default)]
pub(crate) struct Listeners {
    pub assigned: Option<Listener>,
    pub revoked: Option<Listener>,
    pub lost: Option<Listener>,
}

/// Mutable state.
pub(crate) struct State {
    pub member: Member,
    pub tracker: OffsetTracker,
    /// Partitions assigned in the fetcher and the tracker (committed position known).
    pub active: BTreeSet<TopicPartition>,
    /// Assigned partitions waiting for their committed offsets (OffsetFetch), each with the
    /// token of the assignment it belongs to: a lookup answers only the assignment that
    /// started it (a partition revoked and assigned again needs a fresh lookup).
    pub awaiting: BTreeMap<TopicPartition, u64>,
    /// Last token handed out.
    pub assignment_token: u64,
    /// Revocations waiting for the application to ack what it was handed of them (or for
    /// the deadline), oldest first; then they go to `revoking`.
    pub draining: VecDeque<(PartitionSet, Instant)>,
    /// Revocations waiting for their forced commit, oldest first.
    pub revoking: VecDeque<PartitionSet>,
    /// Set by `close()`: revocations then skip the drain (the application is stopping).
    pub closing: bool,
    /// The tracker's commit in flight.
    pub commit_in_flight: Option<CommitId>,
    /// `commit().await` calls waiting for their commit.
    pub commit_waiters: Vec<CommitWaiter>,
    /// Records of the current batch not yet handed out.
    pub pending: VecDeque<ConsumedRecord>,
    /// Set once the member is closed or failed: the driver stops.
    pub finished: Option<Result<(), mephisto_consumer_group::membership::GroupError>>,
}

/// A `commit().await` waiting for the tracker's requested commit.
pub(crate) struct CommitWaiter {
    pub reply: oneshot::Sender<Result<(), GroupConsumerError>>,
    /// When to give up (the request timeout after the call).
    pub deadline: Instant,
    /// The commit that answers it once sent; `None` until then (and again while a
    /// retriable failure waits for its retry).
    pub ticket: Option<CommitId>,
}

/// Shared between the handle, the driver and the request tasks.
pub(crate) struct Shared {
    pub cluster: Cluster,
    pub fetcher: Fetcher,
    pub config: GroupConfig,
    pub state: Mutex<State>,
    pub listeners: Mutex<Listeners>,
    /// Wakes the driver (acks, polls, subscribe, close).
    pub wake: Notify,
    /// Answers for the driver.
    pub tx: mpsc::UnboundedSender<Msg>,
    /// `true` once the driver stopped.
    pub done: watch::Sender<bool>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn listeners(&self) -> MutexGuard<'_, Listeners> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }
}
