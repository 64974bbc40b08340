//! The consumer-group payloads carried opaquely by JoinGroup (a member's *subscription*, in the
//! protocol metadata) and SyncGroup (a member's *assignment*), as Java's `ConsumerProtocol`
//! writes them: an `int16` version followed by the `ConsumerProtocolSubscription` or
//! `ConsumerProtocolAssignment` struct at that version (non-flexible encoding).
//!
//! Compatibility rules, as in Java:
//! - Decoding accepts any non-negative version. Versions above 3 (ours) are read with the v3
//!   layout, since newer versions only append fields, and trailing bytes are ignored.
//! - Encoding at a version drops the fields that version cannot carry (owned partitions before
//!   v1, generation id before v2, rack id before v3).
//! - Topics in a subscription are written sorted and without duplicates.
//!
//! The payloads come from other group members, so decoding is as defensive as for broker
//! responses (no allocation from unchecked lengths, typed errors, no panics).

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::guard::{self, Int32Lengths};

/// Highest consumer-protocol version we write and fully understand.
pub const MAX_VERSION: i16 = 3;

/// What a group member sends in JoinGroup: the topics it wants and what it currently owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Topics the member wants to consume.
    pub topics: Vec<String>,
    /// Assignor-specific data (Kafka Streams puts its task state here); `None` is null on the
    /// wire, distinct from empty.
    pub user_data: Option<Bytes>,
    /// Partitions the member owns now, by topic (v1+; cooperative rebalancing).
    pub owned_partitions: BTreeMap<String, Vec<i32>>,
    /// Generation in which the member owned them, or -1 if unknown (v2+).
    pub generation_id: i32,
    /// The member's rack, for rack-aware assignment (v3+).
    pub rack_id: Option<String>,
}

impl Default for Subscription {
    fn default() -> Self {
        Self {
            topics: Vec::new(),
            user_data: None,
            owned_partitions: BTreeMap::new(),
            generation_id: -1,
            rack_id: None,
        }
    }
}

/// What the group leader hands each member in SyncGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Assigned partitions, by topic.
    pub partitions: BTreeMap<String, Vec<i32>>,
    /// Assignor-specific data; `None` is null on the wire, distinct from empty.
    pub user_data: Option<Bytes>,
}

/// What can go wrong with a consumer-protocol payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerProtocolError {
    /// The payload is too short to hold the version prefix.
    #[error("consumer protocol {what} of {len} bytes has no version prefix")]
    MissingVersion {
        /// "subscription" or "assignment".
        what: &'static str,
        /// Payload length.
        len: usize,
    },
    /// The version prefix is negative.
    #[error("consumer protocol {what} has a negative version ({version})")]
    NegativeVersion {
        /// "subscription" or "assignment".
        what: &'static str,
        /// The version read.
        version: i16,
    },
    /// Encoding was asked for a version we cannot write.
    #[error("cannot write consumer protocol {what} v{version} (supported: v0 to v{MAX_VERSION})")]
    UnsupportedVersion {
        /// "subscription" or "assignment".
        what: &'static str,
        /// The version asked for.
        version: i16,
    },
    /// The body after the prefix is not a valid encoding.
    #[error("malformed consumer protocol {what} (read as v{version}): {message}")]
    Malformed {
        /// "subscription" or "assignment".
        what: &'static str,
        /// The layout version used to read it.
        version: i16,
        /// The decoder's explanation.
        message: String,
    },
    /// `kafka-protocol` refused to encode (e.g. a topic name longer than 32767 bytes).
    #[error("cannot encode consumer protocol {what} v{version}: {message}")]
    Encode {
        /// "subscription" or "assignment".
        what: &'static str,
        /// The version used.
        version: i16,
        /// The encoder's explanation.
        message: String,
    },
}

const SUBSCRIPTION: &str = "subscription";
const ASSIGNMENT: &str = "assignment";

/// The version prefix of a payload as written by its sender (not clamped).
pub fn payload_version(data: &[u8]) -> Result<i16, ConsumerProtocolError> {
    read_version(data, "payload")
}

/// Encodes `subscription` at `version` (0 to [`MAX_VERSION`]).
pub fn encode_subscription(
    subscription: &Subscription,
    version: i16,
) -> Result<Bytes, ConsumerProtocolError> {
    check_encode_version(SUBSCRIPTION, version)?;
    let mut topics: Vec<&str> = subscription.topics.iter().map(String::as_str).collect();
    topics.sort_unstable();
    topics.dedup();
    let mut wire = ConsumerProtocolSubscription::default()
        .with_topics(topics.into_iter().map(str_bytes).collect())
        .with_user_data(subscription.user_data.clone());
    if version >= 1 {
        wire.owned_partitions = subscription
            .owned_partitions
            .iter()
            .map(|(topic, partitions)| {
                let mut partitions = partitions.clone();
                partitions.sort_unstable();
                partitions.dedup();
                OwnedTopic::default()
                    .with_topic(str_bytes(topic).into())
                    .with_partitions(partitions)
            })
            .collect();
    }
    if version >= 2 {
        wire.generation_id = subscription.generation_id;
    }
    if version >= 3 {
        wire.rack_id = subscription.rack_id.as_deref().map(str_bytes);
    }
    encode_versioned(SUBSCRIPTION, &wire, version)
}

/// Decodes a subscription written at any version (see the module docs for the rules).
pub fn decode_subscription(data: Bytes) -> Result<Subscription, ConsumerProtocolError> {
    let (version, wire) = decode_versioned::<ConsumerProtocolSubscription>(SUBSCRIPTION, data)?;
    let mut owned_partitions = BTreeMap::new();
    if version >= 1 {
        merge_topics(
            &mut owned_partitions,
            wire.owned_partitions
                .into_iter()
                .map(|t| (t.topic.0, t.partitions)),
        );
    }
    Ok(Subscription {
        topics: wire.topics.iter().map(|t| t.as_str().to_owned()).collect(),
        user_data: wire.user_data,
        owned_partitions,
        generation_id: wire.generation_id,
        rack_id: wire.rack_id.map(|r| r.as_str().to_owned()),
    })
}

/// Encodes `assignment` at `version` (0 to [`MAX_VERSION`]; all four share one layout).
pub fn encode_assignment(
    assignment: &Assignment,
    version: i16,
) -> Result<Bytes, ConsumerProtocolError> {
    check_encode_version(ASSIGNMENT, version)?;
    let wire = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            assignment
                .partitions
                .iter()
                .map(|(topic, partitions)| {
                    AssignedTopic::default()
                        .with_topic(str_bytes(topic).into())
                        .with_partitions(partitions.clone())
                })
                .collect(),
        )
        .with_user_data(assignment.user_data.clone());
    encode_versioned(ASSIGNMENT, &wire, version)
}

/// Decodes an assignment written at any version (see the module docs for the rules).
///
/// An empty payload is an empty assignment: the coordinator sends zero bytes to members the
/// leader left out of its SyncGroup request.
pub fn decode_assignment(data: Bytes) -> Result<Assignment, ConsumerProtocolError> {
    if data.is_empty() {
        return Ok(Assignment::default());
    }
    let (_, wire) = decode_versioned::<ConsumerProtocolAssignment>(ASSIGNMENT, data)?;
    let mut partitions = BTreeMap::new();
    merge_topics(
        &mut partitions,
        wire.assigned_partitions
            .into_iter()
            .map(|t| (t.topic.0, t.partitions)),
    );
    Ok(Assignment {
        partitions,
        user_data: wire.user_data,
    })
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Groups topic entries into a map; a topic listed twice gets both partition lists.
fn merge_topics(
    into: &mut BTreeMap<String, Vec<i32>>,
    topics: impl Iterator<Item = (StrBytes, Vec<i32>)>,
) {
    for (topic, partitions) in topics {
        into.entry(topic.as_str().to_owned())
            .or_default()
            .extend(partitions);
    }
}

fn check_encode_version(what: &'static str, version: i16) -> Result<(), ConsumerProtocolError> {
    if (0..=MAX_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(ConsumerProtocolError::UnsupportedVersion { what, version })
    }
}

fn encode_versioned<T: Encodable>(
    what: &'static str,
    wire: &T,
    version: i16,
) -> Result<Bytes, ConsumerProtocolError> {
    let encode_error = |e: &dyn std::fmt::Display| ConsumerProtocolError::Encode {
        what,
        version,
        message: format!("{e:#}").trim_end().to_owned(),
    };
    let size = wire.compute_size(version).map_err(|e| encode_error(&e))?;
    let mut buf = BytesMut::with_capacity(2 + size);
    buf.put_i16(version);
    wire.encode(&mut buf, version)
        .map_err(|e| encode_error(&e))?;
    Ok(buf.freeze())
}

fn read_version(data: &[u8], what: &'static str) -> Result<i16, ConsumerProtocolError> {
    let Some(prefix) = data.first_chunk::<2>() else {
        return Err(ConsumerProtocolError::MissingVersion {
            what,
            len: data.len(),
        });
    };
    let version = i16::from_be_bytes(*prefix);
    if version < 0 {
        return Err(ConsumerProtocolError::NegativeVersion { what, version });
    }
    Ok(version)
}

/// Reads the prefix, clamps it to [`MAX_VERSION`] and decodes the body, ignoring trailing bytes.
fn decode_versioned<T: Decodable>(
    what: &'static str,
    mut data: Bytes,
) -> Result<(i16, T), ConsumerProtocolError> {
    let version = read_version(&data, what)?.min(MAX_VERSION);
    let _prefix = data.split_to(2);
    let wire = guard::decode_prefix::<T>(&mut data, version, Int32Lengths::Possible).map_err(
        |failure| ConsumerProtocolError::Malformed {
            what,
            version,
            message: failure.to_string(),
        },
    )?;
    Ok((version, wire))
}
