//! `mephisto-standby`: scenarios (the Faust story, the KIP-441 warm-up life cycle, the
//! cooperative hand-over, co-partitioning, lag rules) and the user-data formats.

mod assignor_support;

use assignor_support::standby::*;
use assignor_support::*;
use mephisto_consumer_group::assignor::{
    AssignContext, AssignError, Assignor, CoPartitionGroup, RebalanceProtocol,
    StandbyAssignmentData, StandbyAssignor, StandbyConfig, StandbySubscriptionData, UserDataError,
    STANDBY_USER_DATA_VERSION,
};
use mephisto_consumer_group::{GroupAssignment, MemberSubscription, TopicPartition};

const SRC: &str = "src";
const LOG: &str = "src-changelog";

fn config(standbys: usize, warmups: usize, lag: u64) -> StandbyConfig {
    StandbyConfig {
        num_standby_replicas: standbys,
        acceptable_recovery_lag: lag,
        max_warmup_replicas: warmups,
        co_partitioned: vec![CoPartitionGroup::new([SRC], [LOG])],
    }
}

/// `src` and its changelog with `n` partitions; every changelog partition ends at 1000.
fn ctx(n: i32) -> AssignContext {
    let mut c = context(&[(SRC, n), (LOG, n)]);
    for p in 0..n {
        c.end_offsets.insert(TopicPartition::new(LOG, p), 1000);
    }
    c
}

/// A member that runs `actives`, keeps `standbys` warm, fully applied.
fn holder(id: &str, actives: &[i32], standbys: &[i32]) -> MemberSubscription {
    let mut d = StandbySubscriptionData::new();
    d.active = map(&actives.iter().map(|p| (SRC, *p)).collect::<Vec<_>>());
    d.standby = map(&standbys.iter().map(|p| (LOG, *p)).collect::<Vec<_>>());
    for p in actives.iter().chain(standbys) {
        d.set_applied_offset(LOG, *p, 1000);
    }
    standby_member(id, &[SRC], 7, &d)
}

fn src(assignment: &GroupAssignment, member: &str) -> Vec<i32> {
    assignment
        .get(member)
        .and_then(|a| a.partitions.get(SRC).cloned())
        .unwrap_or_default()
}

fn changelog_of(topic: &str, p: i32) -> Vec<(String, i32)> {
    if topic == SRC {
        vec![(LOG.to_owned(), p)]
    } else {
        Vec::new()
    }
}

#[test]
fn name_and_protocol() {
    let a = StandbyAssignor::default();
    assert_eq!(a.name(), "mephisto-standby");
    assert_eq!(a.rebalance_protocol(), RebalanceProtocol::Cooperative);
    assert_eq!(a.config(), &StandbyConfig::default());
    assert_eq!(StandbyConfig::default().num_standby_replicas, 1);
    assert_eq!(StandbyConfig::default().acceptable_recovery_lag, 10_000);
    assert_eq!(StandbyConfig::default().max_warmup_replicas, 2);
}

#[test]
fn faust_story_dead_members_actives_go_to_their_standbys() {
    // 3 members, 12 partitions of `src` + changelog, 1 standby each, all caught up.
    let assignor = StandbyAssignor::new(config(1, 2, 100));
    let a = holder("A", &[0, 1, 2, 3], &[6, 7, 8, 9]);
    let b = holder("B", &[4, 5, 6, 7], &[0, 1, 10, 11]);
    let c = holder("C", &[8, 9, 10, 11], &[2, 3, 4, 5]);
    let steady = assignor
        .assign(&[a, b.clone(), c.clone()], &ctx(12))
        .expect("assign");
    assert_eq!(src(&steady, "A"), [0, 1, 2, 3]);
    assert_eq!(src(&steady, "B"), [4, 5, 6, 7]);
    assert_eq!(src(&steady, "C"), [8, 9, 10, 11]);
    assert_eq!(
        data_of(&steady, "B").standby,
        map(&[(LOG, 0), (LOG, 1), (LOG, 10), (LOG, 11)])
    );

    // A dies. Its partitions 0, 1 go to B and 2, 3 to C: the members holding their
    // standbys at lag 0, at once (nobody owns them any more), no restore.
    let after = assignor.assign(&[b, c], &ctx(12)).expect("assign");
    assert_eq!(src(&after, "B"), [0, 1, 4, 5, 6, 7]);
    assert_eq!(src(&after, "C"), [2, 3, 8, 9, 10, 11]);
    for m in ["B", "C"] {
        let d = data_of(&after, m);
        assert!(d.pending.is_empty() && d.warmup.is_empty() && !d.probing_rebalance);
    }
    // One standby per partition, on the other member.
    let b_standby = data_of(&after, "B").standby;
    let c_standby = data_of(&after, "C").standby;
    assert_eq!(
        b_standby.get(LOG).map(Vec::as_slice),
        Some(&[2, 3, 8, 9, 10, 11][..])
    );
    assert_eq!(
        c_standby.get(LOG).map(Vec::as_slice),
        Some(&[0, 1, 4, 5, 6, 7][..])
    );

    // Lag-blind round robin (what Faust's fallback or a plain assignor does) would have
    // moved partitions that B and C were already running.
    let rr = mephisto_consumer_group::assignor::RoundRobinAssignor::new()
        .assign(&[member("B", &[SRC]), member("C", &[SRC])], &ctx(12))
        .expect("assign");
    assert_ne!(src(&rr, "B"), src(&after, "B"));
}

#[test]
fn kip441_warmup_life_cycle() {
    // A and B run 3 units each with standbys on each other; C joins with no state.
    let assignor = StandbyAssignor::new(config(1, 2, 100));
    let ctx = ctx(6);
    let mut members = vec![
        holder("A", &[0, 1, 2], &[3, 4, 5]),
        holder("B", &[3, 4, 5], &[0, 1, 2]),
        standby_member("C", &[SRC], 7, &StandbySubscriptionData::new()),
    ];
    // Round 1: the balanced owner of two units would be C, which is not caught up: A and B
    // keep running them and C gets two warm-ups (the budget).
    let r1 = assignor.assign(&members, &ctx).expect("assign");
    assert_eq!(src(&r1, "A"), [0, 1, 2]);
    assert_eq!(src(&r1, "B"), [3, 4, 5]);
    assert!(src(&r1, "C").is_empty());
    let c1 = data_of(&r1, "C");
    assert_eq!(c1.warmup.get(LOG).map(Vec::len), Some(2));
    assert!(c1.probing_rebalance && data_of(&r1, "A").probing_rebalance);

    // Round 2, C still restoring: nothing changes (a fixed point, no churn).
    members = next_standby_round(&members, &r1, &ctx, &changelog_of, Catch::ActivesOnly);
    let r2 = assignor.assign(&members, &ctx).expect("assign");
    assert_eq!(r2, r1);

    // Round 3, C caught up on its warm-ups: they move to C, first revoked by their owners.
    members = next_standby_round(&members, &r2, &ctx, &changelog_of, Catch::Everything);
    let r3 = assignor.assign(&members, &ctx).expect("assign");
    let warm = c1.warmup.get(LOG).cloned().unwrap_or_default();
    assert!(src(&r3, "C").is_empty(), "nothing moves directly");
    assert_eq!(data_of(&r3, "C").pending.get(SRC), Some(&warm));
    assert_eq!(src(&r3, "A").len() + src(&r3, "B").len(), 4);

    // Round 4: C runs them; balanced, no warm-ups left.
    members = next_standby_round(&members, &r3, &ctx, &changelog_of, Catch::Everything);
    let r4 = assignor.assign(&members, &ctx).expect("assign");
    assert_eq!(src(&r4, "C"), warm);
    for m in ["A", "B", "C"] {
        assert_eq!(src(&r4, m).len(), 2);
        let d = data_of(&r4, m);
        assert!(d.warmup.is_empty() && d.pending.is_empty() && !d.probing_rebalance);
    }
    // And it stays that way.
    members = next_standby_round(&members, &r4, &ctx, &changelog_of, Catch::Everything);
    assert_eq!(assignor.assign(&members, &ctx).expect("assign"), r4);
}

#[test]
fn without_warmups_balance_is_strict() {
    let assignor = StandbyAssignor::new(config(1, 0, 100));
    let members = vec![
        holder("A", &[0, 1, 2], &[3, 4, 5]),
        holder("B", &[3, 4, 5], &[0, 1, 2]),
        standby_member("C", &[SRC], 7, &StandbySubscriptionData::new()),
    ];
    let r = assignor.assign(&members, &ctx(6)).expect("assign");
    // C is the owner of two units at once; they are withheld until A and B revoke them.
    assert_eq!(src(&r, "A").len(), 2);
    assert_eq!(src(&r, "B").len(), 2);
    assert_eq!(data_of(&r, "C").pending.get(SRC).map(Vec::len), Some(2));
    assert!(data_of(&r, "C").warmup.is_empty());
}

#[test]
fn caught_up_member_wins_over_lagging_one() {
    // Unit 0's owner left. B applied 990 of 1000 (caught up at lag 100), C applied 500.
    let assignor = StandbyAssignor::new(config(1, 2, 100));
    let mut b = StandbySubscriptionData::new();
    b.set_applied_offset(LOG, 0, 990);
    let mut c = StandbySubscriptionData::new();
    c.set_applied_offset(LOG, 0, 500);
    let members = [
        standby_member("C", &[SRC], 3, &c),
        standby_member("B", &[SRC], 3, &b),
    ];
    let r = assignor.assign(&members, &ctx(1)).expect("assign");
    assert_eq!(src(&r, "B"), [0]);
    assert_eq!(data_of(&r, "C").standby, map(&[(LOG, 0)]));
}

#[test]
fn applied_beyond_end_counts_as_full_restore() {
    // B's offset is beyond the end (changelog recreated): a full restore, like having
    // nothing; C, 50 behind, is the better candidate even with lag tolerance 0.
    let assignor = StandbyAssignor::new(config(0, 0, 0));
    let mut b = StandbySubscriptionData::new();
    b.set_applied_offset(LOG, 0, 5000);
    let mut c = StandbySubscriptionData::new();
    c.set_applied_offset(LOG, 0, 950);
    let members = [
        standby_member("B", &[SRC], 3, &b),
        standby_member("C", &[SRC], 3, &c),
    ];
    let r = assignor.assign(&members, &ctx(1)).expect("assign");
    assert_eq!(src(&r, "C"), [0]);
}

#[test]
fn moved_unit_is_revoked_first_and_old_owner_keeps_it_warm() {
    // A runs both units; B joins holding a caught-up standby of unit 1.
    let assignor = StandbyAssignor::new(config(1, 2, 100));
    let members = vec![holder("A", &[0, 1], &[]), holder("B", &[], &[1])];
    let r1 = assignor.assign(&members, &ctx(2)).expect("assign");
    assert_eq!(src(&r1, "A"), [0]);
    assert!(src(&r1, "B").is_empty());
    assert_eq!(data_of(&r1, "B").pending, map(&[(SRC, 1)]));
    // A revokes unit 1 and keeps it as a standby, B keeps unit 0's standby.
    assert_eq!(data_of(&r1, "A").standby, map(&[(LOG, 1)]));
    assert_eq!(data_of(&r1, "B").standby, map(&[(LOG, 0)]));
    let members = next_standby_round(&members, &r1, &ctx(2), &changelog_of, Catch::Everything);
    let r2 = assignor.assign(&members, &ctx(2)).expect("assign");
    assert_eq!(src(&r2, "A"), [0]);
    assert_eq!(src(&r2, "B"), [1]);
}

#[test]
fn stale_generation_does_not_keep_a_unit() {
    // A claims unit 0 from generation 6 while the group is at 7: A's claim is stale and
    // its offsets (lag 600) lose to B's caught-up copy.
    let assignor = StandbyAssignor::new(config(1, 2, 100));
    let mut a = StandbySubscriptionData::new();
    a.active = map(&[(SRC, 0)]);
    a.set_applied_offset(LOG, 0, 400);
    let members = [standby_member("A", &[SRC], 6, &a), holder("B", &[], &[0])];
    let r = assignor.assign(&members, &ctx(1)).expect("assign");
    assert_eq!(src(&r, "B"), [0]);
}

#[test]
fn co_partitioned_topics_travel_together() {
    let cfg = StandbyConfig {
        co_partitioned: vec![CoPartitionGroup::new(
            ["orders", "orders-by-user"],
            ["orders-store"],
        )],
        ..StandbyConfig::default()
    };
    let ctx = context(&[("orders", 8), ("orders-by-user", 8), ("orders-store", 8)]);
    let topics = ["orders", "orders-by-user"];
    let members: Vec<MemberSubscription> =
        ["a", "b", "c"].iter().map(|m| member(m, &topics)).collect();
    let r = StandbyAssignor::new(cfg)
        .assign(&members, &ctx)
        .expect("assign");
    check_complete(&members, &ctx, &r);
    for m in ["a", "b", "c"] {
        let a = &r[m].partitions;
        assert_eq!(a.get("orders"), a.get("orders-by-user"), "member {m}");
        let d = data_of(&r, m);
        let standby = d.standby.get("orders-store").cloned().unwrap_or_default();
        assert!(standby.iter().all(|p| !a["orders"].contains(p)));
    }
}

#[test]
fn group_nobody_fully_subscribes_is_split() {
    // a reads only t1, b only t2, but the config groups them: each topic still gets out.
    let cfg = StandbyConfig {
        co_partitioned: vec![CoPartitionGroup::new(["t1", "t2"], ["log"])],
        ..StandbyConfig::default()
    };
    let ctx = context(&[("t1", 2), ("t2", 2), ("log", 2)]);
    let members = [member("a", &["t1"]), member("b", &["t2"])];
    let r = StandbyAssignor::new(cfg)
        .assign(&members, &ctx)
        .expect("assign");
    check_complete(&members, &ctx, &r);
    assert!(data_of(&r, "a").standby.is_empty() && data_of(&r, "b").standby.is_empty());
}

#[test]
fn subscription_data_round_trips() {
    let mut d = StandbySubscriptionData::new();
    d.active = map(&[("a", 0), ("a", 3), ("b", 1)]);
    d.standby = map(&[("a-log", 2)]);
    d.warmup = map(&[("a-log", 5)]);
    d.pending = map(&[("a", 7)]);
    d.set_applied_offset("a-log", 2, 77)
        .set_applied_offset("a-log", 5, -1);
    let bytes = d.encode().expect("encode");
    assert_eq!(bytes[0], STANDBY_USER_DATA_VERSION as u8, "version first");
    assert_eq!(StandbySubscriptionData::decode(&bytes), Ok(d.clone()));

    let prev = StandbyAssignmentData {
        standby: map(&[("a-log", 1)]),
        warmup: map(&[("a-log", 4)]),
        pending: map(&[("a", 9)]),
        probing_rebalance: true,
    };
    let from = StandbySubscriptionData::from_previous(&map(&[("a", 0)]), Some(&prev));
    assert_eq!(from.standby, prev.standby);
    assert_eq!(from.warmup, prev.warmup);
    assert_eq!(from.pending, prev.pending);
    assert_eq!(
        prev.partitions_to_keep_warm(),
        map(&[("a-log", 1), ("a-log", 4)])
    );
    let bytes = prev.encode().expect("encode");
    assert_eq!(StandbyAssignmentData::decode(&bytes), Ok(prev));
}

#[test]
fn user_data_errors_are_typed() {
    assert_eq!(
        StandbySubscriptionData::decode(&[]),
        Err(UserDataError::Empty)
    );
    assert_eq!(
        StandbySubscriptionData::decode(&[0, 0, 0, 0, 0, 0]),
        Err(UserDataError::UnsupportedVersion(0))
    );
    let good = StandbySubscriptionData::new().encode().expect("encode");
    let mut trailing = good.to_vec();
    trailing.push(9);
    assert_eq!(
        StandbySubscriptionData::decode(&trailing),
        Err(UserDataError::TrailingBytes(1))
    );
    // A later version may append fields: they are ignored.
    let mut newer = trailing.clone();
    newer[0] = 2;
    assert_eq!(
        StandbySubscriptionData::decode(&newer),
        Ok(StandbySubscriptionData::new())
    );
    assert!(matches!(
        StandbySubscriptionData::decode(&[1, 3, 1]),
        Err(UserDataError::Malformed(_))
    ));
    let mut negative = StandbySubscriptionData::new();
    negative.active = map(&[("t", -4)]);
    let bytes = negative.encode().expect("encode");
    assert_eq!(
        StandbySubscriptionData::decode(&bytes),
        Err(UserDataError::NegativePartition {
            topic: "t".into(),
            partition: -4
        })
    );
    assert!(matches!(
        StandbyAssignmentData::decode(&[1, 0, 0, 0, 2]),
        Err(UserDataError::Malformed(_))
    ));
}

#[test]
fn bad_user_data_is_reported_with_the_member() {
    let mut bad = member("b", &[SRC]);
    bad.user_data = Some(bytes::Bytes::from_static(&[7, 200, 200, 200]));
    let members = [member("a", &[SRC]), bad];
    let err = StandbyAssignor::default()
        .assign(&members, &ctx(2))
        .unwrap_err();
    assert!(matches!(err, AssignError::BadUserData { ref member, .. } if member == "b"));
}

#[test]
fn missing_user_data_means_no_state() {
    let members = [member("a", &[SRC]), member("b", &[SRC])];
    let r = StandbyAssignor::new(config(1, 2, 100))
        .assign(&members, &ctx(4))
        .expect("assign");
    check_complete(&members, &ctx(4), &r);
    assert_eq!(count(&r, "a"), 2);
    assert_eq!(count(&r, "b"), 2);
    // Nobody has state (everyone 1000 behind, a full restore): standbys spread evenly.
    assert_eq!(data_of(&r, "a").standby.get(LOG).map(Vec::len), Some(2));
    assert_eq!(data_of(&r, "b").standby.get(LOG).map(Vec::len), Some(2));
    // Without a changelog mapping the topic is stateless: no standbys at all.
    let r = StandbyAssignor::default()
        .assign(&members, &ctx(4))
        .expect("assign");
    assert!(data_of(&r, "a").standby.is_empty() && data_of(&r, "b").standby.is_empty());
}

/// The leader asks for the end offsets of every configured changelog partition a member
/// names (applied offsets, standbys, warm-ups, pending), and of nothing else; members without
/// or with unreadable user data add nothing. Other assignors ask for none.
#[test]
fn end_offsets_needed_are_the_changelog_partitions_members_name() {
    let assignor = StandbyAssignor::new(config(1, 1, 10));
    let mut d1 = StandbySubscriptionData::new();
    d1.set_applied_offset(LOG, 0, 5);
    d1.set_applied_offset("not-a-changelog", 0, 5);
    d1.standby = map(&[(LOG, 1)]);
    let mut d2 = StandbySubscriptionData::new();
    d2.warmup = map(&[(LOG, 2)]);
    d2.pending = map(&[(LOG, 3), (SRC, 4)]);
    let mut bad = standby_member("m3", &[SRC], 1, &StandbySubscriptionData::new());
    bad.user_data = Some(vec![0xff, 0xff].into());
    let mut none = standby_member("m4", &[SRC], 1, &StandbySubscriptionData::new());
    none.user_data = None;
    let members = vec![
        standby_member("m1", &[SRC], 1, &d1),
        standby_member("m2", &[SRC], 1, &d2),
        bad,
        none,
    ];
    let needed: Vec<TopicPartition> = assignor.end_offsets_needed(&members).into_iter().collect();
    let want: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new(LOG, p)).collect();
    assert_eq!(needed, want);
    assert!(mephisto_consumer_group::assignor::RangeAssignor::new()
        .end_offsets_needed(&members)
        .is_empty());
}
