//! [`AgentBuilder`]: Faust's `@app.agent(...)` options. A plain value until `yielding` or
//! `processing` registers the agent with the app.

use futures_util::Stream as FuturesStream;

use std::sync::Arc;

use crate::app::agent::{Inner, Registered};
use crate::app::topic::{Model, Topic};
use crate::app::{App, AppAgent};
use crate::core::agent::Agent;
use crate::core::channel::Channel;
use crate::core::error::BoxError;
use crate::core::policy::{RestartPolicy, RetryPolicy};
use crate::core::sink::Sink;
use crate::core::stream::Stream;

/// The options of an agent being defined; finish with [`yielding`](Self::yielding) or
/// [`processing`](Self::processing).
pub struct AgentBuilder<K, V> {
    pub(crate) app: App,
    pub(crate) name: String,
    pub(crate) source: Source<K, V>,
    pub(crate) concurrency: usize,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) supervisor: Option<RestartPolicy>,
    pub(crate) dead_letter: Option<String>,
    pub(crate) isolated: bool,
}

impl<K: Model, V: Model> AgentBuilder<K, V> {
    pub(crate) fn new(app: App, name: String) -> Self {
        AgentBuilder {
            app,
            name,
            source: Source::Default,
            concurrency: 1,
            retry: None,
            supervisor: None,
            dead_letter: None,
            isolated: false,
        }
    }

    /// One agent instance per assigned partition (Faust's `isolated_partitions=True`): each
    /// partition's events are processed in order by an actor of their own, started when the
    /// partition is assigned and stopped when it is revoked. Needs `concurrency` 1 and a
    /// topic source.
    pub fn isolated_partitions(mut self) -> Self {
        self.isolated = true;
        self
    }

    /// Reads `topic` (Faust's `@app.agent(topic)`).
    pub fn topic(mut self, topic: &Topic<K, V>) -> Self {
        self.source = Source::Topic(topic.clone());
        self
    }

    /// Reads an in-memory channel (Faust's `@app.agent(app.channel())`).
    pub fn channel(mut self, channel: &Channel<K, V>) -> Self {
        self.source = Source::Channel(channel.clone());
        self
    }

    /// Runs `n` actors sharing the stream, processing out of order (Faust's `concurrency=n`).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Retries a failed event before giving it up (not in Faust).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Sets the supervisor's restart limit.
    pub fn supervisor(mut self, policy: RestartPolicy) -> Self {
        self.supervisor = Some(policy);
        self
    }

    /// Sends events the agent gives up on (records that do not decode, events whose function
    /// failed, events whose output could not be written) to `topic`, with headers naming the
    /// error, the agent and the source coordinate (not in Faust). The topic is created with
    /// the agent's.
    pub fn dead_letter(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter = Some(topic.into());
        self
    }

    /// Registers an agent whose function yields values (`async def f(stream): ... yield v`),
    /// written with `StreamExt` combinators or with `yield` in a loop (`async_stream`).
    pub fn yielding<O, F, S>(self, f: F) -> AppAgent<K, V, O>
    where
        O: Model,
        F: Fn(Stream<K, V>) -> S + Send + Sync + 'static,
        S: FuturesStream<Item = Result<O, BoxError>> + Send + 'static,
    {
        let agent = Agent::yielding(self.name.clone(), f);
        register(self, agent, Vec::new())
    }

    /// Like [`yielding`](Self::yielding), with sinks for the yielded values (Faust's
    /// `sink=[...]`).
    pub fn yielding_to<O, F, S>(self, sinks: Vec<Sink<O>>, f: F) -> AppAgent<K, V, O>
    where
        O: Model,
        F: Fn(Stream<K, V>) -> S + Send + Sync + 'static,
        S: FuturesStream<Item = Result<O, BoxError>> + Send + 'static,
    {
        let agent = Agent::yielding(self.name.clone(), f);
        register(self, agent, sinks)
    }

    /// Registers an agent whose function does not yield.
    pub fn processing<F, Fut>(self, f: F) -> AppAgent<K, V, ()>
    where
        F: Fn(Stream<K, V>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let agent = Agent::processing(self.name.clone(), f);
        register(self, agent, Vec::new())
    }
}

/// Where an agent reads.
pub(crate) enum Source<K, V> {
    Default,
    Topic(Topic<K, V>),
    Channel(Channel<K, V>),
}

/// Registers the agent `builder` describes.
pub(crate) fn register<K: Model, V: Model, O: Model>(
    builder: AgentBuilder<K, V>,
    agent: Agent<K, V, O>,
    sinks: Vec<Sink<O>>,
) -> AppAgent<K, V, O> {
    let app = builder.app.clone();
    let capacity = app.settings().stream_buffer_maxsize;
    let (topic, channel) = match builder.source {
        Source::Default => {
            let name = format!("{}-{}", app.id(), builder.name);
            (
                Some(app.topic::<K, V>(name).prefixed()),
                Channel::new(capacity),
            )
        }
        Source::Topic(t) => (Some(t), Channel::new(capacity)),
        Source::Channel(c) => (None, c),
    };
    let mut agent = agent
        .channel(channel.clone())
        .concurrency(builder.concurrency);
    if let Some(r) = builder.retry {
        agent = agent.retry(r);
    }
    if let Some(s) = builder.supervisor {
        agent = agent.supervisor(s);
    }
    for s in sinks {
        agent = agent.sink(s);
    }
    let inner = Arc::new(Inner::new(
        app.clone(),
        builder.name,
        topic,
        channel,
        agent,
        builder.dead_letter,
        builder.isolated,
    ));
    app.register(Arc::clone(&inner) as Arc<dyn Registered>);
    AppAgent { inner }
}
