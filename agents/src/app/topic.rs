//! [`Topic`]: a typed description of one or more Kafka topics (Faust's `app.topic(...)`): the
//! names (the first is the main topic), the key and value codecs, and the partition count
//! used when the app creates it. Topics are agent sources, sinks, and can be sent to.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use mephisto_engine::producer::RecordMetadata;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::agent::Sink;
use crate::app::client::Client;
use crate::app::error::AppError;
use crate::app::App;
use crate::codec::{self, CodecName, Part};

/// A type usable as a key, value or agent output: a serde model that can be shared between
/// actors.
pub trait Model: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Model for T {}

/// What the app needs to know of a declared topic, whatever its types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partitions when created (`None`: the app's `topic_partitions`).
    pub partitions: Option<i32>,
    /// Topic configs when created (e.g. `cleanup.policy=compact`).
    pub configs: Vec<(String, String)>,
}

/// Options of one send.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Explicit partition (default: murmur2 of the key, like Kafka's Java client).
    pub partition: Option<i32>,
    /// Extra headers.
    pub headers: Vec<(String, Bytes)>,
}

/// A typed topic description. Cheap to clone.
pub struct Topic<K, V> {
    pub(crate) app: App,
    pub(crate) names: Arc<[String]>,
    pub(crate) key_codec: CodecName,
    pub(crate) value_codec: CodecName,
    pub(crate) partitions: Option<i32>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Topic<K, V> {
    fn clone(&self) -> Self {
        Topic {
            app: self.app.clone(),
            names: self.names.clone(),
            key_codec: self.key_codec,
            value_codec: self.value_codec,
            partitions: self.partitions,
            _types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for Topic<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("names", &self.names)
            .field("key_codec", &self.key_codec)
            .field("value_codec", &self.value_codec)
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl<K: Model, V: Model> Topic<K, V> {
    pub(crate) fn new(app: App, names: Vec<String>) -> Self {
        let settings = app.settings();
        let topic = Topic {
            app,
            names: names.into(),
            key_codec: settings.key_serializer,
            value_codec: settings.value_serializer,
            partitions: None,
            _types: PhantomData,
        };
        topic.declare();
        topic
    }

    fn declare(&self) {
        for name in self.names.iter() {
            self.app.declare_topic(TopicSpec {
                name: name.clone(),
                partitions: self.partitions,
                configs: Vec::new(),
            });
        }
    }

    fn spec(&self) -> TopicSpec {
        TopicSpec {
            name: self.name().to_owned(),
            partitions: self.partitions,
            configs: Vec::new(),
        }
    }

    /// The main topic's name (the first one).
    pub fn name(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or_default()
    }

    /// Every topic name.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Uses `codec` for keys (Faust's `key_serializer`).
    pub fn key_codec(mut self, codec: CodecName) -> Self {
        self.key_codec = codec;
        self
    }

    /// Uses `codec` for values (Faust's `value_serializer`).
    pub fn value_codec(mut self, codec: CodecName) -> Self {
        self.value_codec = codec;
        self
    }

    /// Creates the topic with `n` partitions when it is missing.
    pub fn partitions(mut self, n: i32) -> Self {
        self.partitions = Some(n);
        self.declare();
        self
    }

    /// The key codec.
    pub fn key_codec_name(&self) -> CodecName {
        self.key_codec
    }

    /// The value codec.
    pub fn value_codec_name(&self) -> CodecName {
        self.value_codec
    }

    /// Encodes a key with the topic's key codec.
    pub fn encode_key(&self, key: &K) -> Result<Bytes, AppError> {
        Ok(codec::encode(self.key_codec, key).map_err(|e| e.for_part(Part::Key))?)
    }

    /// Encodes a value with the topic's value codec.
    pub fn encode_value(&self, value: &V) -> Result<Bytes, AppError> {
        Ok(codec::encode(self.value_codec, value).map_err(|e| e.for_part(Part::Value))?)
    }

    /// Sends a record to the main topic and waits for the broker's acknowledgement.
    pub async fn send(&self, key: Option<K>, value: V) -> Result<RecordMetadata, AppError> {
        self.send_with(key, value, SendOptions::default()).await
    }

    /// Sends a record with options (partition, headers).
    pub async fn send_with(
        &self,
        key: Option<K>,
        value: V,
        options: SendOptions,
    ) -> Result<RecordMetadata, AppError> {
        let (client, key, value) = self.prepare(key.as_ref(), &value).await?;
        client
            .produce(
                self.name(),
                options.partition,
                key,
                Some(value),
                options.headers,
            )
            .await
    }

    /// Encodes a record and connects; as Faust's `Topic.send`, the topic is declared (created
    /// when missing) first.
    async fn prepare(
        &self,
        key: Option<&K>,
        value: &V,
    ) -> Result<(Arc<Client>, Option<Bytes>, Bytes), AppError> {
        let key = key.map(|k| self.encode_key(k)).transpose()?;
        let value = self.encode_value(value)?;
        let client = self.app.client().await?;
        if self.app.settings().topic_allow_declare {
            client.ensure_topics(&[self.spec()]).await?;
        }
        Ok((client, key, value))
    }

    /// A sink that sends every value to this topic (no key). The actor goes on once the
    /// record is queued; the event's ack waits until the broker has it.
    pub fn sink(&self) -> Sink<V> {
        let topic = self.clone();
        Sink::queued(move |value: V| {
            let topic = topic.clone();
            async move {
                match topic.enqueue(None, &value, SendOptions::default()).await {
                    Ok(written) => written,
                    Err(e) => {
                        tracing::error!(topic = topic.name(), error = %e, "sink topic: send failed");
                        Some(Box::pin(futures_util::future::ready(Err(e.to_string())))
                            as futures_util::future::BoxFuture<
                                'static,
                                Result<(), String>,
                            >)
                    }
                }
            }
        })
    }

    /// Queues a record and returns the future of its acknowledgement.
    pub(crate) async fn enqueue(
        &self,
        key: Option<&K>,
        value: &V,
        options: SendOptions,
    ) -> Result<crate::agent::Written, AppError> {
        let (client, key, value) = self.prepare(key, value).await?;
        client
            .enqueue(
                self.name(),
                options.partition,
                key,
                Some(value),
                options.headers,
            )
            .await
    }
}
