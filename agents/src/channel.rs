//! In-memory channels (Faust's `app.channel()`): a bounded queue, like an `asyncio.Queue`.
//!
//! Senders are cloneable and wait when the queue is full (back-pressure). Every [`Stream`] made
//! from a channel shares the one queue, so N streams (N actors) divide its events between them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::ack::{AckSink, Delivery, NoAcks};
use crate::event::Event;
use crate::repartition::TopicContext;
use crate::stream::{Source, Stream};

/// Default capacity: Faust's `stream_buffer_maxsize` (4096).
pub const DEFAULT_CAPACITY: usize = 4096;

/// Sending to a closed channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel is closed")]
pub struct Closed;

/// Why [`ChannelSender::try_send`] did not send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError {
    /// The queue is at capacity.
    #[error("channel is full")]
    Full,
    /// The channel is closed.
    #[error("channel is closed")]
    Closed,
}

/// A bounded in-memory channel of [`Event`]s.
pub struct Channel<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Channel<K, V> {
    fn clone(&self) -> Self {
        Channel {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<K, V> {
    tx: Mutex<Option<mpsc::Sender<Event<K, V>>>>,
    source: Source<K, V>,
    acks: Arc<dyn AckSink>,
    next_seq: Arc<AtomicU64>,
    capacity: usize,
    ctx: Mutex<Option<Arc<dyn TopicContext>>>,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Channel<K, V> {
    /// A channel holding at most `capacity` (≥ 1) queued events, whose acks are dropped.
    pub fn new(capacity: usize) -> Self {
        Self::with_acks(capacity, Arc::new(NoAcks))
    }

    /// A channel whose events' acks go to `acks`.
    pub fn with_acks(capacity: usize, acks: Arc<dyn AckSink>) -> Self {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel::<Event<K, V>>(capacity);
        let rx =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|ev| (ev, rx)) },
            )
            .fuse()
            .boxed();
        Channel {
            inner: Arc::new(Inner {
                tx: Mutex::new(Some(tx)),
                source: Arc::new(tokio::sync::Mutex::new(rx)),
                acks,
                next_seq: Arc::new(AtomicU64::new(0)),
                capacity,
                ctx: Mutex::new(None),
            }),
        }
    }

    /// The queue capacity.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// A sender, or [`Closed`] after [`Channel::close`].
    pub fn sender(&self) -> Result<ChannelSender<K, V>, Closed> {
        let tx = self
            .inner
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(Closed)?;
        Ok(ChannelSender {
            tx,
            acks: self.inner.acks.clone(),
            next_seq: self.inner.next_seq.clone(),
        })
    }

    /// Sends a value (no key, no headers), waiting while the queue is full. Returns the event's
    /// sequence number.
    pub async fn send(&self, value: V) -> Result<u64, Closed> {
        self.sender()?.send(value).await
    }

    /// Stops accepting new senders; streams end once every existing sender is dropped and the
    /// queue is drained.
    pub fn close(&self) {
        self.inner
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// A stream over the channel. Streams of one channel share its queue.
    pub fn stream(&self) -> Stream<K, V> {
        let mut stream = Stream::from_source(self.inner.source.clone());
        stream.ctx = self
            .inner
            .ctx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        stream
    }

    /// Attaches the broker wiring its streams use for `group_by`, `through` and `echo`.
    pub(crate) fn set_context(&self, ctx: Arc<dyn TopicContext>) {
        *self.inner.ctx.lock().unwrap_or_else(|e| e.into_inner()) = Some(ctx);
    }
}

/// A cloneable handle that sends into a [`Channel`].
pub struct ChannelSender<K, V> {
    tx: mpsc::Sender<Event<K, V>>,
    acks: Arc<dyn AckSink>,
    next_seq: Arc<AtomicU64>,
}

impl<K, V> Clone for ChannelSender<K, V> {
    fn clone(&self) -> Self {
        ChannelSender {
            tx: self.tx.clone(),
            acks: self.acks.clone(),
            next_seq: self.next_seq.clone(),
        }
    }
}

impl<K, V> ChannelSender<K, V> {
    fn make(&self, key: Option<K>, value: V, headers: Vec<(String, Bytes)>) -> Event<K, V> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        Event::new(
            key,
            value,
            headers,
            None,
            Delivery {
                seq,
                coordinate: None,
            },
            self.acks.clone(),
        )
    }

    /// Sends a value, waiting while the queue is full. Returns the sequence number.
    pub async fn send(&self, value: V) -> Result<u64, Closed> {
        self.send_event(None, value, Vec::new()).await
    }

    /// Sends a key, value and headers, waiting while the queue is full.
    pub async fn send_event(
        &self,
        key: Option<K>,
        value: V,
        headers: Vec<(String, Bytes)>,
    ) -> Result<u64, Closed> {
        let permit = self.tx.reserve().await.map_err(|_| Closed)?;
        let ev = self.make(key, value, headers);
        let seq = ev.delivery().seq;
        permit.send(ev);
        Ok(seq)
    }

    /// Sends a prebuilt event as is: its delivery (sequence number, coordinate) and ack sink are
    /// kept, and the channel's sequence counter is not used. This is how a topic source (the
    /// broker wiring) feeds fetched records, with their offsets, to an agent.
    pub async fn deliver(&self, event: Event<K, V>) -> Result<(), Closed> {
        self.tx.send(event).await.map_err(|_| Closed)
    }

    /// Sends without waiting.
    pub fn try_send(&self, value: V) -> Result<u64, TrySendError> {
        let permit = self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => TrySendError::Full,
            mpsc::error::TrySendError::Closed(()) => TrySendError::Closed,
        })?;
        let ev = self.make(None, value, Vec::new());
        let seq = ev.delivery().seq;
        permit.send(ev);
        Ok(seq)
    }
}
