//! OffsetFetch (committed positions of newly assigned partitions) and OffsetCommit, on the
//! coordinator's `Group` connection.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{BrokerId, GroupId, OffsetCommitResponse, TopicName};
use mephisto_consumer_group::membership::CommitContext;

use super::protocol::s;
use crate::cluster::{Cluster, Purpose};
use crate::error::EngineError;
use crate::fetcher::TopicPartition;

/// Partitions grouped by topic.
fn by_topic<'a>(
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) -> BTreeMap<&'a str, Vec<i32>> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        topics.entry(&tp.topic).or_default().push(tp.partition);
    }
    topics
}

/// The committed offsets of `partitions` (`None`: nothing committed). Errors (a group-level
/// or any partition-level error code, e.g. UNSTABLE_OFFSET_COMMIT) fail the whole lookup;
/// the caller retries.
pub(crate) async fn fetch_committed(
    cluster: &Cluster,
    coordinator: BrokerId,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, Option<i64>>, EngineError> {
    let topics = by_topic(partitions);
    let response = cluster
        .send(coordinator, Purpose::Group, |version| {
            let mut r = OffsetFetchRequest::default();
            if version >= 7 {
                r.require_stable = true;
            }
            if version >= 8 {
                let mut g = OffsetFetchRequestGroup::default();
                g.group_id = GroupId(s(group));
                g.topics = Some(
                    topics
                        .iter()
                        .map(|(name, parts)| {
                            let mut t = OffsetFetchRequestTopics::default();
                            t.name = TopicName(s(name));
                            t.partition_indexes = parts.clone();
                            t
                        })
                        .collect(),
                );
                r.groups = vec![g];
            } else {
                r.group_id = GroupId(s(group));
                r.topics = Some(
                    topics
                        .iter()
                        .map(|(name, parts)| {
                            let mut t = OffsetFetchRequestTopic::default();
                            t.name = TopicName(s(name));
                            t.partition_indexes = parts.clone();
                            t
                        })
                        .collect(),
                );
            }
            r
        })
        .await?;
    let body = response.body;
    let mut found: Vec<(TopicPartition, i64, i16)> = Vec::new();
    let mut group_code = body.error_code;
    if response.version >= 8 {
        for g in &body.groups {
            if g.error_code != 0 {
                group_code = g.error_code;
            }
            for t in &g.topics {
                for p in &t.partitions {
                    found.push((
                        TopicPartition::new(t.name.0.as_str(), p.partition_index),
                        p.committed_offset,
                        p.error_code,
                    ));
                }
            }
        }
    } else {
        for t in &body.topics {
            for p in &t.partitions {
                found.push((
                    TopicPartition::new(t.name.0.as_str(), p.partition_index),
                    p.committed_offset,
                    p.error_code,
                ));
            }
        }
    }
    check(group_code, group)?;
    let mut out: BTreeMap<TopicPartition, Option<i64>> =
        partitions.iter().map(|tp| (tp.clone(), None)).collect();
    for (tp, offset, code) in found {
        check(code, &tp.to_string())?;
        if let Some(slot) = out.get_mut(&tp) {
            *slot = (offset >= 0).then_some(offset);
        }
    }
    Ok(out)
}

fn check(code: i16, resource: &str) -> Result<(), EngineError> {
    EngineError::check_code(
        kafka_protocol::messages::ApiKey::OffsetFetch,
        || Some(resource.to_owned()),
        code,
        None,
    )
}

/// Commits `offsets` (next offset to read) with the member's generation and ids.
pub(crate) async fn commit(
    cluster: &Cluster,
    coordinator: BrokerId,
    group: &str,
    context: &CommitContext,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<OffsetCommitResponse, EngineError> {
    let mut topics: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (tp, offset) in offsets {
        topics
            .entry(&tp.topic)
            .or_default()
            .push((tp.partition, *offset));
    }
    let response = cluster
        .send(coordinator, Purpose::Group, |version| {
            let mut r = OffsetCommitRequest::default();
            r.group_id = GroupId(s(group));
            r.generation_id_or_member_epoch = context.generation_id;
            r.member_id = s(&context.member_id);
            if version >= 7 {
                r.group_instance_id = context.group_instance_id.as_deref().map(s);
            }
            r.topics = topics
                .iter()
                .map(|(name, parts)| {
                    let mut t = OffsetCommitRequestTopic::default();
                    t.name = TopicName(s(name));
                    t.partitions = parts
                        .iter()
                        .map(|(partition, offset)| {
                            let mut p = OffsetCommitRequestPartition::default();
                            p.partition_index = *partition;
                            p.committed_offset = *offset;
                            p
                        })
                        .collect();
                    t
                })
                .collect();
            r
        })
        .await?;
    Ok(response.body)
}

/// The first error of a commit response that concerns the membership, if any.
pub(crate) fn group_error(response: &OffsetCommitResponse) -> Option<ResponseError> {
    mephisto_consumer_group::offsets::commit_response_errors(response)
        .into_iter()
        .find_map(|(_, e)| e)
}
