//! Building the Fetch and ListOffsets requests of one broker loop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::config::IsolationLevel;

/// One partition of a Fetch request.
#[derive(Debug, Clone)]
pub(crate) struct FetchTarget {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub max_bytes: i32,
    /// The partition's seek epoch when the request was planned.
    pub epoch: u64,
}

/// Request-wide Fetch settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchParams {
    pub max_wait: Duration,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub isolation: IsolationLevel,
}

/// Groups `(topic, item)` pairs by topic, keeping the first-seen order of topics.
fn by_topic<T>(items: impl IntoIterator<Item = (Arc<str>, T)>) -> Vec<(Arc<str>, Vec<T>)> {
    let mut order: Vec<(Arc<str>, Vec<T>)> = Vec::new();
    let mut index: BTreeMap<Arc<str>, usize> = BTreeMap::new();
    for (topic, item) in items {
        match index.get(&topic) {
            Some(&i) => {
                if let Some((_, list)) = order.get_mut(i) {
                    list.push(item);
                }
            }
            None => {
                index.insert(Arc::clone(&topic), order.len());
                order.push((topic, vec![item]));
            }
        }
    }
    order
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// A sessionless (full) Fetch request for `targets` at `version` (4 to 12: topics by name).
pub(crate) fn fetch_request(
    targets: &[FetchTarget],
    params: FetchParams,
    version: i16,
) -> FetchRequest {
    let max_wait_ms = i32::try_from(params.max_wait.as_millis()).unwrap_or(i32::MAX);
    let topics = by_topic(targets.iter().map(|t| {
        let partition = FetchPartition::default()
            .with_partition(t.partition)
            .with_fetch_offset(t.offset)
            .with_partition_max_bytes(t.max_bytes)
            .with_current_leader_epoch(if version >= 9 {
                t.leader_epoch.unwrap_or(-1)
            } else {
                -1
            });
        (Arc::clone(&t.topic), partition)
    }))
    .into_iter()
    .map(|(topic, partitions)| {
        FetchTopic::default()
            .with_topic(topic_name(&topic))
            .with_partitions(partitions)
    })
    .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(params.min_bytes)
        .with_max_bytes(params.max_bytes)
        .with_isolation_level(params.isolation.as_i8())
        // No fetch session (KIP-227): every request is a full one.
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// One partition of a ListOffsets request: -2 earliest, -1 latest.
#[derive(Debug, Clone)]
pub(crate) struct OffsetTarget {
    pub topic: Arc<str>,
    pub partition: i32,
    pub timestamp: i64,
    pub leader_epoch: Option<i32>,
}

/// A ListOffsets request for `targets` at `version` (1 to 9).
pub(crate) fn list_offsets_request(
    targets: &[OffsetTarget],
    isolation: IsolationLevel,
    version: i16,
) -> ListOffsetsRequest {
    let topics = by_topic(targets.iter().map(|t| {
        let p = ListOffsetsPartition::default()
            .with_partition_index(t.partition)
            .with_timestamp(t.timestamp);
        let p = if version >= 4 {
            p.with_current_leader_epoch(t.leader_epoch.unwrap_or(-1))
        } else {
            p
        };
        (Arc::clone(&t.topic), p)
    }))
    .into_iter()
    .map(|(topic, partitions)| {
        ListOffsetsTopic::default()
            .with_name(topic_name(&topic))
            .with_partitions(partitions)
    })
    .collect();
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    if version >= 2 {
        request.with_isolation_level(isolation.as_i8())
    } else {
        request
    }
}
