//! Doubling retry delay with a cap, as `retry.backoff.ms` / `retry.backoff.max.ms` (without
//! the Java client's random jitter: this crate is deterministic).

use std::time::{Duration, Instant};

/// Retry delay state: each failure doubles the delay up to the cap; a success resets it.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
        }
    }

    /// Records a failure at `now` and returns when to retry.
    pub(crate) fn fail(&mut self, now: Instant) -> Instant {
        let factor = 1u32.checked_shl(self.failures.min(16)).unwrap_or(u32::MAX);
        let delay = self.base.saturating_mul(factor).min(self.max);
        self.failures = self.failures.saturating_add(1);
        now.checked_add(delay).unwrap_or(now)
    }

    /// Records a success: the next failure starts again at the base delay.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<_> = (0..4).map(|_| b.fail(t0) - t0).collect();
        assert_eq!(
            delays,
            [100, 200, 350, 350].map(Duration::from_millis).to_vec()
        );
        b.reset();
        assert_eq!(b.fail(t0) - t0, Duration::from_millis(100));
    }
}
