//! Every error of protocol.md §2.6 on JoinGroup, SyncGroup, Heartbeat and OffsetCommit (and
//! FindCoordinator, transport failures and bad payloads), checked against the Java client's
//! reaction.

mod membership_support;

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use membership_support::*;
use mephisto_consumer_group::membership::{
    reaction, ApiKind, GroupError, GroupEvent, GroupRequest, MemberState, Reaction, RequestBody,
    RequestFailure, ResponseEvent,
};
use mephisto_consumer_group::offsets::{classify_commit_error, CommitErrorKind};

const FATAL_ON_JOIN_AND_SYNC: [i16; 6] = [82, 23, 26, 81, 30, 24];

/// Subscribed, coordinator found, MEMBER_ID_REQUIRED done: a JoinGroup with member "m1" is
/// pending.
fn joining() -> (Harness, GroupRequest) {
    let mut h = Harness::new(config(), vec![eager()]);
    h.member.subscribe(h.now, ["t0"]);
    h.pump();
    h.answer_find(1);
    let join = h.take(ApiKind::JoinGroup);
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_err(79, "m1"),
    });
    let join = h.take(ApiKind::JoinGroup);
    (h, join)
}

/// Joined generation 1 as follower: a SyncGroup is pending.
fn syncing() -> (Harness, GroupRequest) {
    let (mut h, join) = joining();
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_follower(1, "m1", "range"),
    });
    let sync = h.take(ApiKind::SyncGroup);
    (h, sync)
}

/// Stable in generation 1 owning t0-0 and t0-1, with a heartbeat pending.
fn stable() -> (Harness, GroupRequest) {
    let (mut h, sync) = syncing();
    h.respond(ResponseEvent::SyncGroup {
        request: sync.id,
        response: sync_ok(&owned()),
    });
    h.take_events();
    h.advance(Duration::from_secs(3));
    let beat = h.take(ApiKind::Heartbeat);
    (h, beat)
}

fn owned() -> std::collections::BTreeSet<mephisto_consumer_group::TopicPartition> {
    set(&[("t0", 0), ("t0", 1)])
}

fn join_member_and_generation(h: &mut Harness) -> (String, i32) {
    let join = h.take(ApiKind::JoinGroup);
    let j = Harness::join_request(&join);
    (
        j.member_id.clone(),
        decode_sub(&j.protocols[0].metadata).generation_id,
    )
}

fn assert_fatal(h: &mut Harness, api: ApiKind, code: i16) {
    let error = ResponseError::try_from_code(code).expect("an error code");
    let events = h.take_events();
    assert_eq!(
        events.last(),
        Some(&GroupEvent::Fatal(GroupError::Broker { api, error })),
        "code {code}: {events:?}"
    );
    assert_eq!(h.member.state(), MemberState::Failed);
    h.sent.clear();
    h.advance(Duration::from_secs(120));
    assert!(h.sent.is_empty(), "nothing sent after a fatal error");
}

// ---- JoinGroup ---------------------------------------------------------------------------

#[test]
fn join_coordinator_load_in_progress_backs_off_and_retries() {
    let (mut h, join) = joining();
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_err(14, "m1"),
    });
    assert!(!h.has(ApiKind::JoinGroup));
    assert!(h.member.coordinator().is_some());
    h.advance(Duration::from_millis(99));
    assert!(!h.has(ApiKind::JoinGroup));
    h.advance(Duration::from_millis(1));
    assert_eq!(join_member_and_generation(&mut h), ("m1".into(), -1));
}

#[test]
fn join_not_coordinator_rediscovers() {
    for code in [15, 16] {
        let (mut h, join) = joining();
        h.respond(ResponseEvent::JoinGroup {
            request: join.id,
            response: join_err(code, "m1"),
        });
        assert_eq!(h.member.coordinator(), None, "code {code}");
        assert!(!h.has(ApiKind::JoinGroup));
        h.answer_find(2);
        assert_eq!(join_member_and_generation(&mut h), ("m1".into(), -1));
    }
}

#[test]
fn join_member_errors_rejoin_at_once() {
    for (code, member) in [(22, "m1"), (25, ""), (27, "m1")] {
        let (mut h, join) = joining();
        h.respond(ResponseEvent::JoinGroup {
            request: join.id,
            response: join_err(code, "m1"),
        });
        assert_eq!(
            join_member_and_generation(&mut h),
            (member.to_owned(), -1),
            "code {code}"
        );
        assert!(h.events.is_empty());
    }
}

#[test]
fn join_fatal_errors_stop_the_member() {
    for code in FATAL_ON_JOIN_AND_SYNC.into_iter().chain([1000]) {
        let (mut h, join) = joining();
        h.respond(ResponseEvent::JoinGroup {
            request: join.id,
            response: join_err(code, "m1"),
        });
        assert_fatal(&mut h, ApiKind::JoinGroup, code);
    }
}

#[test]
fn join_with_a_protocol_we_did_not_advertise_is_fatal() {
    let (mut h, join) = joining();
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_follower(1, "m1", "nope"),
    });
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Fatal(GroupError::UnknownProtocol(Some(
            "nope".into()
        )))]
    );
}

#[test]
fn leader_with_unreadable_member_metadata_is_fatal() {
    let (mut h, join) = joining();
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_leader(1, "m1", "range", &[("m2", Bytes::from_static(&[0xff]))]),
    });
    assert!(matches!(
        h.take_events().as_slice(),
        [GroupEvent::Fatal(GroupError::BadSubscription { member, .. })] if member == "m2"
    ));
}

// ---- SyncGroup ---------------------------------------------------------------------------

#[test]
fn sync_coordinator_load_in_progress_backs_off_then_rejoins() {
    let (mut h, sync) = syncing();
    h.respond(ResponseEvent::SyncGroup {
        request: sync.id,
        response: sync_err(14),
    });
    assert!(!h.has(ApiKind::JoinGroup) && !h.has(ApiKind::SyncGroup));
    h.advance(Duration::from_millis(100));
    assert_eq!(join_member_and_generation(&mut h), ("m1".into(), 1));
}

#[test]
fn sync_not_coordinator_rediscovers_then_rejoins() {
    for code in [15, 16] {
        let (mut h, sync) = syncing();
        h.respond(ResponseEvent::SyncGroup {
            request: sync.id,
            response: sync_err(code),
        });
        assert_eq!(h.member.coordinator(), None);
        h.answer_find(3);
        assert_eq!(join_member_and_generation(&mut h), ("m1".into(), 1));
    }
}

#[test]
fn sync_generation_and_member_errors() {
    // (code, member id kept?, generation in the next subscription)
    for (code, member, generation) in [(22, "m1", -1), (25, "", -1), (27, "m1", 1)] {
        let (mut h, sync) = syncing();
        h.respond(ResponseEvent::SyncGroup {
            request: sync.id,
            response: sync_err(code),
        });
        assert_eq!(
            join_member_and_generation(&mut h),
            (member.to_owned(), generation),
            "code {code}"
        );
        assert!(h.events.is_empty(), "nothing was owned yet");
    }
}

#[test]
fn sync_fatal_errors_stop_the_member() {
    for code in FATAL_ON_JOIN_AND_SYNC.into_iter().chain([79]) {
        let (mut h, sync) = syncing();
        h.respond(ResponseEvent::SyncGroup {
            request: sync.id,
            response: sync_err(code),
        });
        assert_fatal(&mut h, ApiKind::SyncGroup, code);
    }
}

#[test]
fn sync_with_inconsistent_protocol_name_or_bad_assignment_is_fatal() {
    let (mut h, sync) = syncing();
    h.respond(ResponseEvent::SyncGroup {
        request: sync.id,
        response: sync_ok(&owned()).with_protocol_name(Some(s("roundrobin"))),
    });
    assert_fatal(&mut h, ApiKind::SyncGroup, 23);

    let (mut h, sync) = syncing();
    h.respond(ResponseEvent::SyncGroup {
        request: sync.id,
        response: kafka_protocol::messages::SyncGroupResponse::default()
            .with_assignment(Bytes::from_static(&[0, 3, 0xff, 0xff, 0xff])),
    });
    assert!(matches!(
        h.take_events().as_slice(),
        [GroupEvent::Fatal(GroupError::BadAssignment(_))]
    ));
}

// ---- Heartbeat ---------------------------------------------------------------------------

#[test]
fn heartbeat_load_in_progress_retries_after_backoff() {
    let (mut h, beat) = stable();
    h.respond(ResponseEvent::Heartbeat {
        request: beat.id,
        response: hb(14),
    });
    h.advance(Duration::from_millis(99));
    assert!(!h.has(ApiKind::Heartbeat));
    h.advance(Duration::from_millis(1));
    assert!(h.has(ApiKind::Heartbeat));
    assert!(h.events.is_empty());
}

#[test]
fn heartbeat_not_coordinator_rediscovers_and_keeps_membership() {
    for code in [15, 16] {
        let (mut h, beat) = stable();
        h.respond(ResponseEvent::Heartbeat {
            request: beat.id,
            response: hb(code),
        });
        assert_eq!(h.member.coordinator(), None);
        h.answer_find(4);
        h.advance(Duration::from_secs(3));
        assert!(h.has(ApiKind::Heartbeat));
        assert!(h.events.is_empty());
        assert_eq!(h.member.generation(), Some(1));
    }
}

#[test]
fn heartbeat_generation_and_member_errors_lose_partitions_and_rejoin() {
    for (code, member) in [(22, "m1"), (25, ""), (82, "")] {
        let (mut h, beat) = stable();
        h.respond(ResponseEvent::Heartbeat {
            request: beat.id,
            response: hb(code),
        });
        assert_eq!(
            h.take_events(),
            vec![GroupEvent::Lost {
                partitions: owned()
            }],
            "code {code}"
        );
        assert_eq!(
            join_member_and_generation(&mut h),
            (member.to_owned(), -1),
            "code {code}"
        );
    }
}

#[test]
fn heartbeat_rebalance_in_progress_revokes_then_rejoins() {
    let (mut h, beat) = stable();
    h.respond(ResponseEvent::Heartbeat {
        request: beat.id,
        response: hb(27),
    });
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Revoked {
            partitions: owned()
        }]
    );
    h.member.revocation_done(h.now);
    h.pump();
    assert_eq!(join_member_and_generation(&mut h), ("m1".into(), 1));
}

#[test]
fn heartbeat_rebalance_in_progress_while_syncing_is_ignored() {
    let (mut h, sync) = syncing();
    h.advance(Duration::from_secs(3));
    let beat = h.take(ApiKind::Heartbeat);
    h.respond(ResponseEvent::Heartbeat {
        request: beat.id,
        response: hb(27),
    });
    assert_eq!(h.member.state(), MemberState::Syncing);
    h.respond(ResponseEvent::SyncGroup {
        request: sync.id,
        response: sync_ok(&owned()),
    });
    assert_eq!(h.member.state(), MemberState::Stable);
}

#[test]
fn heartbeat_fatal_errors_lose_partitions_and_stop() {
    for code in [23, 26, 81, 30] {
        let (mut h, beat) = stable();
        h.respond(ResponseEvent::Heartbeat {
            request: beat.id,
            response: hb(code),
        });
        assert_eq!(
            h.events.first(),
            Some(&GroupEvent::Lost {
                partitions: owned()
            })
        );
        assert_fatal(&mut h, ApiKind::Heartbeat, code);
    }
}

// ---- OffsetCommit (group-level part) -----------------------------------------------------

#[test]
fn commit_errors_apply_to_the_membership() {
    let commit = |code: i16| {
        let (mut h, beat) = stable();
        h.respond(ResponseEvent::Heartbeat {
            request: beat.id,
            response: hb(0),
        });
        let error = ResponseError::try_from_code(code).expect("error");
        h.member.handle_commit_error(h.now, 1, error);
        h.pump();
        h
    };
    let mut h = commit(27);
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Revoked {
            partitions: owned()
        }]
    );
    let mut h = commit(22);
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Lost {
            partitions: owned()
        }]
    );
    assert_eq!(join_member_and_generation(&mut h), ("m1".into(), -1));
    let mut h = commit(25);
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Lost {
            partitions: owned()
        }]
    );
    assert_eq!(join_member_and_generation(&mut h), ("".into(), -1));
    let h = commit(16);
    assert_eq!(h.member.coordinator(), None);
    assert!(h.has(ApiKind::FindCoordinator));
    for code in [14, 12, 28, 3] {
        let h = commit(code);
        assert!(h.events.is_empty(), "code {code}");
        assert_eq!(h.member.state(), MemberState::Stable);
    }
    for code in [82, 30] {
        let mut h = commit(code);
        assert_eq!(
            h.events.first(),
            Some(&GroupEvent::Lost {
                partitions: owned()
            })
        );
        assert_fatal(&mut h, ApiKind::OffsetCommit, code);
    }
}

#[test]
fn commit_error_classification() {
    use CommitErrorKind as K;
    let cases = [
        (14, K::Retriable),
        (3, K::Retriable),
        (15, K::CoordinatorMoved),
        (16, K::CoordinatorMoved),
        (7, K::CoordinatorMoved),
        (27, K::RebalanceInProgress),
        (22, K::MembershipLost),
        (25, K::MembershipLost),
        (82, K::Fatal),
        (30, K::Fatal),
        (29, K::Fatal),
        (12, K::Rejected),
        (28, K::Rejected),
        (1000, K::Rejected),
    ];
    for (code, kind) in cases {
        let error = ResponseError::try_from_code(code).expect("error");
        assert_eq!(classify_commit_error(error), kind, "code {code}");
    }
    assert!(K::Retriable.is_retriable() && K::CoordinatorMoved.is_retriable());
    assert!(!K::RebalanceInProgress.is_retriable() && !K::MembershipLost.is_retriable());
}

#[test]
fn reaction_table() {
    use ApiKind::*;
    let e = |c: i16| ResponseError::try_from_code(c).expect("error");
    for api in [JoinGroup, SyncGroup, Heartbeat, OffsetCommit] {
        assert_eq!(reaction(api, e(14)), Reaction::Backoff, "{api}");
        assert_eq!(reaction(api, e(15)), Reaction::Rediscover, "{api}");
        assert_eq!(reaction(api, e(16)), Reaction::Rediscover, "{api}");
        assert_eq!(reaction(api, e(22)), Reaction::ResetGeneration, "{api}");
        assert_eq!(reaction(api, e(25)), Reaction::ResetMember, "{api}");
        assert_eq!(reaction(api, e(27)), Reaction::Rejoin, "{api}");
        for fatal in [23, 26, 81] {
            assert_eq!(reaction(api, e(fatal)), Reaction::Fatal, "{api} {fatal}");
        }
    }
    assert_eq!(reaction(JoinGroup, e(79)), Reaction::AdoptMemberId);
    assert_eq!(reaction(JoinGroup, e(82)), Reaction::Fatal);
    assert_eq!(reaction(SyncGroup, e(82)), Reaction::Fatal);
    assert_eq!(reaction(Heartbeat, e(82)), Reaction::ResetMember);
    assert_eq!(reaction(OffsetCommit, e(12)), Reaction::Ignore);
    assert_eq!(reaction(FindCoordinator, e(15)), Reaction::Backoff);
    assert_eq!(reaction(FindCoordinator, e(30)), Reaction::Fatal);
}

// ---- FindCoordinator and transport failures ------------------------------------------------

#[test]
fn find_coordinator_errors_and_failures_back_off_doubling() {
    let mut h = Harness::new(config(), vec![eager()]);
    h.member.subscribe(h.now, ["t0"]);
    h.pump();
    let find = h.take(ApiKind::FindCoordinator);
    h.respond(ResponseEvent::FindCoordinator {
        request: find.id,
        response: find_err(15),
    });
    h.advance(Duration::from_millis(99));
    assert!(!h.has(ApiKind::FindCoordinator));
    h.advance(Duration::from_millis(1));
    let find = h.take(ApiKind::FindCoordinator);
    h.respond(ResponseEvent::Failed {
        request: find.id,
        error: RequestFailure::Disconnected("reset".into()),
    });
    h.advance(Duration::from_millis(199));
    assert!(!h.has(ApiKind::FindCoordinator));
    h.advance(Duration::from_millis(1));
    let find = h.take(ApiKind::FindCoordinator);
    h.respond(ResponseEvent::FindCoordinator {
        request: find.id,
        response: find_err(30),
    });
    assert_fatal(&mut h, ApiKind::FindCoordinator, 30);
}

#[test]
fn join_and_sync_timeouts_rediscover_with_backoff() {
    let (mut h, join) = joining();
    h.respond(ResponseEvent::Failed {
        request: join.id,
        error: RequestFailure::Timeout,
    });
    assert_eq!(h.member.coordinator(), None);
    assert!(!h.has(ApiKind::FindCoordinator), "backoff first");
    h.advance(Duration::from_millis(100));
    h.answer_find(1);
    assert_eq!(join_member_and_generation(&mut h), ("m1".into(), -1));

    let (mut h, sync) = syncing();
    h.respond(ResponseEvent::Failed {
        request: sync.id,
        error: RequestFailure::Timeout,
    });
    assert_eq!(h.member.coordinator(), None);
    h.advance(Duration::from_millis(100));
    h.answer_find(1);
    assert_eq!(join_member_and_generation(&mut h), ("m1".into(), 1));
}

#[test]
fn heartbeat_timeout_rediscovers() {
    let (mut h, beat) = stable();
    h.respond(ResponseEvent::Failed {
        request: beat.id,
        error: RequestFailure::Timeout,
    });
    assert_eq!(h.member.coordinator(), None);
    assert!(h.has(ApiKind::FindCoordinator));
    h.answer_find(1);
    h.advance(Duration::from_millis(100));
    assert!(h.has(ApiKind::Heartbeat));
    assert!(h.events.is_empty());
}

#[test]
fn unsupported_version_is_fatal() {
    let (mut h, join) = joining();
    h.respond(ResponseEvent::Failed {
        request: join.id,
        error: RequestFailure::Unsupported("JoinGroup v4+ needed".into()),
    });
    assert!(matches!(
        h.take_events().as_slice(),
        [GroupEvent::Fatal(GroupError::Unsupported {
            api: ApiKind::JoinGroup,
            ..
        })]
    ));
}

#[test]
fn leader_metadata_failure_is_retried() {
    let (mut h, join) = joining();
    let meta_bytes = subscription_bytes(&["t0"]);
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_leader(1, "m1", "range", &[("m1", meta_bytes)]),
    });
    let meta = h.take(ApiKind::AssignmentMetadata);
    h.respond(ResponseEvent::Failed {
        request: meta.id,
        error: RequestFailure::Timeout,
    });
    assert!(!h.has(ApiKind::AssignmentMetadata));
    h.advance(Duration::from_millis(100));
    let meta = h.take(ApiKind::AssignmentMetadata);
    assert!(matches!(&meta.body, RequestBody::AssignmentMetadata(m) if m.topics.contains("t0")));
}
