//! Partition assignors: what the group leader runs between JoinGroup and SyncGroup.
//!
//! Every assignor implements [`Assignor`]. Members advertise several at once (in JoinGroup's
//! protocol list, by [`Assignor::name`]); the coordinator picks one that all members support,
//! and the leader runs it over every member's [`MemberSubscription`].

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

/// Whether an assignor revokes everything before a rebalance (eager) or only what moves
/// (cooperative, KIP-429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceProtocol {
    /// All partitions are revoked before JoinGroup.
    Eager,
    /// Only partitions that move are revoked, in a second rebalance.
    Cooperative,
}

pub use crate::topic_partition::TopicPartition;

/// One member's subscription as the leader sees it (decoded from JoinGroup's member metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member id the coordinator gave the member.
    pub member_id: String,
    /// The static membership id (`group.instance.id`), if any.
    pub group_instance_id: Option<String>,
    /// Topics the member subscribes to.
    pub topics: Vec<String>,
    /// Partitions the member owned in `generation_id` (cooperative protocol; empty otherwise).
    pub owned_partitions: BTreeMap<String, Vec<i32>>,
    /// The generation in which `owned_partitions` were owned (-1 when unknown).
    pub generation_id: i32,
    /// The rack of the member, if it advertised one.
    pub rack_id: Option<String>,
    /// Assignor-specific user data (for `mephisto-standby`: postcard-encoded state).
    pub user_data: Option<Bytes>,
}

/// What the leader knows about the cluster when it assigns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignContext {
    /// Partition count of every subscribed topic.
    pub partitions_per_topic: BTreeMap<String, i32>,
    /// End offsets (high watermarks) of changelog partitions, for assignors that weigh lag.
    pub end_offsets: BTreeMap<TopicPartition, i64>,
}

/// One member's share of an assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberAssignment {
    /// Partitions the member consumes, by topic, sorted.
    pub partitions: BTreeMap<String, Vec<i32>>,
    /// Assignor-specific user data sent back to the member (for `mephisto-standby`: the
    /// standby partitions it should keep warm).
    pub user_data: Option<Bytes>,
}

/// An assignment for the whole group, keyed by member id.
pub type GroupAssignment = BTreeMap<String, MemberAssignment>;

/// Errors an assignor can report to the leader.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssignError {
    /// A member subscribed to a topic whose partition count is unknown.
    #[error("no partition count known for subscribed topic `{0}`")]
    UnknownTopic(String),
    /// A member's user data could not be decoded.
    #[error("member `{member}` sent user data this assignor cannot read: {reason}")]
    BadUserData {
        /// The member.
        member: String,
        /// Why it could not be read.
        reason: String,
    },
    /// Two subscriptions carry the same member id (the coordinator never sends that).
    #[error("member id `{0}` appears more than once")]
    DuplicateMember(String),
    /// The user data for a member's assignment could not be encoded.
    #[error("could not encode the assignment user data for member `{member}`: {reason}")]
    EncodeUserData {
        /// The member.
        member: String,
        /// Why it could not be encoded.
        reason: String,
    },
}

/// A partition assignor, run by the group leader.
pub trait Assignor: Send + Sync {
    /// The protocol name advertised in JoinGroup (`range`, `roundrobin`, ...).
    fn name(&self) -> &'static str;
    /// Eager or cooperative.
    fn rebalance_protocol(&self) -> RebalanceProtocol;
    /// Computes the assignment of every member. Members not subscribed to a topic never get
    /// its partitions; every partition of a subscribed topic goes to exactly one member.
    fn assign(
        &self,
        members: &[MemberSubscription],
        context: &AssignContext,
    ) -> Result<GroupAssignment, AssignError>;

    /// The partitions whose end offsets (ListOffsets, latest) the leader must look up and
    /// pass in [`AssignContext::end_offsets`] before calling [`assign`](Self::assign) with
    /// these `members`. Empty (the default) for assignors that do not weigh lag.
    fn end_offsets_needed(&self, members: &[MemberSubscription]) -> BTreeSet<TopicPartition> {
        let _ = members;
        BTreeSet::new()
    }
}

mod balance;
mod common;
pub mod cooperative_sticky;
pub mod range;
pub mod round_robin;
pub mod standby;

pub use cooperative_sticky::CooperativeStickyAssignor;
pub use range::RangeAssignor;
pub use round_robin::RoundRobinAssignor;
pub use standby::{
    CoPartitionGroup, StandbyAssignmentData, StandbyAssignor, StandbyConfig,
    StandbySubscriptionData, UserDataError, STANDBY_USER_DATA_VERSION,
};
