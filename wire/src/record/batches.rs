//! [`RecordBatches`]: the iterator over the `records` bytes of one Fetch response partition.
//!
//! A broker cuts the last batch of a response at the fetch size limit, so a trailing partial
//! batch (fewer than 17 bytes, or fewer than 12 + batch length) ends the iteration without an
//! error, as Kafka's `ByteBufferLogInputStream` does. Any other fault yields one error and ends the
//! iteration, since the following framing can no longer be trusted. The magic byte and the batch
//! length bounds are checked before truncation, so a partial legacy (magic 0/1) batch is reported
//! as [`BatchError::LegacyMagic`] rather than passed over.

use bytes::Bytes;

use crate::record::batch::{frame, DecodeOptions, RecordBatch};
use crate::record::error::BatchError;

/// Iterator over the batches of a Fetch partition's `records` field.
#[derive(Debug, Clone)]
pub struct RecordBatches {
    buf: Bytes,
    pos: usize,
    options: DecodeOptions,
    done: bool,
}

impl RecordBatches {
    /// Iterates the batches in `records`, validating each with `options`.
    pub fn new(records: Bytes, options: DecodeOptions) -> Self {
        RecordBatches {
            buf: records,
            pos: 0,
            options,
            done: false,
        }
    }

    /// Byte position of the next batch in the buffer.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed. Once the iteration has ended without error, a non-zero value is
    /// the size of the partial trailing batch (a consumer that got no complete batch at all
    /// should fetch with a larger size).
    #[inline]
    pub fn remaining_bytes(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

impl Iterator for RecordBatches {
    type Item = Result<RecordBatch, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let result = match frame(rest, &self.options) {
            Ok(Some(size)) => {
                let end = self.pos.saturating_add(size).min(self.buf.len());
                let bytes = self.buf.slice(self.pos..end);
                self.pos = end;
                RecordBatch::from_framed(bytes, &self.options)
            }
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
}

impl std::iter::FusedIterator for RecordBatches {}
