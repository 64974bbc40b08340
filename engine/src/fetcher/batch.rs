//! [`FetchedBatch`]: one data batch as the fetcher hands it out, and [`FetchedRecords`], the
//! iterator over its records.
//!
//! The batch is the wire crate's [`RecordBatch`], a `Bytes` slice of the Fetch response frame:
//! nothing is copied between the socket and the application. Records of uncompressed batches
//! are slices of that same buffer; compressed batches are inflated into one buffer of their own
//! when their records are iterated.

use std::sync::Arc;

use mephisto_wire::record::{
    BatchError, BatchRecords, Record, RecordBatch, RecordError, RecordIntoIter, RecordRef,
};

/// One batch of records of one partition, validated down to its CRC.
///
/// Control batches (transaction markers) and, with read_committed, batches of aborted
/// transactions are never handed out; the partition's position moves past them anyway.
#[derive(Debug, Clone)]
pub struct FetchedBatch {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition index.
    pub partition: i32,
    /// The partition's high watermark when the batch was fetched: the offset after the last
    /// replicated record. `high_watermark - next_offset()` is the lag behind it.
    pub high_watermark: i64,
    /// The last stable offset when the batch was fetched (`None` if the broker did not say).
    pub last_stable_offset: Option<i64>,
    /// The log start offset when the batch was fetched (`None` if the broker did not say).
    pub log_start_offset: Option<i64>,
    /// The batch itself.
    pub batch: RecordBatch,
    /// Records below this offset are skipped (the fetch position fell inside this batch).
    start_offset: i64,
}

impl FetchedBatch {
    pub(crate) fn new(
        topic: Arc<str>,
        partition: i32,
        marks: Watermarks,
        batch: RecordBatch,
        start_offset: i64,
    ) -> Self {
        Self {
            topic,
            partition,
            high_watermark: marks.high_watermark,
            last_stable_offset: marks.last_stable_offset,
            log_start_offset: marks.log_start_offset,
            batch,
            start_offset,
        }
    }

    /// The first offset [`records`](Self::records) yields: the batch's base offset, or the
    /// fetch position when it fell inside the batch.
    pub fn start_offset(&self) -> i64 {
        self.start_offset.max(self.batch.base_offset())
    }

    /// The offset after the batch (base offset + last offset delta + 1): the partition's
    /// position once this batch is handed out.
    pub fn next_offset(&self) -> i64 {
        self.batch.next_offset()
    }

    /// The batch's records at or above [`start_offset`](Self::start_offset), in offset order.
    ///
    /// Fails if the records region cannot be decompressed; each record is validated as it is
    /// reached: an invalid record is reported and skipped when its length prefix holds, and the
    /// iterator ends after any other invalid one.
    pub fn records(&self) -> Result<FetchedRecords, BatchError> {
        Ok(FetchedRecords {
            inner: self.batch.records()?.into_iter(),
            start_offset: self.start_offset,
        })
    }

    /// The same records as [`records`](Self::records), for iterating by reference: each
    /// [`RecordRef`] borrows the batch's (or the inflated) buffer instead of holding a
    /// reference count on it, which saves an atomic increment and decrement per record for a
    /// consumer that does not keep the records (`RecordRef::value_bytes` and the like still
    /// give owned data when needed): `for record in batch.records_view()?.iter() { ... }`.
    pub fn records_view(&self) -> Result<FetchedRecordsView, BatchError> {
        Ok(FetchedRecordsView {
            records: self.batch.records()?,
            start_offset: self.start_offset,
        })
    }
}

/// The records of a [`FetchedBatch`], iterated by reference with
/// [`iter`](FetchedRecordsView::iter).
#[derive(Debug, Clone)]
pub struct FetchedRecordsView {
    records: BatchRecords,
    start_offset: i64,
}

impl FetchedRecordsView {
    /// The records at or above the batch's start offset, in offset order, each borrowing this
    /// view; invalid records are reported as in [`records`](FetchedBatch::records).
    pub fn iter(&self) -> impl Iterator<Item = Result<RecordRef<'_>, RecordError>> + '_ {
        let start = self.start_offset;
        self.records
            .iter()
            .filter(move |r| r.as_ref().map_or(true, |r| r.offset() >= start))
    }
}

/// Iterator over the records of a [`FetchedBatch`], each an owned [`Record`] sharing the
/// batch's buffer.
#[derive(Debug, Clone)]
pub struct FetchedRecords {
    inner: RecordIntoIter,
    start_offset: i64,
}

impl Iterator for FetchedRecords {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.inner.next()? {
                Ok(record) if record.offset() < self.start_offset => continue,
                other => return Some(other),
            }
        }
    }
}

/// A partition's offsets as one Fetch response reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watermarks {
    pub high_watermark: i64,
    pub last_stable_offset: Option<i64>,
    pub log_start_offset: Option<i64>,
}
