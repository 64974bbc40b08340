//! Agents: an async function over a [`Stream`], run by N actors under a supervisor.
//!
//! * [`Agent::yielding`] wraps a function returning a `futures` stream of `Result<O, BoxError>`
//!   (Faust's `async def agent(stream): ... yield value`). Each yielded value is matched to the
//!   event the stream is on: it goes to the reply callback when that event carries the
//!   `Faust-Ag-ReplyTo`/`Faust-Ag-CorrelationId` headers, then to every sink.
//! * [`Agent::processing`] wraps a function returning a future of `Result<(), BoxError>`
//!   (an agent that does not yield). Sinks on such an agent are a configuration error, as in
//!   Faust.
//!
//! # Errors and panics
//! When the function returns an error or panics, the actor acks the event it was on (Faust: "the
//! source message will be acked and not processed again"), logs the error with `tracing` (agent
//! name, sequence number and topic/partition/offset when known), and the supervisor restarts the
//! actor on the same channel. More than [`RestartPolicy::max_restarts`] restarts within
//! [`RestartPolicy::within`] stop the agent with [`AgentError::TooManyRestarts`]. With a
//! [`RetryPolicy`], the failed event is first redelivered to the restarted actor (with backoff)
//! up to `max_attempts` times before it is acked and counted as a crash; this holds that actor
//! back, so order is kept for `concurrency == 1`.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::ack::Delivery;
use crate::channel::{Channel, ChannelSender, Closed, DEFAULT_CAPACITY};
use crate::codec::BoxError;
use crate::event::{Event, ReqRepResponse};
use crate::stream::{new_slot, Stream};

type AgentFn<K, V, O> =
    Arc<dyn Fn(Stream<K, V>) -> BoxStream<'static, Result<O, BoxError>> + Send + Sync>;
type SinkFn<O> = Arc<dyn Fn(O) -> BoxFuture<'static, Written> + Send + Sync>;
type ReplyFn<K, O> = Arc<dyn Fn(Reply<K, O>) -> BoxFuture<'static, Written> + Send + Sync>;

/// What a sink (or the reply callback) returns once it has taken a value: `None` when it is
/// done with it, or the future of a write still in flight (a record queued on the producer).
/// The event's ack waits for that future: the actor goes on to its next event at once, and
/// the commit never covers an event whose output could still be lost. A write that fails
/// leaves the event unacked (read again after a restart).
pub type Written = Option<BoxFuture<'static, Result<(), String>>>;
type FailureFn<K, V> = Arc<dyn Fn(Event<K, V>, AgentError) -> BoxFuture<'static, ()> + Send + Sync>;

/// Why an agent (or one of its events) failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    /// The agent function returned an error.
    #[error("agent {agent} raised an error{}: {source}", at_suffix(.at))]
    Failed {
        /// Agent name.
        agent: String,
        /// The event it was processing, if any.
        at: Option<Delivery>,
        /// The error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The agent function panicked.
    #[error("agent {agent} panicked{}: {message}", at_suffix(.at))]
    Panicked {
        /// Agent name.
        agent: String,
        /// The event it was processing, if any.
        at: Option<Delivery>,
        /// The panic message.
        message: String,
    },
    /// The supervisor's restart limit was exceeded; the agent stopped.
    #[error(
        "agent {agent} stopped: more than {max_restarts} restarts within {within:?}; last: {last}"
    )]
    TooManyRestarts {
        /// Agent name.
        agent: String,
        /// The limit.
        max_restarts: u32,
        /// The window.
        within: Duration,
        /// The crash that exceeded it.
        last: Box<AgentError>,
    },
    /// Sinks were given to an agent that does not yield (Faust: `Agent must yield to use sinks`).
    #[error("agent {agent} must yield to use sinks")]
    SinksWithoutYield {
        /// Agent name.
        agent: String,
    },
    /// The agent is not running (stopped, or its channel closed).
    #[error("agent {agent} is not running")]
    Stopped {
        /// Agent name.
        agent: String,
    },
}

fn at_suffix(at: &Option<Delivery>) -> String {
    match at {
        Some(d) => format!(" on {}", DescribeDelivery(d)),
        None => String::new(),
    }
}

struct DescribeDelivery<'a>(&'a Delivery);

impl fmt::Display for DescribeDelivery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.coordinate {
            Some(c) => write!(f, "event {c} (seq {})", self.0.seq),
            None => write!(f, "event seq {}", self.0.seq),
        }
    }
}

/// Log field: `topic[partition]@offset`, or `-` for channel events.
struct CoordinateField<'a>(Option<&'a crate::event::Coordinate>);

impl fmt::Display for CoordinateField<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => c.fmt(f),
            None => f.write_str("-"),
        }
    }
}

impl AgentError {
    /// The event the error happened on, for `Failed`/`Panicked` (and the last crash of
    /// `TooManyRestarts`).
    pub fn delivery(&self) -> Option<&Delivery> {
        match self {
            AgentError::Failed { at, .. } | AgentError::Panicked { at, .. } => at.as_ref(),
            AgentError::TooManyRestarts { last, .. } => last.delivery(),
            _ => None,
        }
    }
}

/// Supervisor restart limit (Faust's default `OneForOneSupervisor`: 100 restarts within 1 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within the window; one more stops the agent.
    pub max_restarts: u32,
    /// The window.
    pub within: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 100,
            within: Duration::from_secs(1),
        }
    }
}

impl RestartPolicy {
    /// No restart: the first crash stops the agent (Faust's `CrashingSupervisor`, used by
    /// `test_context`).
    pub fn crash() -> Self {
        RestartPolicy {
            max_restarts: 0,
            within: Duration::from_secs(1),
        }
    }
}

/// Redelivery of a failed event before it is given up (acked and logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per event, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled for each further attempt.
    pub backoff: Duration,
    /// Upper bound of the delay.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// `max_attempts` attempts with exponential backoff from `backoff`, capped at 30 s.
    pub fn new(max_attempts: u32, backoff: Duration) -> Self {
        RetryPolicy {
            max_attempts,
            backoff,
            max_backoff: Duration::from_secs(30),
        }
    }

    /// The delay before attempt `attempt` (2, 3, ...).
    pub fn delay(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(2).min(31);
        self.backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff)
    }
}

/// A reply to an `ask`: the reply topic and Faust's `ReqRepResponse` to send there.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<K, O> {
    /// The reply topic (from `Faust-Ag-ReplyTo`).
    pub topic: String,
    /// The response (key of the request, yielded value, correlation id).
    pub response: ReqRepResponse<K, O>,
}

/// Where yielded values go besides the reply (Faust's `sink=[...]`).
pub struct Sink<O>(SinkFn<O>);

impl<O> Clone for Sink<O> {
    fn clone(&self) -> Self {
        Sink(self.0.clone())
    }
}

impl<O: Send + 'static> Sink<O> {
    /// A plain function called with each value.
    pub fn func(f: impl Fn(O) + Send + Sync + 'static) -> Self {
        Sink(Arc::new(move |o| {
            f(o);
            futures_util::future::ready(None).boxed()
        }))
    }

    /// An async function; the actor waits for it before taking its next event.
    pub fn async_func<F, Fut>(f: F) -> Self
    where
        F: Fn(O) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Sink(Arc::new(move |o| f(o).map(|()| None).boxed()))
    }

    /// A sink that queues each value (awaited: the actor waits for room) and returns the
    /// future of its write; the event's ack waits for that write (see [`Written`]). The
    /// app's topic sinks are built this way.
    pub fn queued<F, Fut>(f: F) -> Self
    where
        F: Fn(O) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Written> + Send + 'static,
    {
        Sink(Arc::new(move |o| f(o).boxed()))
    }

    /// A channel: each value is sent (no key), waiting while the channel is full.
    pub fn channel<K2: Send + 'static>(sender: ChannelSender<K2, O>) -> Self {
        Sink(Arc::new(move |o| {
            let sender = sender.clone();
            async move {
                if sender.send(o).await.is_err() {
                    tracing::warn!("sink channel is closed; value dropped");
                }
                None
            }
            .boxed()
        }))
    }

    /// Another agent: each value is sent to that agent's channel.
    pub fn agent<K2, O2>(agent: &Agent<K2, O, O2>) -> Result<Self, Closed>
    where
        K2: Clone + Send + Sync + 'static,
        O: Clone + Sync,
        O2: Clone + Send + 'static,
    {
        Ok(Self::channel(agent.channel.sender()?))
    }
}

/// Test-context hooks on the actors.
pub(crate) trait Observer<O>: Send + Sync {
    fn on_yield(&self, seq: u64, value: &O);
    fn on_error(&self, seq: u64, error: &AgentError);
}

/// An agent definition: a function over a stream plus its options. Cheap to clone.
pub struct Agent<K, V, O> {
    pub(crate) name: String,
    pub(crate) channel: Channel<K, V>,
    pub(crate) concurrency: usize,
    pub(crate) sinks: Vec<Sink<O>>,
    pub(crate) reply: Option<ReplyFn<K, O>>,
    pub(crate) supervisor: RestartPolicy,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) observer: Option<Arc<dyn Observer<O>>>,
    pub(crate) failure: Option<FailureFn<K, V>>,
    fun: AgentFn<K, V, O>,
    yields: bool,
}

impl<K, V, O> Clone for Agent<K, V, O> {
    fn clone(&self) -> Self {
        Agent {
            name: self.name.clone(),
            channel: self.channel.clone(),
            concurrency: self.concurrency,
            sinks: self.sinks.clone(),
            reply: self.reply.clone(),
            supervisor: self.supervisor,
            retry: self.retry,
            observer: self.observer.clone(),
            failure: self.failure.clone(),
            fun: self.fun.clone(),
            yields: self.yields,
        }
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
            name,
            channel: Channel::new(DEFAULT_CAPACITY),
            concurrency: 1,
            sinks: Vec::new(),
            reply: None,
            supervisor: RestartPolicy::default(),
            retry: None,
            observer: None,
            failure: None,
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

    /// Sets the callback that sends replies (later: a producer send to the reply topic).
    pub fn on_reply<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Reply<K, O>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.reply = Some(Arc::new(move |r| f(r).map(|()| None).boxed()));
        self
    }

    /// Like [`on_reply`](Self::on_reply) for a callback that queues the reply and returns its
    /// write (see [`Written`]): the event's ack waits for the write.
    pub fn on_reply_queued<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Reply<K, O>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Written> + Send + 'static,
    {
        self.reply = Some(Arc::new(move |r| f(r).boxed()));
        self
    }

    /// Sets a callback run with each event the agent gives up on (after its retries), before
    /// the event is acked: the app uses it to send the record to a dead-letter topic.
    pub fn on_failure<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Event<K, V>, AgentError) -> Fut + Send + Sync + 'static,
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
        headers: Vec<(String, Bytes)>,
    ) -> Result<u64, Closed> {
        self.channel.sender()?.send_event(key, value, headers).await
    }

    /// Starts the actors on the current tokio runtime.
    pub fn start(&self) -> Result<AgentHandle, AgentError> {
        if !self.yields && !self.sinks.is_empty() {
            return Err(AgentError::SinksWithoutYield {
                agent: self.name.clone(),
            });
        }
        let restarts = Arc::new(Mutex::new(VecDeque::new()));
        let mut set = JoinSet::new();
        for actor in 0..self.concurrency {
            set.spawn(run_actor(self.clone(), actor, restarts.clone()));
        }
        let name = self.name.clone();
        let handle_name = name.clone();
        let supervisor = tokio::spawn(async move {
            while let Some(res) = set.join_next().await {
                match res {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(join) if join.is_cancelled() => {}
                    Err(_) => {
                        return Err(AgentError::Stopped { agent: name });
                    }
                }
            }
            Ok(())
        });
        Ok(AgentHandle {
            name: handle_name,
            supervisor,
        })
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

/// A running agent.
pub struct AgentHandle {
    name: String,
    supervisor: tokio::task::JoinHandle<Result<(), AgentError>>,
}

impl AgentHandle {
    /// Waits until every actor has finished: `Ok` when the channel ended, the error when the
    /// restart limit was exceeded.
    pub async fn join(self) -> Result<(), AgentError> {
        let AgentHandle { name, supervisor } = self;
        match supervisor.await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(_) => Err(AgentError::Stopped { agent: name }),
        }
    }

    /// Stops the actors.
    pub fn stop(&self) {
        self.supervisor.abort();
    }

    /// Whether the agent has stopped.
    pub fn is_finished(&self) -> bool {
        self.supervisor.is_finished()
    }

    pub(crate) fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.supervisor.abort_handle()
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// Records a crash; `false` when it exceeds the restart limit.
fn allow_restart(policy: RestartPolicy, restarts: &Mutex<VecDeque<Instant>>) -> bool {
    let now = Instant::now();
    let mut r = restarts.lock().unwrap_or_else(|e| e.into_inner());
    while r
        .front()
        .is_some_and(|t| now.duration_since(*t) > policy.within)
    {
        r.pop_front();
    }
    r.push_back(now);
    r.len() <= policy.max_restarts as usize
}

async fn run_actor<K, V, O>(
    agent: Agent<K, V, O>,
    actor: usize,
    restarts: Arc<Mutex<VecDeque<Instant>>>,
) -> Result<(), AgentError>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    let mut retrying: Option<(Event<K, V>, u32)> = None;
    loop {
        let slot = new_slot::<K, V>();
        slot.lock().unwrap_or_else(|e| e.into_inner()).actor = true;
        // Every log line of the agent's code names the agent, the actor and the event it is on
        // (`topic[partition]@offset`, or the channel sequence number); the stream records
        // `event` each time it hands one out.
        let span = tracing::error_span!(
            "agent",
            name = %agent.name,
            actor,
            event = tracing::field::Empty
        );
        let mut stream = agent.channel.stream().with_slot(slot.clone());
        if let Some((ev, _)) = &retrying {
            stream = stream.redeliver_first(ev.clone());
        }
        let made = std::panic::catch_unwind(AssertUnwindSafe(|| (agent.fun)(stream)));
        let (mut out, crash) = match made {
            Ok(out) => (Some(out), None),
            Err(p) => (None, Some(panic_message(p.as_ref()))),
        };
        let crash: Option<Result<BoxError, String>> = match (out.as_mut(), crash) {
            (_, Some(msg)) => Some(Err(msg)),
            (Some(out), None) => loop {
                match AssertUnwindSafe(out.next())
                    .catch_unwind()
                    .instrument(span.clone())
                    .await
                {
                    Ok(Some(Ok(value))) => {
                        let ev = slot.lock().unwrap_or_else(|e| e.into_inner()).event.clone();
                        if let (Some((rev, _)), Some(ev)) = (&retrying, &ev) {
                            if rev.delivery().seq != ev.delivery().seq {
                                retrying = None;
                            }
                        }
                        // A sink or reply callback that panics crashes the actor like the
                        // agent function would (Faust calls sinks inside the actor).
                        let sent = AssertUnwindSafe(deliver(&agent, ev.as_ref(), value))
                            .catch_unwind()
                            .instrument(span.clone())
                            .await;
                        if let Err(p) = sent {
                            break Some(Err(panic_message(p.as_ref())));
                        }
                    }
                    Ok(Some(Err(e))) => break Some(Ok(e)),
                    Ok(None) => break None,
                    Err(p) => break Some(Err(panic_message(p.as_ref()))),
                }
            },
            (None, None) => None,
        };
        let ev = slot.lock().unwrap_or_else(|e| e.into_inner()).event.clone();
        let Some(crash) = crash else {
            drop(out);
            // The function is done with its last event.
            if let Some(ev) = &ev {
                ev.ack();
            }
            tracing::debug!(agent = %agent.name, actor, "actor finished: channel ended");
            return Ok(());
        };
        let at = ev.as_ref().map(|e| e.delivery().clone());
        let err = match crash {
            Ok(source) => AgentError::Failed {
                agent: agent.name.clone(),
                at: at.clone(),
                source: Arc::from(source),
            },
            Err(message) => AgentError::Panicked {
                agent: agent.name.clone(),
                at: at.clone(),
                message,
            },
        };
        // Retry: redeliver the event to the restarted actor, without acking it.
        if let (Some(policy), Some(ev)) = (agent.retry, ev.as_ref().filter(|e| !e.is_acked())) {
            let attempt = match &retrying {
                Some((rev, n)) if rev.delivery().seq == ev.delivery().seq => n + 1,
                _ => 2,
            };
            if attempt <= policy.max_attempts {
                slot.lock().unwrap_or_else(|e| e.into_inner()).keep_unacked = true;
                drop(out);
                let delay = policy.delay(attempt);
                tracing::warn!(
                    agent = %agent.name, actor, seq = ev.delivery().seq,
                    coordinate = %CoordinateField(ev.delivery().coordinate.as_ref()), attempt, ?delay, error = %err,
                    "agent failed on event; retrying it"
                );
                tokio::time::sleep(delay).await;
                retrying = Some((ev.clone(), attempt));
                continue;
            }
        }
        retrying = None;
        if let (Some(obs), Some(at)) = (&agent.observer, &at) {
            obs.on_error(at.seq, &err);
        }
        // Before the stream is dropped (which acks its current event): the dead letter is
        // written before the ack can be committed.
        if let (Some(failure), Some(ev)) = (&agent.failure, &ev) {
            failure(ev.clone(), err.clone()).await;
        }
        drop(out);
        if let Some(ev) = &ev {
            ev.ack();
        }
        tracing::error!(
            agent = %agent.name, actor,
            seq = at.as_ref().map(|d| d.seq),
            coordinate = %CoordinateField(at.as_ref().and_then(|d| d.coordinate.as_ref())),
            error = %err,
            "agent raised an error; event acked, restarting actor"
        );
        if !allow_restart(agent.supervisor, &restarts) {
            tracing::error!(agent = %agent.name, "restart limit exceeded; agent stopped");
            return Err(AgentError::TooManyRestarts {
                agent: agent.name.clone(),
                max_restarts: agent.supervisor.max_restarts,
                within: agent.supervisor.within,
                last: Box::new(err),
            });
        }
    }
}

async fn deliver<K, V, O>(agent: &Agent<K, V, O>, ev: Option<&Event<K, V>>, value: O)
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    if let Some(ev) = ev {
        if let Some(to) = ev.reply_to() {
            match &agent.reply {
                Some(reply) => {
                    let written = reply(Reply {
                        topic: to.topic,
                        response: ReqRepResponse::new(
                            ev.key.clone(),
                            value.clone(),
                            to.correlation_id,
                        ),
                    })
                    .await;
                    hold_until_written(&agent.name, Some(ev), written);
                }
                None => tracing::warn!(
                    agent = %agent.name, seq = ev.delivery().seq,
                    "event asks for a reply but the agent has no reply callback"
                ),
            }
        }
        if let Some(obs) = &agent.observer {
            obs.on_yield(ev.delivery().seq, &value);
        }
    }
    for sink in &agent.sinks {
        let written = (sink.0)(value.clone()).await;
        hold_until_written(&agent.name, ev, written);
    }
}

/// Holds `ev`'s ack until `written` completes; a failed write leaves it unacked.
fn hold_until_written<K, V>(agent: &str, ev: Option<&Event<K, V>>, written: Written) {
    let Some(write) = written else {
        return;
    };
    let hold = ev.and_then(|e| e.hold());
    let agent = agent.to_owned();
    tokio::spawn(async move {
        match write.await {
            Ok(()) => {
                if let Some(h) = hold {
                    h.release();
                }
            }
            Err(e) => {
                tracing::error!(%agent, error = %e,
                    "a sink or reply write failed; its event stays unacked and is read again after a restart");
                if let Some(h) = hold {
                    h.abandon();
                }
            }
        }
    });
}
