//! Errors of the offset tracker's inputs (caller mistakes, not broker errors).

/// Why a delivery or ack was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    /// The partition is not tracked (never assigned, or revoked/lost).
    #[error("partition {topic}-{partition} is not tracked")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A [`PartitionHandle`](super::PartitionHandle) of an assignment that is over (the
    /// partition was lost, dropped after its revocation, or assigned again).
    #[error("stale partition handle: that assignment of the partition is over")]
    StaleHandle,
    /// A delivery went backwards (after a seek, call `reset` first).
    #[error("offset {offset} delivered out of order (expected at least {expected_at_least})")]
    OutOfOrder {
        /// The offset delivered.
        offset: i64,
        /// The smallest acceptable offset.
        expected_at_least: i64,
    },
    /// The window is full: stop handing out this partition's records until acks drain it.
    #[error("{capacity} offsets outstanding: window full")]
    WindowFull {
        /// The window capacity.
        capacity: usize,
    },
    /// An ack for an offset that was never delivered (a gap or beyond the last delivery).
    #[error("offset {offset} acked but never delivered")]
    NotDelivered {
        /// The offset acked.
        offset: i64,
    },
    /// `i64::MAX` cannot be delivered (its next offset does not exist).
    #[error("offset i64::MAX cannot be tracked")]
    OffsetOverflow,
}
