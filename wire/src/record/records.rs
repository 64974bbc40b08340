//! [`BatchRecords`]: the records region of one batch (a slice of the fetch buffer, or the single
//! decompressed buffer), with a borrowing iterator ([`RecordIter`], yielding [`RecordRef`]) and an
//! owning one ([`RecordIntoIter`], yielding [`Record`]).
//!
//! Both iterators check the record count against the bytes: after the declared number of records
//! the region must be exhausted ([`RecordError::TrailingBytes`]), and it must not end before
//! ([`RecordError::FewerRecordsThanDeclared`]). An invalid record whose length prefix holds costs
//! only itself: they report it and go on with the next record; after any other error they end.

use bytes::Bytes;

use crate::record::error::RecordError;
use crate::record::item::{Record, RecordContext, RecordRef};
use crate::record::parse::{parse_record, record_end, RawRecord};

/// The records of one batch, ready to iterate.
#[derive(Debug, Clone)]
pub struct BatchRecords {
    pub(crate) body: Bytes,
    pub(crate) ctx: RecordContext,
    declared: i32,
}

impl BatchRecords {
    /// `body` is the uncompressed records region; `declared` the batch's (non-negative) count.
    pub(crate) fn new(body: Bytes, ctx: RecordContext, declared: i32) -> Self {
        BatchRecords {
            body,
            ctx,
            declared,
        }
    }

    /// The declared record count.
    #[inline]
    pub fn declared_count(&self) -> usize {
        usize::try_from(self.declared).unwrap_or(0)
    }

    /// The uncompressed records region.
    #[inline]
    pub fn as_bytes(&self) -> &Bytes {
        &self.body
    }

    /// A cursor at the first record.
    #[inline]
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor::new(self.declared)
    }

    /// Iterates the records as [`RecordRef`]s borrowing this buffer.
    #[inline]
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            records: self,
            cursor: Cursor::new(self.declared),
        }
    }
}

impl<'a> IntoIterator for &'a BatchRecords {
    type Item = Result<RecordRef<'a>, RecordError>;
    type IntoIter = RecordIter<'a>;

    fn into_iter(self) -> RecordIter<'a> {
        self.iter()
    }
}

impl IntoIterator for BatchRecords {
    type Item = Result<Record, RecordError>;
    type IntoIter = RecordIntoIter;

    fn into_iter(self) -> RecordIntoIter {
        let cursor = Cursor::new(self.declared);
        RecordIntoIter {
            records: self,
            cursor,
        }
    }
}

/// Position within a records region and the count check, shared by both iterators.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    pos: usize,
    index: u32,
    remaining: u32,
    declared: i32,
    done: bool,
}

impl Cursor {
    pub(crate) fn new(declared: i32) -> Self {
        Cursor {
            pos: 0,
            index: 0,
            remaining: u32::try_from(declared).unwrap_or(0),
            declared,
            done: false,
        }
    }

    /// The next record of `body`, the count error at the end, or `None` after the end.
    #[inline]
    pub(crate) fn step(&mut self, body: &[u8]) -> Option<Result<RawRecord, RecordError>> {
        if self.remaining == 0 || self.pos >= body.len() {
            return self.finish(body);
        }
        match parse_record(body, self.pos, self.index) {
            Ok(raw) => {
                self.pos = raw.end();
                self.index += 1;
                self.remaining -= 1;
                Some(Ok(raw))
            }
            Err(e) => {
                // A record whose length prefix holds costs only itself: go on after it.
                match record_end(body, self.pos) {
                    Some(end) => {
                        self.pos = end;
                        self.index += 1;
                        self.remaining -= 1;
                    }
                    None => {
                        self.done = true;
                        self.remaining = 0;
                    }
                }
                Some(Err(e))
            }
        }
    }

    /// The next record if it parses; on anything else (the end, a count error, a record error)
    /// returns `None` and leaves the cursor unchanged, for [`Cursor::step`] to report.
    #[inline]
    pub(crate) fn step_ok(&mut self, body: &[u8]) -> Option<RawRecord> {
        if self.remaining == 0 || self.pos >= body.len() {
            return None;
        }
        let raw = parse_record(body, self.pos, self.index).ok()?;
        self.pos = raw.end();
        self.index += 1;
        self.remaining -= 1;
        Some(raw)
    }

    /// End of iteration: the record count and the bytes must run out together.
    #[cold]
    fn finish(&mut self, body: &[u8]) -> Option<Result<RawRecord, RecordError>> {
        if self.done {
            return None;
        }
        self.done = true;
        if self.remaining > 0 {
            self.remaining = 0;
            return Some(Err(RecordError::FewerRecordsThanDeclared {
                declared: self.declared,
                found: self.index,
            }));
        }
        let left = body.len().saturating_sub(self.pos);
        if left > 0 {
            return Some(Err(RecordError::TrailingBytes {
                declared: self.declared,
                remaining: left,
            }));
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            // One more item may be an error about the count.
            (0, Some(self.remaining as usize + 1))
        }
    }
}

/// Iterator over a batch's records as [`RecordRef`]s; see [`BatchRecords::iter`].
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    records: &'a BatchRecords,
    cursor: Cursor,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordRef<'a>, RecordError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let records = self.records;
        Some(
            self.cursor
                .step(&records.body)?
                .map(|raw| RecordRef::new(&records.body, raw, &records.ctx)),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.cursor.size_hint()
    }
}

/// Iterator over a batch's records as owned [`Record`]s; see `BatchRecords::into_iter`.
#[derive(Debug, Clone)]
pub struct RecordIntoIter {
    records: BatchRecords,
    cursor: Cursor,
}

impl Iterator for RecordIntoIter {
    type Item = Result<Record, RecordError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let records = &self.records;
        Some(
            self.cursor
                .step(&records.body)?
                .map(|raw| Record::from_raw(&records.body, raw, &records.ctx)),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.cursor.size_hint()
    }
}
