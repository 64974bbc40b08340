//! Scripted exchanges with a pretend coordinator: joins as follower and leader, heartbeats,
//! max poll, session loss, coordinator moves, static membership, cooperative rebalancing,
//! subscription changes and close.

mod membership_support;

use std::time::Duration;

use kafka_protocol::messages::JoinGroupResponse;
use membership_support::*;
use mephisto_consumer_group::assignor::AssignContext;
use mephisto_consumer_group::membership::{
    ApiKind, GroupEvent, MemberState, RequestBody, RequestFailure, ResponseEvent, Target,
};
use mephisto_wire::consumer_protocol;

#[test]
fn follower_join_with_member_id_required_dance() {
    let mut h = Harness::new(config(), vec![eager(), cooperative()]);
    h.pump();
    assert!(h.sent.is_empty(), "nothing to do before subscribing");
    h.member.subscribe(h.now, ["t0"]);
    h.pump();
    let find = h.take(ApiKind::FindCoordinator);
    assert_eq!(find.target, Target::AnyBroker);
    match &find.body {
        RequestBody::FindCoordinator(f) => assert_eq!(f.key, "g"),
        other => panic!("{other:?}"),
    }
    h.respond(ResponseEvent::FindCoordinator {
        request: find.id,
        response: find_ok(7),
    });
    assert_eq!(h.member.coordinator().map(|c| c.node_id), Some(7));

    let join = h.take(ApiKind::JoinGroup);
    assert!(
        matches!(&join.target, Target::Coordinator(c) if c.node_id == 7 && c.host == "broker7")
    );
    let j = Harness::join_request(&join).clone();
    assert_eq!(j.member_id, "");
    assert_eq!(j.protocol_type, "consumer");
    assert_eq!(j.session_timeout_ms, 45_000);
    assert_eq!(j.rebalance_timeout_ms, 300_000);
    assert_eq!(j.group_instance_id, None);
    let names: Vec<_> = j.protocols.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["range", "cooperative-sticky"], "preference order");
    let sub = decode_sub(&j.protocols[0].metadata);
    assert_eq!(sub.topics, ["t0"]);
    assert_eq!(sub.generation_id, -1);
    assert!(sub.owned_partitions.is_empty());

    // MEMBER_ID_REQUIRED: rejoin at once (no time passes) with the given id.
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_err(79, "m-42"),
    });
    let join2 = h.take(ApiKind::JoinGroup);
    assert_eq!(Harness::join_request(&join2).member_id, "m-42");
    assert!(h.events.is_empty());

    h.respond(ResponseEvent::JoinGroup {
        request: join2.id,
        response: join_follower(1, "m-42", "range"),
    });
    assert_eq!(h.member.state(), MemberState::Syncing);
    let sync = h.take(ApiKind::SyncGroup);
    match &sync.body {
        RequestBody::SyncGroup(s) => {
            assert_eq!(s.generation_id, 1);
            assert_eq!(s.member_id, "m-42");
            assert_eq!(s.protocol_name, "range");
            assert!(s.assignments.is_empty(), "followers send no assignments");
        }
        other => panic!("{other:?}"),
    }
    let parts = set(&[("t0", 0), ("t0", 1)]);
    h.respond(ResponseEvent::SyncGroup {
        request: sync.id,
        response: sync_ok(&parts),
    });
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Assigned {
            partitions: parts.clone(),
            generation: 1,
            user_data: None
        }]
    );
    assert_eq!(h.member.state(), MemberState::Stable);
    assert_eq!(h.member.owned(), &parts);
    let ctx = h.member.commit_context().expect("stable member can commit");
    assert_eq!((ctx.generation_id, ctx.member_id.as_str()), (1, "m-42"));

    // First heartbeat one interval after the join completed.
    h.advance(Duration::from_millis(2999));
    assert!(!h.has(ApiKind::Heartbeat));
    h.advance(Duration::from_millis(1));
    let beat = h.take(ApiKind::Heartbeat);
    match &beat.body {
        RequestBody::Heartbeat(b) => {
            assert_eq!((b.generation_id, b.member_id.as_str()), (1, "m-42"));
            assert_eq!(b.group_instance_id, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn batched_find_coordinator_response_is_read() {
    let mut h = Harness::new(config(), vec![eager()]);
    h.member.subscribe(h.now, ["t0"]);
    h.pump();
    let find = h.take(ApiKind::FindCoordinator);
    h.respond(ResponseEvent::FindCoordinator {
        request: find.id,
        response: find_ok_batched("g", 3),
    });
    assert_eq!(h.member.coordinator().map(|c| c.node_id), Some(3));
    assert!(h.has(ApiKind::JoinGroup));
}

#[test]
fn leader_runs_the_chosen_assignor() {
    let mut h = Harness::new(config(), vec![eager(), cooperative()]);
    h.member.subscribe(h.now, ["t0"]);
    h.pump();
    h.answer_find(1);
    let join = h.take(ApiKind::JoinGroup);
    let ours = Harness::join_request(&join).protocols[1].metadata.clone();
    // The coordinator picked our second protocol.
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_leader(
            5,
            "m1",
            "cooperative-sticky",
            &[("m1", ours), ("m2", subscription_bytes(&["t0", "t1"]))],
        ),
    });
    assert_eq!(h.member.state(), MemberState::Assigning);
    assert_eq!(h.member.protocol(), Some("cooperative-sticky"));
    let meta = h.take(ApiKind::AssignmentMetadata);
    assert_eq!(meta.target, Target::AnyBroker);
    match &meta.body {
        RequestBody::AssignmentMetadata(m) => {
            assert_eq!(m.topics.iter().collect::<Vec<_>>(), ["t0", "t1"]);
        }
        other => panic!("{other:?}"),
    }
    // Heartbeats go on while the leader assigns.
    h.advance(Duration::from_secs(3));
    assert!(h.has(ApiKind::Heartbeat));
    h.answer_heartbeats(0);
    // t1 is unknown to the metadata: skipped, not an error.
    let mut context = AssignContext::default();
    context.partitions_per_topic.insert("t0".into(), 4);
    h.respond(ResponseEvent::AssignmentMetadata {
        request: meta.id,
        context,
    });
    let sync = h.take(ApiKind::SyncGroup);
    let RequestBody::SyncGroup(body) = &sync.body else {
        panic!("{sync:?}")
    };
    assert_eq!(body.generation_id, 5);
    assert_eq!(body.protocol_name, "cooperative-sticky");
    let mut got = std::collections::BTreeMap::new();
    for a in &body.assignments {
        let decoded = consumer_protocol::decode_assignment(a.assignment.clone()).expect("decodes");
        got.insert(a.member_id.clone(), decoded.partitions);
    }
    assert_eq!(got["m1"]["t0"], [0, 2]);
    assert_eq!(got["m2"]["t0"], [1, 3]);
    let mine = body
        .assignments
        .iter()
        .find(|a| a.member_id == "m1")
        .map(|a| a.assignment.clone())
        .expect("m1 assigned");
    h.respond(ResponseEvent::SyncGroup {
        request: sync.id,
        response: kafka_protocol::messages::SyncGroupResponse::default().with_assignment(mine),
    });
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Assigned {
            partitions: set(&[("t0", 0), ("t0", 2)]),
            generation: 5,
            user_data: None
        }]
    );
}

#[test]
fn static_leader_with_skip_assignment_sends_no_assignments() {
    let mut c = config();
    c.group_instance_id = Some("i1".into());
    let mut h = Harness::new(c, vec![eager()]);
    h.member.subscribe(h.now, ["t0"]);
    h.pump();
    h.answer_find(1);
    let join = h.take(ApiKind::JoinGroup);
    let resp: JoinGroupResponse = join_leader(3, "m1", "range", &[]).with_skip_assignment(true);
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: resp,
    });
    assert!(!h.has(ApiKind::AssignmentMetadata));
    let sync = h.take(ApiKind::SyncGroup);
    assert!(matches!(&sync.body, RequestBody::SyncGroup(s) if s.assignments.is_empty()));
}

#[test]
fn heartbeats_keep_going_while_the_application_does_not_poll() {
    let mut h = Harness::new(config(), vec![eager()]);
    let parts = set(&[("t0", 0)]);
    h.join_as_follower(&["t0"], 1, &parts);
    h.take_events();
    let start = h.now;
    // A slow agent: 280 s without polling (below max.poll.interval 300 s).
    let mut beats = Vec::new();
    for _ in 0..280 {
        h.advance(Duration::from_secs(1));
        while h.has(ApiKind::Heartbeat) {
            beats.push(h.now);
            h.answer_heartbeats(0);
        }
    }
    assert_eq!(beats.len(), 93, "one heartbeat every 3 s for 280 s");
    assert!(beats
        .windows(2)
        .all(|w| w[1] - w[0] == Duration::from_secs(3)));
    assert_eq!(beats[0] - start, Duration::from_secs(3));
    assert!(h.events.is_empty(), "no loss, no revoke: {:?}", h.events);
    assert_eq!(h.member.state(), MemberState::Stable);
}

#[test]
fn max_poll_exceeded_leaves_then_rejoins_on_the_next_poll() {
    let mut h = Harness::new(config(), vec![eager()]);
    let parts = set(&[("t0", 0), ("t0", 1)]);
    h.join_as_follower(&["t0"], 1, &parts);
    h.take_events();
    // Heartbeats answered, but no poll for 300 s (subscribe counted as the last poll).
    for _ in 0..299 {
        h.advance(Duration::from_secs(1));
        h.answer_heartbeats(0);
    }
    assert!(h.events.is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.take_events(),
        vec![
            GroupEvent::MaxPollExceeded,
            GroupEvent::Lost {
                partitions: parts.clone()
            }
        ]
    );
    let leave = h.take(ApiKind::LeaveGroup);
    match &leave.body {
        RequestBody::LeaveGroup(l) => {
            assert_eq!(l.members.len(), 1);
            assert_eq!(l.members[0].member_id, "m1");
        }
        other => panic!("{other:?}"),
    }
    h.answer_heartbeats(0);
    assert_eq!(h.member.generation(), None);
    assert_eq!(h.member.member_id(), "");
    // No rejoin (and no heartbeat) until the application polls again.
    h.advance(Duration::from_secs(60));
    assert!(h.sent.is_empty(), "{:?}", h.sent);
    h.member.record_poll(h.now);
    h.pump();
    let join = h.take(ApiKind::JoinGroup);
    assert_eq!(Harness::join_request(&join).member_id, "");
}

#[test]
fn session_loss_reports_partitions_lost() {
    let mut h = Harness::new(config(), vec![eager()]);
    let parts = set(&[("t0", 0)]);
    h.join_as_follower(&["t0"], 1, &parts);
    h.take_events();
    // Answers arrive 500 ms after the request. For 10 s the coordinator answers; then it is
    // unreachable (requests time out). The application keeps polling: only the session counts.
    let mut waiting: Vec<(std::time::Instant, ResponseEvent)> = Vec::new();
    let mut last_ok_sent = h.now;
    let start = h.now;
    while h.now - start < Duration::from_secs(80) {
        h.advance(Duration::from_millis(250));
        h.member.record_poll(h.now);
        let healthy = h.now - start < Duration::from_secs(10);
        for r in std::mem::take(&mut h.sent) {
            let event = match (healthy, r.body.kind()) {
                (true, ApiKind::Heartbeat) => {
                    last_ok_sent = h.now;
                    ResponseEvent::Heartbeat {
                        request: r.id,
                        response: hb(0),
                    }
                }
                (true, ApiKind::FindCoordinator) => ResponseEvent::FindCoordinator {
                    request: r.id,
                    response: find_ok(1),
                },
                _ => ResponseEvent::Failed {
                    request: r.id,
                    error: RequestFailure::Timeout,
                },
            };
            waiting.push((h.now + Duration::from_millis(500), event));
        }
        let due: Vec<_> = waiting
            .iter()
            .filter(|(t, _)| *t <= h.now)
            .cloned()
            .collect();
        waiting.retain(|(t, _)| *t > h.now);
        for (_, event) in due {
            h.respond(event);
        }
        if !h.events.is_empty() {
            break;
        }
    }
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Lost { partitions: parts }]
    );
    // Lost one session after the *send* time of the last heartbeat that succeeded (the
    // coordinator's timer started no earlier), not after its answer.
    assert!(h.now - last_ok_sent >= Duration::from_secs(45));
    assert!(
        h.now - last_ok_sent < Duration::from_millis(45_250),
        "{:?}",
        h.now - last_ok_sent
    );
    assert_eq!(h.member.generation(), None);
    assert_eq!(h.member.member_id(), "");
    assert_eq!(h.member.coordinator(), None);
}

#[test]
fn coordinator_move_keeps_the_membership() {
    let mut h = Harness::new(config(), vec![eager()]);
    let parts = set(&[("t0", 0)]);
    h.join_as_follower(&["t0"], 1, &parts);
    h.take_events();
    h.advance(Duration::from_secs(3));
    let beat = h.take(ApiKind::Heartbeat);
    h.respond(ResponseEvent::Heartbeat {
        request: beat.id,
        response: hb(16), // NOT_COORDINATOR
    });
    assert_eq!(h.member.coordinator(), None);
    let find = h.take(ApiKind::FindCoordinator);
    h.respond(ResponseEvent::FindCoordinator {
        request: find.id,
        response: find_ok(2),
    });
    h.advance(Duration::from_secs(3));
    let beat = h.take(ApiKind::Heartbeat);
    assert!(matches!(&beat.target, Target::Coordinator(c) if c.node_id == 2));
    assert!(matches!(&beat.body, RequestBody::Heartbeat(b) if b.generation_id == 1));
    assert!(h.events.is_empty());
    assert_eq!(h.member.state(), MemberState::Stable);
}

#[test]
fn stale_responses_are_ignored() {
    let mut h = Harness::new(config(), vec![eager()]);
    let parts = set(&[("t0", 0)]);
    h.join_as_follower(&["t0"], 1, &parts);
    h.take_events();
    h.advance(Duration::from_secs(3));
    let old_beat = h.take(ApiKind::Heartbeat);
    // A rebalance happens meanwhile (requested by the application).
    h.member.request_rejoin("test");
    h.pump();
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Revoked {
            partitions: parts.clone()
        }]
    );
    h.member.revocation_done(h.now);
    h.pump();
    h.complete_follower_join(2, "m1", &parts);
    assert_eq!(h.member.generation(), Some(2));
    h.take_events();
    // The old heartbeat's answer now says ILLEGAL_GENERATION: it is about generation 1.
    h.respond(ResponseEvent::Heartbeat {
        request: old_beat.id,
        response: hb(22),
    });
    assert_eq!(h.member.generation(), Some(2));
    assert!(h.events.is_empty());
    // Same for an OffsetCommit sent with generation 1.
    h.member.handle_commit_error(
        h.now,
        1,
        kafka_protocol::error::ResponseError::IllegalGeneration,
    );
    h.member.handle_commit_error(
        h.now,
        1,
        kafka_protocol::error::ResponseError::UnknownMemberId,
    );
    h.pump();
    assert_eq!(h.member.generation(), Some(2));
    assert_eq!(h.member.member_id(), "m1");
    assert!(h.events.is_empty());
    // An answer to a request never sent, or to an abandoned join, is ignored too.
    h.respond(ResponseEvent::JoinGroup {
        request: mephisto_consumer_group::membership::RequestId(9999),
        response: join_err(25, ""),
    });
    h.respond(ResponseEvent::SyncGroup {
        request: mephisto_consumer_group::membership::RequestId(9998),
        response: sync_err(22),
    });
    assert_eq!(h.member.state(), MemberState::Stable);
    assert_eq!(h.member.generation(), Some(2));
    // The same error for the current generation does reset it.
    h.member.handle_commit_error(
        h.now,
        2,
        kafka_protocol::error::ResponseError::IllegalGeneration,
    );
    h.pump();
    assert_eq!(h.member.generation(), None);
    assert_eq!(
        h.member.member_id(),
        "m1",
        "ILLEGAL_GENERATION keeps the member id"
    );
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Lost { partitions: parts }]
    );
}

#[test]
fn static_member_carries_its_instance_id_and_never_leaves() {
    let mut c = config();
    c.group_instance_id = Some("inst-1".into());
    let mut h = Harness::new(c, vec![eager()]);
    let parts = set(&[("t0", 0)]);
    h.member.subscribe(h.now, ["t0"]);
    h.pump();
    h.answer_find(1);
    let join = h.take(ApiKind::JoinGroup);
    assert_eq!(
        Harness::join_request(&join).group_instance_id.as_deref(),
        Some("inst-1")
    );
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_follower(1, "m1", "range"),
    });
    let sync = h.take(ApiKind::SyncGroup);
    assert!(
        matches!(&sync.body, RequestBody::SyncGroup(s) if s.group_instance_id.as_deref() == Some("inst-1"))
    );
    h.respond(ResponseEvent::SyncGroup {
        request: sync.id,
        response: sync_ok(&parts),
    });
    h.advance(Duration::from_secs(3));
    let beat = h.take(ApiKind::Heartbeat);
    assert!(
        matches!(&beat.body, RequestBody::Heartbeat(b) if b.group_instance_id.as_deref() == Some("inst-1"))
    );
    h.respond(ResponseEvent::Heartbeat {
        request: beat.id,
        response: hb(0),
    });
    assert_eq!(
        h.member.commit_context().and_then(|c| c.group_instance_id),
        Some("inst-1".to_owned())
    );
    h.take_events();
    h.member.close(h.now);
    h.pump();
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Revoked { partitions: parts }]
    );
    assert!(h.sent.is_empty());
    h.member.revocation_done(h.now);
    h.pump();
    assert!(!h.has(ApiKind::LeaveGroup), "static members do not leave");
    assert_eq!(h.take_events(), vec![GroupEvent::Closed]);
    assert_eq!(h.member.state(), MemberState::Closed);
    h.advance(Duration::from_secs(60));
    assert!(h.sent.is_empty(), "nothing after close");
}

#[test]
fn static_member_restart_rejoins_with_the_same_instance_id() {
    // A restarted process is a new Member with the same instance id: its first JoinGroup
    // carries the instance id and no member id, so the broker can swap it in.
    let mut c = config();
    c.group_instance_id = Some("inst-1".into());
    let mut h = Harness::new(c.clone(), vec![eager()]);
    h.join_as_follower(&["t0"], 4, &set(&[("t0", 0)]));
    h.member.close(h.now);
    h.member.revocation_done(h.now);
    h.pump();
    assert!(!h
        .log
        .iter()
        .any(|(_, r)| r.body.kind() == ApiKind::LeaveGroup));
    let mut h2 = Harness::new(c, vec![eager()]);
    h2.member.subscribe(h2.now, ["t0"]);
    h2.pump();
    h2.answer_find(1);
    let join = h2.take(ApiKind::JoinGroup);
    let j = Harness::join_request(&join);
    assert_eq!(j.group_instance_id.as_deref(), Some("inst-1"));
    assert_eq!(j.member_id, "");
}

#[test]
fn static_member_max_poll_sends_no_leave() {
    let mut c = config();
    c.group_instance_id = Some("inst-1".into());
    let mut h = Harness::new(c, vec![eager()]);
    h.join_as_follower(&["t0"], 1, &set(&[("t0", 0)]));
    h.take_events();
    for _ in 0..300 {
        h.advance(Duration::from_secs(1));
        h.answer_heartbeats(0);
    }
    assert!(h.events.contains(&GroupEvent::MaxPollExceeded));
    assert!(!h
        .log
        .iter()
        .any(|(_, r)| r.body.kind() == ApiKind::LeaveGroup));
}

#[test]
fn dynamic_close_revokes_then_leaves() {
    let mut h = Harness::new(config(), vec![eager()]);
    let parts = set(&[("t0", 0), ("t0", 1)]);
    h.join_as_follower(&["t0"], 1, &parts);
    h.take_events();
    h.member.close(h.now);
    h.pump();
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Revoked { partitions: parts }]
    );
    assert!(
        !h.has(ApiKind::LeaveGroup),
        "offsets are committed before leaving"
    );
    // Heartbeats keep the session while the engine commits.
    h.advance(Duration::from_secs(3));
    assert!(h.has(ApiKind::Heartbeat));
    assert!(h.member.commit_context().is_some());
    h.answer_heartbeats(0);
    h.member.revocation_done(h.now);
    h.pump();
    let leave = h.take(ApiKind::LeaveGroup);
    assert!(
        matches!(&leave.body, RequestBody::LeaveGroup(l) if l.members[0].member_id == "m1" && l.members[0].group_instance_id.is_none())
    );
    assert!(h.events.is_empty());
    h.respond(ResponseEvent::LeaveGroup {
        request: leave.id,
        response: leave_ok(),
    });
    assert_eq!(h.take_events(), vec![GroupEvent::Closed]);
    h.advance(Duration::from_secs(30));
    assert!(h.sent.is_empty());
}

#[test]
fn eager_rebalance_revokes_everything_before_join() {
    let mut h = Harness::new(config(), vec![eager()]);
    let parts = set(&[("t0", 0), ("t0", 1)]);
    h.join_as_follower(&["t0"], 1, &parts);
    h.take_events();
    h.advance(Duration::from_secs(3));
    let beat = h.take(ApiKind::Heartbeat);
    h.respond(ResponseEvent::Heartbeat {
        request: beat.id,
        response: hb(27), // REBALANCE_IN_PROGRESS
    });
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Revoked {
            partitions: parts.clone()
        }]
    );
    assert!(
        !h.has(ApiKind::JoinGroup),
        "JoinGroup waits for the revocation"
    );
    h.advance(Duration::from_secs(3));
    assert!(!h.has(ApiKind::JoinGroup));
    h.answer_heartbeats(27);
    h.member.revocation_done(h.now);
    h.pump();
    let join = h.take(ApiKind::JoinGroup);
    let sub = decode_sub(&Harness::join_request(&join).protocols[0].metadata);
    assert!(sub.owned_partitions.is_empty());
    assert_eq!(Harness::join_request(&join).member_id, "m1");
}

#[test]
fn cooperative_rebalance_revokes_in_two_phases() {
    let mut h = Harness::new(config(), vec![cooperative()]);
    let all = set(&[("t0", 0), ("t0", 1), ("t0", 2), ("t0", 3)]);
    h.join_as_follower(&["t0"], 1, &all);
    h.take_events();
    h.advance(Duration::from_secs(3));
    let beat = h.take(ApiKind::Heartbeat);
    h.respond(ResponseEvent::Heartbeat {
        request: beat.id,
        response: hb(27),
    });
    // Cooperative: nothing revoked before JoinGroup; owned partitions advertised.
    assert!(h.events.is_empty(), "{:?}", h.events);
    let join = h.take(ApiKind::JoinGroup);
    let sub = decode_sub(&Harness::join_request(&join).protocols[0].metadata);
    assert_eq!(sub.owned_partitions["t0"], [0, 1, 2, 3]);
    assert_eq!(sub.generation_id, 1);
    assert_eq!(h.member.owned(), &all, "still owned during the rebalance");
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_follower(2, "m1", "cooperative-sticky"),
    });
    let sync = h.take(ApiKind::SyncGroup);
    let keep = set(&[("t0", 0), ("t0", 1)]);
    h.respond(ResponseEvent::SyncGroup {
        request: sync.id,
        response: sync_ok(&keep),
    });
    assert_eq!(
        h.take_events(),
        vec![
            GroupEvent::Revoked {
                partitions: set(&[("t0", 2), ("t0", 3)])
            },
            GroupEvent::Assigned {
                partitions: Default::default(),
                generation: 2,
                user_data: None
            }
        ]
    );
    assert_eq!(h.member.owned(), &keep);
    assert!(
        !h.has(ApiKind::JoinGroup),
        "second rebalance waits for the revocation"
    );
    h.member.revocation_done(h.now);
    h.pump();
    let join = h.take(ApiKind::JoinGroup);
    let sub = decode_sub(&Harness::join_request(&join).protocols[0].metadata);
    assert_eq!(sub.owned_partitions["t0"], [0, 1]);
    assert_eq!(sub.generation_id, 2);
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_follower(3, "m1", "cooperative-sticky"),
    });
    let sync = h.take(ApiKind::SyncGroup);
    h.respond(ResponseEvent::SyncGroup {
        request: sync.id,
        response: sync_ok(&set(&[("t0", 0), ("t0", 1), ("t1", 0)])),
    });
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Assigned {
            partitions: set(&[("t1", 0)]),
            generation: 3,
            user_data: None
        }]
    );
    assert!(
        !h.has(ApiKind::JoinGroup),
        "nothing revoked: no third rebalance"
    );
}

#[test]
fn subscription_change_rejoins_eager() {
    let mut h = Harness::new(config(), vec![eager()]);
    let parts = set(&[("t0", 0)]);
    h.join_as_follower(&["t0"], 1, &parts);
    h.take_events();
    h.member.subscribe(h.now, ["t0", "t1"]);
    h.pump();
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Revoked { partitions: parts }]
    );
    h.member.revocation_done(h.now);
    h.pump();
    let join = h.take(ApiKind::JoinGroup);
    let sub = decode_sub(&Harness::join_request(&join).protocols[0].metadata);
    assert_eq!(sub.topics, ["t0", "t1"]);
    // Same subscription again: nothing happens.
    h.member.subscribe(h.now, ["t1", "t0"]);
    h.pump();
    assert!(h.sent.is_empty() && h.events.is_empty());
}

#[test]
fn subscription_change_cooperative_revokes_only_dropped_topics() {
    let mut h = Harness::new(config(), vec![cooperative()]);
    let parts = set(&[("t0", 0), ("t1", 0)]);
    h.join_as_follower(&["t0", "t1"], 1, &parts);
    h.take_events();
    h.member.subscribe(h.now, ["t1"]);
    h.pump();
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Revoked {
            partitions: set(&[("t0", 0)])
        }]
    );
    h.member.revocation_done(h.now);
    h.pump();
    let join = h.take(ApiKind::JoinGroup);
    let sub = decode_sub(&Harness::join_request(&join).protocols[0].metadata);
    assert_eq!(sub.topics, ["t1"]);
    assert_eq!(sub.owned_partitions["t1"], [0]);
}

#[test]
fn subscription_change_during_join_rejoins_after_sync() {
    let mut h = Harness::new(config(), vec![eager()]);
    h.member.subscribe(h.now, ["t0"]);
    h.pump();
    h.answer_find(1);
    let join = h.take(ApiKind::JoinGroup);
    h.member.subscribe(h.now, ["t0", "t1"]);
    h.pump();
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_follower(1, "m1", "range"),
    });
    let sync = h.take(ApiKind::SyncGroup);
    let parts = set(&[("t0", 0)]);
    h.respond(ResponseEvent::SyncGroup {
        request: sync.id,
        response: sync_ok(&parts),
    });
    assert_eq!(
        h.take_events(),
        vec![
            GroupEvent::Assigned {
                partitions: parts.clone(),
                generation: 1,
                user_data: None
            },
            GroupEvent::Revoked { partitions: parts }
        ]
    );
    h.member.revocation_done(h.now);
    h.pump();
    let join = h.take(ApiKind::JoinGroup);
    assert_eq!(
        decode_sub(&Harness::join_request(&join).protocols[0].metadata).topics,
        ["t0", "t1"]
    );
}

#[test]
fn unsubscribe_revokes_and_leaves_then_can_resubscribe() {
    let mut h = Harness::new(config(), vec![eager()]);
    let parts = set(&[("t0", 0)]);
    h.join_as_follower(&["t0"], 1, &parts);
    h.take_events();
    h.member.subscribe(h.now, Vec::<String>::new());
    h.pump();
    assert_eq!(
        h.take_events(),
        vec![GroupEvent::Revoked { partitions: parts }]
    );
    h.member.revocation_done(h.now);
    h.pump();
    let _leave = h.take(ApiKind::LeaveGroup);
    assert_eq!(h.member.state(), MemberState::Idle);
    h.advance(Duration::from_secs(10));
    assert!(h.sent.is_empty());
    h.member.subscribe(h.now, ["t2"]);
    h.pump();
    let join = h.take(ApiKind::JoinGroup);
    assert_eq!(Harness::join_request(&join).member_id, "");
}

#[test]
fn config_is_validated() {
    use mephisto_consumer_group::membership::{ConfigError, Member};
    let now = std::time::Instant::now();
    let mut c = config();
    c.heartbeat_interval = c.session_timeout;
    assert!(matches!(
        Member::new(c, vec![eager()], now),
        Err(ConfigError::HeartbeatInterval { .. })
    ));
    assert!(matches!(
        Member::new(config(), vec![], now),
        Err(ConfigError::NoAssignor)
    ));
    assert!(matches!(
        Member::new(config(), vec![eager(), eager()], now),
        Err(ConfigError::DuplicateAssignor("range"))
    ));
    assert!(matches!(
        Member::new(
            mephisto_consumer_group::membership::MemberConfig::new(""),
            vec![eager()],
            now
        ),
        Err(ConfigError::EmptyGroupId)
    ));
}

#[test]
fn backoff_cap_must_fit_the_protocol() {
    let mut c = config();
    c.retry_backoff_max = Duration::MAX;
    assert!(matches!(
        mephisto_consumer_group::membership::Member::new(
            c,
            vec![eager()],
            std::time::Instant::now()
        ),
        Err(mephisto_consumer_group::membership::ConfigError::Backoff { .. })
    ));
}

/// The leader running `mephisto-standby` asks, with its metadata lookup, for the end offsets
/// of the changelog partitions the members' user data names, and its assignment uses them:
/// each unit goes to the member whose copy is caught up. (Without end offsets every copy
/// would count as caught up and member-id order would decide: checked too.)
#[test]
fn standby_leader_asks_for_changelog_end_offsets_and_uses_them() {
    use mephisto_consumer_group::assignor::{
        Assignor, CoPartitionGroup, MemberSubscription, StandbyAssignmentData, StandbyAssignor,
        StandbyConfig, StandbySubscriptionData,
    };
    let standby = || {
        StandbyAssignor::new(StandbyConfig {
            num_standby_replicas: 0,
            acceptable_recovery_lag: 10,
            max_warmup_replicas: 0,
            co_partitioned: vec![CoPartitionGroup::new(["src"], ["src-log"])],
        })
    };
    let data = |applied: [i64; 2]| {
        let mut d = StandbySubscriptionData::new();
        d.set_applied_offset("src-log", 0, applied[0]);
        d.set_applied_offset("src-log", 1, applied[1]);
        // A topic outside the configured changelogs is not looked up.
        d.set_applied_offset("other", 0, 1);
        d.encode().expect("encodes")
    };
    let (ours, theirs) = (data([0, 95]), data([95, 0]));

    let mut h = Harness::new(config(), vec![Box::new(standby())]);
    h.member.set_user_data(Some(ours.clone()));
    h.member.subscribe(h.now, ["src"]);
    h.pump();
    h.answer_find(1);
    let join = h.take(ApiKind::JoinGroup);
    let our_meta = Harness::join_request(&join).protocols[0].metadata.clone();
    assert_eq!(decode_sub(&our_meta).user_data, Some(ours.clone()));
    let their_meta = consumer_protocol::encode_subscription(
        &consumer_protocol::Subscription {
            topics: vec!["src".into()],
            user_data: Some(theirs.clone()),
            owned_partitions: Default::default(),
            generation_id: -1,
            rack_id: None,
        },
        consumer_protocol::MAX_VERSION,
    )
    .expect("encodes");
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_leader(
            1,
            "m1",
            "mephisto-standby",
            &[("m1", our_meta), ("m2", their_meta)],
        ),
    });
    let meta = h.take(ApiKind::AssignmentMetadata);
    let RequestBody::AssignmentMetadata(m) = &meta.body else {
        panic!("{meta:?}")
    };
    assert_eq!(m.topics.iter().collect::<Vec<_>>(), ["src"]);
    assert_eq!(
        m.end_offsets.iter().cloned().collect::<Vec<_>>(),
        [tp("src-log", 0), tp("src-log", 1)]
    );

    let mut context = AssignContext::default();
    context.partitions_per_topic.insert("src".into(), 2);
    // Self-check: without the end offsets, member-id order decides the other way round.
    let subs: Vec<MemberSubscription> = [("m1", &ours), ("m2", &theirs)]
        .into_iter()
        .map(|(id, d)| MemberSubscription {
            member_id: id.into(),
            group_instance_id: None,
            topics: vec!["src".into()],
            owned_partitions: Default::default(),
            generation_id: -1,
            rack_id: None,
            user_data: Some(d.clone()),
        })
        .collect();
    let blind = standby().assign(&subs, &context).expect("assigns");
    assert_eq!(blind["m1"].partitions["src"], [0]);
    assert_eq!(blind["m2"].partitions["src"], [1]);

    context.end_offsets.insert(tp("src-log", 0), 100);
    context.end_offsets.insert(tp("src-log", 1), 100);
    h.respond(ResponseEvent::AssignmentMetadata {
        request: meta.id,
        context,
    });
    let sync = h.take(ApiKind::SyncGroup);
    let RequestBody::SyncGroup(body) = &sync.body else {
        panic!("{sync:?}")
    };
    assert_eq!(
        body.rebalance_timeout_ms, 300_000,
        "the sync waits out the rebalance"
    );
    let mut got = std::collections::BTreeMap::new();
    for a in &body.assignments {
        let decoded = consumer_protocol::decode_assignment(a.assignment.clone()).expect("decodes");
        if let Some(user_data) = &decoded.user_data {
            StandbyAssignmentData::decode(user_data).expect("standby assignment data");
        }
        got.insert(a.member_id.clone(), decoded.partitions);
    }
    assert_eq!(
        got["m1"]["src"],
        [1],
        "m1 is caught up on unit 1 (lag 5), not 0 (lag 100)"
    );
    assert_eq!(got["m2"]["src"], [0], "m2 is caught up on unit 0");
}

/// Assignors that do not weigh lag ask for no end offsets.
#[test]
fn other_assignors_ask_for_no_end_offsets() {
    let mut h = Harness::new(config(), vec![eager()]);
    h.member.subscribe(h.now, ["t0"]);
    h.pump();
    h.answer_find(1);
    let join = h.take(ApiKind::JoinGroup);
    let ours = Harness::join_request(&join).protocols[0].metadata.clone();
    h.respond(ResponseEvent::JoinGroup {
        request: join.id,
        response: join_leader(1, "m1", "range", &[("m1", ours)]),
    });
    let meta = h.take(ApiKind::AssignmentMetadata);
    assert!(matches!(&meta.body, RequestBody::AssignmentMetadata(m) if m.end_offsets.is_empty()));
}
