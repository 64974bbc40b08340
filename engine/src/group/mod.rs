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
//!   fetcher's `auto_offset_reset` without a committed offset. `Revoked`: the partitions stop
//!   fetching, records already handed out get up to min(30 s, half the max poll interval) to
//!   be acked (skipped by `close()`), the acked offsets are committed (the tracker's forced
//!   commit), then the revocation is acknowledged. `Lost`: dropped without commit. `MaxPollExceeded`: a warning.
//! - [`GroupConsumer::next`] hands out records one at a time (only of partitions we own),
//!   recording each delivery in the offset tracker; [`GroupConsumer::ack_record`] (or
//!   [`GroupConsumer::ack`] by topic and partition) marks it processed (any order); the
//!   contiguous acked prefix is committed every `commit.interval` or `every` acks, before a
//!   revoke, on close and on [`GroupConsumer::commit`]. Each record carries its partition's
//!   tracker handle (looked up once per fetched batch), so delivering and acking it costs no
//!   partition lookup.
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
//! - `protocol`: member requests as `kafka-protocol` messages. `offsets`: OffsetFetch and
//!   OffsetCommit. `driver`: the driver task. `state`: what the handle and the task share.

pub mod config;
mod driver;
pub mod error;
mod offsets;
mod protocol;
pub mod record;
mod state;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mephisto_consumer_group::membership::{Member, MemberState};
use mephisto_consumer_group::offsets::{OffsetTracker, TrackError};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::fetcher::{FetchError, Fetcher};

pub use config::{AssignorKind, GroupConfig};
pub use error::GroupConsumerError;
pub use mephisto_consumer_group::membership::PartitionSet;
pub use record::ConsumedRecord;

use driver::Msg;
use state::{Listeners, Shared, State};

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
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group", &self.shared.config.member.group_id)
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

    /// A member of `config`'s group, not subscribed yet. Must be called inside a tokio
    /// runtime (it spawns the driver task and the fetcher there).
    ///
    /// Give each member its own [`Cluster`]: a broker handles one request per connection at
    /// a time, and a JoinGroup is held until the whole group joined, so two members sharing
    /// the coordinator connection would wait for each other until the request times out.
    pub fn new(cluster: Cluster, config: GroupConfig) -> Result<Self, GroupConsumerError> {
        let now = Instant::now();
        let member = Member::new(
            config.member.clone(),
            config.assignor.advertised(&config.standby),
            now,
        )?;
        let fetcher = Fetcher::new(cluster.clone(), config.fetcher.clone())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            cluster,
            fetcher,
            state: Mutex::new(State {
                member,
                tracker: OffsetTracker::new(config.commit.clone(), now),
                active: BTreeSet::new(),
                awaiting: BTreeMap::new(),
                assignment_token: 0,
                draining: VecDeque::new(),
                revoking: VecDeque::new(),
                closing: false,
                commit_in_flight: None,
                commit_waiters: Vec::new(),
                pending: VecDeque::new(),
                finished: None,
            }),
            config,
            listeners: Mutex::new(Listeners::default()),
            wake: Notify::new(),
            tx,
            done: watch::Sender::new(false),
        });
        let driver = tokio::spawn(driver::run(Arc::clone(&shared), rx));
        Ok(Self {
            shared,
            driver: Mutex::new(Some(driver)),
        })
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        &self.shared.config
    }

    /// Sets the topics to consume (joins, or rejoins on a change; empty leaves).
    pub fn subscribe<I, S>(&self, topics: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared.lock().member.subscribe(Instant::now(), topics);
        self.shared.wake.notify_one();
    }

    /// Sets the assignor user data sent in our subscription from the next JoinGroup on (for
    /// `mephisto-standby`: an encoded
    /// [`StandbySubscriptionData`](mephisto_consumer_group::assignor::StandbySubscriptionData)
    /// with the changelog offsets this member has applied). Does not rejoin by itself.
    pub fn set_user_data(&self, user_data: Option<bytes::Bytes>) {
        self.shared.lock().member.set_user_data(user_data);
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
        self.shared.lock().member.owned().clone()
    }

    /// Where the membership is.
    pub fn member_state(&self) -> MemberState {
        self.shared.lock().member.state()
    }

    /// Our member id and generation, once joined.
    pub fn generation(&self) -> Option<(String, i32)> {
        let st = self.shared.lock();
        st.member
            .generation()
            .map(|g| (st.member.member_id().to_owned(), g))
    }

    /// The last offset committed for `topic`-`partition` by this member (or its starting
    /// position), if it is ours.
    pub fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        self.shared
            .lock()
            .tracker
            .committed(&(topic.to_owned(), partition))
    }

    /// The next record of a partition we own, waiting for one. Counts as a poll for the max
    /// poll interval. Cancel-safe.
    pub async fn next(&self) -> Result<ConsumedRecord, GroupConsumerError> {
        let mut done = self.shared.done.subscribe();
        loop {
            if let Some(record) = self.try_next()? {
                return Ok(record);
            }
            let fetched = tokio::select! {
                fetched = tokio::time::timeout(POLL_SLICE, self.shared.fetcher.next_batch()) => fetched,
                _ = done.changed() => continue,
            };
            let batch = match fetched {
                Err(_) => continue,
                Ok(Err(FetchError::Closed)) => return Err(self.closed_error()),
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(batch)) => batch,
            };
            let mut st = self.shared.lock();
            let tp = (batch.topic.to_string(), batch.partition);
            if !st.active.contains(&tp) {
                continue;
            }
            // Looked up once per batch; the records carry it to `delivered_at`/`acked_at`.
            let Some(handle) = st.tracker.partition_handle(&tp) else {
                continue;
            };
            let records = batch.records().map_err(|e| {
                FetchError::Config(format!("undecodable batch of {}-{}: {e}", tp.0, tp.1))
            })?;
            for record in records {
                match record {
                    Ok(record) => st.pending.push_back(ConsumedRecord {
                        topic: Arc::clone(&batch.topic),
                        partition: batch.partition,
                        offset: record.offset(),
                        record,
                        handle,
                    }),
                    Err(e) => {
                        tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "invalid record: rest of the batch skipped");
                        break;
                    }
                }
            }
        }
    }

    /// A buffered record, without waiting.
    fn try_next(&self) -> Result<Option<ConsumedRecord>, GroupConsumerError> {
        let mut st = self.shared.lock();
        if let Some(result) = &st.finished {
            return Err(match result {
                Err(e) => e.clone().into(),
                Ok(()) => GroupConsumerError::Closed,
            });
        }
        let now = Instant::now();
        let was_waiting = st.member.state() == MemberState::Unjoined;
        st.member.record_poll(now);
        if was_waiting {
            self.shared.wake.notify_one();
        }
        // Pending records belong to active partitions: a revocation or loss drops them from
        // `pending` under this lock, and a handle of an assignment that is over is refused.
        while let Some(record) = st.pending.pop_front() {
            match st.tracker.delivered_at(record.handle, record.offset) {
                Ok(()) => return Ok(Some(record)),
                Err(TrackError::OutOfOrder { .. } | TrackError::StaleHandle) => continue,
                Err(e) => {
                    st.pending.push_front(record);
                    return Err(e.into());
                }
            }
        }
        Ok(None)
    }

    fn closed_error(&self) -> GroupConsumerError {
        match &self.shared.lock().finished {
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
        let result = self
            .shared
            .lock()
            .tracker
            .acked(&(topic.to_owned(), partition), offset);
        match result {
            Ok(new) => {
                if new {
                    self.shared.wake.notify_one();
                }
                Ok(new)
            }
            Err(TrackError::UnknownPartition { .. }) => {
                tracing::debug!(
                    topic,
                    partition,
                    offset,
                    "ack of a partition no longer ours"
                );
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Marks `record` processed (any order), by its partition handle: no partition lookup
    /// (the fast path of [`ack`](Self::ack)). `Ok(false)` for a repeated ack, or one for an
    /// assignment of the partition that is over (too late to count).
    pub fn ack_record(&self, record: &ConsumedRecord) -> Result<bool, GroupConsumerError> {
        let result = self
            .shared
            .lock()
            .tracker
            .acked_at(record.handle, record.offset);
        match result {
            Ok(new) => {
                if new {
                    self.shared.wake.notify_one();
                }
                Ok(new)
            }
            Err(TrackError::StaleHandle) => {
                tracing::debug!(
                    topic = %record.topic,
                    partition = record.partition,
                    offset = record.offset,
                    "ack of a partition no longer ours"
                );
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Commits every acked offset not committed yet through the offset tracker (the
    /// committable prefix of each partition, recorded as committed once answered), and
    /// waits for the answer. A commit that fails retriably (the coordinator moved or is
    /// unavailable, a load in progress, no answer) is retried after the coordinator is found
    /// again, within the request timeout; then [`GroupConsumerError::CommitTimeout`].
    /// Waits for a commit already in flight first. `Ok(())` at once when nothing is new.
    pub async fn commit(&self) -> Result<(), GroupConsumerError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .tx
            .send(Msg::CommitNow(reply))
            .map_err(|_| GroupConsumerError::Closed)?;
        answer.await.map_err(|_| GroupConsumerError::Closed)?
    }

    /// Commits the acked offsets of everything owned (as a revocation), leaves the group
    /// (dynamic members; static ones rely on the session timeout) and stops. Waits at most
    /// the session timeout plus the request timeout.
    pub async fn close(&self) -> Result<(), GroupConsumerError> {
        let mut done = self.shared.done.subscribe();
        {
            let mut st = self.shared.lock();
            st.closing = true;
            st.member.close(Instant::now());
        }
        self.shared.wake.notify_one();
        let limit = self.shared.config.member.session_timeout
            + self.shared.cluster.config().request_timeout;
        let waited = tokio::time::timeout(limit, done.wait_for(|d| *d)).await;
        let handle = self.driver.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            handle.abort();
        }
        self.shared.fetcher.close();
        if waited.is_err() {
            return Err(GroupConsumerError::CloseTimeout);
        }
        match &self.shared.lock().finished {
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
        self.shared.fetcher.close();
    }
}
