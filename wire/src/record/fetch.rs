//! [`FetchRecords`]: the data records of one Fetch response partition, in offset order, with
//! control batches never surfaced, aborted transactions optionally skipped (read_committed) and
//! records below the fetch position skipped, as Kafka's `CompletedFetch` does.

use bytes::Bytes;

use crate::record::aborted::AbortedTransactions;
use crate::record::batch::DecodeOptions;
use crate::record::batches::RecordBatches;
use crate::record::error::BatchError;
use crate::record::item::{Record, RecordRef};
use crate::record::parse::RawRecord;
use crate::record::records::{BatchRecords, Cursor};

/// The data batch being read.
#[derive(Debug)]
struct Current {
    records: BatchRecords,
    cursor: Cursor,
    base_offset: i64,
    next_offset: i64,
}

/// Iterator over the data records of a Fetch partition's `records` bytes.
///
/// As an [`Iterator`] it yields owned [`Record`]s (each a `Bytes` slice of the response, or of its
/// batch's decompressed buffer: one reference-count increment per record).
/// [`FetchRecords::next_ref`] walks the same sequence lending [`RecordRef`]s instead, with no
/// reference-count traffic; the two can be mixed. After an error the iteration ends.
///
/// [`FetchRecords::next_offset`] is the position to fetch from next: past every record yielded,
/// and past every batch fully consumed or skipped (including control batches, aborted batches and
/// batches emptied by compaction).
#[derive(Debug)]
pub struct FetchRecords {
    batches: RecordBatches,
    current: Option<Current>,
    aborted: Option<AbortedTransactions>,
    next_offset: i64,
    leader_epoch: Option<i32>,
    done: bool,
}

impl FetchRecords {
    /// read_uncommitted: every data record at or above `fetch_offset`.
    pub fn new(records: Bytes, options: DecodeOptions, fetch_offset: i64) -> Self {
        FetchRecords {
            batches: RecordBatches::new(records, options),
            current: None,
            aborted: None,
            next_offset: fetch_offset,
            leader_epoch: None,
            done: false,
        }
    }

    /// read_committed: as [`FetchRecords::new`], also skipping batches of aborted transactions
    /// according to `aborted` (built from the response's aborted transactions list).
    pub fn read_committed(
        records: Bytes,
        options: DecodeOptions,
        fetch_offset: i64,
        aborted: AbortedTransactions,
    ) -> Self {
        FetchRecords {
            aborted: Some(aborted),
            ..FetchRecords::new(records, options, fetch_offset)
        }
    }

    /// The offset to fetch from next.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Partition leader epoch of the data batch read last, if any.
    pub fn last_leader_epoch(&self) -> Option<i32> {
        self.leader_epoch
    }

    /// Bytes of the response not consumed; after the end, the size of a partial trailing batch.
    pub fn remaining_bytes(&self) -> usize {
        self.batches.remaining_bytes()
    }

    /// The next data record, lent as a [`RecordRef`] borrowing this iterator's current batch (no
    /// reference-count traffic). Same sequence and errors as [`Iterator::next`].
    #[inline]
    pub fn next_ref(&mut self) -> Option<Result<RecordRef<'_>, BatchError>> {
        match self.advance()? {
            Err(e) => Some(Err(e)),
            Ok(raw) => {
                let current = self.current.as_ref()?;
                let records = &current.records;
                Some(Ok(RecordRef::new(&records.body, raw, &records.ctx)))
            }
        }
    }

    fn fail(&mut self, e: BatchError) -> Option<Result<RawRecord, BatchError>> {
        self.done = true;
        self.current = None;
        Some(Err(e))
    }

    /// Moves to the next data record at or above the position; its layout is in the current
    /// batch. The common case (the next record of the current batch parses and is not below the
    /// position) is inlined; the rest is in [`FetchRecords::advance_slow`].
    #[inline]
    fn advance(&mut self) -> Option<Result<RawRecord, BatchError>> {
        if let Some(current) = &mut self.current {
            if let Some(raw) = current.cursor.step_ok(&current.records.body) {
                let offset = current.records.ctx.offset(&raw.layout);
                if offset >= self.next_offset {
                    self.next_offset = offset.wrapping_add(1);
                    return Some(Ok(raw));
                }
            }
        }
        self.advance_slow()
    }

    /// Skipped records, errors, the end of a batch and the start of the next one.
    #[inline(never)]
    fn advance_slow(&mut self) -> Option<Result<RawRecord, BatchError>> {
        loop {
            if let Some(current) = &mut self.current {
                match current.cursor.step(&current.records.body) {
                    Some(Ok(raw)) => {
                        let offset = current.records.ctx.offset(&raw.layout);
                        if offset < self.next_offset {
                            continue;
                        }
                        self.next_offset = offset.wrapping_add(1);
                        return Some(Ok(raw));
                    }
                    Some(Err(source)) => {
                        let base_offset = current.base_offset;
                        return self.fail(BatchError::Record {
                            base_offset,
                            source,
                        });
                    }
                    None => {
                        self.next_offset = self.next_offset.max(current.next_offset);
                        self.current = None;
                    }
                }
            }
            if self.done {
                return None;
            }
            let batch = match self.batches.next() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(e)) => return self.fail(e),
                Some(Ok(batch)) => batch,
            };
            if let Some(aborted) = &mut self.aborted {
                match aborted.should_skip(&batch) {
                    Err(e) => return self.fail(e),
                    Ok(true) => {
                        self.next_offset = self.next_offset.max(batch.next_offset());
                        continue;
                    }
                    Ok(false) => {}
                }
            }
            if batch.is_control() {
                self.next_offset = self.next_offset.max(batch.next_offset());
                continue;
            }
            match batch.records() {
                Err(e) => return self.fail(e),
                Ok(records) => {
                    self.leader_epoch = Some(batch.partition_leader_epoch());
                    self.current = Some(Current {
                        cursor: records.cursor(),
                        records,
                        base_offset: batch.base_offset(),
                        next_offset: batch.next_offset(),
                    });
                }
            }
        }
    }
}

impl Iterator for FetchRecords {
    type Item = Result<Record, BatchError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self.advance()? {
            Err(e) => Some(Err(e)),
            Ok(raw) => {
                let current = self.current.as_ref()?;
                let records = &current.records;
                Some(Ok(Record::from_raw(&records.body, raw, &records.ctx)))
            }
        }
    }
}
