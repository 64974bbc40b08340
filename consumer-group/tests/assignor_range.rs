//! `range`: known answers from Java's `RangeAssignorTest` and properties over random groups.

mod assignor_support;

use std::collections::BTreeMap;

use assignor_support::*;
use mephisto_consumer_group::assignor::{AssignError, Assignor, RangeAssignor, RebalanceProtocol};
use proptest::prelude::*;

fn run(
    members: &[mephisto_consumer_group::MemberSubscription],
    topics: &[(&str, i32)],
) -> mephisto_consumer_group::GroupAssignment {
    RangeAssignor::new()
        .assign(members, &context(topics))
        .expect("assignment")
}

#[test]
fn name_and_protocol() {
    assert_eq!(RangeAssignor::new().name(), "range");
    assert_eq!(
        RangeAssignor::new().rebalance_protocol(),
        RebalanceProtocol::Eager
    );
}

#[test]
fn one_consumer_no_topic() {
    let a = run(&[member("c", &[])], &[]);
    assert_eq!(a.len(), 1);
    assert!(of(&a, "c").is_empty());
}

#[test]
fn nonexistent_topic_is_an_error() {
    // Java skips topics missing from metadata; our trait reports them instead.
    let err = RangeAssignor::new()
        .assign(&[member("c", &["topic"])], &context(&[]))
        .unwrap_err();
    assert_eq!(err, AssignError::UnknownTopic("topic".into()));
}

#[test]
fn one_consumer_one_topic() {
    let a = run(&[member("c", &["topic"])], &[("topic", 3)]);
    assert_eq!(
        of(&a, "c"),
        tps(&[("topic", 0), ("topic", 1), ("topic", 2)])
    );
}

#[test]
fn only_assigns_partitions_from_subscribed_topics() {
    let a = run(&[member("c", &["topic"])], &[("topic", 3), ("other", 3)]);
    assert_eq!(
        of(&a, "c"),
        tps(&[("topic", 0), ("topic", 1), ("topic", 2)])
    );
}

#[test]
fn one_consumer_multiple_topics() {
    let a = run(
        &[member("c", &["topic1", "topic2"])],
        &[("topic1", 1), ("topic2", 2)],
    );
    assert_eq!(
        of(&a, "c"),
        tps(&[("topic1", 0), ("topic2", 0), ("topic2", 1)])
    );
}

#[test]
fn two_consumers_one_topic_one_partition() {
    let a = run(&[member("c1", &["t"]), member("c2", &["t"])], &[("t", 1)]);
    assert_eq!(of(&a, "c1"), tps(&[("t", 0)]));
    assert!(of(&a, "c2").is_empty());
}

#[test]
fn two_consumers_one_topic_two_partitions() {
    let a = run(&[member("c2", &["t"]), member("c1", &["t"])], &[("t", 2)]);
    assert_eq!(of(&a, "c1"), tps(&[("t", 0)]));
    assert_eq!(of(&a, "c2"), tps(&[("t", 1)]));
}

#[test]
fn multiple_consumers_mixed_topic_subscriptions() {
    let members = [
        member("consumer1", &["topic1"]),
        member("consumer2", &["topic1", "topic2"]),
        member("consumer3", &["topic1"]),
    ];
    let a = run(&members, &[("topic1", 3), ("topic2", 2)]);
    assert_eq!(of(&a, "consumer1"), tps(&[("topic1", 0)]));
    assert_eq!(
        of(&a, "consumer2"),
        tps(&[("topic1", 1), ("topic2", 0), ("topic2", 1)])
    );
    assert_eq!(of(&a, "consumer3"), tps(&[("topic1", 2)]));
}

#[test]
fn two_consumers_two_topics_six_partitions() {
    // The example in RangeAssignor's Javadoc.
    let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
    let a = run(&members, &[("t0", 3), ("t1", 3)]);
    assert_eq!(
        of(&a, "C0"),
        tps(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)])
    );
    assert_eq!(of(&a, "C1"), tps(&[("t0", 2), ("t1", 2)]));
}

#[test]
fn static_members_sort_by_instance_id() {
    // RangeAssignor's Javadoc: with group.instance.id, the order follows the instance ids,
    // so new member ids after a bounce do not shuffle the assignment.
    let members = [
        static_member("C3", "I0", &["t0", "t1"]),
        static_member("C2", "I1", &["t0", "t1"]),
    ];
    let a = run(&members, &[("t0", 3), ("t1", 3)]);
    assert_eq!(
        of(&a, "C3"),
        tps(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)])
    );
    assert_eq!(of(&a, "C2"), tps(&[("t0", 2), ("t1", 2)]));
}

#[test]
fn static_members_before_dynamic_ones() {
    // MemberInfo.compareTo: a static member sorts before any dynamic one.
    let members = [
        member("a-dynamic", &["t"]),
        static_member("z-static", "inst", &["t"]),
    ];
    let a = run(&members, &[("t", 3)]);
    assert_eq!(of(&a, "z-static"), tps(&[("t", 0), ("t", 1)]));
    assert_eq!(of(&a, "a-dynamic"), tps(&[("t", 2)]));
}

#[test]
fn member_ids_compare_like_java_strings() {
    // UTF-16 order: U+FF61 sorts after U+10000 (the reverse of UTF-8 byte order).
    let members = [member("\u{FF61}", &["t"]), member("\u{10000}", &["t"])];
    let a = run(&members, &[("t", 3)]);
    assert_eq!(of(&a, "\u{10000}"), tps(&[("t", 0), ("t", 1)]));
}

#[test]
fn duplicate_member_is_an_error() {
    let err = RangeAssignor::new()
        .assign(
            &[member("c", &["t"]), member("c", &["t"])],
            &context(&[("t", 1)]),
        )
        .unwrap_err();
    assert_eq!(err, AssignError::DuplicateMember("c".into()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn range_properties(group in arb_group(), seed in any::<u64>()) {
        let a = RangeAssignor::new().assign(&group.members, &group.ctx).expect("assign");
        check_complete(&group.members, &group.ctx, &a);
        // Per topic: subscribers sorted, contiguous ranges, first n % m get one more.
        let mut per_topic: BTreeMap<String, Vec<(String, Vec<i32>)>> = BTreeMap::new();
        for (m, ma) in &a {
            for (t, ps) in &ma.partitions {
                per_topic.entry(t.clone()).or_default().push((m.clone(), ps.clone()));
            }
        }
        for (t, n) in &group.ctx.partitions_per_topic {
            let mut subs: Vec<&String> = group.members.iter()
                .filter(|m| m.topics.contains(t)).map(|m| &m.member_id).collect();
            if subs.is_empty() { continue; }
            subs.sort();
            let k = subs.len() as i32;
            let mut next = 0;
            for (i, s) in subs.iter().enumerate() {
                let i = i as i32;
                let len = n / k + i32::from(i < n % k);
                let got: Vec<i32> = a[*s].partitions.get(t).cloned().unwrap_or_default();
                let want: Vec<i32> = (next..next + len).collect();
                prop_assert_eq!(got, want, "topic {} member {}", t, s);
                next += len;
            }
        }
        // Determinism under input order.
        let mut shuffled = group.members.clone();
        shuffle(&mut shuffled, seed);
        let b = RangeAssignor::new().assign(&shuffled, &group.ctx).expect("assign");
        prop_assert_eq!(a, b);
    }
}
