//! `cooperative-sticky`: KIP-429 incremental cooperative rebalancing, with the guarantees of
//! Java's `CooperativeStickyAssignor` (not its exact output, which only the leader needs).
//!
//! # Algorithm
//! 1. **Claims.** A member's owned partitions count only if its generation is the highest in
//!    the group (claims from older generations are stale and ignored, as in Java) and the
//!    partition exists. The generation is `MemberSubscription::generation_id`, or, when that
//!    is `-1` (subscription v0/v1), the big-endian `i32` Java's assignor puts in the user
//!    data ([`CooperativeStickyAssignor::subscription_user_data`]).
//! 2. **Sticky.** Each partition stays with its claimant if the claimant still subscribes to
//!    the topic. Two current claimants of one partition: the first in member-id order keeps
//!    it (Java drops the partition from both; keeping one moves less).
//! 3. **Fill.** Unclaimed partitions, in topic then partition order, go to the least-loaded
//!    subscribed member (ties: member id).
//! 4. **Balance.** Chains of moves are applied while one lowers the spread
//!    (the shared `balance` module), until the sum of squared counts is minimal; chains that
//!    take fewer partitions from their claimants win. Members with the same subscriptions
//!    end within one; mixed subscriptions are balanced as well as eligibility allows.
//! 5. **Cooperative rule.** A partition whose target is not one of its current claimants is
//!    left unassigned in this round: its claimant, not seeing it any more, revokes it and
//!    rejoins, and the follow-up rebalance (where nobody claims it) gives it out. A partition
//!    therefore never moves directly from one owner to another.
//!
//! With unchanged membership and subscriptions, feeding an assignment back as the owned
//! partitions reproduces it: a balanced placement has no move left to make. And the
//! follow-up round revokes nothing: the partitions left out in round one can be placed to
//! reach the same minimal spread without moving any owned partition, and such chains are
//! the cheapest, so all partitions are assigned after exactly one follow-up round.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::balance::Placement;
use super::common::{
    current_generations, empty_assignment, existing_claims, give, normalise, sorted_by_member_id,
    subscribed_topics,
};
use super::{
    AssignContext, AssignError, Assignor, GroupAssignment, MemberSubscription, RebalanceProtocol,
    TopicPartition,
};

/// KIP-429 cooperative sticky assignor; protocol name `cooperative-sticky`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

impl CooperativeStickyAssignor {
    /// The protocol name advertised in JoinGroup (the same as Java's and librdkafka's).
    pub const NAME: &'static str = "cooperative-sticky";

    /// Creates the assignor.
    pub fn new() -> Self {
        Self
    }

    /// The subscription user data Java's `CooperativeStickyAssignor` sends: the generation
    /// as a big-endian `i32`. Java leaders read it when the subscription is older than v2.
    pub fn subscription_user_data(generation: i32) -> Bytes {
        Bytes::copy_from_slice(&generation.to_be_bytes())
    }

    /// The generation a member's owned partitions belong to: the subscription's
    /// `generation_id` if set, else the one encoded in Java's user data, else `-1`.
    pub fn member_generation(member: &MemberSubscription) -> i32 {
        if member.generation_id >= 0 {
            return member.generation_id;
        }
        match member.user_data.as_deref() {
            Some([a, b, c, d, ..]) => i32::from_be_bytes([*a, *b, *c, *d]).max(-1),
            _ => -1,
        }
    }
}

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn rebalance_protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Cooperative
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        context: &AssignContext,
    ) -> Result<GroupAssignment, AssignError> {
        let members = sorted_by_member_id(members)?;
        let topics = subscribed_topics(&members, context)?;
        let problem = Problem::new(&members, &topics);
        let mut placement = Placement::new(problem.items.len(), members.len());

        // Sticky: the first eligible claimant keeps the partition.
        for (item, claimants) in problem.claimants.iter().enumerate() {
            let keeper = claimants
                .iter()
                .copied()
                .find(|m| problem.eligible[item].contains(m));
            if let Some(m) = keeper {
                placement.put(item, m);
            }
        }
        // The most constrained partitions (fewest subscribers) first.
        let mut order: Vec<usize> = (0..problem.items.len()).collect();
        order.sort_by_key(|&item| (problem.eligible[item].len(), item));
        placement.fill(&order, &problem.eligible, |_, _| ());
        placement.balance(&problem.eligible, |item, from, to| {
            let claimants = &problem.claimants[item];
            // A move that takes the partition from a claimant to a non-claimant costs a
            // revocation round; prefer any other, then shorter chains.
            let revokes = claimants.contains(&from) && !claimants.contains(&to);
            [u64::from(revokes), 0, 0, 0, 1]
        });

        let mut assignment = empty_assignment(&members);
        for (item, &(topic, partition)) in problem.items.iter().enumerate() {
            let Some(m) = placement.holder_of(item) else {
                continue;
            };
            let claimants = &problem.claimants[item];
            if !claimants.is_empty() && !claimants.contains(&m) {
                tracing::debug!(
                    topic = %topics[topic].0,
                    partition,
                    to = %members[m].member_id,
                    "cooperative-sticky: partition withheld until its owner revokes it"
                );
                continue;
            }
            give(
                &mut assignment,
                &members[m].member_id,
                &topics[topic].0,
                partition,
            );
        }
        normalise(&mut assignment);
        Ok(assignment)
    }
}

/// The assignment problem in index form: items are `(topic index, partition)`.
struct Problem {
    items: Vec<(usize, i32)>,
    /// Members subscribed to each item's topic, ascending.
    eligible: Vec<Vec<usize>>,
    /// Current-generation claimants of each item, ascending.
    claimants: Vec<Vec<usize>>,
}

impl Problem {
    fn new(members: &[&MemberSubscription], topics: &[(String, i32)]) -> Self {
        let mut items = Vec::new();
        let mut index = BTreeMap::new();
        let mut eligible = Vec::new();
        for (t, (topic, count)) in topics.iter().enumerate() {
            let subscribers: Vec<usize> = members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.topics.iter().any(|x| x == topic))
                .map(|(i, _)| i)
                .collect();
            for p in 0..*count {
                index.insert((topic.as_str(), p), items.len());
                items.push((t, p));
                eligible.push(subscribers.clone());
            }
        }
        let counts: BTreeMap<&str, i32> = topics.iter().map(|(t, n)| (t.as_str(), *n)).collect();
        let generations: Vec<i32> = members
            .iter()
            .map(|m| CooperativeStickyAssignor::member_generation(m))
            .collect();
        let current = current_generations(&generations);
        let mut claimants = vec![Vec::new(); items.len()];
        for (m, member) in members.iter().enumerate() {
            if !current[m] {
                continue;
            }
            let claims: BTreeSet<TopicPartition> =
                existing_claims(&member.owned_partitions, &counts);
            for tp in &claims {
                if let Some(&item) = index.get(&(&*tp.topic, tp.partition)) {
                    claimants[item].push(m);
                }
            }
        }
        Self {
            items,
            eligible,
            claimants,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CooperativeStickyAssignor;
    use crate::assignor::MemberSubscription;

    #[test]
    fn generation_falls_back_to_java_user_data() {
        let mut m = MemberSubscription {
            member_id: "a".into(),
            group_instance_id: None,
            topics: vec![],
            owned_partitions: Default::default(),
            generation_id: -1,
            rack_id: None,
            user_data: Some(CooperativeStickyAssignor::subscription_user_data(7)),
        };
        assert_eq!(CooperativeStickyAssignor::member_generation(&m), 7);
        m.generation_id = 9;
        assert_eq!(CooperativeStickyAssignor::member_generation(&m), 9);
        m.generation_id = -1;
        m.user_data = Some(bytes::Bytes::from_static(&[1, 2]));
        assert_eq!(CooperativeStickyAssignor::member_generation(&m), -1);
    }
}
