//! [`RecordBatch`]: one framed and validated v2 batch holding a `Bytes` slice of the fetch buffer,
//! and [`DecodeOptions`]. Framing checks (magic, batch length bounds, truncation) and the batch-level
//! checks (CRC, codec, record count) live here; record checks happen when records are iterated.

use bytes::Bytes;

use crate::compression::{self, Compression, CompressionError};
use crate::record::control::ControlRecord;
use crate::record::error::BatchError;
use crate::record::header::{
    BatchHeader, TimestampType, ATTRIBUTES_OFFSET, BATCH_HEADER_SIZE, BATCH_LENGTH_OFFSET,
    COMPRESSION_CODEC_MASK, HEADER_SIZE_UP_TO_MAGIC, LOG_OVERHEAD, MAGIC_OFFSET, MIN_BATCH_LENGTH,
};
use crate::record::item::RecordContext;
use crate::record::records::BatchRecords;

/// Default for [`DecodeOptions::max_batch_size`]: 64 MiB.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 64 * 1024 * 1024;

/// Options for decoding batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Check each batch's CRC-32C (the consumer's `check.crcs`). Default `true`.
    pub verify_crc: bool,
    /// Largest decompressed records region accepted, in bytes.
    /// Default [`compression::DEFAULT_MAX_DECOMPRESSED_SIZE`].
    pub max_decompressed_size: usize,
    /// Largest batch accepted, in bytes including the 12-byte offset and length prefix.
    /// Default [`DEFAULT_MAX_BATCH_SIZE`].
    pub max_batch_size: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            verify_crc: true,
            max_decompressed_size: compression::DEFAULT_MAX_DECOMPRESSED_SIZE,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
        }
    }
}

/// Reads a big-endian `i32` at `at`, if in range.
#[inline]
fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    let b = buf.get(at..at + 4)?.first_chunk::<4>()?;
    Some(i32::from_be_bytes(*b))
}

/// Reads a big-endian `i64` at `at`, if in range.
#[inline]
fn be_i64(buf: &[u8], at: usize) -> Option<i64> {
    let b = buf.get(at..at + 8)?.first_chunk::<8>()?;
    Some(i64::from_be_bytes(*b))
}

/// Examines the batch framing at the start of `buf`.
///
/// Returns `Ok(Some(size))` for a complete batch of `size` bytes, `Ok(None)` when `buf` holds
/// only part of a batch (fewer than 17 bytes, or fewer than 12 + batch length), and an error
/// for a legacy or unknown magic or a batch length out of bounds.
#[inline]
pub(crate) fn frame(buf: &[u8], options: &DecodeOptions) -> Result<Option<usize>, BatchError> {
    if buf.len() < HEADER_SIZE_UP_TO_MAGIC {
        return Ok(None);
    }
    let base_offset = be_i64(buf, 0).unwrap_or(0);
    let batch_length = be_i32(buf, BATCH_LENGTH_OFFSET).unwrap_or(0);
    let magic = buf.get(MAGIC_OFFSET).map_or(0, |&m| m as i8);
    match magic {
        2 => {}
        0 | 1 => return Err(BatchError::LegacyMagic { base_offset, magic }),
        _ => return Err(BatchError::UnsupportedMagic { base_offset, magic }),
    }
    if batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::BatchLengthTooSmall {
            base_offset,
            batch_length,
            minimum: MIN_BATCH_LENGTH,
        });
    }
    // Non-negative after the check above.
    let size = LOG_OVERHEAD + batch_length as usize;
    if size > options.max_batch_size {
        return Err(BatchError::BatchTooLarge {
            base_offset,
            size,
            max: options.max_batch_size,
        });
    }
    if buf.len() < size {
        return Ok(None);
    }
    Ok(Some(size))
}

/// One record batch (magic 2), validated down to its header and CRC.
///
/// Holds a `Bytes` slice of the buffer it was decoded from; nothing is copied. Records are
/// validated as they are iterated through [`RecordBatch::records`].
#[derive(Debug, Clone)]
pub struct RecordBatch {
    header: BatchHeader,
    compression: Compression,
    bytes: Bytes,
    max_decompressed_size: usize,
}

impl RecordBatch {
    /// Parses the batch at the start of `bytes` (bytes after it are ignored).
    ///
    /// Unlike [`RecordBatches`](crate::record::RecordBatches), which ends silently at a partial
    /// trailing batch, this reports a short buffer as [`BatchError::Truncated`].
    pub fn parse(bytes: Bytes, options: &DecodeOptions) -> Result<Self, BatchError> {
        match frame(&bytes, options)? {
            Some(size) => {
                let batch = bytes.slice(..size);
                Self::from_framed(batch, options)
            }
            None => {
                let needed = be_i32(&bytes, BATCH_LENGTH_OFFSET)
                    .and_then(|len| usize::try_from(len).ok())
                    .map_or(HEADER_SIZE_UP_TO_MAGIC, |len| LOG_OVERHEAD + len);
                Err(BatchError::Truncated {
                    needed,
                    available: bytes.len(),
                })
            }
        }
    }

    /// Validates a batch whose framing [`frame`] accepted; `bytes` is exactly the batch.
    #[inline]
    pub(crate) fn from_framed(bytes: Bytes, options: &DecodeOptions) -> Result<Self, BatchError> {
        let Some(h) = bytes.first_chunk::<BATCH_HEADER_SIZE>() else {
            // `frame` guarantees at least 61 bytes; report rather than panic regardless.
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_SIZE,
                available: bytes.len(),
            });
        };
        let header = BatchHeader::decode(h);
        if options.verify_crc {
            let computed = crc32c::crc32c(bytes.get(ATTRIBUTES_OFFSET..).unwrap_or_default());
            if computed != header.crc {
                return Err(BatchError::CrcMismatch {
                    base_offset: header.base_offset,
                    stored: header.crc,
                    computed,
                });
            }
        }
        let compression = Compression::from_attributes(header.attributes).map_err(|_| {
            BatchError::UnknownCompression {
                base_offset: header.base_offset,
                codec: header.attributes & COMPRESSION_CODEC_MASK,
            }
        })?;
        if header.record_count < 0 {
            return Err(BatchError::NegativeRecordCount {
                base_offset: header.base_offset,
                count: header.record_count,
            });
        }
        Ok(RecordBatch {
            header,
            compression,
            bytes,
            max_decompressed_size: options.max_decompressed_size,
        })
    }

    /// All header fields.
    #[inline]
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Offset of the first record (offset delta 0).
    #[inline]
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset
    }

    /// The batch length field (total size = 12 + this).
    #[inline]
    pub fn batch_length(&self) -> i32 {
        self.header.batch_length
    }

    /// Total size of the batch in bytes.
    #[inline]
    pub fn size_in_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Epoch of the leader that wrote the batch.
    #[inline]
    pub fn partition_leader_epoch(&self) -> i32 {
        self.header.partition_leader_epoch
    }

    /// Format version (always 2 here).
    #[inline]
    pub fn magic(&self) -> i8 {
        self.header.magic
    }

    /// Stored CRC-32C.
    #[inline]
    pub fn crc(&self) -> u32 {
        self.header.crc
    }

    /// CRC-32C of bytes [21, end), what [`RecordBatch::crc`] should equal.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(self.bytes.get(ATTRIBUTES_OFFSET..).unwrap_or_default())
    }

    /// Raw attributes.
    #[inline]
    pub fn attributes(&self) -> i16 {
        self.header.attributes
    }

    /// Compression codec of the records region.
    #[inline]
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Create time or log-append time.
    #[inline]
    pub fn timestamp_type(&self) -> TimestampType {
        self.header.timestamp_type()
    }

    /// Part of a transaction.
    #[inline]
    pub fn is_transactional(&self) -> bool {
        self.header.is_transactional()
    }

    /// Holds a control record (transaction marker) rather than data.
    #[inline]
    pub fn is_control(&self) -> bool {
        self.header.is_control()
    }

    /// Attribute bit 6: the base timestamp field holds the delete horizon.
    #[inline]
    pub fn has_delete_horizon(&self) -> bool {
        self.header.has_delete_horizon()
    }

    /// The delete horizon set by compaction, if any.
    #[inline]
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        self.header.delete_horizon_ms()
    }

    /// Offset delta of the last record the batch was written with.
    #[inline]
    pub fn last_offset_delta(&self) -> i32 {
        self.header.last_offset_delta
    }

    /// Base offset + last offset delta.
    #[inline]
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }

    /// Offset to fetch after this batch: base offset + last offset delta + 1 (not derived from
    /// the record count, which compaction may reduce, even to 0).
    #[inline]
    pub fn next_offset(&self) -> i64 {
        self.header.next_offset()
    }

    /// Base timestamp field.
    #[inline]
    pub fn base_timestamp(&self) -> i64 {
        self.header.base_timestamp
    }

    /// Max timestamp field.
    #[inline]
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp
    }

    /// Producer id, or -1.
    #[inline]
    pub fn producer_id(&self) -> i64 {
        self.header.producer_id
    }

    /// Whether the producer id is set (not -1).
    #[inline]
    pub fn has_producer_id(&self) -> bool {
        self.header.has_producer_id()
    }

    /// Producer epoch, or -1.
    #[inline]
    pub fn producer_epoch(&self) -> i16 {
        self.header.producer_epoch
    }

    /// Base sequence, or -1.
    #[inline]
    pub fn base_sequence(&self) -> i32 {
        self.header.base_sequence
    }

    /// Declared number of records (validated non-negative).
    #[inline]
    pub fn record_count(&self) -> i32 {
        self.header.record_count
    }

    /// The whole batch's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The records region as stored (compressed if the batch is compressed).
    #[inline]
    pub fn raw_records(&self) -> Bytes {
        let start = BATCH_HEADER_SIZE.min(self.bytes.len());
        self.bytes.slice(start..)
    }

    /// The batch's records, ready to iterate.
    ///
    /// Uncompressed batches share the batch buffer. Compressed batches are decompressed once,
    /// into one buffer capped at [`DecodeOptions::max_decompressed_size`]. A batch declaring zero
    /// records yields none without looking at its records region (as Kafka does).
    pub fn records(&self) -> Result<BatchRecords, BatchError> {
        let ctx = RecordContext {
            base_offset: self.header.base_offset,
            base_timestamp: self.header.base_timestamp,
            log_append_time: match self.header.timestamp_type() {
                TimestampType::LogAppendTime => Some(self.header.max_timestamp),
                TimestampType::CreateTime => None,
            },
            base_sequence: self.header.base_sequence,
        };
        let count = self.header.record_count;
        if count == 0 {
            return Ok(BatchRecords::new(Bytes::new(), ctx, 0));
        }
        let raw = self.raw_records();
        let body = match self.compression {
            Compression::None => raw,
            codec => {
                let out = compression::decompress(codec, &raw, self.max_decompressed_size)
                    .map_err(|e| self.decompression_error(codec, e))?;
                Bytes::from(out)
            }
        };
        Ok(BatchRecords::new(body, ctx, count))
    }

    #[cold]
    fn decompression_error(&self, codec: Compression, e: CompressionError) -> BatchError {
        match e {
            CompressionError::TooLarge { limit } => BatchError::DecompressedTooLarge {
                base_offset: self.header.base_offset,
                codec,
                limit,
            },
            source => BatchError::Decompression {
                base_offset: self.header.base_offset,
                codec,
                source,
            },
        }
    }

    /// For a control batch, its control record's key (type and version); `None` for data
    /// batches and for control batches left without records.
    pub fn control_record(&self) -> Result<Option<ControlRecord>, BatchError> {
        if !self.is_control() {
            return Ok(None);
        }
        let records = self.records()?;
        let first = match records.iter().next() {
            None => return Ok(None),
            Some(Err(source)) => {
                return Err(BatchError::Record {
                    base_offset: self.header.base_offset,
                    source,
                })
            }
            Some(Ok(r)) => r,
        };
        ControlRecord::parse(first.key())
            .map(Some)
            .map_err(|source| BatchError::Control {
                base_offset: self.header.base_offset,
                source,
            })
    }
}
