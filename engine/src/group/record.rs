//! [`ConsumedRecord`]: a record with its coordinates.

use std::sync::Arc;

use mephisto_wire::record::Record;

use super::acks::PartitionAcks;

/// One record handed to the application; acknowledge it once processed with
/// [`ack_record`](super::GroupConsumer::ack_record) (no partition lookup) or
/// [`ack`](super::GroupConsumer::ack) with `(topic, partition, offset)`.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition index.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// The record (key, value, headers, timestamp), sharing the fetch buffer.
    pub record: Record,
    /// The acks of this assignment of the partition.
    pub(crate) acks: Arc<PartitionAcks>,
}
