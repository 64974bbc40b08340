//! Several members against an in-memory coordinator speaking the classic protocol (join
//! barrier, leader election, SyncGroup fan-out, REBALANCE_IN_PROGRESS on heartbeats,
//! MEMBER_ID_REQUIRED, LeaveGroup), with the crate's real assignors. Checks that no
//! partition is ever owned by two members at once, that cooperative rebalancing moves
//! partitions in two phases, and that the group converges to a balanced assignment.

mod membership_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{
    HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, SyncGroupResponse,
};
use membership_support::{config, find_ok, s};
use mephisto_consumer_group::assignor::{
    AssignContext, Assignor, CooperativeStickyAssignor, RangeAssignor,
};
use mephisto_consumer_group::membership::{
    GroupEvent, GroupRequest, JoinGroupRequest, Member, MemberState, RequestBody, ResponseEvent,
};

type Parts = BTreeSet<mephisto_consumer_group::TopicPartition>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

/// A toy group coordinator: enough of `GroupMetadataManager`'s classic-group logic for
/// well-behaved members (no timeouts modelled).
struct Coordinator {
    state: GroupState,
    generation: i32,
    protocol: String,
    leader: String,
    next_member: u32,
    /// Members of the group and their last JoinGroup.
    members: BTreeMap<String, JoinGroupRequest>,
    /// JoinGroups waiting for the barrier: member id → (client, request id).
    joins: BTreeMap<String, (usize, mephisto_consumer_group::membership::RequestId)>,
    /// SyncGroups waiting for the leader: member id → (client, request id).
    syncs: BTreeMap<String, (usize, mephisto_consumer_group::membership::RequestId)>,
    assignments: BTreeMap<String, Bytes>,
    rebalances: u32,
}

type Outbox = Vec<(usize, ResponseEvent)>;

impl Coordinator {
    fn new() -> Self {
        Self {
            state: GroupState::Empty,
            generation: 0,
            protocol: String::new(),
            leader: String::new(),
            next_member: 0,
            members: BTreeMap::new(),
            joins: BTreeMap::new(),
            syncs: BTreeMap::new(),
            assignments: BTreeMap::new(),
            rebalances: 0,
        }
    }

    fn prepare_rebalance(&mut self) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.state = GroupState::PreparingRebalance;
            self.rebalances += 1;
            // Syncs waiting in CompletingRebalance are told to rejoin.
            self.syncs.clear();
        }
    }

    fn handle(&mut self, client: usize, r: &GroupRequest, out: &mut Outbox) {
        let request = r.id;
        match &r.body {
            RequestBody::FindCoordinator(_) => out.push((
                client,
                ResponseEvent::FindCoordinator {
                    request,
                    response: find_ok(1),
                },
            )),
            RequestBody::AssignmentMetadata(_) => {
                let mut context = AssignContext::default();
                context.partitions_per_topic.insert("t".into(), 6);
                context.partitions_per_topic.insert("u".into(), 3);
                out.push((
                    client,
                    ResponseEvent::AssignmentMetadata { request, context },
                ));
            }
            RequestBody::JoinGroup(j) => {
                if j.member_id.is_empty() {
                    self.next_member += 1;
                    let id = format!("member-{}", self.next_member);
                    out.push((
                        client,
                        ResponseEvent::JoinGroup {
                            request,
                            response: JoinGroupResponse::default()
                                .with_error_code(79)
                                .with_member_id(s(&id)),
                        },
                    ));
                    return;
                }
                let changed = self.members.get(&j.member_id) != Some(j);
                self.members.insert(j.member_id.clone(), j.clone());
                self.joins.insert(j.member_id.clone(), (client, request));
                if self.state != GroupState::PreparingRebalance
                    && (changed || self.state == GroupState::Stable)
                {
                    self.prepare_rebalance();
                }
                self.maybe_complete_join(out);
            }
            RequestBody::SyncGroup(sg) => {
                if self.state != GroupState::CompletingRebalance
                    || sg.generation_id != self.generation
                {
                    let code = if self.state == GroupState::PreparingRebalance {
                        27
                    } else {
                        22
                    };
                    out.push((
                        client,
                        ResponseEvent::SyncGroup {
                            request,
                            response: SyncGroupResponse::default().with_error_code(code),
                        },
                    ));
                    return;
                }
                self.syncs.insert(sg.member_id.clone(), (client, request));
                if sg.member_id == self.leader {
                    self.assignments = sg
                        .assignments
                        .iter()
                        .map(|a| (a.member_id.clone(), a.assignment.clone()))
                        .collect();
                }
                if !self.assignments.is_empty()
                    || self.members.len() == 1 && sg.member_id == self.leader
                {
                    self.state = GroupState::Stable;
                    for (member, (c, id)) in std::mem::take(&mut self.syncs) {
                        let bytes = self.assignments.get(&member).cloned().unwrap_or_default();
                        out.push((
                            c,
                            ResponseEvent::SyncGroup {
                                request: id,
                                response: SyncGroupResponse::default()
                                    .with_protocol_type(Some(s("consumer")))
                                    .with_protocol_name(Some(s(&self.protocol)))
                                    .with_assignment(bytes),
                            },
                        ));
                    }
                }
            }
            RequestBody::Heartbeat(b) => {
                let code = if !self.members.contains_key(&b.member_id) {
                    25
                } else if b.generation_id != self.generation {
                    22
                } else if self.state == GroupState::PreparingRebalance {
                    27
                } else {
                    0
                };
                out.push((
                    client,
                    ResponseEvent::Heartbeat {
                        request,
                        response: HeartbeatResponse::default().with_error_code(code),
                    },
                ));
            }
            RequestBody::LeaveGroup(l) => {
                for m in &l.members {
                    self.members.remove(&m.member_id);
                    self.joins.remove(&m.member_id);
                }
                out.push((
                    client,
                    ResponseEvent::LeaveGroup {
                        request,
                        response: LeaveGroupResponse::default(),
                    },
                ));
                if self.members.is_empty() {
                    self.state = GroupState::Empty;
                } else {
                    self.prepare_rebalance();
                    self.maybe_complete_join(out);
                }
            }
        }
    }

    /// The join barrier: every known member has sent its JoinGroup.
    fn maybe_complete_join(&mut self, out: &mut Outbox) {
        if self.state != GroupState::PreparingRebalance
            || self.members.keys().any(|m| !self.joins.contains_key(m))
        {
            return;
        }
        self.generation += 1;
        self.state = GroupState::CompletingRebalance;
        self.assignments.clear();
        self.leader = self.members.keys().next().cloned().unwrap_or_default();
        // The first protocol of the leader that every member supports.
        let leader_protocols = &self.members[&self.leader].protocols;
        self.protocol = leader_protocols
            .iter()
            .map(|p| p.name.clone())
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|p| &p.name == name))
            })
            .unwrap_or_default();
        let metadata: Vec<JoinGroupResponseMember> = self
            .members
            .iter()
            .map(|(id, j)| {
                let meta = j
                    .protocols
                    .iter()
                    .find(|p| p.name == self.protocol)
                    .map(|p| p.metadata.clone())
                    .unwrap_or_default();
                JoinGroupResponseMember::default()
                    .with_member_id(s(id))
                    .with_group_instance_id(j.group_instance_id.as_deref().map(s))
                    .with_metadata(meta)
            })
            .collect();
        for (member, (c, id)) in std::mem::take(&mut self.joins) {
            let mut response = JoinGroupResponse::default()
                .with_generation_id(self.generation)
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s(&self.protocol)))
                .with_leader(s(&self.leader))
                .with_member_id(s(&member));
            if member == self.leader {
                response = response.with_members(metadata.clone());
            }
            out.push((
                c,
                ResponseEvent::JoinGroup {
                    request: id,
                    response,
                },
            ));
        }
    }
}

/// The group: clients, the coordinator, and the ownership invariant.
struct Group {
    now: Instant,
    clients: Vec<Member>,
    owned: Vec<Parts>,
    coordinator: Coordinator,
    closed: Vec<bool>,
}

impl Group {
    fn new(n: usize, assignors: impl Fn() -> Vec<Box<dyn Assignor>>) -> Self {
        let now = Instant::now();
        let clients = (0..n)
            .map(|_| Member::new(config(), assignors(), now).expect("valid config"))
            .collect();
        Self {
            now,
            clients,
            owned: vec![Parts::new(); n],
            coordinator: Coordinator::new(),
            closed: vec![false; n],
        }
    }

    /// Runs the engine loop for every client until nothing moves, then checks ownership.
    fn settle(&mut self) {
        for _ in 0..200 {
            let mut moved = false;
            let mut out = Outbox::new();
            for (i, m) in self.clients.iter_mut().enumerate() {
                m.record_poll(self.now);
                while let Some(r) = m.poll_request(self.now) {
                    moved = true;
                    self.coordinator.handle(i, &r, &mut out);
                }
            }
            for (i, event) in out {
                moved = true;
                self.clients[i].handle_response(self.now, event);
            }
            for i in 0..self.clients.len() {
                while let Some(e) = self.clients[i].poll_event() {
                    moved = true;
                    match e {
                        GroupEvent::Assigned { partitions, .. } => {
                            for p in partitions {
                                for (j, other) in self.owned.iter().enumerate() {
                                    assert!(
                                        !other.contains(&p),
                                        "{p:?} given to {i} while owned by {j}"
                                    );
                                }
                                self.owned[i].insert(p);
                            }
                        }
                        GroupEvent::Revoked { partitions } => {
                            for p in &partitions {
                                assert!(self.owned[i].remove(p));
                            }
                            // The engine commits, then acknowledges.
                            self.clients[i].revocation_done(self.now);
                        }
                        GroupEvent::Lost { partitions } => panic!("client {i} lost {partitions:?}"),
                        GroupEvent::Closed => self.closed[i] = true,
                        other => panic!("client {i}: unexpected {other:?}"),
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the group never settled");
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while self.now < target {
            self.now = (self.now + Duration::from_millis(500)).min(target);
            for m in &mut self.clients {
                m.handle_timeout(self.now);
            }
            self.settle();
        }
    }

    fn counts(&self) -> Vec<usize> {
        self.owned.iter().map(BTreeSet::len).collect()
    }
}

fn all_partitions() -> usize {
    6 + 3
}

#[test]
fn cooperative_group_scales_out_and_in_without_double_ownership() {
    let mut g = Group::new(3, || vec![Box::new(CooperativeStickyAssignor::new())]);
    g.clients[0].subscribe(g.now, ["t", "u"]);
    g.settle();
    assert_eq!(g.counts(), [all_partitions(), 0, 0]);
    let before = g.coordinator.rebalances;
    g.clients[1].subscribe(g.now, ["t", "u"]);
    g.advance(Duration::from_secs(10));
    // The first member keeps what it can; what moves goes in a second rebalance.
    assert_eq!(
        g.coordinator.rebalances - before,
        2,
        "two rebalances (KIP-429)"
    );
    let counts = g.counts();
    assert_eq!(counts.iter().sum::<usize>(), all_partitions());
    assert!(counts[0].abs_diff(counts[1]) <= 1, "{counts:?}");
    g.clients[2].subscribe(g.now, ["t", "u"]);
    g.advance(Duration::from_secs(10));
    assert_eq!(g.counts(), [3, 3, 3]);
    // One member leaves: the others take its partitions.
    g.clients[2].close(g.now);
    g.advance(Duration::from_secs(10));
    assert!(g.closed[2]);
    let counts = g.counts();
    assert_eq!(counts[0] + counts[1], all_partitions(), "{counts:?}");
    assert!(counts[0].abs_diff(counts[1]) <= 1);
    assert!(g.clients[..2]
        .iter()
        .all(|m| m.state() == MemberState::Stable));
}

#[test]
fn eager_group_revokes_everything_and_never_double_owns() {
    let mut g = Group::new(2, || vec![Box::new(RangeAssignor::new())]);
    g.clients[0].subscribe(g.now, ["t", "u"]);
    g.settle();
    assert_eq!(g.counts(), [all_partitions(), 0]);
    g.clients[1].subscribe(g.now, ["t", "u"]);
    g.advance(Duration::from_secs(10));
    assert_eq!(g.counts(), [5, 4], "range: t 3+3, u 2+1");
    assert!(g.clients.iter().all(|m| m.state() == MemberState::Stable));
    // Heartbeats keep a stable group stable.
    let generation = g.coordinator.generation;
    g.advance(Duration::from_secs(60));
    assert_eq!(g.coordinator.generation, generation);
}

#[test]
fn members_agree_on_a_common_protocol() {
    // Client 0 prefers range, client 1 only speaks cooperative-sticky: the coordinator
    // picks cooperative-sticky for both.
    let mut g = Group::new(2, || {
        vec![
            Box::new(RangeAssignor::new()) as Box<dyn Assignor>,
            Box::new(CooperativeStickyAssignor::new()),
        ]
    });
    g.clients[1] = Member::new(
        config(),
        vec![Box::new(CooperativeStickyAssignor::new())],
        g.now,
    )
    .expect("valid config");
    g.clients[0].subscribe(g.now, ["t"]);
    g.clients[1].subscribe(g.now, ["t"]);
    g.advance(Duration::from_secs(5));
    assert_eq!(g.clients[0].protocol(), Some("cooperative-sticky"));
    assert_eq!(g.counts(), [3, 3]);
}
