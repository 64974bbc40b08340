//! `roundrobin`: known answers from Java's `RoundRobinAssignorTest` and properties over
//! random groups.

mod assignor_support;

use assignor_support::*;
use mephisto_consumer_group::assignor::{
    AssignError, Assignor, RebalanceProtocol, RoundRobinAssignor,
};
use mephisto_consumer_group::{GroupAssignment, MemberSubscription};
use proptest::prelude::*;

fn run(members: &[MemberSubscription], topics: &[(&str, i32)]) -> GroupAssignment {
    RoundRobinAssignor::new()
        .assign(members, &context(topics))
        .expect("assignment")
}

#[test]
fn name_and_protocol() {
    assert_eq!(RoundRobinAssignor::new().name(), "roundrobin");
    assert_eq!(
        RoundRobinAssignor::new().rebalance_protocol(),
        RebalanceProtocol::Eager
    );
}

#[test]
fn one_consumer_no_topic() {
    let a = run(&[member("c", &[])], &[]);
    assert!(of(&a, "c").is_empty());
}

#[test]
fn nonexistent_topic_is_an_error() {
    let err = RoundRobinAssignor::new()
        .assign(&[member("c", &["topic"])], &context(&[]))
        .unwrap_err();
    assert_eq!(err, AssignError::UnknownTopic("topic".into()));
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
fn multiple_consumers_mixed_topics() {
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
    let members = [
        member("consumer1", &["topic1", "topic2"]),
        member("consumer2", &["topic1", "topic2"]),
    ];
    let a = run(&members, &[("topic1", 3), ("topic2", 3)]);
    assert_eq!(
        of(&a, "consumer1"),
        tps(&[("topic1", 0), ("topic1", 2), ("topic2", 1)])
    );
    assert_eq!(
        of(&a, "consumer2"),
        tps(&[("topic1", 1), ("topic2", 0), ("topic2", 2)])
    );
}

#[test]
fn three_consumers_nested_subscriptions() {
    // The classic "not optimal" example: C0 {t0}, C1 {t0, t1}, C2 {t0, t1, t2}.
    let members = [
        member("C0", &["t0"]),
        member("C1", &["t0", "t1"]),
        member("C2", &["t0", "t1", "t2"]),
    ];
    let a = run(&members, &[("t0", 1), ("t1", 2), ("t2", 3)]);
    assert_eq!(of(&a, "C0"), tps(&[("t0", 0)]));
    assert_eq!(of(&a, "C1"), tps(&[("t1", 0)]));
    assert_eq!(
        of(&a, "C2"),
        tps(&[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)])
    );
}

#[test]
fn static_members_sort_by_instance_id() {
    // Member ids changed after a bounce (consumer-4 was consumer-1 ...): instance ids rule.
    let members = [
        static_member("consumer-4", "instance-1", &["t"]),
        static_member("consumer-3", "instance-2", &["t"]),
        member("consumer-0", &["t"]),
    ];
    let a = run(&members, &[("t", 5)]);
    assert_eq!(of(&a, "consumer-4"), tps(&[("t", 0), ("t", 3)]));
    assert_eq!(of(&a, "consumer-3"), tps(&[("t", 1), ("t", 4)]));
    assert_eq!(of(&a, "consumer-0"), tps(&[("t", 2)]));
}

#[test]
fn topics_sorted_like_java_strings() {
    // "B" < "a" in Java (and byte) order: B's partitions are dealt first.
    let members = [member("x", &["a", "B"]), member("y", &["a", "B"])];
    let a = run(&members, &[("a", 1), ("B", 1)]);
    assert_eq!(of(&a, "x"), tps(&[("B", 0)]));
    assert_eq!(of(&a, "y"), tps(&[("a", 0)]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_robin_properties(group in arb_group(), seed in any::<u64>()) {
        let a = RoundRobinAssignor::new().assign(&group.members, &group.ctx).expect("assign");
        check_complete(&group.members, &group.ctx, &a);
        // Java's RoundRobinAssignor is balanced only when every member has the same
        // subscriptions (with mixed ones, two members with equal subscriptions can differ
        // by more than one: it deals over one circle of all members).
        let uniform = group.members.windows(2).all(|w| {
            let x: std::collections::BTreeSet<_> = w[0].topics.iter().collect();
            let y: std::collections::BTreeSet<_> = w[1].topics.iter().collect();
            x == y
        });
        if uniform {
            check_balanced_by(&group.members, |m| count(&a, m));
        }
        let mut shuffled = group.members.clone();
        shuffle(&mut shuffled, seed);
        let b = RoundRobinAssignor::new().assign(&shuffled, &group.ctx).expect("assign");
        prop_assert_eq!(a, b);
    }

    #[test]
    fn round_robin_uniform_is_balanced(group in arb_uniform_group()) {
        let a = RoundRobinAssignor::new().assign(&group.members, &group.ctx).expect("assign");
        check_complete(&group.members, &group.ctx, &a);
        check_balanced_by(&group.members, |m| count(&a, m));
    }

    #[test]
    fn round_robin_matches_a_reference_deal(group in arb_group()) {
        // Reference: deal sorted partitions over the sorted member circle.
        let a = RoundRobinAssignor::new().assign(&group.members, &group.ctx).expect("assign");
        let mut ids: Vec<&MemberSubscription> = group.members.iter().collect();
        ids.sort_by(|x, y| x.member_id.cmp(&y.member_id));
        let mut pos = 0usize;
        for (t, n) in &group.ctx.partitions_per_topic {
            if !ids.iter().any(|m| m.topics.contains(t)) { continue; }
            for p in 0..*n {
                while !ids[pos % ids.len()].topics.contains(t) { pos += 1; }
                let want = &ids[pos % ids.len()].member_id;
                prop_assert!(a[want].partitions.get(t).is_some_and(|ps| ps.contains(&p)));
                pos += 1;
            }
        }
    }
}
