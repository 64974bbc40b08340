//! Partition mode: each assigned partition is handed to the application as an
//! [`AssignedPartition`], for a task of its own that reads its batches and acks its offsets,
//! instead of one stream of records for the whole member.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::acks::{Ownership, PartitionAcks};
use crate::fetcher::{FetchError, FetchedBatch, PartitionReader, TopicPartition};

/// One assignment of one partition, handed out once its committed position is known.
///
/// Read its batches with [`next_batch`](Self::next_batch), record what was handed to
/// consumers and what they finished in its [`acks`](Self::acks): the group commits each
/// partition's finished prefix. When the partition is revoked, `next_batch` ends; finish (or
/// [abandon](PartitionAcks::abandon_by)) what is in processing: the driver commits once nothing
/// is, or after the drain deadline (min(30 s, half the max poll interval)).
#[derive(Debug)]
pub struct AssignedPartition {
    acks: Arc<PartitionAcks>,
    reader: PartitionReader,
    ownership: watch::Receiver<Ownership>,
}

impl AssignedPartition {
    pub(crate) fn new(acks: Arc<PartitionAcks>, reader: PartitionReader) -> Self {
        let ownership = acks.watch_ownership();
        Self {
            acks,
            reader,
            ownership,
        }
    }

    /// The partition.
    pub fn partition(&self) -> &TopicPartition {
        self.acks.partition()
    }

    /// Its acks (shared with whoever acks its records).
    pub fn acks(&self) -> &Arc<PartitionAcks> {
        &self.acks
    }

    /// The next batch (or the partition's fetch error); `None` once the partition is no
    /// longer ours. Cancel-safe.
    pub async fn next_batch(&self) -> Option<Result<FetchedBatch, FetchError>> {
        if !self.acks.is_owned() {
            return None;
        }
        self.reader.next_batch().await
    }

    /// The next batch if one is buffered (`None`: nothing yet; `Some(None)`: the partition is
    /// no longer ours).
    pub fn try_next_batch(&self) -> Option<Option<Result<FetchedBatch, FetchError>>> {
        if !self.acks.is_owned() {
            return Some(None);
        }
        self.reader.try_next_batch()
    }

    /// Stops fetching the partition until the next [`next_batch`](Self::next_batch) (its
    /// consumers are full); see [`PartitionReader`] for what happens to prefetched data.
    pub fn pause(&self) {
        self.reader.pause();
    }

    /// Whether the partition is still ours.
    pub fn ownership(&self) -> Ownership {
        *self.ownership.borrow()
    }

    /// Waits until the partition is no longer ours and says how it went.
    pub async fn released(&mut self) -> Ownership {
        match self.ownership.wait_for(|o| *o != Ownership::Owned).await {
            Ok(o) => *o,
            Err(_) => Ownership::Lost,
        }
    }
}

/// The partitions assigned to a partition-mode consumer, in the order they are assigned.
#[derive(Debug)]
pub struct PartitionEvents {
    rx: mpsc::UnboundedReceiver<AssignedPartition>,
}

impl PartitionEvents {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<AssignedPartition>) -> Self {
        Self { rx }
    }

    /// The next assigned partition; `None` once the consumer is closed.
    pub async fn next(&mut self) -> Option<AssignedPartition> {
        self.rx.recv().await
    }

    /// An assigned partition if one is waiting.
    pub fn try_next(&mut self) -> Option<AssignedPartition> {
        self.rx.try_recv().ok()
    }
}
