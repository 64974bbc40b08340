//! Administrative operations: create and delete topics, list topics, describe a topic's
//! configuration, and look up partition offsets (ListOffsets).
//!
//! Every operation is safe to repeat and runs under [`Cluster::retry`]: retriable Kafka codes
//! (NOT_CONTROLLER, NOT_LEADER_OR_FOLLOWER, a topic not yet propagated, ...) and transport
//! failures are retried with backoff and a metadata refresh, within
//! [`ClientConfig::api_timeout`](crate::config::ClientConfig::api_timeout); other codes surface
//! as [`EngineError::Kafka`], whose [`KafkaError`] names the code. Creating a topic that exists
//! fails with TOPIC_ALREADY_EXISTS (check with [`EngineError::kafka_kind`]).
//!
//! Topic creation and deletion return once the cluster metadata shows the result (every
//! partition has a leader / the topic is gone), so a produce or fetch right after them does
//! not race the controller.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::cluster::{Cluster, ClusterMetadata, Purpose, TopicMetadata};
use crate::error::{EngineError, KafkaError};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions (`-1`: the broker's default).
    pub partitions: i32,
    /// Replication factor (`-1`: the broker's default).
    pub replication_factor: i16,
    /// Topic configs, e.g. `("cleanup.policy", "compact")`.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `partitions` partitions replicated `replication_factor` times.
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }

    /// Adds a topic config.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// What the controller says about a topic it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    /// Topic name.
    pub name: String,
    /// Topic id (nil before CreateTopics v7).
    pub id: uuid::Uuid,
    /// Partitions (`-1` before CreateTopics v5).
    pub partitions: i32,
    /// Replication factor (`-1` before CreateTopics v5).
    pub replication_factor: i16,
    /// The topic's configs as created (empty before CreateTopics v5).
    pub configs: Vec<(String, Option<String>)>,
}

/// Which offset ListOffsets should find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the offset the next record will get).
    Latest,
    /// The first offset whose timestamp is at or after this many milliseconds since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            Self::Earliest => -2,
            Self::Latest => -1,
            Self::Timestamp(ts) => ts.max(0),
        }
    }
}

/// One partition's answer to ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffset {
    /// Partition index.
    pub partition: i32,
    /// The offset, `None` when a timestamp lookup found no record at or after the timestamp.
    pub offset: Option<i64>,
    /// The timestamp of the record found (timestamp lookups), if any.
    pub timestamp: Option<i64>,
    /// The leader epoch of the record found, if the broker reports it.
    pub leader_epoch: Option<i32>,
    /// The broker (the partition leader) that answered.
    pub broker: BrokerId,
}

/// Admin operations on a [`Cluster`].
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Cluster,
}

impl Admin {
    /// Admin operations over `cluster`'s connections and metadata.
    pub fn new(cluster: Cluster) -> Self {
        Self { cluster }
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Creates one topic and waits until every partition has a leader.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<CreatedTopic, EngineError> {
        let name = topic.name.clone();
        let mut results = self.create_topics(std::slice::from_ref(&topic)).await?;
        results.remove(&name).unwrap_or_else(|| {
            Err(EngineError::Protocol {
                broker: "controller".to_owned(),
                detail: format!("CreateTopics response does not mention {name:?}"),
            })
        })
    }

    /// Creates topics; one result per topic name. Topics that were created are awaited in the
    /// metadata (every partition led) before this returns.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
    ) -> Result<BTreeMap<String, Result<CreatedTopic, EngineError>>, EngineError> {
        let done: Mutex<BTreeMap<String, Result<CreatedTopic, EngineError>>> =
            Mutex::new(BTreeMap::new());
        let timeout_ms = millis(self.cluster.config().request_timeout);
        self.cluster
            .retry(|| async {
                let pending: Vec<NewTopic> = {
                    let done = lock(&done);
                    topics
                        .iter()
                        .filter(|t| !done.contains_key(&t.name))
                        .cloned()
                        .collect()
                };
                if pending.is_empty() {
                    return Ok(());
                }
                let response = self
                    .cluster
                    .send_to_controller(|_| create_request(&pending, timeout_ms))
                    .await?;
                let mut retry = None;
                let mut done = lock(&done);
                for result in response.body.topics {
                    let name = result.name.0.as_str().to_owned();
                    let outcome = EngineError::check_code(
                        ApiKey::CreateTopics,
                        || Some(format!("topic {name:?}")),
                        result.error_code,
                        result.error_message.as_deref(),
                    );
                    match outcome {
                        Err(e) if e.is_retriable() => retry = Some(e),
                        Err(e) => {
                            done.insert(name, Err(e));
                        }
                        Ok(()) => {
                            let created = CreatedTopic {
                                name: name.clone(),
                                id: result.topic_id,
                                partitions: result.num_partitions,
                                replication_factor: result.replication_factor,
                                configs: result
                                    .configs
                                    .unwrap_or_default()
                                    .into_iter()
                                    .map(|c| {
                                        (
                                            c.name.as_str().to_owned(),
                                            c.value.map(|v| v.as_str().to_owned()),
                                        )
                                    })
                                    .collect(),
                            };
                            done.insert(name, Ok(created));
                        }
                    }
                }
                match retry {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            })
            .await?;
        let results = done.into_inner().unwrap_or_else(|p| p.into_inner());
        let created: Vec<&str> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n.as_str())
            .collect();
        self.wait_for_metadata("created topics to get leaders", |m| {
            created
                .iter()
                .all(|n| m.topic(n).is_some_and(TopicMetadata::all_partitions_led))
        })
        .await?;
        Ok(results)
    }

    /// Deletes one topic and waits until the metadata no longer lists it. A topic that does not
    /// exist fails with UNKNOWN_TOPIC_OR_PARTITION.
    pub async fn delete_topic(&self, name: &str) -> Result<(), EngineError> {
        let mut results = self.delete_topics(&[name]).await?;
        results.remove(name).unwrap_or_else(|| {
            Err(EngineError::Protocol {
                broker: "controller".to_owned(),
                detail: format!("DeleteTopics response does not mention {name:?}"),
            })
        })
    }

    /// Deletes topics; one result per name. Deleted topics are awaited out of the metadata
    /// before this returns.
    pub async fn delete_topics(
        &self,
        names: &[&str],
    ) -> Result<BTreeMap<String, Result<(), EngineError>>, EngineError> {
        let done: Mutex<BTreeMap<String, Result<(), EngineError>>> = Mutex::new(BTreeMap::new());
        let timeout_ms = millis(self.cluster.config().request_timeout);
        self.cluster
            .retry(|| async {
                let pending: Vec<String> = {
                    let done = lock(&done);
                    names
                        .iter()
                        .filter(|n| !done.contains_key(**n))
                        .map(|n| (*n).to_owned())
                        .collect()
                };
                if pending.is_empty() {
                    return Ok(());
                }
                let response = self
                    .cluster
                    .send_to_controller(|version| delete_request(&pending, timeout_ms, version))
                    .await?;
                let mut retry = None;
                let mut done = lock(&done);
                for result in response.body.responses {
                    let Some(name) = result.name.as_ref().map(|n| n.0.as_str().to_owned()) else {
                        continue;
                    };
                    let outcome = EngineError::check_code(
                        ApiKey::DeleteTopics,
                        || Some(format!("topic {name:?}")),
                        result.error_code,
                        result.error_message.as_deref(),
                    );
                    match outcome {
                        // Deleting a topic that is not there is final, although Kafka marks the
                        // code retriable.
                        Err(e)
                            if e.is_retriable()
                                && e.kafka_kind()
                                    != Some(ResponseError::UnknownTopicOrPartition) =>
                        {
                            retry = Some(e)
                        }
                        other => {
                            done.insert(name, other);
                        }
                    }
                }
                match retry {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            })
            .await?;
        let results = done.into_inner().unwrap_or_else(|p| p.into_inner());
        let deleted: Vec<&str> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n.as_str())
            .collect();
        self.wait_for_metadata("deleted topics to disappear", |m| {
            deleted.iter().all(|n| m.topic(n).is_none())
        })
        .await?;
        Ok(results)
    }

    /// Every topic of the cluster with its partitions, from freshly fetched metadata, sorted
    /// by name (internal topics included; see [`TopicMetadata::internal`]).
    pub async fn list_topics(&self) -> Result<Vec<TopicMetadata>, EngineError> {
        let metadata = self
            .cluster
            .retry(|| self.cluster.refresh_metadata())
            .await?;
        Ok(metadata.topics.values().cloned().collect())
    }

    /// A topic's configuration as the broker reports it (DescribeConfigs), sorted by name.
    pub async fn describe_topic_config(
        &self,
        topic: &str,
    ) -> Result<Vec<(String, Option<String>)>, EngineError> {
        self.cluster
            .retry(|| async {
                let response = self
                    .cluster
                    .send_to_any(|_| {
                        DescribeConfigsRequest::default().with_resources(vec![
                            DescribeConfigsResource::default()
                                .with_resource_type(2) // TOPIC
                                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                                .with_configuration_keys(None),
                        ])
                    })
                    .await?;
                let Some(result) = response.body.results.into_iter().next() else {
                    return Err(EngineError::Protocol {
                        broker: format!("broker {}", response.broker.0),
                        detail: "DescribeConfigs response without results".to_owned(),
                    });
                };
                EngineError::check_code(
                    ApiKey::DescribeConfigs,
                    || Some(format!("topic {topic:?}")),
                    result.error_code,
                    result.error_message.as_deref(),
                )?;
                let mut configs: Vec<(String, Option<String>)> = result
                    .configs
                    .into_iter()
                    .map(|c| {
                        (
                            c.name.as_str().to_owned(),
                            c.value.map(|v| v.as_str().to_owned()),
                        )
                    })
                    .collect();
                configs.sort();
                Ok(configs)
            })
            .await
    }

    /// One partition's offset; see [`list_offsets`](Self::list_offsets).
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<PartitionOffset, EngineError> {
        let offsets = self.list_offsets(topic, &[(partition, spec)]).await?;
        offsets
            .into_iter()
            .find(|o| o.partition == partition)
            .ok_or_else(|| EngineError::Protocol {
                broker: "partition leader".to_owned(),
                detail: format!("ListOffsets response lacks {topic}-{partition}"),
            })
    }

    /// Offsets of `topic`'s partitions, each asked of its leader (one request per leader),
    /// read-uncommitted. Results come in the order of `partitions`.
    ///
    /// Partitions whose leader moved are retried on the new leader after a metadata refresh.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: &[(i32, OffsetSpec)],
    ) -> Result<Vec<PartitionOffset>, EngineError> {
        self.cluster
            .retry(|| self.list_offsets_once(topic, partitions))
            .await
    }

    async fn list_offsets_once(
        &self,
        topic: &str,
        partitions: &[(i32, OffsetSpec)],
    ) -> Result<Vec<PartitionOffset>, EngineError> {
        let mut by_leader: BTreeMap<BrokerId, Vec<(i32, OffsetSpec, Option<i32>)>> =
            BTreeMap::new();
        for &(partition, spec) in partitions {
            let leader = self.cluster.leader(topic, partition).await?;
            by_leader
                .entry(leader.broker)
                .or_default()
                .push((partition, spec, leader.epoch));
        }
        let mut found: BTreeMap<i32, PartitionOffset> = BTreeMap::new();
        for (leader, wanted) in by_leader {
            let wanted = Arc::new(wanted);
            let request_parts = Arc::clone(&wanted);
            let response = self
                .cluster
                .send(leader, Purpose::Default, |version| {
                    list_offsets_request(topic, &request_parts, version)
                })
                .await?;
            let answered_by = response.broker;
            for t in response.body.topics {
                if t.name.0.as_str() != topic {
                    continue;
                }
                for p in t.partitions {
                    EngineError::check_code(
                        ApiKey::ListOffsets,
                        || Some(format!("{topic}-{}", p.partition_index)),
                        p.error_code,
                        None,
                    )?;
                    found.insert(
                        p.partition_index,
                        PartitionOffset {
                            partition: p.partition_index,
                            offset: (p.offset >= 0).then_some(p.offset),
                            timestamp: (p.timestamp >= 0).then_some(p.timestamp),
                            leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                            broker: answered_by,
                        },
                    );
                }
            }
            if let Some(&(missing, _, _)) = wanted.iter().find(|(p, _, _)| !found.contains_key(p)) {
                return Err(EngineError::Protocol {
                    broker: format!("broker {}", leader.0),
                    detail: format!("ListOffsets response lacks {topic}-{missing}"),
                });
            }
        }
        Ok(partitions
            .iter()
            .filter_map(|(p, _)| found.get(p).copied())
            .collect())
    }

    /// Refreshes the metadata until `ready` holds, with backoff, within the API timeout.
    async fn wait_for_metadata(
        &self,
        what: &str,
        ready: impl Fn(&ClusterMetadata) -> bool,
    ) -> Result<(), EngineError> {
        let config = self.cluster.config();
        let start = Instant::now();
        let mut backoff = Backoff::new(config.retry_backoff, config.retry_backoff_max);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = match self.cluster.refresh_metadata().await {
                Ok(m) if ready(&m) => return Ok(()),
                Ok(_) => EngineError::Protocol {
                    broker: "cluster".to_owned(),
                    detail: format!("metadata does not show {what} yet"),
                },
                Err(e) if e.is_retriable() => e,
                Err(e) => return Err(e),
            };
            let delay = backoff.next_delay();
            if start.elapsed() + delay >= config.api_timeout {
                return Err(EngineError::RetriesExhausted {
                    attempts,
                    elapsed: start.elapsed(),
                    last: Box::new(last),
                });
            }
            tokio::time::sleep(delay).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn millis(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

fn create_request(topics: &[NewTopic], timeout_ms: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                        .with_num_partitions(t.partitions)
                        .with_replication_factor(t.replication_factor)
                        .with_configs(
                            t.configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(StrBytes::from_string(k.clone()))
                                        .with_value(Some(StrBytes::from_string(v.clone())))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn delete_request(names: &[String], timeout_ms: i32, version: i16) -> DeleteTopicsRequest {
    let name = |n: &String| TopicName(StrBytes::from_string(n.clone()));
    let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
    if version >= 6 {
        request.with_topics(
            names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(name(n))))
                .collect(),
        )
    } else {
        request.with_topic_names(names.iter().map(name).collect())
    }
}

fn list_offsets_request(
    topic: &str,
    partitions: &[(i32, OffsetSpec, Option<i32>)],
    version: i16,
) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(partition, spec, epoch)| {
                        let p = ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(spec.wire());
                        if version >= 4 {
                            p.with_current_leader_epoch(epoch.unwrap_or(-1))
                        } else {
                            p
                        }
                    })
                    .collect(),
            )])
}

/// Whether `error` is TOPIC_ALREADY_EXISTS.
pub fn is_topic_already_exists(error: &EngineError) -> bool {
    error.kafka().map(KafkaError::kind) == Some(ResponseError::TopicAlreadyExists)
}
