//! The server's counters: totals since start ([`ReplayStats`]), per sink topic
//! ([`SinkTopicStats`]), and the requests of APIs it does not serve.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since the server started; subtract two snapshots to get one run's share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered (or, for `acks=0` Produce, handled).
    pub requests: u64,
    /// Fetch requests.
    pub fetches: u64,
    /// Record-batch bytes sent in Fetch responses.
    pub fetch_bytes: u64,
    /// Produce requests.
    pub produces: u64,
    /// Records in accepted produced batches.
    pub produced_records: u64,
    /// Accepted produced batches.
    pub produced_batches: u64,
    /// Bytes of accepted produced batches.
    pub produced_bytes: u64,
    /// Produced batches refused for bad framing or CRC.
    pub corrupt_batches: u64,
    /// Idempotent batches whose base sequence did not follow the previous batch.
    pub sequence_gaps: u64,
    /// Connections closed on a request that is malformed or of an API not served.
    pub rejected: u64,
}

impl std::ops::Sub for ReplayStats {
    type Output = ReplayStats;

    fn sub(self, before: ReplayStats) -> ReplayStats {
        ReplayStats {
            connections: self.connections.wrapping_sub(before.connections),
            requests: self.requests.wrapping_sub(before.requests),
            fetches: self.fetches.wrapping_sub(before.fetches),
            fetch_bytes: self.fetch_bytes.wrapping_sub(before.fetch_bytes),
            produces: self.produces.wrapping_sub(before.produces),
            produced_records: self.produced_records.wrapping_sub(before.produced_records),
            produced_batches: self.produced_batches.wrapping_sub(before.produced_batches),
            produced_bytes: self.produced_bytes.wrapping_sub(before.produced_bytes),
            corrupt_batches: self.corrupt_batches.wrapping_sub(before.corrupt_batches),
            sequence_gaps: self.sequence_gaps.wrapping_sub(before.sequence_gaps),
            rejected: self.rejected.wrapping_sub(before.rejected),
        }
    }
}

/// What one topic has received from producers (the sink side).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkTopicStats {
    /// Records in accepted batches.
    pub records: u64,
    /// Accepted batches.
    pub batches: u64,
    /// With [`ReplayConfig::sum_values`](super::ReplayConfig::sum_values): the sum of
    /// [`output_sum`](crate::pipeline_workload::output_sum) over the records' values.
    pub value_sum: i128,
    /// With `sum_values`: records whose value `output_sum` could not read.
    pub unreadable_values: u64,
    /// Wall clock (µs since the Unix epoch) when the first batch was accepted; 0 before.
    pub first_append_us: u64,
    /// Wall clock (µs since the Unix epoch) when the last batch was accepted; 0 before.
    pub last_append_us: u64,
}

/// Highest API key counted in [`Counters::rejected_apis`]; higher keys count in the last slot.
pub(super) const API_KEY_SLOTS: usize = 128;

/// The live counters behind [`ReplayStats`].
#[derive(Debug)]
pub(super) struct Counters {
    pub(super) connections: AtomicU64,
    pub(super) requests: AtomicU64,
    pub(super) fetches: AtomicU64,
    pub(super) fetch_bytes: AtomicU64,
    pub(super) produces: AtomicU64,
    pub(super) produced_records: AtomicU64,
    pub(super) produced_batches: AtomicU64,
    pub(super) produced_bytes: AtomicU64,
    pub(super) corrupt_batches: AtomicU64,
    pub(super) sequence_gaps: AtomicU64,
    pub(super) rejected: AtomicU64,
    /// Requests refused because their API is not served, by API key.
    pub(super) rejected_apis: [AtomicU64; API_KEY_SLOTS],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            fetch_bytes: AtomicU64::new(0),
            produces: AtomicU64::new(0),
            produced_records: AtomicU64::new(0),
            produced_batches: AtomicU64::new(0),
            produced_bytes: AtomicU64::new(0),
            corrupt_batches: AtomicU64::new(0),
            sequence_gaps: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            rejected_apis: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Adds `by` to `counter`.
pub(super) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Counters {
    pub(super) fn snapshot(&self) -> ReplayStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ReplayStats {
            connections: get(&self.connections),
            requests: get(&self.requests),
            fetches: get(&self.fetches),
            fetch_bytes: get(&self.fetch_bytes),
            produces: get(&self.produces),
            produced_records: get(&self.produced_records),
            produced_batches: get(&self.produced_batches),
            produced_bytes: get(&self.produced_bytes),
            corrupt_batches: get(&self.corrupt_batches),
            sequence_gaps: get(&self.sequence_gaps),
            rejected: get(&self.rejected),
        }
    }

    /// Counts a request of an API that is not served.
    pub(super) fn reject_api(&self, api_key: i16) {
        let slot = usize::try_from(api_key)
            .unwrap_or(API_KEY_SLOTS - 1)
            .min(API_KEY_SLOTS - 1);
        if let Some(counter) = self.rejected_apis.get(slot) {
            bump(counter, 1);
        }
    }

    /// `(api key, requests)` of every API refused at least once.
    pub(super) fn rejected_apis(&self) -> Vec<(i16, u64)> {
        self.rejected_apis
            .iter()
            .enumerate()
            .filter_map(|(key, n)| {
                let n = n.load(Ordering::Relaxed);
                (n > 0).then_some((key as i16, n))
            })
            .collect()
    }
}
