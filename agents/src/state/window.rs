//! Faust's windows (`faust/windows.py`): which ranges a timestamp falls in, the current one,
//! and when a range is stale. Times are seconds as `f64`, as in Faust, so that window keys
//! written to a changelog (`[key, [start, end]]`) are the same numbers a Python worker writes:
//! a range is `(start, start + size - 0.1)`.

use std::time::Duration;

/// A window range: `(start, end)` in seconds, both included (`end = start + size - 0.1`).
pub type WindowRange = (f64, f64);

/// How events are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    /// Fixed-size windows that overlap: a new one starts every `step`.
    Hopping {
        /// Window length in seconds.
        size: f64,
        /// Seconds between window starts.
        step: f64,
        /// Seconds after which a window is stale (removed by the cleanup), if set.
        expires: Option<f64>,
    },
    /// Around each event: from `before` seconds before it to `after` seconds after.
    Sliding {
        /// Seconds before the event.
        before: f64,
        /// Seconds after the event.
        after: f64,
        /// Seconds after which a window is stale, if set.
        expires: Option<f64>,
    },
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Window {
    /// Fixed-size windows that do not overlap (Faust's `TumblingWindow`: hopping with
    /// `step == size`).
    pub fn tumbling(size: Duration) -> Window {
        Window::Hopping {
            size: secs(size),
            step: secs(size),
            expires: None,
        }
    }

    /// Windows of `size` starting every `step` (Faust's `HoppingWindow`).
    pub fn hopping(size: Duration, step: Duration) -> Window {
        Window::Hopping {
            size: secs(size),
            step: secs(step),
            expires: None,
        }
    }

    /// `before` to `after` around each event (Faust's `SlidingWindow`).
    pub fn sliding(before: Duration, after: Duration) -> Window {
        Window::Sliding {
            before: secs(before),
            after: secs(after),
            expires: None,
        }
    }

    /// Windows older than `expires` (relative to the latest event seen) are removed.
    pub fn expires(self, expires: Duration) -> Window {
        let e = Some(secs(expires));
        match self {
            Window::Hopping { size, step, .. } => Window::Hopping {
                size,
                step,
                expires: e,
            },
            Window::Sliding { before, after, .. } => Window::Sliding {
                before,
                after,
                expires: e,
            },
        }
    }

    /// The expiry in seconds, if set.
    pub fn expiry(&self) -> Option<f64> {
        match self {
            Window::Hopping { expires, .. } | Window::Sliding { expires, .. } => *expires,
        }
    }

    fn start_initial_range(size: f64, step: f64, timestamp: f64) -> f64 {
        let closest_step = (timestamp / step).floor() * step;
        closest_step - size + step
    }

    /// Every range `timestamp` falls in, oldest first.
    pub fn ranges(&self, timestamp: f64) -> Vec<WindowRange> {
        match *self {
            Window::Hopping { size, step, .. } => {
                // As Faust: `range(int(start), int(timestamp) + 1, int(step))`.
                let start = Self::start_initial_range(size, step, timestamp) as i64;
                let stop = timestamp as i64 + 1;
                let step_i = (step as i64).max(1);
                let mut out = Vec::new();
                let mut s = start;
                while s < stop {
                    out.push(from_start(s as f64, size));
                    s += step_i;
                }
                out
            }
            Window::Sliding { before, after, .. } => vec![(timestamp - before, timestamp + after)],
        }
    }

    /// The latest range `timestamp` falls in.
    pub fn current(&self, timestamp: f64) -> WindowRange {
        match *self {
            Window::Hopping { size, step, .. } => {
                let start = Self::start_initial_range(size, step, timestamp);
                let m = ((timestamp - start) / step).floor();
                from_start(start + step * m, size)
            }
            Window::Sliding { before, after, .. } => (timestamp - before, timestamp + after),
        }
    }

    /// The range current `d` before `timestamp`.
    pub fn delta(&self, timestamp: f64, d: Duration) -> WindowRange {
        self.current(timestamp - secs(d))
    }

    /// The oldest range `timestamp` falls in.
    pub fn earliest(&self, timestamp: f64) -> WindowRange {
        match *self {
            Window::Hopping { size, step, .. } => {
                from_start(Self::start_initial_range(size, step, timestamp), size)
            }
            Window::Sliding { .. } => self.current(timestamp),
        }
    }

    /// Whether a window starting at `start` is stale once events up to `latest` were seen.
    pub fn stale(&self, start: f64, latest: f64) -> bool {
        match *self {
            Window::Hopping { expires, .. } => match expires {
                Some(e) if e > 0.0 => start <= self.current(latest - e).0,
                _ => false,
            },
            Window::Sliding { expires, .. } => match expires {
                Some(e) if e > 0.0 => start <= latest - e,
                _ => false,
            },
        }
    }
}

/// Faust's `WindowRange_from_start`.
fn from_start(start: f64, size: f64) -> WindowRange {
    (start, start + size - 0.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_ranges_match_faust() {
        let w = Window::tumbling(Duration::from_secs(10));
        assert_eq!(w.ranges(6.0), vec![(0.0, 9.9)]);
        // An event exactly on a boundary opens the next window.
        assert_eq!(w.ranges(10.0), vec![(10.0, 19.9)]);
        assert_eq!(w.current(19.95), (10.0, 19.9));
        assert_eq!(w.delta(25.0, Duration::from_secs(10)), (10.0, 19.9));
    }

    #[test]
    fn hopping_ranges_match_faust() {
        // faust/tests: HoppingWindow(10, 5).ranges(6) has two ranges containing 6.
        let w = Window::hopping(Duration::from_secs(10), Duration::from_secs(5));
        let r = w.ranges(6.0);
        assert_eq!(r, vec![(0.0, 9.9), (5.0, 14.9)]);
        for (s, e) in r {
            assert!(s <= 6.0 && e > 6.0);
        }
        // Faust's current range is the latest one.
        let w = Window::hopping(Duration::from_secs(57), Duration::from_secs(23));
        assert_eq!(w.ranges(456.0).last().copied(), Some(w.current(456.0)));
    }

    #[test]
    fn staleness_follows_the_latest_event() {
        let w = Window::tumbling(Duration::from_secs(10)).expires(Duration::from_secs(30));
        assert!(!w.stale(0.0, 29.0));
        assert!(w.stale(0.0, 30.0));
        assert!(!w.stale(10.0, 30.0));
        let s = Window::sliding(Duration::from_secs(2), Duration::from_secs(3));
        assert_eq!(s.ranges(10.0), vec![(8.0, 13.0)]);
        assert!(!s.stale(0.0, 1000.0), "no expiry, never stale");
    }
}
