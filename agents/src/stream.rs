//! Streams: what an agent iterates. A [`Stream`] is a [`futures_util::Stream`] of values (Faust's
//! `async for value in stream`), with Faust's broker-free combinators: [`Stream::filter`],
//! [`Stream::filter_async`], [`Stream::take`], [`Stream::enumerate`], [`Stream::items`],
//! [`Stream::events`] and [`Stream::noack`] with manual [`Stream::ack`].
//!
//! # Acks
//! With acks enabled (the default), the stream acks each event when the next one is requested, and
//! acks the last one when the stream is dropped (Faust acks in the iterator's `finally`). Events
//! dropped by a filter are acked at once. `take` acks a whole batch when the next batch is
//! requested. `noack()` turns automatic acks off: ack each event yourself with [`Event::ack`] or
//! [`Stream::ack`].
//!
//! # Sharing
//! Streams made from one channel share its queue: each event goes to exactly one of them. A
//! stream waiting for an event holds the queue until one arrives, so the streams (actors) take
//! events in turn. A `take` batch waiting for its `within` deadline keeps its pending fetch, so
//! other actors on the same channel wait while it fills.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};

use crate::ack::{AckSink, Delivery, NoAcks};
use crate::event::{AckHandle, Event};
use crate::repartition::{AbortOnDrop, TopicContext};

/// A shared event source: every stream made from it takes events from the one queue.
pub(crate) type Source<K, V> = Arc<tokio::sync::Mutex<BoxStream<'static, Event<K, V>>>>;

type SyncFilter<V> = Box<dyn FnMut(&V) -> bool + Send>;
type AsyncFilter<V> = Box<dyn FnMut(&V) -> BoxFuture<'static, bool> + Send>;

/// An event going through the filters: the event, the next filter, the running async one.
type Filtering<K, V> = (Event<K, V>, usize, Option<BoxFuture<'static, bool>>);

enum Filter<V> {
    Sync(SyncFilter<V>),
    Async(AsyncFilter<V>),
}

/// The event a stream is on, shared with the actor that runs the agent (for replies, error
/// coordinates and retries).
pub(crate) struct Current<K, V> {
    pub(crate) event: Option<Event<K, V>>,
    /// Set by the actor before dropping the stream when the current event will be redelivered.
    pub(crate) keep_unacked: bool,
    /// The stream belongs to an actor, which acks the last event itself once the agent
    /// function is done with it (or retries it after an error).
    pub(crate) actor: bool,
}

pub(crate) type CurrentSlot<K, V> = Arc<Mutex<Current<K, V>>>;

pub(crate) fn new_slot<K, V>() -> CurrentSlot<K, V> {
    Arc::new(Mutex::new(Current {
        event: None,
        keep_unacked: false,
        actor: false,
    }))
}

/// A stream of events from a channel (later: a topic), yielding values.
pub struct Stream<K, V> {
    source: Source<K, V>,
    pending: Option<BoxFuture<'static, Option<Event<K, V>>>>,
    redeliver: VecDeque<Event<K, V>>,
    filters: Vec<Filter<V>>,
    filtering: Option<Filtering<K, V>>,
    acks: bool,
    last: Option<AckHandle>,
    pub(crate) current: CurrentSlot<K, V>,
    /// The broker wiring of a topic agent's stream (for `group_by`, `through`, `echo`).
    pub(crate) ctx: Option<Arc<dyn TopicContext>>,
    /// Tasks feeding this stream (a `group_by` forwarder): stopped when the stream is dropped.
    pub(crate) guards: Vec<AbortOnDrop>,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Stream<K, V> {
    pub(crate) fn from_source(source: Source<K, V>) -> Self {
        Stream {
            source,
            pending: None,
            redeliver: VecDeque::new(),
            filters: Vec::new(),
            filtering: None,
            acks: true,
            last: None,
            current: new_slot(),
            ctx: None,
            guards: Vec::new(),
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

    /// A stream over a plain iterable whose acks go to `acks` (sequence numbers from 0).
    pub fn from_values_with_acks<I>(values: I, acks: Arc<dyn AckSink>) -> Self
    where
        I: IntoIterator<Item = V>,
        I::IntoIter: Send + 'static,
    {
        let events = values.into_iter().enumerate().map(move |(i, v)| {
            Event::new(
                None,
                v,
                Vec::new(),
                None,
                Delivery {
                    seq: i as u64,
                    coordinate: None,
                },
                acks.clone(),
            )
        });
        Self::from_source(Arc::new(tokio::sync::Mutex::new(
            futures_util::stream::iter(events).boxed(),
        )))
    }

    pub(crate) fn with_slot(mut self, slot: CurrentSlot<K, V>) -> Self {
        self.current = slot;
        self
    }

    pub(crate) fn redeliver_first(mut self, event: Event<K, V>) -> Self {
        self.redeliver.push_back(event);
        self
    }

    /// Keeps only values for which `pred` is true; the others are acked and skipped.
    pub fn filter(mut self, pred: impl FnMut(&V) -> bool + Send + 'static) -> Self {
        self.filters.push(Filter::Sync(Box::new(pred)));
        self
    }

    /// Like [`Stream::filter`] with an async predicate.
    pub fn filter_async<F, Fut>(mut self, mut pred: F) -> Self
    where
        F: FnMut(&V) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.filters
            .push(Filter::Async(Box::new(move |v: &V| pred(v).boxed())));
        self
    }

    /// Turns automatic acks off (Faust's `noack()`); ack with [`Stream::ack`] or [`Event::ack`].
    pub fn noack(mut self) -> Self {
        self.acks = false;
        self
    }

    /// Acks an event by hand. Returns `false` if it was already acked.
    pub fn ack(&self, event: &Event<K, V>) -> bool {
        event.ack()
    }

    /// The event being processed (the last one this stream delivered).
    pub fn current_event(&self) -> Option<Event<K, V>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .event
            .clone()
    }

    /// Yields whole [`Event`]s (key, value, headers, metadata) instead of values.
    pub fn events(self) -> Events<K, V> {
        Events(self)
    }

    /// Yields `(key, value)` pairs.
    pub fn items(self) -> Items<K, V> {
        Items(self)
    }

    /// Yields `(index, value)` pairs, counting from `start`.
    pub fn enumerate(self, start: usize) -> Enumerate<K, V> {
        Enumerate {
            stream: self,
            next: start,
        }
    }

    /// Batches of up to `max` values, or of whatever arrived within `within` of the batch's
    /// first value (Faust's `take(max_, within)`). A batch is acked when the next one is
    /// requested. Never yields an empty batch; yields the remainder when the source ends.
    pub fn take(self, max: usize, within: Duration) -> Take<K, V> {
        Take(Batcher::new(self, max, within))
    }

    /// Like [`Stream::take`], yielding whole events (Faust's `take_events`). With
    /// [`Stream::noack`] first, nothing is acked automatically (Faust's `noack_take`).
    pub fn take_events(self, max: usize, within: Duration) -> TakeEvents<K, V> {
        TakeEvents(Batcher::new(self, max, within))
    }

    fn deliver(&mut self, ev: Event<K, V>) -> Poll<Option<Event<K, V>>> {
        self.last = Some(ev.same_ack());
        Poll::Ready(Some(ev))
    }

    /// Polls the next event, acking the previous one first when acks are on.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event<K, V>>> {
        if let Some(h) = self.last.take() {
            if self.acks {
                h.ack();
            }
        }
        loop {
            // Finish filtering an event whose async predicate is running.
            if let Some((ev, idx, fut)) = self.filtering.as_mut() {
                let mut keep = true;
                let mut i = *idx;
                if let Some(f) = fut.as_mut() {
                    match f.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(k) => {
                            keep = k;
                            i += 1;
                            *fut = None;
                        }
                    }
                }
                while keep && i < self.filters.len() {
                    match &mut self.filters[i] {
                        Filter::Sync(p) => {
                            keep = p(&ev.value);
                            i += 1;
                        }
                        Filter::Async(p) => {
                            *idx = i;
                            *fut = Some(p(&ev.value));
                            break;
                        }
                    }
                }
                if fut.is_some() {
                    continue;
                }
                let (ev, _, _) = self.filtering.take().expect("filtering is set");
                if keep {
                    self.set_current(&ev);
                    return self.deliver(ev);
                }
                // Skipped: Faust acks skipped events so lag does not grow.
                ev.ack();
                continue;
            }
            let ev = match self.redeliver.pop_front() {
                Some(ev) => ev,
                None => {
                    let fut = self.pending.get_or_insert_with(|| {
                        let source = self.source.clone();
                        async move { source.lock().await.next().await }.boxed()
                    });
                    match fut.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(next) => {
                            self.pending = None;
                            match next {
                                Some(ev) => ev,
                                None => return Poll::Ready(None),
                            }
                        }
                    }
                }
            };
            self.filtering = Some((ev, 0, None));
        }
    }

    fn set_current(&self, ev: &Event<K, V>) {
        // Inside an actor this is the actor's `agent` span (a no-op elsewhere).
        let span = tracing::Span::current();
        match &ev.delivery().coordinate {
            Some(c) => span.record("event", tracing::field::display(c)),
            None => span.record("event", ev.delivery().seq),
        };
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        cur.event = Some(ev.clone());
    }
}

impl<K, V> Drop for Stream<K, V> {
    fn drop(&mut self) {
        let keep = self
            .current
            .lock()
            .map(|c| c.keep_unacked || c.actor)
            .unwrap_or(false);
        if let Some(h) = self.last.take() {
            if self.acks && !keep {
                h.ack();
            }
        }
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> futures_util::Stream for Stream<K, V> {
    type Item = V;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<V>> {
        self.poll_event(cx).map(|o| o.map(|e| e.value))
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
        self.0.poll_event(cx)
    }
}

/// Yields `(key, value)`. See [`Stream::items`].
pub struct Items<K, V>(Stream<K, V>);

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> futures_util::Stream for Items<K, V> {
    type Item = (Option<K>, V);
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_event(cx).map(|o| o.map(|e| (e.key, e.value)))
    }
}

/// Yields `(index, value)`. See [`Stream::enumerate`].
pub struct Enumerate<K, V> {
    stream: Stream<K, V>,
    next: usize,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> futures_util::Stream
    for Enumerate<K, V>
{
    type Item = (usize, V);
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.stream.poll_event(cx) {
            Poll::Ready(Some(e)) => {
                let i = this.next;
                this.next += 1;
                Poll::Ready(Some((i, e.value)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Batches events for [`Take`] and [`TakeEvents`].
struct Batcher<K, V> {
    stream: Stream<K, V>,
    max: usize,
    within: Duration,
    ack: bool,
    buf: Vec<Event<K, V>>,
    yielded: Vec<AckHandle>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Batcher<K, V> {
    fn new(mut stream: Stream<K, V>, max: usize, within: Duration) -> Self {
        let ack = stream.acks;
        stream.acks = false;
        Batcher {
            stream,
            max: max.max(1),
            within,
            ack,
            buf: Vec::new(),
            yielded: Vec::new(),
            deadline: None,
            done: false,
        }
    }

    fn flush(&mut self) -> Poll<Option<Vec<Event<K, V>>>> {
        self.deadline = None;
        let batch = std::mem::take(&mut self.buf);
        self.yielded = batch.iter().map(|e| e.same_ack()).collect();
        Poll::Ready(Some(batch))
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<Vec<Event<K, V>>>> {
        if self.ack {
            for h in self.yielded.drain(..) {
                h.ack();
            }
        }
        loop {
            if self.done {
                if self.buf.is_empty() {
                    return Poll::Ready(None);
                }
                return self.flush();
            }
            match self.stream.poll_event(cx) {
                Poll::Ready(Some(ev)) => {
                    self.buf.push(ev);
                    if self.buf.len() == 1 {
                        self.deadline = Some(Box::pin(tokio::time::sleep(self.within)));
                    }
                    if self.buf.len() >= self.max {
                        return self.flush();
                    }
                }
                Poll::Ready(None) => self.done = true,
                Poll::Pending => {
                    if let Some(d) = self.deadline.as_mut() {
                        if d.as_mut().poll(cx).is_ready() {
                            return self.flush();
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<K, V> Drop for Batcher<K, V> {
    fn drop(&mut self) {
        // The last yielded batch was handed to the agent: it is done with it (Faust's finally).
        if self.ack {
            for h in self.yielded.drain(..) {
                h.ack();
            }
        }
    }
}

/// Batches of values. See [`Stream::take`].
pub struct Take<K, V>(Batcher<K, V>);

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> futures_util::Stream for Take<K, V> {
    type Item = Vec<V>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<V>>> {
        self.0
            .poll_batch(cx)
            .map(|b| b.map(|b| b.into_iter().map(|e| e.value).collect()))
    }
}

/// Batches of events. See [`Stream::take_events`].
pub struct TakeEvents<K, V>(Batcher<K, V>);

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> futures_util::Stream
    for TakeEvents<K, V>
{
    type Item = Vec<Event<K, V>>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_batch(cx)
    }
}

// No field is ever pinned in place (futures are boxed), so the wrappers are `Unpin` whatever
// `K` and `V` are.
impl<K, V> Unpin for Stream<K, V> {}
impl<K, V> Unpin for Events<K, V> {}
impl<K, V> Unpin for Items<K, V> {}
impl<K, V> Unpin for Enumerate<K, V> {}
impl<K, V> Unpin for Take<K, V> {}
impl<K, V> Unpin for TakeEvents<K, V> {}
