//! [`PartitionAcker`]: the core's [`Acker`] over a partition's engine acks, so that an event's
//! ack is a slot update in its partition's window (no name, no lookup, no lock shared with the
//! group driver).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mephisto_engine::group::PartitionAcks;

use crate::core::ack::Acker;

/// The acker of one assigned partition's events.
pub(crate) struct PartitionAcker {
    acks: Arc<PartitionAcks>,
    /// Set when the worker stops: queued events are given up.
    stopping: Arc<AtomicBool>,
}

impl PartitionAcker {
    pub(crate) fn new(acks: Arc<PartitionAcks>, stopping: Arc<AtomicBool>) -> Self {
        PartitionAcker { acks, stopping }
    }
}

fn offset(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

impl Acker for PartitionAcker {
    fn ack(&self, id: u64, consumer: u8) -> bool {
        match self.acks.ack_by(offset(id), consumer) {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!(partition = %self.acks.partition(), offset = id, error = %e, "ack refused");
                false
            }
        }
    }

    fn ack_all(&self, ids: &[u64], consumer: u8) {
        if let Err(e) = self
            .acks
            .ack_many(ids.iter().map(|&id| offset(id)), consumer)
        {
            tracing::warn!(partition = %self.acks.partition(), error = %e, "acks refused");
        }
    }

    fn hold(&self, id: u64) -> bool {
        self.acks.hold(offset(id)).unwrap_or(false)
    }

    fn release(&self, id: u64) {
        let _ = self.acks.release(offset(id));
    }

    fn abandon(&self, id: u64, consumer: u8) {
        let _ = self.acks.abandon_by(offset(id), consumer);
    }

    fn is_live(&self) -> bool {
        self.acks.is_owned() && !self.stopping.load(Ordering::Relaxed)
    }

    fn partition(&self) -> Option<(Arc<str>, i32)> {
        let tp = self.acks.partition();
        Some((Arc::clone(&tp.topic), tp.partition))
    }
}
