//! A snapshot of the cluster's metadata: brokers, topics, partitions, leaders and leader epochs,
//! stamped with a generation number.
//!
//! Snapshots are immutable and shared (`Arc`); a refresh builds a new one with the next
//! generation. Callers that saw an error keep the generation they acted on and pass it to
//! [`Cluster::invalidate_metadata`](super::Cluster::invalidate_metadata), so an error seen on
//! old metadata does not throw away newer metadata.

use std::collections::BTreeMap;

use kafka_protocol::messages::{BrokerId, MetadataResponse};
use tokio::time::Instant;

use crate::broker_url::BrokerAddr;
use crate::error::{EngineError, KafkaError};

/// A broker as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Its node id.
    pub id: BrokerId,
    /// Where to connect to it.
    pub addr: BrokerAddr,
    /// Its rack, if configured.
    pub rack: Option<String>,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: i32,
    /// The leader's id, `None` when there is no leader (election, all replicas offline).
    pub leader: Option<BrokerId>,
    /// The leader epoch, `None` when the broker does not report it (Metadata before v7).
    pub leader_epoch: Option<i32>,
    /// All replicas.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
    /// Replicas that are offline.
    pub offline_replicas: Vec<BrokerId>,
    /// A partition-level error (e.g. LEADER_NOT_AVAILABLE), if any.
    pub error: Option<KafkaError>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic id (nil before Metadata v10).
    pub id: uuid::Uuid,
    /// Whether it is an internal topic (`__consumer_offsets`, ...).
    pub internal: bool,
    /// A topic-level error (e.g. LEADER_NOT_AVAILABLE while it is being created), if any.
    pub error: Option<KafkaError>,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// Partition `partition`, if the topic has it.
    pub fn partition(&self, partition: i32) -> Option<&PartitionMetadata> {
        self.partitions
            .binary_search_by_key(&partition, |p| p.partition)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    /// Whether every partition has a leader (the topic is ready to use).
    pub fn all_partitions_led(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.iter().all(|p| p.leader.is_some())
    }
}

/// A partition's leader: where its produce, fetch and ListOffsets requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    /// The leader's id.
    pub broker: BrokerId,
    /// The leader epoch, if known; send it as `current_leader_epoch` so a broker with newer
    /// leadership answers FENCED_LEADER_EPOCH instead of acting on stale routing.
    pub epoch: Option<i32>,
}

/// One immutable snapshot of the cluster metadata.
#[derive(Debug, Clone)]
pub struct ClusterMetadata {
    /// Increases by one with each refresh; 0 is the empty snapshot before the first one.
    pub generation: u64,
    /// When the metadata was received.
    pub fetched_at: Instant,
    /// The cluster id, if the broker reports it.
    pub cluster_id: Option<String>,
    /// The controller's id, if known (KRaft brokers report a random broker, which forwards).
    pub controller: Option<BrokerId>,
    /// Brokers by id.
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
    /// Topics by name (every topic of the cluster; internal ones included).
    pub topics: BTreeMap<String, TopicMetadata>,
}

impl ClusterMetadata {
    /// The empty snapshot, generation 0.
    pub fn empty() -> Self {
        Self {
            generation: 0,
            fetched_at: Instant::now(),
            cluster_id: None,
            controller: None,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
        }
    }

    /// Builds a snapshot from a Metadata response.
    ///
    /// Brokers with an invalid port or empty host are left out, as are topics without a name;
    /// a leader id that is not among the brokers counts as no leader.
    pub fn from_response(response: &MetadataResponse, generation: u64) -> Self {
        let brokers: BTreeMap<BrokerId, BrokerInfo> = response
            .brokers
            .iter()
            .filter_map(|b| {
                let port = u16::try_from(b.port).ok().filter(|p| *p != 0)?;
                let host = b.host.as_str();
                (!host.is_empty()).then(|| {
                    (
                        b.node_id,
                        BrokerInfo {
                            id: b.node_id,
                            addr: BrokerAddr::new(host, port),
                            rack: b.rack.as_ref().map(|r| r.as_str().to_owned()),
                        },
                    )
                })
            })
            .collect();
        let ids = |v: &[BrokerId]| v.to_vec();
        let topics = response
            .topics
            .iter()
            .filter_map(|t| {
                let name = t.name.as_ref()?.0.as_str().to_owned();
                let mut partitions: Vec<PartitionMetadata> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionMetadata {
                        partition: p.partition_index,
                        leader: (p.leader_id.0 >= 0 && brokers.contains_key(&p.leader_id))
                            .then_some(p.leader_id),
                        leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                        replicas: ids(&p.replica_nodes),
                        isr: ids(&p.isr_nodes),
                        offline_replicas: ids(&p.offline_replicas),
                        error: KafkaError::from_code(p.error_code),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                partitions.dedup_by_key(|p| p.partition);
                Some((
                    name.clone(),
                    TopicMetadata {
                        name,
                        id: t.topic_id,
                        internal: t.is_internal,
                        error: KafkaError::from_code(t.error_code),
                        partitions,
                    },
                ))
            })
            .collect();
        Self {
            generation,
            fetched_at: Instant::now(),
            cluster_id: response.cluster_id.as_ref().map(|c| c.as_str().to_owned()),
            controller: (response.controller_id.0 >= 0).then_some(response.controller_id),
            brokers,
            topics,
        }
    }

    /// Topic `name`, if the metadata has it.
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    /// Broker `id`, if the metadata has it.
    pub fn broker(&self, id: BrokerId) -> Option<&BrokerInfo> {
        self.brokers.get(&id)
    }

    /// The leader of `topic`-`partition`, or why there is none in this snapshot.
    pub fn leader(&self, topic: &str, partition: i32) -> Result<Leader, EngineError> {
        let Some(t) = self.topic(topic) else {
            return Err(EngineError::UnknownTopic(topic.to_owned()));
        };
        if t.partitions.is_empty() {
            // A topic still being created reports an error and no partitions.
            return Err(EngineError::UnknownTopic(topic.to_owned()));
        }
        let Some(p) = t.partition(partition) else {
            return Err(EngineError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            });
        };
        match p.leader {
            Some(broker) => Ok(Leader {
                broker,
                epoch: p.leader_epoch,
            }),
            None => Err(EngineError::NoLeader {
                topic: topic.to_owned(),
                partition,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn response() -> MetadataResponse {
        let broker = |id: i32, port: i32| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(port)
        };
        let partition = |i: i32, leader: i32| {
            MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(4)
        };
        MetadataResponse::default()
            .with_brokers(vec![broker(1, 9092), broker(2, 9093), broker(3, -1)])
            .with_controller_id(BrokerId(2))
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                    .with_partitions(vec![partition(1, 2), partition(0, 1), partition(2, 7)]),
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("creating"))))
                    .with_error_code(5),
            ])
    }

    #[test]
    fn routes_to_leaders() {
        let m = ClusterMetadata::from_response(&response(), 3);
        assert_eq!(m.generation, 3);
        assert_eq!(m.brokers.len(), 2, "broker with port -1 dropped");
        assert_eq!(m.controller, Some(BrokerId(2)));
        let t = m.topic("t").unwrap();
        assert_eq!(
            t.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(
            m.leader("t", 1).unwrap(),
            Leader {
                broker: BrokerId(2),
                epoch: Some(4)
            }
        );
        assert!(matches!(
            m.leader("t", 2),
            Err(EngineError::NoLeader { .. })
        ));
        assert!(matches!(
            m.leader("t", 9),
            Err(EngineError::UnknownPartition { .. })
        ));
        assert!(matches!(
            m.leader("nope", 0),
            Err(EngineError::UnknownTopic(_))
        ));
        assert!(matches!(
            m.leader("creating", 0),
            Err(EngineError::UnknownTopic(_))
        ));
        assert_eq!(
            m.topic("creating").unwrap().error.as_ref().unwrap().code(),
            5
        );
        assert!(!t.all_partitions_led());
    }
}
