//! Commit policy settings, named after Faust's.

use std::time::Duration;

/// When to commit, and how many offsets to track per partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitConfig {
    /// Commit at least this often while offsets advance (Faust's `broker_commit_interval`,
    /// default 2.8 s).
    pub interval: Duration,
    /// Commit after this many new acks (Faust's `broker_commit_every`, default 10 000).
    pub every: u64,
    /// Outstanding offsets tracked per partition (the memory bound: 16 bytes each, see
    /// [`PartitionWindow`](super::PartitionWindow)). Default 65 536.
    pub max_outstanding: usize,
    /// Delay before retrying a failed forced commit (default 100 ms).
    pub retry_backoff: Duration,
    /// How long a forced commit (before a revoke or on close) is retried before its
    /// partitions are given up (the Java client's `default.api.timeout.ms`, default 60 s).
    pub forced_timeout: Duration,
}

impl Default for CommitConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(2800),
            every: 10_000,
            max_outstanding: 65_536,
            retry_backoff: Duration::from_millis(100),
            forced_timeout: Duration::from_secs(60),
        }
    }
}
