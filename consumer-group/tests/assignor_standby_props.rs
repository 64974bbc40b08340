//! `mephisto-standby` properties over random groups, checked against an independent model
//! of units and lags (`assignor_support::standby_oracle`).

mod assignor_support;

use assignor_support::standby::*;
use assignor_support::standby_oracle::*;
use assignor_support::*;
use mephisto_consumer_group::assignor::{
    AssignError, Assignor, StandbyAssignmentData, StandbyAssignor, StandbySubscriptionData,
};
use mephisto_consumer_group::{GroupAssignment, MemberSubscription};
use proptest::prelude::*;

fn run(case: &Case, members: &[MemberSubscription]) -> GroupAssignment {
    StandbyAssignor::new(case.config.clone())
        .assign(members, &case.ctx)
        .expect("assign")
}

/// Runs rounds until the assignment repeats (at most `max`); checks every round.
fn rounds(
    case: &Case,
    catch: Catch,
    max: usize,
) -> (Vec<MemberSubscription>, Vec<GroupAssignment>) {
    let changelogs = changelogs_fn(case);
    let mut members = case.members.clone();
    let mut out: Vec<GroupAssignment> = Vec::new();
    for _ in 0..max {
        let a = run(case, &members);
        check_standby_round(case, &members, &a);
        let repeated = out.last() == Some(&a);
        members = next_standby_round(&members, &a, &case.ctx, &changelogs, catch);
        out.push(a);
        if repeated {
            break;
        }
    }
    (members, out)
}

fn pending_units(a: &GroupAssignment) -> usize {
    a.keys().map(|m| data_of(a, m).pending.len()).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn standby_single_round_invariants(case in arb_case(), seed in any::<u64>()) {
        let a = run(&case, &case.members);
        check_standby_round(&case, &case.members, &a);
        let mut shuffled = case.members.clone();
        shuffle(&mut shuffled, seed);
        prop_assert_eq!(&a, &run(&case, &shuffled));
        prop_assert_eq!(&a, &run(&case, &case.members));
    }

    #[test]
    fn standby_follow_up_round_assigns_everything(case in arb_case()) {
        // Members revoke what was withheld; with unchanged state the follow-up round hands
        // every promised unit over and withholds nothing new.
        let (_, out) = rounds(&case, Catch::ActivesOnly, 2);
        let last = out.last().expect("a round");
        prop_assert_eq!(pending_units(last), 0);
        check_complete(&case.members, &case.ctx, last);
    }

    #[test]
    fn standby_reaches_a_fixed_point(case in arb_case()) {
        // State unchanged between rounds (warm-ups never catch up): after the follow-up
        // round the assignment no longer changes, and previous owners keep their units.
        let (_, out) = rounds(&case, Catch::ActivesOnly, 4);
        let n = out.len();
        prop_assert!(n >= 2 && out[n - 1] == out[n - 2], "no fixed point in 4 rounds");
        prop_assert!(n <= 3, "took {} rounds", n);
    }

    #[test]
    fn standby_warmups_converge_to_balance(case in arb_case()) {
        // Everything kept warm catches up between rounds: warm-ups are promoted, and the
        // group ends balanced with no warm-up and nothing pending.
        let (members, out) = rounds(&case, Catch::Everything, 8);
        let last = out.last().expect("a round");
        prop_assert!(out.len() >= 2 && out[out.len() - 2] == *last, "no fixed point in 8 rounds");
        prop_assert_eq!(pending_units(last), 0);
        for m in &members {
            let d = data_of(last, &m.member_id);
            prop_assert!(d.warmup.is_empty() && !d.probing_rebalance);
        }
    }

    #[test]
    fn standby_member_leaving_promotes_caught_up_holders(case in arb_case(), pick in any::<prop::sample::Index>()) {
        // Converge, then one member leaves. Its units go out at once (nobody else claims
        // them), and the round satisfies every invariant, in particular: a unit lands on a
        // lagging member only if no caught-up member had room and the warm-up budget is
        // spent (checked by check_standby_round).
        let (members, out) = rounds(&case, Catch::Everything, 8);
        let before = out.last().expect("a round");
        let gone = pick.index(members.len());
        let gone_id = members[gone].member_id.clone();
        let rest: Vec<MemberSubscription> =
            members.iter().filter(|m| m.member_id != gone_id).cloned().collect();
        if rest.is_empty() {
            return Ok(());
        }
        let after = run(&case, &rest);
        let (_, roles) = check_standby_round(&case, &rest, &after);
        let oracle = Oracle::new(&case, &rest);
        for tp in of(before, &gone_id) {
            let Some(&u) = oracle.by_partition.get(&tp) else { continue };
            prop_assert!(roles[u].active.is_some(), "orphaned unit {} not handed out", u);
        }
    }

    #[test]
    fn standby_user_data_round_trips(
        active in prop::collection::btree_map("[a-z]{1,8}", prop::collection::vec(0i32..1000, 0..5), 0..4),
        offsets in prop::collection::btree_map("[a-z]{1,8}", prop::collection::btree_map(0i32..1000, any::<i64>(), 0..4), 0..4),
        probing in any::<bool>(),
    ) {
        let sub = StandbySubscriptionData {
            active: active.clone(),
            standby: active.clone(),
            warmup: active.clone(),
            pending: active.clone(),
            applied_offsets: offsets,
        };
        let bytes = sub.encode().expect("encode");
        prop_assert_eq!(StandbySubscriptionData::decode(&bytes), Ok(sub));
        let asg = StandbyAssignmentData {
            standby: active.clone(),
            warmup: active.clone(),
            pending: active,
            probing_rebalance: probing,
        };
        let bytes = asg.encode().expect("encode");
        prop_assert_eq!(StandbyAssignmentData::decode(&bytes), Ok(asg));
    }

    #[test]
    fn standby_bad_user_data_is_a_typed_error(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        // Never a panic: either it decodes, or the assignor names the member.
        let decoded = StandbySubscriptionData::decode(&bytes);
        let _ = StandbyAssignmentData::decode(&bytes);
        let mut m = member("m", &["t"]);
        m.user_data = Some(bytes::Bytes::from(bytes.clone()));
        let result = StandbyAssignor::default().assign(&[m], &context(&[("t", 3)]));
        match (bytes.is_empty(), decoded) {
            (true, _) | (false, Ok(_)) => prop_assert!(result.is_ok()),
            (false, Err(e)) => prop_assert_eq!(
                result,
                Err(AssignError::BadUserData { member: "m".into(), reason: e.to_string() })
            ),
        }
    }
}
