//! [`ConsumedRecord`]: a record with its coordinates.

use std::sync::Arc;

use mephisto_wire::record::Record;

/// One record handed to the application; [`ack`](super::GroupConsumer::ack) it with
/// `(topic, partition, offset)` once processed.
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
}
