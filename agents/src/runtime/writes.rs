//! Writes agents make, as the runtime carries them out: [`TopicWriter`] (a topic sink, an
//! agent used as a sink) and [`ReplyWriter`] (Faust's `ReqRepResponse` to the asker's reply
//! topic).
//!
//! A writer encodes the value and queues the record on the app's producer, synchronously when
//! the producer has room (no future, no allocation but the record's bytes), and gives the
//! delivery to the connection's write tracker, which holds the acks of the events it came from
//! until the broker has the record.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use mephisto_engine::producer::{ProducerRecord, TryEnqueueError};
use serde::Serialize;

use crate::core::codec::Codec;
use crate::core::error::WriteError;
use crate::core::reqrep::{ReplyTo, ReqRepResponse};
use crate::core::sink::{Attempt, Replier, WriteFor, Writer};
use crate::runtime::client::{reply_topic_spec, Client};
use crate::runtime::error::RuntimeError;
use crate::runtime::topics::TopicSpec;

/// Where a writer finds the app's connection (made at first use).
pub trait ClientSource: Send + Sync + 'static {
    /// The connection if it is made.
    fn ready(&self) -> Option<Arc<Client>>;
    /// The connection, made if needed.
    fn client(&self) -> BoxFuture<'_, Result<Arc<Client>, RuntimeError>>;
}

/// A [`Writer`] that sends each value to a topic (no key), encoded with `codec`; the topic is
/// created first when this process has not declared it yet.
pub struct TopicWriter<T> {
    source: Arc<dyn ClientSource>,
    topic: Arc<str>,
    spec: TopicSpec,
    codec: Arc<dyn Codec<T>>,
}

impl<T: 'static> TopicWriter<T> {
    /// Writes to the topic `spec` describes through the app's connection.
    pub fn new(source: Arc<dyn ClientSource>, spec: TopicSpec, codec: Arc<dyn Codec<T>>) -> Self {
        TopicWriter {
            source,
            topic: Arc::from(spec.name.as_str()),
            spec,
            codec,
        }
    }

    fn record(&self, value: &T) -> Result<ProducerRecord, WriteError> {
        let mut record = ProducerRecord::for_topic(Arc::clone(&self.topic));
        record.value = Some(self.codec.encode(value)?);
        Ok(record)
    }
}

fn produce_error(topic: &str, e: impl std::error::Error + Send + Sync + 'static) -> WriteError {
    WriteError::Produce {
        topic: topic.to_owned(),
        source: Arc::new(e),
    }
}

impl<T: Send + Sync + 'static> Writer<T> for TopicWriter<T> {
    fn target(&self) -> &str {
        &self.topic
    }

    fn try_write(&self, value: &T, event: WriteFor<'_>) -> Attempt {
        let Some(client) = self.source.ready() else {
            return Attempt::WouldBlock;
        };
        if !client.is_declared(&self.topic) && client.settings().topic_allow_declare
            || !client.writes().has_room()
        {
            return Attempt::WouldBlock;
        }
        let record = match self.record(value) {
            Ok(r) => r,
            Err(e) => return Attempt::Failed(e),
        };
        match client.producer().try_enqueue(record) {
            Ok(delivery) => {
                client.writes().track(delivery, &self.topic, event);
                Attempt::Done
            }
            Err(TryEnqueueError::WouldBlock(..)) => Attempt::WouldBlock,
            Err(TryEnqueueError::Failed(e)) => Attempt::Failed(produce_error(&self.topic, e)),
        }
    }

    fn write<'a>(
        &'a self,
        value: &'a T,
        event: WriteFor<'a>,
    ) -> BoxFuture<'a, Result<(), WriteError>> {
        async move {
            let client = self
                .source
                .client()
                .await
                .map_err(|e| produce_error(&self.topic, e))?;
            if client.settings().topic_allow_declare {
                client
                    .ensure_topics(std::slice::from_ref(&self.spec))
                    .await
                    .map_err(|e| produce_error(&self.topic, e))?;
            }
            let record = self.record(value)?;
            client.writes().room().await;
            let delivery = client
                .producer()
                .enqueue(record)
                .await
                .map_err(|e| produce_error(&self.topic, e))?;
            client.writes().track(delivery, &self.topic, event);
            Ok(())
        }
        .boxed()
    }
}

/// The [`Replier`] of app agents: Faust's `ReqRepResponse` (JSON, no key) to the reply topic
/// the request named, created first (one partition, Faust's reply settings) when this
/// process has not seen it yet, as Kafka's auto-creation would.
pub struct ReplyWriter {
    source: Arc<dyn ClientSource>,
}

impl ReplyWriter {
    /// Replies through the app's connection.
    pub fn new(source: Arc<dyn ClientSource>) -> Self {
        ReplyWriter { source }
    }
}

fn reply_record<T: Serialize>(
    to: &ReplyTo,
    key: Option<&serde_json::Value>,
    value: &T,
) -> Result<ProducerRecord, WriteError> {
    let response = ReqRepResponse::new(key, value, to.correlation_id.as_str());
    let body = serde_json::to_vec(&response).map_err(|e| {
        WriteError::from(crate::core::codec::CodecError::new::<T>(
            "json",
            crate::core::codec::Direction::Encode,
            e,
        ))
    })?;
    let mut record = ProducerRecord::new(to.topic.as_str());
    record.value = Some(body.into());
    Ok(record)
}

impl<T: Serialize + Send + Sync + 'static> Replier<T> for ReplyWriter {
    fn try_reply(
        &self,
        to: &ReplyTo,
        key: Option<&serde_json::Value>,
        value: &T,
        event: WriteFor<'_>,
    ) -> Attempt {
        let Some(client) = self.source.ready() else {
            return Attempt::WouldBlock;
        };
        if !client.is_declared(&to.topic) || !client.writes().has_room() {
            return Attempt::WouldBlock;
        }
        let record = match reply_record(to, key, value) {
            Ok(r) => r,
            Err(e) => return Attempt::Failed(e),
        };
        let topic = Arc::clone(&record.topic);
        match client.producer().try_enqueue(record) {
            Ok(delivery) => {
                client.writes().track(delivery, &topic, event);
                Attempt::Done
            }
            Err(TryEnqueueError::WouldBlock(..)) => Attempt::WouldBlock,
            Err(TryEnqueueError::Failed(e)) => Attempt::Failed(produce_error(&to.topic, e)),
        }
    }

    fn reply<'a>(
        &'a self,
        to: &'a ReplyTo,
        key: Option<&'a serde_json::Value>,
        value: &'a T,
        event: WriteFor<'a>,
    ) -> BoxFuture<'a, Result<(), WriteError>> {
        async move {
            let client = self
                .source
                .client()
                .await
                .map_err(|e| produce_error(&to.topic, e))?;
            // Faust does not create its reply topic by default (`reply_create_topic=False`):
            // it counts on the broker's auto-creation, which our requests never ask for.
            if let Err(e) = client
                .ensure_topics(&[reply_topic_spec(&to.topic, client.settings())])
                .await
            {
                tracing::warn!(reply_to = %to.topic, error = %e, "reply topic could not be declared");
            }
            let record = reply_record(to, key, value)?;
            let topic = Arc::clone(&record.topic);
            client.writes().room().await;
            let delivery = client
                .producer()
                .enqueue(record)
                .await
                .map_err(|e| produce_error(&to.topic, e))?;
            client.writes().track(delivery, &topic, event);
            Ok(())
        }
        .boxed()
    }
}
