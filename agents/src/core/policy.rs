//! Supervision and retry policies of an agent.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Supervisor restart limit (Faust's default `OneForOneSupervisor`: 100 restarts within 1 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within the window; one more stops the agent.
    pub max_restarts: u32,
    /// The window.
    pub within: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 100,
            within: Duration::from_secs(1),
        }
    }
}

impl RestartPolicy {
    /// No restart: the first crash stops the agent (Faust's `CrashingSupervisor`, used by
    /// `test_context`).
    pub fn crash() -> Self {
        RestartPolicy {
            max_restarts: 0,
            within: Duration::from_secs(1),
        }
    }
}

/// Counts restarts in a sliding window (tokio's clock: virtual time in tests).
#[derive(Debug, Default)]
pub(crate) struct Restarts(VecDeque<Instant>);

impl Restarts {
    /// Records a crash; `false` when it exceeds the limit.
    pub(crate) fn allow(&mut self, policy: RestartPolicy) -> bool {
        let now = Instant::now();
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.within)
        {
            self.0.pop_front();
        }
        self.0.push_back(now);
        self.0.len() <= policy.max_restarts as usize
    }
}

/// Redelivery of a failed event before it is given up (acked and logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per event, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled for each further attempt.
    pub backoff: Duration,
    /// Upper bound of the delay.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// `max_attempts` attempts with exponential backoff from `backoff`, capped at 30 s.
    pub fn new(max_attempts: u32, backoff: Duration) -> Self {
        RetryPolicy {
            max_attempts,
            backoff,
            max_backoff: Duration::from_secs(30),
        }
    }

    /// The delay before attempt `attempt` (2, 3, ...).
    pub fn delay(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(2).min(31);
        self.backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff)
    }
}
