//! Record batch v2 (magic 2): the zero-copy decoder, read_committed filtering and the encoder.
//!
//! # Layout
//! - [`error`]: [`BatchError`] and [`RecordError`], one variant per validation rule.
//! - [`header`]: the fixed 61-byte batch header ([`BatchHeader`], [`TimestampType`]) and attribute bits.
//! - [`batch`]: [`RecordBatch`], one validated batch holding a `Bytes` slice of the fetch buffer.
//! - [`batches`]: [`RecordBatches`], the iterator over a Fetch partition's `records` bytes.
//! - [`records`]: [`BatchRecords`], the (decompressed) records region of a batch and its iterators.
//! - [`item`]: [`RecordRef`] (borrowed) and [`Record`] (owned) views of one record.
//! - [`headers`]: [`Headers`] and [`Header`], lazy iteration over a record's validated headers.
//! - `parse`: the per-record wire parser shared by both record views (crate-private).
//! - [`control`]: control records (transaction markers) and the end-txn marker value.
//! - [`aborted`]: [`AbortedTransactions`], the read_committed batch filter.
//! - [`fetch`]: [`FetchRecords`], the data records of a fetch response (control/aborted skipped).
//! - [`encode`]: [`BatchState`], the v2 encoder over a caller's buffer (records appended one at
//!   a time, the batch sealed with its header and CRC), and [`BatchEncoder`] / [`BatchWriter`],
//!   which build whole batches into a `Vec<u8>` with it.
//!
//! # Decoding
//! ```
//! use bytes::Bytes;
//! use mephisto_wire::record::{BatchEncoder, BatchSpec, DecodeOptions, NewRecord, RecordBatches};
//!
//! let mut buf = Vec::new();
//! let records = [NewRecord::new(Some(&b"k"[..]), Some(&b"v"[..]), 1_700_000_000_000)];
//! BatchEncoder::new().encode(&BatchSpec::default(), &records, &mut buf).unwrap();
//!
//! for batch in RecordBatches::new(Bytes::from(buf), DecodeOptions::default()) {
//!     let batch = batch.unwrap();
//!     let records = batch.records().unwrap();
//!     for record in &records {
//!         let record = record.unwrap();
//!         assert_eq!(record.value(), Some(&b"v"[..]));
//!     }
//! }
//! ```

pub mod aborted;
pub mod batch;
pub mod batches;
pub mod control;
pub mod encode;
pub mod error;
pub mod fetch;
pub mod header;
pub mod headers;
pub mod item;
pub(crate) mod parse;
pub mod records;

pub use aborted::AbortedTransactions;
pub use batch::{DecodeOptions, RecordBatch, DEFAULT_MAX_BATCH_SIZE};
pub use batches::RecordBatches;
pub use control::{ControlError, ControlRecord, ControlRecordType, EndTxnMarker};
pub use encode::{
    record_size_bound, restamp_producer, BatchEncoder, BatchSpec, BatchState, BatchWriter,
    EncodeError, EncodedBatch, NewHeader, NewRecord, RecordFields,
};
pub use error::{BatchError, RecordError, RecordField};
pub use fetch::FetchRecords;
pub use header::{BatchHeader, TimestampType, BATCH_HEADER_SIZE};
pub use headers::{Header, Headers};
pub use item::{Record, RecordRef};
pub use records::{BatchRecords, RecordIntoIter, RecordIter};

/// Producer id meaning "no producer" (non-idempotent batches).
pub const NO_PRODUCER_ID: i64 = -1;
/// Producer epoch meaning "no producer".
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Base sequence meaning "no sequence".
pub const NO_SEQUENCE: i32 = -1;
/// Partition leader epoch meaning "unknown".
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Timestamp meaning "none" (used as the base and max timestamp of batches without records).
pub const NO_TIMESTAMP: i64 = -1;
