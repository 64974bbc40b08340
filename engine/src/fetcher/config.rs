//! [`FetcherConfig`]: how much to fetch, how long the broker may wait, how much to buffer, which
//! records to show (isolation level) and where to go when a position is invalid.
//!
//! Defaults follow the Java consumer; each field names the property it corresponds to.

use std::time::Duration;

use mephisto_wire::record::DecodeOptions;

/// Which records a fetch shows (Java `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Every record, up to the high watermark, including records of open and aborted
    /// transactions. The default, as in Java.
    #[default]
    ReadUncommitted,
    /// Only records of committed transactions (and non-transactional ones), up to the last
    /// stable offset: the Fetch asks for isolation level 1 and the aborted-transactions list of
    /// each response drops the batches of aborted transactions.
    ReadCommitted,
}

impl IsolationLevel {
    /// The wire value of the Fetch and ListOffsets `isolation_level` field.
    pub fn as_i8(self) -> i8 {
        match self {
            Self::ReadUncommitted => 0,
            Self::ReadCommitted => 1,
        }
    }
}

/// What to do when a partition's position is out of range (Java `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// Go to the log start offset.
    Earliest,
    /// Go to the log end offset (the last stable offset with read_committed). The default, as
    /// in Java.
    #[default]
    Latest,
    /// Do not move: the partition stops and [`Fetcher::next_batch`](super::Fetcher::next_batch)
    /// returns [`FetchError::OffsetOutOfRange`](super::FetchError::OffsetOutOfRange) until the
    /// application seeks.
    None,
}

/// Fetcher settings. Build with [`FetcherConfig::default`] and the `with_*` setters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetcherConfig {
    /// How long the broker may hold a Fetch when it has less than `min_bytes` to return (Java
    /// `fetch.max.wait.ms`). Default 500 ms.
    pub max_wait: Duration,
    /// Bytes the broker should gather before answering early (Java `fetch.min.bytes`).
    /// Default 1.
    pub min_bytes: i32,
    /// Most bytes one Fetch response should carry over all its partitions (Java
    /// `fetch.max.bytes`). The broker still returns a first batch larger than this, so that
    /// a large record never blocks the partition. Default 4 MiB (Java: 50 MiB): measured
    /// faster and smaller in `client_bench` (see BENCHMARKS.md, "Consumer memory").
    pub max_bytes: i32,
    /// Most bytes per partition in one Fetch response (Java `max.partition.fetch.bytes`), with
    /// the same exception for a large first batch. It is also how far ahead of the application
    /// one partition is prefetched. Default 1 MiB.
    pub max_partition_bytes: i32,
    /// Most bytes of fetched record data held for the application. Fetching pauses while the
    /// buffer is this full; each request asks for no more than the free space, so the buffer
    /// exceeds it by at most one oversized batch per broker. Default 8 MiB.
    pub max_buffered_bytes: usize,
    /// Which records to show. Default [`IsolationLevel::ReadUncommitted`].
    pub isolation_level: IsolationLevel,
    /// Where to go when a position is out of range. Default [`OffsetReset::Latest`].
    pub auto_offset_reset: OffsetReset,
    /// Batch validation: CRC checks (Java `check.crcs`, on by default), the decompressed-size
    /// cap and the largest batch accepted.
    pub decode: DecodeOptions,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 4 * 1024 * 1024,
            max_partition_bytes: 1024 * 1024,
            max_buffered_bytes: 8 * 1024 * 1024,
            isolation_level: IsolationLevel::ReadUncommitted,
            auto_offset_reset: OffsetReset::Latest,
            decode: DecodeOptions::default(),
        }
    }
}

impl FetcherConfig {
    /// Sets [`max_wait`](Self::max_wait).
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Sets [`min_bytes`](Self::min_bytes).
    pub fn with_min_bytes(mut self, bytes: i32) -> Self {
        self.min_bytes = bytes;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    pub fn with_max_bytes(mut self, bytes: i32) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Sets [`max_partition_bytes`](Self::max_partition_bytes).
    pub fn with_max_partition_bytes(mut self, bytes: i32) -> Self {
        self.max_partition_bytes = bytes;
        self
    }

    /// Sets [`max_buffered_bytes`](Self::max_buffered_bytes).
    pub fn with_max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.max_buffered_bytes = bytes;
        self
    }

    /// Sets [`isolation_level`](Self::isolation_level).
    pub fn with_isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = level;
        self
    }

    /// Sets [`auto_offset_reset`](Self::auto_offset_reset).
    pub fn with_auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Sets [`decode`](Self::decode).
    pub fn with_decode_options(mut self, decode: DecodeOptions) -> Self {
        self.decode = decode;
        self
    }

    /// Checks the settings that would make the fetcher misbehave.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_wait > Duration::from_millis(i32::MAX as u64) {
            return Err("max wait does not fit in an i32 of milliseconds".into());
        }
        if self.min_bytes < 0 {
            return Err("min bytes must not be negative".into());
        }
        if self.max_bytes <= 0 || self.max_partition_bytes <= 0 {
            return Err("max bytes and max partition bytes must be positive".into());
        }
        if self.max_buffered_bytes == 0 {
            return Err("max buffered bytes must be positive".into());
        }
        Ok(())
    }

    /// Smallest free buffer space worth a Fetch: half a partition's worth (or half the buffer
    /// if that is smaller), at least one byte.
    pub(crate) fn min_free_bytes(&self) -> usize {
        let partition = usize::try_from(self.max_partition_bytes).unwrap_or(1);
        (partition.min(self.max_buffered_bytes) / 2).max(1)
    }
}
