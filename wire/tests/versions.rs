//! Tests for `mephisto_wire::versions`: the API table against kafka-protocol's ranges and the
//! KIP-896 baseline, negotiation (model-checked with proptest), and each negotiation error.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use mephisto_wire::messages::{message_versions, Direction};
use mephisto_wire::versions::{
    api_versions_retry_version, negotiate, negotiate_with, supported, ApiSupport, Incompatibility,
    VersionError, MEPHISTO_APIS,
};
use proptest::prelude::*;

fn broker(entries: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        entries
            .iter()
            .map(|&(key, min, max)| {
                ApiVersion::default()
                    .with_api_key(key as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect(),
    )
}

/// What a Kafka 4.0 broker advertises for the APIs we use (kafka-protocol 0.18's full ranges).
fn modern_broker() -> ApiVersionsResponse {
    let entries: Vec<_> = ApiKey::iter()
        .map(|key| {
            let range = key.valid_versions();
            (key, range.min, range.max)
        })
        .collect();
    broker(&entries)
}

#[test]
fn table_fits_inside_what_kafka_protocol_implements() {
    for s in MEPHISTO_APIS {
        assert!(s.min <= s.max, "{:?}", s.api);
        for direction in [Direction::Request, Direction::Response] {
            let range = message_versions(s.api, direction);
            assert!(
                range.min <= s.min && s.max <= range.max,
                "{:?} {direction}: ours v{}..=v{}, kafka-protocol v{}..=v{}",
                s.api,
                s.min,
                s.max,
                range.min,
                range.max
            );
        }
        // A cap below what kafka-protocol offers must say why.
        let request_max = message_versions(s.api, Direction::Request).max;
        assert_eq!(
            s.capped_because.is_some(),
            s.max < request_max,
            "{:?}: max v{} vs kafka-protocol v{request_max}",
            s.api,
            s.max
        );
    }
    // No duplicates, API-key order.
    for pair in MEPHISTO_APIS.windows(2) {
        assert!((pair[0].api as i16) < (pair[1].api as i16));
    }
}

#[test]
fn minimums_are_the_kafka_2_1_baseline() {
    let expected = [
        (ApiKey::Produce, 3),
        (ApiKey::Fetch, 4),
        (ApiKey::ListOffsets, 1),
        (ApiKey::Metadata, 0),
        (ApiKey::OffsetCommit, 2),
        (ApiKey::OffsetFetch, 1),
        (ApiKey::FindCoordinator, 0),
        (ApiKey::JoinGroup, 2),
        (ApiKey::Heartbeat, 0),
        (ApiKey::LeaveGroup, 0),
        (ApiKey::SyncGroup, 0),
        (ApiKey::ApiVersions, 0),
        (ApiKey::CreateTopics, 2),
        (ApiKey::DeleteTopics, 1),
        (ApiKey::InitProducerId, 0),
        (ApiKey::AddPartitionsToTxn, 0),
        (ApiKey::AddOffsetsToTxn, 0),
        (ApiKey::EndTxn, 0),
        (ApiKey::TxnOffsetCommit, 0),
        (ApiKey::DescribeConfigs, 1),
    ];
    assert_eq!(MEPHISTO_APIS.len(), expected.len());
    for (api, min) in expected {
        assert_eq!(supported(api).map(|s| s.min), Some(min), "{api:?}");
    }
    assert_eq!(supported(ApiKey::DescribeGroups), None);
}

#[test]
fn modern_broker_gets_our_maximum_everywhere() {
    let negotiated = negotiate(&modern_broker()).unwrap();
    for s in MEPHISTO_APIS {
        assert_eq!(negotiated.get(s.api), Some(s.max), "{:?}", s.api);
    }
    assert_eq!(negotiated.iter().count(), MEPHISTO_APIS.len());
}

#[test]
fn negotiation_picks_the_highest_common_version() {
    let mut response = modern_broker();
    for entry in &mut response.api_keys {
        match ApiKey::try_from(entry.api_key) {
            Ok(ApiKey::Fetch) => entry.max_version = 7,
            Ok(ApiKey::Metadata) => (entry.min_version, entry.max_version) = (4, 8),
            Ok(ApiKey::JoinGroup) => entry.max_version = 3,
            _ => {}
        }
    }
    let negotiated = negotiate(&response).unwrap();
    assert_eq!(negotiated.get(ApiKey::Fetch), Some(7));
    assert_eq!(negotiated.get(ApiKey::Metadata), Some(8));
    assert_eq!(negotiated.get(ApiKey::JoinGroup), Some(3));
    assert_eq!(negotiated.get(ApiKey::Produce), Some(11));
}

#[test]
fn broker_older_than_kafka_2_1_is_refused_with_a_clear_message() {
    let mut response = modern_broker();
    for entry in &mut response.api_keys {
        if entry.api_key == ApiKey::Fetch as i16 {
            (entry.min_version, entry.max_version) = (0, 3);
        }
        if entry.api_key == ApiKey::Produce as i16 {
            (entry.min_version, entry.max_version) = (0, 2);
        }
    }
    let err = negotiate(&response).unwrap_err();
    assert_eq!(
        err,
        VersionError::Incompatible(vec![
            Incompatibility::NoCommonVersion {
                api: ApiKey::Produce,
                our_min: 3,
                our_max: 11,
                broker_min: 0,
                broker_max: 2
            },
            Incompatibility::NoCommonVersion {
                api: ApiKey::Fetch,
                our_min: 4,
                our_max: 12,
                broker_min: 0,
                broker_max: 3
            },
        ])
    );
    assert_eq!(
        err.to_string(),
        "the broker cannot be used: Produce (key 0): Mephisto speaks v3 to v11, the broker v0 to \
         v2 (brokers older than Kafka 2.1 are not supported); Fetch (key 1): Mephisto speaks v4 \
         to v12, the broker v0 to v3 (brokers older than Kafka 2.1 are not supported)"
    );
}

#[test]
fn missing_required_api_is_named() {
    let mut response = modern_broker();
    response
        .api_keys
        .retain(|e| e.api_key != ApiKey::SyncGroup as i16);
    let err = negotiate(&response).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the broker cannot be used: SyncGroup (key 14): Mephisto speaks v0 to v5, the broker does \
         not offer it"
    );
}

#[test]
fn optional_apis_are_simply_absent() {
    let mut response = modern_broker();
    response
        .api_keys
        .retain(|e| e.api_key != ApiKey::EndTxn as i16 && e.api_key != ApiKey::CreateTopics as i16);
    // A broker whose only DescribeConfigs versions are newer than ours.
    for entry in &mut response.api_keys {
        if entry.api_key == ApiKey::DescribeConfigs as i16 {
            (entry.min_version, entry.max_version) = (5, 6);
        }
    }
    let negotiated = negotiate(&response).unwrap();
    assert_eq!(negotiated.get(ApiKey::EndTxn), None);
    assert_eq!(negotiated.get(ApiKey::CreateTopics), None);
    assert_eq!(negotiated.get(ApiKey::DescribeConfigs), None);
    assert_eq!(negotiated.require(ApiKey::Fetch), Ok(12));
    let err = negotiated.require(ApiKey::EndTxn).unwrap_err();
    assert_eq!(
        err,
        VersionError::NotAvailable {
            api: ApiKey::EndTxn
        }
    );
    assert_eq!(
        err.to_string(),
        "EndTxn (key 26) is not available on this broker in a version Mephisto speaks"
    );
}

#[test]
fn broker_entries_we_do_not_know_or_that_are_inverted() {
    let mut response = modern_broker();
    response.api_keys.push(
        ApiVersion::default()
            .with_api_key(9999)
            .with_min_version(0)
            .with_max_version(1),
    );
    // An inverted range on a required API has no common version, even though 5 is in ours.
    for entry in &mut response.api_keys {
        if entry.api_key == ApiKey::Heartbeat as i16 {
            (entry.min_version, entry.max_version) = (4, 2);
        }
    }
    assert!(matches!(
        negotiate(&response),
        Err(VersionError::Incompatible(p)) if p.len() == 1
    ));
}

#[test]
fn unsupported_api_versions_version_says_what_to_retry_with() {
    // KIP-511: a broker that only knows ApiVersions v0..=2 answers our v4 request with error 35
    // and its own range.
    let answer = broker(&[(ApiKey::ApiVersions, 0, 2)]).with_error_code(35);
    assert_eq!(
        negotiate(&answer),
        Err(VersionError::RetryApiVersions { retry_with: 2 })
    );
    assert_eq!(api_versions_retry_version(&answer, 4), Some(2));
    // Retrying at 2 and getting 35 again with the same range must not loop.
    assert_eq!(api_versions_retry_version(&answer, 2), None);
    // No ApiVersions entry at all: retry at v0, like the Java client.
    let bare = ApiVersionsResponse::default().with_error_code(35);
    assert_eq!(api_versions_retry_version(&bare, 3), Some(0));
    // A broker claiming a newer range than ours: retry at our max.
    let newer = broker(&[(ApiKey::ApiVersions, 0, 9)]).with_error_code(35);
    assert_eq!(
        negotiate(&newer),
        Err(VersionError::RetryApiVersions { retry_with: 4 })
    );
    // Not an UNSUPPORTED_VERSION answer.
    assert_eq!(api_versions_retry_version(&modern_broker(), 4), None);
}

#[test]
fn other_api_versions_errors_are_reported() {
    let answer = modern_broker().with_error_code(31);
    assert_eq!(
        negotiate(&answer),
        Err(VersionError::ApiVersionsFailed { error_code: 31 })
    );
}

proptest! {
    /// Model check: for random broker ranges (possibly absent or inverted), the result equals a
    /// straightforward recomputation.
    #[test]
    fn negotiation_matches_the_model(
        ranges in prop::collection::vec(prop::option::of((0i16..20, 0i16..20)), MEPHISTO_APIS.len()),
    ) {
        let entries: Vec<_> = MEPHISTO_APIS
            .iter()
            .zip(&ranges)
            .filter_map(|(s, r)| r.map(|(min, max)| (s.api, min, max)))
            .collect();
        let response = broker(&entries);
        let expected: Vec<(ApiSupport, Option<i16>)> = MEPHISTO_APIS
            .iter()
            .zip(&ranges)
            .map(|(s, r)| {
                let common = r.and_then(|(bmin, bmax)| {
                    let (lo, hi) = (s.min.max(bmin), s.max.min(bmax));
                    (bmin <= bmax && lo <= hi).then_some(hi)
                });
                (*s, common)
            })
            .collect();
        let failing = expected.iter().filter(|(s, v)| s.required && v.is_none()).count();
        match negotiate_with(MEPHISTO_APIS, &response) {
            Ok(negotiated) => {
                prop_assert_eq!(failing, 0);
                for (s, v) in &expected {
                    prop_assert_eq!(negotiated.get(s.api), *v, "{:?}", s.api);
                }
            }
            Err(VersionError::Incompatible(problems)) => {
                prop_assert_eq!(problems.len(), failing);
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }
}
