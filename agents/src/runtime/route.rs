//! Routing: which agents get a topic's records, and how a partition task turns a fetched batch
//! into their events.
//!
//! A [`TypedRoute`] is the set of agents that read a topic as the same types with the same
//! codecs: each record is decoded once and handed to every one of them (the value cloned for
//! all but the last). A [`RouteTable`] groups the agents of a worker by topic and merges their
//! routes. A partition task opens each route of its topic for its partition
//! ([`TopicRoute::open`]): the open route holds the agents' queues (or starts the partition's
//! own instance of an `isolated_partitions` agent) and buffers reused from batch to batch, so
//! delivering a record allocates nothing.
//!
//! A record that does not decode is logged with its coordinate, sent to the agent's
//! dead-letter topic when it has one, and acked for that agent: it never stops the worker.

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use mephisto_engine::group::AssignedPartition;
use tokio::sync::watch;

use crate::core::ack::{AckRef, Acker};
use crate::core::codec::{Codec, CodecError, Direction, Part};
use crate::core::error::AgentError;
use crate::core::event::{Event, Message};
use crate::core::queue::Queue;
use crate::core::supervisor::AgentHandle;
use crate::runtime::dead_letter::DeadLetter;

/// Starts the instance of an `isolated_partitions` agent for one partition: its queue and its
/// running actors.
pub type Spawner<K, V> =
    Arc<dyn Fn(i32) -> Result<(Arc<Queue<Event<K, V>>>, AgentHandle), AgentError> + Send + Sync>;

/// Where a route delivers for one agent.
pub enum Target<K, V> {
    /// The agent's queue (shared by its actors).
    Queue(Arc<Queue<Event<K, V>>>),
    /// An agent instance per partition.
    Isolated(Spawner<K, V>),
}

/// One agent reached through a route.
pub struct RouteTarget<K, V> {
    /// The agent's name.
    pub agent: Arc<str>,
    /// Where its events go.
    pub target: Target<K, V>,
    /// Its dead-letter topic, if any.
    pub dead_letter: Option<DeadLetter>,
}

/// The agents of one topic that decode its records the same way.
pub struct TypedRoute<K, V> {
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    targets: Vec<Arc<RouteTarget<K, V>>>,
}

/// The stop signal of a partition task (the worker stops).
pub type Stop = watch::Receiver<bool>;

/// A topic's route as a partition task sees it.
pub trait TopicRoute: Send + Sync + 'static {
    /// How many agents it reaches (each is one consumer of the partition's acks).
    fn consumers(&self) -> u32;
    /// Their names.
    fn agents(&self) -> Vec<String>;
    /// Starts delivering `partition`, whose events are acked by `acker` as consumers
    /// `first_consumer..`.
    fn open(
        &self,
        partition: i32,
        acker: Arc<dyn Acker>,
        first_consumer: u8,
    ) -> Result<Box<dyn OpenRoute>, AgentError>;
}

/// A route opened for one partition.
pub trait OpenRoute: Send + Sync {
    /// Decodes `messages` (one fetched batch) and queues the events for each agent, waiting for
    /// room in their queues (pausing the partition meanwhile). Returns `false` if it stopped
    /// early because the partition is no longer ours or the worker stops (the events not
    /// queued are given up). The partition's last route (`last`) takes the messages out of
    /// `messages` for its last agent instead of copying them (one shared count fewer per
    /// event); the others leave them.
    fn deliver<'a>(
        &'a mut self,
        messages: &'a mut Vec<Message>,
        last: bool,
        assigned: &'a AssignedPartition,
        stop: &'a mut Stop,
    ) -> BoxFuture<'a, bool>;
    /// Gives `messages` up for this route's agents (not processed, not committed): the
    /// partition stopped before they were queued.
    fn give_up(&self, messages: &[Message]);
    /// A whole batch did not decode: dead-letter its raw bytes for the agents that have a
    /// dead-letter topic.
    fn dead_letter_batch<'a>(
        &'a self,
        raw: Bytes,
        message: String,
        error: String,
    ) -> BoxFuture<'a, ()>;
    /// The partition is over: the partition's own agent instances finish what they were
    /// given and stop.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

impl<K, V> TypedRoute<K, V> {
    /// A route decoding with these codecs, to no agent yet.
    pub fn new(key_codec: Arc<dyn Codec<K>>, value_codec: Arc<dyn Codec<V>>) -> Self {
        TypedRoute {
            key_codec,
            value_codec,
            targets: Vec::new(),
        }
    }
}

/// Decodes a record's key and value.
fn decode<K: 'static, V: 'static>(
    key_codec: &dyn Codec<K>,
    value_codec: &dyn Codec<V>,
    message: &Message,
) -> Result<(Option<K>, V), CodecError> {
    let record = &message.record;
    let key = match record.key_bytes() {
        Some(k) => Some(
            key_codec
                .decode(&k)
                .map_err(|e| e.for_part(Part::Key).at(message.coordinate()))?,
        ),
        None => None,
    };
    let value = match record.value_bytes() {
        Some(v) => value_codec.decode(&v),
        // A null value (a tombstone) is JSON `null`: fine for `Option` values.
        None if value_codec.name() == "json" => value_codec.decode(&Bytes::from_static(b"null")),
        None => Err(CodecError::new::<V>(
            value_codec.name(),
            Direction::Decode,
            "null value (a tombstone)",
        )),
    }
    .map_err(|e| e.for_part(Part::Value).at(message.coordinate()))?;
    Ok((key, value))
}

impl<K, V> TopicRoute for TypedRoute<K, V>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn consumers(&self) -> u32 {
        u32::try_from(self.targets.len()).unwrap_or(u32::MAX)
    }

    fn agents(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.agent.to_string()).collect()
    }

    fn open(
        &self,
        partition: i32,
        acker: Arc<dyn Acker>,
        first_consumer: u8,
    ) -> Result<Box<dyn OpenRoute>, AgentError> {
        let mut queues = Vec::with_capacity(self.targets.len());
        let mut instances = Vec::new();
        for t in &self.targets {
            match &t.target {
                Target::Queue(q) => queues.push(Arc::clone(q)),
                Target::Isolated(spawn) => {
                    let (q, handle) = spawn(partition)?;
                    tracing::info!(agent = %t.agent, partition, "agent instance started for partition");
                    queues.push(Arc::clone(&q));
                    instances.push((q, handle));
                }
            }
        }
        Ok(Box::new(Open {
            key_codec: Arc::clone(&self.key_codec),
            value_codec: Arc::clone(&self.value_codec),
            targets: self.targets.clone(),
            buffers: (0..queues.len()).map(|_| VecDeque::new()).collect(),
            queues,
            instances,
            acker,
            first_consumer,
        }))
    }
}

/// The partition's own instance of an `isolated_partitions` agent: its queue and actors.
type Instance<K, V> = (Arc<Queue<Event<K, V>>>, AgentHandle);

/// A typed route opened for one partition.
struct Open<K, V> {
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    targets: Vec<Arc<RouteTarget<K, V>>>,
    queues: Vec<Arc<Queue<Event<K, V>>>>,
    /// Events of the current batch per agent, reused.
    buffers: Vec<VecDeque<Event<K, V>>>,
    /// The partition's own instances of `isolated_partitions` agents.
    instances: Vec<Instance<K, V>>,
    acker: Arc<dyn Acker>,
    first_consumer: u8,
}

impl<K, V> Open<K, V> {
    fn ack_ref(&self, message: &Message, i: usize) -> AckRef {
        self.ack_at(message.offset(), i)
    }

    /// The ack of the event at `offset` for the route's `i`th agent.
    fn ack_at(&self, offset: i64, i: usize) -> AckRef {
        let id = u64::try_from(offset).unwrap_or_default();
        let consumer = self
            .first_consumer
            .saturating_add(u8::try_from(i).unwrap_or(u8::MAX));
        AckRef::new(Arc::clone(&self.acker), id, consumer)
    }
}

/// The messages a route delivers: taken (the partition's last route) or shared.
enum Messages<'m> {
    Owned(std::vec::Drain<'m, Message>),
    Shared(std::slice::Iter<'m, Message>),
}

/// A message a route delivers: its own (the partition's last route takes them) or shared
/// with the routes after it.
enum MessageAt<'m> {
    Owned(Message),
    Shared(&'m Message),
}

impl MessageAt<'_> {
    fn get(&self) -> &Message {
        match self {
            MessageAt::Owned(m) => m,
            MessageAt::Shared(m) => m,
        }
    }

    fn into_owned(self) -> Message {
        match self {
            MessageAt::Owned(m) => m,
            MessageAt::Shared(m) => m.clone(),
        }
    }
}

impl<K, V> OpenRoute for Open<K, V>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn deliver<'a>(
        &'a mut self,
        messages: &'a mut Vec<Message>,
        last: bool,
        assigned: &'a AssignedPartition,
        stop: &'a mut Stop,
    ) -> BoxFuture<'a, bool> {
        async move {
            let n = self.targets.len();
            let mut source = if last {
                Messages::Owned(messages.drain(..))
            } else {
                Messages::Shared(messages.iter())
            };
            loop {
                let message = match &mut source {
                    Messages::Owned(o) => match o.next() {
                        Some(m) => MessageAt::Owned(m),
                        None => break,
                    },
                    Messages::Shared(s) => match s.next() {
                        Some(m) => MessageAt::Shared(m),
                        None => break,
                    },
                };
                let message_ref = message.get();
                match decode(&*self.key_codec, &*self.value_codec, message_ref) {
                    Ok((key, value)) => {
                        let offset = message_ref.offset();
                        let mut kv = Some((key, value));
                        let mut message = Some(message);
                        for i in 0..n {
                            let last_agent = i + 1 == n;
                            let (k, v) = if last_agent {
                                match kv.take() {
                                    Some(kv) => kv,
                                    None => break,
                                }
                            } else {
                                match &kv {
                                    Some((k, v)) => (k.clone(), v.clone()),
                                    None => break,
                                }
                            };
                            let m = if last_agent {
                                match message.take() {
                                    Some(m) => m.into_owned(),
                                    None => break,
                                }
                            } else {
                                match &message {
                                    Some(m) => m.get().clone(),
                                    None => break,
                                }
                            };
                            let ack = self.ack_at(offset, i);
                            self.buffers[i].push_back(Event::from_message(k, v, m, Some(ack)));
                        }
                    }
                    Err(e) => {
                        for i in 0..n {
                            let target = Arc::clone(&self.targets[i]);
                            tracing::error!(
                                agent = %target.agent, coordinate = %message_ref.coordinate(), error = %e,
                                "record does not decode; acked and skipped"
                            );
                            if let Some(dl) = &target.dead_letter {
                                dl.send_message(message_ref, &e.to_string()).await;
                            }
                            self.ack_ref(message_ref, i).ack();
                        }
                    }
                }
            }
            for i in 0..n {
                if !push(&self.queues[i], &mut self.buffers[i], assigned, stop).await {
                    // Not ours any more, or stopping: give up what was not queued, for every
                    // agent.
                    for buffer in &mut self.buffers {
                        for ev in buffer.drain(..) {
                            if let Some(a) = ev.ack_ref() {
                                a.abandon();
                            }
                        }
                    }
                    return false;
                }
            }
            true
        }
        .boxed()
    }

    fn give_up(&self, messages: &[Message]) {
        for message in messages {
            for i in 0..self.targets.len() {
                self.ack_ref(message, i).abandon();
            }
        }
    }

    fn dead_letter_batch<'a>(
        &'a self,
        raw: Bytes,
        message: String,
        error: String,
    ) -> BoxFuture<'a, ()> {
        async move {
            for t in &self.targets {
                if let Some(dl) = &t.dead_letter {
                    dl.send(
                        None,
                        Some(raw.clone()),
                        Vec::new(),
                        None,
                        &format!("{message}: {error}"),
                    )
                    .await;
                }
            }
        }
        .boxed()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        let instances = self.instances;
        async move {
            for (queue, handle) in instances {
                // Queued events of a partition no longer ours are given up as the actors reach
                // them; the actors end when the queue is empty.
                queue.close();
                let name = handle.name().to_owned();
                let abort = handle.abort_handle();
                match tokio::time::timeout(std::time::Duration::from_secs(30), handle.join()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(agent = %name, error = %e, "partition instance stopped with an error"),
                    Err(_) => abort.abort(),
                }
                tracing::info!(agent = %name, "partition's agent instance stopped");
            }
        }
        .boxed()
    }
}

/// Pushes `buffer` into `queue`, pausing the partition while the queue is full; `false` if the
/// partition is revoked or the worker stops first. A closed queue (its agent ended) takes
/// nothing: those events are acked on the agent's behalf.
async fn push<K: Clone + Send + 'static, V: Clone + Send + 'static>(
    queue: &Queue<Event<K, V>>,
    buffer: &mut VecDeque<Event<K, V>>,
    assigned: &AssignedPartition,
    stop: &mut Stop,
) -> bool {
    if buffer.is_empty() {
        return true;
    }
    let mut paused = false;
    let mut released = std::pin::pin!(async {
        let mut watch = assigned.acks().watch_ownership();
        let _ = watch
            .wait_for(|o| *o != mephisto_engine::group::Ownership::Owned)
            .await;
    });
    let outcome = std::future::poll_fn(|cx| {
        match queue.poll_push(cx, buffer) {
            std::task::Poll::Ready(r) => return std::task::Poll::Ready(Some(r)),
            std::task::Poll::Pending => {}
        }
        if !paused {
            // The agent's queue is full: stop fetching this partition until it drains.
            assigned.pause();
            paused = true;
        }
        if released.as_mut().poll(cx).is_ready() || *stop.borrow() {
            return std::task::Poll::Ready(None);
        }
        let changed = std::pin::pin!(stop.changed());
        if changed.poll(cx).is_ready() {
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Pending
    })
    .await;
    match outcome {
        Some(Ok(())) => true,
        Some(Err(_closed)) => {
            for ev in buffer.drain(..) {
                ev.ack();
            }
            true
        }
        None => false,
    }
}

/// The routes of a worker by topic, merged by types and codecs (see the module docs).
#[derive(Default)]
pub struct RouteTable {
    topics: BTreeMap<String, Vec<Box<dyn Mergeable>>>,
}

trait Mergeable: Send + Sync {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_route(self: Box<Self>) -> Arc<dyn TopicRoute>;
}

impl<K, V> Mergeable for TypedRoute<K, V>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn into_route(self: Box<Self>) -> Arc<dyn TopicRoute> {
        Arc::new(*self)
    }
}

fn same_codec<T: ?Sized>(a: &Arc<T>, b: &Arc<T>) -> bool {
    std::ptr::eq(Arc::as_ptr(a) as *const (), Arc::as_ptr(b) as *const ())
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        RouteTable::default()
    }

    /// Adds `target` as a reader of `topic` with these codecs: to the route that already
    /// decodes it the same way, or a new one.
    pub fn add<K, V>(
        &mut self,
        topic: &str,
        key_codec: &Arc<dyn Codec<K>>,
        value_codec: &Arc<dyn Codec<V>>,
        target: RouteTarget<K, V>,
    ) where
        K: Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let routes = self.topics.entry(topic.to_owned()).or_default();
        for r in routes.iter_mut() {
            if let Some(t) = r.as_any_mut().downcast_mut::<TypedRoute<K, V>>() {
                if same_codec(&t.key_codec, key_codec) && same_codec(&t.value_codec, value_codec) {
                    t.targets.push(Arc::new(target));
                    return;
                }
            }
        }
        let mut route = TypedRoute::new(Arc::clone(key_codec), Arc::clone(value_codec));
        route.targets.push(Arc::new(target));
        routes.push(Box::new(route));
    }

    /// The topics with a route.
    pub fn topics(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }

    /// Moves `topic`'s routes out, as partition tasks use them.
    pub(crate) fn take(&mut self, topic: &str) -> Vec<Arc<dyn TopicRoute>> {
        self.topics
            .remove(topic)
            .unwrap_or_default()
            .into_iter()
            .map(Mergeable::into_route)
            .collect()
    }
}
