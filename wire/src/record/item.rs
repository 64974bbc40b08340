//! One record of a batch, in two forms: [`RecordRef`], which borrows the batch's records buffer
//! (no reference-count traffic at all), and [`Record`], which owns a `Bytes` slice of its own
//! bytes (one reference-count increment) and can outlive the batch.

use bytes::Bytes;

use crate::record::header::TimestampType;
use crate::record::headers::Headers;
use crate::record::parse::{Layout, RawRecord};

/// Batch fields needed to turn a record's deltas into absolute values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordContext {
    pub base_offset: i64,
    pub base_timestamp: i64,
    /// `Some(max_timestamp)` for log-append time batches: every record takes this timestamp.
    pub log_append_time: Option<i64>,
    pub base_sequence: i32,
}

impl RecordContext {
    #[inline]
    pub(crate) fn offset(&self, layout: &Layout) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(layout.offset_delta))
    }

    #[inline]
    fn timestamp(&self, layout: &Layout) -> i64 {
        match self.log_append_time {
            Some(t) => t,
            None => self.base_timestamp.wrapping_add(layout.timestamp_delta),
        }
    }

    #[inline]
    fn sequence(&self, layout: &Layout) -> i32 {
        sequence_of(self.base_sequence, layout.offset_delta)
    }

    #[inline]
    fn timestamp_type(&self) -> TimestampType {
        if self.log_append_time.is_some() {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
}

/// A record's sequence number as Java's `DefaultRecordBatch.incrementSequence` computes it: -1 if
/// the batch has no base sequence, else `base + delta` wrapping from `i32::MAX` to 0.
#[inline]
pub(crate) fn sequence_of(base_sequence: i32, offset_delta: i32) -> i32 {
    if base_sequence < 0 {
        return crate::record::NO_SEQUENCE;
    }
    let modulus = i64::from(i32::MAX) + 1;
    let s = (i64::from(base_sequence) + i64::from(offset_delta)).rem_euclid(modulus);
    // `rem_euclid` keeps `s` in 0..=i32::MAX.
    i32::try_from(s).unwrap_or(crate::record::NO_SEQUENCE)
}

/// A record borrowed from its batch's records buffer.
///
/// Accessors return slices of that buffer; `*_bytes` accessors return `Bytes` slices of it (a
/// reference-count increment each). Use [`RecordRef::to_record`] to keep a record past the batch.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    body: &'a Bytes,
    record: &'a [u8],
    layout: Layout,
    ctx: &'a RecordContext,
}

impl<'a> RecordRef<'a> {
    #[inline]
    pub(crate) fn new(body: &'a Bytes, raw: RawRecord, ctx: &'a RecordContext) -> Self {
        let record = body.get(raw.start..raw.end()).unwrap_or_default();
        RecordRef {
            body,
            record,
            layout: raw.layout,
            ctx,
        }
    }

    /// Absolute offset: base offset + offset delta.
    #[inline]
    pub fn offset(&self) -> i64 {
        self.ctx.offset(&self.layout)
    }

    /// Offset delta from the batch's base offset.
    #[inline]
    pub fn offset_delta(&self) -> i32 {
        self.layout.offset_delta
    }

    /// Timestamp: base timestamp + delta, or the batch's max timestamp for log-append time.
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.ctx.timestamp(&self.layout)
    }

    /// Timestamp delta from the batch's base timestamp, as stored.
    #[inline]
    pub fn timestamp_delta(&self) -> i64 {
        self.layout.timestamp_delta
    }

    /// The batch's timestamp type.
    #[inline]
    pub fn timestamp_type(&self) -> TimestampType {
        self.ctx.timestamp_type()
    }

    /// Sequence number (see [`Record::sequence`]).
    #[inline]
    pub fn sequence(&self) -> i32 {
        self.ctx.sequence(&self.layout)
    }

    /// The record's attributes byte (unused by Kafka).
    #[inline]
    pub fn attributes(&self) -> i8 {
        self.layout.attributes
    }

    /// The key, or `None` for a null key.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        self.layout.key.get(self.record)
    }

    /// The key as a `Bytes` slice of the batch buffer, or `None` for a null key.
    #[inline]
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key().map(|k| self.body.slice_ref(k))
    }

    /// The value, or `None` for a null value.
    #[inline]
    pub fn value(&self) -> Option<&'a [u8]> {
        self.layout.value.get(self.record)
    }

    /// The value as a `Bytes` slice of the batch buffer, or `None` for a null value.
    #[inline]
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value().map(|v| self.body.slice_ref(v))
    }

    /// Number of headers.
    #[inline]
    pub fn header_count(&self) -> usize {
        self.layout.header_count as usize
    }

    /// The headers, in wire order.
    #[inline]
    pub fn headers(&self) -> Headers<'a> {
        Headers::new(
            self.body,
            self.layout.header_region(self.record),
            self.layout.header_count,
        )
    }

    /// The record's size on the wire, excluding its length varint.
    #[inline]
    pub fn size_in_bytes(&self) -> usize {
        self.record.len()
    }

    /// An owned copy of this record that shares the batch buffer (one reference-count increment,
    /// no copy of the bytes).
    #[inline]
    pub fn to_record(&self) -> Record {
        Record::new(self.body.slice_ref(self.record), self.layout, self.ctx)
    }
}

/// A record holding a `Bytes` slice of its own bytes; it can outlive its batch and be sent across
/// threads.
#[derive(Debug, Clone)]
pub struct Record {
    buf: Bytes,
    layout: Layout,
    offset: i64,
    timestamp: i64,
    sequence: i32,
    timestamp_type: TimestampType,
}

impl Record {
    /// Builds the owned record from a layout parsed out of `body`.
    #[inline]
    pub(crate) fn from_raw(body: &Bytes, raw: RawRecord, ctx: &RecordContext) -> Record {
        let record = body.get(raw.start..raw.end()).unwrap_or_default();
        Record::new(body.slice_ref(record), raw.layout, ctx)
    }

    #[inline]
    fn new(buf: Bytes, layout: Layout, ctx: &RecordContext) -> Record {
        Record {
            buf,
            offset: ctx.offset(&layout),
            timestamp: ctx.timestamp(&layout),
            sequence: ctx.sequence(&layout),
            timestamp_type: ctx.timestamp_type(),
            layout,
        }
    }

    /// Absolute offset: base offset + offset delta.
    #[inline]
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Offset delta from the batch's base offset.
    #[inline]
    pub fn offset_delta(&self) -> i32 {
        self.layout.offset_delta
    }

    /// Timestamp: base timestamp + delta, or the batch's max timestamp for log-append time.
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// Timestamp delta from the batch's base timestamp, as stored.
    #[inline]
    pub fn timestamp_delta(&self) -> i64 {
        self.layout.timestamp_delta
    }

    /// The batch's timestamp type.
    #[inline]
    pub fn timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }

    /// Sequence number: -1 if the batch has no base sequence, else base sequence + offset delta,
    /// wrapping from `i32::MAX` to 0 as Kafka does.
    #[inline]
    pub fn sequence(&self) -> i32 {
        self.sequence
    }

    /// The record's attributes byte (unused by Kafka).
    #[inline]
    pub fn attributes(&self) -> i8 {
        self.layout.attributes
    }

    /// The key, or `None` for a null key.
    #[inline]
    pub fn key(&self) -> Option<&[u8]> {
        self.layout.key.get(&self.buf)
    }

    /// The key as a `Bytes` slice (no copy), or `None` for a null key.
    #[inline]
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key().map(|k| self.buf.slice_ref(k))
    }

    /// The value, or `None` for a null value.
    #[inline]
    pub fn value(&self) -> Option<&[u8]> {
        self.layout.value.get(&self.buf)
    }

    /// The value as a `Bytes` slice (no copy), or `None` for a null value.
    #[inline]
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value().map(|v| self.buf.slice_ref(v))
    }

    /// Number of headers.
    #[inline]
    pub fn header_count(&self) -> usize {
        self.layout.header_count as usize
    }

    /// The headers, in wire order.
    #[inline]
    pub fn headers(&self) -> Headers<'_> {
        Headers::new(
            &self.buf,
            self.layout.header_region(&self.buf),
            self.layout.header_count,
        )
    }

    /// The record's size on the wire, excluding its length varint.
    #[inline]
    pub fn size_in_bytes(&self) -> usize {
        self.buf.len()
    }
}
