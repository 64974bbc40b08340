//! [`GroupConsumer`]: a consumer-group member over the engine, driving the sans-IO
//! [`Member`] and [`OffsetTracker`] of `mephisto-consumer-group`, with the [`Fetcher`] for
//! records.
//!
//! ```no_run
//! # async fn demo(cluster: mephisto_engine::Cluster) -> Result<(), Box<dyn std::error::Error>> {
//! use mephisto_engine::group::{AssignorKind, GroupConfig, GroupConsumer};
//!
//! let config = GroupConfig::new("my-group").with_assignor(AssignorKind::CooperativeSticky);
//! let consumer = GroupConsumer::new(cluster, config)?;
//! consumer.subscribe(["events"]);
//! for _ in 0..1000 {
//!     let r = consumer.next().await?;
//!     println!("{}-{}@{}", r.topic, r.partition, r.offset);
//!     consumer.ack_record(&r)?;
//! }
//! consumer.close().await?;
//! # Ok(()) }
//! ```
//!
//! # How it works
//! - A **driver task** (`driver`) owns the membership loop: it sends each request the member
//!   produces (FindCoordinator to any broker; JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//!   OffsetCommit and OffsetFetch to the coordinator on its `Group` connection, so fetches
//!   never delay heartbeats; JoinGroup and SyncGroup with a timeout of the rebalance timeout plus the
//!   request timeout) at the version negotiated with that broker (`protocol`), feeds answers
//!   and timeouts back, and answers the leader's metadata lookup with partition counts.
//!   Heartbeats depend only on this task, never on the application.
//! - `Assigned`: the committed offsets are looked up (OffsetFetch, retried until they come or
//!   the partitions go away) and the partitions assigned in the fetcher there, or per the
//!   fetcher's `auto_offset_reset` without a committed offset, each with fresh
//!   [`PartitionAcks`]. `Revoked`: the partitions stop fetching, records in processing get up
//!   to min(30 s, half the max poll interval) to be acked (skipped by `close()`), the acked
//!   offsets are committed (the tracker's forced commit), then the revocation is acknowledged.
//!   `Lost`: dropped without commit. `MaxPollExceeded`: a warning.
//! - Each assigned partition's [`PartitionAcks`] holds its window of delivered offsets: an
//!   ack locks that partition's window only and publishes the committable offset through an
//!   atomic, which the driver reads (every `every` acks, every `commit.interval`, before a
//!   revoke, on close and on [`GroupConsumer::commit`]) and commits.
//! - **Record mode** ([`GroupConsumer::new`]): [`GroupConsumer::next`] hands out records one
//!   at a time (only of partitions we own), recording each delivery in its partition's acks;
//!   [`GroupConsumer::ack_record`] (or [`GroupConsumer::ack`] by topic and partition) marks it
//!   processed (any order). Each record carries its partition's acks, so delivering and
//!   acking it costs no partition lookup.
//! - **Partition mode** ([`GroupConsumer::new_partitioned`]): each assigned partition is
//!   handed out as an [`AssignedPartition`] (its batches and its acks) through
//!   [`PartitionEvents`], for a task of its own: the agents runtime's partition tasks.
//!
//! Records handed out but not acked when their partition is revoked are not committed: the
//! next owner gets them again. On a current-thread runtime, `next` followed by `ack` with no
//! await in between is atomic with respect to rebalances.
//!
//! As leader, the metadata answer carries partition counts and, for an assignor that weighs
//! lag (`mephisto-standby`), the end offsets (ListOffsets latest) of the changelog partitions
//! the members' user data names.
//!
//! Not implemented: pattern subscriptions, KIP-848 (`ConsumerGroupHeartbeat`), committed leader epochs and metadata.
//!
//! # Layout
//! - [`config`]: [`GroupConfig`], [`AssignorKind`]. [`error`](mod@error):
//!   [`GroupConsumerError`]. [`record`]: [`ConsumedRecord`].
//! - [`acks`]: [`PartitionAcks`], [`Ownership`]. [`assigned`]: [`AssignedPartition`],
//!   [`PartitionEvents`].
//! - `protocol`: member requests as `kafka-protocol` messages. `offsets`: OffsetFetch and
//!   OffsetCommit. `shared`: the messages and status between the handle and the driver.
//!   `driver`: the driver task and the state it owns.

pub mod acks;
pub mod assigned;
pub mod config;
mod driver;
pub mod error;
mod offsets;
mod protocol;
pub mod record;
mod shared;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mephisto_consumer_group::membership::Member;
use mephisto_consumer_group::offsets::{OffsetTracker, TrackError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::fetcher::{FetchError, Fetcher, TopicPartition};

pub use acks::{Ownership, PartitionAcks};
pub use assigned::{AssignedPartition, PartitionEvents};
pub use config::{AssignorKind, GroupConfig};
pub use error::GroupConsumerError;
pub use mephisto_consumer_group::membership::{MemberState, PartitionSet};
pub use mephisto_consumer_group::offsets::MAX_CONSUMERS;
pub use record::ConsumedRecord;

use shared::{Msg, Shared, Status};

/// How long `next` waits for data before recording a poll again (the application is
/// waiting, not stuck: the max poll interval must not expire).
const POLL_SLICE: Duration = Duration::from_millis(500);

/// A consumer-group member; see the [module docs](self).
///
/// All methods take `&self`. Dropping it stops its tasks without leaving the group (the
/// coordinator evicts it after the session timeout); call [`close`](Self::close) to commit
/// and leave.
pub struct GroupConsumer {
    shared: Arc<Shared>,
    driver: Mutex<Option<JoinHandle<()>>>,
    /// Record mode: records of the current batch not yet handed out.
    pending: Mutex<VecDeque<ConsumedRecord>>,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group", &self.shared.config().member.group_id)
            .finish_non_exhaustive()
    }
}

impl GroupConsumer {
    /// A member of `config`'s group over a cluster handle of its own (see
    /// [`new`](Self::new) for why members must not share one).
    pub async fn connect(
        client: ClientConfig,
        config: GroupConfig,
    ) -> Result<Self, GroupConsumerError> {
        let cluster = Cluster::connect(client).await?;
        Self::new(cluster, config)
    }

    /// A record-mode member of `config`'s group, not subscribed yet: read with
    /// [`next`](Self::next). Must be called inside a tokio runtime (it spawns the driver task
    /// and the fetcher there).
    ///
    /// Give each member its own [`Cluster`]: a broker handles one request per connection at
    /// a time, and a JoinGroup is held until the whole group joined, so two members sharing
    /// the coordinator connection would wait for each other until the request times out.
    pub fn new(cluster: Cluster, config: GroupConfig) -> Result<Self, GroupConsumerError> {
        Self::start(cluster, config, None)
    }

    /// A partition-mode member: each partition assigned to it comes out of the returned
    /// [`PartitionEvents`] as an [`AssignedPartition`], to be read by a task of its own;
    /// [`next`](Self::next) is refused. Otherwise as [`new`](Self::new).
    pub fn new_partitioned(
        cluster: Cluster,
        config: GroupConfig,
    ) -> Result<(Self, PartitionEvents), GroupConsumerError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let consumer = Self::start(cluster, config, Some(tx))?;
        Ok((consumer, PartitionEvents::new(rx)))
    }

    fn start(
        cluster: Cluster,
        config: GroupConfig,
        partitions: Option<mpsc::UnboundedSender<AssignedPartition>>,
    ) -> Result<Self, GroupConsumerError> {
        let now = Instant::now();
        let member = Member::new(
            config.member.clone(),
            config.assignor.advertised(&config.standby),
            now,
        )?;
        let tracker = OffsetTracker::new(config.commit.clone(), now);
        let fetcher = Fetcher::new(cluster.clone(), config.fetcher.clone())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Status {
            member_state: member.state(),
            generation: None,
            owned: PartitionSet::new(),
            committed: Default::default(),
            finished: None,
        };
        let shared = Arc::new(Shared::new(
            cluster, fetcher, config, tx, status, partitions,
        ));
        let driver = tokio::spawn(driver::run(Arc::clone(&shared), member, tracker, rx));
        Ok(Self {
            shared,
            driver: Mutex::new(Some(driver)),
            pending: Mutex::new(VecDeque::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        self.shared.config()
    }

    /// Sets the topics to consume (joins, or rejoins on a change; empty leaves).
    pub fn subscribe<I, S>(&self, topics: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared
            .send(Msg::Subscribe(topics.into_iter().map(Into::into).collect()));
    }

    /// Sets the assignor user data sent in our subscription from the next JoinGroup on (for
    /// `mephisto-standby`: an encoded
    /// [`StandbySubscriptionData`](mephisto_consumer_group::assignor::StandbySubscriptionData)
    /// with the changelog offsets this member has applied). Does not rejoin by itself.
    pub fn set_user_data(&self, user_data: Option<bytes::Bytes>) {
        self.shared.send(Msg::UserData(user_data));
    }

    /// Calls `f` with the partitions newly ours after each rebalance (before their committed
    /// offsets are looked up). Runs on the driver task: keep it short.
    pub fn on_assigned(&self, f: impl Fn(&PartitionSet) + Send + Sync + 'static) {
        self.shared.listeners().assigned = Some(Arc::new(f));
    }

    /// Calls `f` with partitions given up cleanly (before their acked offsets are committed).
    pub fn on_revoked(&self, f: impl Fn(&PartitionSet) + Send + Sync + 'static) {
        self.shared.listeners().revoked = Some(Arc::new(f));
    }

    /// Calls `f` with partitions lost without commit (session timeout, fenced, ...).
    pub fn on_lost(&self, f: impl Fn(&PartitionSet) + Send + Sync + 'static) {
        self.shared.listeners().lost = Some(Arc::new(f));
    }

    /// The partitions the member owns (some may still be looking up their position).
    pub fn assignment(&self) -> PartitionSet {
        self.shared.status().owned.clone()
    }

    /// Where the membership is.
    pub fn member_state(&self) -> MemberState {
        self.shared.status().member_state
    }

    /// Our member id and generation, once joined.
    pub fn generation(&self) -> Option<(String, i32)> {
        self.shared.status().generation.clone()
    }

    /// The last offset committed for `topic`-`partition` by this member (or its starting
    /// position), if it is ours.
    pub fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        self.shared
            .status()
            .committed
            .get(&TopicPartition::new(topic, partition))
            .copied()
    }

    /// Waits until the membership ends: `Ok` after [`close`](Self::close), the error when it
    /// failed for good (fenced static member, unsupported broker, ...).
    pub async fn finished(&self) -> Result<(), GroupConsumerError> {
        let mut status = self.shared.subscribe_status();
        let result = match status.wait_for(|s| s.finished.is_some()).await {
            Ok(s) => s.finished.clone(),
            Err(_) => None,
        };
        match result {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Records that the application is making progress (restarts the max poll interval):
    /// [`next`](Self::next) does it; a partition-mode application calls it while its
    /// partition tasks make progress.
    pub fn record_poll(&self) {
        self.shared.record_poll();
    }

    fn pending(&self) -> MutexGuard<'_, VecDeque<ConsumedRecord>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next record of a partition we own, waiting for one. Counts as a poll for the max
    /// poll interval. Cancel-safe. Record mode only.
    pub async fn next(&self) -> Result<ConsumedRecord, GroupConsumerError> {
        if self.shared.partition_mode() {
            return Err(GroupConsumerError::PartitionMode);
        }
        let mut status = self.shared.subscribe_status();
        loop {
            if let Some(record) = self.try_next()? {
                return Ok(record);
            }
            let fetched = tokio::select! {
                fetched = tokio::time::timeout(POLL_SLICE, self.shared.fetcher().next_batch()) => fetched,
                _ = status.changed() => continue,
            };
            let batch = match fetched {
                Err(_) => continue,
                Ok(Err(FetchError::Closed)) => return Err(self.closed_error()),
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(batch)) => batch,
            };
            // Looked up once per batch; the records carry it to `deliver`/`ack`.
            let tp = TopicPartition::new(Arc::clone(&batch.topic), batch.partition);
            let Some(acks) = self.shared.acks_of(&tp) else {
                continue;
            };
            let records = batch
                .records()
                .map_err(|e| FetchError::Config(format!("undecodable batch of {tp}: {e}")))?;
            let mut pending = self.pending();
            for record in records {
                match record {
                    Ok(record) => pending.push_back(ConsumedRecord {
                        topic: Arc::clone(&batch.topic),
                        partition: batch.partition,
                        offset: record.offset(),
                        record,
                        acks: Arc::clone(&acks),
                    }),
                    Err(e) => {
                        tracing::warn!(partition = %tp, error = %e, "invalid record: rest of the batch skipped");
                        break;
                    }
                }
            }
        }
    }

    /// A buffered record, without waiting.
    fn try_next(&self) -> Result<Option<ConsumedRecord>, GroupConsumerError> {
        if let Some(result) = &self.shared.status().finished {
            return Err(match result {
                Err(e) => e.clone().into(),
                Ok(()) => GroupConsumerError::Closed,
            });
        }
        self.shared.record_poll();
        let mut pending = self.pending();
        // Records of partitions no longer ours are dropped here; acks of an assignment that
        // is over count for nothing.
        while let Some(record) = pending.pop_front() {
            if !record.acks.is_owned() {
                continue;
            }
            match record.acks.deliver(record.offset) {
                Ok(()) => return Ok(Some(record)),
                Err(TrackError::OutOfOrder { .. }) => continue,
                Err(e) => {
                    pending.push_front(record);
                    return Err(e.into());
                }
            }
        }
        Ok(None)
    }

    fn closed_error(&self) -> GroupConsumerError {
        match &self.shared.status().finished {
            Some(Err(e)) => e.clone().into(),
            _ => GroupConsumerError::Closed,
        }
    }

    /// Marks the record at `offset` of `topic`-`partition` processed (any order). `Ok(false)`
    /// for a repeated ack, or one for a partition no longer ours (too late to count).
    pub fn ack(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<bool, GroupConsumerError> {
        let Some(acks) = self.shared.acks_of(&TopicPartition::new(topic, partition)) else {
            tracing::debug!(
                topic,
                partition,
                offset,
                "ack of a partition no longer ours"
            );
            return Ok(false);
        };
        Ok(acks.ack(offset)?)
    }

    /// Marks `record` processed (any order), through the acks it carries: no partition
    /// lookup (the fast path of [`ack`](Self::ack)). `Ok(false)` for a repeated ack, or one
    /// for an assignment of the partition that is over (too late to count).
    pub fn ack_record(&self, record: &ConsumedRecord) -> Result<bool, GroupConsumerError> {
        if !record.acks.is_owned() {
            tracing::debug!(
                topic = %record.topic,
                partition = record.partition,
                offset = record.offset,
                "ack of a partition no longer ours"
            );
        }
        Ok(record.acks.ack(record.offset)?)
    }

    /// Commits every acked offset not committed yet through the offset tracker (the
    /// committable prefix of each partition, recorded as committed once answered), and
    /// waits for the answer. A commit that fails retriably (the coordinator moved or is
    /// unavailable, a load in progress, no answer) is retried after the coordinator is found
    /// again, within the request timeout; then [`GroupConsumerError::CommitTimeout`].
    /// Waits for a commit already in flight first. `Ok(())` at once when nothing is new.
    pub async fn commit(&self) -> Result<(), GroupConsumerError> {
        let (reply, answer) = oneshot::channel();
        if !self.shared.send(Msg::CommitNow(reply)) {
            return Err(GroupConsumerError::Closed);
        }
        answer.await.map_err(|_| GroupConsumerError::Closed)?
    }

    /// Commits the acked offsets of everything owned (as a revocation), leaves the group
    /// (dynamic members; static ones rely on the session timeout) and stops. Waits at most
    /// the session timeout plus the request timeout.
    pub async fn close(&self) -> Result<(), GroupConsumerError> {
        let mut status = self.shared.subscribe_status();
        self.shared.send(Msg::Close);
        let limit = self.shared.config().member.session_timeout
            + self.shared.cluster().config().request_timeout;
        let driver = self.driver.lock().unwrap_or_else(|p| p.into_inner()).take();
        let waited = tokio::time::timeout(limit, async {
            let _ = status.wait_for(|s| s.finished.is_some()).await;
            if let Some(driver) = driver {
                let _ = driver.await;
            }
        })
        .await;
        self.shared.fetcher().close();
        if waited.is_err() {
            return Err(GroupConsumerError::CloseTimeout);
        }
        match &self.shared.status().finished {
            Some(Err(e)) => Err(e.clone().into()),
            _ => Ok(()),
        }
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        if let Some(handle) = self.driver.lock().unwrap_or_else(|p| p.into_inner()).take() {
            handle.abort();
        }
        self.shared.fetcher().close();
    }
}
