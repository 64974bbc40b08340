//! Waiting for a condition until a deadline, failing the test with what was awaited.

use std::time::{Duration, Instant};

/// Polls `cond` every 10 ms (blocking the thread) until it holds; panics with `what` after
/// `within`.
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` every millisecond (a tokio timer) until it holds; panics with `what` after
/// `within`.
pub async fn wait_until_async(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    eventually(what, within, || cond().then_some(())).await
}

/// Polls `f` every millisecond (a tokio timer) until it returns a value; panics with `what`
/// after `within`.
pub async fn eventually<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
