//! Where an agent's yielded values go: [`Sink`]s (Faust's `sink=[...]`: functions, async
//! functions, channels, other agents, topics) and the [`Replier`] that answers `ask`s.
//!
//! Writers that queue a record ([`Writer`], [`Replier`]: topics and agents, implemented by the
//! Kafka runtime) take the value by reference and encode it, and hold the event's ack until
//! the broker has the record; they have a synchronous fast path ([`Attempt`]) so that a
//! record queued at once costs no future. Function sinks take the value itself: it is moved
//! into the last of them and cloned only for the others.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::core::ack::AckRef;
use crate::core::channel::ChannelSender;
use crate::core::error::AgentError;
use crate::core::error::WriteError;
use crate::core::event::Message;
use crate::core::reqrep::ReplyTo;
use crate::core::stream::CurrentEvent;

/// Called with each event the agent gives up on (after its retries), before the event is
/// acked: the app sends its record to the agent's dead-letter topic.
pub type FailureHook = Arc<
    dyn Fn(CurrentEvent, AgentError) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync,
>;

/// The event a write is for: its acks (each held until the write is acknowledged: one event,
/// or every event of a `take` batch), its record when it came from a topic, and the agent
/// whose error policy applies if the write fails after it was queued (its dead-letter hook,
/// or else the worker stops).
#[derive(Clone, Copy)]
pub struct WriteFor<'a> {
    /// The acks of the events the value came from.
    pub acks: &'a [AckRef],
    /// The event's Kafka metadata and record.
    pub message: Option<&'a Message>,
    /// The agent that yielded the value.
    pub agent: &'a Arc<str>,
    /// The agent's dead-letter hook, if it has one.
    pub failure: Option<&'a FailureHook>,
}

impl std::fmt::Debug for WriteFor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteFor")
            .field("acks", &self.acks)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// The outcome of a synchronous write attempt.
#[derive(Debug)]
pub enum Attempt {
    /// Queued (or written); the writer holds the event's ack until it is acknowledged.
    Done,
    /// Failed before anything was queued.
    Failed(WriteError),
    /// Would have to wait (no room in the producer's buffer, metadata to fetch): use the
    /// async path.
    WouldBlock,
}

/// A writer of values that queues records (a topic, an agent's topic).
pub trait Writer<T>: Send + Sync + 'static {
    /// What it writes to, for logs and errors.
    fn target(&self) -> &str;
    /// Queues `value` if that can be done at once.
    fn try_write(&self, value: &T, event: WriteFor<'_>) -> Attempt;
    /// Queues `value`, waiting for room.
    fn write<'a>(
        &'a self,
        value: &'a T,
        event: WriteFor<'a>,
    ) -> BoxFuture<'a, Result<(), WriteError>>;
}

/// Sends the replies of an agent (Faust's `ReqRepResponse` to the reply topic).
pub trait Replier<T>: Send + Sync + 'static {
    /// Queues the reply `value` to `to` (with the event's key as JSON) if that can be done at
    /// once.
    fn try_reply(
        &self,
        to: &ReplyTo,
        key: Option<&serde_json::Value>,
        value: &T,
        event: WriteFor<'_>,
    ) -> Attempt;
    /// Queues the reply, waiting for room.
    fn reply<'a>(
        &'a self,
        to: &'a ReplyTo,
        key: Option<&'a serde_json::Value>,
        value: &'a T,
        event: WriteFor<'a>,
    ) -> BoxFuture<'a, Result<(), WriteError>>;
}

type FuncSink<O> = Arc<dyn Fn(O) + Send + Sync>;
type AsyncSink<O> = Arc<dyn Fn(O) -> BoxFuture<'static, ()> + Send + Sync>;

pub(crate) enum SinkKind<O> {
    Func(FuncSink<O>),
    Async(AsyncSink<O>),
    Writer(Arc<dyn Writer<O>>),
}

impl<O> Clone for SinkKind<O> {
    fn clone(&self) -> Self {
        match self {
            SinkKind::Func(f) => SinkKind::Func(Arc::clone(f)),
            SinkKind::Async(f) => SinkKind::Async(Arc::clone(f)),
            SinkKind::Writer(w) => SinkKind::Writer(Arc::clone(w)),
        }
    }
}

/// Where yielded values go besides the reply (Faust's `sink=[...]`).
pub struct Sink<O>(pub(crate) SinkKind<O>);

impl<O> Clone for Sink<O> {
    fn clone(&self) -> Self {
        Sink(self.0.clone())
    }
}

impl<O: 'static> std::fmt::Debug for Sink<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            SinkKind::Func(_) => "function",
            SinkKind::Async(_) => "async function",
            SinkKind::Writer(w) => w.target(),
        };
        f.debug_tuple("Sink").field(&kind).finish()
    }
}

impl<O: Clone + Send + 'static> Sink<O> {
    /// A plain function called with each value.
    pub fn func(f: impl Fn(O) + Send + Sync + 'static) -> Self {
        Sink(SinkKind::Func(Arc::new(f)))
    }

    /// An async function; the actor waits for it before taking its next event.
    pub fn async_func<F, Fut>(f: F) -> Self
    where
        F: Fn(O) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Sink(SinkKind::Async(Arc::new(move |o| f(o).boxed())))
    }

    /// A writer that queues records (topics, agents: see the app's `Topic::sink`).
    pub fn writer(w: Arc<dyn Writer<O>>) -> Self {
        Sink(SinkKind::Writer(w))
    }

    /// A channel: each value is sent (no key), waiting while the channel is full.
    pub fn channel<K2: Clone + Send + 'static>(sender: ChannelSender<K2, O>) -> Self {
        Sink::async_func(move |o| {
            let sender = sender.clone();
            async move {
                if sender.send(o).await.is_err() {
                    tracing::warn!("sink channel is closed; value dropped");
                }
            }
        })
    }
}

/// Sends `value` to every sink: writers by reference, functions by value (moved into the
/// last one). Stops at the first writer that fails.
pub(crate) async fn dispatch<O: Clone + Send + Sync + 'static>(
    sinks: &[Sink<O>],
    value: O,
    event: WriteFor<'_>,
) -> Result<(), (String, WriteError)> {
    for sink in sinks {
        if let SinkKind::Writer(w) = &sink.0 {
            match w.try_write(&value, event) {
                Attempt::Done => {}
                Attempt::Failed(e) => return Err((w.target().to_owned(), e)),
                Attempt::WouldBlock => w
                    .write(&value, event)
                    .await
                    .map_err(|e| (w.target().to_owned(), e))?,
            }
        }
    }
    let owned: Vec<&SinkKind<O>> = sinks
        .iter()
        .map(|s| &s.0)
        .filter(|k| !matches!(k, SinkKind::Writer(_)))
        .collect();
    let mut value = Some(value);
    let last = owned.len().saturating_sub(1);
    for (i, kind) in owned.into_iter().enumerate() {
        let v = if i == last {
            match value.take() {
                Some(v) => v,
                None => break,
            }
        } else {
            match &value {
                Some(v) => v.clone(),
                None => break,
            }
        };
        match kind {
            SinkKind::Func(f) => f(v),
            SinkKind::Async(f) => f(v).await,
            SinkKind::Writer(_) => {}
        }
    }
    Ok(())
}
