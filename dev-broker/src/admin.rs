//! Cluster and topic administration: Metadata (with auto-creation), CreateTopics, DeleteTopics,
//! FindCoordinator (always this broker), InitProducerId (idempotent producers only) and
//! DescribeConfigs (topics and this broker).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::log::Retention;
use crate::state::{invalid_topic_name, Shared, State, Topic, CLUSTER_ID};

/// Largest partition count a topic may have (bounds what one request can allocate).
const MAX_PARTITIONS: i32 = 10_000;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Metadata: this broker, and the requested topics (all when `topics` is null, or empty at v0),
/// auto-creating unknown ones when the request allows it.
pub(crate) fn metadata(
    shared: &Shared,
    request: &MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let mut state = shared.lock();
    let auto_create = version < 4 || request.allow_auto_topic_creation;
    let requested: Option<Vec<(Option<String>, Uuid)>> = match &request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(
            topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
                .collect(),
        ),
    };
    let mut topics = Vec::new();
    match requested {
        None => {
            for (name, topic) in &state.topics {
                topics.push(describe_topic(name, topic));
            }
        }
        Some(wanted) => {
            for (name, id) in wanted {
                let name = match name {
                    Some(name) => name,
                    None => match state.topic_name_by_id(id) {
                        Some(name) => name,
                        None => {
                            topics.push(
                                MetadataResponseTopic::default()
                                    .with_error_code(ResponseError::UnknownTopicId.code())
                                    .with_topic_id(id),
                            );
                            continue;
                        }
                    },
                };
                if let Some(topic) = state.topics.get(&name) {
                    topics.push(describe_topic(&name, topic));
                    continue;
                }
                let error = if invalid_topic_name(&name).is_some() {
                    ResponseError::InvalidTopicException
                } else if auto_create {
                    let topic = state.create_topic(
                        &name,
                        shared.config.default_partitions,
                        Retention::bytes(shared.config.retention_bytes),
                        false,
                    );
                    topics.push(describe_topic(&name, topic));
                    continue;
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                topics.push(
                    MetadataResponseTopic::default()
                        .with_error_code(error.code())
                        .with_name(Some(topic_name(&name))),
                );
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(shared.node_id())
            .with_host(shared.host())
            .with_port(shared.port())])
        .with_cluster_id(Some(str_bytes(CLUSTER_ID)))
        .with_controller_id(shared.node_id())
        .with_topics(topics)
}

fn describe_topic(name: &str, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(crate::state::NODE_ID);
    let partitions = (0..topic.partitions.len())
        .map(|i| {
            MetadataResponsePartition::default()
                .with_partition_index(i32::try_from(i).unwrap_or(i32::MAX))
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_topic_id(topic.id)
        .with_partitions(partitions)
}

/// Topic configs the broker honours; anything else is refused with INVALID_CONFIG rather than
/// accepted and ignored.
struct TopicConfig {
    retention: Retention,
    log_append_time: bool,
}

fn parse_configs(
    shared: &Shared,
    configs: &[kafka_protocol::messages::create_topics_request::CreatableTopicConfig],
) -> Result<TopicConfig, String> {
    let mut out = TopicConfig {
        retention: Retention::bytes(shared.config.retention_bytes),
        log_append_time: false,
    };
    for config in configs {
        let value = config.value.as_ref().map(|v| v.as_str()).unwrap_or("");
        match config.name.as_str() {
            "retention.bytes" => {
                let bytes: i64 = value
                    .parse()
                    .map_err(|_| format!("retention.bytes: '{value}' is not a number"))?;
                // -1 means unlimited in Kafka; here it means the broker's own bound.
                out.retention.bytes = if bytes < 0 {
                    shared.config.retention_bytes
                } else {
                    u64::try_from(bytes)
                        .unwrap_or(u64::MAX)
                        .min(shared.config.retention_bytes)
                };
            }
            "message.timestamp.type" => match value {
                "CreateTime" => out.log_append_time = false,
                "LogAppendTime" => out.log_append_time = true,
                other => return Err(format!("message.timestamp.type: '{other}' is not valid")),
            },
            "retention.ms" => {
                let ms: i64 = value
                    .parse()
                    .map_err(|_| format!("retention.ms: '{value}' is not a number"))?;
                out.retention.ms = (ms >= 0).then_some(ms);
            }
            "cleanup.policy" => {
                out.retention.delete = false;
                out.retention.compact = false;
                for policy in value.split(',').map(str::trim) {
                    match policy {
                        "delete" => out.retention.delete = true,
                        "compact" => out.retention.compact = true,
                        other => return Err(format!("cleanup.policy '{other}' is not valid")),
                    }
                }
                if !out.retention.delete && !out.retention.compact {
                    return Err("cleanup.policy is empty".to_owned());
                }
            }
            other => {
                return Err(format!(
                    "topic config '{other}' is not supported by the development broker \
                     (supported: cleanup.policy, retention.bytes, retention.ms, message.timestamp.type)"
                ))
            }
        }
    }
    Ok(out)
}

/// CreateTopics: one partition log per partition, replication factor 1 (or -1).
pub(crate) fn create_topics(
    shared: &Shared,
    request: &CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut state = shared.lock();
    let mut results = Vec::new();
    for topic in &request.topics {
        let name = topic.name.to_string();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let fail = |error: ResponseError, message: String| {
            result
                .clone()
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message)))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        };
        if let Some(why) = invalid_topic_name(&name) {
            results.push(fail(ResponseError::InvalidTopicException, why.to_owned()));
            continue;
        }
        if state.topics.contains_key(&name) || results.iter().any(|r| r.name.0 == topic.name.0) {
            results.push(fail(
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
            continue;
        }
        let partitions = if !topic.assignments.is_empty() {
            if topic
                .assignments
                .iter()
                .any(|a| a.broker_ids.iter().any(|b| b.0 != crate::state::NODE_ID))
            {
                results.push(fail(
                    ResponseError::InvalidReplicaAssignment,
                    "the development broker is the only broker (id 1)".to_owned(),
                ));
                continue;
            }
            i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX)
        } else if topic.num_partitions == -1 {
            shared.config.default_partitions
        } else {
            topic.num_partitions
        };
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            results.push(fail(
                ResponseError::InvalidPartitions,
                format!("partition count must be between 1 and {MAX_PARTITIONS}"),
            ));
            continue;
        }
        if topic.replication_factor != -1 && topic.replication_factor != 1 {
            results.push(fail(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {} is larger than the 1 broker available",
                    topic.replication_factor
                ),
            ));
            continue;
        }
        let config = match parse_configs(shared, &topic.configs) {
            Ok(config) => config,
            Err(message) => {
                results.push(fail(ResponseError::InvalidConfig, message));
                continue;
            }
        };
        let id = if request.validate_only {
            Uuid::nil()
        } else {
            state
                .create_topic(&name, partitions, config.retention, config.log_append_time)
                .id
        };
        let configs = topic_configs(&config.retention, config.log_append_time, shared)
            .into_iter()
            .map(|(name, value, source, _)| {
                CreatableTopicConfigs::default()
                    .with_name(str_bytes(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_config_source(source)
            })
            .collect();
        results.push(
            result
                .with_topic_id(id)
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs((version >= 5).then_some(configs)),
        );
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// DeleteTopics, by name (v1-v5) or by name or id (v6). Committed offsets of the topic go too.
pub(crate) fn delete_topics(
    shared: &Shared,
    request: &DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let mut state = shared.lock();
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::new();
    for (name, id) in wanted {
        let resolved = match &name {
            Some(name) => state.topics.contains_key(name).then(|| name.clone()),
            None => state.topic_name_by_id(id),
        };
        let result = DeletableTopicResult::default()
            .with_name(name.as_deref().map(topic_name))
            .with_topic_id(id);
        let Some(resolved) = resolved else {
            let error = if name.is_some() {
                ResponseError::UnknownTopicOrPartition
            } else {
                ResponseError::UnknownTopicId
            };
            responses.push(result.with_error_code(error.code()));
            continue;
        };
        let removed = state.topics.remove(&resolved);
        for group in state.groups.values_mut() {
            group.offsets.retain(|(topic, _), _| *topic != resolved);
        }
        responses.push(
            result
                .with_name(Some(topic_name(&resolved)))
                .with_topic_id(removed.map_or(id, |t| t.id)),
        );
    }
    drop(state);
    shared.notify_data();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// FindCoordinator: this broker for every group key. Transaction coordinators are not served:
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, so a transactional client fails at once instead of
/// retrying; other key types get INVALID_REQUEST.
pub(crate) fn find_coordinator(
    shared: &Shared,
    request: &FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (error, message) = match request.key_type {
        0 => (0, None),
        1 => (
            ResponseError::TransactionalIdAuthorizationFailed.code(),
            Some(str_bytes(
                "transactions are not supported by the development broker",
            )),
        ),
        _ => (
            ResponseError::InvalidRequest.code(),
            Some(str_bytes("unknown coordinator key type")),
        ),
    };
    let (node, host, port) = if error == 0 {
        (shared.node_id(), shared.host(), shared.port())
    } else {
        (BrokerId(-1), StrBytes::default(), -1)
    };
    if version < 4 {
        return FindCoordinatorResponse::default()
            .with_error_code(error)
            .with_error_message(message.filter(|_| version >= 1))
            .with_node_id(node)
            .with_host(host)
            .with_port(port);
    }
    let coordinators = request
        .coordinator_keys
        .iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key.clone())
                .with_node_id(node)
                .with_host(host.clone())
                .with_port(port)
                .with_error_code(error)
                .with_error_message(message.clone())
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

/// InitProducerId: a fresh producer id with epoch 0 for idempotent producers (as Kafka does for
/// producers without a transactional id). Transactions are not served.
pub(crate) fn init_producer_id(
    shared: &Shared,
    request: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
    }
    let mut state: std::sync::MutexGuard<'_, State> = shared.lock();
    let id = state.next_producer_id;
    state.next_producer_id = id.saturating_add(1);
    InitProducerIdResponse::default()
        .with_producer_id(id.into())
        .with_producer_epoch(0)
}

/// `ConfigSource` values of DescribeConfigs.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_BROKER_STATIC: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// `ConfigType` values of DescribeConfigs (v3+).
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_BOOLEAN: i8 = 1;

/// A topic's configs as reported: `(name, value, source, type)`.
fn topic_configs(
    retention: &Retention,
    log_append_time: bool,
    shared: &Shared,
) -> Vec<(&'static str, String, i8, i8)> {
    let policy = match (retention.delete, retention.compact) {
        (true, true) => "compact,delete",
        (false, true) => "compact",
        _ => "delete",
    };
    let source = |default: bool| {
        if default {
            SOURCE_DEFAULT
        } else {
            SOURCE_TOPIC
        }
    };
    vec![
        (
            "cleanup.policy",
            policy.to_owned(),
            source(policy == "delete"),
            TYPE_STRING,
        ),
        (
            "message.timestamp.type",
            if log_append_time {
                "LogAppendTime"
            } else {
                "CreateTime"
            }
            .to_owned(),
            source(!log_append_time),
            TYPE_STRING,
        ),
        (
            "retention.bytes",
            retention.bytes.to_string(),
            source(retention.bytes == shared.config.retention_bytes),
            TYPE_LONG,
        ),
        (
            "retention.ms",
            retention.ms.unwrap_or(-1).to_string(),
            source(retention.ms.is_none()),
            TYPE_LONG,
        ),
    ]
}

/// DescribeConfigs for topics (the configs the broker honours) and for this broker (its
/// settings, read-only).
pub(crate) fn describe_configs(
    shared: &Shared,
    request: &DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let state = shared.lock();
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries: Vec<(&str, String, i8, i8, bool)> = match resource.resource_type {
                2 => match state.topics.get(resource.resource_name.as_str()) {
                    None => {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes("unknown topic")))
                    }
                    Some(topic) => topic_configs(&topic.retention, topic.log_append_time, shared)
                        .into_iter()
                        .map(|(name, value, source, kind)| (name, value, source, kind, false))
                        .collect(),
                },
                4 if resource.resource_name.is_empty()
                    || resource.resource_name.as_str() == crate::state::NODE_ID.to_string() =>
                {
                    vec![
                        (
                            "auto.create.topics.enable",
                            "true".to_owned(),
                            SOURCE_BROKER_STATIC,
                            TYPE_BOOLEAN,
                            true,
                        ),
                        (
                            "log.retention.bytes",
                            shared.config.retention_bytes.to_string(),
                            SOURCE_BROKER_STATIC,
                            TYPE_LONG,
                            true,
                        ),
                        (
                            "num.partitions",
                            shared.config.default_partitions.to_string(),
                            SOURCE_BROKER_STATIC,
                            TYPE_INT,
                            true,
                        ),
                        (
                            "socket.request.max.bytes",
                            shared.config.max_request_bytes.to_string(),
                            SOURCE_BROKER_STATIC,
                            TYPE_INT,
                            true,
                        ),
                    ]
                }
                _ => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(
                            "the development broker describes topics and broker 1 only",
                        )))
                }
            };
            let configs = entries
                .into_iter()
                .filter(|(name, ..)| {
                    resource
                        .configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.iter().any(|k| k.as_str() == *name))
                })
                .map(|(name, value, source, kind, read_only)| {
                    let entry = DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(name))
                        .with_value(Some(StrBytes::from_string(value)))
                        .with_read_only(read_only)
                        .with_config_source(source);
                    if version >= 3 {
                        entry.with_config_type(kind)
                    } else {
                        entry
                    }
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
