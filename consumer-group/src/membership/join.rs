//! JoinGroup and SyncGroup: building the requests, reading the responses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use mephisto_wire::consumer_protocol::{self, Subscription};

use super::event::{GroupError, GroupEvent, PartitionSet};
use super::member::Member;
use super::request::{
    ApiKind, JoinGroupRequest, JoinProtocol, RequestBody, SyncAssignment, SyncGroupRequest,
};
use super::state::{Generation, Phase};
use crate::topic_partition::TopicPartition;

/// The protocol type of consumer groups.
pub const PROTOCOL_TYPE: &str = "consumer";

impl Member {
    /// Our subscription payload: topics, user data, owned partitions and their generation,
    /// rack (the same for every advertised assignor).
    pub(crate) fn join_body(&self) -> Result<RequestBody, GroupError> {
        let mut owned_partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for tp in &self.owned {
            owned_partitions
                .entry(tp.topic.to_string())
                .or_default()
                .push(tp.partition);
        }
        let subscription = Subscription {
            topics: self.topics.iter().cloned().collect(),
            user_data: self.user_data.clone(),
            owned_partitions,
            generation_id: self.generation_id(),
            rack_id: self.config.rack_id.clone(),
        };
        let metadata =
            consumer_protocol::encode_subscription(&subscription, consumer_protocol::MAX_VERSION)
                .map_err(GroupError::Encode)?;
        Ok(RequestBody::JoinGroup(JoinGroupRequest {
            group_id: self.config.group_id.clone(),
            session_timeout_ms: self.config.session_timeout_ms(),
            rebalance_timeout_ms: self.config.rebalance_timeout_ms(),
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            protocol_type: PROTOCOL_TYPE.to_owned(),
            protocols: self
                .assignors
                .iter()
                .map(|a| JoinProtocol {
                    name: a.name().to_owned(),
                    metadata: metadata.clone(),
                })
                .collect(),
            reason: self.rejoin_reason.clone(),
        }))
    }

    /// SyncGroup for `generation` with the leader's `assignments` (empty for followers).
    pub(crate) fn sync_body(
        &self,
        generation: i32,
        assignments: Vec<SyncAssignment>,
    ) -> RequestBody {
        RequestBody::SyncGroup(SyncGroupRequest {
            group_id: self.config.group_id.clone(),
            generation_id: generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            protocol_type: PROTOCOL_TYPE.to_owned(),
            protocol_name: self.protocol().unwrap_or_default().to_owned(),
            assignments,
            rebalance_timeout_ms: self.config.rebalance_timeout_ms(),
        })
    }

    /// The JoinGroup answer we waited for.
    pub(crate) fn on_join(&mut self, now: Instant, response: &JoinGroupResponse) {
        self.phase = Phase::Unjoined;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            self.apply_reaction(
                now,
                ApiKind::JoinGroup,
                error,
                None,
                Some(response.member_id.as_str()),
            );
            return;
        }
        let chosen = response.protocol_name.as_ref().map(|p| p.as_str());
        let Some(index) =
            chosen.and_then(|name| self.assignors.iter().position(|a| a.name() == name))
        else {
            self.fail(GroupError::UnknownProtocol(chosen.map(str::to_owned)));
            return;
        };
        let cooperative = self.assignors.get(index).is_some_and(|a| {
            a.rebalance_protocol() == crate::assignor::RebalanceProtocol::Cooperative
        });
        self.member_id = response.member_id.as_str().to_owned();
        self.generation = Some(Generation {
            id: response.generation_id,
            assignor: index,
            cooperative,
        });
        self.backoff.reset();
        self.retry_at = None;
        // The coordinator restarts our session when the join completes. A heartbeat still in
        // flight is for the previous generation: its answer will be stale, and it must not
        // hold back this generation's heartbeats.
        self.heartbeats.in_flight = None;
        self.heartbeats.session_anchor = Some(now);
        self.heartbeats.next_at = now.checked_add(self.config.heartbeat_interval);
        let leader = response.leader.as_str() == response.member_id.as_str();
        tracing::debug!(
            group = %self.config.group_id,
            generation = response.generation_id,
            member = %self.member_id,
            leader,
            "joined"
        );
        if leader && !response.skip_assignment {
            match self.decode_members(response) {
                Ok(members) => {
                    self.phase = Phase::Assigning {
                        request: None,
                        members,
                    }
                }
                Err(error) => self.fail(error),
            }
        } else {
            // Followers, and a static leader told to keep the current assignment
            // (`SkipAssignment`, KIP-814), send no assignments.
            self.phase = Phase::Syncing {
                request: None,
                generation: response.generation_id,
                assignments: Vec::new(),
            };
        }
    }

    /// The SyncGroup answer we waited for, to a request sent with `generation`.
    pub(crate) fn on_sync(&mut self, now: Instant, generation: i32, response: &SyncGroupResponse) {
        self.phase = Phase::Unjoined;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            self.apply_reaction(now, ApiKind::SyncGroup, error, Some(generation), None);
            return;
        }
        let protocol = self.protocol().unwrap_or_default();
        let type_ok = response
            .protocol_type
            .as_ref()
            .is_none_or(|t| t.as_str() == PROTOCOL_TYPE);
        let name_ok = response
            .protocol_name
            .as_ref()
            .is_none_or(|n| n.as_str() == protocol);
        if !type_ok || !name_ok {
            self.fail(GroupError::Broker {
                api: ApiKind::SyncGroup,
                error: ResponseError::InconsistentGroupProtocol,
            });
            return;
        }
        let assignment = match consumer_protocol::decode_assignment(response.assignment.clone()) {
            Ok(a) => a,
            Err(e) => {
                self.fail(GroupError::BadAssignment(e));
                return;
            }
        };
        let assigned: PartitionSet = assignment
            .partitions
            .iter()
            .flat_map(|(topic, ps)| {
                let topic: Arc<str> = Arc::from(topic.as_str());
                ps.iter()
                    .map(move |p| TopicPartition::new(Arc::clone(&topic), *p))
            })
            .collect();
        let revoked: PartitionSet = self.owned.difference(&assigned).cloned().collect();
        let added: PartitionSet = assigned.difference(&self.owned).cloned().collect();
        self.backoff.reset();
        self.phase = Phase::Stable;
        if !revoked.is_empty() {
            self.owned.retain(|tp| !revoked.contains(tp));
            self.pending_revocations = self.pending_revocations.saturating_add(1);
            self.events.push_back(GroupEvent::Revoked {
                partitions: revoked.clone(),
            });
        }
        self.owned.extend(added.iter().cloned());
        self.events.push_back(GroupEvent::Assigned {
            partitions: added,
            generation,
            user_data: assignment.user_data,
        });
        if !revoked.is_empty() {
            // KIP-429: what we gave up goes to its new owner in a second rebalance.
            self.start_rejoin("revoked partitions must be reassigned");
        } else if let Some(reason) = self.rejoin_after_sync.take() {
            self.start_rejoin(&reason);
        }
    }
}
