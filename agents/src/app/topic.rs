//! [`Topic`]: a typed description of one or more Kafka topics (Faust's `app.topic(...)`): the
//! names (the first is the main topic), the key and value codecs, and the partition count and
//! configs used when the app creates it. Topics are agent sources, sinks, and can be sent to.
//!
//! A `Topic` is a plain value: its builder methods change only the value they are called on.
//! The app creates a topic when it is used (by an agent at worker start, at the first send, at
//! a sink's first write), as Faust declares topics when they are used.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use mephisto_engine::producer::{Delivery, ProducerRecord, RecordMetadata, TryEnqueueError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::error::AppError;
use crate::app::App;
use crate::core::codec::{Codec, CodecName, Part, SerdeCodec};
use crate::core::context;
use crate::core::sink::Sink;
use crate::runtime::topics::TopicSpec;
use crate::runtime::tracker::AfterAck;
use crate::runtime::writes::{ClientSource, TopicWriter};

/// A type usable as a key, value or agent output: a serde model that can be shared between
/// actors.
pub trait Model: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Model for T {}

/// Options of one send.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Explicit partition (default: murmur2 of the key, like Kafka's Java client).
    pub partition: Option<i32>,
    /// Extra headers.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// A record queued in the producer: await it for the broker's acknowledgement (Faust's
/// `send` returns once the record is buffered; its result is this future). Dropping it does
/// not cancel the record. Sent from an agent, the record holds the event being processed:
/// the event is not committed before the broker has the record, whether or not this handle
/// is awaited (a failure then goes to the agent's error policy, as a sink's does).
#[derive(Debug)]
pub struct SendHandle {
    partition: i32,
    state: Handle,
}

#[derive(Debug)]
enum Handle {
    /// Followed here.
    Delivery(Delivery),
    /// Followed by the worker's write tracker, which forwards the acknowledgement.
    Tracked {
        topic: Arc<str>,
        ack: tokio::sync::oneshot::Receiver<RecordMetadata>,
    },
}

impl SendHandle {
    pub(crate) fn new(delivery: Delivery) -> Self {
        SendHandle {
            partition: delivery.partition(),
            state: Handle::Delivery(delivery),
        }
    }

    /// The partition the record was queued for.
    pub fn partition(&self) -> i32 {
        self.partition
    }
}

impl Future for SendHandle {
    type Output = Result<RecordMetadata, AppError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            Handle::Delivery(d) => Pin::new(d).poll(cx).map_err(AppError::from),
            Handle::Tracked { topic, ack } => {
                Pin::new(ack).poll(cx).map_err(|_| AppError::WriteFailed {
                    topic: topic.to_string(),
                })
            }
        }
    }
}

/// A typed topic description. Cheap to clone.
pub struct Topic<K, V> {
    pub(crate) app: App,
    names: Arc<[String]>,
    main: Arc<str>,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    partitions: Option<i32>,
    configs: Vec<(String, String)>,
    /// Faust's `has_prefix`: the name already carries the app's prefix (an agent's default
    /// topic `<app id>-<agent>`); `group_by` then does not prefix its repartition topic.
    has_prefix: bool,
}

impl<K, V> Clone for Topic<K, V> {
    fn clone(&self) -> Self {
        Topic {
            app: self.app.clone(),
            names: Arc::clone(&self.names),
            main: Arc::clone(&self.main),
            key_codec: Arc::clone(&self.key_codec),
            value_codec: Arc::clone(&self.value_codec),
            partitions: self.partitions,
            configs: self.configs.clone(),
            has_prefix: self.has_prefix,
        }
    }
}

impl<K: 'static, V: 'static> std::fmt::Debug for Topic<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("names", &self.names)
            .field("key_codec", &self.key_codec.name())
            .field("value_codec", &self.value_codec.name())
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl<K: Model, V: Model> Topic<K, V> {
    pub(crate) fn new(app: App, names: Vec<String>) -> Self {
        let settings = app.settings();
        let main: Arc<str> = Arc::from(names.first().map(String::as_str).unwrap_or_default());
        Topic {
            app,
            names: names.into(),
            main,
            key_codec: Arc::new(SerdeCodec(settings.key_serializer)),
            value_codec: Arc::new(SerdeCodec(settings.value_serializer)),
            partitions: None,
            configs: Vec::new(),
            has_prefix: false,
        }
    }

    /// Marks the name as carrying the app's prefix (see `has_prefix` in Faust).
    pub(crate) fn prefixed(mut self) -> Self {
        self.has_prefix = true;
        self
    }

    pub(crate) fn has_prefix(&self) -> bool {
        self.has_prefix
    }

    /// The main topic's name (the first one).
    pub fn name(&self) -> &str {
        &self.main
    }

    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.main
    }

    /// Every topic name.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Uses the codec named `codec` for keys (Faust's `key_serializer`).
    pub fn key_codec(mut self, codec: CodecName) -> Self {
        self.key_codec = Arc::new(SerdeCodec(codec));
        self
    }

    /// Uses the codec named `codec` for values (Faust's `value_serializer`).
    pub fn value_codec(mut self, codec: CodecName) -> Self {
        self.value_codec = Arc::new(SerdeCodec(codec));
        self
    }

    /// Uses `codec` for keys (any [`Codec`]: Avro, a schema registry, ...).
    pub fn with_key_codec(mut self, codec: impl Codec<K>) -> Self {
        self.key_codec = Arc::new(codec);
        self
    }

    /// Uses `codec` for values.
    pub fn with_value_codec(mut self, codec: impl Codec<V>) -> Self {
        self.value_codec = Arc::new(codec);
        self
    }

    /// Creates the topic with `n` partitions when it is missing.
    pub fn partitions(mut self, n: i32) -> Self {
        self.partitions = Some(n);
        self
    }

    /// Sets a topic config used when the app creates it (e.g. `retention.ms`).
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }

    /// The partitions asked for (`None`: the app's `topic_partitions`).
    pub fn partition_count(&self) -> Option<i32> {
        self.partitions
    }

    /// The key codec.
    pub fn key_codec_ref(&self) -> &Arc<dyn Codec<K>> {
        &self.key_codec
    }

    /// The value codec.
    pub fn value_codec_ref(&self) -> &Arc<dyn Codec<V>> {
        &self.value_codec
    }

    /// The key codec's name.
    pub fn key_codec_name(&self) -> &'static str {
        self.key_codec.name()
    }

    /// The value codec's name.
    pub fn value_codec_name(&self) -> &'static str {
        self.value_codec.name()
    }

    /// What the app creates for each name.
    pub fn specs(&self) -> Vec<TopicSpec> {
        self.names
            .iter()
            .map(|name| TopicSpec {
                name: name.clone(),
                partitions: self.partitions,
                configs: self.configs.clone(),
            })
            .collect()
    }

    /// Encodes a key with the topic's key codec.
    pub fn encode_key(&self, key: &K) -> Result<Bytes, AppError> {
        Ok(self
            .key_codec
            .encode(key)
            .map_err(|e| e.for_part(Part::Key))?)
    }

    /// Encodes a value with the topic's value codec.
    pub fn encode_value(&self, value: &V) -> Result<Bytes, AppError> {
        Ok(self
            .value_codec
            .encode(value)
            .map_err(|e| e.for_part(Part::Value))?)
    }

    /// Queues a record to the main topic; await the returned handle for the broker's
    /// acknowledgement. The topic is created first when missing (Faust declares a topic on
    /// its first send).
    pub async fn send(&self, key: Option<K>, value: V) -> Result<SendHandle, AppError> {
        self.send_with(key, value, SendOptions::default()).await
    }

    /// Like [`send`](Self::send) with options (partition, headers).
    pub async fn send_with(
        &self,
        key: Option<K>,
        value: V,
        options: SendOptions,
    ) -> Result<SendHandle, AppError> {
        let key = key.map(|k| self.encode_key(&k)).transpose()?;
        let value = self.encode_value(&value)?;
        let mut record = ProducerRecord::for_topic(Arc::clone(&self.main));
        record.partition = options.partition;
        record.key = key;
        record.value = Some(value);
        for (k, v) in options.headers {
            record = record.header(k, v);
        }
        self.send_record(record).await
    }

    /// Queues an encoded record to this topic (created first when missing).
    pub(crate) async fn send_record(&self, record: ProducerRecord) -> Result<SendHandle, AppError> {
        let client = self.app.client().await?;
        if self.app.settings().topic_allow_declare && !client.is_declared(&self.main) {
            client.ensure_topics(&self.specs()).await?;
        }
        // From an agent: the event being processed waits for the record (at least once).
        let in_actor = context::with_actor(|_| ()).is_some();
        if in_actor {
            client.writes().room().await;
        }
        let delivery = match client.producer().try_enqueue(record) {
            Ok(d) => d,
            Err(TryEnqueueError::WouldBlock(record, _)) => client.enqueue(*record).await?,
            Err(TryEnqueueError::Failed(e)) => return Err(e.into()),
        };
        if !in_actor {
            return Ok(SendHandle::new(delivery));
        }
        let partition = delivery.partition();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let forward: AfterAck = Box::new(move |meta: &RecordMetadata| {
            let _ = tx.send(meta.clone());
            Ok(())
        });
        match client
            .writes()
            .track_current(delivery, &self.main, Some(forward), None)
        {
            Some(delivery) => Ok(SendHandle::new(delivery)),
            None => Ok(SendHandle {
                partition,
                state: Handle::Tracked {
                    topic: Arc::clone(&self.main),
                    ack: rx,
                },
            }),
        }
    }

    /// A sink that sends every value to this topic (no key). The actor goes on once the
    /// record is queued; the event is done when the broker has it.
    pub fn sink(&self) -> Sink<V> {
        let source: Arc<dyn ClientSource> = Arc::new(self.app.clone());
        let spec = self
            .specs()
            .into_iter()
            .next()
            .unwrap_or_else(|| TopicSpec::named(self.name()));
        Sink::writer(Arc::new(TopicWriter::new(
            source,
            spec,
            Arc::clone(&self.value_codec),
        )))
    }
}
