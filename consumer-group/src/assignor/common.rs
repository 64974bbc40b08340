//! Helpers shared by the assignors: Java's ordering rules, input checks, partition counts,
//! generation filtering of owned partitions and building the result map.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{
    AssignContext, AssignError, GroupAssignment, MemberAssignment, MemberSubscription,
    TopicPartition,
};

/// Java's `String.compareTo`: compares UTF-16 code units, not bytes.
///
/// It differs from Rust's `str` order only between characters above U+FFFF and characters in
/// U+E000..=U+FFFF; using it keeps `range` and `roundrobin` identical to the Java client.
pub(crate) fn java_str_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// `AbstractPartitionAssignor.MemberInfo.compareTo`: static members (with a group instance
/// id) first, ordered by instance id; then dynamic members ordered by member id.
///
/// Java leaves two members with the same instance id in input order; we break that tie by
/// member id so the result never depends on input order.
pub(crate) fn java_member_cmp(a: &MemberSubscription, b: &MemberSubscription) -> Ordering {
    let by_instance = match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => java_str_cmp(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_instance.then_with(|| java_str_cmp(&a.member_id, &b.member_id))
}

/// Returns the members sorted by member id (Java string order), after checking that no
/// member id appears twice.
pub(crate) fn sorted_by_member_id(
    members: &[MemberSubscription],
) -> Result<Vec<&MemberSubscription>, AssignError> {
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| java_str_cmp(&a.member_id, &b.member_id));
    for pair in sorted.windows(2) {
        if pair[0].member_id == pair[1].member_id {
            return Err(AssignError::DuplicateMember(pair[0].member_id.clone()));
        }
    }
    Ok(sorted)
}

/// The partition count of `topic`; unknown or negative counts are an error.
pub(crate) fn partition_count(context: &AssignContext, topic: &str) -> Result<i32, AssignError> {
    match context.partitions_per_topic.get(topic) {
        Some(&count) if count >= 0 => Ok(count),
        _ => Err(AssignError::UnknownTopic(topic.to_owned())),
    }
}

/// Every topic some member subscribes to, with its partition count, in Java string order.
pub(crate) fn subscribed_topics(
    members: &[&MemberSubscription],
    context: &AssignContext,
) -> Result<Vec<(String, i32)>, AssignError> {
    let names: BTreeSet<&str> = members
        .iter()
        .flat_map(|m| m.topics.iter().map(String::as_str))
        .collect();
    let mut topics = names
        .into_iter()
        .map(|t| partition_count(context, t).map(|n| (t.to_owned(), n)))
        .collect::<Result<Vec<_>, _>>()?;
    topics.sort_by(|a, b| java_str_cmp(&a.0, &b.0));
    Ok(topics)
}

/// An assignment with an empty entry for every member.
pub(crate) fn empty_assignment(members: &[&MemberSubscription]) -> GroupAssignment {
    members
        .iter()
        .map(|m| (m.member_id.clone(), MemberAssignment::default()))
        .collect()
}

/// Adds one partition to a member's assignment (the member must already have an entry).
pub(crate) fn give(assignment: &mut GroupAssignment, member: &str, topic: &str, partition: i32) {
    if let Some(entry) = assignment.get_mut(member) {
        entry
            .partitions
            .entry(topic.to_owned())
            .or_default()
            .push(partition);
    }
}

/// Sorts and deduplicates every member's partition lists.
pub(crate) fn normalise(assignment: &mut GroupAssignment) {
    for entry in assignment.values_mut() {
        for partitions in entry.partitions.values_mut() {
            partitions.sort_unstable();
            partitions.dedup();
        }
    }
}

/// The generation a member's owned partitions belong to (`-1` when unknown).
pub(crate) fn generation(member: &MemberSubscription) -> i32 {
    member.generation_id.max(-1)
}

/// Whether a member's owned partitions are current: its generation is the highest in the
/// group. Claims from older generations are stale and ignored (KIP-429; Java's
/// `AbstractStickyAssignor` does the same).
pub(crate) fn current_generations(generations: &[i32]) -> Vec<bool> {
    let max = generations.iter().copied().max().unwrap_or(-1);
    generations.iter().map(|&g| g == max).collect()
}

/// Owned partitions as a set, keeping only partitions that exist according to `counts`.
pub(crate) fn existing_claims(
    owned: &BTreeMap<String, Vec<i32>>,
    counts: &BTreeMap<&str, i32>,
) -> BTreeSet<TopicPartition> {
    let mut set = BTreeSet::new();
    for (topic, partitions) in owned {
        let Some(&count) = counts.get(topic.as_str()) else {
            continue;
        };
        let topic: Arc<str> = Arc::from(topic.as_str());
        for &p in partitions {
            if (0..count).contains(&p) {
                set.insert(TopicPartition::new(Arc::clone(&topic), p));
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_order_is_utf16_order() {
        // U+FF61 sorts after U+10000 in UTF-8 byte order but before it in UTF-16.
        let bmp_high = "\u{FF61}";
        let astral = "\u{10000}";
        assert_eq!(bmp_high.cmp(astral), Ordering::Less);
        assert_eq!(java_str_cmp(bmp_high, astral), Ordering::Greater);
        assert_eq!(java_str_cmp("a", "b"), Ordering::Less);
        assert_eq!(java_str_cmp("ab", "a"), Ordering::Greater);
    }
}
