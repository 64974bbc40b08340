//! Exponential backoff with jitter, for reconnects and retries.
//!
//! Delays grow as `base × 2^attempt`, capped at `max`, and each is spread by ±20 % (the Java
//! client's `reconnect.backoff` jitter) so that many clients that lost the same broker do not
//! all come back at the same instant. A delay is never above `max` and never below 80 % of
//! `base`.

use std::time::Duration;

/// Relative spread of each delay around its exponential value.
pub const JITTER: f64 = 0.2;

/// One backoff sequence: call [`next_delay`](Self::next_delay) after each failure and
/// [`reset`](Self::reset) after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A sequence starting near `base` and never exceeding `max` (`max` below `base` is raised
    /// to `base`).
    pub fn new(base: Duration, max: Duration) -> Self {
        Self::with_rng(base, max, fastrand::Rng::new())
    }

    /// Like [`new`](Self::new) with a given random source (deterministic in tests).
    pub fn with_rng(base: Duration, max: Duration, rng: fastrand::Rng) -> Self {
        Self {
            base,
            max: max.max(base),
            attempt: 0,
            rng,
        }
    }

    /// The delay to wait before the next attempt; advances the sequence.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let factor = 1.0 - JITTER + 2.0 * JITTER * self.rng.f64();
        exp.mul_f64(factor).min(self.max)
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over from `base` (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(1);

    #[test]
    fn bounded_and_growing() {
        let mut b = Backoff::with_rng(BASE, MAX, fastrand::Rng::with_seed(7));
        let delays: Vec<Duration> = (0..40).map(|_| b.next_delay()).collect();
        for d in &delays {
            assert!(*d <= MAX, "{d:?} above max");
            assert!(*d >= BASE.mul_f64(1.0 - JITTER), "{d:?} below 80% of base");
        }
        // First delay is around base, late delays around max.
        assert!(delays[0] <= BASE.mul_f64(1.0 + JITTER));
        assert!(delays[39] >= MAX.mul_f64(1.0 - JITTER));
        assert_eq!(b.attempts(), 40);
        b.reset();
        assert!(b.next_delay() <= BASE.mul_f64(1.0 + JITTER));
    }

    #[test]
    fn jittered() {
        // The same step of 200 sequences must not all be equal.
        let firsts: std::collections::BTreeSet<Duration> = (0..200)
            .map(|seed| Backoff::with_rng(BASE, MAX, fastrand::Rng::with_seed(seed)).next_delay())
            .collect();
        assert!(firsts.len() > 50, "only {} distinct delays", firsts.len());
        // Capped delays are jittered too (downwards only).
        let mut b = Backoff::with_rng(BASE, MAX, fastrand::Rng::with_seed(1));
        let capped: std::collections::BTreeSet<Duration> =
            (0..100).map(|_| b.next_delay()).skip(10).collect();
        assert!(capped.len() > 10);
    }

    #[test]
    fn no_overflow_on_huge_attempts_or_max_below_base() {
        let mut b = Backoff::with_rng(
            Duration::from_secs(3600),
            Duration::ZERO,
            fastrand::Rng::new(),
        );
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(3600));
        }
        let mut z = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(z.next_delay(), Duration::ZERO);
    }
}
