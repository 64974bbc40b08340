//! Agents: an async function over a [`Stream`], run by N actors under a supervisor.
//!
//! * [`Agent::yielding`] wraps a function returning a `futures` stream of `Result<O, BoxError>`
//!   (Faust's `async def agent(stream): ... yield value`; write it with combinators or with
//!   `async_stream::try_stream!` and `yield`). Each yielded value is matched to the event the
//!   stream is on: it goes to the [`Replier`] when that event carries the
//!   `Faust-Ag-ReplyTo`/`Faust-Ag-CorrelationId` headers, then to every sink.
//! * [`Agent::processing`] wraps a function returning a future of `Result<(), BoxError>`
//!   (an agent that does not yield). Sinks on such an agent are a configuration error, as in
//!   Faust.
//!
//! # Errors and panics
//! When the function returns an error or panics, the actor acks the event it was on (Faust: "the
//! source message will be acked and not processed again"), logs the error with `tracing` (agent
//! name, and topic/partition/offset or sequence number), and the supervisor restarts the actor
//! on the same source. More than [`RestartPolicy::max_restarts`] restarts within
//! [`RestartPolicy::within`] stop the agent with [`AgentError::TooManyRestarts`]. With a
//! [`RetryPolicy`], the failed event (or `take` batch) is first redelivered, unacked, to the
//! restarted actor (with backoff) up to `max_attempts` times, counted per event (topic,
//! partition and offset, or channel sequence number); this holds that actor back, so order is
//! kept for `concurrency == 1`.
//!
//! # Ending
//! An agent function that returns (or whose source ends) ends its actor; when every actor has
//! ended the agent is done
//! ([`AgentHandle::join`](crate::core::supervisor::AgentHandle::join) returns `Ok`), and the
//! other agents of a worker go on.

use std::future::Future;
use std::sync::Arc;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};

use crate::core::channel::{Channel, Closed, DEFAULT_CAPACITY};
use crate::core::error::{AgentError, BoxError};
use crate::core::policy::{RestartPolicy, RetryPolicy};
use crate::core::reqrep::ReplyTo;
use crate::core::sink::{Attempt, FailureHook, Replier, Sink, WriteFor};
use crate::core::stream::{CurrentEvent, KeyToJson, Stream};

pub(crate) type AgentFn<K, V, O> =
    Arc<dyn Fn(Stream<K, V>) -> BoxStream<'static, Result<O, BoxError>> + Send + Sync>;

/// Test-context hooks on the actors.
pub(crate) trait Observer<O>: Send + Sync {
    fn on_yield(&self, seq: u64, value: &O);
    fn on_error(&self, seq: u64, error: &AgentError);
}

/// A reply as a plain callback sees it (see [`Agent::on_reply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<O> {
    /// The reply topic (from `Faust-Ag-ReplyTo`).
    pub topic: String,
    /// The correlation id of the request.
    pub correlation_id: String,
    /// The request event's key, as JSON, when the stream knows how to encode it.
    pub key: Option<serde_json::Value>,
    /// The yielded value.
    pub value: O,
}

/// A [`Replier`] calling a plain function (tests, in-memory agents).
struct CallbackReplier<O>(Arc<dyn Fn(Reply<O>) + Send + Sync>);

impl<O: Clone + Send + Sync + 'static> Replier<O> for CallbackReplier<O> {
    fn try_reply(
        &self,
        to: &ReplyTo,
        key: Option<&serde_json::Value>,
        value: &O,
        _event: WriteFor<'_>,
    ) -> Attempt {
        (self.0)(Reply {
            topic: to.topic.clone(),
            correlation_id: to.correlation_id.clone(),
            key: key.cloned(),
            value: value.clone(),
        });
        Attempt::Done
    }

    fn reply<'a>(
        &'a self,
        to: &'a ReplyTo,
        key: Option<&'a serde_json::Value>,
        value: &'a O,
        event: WriteFor<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<(), crate::core::error::WriteError>> {
        let _ = self.try_reply(to, key, value, event);
        futures_util::future::ready(Ok(())).boxed()
    }
}

/// An agent definition: a function over a stream plus its options. Cheap to clone.
pub struct Agent<K, V, O> {
    pub(crate) name: Arc<str>,
    pub(crate) channel: Channel<K, V>,
    pub(crate) concurrency: usize,
    pub(crate) sinks: Vec<Sink<O>>,
    pub(crate) replier: Option<Arc<dyn Replier<O>>>,
    pub(crate) supervisor: RestartPolicy,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) observer: Option<Arc<dyn Observer<O>>>,
    pub(crate) failure: Option<FailureHook>,
    pub(crate) key_json: Option<KeyToJson<K>>,
    pub(crate) fun: AgentFn<K, V, O>,
    yields: bool,
}

impl<K, V, O> Clone for Agent<K, V, O> {
    fn clone(&self) -> Self {
        Agent {
            name: Arc::clone(&self.name),
            channel: self.channel.clone(),
            concurrency: self.concurrency,
            sinks: self.sinks.clone(),
            replier: self.replier.clone(),
            supervisor: self.supervisor,
            retry: self.retry,
            observer: self.observer.clone(),
            failure: self.failure.clone(),
            key_json: self.key_json,
            fun: Arc::clone(&self.fun),
            yields: self.yields,
        }
    }
}

impl<K, V, O: 'static> std::fmt::Debug for Agent<K, V, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field("concurrency", &self.concurrency)
            .field("sinks", &self.sinks)
            .field("yields", &self.yields)
            .finish_non_exhaustive()
    }
}

impl<K, V, O> Agent<K, V, O>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    /// An agent whose function yields values. Its channel defaults to a new in-memory channel of
    /// [`DEFAULT_CAPACITY`].
    pub fn yielding<F, S>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Stream<K, V>) -> S + Send + Sync + 'static,
        S: futures_util::Stream<Item = Result<O, BoxError>> + Send + 'static,
    {
        Self::with_fn(name.into(), Arc::new(move |s| f(s).boxed()), true)
    }

    fn with_fn(name: String, fun: AgentFn<K, V, O>, yields: bool) -> Self {
        Agent {
            name: name.into(),
            channel: Channel::new(DEFAULT_CAPACITY),
            concurrency: 1,
            sinks: Vec::new(),
            replier: None,
            supervisor: RestartPolicy::default(),
            retry: None,
            observer: None,
            failure: None,
            key_json: None,
            fun,
            yields,
        }
    }

    /// Reads from `channel` instead of the agent's own channel.
    pub fn channel(mut self, channel: Channel<K, V>) -> Self {
        self.channel = channel;
        self
    }

    /// Runs `n` (≥ 1) actors sharing the channel; they process events out of order.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Adds a sink for yielded values.
    pub fn sink(mut self, sink: Sink<O>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Sends replies with `replier` (the app's: to the reply topic).
    pub fn replier(mut self, replier: Arc<dyn Replier<O>>) -> Self {
        self.replier = Some(replier);
        self
    }

    /// Calls `f` with each reply (an in-memory replier, for tests and channel agents).
    pub fn on_reply(self, f: impl Fn(Reply<O>) + Send + Sync + 'static) -> Self {
        self.replier(Arc::new(CallbackReplier(Arc::new(f))))
    }

    /// Puts the request's key in replies, as JSON (`ReqRepResponse.key`).
    pub fn reply_keys_as_json(mut self) -> Self
    where
        K: serde::Serialize,
    {
        self.key_json = Some(crate::core::stream::key_to_json::<K>);
        self
    }

    /// Sets a callback run with each event the agent gives up on (after its retries), before
    /// the event is acked: the app uses it to send the record to a dead-letter topic.
    pub fn on_failure<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(CurrentEvent, AgentError) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.failure = Some(Arc::new(move |ev, err| f(ev, err).boxed()));
        self
    }

    /// Sets the supervisor restart limit.
    pub fn supervisor(mut self, policy: RestartPolicy) -> Self {
        self.supervisor = policy;
        self
    }

    /// Sets a retry policy for failed events.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The agent name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of actors.
    pub fn concurrency_level(&self) -> usize {
        self.concurrency
    }

    /// Whether the agent function yields values.
    pub fn yields(&self) -> bool {
        self.yields
    }

    /// The channel the agent reads.
    pub fn source(&self) -> &Channel<K, V> {
        &self.channel
    }

    /// The retry policy, if any.
    pub fn retry_policy(&self) -> Option<RetryPolicy> {
        self.retry
    }

    /// Sends a value to the agent without waiting for a reply (Faust's `cast`). Returns the
    /// event's sequence number in the channel.
    pub async fn cast(&self, value: V) -> Result<u64, Closed> {
        self.channel.send(value).await
    }

    /// Sends a key, value and headers to the agent (Faust's `send`, in memory).
    pub async fn send(
        &self,
        key: Option<K>,
        value: V,
        headers: Vec<(String, Option<bytes::Bytes>)>,
    ) -> Result<u64, Closed> {
        self.channel.sender().send_event(key, value, headers).await
    }
}

impl<K, V> Agent<K, V, ()>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An agent whose function does not yield.
    pub fn processing<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Stream<K, V>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let fun: AgentFn<K, V, ()> = Arc::new(move |s| {
            f(s).into_stream()
                .filter_map(|r| futures_util::future::ready(r.err().map(Err)))
                .boxed()
        });
        Self::with_fn(name.into(), fun, false)
    }
}

impl<O: Clone + Send + 'static> Sink<O> {
    /// Another agent: each value is sent to that agent's channel.
    pub fn agent<K2, O2>(agent: &Agent<K2, O, O2>) -> Self
    where
        K2: Clone + Send + Sync + 'static,
        O: Sync,
        O2: Clone + Send + Sync + 'static,
    {
        Sink::channel(agent.channel.sender())
    }
}
