//! Events: a key/value message with headers and, when it came from a topic, its coordinate.
//!
//! Also Faust's request/reply wire types: the `Faust-Ag-ReplyTo` / `Faust-Ag-CorrelationId`
//! headers that `agent.ask()` sets (Faust's default, `use_reply_headers=True`), the
//! `ReqRepResponse` record the replying agent sends to the reply topic, and the older
//! `ReqRepRequest` envelope.

use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ack::{AckSink, Delivery};

/// Header carrying the reply topic of an `ask` (Faust: `Faust-Ag-ReplyTo`).
pub const REPLY_TO_HEADER: &str = "Faust-Ag-ReplyTo";
/// Header carrying the correlation id of an `ask` (Faust: `Faust-Ag-CorrelationId`).
pub const CORRELATION_ID_HEADER: &str = "Faust-Ag-CorrelationId";

/// Where a record lives in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Coordinate {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
}

impl fmt::Display for Coordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]@{}", self.topic, self.partition, self.offset)
    }
}

/// The Kafka metadata of an event that came from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic, partition and offset.
    pub coordinate: Coordinate,
    /// Record timestamp in milliseconds since the epoch, when known.
    pub timestamp_ms: Option<i64>,
}

/// Where a reply goes: the reply topic and the correlation id, from the reply headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    /// The reply topic (`Faust-Ag-ReplyTo`).
    pub topic: String,
    /// The correlation id (`Faust-Ag-CorrelationId`).
    pub correlation_id: String,
}

/// One event of a stream: key, value, headers, Kafka metadata (when from a topic) and its ack.
///
/// Clones share the ack state: acking any clone acks the event once.
#[derive(Clone)]
pub struct Event<K, V> {
    /// The key (`None` for an unkeyed message).
    pub key: Option<K>,
    /// The value.
    pub value: V,
    /// Headers, in order.
    pub headers: Vec<(String, Bytes)>,
    /// Topic/partition/offset/timestamp, when the event came from a topic; `None` for channels.
    pub message: Option<Message>,
    ack: AckHandle,
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for Event<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("key", &self.key)
            .field("value", &self.value)
            .field("headers", &self.headers)
            .field("message", &self.message)
            .field("delivery", &self.ack.state.delivery)
            .field("acked", &self.is_acked())
            .finish()
    }
}

impl<K, V> Event<K, V> {
    /// A new event with its delivery identity and the sink its ack goes to.
    pub fn new(
        key: Option<K>,
        value: V,
        headers: Vec<(String, Bytes)>,
        message: Option<Message>,
        delivery: Delivery,
        sink: Arc<dyn AckSink>,
    ) -> Self {
        Event {
            key,
            value,
            headers,
            message,
            ack: AckHandle {
                state: Arc::new(AckState {
                    delivery,
                    sink,
                    progress: Mutex::new(Progress::default()),
                }),
            },
        }
    }

    /// The delivery identity: sequence number in its source, and coordinate when from a topic.
    pub fn delivery(&self) -> &Delivery {
        &self.ack.state.delivery
    }

    /// Acks the event. Returns `true` the first time, `false` if it was already acked (Faust's
    /// `Event.ack()`).
    pub fn ack(&self) -> bool {
        self.ack.ack()
    }

    /// Whether the event has been acked (its ack may still wait for a hold, see
    /// [`Event::hold`]).
    pub fn is_acked(&self) -> bool {
        let p = self.ack.state.lock();
        p.done || p.requested
    }

    /// Delays the event's ack until [`AckHold::release`]: a sink that queued a record for
    /// this event holds the ack until the broker has the record, so a commit never covers an
    /// event whose output could still be lost. `None` if the event was already acked.
    pub fn hold(&self) -> Option<AckHold> {
        let mut p = self.ack.state.lock();
        if p.done {
            return None;
        }
        p.holds += 1;
        Some(AckHold {
            ack: Some(self.ack.clone()),
        })
    }

    /// The first header named `name` (case-sensitive, as Kafka headers are).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// The reply address, when the event carries both reply headers (UTF-8).
    pub fn reply_to(&self) -> Option<ReplyTo> {
        let topic = std::str::from_utf8(self.header(REPLY_TO_HEADER)?).ok()?;
        let cid = std::str::from_utf8(self.header(CORRELATION_ID_HEADER)?).ok()?;
        Some(ReplyTo {
            topic: topic.to_string(),
            correlation_id: cid.to_string(),
        })
    }

    /// The same event (same ack) under another key: `group_by` without a broker.
    pub(crate) fn rekey<K2>(self, key: Option<K2>) -> Event<K2, V> {
        Event {
            key,
            value: self.value,
            headers: self.headers,
            message: self.message,
            ack: self.ack,
        }
    }

    pub(crate) fn same_ack(&self) -> AckHandle {
        self.ack.clone()
    }
}

/// Builds the two reply headers of an `ask`.
pub fn reply_headers(reply_to: &str, correlation_id: &str) -> Vec<(String, Bytes)> {
    vec![
        (
            REPLY_TO_HEADER.to_string(),
            Bytes::copy_from_slice(reply_to.as_bytes()),
        ),
        (
            CORRELATION_ID_HEADER.to_string(),
            Bytes::copy_from_slice(correlation_id.as_bytes()),
        ),
    ]
}

#[derive(Clone)]
pub(crate) struct AckHandle {
    state: Arc<AckState>,
}

struct AckState {
    delivery: Delivery,
    sink: Arc<dyn AckSink>,
    progress: Mutex<Progress>,
}

/// Where an event's ack is: asked for, held by sinks, done (sent to the sink).
#[derive(Default)]
struct Progress {
    requested: bool,
    holds: usize,
    done: bool,
}

impl AckState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AckHandle {
    /// Asks for the ack: done at once, or when the last hold is released. `false` if it was
    /// asked for before.
    pub(crate) fn ack(&self) -> bool {
        {
            let mut p = self.state.lock();
            if p.done || p.requested {
                return false;
            }
            p.requested = true;
            if p.holds > 0 {
                return true;
            }
            p.done = true;
        }
        self.state.sink.ack(&self.state.delivery);
        true
    }

    fn release(&self) {
        {
            let mut p = self.state.lock();
            p.holds = p.holds.saturating_sub(1);
            if p.holds > 0 || !p.requested || p.done {
                return;
            }
            p.done = true;
        }
        self.state.sink.ack(&self.state.delivery);
    }
}

/// A hold on an event's ack (see [`Event::hold`]); released on drop.
pub struct AckHold {
    ack: Option<AckHandle>,
}

impl AckHold {
    /// Releases the hold: if the ack was asked for and this was the last hold, the ack goes
    /// out now.
    pub fn release(mut self) {
        if let Some(a) = self.ack.take() {
            a.release();
        }
    }
}

impl AckHold {
    /// Gives the hold up without releasing it: the event is never acked, so the commits of its
    /// partition stop before it and it is read again after a restart (a sink's write failed).
    pub fn abandon(mut self) {
        self.ack.take();
    }
}

impl Drop for AckHold {
    fn drop(&mut self) {
        if let Some(a) = self.ack.take() {
            a.release();
        }
    }
}

/// Faust's record metadata block (`"__faust": {"ns": ...}`), written because Faust records have
/// `include_metadata=True`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaustMeta {
    /// The record namespace.
    pub ns: String,
}

/// Namespace of Faust's reply record.
pub const REQ_REP_RESPONSE_NS: &str = "@ReqRepResponse";
/// Namespace of Faust's request envelope.
pub const REQ_REP_REQUEST_NS: &str = "@ReqRepRequest";

/// Faust's `ReqRepResponse`: what a replying agent sends (JSON, key `None`) to the reply topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReqRepResponse<K, V> {
    /// The key of the request event.
    pub key: Option<K>,
    /// The yielded value.
    pub value: V,
    /// The correlation id of the request.
    pub correlation_id: String,
    /// `{"ns": "@ReqRepResponse"}`; optional when reading.
    #[serde(rename = "__faust", default, skip_serializing_if = "Option::is_none")]
    pub faust: Option<FaustMeta>,
}

impl<K, V> ReqRepResponse<K, V> {
    /// A response carrying Faust's namespace metadata.
    pub fn new(key: Option<K>, value: V, correlation_id: impl Into<String>) -> Self {
        ReqRepResponse {
            key,
            value,
            correlation_id: correlation_id.into(),
            faust: Some(FaustMeta {
                ns: REQ_REP_RESPONSE_NS.to_string(),
            }),
        }
    }
}

/// Faust's `ReqRepRequest` envelope (used when `use_reply_headers` is off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReqRepRequest<V> {
    /// The request value.
    pub value: V,
    /// The reply topic.
    pub reply_to: String,
    /// The correlation id.
    pub correlation_id: String,
    /// `{"ns": "@ReqRepRequest"}`; optional when reading.
    #[serde(rename = "__faust", default, skip_serializing_if = "Option::is_none")]
    pub faust: Option<FaustMeta>,
}

impl<V> ReqRepRequest<V> {
    /// An envelope carrying Faust's namespace metadata.
    pub fn new(value: V, reply_to: impl Into<String>, correlation_id: impl Into<String>) -> Self {
        ReqRepRequest {
            value,
            reply_to: reply_to.into(),
            correlation_id: correlation_id.into(),
            faust: Some(FaustMeta {
                ns: REQ_REP_REQUEST_NS.to_string(),
            }),
        }
    }
}
