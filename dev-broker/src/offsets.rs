//! OffsetCommit (checked against the group's generation and members; simple commits with
//! generation -1 into groups without members) and OffsetFetch (listed partitions or all, single
//! group before v8, batched groups from v8).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::group::{check_commit, Committed, Group};
use crate::state::{Shared, State};

/// Longest commit metadata kept (Kafka's `offset.metadata.max.bytes`).
const MAX_METADATA: usize = 4096;

/// OffsetCommit.
pub(crate) fn offset_commit(
    shared: &Shared,
    request: &OffsetCommitRequest,
) -> OffsetCommitResponse {
    let mut state = shared.lock();
    let State { topics, groups, .. } = &mut *state;
    let group_error = if request.group_id.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else {
        let group = groups.entry(request.group_id.to_string()).or_default();
        check_commit(
            group,
            request.member_id.as_str(),
            request.group_instance_id.as_ref(),
            request.generation_id_or_member_epoch,
        )
    };
    let mut responses = Vec::new();
    for topic in &request.topics {
        let name = topic.name.to_string();
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            let error = match group_error {
                Err(e) => e.code(),
                Ok(()) => {
                    if topics
                        .get(&name)
                        .and_then(|t| t.partition(p.partition_index))
                        .is_none()
                    {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else if p
                        .committed_metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > MAX_METADATA)
                    {
                        ResponseError::OffsetMetadataTooLarge.code()
                    } else if let Some(group) = groups.get_mut(request.group_id.as_str()) {
                        group.offsets.insert(
                            (name.clone(), p.partition_index),
                            Committed {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata: p.committed_metadata.clone(),
                            },
                        );
                        0
                    } else {
                        ResponseError::CoordinatorNotAvailable.code()
                    }
                }
            };
            partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error),
            );
        }
        responses.push(
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    OffsetCommitResponse::default().with_topics(responses)
}

/// `(offset, leader epoch, metadata)` committed for a partition, or Kafka's "none" answer.
fn lookup(group: Option<&Group>, topic: &str, partition: i32) -> (i64, i32, Option<StrBytes>) {
    match group.and_then(|g| g.offsets.get(&(topic.to_owned(), partition))) {
        Some(c) => (
            c.offset,
            c.leader_epoch,
            Some(c.metadata.clone().unwrap_or_default()),
        ),
        None => (-1, -1, Some(StrBytes::default())),
    }
}

/// The partitions to answer for: the listed ones, or every committed one.
fn wanted(
    group: Option<&Group>,
    listed: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Vec<(TopicName, Vec<i32>)> {
    match listed {
        Some(listed) => listed,
        None => {
            let mut all: Vec<(TopicName, Vec<i32>)> = Vec::new();
            for (topic, partition) in group
                .map(|g| g.offsets.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                match all.last_mut() {
                    Some((name, parts)) if name.as_str() == topic => parts.push(partition),
                    _ => all.push((TopicName(StrBytes::from_string(topic)), vec![partition])),
                }
            }
            all
        }
    }
}

/// OffsetFetch.
pub(crate) fn offset_fetch(
    shared: &Shared,
    request: &OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let state = shared.lock();
    if version < 8 {
        let group = state.groups.get(request.group_id.as_str());
        let listed = request.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                .collect()
        });
        let topics = wanted(group, listed)
            .into_iter()
            .map(|(name, parts)| {
                let partitions = parts
                    .into_iter()
                    .map(|p| {
                        let (offset, epoch, metadata) = lookup(group, name.as_str(), p);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(metadata)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    let groups = request
        .groups
        .iter()
        .map(|g| {
            let group = state.groups.get(g.group_id.as_str());
            let listed = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                    .collect()
            });
            let topics = wanted(group, listed)
                .into_iter()
                .map(|(name, parts)| {
                    let partitions = parts
                        .into_iter()
                        .map(|p| {
                            let (offset, epoch, metadata) = lookup(group, name.as_str(), p);
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(metadata)
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(name)
                        .with_partitions(partitions)
                })
                .collect();
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id.clone())
                .with_topics(topics)
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}
