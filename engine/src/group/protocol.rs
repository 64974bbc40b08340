//! Sending the member's version-independent [`GroupRequest`]s as `kafka-protocol` messages
//! at the version negotiated with the target broker, and turning the answers into
//! [`ResponseEvent`]s.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{BrokerId, GroupId, HeartbeatRequest};
use kafka_protocol::protocol::StrBytes;
use mephisto_consumer_group::assignor::AssignContext;
use mephisto_consumer_group::membership::{
    AssignmentMetadataRequest, GroupRequest, RequestBody, RequestFailure, ResponseEvent, Target,
};

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
/// [`ResponseEvent::Failed`]). JoinGroup waits up to the rebalance timeout plus the request
/// timeout.
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
            let rebalance = Duration::from_millis(body.rebalance_timeout_ms.max(0) as u64);
            let response = cluster
                .send_with_timeout(
                    broker,
                    Purpose::Group,
                    rebalance + request_timeout,
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
            let response = cluster
                .send(broker, Purpose::Group, |version| {
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
                })
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
/// out). End offsets are not looked up: none of the assignors this consumer runs weighs lag.
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
        end_offsets: BTreeMap::new(),
    })
}
