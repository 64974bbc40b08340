//! Sending the member's version-independent [`GroupRequest`]s as `kafka-protocol` messages
//! at the version negotiated with the target broker, and turning the answers into
//! [`ResponseEvent`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{BrokerId, GroupId, HeartbeatRequest};
use kafka_protocol::protocol::StrBytes;
use mephisto_consumer_group::assignor::{AssignContext, TopicPartition};
use mephisto_consumer_group::membership::{
    AssignmentMetadataRequest, GroupRequest, RequestBody, RequestFailure, ResponseEvent, Target,
};

use crate::admin::{Admin, OffsetSpec};
use crate::cluster::{Cluster, Purpose};
use crate::error::EngineError;

pub(crate) fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn opt(value: &Option<String>) -> Option<StrBytes> {
    value.as_deref().map(s)
}

/// The broker a coordinator-bound request goes to.
pub(crate) fn coordinator_broker(target: &Target) -> Option<BrokerId> {
    match target {
        Target::Coordinator(c) => Some(BrokerId(c.node_id)),
        Target::AnyBroker => None,
    }
}

/// How an engine error reads to the member.
pub(crate) fn failure(error: &EngineError) -> RequestFailure {
    match error {
        EngineError::Versions { .. } => RequestFailure::Unsupported(error.to_string()),
        EngineError::RequestTimeout { .. } => RequestFailure::Timeout,
        other => RequestFailure::Disconnected(other.to_string()),
    }
}

/// Sends `request` and returns its answer (never fails: failures become
/// [`ResponseEvent::Failed`]). JoinGroup and SyncGroup wait up to the rebalance timeout plus
/// the request timeout.
pub(crate) async fn exchange(cluster: &Cluster, request: GroupRequest) -> ResponseEvent {
    let id = request.id;
    let result = send(cluster, request).await;
    result.unwrap_or_else(|error| {
        tracing::debug!(%error, "group request failed");
        ResponseEvent::Failed {
            request: id,
            error: failure(&error),
        }
    })
}

/// How long to wait for a JoinGroup or SyncGroup, which the coordinator holds until the
/// rebalance completes: the rebalance timeout plus the request timeout.
fn held_timeout(rebalance_timeout_ms: i32, request_timeout: Duration) -> Duration {
    Duration::from_millis(u64::try_from(rebalance_timeout_ms).unwrap_or(0)) + request_timeout
}

async fn send(cluster: &Cluster, request: GroupRequest) -> Result<ResponseEvent, EngineError> {
    let id = request.id;
    let broker = coordinator_broker(&request.target);
    let request_timeout = cluster.config().request_timeout;
    let to_coordinator = |what: &str| {
        broker.ok_or_else(|| EngineError::Config(format!("{what} needs the coordinator")))
    };
    Ok(match request.body {
        RequestBody::FindCoordinator(body) => {
            let response = cluster
                .send_to_any(|version| {
                    let mut r = FindCoordinatorRequest::default();
                    if version >= 1 {
                        r.key_type = 0;
                    }
                    if version >= 4 {
                        r.coordinator_keys = vec![s(&body.key)];
                    } else {
                        r.key = s(&body.key);
                    }
                    r
                })
                .await?;
            ResponseEvent::FindCoordinator {
                request: id,
                response: response.body,
            }
        }
        RequestBody::JoinGroup(body) => {
            let broker = to_coordinator("JoinGroup")?;
            let response = cluster
                .send_with_timeout(
                    broker,
                    Purpose::Group,
                    held_timeout(body.rebalance_timeout_ms, request_timeout),
                    |version| {
                        let mut r = JoinGroupRequest::default();
                        r.group_id = GroupId(s(&body.group_id));
                        r.session_timeout_ms = body.session_timeout_ms;
                        r.rebalance_timeout_ms = body.rebalance_timeout_ms;
                        r.member_id = s(&body.member_id);
                        if version >= 5 {
                            r.group_instance_id = opt(&body.group_instance_id);
                        }
                        if version >= 8 {
                            r.reason = opt(&body.reason);
                        }
                        r.protocol_type = s(&body.protocol_type);
                        r.protocols = body
                            .protocols
                            .iter()
                            .map(|p| {
                                let mut jp = JoinGroupRequestProtocol::default();
                                jp.name = s(&p.name);
                                jp.metadata = p.metadata.clone();
                                jp
                            })
                            .collect();
                        r
                    },
                )
                .await?;
            ResponseEvent::JoinGroup {
                request: id,
                response: response.body,
            }
        }
        RequestBody::SyncGroup(body) => {
            let broker = to_coordinator("SyncGroup")?;
            // Held by the coordinator until the leader's SyncGroup arrives: as JoinGroup.
            let response = cluster
                .send_with_timeout(
                    broker,
                    Purpose::Group,
                    held_timeout(body.rebalance_timeout_ms, request_timeout),
                    |version| {
                        let mut r = SyncGroupRequest::default();
                        r.group_id = GroupId(s(&body.group_id));
                        r.generation_id = body.generation_id;
                        r.member_id = s(&body.member_id);
                        if version >= 3 {
                            r.group_instance_id = opt(&body.group_instance_id);
                        }
                        if version >= 5 {
                            r.protocol_type = Some(s(&body.protocol_type));
                            r.protocol_name = Some(s(&body.protocol_name));
                        }
                        r.assignments = body
                            .assignments
                            .iter()
                            .map(|a| {
                                let mut sa = SyncGroupRequestAssignment::default();
                                sa.member_id = s(&a.member_id);
                                sa.assignment = a.assignment.clone();
                                sa
                            })
                            .collect();
                        r
                    },
                )
                .await?;
            ResponseEvent::SyncGroup {
                request: id,
                response: response.body,
            }
        }
        RequestBody::Heartbeat(body) => {
            let broker = to_coordinator("Heartbeat")?;
            let response = cluster
                .send(broker, Purpose::Group, |version| {
                    let mut r = HeartbeatRequest::default();
                    r.group_id = GroupId(s(&body.group_id));
                    r.generation_id = body.generation_id;
                    r.member_id = s(&body.member_id);
                    if version >= 3 {
                        r.group_instance_id = opt(&body.group_instance_id);
                    }
                    r
                })
                .await?;
            ResponseEvent::Heartbeat {
                request: id,
                response: response.body,
            }
        }
        RequestBody::LeaveGroup(body) => {
            let broker = to_coordinator("LeaveGroup")?;
            let response = cluster
                .send(broker, Purpose::Group, |version| {
                    let mut r = LeaveGroupRequest::default();
                    r.group_id = GroupId(s(&body.group_id));
                    if version >= 3 {
                        r.members = body
                            .members
                            .iter()
                            .map(|m| {
                                let mut mi = MemberIdentity::default();
                                mi.member_id = s(&m.member_id);
                                mi.group_instance_id = opt(&m.group_instance_id);
                                if version >= 5 {
                                    mi.reason = opt(&m.reason);
                                }
                                mi
                            })
                            .collect();
                    } else if let Some(m) = body.members.first() {
                        r.member_id = s(&m.member_id);
                    }
                    r
                })
                .await?;
            ResponseEvent::LeaveGroup {
                request: id,
                response: response.body,
            }
        }
        RequestBody::AssignmentMetadata(body) => ResponseEvent::AssignmentMetadata {
            request: id,
            context: assignment_metadata(cluster, &body).await?,
        },
    })
}

/// Partition counts of the requested topics from refreshed metadata (unknown topics left
/// out), and the end offsets (ListOffsets, latest) of the partitions the assignor weighs.
/// An end offset that cannot be looked up within the request timeout (unknown topic, no
/// leader, an error) is left out with a warning: the assignor then counts that changelog
/// as empty, and the assignment still goes ahead.
async fn assignment_metadata(
    cluster: &Cluster,
    body: &AssignmentMetadataRequest,
) -> Result<AssignContext, EngineError> {
    let metadata = cluster.refresh_metadata().await?;
    let mut partitions_per_topic = BTreeMap::new();
    for topic in &body.topics {
        if let Some(t) = metadata.topic(topic) {
            let count = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
            partitions_per_topic.insert(topic.clone(), count);
        }
    }
    Ok(AssignContext {
        partitions_per_topic,
        end_offsets: end_offsets(cluster, &body.end_offsets).await,
    })
}

/// The latest offsets of `partitions`, one ListOffsets per topic and leader.
async fn end_offsets(
    cluster: &Cluster,
    partitions: &BTreeSet<TopicPartition>,
) -> BTreeMap<TopicPartition, i64> {
    let mut by_topic: BTreeMap<&str, Vec<(i32, OffsetSpec)>> = BTreeMap::new();
    for tp in partitions {
        by_topic
            .entry(&tp.topic)
            .or_default()
            .push((tp.partition, OffsetSpec::Latest));
    }
    let admin = Admin::new(cluster.clone());
    let limit = cluster.config().request_timeout;
    let mut out = BTreeMap::new();
    for (topic, wanted) in by_topic {
        match tokio::time::timeout(limit, admin.list_offsets(topic, &wanted)).await {
            Ok(Ok(found)) => {
                for o in found {
                    if let Some(offset) = o.offset {
                        out.insert(TopicPartition::new(topic, o.partition), offset);
                    }
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(topic, %error, "end offsets for the assignor not found: counted as empty");
            }
            Err(_) => {
                tracing::warn!(
                    topic,
                    ?limit,
                    "end offsets for the assignor timed out: counted as empty"
                );
            }
        }
    }
    tracing::debug!(?out, "changelog end offsets for the assignor");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_requests_wait_out_the_rebalance() {
        let rt = Duration::from_secs(30);
        assert_eq!(held_timeout(300_000, rt), Duration::from_secs(330));
        assert_eq!(held_timeout(0, rt), rt);
        assert_eq!(held_timeout(-1, rt), rt, "a negative timeout adds nothing");
    }
}
