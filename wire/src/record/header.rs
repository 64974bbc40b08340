//! The fixed 61-byte header of a record batch v2: field offsets, attribute bits and
//! [`BatchHeader`], the decoded header values.

use crate::compression::Compression;

/// Size of the batch header, up to and including the record count.
pub const BATCH_HEADER_SIZE: usize = 61;
/// Bytes before the part counted by the batch length: base offset (8) and batch length (4).
pub(crate) const LOG_OVERHEAD: usize = 12;
/// Bytes needed to read the magic byte.
pub(crate) const HEADER_SIZE_UP_TO_MAGIC: usize = 17;
/// Smallest valid batch length for magic 2 (header bytes after the length field).
pub(crate) const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32;

pub(crate) const BATCH_LENGTH_OFFSET: usize = 8;
pub(crate) const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub(crate) const MAGIC_OFFSET: usize = 16;
pub(crate) const CRC_OFFSET: usize = 17;
/// First byte covered by the CRC.
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub(crate) const BASE_TIMESTAMP_OFFSET: usize = 27;
pub(crate) const MAX_TIMESTAMP_OFFSET: usize = 35;
pub(crate) const PRODUCER_ID_OFFSET: usize = 43;
pub(crate) const PRODUCER_EPOCH_OFFSET: usize = 51;
pub(crate) const BASE_SEQUENCE_OFFSET: usize = 53;
pub(crate) const RECORDS_COUNT_OFFSET: usize = 57;

/// Attribute bits 0-2: compression codec.
pub const COMPRESSION_CODEC_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are log-append time.
pub const TIMESTAMP_TYPE_MASK: i16 = 0x08;
/// Attribute bit 4: the batch is part of a transaction.
pub const TRANSACTIONAL_FLAG_MASK: i16 = 0x10;
/// Attribute bit 5: the batch holds a control record.
pub const CONTROL_FLAG_MASK: i16 = 0x20;
/// Attribute bit 6: the base timestamp field holds the delete horizon.
pub const DELETE_HORIZON_FLAG_MASK: i16 = 0x40;

/// What a batch's timestamps mean (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Set by the producer when the record was created.
    CreateTime,
    /// Set by the broker when the batch was appended; every record's timestamp is the batch's
    /// max timestamp.
    LogAppendTime,
}

/// Copies `N` bytes at `at` out of the header. Offsets are constants below 61, so the lookup
/// folds away; the zero fallback is unreachable.
#[inline(always)]
fn field<const N: usize>(h: &[u8; BATCH_HEADER_SIZE], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = h.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// The decoded fields of a batch header, as stored (no validation beyond decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (offset delta 0).
    pub base_offset: i64,
    /// Bytes after the batch length field (total batch size = 12 + this).
    pub batch_length: i32,
    /// Epoch of the partition leader that wrote the batch (not covered by the CRC).
    pub partition_leader_epoch: i32,
    /// Format version; 2 for every batch this module decodes.
    pub magic: i8,
    /// Stored CRC-32C of bytes [21, end).
    pub crc: u32,
    /// Raw attributes.
    pub attributes: i16,
    /// Offset delta of the last record the producer wrote (kept through compaction).
    pub last_offset_delta: i32,
    /// Base timestamp, or the delete horizon when [`BatchHeader::has_delete_horizon`].
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (the append time for log-append time batches).
    pub max_timestamp: i64,
    /// Producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

impl BatchHeader {
    /// Decodes the 61 header bytes.
    #[inline]
    pub fn decode(h: &[u8; BATCH_HEADER_SIZE]) -> Self {
        BatchHeader {
            base_offset: i64::from_be_bytes(field(h, 0)),
            batch_length: i32::from_be_bytes(field(h, BATCH_LENGTH_OFFSET)),
            partition_leader_epoch: i32::from_be_bytes(field(h, PARTITION_LEADER_EPOCH_OFFSET)),
            magic: i8::from_be_bytes(field(h, MAGIC_OFFSET)),
            crc: u32::from_be_bytes(field(h, CRC_OFFSET)),
            attributes: i16::from_be_bytes(field(h, ATTRIBUTES_OFFSET)),
            last_offset_delta: i32::from_be_bytes(field(h, LAST_OFFSET_DELTA_OFFSET)),
            base_timestamp: i64::from_be_bytes(field(h, BASE_TIMESTAMP_OFFSET)),
            max_timestamp: i64::from_be_bytes(field(h, MAX_TIMESTAMP_OFFSET)),
            producer_id: i64::from_be_bytes(field(h, PRODUCER_ID_OFFSET)),
            producer_epoch: i16::from_be_bytes(field(h, PRODUCER_EPOCH_OFFSET)),
            base_sequence: i32::from_be_bytes(field(h, BASE_SEQUENCE_OFFSET)),
            record_count: i32::from_be_bytes(field(h, RECORDS_COUNT_OFFSET)),
        }
    }

    /// Writes the header into 61 bytes (the CRC as stored in `self.crc`).
    pub fn encode(&self, h: &mut [u8; BATCH_HEADER_SIZE]) {
        let mut put = |at: usize, bytes: &[u8]| {
            if let Some(dst) = h.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        };
        put(0, &self.base_offset.to_be_bytes());
        put(BATCH_LENGTH_OFFSET, &self.batch_length.to_be_bytes());
        put(
            PARTITION_LEADER_EPOCH_OFFSET,
            &self.partition_leader_epoch.to_be_bytes(),
        );
        put(MAGIC_OFFSET, &self.magic.to_be_bytes());
        put(CRC_OFFSET, &self.crc.to_be_bytes());
        put(ATTRIBUTES_OFFSET, &self.attributes.to_be_bytes());
        put(
            LAST_OFFSET_DELTA_OFFSET,
            &self.last_offset_delta.to_be_bytes(),
        );
        put(BASE_TIMESTAMP_OFFSET, &self.base_timestamp.to_be_bytes());
        put(MAX_TIMESTAMP_OFFSET, &self.max_timestamp.to_be_bytes());
        put(PRODUCER_ID_OFFSET, &self.producer_id.to_be_bytes());
        put(PRODUCER_EPOCH_OFFSET, &self.producer_epoch.to_be_bytes());
        put(BASE_SEQUENCE_OFFSET, &self.base_sequence.to_be_bytes());
        put(RECORDS_COUNT_OFFSET, &self.record_count.to_be_bytes());
    }

    /// The compression codec, or `None` if bits 0-2 hold 5, 6 or 7.
    #[inline]
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_attributes(self.attributes).ok()
    }

    /// Whether timestamps are create time or log-append time (attribute bit 3).
    #[inline]
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_MASK != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Attribute bit 4.
    #[inline]
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG_MASK != 0
    }

    /// Attribute bit 5.
    #[inline]
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG_MASK != 0
    }

    /// Attribute bit 6: the base timestamp field holds the delete horizon.
    #[inline]
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_FLAG_MASK != 0
    }

    /// The delete horizon (ms) set by compaction, if attribute bit 6 is set.
    #[inline]
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        self.has_delete_horizon().then_some(self.base_timestamp)
    }

    /// Whether the batch carries a producer id (not -1).
    #[inline]
    pub fn has_producer_id(&self) -> bool {
        self.producer_id != crate::record::NO_PRODUCER_ID
    }

    /// Offset of the last record the batch was written with: base offset + last offset delta.
    #[inline]
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The offset to fetch after this batch: base offset + last offset delta + 1.
    ///
    /// Compaction may remove records (even all of them) but keeps the last offset delta, so this
    /// is not derived from the record count.
    #[inline]
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// Total size of the batch in bytes (12 + batch length), for a non-negative batch length.
    #[inline]
    pub fn size_in_bytes(&self) -> usize {
        LOG_OVERHEAD + usize::try_from(self.batch_length).unwrap_or(0)
    }
}
