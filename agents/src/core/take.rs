//! [`Stream::take_batches`] and [`Stream::take_events`] (Faust's `take(max_, within)`): up to `max`
//! events, or whatever arrived within `within` of a batch's first event.
//!
//! A batch handed out is acked (with automatic acks) when the next batch is asked for, or by
//! the actor once the agent function is done with it; never when the stream is dropped, so an
//! agent stopped in the middle of a batch commits nothing of it. Events gathered for a batch
//! not handed out yet go back to the actor's slot when the batcher is dropped, so a restarted
//! actor gets them first (and a stopped one gives them up).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::core::event::Event;
use crate::core::stream::Stream;

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Stream<K, V> {
    /// Batches of up to `max` values, or of whatever arrived within `within` of the batch's
    /// first value (Faust's `take(max_, within)`). A batch is acked when the next one is
    /// requested (or by the actor once the function is done with it). Never yields an empty
    /// batch; yields the remainder when the source ends.
    pub fn take_batches(self, max: usize, within: Duration) -> TakeBatches<K, V> {
        TakeBatches(Batcher::new(self, max, within))
    }

    /// Like [`Stream::take_batches`], yielding whole events (Faust's `take_events`). With
    /// [`Stream::noack`] first, nothing is acked automatically (Faust's `noack_take`).
    pub fn take_events(self, max: usize, within: Duration) -> TakeEvents<K, V> {
        TakeEvents(Batcher::new(self, max, within))
    }
}

/// Batches of values. See [`Stream::take_batches`].
pub struct TakeBatches<K: Clone + Send + 'static, V: Clone + Send + 'static>(Batcher<K, V>);

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> futures_util::Stream
    for TakeBatches<K, V>
{
    type Item = Vec<V>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<V>>> {
        self.0
            .poll_batch(cx)
            .map(|b| b.map(|b| b.into_iter().map(|e| e.value).collect()))
    }
}

/// Batches of events. See [`Stream::take_events`].
pub struct TakeEvents<K: Clone + Send + 'static, V: Clone + Send + 'static>(Batcher<K, V>);

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> futures_util::Stream
    for TakeEvents<K, V>
{
    type Item = Vec<Event<K, V>>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_batch(cx)
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Unpin for TakeBatches<K, V> {}
impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Unpin for TakeEvents<K, V> {}

/// Gathers batches from a stream.
pub(crate) struct Batcher<K: Clone + Send + 'static, V: Clone + Send + 'static> {
    stream: Stream<K, V>,
    max: usize,
    within: Duration,
    buf: Vec<Event<K, V>>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Batcher<K, V> {
    pub(crate) fn new(stream: Stream<K, V>, max: usize, within: Duration) -> Self {
        Batcher {
            stream,
            max: max.max(1),
            within,
            buf: Vec::new(),
            deadline: None,
            done: false,
        }
    }

    fn flush(&mut self) -> Poll<Option<Vec<Event<K, V>>>> {
        self.deadline = None;
        let batch = std::mem::take(&mut self.buf);
        self.stream.hand_out_batch(&batch);
        Poll::Ready(Some(batch))
    }

    pub(crate) fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<Vec<Event<K, V>>>> {
        self.stream.ack_previous();
        // A batch's acks are worth a flush of their own: the agent may take long over the next.
        self.stream.flush_acks();
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

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Drop for Batcher<K, V> {
    fn drop(&mut self) {
        self.stream.give_back(std::mem::take(&mut self.buf));
    }
}
