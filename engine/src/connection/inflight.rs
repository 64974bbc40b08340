//! The requests of one connection that were written (or are being written) and wait for a
//! response, keyed by correlation id, plus the fire-and-forget requests waiting to be flushed.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::EngineError;

/// One request waiting for its response.
pub(super) struct Pending {
    pub(super) api: ApiKey,
    pub(super) reply: oneshot::Sender<Result<Bytes, EngineError>>,
    pub(super) deadline: Instant,
    pub(super) timeout: Duration,
}

/// In-flight table of one connection.
#[derive(Default)]
pub(super) struct InFlight {
    by_id: HashMap<i32, Pending>,
    /// Requests without a response: (stream position their frame ends at, who to tell).
    unflushed: VecDeque<(u64, oneshot::Sender<Result<(), EngineError>>)>,
}

impl InFlight {
    /// Requests waiting for a response.
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Nothing waits for anything.
    pub(super) fn is_empty(&self) -> bool {
        self.by_id.is_empty() && self.unflushed.is_empty()
    }

    /// Registers a request under `correlation_id`. Ids wrap only after 2^31 requests, far more
    /// than can be in flight, so an id is never in use twice.
    pub(super) fn insert(&mut self, correlation_id: i32, pending: Pending) {
        self.by_id.insert(correlation_id, pending);
    }

    /// Takes the request a response with `correlation_id` answers.
    pub(super) fn remove(&mut self, correlation_id: i32) -> Option<Pending> {
        self.by_id.remove(&correlation_id)
    }

    /// Registers a request without a response whose frame ends at stream position `end`.
    pub(super) fn push_unflushed(
        &mut self,
        end: u64,
        tx: oneshot::Sender<Result<(), EngineError>>,
    ) {
        self.unflushed.push_back((end, tx));
    }

    /// Tells every request without a response whose frame is now fully written.
    pub(super) fn flushed_up_to(&mut self, written: u64) {
        while self
            .unflushed
            .front()
            .is_some_and(|(end, _)| *end <= written)
        {
            if let Some((_, tx)) = self.unflushed.pop_front() {
                let _ = tx.send(Ok(()));
            }
        }
    }

    /// The earliest deadline among requests waiting for a response.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.by_id.values().map(|p| p.deadline).min()
    }

    /// The id and entry of a request whose deadline is at or before `now`, if any.
    pub(super) fn take_expired(&mut self, now: Instant) -> Option<(i32, Pending)> {
        let id = self
            .by_id
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .min_by_key(|(_, p)| p.deadline)
            .map(|(id, _)| *id)?;
        self.by_id.remove(&id).map(|p| (id, p))
    }

    /// Drops requests whose callers stopped waiting; returns whether any remain.
    pub(super) fn prune_abandoned(&mut self) -> bool {
        self.by_id.retain(|_, p| !p.reply.is_closed());
        self.unflushed.retain(|(_, tx)| !tx.is_closed());
        !self.is_empty()
    }

    /// Fails everything with `error`.
    pub(super) fn fail_all(&mut self, error: &EngineError) {
        for (_, pending) in self.by_id.drain() {
            let _ = pending.reply.send(Err(error.clone()));
        }
        for (_, tx) in self.unflushed.drain(..) {
            let _ = tx.send(Err(error.clone()));
        }
    }
}
