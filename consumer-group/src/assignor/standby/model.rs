//! The leader's view of the group for `mephisto-standby`: units, who may run them, who owned
//! them, and how far behind each member's copy of their state is.

use std::collections::{BTreeMap, BTreeSet};

use super::config::TopicGroup;
use super::user_data::StandbySubscriptionData;
use crate::assignor::common::{
    current_generations, existing_claims, generation, partition_count, sorted_by_member_id,
};
use crate::assignor::{AssignContext, AssignError, MemberSubscription, TopicPartition};

/// One unit of work (a task): partition `partition` of every topic of a co-partitioned group.
#[derive(Debug, Clone)]
pub(super) struct Unit {
    /// The consumed partitions of the unit (they always move together).
    pub partitions: Vec<TopicPartition>,
    /// The changelog partitions holding the unit's state (empty: stateless).
    pub changelogs: Vec<TopicPartition>,
}

impl Unit {
    /// Whether the unit has state (and therefore lags and standbys).
    pub fn stateful(&self) -> bool {
        !self.changelogs.is_empty()
    }
}

/// A co-partitioned group as used in one assignment.
struct RuntimeGroup {
    topics: Vec<String>,
    changelogs: Vec<String>,
    members: Vec<usize>,
}

/// Everything the placement needs, in index form (members in member-id order).
pub(super) struct Model<'a> {
    /// Members, sorted by member id.
    pub members: Vec<&'a MemberSubscription>,
    /// Units, by group then partition.
    pub units: Vec<Unit>,
    /// Members allowed to run each unit, ascending.
    pub eligible: Vec<Vec<usize>>,
    /// `eligible` as a matrix `[unit][member]`.
    pub is_eligible: Vec<Vec<bool>>,
    /// Lag of each member's copy of each unit's state `[unit][member]` (0 when stateless).
    pub lag: Vec<Vec<u64>>,
    /// Whether that lag is within `acceptable_recovery_lag` `[unit][member]`.
    pub caught_up: Vec<Vec<bool>>,
    /// The previous active owner of each unit, if it is still eligible.
    pub prev_owner: Vec<Option<usize>>,
    /// The member each unit was promised to in the last round (cooperative hand-over).
    pub pending_claim: Vec<Option<usize>>,
    /// The member warming each unit up in the last round: its intended owner.
    pub warmup_claim: Vec<Option<usize>>,
    /// Whether a member kept the unit as standby or warm-up `[unit][member]`.
    pub prev_standby: Vec<Vec<bool>>,
    /// Whether a member kept the unit as warm-up `[unit][member]`.
    pub prev_warmup: Vec<Vec<bool>>,
    /// For each unit, the current-generation claimants of each of its claimed partitions.
    pub claims: Vec<Vec<Vec<usize>>>,
    /// Members with identical subscriptions share a class.
    pub class_of: Vec<usize>,
}

impl<'a> Model<'a> {
    /// Builds the model; fails on unknown topics, duplicate members or unreadable user data.
    pub fn build(
        members: &'a [MemberSubscription],
        context: &AssignContext,
        groups: &[TopicGroup],
        acceptable_recovery_lag: u64,
    ) -> Result<Self, AssignError> {
        let members = sorted_by_member_id(members)?;
        let data = members
            .iter()
            .map(|m| decode(m))
            .collect::<Result<Vec<_>, _>>()?;
        let subs: Vec<BTreeSet<&str>> = members
            .iter()
            .map(|m| m.topics.iter().map(String::as_str).collect())
            .collect();
        let mut counts: BTreeMap<&str, i32> = BTreeMap::new();
        for topic in subs.iter().flatten() {
            counts.insert(topic, partition_count(context, topic)?);
        }
        let runtime = runtime_groups(groups, &subs, &counts);

        let n = members.len();
        let mut model = Model {
            members,
            units: Vec::new(),
            eligible: Vec::new(),
            is_eligible: Vec::new(),
            lag: Vec::new(),
            caught_up: Vec::new(),
            prev_owner: Vec::new(),
            pending_claim: Vec::new(),
            warmup_claim: Vec::new(),
            prev_standby: Vec::new(),
            prev_warmup: Vec::new(),
            claims: Vec::new(),
            class_of: classes(&subs),
        };
        let mut by_partition: BTreeMap<TopicPartition, usize> = BTreeMap::new();
        let mut by_changelog: BTreeMap<TopicPartition, usize> = BTreeMap::new();
        for group in &runtime {
            let units = group
                .topics
                .iter()
                .filter_map(|t| counts.get(t.as_str()))
                .copied()
                .max()
                .unwrap_or(0);
            for p in 0..units {
                let u = model.units.len();
                let partitions: Vec<TopicPartition> = group
                    .topics
                    .iter()
                    .filter(|t| counts.get(t.as_str()).is_some_and(|&c| p < c))
                    .map(|t| TopicPartition::new(t.as_str(), p))
                    .collect();
                let changelogs: Vec<TopicPartition> = group
                    .changelogs
                    .iter()
                    .filter(|c| context.partitions_per_topic.get(*c).is_none_or(|&k| p < k))
                    .map(|c| TopicPartition::new(c.as_str(), p))
                    .collect();
                for tp in &partitions {
                    by_partition.insert(tp.clone(), u);
                }
                for tp in &changelogs {
                    by_changelog.insert(tp.clone(), u);
                }
                let mut row = vec![false; n];
                for &m in &group.members {
                    row[m] = true;
                }
                model.units.push(Unit {
                    partitions,
                    changelogs,
                });
                model.eligible.push(group.members.clone());
                model.is_eligible.push(row);
            }
        }
        let units = model.units.len();
        model.prev_standby = vec![vec![false; n]; units];
        model.prev_warmup = vec![vec![false; n]; units];
        model.pending_claim = vec![None; units];
        model.warmup_claim = vec![None; units];
        let generations: Vec<i32> = model.members.iter().map(|m| generation(m)).collect();
        let current = current_generations(&generations);

        // Claims: owned partitions (consumer protocol) and active partitions (user data).
        let mut claimants: Vec<BTreeMap<TopicPartition, Vec<usize>>> = vec![BTreeMap::new(); units];
        let mut running = vec![vec![0usize; n]; units];
        for (m, member) in model.members.iter().enumerate() {
            if !current[m] {
                continue;
            }
            let mut owned = existing_claims(&member.owned_partitions, &counts);
            owned.extend(existing_claims(&data[m].active, &counts));
            for tp in owned {
                if let Some(&u) = by_partition.get(&tp) {
                    claimants[u].entry(tp).or_default().push(m);
                    running[u][m] += 1;
                }
            }
            for tp in existing_claims(&data[m].pending, &counts) {
                if let Some(&u) = by_partition.get(&tp) {
                    if model.is_eligible[u][m] && model.pending_claim[u].is_none() {
                        model.pending_claim[u] = Some(m);
                    }
                }
            }
        }
        for (m, d) in data.iter().enumerate() {
            for (map, is_warmup) in [(&d.standby, false), (&d.warmup, true)] {
                for (topic, partitions) in map {
                    for &p in partitions {
                        if let Some(&u) = by_changelog.get(&TopicPartition::new(topic.as_str(), p))
                        {
                            model.prev_standby[u][m] = true;
                            model.prev_warmup[u][m] |= is_warmup;
                            if is_warmup
                                && current[m]
                                && model.is_eligible[u][m]
                                && model.warmup_claim[u].is_none()
                            {
                                model.warmup_claim[u] = Some(m);
                            }
                        }
                    }
                }
            }
        }
        model.claims = claimants
            .into_iter()
            .map(|c| c.into_values().collect())
            .collect();
        // The previous owner: the eligible claimant of most of the unit's partitions.
        model.prev_owner = (0..units)
            .map(|u| {
                (0..n)
                    .filter(|&m| running[u][m] > 0 && model.is_eligible[u][m])
                    .max_by_key(|&m| (running[u][m], std::cmp::Reverse(m)))
            })
            .collect();
        model.lag = (0..units)
            .map(|u| {
                (0..n)
                    .map(|m| {
                        if running[u][m] > 0 {
                            // A running active is caught up (Streams' `LATEST` sentinel).
                            0
                        } else {
                            unit_lag(&model.units[u], &data[m], context)
                        }
                    })
                    .collect()
            })
            .collect();
        model.caught_up = model
            .lag
            .iter()
            .map(|row| row.iter().map(|&l| l <= acceptable_recovery_lag).collect())
            .collect();
        Ok(model)
    }

    /// Whether `member` may receive `unit` in this round without taking a partition from
    /// another current owner (the cooperative rule).
    pub fn may_take(&self, unit: usize, member: usize) -> bool {
        self.claims[unit]
            .iter()
            .all(|claimants| claimants.contains(&member))
    }
}

fn decode(member: &MemberSubscription) -> Result<StandbySubscriptionData, AssignError> {
    match member.user_data.as_deref() {
        None | Some([]) => Ok(StandbySubscriptionData::default()),
        Some(bytes) => {
            StandbySubscriptionData::decode(bytes).map_err(|e| AssignError::BadUserData {
                member: member.member_id.clone(),
                reason: e.to_string(),
            })
        }
    }
}

/// Lag of a member's copy of a unit's state: the sum over its changelog partitions of
/// `end − applied`; nothing applied, or applied beyond the end (a truncated or recreated
/// changelog), counts as a full restore (`end`), as in Kafka Streams. A changelog partition
/// whose end offset the leader does not know counts as empty.
fn unit_lag(unit: &Unit, data: &StandbySubscriptionData, context: &AssignContext) -> u64 {
    unit.changelogs
        .iter()
        .map(|tp| {
            let Some(&end) = context.end_offsets.get(tp) else {
                return 0;
            };
            let end = u64::try_from(end).unwrap_or(0);
            let applied = data
                .applied_offsets
                .get(&*tp.topic)
                .and_then(|ps| ps.get(&tp.partition))
                .and_then(|&a| u64::try_from(a).ok());
            match applied {
                Some(a) if a <= end => end - a,
                _ => end,
            }
        })
        .fold(0u64, u64::saturating_add)
}

/// Class ids: members with the same subscribed topics share one.
fn classes(subs: &[BTreeSet<&str>]) -> Vec<usize> {
    let mut ids: BTreeMap<&BTreeSet<&str>, usize> = BTreeMap::new();
    subs.iter()
        .map(|s| {
            let next = ids.len();
            *ids.entry(s).or_insert(next)
        })
        .collect()
}

/// The groups used in this round. A configured group covers the topics of it that someone
/// subscribes to, and may run on members subscribed to all of those. When no member is,
/// the group is split by subscriber set into stateless groups (co-location then holds only
/// within each part). Subscribed topics outside every configured group are stateless groups
/// of their own.
fn runtime_groups(
    groups: &[TopicGroup],
    subs: &[BTreeSet<&str>],
    counts: &BTreeMap<&str, i32>,
) -> Vec<RuntimeGroup> {
    let subscribers = |topic: &str| -> Vec<usize> {
        (0..subs.len())
            .filter(|&m| subs[m].contains(topic))
            .collect()
    };
    let mut out = Vec::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    for group in groups {
        let consumed: Vec<String> = group
            .all_topics()
            .filter(|t| counts.contains_key(t.as_str()))
            .cloned()
            .collect();
        if consumed.is_empty() {
            continue;
        }
        covered.extend(consumed.iter().cloned());
        let all: Vec<usize> = (0..subs.len())
            .filter(|&m| consumed.iter().all(|t| subs[m].contains(t.as_str())))
            .collect();
        if !all.is_empty() {
            out.push(RuntimeGroup {
                topics: consumed,
                changelogs: group.changelogs.iter().cloned().collect(),
                members: all,
            });
            continue;
        }
        tracing::warn!(
            topics = ?consumed,
            "mephisto-standby: no member subscribes to every topic of a co-partitioned group; \
             splitting it by subscriber set, without state"
        );
        let mut parts: BTreeMap<Vec<usize>, Vec<String>> = BTreeMap::new();
        for topic in consumed {
            parts.entry(subscribers(&topic)).or_default().push(topic);
        }
        out.extend(parts.into_iter().map(|(members, topics)| RuntimeGroup {
            topics,
            changelogs: Vec::new(),
            members,
        }));
    }
    for topic in counts.keys() {
        if !covered.contains(*topic) {
            out.push(RuntimeGroup {
                topics: vec![(*topic).to_owned()],
                changelogs: Vec::new(),
                members: subscribers(topic),
            });
        }
    }
    out.sort_by(|a, b| a.topics.cmp(&b.topics));
    out
}
