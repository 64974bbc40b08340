//! [`ProduceError`]: why a record was not (or may not have been) written.
//!
//! Cheap to clone: one failure of a batch is handed to every record in it.

use std::sync::Arc;
use std::time::Duration;

use mephisto_wire::record::EncodeError;

use crate::error::{EngineError, KafkaError};
use crate::producer::config::ConfigError;

/// Why a record was not (or may not have been) written.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// The producer's settings are unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The record (with its 61-byte batch header) is larger than `max_request_size` or
    /// `buffer_memory`; it was not queued.
    #[error("record of {size} bytes exceeds {limit} ({max} bytes)")]
    RecordTooLarge {
        /// Encoded size of the record plus the batch header.
        size: usize,
        /// The limit it exceeds.
        max: usize,
        /// Which setting sets the limit.
        limit: &'static str,
    },
    /// An explicit partition the topic does not have.
    #[error("topic {topic:?} has {partitions} partitions, not partition {partition}")]
    InvalidPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        partitions: i32,
    },
    /// The topic's metadata (or buffer memory) did not arrive within `max_block`.
    #[error("no metadata for topic {topic:?} after {waited:?}: {last}")]
    MetadataTimeout {
        /// The topic.
        topic: String,
        /// How long `send` waited.
        waited: Duration,
        /// The last error from the cluster.
        last: EngineError,
    },
    /// Buffer memory did not free up within `max_block`.
    #[error("no buffer memory for a record of {size} bytes after {waited:?}")]
    BufferFull {
        /// Size of the record.
        size: usize,
        /// How long `send` waited.
        waited: Duration,
    },
    /// The broker rejected the batch with a code that is not retriable (or retries ran out).
    #[error("produce to {topic}-{partition} failed: {error}")]
    Broker {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// The broker's code and message.
        error: KafkaError,
    },
    /// The request failed in transport (connection, timeout) and retries ran out.
    #[error("produce to {topic}-{partition} failed: {error}")]
    Transport {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// The last error.
        error: EngineError,
    },
    /// The record was not acknowledged within `delivery_timeout`; it may or may not have been
    /// written.
    #[error(
        "record for {topic}-{partition} not acknowledged within {timeout:?}{}",
        last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    )]
    DeliveryTimeout {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// The configured delivery timeout.
        timeout: Duration,
        /// The error of the last attempt, when one was sent and failed.
        last_error: Option<Box<ProduceError>>,
    },
    /// Idempotence was explicitly requested but the cluster cannot give a producer id.
    #[error("idempotence requested but no producer id is available: {reason}")]
    IdempotenceUnavailable {
        /// Why (missing API, broker error).
        reason: String,
    },
    /// The broker reported a sequence gap on the oldest unacknowledged batch of the partition:
    /// records it had acknowledged are lost (e.g. after an unclean leader election).
    #[error("out of order sequence on {topic}-{partition}: the broker lost acknowledged records")]
    OutOfOrderSequence {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
    },
    /// The batch could not be encoded.
    #[error("cannot encode batch: {0}")]
    Encode(Arc<EncodeError>),
    /// The producer was closed (or its sender stopped) before the record was acknowledged.
    #[error("the producer is closed")]
    Closed,
}
