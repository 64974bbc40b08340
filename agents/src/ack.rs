//! Acks: the hook through which "the agent is done with this event" reaches the offset tracker.
//!
//! A stream acks each event when the agent asks for the next one (or when the stream is dropped,
//! e.g. after an error), unless acks are disabled with `noack()`. Concurrent actors ack out of
//! order; the [`AckSink`] receives every ack exactly once. The broker wiring will implement
//! [`AckSink`] over the engine's offset tracker (commit = first run of consecutive acked
//! offsets); [`MemoryAcks`] records acks for tests.

use std::sync::{Arc, Mutex};

use crate::event::Coordinate;

/// Identity of one delivered event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// Sequence number in its source (the in-memory "offset" of a channel, starting at 0).
    pub seq: u64,
    /// Topic/partition/offset when the event came from a topic.
    pub coordinate: Option<Coordinate>,
}

/// Receives acks. Called exactly once per event.
pub trait AckSink: Send + Sync + 'static {
    /// The event `delivery` is done.
    fn ack(&self, delivery: &Delivery);
}

/// An ack sink that ignores acks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAcks;

impl AckSink for NoAcks {
    fn ack(&self, _delivery: &Delivery) {}
}

/// Records acks in order, for tests and for the in-memory runtime.
#[derive(Debug, Default, Clone)]
pub struct MemoryAcks {
    acked: Arc<Mutex<Vec<Delivery>>>,
}

impl MemoryAcks {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The acked deliveries, in ack order.
    pub fn acked(&self) -> Vec<Delivery> {
        self.acked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The acked sequence numbers, in ack order.
    pub fn acked_seqs(&self) -> Vec<u64> {
        self.acked().into_iter().map(|d| d.seq).collect()
    }

    /// Whether `seq` has been acked.
    pub fn is_acked(&self, seq: u64) -> bool {
        self.acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|d| d.seq == seq)
    }
}

impl AckSink for MemoryAcks {
    fn ack(&self, delivery: &Delivery) {
        self.acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(delivery.clone());
    }
}
