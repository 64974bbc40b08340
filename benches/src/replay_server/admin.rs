//! The metadata side: ApiVersions, Metadata (auto-creating sink topics when the request allows
//! it), CreateTopics, FindCoordinator (itself), InitProducerId and ListOffsets.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use mephisto_wire::versions::{supported, MEPHISTO_APIS};

use super::topics::{CreateError, TopicState, Topics};
use super::{lock, Shared, APIS};

/// The highest version of `api` advertised (Mephisto's).
pub(super) fn max_version(api: ApiKey) -> i16 {
    supported(api).map_or(0, |s| s.max)
}

/// The APIs served, each with Mephisto's version range.
pub(super) fn api_versions() -> ApiVersionsResponse {
    let keys = MEPHISTO_APIS
        .iter()
        .filter(|s| APIS.contains(&s.api))
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.api as i16)
                .with_min_version(s.min)
                .with_max_version(s.max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(keys)
}

/// The one broker's host.
pub(super) fn host() -> StrBytes {
    StrBytes::from_static_str("127.0.0.1")
}

fn name(topic: &TopicState) -> TopicName {
    TopicName(StrBytes::from_string(topic.name.clone()))
}

/// A topic's Metadata entry; fields a version lacks stay at their defaults.
fn described(topic: &TopicState, version: i16) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions() as i32)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(1))
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![BrokerId(1)])
                .with_isr_nodes(vec![BrokerId(1)])
        })
        .collect();
    let entry = MetadataResponseTopic::default()
        .with_name(Some(name(topic)))
        .with_partitions(partitions);
    if version >= 10 {
        entry.with_topic_id(topic.id)
    } else {
        entry
    }
}

fn create_error(error: CreateError) -> ResponseError {
    match error {
        CreateError::Exists => ResponseError::TopicAlreadyExists,
        CreateError::InvalidName => ResponseError::InvalidTopicException,
        CreateError::InvalidPartitions => ResponseError::InvalidPartitions,
        CreateError::TooMany => ResponseError::PolicyViolation,
    }
}

impl Shared {
    /// Metadata: every topic, or the ones asked for (created with the input's partition count
    /// when missing and the request allows auto-creation, as `auto.create.topics.enable`).
    pub(super) fn metadata(&self, request: &MetadataRequest, version: i16) -> MetadataResponse {
        let mut topics = lock(&self.topics);
        let partitions = self.config.partitions.max(1) as i32;
        let answer = match &request.topics {
            Some(asked) if !(asked.is_empty() && version == 0) => asked
                .iter()
                .map(|t| {
                    let Some(wanted) = &t.name else {
                        // Asked by topic id (v10+): ids are not looked up.
                        return MetadataResponseTopic::default()
                            .with_topic_id(t.topic_id)
                            .with_error_code(ResponseError::UnknownTopicId.code());
                    };
                    let found = if version < 4 || request.allow_auto_topic_creation {
                        topics.find_or_create(wanted, partitions)
                    } else {
                        topics.find(wanted)
                    };
                    match found.and_then(|i| topics.get(i)) {
                        Some(topic) => described(topic, version),
                        None => MetadataResponseTopic::default()
                            .with_name(Some(wanted.clone()))
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                    }
                })
                .collect(),
            _ => topics.all().map(|t| described(t, version)).collect(),
        };
        let mut response = MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(host())
                .with_port(i32::from(self.port))])
            .with_topics(answer);
        if version >= 1 {
            response = response.with_controller_id(BrokerId(1));
        }
        if version >= 2 {
            response = response.with_cluster_id(Some(StrBytes::from_static_str("mephisto-replay")));
        }
        response
    }

    /// CreateTopics: a sink topic per entry (replication factor 1 or -1; configs ignored).
    pub(super) fn create_topics(
        &self,
        request: &CreateTopicsRequest,
        version: i16,
    ) -> CreateTopicsResponse {
        let mut topics = lock(&self.topics);
        let default_partitions = self.config.partitions.max(1) as i32;
        let results = request
            .topics
            .iter()
            .map(|t| {
                let result = CreatableTopicResult::default().with_name(t.name.clone());
                let partitions = match t.num_partitions {
                    -1 if t.assignments.is_empty() => default_partitions,
                    -1 => i32::try_from(t.assignments.len()).unwrap_or(i32::MAX),
                    n => n,
                };
                let created = if ![-1, 1].contains(&t.replication_factor) {
                    Err(ResponseError::InvalidReplicationFactor)
                } else if request.validate_only {
                    Ok(None)
                } else {
                    topics
                        .create(t.name.as_str(), partitions)
                        .map(Some)
                        .map_err(create_error)
                };
                match created {
                    Err(e) => {
                        let result = result.with_error_code(e.code());
                        if version >= 1 {
                            result.with_error_message(Some(StrBytes::from_string(e.to_string())))
                        } else {
                            result
                        }
                    }
                    Ok(index) => {
                        let id = index
                            .and_then(|i| topics.get(i))
                            .map_or(uuid::Uuid::nil(), |s| s.id);
                        let result = if version >= 7 {
                            result.with_topic_id(id)
                        } else {
                            result
                        };
                        if version >= 5 {
                            result
                                .with_num_partitions(partitions)
                                .with_replication_factor(1)
                        } else {
                            result
                        }
                    }
                }
            })
            .collect();
        CreateTopicsResponse::default().with_topics(results)
    }

    /// FindCoordinator: this server. Fields that do not exist at `version` must stay at their
    /// defaults, or encoding fails.
    pub(super) fn find_coordinator(
        &self,
        request: &FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        let port = i32::from(self.port);
        if version < 4 {
            return FindCoordinatorResponse::default()
                .with_node_id(BrokerId(1))
                .with_host(host())
                .with_port(port);
        }
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(1))
                    .with_host(host())
                    .with_port(port)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    }

    /// ListOffsets: earliest 0, latest (and max timestamp) the log end: the replayed log's for
    /// the input topic, the produced records' for a sink topic.
    pub(super) fn list_offsets(
        &self,
        request: &ListOffsetsRequest,
        version: i16,
    ) -> ListOffsetsResponse {
        // The leader epoch exists from v4 on.
        let epoch = if version >= 4 { 0 } else { -1 };
        let topics = lock(&self.topics);
        let answers = request
            .topics
            .iter()
            .map(|topic| {
                let index = topics.find(topic.name.as_str());
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let answer = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1);
                        match index.and_then(|i| self.log_end(&topics, i, p.partition_index)) {
                            None => answer
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                            Some(end) => {
                                let offset = match p.timestamp {
                                    -1 => end,
                                    -3 => (end - 1).max(0),
                                    _ => 0,
                                };
                                answer.with_offset(offset).with_leader_epoch(epoch)
                            }
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(answers)
    }

    /// The end offset consumers see for `partition` of topic `index`: the replayed log's for
    /// the input topic (index 0), the produced records' for a sink topic.
    pub(super) fn log_end(&self, topics: &Topics, index: usize, partition: i32) -> Option<i64> {
        let p = usize::try_from(partition).ok()?;
        if index == 0 {
            return self.logs.get(p).map(|l| l.end_offset);
        }
        topics.get(index)?.log_end.get(p).copied()
    }

    /// The partition count of topic `name`, if it exists.
    pub(super) fn partition_count(&self, name: &str) -> Option<usize> {
        let topics = lock(&self.topics);
        topics
            .find(name)
            .and_then(|i| topics.get(i))
            .map(TopicState::partitions)
    }
}
