//! What the member asks the engine to send: version-independent requests carrying every
//! field any version may need. The engine picks the negotiated version and builds the
//! `kafka-protocol` message, dropping fields that version cannot carry.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::topic_partition::TopicPartition;

/// Identifies one request; the engine hands it back with the response (or failure).
///
/// Ids are unique per [`Member`](super::Member) and increase. A response whose id the member no
/// longer waits for is stale and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// The group coordinator broker, as FindCoordinator returned it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Coordinator {
    /// Broker node id.
    pub node_id: i32,
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: i32,
}

/// Where a request must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Any broker (FindCoordinator, the leader's metadata lookup).
    AnyBroker,
    /// The group coordinator.
    Coordinator(Coordinator),
}

/// A request for the engine to send. The engine must answer every one exactly once with
/// [`Member::handle_response`](super::Member::handle_response): the response, or
/// [`ResponseEvent::Failed`](super::ResponseEvent::Failed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a group request must be sent and answered"]
pub struct GroupRequest {
    /// Id to hand back with the answer.
    pub id: RequestId,
    /// Where to send it.
    pub target: Target,
    /// What to send.
    pub body: RequestBody,
}

/// The requests of the classic group protocol, plus the leader's metadata lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// FindCoordinator (api 10) for a group key.
    FindCoordinator(FindCoordinatorRequest),
    /// JoinGroup (api 11).
    JoinGroup(JoinGroupRequest),
    /// SyncGroup (api 14).
    SyncGroup(SyncGroupRequest),
    /// Heartbeat (api 12).
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup (api 13).
    LeaveGroup(LeaveGroupRequest),
    /// Not a Kafka request: the leader needs partition counts (Metadata) and, for assignors
    /// that weigh lag, end offsets (ListOffsets) before it can assign. Answer with
    /// [`ResponseEvent::AssignmentMetadata`](super::ResponseEvent::AssignmentMetadata).
    AssignmentMetadata(AssignmentMetadataRequest),
}

impl RequestBody {
    /// The kind of request, for logs and failure reports.
    pub fn kind(&self) -> ApiKind {
        match self {
            RequestBody::FindCoordinator(_) => ApiKind::FindCoordinator,
            RequestBody::JoinGroup(_) => ApiKind::JoinGroup,
            RequestBody::SyncGroup(_) => ApiKind::SyncGroup,
            RequestBody::Heartbeat(_) => ApiKind::Heartbeat,
            RequestBody::LeaveGroup(_) => ApiKind::LeaveGroup,
            RequestBody::AssignmentMetadata(_) => ApiKind::AssignmentMetadata,
        }
    }
}

/// The APIs the member deals with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiKind {
    /// FindCoordinator.
    FindCoordinator,
    /// JoinGroup.
    JoinGroup,
    /// SyncGroup.
    SyncGroup,
    /// Heartbeat.
    Heartbeat,
    /// LeaveGroup.
    LeaveGroup,
    /// OffsetCommit (sent by the engine; errors fed back through
    /// [`Member::handle_commit_error`](super::Member::handle_commit_error)).
    OffsetCommit,
    /// The leader's metadata lookup.
    AssignmentMetadata,
}

impl std::fmt::Display for ApiKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// FindCoordinator for a consumer group (key type 0). v4+ sends `key` as the single entry of
/// `CoordinatorKeys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindCoordinatorRequest {
    /// The group id.
    pub key: String,
}

/// One protocol (assignor) advertised in JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinProtocol {
    /// The assignor name.
    pub name: String,
    /// The `ConsumerProtocolSubscription` payload.
    pub metadata: Bytes,
}

/// JoinGroup, all versions' fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupRequest {
    /// The group id.
    pub group_id: String,
    /// Session timeout in milliseconds.
    pub session_timeout_ms: i32,
    /// Rebalance timeout in milliseconds (v1+; the max poll interval).
    pub rebalance_timeout_ms: i32,
    /// Our member id, empty on the first join.
    pub member_id: String,
    /// Static membership id (v5+).
    pub group_instance_id: Option<String>,
    /// Always `"consumer"`.
    pub protocol_type: String,
    /// Our assignors, in preference order.
    pub protocols: Vec<JoinProtocol>,
    /// Why we (re)join (v8+).
    pub reason: Option<String>,
}

/// One member's assignment in the leader's SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncAssignment {
    /// The member.
    pub member_id: String,
    /// The `ConsumerProtocolAssignment` payload.
    pub assignment: Bytes,
}

/// SyncGroup, all versions' fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupRequest {
    /// The group id.
    pub group_id: String,
    /// The generation the JoinGroup response gave.
    pub generation_id: i32,
    /// Our member id.
    pub member_id: String,
    /// Static membership id (v3+).
    pub group_instance_id: Option<String>,
    /// `"consumer"` (v5+).
    pub protocol_type: String,
    /// The chosen assignor (v5+).
    pub protocol_name: String,
    /// The leader's assignments; empty for followers.
    pub assignments: Vec<SyncAssignment>,
    /// Not on the wire: the rebalance timeout in milliseconds (the max poll interval). The
    /// coordinator holds a follower's SyncGroup until the leader's arrives, which may take
    /// the whole rebalance, so the engine waits this long plus its request timeout.
    pub rebalance_timeout_ms: i32,
}

/// Heartbeat, all versions' fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The group id.
    pub group_id: String,
    /// Our current generation.
    pub generation_id: i32,
    /// Our member id.
    pub member_id: String,
    /// Static membership id (v3+).
    pub group_instance_id: Option<String>,
}

/// One member leaving (LeaveGroup v3+ `Members` entry; v0–2 carry only `member_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    /// The member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Why we leave (v5+).
    pub reason: Option<String>,
}

/// LeaveGroup, all versions' fields. Only dynamic members send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    /// The group id.
    pub group_id: String,
    /// Members leaving (always exactly us).
    pub members: Vec<LeavingMember>,
}

/// The leader's lookup before assigning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentMetadataRequest {
    /// Every topic some member subscribes to: the engine answers with their partition
    /// counts (topics it cannot find are left out).
    pub topics: BTreeSet<String>,
    /// Partitions whose end offsets (ListOffsets, latest) the chosen assignor weighs (for
    /// `mephisto-standby`: the changelog partitions the members' user data names, see
    /// [`Assignor::end_offsets_needed`](crate::assignor::Assignor::end_offsets_needed)): the
    /// engine answers with them in
    /// [`AssignContext::end_offsets`](crate::assignor::AssignContext::end_offsets), leaving
    /// out those it could not look up. Empty for assignors that do not weigh lag.
    pub end_offsets: BTreeSet<TopicPartition>,
}
