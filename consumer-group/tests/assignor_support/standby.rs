//! Helpers for `mephisto-standby` tests: building members with user data, reading the
//! assignment user data, and simulating the members between rounds.

use std::collections::BTreeMap;

use mephisto_consumer_group::assignor::{
    AssignContext, GroupAssignment, MemberSubscription, StandbyAssignmentData,
    StandbySubscriptionData, TopicPartition,
};

/// A member subscribed to `topics` that sends `data`.
pub fn standby_member(
    id: &str,
    topics: &[&str],
    generation: i32,
    data: &StandbySubscriptionData,
) -> MemberSubscription {
    MemberSubscription {
        member_id: id.to_owned(),
        group_instance_id: None,
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        owned_partitions: data.active.clone(),
        generation_id: generation,
        rack_id: None,
        user_data: Some(data.encode().expect("encode")),
    }
}

/// The decoded assignment user data of a member.
pub fn data_of(assignment: &GroupAssignment, member: &str) -> StandbyAssignmentData {
    let bytes = assignment
        .get(member)
        .and_then(|a| a.user_data.clone())
        .expect("user data");
    StandbyAssignmentData::decode(&bytes).expect("decode")
}

/// The decoded subscription user data of a member.
pub fn sub_data(member: &MemberSubscription) -> StandbySubscriptionData {
    match member.user_data.as_deref() {
        None | Some([]) => StandbySubscriptionData::default(),
        Some(b) => StandbySubscriptionData::decode(b).expect("decode"),
    }
}

/// `topic → [partitions]` from a list.
pub fn map(list: &[(&str, i32)]) -> BTreeMap<String, Vec<i32>> {
    let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in list {
        m.entry((*t).to_owned()).or_default().push(*p);
    }
    for v in m.values_mut() {
        v.sort();
        v.dedup();
    }
    m
}

/// The changelog partitions of a consumed partition.
pub type ChangelogsOf<'a> = dyn Fn(&str, i32) -> Vec<(String, i32)> + 'a;

/// How members' state evolves between rounds in a simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catch {
    /// Only what members ran (before and after the round) is up to date; standby, warm-up and
    /// pending offsets stay as they were.
    ActivesOnly,
    /// Everything a member keeps (actives, standbys, warm-ups, pending) is fully applied.
    Everything,
}

/// The next round's subscriptions: members own what they were given, report their standby,
/// warm-up and pending partitions, and their applied offsets according to `catch`.
/// `changelog_of(topic, p)` lists the changelog partitions of a consumed partition.
pub fn next_standby_round(
    members: &[MemberSubscription],
    assignment: &GroupAssignment,
    ctx: &AssignContext,
    changelogs_of: &ChangelogsOf<'_>,
    catch: Catch,
) -> Vec<MemberSubscription> {
    let generation = members.iter().map(|m| m.generation_id).max().unwrap_or(0) + 1;
    members
        .iter()
        .map(|m| {
            let prev = sub_data(m);
            let given = data_of(assignment, &m.member_id);
            let active = assignment
                .get(&m.member_id)
                .map(|a| a.partitions.clone())
                .unwrap_or_default();
            let mut data = StandbySubscriptionData::from_previous(&active, Some(&given));
            data.applied_offsets = prev.applied_offsets.clone();
            // Running a unit keeps its state current: what the member owned until now
            // (revoked or not) and what it runs from now on.
            let mut up_to_date: Vec<(String, i32)> = Vec::new();
            // (Only current-generation owners were running; stale claims are not.)
            let current = m.generation_id == generation - 1;
            let owned_before = m
                .owned_partitions
                .iter()
                .chain(prev.active.iter())
                .filter(|_| current);
            for (t, ps) in owned_before.chain(active.iter()) {
                for p in ps {
                    up_to_date.extend(changelogs_of(t, *p));
                }
            }
            if catch == Catch::Everything {
                for (t, ps) in given.partitions_to_keep_warm() {
                    up_to_date.extend(ps.into_iter().map(|p| (t.clone(), p)));
                }
                for (t, ps) in &given.pending {
                    for p in ps {
                        up_to_date.extend(changelogs_of(t, *p));
                    }
                }
            }
            for (t, p) in up_to_date {
                let end = ctx
                    .end_offsets
                    .get(&TopicPartition::new(t.as_str(), p))
                    .copied()
                    .unwrap_or(0);
                data.set_applied_offset(&t, p, end);
            }
            MemberSubscription {
                owned_partitions: active,
                generation_id: generation,
                user_data: Some(data.encode().expect("encode")),
                ..m.clone()
            }
        })
        .collect()
}
