//! A minimal classic group coordinator for one member per group at a time: JoinGroup,
//! SyncGroup, Heartbeat and LeaveGroup (offsets are in [`super::offsets`]).
//!
//! A JoinGroup completes at once: the joiner becomes the group's only member and its leader (a
//! member already there is replaced and learns it from UNKNOWN_MEMBER_ID), the generation goes
//! up, and the group's protocol is the joiner's first. The leader computes the assignment, as
//! the classic protocol wants, and SyncGroup hands the leader's own share back. There are no
//! session timeouts and no rebalance delays: enough for Mephisto's `GroupConsumer`,
//! librdkafka's and aiokafka's (Faust's) group consumers, one process per group.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{lock, Shared};

/// Most groups kept; past it, groups without a member are forgotten (their offsets too).
const MAX_GROUPS: usize = 1024;
/// Longest member metadata or assignment kept, in bytes.
const MAX_MEMBER_DATA: usize = 1024 * 1024;

/// A committed offset and its metadata.
#[derive(Debug, Clone)]
pub(super) struct Committed {
    pub(super) offset: i64,
    pub(super) leader_epoch: i32,
    pub(super) metadata: Option<StrBytes>,
}

/// The group's one member.
#[derive(Debug)]
struct Member {
    id: StrBytes,
}

/// One group.
#[derive(Debug, Default)]
pub(super) struct Group {
    generation: i32,
    protocol_type: StrBytes,
    protocol: StrBytes,
    member: Option<Member>,
    /// Committed offsets by (topic, partition).
    pub(super) offsets: BTreeMap<(String, i32), Committed>,
}

impl Group {
    /// `Ok` if `member_id` is the member of `generation` (-1: any generation).
    pub(super) fn check(&self, member_id: &str, generation: i32) -> Result<(), ResponseError> {
        match &self.member {
            Some(m) if m.id.as_str() == member_id => {
                if generation < 0 || generation == self.generation {
                    Ok(())
                } else {
                    Err(ResponseError::IllegalGeneration)
                }
            }
            _ => Err(ResponseError::UnknownMemberId),
        }
    }
}

/// Every group.
#[derive(Debug, Default)]
pub(super) struct Groups {
    map: HashMap<String, Group>,
    next_member: AtomicU64,
}

impl Groups {
    /// Group `id`, made if missing; `None` if [`MAX_GROUPS`] groups with members exist.
    pub(super) fn entry(&mut self, id: &str) -> Option<&mut Group> {
        if !self.map.contains_key(id) && self.map.len() >= MAX_GROUPS {
            self.map.retain(|_, g| g.member.is_some());
            if self.map.len() >= MAX_GROUPS {
                return None;
            }
        }
        Some(self.map.entry(id.to_owned()).or_default())
    }

    pub(super) fn get(&self, id: &str) -> Option<&Group> {
        self.map.get(id)
    }

    fn new_member_id(&self, client: &str) -> StrBytes {
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        StrBytes::from_string(format!("{client}-replay-{n}"))
    }
}

fn join_error(error: ResponseError, version: i16) -> JoinGroupResponse {
    versioned_join(
        JoinGroupResponse::default()
            .with_error_code(error.code())
            .with_generation_id(-1),
        version,
    )
}

/// Drops fields a JoinGroup response version does not have.
fn versioned_join(mut response: JoinGroupResponse, version: i16) -> JoinGroupResponse {
    if version < 7 {
        response.protocol_type = None;
        if response.protocol_name.is_none() {
            response.protocol_name = Some(StrBytes::default());
        }
    }
    response
}

impl Shared {
    /// JoinGroup: the joiner becomes the only member and the leader of a new generation.
    pub(super) fn join_group(
        &self,
        request: &JoinGroupRequest,
        client_id: &str,
        version: i16,
    ) -> JoinGroupResponse {
        let Some(first) = request.protocols.first() else {
            return join_error(ResponseError::InconsistentGroupProtocol, version);
        };
        if request.group_id.is_empty() {
            return join_error(ResponseError::InvalidGroupId, version);
        }
        if first.metadata.len() > MAX_MEMBER_DATA {
            return join_error(ResponseError::InvalidRequest, version);
        }
        let mut groups = lock(&self.groups);
        let member_id = if request.member_id.is_empty() {
            groups.new_member_id(client_id)
        } else {
            request.member_id.clone()
        };
        let Some(group) = groups.entry(request.group_id.as_str()) else {
            return join_error(ResponseError::CoordinatorNotAvailable, version);
        };
        group.generation = group.generation.wrapping_add(1).max(1);
        group.protocol_type = request.protocol_type.clone();
        group.protocol = first.name.clone();
        group.member = Some(Member {
            id: member_id.clone(),
        });
        let members = vec![JoinGroupResponseMember::default()
            .with_member_id(member_id.clone())
            .with_metadata(first.metadata.clone())];
        versioned_join(
            JoinGroupResponse::default()
                .with_generation_id(group.generation)
                .with_protocol_type(Some(group.protocol_type.clone()))
                .with_protocol_name(Some(group.protocol.clone()))
                .with_leader(member_id.clone())
                .with_member_id(member_id)
                .with_members(members),
            version,
        )
    }

    /// SyncGroup: the leader (the only member) sends the assignment and gets its share back.
    pub(super) fn sync_group(&self, request: &SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let mut groups = lock(&self.groups);
        let error = |e: ResponseError| SyncGroupResponse::default().with_error_code(e.code());
        let Some(group) = groups.entry(request.group_id.as_str()) else {
            return error(ResponseError::CoordinatorNotAvailable);
        };
        if let Err(e) = group.check(request.member_id.as_str(), request.generation_id) {
            return error(e);
        }
        let mine = request
            .assignments
            .iter()
            .find(|a| a.member_id == request.member_id)
            .map(|a| a.assignment.clone())
            .unwrap_or_default();
        if mine.len() > MAX_MEMBER_DATA {
            return error(ResponseError::InvalidRequest);
        }
        let response = SyncGroupResponse::default().with_assignment(mine);
        if version >= 5 {
            response
                .with_protocol_type(Some(group.protocol_type.clone()))
                .with_protocol_name(Some(group.protocol.clone()))
        } else {
            response
        }
    }

    /// Heartbeat: fine while the member and generation are current.
    pub(super) fn heartbeat(&self, request: &HeartbeatRequest) -> HeartbeatResponse {
        let groups = lock(&self.groups);
        let result = match groups.get(request.group_id.as_str()) {
            Some(group) => group.check(request.member_id.as_str(), request.generation_id),
            None => Err(ResponseError::UnknownMemberId),
        };
        HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
    }

    /// LeaveGroup: the member (v0–2) or members (v3+) leave; the group keeps its offsets.
    pub(super) fn leave_group(
        &self,
        request: &LeaveGroupRequest,
        version: i16,
    ) -> LeaveGroupResponse {
        let mut groups = lock(&self.groups);
        let Some(group) = groups.entry(request.group_id.as_str()) else {
            return LeaveGroupResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code());
        };
        let mut leave = |id: &StrBytes| -> i16 {
            match &group.member {
                Some(m) if &m.id == id => {
                    group.member = None;
                    0
                }
                _ => ResponseError::UnknownMemberId.code(),
            }
        };
        if version < 3 {
            return LeaveGroupResponse::default().with_error_code(leave(&request.member_id));
        }
        let members = request
            .members
            .iter()
            .map(|m| {
                MemberResponse::default()
                    .with_member_id(m.member_id.clone())
                    .with_group_instance_id(m.group_instance_id.clone())
                    .with_error_code(leave(&m.member_id))
            })
            .collect();
        LeaveGroupResponse::default().with_members(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_member_at_a_time() {
        let mut groups = Groups::default();
        let g = groups.entry("g").unwrap();
        assert_eq!(g.check("m", -1), Err(ResponseError::UnknownMemberId));
        g.generation = 3;
        g.member = Some(Member {
            id: StrBytes::from_static_str("m"),
        });
        assert_eq!(g.check("m", 3), Ok(()));
        assert_eq!(g.check("m", -1), Ok(()));
        assert_eq!(g.check("m", 2), Err(ResponseError::IllegalGeneration));
        assert_eq!(g.check("n", 3), Err(ResponseError::UnknownMemberId));
        assert_ne!(groups.new_member_id("c"), groups.new_member_id("c"));
    }
}
