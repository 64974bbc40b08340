//! [`AppAgent`], the handle of a registered agent (`cast`, `send`, `add_sink`,
//! `test_context`; `ask` and friends are in `ask`), and what the worker runs of it: the
//! agent's actors on its queue, the routes of its topics, its replies and dead letters.

use std::sync::{Arc, Mutex};

use crate::app::error::AppError;
use crate::app::repartition::AgentContext;
use crate::app::topic::{Model, SendHandle, SendOptions, Topic};
use crate::app::App;
use crate::core::agent::Agent;
use crate::core::channel::Channel;
use crate::core::error::AgentError;
use crate::core::reqrep::reply_headers;
use crate::core::sink::Sink;
use crate::core::stream::{CurrentEvent, StreamContext};
use crate::core::supervisor::AgentHandle;
use crate::core::test_context::TestContext;
use crate::runtime::dead_letter::DeadLetter;
use crate::runtime::error::RuntimeError;
use crate::runtime::ids::new_id;
use crate::runtime::route::{RouteTarget, Spawner, Target};
use crate::runtime::subscriptions::Subscriptions;
use crate::runtime::topics::TopicSpec;
use crate::runtime::worker::{QueueControl, StartedAgent, WorkerAgent};
use crate::runtime::writes::{ClientSource, ReplyWriter};

/// What `app.agents()` and the `agents` command show of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// Agent name.
    pub name: String,
    /// The topics it reads (empty for a channel agent).
    pub topics: Vec<String>,
    /// Key codec of its topic.
    pub key_codec: &'static str,
    /// Value codec of its topic.
    pub value_codec: &'static str,
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

pub(crate) struct Inner<K, V, O> {
    pub(crate) app: App,
    pub(crate) name: String,
    pub(crate) topic: Option<Topic<K, V>>,
    pub(crate) channel: Channel<K, V>,
    agent: Mutex<Agent<K, V, O>>,
    dead_letter: Option<String>,
    isolated: bool,
}

/// A registered agent. Cheap to clone.
pub struct AppAgent<K, V, O> {
    pub(crate) inner: Arc<Inner<K, V, O>>,
}

impl<K, V, O> Clone for AppAgent<K, V, O> {
    fn clone(&self) -> Self {
        AppAgent {
            inner: Arc::clone(&self.inner),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K, V, O> Inner<K, V, O> {
    pub(crate) fn new(
        app: App,
        name: String,
        topic: Option<Topic<K, V>>,
        channel: Channel<K, V>,
        agent: Agent<K, V, O>,
        dead_letter: Option<String>,
        isolated: bool,
    ) -> Self {
        Inner {
            app,
            name,
            topic,
            channel,
            agent: Mutex::new(agent),
            dead_letter,
            isolated,
        }
    }
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

    /// Adds a sink for the values the agent yields (Faust's `agent.add_sink`): a function, an
    /// async function, a channel, a topic ([`Topic::sink`]) or another agent
    /// ([`AppAgent::as_sink`]). Takes effect for workers started afterwards.
    pub fn add_sink(&self, sink: Sink<O>) -> &Self {
        {
            let mut agent = lock(&self.inner.agent);
            *agent = agent.clone().sink(sink);
        }
        self
    }

    /// A sink that forwards each value to this agent (`cast`): for a topic agent the record
    /// is queued and the event is done when the broker has it.
    pub fn as_sink(&self) -> Sink<V> {
        match &self.inner.topic {
            Some(topic) => topic.sink(),
            None => Sink::channel(self.inner.channel.sender()),
        }
    }

    /// The core agent (function, channel, options), for `test_context`.
    pub fn definition(&self) -> Agent<K, V, O> {
        lock(&self.inner.agent).clone()
    }

    /// Runs the agent on an in-memory channel without a broker (Faust's
    /// `agent.test_context()`).
    pub fn test_context(&self) -> Result<TestContext<K, V, O>, AgentError> {
        self.definition().reply_keys_as_json().test_context()
    }

    /// Sends a value without waiting for a reply (Faust's `cast`): returns once the record is
    /// queued in the producer, with a handle to await for the broker's acknowledgement
    /// (`None` for a channel agent, whose event is queued in memory).
    pub async fn cast(&self, value: V) -> Result<Option<SendHandle>, AppError> {
        self.send(None, value, AskOptions::default()).await
    }

    /// `cast` with a key (the Kafka message key: same key, same partition) and an explicit
    /// partition (Faust's `cast(value, key=..., partition=...)`).
    pub async fn cast_with(
        &self,
        key: Option<K>,
        value: V,
        partition: Option<i32>,
    ) -> Result<Option<SendHandle>, AppError> {
        let options = AskOptions {
            partition,
            ..AskOptions::default()
        };
        self.send(key, value, options).await
    }

    /// The mechanism under `cast` and `ask` (Faust's `send`): queues the value to the agent's
    /// topic (or channel) with the reply headers when `reply_to` is set.
    pub async fn send(
        &self,
        key: Option<K>,
        value: V,
        options: AskOptions,
    ) -> Result<Option<SendHandle>, AppError> {
        let headers = match &options.reply_to {
            Some(to) => {
                let cid = options.correlation_id.clone().unwrap_or_else(new_id);
                reply_headers(to, &cid)
            }
            None => Vec::new(),
        };
        match &self.inner.topic {
            Some(topic) => {
                let handle = topic
                    .send_with(
                        key,
                        value,
                        SendOptions {
                            partition: options.partition,
                            headers,
                        },
                    )
                    .await?;
                Ok(Some(handle))
            }
            None => {
                self.inner
                    .channel
                    .sender()
                    .send_event(key, value, headers)
                    .await
                    .map_err(|_| AppError::Closed(format!("agent {}", self.inner.name)))?;
                Ok(None)
            }
        }
    }
}

/// What the app and its worker need of an agent, whatever its types.
pub(crate) trait Registered: Send + Sync {
    fn info(&self) -> AgentInfo;
    /// The topics it reads and writes dead letters to.
    fn topics(&self) -> Vec<TopicSpec>;
    fn as_worker_agent(self: Arc<Self>) -> Arc<dyn WorkerAgent>;
}

impl<K: Model, V: Model, O: Model> Registered for Inner<K, V, O> {
    fn info(&self) -> AgentInfo {
        let agent = lock(&self.agent);
        AgentInfo {
            name: self.name.clone(),
            topics: self
                .topic
                .as_ref()
                .map(|t| t.names().to_vec())
                .unwrap_or_default(),
            key_codec: self.topic.as_ref().map_or("raw", |t| t.key_codec_name()),
            value_codec: self.topic.as_ref().map_or("json", |t| t.value_codec_name()),
            concurrency: agent.concurrency_level(),
            yields: agent.yields(),
        }
    }

    fn topics(&self) -> Vec<TopicSpec> {
        let mut specs = self.topic.as_ref().map(Topic::specs).unwrap_or_default();
        if let Some(dl) = &self.dead_letter {
            specs.push(TopicSpec::named(dl.clone()));
        }
        specs
    }

    fn as_worker_agent(self: Arc<Self>) -> Arc<dyn WorkerAgent> {
        self
    }
}

impl<K: Model, V: Model, O: Model> WorkerAgent for Inner<K, V, O> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn start(&self, subscriptions: &Arc<Subscriptions>) -> Result<StartedAgent, RuntimeError> {
        let mut agent = lock(&self.agent).clone();
        if self.isolated && (agent.concurrency_level() > 1 || self.topic.is_none()) {
            return Err(AgentError::Misconfigured {
                agent: self.name.clone(),
                reason: "isolated_partitions needs a topic source and concurrency 1".into(),
            }
            .into());
        }
        let source: Arc<dyn ClientSource> = Arc::new(self.app.clone());
        agent = agent
            .replier(Arc::new(ReplyWriter::new(Arc::clone(&source))))
            .reply_keys_as_json();
        let dead_letter = self
            .dead_letter
            .as_deref()
            .map(|t| DeadLetter::new(Arc::clone(&source), t, &self.name));
        if let Some(dl) = dead_letter.clone() {
            agent = agent.on_failure(move |event: CurrentEvent, error: AgentError| {
                let dl = dl.clone();
                async move {
                    match event.message() {
                        Some(m) => dl.send_message(m, &error.to_string()).await,
                        None => tracing::error!(agent = %error, "an event from a channel has no record to dead-letter"),
                    }
                }
            });
        }
        let Some(topic) = &self.topic else {
            // A channel agent: its actors read the channel.
            let handle = agent.start()?;
            return Ok(StartedAgent {
                handle: Some(handle),
                queues: vec![Arc::clone(self.channel.queue()) as Arc<dyn QueueControl>],
            });
        };
        let context: Arc<dyn StreamContext> = Arc::new(AgentContext::new(
            &self.app,
            Arc::clone(subscriptions),
            &self.name,
            topic,
            agent.concurrency_level(),
            dead_letter.clone(),
            agent.failure.clone(),
        ));
        let capacity = self.channel.capacity();
        // What the topic's routes deliver to, the actors started now, and their queue.
        type Started<K, V> = (
            Box<dyn Fn() -> Target<K, V>>,
            Option<AgentHandle>,
            Vec<Arc<dyn QueueControl>>,
        );
        let (target_for, handle, queues): Started<K, V> = if self.isolated {
            let spawn_agent = agent.clone();
            let spawn_context = Arc::clone(&context);
            let spawner: Spawner<K, V> = Arc::new(move |_partition: i32| {
                let channel: Channel<K, V> = Channel::new(capacity);
                channel.set_context(Some(Arc::clone(&spawn_context)));
                let handle = spawn_agent.clone().channel(channel.clone()).start()?;
                Ok((Arc::clone(channel.queue()), handle))
            });
            (
                Box::new(move || Target::Isolated(Arc::clone(&spawner))),
                None,
                Vec::new(),
            )
        } else {
            self.channel.set_context(Some(Arc::clone(&context)));
            let handle = agent.clone().channel(self.channel.clone()).start()?;
            let queue = Arc::clone(self.channel.queue());
            (
                Box::new(move || Target::Queue(Arc::clone(&queue))),
                Some(handle),
                vec![Arc::clone(self.channel.queue()) as Arc<dyn QueueControl>],
            )
        };
        subscriptions.build(|table| {
            for name in topic.names() {
                table.add(
                    name,
                    topic.key_codec_ref(),
                    topic.value_codec_ref(),
                    RouteTarget {
                        agent: Arc::from(self.name.as_str()),
                        target: target_for(),
                        dead_letter: dead_letter.clone(),
                    },
                );
            }
        });
        Ok(StartedAgent { handle, queues })
    }
}
