//! [`AbortedTransactions`]: the read_committed filter, with the semantics of Kafka's
//! `CompletedFetch.nextFetchedRecord`.
//!
//! Built from a Fetch response partition's `AbortedTransactions` list of
//! `(producer_id, first_offset)` and fed the partition's batches in order. For each batch with a
//! producer id:
//! 1. every aborted transaction whose first offset is at or below the batch's last offset moves
//!    into the set of aborted producer ids;
//! 2. if the batch is a control batch whose record is an ABORT marker, its producer id leaves the
//!    set (the aborted transaction ends there);
//! 3. otherwise, a transactional batch whose producer id is in the set is skipped whole.
//!
//! Non-transactional batches are never skipped, even from an aborted producer id.

use std::collections::{HashSet, VecDeque};

use crate::record::batch::RecordBatch;
use crate::record::control::ControlRecordType;
use crate::record::error::BatchError;

/// Tracks aborted transactions across the batches of one fetched partition.
#[derive(Debug, Clone, Default)]
pub struct AbortedTransactions {
    /// Aborted transactions not yet reached, by ascending first offset.
    pending: VecDeque<(i64, i64)>,
    /// Producer ids whose aborted transaction is open at the current position.
    aborted: HashSet<i64>,
}

impl AbortedTransactions {
    /// A filter over the Fetch response's aborted transactions, given as
    /// `(producer_id, first_offset)` pairs in any order.
    pub fn new<I: IntoIterator<Item = (i64, i64)>>(aborted: I) -> Self {
        let mut pending: Vec<(i64, i64)> = aborted.into_iter().collect();
        pending.sort_by_key(|&(_, first_offset)| first_offset);
        AbortedTransactions {
            pending: pending.into(),
            aborted: HashSet::new(),
        }
    }

    /// Whether `producer_id` is currently in an aborted transaction.
    pub fn is_aborted(&self, producer_id: i64) -> bool {
        self.aborted.contains(&producer_id)
    }

    /// Aborted transactions not yet reached.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Feeds the next batch of the partition; returns `true` if the whole batch belongs to an
    /// aborted transaction and must be skipped.
    ///
    /// An ABORT marker batch is never reported as skipped: it removes its producer id from the
    /// set instead. Callers skip control batches anyway since they carry no data. Errors come
    /// from decoding a control batch's record (to tell ABORT markers apart).
    pub fn should_skip(&mut self, batch: &RecordBatch) -> Result<bool, BatchError> {
        if !batch.has_producer_id() {
            return Ok(false);
        }
        let last_offset = batch.last_offset();
        while let Some(&(producer_id, first_offset)) = self.pending.front() {
            if first_offset > last_offset {
                break;
            }
            self.aborted.insert(producer_id);
            self.pending.pop_front();
        }
        let producer_id = batch.producer_id();
        if batch.is_control() {
            let abort = matches!(
                batch.control_record()?,
                Some(record) if record.kind == ControlRecordType::Abort
            );
            if abort {
                self.aborted.remove(&producer_id);
                return Ok(false);
            }
        }
        Ok(batch.is_transactional() && self.aborted.contains(&producer_id))
    }
}
