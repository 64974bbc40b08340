//! In-memory channels (Faust's `app.channel()`): a bounded queue of events, like an
//! `asyncio.Queue`.
//!
//! Senders wait when the queue is full (back-pressure). Every [`Stream`] made from a channel
//! shares the one queue, so N streams (N actors) divide its events between them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::core::ack::{AckRef, Acker, NoAcks};
use crate::core::event::{Event, Headers};
use crate::core::queue::{Queue, TryPushError};
use crate::core::stream::{Stream, StreamContext};

/// Default capacity: Faust's `stream_buffer_maxsize` (4096).
pub const DEFAULT_CAPACITY: usize = 4096;

/// Sending to a closed channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel is closed")]
pub struct Closed;

pub use crate::core::queue::TryPushError as TrySendError;

/// A bounded in-memory channel of [`Event`]s. Cheap to clone; clones share the queue.
pub struct Channel<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Channel<K, V> {
    fn clone(&self) -> Self {
        Channel {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<K, V> {
    queue: Arc<Queue<Event<K, V>>>,
    acker: Arc<dyn Acker>,
    next_seq: AtomicU64,
    context: Mutex<Option<Arc<dyn StreamContext>>>,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Channel<K, V> {
    /// A channel holding at most `capacity` (≥ 1) queued events, whose acks are dropped.
    pub fn new(capacity: usize) -> Self {
        Self::with_acks(capacity, Arc::new(NoAcks))
    }

    /// A channel whose events' acks go to `acker` (ids are the sequence numbers, from 0).
    pub fn with_acks(capacity: usize, acker: Arc<dyn Acker>) -> Self {
        Channel {
            inner: Arc::new(Inner {
                queue: Arc::new(Queue::new(capacity)),
                acker,
                next_seq: AtomicU64::new(0),
                context: Mutex::new(None),
            }),
        }
    }

    /// The queue capacity.
    pub fn capacity(&self) -> usize {
        self.inner.queue.capacity()
    }

    /// Events queued now.
    pub fn len(&self) -> usize {
        self.inner.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.inner.queue.is_empty()
    }

    /// A sender.
    pub fn sender(&self) -> ChannelSender<K, V> {
        ChannelSender {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Sends a value (no key, no headers), waiting while the queue is full. Returns the
    /// event's sequence number.
    pub async fn send(&self, value: V) -> Result<u64, Closed> {
        self.sender().send(value).await
    }

    /// Stops accepting events; streams end once the queue is drained.
    pub fn close(&self) {
        self.inner.queue.close();
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.queue.is_closed()
    }

    /// A stream over the channel. Streams of one channel share its queue.
    pub fn stream(&self) -> Stream<K, V> {
        let context = self
            .inner
            .context
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Stream::from_queue(Arc::clone(&self.inner.queue)).with_context(context)
    }

    /// The queue itself (the runtime feeds it directly).
    pub fn queue(&self) -> &Arc<Queue<Event<K, V>>> {
        &self.inner.queue
    }

    /// Attaches what streams of this channel give their `group_by`, `through` and `echo`
    /// (the app's broker wiring).
    pub fn set_context(&self, context: Option<Arc<dyn StreamContext>>) {
        *self.inner.context.lock().unwrap_or_else(|e| e.into_inner()) = context;
    }
}

/// A cloneable handle that sends into a [`Channel`].
pub struct ChannelSender<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for ChannelSender<K, V> {
    fn clone(&self) -> Self {
        ChannelSender {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> ChannelSender<K, V> {
    fn make(&self, key: Option<K>, value: V, headers: Headers) -> Event<K, V> {
        let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let ack = AckRef::new(Arc::clone(&self.inner.acker), seq, 0);
        Event::new(key, value, headers, seq, Some(ack))
    }

    /// Sends a value, waiting while the queue is full. Returns the sequence number (they
    /// increase; a send that fails or is cancelled leaves a gap).
    pub async fn send(&self, value: V) -> Result<u64, Closed> {
        self.send_event(None, value, Vec::new()).await
    }

    /// Sends a key, value and headers, waiting while the queue is full.
    pub async fn send_event(
        &self,
        key: Option<K>,
        value: V,
        headers: Vec<(String, Option<Bytes>)>,
    ) -> Result<u64, Closed> {
        let ev = self.make(key, value, Headers::from_pairs(headers));
        let seq = ev.seq();
        self.inner.queue.push(ev).await.map_err(|_| Closed)?;
        Ok(seq)
    }

    /// Sends a prebuilt event as is (its sequence number and ack are kept).
    pub async fn deliver(&self, event: Event<K, V>) -> Result<(), Closed> {
        self.inner.queue.push(event).await.map_err(|_| Closed)
    }

    /// Sends without waiting.
    pub fn try_send(&self, value: V) -> Result<u64, TrySendError> {
        let ev = self.make(None, value, Headers::default());
        let seq = ev.seq();
        self.inner.queue.try_push(ev).map_err(|(e, _)| e)?;
        Ok(seq)
    }
}

impl From<TryPushError> for Closed {
    fn from(_: TryPushError) -> Self {
        Closed
    }
}
