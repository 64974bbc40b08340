//! The slot an actor shares with the stream its agent function reads: which event the stream
//! is on (for replies, sinks' holds, error coordinates and acks), the last `take` batch's acks,
//! copies kept for retries, and events to hand out again after a restart.
//!
//! It is type-erased, so that it follows the stream through `group_by` (whose stream has
//! another key type) and survives the restarts of its actor.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::core::ack::AckRef;
use crate::core::event::{Coordinate, EventId, Headers, HeadersView, Message};
use crate::core::reqrep::ReplyTo;

/// An event a stream handed out, without its value.
#[derive(Clone, Default)]
pub(crate) struct Current {
    pub(crate) ack: Option<AckRef>,
    pub(crate) seq: u64,
    pub(crate) message: Option<Message>,
    /// The headers its sender gave (an event from a topic reads its record's).
    pub(crate) headers: Headers,
    /// The reply address and the event's key (JSON) when it asks for a reply.
    pub(crate) reply: Option<(ReplyTo, Option<serde_json::Value>)>,
}

impl Current {
    pub(crate) fn id(&self) -> EventId {
        EventId {
            seq: self.seq,
            coordinate: self.coordinate(),
        }
    }

    pub(crate) fn coordinate(&self) -> Option<Coordinate> {
        self.message.as_ref().map(Message::coordinate)
    }

    pub(crate) fn headers(&self) -> HeadersView<'_> {
        match &self.message {
            Some(m) => HeadersView::of_record(&m.record),
            None => self.headers.view(),
        }
    }
}

/// What a slot holds.
#[derive(Default)]
pub(crate) struct SlotState {
    /// The event the stream is on.
    pub(crate) current: Option<Current>,
    /// Acks of the last batch a `take` handed out (acked when the next one is asked for).
    pub(crate) batch: Vec<AckRef>,
    /// Whether the stream acks automatically (the actor acks the last event itself when the
    /// function ends only then).
    pub(crate) auto_ack: bool,
    /// `Some` when the actor retries failed events: copies of the events being processed
    /// (each an `Event<K, V>` of the stream's types).
    pub(crate) copies: Option<Vec<Box<dyn Any + Send>>>,
    /// Events to hand out first (a retry, or what a dropped `take` had buffered).
    pub(crate) redeliver: Vec<Box<dyn Any + Send>>,
    /// Set by a stream adapter that cannot work (e.g. `group_by` with concurrency > 1): the
    /// agent stops with it instead of restarting.
    pub(crate) fatal: Option<crate::core::error::AgentError>,
}

impl SlotState {
    /// Starts a new unit of work (an event or a batch): forgets the copies of the last one.
    pub(crate) fn begin_unit(&mut self) {
        if let Some(copies) = &mut self.copies {
            copies.clear();
        }
    }

    /// Acks of the current event and batch.
    pub(crate) fn take_acks(&mut self) -> Vec<AckRef> {
        let mut acks = Vec::new();
        self.take_acks_into(&mut acks);
        acks
    }

    /// Moves the acks of the current event and batch to `out` (no allocation for a single
    /// event when `out` has room).
    pub(crate) fn take_acks_into(&mut self, out: &mut Vec<AckRef>) {
        out.append(&mut self.batch);
        if let Some(ack) = self.current.as_mut().and_then(|c| c.ack.take()) {
            out.push(ack);
        }
    }
}

/// A shared [`SlotState`].
#[derive(Clone, Default)]
pub(crate) struct Slot(Arc<SlotInner>);

#[derive(Default)]
pub(crate) struct SlotInner {
    state: Mutex<SlotState>,
    /// Whether `redeliver` holds something (read without the lock on every event).
    redeliveries: AtomicBool,
}

/// The locked slot; keeps the `redeliveries` flag in step when released.
pub(crate) struct SlotGuard<'a> {
    guard: MutexGuard<'a, SlotState>,
    flag: &'a AtomicBool,
}

impl std::ops::Deref for SlotGuard<'_> {
    type Target = SlotState;
    fn deref(&self) -> &SlotState {
        &self.guard
    }
}

impl std::ops::DerefMut for SlotGuard<'_> {
    fn deref_mut(&mut self) -> &mut SlotState {
        &mut self.guard
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.flag
            .store(!self.guard.redeliver.is_empty(), Ordering::Relaxed);
    }
}

impl Slot {
    pub(crate) fn lock(&self) -> SlotGuard<'_> {
        SlotGuard {
            guard: self.0.state.lock().unwrap_or_else(|e| e.into_inner()),
            flag: &self.0.redeliveries,
        }
    }

    /// Whether events wait to be handed out again.
    pub(crate) fn has_redeliveries(&self) -> bool {
        self.0.redeliveries.load(Ordering::Relaxed)
    }

    /// Puts events back to be handed out first.
    pub(crate) fn give_back(&self, events: Vec<Box<dyn Any + Send>>) {
        if !events.is_empty() {
            self.lock().redeliver.extend(events);
        }
    }
}
