//! Heartbeats and the two liveness timers: session loss (heartbeats failing for
//! `session_timeout`) and the max poll interval (the application stopped polling).
//!
//! Heartbeats are driven by the timer only: a slow application never delays them.

use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::HeartbeatResponse;

use super::event::GroupEvent;
use super::member::Member;
use super::request::{
    ApiKind, HeartbeatRequest, LeaveGroupRequest, LeavingMember, RequestBody, Target,
};
use super::state::{InFlightHeartbeat, Phase};

impl Member {
    /// Whether heartbeats are due in this state: we hold a generation, know the
    /// coordinator, and are not in the middle of a JoinGroup.
    pub(crate) fn heartbeat_active(&self) -> bool {
        self.is_open()
            && self.generation.is_some()
            && self.coordinator.known.is_some()
            && matches!(
                self.phase,
                Phase::Unjoined | Phase::Assigning { .. } | Phase::Syncing { .. } | Phase::Stable
            )
    }

    /// When the next heartbeat should be sent (none while one is in flight).
    pub(crate) fn heartbeat_deadline(&self) -> Option<Instant> {
        if self.heartbeat_active() && self.heartbeats.in_flight.is_none() {
            self.heartbeats.next_at
        } else {
            None
        }
    }

    /// A heartbeat to send at `now`, if one is due.
    pub(crate) fn heartbeat_due(&mut self, now: Instant) -> Option<(Target, RequestBody)> {
        if self.heartbeat_deadline().is_none_or(|at| now < at) {
            return None;
        }
        let coordinator = self.coordinator.known.clone()?;
        let generation = self.generation_id();
        Some((
            Target::Coordinator(coordinator),
            RequestBody::Heartbeat(HeartbeatRequest {
                group_id: self.config.group_id.clone(),
                generation_id: generation,
                member_id: self.member_id.clone(),
                group_instance_id: self.config.group_instance_id.clone(),
            }),
        ))
    }

    /// Records that heartbeat `request` (for the current generation) was sent at `now`.
    pub(crate) fn heartbeat_sent(&mut self, now: Instant, request: super::request::RequestId) {
        self.heartbeats.in_flight = Some(InFlightHeartbeat {
            request,
            generation: self.generation_id(),
            sent_at: now,
        });
        self.heartbeats.next_at = now.checked_add(self.config.heartbeat_interval);
    }

    /// The answer to the heartbeat in flight.
    pub(crate) fn on_heartbeat(
        &mut self,
        now: Instant,
        sent: InFlightHeartbeat,
        response: &HeartbeatResponse,
    ) {
        match ResponseError::try_from_code(response.error_code) {
            None => {
                self.heartbeat_backoff.reset();
                if sent.generation == self.generation_id() {
                    // The coordinator heard from us no earlier than the send time.
                    let anchor = self
                        .heartbeats
                        .session_anchor
                        .map_or(sent.sent_at, |a| a.max(sent.sent_at));
                    self.heartbeats.session_anchor = Some(anchor);
                }
            }
            Some(error) => {
                self.apply_reaction(now, ApiKind::Heartbeat, error, Some(sent.generation), None);
            }
        }
    }

    /// When the session is lost if no heartbeat succeeds before.
    pub(crate) fn session_deadline(&self) -> Option<Instant> {
        if !self.is_open() || self.generation.is_none() {
            return None;
        }
        if matches!(self.phase, Phase::Idle | Phase::Joining { .. }) {
            return None;
        }
        self.heartbeats
            .session_anchor
            .and_then(|a| a.checked_add(self.config.session_timeout))
    }

    /// When the application will have exceeded the max poll interval.
    pub(crate) fn max_poll_deadline(&self) -> Option<Instant> {
        if !self.is_open()
            || self.waiting_for_poll
            || self.leaving.is_some()
            || matches!(self.phase, Phase::Idle)
        {
            return None;
        }
        self.last_poll.checked_add(self.config.max_poll_interval)
    }

    /// Runs the liveness timers.
    pub(crate) fn check_timers(&mut self, now: Instant) {
        if self.session_deadline().is_some_and(|d| now >= d) {
            self.session_lost();
        }
        if self.max_poll_deadline().is_some_and(|d| now >= d) {
            self.max_poll_exceeded();
        }
    }

    /// No heartbeat succeeded for a whole session: the coordinator has evicted us.
    fn session_lost(&mut self) {
        tracing::warn!(group = %self.config.group_id, "session timed out: partitions lost");
        self.reset_member("session timed out");
        self.mark_coordinator_unknown("session timed out");
    }

    /// The application stopped polling: leave (dynamic members), lose the partitions, and
    /// wait for the next poll before rejoining.
    fn max_poll_exceeded(&mut self) {
        tracing::warn!(
            group = %self.config.group_id,
            "max poll interval exceeded: leaving the group until the application polls again"
        );
        self.events.push_back(GroupEvent::MaxPollExceeded);
        if let Some(leave) = self.leave_body("max poll interval exceeded") {
            self.outbox.push_back(leave);
        }
        self.reset_member("max poll interval exceeded");
        self.waiting_for_poll = true;
    }

    /// LeaveGroup for us, if we should send one: dynamic member, member id known,
    /// coordinator known (as the Java client's `maybeLeaveGroup`).
    pub(crate) fn leave_body(&self, reason: &str) -> Option<(Target, RequestBody)> {
        if self.config.group_instance_id.is_some() || self.member_id.is_empty() {
            return None;
        }
        let coordinator = self.coordinator.known.clone()?;
        Some((
            Target::Coordinator(coordinator),
            RequestBody::LeaveGroup(LeaveGroupRequest {
                group_id: self.config.group_id.clone(),
                members: vec![LeavingMember {
                    member_id: self.member_id.clone(),
                    group_instance_id: self.config.group_instance_id.clone(),
                    reason: Some(reason.to_owned()),
                }],
            }),
        ))
    }
}
