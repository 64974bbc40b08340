//! The record batch v2 encoder.
//!
//! [`BatchState`] is the encoder: the running state of one batch (record count, offset deltas,
//! base and max timestamps). It appends each record to a buffer the caller keeps and, when the
//! batch is complete, seals it: writes the header (offsets, timestamps, attributes, producer
//! id, epoch and base sequence, batch length) and the CRC in place, or compresses the records
//! into a second buffer behind the header. It owns no buffer, so a batch can stay open between
//! appends in memory the caller manages (the producer encodes each record into its partition's
//! open batch when it is queued, and seals the batch when it is sent).
//!
//! [`BatchEncoder`] and [`BatchWriter`] build a whole batch at once into a `Vec<u8>` over a
//! [`BatchState`]: uncompressed records are written straight into the output buffer, compressed
//! ones into the encoder's scratch buffer and compressed into the output by
//! [`compression::compress`] when the batch is finished.
//!
//! Records are [`NewRecord`]s or any type implementing [`RecordFields`];
//! [`record_size_bound`] and [`BatchState::record_size`] give their encoded sizes before they
//! are written. [`restamp_producer`] rewrites the producer fields of an encoded batch.

use std::ops::Range;

use crate::compression::{self, Compression, CompressionError};
use crate::record::control::{
    ControlRecord, ControlRecordType, EndTxnMarker, CONTROL_RECORD_KEY_VERSION,
    END_TXN_MARKER_VERSION,
};
use crate::record::header::{
    BatchHeader, TimestampType, ATTRIBUTES_OFFSET, BASE_SEQUENCE_OFFSET, BATCH_HEADER_SIZE,
    CONTROL_FLAG_MASK, CRC_OFFSET, LOG_OVERHEAD, PRODUCER_EPOCH_OFFSET, PRODUCER_ID_OFFSET,
    TIMESTAMP_TYPE_MASK, TRANSACTIONAL_FLAG_MASK,
};
use crate::record::{
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP,
};
use crate::varint::{
    put_varint, put_varlong, varint_len, varlong_len, MAX_VARINT_LEN, MAX_VARLONG_LEN,
};

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

/// The fields of a record to encode: [`NewRecord`], or a caller's own record type, read in
/// place (no [`NewRecord`] and header slice to build per record).
pub trait RecordFields {
    /// Key, or `None` for null.
    fn key(&self) -> Option<&[u8]>;
    /// Value, or `None` for null (a tombstone).
    fn value(&self) -> Option<&[u8]>;
    /// Timestamp in milliseconds.
    fn timestamp(&self) -> i64;
    /// The headers, in order. The encoder iterates them twice per record (sizes, then bytes);
    /// both iterations must yield the same headers.
    fn headers(&self) -> impl Iterator<Item = NewHeader<'_>>;
}

impl RecordFields for NewRecord<'_> {
    #[inline]
    fn key(&self) -> Option<&[u8]> {
        self.key
    }

    #[inline]
    fn value(&self) -> Option<&[u8]> {
        self.value
    }

    #[inline]
    fn timestamp(&self) -> i64 {
        self.timestamp
    }

    #[inline]
    fn headers(&self) -> impl Iterator<Item = NewHeader<'_>> {
        self.headers.iter().map(|h| NewHeader {
            key: h.key,
            value: h.value,
        })
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
    /// The buffer given to [`BatchState::seal`] is shorter than a batch header.
    #[error("a batch of {len} bytes has no room for the {BATCH_HEADER_SIZE}-byte header")]
    NoHeader {
        /// Length of the buffer.
        len: usize,
    },
    /// The codec failed.
    #[error("compression failed")]
    Compression(#[from] CompressionError),
}

/// What sealing a batch wrote ([`BatchWriter::finish`], [`BatchState::seal`],
/// [`BatchState::seal_compressed`]).
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

/// Encoded length of a nullable byte field (length varint + bytes). A field longer than
/// `i32::MAX` gets a wrong varint length, but makes the record too large anyway (see
/// [`BatchState::measure`]).
#[inline(always)]
fn nullable_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => 1,
        Some(b) => varint_len(b.len() as i32).saturating_add(b.len()),
    }
}

/// Writes a nullable byte field of a record whose size was checked by [`BatchState::measure`].
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

/// The size of a record's fields that do not depend on its place in the batch (attributes,
/// key, value, header count and headers), and its header count. Exact when it is at most
/// `i32::MAX` (every field and the header count then fit an `i32`).
#[inline(always)]
fn body_size<R: RecordFields + ?Sized>(record: &R) -> (usize, usize) {
    let mut size = 1 + nullable_len(record.key()); // attributes, key
    size = size.saturating_add(nullable_len(record.value()));
    let mut headers = 0usize;
    for header in record.headers() {
        size = size
            .saturating_add(nullable_len(Some(header.key.as_bytes())))
            .saturating_add(nullable_len(header.value));
        headers += 1;
    }
    let count_len = varint_len(i32::try_from(headers).unwrap_or(i32::MAX));
    (size.saturating_add(count_len), headers)
}

/// Why a record measured at `size` bytes (more than `i32::MAX`) cannot be encoded: the first
/// field too large for its `i32` length, or the record as a whole.
#[cold]
fn too_large<R: RecordFields + ?Sized>(record: &R, size: usize) -> EncodeError {
    let field_too_large = |field: &'static str, bytes: Option<&[u8]>| {
        let len = bytes.map_or(0, <[u8]>::len);
        (i32::try_from(len).is_err()).then_some(EncodeError::FieldTooLarge { field, len })
    };
    let mut headers = 0usize;
    let mut found =
        field_too_large("key", record.key()).or_else(|| field_too_large("value", record.value()));
    for header in record.headers() {
        headers += 1;
        found = found
            .or_else(|| field_too_large("header key", Some(header.key.as_bytes())))
            .or_else(|| field_too_large("header value", header.value));
    }
    if i32::try_from(headers).is_err() {
        found = found.or(Some(EncodeError::FieldTooLarge {
            field: "headers",
            len: headers,
        }));
    }
    found.unwrap_or(EncodeError::RecordTooLarge { size })
}

/// An upper bound of `record`'s encoded size wherever it lands in a batch: its length prefix,
/// timestamp delta and offset delta counted at their largest. [`BatchState::record_size`] is
/// the exact size at the next offset delta of a given batch.
pub fn record_size_bound<R: RecordFields + ?Sized>(record: &R) -> Result<usize, EncodeError> {
    let (body, _) = body_size(record);
    let size = body.saturating_add(MAX_VARLONG_LEN + MAX_VARINT_LEN);
    if i32::try_from(size).is_err() {
        return Err(too_large(record, size));
    }
    Ok(size + MAX_VARINT_LEN)
}

/// A record measured for its place in a batch.
struct Measured {
    /// Size after the length prefix.
    inner: i32,
    timestamp_delta: i64,
    header_count: i32,
}

impl Measured {
    /// The whole encoded size, length prefix included.
    #[inline(always)]
    fn total(&self) -> usize {
        let inner = usize::try_from(self.inner).unwrap_or(0);
        inner + varint_len(self.inner)
    }
}

/// One batch being encoded into a buffer the caller keeps: the record count, offset deltas and
/// timestamps so far; see the module docs.
///
/// A batch's bytes are the [`BATCH_HEADER_SIZE`] bytes [`write_header_space`](Self::write_header_space)
/// reserves, then the records [`append`](Self::append) writes, in order, into the same buffer;
/// [`seal`](Self::seal) writes the header and CRC over them. Records can also go to a buffer of
/// their own and be sealed compressed with [`seal_compressed`](Self::seal_compressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchState {
    control: bool,
    count: i32,
    last_delta: Option<i32>,
    last_offset_delta: Option<i32>,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
}

impl Default for BatchState {
    fn default() -> Self {
        BatchState::new()
    }
}

impl BatchState {
    /// A batch without records.
    pub fn new() -> Self {
        BatchState {
            control: false,
            count: 0,
            last_delta: None,
            last_offset_delta: None,
            base_timestamp: None,
            max_timestamp: NO_TIMESTAMP,
        }
    }

    /// A control batch (the control attribute set when sealed).
    fn new_control() -> Self {
        BatchState {
            control: true,
            ..BatchState::new()
        }
    }

    /// Appends the zeroed [`BATCH_HEADER_SIZE`] bytes the header is written over when the batch
    /// is sealed in place.
    pub fn write_header_space(out: &mut Vec<u8>) {
        out.extend_from_slice(&[0u8; BATCH_HEADER_SIZE]);
    }

    /// Records appended so far.
    #[inline]
    pub fn record_count(&self) -> i32 {
        self.count
    }

    /// The first record's timestamp (the batch's base timestamp), if there is a record.
    pub fn base_timestamp(&self) -> Option<i64> {
        self.base_timestamp
    }

    /// The largest record timestamp, or -1 without records.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// The offset delta [`append`](Self::append) gives the next record.
    #[inline(always)]
    fn next_delta(&self) -> Result<i32, EncodeError> {
        match self.last_delta {
            None => Ok(0),
            Some(d) => d.checked_add(1).ok_or(EncodeError::TooManyRecords),
        }
    }

    /// Sizes `record` at `offset_delta` in this batch; fails if it is larger than `i32::MAX`
    /// (which any field or header count too large for an `i32` makes it).
    #[inline(always)]
    fn measure<R: RecordFields + ?Sized>(
        &self,
        offset_delta: i32,
        record: &R,
    ) -> Result<Measured, EncodeError> {
        let timestamp = record.timestamp();
        let base_timestamp = self.base_timestamp.unwrap_or(timestamp);
        let timestamp_delta = timestamp.wrapping_sub(base_timestamp);
        let (body, header_count) = body_size(record);
        let size = body.saturating_add(varlong_len(timestamp_delta) + varint_len(offset_delta));
        let Ok(inner) = i32::try_from(size) else {
            return Err(too_large(record, size));
        };
        Ok(Measured {
            inner,
            timestamp_delta,
            // At most `size`: each header takes at least two bytes.
            header_count: header_count as i32,
        })
    }

    /// The exact number of bytes [`append`](Self::append) would write for `record` now (length
    /// prefix included).
    #[inline]
    pub fn record_size<R: RecordFields + ?Sized>(&self, record: &R) -> Result<usize, EncodeError> {
        Ok(self.measure(self.next_delta()?, record)?.total())
    }

    /// Appends `record` to `out` at the next offset delta (0 for the first); returns the delta
    /// used. Writes exactly [`record_size`](Self::record_size) bytes, and reserves no more
    /// than that: a buffer with the room already reserved is not reallocated.
    #[inline]
    pub fn append<R: RecordFields + ?Sized>(
        &mut self,
        out: &mut Vec<u8>,
        record: &R,
    ) -> Result<i32, EncodeError> {
        self.append_with(out, record, |_, _| {})
    }

    /// [`append`](Self::append), measuring the record once: once the record is known to fit
    /// a batch, `prepare` gets `out` and the number of bytes about to be written, to make room
    /// as the caller accounts for its memory (even replace an empty `out` by a buffer of its
    /// choice, header space included), before anything is written. Nothing fails after
    /// `prepare` is called; on error it is not called and nothing is written.
    #[inline]
    pub fn append_with<R, F>(
        &mut self,
        out: &mut Vec<u8>,
        record: &R,
        prepare: F,
    ) -> Result<i32, EncodeError>
    where
        R: RecordFields + ?Sized,
        F: FnOnce(&mut Vec<u8>, usize),
    {
        let delta = self.next_delta()?;
        self.write_at(out, delta, record, prepare)?;
        Ok(delta)
    }

    /// Appends `record` to `out` at an explicit offset delta, above the previous one; gaps are
    /// allowed (as compaction leaves them). Nothing is written on error.
    pub fn append_at<R: RecordFields + ?Sized>(
        &mut self,
        out: &mut Vec<u8>,
        offset_delta: i32,
        record: &R,
    ) -> Result<(), EncodeError> {
        self.write_at(out, offset_delta, record, |_, _| {})
    }

    /// Checks and measures `record` at `offset_delta`, calls `prepare`, writes it.
    #[inline(always)]
    fn write_at<R, F>(
        &mut self,
        out: &mut Vec<u8>,
        offset_delta: i32,
        record: &R,
        prepare: F,
    ) -> Result<(), EncodeError>
    where
        R: RecordFields + ?Sized,
        F: FnOnce(&mut Vec<u8>, usize),
    {
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
        let m = self.measure(offset_delta, record)?;
        prepare(out, m.total());
        out.reserve(m.total());
        put_varint(out, m.inner);
        out.push(0); // attributes
        put_varlong(out, m.timestamp_delta);
        put_varint(out, offset_delta);
        put_nullable(out, record.key());
        put_nullable(out, record.value());
        put_varint(out, m.header_count);
        for header in record.headers() {
            put_nullable(out, Some(header.key.as_bytes()));
            put_nullable(out, header.value);
        }

        let timestamp = record.timestamp();
        self.base_timestamp.get_or_insert(timestamp);
        self.max_timestamp = if count == 1 {
            timestamp
        } else {
            self.max_timestamp.max(timestamp)
        };
        self.count = count;
        self.last_delta = Some(offset_delta);
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

    /// Seals the batch in `batch`: its first [`BATCH_HEADER_SIZE`] bytes are the header space,
    /// the rest the records region in the form `spec.compression` names (the records as
    /// appended for [`Compression::None`]). Writes the header from `spec` and the batch's
    /// state, then the CRC; the range returned is `0..batch.len()`.
    pub fn seal(&self, spec: &BatchSpec, batch: &mut [u8]) -> Result<EncodedBatch, EncodeError> {
        let size = batch.len();
        if size < BATCH_HEADER_SIZE {
            return Err(EncodeError::NoHeader { len: size });
        }
        let batch_length =
            i32::try_from(size - LOG_OVERHEAD).map_err(|_| EncodeError::BatchTooLarge { size })?;
        let mut attributes = spec.compression.attribute_bits();
        if spec.timestamp_type == TimestampType::LogAppendTime {
            attributes |= TIMESTAMP_TYPE_MASK;
        }
        if spec.transactional {
            attributes |= TRANSACTIONAL_FLAG_MASK;
        }
        if self.control {
            attributes |= CONTROL_FLAG_MASK;
        }
        let last_offset_delta = self.last_offset_delta.or(self.last_delta).unwrap_or(0);
        let base_timestamp = self.base_timestamp.unwrap_or(NO_TIMESTAMP);
        let header = BatchHeader {
            base_offset: spec.base_offset,
            batch_length,
            partition_leader_epoch: spec.partition_leader_epoch,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta,
            base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: spec.producer_id,
            producer_epoch: spec.producer_epoch,
            base_sequence: spec.base_sequence,
            record_count: self.count,
        };
        if let Some(h) = batch.first_chunk_mut::<BATCH_HEADER_SIZE>() {
            header.encode(h);
        }
        let crc = write_crc(batch);
        Ok(EncodedBatch {
            range: 0..size,
            record_count: self.count,
            last_offset_delta,
            base_timestamp,
            max_timestamp: self.max_timestamp,
            crc,
        })
    }

    /// Appends the sealed batch to `out`: the header, then `records` (the records appended
    /// with this state, without header space) compressed with `spec.compression` (copied for
    /// [`Compression::None`]). On error `out` is left as it was.
    pub fn seal_compressed(
        &self,
        spec: &BatchSpec,
        records: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<EncodedBatch, EncodeError> {
        let start = out.len();
        BatchState::write_header_space(out);
        let sealed = compression::compress(spec.compression, records, out)
            .map_err(EncodeError::from)
            .and_then(|()| self.seal(spec, out.get_mut(start..).unwrap_or_default()));
        match sealed {
            Ok(encoded) => Ok(encoded.shifted(start)),
            Err(error) => {
                out.truncate(start);
                Err(error)
            }
        }
    }
}

impl EncodedBatch {
    /// The same batch `by` bytes further into the buffer.
    fn shifted(self, by: usize) -> Self {
        EncodedBatch {
            range: self.range.start + by..self.range.end + by,
            ..self
        }
    }
}

/// Writes the CRC of the batch in `batch` (from the attributes to the end); returns it.
fn write_crc(batch: &mut [u8]) -> u32 {
    let crc = crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or_default());
    if let Some(dst) = batch.get_mut(CRC_OFFSET..CRC_OFFSET + 4) {
        dst.copy_from_slice(&crc.to_be_bytes());
    }
    crc
}

/// Rewrites the producer id, epoch and base sequence in the header of the encoded batch that
/// `batch` holds (exactly: the CRC covers it to its end), and its CRC, as a producer does when
/// it resends a batch under a new identity. Returns `false`, changing nothing, if `batch` is
/// shorter than a batch header.
pub fn restamp_producer(
    batch: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> bool {
    if batch.len() < BATCH_HEADER_SIZE {
        return false;
    }
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(dst) = batch.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    put(PRODUCER_ID_OFFSET, &producer_id.to_be_bytes());
    put(PRODUCER_EPOCH_OFFSET, &producer_epoch.to_be_bytes());
    put(BASE_SEQUENCE_OFFSET, &base_sequence.to_be_bytes());
    write_crc(batch);
    true
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
        BatchWriter::new(spec, BatchState::new(), out, &mut self.scratch)
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
        let mut writer = BatchWriter::new(&spec, BatchState::new_control(), out, &mut self.scratch);
        writer.append(&NewRecord::new(Some(&key[..]), Some(&value[..]), timestamp))?;
        writer.finish()
    }
}

/// One batch being written into a `Vec<u8>`; see [`BatchEncoder::writer`].
#[derive(Debug)]
pub struct BatchWriter<'a> {
    out: &'a mut Vec<u8>,
    scratch: &'a mut Vec<u8>,
    spec: BatchSpec,
    state: BatchState,
    start: usize,
    finished: bool,
}

impl<'a> BatchWriter<'a> {
    /// Uncompressed, the header space goes into `out` now and the records after it;
    /// compressed, the records go into `scratch` and `out` is written when finished.
    fn new(
        spec: &BatchSpec,
        state: BatchState,
        out: &'a mut Vec<u8>,
        scratch: &'a mut Vec<u8>,
    ) -> Self {
        let start = out.len();
        if spec.compression == Compression::None {
            BatchState::write_header_space(out);
        }
        scratch.clear();
        BatchWriter {
            out,
            scratch,
            spec: *spec,
            state,
            start,
            finished: false,
        }
    }

    /// Records appended so far.
    pub fn record_count(&self) -> i32 {
        self.state.record_count()
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
    pub fn append<R: RecordFields + ?Sized>(&mut self, record: &R) -> Result<i32, EncodeError> {
        let Self {
            out,
            scratch,
            spec,
            state,
            ..
        } = self;
        let sink = match spec.compression {
            Compression::None => &mut **out,
            _ => &mut **scratch,
        };
        state.append(sink, record)
    }

    /// Appends a record at an explicit offset delta, above the previous one; gaps are allowed
    /// (as compaction leaves them).
    pub fn append_at<R: RecordFields + ?Sized>(
        &mut self,
        offset_delta: i32,
        record: &R,
    ) -> Result<(), EncodeError> {
        let Self {
            out,
            scratch,
            spec,
            state,
            ..
        } = self;
        let sink = match spec.compression {
            Compression::None => &mut **out,
            _ => &mut **scratch,
        };
        state.append_at(sink, offset_delta, record)
    }

    /// Sets the header's last offset delta above the last record's, as compaction leaves it
    /// when it removes the last records (or all of them: an empty batch).
    pub fn set_last_offset_delta(&mut self, last_offset_delta: i32) -> Result<(), EncodeError> {
        self.state.set_last_offset_delta(last_offset_delta)
    }

    /// Completes the batch: compresses the records if needed, writes the header and the CRC.
    pub fn finish(mut self) -> Result<EncodedBatch, EncodeError> {
        // On error `self` drops unfinished and truncates the partial batch.
        let encoded = match self.spec.compression {
            Compression::None => {
                let batch = self.out.get_mut(self.start..).unwrap_or_default();
                self.state.seal(&self.spec, batch)?.shifted(self.start)
            }
            _ => self
                .state
                .seal_compressed(&self.spec, self.scratch.as_slice(), self.out)?,
        };
        self.finished = true;
        Ok(encoded)
    }
}

impl Drop for BatchWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}
