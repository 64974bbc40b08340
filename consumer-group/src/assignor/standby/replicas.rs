//! Standby replicas, the cooperative rule and the final per-member assignment for
//! `mephisto-standby`.

use std::collections::BTreeMap;

use super::model::Model;
use super::place::Actives;
use super::user_data::StandbyAssignmentData;
use crate::assignor::{AssignError, GroupAssignment, MemberAssignment, TopicPartition};

/// Picks `num` regular standbys per stateful unit (fewer if fewer members are eligible),
/// never on the unit's owner or its warm-up member: caught-up members first (then by lag),
/// then members that already kept it, then the fewest standbys so far.
pub(super) fn place_standbys(model: &Model<'_>, actives: &Actives, num: usize) -> Vec<Vec<usize>> {
    let mut load = vec![0usize; model.members.len()];
    for &m in actives.warmup.iter().flatten() {
        load[m] += 1;
    }
    let mut standbys = vec![Vec::new(); model.units.len()];
    for (u, unit) in model.units.iter().enumerate() {
        if !unit.stateful() {
            continue;
        }
        let owner = actives.placement.holder_of(u);
        let warmup = actives.warmup[u];
        let mut candidates: Vec<usize> = model.eligible[u]
            .iter()
            .copied()
            .filter(|&m| Some(m) != owner && Some(m) != warmup)
            .collect();
        candidates.sort_by_key(|&m| {
            let bucket = if model.caught_up[u][m] {
                0
            } else {
                model.lag[u][m]
            };
            (bucket, !model.prev_standby[u][m], load[m], m)
        });
        candidates.truncate(num);
        for &m in &candidates {
            load[m] += 1;
        }
        candidates.sort_unstable();
        standbys[u] = candidates;
    }
    standbys
}

/// Builds every member's assignment. A unit whose owner would take a partition another
/// current member still owns is withheld (cooperative rule) and reported to its new owner as
/// pending; the old owner revokes it and the follow-up rebalance hands it over.
pub(super) fn build_assignment(
    model: &Model<'_>,
    actives: &Actives,
    standbys: &[Vec<usize>],
) -> Result<GroupAssignment, AssignError> {
    let n = model.members.len();
    let mut partitions: Vec<Vec<TopicPartition>> = vec![Vec::new(); n];
    let mut data = vec![StandbyAssignmentData::default(); n];
    let probing = actives.warmup.iter().any(Option::is_some);
    for (u, unit) in model.units.iter().enumerate() {
        if let Some(m) = actives.placement.holder_of(u) {
            if model.may_take(u, m) {
                partitions[m].extend(unit.partitions.iter().cloned());
            } else {
                add(&mut data[m].pending, &unit.partitions);
            }
        }
        if let Some(m) = actives.warmup[u] {
            add(&mut data[m].warmup, &unit.changelogs);
        }
        for &m in &standbys[u] {
            add(&mut data[m].standby, &unit.changelogs);
        }
    }
    let mut assignment = GroupAssignment::new();
    for (m, member) in model.members.iter().enumerate() {
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        add(&mut by_topic, &partitions[m]);
        let mut extra = std::mem::take(&mut data[m]);
        extra.probing_rebalance = probing;
        let user_data = extra.encode().map_err(|e| AssignError::EncodeUserData {
            member: member.member_id.clone(),
            reason: e.to_string(),
        })?;
        assignment.insert(
            member.member_id.clone(),
            MemberAssignment {
                partitions: by_topic,
                user_data: Some(user_data),
            },
        );
    }
    Ok(assignment)
}

fn add(map: &mut BTreeMap<String, Vec<i32>>, partitions: &[TopicPartition]) {
    for tp in partitions {
        let list = map.entry(tp.topic.to_string()).or_default();
        if let Err(at) = list.binary_search(&tp.partition) {
            list.insert(at, tp.partition);
        }
    }
}
