//! `cooperative-sticky`: scenarios and properties over random groups (balance, stickiness,
//! the KIP-429 cooperative rule, stale generations, convergence after the follow-up round).

mod assignor_support;

use std::collections::BTreeMap;

use assignor_support::*;
use mephisto_consumer_group::assignor::{Assignor, CooperativeStickyAssignor, RebalanceProtocol};
use mephisto_consumer_group::{GroupAssignment, MemberSubscription};
use proptest::prelude::*;

fn assign(members: &[MemberSubscription], topics: &[(&str, i32)]) -> GroupAssignment {
    CooperativeStickyAssignor::new()
        .assign(members, &context(topics))
        .expect("assignment")
}

fn owning(mut m: MemberSubscription, generation: i32, owned: &[(&str, i32)]) -> MemberSubscription {
    m.generation_id = generation;
    m.owned_partitions = BTreeMap::new();
    for (t, p) in owned {
        m.owned_partitions
            .entry((*t).to_owned())
            .or_default()
            .push(*p);
    }
    m
}

#[test]
fn name_and_protocol() {
    let a = CooperativeStickyAssignor::new();
    assert_eq!(a.name(), "cooperative-sticky");
    assert_eq!(a.rebalance_protocol(), RebalanceProtocol::Cooperative);
}

#[test]
fn fresh_group_is_balanced() {
    let members = [
        member("a", &["t"]),
        member("b", &["t"]),
        member("c", &["t"]),
    ];
    let a = assign(&members, &[("t", 7)]);
    check_complete(&members, &context(&[("t", 7)]), &a);
    let mut counts: Vec<usize> = ["a", "b", "c"].iter().map(|m| count(&a, m)).collect();
    counts.sort();
    assert_eq!(counts, vec![2, 2, 3]);
}

#[test]
fn new_member_gets_partitions_only_after_revocation() {
    // a owns everything; b joins. Round 1: a keeps 3 and revokes 3, b gets nothing yet.
    let ctx = [("t", 6)];
    let all: Vec<(&str, i32)> = (0..6).map(|p| ("t", p)).collect();
    let members = vec![
        owning(member("a", &["t"]), 5, &all),
        owning(member("b", &["t"]), 5, &[]),
    ];
    let r1 = assign(&members, &ctx);
    assert_eq!(count(&r1, "a"), 3);
    assert_eq!(count(&r1, "b"), 0, "nothing moves directly from a to b");
    // Round 2: a owns only its 3; b gets the 3 revoked ones.
    let r2 = assign(&next_round(&members, &r1), &ctx);
    assert_eq!(of(&r2, "a"), of(&r1, "a"));
    assert_eq!(count(&r2, "b"), 3);
    check_complete(&members, &context(&ctx), &r2);
}

#[test]
fn leaving_member_partitions_go_out_at_once() {
    // c left: nobody owns its partitions, so they are handed out in one round.
    let ctx = [("t", 6)];
    let members = vec![
        owning(member("a", &["t"]), 5, &[("t", 0), ("t", 1)]),
        owning(member("b", &["t"]), 5, &[("t", 2), ("t", 3)]),
    ];
    let r = assign(&members, &ctx);
    check_complete(&members, &context(&ctx), &r);
    assert!(of(&r, "a").starts_with(&tps(&[("t", 0), ("t", 1)])));
    assert_eq!(count(&r, "a"), 3);
    assert_eq!(count(&r, "b"), 3);
}

#[test]
fn stale_generation_claims_are_ignored() {
    // b claims t-0 from generation 4 while a (generation 5) claims t-0 too: a keeps it.
    // b's stale claim of t-1 does not stop t-1 from going anywhere.
    let ctx = [("t", 2)];
    let members = vec![
        owning(member("a", &["t"]), 5, &[("t", 0)]),
        owning(member("b", &["t"]), 4, &[("t", 0), ("t", 1)]),
    ];
    let r = assign(&members, &ctx);
    assert_eq!(of(&r, "a"), tps(&[("t", 0)]));
    assert_eq!(of(&r, "b"), tps(&[("t", 1)]));
}

#[test]
fn double_claims_keep_one_owner() {
    let ctx = [("t", 2)];
    let members = vec![
        owning(member("a", &["t"]), 5, &[("t", 0)]),
        owning(member("b", &["t"]), 5, &[("t", 0)]),
    ];
    let r = assign(&members, &ctx);
    assert_eq!(of(&r, "a"), tps(&[("t", 0)]));
    // t-1 was unowned: b gets it; b's claim on t-0 is simply dropped (b revokes it).
    assert_eq!(of(&r, "b"), tps(&[("t", 1)]));
}

#[test]
fn generation_from_java_user_data() {
    // Subscription v1 (no generation field): the generation comes from the user data.
    let ctx = [("t", 2)];
    let mut a = owning(member("a", &["t"]), -1, &[("t", 0), ("t", 1)]);
    a.user_data = Some(CooperativeStickyAssignor::subscription_user_data(3));
    let mut b = owning(member("b", &["t"]), -1, &[("t", 0), ("t", 1)]);
    b.user_data = Some(CooperativeStickyAssignor::subscription_user_data(2));
    let members = [a, b];
    let r = assign(&members, &ctx);
    // a (generation 3) keeps one and revokes the other; b's generation-2 claims are stale,
    // so a's claim is the one protected: b gets the revoked partition only next round.
    assert_eq!(count(&r, "a"), 1);
    assert_eq!(count(&r, "b"), 0);
    let r2 = assign(&next_round(&members, &r), &ctx);
    assert_eq!(of(&r2, "a"), of(&r, "a"));
    assert_eq!(count(&r2, "b"), 1);
}

#[test]
fn unsubscribed_partition_waits_for_revocation() {
    // a still owns u-0 but no longer subscribes to u; b does. Conservative: b gets u-0 only
    // after a has revoked it.
    let ctx = [("t", 1), ("u", 1)];
    let members = vec![
        owning(member("a", &["t"]), 5, &[("t", 0), ("u", 0)]),
        owning(member("b", &["u"]), 5, &[]),
    ];
    let r1 = assign(&members, &ctx);
    assert_eq!(of(&r1, "a"), tps(&[("t", 0)]));
    assert!(of(&r1, "b").is_empty());
    let r2 = assign(&next_round(&members, &r1), &ctx);
    assert_eq!(of(&r2, "b"), tps(&[("u", 0)]));
}

/// Runs rounds (members owning what they were given) until nothing is left unassigned;
/// returns the rounds' assignments.
fn converge(group: &Group, max_rounds: usize) -> (Vec<MemberSubscription>, Vec<GroupAssignment>) {
    let assignor = CooperativeStickyAssignor::new();
    let mut members = group.members.clone();
    let mut rounds = Vec::new();
    for _ in 0..max_rounds {
        let a = assignor.assign(&members, &group.ctx).expect("assign");
        check_valid(&members, &group.ctx, &a);
        check_cooperative(&current_claims(&members), &a);
        let done = owners(&a).len() == all_partitions(&members, &group.ctx).len();
        members = next_round(&members, &a);
        rounds.push(a);
        if done {
            break;
        }
    }
    (members, rounds)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cooperative_sticky_round(group in arb_group(), seed in any::<u64>()) {
        let assignor = CooperativeStickyAssignor::new();
        let a = assignor.assign(&group.members, &group.ctx).expect("assign");
        check_valid(&group.members, &group.ctx, &a);
        check_cooperative(&current_claims(&group.members), &a);
        let mut shuffled = group.members.clone();
        shuffle(&mut shuffled, seed);
        prop_assert_eq!(&a, &assignor.assign(&shuffled, &group.ctx).expect("assign"));
        prop_assert_eq!(&a, &assignor.assign(&group.members, &group.ctx).expect("assign"));
    }

    #[test]
    fn cooperative_sticky_fresh_group_complete_and_balanced(group in arb_group()) {
        let mut members = group.members.clone();
        for m in &mut members { m.owned_partitions.clear(); }
        let a = CooperativeStickyAssignor::new().assign(&members, &group.ctx).expect("assign");
        check_complete(&members, &group.ctx, &a);
        check_balanced_by(&members, |m| count(&a, m));
        check_no_improving_move(&members, &a);
    }

    #[test]
    fn cooperative_sticky_one_follow_up_completes(group in arb_group()) {
        // After the first round's revocations, the follow-up round assigns everything,
        // balanced, and revokes nothing more.
        let (_, rounds) = converge(&group, 2);
        let last = rounds.last().expect("a round");
        check_complete(&group.members, &group.ctx, last);
        check_balanced_by(&group.members, |m| count(last, m));
        check_no_improving_move(&group.members, last);
        if let [first, second] = rounds.as_slice() {
            for m in &group.members {
                let kept = of(first, &m.member_id);
                let now = of(second, &m.member_id);
                prop_assert!(kept.iter().all(|tp| now.contains(tp)),
                    "{} lost partitions in the follow-up round", m.member_id);
            }
        }
    }

    #[test]
    fn cooperative_sticky_is_sticky_when_nothing_changes(group in arb_group()) {
        let (members, rounds) = converge(&group, 2);
        let settled = rounds.last().expect("a round").clone();
        let again = CooperativeStickyAssignor::new().assign(&members, &group.ctx).expect("assign");
        prop_assert_eq!(settled, again);
    }
}
