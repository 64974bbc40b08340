//! Streams that go through topics: [`Stream::group_by`] (re-partition by a new key),
//! [`Stream::through`] (forward to a topic and continue from it) and [`Stream::echo`]
//! (forward to topics and continue), as Faust does them.
//!
//! A topic agent's stream carries an [`AgentContext`] (the agent's broker wiring). A forwarder
//! task reads the source stream without automatic acks and forwards each event as Faust's
//! `event.forward` does: the record's value bytes as they were read (never re-encoded), its
//! headers, and the new key encoded with the app's key serializer (`raw`: a string key is its
//! UTF-8 bytes; a key that is not text falls back to JSON, as a Faust model key). The source
//! event is done once the broker has the forwarded record; a forward that fails goes to the
//! agent's error policy. The returned stream reads the new topic through the worker, so
//! records with the same new key reach the same agent instance, across workers and across
//! languages: a Python Faust worker regrouping the same stream writes the same bytes to the
//! same partitions of the same topic, `<agent>-<source topic>-<name>-repartition`
//! (`<source topic>-<name>-repartition` when the source topic is the agent's default one,
//! which carries the app's prefix already).
//!
//! Faust refuses `group_by` on an agent with `concurrency > 1` (each key's order would be
//! lost): so do we, by stopping the agent with [`AgentError::Misconfigured`]. Without a
//! context (a channel agent, a test context) `group_by` re-keys in memory and `through`/`echo`
//! send through the app's producer.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use mephisto_engine::producer::{ProducerRecord, TryEnqueueError};

use crate::app::topic::{Model, Topic};
use crate::app::App;
use crate::core::ack::AckRef;
use crate::core::codec::{Codec, CodecError, CodecName, SerdeCodec};
use crate::core::error::{AgentError, WriteError};
use crate::core::event::Event;
use crate::core::queue::Queue;
use crate::core::sink::FailureHook;
use crate::core::sink::WriteFor;
use crate::core::stream::{key_to_json, Events, Stream, StreamContext, TaskGuard};
use crate::runtime::dead_letter::DeadLetter;
use crate::runtime::route::{RouteTable, RouteTarget, Target};
use crate::runtime::subscriptions::Subscriptions;
use crate::runtime::topics::TopicSpec;

/// The broker wiring of a topic agent's streams.
#[derive(Clone)]
pub(crate) struct AgentContext {
    app: App,
    subscriptions: Arc<Subscriptions>,
    agent: Arc<str>,
    source_topic: Arc<str>,
    source_has_prefix: bool,
    /// The source topic's value codec (an `Arc<dyn Codec<V>>`).
    value_codec: Arc<dyn Any + Send + Sync>,
    concurrency: usize,
    capacity: usize,
    dead_letter: Option<DeadLetter>,
    failure: Option<FailureHook>,
    /// The queues of the topics this agent's streams forward to, shared by its actors.
    queues: Arc<Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>>,
}

impl StreamContext for AgentContext {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl AgentContext {
    pub(crate) fn new<K: Model, V: Model>(
        app: &App,
        subscriptions: Arc<Subscriptions>,
        agent: &str,
        topic: &Topic<K, V>,
        concurrency: usize,
        dead_letter: Option<DeadLetter>,
        failure: Option<FailureHook>,
    ) -> Self {
        AgentContext {
            app: app.clone(),
            subscriptions,
            agent: Arc::from(agent),
            source_topic: Arc::clone(topic.name_arc()),
            source_has_prefix: topic.has_prefix(),
            value_codec: Arc::new(Arc::clone(topic.value_codec_ref())),
            concurrency,
            capacity: app.settings().stream_buffer_maxsize,
            dead_letter,
            failure,
            queues: Arc::default(),
        }
    }

    fn repartition_topic(&self, name: &str) -> String {
        repartition_topic(
            &self.agent,
            &self.source_topic,
            self.source_has_prefix,
            name,
        )
    }

    fn value_codec<V: 'static>(&self) -> Option<Arc<dyn Codec<V>>> {
        self.value_codec
            .downcast_ref::<Arc<dyn Codec<V>>>()
            .cloned()
    }

    /// The queue of `topic` for this agent (made once, shared by its actors).
    fn queue<K2: Clone + Send + 'static, V: Clone + Send + 'static>(
        &self,
        topic: &str,
    ) -> Option<Arc<Queue<Event<K2, V>>>> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let entry = queues
            .entry(topic.to_owned())
            .or_insert_with(|| Arc::new(Arc::new(Queue::<Event<K2, V>>::new(self.capacity))));
        entry.downcast_ref::<Arc<Queue<Event<K2, V>>>>().cloned()
    }

    /// The same wiring for a stream reading `topic` (whose name carries a prefix).
    fn for_topic<V: Model>(&self, topic: &str, value_codec: Arc<dyn Codec<V>>) -> AgentContext {
        AgentContext {
            source_topic: Arc::from(topic),
            source_has_prefix: true,
            value_codec: Arc::new(value_codec),
            ..self.clone()
        }
    }

    fn misconfigured(&self, reason: &str) -> AgentError {
        AgentError::Misconfigured {
            agent: self.agent.to_string(),
            reason: reason.to_owned(),
        }
    }
}

/// Faust's repartition topic name (`Stream.group_by` with `Topic.derive`): the agent's name
/// as a prefix unless the source topic carries one already.
fn repartition_topic(agent: &str, source: &str, source_has_prefix: bool, name: &str) -> String {
    let prefix = if source_has_prefix {
        String::new()
    } else {
        format!("{agent}-")
    };
    format!("{prefix}{source}-{name}-repartition")
}

/// The key codec of a repartition topic: the app's key serializer (Faust's derived topics use
/// it), with JSON for keys it cannot carry (`raw` carries text and bytes only; Faust encodes a
/// model key with its own JSON).
struct RepartitionKey(CodecName);

impl<K: Model> Codec<K> for RepartitionKey {
    fn name(&self) -> &'static str {
        self.0.as_str()
    }

    fn encode(&self, value: &K) -> Result<Bytes, CodecError> {
        Codec::<K>::encode(&SerdeCodec(self.0), value)
            .or_else(|_| Codec::<K>::encode(&SerdeCodec(CodecName::Json), value))
    }

    fn decode(&self, bytes: &Bytes) -> Result<K, CodecError> {
        Codec::<K>::decode(&SerdeCodec(self.0), bytes)
            .or_else(|_| Codec::<K>::decode(&SerdeCodec(CodecName::Json), bytes))
    }
}

/// Gives the source event up if the forwarder stops before it was forwarded.
struct Forwarding(Option<AckRef>);

impl Forwarding {
    fn done(mut self) {
        self.0.take();
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        if let Some(a) = self.0.take() {
            a.abandon();
        }
    }
}

/// Encodes an event for the forwarded record: key and value bytes.
type Encode<K, V> =
    Box<dyn Fn(&Event<K, V>) -> Result<(Option<Bytes>, Option<Bytes>), CodecError> + Send + Sync>;

/// A topic to attach first, with the routes that read it.
type Attach = Option<(TopicSpec, Box<dyn FnOnce(&mut RouteTable) + Send>)>;

/// Reads `source` and forwards each event to `topic` (after attaching the topic with `route`
/// when one is given); see the module docs.
async fn forward<K, V>(
    ctx: AgentContext,
    mut source: Events<K, V>,
    topic: Arc<str>,
    attach: Attach,
    encode: Encode<K, V>,
    pass_on: Option<Arc<Queue<Event<K, V>>>>,
) where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    if let Some((spec, route)) = attach {
        if let Err(e) = ctx.subscriptions.attach(spec, route).await {
            tracing::error!(agent = %ctx.agent, %topic, error = %e, "cannot read the forwarding topic");
            return;
        }
    }
    let client = match ctx.app.client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(agent = %ctx.agent, %topic, error = %e, "cannot forward: no connection");
            return;
        }
    };
    while let Some(ev) = source.next().await {
        let guard = Forwarding(ev.ack_ref().cloned());
        let (key, value) = match encode(&ev) {
            Ok(kv) => kv,
            Err(e) => {
                // Faust logs a key that cannot be made and skips the event.
                tracing::error!(agent = %ctx.agent, %topic, error = %e, "cannot encode the event to forward; acked and skipped");
                ev.ack();
                guard.done();
                continue;
            }
        };
        let mut record = ProducerRecord::for_topic(Arc::clone(&topic));
        record.key = key;
        record.value = value;
        if let Some(m) = ev.message() {
            for h in m.record.headers() {
                record = record.header(
                    String::from_utf8_lossy(h.key()).into_owned(),
                    h.value_bytes(),
                );
            }
        }
        if !client.writes().has_room() {
            client.writes().room().await;
        }
        let queued = match client.producer().try_enqueue(record) {
            Ok(d) => Ok(d),
            Err(TryEnqueueError::WouldBlock(record, _)) => client.producer().enqueue(*record).await,
            Err(TryEnqueueError::Failed(e)) => Err(e),
        };
        let acks: Vec<AckRef> = ev.ack_ref().cloned().into_iter().collect();
        match queued {
            Ok(delivery) => {
                client.writes().track(
                    delivery,
                    &topic,
                    WriteFor {
                        acks: &acks,
                        message: ev.message(),
                        agent: &ctx.agent,
                        failure: ctx.failure.as_ref(),
                    },
                );
            }
            Err(e) => {
                let error = AgentError::WriteFailed {
                    agent: ctx.agent.to_string(),
                    at: Some(ev.id()),
                    target: topic.to_string(),
                    source: Box::new(WriteError::Produce {
                        topic: topic.to_string(),
                        source: Arc::new(e),
                    }),
                };
                match (&ctx.dead_letter, ev.message()) {
                    (Some(dl), Some(m)) => dl.send_message(m, &error.to_string()).await,
                    _ => {
                        client.writes().report(error);
                        guard.done();
                        return;
                    }
                }
            }
        }
        match &pass_on {
            Some(queue) => {
                // `echo`: the event goes on to the agent, which acks it.
                guard.done();
                if queue.push(ev).await.is_err() {
                    return;
                }
            }
            None => {
                ev.ack();
                guard.done();
            }
        }
    }
}

impl<K: Model, V: Model> Stream<K, V> {
    /// Re-partitions the stream by `key_fn` (Faust's `stream.group_by(Model.field)`): each
    /// event is forwarded, keyed by `key_fn(&value)`, to the topic
    /// `<agent>-<source topic>-<name>-repartition` (created when missing), and the returned
    /// stream reads that topic, so events with the same key always reach the same agent
    /// instance (Faust's topic name and key encoding, so both regroup alike).
    pub fn group_by<K2, F>(mut self, key_fn: F, name: &str) -> Stream<K2, V>
    where
        K2: Model,
        F: Fn(&V) -> K2 + Send + Sync + 'static,
    {
        let ctx = self
            .context()
            .and_then(|c| c.as_any().downcast_ref::<AgentContext>())
            .cloned();
        let Some(ctx) = ctx else {
            return self.rekey_in_memory(key_fn);
        };
        let (Some(value_codec), true) = (ctx.value_codec::<V>(), ctx.concurrency <= 1) else {
            self.fail(ctx.misconfigured(
                "an agent with concurrency > 1 cannot use group_by: each key's events would \
                 lose their order (Faust refuses it too)",
            ));
            let mut out = Stream::from_values(Vec::new());
            self.hand_over(&mut out);
            return out;
        };
        let topic = ctx.repartition_topic(name);
        let key_codec: Arc<dyn Codec<K2>> =
            Arc::new(RepartitionKey(ctx.app.settings().key_serializer));
        let Some(queue) = ctx.queue::<K2, V>(&topic) else {
            self.fail(ctx.misconfigured(&format!("{topic} is read with two different key types")));
            let mut out = Stream::from_values(Vec::new());
            self.hand_over(&mut out);
            return out;
        };
        let partitions = ctx.app.settings().topic_partitions;
        let spec = TopicSpec {
            name: topic.clone(),
            partitions: Some(partitions),
            configs: Vec::new(),
        };
        let route = route_to::<K2, V>(&ctx, &topic, &key_codec, &value_codec, &queue);
        let encode_key = Arc::clone(&key_codec);
        let encode_value = Arc::clone(&value_codec);
        let encode: Encode<K, V> = Box::new(move |ev: &Event<K, V>| {
            let key = encode_key.encode(&key_fn(&ev.value))?;
            let value = match ev.message() {
                Some(m) => m.record.value_bytes(),
                None => Some(encode_value.encode(&ev.value)?),
            };
            Ok((Some(key), value))
        });
        let next_ctx = ctx.for_topic(&topic, value_codec);
        let mut out = Stream::from_queue(queue)
            .with_key_json(Some(key_to_json::<K2>))
            .with_context(Some(Arc::new(next_ctx)));
        self.hand_over(&mut out);
        let source = self.noack().events();
        let task = tokio::spawn(forward(
            ctx,
            source,
            Arc::from(topic.as_str()),
            Some((spec, route)),
            encode,
            None,
        ));
        out.guard(TaskGuard::new(task.abort_handle()));
        out
    }

    /// Forwards every event to `topic` (its key and value bytes as they were read, and its
    /// headers) and continues from that topic (Faust's `stream.through(topic)`). Without a
    /// broker context, the events are sent and the stream goes on with them in memory.
    pub fn through(mut self, topic: &Topic<K, V>) -> Stream<K, V> {
        let ctx = self
            .context()
            .and_then(|c| c.as_any().downcast_ref::<AgentContext>())
            .cloned();
        let Some(ctx) = ctx else {
            return self.echo(std::slice::from_ref(topic));
        };
        let Some(queue) = ctx.queue::<K, V>(topic.name()) else {
            self.fail(ctx.misconfigured(&format!(
                "{} is read with two different types",
                topic.name()
            )));
            let mut out = Stream::from_values(Vec::new());
            self.hand_over(&mut out);
            return out;
        };
        let spec = topic
            .specs()
            .into_iter()
            .next()
            .unwrap_or_else(|| TopicSpec::named(topic.name()));
        let route = route_to::<K, V>(
            &ctx,
            topic.name(),
            topic.key_codec_ref(),
            topic.value_codec_ref(),
            &queue,
        );
        let t = topic.clone();
        let encode: Encode<K, V> = Box::new(move |ev: &Event<K, V>| match ev.message() {
            Some(m) => Ok((m.record.key_bytes(), m.record.value_bytes())),
            None => Ok((
                ev.key
                    .as_ref()
                    .map(|k| t.key_codec_ref().encode(k))
                    .transpose()?,
                Some(t.value_codec_ref().encode(&ev.value)?),
            )),
        });
        let next_ctx = ctx.for_topic(topic.name(), Arc::clone(topic.value_codec_ref()));
        let mut out = Stream::from_queue(queue)
            .with_key_json(Some(key_to_json::<K>))
            .with_context(Some(Arc::new(next_ctx)));
        self.hand_over(&mut out);
        let source = self.noack().events();
        let task = tokio::spawn(forward(
            ctx,
            source,
            Arc::clone(topic.name_arc()),
            Some((spec, route)),
            encode,
            None,
        ));
        out.guard(TaskGuard::new(task.abort_handle()));
        out
    }

    /// Sends every event to each of `topics` (key and headers kept) before handing it on
    /// (Faust's `stream.echo(*topics)`). The event is done when the agent is done with it and
    /// the copies are written.
    pub fn echo(mut self, topics: &[Topic<K, V>]) -> Stream<K, V> {
        let ctx = self
            .context()
            .and_then(|c| c.as_any().downcast_ref::<AgentContext>())
            .cloned();
        let capacity = ctx.as_ref().map_or(16, |c| c.capacity);
        let local: Arc<Queue<Event<K, V>>> = Arc::new(Queue::new(capacity));
        let mut out = Stream::from_queue(Arc::clone(&local))
            .with_key_json(Some(key_to_json::<K>))
            .with_context(self.context().cloned());
        self.hand_over(&mut out);
        let source = self.noack().events();
        let topics = topics.to_vec();
        let task = match ctx {
            Some(ctx) if topics.len() == 1 => {
                let t = topics[0].clone();
                let encode: Encode<K, V> = Box::new(move |ev: &Event<K, V>| match ev.message() {
                    Some(m) => Ok((m.record.key_bytes(), m.record.value_bytes())),
                    None => Ok((
                        ev.key
                            .as_ref()
                            .map(|k| t.key_codec_ref().encode(k))
                            .transpose()?,
                        Some(t.value_codec_ref().encode(&ev.value)?),
                    )),
                });
                tokio::spawn(forward(
                    ctx,
                    source,
                    Arc::clone(topics[0].name_arc()),
                    None,
                    encode,
                    Some(local),
                ))
            }
            _ => tokio::spawn(echo_by_send(source, topics, local)),
        };
        out.guard(TaskGuard::new(task.abort_handle()));
        out
    }

    fn rekey_in_memory<K2, F>(mut self, key_fn: F) -> Stream<K2, V>
    where
        K2: Model,
        F: Fn(&V) -> K2 + Send + Sync + 'static,
    {
        let local: Arc<Queue<Event<K2, V>>> = Arc::new(Queue::new(16));
        let mut out = Stream::from_queue(Arc::clone(&local)).with_key_json(Some(key_to_json::<K2>));
        self.hand_over(&mut out);
        let mut source = self.noack().events();
        let task = tokio::spawn(async move {
            while let Some(ev) = source.next().await {
                let key = key_fn(&ev.value);
                if local.push(ev.with_key(Some(key))).await.is_err() {
                    return;
                }
            }
        });
        out.guard(TaskGuard::new(task.abort_handle()));
        out
    }
}

/// The route that delivers `topic` to the agent's queue.
fn route_to<K2: Model, V: Model>(
    ctx: &AgentContext,
    topic: &str,
    key_codec: &Arc<dyn Codec<K2>>,
    value_codec: &Arc<dyn Codec<V>>,
    queue: &Arc<Queue<Event<K2, V>>>,
) -> Box<dyn FnOnce(&mut RouteTable) + Send> {
    let (topic, key_codec, value_codec, queue) = (
        topic.to_owned(),
        Arc::clone(key_codec),
        Arc::clone(value_codec),
        Arc::clone(queue),
    );
    let agent = Arc::clone(&ctx.agent);
    let dead_letter = ctx.dead_letter.clone();
    Box::new(move |table: &mut RouteTable| {
        table.add(
            &topic,
            &key_codec,
            &value_codec,
            RouteTarget {
                agent,
                target: Target::Queue(queue),
                dead_letter,
            },
        );
    })
}

/// `echo` without a broker context: sends each event with the topics' own `send`, then
/// hands it on.
async fn echo_by_send<K: Model, V: Model>(
    mut source: Events<K, V>,
    topics: Vec<Topic<K, V>>,
    local: Arc<Queue<Event<K, V>>>,
) {
    while let Some(ev) = source.next().await {
        for topic in &topics {
            let headers = ev.headers().to_pairs();
            let sent = topic
                .send_with(
                    ev.key.clone(),
                    ev.value.clone(),
                    crate::app::SendOptions {
                        partition: None,
                        headers,
                    },
                )
                .await;
            if let Err(e) = sent {
                tracing::error!(topic = topic.name(), error = %e, "echo: send failed");
            }
        }
        if local.push(ev).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::repartition_topic;

    #[test]
    fn faust_names_repartition_topics() {
        // faust-streaming's test_group_by__with_prefix.
        assert_eq!(
            repartition_topic("foo.bar.baz", "test", false, "FooModel.foo"),
            "foo.bar.baz-test-FooModel.foo-repartition"
        );
        // An agent on its default topic `<app id>-<agent>`.
        assert_eq!(
            repartition_topic("x", "app-x", true, "account_id"),
            "app-x-account_id-repartition"
        );
    }
}
