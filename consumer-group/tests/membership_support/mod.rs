//! Shared helpers for the membership tests: test assignors, response builders and a
//! virtual-time harness that drives a [`Member`] like the engine would (no sockets).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator as WireCoordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorResponse, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use mephisto_consumer_group::assignor::{
    AssignContext, AssignError, Assignor, GroupAssignment, MemberAssignment, MemberSubscription,
    RebalanceProtocol,
};
use mephisto_consumer_group::membership::{
    GroupEvent, GroupRequest, Member, MemberConfig, RequestBody, RequestId, ResponseEvent,
};
use mephisto_consumer_group::TopicPartition;
use mephisto_wire::consumer_protocol::{self, Assignment, Subscription};

/// Assigns partition `p` of each topic to the `p % n`-th subscriber (sorted by member id).
pub struct ModAssignor {
    pub name: &'static str,
    pub protocol: RebalanceProtocol,
}

impl Assignor for ModAssignor {
    fn name(&self) -> &'static str {
        self.name
    }
    fn rebalance_protocol(&self) -> RebalanceProtocol {
        self.protocol
    }
    fn assign(
        &self,
        members: &[MemberSubscription],
        context: &AssignContext,
    ) -> Result<GroupAssignment, AssignError> {
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        let mut out: GroupAssignment = sorted
            .iter()
            .map(|m| (m.member_id.clone(), MemberAssignment::default()))
            .collect();
        for (topic, count) in &context.partitions_per_topic {
            let subs: Vec<&&MemberSubscription> =
                sorted.iter().filter(|m| m.topics.contains(topic)).collect();
            if subs.is_empty() {
                continue;
            }
            for p in 0..*count {
                let m = subs[(p as usize) % subs.len()];
                out.entry(m.member_id.clone())
                    .or_default()
                    .partitions
                    .entry(topic.clone())
                    .or_default()
                    .push(p);
            }
        }
        for m in members {
            for t in &m.topics {
                if !context.partitions_per_topic.contains_key(t) {
                    return Err(AssignError::UnknownTopic(t.clone()));
                }
            }
        }
        Ok(out)
    }
}

pub fn eager() -> Box<dyn Assignor> {
    Box::new(ModAssignor {
        name: "range",
        protocol: RebalanceProtocol::Eager,
    })
}

pub fn cooperative() -> Box<dyn Assignor> {
    Box::new(ModAssignor {
        name: "cooperative-sticky",
        protocol: RebalanceProtocol::Cooperative,
    })
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

pub fn tp(topic: &str, p: i32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

pub fn set(items: &[(&str, i32)]) -> BTreeSet<TopicPartition> {
    items.iter().map(|(t, p)| tp(t, *p)).collect()
}

pub fn find_ok(node: i32) -> FindCoordinatorResponse {
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(node))
        .with_host(s(&format!("broker{node}")))
        .with_port(9092)
}

/// A v4+ style response with the batched `Coordinators` list.
pub fn find_ok_batched(group: &str, node: i32) -> FindCoordinatorResponse {
    FindCoordinatorResponse::default().with_coordinators(vec![WireCoordinator::default()
        .with_key(s(group))
        .with_node_id(BrokerId(node))
        .with_host(s(&format!("broker{node}")))
        .with_port(9092)])
}

pub fn find_err(code: i16) -> FindCoordinatorResponse {
    FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(BrokerId(-1))
}

pub fn join_err(code: i16, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(s(member_id))
}

pub fn join_follower(generation: i32, member_id: &str, protocol: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_generation_id(generation)
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s(protocol)))
        .with_leader(s("someone-else"))
        .with_member_id(s(member_id))
}

pub fn subscription_bytes(topics: &[&str]) -> Bytes {
    let sub = Subscription {
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        ..Subscription::default()
    };
    consumer_protocol::encode_subscription(&sub, 3).expect("test subscription encodes")
}

pub fn join_leader(
    generation: i32,
    member_id: &str,
    protocol: &str,
    members: &[(&str, Bytes)],
) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_generation_id(generation)
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s(protocol)))
        .with_leader(s(member_id))
        .with_member_id(s(member_id))
        .with_members(
            members
                .iter()
                .map(|(id, meta)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(id))
                        .with_metadata(meta.clone())
                })
                .collect(),
        )
}

pub fn assignment_bytes(parts: &BTreeSet<TopicPartition>) -> Bytes {
    let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in parts {
        partitions
            .entry(tp.topic.to_string())
            .or_default()
            .push(tp.partition);
    }
    consumer_protocol::encode_assignment(
        &Assignment {
            partitions,
            user_data: None,
        },
        3,
    )
    .expect("test assignment encodes")
}

pub fn sync_ok(parts: &BTreeSet<TopicPartition>) -> SyncGroupResponse {
    SyncGroupResponse::default().with_assignment(assignment_bytes(parts))
}

pub fn sync_err(code: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code)
}

pub fn hb(code: i16) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(code)
}

pub fn leave_ok() -> LeaveGroupResponse {
    LeaveGroupResponse::default()
}

pub fn config() -> MemberConfig {
    let mut c = MemberConfig::new("g");
    c.session_timeout = Duration::from_secs(45);
    c.heartbeat_interval = Duration::from_secs(3);
    c.max_poll_interval = Duration::from_secs(300);
    c
}

/// Drives a member in virtual time, recording requests and events.
pub struct Harness {
    pub member: Member,
    pub now: Instant,
    /// Requests produced and not yet taken by the test.
    pub sent: Vec<GroupRequest>,
    /// Every request ever produced, with its send time.
    pub log: Vec<(Instant, GroupRequest)>,
    /// Events produced and not yet taken by the test.
    pub events: Vec<GroupEvent>,
}

impl Harness {
    pub fn new(config: MemberConfig, assignors: Vec<Box<dyn Assignor>>) -> Self {
        let now = Instant::now();
        let member = Member::new(config, assignors, now).expect("valid config");
        Self {
            member,
            now,
            sent: Vec::new(),
            log: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Drains requests, then events (the engine's order).
    pub fn pump(&mut self) {
        let mut guard = 0;
        while let Some(r) = self.member.poll_request(self.now) {
            self.log.push((self.now, r.clone()));
            self.sent.push(r);
            guard += 1;
            assert!(guard < 1000, "poll_request never returns None");
        }
        while let Some(e) = self.member.poll_event() {
            self.events.push(e);
        }
        if let Some(t) = self.member.poll_timeout() {
            assert!(
                t > self.now,
                "deadline {t:?} not in the future after pumping: busy loop"
            );
        }
    }

    /// Advances virtual time by `d`, firing every deadline on the way.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        self.pump();
        while let Some(t) = self.member.poll_timeout() {
            if t > target {
                break;
            }
            self.now = t;
            self.member.handle_timeout(self.now);
            self.pump();
        }
        self.now = target;
        self.member.handle_timeout(self.now);
        self.pump();
    }

    /// Feeds a response and pumps.
    pub fn respond(&mut self, event: ResponseEvent) {
        self.member.handle_response(self.now, event);
        self.pump();
    }

    /// Takes the oldest sent request of this kind, failing if there is none.
    pub fn take(&mut self, kind: mephisto_consumer_group::membership::ApiKind) -> GroupRequest {
        let Some(i) = self.sent.iter().position(|r| r.body.kind() == kind) else {
            panic!("no {kind} request sent; sent: {:?}", self.sent);
        };
        self.sent.remove(i)
    }

    /// Whether a request of this kind is waiting.
    pub fn has(&self, kind: mephisto_consumer_group::membership::ApiKind) -> bool {
        self.sent.iter().any(|r| r.body.kind() == kind)
    }

    pub fn take_events(&mut self) -> Vec<GroupEvent> {
        std::mem::take(&mut self.events)
    }

    /// Answers FindCoordinator with node `node`.
    pub fn answer_find(&mut self, node: i32) {
        let r = self.take(mephisto_consumer_group::membership::ApiKind::FindCoordinator);
        self.respond(ResponseEvent::FindCoordinator {
            request: r.id,
            response: find_ok(node),
        });
    }

    pub fn join_request(
        r: &GroupRequest,
    ) -> &mephisto_consumer_group::membership::JoinGroupRequest {
        match &r.body {
            RequestBody::JoinGroup(j) => j,
            other => panic!("not a JoinGroup: {other:?}"),
        }
    }

    /// Subscribes to `topics` and completes a follower join (no MEMBER_ID_REQUIRED dance)
    /// with `assigned`, at generation `generation`.
    pub fn join_as_follower(
        &mut self,
        topics: &[&str],
        generation: i32,
        assigned: &BTreeSet<TopicPartition>,
    ) {
        use mephisto_consumer_group::membership::ApiKind;
        self.member.subscribe(self.now, topics.iter().copied());
        self.pump();
        if self.has(ApiKind::FindCoordinator) {
            self.answer_find(1);
        }
        self.complete_follower_join(generation, "m1", assigned);
    }

    /// Answers the pending JoinGroup and SyncGroup as a follower.
    pub fn complete_follower_join(
        &mut self,
        generation: i32,
        member_id: &str,
        assigned: &BTreeSet<TopicPartition>,
    ) {
        use mephisto_consumer_group::membership::ApiKind;
        let join = self.take(ApiKind::JoinGroup);
        let protocol = Self::join_request(&join).protocols[0].name.clone();
        self.respond(ResponseEvent::JoinGroup {
            request: join.id,
            response: join_follower(generation, member_id, &protocol),
        });
        let sync = self.take(ApiKind::SyncGroup);
        self.respond(ResponseEvent::SyncGroup {
            request: sync.id,
            response: sync_ok(assigned),
        });
    }

    /// Answers every waiting heartbeat with `code`.
    pub fn answer_heartbeats(&mut self, code: i16) -> usize {
        use mephisto_consumer_group::membership::ApiKind;
        let mut n = 0;
        while self.has(ApiKind::Heartbeat) {
            let r = self.take(ApiKind::Heartbeat);
            self.respond(ResponseEvent::Heartbeat {
                request: r.id,
                response: hb(code),
            });
            n += 1;
        }
        n
    }
}

pub fn decode_sub(metadata: &Bytes) -> Subscription {
    consumer_protocol::decode_subscription(metadata.clone()).expect("our subscription decodes")
}

pub fn id(r: &GroupRequest) -> RequestId {
    r.id
}
