//! [`FetchError`]: what [`Fetcher`](super::Fetcher) operations and
//! [`next_batch`](super::Fetcher::next_batch) can fail with.
//!
//! Retriable conditions (a leader that moved, a broker that is down, a request that timed out)
//! never surface: the fetcher refreshes the metadata, re-routes and retries with backoff by
//! itself. What surfaces is what the application must decide about. A partition-level error
//! stops that partition (it is not fetched again) until the application [`seek`]s it.
//!
//! [`seek`]: super::Fetcher::seek

use mephisto_wire::record::BatchError;

use crate::error::{EngineError, KafkaError};
use crate::producer::TopicPartition;

/// An error from the fetcher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The fetcher was closed.
    #[error("the fetcher is closed")]
    Closed,
    /// The settings are unusable.
    #[error("invalid fetcher configuration: {0}")]
    Config(String),
    /// The partition is not assigned to this fetcher.
    #[error("{0} is not assigned")]
    NotAssigned(TopicPartition),
    /// A negative offset was given as a position.
    #[error("invalid offset {offset} for {partition}")]
    InvalidOffset {
        /// The partition.
        partition: TopicPartition,
        /// The offset given.
        offset: i64,
    },
    /// The position is outside the partition's log and the reset policy is
    /// [`OffsetReset::None`](super::OffsetReset::None). The partition stops until a seek.
    #[error("offset {offset} is out of range for {partition} and the reset policy is none")]
    OffsetOutOfRange {
        /// The partition.
        partition: TopicPartition,
        /// The position that is out of range.
        offset: i64,
    },
    /// A batch failed validation (CRC, framing, an aborted-transaction marker that does not
    /// decode). Records before it were delivered; the partition stops at `offset` until a seek.
    #[error("corrupt data in {partition} at offset {offset}: {source}")]
    Corrupt {
        /// The partition.
        partition: TopicPartition,
        /// The position of the first record not delivered.
        offset: i64,
        /// What was wrong.
        source: BatchError,
    },
    /// The broker answered with data but not one complete batch, even though it returns at
    /// least one whole batch since Fetch v3 (KIP-74); the partition cannot progress and stops
    /// until a seek.
    #[error(
        "no complete batch in {size} bytes fetched from {partition} at offset {offset}: the broker \
         truncated the first batch"
    )]
    NoProgress {
        /// The partition.
        partition: TopicPartition,
        /// The position.
        offset: i64,
        /// Bytes the broker returned.
        size: usize,
    },
    /// The broker answered a partition with an error code that retrying does not fix (e.g.
    /// TOPIC_AUTHORIZATION_FAILED). The partition stops until a seek.
    #[error("fetching {partition} failed: {error}")]
    Kafka {
        /// The partition.
        partition: TopicPartition,
        /// The code, name and broker message.
        error: KafkaError,
    },
    /// A request failed in a way that retrying does not fix (e.g. an API the broker does not
    /// support). The fetcher retries later anyway, with backoff.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl FetchError {
    /// The partition the error is about, if it is about one.
    pub fn partition(&self) -> Option<&TopicPartition> {
        match self {
            Self::NotAssigned(partition)
            | Self::InvalidOffset { partition, .. }
            | Self::OffsetOutOfRange { partition, .. }
            | Self::Corrupt { partition, .. }
            | Self::NoProgress { partition, .. }
            | Self::Kafka { partition, .. } => Some(partition),
            Self::Closed | Self::Config(_) | Self::Engine(_) => None,
        }
    }
}
