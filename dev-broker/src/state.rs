//! The broker's shared state: topics and their partition logs, producer ids, consumer groups,
//! and the signal that wakes long-polling fetches. Everything sits behind one mutex; handlers
//! lock it for the duration of one request, never across an `.await`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use uuid::Uuid;

use crate::group::Groups;
use crate::log::{PartitionLog, Retention};
use crate::DevBrokerConfig;

/// The id this broker gives itself in Metadata and FindCoordinator.
pub const NODE_ID: i32 = 1;

/// The cluster id it reports.
pub const CLUSTER_ID: &str = "mephisto-dev-broker";

/// Longest legal topic name (Kafka's limit).
const MAX_TOPIC_NAME_LEN: usize = 249;

/// One topic.
#[derive(Debug)]
pub(crate) struct Topic {
    /// Topic id (Metadata v10+, CreateTopics v7, DeleteTopics v6).
    pub id: Uuid,
    /// Partition logs, indexed by partition number.
    pub partitions: Vec<PartitionLog>,
    /// How partitions shed data.
    pub retention: Retention,
    /// Whether batches are stamped with the log-append time (`message.timestamp.type`).
    pub log_append_time: bool,
}

impl Topic {
    /// The log of partition `index`, if it exists.
    pub fn partition(&self, index: i32) -> Option<&PartitionLog> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    /// The log of partition `index` for writing, if it exists.
    pub fn partition_mut(&mut self, index: i32) -> Option<&mut PartitionLog> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get_mut(i))
    }
}

/// Everything behind the lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Topics by name.
    pub topics: BTreeMap<String, Topic>,
    /// Consumer groups by id.
    pub groups: Groups,
    /// The next producer id InitProducerId hands out.
    pub next_producer_id: i64,
}

impl State {
    /// Creates `name` with `partitions` partitions (the caller validated both).
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        retention: Retention,
        log_append_time: bool,
    ) -> &Topic {
        let count = usize::try_from(partitions).unwrap_or(1).max(1);
        let mut id = Uuid::from_u128(fastrand::u128(..));
        while id.is_nil() {
            id = Uuid::from_u128(fastrand::u128(..));
        }
        let topic = Topic {
            id,
            partitions: (0..count).map(|_| PartitionLog::default()).collect(),
            retention,
            log_append_time,
        };
        self.topics.entry(name.to_owned()).or_insert(topic)
    }

    /// The name of the topic with id `id`.
    pub fn topic_name_by_id(&self, id: Uuid) -> Option<String> {
        self.topics
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(name, _)| name.clone())
    }
}

/// What every connection and the timer task share: the state behind its lock, the fetch wake-up
/// signal, the configuration. Public (hidden) only for the fuzz target.
#[doc(hidden)]
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    /// Bumped after every append and topic deletion; long-polling fetches wait on it.
    data_changed: watch::Sender<u64>,
    /// The configuration the broker was started with.
    pub(crate) config: DevBrokerConfig,
    /// The address advertised in Metadata and FindCoordinator.
    pub(crate) advertised: SocketAddr,
}

impl Shared {
    /// Shared state for a broker reachable at `advertised`.
    pub fn new(config: DevBrokerConfig, advertised: SocketAddr) -> Self {
        let (data_changed, _) = watch::channel(0);
        Self {
            state: Mutex::new(State {
                next_producer_id: 1000,
                ..State::default()
            }),
            data_changed,
            config,
            advertised,
        }
    }

    /// Locks the state; a panic while it was held cannot leave it half-updated in a way that
    /// matters more than stopping the broker would, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every topic, group and producer when there are more than `limit` topics or
    /// groups, or more than `limit * 256` partitions; whether it did. For fuzzing, which keeps one
    /// state across millions of inputs.
    #[doc(hidden)]
    pub fn reset_if_larger_than(&self, limit: usize) -> bool {
        let mut state = self.lock();
        let partitions: usize = state.topics.values().map(|t| t.partitions.len()).sum();
        if state.topics.len() > limit
            || state.groups.len() > limit
            || partitions > limit.saturating_mul(256)
        {
            *state = State {
                next_producer_id: state.next_producer_id,
                ..State::default()
            };
            return true;
        }
        false
    }

    /// Applies time-based retention to every partition (the timer task calls this).
    pub(crate) fn enforce_time_retention(&self, now_ms: i64) {
        let mut state = self.lock();
        for topic in state.topics.values_mut() {
            if topic.retention.ms.is_none() {
                continue;
            }
            let retention = topic.retention;
            for log in &mut topic.partitions {
                log.enforce_retention(&retention, now_ms);
            }
        }
    }

    /// Wakes long-polling fetches.
    pub(crate) fn notify_data(&self) {
        self.data_changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees the next [`notify_data`](Self::notify_data).
    pub(crate) fn subscribe_data(&self) -> watch::Receiver<u64> {
        self.data_changed.subscribe()
    }

    /// The advertised host as a protocol string.
    pub(crate) fn host(&self) -> StrBytes {
        StrBytes::from_string(self.advertised.ip().to_string())
    }

    /// The advertised port.
    pub(crate) fn port(&self) -> i32 {
        i32::from(self.advertised.port())
    }

    /// This broker's id.
    pub(crate) fn node_id(&self) -> BrokerId {
        BrokerId(NODE_ID)
    }
}

/// Why a topic name is illegal, if it is (Kafka's rules: 1 to 249 characters out of
/// `[a-zA-Z0-9._-]`, and not `.` or `..`).
pub(crate) fn invalid_topic_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("the topic name is empty")
    } else if name == "." || name == ".." {
        Some("the topic name cannot be '.' or '..'")
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some("the topic name is longer than 249 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        Some("the topic name may only contain ASCII alphanumerics, '.', '_' and '-'")
    } else {
        None
    }
}
