//! The engine's errors: [`EngineError`] for everything that can go wrong between a caller and a
//! broker, and [`KafkaError`] for the error codes brokers put in their responses.
//!
//! # Retries
//! [`EngineError::is_retriable`] says whether the same operation may succeed if tried again
//! (after a metadata refresh when [`EngineError::invalidates_metadata`] says so). Engine
//! operations that are safe to repeat (metadata, admin requests, ListOffsets, see
//! [`Cluster::retry`](crate::cluster::Cluster::retry)) retry such errors by themselves until
//! their time budget runs out; everything else surfaces with the Kafka code's name.
//!
//! Kafka error codes come from `kafka-protocol`'s [`ResponseError`] table, which carries every
//! code up to Kafka 4.1 and Kafka's own retriable flag. Codes newer than the table are kept as
//! `Unknown(code)` and treated as not retriable, as the Java client does.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, BrokerId};
use mephisto_wire::frame::FrameError;
use mephisto_wire::messages::MessageError;
use mephisto_wire::versions::VersionError;

use crate::broker_url::BrokerUrlError;

/// A non-zero error code from a Kafka response, with the broker's message if it sent one.
///
/// Displays as Kafka's own name for the code, e.g. `TOPIC_ALREADY_EXISTS (36)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    kind: ResponseError,
    message: Option<String>,
}

impl KafkaError {
    /// The error for `code`, or `None` for 0 (no error).
    pub fn from_code(code: i16) -> Option<Self> {
        ResponseError::try_from_code(code).map(|kind| Self {
            kind,
            message: None,
        })
    }

    /// The error for `code` with the broker's `message`, or `None` for 0 (no error).
    pub fn with_message(code: i16, message: Option<&str>) -> Option<Self> {
        Self::from_code(code).map(|mut e| {
            e.message = message.filter(|m| !m.is_empty()).map(str::to_owned);
            e
        })
    }

    /// `Ok(())` for code 0, the error otherwise.
    pub fn check(code: i16) -> Result<(), Self> {
        Self::from_code(code).map_or(Ok(()), Err)
    }

    /// The Kafka error code (never 0).
    pub fn code(&self) -> i16 {
        self.kind.code()
    }

    /// `kafka-protocol`'s variant for this code (`ResponseError::Unknown(code)` for codes newer
    /// than its table).
    pub fn kind(&self) -> ResponseError {
        self.kind
    }

    /// Kafka's name for the code, e.g. `NOT_LEADER_OR_FOLLOWER`, or `UNKNOWN_CODE_<n>` for codes
    /// the table does not know.
    pub fn name(&self) -> String {
        match self.kind {
            ResponseError::Unknown(code) => format!("UNKNOWN_CODE_{code}"),
            kind => screaming_snake(&kind.to_string()),
        }
    }

    /// The message the broker sent with the code, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Whether Kafka marks the code retriable: the same request may succeed later.
    pub fn is_retriable(&self) -> bool {
        self.kind.is_retriable()
    }

    /// Whether the code means our metadata (leaders, partitions, controller, topic existence) is
    /// stale and should be refreshed before retrying.
    pub fn invalidates_metadata(&self) -> bool {
        matches!(
            self.kind,
            ResponseError::NotLeaderOrFollower
                | ResponseError::UnknownTopicOrPartition
                | ResponseError::LeaderNotAvailable
                | ResponseError::ReplicaNotAvailable
                | ResponseError::BrokerNotAvailable
                | ResponseError::NotController
                | ResponseError::FencedLeaderEpoch
                | ResponseError::UnknownLeaderEpoch
                | ResponseError::KafkaStorageError
                | ResponseError::UnknownTopicId
                | ResponseError::InconsistentTopicId
        )
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for KafkaError {}

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Everything that can go wrong in the engine.
///
/// Cheap to clone: a dead connection hands the same error to every request that was in flight
/// on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A bootstrap or broker address could not be parsed.
    #[error(transparent)]
    BrokerUrl(#[from] BrokerUrlError),
    /// The TCP connection to a broker could not be opened (refused, unreachable, DNS failure).
    #[error("cannot connect to broker {broker}: {source}")]
    Connect {
        /// `host:port` of the broker.
        broker: String,
        /// The operating system's error.
        source: Arc<std::io::Error>,
    },
    /// Opening the connection and the ApiVersions handshake took longer than the connect timeout.
    #[error("connecting to broker {broker} timed out after {timeout:?}")]
    ConnectTimeout {
        /// `host:port` of the broker.
        broker: String,
        /// The configured connect timeout.
        timeout: Duration,
    },
    /// No answer to a request within its timeout. The connection it was sent on is closed (as
    /// the Java client does), so its other in-flight requests fail with
    /// [`EngineError::ConnectionClosed`].
    #[error("{api:?} request to broker {broker} timed out after {timeout:?}")]
    RequestTimeout {
        /// `host:port` of the broker.
        broker: String,
        /// The API of the request.
        api: ApiKey,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection died (closed by the broker, I/O error, protocol violation, timeout of
    /// another request) before this request got its answer. Whether the broker processed the
    /// request is unknown.
    #[error("connection to broker {broker} closed: {reason}")]
    ConnectionClosed {
        /// `host:port` of the broker.
        broker: String,
        /// Why the connection died.
        reason: Arc<str>,
    },
    /// The broker sent bytes that are not a valid frame.
    #[error("broker {broker} sent an invalid frame: {source}")]
    Frame {
        /// `host:port` of the broker.
        broker: String,
        /// The framing error.
        source: FrameError,
    },
    /// A request could not be encoded or a response could not be decoded.
    #[error("{0}")]
    Message(#[from] MessageError),
    /// Version negotiation with a broker failed, or an API is not available on it.
    #[error("broker {broker}: {source}")]
    Versions {
        /// `host:port` of the broker.
        broker: String,
        /// The negotiation error.
        source: VersionError,
    },
    /// A broker answered with a Kafka error code.
    #[error("{api:?} failed{}: {error}", context_suffix(.resource))]
    Kafka {
        /// The API whose response carried the code.
        api: ApiKey,
        /// The topic, partition or group concerned, if the code is per resource.
        resource: Option<String>,
        /// The code, name and broker message.
        error: KafkaError,
    },
    /// The broker id is not in the current metadata.
    #[error("broker {0:?} is not in the cluster metadata")]
    UnknownBroker(BrokerId),
    /// The topic is not in the cluster metadata (it may not exist, or not be propagated yet).
    #[error("topic {0:?} is not in the cluster metadata")]
    UnknownTopic(String),
    /// The topic exists but has no such partition.
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
    },
    /// The partition has no leader right now (election in progress, or its leader is offline).
    #[error("partition {topic}-{partition} has no leader")]
    NoLeader {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// No bootstrap or known broker could be reached; one entry per broker tried.
    #[error("no broker could be reached: {}", .attempts.join("; "))]
    NoBrokerAvailable {
        /// `host:port: error` for every broker tried.
        attempts: Vec<String>,
    },
    /// The broker answered with something that breaks the protocol (e.g. an unknown correlation
    /// id, a response with fewer entries than asked for).
    #[error("protocol violation by broker {broker}: {detail}")]
    Protocol {
        /// `host:port` of the broker.
        broker: String,
        /// What was wrong.
        detail: String,
    },
    /// An operation kept failing with retriable errors until its time budget ran out; the last
    /// error is kept.
    #[error("gave up after {attempts} attempts in {elapsed:?}: {last}")]
    RetriesExhausted {
        /// How many times the operation was tried.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The error of the last attempt.
        last: Box<EngineError>,
    },
}

fn context_suffix(resource: &Option<String>) -> String {
    resource
        .as_ref()
        .map_or_else(String::new, |r| format!(" for {r}"))
}

impl EngineError {
    /// A [`EngineError::Kafka`] for a non-zero `code`, or `Ok(())` for 0.
    pub fn check_code(
        api: ApiKey,
        resource: impl FnOnce() -> Option<String>,
        code: i16,
        message: Option<&str>,
    ) -> Result<(), Self> {
        match KafkaError::with_message(code, message) {
            None => Ok(()),
            Some(error) => Err(Self::Kafka {
                api,
                resource: resource(),
                error,
            }),
        }
    }

    /// The Kafka error, if this is one (also looking inside [`EngineError::RetriesExhausted`]).
    pub fn kafka(&self) -> Option<&KafkaError> {
        match self {
            Self::Kafka { error, .. } => Some(error),
            Self::RetriesExhausted { last, .. } => last.kafka(),
            _ => None,
        }
    }

    /// `kafka-protocol`'s variant for the Kafka error code, if this is a Kafka error.
    pub fn kafka_kind(&self) -> Option<ResponseError> {
        self.kafka().map(KafkaError::kind)
    }

    /// Whether trying the same operation again may succeed.
    ///
    /// True for transport failures (refused or dropped connections, timeouts), retriable Kafka
    /// codes, and metadata that is not there yet (unknown topic, no leader). A request that
    /// timed out or whose connection died may still have been processed by the broker: only
    /// repeat requests that are safe to repeat.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::RequestTimeout { .. }
            | Self::ConnectionClosed { .. }
            | Self::UnknownBroker(_)
            | Self::UnknownTopic(_)
            | Self::NoLeader { .. }
            | Self::NoBrokerAvailable { .. } => true,
            Self::Kafka { error, .. } => error.is_retriable(),
            Self::Config(_)
            | Self::BrokerUrl(_)
            | Self::Frame { .. }
            | Self::Message(_)
            | Self::Versions { .. }
            | Self::UnknownPartition { .. }
            | Self::Protocol { .. }
            | Self::RetriesExhausted { .. } => false,
        }
    }

    /// Whether the error means the cached metadata may be stale (leader moved, broker gone,
    /// topic missing) and should be refreshed before a retry.
    pub fn invalidates_metadata(&self) -> bool {
        match self {
            Self::Kafka { error, .. } => error.invalidates_metadata(),
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::ConnectionClosed { .. }
            | Self::UnknownBroker(_)
            | Self::UnknownTopic(_)
            | Self::UnknownPartition { .. }
            | Self::NoLeader { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn connect(broker: &impl fmt::Display, source: std::io::Error) -> Self {
        Self::Connect {
            broker: broker.to_string(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn closed(broker: &impl fmt::Display, reason: impl Into<Arc<str>>) -> Self {
        Self::ConnectionClosed {
            broker: broker.to_string(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_no_error() {
        assert!(KafkaError::from_code(0).is_none());
        assert!(KafkaError::check(0).is_ok());
    }

    #[test]
    fn names_follow_kafka() {
        let cases: &[(i16, &str, bool)] = &[
            (-1, "UNKNOWN_SERVER_ERROR", false),
            (3, "UNKNOWN_TOPIC_OR_PARTITION", true),
            (5, "LEADER_NOT_AVAILABLE", true),
            (6, "NOT_LEADER_OR_FOLLOWER", true),
            (7, "REQUEST_TIMED_OUT", true),
            (35, "UNSUPPORTED_VERSION", false),
            (36, "TOPIC_ALREADY_EXISTS", false),
            (41, "NOT_CONTROLLER", true),
            (74, "FENCED_LEADER_EPOCH", true),
            (120, "TRANSACTION_ABORTABLE", false),
        ];
        for &(code, name, retriable) in cases {
            let e = KafkaError::from_code(code).expect("non-zero code");
            assert_eq!(e.code(), code);
            assert_eq!(e.name(), name, "code {code}");
            assert_eq!(e.is_retriable(), retriable, "code {code}");
        }
    }

    #[test]
    fn every_code_round_trips() {
        for code in -1..=140i16 {
            if let Some(e) = KafkaError::from_code(code) {
                assert_eq!(e.code(), code);
                assert!(!e.name().is_empty());
                assert!(!e.name().contains(' '), "{}", e.name());
            }
        }
    }

    #[test]
    fn unknown_codes_are_kept_and_not_retriable() {
        let e = KafkaError::with_message(9999, Some("from the future")).expect("error");
        assert_eq!(e.code(), 9999);
        assert_eq!(e.name(), "UNKNOWN_CODE_9999");
        assert!(!e.is_retriable());
        assert_eq!(e.to_string(), "UNKNOWN_CODE_9999 (9999): from the future");
    }

    #[test]
    fn engine_error_classification() {
        let not_leader =
            EngineError::check_code(ApiKey::ListOffsets, || Some("t-0".into()), 6, Some("moved"))
                .expect_err("code 6");
        assert!(not_leader.is_retriable());
        assert!(not_leader.invalidates_metadata());
        assert_eq!(
            not_leader.to_string(),
            "ListOffsets failed for t-0: NOT_LEADER_OR_FOLLOWER (6): moved"
        );

        let exists =
            EngineError::check_code(ApiKey::CreateTopics, || None, 36, None).expect_err("code 36");
        assert!(!exists.is_retriable());
        assert!(!exists.invalidates_metadata());
        assert_eq!(exists.kafka_kind(), Some(ResponseError::TopicAlreadyExists));

        let closed = EngineError::closed(&"127.0.0.1:1", "eof");
        assert!(closed.is_retriable() && closed.invalidates_metadata());
        let wrapped = EngineError::RetriesExhausted {
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last: Box::new(exists),
        };
        assert!(!wrapped.is_retriable());
        assert_eq!(
            wrapped.kafka_kind(),
            Some(ResponseError::TopicAlreadyExists)
        );
    }
}
