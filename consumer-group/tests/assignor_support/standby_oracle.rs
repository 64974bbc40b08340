//! An independent model of `mephisto-standby`'s inputs for property tests: random cases,
//! units, lags, and the invariants every assignment must satisfy.

use std::collections::{BTreeMap, BTreeSet};

use mephisto_consumer_group::assignor::{
    AssignContext, CoPartitionGroup, GroupAssignment, MemberSubscription, StandbyConfig,
    StandbySubscriptionData, TopicPartition,
};
use proptest::prelude::*;

use super::standby::{data_of, sub_data};
use super::{check_cooperative, check_valid, of};

/// One configured co-partitioned group of a random case.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub topics: Vec<String>,
    pub changelogs: Vec<String>,
    pub count: i32,
}

/// A random `mephisto-standby` case.
#[derive(Debug, Clone)]
pub struct Case {
    pub members: Vec<MemberSubscription>,
    pub ctx: AssignContext,
    pub config: StandbyConfig,
    pub groups: Vec<GroupSpec>,
    /// Consumed topics outside every group.
    pub free: Vec<String>,
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if bound == 0 {
            0
        } else {
            (self.0 >> 33) % bound
        }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next(100) < percent
    }
}

/// Random groups: 1–10 members, 1–2 co-partitioned groups (1–2 consumed topics, 0–2
/// changelogs, 1–30 partitions) and 0–1 free topic; random subscriptions (mostly whole
/// groups, sometimes partial), previous owners, standbys, warm-ups, pending promises,
/// applied offsets, end offsets and generations; random configuration.
pub fn arb_case() -> impl Strategy<Value = Case> {
    (
        1usize..=10,
        prop::collection::vec((1usize..=2, 0usize..=2, 1i32..=30, any::<bool>()), 1..=2),
        prop::option::of(1i32..=30),
        (
            0usize..=3,
            prop_oneof![Just(0u64), 0u64..=20_000],
            0usize..=3,
        ),
        any::<u64>(),
    )
        .prop_map(|(n, specs, free, (standbys, lag, warmups), seed)| {
            build_case(n, &specs, free, standbys, lag, warmups, seed)
        })
}

fn build_case(
    n: usize,
    specs: &[(usize, usize, i32, bool)],
    free: Option<i32>,
    standbys: usize,
    lag: u64,
    warmups: usize,
    seed: u64,
) -> Case {
    let mut rng = Lcg(seed);
    let groups: Vec<GroupSpec> = specs
        .iter()
        .enumerate()
        .map(|(g, &(topics, logs, count, _))| GroupSpec {
            topics: (0..topics).map(|i| format!("g{g}-t{i}")).collect(),
            changelogs: (0..logs).map(|i| format!("g{g}-log{i}")).collect(),
            count,
        })
        .collect();
    let free: Vec<(String, i32)> = free.map(|c| ("free".to_owned(), c)).into_iter().collect();
    let mut ctx = AssignContext::default();
    for g in &groups {
        for t in g.topics.iter().chain(&g.changelogs) {
            ctx.partitions_per_topic.insert(t.clone(), g.count);
        }
        for c in &g.changelogs {
            for p in 0..g.count {
                if rng.chance(95) {
                    let end = rng.next(30_001) as i64;
                    ctx.end_offsets
                        .insert(TopicPartition::new(c.as_str(), p), end);
                }
            }
        }
    }
    for (t, c) in &free {
        ctx.partitions_per_topic.insert(t.clone(), *c);
    }
    let mut members = Vec::new();
    for m in 0..n {
        let mut topics = Vec::new();
        for (g, spec) in groups.iter().zip(specs) {
            let subscribes_logs = spec.3;
            let mut consumed: Vec<String> = g.topics.clone();
            if subscribes_logs {
                consumed.extend(g.changelogs.iter().cloned());
            }
            let roll = rng.next(100);
            if roll < 70 {
                topics.extend(consumed);
            } else if roll < 80 {
                topics.extend(consumed.into_iter().filter(|_| rng.chance(50)));
            }
        }
        for (t, _) in &free {
            if rng.chance(60) {
                topics.push(t.clone());
            }
        }
        members.push(MemberSubscription {
            member_id: format!("m{m}"),
            group_instance_id: None,
            topics,
            owned_partitions: BTreeMap::new(),
            generation_id: if rng.chance(80) { 5 } else { 4 },
            rack_id: None,
            user_data: None,
        });
    }
    let mut data = vec![StandbySubscriptionData::new(); n];
    let add = |map: &mut BTreeMap<String, Vec<i32>>, t: &str, p: i32| {
        let v = map.entry(t.to_owned()).or_default();
        if !v.contains(&p) {
            v.push(p);
            v.sort();
        }
    };
    for g in &groups {
        for p in 0..g.count {
            if rng.chance(60) {
                let owner = rng.next(n as u64) as usize;
                for t in g.topics.iter().chain(&g.changelogs) {
                    if members[owner].topics.contains(t) || rng.chance(20) {
                        add(&mut data[owner].active, t, p);
                    }
                }
            }
            if rng.chance(5) {
                // A zombie claim on one partition.
                let other = rng.next(n as u64) as usize;
                add(&mut data[other].active, &g.topics[0], p);
            }
            for (m, d) in data.iter_mut().enumerate() {
                let _ = m;
                for c in &g.changelogs {
                    if rng.chance(40) {
                        let end = ctx
                            .end_offsets
                            .get(&TopicPartition::new(c.as_str(), p))
                            .copied()
                            .unwrap_or(0);
                        let applied = rng.next(end as u64 + 200) as i64 - 5;
                        d.set_applied_offset(c, p, applied);
                    }
                }
                let roll = rng.next(100);
                if roll < 25 {
                    for c in &g.changelogs {
                        add(&mut d.standby, c, p);
                    }
                } else if roll < 30 {
                    for c in &g.changelogs {
                        add(&mut d.warmup, c, p);
                    }
                } else if roll < 33 {
                    for t in &g.topics {
                        add(&mut d.pending, t, p);
                    }
                }
            }
        }
    }
    for (t, c) in &free {
        for p in 0..*c {
            if rng.chance(50) {
                let owner = rng.next(n as u64) as usize;
                add(&mut data[owner].active, t, p);
            }
        }
    }
    for (m, d) in members.iter_mut().zip(&data) {
        m.owned_partitions = d.active.clone();
        m.user_data = Some(d.encode().expect("encode"));
    }
    Case {
        members,
        ctx,
        config: StandbyConfig {
            num_standby_replicas: standbys,
            acceptable_recovery_lag: lag,
            max_warmup_replicas: warmups,
            co_partitioned: groups
                .iter()
                .map(|g| CoPartitionGroup::new(g.topics.clone(), g.changelogs.clone()))
                .collect(),
        },
        groups,
        free: free.into_iter().map(|(t, _)| t).collect(),
    }
}

/// A unit as the oracle sees it.
#[derive(Debug, Clone)]
pub struct OracleUnit {
    pub partitions: Vec<(String, i32)>,
    pub changelogs: Vec<(String, i32)>,
    pub eligible: Vec<String>,
}

/// The oracle's view of a case.
pub struct Oracle {
    pub units: Vec<OracleUnit>,
    pub by_partition: BTreeMap<(String, i32), usize>,
    pub by_changelog: BTreeMap<(String, i32), usize>,
    /// `lag[unit][member id]`.
    pub lag: Vec<BTreeMap<String, u64>>,
    pub acceptable: u64,
    pub class: BTreeMap<String, BTreeSet<String>>,
}

impl Oracle {
    pub fn new(case: &Case, members: &[MemberSubscription]) -> Self {
        let subscribed: BTreeSet<&String> = members.iter().flat_map(|m| m.topics.iter()).collect();
        let subs = |t: &str| -> Vec<String> {
            members
                .iter()
                .filter(|m| m.topics.iter().any(|x| x == t))
                .map(|m| m.member_id.clone())
                .collect()
        };
        let mut units = Vec::new();
        for g in &case.groups {
            let consumed: Vec<&String> = g
                .topics
                .iter()
                .chain(&g.changelogs)
                .filter(|t| subscribed.contains(t))
                .collect();
            if consumed.is_empty() {
                continue;
            }
            let all: Vec<String> = members
                .iter()
                .filter(|m| consumed.iter().all(|t| m.topics.contains(t)))
                .map(|m| m.member_id.clone())
                .collect();
            if !all.is_empty() {
                for p in 0..g.count {
                    units.push(OracleUnit {
                        partitions: consumed.iter().map(|t| ((*t).clone(), p)).collect(),
                        changelogs: g.changelogs.iter().map(|c| (c.clone(), p)).collect(),
                        eligible: all.clone(),
                    });
                }
            } else {
                let mut parts: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
                for t in consumed {
                    parts.entry(subs(t)).or_default().push(t.clone());
                }
                for (eligible, topics) in parts {
                    for p in 0..g.count {
                        units.push(OracleUnit {
                            partitions: topics.iter().map(|t| (t.clone(), p)).collect(),
                            changelogs: Vec::new(),
                            eligible: eligible.clone(),
                        });
                    }
                }
            }
        }
        for t in &case.free {
            if subscribed.contains(t) {
                let n = case.ctx.partitions_per_topic.get(t).copied().unwrap_or(0);
                for p in 0..n {
                    units.push(OracleUnit {
                        partitions: vec![(t.clone(), p)],
                        changelogs: Vec::new(),
                        eligible: subs(t),
                    });
                }
            }
        }
        let mut by_partition = BTreeMap::new();
        let mut by_changelog = BTreeMap::new();
        for (u, unit) in units.iter().enumerate() {
            for tp in &unit.partitions {
                by_partition.insert(tp.clone(), u);
            }
            for tp in &unit.changelogs {
                by_changelog.insert(tp.clone(), u);
            }
        }
        let claims = current_standby_claims(members);
        let lag = units
            .iter()
            .map(|unit| {
                members
                    .iter()
                    .map(|m| {
                        let running = claims
                            .get(&m.member_id)
                            .is_some_and(|c| unit.partitions.iter().any(|tp| c.contains(tp)));
                        let d = sub_data(m);
                        let lag = if running {
                            0
                        } else {
                            unit.changelogs
                                .iter()
                                .map(|(c, p)| {
                                    let Some(&end) = case
                                        .ctx
                                        .end_offsets
                                        .get(&TopicPartition::new(c.as_str(), *p))
                                    else {
                                        return 0u64;
                                    };
                                    let end = end.max(0) as u64;
                                    match d.applied_offsets.get(c).and_then(|x| x.get(p)) {
                                        Some(&a) if a >= 0 && (a as u64) <= end => end - a as u64,
                                        _ => end,
                                    }
                                })
                                .sum()
                        };
                        (m.member_id.clone(), lag)
                    })
                    .collect()
            })
            .collect();
        let class = members
            .iter()
            .map(|m| (m.member_id.clone(), m.topics.iter().cloned().collect()))
            .collect();
        Oracle {
            units,
            by_partition,
            by_changelog,
            lag,
            acceptable: case.config.acceptable_recovery_lag,
            class,
        }
    }

    pub fn caught_up(&self, u: usize, m: &str) -> bool {
        self.lag[u].get(m).is_some_and(|&l| l <= self.acceptable)
    }
}

/// Claims that count: owned partitions and user-data actives of the highest generation.
pub fn current_standby_claims(
    members: &[MemberSubscription],
) -> BTreeMap<String, BTreeSet<(String, i32)>> {
    let max = members.iter().map(|m| m.generation_id).max().unwrap_or(-1);
    members
        .iter()
        .filter(|m| m.generation_id == max)
        .map(|m| {
            let mut set: BTreeSet<(String, i32)> = m
                .owned_partitions
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .collect();
            for (t, ps) in sub_data(m).active {
                set.extend(ps.into_iter().map(|p| (t.clone(), p)));
            }
            (m.member_id.clone(), set)
        })
        .collect()
}

/// Per unit: the member running it or promised it, its warm-up member and its standbys.
#[derive(Debug, Default, Clone)]
pub struct Roles {
    pub active: Option<String>,
    pub pending: Option<String>,
    pub warmup: Vec<String>,
    pub standby: Vec<String>,
}

/// Checks every single-round invariant and returns the roles per unit.
pub fn check_standby_round(
    case: &Case,
    members: &[MemberSubscription],
    a: &GroupAssignment,
) -> (Oracle, Vec<Roles>) {
    let oracle = Oracle::new(case, members);
    check_valid(members, &case.ctx, a);
    check_cooperative(&current_standby_claims(members), a);
    let mut roles = vec![Roles::default(); oracle.units.len()];
    let mut warmups = 0;
    let mut any_warmup = false;
    for m in members {
        let id = &m.member_id;
        let d = data_of(a, id);
        // Units held, co-located.
        let mut seen: BTreeMap<usize, BTreeSet<(String, i32)>> = BTreeMap::new();
        let mut pending_seen: BTreeMap<usize, BTreeSet<(String, i32)>> = BTreeMap::new();
        for tp in of(a, id) {
            let u = oracle.by_partition[&tp];
            seen.entry(u).or_default().insert(tp);
        }
        for (t, ps) in &d.pending {
            for p in ps {
                let u = oracle.by_partition[&(t.clone(), *p)];
                pending_seen.entry(u).or_default().insert((t.clone(), *p));
            }
        }
        for (map, pending) in [(&seen, false), (&pending_seen, true)] {
            for (u, tps) in map {
                let want: BTreeSet<(String, i32)> =
                    oracle.units[*u].partitions.iter().cloned().collect();
                assert_eq!(tps, &want, "{id} holds unit {u} partially");
                assert!(
                    oracle.units[*u].eligible.contains(id),
                    "{id} not eligible for {u}"
                );
                let slot = if pending {
                    &mut roles[*u].pending
                } else {
                    &mut roles[*u].active
                };
                assert!(slot.is_none(), "unit {u} twice");
                *slot = Some(id.clone());
            }
        }
        // Standbys and warm-ups, co-located over the unit's changelogs.
        for (map, warm) in [(&d.standby, false), (&d.warmup, true)] {
            let mut units: BTreeMap<usize, BTreeSet<(String, i32)>> = BTreeMap::new();
            for (t, ps) in map {
                for p in ps {
                    let u = oracle.by_changelog[&(t.clone(), *p)];
                    units.entry(u).or_default().insert((t.clone(), *p));
                }
            }
            for (u, tps) in units {
                let want: BTreeSet<(String, i32)> =
                    oracle.units[u].changelogs.iter().cloned().collect();
                assert_eq!(tps, want, "{id} keeps unit {u} partially");
                assert!(oracle.units[u].eligible.contains(id));
                if warm {
                    roles[u].warmup.push(id.clone());
                    warmups += 1;
                    any_warmup = true;
                } else {
                    roles[u].standby.push(id.clone());
                }
            }
        }
    }
    let n = case.config.num_standby_replicas;
    for (u, r) in roles.iter().enumerate() {
        assert!(
            r.active.is_some() != r.pending.is_some(),
            "unit {u} has one runner or one promised owner: {r:?}"
        );
        let owner = r.active.clone().or(r.pending.clone()).unwrap_or_default();
        assert!(!r.standby.contains(&owner) && !r.warmup.contains(&owner));
        assert!(r.warmup.len() <= 1);
        assert!(r.warmup.iter().all(|w| !r.standby.contains(w)));
        let unit = &oracle.units[u];
        if unit.changelogs.is_empty() {
            assert!(
                r.standby.is_empty() && r.warmup.is_empty(),
                "stateless unit {u}"
            );
        } else {
            let e = unit.eligible.len();
            let want = n.min(e.saturating_sub(1 + r.warmup.len()));
            assert_eq!(r.standby.len(), want, "standbys of unit {u}: {r:?}");
        }
        for w in &r.warmup {
            assert!(
                !oracle.caught_up(u, w),
                "warm-up {w} of unit {u} is caught up"
            );
            assert!(
                oracle.caught_up(u, &owner),
                "unit {u} kept on a lagging member"
            );
        }
    }
    assert!(
        warmups <= case.config.max_warmup_replicas,
        "{warmups} warm-ups"
    );
    for m in members {
        assert_eq!(data_of(a, &m.member_id).probing_rebalance, any_warmup);
    }
    // Balance, counting each unit for its intended owner (the warm-up member if any).
    let adjusted = adjusted_counts(members, &roles);
    let mut classes: BTreeMap<&BTreeSet<String>, Vec<usize>> = BTreeMap::new();
    for m in members {
        classes
            .entry(&oracle.class[&m.member_id])
            .or_default()
            .push(adjusted[&m.member_id]);
    }
    for counts in classes.values() {
        let (lo, hi) = (counts.iter().min(), counts.iter().max());
        assert!(
            hi.zip(lo).is_none_or(|(h, l)| *h <= *l + 1),
            "unbalanced {counts:?}"
        );
    }
    // No lagging owner while a caught-up member with room exists; lagging owners with a
    // caught-up alternative only once the warm-up budget is spent.
    for (u, r) in roles.iter().enumerate() {
        let owner = r.active.clone().or(r.pending.clone()).unwrap_or_default();
        if !r.warmup.is_empty() || oracle.caught_up(u, &owner) {
            continue;
        }
        let alternatives: Vec<&String> = oracle.units[u]
            .eligible
            .iter()
            .filter(|c| **c != owner && oracle.caught_up(u, c))
            .collect();
        for c in &alternatives {
            let room = adjusted[*c] < adjusted[&owner]
                && move_keeps_balance(members, &oracle, &adjusted, &owner, c);
            assert!(!room, "unit {u} on lagging {owner} while {c} has room");
        }
        if !alternatives.is_empty() {
            assert_eq!(
                warmups, case.config.max_warmup_replicas,
                "unit {u} on lagging {owner}"
            );
        }
    }
    (oracle, roles)
}

fn adjusted_counts(members: &[MemberSubscription], roles: &[Roles]) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> =
        members.iter().map(|m| (m.member_id.clone(), 0)).collect();
    for r in roles {
        let intended = r
            .warmup
            .first()
            .cloned()
            .or(r.active.clone())
            .or(r.pending.clone());
        if let Some(m) = intended {
            *counts.entry(m).or_default() += 1;
        }
    }
    counts
}

fn move_keeps_balance(
    members: &[MemberSubscription],
    oracle: &Oracle,
    counts: &BTreeMap<String, usize>,
    from: &str,
    to: &str,
) -> bool {
    let after = |m: &str| {
        let c = counts[m];
        if m == from {
            c - 1
        } else if m == to {
            c + 1
        } else {
            c
        }
    };
    [from, to].iter().all(|x| {
        let class = &oracle.class[*x];
        let cs: Vec<usize> = members
            .iter()
            .filter(|m| &oracle.class[&m.member_id] == class)
            .map(|m| after(&m.member_id))
            .collect();
        cs.iter()
            .max()
            .zip(cs.iter().min())
            .is_none_or(|(h, l)| *h <= *l + 1)
    })
}

/// The changelog partitions of a consumed partition, per the case's groups.
pub fn changelogs_fn(case: &Case) -> impl Fn(&str, i32) -> Vec<(String, i32)> + '_ {
    move |t: &str, p: i32| {
        case.groups
            .iter()
            .find(|g| g.topics.iter().chain(&g.changelogs).any(|x| x == t))
            .map(|g| g.changelogs.iter().map(|c| (c.clone(), p)).collect())
            .unwrap_or_default()
    }
}
