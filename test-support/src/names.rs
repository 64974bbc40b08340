//! Names unique to this process and call, so that tests sharing a broker do not collide.

use std::sync::atomic::{AtomicU32, Ordering};

/// `PREFIX-PID-N`, with N counting the calls in this process.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
