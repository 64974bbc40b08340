//! Streams: what an agent iterates. A [`Stream`] is a [`futures_util::Stream`] of values
//! (Faust's `async for value in stream`): every `StreamExt` adapter works on it with its usual
//! meaning (`filter`, `map`, `then`, `take`, `enumerate`, ...), and it adds Faust's own:
//! [`Stream::items`], [`Stream::events`], [`Stream::enumerate_from`],
//! `take_batches` / `take_events` (Faust's `take(max_, within)`, in `take`),
//! [`Stream::noack`] with manual [`Stream::ack`], and [`Stream::current`].
//!
//! # Acks
//! With acks enabled (the default), the stream acks each event when the next one is asked
//! for, so a `StreamExt::filter` that skips an event acks it at once (as Faust acks skipped
//! events). The last event is acked by the actor once the agent function is done with it, not
//! when the stream is dropped: a stream dropped because its actor was stopped mid-event acks
//! nothing. `noack()` turns automatic acks off: ack each event yourself with [`Event::ack`] or
//! [`Stream::ack`].
//!
//! # Sharing
//! Streams made from one channel share its queue: each event goes to exactly one of them (the
//! actors of an agent with `concurrency > 1`). Events whose source is gone (their partition was
//! revoked while they waited) are given up, not handed out.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::core::ack::{AckRef, Acker, NoAcks};
use crate::core::event::{Coordinate, Event, EventId, Headers, HeadersView, Message};
use crate::core::queue::Queue;
use crate::core::slot::{Current, Slot};

/// What a stream made by the app carries for `group_by`, `through` and `echo` (the broker
/// wiring of the agent it belongs to). The core knows nothing of it.
pub trait StreamContext: Send + Sync + 'static {
    /// The context as `Any`, for the app to find its own type.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Turns a key into JSON for a reply's `ReqRepResponse` (set on streams whose key type is a
/// serde type).
pub type KeyToJson<K> = fn(&K) -> Option<serde_json::Value>;

/// [`KeyToJson`] for a serde key.
pub fn key_to_json<K: serde::Serialize>(key: &K) -> Option<serde_json::Value> {
    serde_json::to_value(key).ok()
}

/// Stops a task when dropped (the tasks feeding a stream: a `group_by` forwarder).
pub struct TaskGuard(tokio::task::AbortHandle);

impl TaskGuard {
    /// Guards `task`.
    pub fn new(task: tokio::task::AbortHandle) -> Self {
        TaskGuard(task)
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type EventIter<K, V> = Box<dyn Iterator<Item = Event<K, V>> + Send>;

enum Source<K, V> {
    Queue(Arc<Queue<Event<K, V>>>),
    Iter(EventIter<K, V>),
}

/// A stream of events, yielding values; see the [module docs](self).
pub struct Stream<K, V> {
    source: Source<K, V>,
    slot: Slot,
    acks: bool,
    /// The last hand-out is not acked yet (automatic acks happen on the next poll).
    handed_out: bool,
    key_json: Option<KeyToJson<K>>,
    context: Option<Arc<dyn StreamContext>>,
    guards: Vec<TaskGuard>,
    /// Events taken from the queue and not handed out yet.
    scratch: VecDeque<Event<K, V>>,
    /// Events taken from the queue per lock: more than one only for a stream alone on its
    /// queue (an agent with one actor), so that other actors are never starved.
    batch: usize,
    /// Automatic acks not given to the acker yet: they go together, when the stream has no
    /// event left at hand (before it waits) or has gathered many.
    pending_acks: Vec<AckRef>,
}

/// Acks gathered before they go to the acker in one call.
const ACK_BATCH: usize = 64;
/// Events a stream alone on its queue takes per lock: as many as a partition task hands over
/// at once, so that the queue usually trades its whole buffer instead of moving events (they
/// no longer count against the queue's capacity once taken, so up to twice the capacity is
/// buffered).
const EXCLUSIVE_BATCH: usize = 1024;

impl<K, V> fmt::Debug for Stream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("acks", &self.acks)
            .finish_non_exhaustive()
    }
}

/// The event a stream is on (Faust's `stream.current_event`), without its value.
#[derive(Clone)]
pub struct CurrentEvent(Current);

impl fmt::Debug for CurrentEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentEvent")
            .field("id", &self.0.id())
            .finish_non_exhaustive()
    }
}

impl CurrentEvent {
    pub(crate) fn from_current(c: Current) -> Self {
        CurrentEvent(c)
    }

    /// The event a fetched record made (for a failure found after the event was processed:
    /// a write that failed later).
    pub fn of_message(message: Message, ack: Option<AckRef>) -> Self {
        CurrentEvent(Current {
            ack,
            seq: u64::try_from(message.offset()).unwrap_or_default(),
            headers: Headers::default(),
            message: Some(message),
            reply: None,
        })
    }

    /// Its identity.
    pub fn id(&self) -> EventId {
        self.0.id()
    }

    /// Topic/partition/offset when from a topic.
    pub fn coordinate(&self) -> Option<Coordinate> {
        self.0.coordinate()
    }

    /// Its Kafka metadata and record, when from a topic.
    pub fn message(&self) -> Option<&Message> {
        self.0.message.as_ref()
    }

    /// Its headers.
    pub fn headers(&self) -> HeadersView<'_> {
        self.0.headers()
    }

    /// Acks it now; `true` the first time.
    pub fn ack(&self) -> bool {
        self.0.ack.as_ref().is_some_and(AckRef::ack)
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Stream<K, V> {
    /// A stream over `queue` (the events of a channel or of an agent's topics).
    pub fn from_queue(queue: Arc<Queue<Event<K, V>>>) -> Self {
        Self::with_source(Source::Queue(queue))
    }

    fn with_source(source: Source<K, V>) -> Self {
        Stream {
            source,
            slot: Slot::default(),
            acks: true,
            handed_out: false,
            key_json: None,
            context: None,
            guards: Vec::new(),
            scratch: VecDeque::with_capacity(1),
            batch: 1,
            pending_acks: Vec::with_capacity(ACK_BATCH),
        }
    }

    /// Whether this stream is the only reader of its queue (it then takes events in batches).
    pub(crate) fn exclusive(mut self, alone: bool) -> Self {
        self.batch = if alone { EXCLUSIVE_BATCH } else { 1 };
        self
    }

    /// Gives the gathered automatic acks to their ackers.
    pub(crate) fn flush_acks(&mut self) {
        if !self.pending_acks.is_empty() {
            AckRef::ack_all(&mut self.pending_acks);
        }
    }

    /// A stream over a plain iterable (Faust's `app.stream([...])`); acks are dropped.
    pub fn from_values<I>(values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        I::IntoIter: Send + 'static,
    {
        Self::from_values_with_acks(values, Arc::new(NoAcks))
    }

    /// A stream over a plain iterable whose acks go to `acker` (ids from 0).
    pub fn from_values_with_acks<I>(values: I, acker: Arc<dyn Acker>) -> Self
    where
        I: IntoIterator<Item = V>,
        I::IntoIter: Send + 'static,
    {
        let events = values.into_iter().enumerate().map(move |(i, v)| {
            let seq = i as u64;
            Event::new(
                None,
                v,
                Headers::default(),
                seq,
                Some(AckRef::new(Arc::clone(&acker), seq, 0)),
            )
        });
        Self::with_source(Source::Iter(Box::new(events)))
    }

    /// Uses `f` to put the key of an event that asks for a reply into the reply.
    pub fn with_key_json(mut self, f: Option<KeyToJson<K>>) -> Self {
        self.key_json = f;
        self
    }

    /// Attaches the app's wiring (for `group_by`, `through`, `echo`).
    pub fn with_context(mut self, context: Option<Arc<dyn StreamContext>>) -> Self {
        self.context = context;
        self
    }

    /// The app's wiring, if any.
    pub fn context(&self) -> Option<&Arc<dyn StreamContext>> {
        self.context.as_ref()
    }

    /// Keeps `guard`'s task running for as long as this stream lives.
    pub fn guard(&mut self, guard: TaskGuard) {
        self.guards.push(guard);
    }

    /// Gives this stream's actor slot and guards to `other` (a stream that replaces this one
    /// in the agent function, e.g. the stream of a `group_by`), and takes a fresh slot.
    pub fn hand_over<K2, V2>(&mut self, other: &mut Stream<K2, V2>) {
        other.slot = std::mem::take(&mut self.slot);
        other.guards.append(&mut self.guards);
        other.acks = self.acks;
    }

    pub(crate) fn with_slot(mut self, slot: Slot) -> Self {
        self.slot = slot;
        self
    }

    pub(crate) fn keep_copies(self, keep: bool) -> Self {
        {
            let mut s = self.slot.lock();
            if keep {
                s.copies.get_or_insert_with(Vec::new);
            } else {
                s.copies = None;
            }
        }
        self
    }

    /// Turns automatic acks off (Faust's `noack()`); ack with [`Stream::ack`] or
    /// [`Event::ack`].
    pub fn noack(mut self) -> Self {
        self.acks = false;
        self
    }

    /// Acks an event by hand. Returns `false` if it was already acked.
    pub fn ack(&self, event: &Event<K, V>) -> bool {
        event.ack()
    }

    /// The event being processed (the last one this stream handed out).
    pub fn current(&self) -> Option<CurrentEvent> {
        self.slot.lock().current.clone().map(CurrentEvent)
    }

    /// Yields whole [`Event`]s (key, value, headers, metadata) instead of values.
    pub fn events(self) -> Events<K, V> {
        Events(self)
    }

    /// Yields `(key, value)` pairs.
    pub fn items(self) -> Items<K, V> {
        Items(self)
    }

    /// Yields `(index, value)` pairs, counting from `start` (Faust's `enumerate(start)`;
    /// `StreamExt::enumerate` counts from 0).
    pub fn enumerate_from(self, start: usize) -> EnumerateFrom<K, V> {
        EnumerateFrom {
            stream: self,
            next: start,
        }
    }

    /// Stops the agent with `error` once this stream's function returns (a stream adapter
    /// that cannot work, e.g. `group_by` with concurrency > 1).
    pub fn fail(&self, error: crate::core::error::AgentError) {
        self.slot.lock().fatal = Some(error);
    }

    /// Acks what the last hand-out left pending, when acks are automatic (gathered, see
    /// `pending_acks`).
    pub(crate) fn ack_previous(&mut self) {
        if !std::mem::take(&mut self.handed_out) {
            return;
        }
        if self.acks {
            self.slot.lock().take_acks_into(&mut self.pending_acks);
            if self.pending_acks.len() >= ACK_BATCH {
                self.flush_acks();
            }
        }
    }

    /// [`ack_previous`](Self::ack_previous), unless the next event is at hand: the hand-out
    /// then takes the previous ack under the slot lock it takes anyway (one lock per event
    /// instead of two). `poll_event` acks it before it waits, ends or redelivers.
    pub(crate) fn ack_previous_with_next(&mut self) {
        if self.handed_out && self.acks && !self.scratch.is_empty() && !self.slot.has_redeliveries()
        {
            return;
        }
        self.ack_previous();
    }

    /// The next event (redeliveries first), skipping events whose source is gone.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event<K, V>>> {
        loop {
            if self.slot.has_redeliveries() {
                self.ack_previous();
            }
            if let Some(ev) = self.redelivery() {
                return Poll::Ready(Some(ev));
            }
            let next = match self.scratch.pop_front() {
                Some(ev) => Some(ev),
                None => {
                    // Nothing at hand: what was processed is acked before waiting.
                    self.ack_previous();
                    self.flush_acks();
                    match &mut self.source {
                        Source::Queue(q) => match q.poll_pop(cx, self.batch, &mut self.scratch) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(false) => None,
                            Poll::Ready(true) => self.scratch.pop_front(),
                        },
                        Source::Iter(it) => it.next(),
                    }
                }
            };
            let Some(ev) = next else {
                return Poll::Ready(None);
            };
            match ev.ack_ref() {
                Some(a) if !a.is_live() => {
                    // Its partition was revoked or lost while it waited: the next owner
                    // reads it again.
                    a.abandon();
                }
                _ => return Poll::Ready(Some(ev)),
            }
        }
    }

    fn redelivery(&mut self) -> Option<Event<K, V>> {
        if !self.slot.has_redeliveries() {
            return None;
        }
        let mut slot = self.slot.lock();
        let i = slot.redeliver.iter().position(|b| b.is::<Event<K, V>>())?;
        let boxed = slot.redeliver.remove(i);
        boxed.downcast::<Event<K, V>>().ok().map(|b| *b)
    }

    /// What the slot records of `ev` when it is handed out.
    fn current_of(
        &self,
        ev: &Event<K, V>,
    ) -> Option<(crate::core::reqrep::ReplyTo, Option<serde_json::Value>)> {
        if !ev.headers().asks_for_reply() {
            return None;
        }
        let to = ev.reply_to()?;
        let key = match (&ev.key, self.key_json) {
            (Some(k), Some(f)) => f(k),
            _ => None,
        };
        Some((to, key))
    }

    fn record_span(ev_id: impl FnOnce() -> EventId) {
        // Inside an actor this is the actor's `agent` span (a no-op elsewhere): `event` is the
        // coordinate `topic[partition]@offset`, or the channel sequence number.
        let span = tracing::Span::current();
        if !span.is_disabled() {
            let id = ev_id();
            match &id.coordinate {
                Some(c) => span.record("event", tracing::field::display(c)),
                None => span.record("event", id.seq),
            };
        }
    }

    /// Hands the value out: the rest of the event goes to the slot.
    fn hand_out(&mut self, ev: Event<K, V>) -> V {
        let reply = self.current_of(&ev);
        Self::record_span(|| ev.id());
        let mut slot = self.slot.lock();
        let previous = std::mem::take(&mut self.handed_out) && self.acks;
        if previous {
            slot.take_acks_into(&mut self.pending_acks);
        }
        slot.begin_unit();
        if let Some(copies) = &mut slot.copies {
            copies.push(Box::new(ev.clone()));
        }
        slot.auto_ack = self.acks;
        let (value, meta) = ev.split();
        let finished = slot.current.replace(Current {
            ack: meta.ack,
            seq: meta.seq,
            message: meta.message,
            headers: meta.headers,
            reply,
        });
        drop(slot);
        drop(finished);
        self.handed_out = true;
        if previous && self.pending_acks.len() >= ACK_BATCH {
            self.flush_acks();
        }
        value
    }

    /// Hands the whole event out; the slot records a copy of its metadata.
    pub(crate) fn hand_out_event(&mut self, ev: &Event<K, V>) {
        let reply = self.current_of(ev);
        Self::record_span(|| ev.id());
        let mut slot = self.slot.lock();
        let previous = std::mem::take(&mut self.handed_out) && self.acks;
        if previous {
            slot.take_acks_into(&mut self.pending_acks);
        }
        slot.begin_unit();
        if let Some(copies) = &mut slot.copies {
            copies.push(Box::new(ev.clone()));
        }
        slot.auto_ack = self.acks;
        slot.current = Some(Current {
            ack: ev.ack_ref().cloned(),
            seq: ev.seq(),
            message: ev.message().cloned(),
            headers: ev.own_headers().clone(),
            reply,
        });
        drop(slot);
        self.handed_out = true;
        if previous && self.pending_acks.len() >= ACK_BATCH {
            self.flush_acks();
        }
    }

    /// Records a batch handed out by `take`: its acks (acked on the next request) and its last
    /// event as the current one.
    pub(crate) fn hand_out_batch(&mut self, batch: &[Event<K, V>]) {
        let reply = batch.last().and_then(|ev| self.current_of(ev));
        let mut slot = self.slot.lock();
        slot.begin_unit();
        if let Some(copies) = &mut slot.copies {
            copies.extend(
                batch
                    .iter()
                    .map(|ev| Box::new(ev.clone()) as Box<dyn std::any::Any + Send>),
            );
        }
        slot.auto_ack = self.acks;
        slot.batch = batch.iter().filter_map(|e| e.ack_ref().cloned()).collect();
        slot.current = batch.last().map(|ev| Current {
            ack: None,
            seq: ev.seq(),
            message: ev.message().cloned(),
            headers: ev.own_headers().clone(),
            reply,
        });
        drop(slot);
        self.handed_out = true;
    }

    /// Puts events back to be handed out first (a batch that was being gathered when its
    /// stream was dropped).
    pub(crate) fn give_back(&self, events: Vec<Event<K, V>>) {
        self.slot.give_back(
            events
                .into_iter()
                .map(|ev| Box::new(ev) as Box<dyn std::any::Any + Send>)
                .collect(),
        );
    }
}

impl<K, V> Drop for Stream<K, V> {
    fn drop(&mut self) {
        // What was processed is acked; events taken from the queue and not handed out go
        // back to its front (after the slot's redeliveries, before the rest: the order holds
        // for a restarted actor, another actor or a draining worker). The current event is
        // neither: its actor decides.
        if !self.pending_acks.is_empty() {
            AckRef::ack_all(&mut self.pending_acks);
        }
        if let (Source::Queue(q), false) = (&self.source, self.scratch.is_empty()) {
            q.return_front(std::mem::take(&mut self.scratch));
        }
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> futures_util::Stream for Stream<K, V> {
    type Item = V;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<V>> {
        self.ack_previous_with_next();
        match self.poll_event(cx) {
            Poll::Ready(Some(ev)) => Poll::Ready(Some(self.hand_out(ev))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Yields whole events. See [`Stream::events`].
pub struct Events<K, V>(Stream<K, V>);

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Events<K, V> {
    /// Acks an event by hand (with [`Stream::noack`]).
    pub fn ack(&self, event: &Event<K, V>) -> bool {
        event.ack()
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> futures_util::Stream for Events<K, V> {
    type Item = Event<K, V>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event<K, V>>> {
        let s = &mut self.0;
        s.ack_previous_with_next();
        match s.poll_event(cx) {
            Poll::Ready(Some(ev)) => {
                s.hand_out_event(&ev);
                Poll::Ready(Some(ev))
            }
            other => other,
        }
    }
}

/// Yields `(key, value)`. See [`Stream::items`].
pub struct Items<K, V>(Stream<K, V>);

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> futures_util::Stream for Items<K, V> {
    type Item = (Option<K>, V);
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let s = &mut self.0;
        s.ack_previous_with_next();
        match s.poll_event(cx) {
            Poll::Ready(Some(mut ev)) => {
                let key = ev.key.take();
                let value = s.hand_out(ev);
                Poll::Ready(Some((key, value)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Yields `(index, value)`. See [`Stream::enumerate_from`].
pub struct EnumerateFrom<K, V> {
    stream: Stream<K, V>,
    next: usize,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> futures_util::Stream
    for EnumerateFrom<K, V>
{
    type Item = (usize, V);
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_next(cx) {
            Poll::Ready(Some(v)) => {
                let i = this.next;
                this.next += 1;
                Poll::Ready(Some((i, v)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

// No field is pinned in place, so the wrappers are `Unpin` whatever `K` and `V` are.
impl<K, V> Unpin for Stream<K, V> {}
impl<K, V> Unpin for Events<K, V> {}
impl<K, V> Unpin for Items<K, V> {}
impl<K, V> Unpin for EnumerateFrom<K, V> {}
