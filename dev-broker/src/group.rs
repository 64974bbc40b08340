//! The classic group coordinator: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups,
//! ListGroups, and the timer that expires sessions and ends rebalances.
//!
//! It follows Kafka's `GroupCoordinator` state machine: `Empty` → `PreparingRebalance` (members
//! (re)join; the join completes when every known member has rejoined or the largest rebalance
//! timeout passes, and members that did not rejoin are removed) → `CompletingRebalance` (a new
//! generation; the leader, the first joiner still present, gets every member's metadata and
//! sends the assignment in SyncGroup) → `Stable`. A member joining, leaving or missing its
//! session timeout starts a rebalance; the others learn of it from REBALANCE_IN_PROGRESS on
//! Heartbeat. v4+ first joins get MEMBER_ID_REQUIRED; static members (`group.instance.id`)
//! rejoining with unchanged metadata take over their old slot without a rebalance, and the old
//! member id is fenced. The first join of an empty group waits `initial_rebalance_delay` (Kafka's
//! `group.initial.rebalance.delay.ms`) for more members, again while new ones keep arriving, up
//! to the rebalance timeout.
//!
//! JoinGroup and SyncGroup answers that must wait are sent through a oneshot channel each member
//! holds while it waits.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, ResponseKind, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

/// Shortest session timeout accepted.
const MIN_SESSION_TIMEOUT_MS: i32 = 100;
/// Longest session timeout accepted (Kafka's default `group.max.session.timeout.ms`).
const MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;
/// Most members one group may have.
const MAX_MEMBERS: usize = 1000;

/// Where a group stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Everyone has an assignment.
    Stable,
}

impl GroupState {
    fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
        }
    }
}

/// A committed offset.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    /// The offset.
    pub offset: i64,
    /// Its leader epoch (-1 if unknown).
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<StrBytes>,
}

/// A JoinGroup or SyncGroup answer being waited for.
#[derive(Debug)]
struct Waiter {
    tx: oneshot::Sender<ResponseKind>,
    version: i16,
}

/// One member.
#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join: Option<Waiter>,
    sync: Option<Waiter>,
    last_seen: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// Kafka's `InitialDelayedJoin`: the join phase of an empty group ends when this delay expires
/// with no member added meanwhile (or no rebalance time left), not when everyone has joined.
#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    until: Instant,
    /// Rebalance time left for further extensions.
    remaining: Duration,
    /// Whether a member joined since the delay (re)started.
    member_added: bool,
}

/// One consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the instant.
    pending: BTreeMap<String, Instant>,
    /// Static members: instance id → member id.
    statics: BTreeMap<String, String>,
    rebalance_deadline: Option<Instant>,
    /// The configured initial rebalance delay (set by every JoinGroup).
    initial_rebalance_delay: Duration,
    /// The initial delay of a join phase that started from Empty, while it runs.
    initial_delay: Option<InitialDelay>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), Committed>,
}

impl Default for Group {
    fn default() -> Self {
        Self {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: BTreeMap::new(),
            statics: BTreeMap::new(),
            rebalance_deadline: None,
            initial_rebalance_delay: Duration::ZERO,
            initial_delay: None,
            offsets: BTreeMap::new(),
        }
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn join_error(error: ResponseError, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error.code())
        .with_generation_id(-1)
        .with_member_id(s(member_id))
}

fn send(waiter: Option<Waiter>, response: impl FnOnce(i16) -> ResponseKind) {
    if let Some(w) = waiter {
        let _ = w.tx.send(response(w.version));
    }
}

fn sync_response(error: i16, assignment: Bytes, group: &Group, version: i16) -> ResponseKind {
    let mut r = SyncGroupResponse::default()
        .with_error_code(error)
        .with_assignment(assignment);
    if version >= 5 && error == 0 {
        r = r
            .with_protocol_type(group.protocol_type.as_deref().map(s))
            .with_protocol_name(group.protocol.as_deref().map(s));
    }
    ResponseKind::SyncGroup(r)
}

fn sync_error(error: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error.code())
}

impl Group {
    fn index(&self, member_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == member_id)
    }

    /// FENCED_INSTANCE_ID when `instance_id` belongs to another member id.
    fn fenced(&self, member_id: &str, instance_id: Option<&StrBytes>) -> bool {
        instance_id
            .and_then(|i| self.statics.get(i.as_str()))
            .is_some_and(|current| current != member_id)
    }

    /// Whether a member id may act in this group (known, not fenced): the error otherwise.
    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&StrBytes>,
    ) -> Result<usize, ResponseError> {
        if self.fenced(member_id, instance_id) {
            return Err(ResponseError::FencedInstanceId);
        }
        self.index(member_id).ok_or(ResponseError::UnknownMemberId)
    }

    /// The protocol every member supports that most members prefer.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut best: Option<(&String, usize)> = None;
        for candidate in &candidates {
            let votes = self
                .members
                .iter()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .map(|(n, _)| n)
                        .find(|n| candidates.contains(n))
                        == Some(*candidate)
                })
                .count();
            if best.is_none_or(|(_, v)| votes > v) {
                best = Some((candidate, votes));
            }
        }
        best.map(|(name, _)| name.clone())
    }

    /// Whether a join with `protocol_type` and `protocols` fits the group's members.
    fn supports(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
        except: Option<&str>,
    ) -> bool {
        let others: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| Some(m.id.as_str()) != except)
            .collect();
        if others.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                others
                    .iter()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            for member in &mut self.members {
                let waiter = member.sync.take();
                send(waiter, |_| {
                    ResponseKind::SyncGroup(sync_error(ResponseError::RebalanceInProgress))
                });
            }
        }
        if self.state != GroupState::PreparingRebalance {
            let timeout = self
                .members
                .iter()
                .map(|m| m.rebalance_timeout)
                .max()
                .unwrap_or_default();
            self.rebalance_deadline = Some(now + timeout);
            let delay = self.initial_rebalance_delay;
            if self.state == GroupState::Empty && !delay.is_zero() {
                self.initial_delay = Some(InitialDelay {
                    until: now + delay,
                    remaining: timeout.saturating_sub(delay),
                    member_added: false,
                });
            }
        }
        self.state = GroupState::PreparingRebalance;
    }

    fn check_join_complete(&mut self, now: Instant) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && self.pending.is_empty()
            && self.members.iter().all(|m| m.join.is_some())
        {
            self.complete_join(now);
        }
    }

    /// Ends the join phase: removes members that did not rejoin, starts the next generation and
    /// answers every waiting JoinGroup.
    fn complete_join(&mut self, now: Instant) {
        let (kept, gone): (Vec<Member>, Vec<Member>) = std::mem::take(&mut self.members)
            .into_iter()
            .partition(|m| m.join.is_some());
        self.members = kept;
        for member in gone {
            if let Some(instance) = &member.instance_id {
                self.statics.remove(instance);
            }
        }
        self.pending.clear();
        self.rebalance_deadline = None;
        self.initial_delay = None;
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.leader.as_ref().is_none_or(|l| self.index(l).is_none()) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.protocol_type = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol.clone().unwrap_or_default();
        let everyone: Vec<JoinGroupResponseMember> = self
            .members
            .iter()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(s(&m.id))
                    .with_group_instance_id(m.instance_id.as_deref().map(s))
                    .with_metadata(m.metadata_for(&protocol))
            })
            .collect();
        let leader = self.leader.clone().unwrap_or_default();
        for i in 0..self.members.len() {
            let Some(member) = self.members.get_mut(i) else {
                continue;
            };
            member.last_seen = now;
            let waiter = member.join.take();
            let id = member.id.clone();
            let members = if id == leader {
                everyone.clone()
            } else {
                Vec::new()
            };
            let response = self.join_response(&id, members, false);
            send(waiter, |version| {
                ResponseKind::JoinGroup(versioned_join(response, version))
            });
        }
    }

    fn join_response(
        &self,
        member_id: &str,
        members: Vec<JoinGroupResponseMember>,
        skip: bool,
    ) -> JoinGroupResponse {
        JoinGroupResponse::default()
            .with_generation_id(self.generation)
            .with_protocol_type(self.protocol_type.as_deref().map(s))
            .with_protocol_name(self.protocol.as_deref().map(s))
            .with_leader(s(self.leader.as_deref().unwrap_or_default()))
            .with_skip_assignment(skip)
            .with_member_id(s(member_id))
            .with_members(members)
    }

    fn everyone(&self) -> Vec<JoinGroupResponseMember> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(s(&m.id))
                    .with_group_instance_id(m.instance_id.as_deref().map(s))
                    .with_metadata(m.metadata_for(&protocol))
            })
            .collect()
    }

    /// Removes a member (left, expired or fenced) and rebalances.
    fn remove_member(&mut self, index: usize, now: Instant) {
        if index >= self.members.len() {
            return;
        }
        let member = self.members.remove(index);
        if let Some(instance) = &member.instance_id {
            if self.statics.get(instance) == Some(&member.id) {
                self.statics.remove(instance);
            }
        }
        send(member.join, |v| {
            ResponseKind::JoinGroup(versioned_join(
                join_error(ResponseError::UnknownMemberId, &member.id),
                v,
            ))
        });
        send(member.sync, |_| {
            ResponseKind::SyncGroup(sync_error(ResponseError::UnknownMemberId))
        });
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now);
                self.check_join_complete(now);
            }
            GroupState::PreparingRebalance => self.check_join_complete(now),
            GroupState::Empty => {}
        }
    }

    /// Expires sessions and pending member ids, and ends a join phase whose deadline passed.
    fn tick(&mut self, now: Instant) {
        let before = self.pending.len();
        self.pending.retain(|_, until| *until > now);
        if self.pending.len() != before {
            self.check_join_complete(now);
        }
        while let Some(i) = self.members.iter().position(|m| {
            m.join.is_none()
                && m.sync.is_none()
                && now.saturating_duration_since(m.last_seen) > m.session_timeout
        }) {
            tracing::debug!(member = %self.members.get(i).map_or("", |m| m.id.as_str()), "dev broker: session expired");
            self.remove_member(i, now);
        }
        if let Some(delay) = self.initial_delay.filter(|d| now >= d.until) {
            if delay.member_added && !delay.remaining.is_zero() {
                let next = self.initial_rebalance_delay.min(delay.remaining);
                self.initial_delay = Some(InitialDelay {
                    until: now + next,
                    remaining: delay.remaining.saturating_sub(next),
                    member_added: false,
                });
            } else if self.state == GroupState::PreparingRebalance {
                self.complete_join(now);
            } else {
                self.initial_delay = None;
            }
        }
        if self.state == GroupState::PreparingRebalance
            && self.rebalance_deadline.is_some_and(|d| now >= d)
        {
            self.complete_join(now);
        }
    }
}

/// Drops fields a JoinGroup response version does not have.
fn versioned_join(mut response: JoinGroupResponse, version: i16) -> JoinGroupResponse {
    if version < 7 {
        response.protocol_type = None;
        if response.protocol_name.is_none() {
            response.protocol_name = Some(StrBytes::default());
        }
    }
    if version < 9 {
        response.skip_assignment = false;
    }
    if version < 5 {
        for m in &mut response.members {
            m.group_instance_id = None;
        }
    }
    response
}

/// Runs the timers of every group.
pub(crate) fn tick(groups: &mut Groups, now: Instant) {
    for group in groups.values_mut() {
        group.tick(now);
    }
}

type Deferred = oneshot::Receiver<ResponseKind>;

/// Every group by id (kept in the broker's shared state).
pub(crate) type Groups = BTreeMap<String, Group>;

/// JoinGroup: an answer now, or a receiver for the answer when the join phase completes.
pub(crate) fn join_group(
    groups: &mut Groups,
    request: &JoinGroupRequest,
    version: i16,
    client_id: &str,
    initial_rebalance_delay: Duration,
) -> Result<JoinGroupResponse, Deferred> {
    let now = Instant::now();
    let member_id = request.member_id.to_string();
    let fail = |e| Ok(versioned_join(join_error(e, &member_id), version));
    if request.group_id.is_empty() {
        return fail(ResponseError::InvalidGroupId);
    }
    if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&request.session_timeout_ms) {
        return fail(ResponseError::InvalidSessionTimeout);
    }
    let session = Duration::from_millis(u64::try_from(request.session_timeout_ms).unwrap_or(0));
    let rebalance = if version == 0 || request.rebalance_timeout_ms <= 0 {
        session
    } else {
        Duration::from_millis(u64::try_from(request.rebalance_timeout_ms).unwrap_or(0))
    };
    let protocols: Vec<(String, Bytes)> = request
        .protocols
        .iter()
        .map(|p| (p.name.to_string(), p.metadata.clone()))
        .collect();
    let protocol_type = request.protocol_type.to_string();
    let instance_id = request.group_instance_id.as_ref().map(|i| i.to_string());

    let group = groups.entry(request.group_id.to_string()).or_default();
    group.initial_rebalance_delay = initial_rebalance_delay;
    let existing = group.index(&member_id);
    if !group.supports(
        &protocol_type,
        &protocols,
        existing.map(|_| member_id.as_str()),
    ) {
        return fail(ResponseError::InconsistentGroupProtocol);
    }
    let (tx, rx) = oneshot::channel();
    let waiter = Waiter { tx, version };

    if member_id.is_empty() {
        let new_id = format!(
            "{client_id}-{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        );
        if let Some(instance) = &instance_id {
            if let Some(index) = group.statics.get(instance).and_then(|old| group.index(old)) {
                return static_rejoin(
                    group, index, new_id, protocols, session, rebalance, waiter, rx, version, now,
                );
            }
        } else if version >= 4 {
            if group.pending.len() + group.members.len() >= MAX_MEMBERS {
                return fail(ResponseError::GroupMaxSizeReached);
            }
            group.pending.insert(new_id.clone(), now + session);
            return Ok(versioned_join(
                join_error(ResponseError::MemberIdRequired, &new_id),
                version,
            ));
        }
        return add_member(
            group,
            new_id,
            instance_id,
            client_id,
            protocol_type,
            protocols,
            session,
            rebalance,
            waiter,
            rx,
            now,
        );
    }

    if group.pending.remove(&member_id).is_some() {
        return add_member(
            group,
            member_id,
            instance_id,
            client_id,
            protocol_type,
            protocols,
            session,
            rebalance,
            waiter,
            rx,
            now,
        );
    }
    let index = match group.check_member(&member_id, request.group_instance_id.as_ref()) {
        Ok(index) => index,
        Err(e) => return fail(e),
    };
    let is_leader = group.leader.as_deref() == Some(member_id.as_str());
    let group_state = group.state;
    let Some(member) = group.members.get_mut(index) else {
        return fail(ResponseError::UnknownMemberId);
    };
    member.session_timeout = session;
    member.rebalance_timeout = rebalance;
    member.last_seen = now;
    let changed = member.protocols != protocols;
    match group_state {
        GroupState::CompletingRebalance | GroupState::Stable
            if !(changed || is_leader && group_state == GroupState::Stable) =>
        {
            // Same metadata (e.g. a retried JoinGroup): the current generation again.
            let members = if is_leader {
                group.everyone()
            } else {
                Vec::new()
            };
            Ok(versioned_join(
                group.join_response(&member_id, members, false),
                version,
            ))
        }
        _ => {
            member.protocols = protocols;
            let old = member.join.replace(waiter);
            send(old, |v| {
                ResponseKind::JoinGroup(versioned_join(
                    join_error(ResponseError::UnknownMemberId, &member_id),
                    v,
                ))
            });
            if group.state != GroupState::PreparingRebalance {
                group.prepare_rebalance(now);
            }
            group.check_join_complete(now);
            Err(rx)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn add_member(
    group: &mut Group,
    id: String,
    instance_id: Option<String>,
    client_id: &str,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    session: Duration,
    rebalance: Duration,
    waiter: Waiter,
    rx: Deferred,
    now: Instant,
) -> Result<JoinGroupResponse, Deferred> {
    if group.members.len() >= MAX_MEMBERS {
        return Ok(versioned_join(
            join_error(ResponseError::GroupMaxSizeReached, &id),
            waiter.version,
        ));
    }
    if group.members.is_empty() {
        group.protocol_type = Some(protocol_type);
    }
    if group.leader.is_none() {
        group.leader = Some(id.clone());
    }
    if let Some(instance) = &instance_id {
        group.statics.insert(instance.clone(), id.clone());
    }
    if let Some(delay) = &mut group.initial_delay {
        delay.member_added = true;
    }
    group.members.push(Member {
        id,
        instance_id,
        client_id: client_id.to_owned(),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocols,
        assignment: Bytes::new(),
        join: Some(waiter),
        sync: None,
        last_seen: now,
    });
    if group.state != GroupState::PreparingRebalance {
        group.prepare_rebalance(now);
    }
    group.check_join_complete(now);
    Err(rx)
}

/// A known static member joining with an empty member id: it takes over its old slot under a new
/// member id; the old id is fenced. In a settled group, keeping the selected protocol means no
/// rebalance.
#[allow(clippy::too_many_arguments)]
fn static_rejoin(
    group: &mut Group,
    index: usize,
    new_id: String,
    protocols: Vec<(String, Bytes)>,
    session: Duration,
    rebalance: Duration,
    waiter: Waiter,
    rx: Deferred,
    version: i16,
    now: Instant,
) -> Result<JoinGroupResponse, Deferred> {
    let Some(member) = group.members.get_mut(index) else {
        return Ok(versioned_join(
            join_error(ResponseError::UnknownMemberId, &new_id),
            version,
        ));
    };
    let old_id = std::mem::replace(&mut member.id, new_id.clone());
    send(member.join.take(), |v| {
        ResponseKind::JoinGroup(versioned_join(
            join_error(ResponseError::FencedInstanceId, &old_id),
            v,
        ))
    });
    send(member.sync.take(), |_| {
        ResponseKind::SyncGroup(sync_error(ResponseError::FencedInstanceId))
    });
    member.session_timeout = session;
    member.rebalance_timeout = rebalance;
    member.last_seen = now;
    // As Kafka (KIP-345): in a settled group, a rejoin that keeps the group's selected
    // protocol is no reason to rebalance. The member gets the current generation and, from
    // SyncGroup, its stored assignment; the response names the old leader id, so even a
    // restarted leader does not compute a new assignment.
    let keeps_protocol = group
        .protocol
        .as_deref()
        .is_some_and(|selected| protocols.iter().any(|(name, _)| name == selected));
    if let Some(member) = group.members.get_mut(index) {
        member.protocols = protocols.clone();
    }
    if let Some(instance) = group.members.get(index).and_then(|m| m.instance_id.clone()) {
        group.statics.insert(instance, new_id.clone());
    }
    let old_leader = group.leader.clone();
    if group.leader.as_deref() == Some(old_id.as_str()) {
        group.leader = Some(new_id.clone());
    }
    let settled = matches!(
        group.state,
        GroupState::Stable | GroupState::CompletingRebalance
    );
    if settled && keeps_protocol {
        let response = group
            .join_response(&new_id, Vec::new(), false)
            .with_leader(s(old_leader.as_deref().unwrap_or_default()));
        return Ok(versioned_join(response, version));
    }
    if let Some(member) = group.members.get_mut(index) {
        member.protocols = protocols;
        member.join = Some(waiter);
    }
    if group.state != GroupState::PreparingRebalance {
        group.prepare_rebalance(now);
    }
    group.check_join_complete(now);
    Err(rx)
}

/// SyncGroup: the member's assignment, now (stable group, or the leader's own sync) or when the
/// leader sends it.
pub(crate) fn sync_group(
    groups: &mut Groups,
    request: &SyncGroupRequest,
    version: i16,
) -> Result<SyncGroupResponse, Deferred> {
    let now = Instant::now();
    let Some(group) = groups.get_mut(request.group_id.as_str()) else {
        return Ok(sync_error(ResponseError::UnknownMemberId));
    };
    let member_id = request.member_id.to_string();
    let index = match group.check_member(&member_id, request.group_instance_id.as_ref()) {
        Ok(index) => index,
        Err(e) => return Ok(sync_error(e)),
    };
    if request.generation_id != group.generation {
        return Ok(sync_error(ResponseError::IllegalGeneration));
    }
    let type_mismatch = request
        .protocol_type
        .as_ref()
        .is_some_and(|t| group.protocol_type.as_deref() != Some(t.as_str()));
    let name_mismatch = request
        .protocol_name
        .as_ref()
        .is_some_and(|n| group.protocol.as_deref() != Some(n.as_str()));
    if type_mismatch || name_mismatch {
        return Ok(sync_error(ResponseError::InconsistentGroupProtocol));
    }
    match group.state {
        GroupState::Empty => Ok(sync_error(ResponseError::UnknownMemberId)),
        GroupState::PreparingRebalance => Ok(sync_error(ResponseError::RebalanceInProgress)),
        GroupState::Stable => {
            let assignment = group
                .members
                .get(index)
                .map(|m| m.assignment.clone())
                .unwrap_or_default();
            if let Some(m) = group.members.get_mut(index) {
                m.last_seen = now;
            }
            match sync_response(0, assignment, group, version) {
                ResponseKind::SyncGroup(r) => Ok(r),
                _ => Ok(sync_error(ResponseError::UnknownServerError)),
            }
        }
        GroupState::CompletingRebalance => {
            let (tx, rx) = oneshot::channel();
            if let Some(m) = group.members.get_mut(index) {
                m.last_seen = now;
                let old = m.sync.replace(Waiter { tx, version });
                send(old, |_| {
                    ResponseKind::SyncGroup(sync_error(ResponseError::RebalanceInProgress))
                });
            }
            if group.leader.as_deref() == Some(member_id.as_str()) {
                for m in &mut group.members {
                    m.assignment = request
                        .assignments
                        .iter()
                        .find(|a| a.member_id.as_str() == m.id)
                        .map(|a| a.assignment.clone())
                        .unwrap_or_default();
                }
                group.state = GroupState::Stable;
                let waiting: Vec<(Option<Waiter>, Bytes)> = group
                    .members
                    .iter_mut()
                    .map(|m| (m.sync.take(), m.assignment.clone()))
                    .collect();
                for (waiter, assignment) in waiting {
                    let g: &Group = group;
                    send(waiter, |v| sync_response(0, assignment, g, v));
                }
            }
            Err(rx)
        }
    }
}

/// Heartbeat: keeps the session alive; REBALANCE_IN_PROGRESS tells the member to rejoin.
pub(crate) fn heartbeat(groups: &mut Groups, request: &HeartbeatRequest) -> HeartbeatResponse {
    let now = Instant::now();
    let error = match groups.get_mut(request.group_id.as_str()) {
        None => Some(ResponseError::UnknownMemberId),
        Some(group) => match group.check_member(
            request.member_id.as_str(),
            request.group_instance_id.as_ref(),
        ) {
            Err(e) => Some(e),
            Ok(index) => {
                if let Some(m) = group.members.get_mut(index) {
                    m.last_seen = now;
                }
                match group.state {
                    GroupState::Empty => Some(ResponseError::UnknownMemberId),
                    _ if request.generation_id != group.generation => {
                        Some(ResponseError::IllegalGeneration)
                    }
                    GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
                    GroupState::CompletingRebalance | GroupState::Stable => None,
                }
            }
        },
    };
    HeartbeatResponse::default().with_error_code(error.map_or(0, |e| e.code()))
}

/// LeaveGroup: one member (v0-v2) or a batch of members by id or instance id (v3+).
pub(crate) fn leave_group(
    groups: &mut Groups,
    request: &LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let now = Instant::now();
    let group = groups.get_mut(request.group_id.as_str());
    let leave = |group: Option<&mut Group>,
                 member_id: &str,
                 instance_id: Option<&StrBytes>|
     -> Option<ResponseError> {
        let Some(group) = group else {
            return Some(ResponseError::UnknownMemberId);
        };
        let index = match instance_id {
            Some(instance) => match group.statics.get(instance.as_str()) {
                None => return Some(ResponseError::UnknownMemberId),
                Some(current) if !member_id.is_empty() && current != member_id => {
                    return Some(ResponseError::FencedInstanceId)
                }
                Some(current) => group.index(&current.clone()),
            },
            None => group.index(member_id),
        };
        match index {
            Some(index) => {
                group.remove_member(index, now);
                None
            }
            None => Some(ResponseError::UnknownMemberId),
        }
    };
    if version < 3 {
        let error = leave(group, request.member_id.as_str(), None);
        return LeaveGroupResponse::default().with_error_code(error.map_or(0, |e| e.code()));
    }
    let mut group = group;
    let members = request
        .members
        .iter()
        .map(|m| {
            let error = leave(
                group.as_deref_mut(),
                m.member_id.as_str(),
                m.group_instance_id.as_ref(),
            );
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(error.map_or(0, |e| e.code()))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

/// DescribeGroups: state, protocol and members of each group (Dead for unknown groups).
pub(crate) fn describe_groups(
    groups: &Groups,
    request: &DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let described = request
        .groups
        .iter()
        .map(|id| {
            let described = DescribedGroup::default().with_group_id(id.clone());
            let Some(group) = groups.get(id.as_str()) else {
                return described.with_group_state(s("Dead"));
            };
            let protocol = group.protocol.clone().unwrap_or_default();
            let stable = group.state == GroupState::Stable;
            let members = group
                .members
                .iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(s(&m.id))
                        .with_group_instance_id(m.instance_id.as_deref().map(s))
                        .with_client_id(s(&m.client_id))
                        .with_client_host(s("/127.0.0.1"))
                        .with_member_metadata(if stable {
                            m.metadata_for(&protocol)
                        } else {
                            Bytes::new()
                        })
                        .with_member_assignment(if stable {
                            m.assignment.clone()
                        } else {
                            Bytes::new()
                        })
                })
                .collect();
            described
                .with_group_state(s(group.state.name()))
                .with_protocol_type(s(group.protocol_type.as_deref().unwrap_or_default()))
                .with_protocol_data(s(if stable { &protocol } else { "" }))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(described)
}

/// ListGroups: every group, filtered by state (v4+) when asked.
pub(crate) fn list_groups(groups: &Groups, request: &ListGroupsRequest) -> ListGroupsResponse {
    let listed = groups
        .iter()
        .filter(|(_, g)| {
            request.states_filter.is_empty()
                || request
                    .states_filter
                    .iter()
                    .any(|f| f.as_str().eq_ignore_ascii_case(g.state.name()))
        })
        .map(|(id, g)| {
            ListedGroup::default()
                .with_group_id(GroupId(s(id)))
                .with_protocol_type(s(g.protocol_type.as_deref().unwrap_or("consumer")))
                .with_group_state(s(g.state.name()))
        })
        .collect();
    ListGroupsResponse::default().with_groups(listed)
}

/// The generation and membership a commit is checked against: `Ok` if it may commit.
pub(crate) fn check_commit(
    group: &Group,
    member_id: &str,
    instance_id: Option<&StrBytes>,
    generation: i32,
) -> Result<(), ResponseError> {
    if generation < 0 && member_id.is_empty() {
        return if group.members.is_empty() {
            Ok(())
        } else {
            Err(ResponseError::UnknownMemberId)
        };
    }
    group.check_member(member_id, instance_id)?;
    if generation != group.generation {
        return Err(ResponseError::IllegalGeneration);
    }
    if group.state == GroupState::CompletingRebalance {
        return Err(ResponseError::RebalanceInProgress);
    }
    Ok(())
}
