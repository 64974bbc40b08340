//! The APIs Mephisto speaks, the version range of each, and negotiation against a broker's
//! ApiVersions response.
//!
//! # Minimums
//! The oldest versions kept by Kafka 4.0 (KIP-896, whose baseline is Kafka 2.1), which are also
//! the oldest `kafka-protocol` 0.18 implements. JoinGroup is the exception: `kafka-protocol`
//! still has v0 and v1, but we start at v2 like the rest of the 2.1 baseline.
//!
//! # Maximums
//! The highest version `kafka-protocol` 0.18 implements *whose semantics we handle*. Where a
//! newer version changes behaviour rather than adding an optional field, the cap sits below it
//! and [`ApiSupport::capped_because`] says what raising it needs.
//!
//! The transactional versions we allow (Produce v11, EndTxn v4, AddOffsetsToTxn v4,
//! TxnOffsetCommit v4) tell the broker we understand TRANSACTION_ABORTABLE (error 120, KIP-890):
//! the engine must treat it as an abortable transaction error.
//!
//! # Required and optional
//! A broker missing a *required* API, or with no version in common, cannot be used at all and
//! [`negotiate`] fails naming every such API. *Optional* APIs (transactions, admin) are simply
//! absent from the result; a feature that needs one asks with [`NegotiatedVersions::require`].
//! InitProducerId is optional too: without it the producer falls back to plain acks=all.

use std::fmt;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// One API we implement and the versions we are willing to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    /// The API.
    pub api: ApiKey,
    /// Oldest version we speak.
    pub min: i16,
    /// Newest version we speak.
    pub max: i16,
    /// Whether a broker without a common version is unusable.
    pub required: bool,
    /// Why `max` is below what `kafka-protocol` implements, if it is.
    pub capped_because: Option<&'static str>,
}

const fn api(api: ApiKey, min: i16, max: i16, required: bool) -> ApiSupport {
    ApiSupport {
        api,
        min,
        max,
        required,
        capped_because: None,
    }
}

const fn capped(api: ApiKey, min: i16, max: i16, required: bool, why: &'static str) -> ApiSupport {
    ApiSupport {
        api,
        min,
        max,
        required,
        capped_because: Some(why),
    }
}

/// Every API Mephisto implements, in API-key order.
pub const MEPHISTO_APIS: &[ApiSupport] = &[
    capped(
        ApiKey::Produce,
        3,
        11,
        true,
        "v12 is transaction V2 (KIP-890 part 2: the broker adds partitions to the transaction \
         implicitly), v13 names topics by id (KIP-516)",
    ),
    capped(
        ApiKey::Fetch,
        4,
        12,
        true,
        "v13+ names topics by id (KIP-516); the engine would have to track topic ids",
    ),
    capped(
        ApiKey::ListOffsets,
        1,
        9,
        true,
        "v10 adds TimeoutMs for tiered-storage lookups, which the engine must fill in",
    ),
    capped(
        ApiKey::Metadata,
        0,
        12,
        true,
        "v13 adds a top-level error code (REBOOTSTRAP_REQUIRED, KIP-1102) the engine must act on",
    ),
    api(ApiKey::OffsetCommit, 2, 9, true),
    api(ApiKey::OffsetFetch, 1, 9, true),
    api(ApiKey::FindCoordinator, 0, 6, true),
    api(ApiKey::JoinGroup, 2, 9, true),
    api(ApiKey::Heartbeat, 0, 4, true),
    api(ApiKey::LeaveGroup, 0, 5, true),
    api(ApiKey::SyncGroup, 0, 5, true),
    api(ApiKey::ApiVersions, 0, 4, true),
    api(ApiKey::CreateTopics, 2, 7, false),
    api(ApiKey::DeleteTopics, 1, 6, false),
    // Idempotent producing (on by default since Kafka 3.0) needs a producer id. kafka-protocol
    // 0.18 has v6 (two-phase commit, KIP-939) for responses only.
    // Optional: without it the producer falls back to plain acks=all (or fails if idempotence
    // was asked for explicitly).
    api(ApiKey::InitProducerId, 0, 5, false),
    capped(
        ApiKey::AddPartitionsToTxn,
        0,
        3,
        false,
        "v4+ is the broker-to-broker batched form (KIP-890)",
    ),
    api(ApiKey::AddOffsetsToTxn, 0, 4, false),
    capped(
        ApiKey::EndTxn,
        0,
        4,
        false,
        "v5 is transaction V2 (KIP-890 part 2: a new epoch per transaction)",
    ),
    capped(
        ApiKey::TxnOffsetCommit,
        0,
        4,
        false,
        "v5 is transaction V2 (KIP-890 part 2: implicit AddOffsetsToTxn)",
    ),
    // v0 is gone from Kafka 4.0 and from kafka-protocol 0.18.
    api(ApiKey::DescribeConfigs, 1, 4, false),
];

/// Our entry for `api`, if we implement it.
pub fn supported(api: ApiKey) -> Option<&'static ApiSupport> {
    MEPHISTO_APIS.iter().find(|s| s.api == api)
}

/// Why one API cannot be used with a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incompatibility {
    /// The broker does not list the API at all.
    Missing {
        /// The API.
        api: ApiKey,
        /// Oldest version we speak.
        our_min: i16,
        /// Newest version we speak.
        our_max: i16,
    },
    /// The broker lists the API, but no version is in both ranges.
    NoCommonVersion {
        /// The API.
        api: ApiKey,
        /// Oldest version we speak.
        our_min: i16,
        /// Newest version we speak.
        our_max: i16,
        /// Oldest version the broker speaks.
        broker_min: i16,
        /// Newest version the broker speaks.
        broker_max: i16,
    },
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Missing {
                api,
                our_min,
                our_max,
            } => write!(
                f,
                "{api:?} (key {}): Mephisto speaks v{our_min} to v{our_max}, the broker does not \
                 offer it",
                api as i16
            ),
            Self::NoCommonVersion {
                api,
                our_min,
                our_max,
                broker_min,
                broker_max,
            } => {
                write!(
                    f,
                    "{api:?} (key {}): Mephisto speaks v{our_min} to v{our_max}, the broker \
                     v{broker_min} to v{broker_max}",
                    api as i16
                )?;
                if broker_max < our_min {
                    f.write_str(" (brokers older than Kafka 2.1 are not supported)")?;
                }
                Ok(())
            }
        }
    }
}

/// What can go wrong during version negotiation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The broker does not speak the ApiVersions version we sent; send it again at `retry_with`
    /// (see [`api_versions_retry_version`]).
    #[error(
        "the broker does not support our ApiVersions request version; retry with v{retry_with}"
    )]
    RetryApiVersions {
        /// The version to retry with.
        retry_with: i16,
    },
    /// ApiVersions failed with an error code we cannot recover from here.
    #[error("ApiVersions failed with error code {error_code}")]
    ApiVersionsFailed {
        /// The Kafka error code.
        error_code: i16,
    },
    /// The broker lacks, or has no common version of, at least one required API.
    #[error("the broker cannot be used: {}", list(.0))]
    Incompatible(Vec<Incompatibility>),
    /// A feature needs an optional API the broker does not offer (in a common version).
    #[error("{api:?} (key {}) is not available on this broker in a version Mephisto speaks", *.api as i16)]
    NotAvailable {
        /// The API.
        api: ApiKey,
    },
}

fn list(problems: &[Incompatibility]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The version to use for each API with one broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NegotiatedVersions {
    versions: Vec<(ApiKey, i16)>,
}

impl NegotiatedVersions {
    /// The version to use for `api`, or `None` if the broker has no version in common with us
    /// (only possible for optional APIs) or we do not implement it.
    pub fn get(&self, api: ApiKey) -> Option<i16> {
        self.versions
            .iter()
            .find_map(|&(a, v)| (a == api).then_some(v))
    }

    /// Like [`get`](Self::get), but an error naming the API when it is unavailable.
    pub fn require(&self, api: ApiKey) -> Result<i16, VersionError> {
        self.get(api).ok_or(VersionError::NotAvailable { api })
    }

    /// Every usable API and its version, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (ApiKey, i16)> + '_ {
        self.versions.iter().copied()
    }
}

/// Picks, for every API in [`MEPHISTO_APIS`], the highest version both sides speak.
///
/// See [`negotiate_with`].
pub fn negotiate(response: &ApiVersionsResponse) -> Result<NegotiatedVersions, VersionError> {
    negotiate_with(MEPHISTO_APIS, response)
}

/// Picks, for every API in `ours`, the highest version both we and the broker speak.
///
/// Fails when the response carries an error (with [`VersionError::RetryApiVersions`] for
/// UNSUPPORTED_VERSION) or when any required API is unusable, listing all such APIs. Broker
/// entries for APIs we do not know are ignored; if the broker lists an API twice, the first
/// entry counts; an entry with `min > max` has no common version.
pub fn negotiate_with(
    ours: &[ApiSupport],
    response: &ApiVersionsResponse,
) -> Result<NegotiatedVersions, VersionError> {
    if response.error_code == ResponseError::UnsupportedVersion.code() {
        return Err(VersionError::RetryApiVersions {
            retry_with: fallback_version(response),
        });
    }
    if response.error_code != 0 {
        return Err(VersionError::ApiVersionsFailed {
            error_code: response.error_code,
        });
    }
    let mut versions = Vec::with_capacity(ours.len());
    let mut problems = Vec::new();
    for support in ours {
        let broker = response
            .api_keys
            .iter()
            .find(|entry| entry.api_key == support.api as i16);
        let outcome = match broker {
            None => Err(Incompatibility::Missing {
                api: support.api,
                our_min: support.min,
                our_max: support.max,
            }),
            Some(entry) => {
                let low = support.min.max(entry.min_version);
                let high = support.max.min(entry.max_version);
                if low <= high && entry.min_version <= entry.max_version {
                    Ok(high)
                } else {
                    Err(Incompatibility::NoCommonVersion {
                        api: support.api,
                        our_min: support.min,
                        our_max: support.max,
                        broker_min: entry.min_version,
                        broker_max: entry.max_version,
                    })
                }
            }
        };
        match outcome {
            Ok(version) => versions.push((support.api, version)),
            Err(problem) if support.required => problems.push(problem),
            Err(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(NegotiatedVersions { versions })
    } else {
        Err(VersionError::Incompatible(problems))
    }
}

/// The ApiVersions version to retry with after the broker answered a request at `requested`
/// with UNSUPPORTED_VERSION (error 35), or `None` if the response is not such an answer or
/// retrying cannot help.
///
/// Per KIP-511 the broker then answers with a v0 body listing its own ApiVersions range. We
/// retry with the highest version both sides speak; a broker that does not list ApiVersions is
/// retried at v0, as the Java client does. `None` when that would not be lower than `requested`
/// (the broker is inconsistent and retrying would loop).
pub fn api_versions_retry_version(response: &ApiVersionsResponse, requested: i16) -> Option<i16> {
    if response.error_code != ResponseError::UnsupportedVersion.code() {
        return None;
    }
    let retry = fallback_version(response);
    (retry < requested).then_some(retry)
}

fn fallback_version(response: &ApiVersionsResponse) -> i16 {
    let ours = supported(ApiKey::ApiVersions).map_or(0, |s| s.max);
    let broker_max = response
        .api_keys
        .iter()
        .find(|entry| entry.api_key == ApiKey::ApiVersions as i16)
        .map_or(0, |entry| entry.max_version);
    broker_max.clamp(0, ours)
}
