//! What the application hands to the producer ([`ProducerRecord`]) and what it gets back
//! ([`RecordMetadata`]).

use std::sync::Arc;

use bytes::Bytes;

/// One record header: a UTF-8 key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// Header key.
    pub key: String,
    /// Header value, or `None` for a null value.
    pub value: Option<Bytes>,
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Topic name (shared: a producer of many records to one topic clones a reference).
    pub topic: Arc<str>,
    /// Partition; `None` lets the partitioner choose (murmur2 of the key, or the sticky
    /// partition for unkeyed records, see [`partitioner`](super::partitioner)).
    pub partition: Option<i32>,
    /// Key, or `None` for a null key.
    pub key: Option<Bytes>,
    /// Value, or `None` for a null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<RecordHeader>,
    /// Create timestamp in milliseconds since the epoch; `None` means "now" at `send`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with no key, value or headers.
    pub fn new(topic: impl AsRef<str>) -> Self {
        Self::for_topic(Arc::from(topic.as_ref()))
    }

    /// A record for a shared topic name (no copy of the name).
    pub fn for_topic(topic: Arc<str>) -> Self {
        ProducerRecord {
            topic,
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Sets an explicit partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the create timestamp (milliseconds since the epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Appends a header.
    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push(RecordHeader {
            key: key.into(),
            value,
        });
        self
    }
}

/// Where an acknowledged record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset of the record in the partition; -1 with `acks=0` (the broker does not answer) and
    /// when the broker did not say (a duplicate batch from an old broker).
    pub offset: i64,
    /// The record's timestamp: the create time it was sent with, or the broker's log append
    /// time when the topic uses `LogAppendTime`.
    pub timestamp: i64,
}
