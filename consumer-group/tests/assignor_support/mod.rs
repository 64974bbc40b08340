//! Shared helpers for the assignor tests: building subscriptions, checking invariants and
//! proptest strategies for random groups.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use mephisto_consumer_group::assignor::{AssignContext, GroupAssignment, MemberSubscription};
use proptest::prelude::*;

/// A dynamic member subscribed to `topics`, owning nothing.
pub fn member(id: &str, topics: &[&str]) -> MemberSubscription {
    MemberSubscription {
        member_id: id.to_owned(),
        group_instance_id: None,
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        owned_partitions: BTreeMap::new(),
        generation_id: -1,
        rack_id: None,
        user_data: None,
    }
}

/// A static member (with a group instance id).
pub fn static_member(id: &str, instance: &str, topics: &[&str]) -> MemberSubscription {
    MemberSubscription {
        group_instance_id: Some(instance.to_owned()),
        ..member(id, topics)
    }
}

/// A context with these partition counts.
pub fn context(topics: &[(&str, i32)]) -> AssignContext {
    AssignContext {
        partitions_per_topic: topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
        end_offsets: BTreeMap::new(),
    }
}

/// `[(topic, partition)]` as a sorted list.
pub fn tps(list: &[(&str, i32)]) -> Vec<(String, i32)> {
    let mut v: Vec<(String, i32)> = list.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect();
    v.sort();
    v
}

/// The partitions of one member, as a sorted list.
pub fn of(assignment: &GroupAssignment, member: &str) -> Vec<(String, i32)> {
    let mut v: Vec<(String, i32)> = assignment
        .get(member)
        .map(|a| {
            a.partitions
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Number of partitions of one member.
pub fn count(assignment: &GroupAssignment, member: &str) -> usize {
    of(assignment, member).len()
}

/// Owner of every assigned partition; panics (test failure) if one is assigned twice.
pub fn owners(assignment: &GroupAssignment) -> BTreeMap<(String, i32), String> {
    let mut owners = BTreeMap::new();
    for (m, a) in assignment {
        for (t, ps) in &a.partitions {
            let mut sorted = ps.clone();
            sorted.sort();
            assert_eq!(&sorted, ps, "partition lists are sorted");
            for p in ps {
                let prev = owners.insert((t.clone(), *p), m.clone());
                assert!(prev.is_none(), "{t}-{p} assigned to {m} and {prev:?}");
            }
        }
    }
    owners
}

/// Every partition of every subscribed topic.
pub fn all_partitions(
    members: &[MemberSubscription],
    ctx: &AssignContext,
) -> BTreeSet<(String, i32)> {
    let topics: BTreeSet<&String> = members.iter().flat_map(|m| m.topics.iter()).collect();
    topics
        .into_iter()
        .flat_map(|t| {
            let n = ctx.partitions_per_topic.get(t).copied().unwrap_or(0);
            (0..n).map(move |p| (t.clone(), p))
        })
        .collect()
}

/// Basic validity: one entry per member, nothing twice, only subscribed topics, partitions
/// that exist. Returns the owner map.
pub fn check_valid(
    members: &[MemberSubscription],
    ctx: &AssignContext,
    assignment: &GroupAssignment,
) -> BTreeMap<(String, i32), String> {
    let ids: BTreeSet<&String> = members.iter().map(|m| &m.member_id).collect();
    let keys: BTreeSet<&String> = assignment.keys().collect();
    assert_eq!(ids, keys, "one entry per member");
    let owners = owners(assignment);
    let all = all_partitions(members, ctx);
    for ((t, p), m) in &owners {
        assert!(all.contains(&(t.clone(), *p)), "{t}-{p} does not exist");
        let member = members.iter().find(|x| &x.member_id == m);
        assert!(
            member.is_some_and(|x| x.topics.contains(t)),
            "{m} got {t}-{p} without subscribing to {t}"
        );
    }
    owners
}

/// Every partition of a subscribed topic is assigned.
pub fn check_complete(
    members: &[MemberSubscription],
    ctx: &AssignContext,
    assignment: &GroupAssignment,
) {
    let owners = check_valid(members, ctx, assignment);
    let all = all_partitions(members, ctx);
    let assigned: BTreeSet<(String, i32)> = owners.keys().cloned().collect();
    assert_eq!(assigned, all, "every partition assigned exactly once");
}

/// Members with the same subscriptions hold counts within one, as measured by `count`.
pub fn check_balanced_by(members: &[MemberSubscription], count: impl Fn(&str) -> usize) {
    let mut classes: BTreeMap<BTreeSet<&String>, Vec<usize>> = BTreeMap::new();
    for m in members {
        classes
            .entry(m.topics.iter().collect())
            .or_default()
            .push(count(&m.member_id));
    }
    for (topics, counts) in classes {
        let lo = counts.iter().min().copied().unwrap_or(0);
        let hi = counts.iter().max().copied().unwrap_or(0);
        assert!(
            hi <= lo + 1,
            "members subscribed to {topics:?} hold {counts:?}"
        );
    }
}

/// Java's `validateCooperativeAssignment`: no partition is added to one member while being
/// revoked from another, over the claims given.
pub fn check_cooperative(
    claims: &BTreeMap<String, BTreeSet<(String, i32)>>,
    assignment: &GroupAssignment,
) {
    let mut added = BTreeSet::new();
    let mut revoked = BTreeSet::new();
    for (m, a) in assignment {
        let now: BTreeSet<(String, i32)> = of(assignment, m).into_iter().collect();
        let _ = a;
        let before = claims.get(m).cloned().unwrap_or_default();
        added.extend(now.difference(&before).cloned());
        revoked.extend(before.difference(&now).cloned());
    }
    let both: Vec<_> = added.intersection(&revoked).collect();
    assert!(both.is_empty(), "moved directly between owners: {both:?}");
}

/// A random group: members `m0..`, topics `t0..` with 1–30 partitions, random
/// subscriptions (possibly empty), random previous ownership (sometimes two claimants of a
/// partition) and generations 4 or 5 (80 % current).
#[derive(Debug, Clone)]
pub struct Group {
    pub members: Vec<MemberSubscription>,
    pub ctx: AssignContext,
}

pub fn arb_group() -> impl Strategy<Value = Group> {
    (1usize..=10, prop::collection::vec(1i32..=30, 1..=5)).prop_flat_map(|(n, counts)| {
        let topics = counts.len();
        let subs = prop::collection::vec(prop::collection::vec(any::<bool>(), topics), n);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let owners = prop::collection::vec(prop::option::of(0..n), total);
        // Occasionally a second claimant of the same partition (a zombie).
        let zombies = prop::collection::vec(prop::option::weighted(0.05, 0..n), total);
        let gens = prop::collection::vec(prop_oneof![4 => Just(5), 1 => Just(4)], n);
        (Just(counts), subs, owners, zombies, gens).prop_map(
            move |(counts, subs, owners, zombies, gens)| {
                let ctx = AssignContext {
                    partitions_per_topic: counts
                        .iter()
                        .enumerate()
                        .map(|(i, &c)| (format!("t{i}"), c))
                        .collect(),
                    end_offsets: BTreeMap::new(),
                };
                let mut members: Vec<MemberSubscription> = (0..n)
                    .map(|i| {
                        let topics: Vec<String> = subs[i]
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| **s)
                            .map(|(t, _)| format!("t{t}"))
                            .collect();
                        MemberSubscription {
                            member_id: format!("m{i}"),
                            group_instance_id: None,
                            topics,
                            owned_partitions: BTreeMap::new(),
                            generation_id: gens[i],
                            rack_id: None,
                            user_data: None,
                        }
                    })
                    .collect();
                let mut k = 0;
                for (t, &c) in counts.iter().enumerate() {
                    for p in 0..c {
                        for o in owners[k].iter().chain(zombies[k].iter()) {
                            let list = members[*o]
                                .owned_partitions
                                .entry(format!("t{t}"))
                                .or_default();
                            if !list.contains(&p) {
                                list.push(p);
                            }
                        }
                        k += 1;
                    }
                }
                Group { members, ctx }
            },
        )
    })
}

/// Claims that count for the cooperative rule: owned partitions of members of the highest
/// generation.
pub fn current_claims(members: &[MemberSubscription]) -> BTreeMap<String, BTreeSet<(String, i32)>> {
    let max = members.iter().map(|m| m.generation_id).max().unwrap_or(-1);
    members
        .iter()
        .filter(|m| m.generation_id == max)
        .map(|m| {
            let set = m
                .owned_partitions
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .collect();
            (m.member_id.clone(), set)
        })
        .collect()
}

/// The next generation's subscriptions: every member now owns what it was assigned.
pub fn next_round(
    members: &[MemberSubscription],
    assignment: &GroupAssignment,
) -> Vec<MemberSubscription> {
    let generation = members.iter().map(|m| m.generation_id).max().unwrap_or(0) + 1;
    members
        .iter()
        .map(|m| MemberSubscription {
            owned_partitions: assignment
                .get(&m.member_id)
                .map(|a| a.partitions.clone())
                .unwrap_or_default(),
            generation_id: generation,
            ..m.clone()
        })
        .collect()
}

/// A deterministic shuffle driven by `seed` (a linear congruential generator).
pub fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (seed >> 33) as usize % (i + 1);
        v.swap(i, j);
    }
}

/// Like [`arb_group`], but every member subscribes to the same (non-empty) topics.
pub fn arb_uniform_group() -> impl Strategy<Value = Group> {
    arb_group().prop_map(|mut g| {
        let topics: Vec<String> = g.ctx.partitions_per_topic.keys().cloned().collect();
        let pick: Vec<String> = match g.members.first() {
            Some(m) if !m.topics.is_empty() => m.topics.clone(),
            _ => topics,
        };
        for m in &mut g.members {
            m.topics = pick.clone();
        }
        g
    })
}

pub mod standby;
pub mod standby_oracle;

/// Java's `isBalanced` for mixed subscriptions: no member could hand one of its partitions to
/// a subscribed member holding at least two fewer.
pub fn check_no_improving_move(members: &[MemberSubscription], assignment: &GroupAssignment) {
    for a in members {
        for b in members {
            if count(assignment, &a.member_id) < count(assignment, &b.member_id) + 2 {
                continue;
            }
            for (t, p) in of(assignment, &a.member_id) {
                assert!(
                    !b.topics.contains(&t),
                    "{} could take {t}-{p} from {}",
                    b.member_id,
                    a.member_id
                );
            }
        }
    }
}
