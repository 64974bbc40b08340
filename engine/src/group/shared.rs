//! What the [`GroupConsumer`](super::GroupConsumer) handle and its driver task share, and
//! nothing more: the messages to the driver, the [`Status`] the driver publishes, the acks of
//! the partitions delivering records now, the rebalance callbacks and the application's last
//! poll. The membership, the offset tracker and the rebalance bookkeeping belong to the
//! driver alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::OffsetCommitResponse;
use mephisto_consumer_group::membership::{GroupError, MemberState, PartitionSet, ResponseEvent};
use mephisto_consumer_group::offsets::CommitId;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::acks::{AckCounter, PartitionAcks};
use super::assigned::AssignedPartition;
use super::config::GroupConfig;
use super::error::GroupConsumerError;
use crate::cluster::Cluster;
use crate::error::EngineError;
use crate::fetcher::{Fetcher, TopicPartition};

/// A rebalance callback.
pub(crate) type Listener = Arc<dyn Fn(&PartitionSet) + Send + Sync>;

/// The three rebalance callbacks.
#[derive(Default)]
pub(crate) struct Listeners {
    pub(crate) assigned: Option<Listener>,
    pub(crate) revoked: Option<Listener>,
    pub(crate) lost: Option<Listener>,
}

/// What the handle and the driver's request tasks send the driver.
pub(crate) enum Msg {
    /// Set the topics (the handle's `subscribe`).
    Subscribe(Vec<String>),
    /// Set the assignor user data.
    UserData(Option<Bytes>),
    /// The application polled while the member waited for it.
    Polled,
    /// `commit().await`: commit every acked offset now.
    CommitNow(oneshot::Sender<Result<(), GroupConsumerError>>),
    /// Commit, leave and stop.
    Close,
    /// An answer to a member request.
    Response(ResponseEvent),
    /// A tracker commit finished.
    Committed {
        id: CommitId,
        generation: i32,
        result: Result<OffsetCommitResponse, EngineError>,
    },
    /// Committed positions of newly assigned partitions.
    Positions {
        /// The partitions looked up, with their assignment token.
        partitions: Vec<(TopicPartition, u64)>,
        result: Result<BTreeMap<TopicPartition, Option<i64>>, EngineError>,
    },
}

/// What the driver publishes after each step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Status {
    pub(crate) member_state: MemberState,
    /// Member id and generation, once joined.
    pub(crate) generation: Option<(String, i32)>,
    pub(crate) owned: PartitionSet,
    /// Last committed offset (or starting position) of each tracked partition.
    pub(crate) committed: BTreeMap<TopicPartition, i64>,
    /// Set once the member is closed or failed.
    pub(crate) finished: Option<Result<(), GroupError>>,
}

/// Shared between the handle, the driver and the request tasks; see the module docs.
pub(crate) struct Shared {
    cluster: Cluster,
    fetcher: Fetcher,
    config: GroupConfig,
    tx: mpsc::UnboundedSender<Msg>,
    status: watch::Sender<Status>,
    /// Acks of the partitions whose records are handed out now, by partition.
    active: Mutex<HashMap<TopicPartition, Arc<PartitionAcks>>>,
    listeners: Mutex<Listeners>,
    counter: Arc<AckCounter>,
    /// Wakes the driver (acks, polls, drained revocations).
    wake: Arc<Notify>,
    /// Partition mode: where assigned partitions go (dropped when the driver stops).
    partitions: Mutex<Option<mpsc::UnboundedSender<AssignedPartition>>>,
    partition_mode: bool,
    started: Instant,
    /// Milliseconds from `started` to the application's last poll.
    last_poll: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        cluster: Cluster,
        fetcher: Fetcher,
        config: GroupConfig,
        tx: mpsc::UnboundedSender<Msg>,
        status: Status,
        partitions: Option<mpsc::UnboundedSender<AssignedPartition>>,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let counter = Arc::new(AckCounter::new(config.commit.every, Arc::clone(&wake)));
        Self {
            cluster,
            fetcher,
            config,
            tx,
            status: watch::Sender::new(status),
            active: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Listeners::default()),
            counter,
            wake,
            partition_mode: partitions.is_some(),
            partitions: Mutex::new(partitions),
            started: Instant::now(),
            last_poll: AtomicU64::new(0),
        }
    }

    pub(crate) fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub(crate) fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    pub(crate) fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Sends the driver a message; `false` once it stopped.
    pub(crate) fn send(&self, msg: Msg) -> bool {
        self.tx.send(msg).is_ok()
    }

    pub(crate) fn status(&self) -> watch::Ref<'_, Status> {
        self.status.borrow()
    }

    pub(crate) fn subscribe_status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Publishes `status` if it changed.
    pub(crate) fn publish(&self, status: Status) {
        self.status.send_if_modified(|s| {
            if *s == status {
                false
            } else {
                *s = status;
                true
            }
        });
    }

    pub(crate) fn active(&self) -> MutexGuard<'_, HashMap<TopicPartition, Arc<PartitionAcks>>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The acks of `partition` if its records are handed out now.
    pub(crate) fn acks_of(&self, partition: &TopicPartition) -> Option<Arc<PartitionAcks>> {
        self.active().get(partition).cloned()
    }

    pub(crate) fn listeners(&self) -> MutexGuard<'_, Listeners> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn counter(&self) -> &Arc<AckCounter> {
        &self.counter
    }

    pub(crate) fn wake(&self) -> &Notify {
        &self.wake
    }

    /// Partition mode: hands an assigned partition to the application; `false` if nobody
    /// takes them (record mode, or the receiver is gone).
    pub(crate) fn hand_out(&self, partition: AssignedPartition) -> bool {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.send(partition).is_ok())
    }

    /// No more partitions are handed out: the application's `PartitionEvents` end.
    pub(crate) fn close_partitions(&self) {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Whether records are handed out per partition ([`AssignedPartition`]s).
    pub(crate) fn partition_mode(&self) -> bool {
        self.partition_mode
    }

    /// The application polled: restarts the max poll interval (and lets a member waiting
    /// for a poll join).
    pub(crate) fn record_poll(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_poll.store(ms.max(1), Ordering::Relaxed);
        if self.status.borrow().member_state == MemberState::Unjoined {
            let _ = self.tx.send(Msg::Polled);
        }
    }

    /// When the application last polled, if it did.
    pub(crate) fn last_poll(&self) -> Option<Instant> {
        match self.last_poll.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.started + Duration::from_millis(ms)),
        }
    }
}
