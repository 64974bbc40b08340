//! The member's timers, keyed by an enum; `poll_timeout` is the earliest deadline.
//!
//! Deadlines are derived from the state rather than stored, so a timer can never outlive the
//! condition it waits for: each one is reported only while reaching it changes something.

use std::time::Instant;

use super::member::Member;
use super::state::Phase;

/// The timers of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Next heartbeat.
    Heartbeat,
    /// Session loss if no heartbeat succeeds.
    Session,
    /// The application's max poll interval.
    MaxPoll,
    /// End of a retry backoff (FindCoordinator, JoinGroup, metadata).
    Retry,
}

impl Timer {
    /// Every timer.
    pub const ALL: [Timer; 4] = [
        Timer::Heartbeat,
        Timer::Session,
        Timer::MaxPoll,
        Timer::Retry,
    ];
}

impl Member {
    /// When `timer` fires, if it is armed.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        match timer {
            Timer::Heartbeat => self.heartbeat_deadline(),
            Timer::Session => self.session_deadline(),
            Timer::MaxPoll => self.max_poll_deadline(),
            Timer::Retry => self.retry_deadline(),
        }
    }

    /// The earliest armed deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        Timer::ALL.iter().filter_map(|t| self.deadline(*t)).min()
    }

    /// The end of the backoff, while something waits for it.
    fn retry_deadline(&self) -> Option<Instant> {
        let at = self.retry_at?;
        let waiting = self.lookup_wanted()
            || self.join_wanted()
            || matches!(self.phase, Phase::Assigning { request: None, .. });
        (self.is_open() && waiting).then_some(at)
    }

    /// Whether we need a FindCoordinator now (ignoring backoff).
    pub(crate) fn lookup_wanted(&self) -> bool {
        self.is_open()
            && !matches!(self.phase, Phase::Idle)
            && self.coordinator.known.is_none()
            && self.coordinator.lookup.is_none()
    }

    /// Whether we would send JoinGroup now (ignoring backoff).
    pub(crate) fn join_wanted(&self) -> bool {
        self.is_open()
            && matches!(self.phase, Phase::Unjoined)
            && !self.topics.is_empty()
            && self.coordinator.known.is_some()
            && self.pending_revocations == 0
            && !self.waiting_for_poll
            && self.leaving.is_none()
    }

    /// Whether the backoff is over at `now`.
    pub(crate) fn retry_ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| now >= at)
    }
}
