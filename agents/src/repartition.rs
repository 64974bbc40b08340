//! Streams that go through topics: [`Stream::group_by`] (re-partition by a new key through
//! the topic `<agent>-<source topic>-<name>-repartition`), [`Stream::through`] (forward to a
//! topic and continue from it) and [`Stream::echo`] (forward to topics and continue).
//!
//! A topic agent's stream carries a [`TopicContext`] given by the worker: it can queue records
//! on the app's producer and have the worker's consumer-group member read a new topic into a
//! route. A forwarder task reads the source stream without auto-acks, queues each record in
//! order, and acks the source event once the broker acknowledged the forwarded record; the
//! returned stream reads the new topic (a channel shared by the agent's actors). So
//! `group_by` gives Faust's guarantee: records with the same new key reach the same agent
//! instance, across workers. Without a context (a channel agent, a test context) `group_by`
//! re-keys in memory and `through`/`echo` send through the app's producer.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;

use crate::app::route::{self, Route};
use crate::app::{Model, Topic};
use crate::channel::Channel;
use crate::codec::{self, CodecName};
use crate::event::Event;
use crate::stream::{new_slot, Stream};

/// Stops a task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A forwarded record's key and value bytes, or why they could not be encoded.
type Encoded = Result<(Option<Bytes>, Option<Bytes>), String>;

/// The future of one record's acknowledgement.
pub(crate) type Acked = BoxFuture<'static, Result<(), String>>;

/// What a topic agent's stream may ask of the worker.
pub(crate) trait TopicContext: Send + Sync {
    /// The agent's name.
    fn agent(&self) -> &str;
    /// The topic this stream reads.
    fn source_topic(&self) -> &str;
    /// Queue capacity for new streams.
    fn capacity(&self) -> usize;
    /// Queues a record (in call order per caller) and returns the future of its ack.
    fn enqueue(
        &self,
        topic: String,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<(String, Bytes)>,
    ) -> BoxFuture<'static, Result<Acked, String>>;
    /// Creates `topic` when missing and has the worker read it into `route` (once per topic).
    fn attach(&self, topic: String, route: Route) -> BoxFuture<'static, Result<(), String>>;
    /// One value per `key` shared by the agent's actors, made by `make` the first time.
    fn shared(
        &self,
        key: &str,
        make: &mut dyn FnMut() -> Arc<dyn Any + Send + Sync>,
    ) -> Arc<dyn Any + Send + Sync>;
    /// The same context for a stream reading `topic`.
    fn for_topic(&self, topic: String) -> Arc<dyn TopicContext>;
}

impl<K: Model, V: Model> Stream<K, V> {
    /// Re-partitions the stream by `key_fn` (Faust's `stream.group_by(Model.field)`): each
    /// event is forwarded, keyed by `key_fn(&value)`, to the topic
    /// `<agent>-<source topic>-<name>-repartition` (created when missing, JSON keys and
    /// values), and the returned stream reads that topic, so events with the same key always
    /// reach the same agent instance. The source event is acked once the broker has the
    /// forwarded record.
    pub fn group_by<K2, F>(self, key_fn: F, name: &str) -> Stream<K2, V>
    where
        K2: Model,
        F: Fn(&V) -> K2 + Send + Sync + 'static,
    {
        let Some(ctx) = self.ctx.clone() else {
            return self.rekey_in_memory(key_fn);
        };
        let topic = format!(
            "{}-{}-{}-repartition",
            ctx.agent(),
            ctx.source_topic(),
            name
        );
        let make = move |v: &V| -> Encoded {
            let key = codec::encode(CodecName::Json, &key_fn(v)).map_err(|e| e.to_string())?;
            let value = codec::encode(CodecName::Json, v).map_err(|e| e.to_string())?;
            Ok((Some(key), Some(value)))
        };
        self.forward_through::<K2>(ctx, topic, CodecName::Json, CodecName::Json, make)
    }

    /// Forwards every event to `topic` (key and headers kept, the topic's codecs) and
    /// continues from that topic (Faust's `stream.through(topic)`). Without a broker
    /// context, the events are sent and the stream goes on with them in memory.
    pub fn through(self, topic: &Topic<K, V>) -> Stream<K, V> {
        let Some(ctx) = self.ctx.clone() else {
            return self.echo(std::slice::from_ref(topic));
        };
        let t = topic.clone();
        let (kc, vc) = (t.key_codec_name(), t.value_codec_name());
        let name = t.name().to_owned();
        self.forward_keyed(ctx, name, kc, vc, t)
    }

    /// Sends every event to each of `topics` (key and headers kept) before handing it on
    /// (Faust's `stream.echo(*topics)`). The event is acked when the agent is done with it.
    pub fn echo(self, topics: &[Topic<K, V>]) -> Stream<K, V> {
        let topics = topics.to_vec();
        let capacity = self.ctx.as_ref().map(|c| c.capacity()).unwrap_or(16);
        let channel: Channel<K, V> = Channel::new(capacity);
        let Ok(sender) = channel.sender() else {
            return self;
        };
        let (mut out, source) = self.split_into(&channel);
        let task = tokio::spawn(async move {
            let mut events = source.noack().events();
            while let Some(ev) = events.next().await {
                for topic in &topics {
                    let opts = crate::app::SendOptions {
                        partition: None,
                        headers: ev.headers.clone(),
                    };
                    if let Err(e) = topic
                        .send_with(ev.key.clone(), ev.value.clone(), opts)
                        .await
                    {
                        tracing::error!(topic = topic.name(), error = %e, "echo: send failed");
                    }
                }
                if sender.deliver(ev).await.is_err() {
                    return;
                }
            }
        });
        out.guards.push(AbortOnDrop(task.abort_handle()));
        out
    }

    /// A stream over `channel` that takes over this stream's actor slot and context, and
    /// this stream (with a fresh slot) as the forwarder's source.
    fn split_into<K2: Model>(mut self, channel: &Channel<K2, V>) -> (Stream<K2, V>, Stream<K, V>) {
        let mut out = channel.stream();
        out.ctx = self.ctx.clone();
        out.guards = std::mem::take(&mut self.guards);
        // The actor's "current event" (replies, error coordinates) follows the new stream.
        let slot = std::mem::replace(&mut self.current, new_slot());
        out.current = retype_slot(slot, &out);
        (out, self)
    }

    fn rekey_in_memory<K2, F>(self, key_fn: F) -> Stream<K2, V>
    where
        K2: Model,
        F: Fn(&V) -> K2 + Send + Sync + 'static,
    {
        let channel: Channel<K2, V> = Channel::new(16);
        let Ok(sender) = channel.sender() else {
            return Stream::from_values(Vec::new());
        };
        let (mut out, source) = self.split_into(&channel);
        let task = tokio::spawn(async move {
            let mut events = source.noack().events();
            while let Some(ev) = events.next().await {
                let key = key_fn(&ev.value);
                if sender.deliver(ev.rekey(Some(key))).await.is_err() {
                    return;
                }
            }
        });
        out.guards.push(AbortOnDrop(task.abort_handle()));
        out
    }

    fn forward_keyed(
        self,
        ctx: Arc<dyn TopicContext>,
        topic: String,
        key_codec: CodecName,
        value_codec: CodecName,
        t: Topic<K, V>,
    ) -> Stream<K, V> {
        let make = move |ev_key: Option<&K>, v: &V| -> Encoded {
            let key = ev_key
                .map(|k| t.encode_key(k).map_err(|e| e.to_string()))
                .transpose()?;
            let value = t.encode_value(v).map_err(|e| e.to_string())?;
            Ok((key, Some(value)))
        };
        self.forward::<K>(ctx, topic, key_codec, value_codec, make)
    }

    fn forward_through<K2: Model>(
        self,
        ctx: Arc<dyn TopicContext>,
        topic: String,
        key_codec: CodecName,
        value_codec: CodecName,
        make: impl Fn(&V) -> Encoded + Send + Sync + 'static,
    ) -> Stream<K2, V> {
        self.forward::<K2>(ctx, topic, key_codec, value_codec, move |_, v| make(v))
    }

    /// The forwarder: source events → `topic` (encoded by `make`), acked once written; the
    /// returned stream reads `topic` through the worker.
    fn forward<K2: Model>(
        self,
        ctx: Arc<dyn TopicContext>,
        topic: String,
        key_codec: CodecName,
        value_codec: CodecName,
        make: impl Fn(Option<&K>, &V) -> Encoded + Send + Sync + 'static,
    ) -> Stream<K2, V> {
        let capacity = ctx.capacity();
        let shared = ctx.shared(&topic, &mut || {
            Arc::new(Channel::<K2, V>::new(capacity)) as Arc<dyn Any + Send + Sync>
        });
        let channel: Channel<K2, V> = match shared.downcast::<Channel<K2, V>>() {
            Ok(c) => (*c).clone(),
            Err(_) => {
                tracing::error!(%topic, "topic read with two different types in one agent");
                Channel::new(capacity)
            }
        };
        let (mut out, source) = self.split_into(&channel);
        out.ctx = Some(ctx.for_topic(topic.clone()));
        let sender = channel.sender().ok();
        let agent = ctx.agent().to_owned();
        let task = tokio::spawn(async move {
            if let Some(sender) = sender {
                let route =
                    route::decoding::<K2, V>(agent.clone(), key_codec, value_codec, sender, None);
                if let Err(e) = ctx.attach(topic.clone(), route).await {
                    tracing::error!(%agent, %topic, error = %e, "cannot read the forwarding topic");
                    return;
                }
            }
            let mut events = source.noack().events();
            while let Some(ev) = events.next().await {
                forward_one(&*ctx, &agent, &topic, &make, ev).await;
            }
        });
        out.guards.push(AbortOnDrop(task.abort_handle()));
        out
    }
}

async fn forward_one<K: Model, V: Model>(
    ctx: &dyn TopicContext,
    agent: &str,
    topic: &str,
    make: &(dyn Fn(Option<&K>, &V) -> Encoded + Send + Sync),
    ev: Event<K, V>,
) {
    let (key, value) = match make(ev.key.as_ref(), &ev.value) {
        Ok(kv) => kv,
        Err(e) => {
            tracing::error!(%agent, %topic, error = %e, "cannot encode the event to forward; acked");
            ev.ack();
            return;
        }
    };
    match ctx
        .enqueue(topic.to_owned(), key, value, ev.headers.clone())
        .await
    {
        Ok(acked) => {
            let (agent, topic) = (agent.to_owned(), topic.to_owned());
            tokio::spawn(async move {
                match acked.await {
                    Ok(()) => {
                        ev.ack();
                    }
                    Err(e) => tracing::error!(%agent, %topic, error = %e,
                        "forwarded record not written; the source event stays unacked"),
                }
            });
        }
        Err(e) => tracing::error!(%agent, %topic, error = %e,
            "cannot queue the forwarded record; the source event stays unacked"),
    }
}

/// The actor slot typed for the new stream: the slot's "current event" is read by the actor
/// for the agent's own types, so a stream of other types gets a fresh one.
fn retype_slot<K, K2, V>(
    slot: crate::stream::CurrentSlot<K, V>,
    out: &Stream<K2, V>,
) -> crate::stream::CurrentSlot<K2, V>
where
    K: 'static,
    K2: 'static,
    V: 'static,
{
    let any: Box<dyn Any> = Box::new(slot);
    match any.downcast::<crate::stream::CurrentSlot<K2, V>>() {
        Ok(same) => *same,
        Err(_) => out.current.clone(),
    }
}
