//! Events: a key/value message with headers, its Kafka metadata when it came from a topic,
//! and its ack.
//!
//! An event from a topic keeps the fetched record ([`Message::record`]): a slice of the fetch
//! response, so its headers and raw key and value bytes are read from there without a copy.
//! Cloning an event costs a few reference counts (plus the key's and value's own clones);
//! clones share the ack.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use mephisto_wire::record::Record;

use crate::core::ack::{AckRef, Hold};
use crate::core::reqrep::{ReplyTo, CORRELATION_ID_HEADER, REPLY_TO_HEADER};

/// Where a record lives in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Coordinate {
    /// Topic name.
    pub topic: Arc<str>,
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

/// The Kafka metadata of an event that came from a topic, and its record.
#[derive(Debug, Clone)]
pub struct Message {
    /// Topic name (shared by every event of the partition).
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// The record (offset, timestamp, raw key, value and headers), sharing the fetch buffer.
    pub record: Record,
}

impl Message {
    /// Offset in the partition.
    pub fn offset(&self) -> i64 {
        self.record.offset()
    }

    /// Record timestamp, milliseconds since the epoch.
    pub fn timestamp_ms(&self) -> i64 {
        self.record.timestamp()
    }

    /// Topic, partition and offset.
    pub fn coordinate(&self) -> Coordinate {
        Coordinate {
            topic: Arc::clone(&self.topic),
            partition: self.partition,
            offset: self.offset(),
        }
    }
}

/// Headers given by a sender (an in-memory event, a send).
#[derive(Clone, Default, PartialEq)]
pub struct Headers {
    owned: Vec<(String, Option<Bytes>)>,
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.view().fmt(f)
    }
}

impl Headers {
    /// Headers given by a sender.
    pub fn from_pairs(pairs: Vec<(String, Option<Bytes>)>) -> Self {
        Headers { owned: pairs }
    }

    /// The headers, read in place.
    pub fn view(&self) -> HeadersView<'_> {
        HeadersView {
            owned: &self.owned,
            record: None,
        }
    }
}

/// An event's headers, read in place: those of the fetched record (nothing is parsed or
/// copied until read), or those its sender gave.
#[derive(Clone, Copy)]
pub struct HeadersView<'a> {
    owned: &'a [(String, Option<Bytes>)],
    record: Option<&'a Record>,
}

impl fmt::Debug for HeadersView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), v.map(String::from_utf8_lossy))),
            )
            .finish()
    }
}

impl<'a> HeadersView<'a> {
    /// The headers of a fetched record.
    pub fn of_record(record: &'a Record) -> Self {
        HeadersView {
            owned: &[],
            record: Some(record),
        }
    }

    /// Every header in order: key bytes and value (`None` for a null value).
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let owned = self.owned.iter().map(|(k, v)| (k.as_bytes(), v.as_deref()));
        let record = self
            .record
            .into_iter()
            .flat_map(|r| r.headers().map(|h| (h.key(), h.value())));
        owned.chain(record)
    }

    /// The first header named `name` (case-sensitive, as Kafka headers are), if its value
    /// is not null.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|(k, _)| *k == name.as_bytes())
            .and_then(|(_, v)| v)
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.owned.is_empty() && self.record.is_none_or(|r| r.header_count() == 0)
    }

    /// The headers as owned pairs (keys as text, lossy for non-UTF-8 keys).
    pub fn to_pairs(&self) -> Vec<(String, Option<Bytes>)> {
        let mut out: Vec<(String, Option<Bytes>)> = self.owned.to_vec();
        if let Some(r) = self.record {
            out.extend(r.headers().map(|h| {
                (
                    String::from_utf8_lossy(h.key()).into_owned(),
                    h.value_bytes(),
                )
            }));
        }
        out
    }

    /// The reply address, when both of `ask`'s reply headers are there (UTF-8).
    pub fn reply_to(&self) -> Option<ReplyTo> {
        let mut topic = None;
        let mut correlation_id = None;
        for (k, v) in self.iter() {
            if topic.is_none() && k == REPLY_TO_HEADER.as_bytes() {
                topic = v;
            } else if correlation_id.is_none() && k == CORRELATION_ID_HEADER.as_bytes() {
                correlation_id = v;
            }
        }
        Some(ReplyTo {
            topic: std::str::from_utf8(topic?).ok()?.to_owned(),
            correlation_id: std::str::from_utf8(correlation_id?).ok()?.to_owned(),
        })
    }

    /// Whether the reply headers are there (cheap: no copy).
    pub fn asks_for_reply(&self) -> bool {
        !self.is_empty() && self.iter().any(|(k, _)| k == REPLY_TO_HEADER.as_bytes())
    }
}

/// One event of a stream: key, value, headers, Kafka metadata (when from a topic) and its
/// ack. See the [module docs](self).
#[derive(Clone)]
pub struct Event<K, V> {
    /// The key (`None` for an unkeyed message).
    pub key: Option<K>,
    /// The value.
    pub value: V,
    headers: Headers,
    message: Option<Message>,
    seq: u64,
    ack: Option<AckRef>,
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for Event<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("key", &self.key)
            .field("value", &self.value)
            .field("headers", &self.headers())
            .field("coordinate", &self.coordinate())
            .field("seq", &self.seq)
            .finish()
    }
}

impl<K, V> Event<K, V> {
    /// An event from a channel (or built by hand): `seq` is its sequence number there.
    pub fn new(key: Option<K>, value: V, headers: Headers, seq: u64, ack: Option<AckRef>) -> Self {
        Event {
            key,
            value,
            headers,
            message: None,
            seq,
            ack,
        }
    }

    /// An event decoded from a fetched record.
    pub fn from_message(key: Option<K>, value: V, message: Message, ack: Option<AckRef>) -> Self {
        let seq = u64::try_from(message.offset()).unwrap_or_default();
        Event {
            key,
            value,
            headers: Headers::default(),
            message: Some(message),
            seq,
            ack,
        }
    }

    /// The headers: the fetched record's, read in place, or those its sender gave.
    pub fn headers(&self) -> HeadersView<'_> {
        match &self.message {
            Some(m) => HeadersView::of_record(&m.record),
            None => self.headers.view(),
        }
    }

    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().get(name)
    }

    /// The headers a sender gave (empty for an event from a topic: see
    /// [`headers`](Self::headers)).
    pub(crate) fn own_headers(&self) -> &Headers {
        &self.headers
    }

    /// Topic, partition, record (offset, timestamp, raw bytes) when from a topic.
    pub fn message(&self) -> Option<&Message> {
        self.message.as_ref()
    }

    /// Topic/partition/offset when from a topic.
    pub fn coordinate(&self) -> Option<Coordinate> {
        self.message.as_ref().map(Message::coordinate)
    }

    /// The sequence number in its source: the offset for a topic event, the channel's
    /// counter for a channel event.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The identity of the event for logs and retries.
    pub fn id(&self) -> EventId {
        EventId {
            seq: self.seq,
            coordinate: self.coordinate(),
        }
    }

    /// The reply address of an `ask`, when the event carries both reply headers.
    pub fn reply_to(&self) -> Option<ReplyTo> {
        self.headers().reply_to()
    }

    /// Acks the event (Faust's `event.ack()`): `true` the first time. Events of a stream
    /// with automatic acks are acked when the next one is asked for; this acks it now.
    pub fn ack(&self) -> bool {
        self.ack.as_ref().is_some_and(AckRef::ack)
    }

    /// Keeps the event in processing until the returned hold is released (a write it caused
    /// is in flight); `None` if it is already done or has no ack.
    pub fn hold(&self) -> Option<Hold> {
        self.ack.as_ref().and_then(AckRef::hold)
    }

    /// The event's ack, if it has one.
    pub fn ack_ref(&self) -> Option<&AckRef> {
        self.ack.as_ref()
    }

    /// The same event (same ack) under another key and value type.
    pub fn with_key<K2>(self, key: Option<K2>) -> Event<K2, V> {
        Event {
            key,
            value: self.value,
            headers: self.headers,
            message: self.message,
            seq: self.seq,
            ack: self.ack,
        }
    }

    /// Splits the event into its value and the rest but the key (for streams that hand out
    /// values and keep the rest for replies and acks).
    pub(crate) fn split(self) -> (V, EventMeta) {
        (
            self.value,
            EventMeta {
                headers: self.headers,
                message: self.message,
                seq: self.seq,
                ack: self.ack,
            },
        )
    }
}

/// An event without its key and value: what an actor needs after the value went to the agent
/// (replies, sinks' holds, error coordinates, acks).
pub(crate) struct EventMeta {
    pub(crate) headers: Headers,
    pub(crate) message: Option<Message>,
    pub(crate) seq: u64,
    pub(crate) ack: Option<AckRef>,
}

/// An event's identity: its coordinate when it came from a topic (retries are counted per
/// topic, partition and offset), else its sequence number in its channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId {
    /// Sequence number in its source (the offset for a topic event).
    pub seq: u64,
    /// Topic/partition/offset when from a topic.
    pub coordinate: Option<Coordinate>,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.coordinate {
            Some(c) => write!(f, "event {c}"),
            None => write!(f, "event seq {}", self.seq),
        }
    }
}
