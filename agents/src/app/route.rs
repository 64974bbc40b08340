//! Routes: how a consumed record becomes a typed [`Event`] in an agent's queue. The key and
//! value are decoded with the topic's codecs; a record that does not decode is logged with its
//! topic/partition/offset, sent to the agent's dead-letter topic when it has one, and acked
//! (Faust's rule for failed events: acked, not processed again), so one bad record never stops
//! the worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use mephisto_engine::group::ConsumedRecord;

use crate::ack::{AckSink, Delivery};
use crate::agent::Agent;
use crate::app::client::Client;
use crate::app::hub::Hub;
use crate::app::topic::Model;
use crate::channel::{Channel, ChannelSender};
use crate::codec::{self, CodecError, CodecName, Direction, Part};
use crate::event::{Coordinate, Event, Message};
use crate::repartition::TopicContext;

/// Header naming the error of a dead-lettered record.
pub const DEAD_LETTER_ERROR_HEADER: &str = "mephisto-error";
/// Header naming the agent that gave the record up.
pub const DEAD_LETTER_AGENT_HEADER: &str = "mephisto-agent";
/// Header giving the record's source as `topic[partition]@offset`.
pub const DEAD_LETTER_SOURCE_HEADER: &str = "mephisto-source";

/// Delivers one consumed record; the ack sink is where its ack must go.
pub(crate) type Route =
    Arc<dyn Fn(ConsumedRecord, Arc<dyn AckSink>) -> BoxFuture<'static, ()> + Send + Sync>;

/// Where an agent's failed records go.
#[derive(Clone)]
pub(crate) struct DeadLetter {
    pub(crate) client: Arc<Client>,
    pub(crate) topic: String,
    pub(crate) agent: String,
}

impl DeadLetter {
    /// Sends `key`/`value` with the original headers plus the error headers.
    pub(crate) async fn send(
        &self,
        key: Option<Bytes>,
        value: Option<Bytes>,
        mut headers: Vec<(String, Bytes)>,
        source: Option<&Coordinate>,
        error: &str,
    ) {
        headers.push((
            DEAD_LETTER_ERROR_HEADER.into(),
            Bytes::from(error.to_owned()),
        ));
        headers.push((
            DEAD_LETTER_AGENT_HEADER.into(),
            Bytes::from(self.agent.clone()),
        ));
        if let Some(c) = source {
            headers.push((DEAD_LETTER_SOURCE_HEADER.into(), Bytes::from(c.to_string())));
        }
        match self
            .client
            .produce(&self.topic, None, key, value, headers)
            .await
        {
            Ok(md) => tracing::warn!(
                agent = %self.agent, dead_letter = %self.topic, partition = md.partition, offset = md.offset,
                source = %source.map(|c| c.to_string()).unwrap_or_default(),
                "record sent to the dead-letter topic"
            ),
            Err(e) => tracing::error!(
                agent = %self.agent, dead_letter = %self.topic, error = %e,
                "could not send a failed record to the dead-letter topic"
            ),
        }
    }
}

/// A route decoding with `key_codec`/`value_codec` into `sender`.
pub(crate) fn decoding<K: Model, V: Model>(
    agent: String,
    key_codec: CodecName,
    value_codec: CodecName,
    sender: ChannelSender<K, V>,
    dead_letter: Option<DeadLetter>,
) -> Route {
    Arc::new(move |rec: ConsumedRecord, acks: Arc<dyn AckSink>| {
        let coordinate = Coordinate {
            topic: rec.topic.to_string(),
            partition: rec.partition,
            offset: rec.offset,
        };
        let headers: Vec<(String, Bytes)> = rec
            .record
            .headers()
            .map(|h| {
                (
                    String::from_utf8_lossy(h.key()).into_owned(),
                    h.value_bytes().unwrap_or_default(),
                )
            })
            .collect();
        let delivery = Delivery {
            seq: u64::try_from(rec.offset).unwrap_or_default(),
            coordinate: Some(coordinate.clone()),
        };
        let decoded = decode::<K, V>(key_codec, value_codec, &rec, &coordinate);
        let sender = sender.clone();
        let agent = agent.clone();
        let dead_letter = dead_letter.clone();
        async move {
            match decoded {
                Ok((key, value)) => {
                    let message = Message {
                        coordinate,
                        timestamp_ms: Some(rec.record.timestamp()),
                    };
                    let ev = Event::new(key, value, headers, Some(message), delivery, acks);
                    if sender.deliver(ev).await.is_err() {
                        tracing::debug!(%agent, "agent queue closed; record not delivered");
                    }
                }
                Err(e) => {
                    tracing::error!(
                        %agent, coordinate = %coordinate, error = %e,
                        "record does not decode; acked and skipped"
                    );
                    if let Some(dl) = dead_letter {
                        dl.send(
                            rec.record.key_bytes(),
                            rec.record.value_bytes(),
                            headers,
                            Some(&coordinate),
                            &e.to_string(),
                        )
                        .await;
                    }
                    acks.ack(&delivery);
                }
            }
        }
        .boxed()
    })
}

/// A route giving each partition an agent instance of its own (`isolated_partitions`):
/// the first record of a partition starts a copy of `agent` on a fresh channel (with the
/// topic's stream wiring); the worker stops those copies when it stops.
pub(crate) fn per_partition<K: Model, V: Model, O: Model>(
    agent: Agent<K, V, O>,
    hub: Arc<Hub>,
    wiring: Arc<dyn TopicContext>,
    key_codec: CodecName,
    value_codec: CodecName,
    dead_letter: Option<DeadLetter>,
) -> Route {
    let instances: Arc<Mutex<HashMap<i32, Route>>> = Arc::default();
    Arc::new(move |rec: ConsumedRecord, acks: Arc<dyn AckSink>| {
        let existing = instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&rec.partition)
            .cloned();
        let route = match existing {
            Some(r) => Some(r),
            None => {
                let channel: Channel<K, V> = Channel::new(wiring.capacity());
                channel.set_context(wiring.clone());
                let instance = agent.clone().channel(channel.clone());
                match (instance.start(), channel.sender()) {
                    (Ok(handle), Ok(sender)) => {
                        tracing::info!(agent = %agent.name(), topic = %rec.topic, partition = rec.partition, "agent instance started for partition");
                        hub.adopt(handle);
                        let r = decoding::<K, V>(
                            format!("{}[{}]", agent.name(), rec.partition),
                            key_codec,
                            value_codec,
                            sender,
                            dead_letter.clone(),
                        );
                        instances
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(rec.partition, r.clone());
                        Some(r)
                    }
                    (Err(e), _) => {
                        tracing::error!(agent = %agent.name(), error = %e, "cannot start the partition's agent instance");
                        None
                    }
                    (_, Err(_)) => None,
                }
            }
        };
        match route {
            Some(r) => r(rec, acks),
            // Not processed and not acked: read again after a restart.
            None => futures_util::future::ready(()).boxed(),
        }
    })
}

fn decode<K: Model, V: Model>(
    key_codec: CodecName,
    value_codec: CodecName,
    rec: &ConsumedRecord,
    at: &Coordinate,
) -> Result<(Option<K>, V), CodecError> {
    let key = match rec.record.key() {
        Some(k) => Some(
            codec::decode::<K>(key_codec, k).map_err(|e| e.for_part(Part::Key).at(at.clone()))?,
        ),
        None => None,
    };
    let value = match rec.record.value() {
        Some(v) => codec::decode::<V>(value_codec, v),
        // A null value (a tombstone) is JSON `null`: fine for `Option` values.
        None if value_codec == CodecName::Json => codec::decode::<V>(value_codec, b"null"),
        None => Err(CodecError::new::<V>(
            value_codec.as_str(),
            Direction::Decode,
            "null value (a tombstone)",
        )),
    }
    .map_err(|e| e.for_part(Part::Value).at(at.clone()))?;
    Ok((key, value))
}
