//! Configuration of the `mephisto-standby` assignor.

use std::collections::BTreeSet;

/// Settings of [`StandbyAssignor`](super::StandbyAssignor); the names follow Kafka Streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyConfig {
    /// Standby replicas per stateful unit (Streams' `num.standby.replicas`). Default 1.
    pub num_standby_replicas: usize,
    /// A member whose copy of a unit's state is at most this many records behind is caught
    /// up (Streams' `acceptable.recovery.lag`). Default 10 000.
    pub acceptable_recovery_lag: u64,
    /// Warm-up replicas allowed per rebalance, across the group (Streams'
    /// `max.warmup.replicas`). Each one lets a caught-up member keep a unit beyond its
    /// balanced share while the intended owner restores. 0 makes balance strict. Default 2.
    pub max_warmup_replicas: usize,
    /// Co-partitioned groups: the same partition number of every topic in a group is one
    /// unit, placed on one member (actives and standbys). Overlapping groups are merged.
    pub co_partitioned: Vec<CoPartitionGroup>,
}

impl Default for StandbyConfig {
    fn default() -> Self {
        Self {
            num_standby_replicas: 1,
            acceptable_recovery_lag: 10_000,
            max_warmup_replicas: 2,
            co_partitioned: Vec::new(),
        }
    }
}

/// Topics whose partitions with the same number form one unit (a task).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoPartitionGroup {
    /// Consumed topics: a source topic and its repartition topics.
    pub topics: Vec<String>,
    /// Changelog topics of the unit's state. The leader weighs lag on them, and standbys are
    /// expressed as their partitions. If members also subscribe to them, their partitions
    /// are assigned with the unit like the other topics. No changelog: the unit is stateless
    /// (no lag, no standbys).
    pub changelogs: Vec<String>,
}

impl CoPartitionGroup {
    /// A group of `topics` whose state lives in `changelogs`.
    pub fn new<T, C>(topics: T, changelogs: C) -> Self
    where
        T: IntoIterator,
        T::Item: Into<String>,
        C: IntoIterator,
        C::Item: Into<String>,
    {
        Self {
            topics: topics.into_iter().map(Into::into).collect(),
            changelogs: changelogs.into_iter().map(Into::into).collect(),
        }
    }
}

/// A normalised group: sorted, deduplicated, disjoint from the other groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TopicGroup {
    pub topics: BTreeSet<String>,
    pub changelogs: BTreeSet<String>,
}

impl TopicGroup {
    /// Consumed and changelog topics, sorted, each once.
    pub fn all_topics(&self) -> impl Iterator<Item = &String> {
        self.topics
            .union(&self.changelogs)
            .collect::<BTreeSet<_>>()
            .into_iter()
    }

    fn overlaps(&self, other: &TopicGroup) -> bool {
        self.all_topics()
            .any(|t| other.topics.contains(t) || other.changelogs.contains(t))
    }
}

/// Merges groups sharing a topic (co-partitioning is transitive) and sorts them.
pub(super) fn normalise(groups: &[CoPartitionGroup]) -> Vec<TopicGroup> {
    let mut out: Vec<TopicGroup> = Vec::new();
    for group in groups {
        let mut merged = TopicGroup {
            topics: group.topics.iter().cloned().collect(),
            changelogs: group.changelogs.iter().cloned().collect(),
        };
        let (overlapping, rest): (Vec<_>, Vec<_>) =
            out.into_iter().partition(|g| g.overlaps(&merged));
        for g in overlapping {
            merged.topics.extend(g.topics);
            merged.changelogs.extend(g.changelogs);
        }
        out = rest;
        if !merged.topics.is_empty() || !merged.changelogs.is_empty() {
            out.push(merged);
        }
    }
    out.sort_by(|a, b| a.all_topics().next().cmp(&b.all_topics().next()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_groups_merge() {
        let groups = normalise(&[
            CoPartitionGroup::new(["b"], ["b-log"]),
            CoPartitionGroup::new(["c"], Vec::<String>::new()),
            CoPartitionGroup::new(["a", "b"], Vec::<String>::new()),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].topics.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(groups[0].changelogs.iter().collect::<Vec<_>>(), ["b-log"]);
        assert_eq!(groups[1].topics.iter().collect::<Vec<_>>(), ["c"]);
    }
}
