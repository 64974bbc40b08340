//! [`AgentBuilder`] (Faust's `@app.agent(...)` options) and [`AppAgent`], the handle of a
//! registered agent: `cast`, `send`, `ask`, `map`, `kvmap`, `join`, `kvjoin`, sinks, and what
//! the worker needs to run it (`AgentRuntime`).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream as FuturesStream, StreamExt};
use mephisto_engine::producer::RecordMetadata;

use crate::agent::{
    Agent, AgentError, AgentHandle, Reply, RestartPolicy, RetryPolicy, Sink, Written,
};
use crate::app::client::Client;
use crate::app::error::AppError;
use crate::app::hub::{Hub, StreamWiring};
use crate::app::ids::new_id;
use crate::app::route::{self, DeadLetter, Route};
use crate::app::topic::{Model, SendOptions, Topic};
use crate::app::App;
use crate::channel::Channel;
use crate::codec::{self, BoxError, CodecName, Part};
use crate::event::{reply_headers, Event};
use crate::repartition::TopicContext;
use crate::stream::Stream;

/// How many asks `map`/`join` keep in flight.
const MAP_IN_FLIGHT: usize = 256;

/// What `app.agents()` and the `agents` command show of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// Agent name.
    pub name: String,
    /// The topics it reads (empty for a channel agent).
    pub topics: Vec<String>,
    /// Key codec of its topic.
    pub key_codec: CodecName,
    /// Value codec of its topic.
    pub value_codec: CodecName,
    /// Number of actors.
    pub concurrency: usize,
    /// Whether it yields values.
    pub yields: bool,
}

/// Options of [`AppAgent::send`] and [`AppAgent::ask_with`] (Faust's `key`, `partition`,
/// `reply_to`, `correlation_id` arguments).
#[derive(Debug, Clone, Default)]
pub struct AskOptions {
    /// Explicit partition.
    pub partition: Option<i32>,
    /// Where the agent sends its reply: a topic name (e.g. another agent's topic, see
    /// [`AppAgent::topic_name`]). `ask` always uses this process's reply topic.
    pub reply_to: Option<String>,
    /// The correlation id (generated when a reply is asked for and none is given).
    pub correlation_id: Option<String>,
}

enum SourceKind<K, V> {
    Default,
    Topic(Topic<K, V>),
    Channel(Channel<K, V>),
}

/// The options of an agent being defined; finish with [`yielding`](Self::yielding) or
/// [`processing`](Self::processing).
pub struct AgentBuilder<K, V> {
    app: App,
    name: String,
    source: SourceKind<K, V>,
    concurrency: usize,
    retry: Option<RetryPolicy>,
    supervisor: Option<RestartPolicy>,
    dead_letter: Option<String>,
    isolated: bool,
}

impl<K: Model, V: Model> AgentBuilder<K, V> {
    pub(crate) fn new(app: App, name: String) -> Self {
        AgentBuilder {
            app,
            name,
            source: SourceKind::Default,
            concurrency: 1,
            retry: None,
            supervisor: None,
            dead_letter: None,
            isolated: false,
        }
    }

    /// One agent instance per assigned partition (Faust's `isolated_partitions=True`): each
    /// partition's events are processed in order by an actor of their own, started when the
    /// partition's first record arrives. Needs `concurrency` 1 and a topic source.
    pub fn isolated_partitions(mut self) -> Self {
        self.isolated = true;
        self
    }

    /// Reads `topic` (Faust's `@app.agent(topic)`).
    pub fn topic(mut self, topic: &Topic<K, V>) -> Self {
        self.source = SourceKind::Topic(topic.clone());
        self
    }

    /// Reads an in-memory channel (Faust's `@app.agent(app.channel())`).
    pub fn channel(mut self, channel: &Channel<K, V>) -> Self {
        self.source = SourceKind::Channel(channel.clone());
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

    /// Sends events the agent gives up on (and records that do not decode) to `topic`, with
    /// headers naming the error, the agent and the source coordinate (not in Faust).
    pub fn dead_letter(mut self, topic: impl Into<String>) -> Self {
        let topic = topic.into();
        self.app.declare_topic(crate::app::TopicSpec {
            name: topic.clone(),
            partitions: None,
            configs: Vec::new(),
        });
        self.dead_letter = Some(topic);
        self
    }

    /// Registers an agent whose function yields values (`async def f(stream): ... yield v`).
    pub fn yielding<O, F, S>(self, f: F) -> AppAgent<K, V, O>
    where
        O: Model,
        F: Fn(Stream<K, V>) -> S + Send + Sync + 'static,
        S: FuturesStream<Item = Result<O, BoxError>> + Send + 'static,
    {
        let agent = Agent::yielding(self.name.clone(), f);
        self.finish(agent)
    }

    /// Registers an agent whose function does not yield.
    pub fn processing<F, Fut>(self, f: F) -> AppAgent<K, V, ()>
    where
        F: Fn(Stream<K, V>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let agent = Agent::processing(self.name.clone(), f);
        self.finish(agent)
    }

    fn finish<O: Model>(self, agent: Agent<K, V, O>) -> AppAgent<K, V, O> {
        let capacity = self.app.settings().stream_buffer_maxsize;
        let (topic, channel) = match self.source {
            SourceKind::Default => {
                let name = format!("{}-{}", self.app.id(), self.name);
                (Some(self.app.topic::<K, V>(name)), Channel::new(capacity))
            }
            SourceKind::Topic(t) => (Some(t), Channel::new(capacity)),
            SourceKind::Channel(c) => (None, c),
        };
        let mut agent = agent.channel(channel.clone()).concurrency(self.concurrency);
        if let Some(r) = self.retry {
            agent = agent.retry(r);
        }
        if let Some(s) = self.supervisor {
            agent = agent.supervisor(s);
        }
        let inner = Arc::new(Inner {
            app: self.app.clone(),
            name: self.name,
            topic,
            channel,
            agent: Mutex::new(agent),
            dead_letter: self.dead_letter,
            isolated: self.isolated,
        });
        self.app.register(inner.clone());
        AppAgent { inner }
    }
}

struct Inner<K, V, O> {
    app: App,
    name: String,
    topic: Option<Topic<K, V>>,
    channel: Channel<K, V>,
    agent: Mutex<Agent<K, V, O>>,
    dead_letter: Option<String>,
    isolated: bool,
}

/// A registered agent. Cheap to clone.
pub struct AppAgent<K, V, O> {
    inner: Arc<Inner<K, V, O>>,
}

impl<K, V, O> Clone for AppAgent<K, V, O> {
    fn clone(&self) -> Self {
        AppAgent {
            inner: self.inner.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: Model, V: Model, O: Model> AppAgent<K, V, O> {
    /// The agent name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The agent's main topic, or `None` for a channel agent. Pass it as `reply_to` to have
    /// another agent's replies sent to this one (Faust's `reply_to=agent`).
    pub fn topic_name(&self) -> Option<&str> {
        self.inner.topic.as_ref().map(|t| t.name())
    }

    /// The agent's topic, for a topic agent.
    pub fn topic(&self) -> Option<&Topic<K, V>> {
        self.inner.topic.as_ref()
    }

    /// Adds a sink for the values the agent yields (Faust's `sink=[...]`): a function, an
    /// async function, a channel, a topic ([`Topic::sink`]) or another agent
    /// ([`AppAgent::as_sink`]). Takes effect for workers started afterwards.
    pub fn sink(self, sink: Sink<O>) -> Self {
        {
            let mut agent = lock(&self.inner.agent);
            *agent = agent.clone().sink(sink);
        }
        self
    }

    /// A sink that forwards each value to this agent (`cast`). For a topic agent the actor
    /// goes on once the record is queued; the event's ack waits until the broker has it.
    pub fn as_sink(&self) -> Sink<V> {
        let me = self.clone();
        Sink::queued(move |value: V| {
            let me = me.clone();
            async move {
                let failed = |e: String| -> Written {
                    tracing::error!(agent = %me.name(), error = %e, "sink agent: cast failed");
                    Some(Box::pin(futures_util::future::ready(Err(e))))
                };
                match &me.inner.topic {
                    Some(topic) => {
                        match topic.enqueue(None, &value, SendOptions::default()).await {
                            Ok(written) => written,
                            Err(e) => failed(e.to_string()),
                        }
                    }
                    None => match me.cast(value).await {
                        Ok(()) => None,
                        Err(e) => failed(e.to_string()),
                    },
                }
            }
        })
    }

    /// The core agent (function, channel, options), for `test_context`.
    pub fn definition(&self) -> Agent<K, V, O> {
        lock(&self.inner.agent).clone()
    }

    /// Runs the agent on an in-memory channel without a broker (Faust's
    /// `agent.test_context()`).
    pub fn test_context(&self) -> Result<crate::TestContext<K, V, O>, AgentError> {
        self.definition().test_context()
    }

    /// Sends a value without waiting for a reply (Faust's `cast`).
    pub async fn cast(&self, value: V) -> Result<(), AppError> {
        self.send(None, value, AskOptions::default())
            .await
            .map(|_| ())
    }

    /// `cast` with a key (the Kafka message key: same key, same partition) and an explicit
    /// partition (Faust's `cast(value, key=..., partition=...)`).
    pub async fn cast_with(
        &self,
        key: Option<K>,
        value: V,
        partition: Option<i32>,
    ) -> Result<(), AppError> {
        let options = AskOptions {
            partition,
            ..AskOptions::default()
        };
        self.send(key, value, options).await.map(|_| ())
    }

    /// The mechanism under `cast` and `ask` (Faust's `send`): sends to the agent's topic (or
    /// channel) with the reply headers when `reply_to` is set. Returns where it was written
    /// (`None` for a channel agent).
    pub async fn send(
        &self,
        key: Option<K>,
        value: V,
        options: AskOptions,
    ) -> Result<Option<RecordMetadata>, AppError> {
        let headers = match &options.reply_to {
            Some(to) => {
                let cid = options.correlation_id.clone().unwrap_or_else(new_id);
                reply_headers(to, &cid)
            }
            None => Vec::new(),
        };
        match &self.inner.topic {
            Some(topic) => {
                let md = topic
                    .send_with(
                        key,
                        value,
                        SendOptions {
                            partition: options.partition,
                            headers,
                        },
                    )
                    .await?;
                Ok(Some(md))
            }
            None => {
                let sender = self
                    .inner
                    .channel
                    .sender()
                    .map_err(|_| AppError::Closed(format!("agent {}", self.inner.name)))?;
                sender
                    .send_event(key, value, headers)
                    .await
                    .map_err(|_| AppError::Closed(format!("agent {}", self.inner.name)))?;
                Ok(None)
            }
        }
    }

    /// Sends a value and waits for the agent's reply (Faust's `ask`).
    pub async fn ask(&self, value: V) -> Result<O, AppError> {
        self.ask_with(None, value, AskOptions::default()).await
    }

    /// `ask` with a key and options (partition, correlation id). The reply always comes to
    /// this process's reply topic (`Settings::reply_to`).
    pub async fn ask_with(
        &self,
        key: Option<K>,
        value: V,
        options: AskOptions,
    ) -> Result<O, AppError> {
        let client = self.inner.app.client().await?;
        let replies = client.replies().await?;
        let cid = options.correlation_id.clone().unwrap_or_else(new_id);
        let rx = replies.expect(&cid);
        let opts = AskOptions {
            partition: options.partition,
            reply_to: Some(replies.topic().to_owned()),
            correlation_id: Some(cid.clone()),
        };
        if let Err(e) = self.send(key, value, opts).await {
            replies.forget(&cid);
            return Err(e);
        }
        let timeout = self.inner.app.settings().reply_timeout;
        let value = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(v)) => v,
            Ok(Err(_)) => {
                return Err(AppError::Closed("the reply reader".into()));
            }
            Err(_) => {
                replies.forget(&cid);
                return Err(AppError::ReplyTimeout {
                    agent: self.inner.name.clone(),
                    correlation_id: cid,
                    reply_to: replies.topic().to_owned(),
                    after: timeout,
                });
            }
        };
        serde_json::from_value::<O>(value).map_err(|e| {
            AppError::Codec(
                crate::codec::CodecError::new::<O>("json", crate::codec::Direction::Decode, e)
                    .for_part(Part::Other),
            )
        })
    }

    /// Asks for each value, yielding replies as they come (out of order; Faust's `map`).
    /// At most 256 asks are in flight, so an endless iterator is fine.
    pub fn map<I>(&self, values: I) -> impl FuturesStream<Item = Result<O, AppError>> + Send
    where
        I: IntoIterator<Item = V>,
        I::IntoIter: Send,
    {
        self.kvmap(values.into_iter().map(|v| (None, v)))
    }

    /// Like [`map`](Self::map) with `(key, value)` pairs, the key being the Kafka message key.
    pub fn kvmap<I>(&self, items: I) -> impl FuturesStream<Item = Result<O, AppError>> + Send
    where
        I: IntoIterator<Item = (Option<K>, V)>,
        I::IntoIter: Send,
    {
        let me = self.clone();
        futures_util::stream::iter(items)
            .map(move |(k, v)| {
                let me = me.clone();
                async move { me.ask_with(k, v, AskOptions::default()).await }
            })
            .buffer_unordered(MAP_IN_FLIGHT)
    }

    /// Asks for every value and returns the replies in the order of the values (Faust's
    /// `join`). Do not use it with endless iterators.
    pub async fn join<I>(&self, values: I) -> Result<Vec<O>, AppError>
    where
        I: IntoIterator<Item = V>,
        I::IntoIter: Send,
    {
        self.kvjoin(values.into_iter().map(|v| (None, v))).await
    }

    /// Like [`join`](Self::join) with `(key, value)` pairs.
    pub async fn kvjoin<I>(&self, items: I) -> Result<Vec<O>, AppError>
    where
        I: IntoIterator<Item = (Option<K>, V)>,
        I::IntoIter: Send,
    {
        let me = self.clone();
        let replies: Vec<Result<O, AppError>> = futures_util::stream::iter(items)
            .map(move |(k, v)| {
                let me = me.clone();
                async move { me.ask_with(k, v, AskOptions::default()).await }
            })
            .buffered(MAP_IN_FLIGHT)
            .collect()
            .await;
        replies.into_iter().collect()
    }
}

/// What the worker needs of an agent, whatever its types.
pub(crate) trait AgentRuntime: Send + Sync {
    fn info(&self) -> AgentInfo;
    /// Starts the actors; returns their handle and the routes of the agent's topics.
    fn start(
        &self,
        client: &Arc<Client>,
        hub: &Arc<Hub>,
    ) -> Result<(AgentHandle, Vec<(String, Route)>), AppError>;
}

impl<K: Model, V: Model, O: Model> AgentRuntime for Inner<K, V, O> {
    fn info(&self) -> AgentInfo {
        let agent = lock(&self.agent);
        AgentInfo {
            name: self.name.clone(),
            topics: self
                .topic
                .as_ref()
                .map(|t| t.names().to_vec())
                .unwrap_or_default(),
            key_codec: self
                .topic
                .as_ref()
                .map(|t| t.key_codec_name())
                .unwrap_or(CodecName::DEFAULT_KEY),
            value_codec: self
                .topic
                .as_ref()
                .map(|t| t.value_codec_name())
                .unwrap_or(CodecName::DEFAULT_VALUE),
            concurrency: agent.concurrency_level(),
            yields: agent.yields(),
        }
    }

    fn start(
        &self,
        client: &Arc<Client>,
        hub: &Arc<Hub>,
    ) -> Result<(AgentHandle, Vec<(String, Route)>), AppError> {
        let mut agent = lock(&self.agent).clone();
        if self.isolated && (agent.concurrency_level() > 1 || self.topic.is_none()) {
            return Err(AppError::Config(format!(
                "agent {}: isolated_partitions needs a topic source and concurrency 1",
                self.name
            )));
        }
        if let Some(topic) = &self.topic {
            self.channel.set_context(Arc::new(StreamWiring {
                hub: hub.clone(),
                agent: self.name.clone(),
                topic: topic.name().to_owned(),
            }));
        }
        let replier = client.clone();
        agent = agent.on_reply_queued(move |reply: Reply<K, O>| {
            let client = replier.clone();
            async move { send_reply(&client, reply).await }
        });
        let dead_letter = self.dead_letter.as_ref().map(|t| DeadLetter {
            client: client.clone(),
            topic: t.clone(),
            agent: self.name.clone(),
        });
        if let Some(dl) = dead_letter.clone() {
            let (key_codec, value_codec) = self
                .topic
                .as_ref()
                .map(|t| (t.key_codec_name(), t.value_codec_name()))
                .unwrap_or((CodecName::Json, CodecName::Json));
            agent = agent.on_failure(move |ev: Event<K, V>, err: AgentError| {
                let dl = dl.clone();
                async move {
                    let key = ev
                        .key
                        .as_ref()
                        .and_then(|k| codec::encode(key_codec, k).ok());
                    let value = codec::encode(value_codec, &ev.value).ok();
                    let source = ev.message.as_ref().map(|m| m.coordinate.clone());
                    dl.send(
                        key,
                        value,
                        ev.headers.clone(),
                        source.as_ref(),
                        &err.to_string(),
                    )
                    .await;
                }
            });
        }
        let handle = agent.start()?;
        let mut routes = Vec::new();
        if let Some(topic) = &self.topic {
            let sender = self
                .channel
                .sender()
                .map_err(|_| AppError::Closed(format!("agent {}", self.name)))?;
            for name in topic.names() {
                let (kc, vc) = (topic.key_codec_name(), topic.value_codec_name());
                let route = if self.isolated {
                    let wiring: Arc<dyn TopicContext> = Arc::new(StreamWiring {
                        hub: hub.clone(),
                        agent: self.name.clone(),
                        topic: name.clone(),
                    });
                    route::per_partition::<K, V, O>(
                        agent.clone(),
                        hub.clone(),
                        wiring,
                        kc,
                        vc,
                        dead_letter.clone(),
                    )
                } else {
                    route::decoding::<K, V>(
                        self.name.clone(),
                        kc,
                        vc,
                        sender.clone(),
                        dead_letter.clone(),
                    )
                };
                routes.push((name.clone(), route));
            }
        }
        Ok((handle, routes))
    }
}

async fn send_reply<K: Model, O: Model>(client: &Client, reply: Reply<K, O>) -> Written {
    let body = match serde_json::to_vec(&reply.response) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            tracing::error!(reply_to = %reply.topic, error = %e, "reply does not encode as JSON; dropped");
            return None;
        }
    };
    // Faust does not create its reply topic by default (`reply_create_topic=False`): it counts
    // on the broker's auto-creation, which our requests never ask for. Create it (one
    // partition, once per process) as Kafka would.
    let spec = crate::app::TopicSpec {
        name: reply.topic.clone(),
        partitions: Some(1),
        configs: Vec::new(),
    };
    if let Err(e) = client.ensure_topics(&[spec]).await {
        tracing::warn!(reply_to = %reply.topic, error = %e, "reply topic could not be declared");
    }
    match client
        .enqueue(&reply.topic, None, None, Some(body), Vec::new())
        .await
    {
        Ok(written) => written,
        Err(e) => {
            tracing::error!(reply_to = %reply.topic, error = %e, "reply not sent");
            None
        }
    }
}
