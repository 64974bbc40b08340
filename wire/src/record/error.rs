//! Decode errors of record batches: [`BatchError`] for a batch and its framing, [`RecordError`]
//! for one record inside a batch. Each validation rule of the format has its own variant, carrying
//! the offsets and sizes needed to locate the fault.

use crate::compression::{Compression, CompressionError};
use crate::record::control::ControlError;

/// The field of a record a [`RecordError`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordField {
    /// The record's leading length varint.
    Length,
    /// The (unused) attributes byte.
    Attributes,
    /// The timestamp delta varlong.
    TimestampDelta,
    /// The offset delta varint.
    OffsetDelta,
    /// The key length varint.
    KeyLength,
    /// The key bytes.
    Key,
    /// The value length varint.
    ValueLength,
    /// The value bytes.
    Value,
    /// The header count varint.
    HeaderCount,
    /// A header key length varint.
    HeaderKeyLength,
    /// A header key's bytes.
    HeaderKey,
    /// A header value length varint.
    HeaderValueLength,
    /// A header value's bytes.
    HeaderValue,
}

/// A record inside a batch violates the record format.
///
/// `index` is the record's position in the batch (0-based) and `position` the byte position of
/// its length varint within the batch's (decompressed) records region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record length is negative.
    #[error("record {index} at byte {position}: negative record length {length}")]
    NegativeRecordLength {
        /// Record index in the batch.
        index: u32,
        /// Byte position of the record in the records region.
        position: usize,
        /// The declared length.
        length: i32,
    },
    /// The record length exceeds the bytes left in the batch.
    #[error(
        "record {index} at byte {position}: record length {length} exceeds the {remaining} bytes left"
    )]
    RecordLengthOutOfBounds {
        /// Record index in the batch.
        index: u32,
        /// Byte position of the record in the records region.
        position: usize,
        /// The declared length.
        length: i32,
        /// Bytes left in the records region after the length varint.
        remaining: usize,
    },
    /// A varint or varlong ended before its last byte.
    #[error("record {index} at byte {position}: {field:?} varint truncated")]
    VarintTruncated {
        /// Record index in the batch.
        index: u32,
        /// Byte position of the record in the records region.
        position: usize,
        /// The field being read.
        field: RecordField,
    },
    /// A varint ran past 5 bytes, or a varlong past 10.
    #[error("record {index} at byte {position}: {field:?} varint too long")]
    VarintTooLong {
        /// Record index in the batch.
        index: u32,
        /// Byte position of the record in the records region.
        position: usize,
        /// The field being read.
        field: RecordField,
    },
    /// A key, value or header value length is below -1 (-1 means null).
    #[error("record {index} at byte {position}: invalid {field:?} {length} (below -1)")]
    InvalidLength {
        /// Record index in the batch.
        index: u32,
        /// Byte position of the record in the records region.
        position: usize,
        /// [`RecordField::KeyLength`], [`RecordField::ValueLength`] or
        /// [`RecordField::HeaderValueLength`].
        field: RecordField,
        /// The declared length.
        length: i32,
    },
    /// A field's bytes run past the end of the record.
    #[error(
        "record {index} at byte {position}: {field:?} of {length} bytes exceeds the {remaining} bytes left in the record"
    )]
    FieldOutOfBounds {
        /// Record index in the batch.
        index: u32,
        /// Byte position of the record in the records region.
        position: usize,
        /// The field whose bytes do not fit.
        field: RecordField,
        /// The field's length in bytes.
        length: usize,
        /// Bytes left in the record.
        remaining: usize,
    },
    /// The header count is negative.
    #[error("record {index} at byte {position}: negative header count {count}")]
    NegativeHeaderCount {
        /// Record index in the batch.
        index: u32,
        /// Byte position of the record in the records region.
        position: usize,
        /// The declared count.
        count: i32,
    },
    /// The header count is larger than the bytes left in the record.
    #[error(
        "record {index} at byte {position}: header count {count} exceeds the {remaining} bytes left in the record"
    )]
    HeaderCountTooLarge {
        /// Record index in the batch.
        index: u32,
        /// Byte position of the record in the records region.
        position: usize,
        /// The declared count.
        count: i32,
        /// Bytes left in the record after the count.
        remaining: usize,
    },
    /// A header key length is negative (header keys are never null).
    #[error("record {index} at byte {position}: header {header} has negative key length {length}")]
    NegativeHeaderKeyLength {
        /// Record index in the batch.
        index: u32,
        /// Byte position of the record in the records region.
        position: usize,
        /// Header index within the record.
        header: u32,
        /// The declared length.
        length: i32,
    },
    /// The record's fields did not consume exactly its declared length.
    #[error(
        "record {index} at byte {position}: invalid record size, declared {declared} bytes but fields use {consumed}"
    )]
    RecordSizeMismatch {
        /// Record index in the batch.
        index: u32,
        /// Byte position of the record in the records region.
        position: usize,
        /// The record's declared length.
        declared: usize,
        /// Bytes its fields used.
        consumed: usize,
    },
    /// Bytes remain after the declared number of records ("incorrect declared batch size").
    #[error("incorrect declared batch size: {remaining} bytes left after the {declared} declared records")]
    TrailingBytes {
        /// The declared record count.
        declared: i32,
        /// Bytes left over.
        remaining: usize,
    },
    /// The records region ended before the declared number of records.
    #[error("batch declares {declared} records but the records region ends after {found}")]
    FewerRecordsThanDeclared {
        /// The declared record count.
        declared: i32,
        /// Records that were present.
        found: u32,
    },
}

/// A record batch (or the framing of the batch sequence) is invalid.
///
/// `base_offset` is the batch's base offset as read from its header, for context.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The batch uses a legacy message-set format (magic 0 or 1), which is not supported.
    #[error("batch at offset {base_offset}: legacy message set (magic {magic}) is not supported")]
    LegacyMagic {
        /// Base offset field of the batch.
        base_offset: i64,
        /// The magic byte (0 or 1).
        magic: i8,
    },
    /// The magic byte is not 0, 1 or 2.
    #[error("batch at offset {base_offset}: unsupported magic {magic}")]
    UnsupportedMagic {
        /// Base offset field of the batch.
        base_offset: i64,
        /// The magic byte.
        magic: i8,
    },
    /// The batch length is below the v2 minimum (the 49 header bytes after the length field).
    #[error(
        "batch at offset {base_offset}: batch length {batch_length} is below the minimum {minimum}"
    )]
    BatchLengthTooSmall {
        /// Base offset field of the batch.
        base_offset: i64,
        /// The batch length field.
        batch_length: i32,
        /// The smallest valid batch length.
        minimum: i32,
    },
    /// The batch (12 + batch length bytes) is larger than [`DecodeOptions::max_batch_size`].
    ///
    /// [`DecodeOptions::max_batch_size`]: crate::record::DecodeOptions::max_batch_size
    #[error("batch at offset {base_offset}: size {size} exceeds the maximum {max}")]
    BatchTooLarge {
        /// Base offset field of the batch.
        base_offset: i64,
        /// Total batch size in bytes.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A single batch given to [`RecordBatch::parse`] is shorter than its header or length says.
    ///
    /// [`RecordBatch::parse`]: crate::record::RecordBatch::parse
    #[error("batch truncated: needs {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The stored CRC-32C does not match the batch contents.
    #[error("batch at offset {base_offset}: CRC mismatch, stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// Base offset field of the batch.
        base_offset: i64,
        /// The CRC in the header.
        stored: u32,
        /// The CRC of bytes [21, end).
        computed: u32,
    },
    /// The record count is negative.
    #[error("batch at offset {base_offset}: negative record count {count}")]
    NegativeRecordCount {
        /// Base offset field of the batch.
        base_offset: i64,
        /// The record count field.
        count: i32,
    },
    /// Attribute bits 0-2 name no known codec (5, 6 or 7).
    #[error("batch at offset {base_offset}: unknown compression codec {codec}")]
    UnknownCompression {
        /// Base offset field of the batch.
        base_offset: i64,
        /// The codec bits.
        codec: i16,
    },
    /// The decompressed records exceed [`DecodeOptions::max_decompressed_size`].
    ///
    /// [`DecodeOptions::max_decompressed_size`]: crate::record::DecodeOptions::max_decompressed_size
    #[error(
        "batch at offset {base_offset}: {codec:?} records decompress to more than {limit} bytes"
    )]
    DecompressedTooLarge {
        /// Base offset field of the batch.
        base_offset: i64,
        /// The batch's codec.
        codec: Compression,
        /// The configured limit.
        limit: usize,
    },
    /// The compressed records could not be decompressed.
    #[error("batch at offset {base_offset}: {codec:?} decompression failed")]
    Decompression {
        /// Base offset field of the batch.
        base_offset: i64,
        /// The batch's codec.
        codec: Compression,
        /// The codec's error.
        #[source]
        source: CompressionError,
    },
    /// A record inside the batch is invalid.
    #[error("batch at offset {base_offset}: {source}")]
    Record {
        /// Base offset field of the batch.
        base_offset: i64,
        /// The record error.
        #[source]
        source: RecordError,
    },
    /// The control record of a control batch is invalid.
    #[error("control batch at offset {base_offset}: {source}")]
    Control {
        /// Base offset field of the batch.
        base_offset: i64,
        /// The control record error.
        #[source]
        source: ControlError,
    },
}
