//! The record batch v2 encoder: [`BatchEncoder`] (reusable compression scratch) and
//! [`BatchWriter`], which appends one batch to a caller's `Vec<u8>`, computing offset deltas,
//! base and max timestamps, the last offset delta, attributes, the batch length and the CRC.
//!
//! Uncompressed records are written straight into the output buffer; compressed ones go into
//! the encoder's scratch buffer and are compressed into the output by
//! [`compression::compress`] when the batch is finished.

use std::ops::Range;

use crate::compression::{self, Compression, CompressionError};
use crate::record::control::{
    ControlRecord, ControlRecordType, EndTxnMarker, CONTROL_RECORD_KEY_VERSION,
    END_TXN_MARKER_VERSION,
};
use crate::record::header::{
    BatchHeader, TimestampType, ATTRIBUTES_OFFSET, BATCH_HEADER_SIZE, CONTROL_FLAG_MASK,
    CRC_OFFSET, LOG_OVERHEAD, TIMESTAMP_TYPE_MASK, TRANSACTIONAL_FLAG_MASK,
};
use crate::record::{
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP,
};
use crate::varint::{put_varint, put_varlong, varint_len, varlong_len};

/// The batch-level fields chosen by the writer of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpec {
    /// Offset of the first record (0 for producers; the broker assigns offsets).
    pub base_offset: i64,
    /// Partition leader epoch (-1 for producers).
    pub partition_leader_epoch: i32,
    /// Codec for the records region.
    pub compression: Compression,
    /// Timestamp type (producers write create time).
    pub timestamp_type: TimestampType,
    /// Set the transactional attribute.
    pub transactional: bool,
    /// Producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
}

impl Default for BatchSpec {
    /// Uncompressed, create time, no producer, offset 0.
    fn default() -> Self {
        BatchSpec {
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
        }
    }
}

/// A header of a record to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewHeader<'a> {
    /// Header key.
    pub key: &'a str,
    /// Header value, or `None` for null.
    pub value: Option<&'a [u8]>,
}

/// A record to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRecord<'a> {
    /// Key, or `None` for null.
    pub key: Option<&'a [u8]>,
    /// Value, or `None` for null (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers, in order.
    pub headers: &'a [NewHeader<'a>],
    /// Timestamp in milliseconds.
    pub timestamp: i64,
}

impl<'a> NewRecord<'a> {
    /// A record without headers.
    pub fn new(key: Option<&'a [u8]>, value: Option<&'a [u8]>, timestamp: i64) -> Self {
        NewRecord {
            key,
            value,
            headers: &[],
            timestamp,
        }
    }

    /// The same record with `headers`.
    pub fn with_headers(self, headers: &'a [NewHeader<'a>]) -> Self {
        NewRecord { headers, ..self }
    }
}

/// Why a batch could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A key, value or header is longer than `i32::MAX` bytes.
    #[error("{field} of {len} bytes is too large for a record")]
    FieldTooLarge {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A record's encoded size exceeds `i32::MAX`.
    #[error("record of {size} bytes is too large")]
    RecordTooLarge {
        /// Encoded size.
        size: usize,
    },
    /// The batch's length exceeds `i32::MAX`.
    #[error("batch of {size} bytes is too large")]
    BatchTooLarge {
        /// Total batch size.
        size: usize,
    },
    /// More than `i32::MAX` records.
    #[error("too many records for one batch")]
    TooManyRecords,
    /// An explicit offset delta not above the previous record's (or negative).
    #[error("offset delta {given} must be non-negative and above the previous {previous:?}")]
    OffsetDeltaNotIncreasing {
        /// The previous record's delta.
        previous: Option<i32>,
        /// The delta given.
        given: i32,
    },
    /// A last offset delta below the last record's offset delta.
    #[error("last offset delta {given} is below the last record's offset delta {last}")]
    LastOffsetDeltaTooSmall {
        /// The last record's delta.
        last: i32,
        /// The value given.
        given: i32,
    },
    /// The codec failed.
    #[error("compression failed")]
    Compression(#[from] CompressionError),
}

/// What [`BatchWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// Where the batch is in the output buffer.
    pub range: Range<usize>,
    /// Number of records.
    pub record_count: i32,
    /// Last offset delta written in the header.
    pub last_offset_delta: i32,
    /// Base timestamp written (the first record's, or -1 without records).
    pub base_timestamp: i64,
    /// Max timestamp written (-1 without records).
    pub max_timestamp: i64,
    /// The CRC written.
    pub crc: u32,
}

/// Builds record batches; keeps a scratch buffer for compression across batches.
#[derive(Debug, Default)]
pub struct BatchEncoder {
    scratch: Vec<u8>,
}

impl BatchEncoder {
    /// An encoder with an empty scratch buffer.
    pub fn new() -> Self {
        BatchEncoder::default()
    }

    /// Starts a batch appended to `out`. Records are added with [`BatchWriter::append`]; the
    /// batch is complete after [`BatchWriter::finish`]. Dropping the writer unfinished removes
    /// the partial batch from `out`.
    pub fn writer<'a>(&'a mut self, spec: &BatchSpec, out: &'a mut Vec<u8>) -> BatchWriter<'a> {
        BatchWriter::new(spec, false, out, &mut self.scratch)
    }

    /// Appends one batch holding `records` (offset deltas 0, 1, ...) to `out`.
    pub fn encode(
        &mut self,
        spec: &BatchSpec,
        records: &[NewRecord<'_>],
        out: &mut Vec<u8>,
    ) -> Result<EncodedBatch, EncodeError> {
        let mut writer = self.writer(spec, out);
        for record in records {
            writer.append(record)?;
        }
        writer.finish()
    }

    /// Appends a control batch holding one transaction marker (ABORT or COMMIT, or another
    /// control type) to `out`, as a transaction coordinator writes it: the control and
    /// transactional attributes set, key `(0, kind)`, value `(0, coordinator_epoch)`.
    pub fn encode_control(
        &mut self,
        spec: &BatchSpec,
        kind: ControlRecordType,
        coordinator_epoch: i32,
        timestamp: i64,
        out: &mut Vec<u8>,
    ) -> Result<EncodedBatch, EncodeError> {
        let key = ControlRecord {
            version: CONTROL_RECORD_KEY_VERSION,
            kind,
        }
        .encode();
        let value = EndTxnMarker {
            version: END_TXN_MARKER_VERSION,
            coordinator_epoch,
        }
        .encode();
        let spec = BatchSpec {
            transactional: true,
            ..*spec
        };
        let mut writer = BatchWriter::new(&spec, true, out, &mut self.scratch);
        writer.append(&NewRecord::new(Some(&key[..]), Some(&value[..]), timestamp))?;
        writer.finish()
    }
}

/// One batch being written; see [`BatchEncoder::writer`].
#[derive(Debug)]
pub struct BatchWriter<'a> {
    out: &'a mut Vec<u8>,
    scratch: &'a mut Vec<u8>,
    spec: BatchSpec,
    control: bool,
    start: usize,
    count: i32,
    last_delta: Option<i32>,
    last_offset_delta: Option<i32>,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    finished: bool,
}

/// Encoded length of a nullable byte field (length varint + bytes).
#[inline]
fn nullable_len(field: &'static str, bytes: Option<&[u8]>) -> Result<usize, EncodeError> {
    match bytes {
        None => Ok(1),
        Some(b) => {
            let len = i32::try_from(b.len()).map_err(|_| EncodeError::FieldTooLarge {
                field,
                len: b.len(),
            })?;
            Ok(varint_len(len) + b.len())
        }
    }
}

/// Writes a nullable byte field whose length was checked by [`nullable_len`].
#[inline]
fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

impl<'a> BatchWriter<'a> {
    fn new(
        spec: &BatchSpec,
        control: bool,
        out: &'a mut Vec<u8>,
        scratch: &'a mut Vec<u8>,
    ) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0u8; BATCH_HEADER_SIZE]);
        scratch.clear();
        BatchWriter {
            out,
            scratch,
            spec: *spec,
            control,
            start,
            count: 0,
            last_delta: None,
            last_offset_delta: None,
            base_timestamp: None,
            max_timestamp: NO_TIMESTAMP,
            finished: false,
        }
    }

    /// Records appended so far.
    pub fn record_count(&self) -> i32 {
        self.count
    }

    /// Uncompressed bytes so far (header + records), an upper bound on the batch size for
    /// uncompressed batches and the usual estimate for compressed ones.
    pub fn uncompressed_size(&self) -> usize {
        BATCH_HEADER_SIZE
            + match self.spec.compression {
                Compression::None => self.out.len() - self.start - BATCH_HEADER_SIZE,
                _ => self.scratch.len(),
            }
    }

    /// Appends a record at the next offset delta (0 for the first); returns the delta used.
    pub fn append(&mut self, record: &NewRecord<'_>) -> Result<i32, EncodeError> {
        let delta = match self.last_delta {
            None => 0,
            Some(d) => d.checked_add(1).ok_or(EncodeError::TooManyRecords)?,
        };
        self.append_at(delta, record)?;
        Ok(delta)
    }

    /// Appends a record at an explicit offset delta, above the previous one; gaps are allowed
    /// (as compaction leaves them).
    pub fn append_at(
        &mut self,
        offset_delta: i32,
        record: &NewRecord<'_>,
    ) -> Result<(), EncodeError> {
        if offset_delta < 0 || self.last_delta.is_some_and(|d| offset_delta <= d) {
            return Err(EncodeError::OffsetDeltaNotIncreasing {
                previous: self.last_delta,
                given: offset_delta,
            });
        }
        let count = self
            .count
            .checked_add(1)
            .ok_or(EncodeError::TooManyRecords)?;
        let base_timestamp = *self.base_timestamp.get_or_insert(record.timestamp);
        let timestamp_delta = record.timestamp.wrapping_sub(base_timestamp);

        let mut size = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta);
        size += nullable_len("key", record.key)?;
        size += nullable_len("value", record.value)?;
        let header_count =
            i32::try_from(record.headers.len()).map_err(|_| EncodeError::FieldTooLarge {
                field: "headers",
                len: record.headers.len(),
            })?;
        size += varint_len(header_count);
        for header in record.headers {
            size += nullable_len("header key", Some(header.key.as_bytes()))?;
            size += nullable_len("header value", header.value)?;
        }
        let size_i32 = i32::try_from(size).map_err(|_| EncodeError::RecordTooLarge { size })?;

        let sink: &mut Vec<u8> = match self.spec.compression {
            Compression::None => &mut *self.out,
            _ => &mut *self.scratch,
        };
        sink.reserve(size + 5);
        put_varint(sink, size_i32);
        sink.push(0);
        put_varlong(sink, timestamp_delta);
        put_varint(sink, offset_delta);
        put_nullable(sink, record.key);
        put_nullable(sink, record.value);
        put_varint(sink, header_count);
        for header in record.headers {
            put_nullable(sink, Some(header.key.as_bytes()));
            put_nullable(sink, header.value);
        }

        self.count = count;
        self.last_delta = Some(offset_delta);
        self.max_timestamp = if count == 1 {
            record.timestamp
        } else {
            self.max_timestamp.max(record.timestamp)
        };
        Ok(())
    }

    /// Sets the header's last offset delta above the last record's, as compaction leaves it
    /// when it removes the last records (or all of them: an empty batch).
    pub fn set_last_offset_delta(&mut self, last_offset_delta: i32) -> Result<(), EncodeError> {
        if let Some(last) = self.last_delta {
            if last_offset_delta < last {
                return Err(EncodeError::LastOffsetDeltaTooSmall {
                    last,
                    given: last_offset_delta,
                });
            }
        }
        self.last_offset_delta = Some(last_offset_delta);
        Ok(())
    }

    /// Completes the batch: compresses the records if needed, writes the header and the CRC.
    pub fn finish(mut self) -> Result<EncodedBatch, EncodeError> {
        // On error `self` drops unfinished and truncates the partial batch.
        if self.spec.compression != Compression::None {
            compression::compress(
                self.spec.compression,
                self.scratch.as_slice(),
                &mut *self.out,
            )?;
        }
        let size = self.out.len() - self.start;
        let batch_length =
            i32::try_from(size - LOG_OVERHEAD).map_err(|_| EncodeError::BatchTooLarge { size })?;

        let mut attributes = self.spec.compression.attribute_bits();
        if self.spec.timestamp_type == TimestampType::LogAppendTime {
            attributes |= TIMESTAMP_TYPE_MASK;
        }
        if self.spec.transactional {
            attributes |= TRANSACTIONAL_FLAG_MASK;
        }
        if self.control {
            attributes |= CONTROL_FLAG_MASK;
        }
        let last_offset_delta = self.last_offset_delta.or(self.last_delta).unwrap_or(0);
        let base_timestamp = self.base_timestamp.unwrap_or(NO_TIMESTAMP);
        let header = BatchHeader {
            base_offset: self.spec.base_offset,
            batch_length,
            partition_leader_epoch: self.spec.partition_leader_epoch,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta,
            base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.spec.producer_id,
            producer_epoch: self.spec.producer_epoch,
            base_sequence: self.spec.base_sequence,
            record_count: self.count,
        };
        let batch = self.out.get_mut(self.start..).unwrap_or_default();
        if let Some(h) = batch.first_chunk_mut::<BATCH_HEADER_SIZE>() {
            header.encode(h);
        }
        let crc = crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or_default());
        if let Some(dst) = batch.get_mut(CRC_OFFSET..CRC_OFFSET + 4) {
            dst.copy_from_slice(&crc.to_be_bytes());
        }
        self.finished = true;
        Ok(EncodedBatch {
            range: self.start..self.out.len(),
            record_count: self.count,
            last_offset_delta,
            base_timestamp,
            max_timestamp: self.max_timestamp,
            crc,
        })
    }
}

impl Drop for BatchWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}
