//! [`GroupConsumerError`].

use mephisto_consumer_group::membership::{ConfigError, GroupError};
use mephisto_consumer_group::offsets::TrackError;

use crate::error::EngineError;
use crate::fetcher::FetchError;

/// What a [`GroupConsumer`](super::GroupConsumer) call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GroupConsumerError {
    /// The settings were refused.
    #[error("group consumer settings: {0}")]
    Config(#[from] ConfigError),
    /// The membership stopped for good (fenced static member, unsupported broker, ...).
    #[error("consumer group: {0}")]
    Group(#[from] GroupError),
    /// The fetcher reported an error (a partition error leaves the other partitions
    /// fetching; the consumer can be polled again).
    #[error("fetch: {0}")]
    Fetch(#[from] FetchError),
    /// A request failed.
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// An ack or delivery the offset tracker refused.
    #[error("offset tracking: {0}")]
    Track(#[from] TrackError),
    /// `commit()` did not complete within the request timeout (the coordinator stayed
    /// unavailable, or the group kept rebalancing).
    #[error("commit not completed within {0:?}")]
    CommitTimeout(std::time::Duration),
    /// The consumer is closed.
    #[error("the group consumer is closed")]
    Closed,
    /// `next` was called on a partition-mode consumer, whose records are read per partition
    /// (`AssignedPartition`).
    #[error("this group consumer hands out partitions, not records: read each AssignedPartition")]
    PartitionMode,
    /// `close` did not finish in time (the group will evict us after the session timeout).
    #[error("closing the group consumer timed out")]
    CloseTimeout,
}
