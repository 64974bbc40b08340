//! The user data `mephisto-standby` members and leader exchange, postcard-encoded.
//!
//! # Format
//! `version` (postcard varint `u32`, currently [`STANDBY_USER_DATA_VERSION`]) followed by the
//! postcard encoding of the struct's fields in declaration order. Later versions may only
//! append fields: a reader decodes the fields it knows and ignores the rest when the version
//! is newer than its own (Kafka's rule for the consumer-protocol payloads); for its own
//! version, trailing bytes are an error.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The user-data version this code writes.
pub const STANDBY_USER_DATA_VERSION: u32 = 1;

/// Why standby user data could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    /// There were no bytes at all.
    #[error("user data is empty")]
    Empty,
    /// The version is one no reader understands (0 is not a valid version).
    #[error("unsupported user data version {0}")]
    UnsupportedVersion(u32),
    /// The bytes are not a valid encoding of this version.
    #[error("malformed user data: {0}")]
    Malformed(String),
    /// The payload for our own version was followed by unexpected bytes.
    #[error("{0} unexpected bytes after the user data")]
    TrailingBytes(usize),
    /// A partition number is negative.
    #[error("negative partition {partition} for topic `{topic}`")]
    NegativePartition {
        /// The topic.
        topic: String,
        /// The partition number.
        partition: i32,
    },
    /// The user data could not be encoded.
    #[error("could not encode user data: {0}")]
    Encode(String),
}

/// What a member tells the leader in its JoinGroup subscription (member → leader).
///
/// Build it from the member's state before every JoinGroup, for example with
/// [`StandbySubscriptionData::from_previous`] and [`StandbySubscriptionData::set_applied_offset`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbySubscriptionData {
    /// Partitions the member consumes as active (topic → partitions).
    pub active: BTreeMap<String, Vec<i32>>,
    /// Changelog partitions the member keeps warm as regular standbys.
    pub standby: BTreeMap<String, Vec<i32>>,
    /// Changelog partitions the member keeps warm as warm-ups (KIP-441).
    pub warmup: BTreeMap<String, Vec<i32>>,
    /// Partitions the last assignment promised the member once their owner revokes them.
    pub pending: BTreeMap<String, Vec<i32>>,
    /// Per changelog partition the member has local state for, the offset it has applied
    /// (the next offset it would read). The leader computes the lag from it.
    pub applied_offsets: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl StandbySubscriptionData {
    /// Empty data: a member with no state (a new process).
    pub fn new() -> Self {
        Self::default()
    }

    /// Data for a member that consumed `active` and received `previous` in its last
    /// assignment; applied offsets are added with [`Self::set_applied_offset`].
    pub fn from_previous(
        active: &BTreeMap<String, Vec<i32>>,
        previous: Option<&StandbyAssignmentData>,
    ) -> Self {
        let mut data = Self {
            active: active.clone(),
            ..Self::default()
        };
        if let Some(prev) = previous {
            data.standby = prev.standby.clone();
            data.warmup = prev.warmup.clone();
            data.pending = prev.pending.clone();
        }
        data
    }

    /// Records that the member has applied its local copy of `topic`/`partition` up to
    /// `offset` (exclusive).
    pub fn set_applied_offset(&mut self, topic: &str, partition: i32, offset: i64) -> &mut Self {
        self.applied_offsets
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, offset);
        self
    }

    /// Encodes the data (version first).
    pub fn encode(&self) -> Result<Bytes, UserDataError> {
        encode_versioned(self)
    }

    /// Decodes data written by [`Self::encode`] (this or a later version).
    pub fn decode(bytes: &[u8]) -> Result<Self, UserDataError> {
        let data: Self = decode_versioned(bytes)?;
        for map in [&data.active, &data.standby, &data.warmup, &data.pending] {
            check_partitions(
                map.iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |p| (t, *p))),
            )?;
        }
        check_partitions(
            data.applied_offsets
                .iter()
                .flat_map(|(t, ps)| ps.keys().map(move |p| (t, *p))),
        )?;
        Ok(data)
    }
}

/// What the leader tells each member in its SyncGroup assignment (leader → member), next to
/// the active partitions carried by the consumer protocol itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbyAssignmentData {
    /// Changelog partitions to keep warm as regular standbys.
    pub standby: BTreeMap<String, Vec<i32>>,
    /// Changelog partitions to keep warm as warm-ups: the member is the intended owner of
    /// the task but is not caught up yet; a caught-up member runs it meanwhile.
    pub warmup: BTreeMap<String, Vec<i32>>,
    /// Partitions this member will own once their current owner has revoked them
    /// (cooperative protocol): restore their state now and report them back in
    /// [`StandbySubscriptionData::pending`] at the next JoinGroup.
    pub pending: BTreeMap<String, Vec<i32>>,
    /// Warm-ups exist in the group: rejoin after the probing interval so that caught-up
    /// warm-ups can take over (Kafka Streams' `nextRebalanceMs`).
    pub probing_rebalance: bool,
}

impl StandbyAssignmentData {
    /// Encodes the data (version first).
    pub fn encode(&self) -> Result<Bytes, UserDataError> {
        encode_versioned(self)
    }

    /// Decodes data written by [`Self::encode`] (this or a later version).
    pub fn decode(bytes: &[u8]) -> Result<Self, UserDataError> {
        let data: Self = decode_versioned(bytes)?;
        for map in [&data.standby, &data.warmup, &data.pending] {
            check_partitions(
                map.iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |p| (t, *p))),
            )?;
        }
        Ok(data)
    }

    /// Every changelog partition the member should keep warm (standbys and warm-ups).
    pub fn partitions_to_keep_warm(&self) -> BTreeMap<String, Vec<i32>> {
        let mut all = self.standby.clone();
        for (topic, partitions) in &self.warmup {
            let entry = all.entry(topic.clone()).or_default();
            entry.extend(partitions);
            entry.sort_unstable();
            entry.dedup();
        }
        all
    }
}

fn encode_versioned<T: Serialize>(value: &T) -> Result<Bytes, UserDataError> {
    postcard::to_stdvec(&(STANDBY_USER_DATA_VERSION, value))
        .map(Bytes::from)
        .map_err(|e| UserDataError::Encode(e.to_string()))
}

fn decode_versioned<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, UserDataError> {
    if bytes.is_empty() {
        return Err(UserDataError::Empty);
    }
    let (version, rest) = postcard::take_from_bytes::<u32>(bytes)
        .map_err(|e| UserDataError::Malformed(e.to_string()))?;
    if version == 0 {
        return Err(UserDataError::UnsupportedVersion(version));
    }
    let (value, rest) = postcard::take_from_bytes::<T>(rest)
        .map_err(|e| UserDataError::Malformed(e.to_string()))?;
    if version == STANDBY_USER_DATA_VERSION && !rest.is_empty() {
        return Err(UserDataError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

fn check_partitions<'a>(
    mut partitions: impl Iterator<Item = (&'a String, i32)>,
) -> Result<(), UserDataError> {
    match partitions.find(|(_, p)| *p < 0) {
        Some((topic, partition)) => Err(UserDataError::NegativePartition {
            topic: topic.clone(),
            partition,
        }),
        None => Ok(()),
    }
}
