//! OffsetCommit (from the group's member, or a simple commit with generation -1) and
//! OffsetFetch (the listed partitions or every committed one; one group before v8, a batch of
//! groups from v8).

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

use super::group::{Committed, Group};
use super::{lock, Shared};

/// Longest commit metadata kept (Kafka's `offset.metadata.max.bytes`).
const MAX_METADATA: usize = 4096;

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
    if let Some(listed) = listed {
        return listed;
    }
    let mut all: Vec<(TopicName, Vec<i32>)> = Vec::new();
    for (topic, partition) in group.map(|g| g.offsets.keys()).into_iter().flatten() {
        match all.last_mut() {
            Some((name, parts)) if name.as_str() == topic => parts.push(*partition),
            _ => all.push((
                TopicName(StrBytes::from_string(topic.clone())),
                vec![*partition],
            )),
        }
    }
    all
}

impl Shared {
    /// OffsetCommit: stored for known partitions when the committer is the group's member
    /// (or the commit is a simple one, generation -1).
    pub(super) fn offset_commit(&self, request: &OffsetCommitRequest) -> OffsetCommitResponse {
        // Partition counts first: the topic and group locks are never held together.
        let counts: Vec<Option<usize>> = request
            .topics
            .iter()
            .map(|t| self.partition_count(t.name.as_str()))
            .collect();
        let mut groups = lock(&self.groups);
        let mut group = if request.group_id.is_empty() {
            Err(ResponseError::InvalidGroupId)
        } else {
            groups
                .entry(request.group_id.as_str())
                .ok_or(ResponseError::CoordinatorNotAvailable)
        };
        let denied = match &group {
            Ok(g) if request.generation_id_or_member_epoch >= 0 => g
                .check(
                    request.member_id.as_str(),
                    request.generation_id_or_member_epoch,
                )
                .err(),
            _ => None,
        };
        if let Some(e) = denied {
            group = Err(e);
        }
        let mut topics = Vec::with_capacity(request.topics.len());
        for (topic, count) in request.topics.iter().zip(counts) {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let known = usize::try_from(p.partition_index)
                    .ok()
                    .zip(count)
                    .is_some_and(|(i, n)| i < n);
                let error = match &mut group {
                    Err(e) => e.code(),
                    Ok(_) if !known => ResponseError::UnknownTopicOrPartition.code(),
                    Ok(_)
                        if p.committed_metadata
                            .as_ref()
                            .is_some_and(|m| m.len() > MAX_METADATA) =>
                    {
                        ResponseError::OffsetMetadataTooLarge.code()
                    }
                    Ok(g) => {
                        g.offsets.insert(
                            (topic.name.to_string(), p.partition_index),
                            Committed {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata: p.committed_metadata.clone(),
                            },
                        );
                        0
                    }
                };
                partitions.push(
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error),
                );
            }
            topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// OffsetFetch.
    pub(super) fn offset_fetch(
        &self,
        request: &OffsetFetchRequest,
        version: i16,
    ) -> OffsetFetchResponse {
        let groups = lock(&self.groups);
        if version < 8 {
            let group = groups.get(request.group_id.as_str());
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
        let answers = request
            .groups
            .iter()
            .map(|g| {
                let group = groups.get(g.group_id.as_str());
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
        OffsetFetchResponse::default().with_groups(answers)
    }
}
