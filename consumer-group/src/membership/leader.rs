//! The leader's work between JoinGroup and SyncGroup: decode every member's subscription,
//! look up the metadata, run the chosen assignor, encode the assignments.

use std::collections::BTreeSet;

use kafka_protocol::messages::JoinGroupResponse;
use mephisto_wire::consumer_protocol::{self, Assignment};

use super::event::GroupError;
use super::member::Member;
use super::request::{AssignmentMetadataRequest, RequestBody, SyncAssignment};
use super::state::Phase;
use crate::assignor::{AssignContext, MemberSubscription};

impl Member {
    /// Every member's subscription from a leader's JoinGroup response.
    pub(crate) fn decode_members(
        &self,
        response: &JoinGroupResponse,
    ) -> Result<Vec<MemberSubscription>, GroupError> {
        response
            .members
            .iter()
            .map(|m| {
                let sub = consumer_protocol::decode_subscription(m.metadata.clone()).map_err(
                    |source| GroupError::BadSubscription {
                        member: m.member_id.as_str().to_owned(),
                        source,
                    },
                )?;
                Ok(MemberSubscription {
                    member_id: m.member_id.as_str().to_owned(),
                    group_instance_id: m.group_instance_id.as_ref().map(|s| s.as_str().to_owned()),
                    topics: sub.topics,
                    owned_partitions: sub.owned_partitions,
                    generation_id: sub.generation_id,
                    rack_id: sub.rack_id,
                    user_data: sub.user_data,
                })
            })
            .collect()
    }

    /// The metadata request for the members' topics, and the end offsets the chosen
    /// assignor needs.
    pub(crate) fn metadata_body(&self, members: &[MemberSubscription]) -> RequestBody {
        let topics: BTreeSet<String> = members
            .iter()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        let end_offsets = self
            .generation
            .as_ref()
            .and_then(|g| self.assignors.get(g.assignor))
            .map(|a| a.end_offsets_needed(members))
            .unwrap_or_default();
        RequestBody::AssignmentMetadata(AssignmentMetadataRequest {
            topics,
            end_offsets,
        })
    }

    /// The metadata arrived: assign and move on to SyncGroup.
    pub(crate) fn on_assignment_metadata(
        &mut self,
        members: Vec<MemberSubscription>,
        context: &AssignContext,
    ) {
        let generation = self.generation_id();
        match self.assign(members, context) {
            Ok(assignments) => {
                self.phase = Phase::Syncing {
                    request: None,
                    generation,
                    assignments,
                };
            }
            Err(error) => self.fail(error),
        }
    }

    /// Runs the chosen assignor. Topics the metadata does not know are dropped from the
    /// subscriptions first (the Java client skips them too: a topic not created yet must not
    /// stop the group).
    fn assign(
        &self,
        mut members: Vec<MemberSubscription>,
        context: &AssignContext,
    ) -> Result<Vec<SyncAssignment>, GroupError> {
        let Some(assignor) = self
            .generation
            .as_ref()
            .and_then(|g| self.assignors.get(g.assignor))
        else {
            return Err(GroupError::UnknownProtocol(None));
        };
        for member in &mut members {
            member.topics.retain(|t| {
                let known = context.partitions_per_topic.contains_key(t);
                if !known {
                    tracing::warn!(topic = %t, "no metadata for subscribed topic: not assigned");
                }
                known
            });
        }
        let group = assignor
            .assign(&members, context)
            .map_err(|e| GroupError::Assignor {
                assignor: assignor.name(),
                message: e.to_string(),
            })?;
        group
            .into_iter()
            .map(|(member_id, share)| {
                let payload = consumer_protocol::encode_assignment(
                    &Assignment {
                        partitions: share.partitions,
                        user_data: share.user_data,
                    },
                    consumer_protocol::MAX_VERSION,
                )
                .map_err(GroupError::Encode)?;
                Ok(SyncAssignment {
                    member_id,
                    assignment: payload,
                })
            })
            .collect()
    }
}
