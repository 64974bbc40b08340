//! `roundrobin`: Java's `RoundRobinAssignor` (and librdkafka's `roundrobin`), eager.
//!
//! All partitions of all subscribed topics are laid out sorted by topic (Java string order)
//! then partition. Members are sorted like Java's `MemberInfo` (static members first by
//! group instance id, then dynamic members by member id) and walked as a circle: each
//! partition goes to the next member in the circle subscribed to its topic, and the circle
//! moves past that member. With identical subscriptions the counts differ by at most one.

use super::common::{
    empty_assignment, give, java_member_cmp, normalise, sorted_by_member_id, subscribed_topics,
};
use super::{
    AssignContext, AssignError, Assignor, GroupAssignment, MemberSubscription, RebalanceProtocol,
};

/// Java's `RoundRobinAssignor`; protocol name `roundrobin`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl RoundRobinAssignor {
    /// The protocol name advertised in JoinGroup.
    pub const NAME: &'static str = "roundrobin";

    /// Creates the assignor.
    pub fn new() -> Self {
        Self
    }
}

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn rebalance_protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        context: &AssignContext,
    ) -> Result<GroupAssignment, AssignError> {
        let mut members = sorted_by_member_id(members)?;
        let topics = subscribed_topics(&members, context)?;
        let mut assignment = empty_assignment(&members);
        members.sort_by(|a, b| java_member_cmp(a, b));
        let mut next = 0usize;
        for (topic, count) in &topics {
            for p in 0..*count {
                // Java's CircularIterator: skip members not subscribed to the topic, give the
                // partition to the first one that is, and move past it. Some member is
                // subscribed (the topic came from a subscription), so this ends within one
                // turn of the circle.
                let found = (0..members.len())
                    .map(|step| (next + step) % members.len())
                    .find(|&i| members[i].topics.iter().any(|t| t == topic));
                if let Some(i) = found {
                    give(&mut assignment, &members[i].member_id, topic, p);
                    next = (i + 1) % members.len();
                }
            }
        }
        normalise(&mut assignment);
        Ok(assignment)
    }
}
