//! `range`: Java's `RangeAssignor` (and librdkafka's `range`), eager.
//!
//! Per topic, the members subscribed to it are sorted the way Java's
//! `AbstractPartitionAssignor.MemberInfo` sorts them (static members first, by group instance
//! id; then dynamic members by member id; strings compared as UTF-16 like `String.compareTo`).
//! The partitions `0..n` are cut into contiguous ranges of `n / m`; the first `n % m` members
//! get one more. Topics are independent, so a member subscribed to many topics can end up
//! with several "extra" partitions: balance holds per topic, not across topics (by design,
//! as in Java).
//!
//! Not reproduced: Java's KIP-881 rack-aware variant, which needs the replica racks of every
//! partition; [`AssignContext`] does not carry them, and Java also falls back to this plain
//! algorithm when partition racks are unknown. librdkafka orders a static member against a
//! dynamic one by member id where Java puts the static one first; groups mixing both kinds
//! can therefore differ between a librdkafka leader and a Java or Mephisto leader.

use super::common::{
    empty_assignment, give, java_member_cmp, normalise, sorted_by_member_id, subscribed_topics,
};
use super::{
    AssignContext, AssignError, Assignor, GroupAssignment, MemberSubscription, RebalanceProtocol,
};

/// Java's `RangeAssignor`; protocol name `range`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl RangeAssignor {
    /// The protocol name advertised in JoinGroup.
    pub const NAME: &'static str = "range";

    /// Creates the assignor.
    pub fn new() -> Self {
        Self
    }
}

impl Assignor for RangeAssignor {
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
        let members = sorted_by_member_id(members)?;
        let topics = subscribed_topics(&members, context)?;
        let mut assignment = empty_assignment(&members);
        for (topic, count) in &topics {
            let mut subscribers: Vec<&MemberSubscription> = members
                .iter()
                .copied()
                .filter(|m| m.topics.iter().any(|t| t == topic))
                .collect();
            subscribers.sort_by(|a, b| java_member_cmp(a, b));
            let ranges = split_ranges(*count, subscribers.len());
            for (member, range) in subscribers.iter().zip(ranges) {
                for p in range {
                    give(&mut assignment, &member.member_id, topic, p);
                }
            }
        }
        normalise(&mut assignment);
        Ok(assignment)
    }
}

/// Splits `0..count` into `members` contiguous ranges; the first `count % members` ranges
/// are one longer (Java: `start = per * i + min(i, extra)`).
fn split_ranges(count: i32, members: usize) -> Vec<std::ops::Range<i32>> {
    let Ok(m) = i32::try_from(members) else {
        return Vec::new();
    };
    if m == 0 || count <= 0 {
        return Vec::new();
    }
    let per = count / m;
    let extra = count % m;
    (0..m)
        .map(|i| {
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            start..start + len
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::split_ranges;

    #[test]
    fn ranges_cover_everything_once() {
        assert_eq!(split_ranges(3, 2), vec![0..2, 2..3]);
        assert_eq!(split_ranges(1, 2), vec![0..1, 1..1]);
        assert_eq!(split_ranges(7, 3), vec![0..3, 3..5, 5..7]);
        assert!(split_ranges(5, 0).is_empty());
    }
}
