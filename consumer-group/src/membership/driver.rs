//! The two entry points behind `poll_request` and `handle_response`: choosing the next
//! request from the state, and routing each answer to the handler that waits for it.

use std::time::Instant;

use super::event::{GroupError, GroupEvent};
use super::member::Member;
use super::request::{ApiKind, FindCoordinatorRequest, GroupRequest, RequestBody, Target};
use super::response::{RequestFailure, ResponseEvent};
use super::state::{Closing, Leave, Phase};

impl Member {
    /// The next request, in priority order: queued one-shots (LeaveGroup), a pending leave,
    /// FindCoordinator, the leader's metadata, SyncGroup, JoinGroup, Heartbeat.
    pub(crate) fn next_request(&mut self, now: Instant) -> Option<GroupRequest> {
        if !self.is_open() {
            return None;
        }
        if let Some((target, body)) = self.outbox.pop_front() {
            return Some(self.issue(target, body));
        }
        if self.leaving.is_some() && self.pending_revocations == 0 {
            if let Some(request) = self.finish_leave() {
                return Some(request);
            }
            if !self.is_open() {
                return None;
            }
        }
        if self.lookup_wanted() && self.retry_ready(now) {
            let request = self.issue(
                Target::AnyBroker,
                RequestBody::FindCoordinator(FindCoordinatorRequest {
                    key: self.config.group_id.clone(),
                }),
            );
            self.coordinator.lookup = Some(request.id);
            return Some(request);
        }
        if let Some(request) = self.next_join_step(now) {
            return Some(request);
        }
        let (target, body) = self.heartbeat_due(now)?;
        let request = self.issue(target, body);
        self.heartbeat_sent(now, request.id);
        Some(request)
    }

    /// Metadata, SyncGroup or JoinGroup, if one is ready.
    fn next_join_step(&mut self, now: Instant) -> Option<GroupRequest> {
        if let Phase::Assigning {
            request: None,
            members,
        } = &self.phase
        {
            if !self.retry_ready(now) {
                return None;
            }
            let body = self.metadata_body(members);
            let request = self.issue(Target::AnyBroker, body);
            if let Phase::Assigning { request: slot, .. } = &mut self.phase {
                *slot = Some(request.id);
            }
            return Some(request);
        }
        let coordinator = self.coordinator.known.clone()?;
        if let Phase::Syncing {
            request: None,
            generation,
            assignments,
        } = &mut self.phase
        {
            let generation = *generation;
            let assignments = std::mem::take(assignments);
            let body = self.sync_body(generation, assignments);
            let request = self.issue(Target::Coordinator(coordinator), body);
            self.phase = Phase::Syncing {
                request: Some(request.id),
                generation,
                assignments: Vec::new(),
            };
            return Some(request);
        }
        if !self.join_wanted() || !self.retry_ready(now) {
            return None;
        }
        self.revoke_for_join();
        if self.pending_revocations > 0 {
            return None;
        }
        let body = match self.join_body() {
            Ok(body) => body,
            Err(error) => {
                self.fail(error);
                return None;
            }
        };
        let request = self.issue(Target::Coordinator(coordinator), body);
        self.phase = Phase::Joining {
            request: request.id,
        };
        self.rejoin_after_sync = None;
        Some(request)
    }

    /// Completes an unsubscribe or close once revocations are acknowledged: LeaveGroup
    /// (dynamic members), then idle (unsubscribe) or closed.
    fn finish_leave(&mut self) -> Option<GroupRequest> {
        if !self.owned.is_empty() {
            // Assigned while the leave waited: revoke that too first.
            self.revoke_all();
            return None;
        }
        let kind = self.leaving.take()?;
        let reason = match kind {
            Leave::Unsubscribe => "the consumer unsubscribed",
            Leave::Close => "the consumer is being closed",
        };
        let leave = self.leave_body(reason);
        self.reset_member(reason);
        self.phase = Phase::Idle;
        self.rejoin_reason = None;
        let request = leave.map(|(target, body)| self.issue(target, body));
        if kind == Leave::Close {
            match &request {
                Some(r) => self.closing = Closing::AwaitingLeave(r.id),
                None => self.closed(),
            }
        }
        request
    }

    /// Marks the member closed.
    fn closed(&mut self) {
        self.closing = Closing::Closed;
        self.events.push_back(GroupEvent::Closed);
    }

    /// Routes an answer to the handler waiting for it; others are stale.
    pub(crate) fn dispatch_response(&mut self, now: Instant, event: ResponseEvent) {
        let id = event.request();
        if self.closing == Closing::AwaitingLeave(id) {
            if let ResponseEvent::LeaveGroup { .. } | ResponseEvent::Failed { .. } = event {
                self.closed();
            }
            return;
        }
        if !self.is_open() {
            return;
        }
        match event {
            ResponseEvent::FindCoordinator { response, .. }
                if self.coordinator.lookup == Some(id) =>
            {
                self.on_find_coordinator(now, &response);
            }
            ResponseEvent::JoinGroup { response, .. } if matches!(self.phase, Phase::Joining { request } if request == id) =>
            {
                self.on_join(now, &response);
            }
            ResponseEvent::SyncGroup { response, .. } => {
                if let Phase::Syncing {
                    request: Some(request),
                    generation,
                    ..
                } = self.phase
                {
                    if request == id {
                        self.on_sync(now, generation, &response);
                        return;
                    }
                }
                self.stale(id);
            }
            ResponseEvent::Heartbeat { response, .. } => match self.heartbeats.in_flight {
                Some(sent) if sent.request == id => {
                    self.heartbeats.in_flight = None;
                    self.on_heartbeat(now, sent, &response);
                }
                _ => self.stale(id),
            },
            ResponseEvent::AssignmentMetadata { context, .. } => {
                if let Phase::Assigning {
                    request: Some(request),
                    members,
                } = &mut self.phase
                {
                    if *request == id {
                        let members = std::mem::take(members);
                        self.on_assignment_metadata(members, &context);
                        return;
                    }
                }
                self.stale(id);
            }
            ResponseEvent::Failed { error, .. } => self.on_failed(now, id, error),
            ResponseEvent::LeaveGroup { response, .. } => {
                tracing::debug!(group = %self.config.group_id, code = response.error_code, "left the group");
            }
            _ => self.stale(id),
        }
    }

    /// A request we sent got no answer.
    fn on_failed(&mut self, now: Instant, id: super::request::RequestId, error: RequestFailure) {
        let api = if self.coordinator.lookup == Some(id) {
            self.coordinator.lookup = None;
            ApiKind::FindCoordinator
        } else if matches!(self.phase, Phase::Joining { request } if request == id) {
            ApiKind::JoinGroup
        } else if matches!(self.phase, Phase::Syncing { request: Some(r), .. } if r == id) {
            ApiKind::SyncGroup
        } else if self.heartbeats.in_flight.is_some_and(|h| h.request == id) {
            self.heartbeats.in_flight = None;
            ApiKind::Heartbeat
        } else if matches!(self.phase, Phase::Assigning { request: Some(r), .. } if r == id) {
            ApiKind::AssignmentMetadata
        } else {
            self.stale(id);
            return;
        };
        tracing::debug!(group = %self.config.group_id, %api, %error, "request failed");
        if let RequestFailure::Unsupported(message) = error {
            self.fail(GroupError::Unsupported { api, message });
            return;
        }
        match api {
            ApiKind::FindCoordinator => self.retry_at = Some(self.backoff.fail(now)),
            ApiKind::JoinGroup | ApiKind::SyncGroup => {
                self.phase = Phase::Unjoined;
                self.mark_coordinator_unknown(&format!("{api} failed: {error}"));
                self.retry_at = Some(self.backoff.fail(now));
            }
            ApiKind::Heartbeat => {
                self.mark_coordinator_unknown(&format!("{api} failed: {error}"));
                self.heartbeats.next_at = Some(self.heartbeat_backoff.fail(now));
            }
            ApiKind::AssignmentMetadata => {
                if let Phase::Assigning { request, .. } = &mut self.phase {
                    *request = None;
                }
                self.retry_at = Some(self.backoff.fail(now));
            }
            ApiKind::LeaveGroup | ApiKind::OffsetCommit => {}
        }
    }

    fn stale(&self, id: super::request::RequestId) {
        tracing::trace!(group = %self.config.group_id, ?id, "stale response ignored");
    }
}
