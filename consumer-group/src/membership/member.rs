//! [`Member`]: the public face of the state machine (inputs, outputs, getters).

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::backoff::Backoff;
use super::config::{ConfigError, MemberConfig};
use super::event::{GroupError, GroupEvent, PartitionSet};
use super::request::{ApiKind, Coordinator, GroupRequest, RequestBody, RequestId, Target};
use super::response::ResponseEvent;
use super::state::{Closing, CoordinatorState, Generation, Heartbeats, Leave, Outbox, Phase};
use crate::assignor::Assignor;

/// One consumer-group member speaking the classic group protocol, as pure code.
///
/// # Driver contract
/// The engine owns the clock and the sockets. After creating the member with
/// [`Member::new`] and calling [`Member::subscribe`]:
/// 1. Feed inputs as they happen: [`handle_response`](Self::handle_response) for every answer
///    (or failure) to a request the member produced, [`handle_timeout`](Self::handle_timeout)
///    when the instant from [`poll_timeout`](Self::poll_timeout) is reached,
///    [`record_poll`](Self::record_poll) whenever the application asks for records,
///    [`revocation_done`](Self::revocation_done) after each [`GroupEvent::Revoked`] is handled
///    (offsets committed), [`handle_commit_error`](Self::handle_commit_error) for OffsetCommit
///    errors.
/// 2. After any input, drain in this order: [`poll_request`](Self::poll_request) until `None`
///    (send each request to its [`Target`] and answer it exactly once), then
///    [`poll_event`](Self::poll_event) until `None`, then re-arm one timer from
///    [`poll_timeout`](Self::poll_timeout).
///
/// Spurious `handle_timeout` calls are harmless. Time must never go backwards between calls.
/// Heartbeats depend only on this loop, never on the application's polls.
pub struct Member {
    pub(crate) config: MemberConfig,
    pub(crate) assignors: Vec<Box<dyn Assignor>>,
    pub(crate) topics: BTreeSet<String>,
    pub(crate) user_data: Option<Bytes>,
    pub(crate) member_id: String,
    pub(crate) generation: Option<Generation>,
    pub(crate) coordinator: CoordinatorState,
    pub(crate) phase: Phase,
    pub(crate) owned: PartitionSet,
    pub(crate) pending_revocations: u32,
    pub(crate) rejoin_reason: Option<String>,
    pub(crate) rejoin_after_sync: Option<String>,
    pub(crate) heartbeats: Heartbeats,
    pub(crate) heartbeat_backoff: Backoff,
    pub(crate) backoff: Backoff,
    pub(crate) retry_at: Option<Instant>,
    pub(crate) last_poll: Instant,
    pub(crate) waiting_for_poll: bool,
    pub(crate) leaving: Option<Leave>,
    pub(crate) closing: Closing,
    pub(crate) fatal: Option<GroupError>,
    pub(crate) outbox: Outbox,
    pub(crate) events: VecDeque<GroupEvent>,
    pub(crate) next_request: u64,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("group_id", &self.config.group_id)
            .field("member_id", &self.member_id)
            .field("generation", &self.generation)
            .field("phase", &self.phase)
            .field("owned", &self.owned)
            .finish_non_exhaustive()
    }
}

/// A summary of where the member is, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Not subscribed.
    Idle,
    /// About to join (waiting for the coordinator, a backoff, revocations or a poll).
    Unjoined,
    /// JoinGroup in flight.
    Joining,
    /// Leader computing the assignment.
    Assigning,
    /// SyncGroup pending.
    Syncing,
    /// Member of a generation.
    Stable,
    /// Closed.
    Closed,
    /// Stopped by a fatal error.
    Failed,
}

/// What an OffsetCommit needs from the membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitContext {
    /// The generation to commit with.
    pub generation_id: i32,
    /// Our member id.
    pub member_id: String,
    /// Our static membership id (OffsetCommit v7+).
    pub group_instance_id: Option<String>,
}

impl Member {
    /// A member with `assignors` advertised in preference order. `now` starts the max poll
    /// interval clock.
    pub fn new(
        config: MemberConfig,
        assignors: Vec<Box<dyn Assignor>>,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if assignors.is_empty() {
            return Err(ConfigError::NoAssignor);
        }
        let mut names = BTreeSet::new();
        for assignor in &assignors {
            if !names.insert(assignor.name()) {
                return Err(ConfigError::DuplicateAssignor(assignor.name()));
            }
        }
        Ok(Self {
            heartbeat_backoff: Backoff::new(config.retry_backoff, config.retry_backoff_max),
            backoff: Backoff::new(config.retry_backoff, config.retry_backoff_max),
            config,
            assignors,
            topics: BTreeSet::new(),
            user_data: None,
            member_id: String::new(),
            generation: None,
            coordinator: CoordinatorState::default(),
            phase: Phase::Idle,
            owned: PartitionSet::new(),
            pending_revocations: 0,
            rejoin_reason: None,
            rejoin_after_sync: None,
            heartbeats: Heartbeats::default(),
            retry_at: None,
            last_poll: now,
            waiting_for_poll: false,
            leaving: None,
            closing: Closing::Open,
            fatal: None,
            outbox: Outbox::new(),
            events: VecDeque::new(),
            next_request: 0,
        })
    }

    // ---- getters -------------------------------------------------------------------------

    /// The settings.
    pub fn config(&self) -> &MemberConfig {
        &self.config
    }

    /// Our member id (empty until the coordinator gave one).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The generation we belong to, if any.
    pub fn generation(&self) -> Option<i32> {
        self.generation.as_ref().map(|g| g.id)
    }

    /// The chosen assignor's name, while we belong to a generation.
    pub fn protocol(&self) -> Option<&'static str> {
        let g = self.generation.as_ref()?;
        self.assignors.get(g.assignor).map(|a| a.name())
    }

    /// The coordinator, if known.
    pub fn coordinator(&self) -> Option<&Coordinator> {
        self.coordinator.known.as_ref()
    }

    /// The current subscription.
    pub fn topics(&self) -> &BTreeSet<String> {
        &self.topics
    }

    /// Partitions we own: assigned and neither revoked nor lost since.
    pub fn owned(&self) -> &PartitionSet {
        &self.owned
    }

    /// `Revoked` events not yet acknowledged with [`revocation_done`](Self::revocation_done).
    pub fn pending_revocations(&self) -> u32 {
        self.pending_revocations
    }

    /// Where the member is.
    pub fn state(&self) -> MemberState {
        if self.fatal.is_some() {
            return MemberState::Failed;
        }
        if self.closing == Closing::Closed {
            return MemberState::Closed;
        }
        match self.phase {
            Phase::Idle => MemberState::Idle,
            Phase::Unjoined => MemberState::Unjoined,
            Phase::Joining { .. } => MemberState::Joining,
            Phase::Assigning { .. } => MemberState::Assigning,
            Phase::Syncing { .. } => MemberState::Syncing,
            Phase::Stable => MemberState::Stable,
        }
    }

    /// The fatal error that stopped the member, if any.
    pub fn fatal_error(&self) -> Option<&GroupError> {
        self.fatal.as_ref()
    }

    /// Generation and ids to commit offsets with; `None` while rebalancing or without a
    /// generation (the Java client's `generationIfStable`). Offsets of revoked partitions
    /// can be committed until [`revocation_done`](Self::revocation_done).
    pub fn commit_context(&self) -> Option<CommitContext> {
        let generation = self.generation.as_ref()?;
        match self.phase {
            Phase::Stable | Phase::Unjoined => Some(CommitContext {
                generation_id: generation.id,
                member_id: self.member_id.clone(),
                group_instance_id: self.config.group_instance_id.clone(),
            }),
            _ => None,
        }
    }

    // ---- inputs --------------------------------------------------------------------------

    /// Sets the topics to consume. A change rejoins the group (after revoking what the
    /// protocol requires); an empty set revokes everything and leaves the group (dynamic
    /// members). Counts as application activity for the max poll interval.
    pub fn subscribe<I, S>(&mut self, now: Instant, topics: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if !self.is_open() || self.leaving == Some(Leave::Close) {
            return;
        }
        self.last_poll = now;
        let topics: BTreeSet<String> = topics.into_iter().map(Into::into).collect();
        if topics == self.topics && self.leaving.is_none() {
            return;
        }
        self.topics = topics;
        if self.topics.is_empty() {
            self.begin_leave(Leave::Unsubscribe);
            return;
        }
        self.leaving = None;
        match self.phase {
            Phase::Idle => {
                self.phase = Phase::Unjoined;
                self.rejoin_reason = Some("subscribed".to_owned());
            }
            _ => self.request_rejoin("subscription changed"),
        }
    }

    /// Sets the user data sent in our subscription from the next JoinGroup on.
    pub fn set_user_data(&mut self, user_data: Option<Bytes>) {
        self.user_data = user_data;
    }

    /// Asks for a rebalance (e.g. the leader saw partition counts change). Ignored while
    /// not subscribed; deferred until the current join completes.
    pub fn request_rejoin(&mut self, reason: &str) {
        if !self.is_open() {
            return;
        }
        match self.phase {
            Phase::Idle => {}
            Phase::Stable => self.start_rejoin(reason),
            Phase::Unjoined => self.revoke_for_join(),
            Phase::Joining { .. } | Phase::Assigning { .. } | Phase::Syncing { .. } => {
                self.rejoin_after_sync = Some(reason.to_owned());
            }
        }
    }

    /// The application asked for records: it is making progress. Restarts the max poll
    /// interval and, after [`GroupEvent::MaxPollExceeded`], lets the member rejoin.
    pub fn record_poll(&mut self, now: Instant) {
        self.last_poll = now;
        self.waiting_for_poll = false;
    }

    /// One [`GroupEvent::Revoked`] has been handled (its offsets committed or given up):
    /// once all are, the member may send JoinGroup or LeaveGroup.
    pub fn revocation_done(&mut self, _now: Instant) {
        self.pending_revocations = self.pending_revocations.saturating_sub(1);
    }

    /// Closes the member: revokes what it owns, then (dynamic members only) sends
    /// LeaveGroup and reports [`GroupEvent::Closed`] when it is answered. Static members send
    /// nothing and report `Closed` once revocations are acknowledged.
    pub fn close(&mut self, _now: Instant) {
        if !self.is_open() || self.leaving == Some(Leave::Close) {
            return;
        }
        self.begin_leave(Leave::Close);
    }

    /// An OffsetCommit sent with `generation` failed with `error`: applies the group-level
    /// part of the reaction (rejoin, reset, rediscover, fatal) if `generation` is still ours.
    pub fn handle_commit_error(&mut self, now: Instant, generation: i32, error: ResponseError) {
        if !self.is_open() {
            return;
        }
        self.apply_reaction(now, ApiKind::OffsetCommit, error, Some(generation), None);
    }

    /// Feeds the answer to a request. Answers to requests the member no longer waits for
    /// (stale generation, abandoned join, old coordinator) are ignored.
    pub fn handle_response(&mut self, now: Instant, event: ResponseEvent) {
        if !self.is_open() && !matches!(self.closing, Closing::AwaitingLeave(_)) {
            return;
        }
        self.dispatch_response(now, event);
    }

    /// Runs the timers due at `now` (session loss, max poll interval). Spurious calls do
    /// nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.check_timers(now);
    }

    // ---- outputs -------------------------------------------------------------------------

    /// The next request to send, if any. Call until `None` after every input.
    pub fn poll_request(&mut self, now: Instant) -> Option<GroupRequest> {
        self.check_timers(now);
        self.next_request(now)
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<GroupEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) (then `poll_request`) must next be called,
    /// if anything waits on time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_deadline()
    }

    // ---- helpers shared by the other files -------------------------------------------------

    /// Neither closed nor failed.
    pub(crate) fn is_open(&self) -> bool {
        self.fatal.is_none() && self.closing == Closing::Open
    }

    /// Starts leaving: abandons a join in progress (its answers become stale) and revokes
    /// everything; LeaveGroup follows once the revocations are acknowledged.
    fn begin_leave(&mut self, kind: Leave) {
        self.leaving = Some(kind);
        if matches!(
            self.phase,
            Phase::Joining { .. } | Phase::Assigning { .. } | Phase::Syncing { .. }
        ) {
            self.phase = Phase::Unjoined;
        }
        self.revoke_all();
    }

    /// Wraps a body into a request with a fresh id.
    pub(crate) fn issue(&mut self, target: Target, body: RequestBody) -> GroupRequest {
        self.next_request += 1;
        GroupRequest {
            id: RequestId(self.next_request),
            target,
            body,
        }
    }

    /// The generation id, or -1 without one.
    pub(crate) fn generation_id(&self) -> i32 {
        self.generation.as_ref().map_or(-1, |g| g.id)
    }
}
