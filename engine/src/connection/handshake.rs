//! The ApiVersions exchange that opens every connection, and version negotiation.
//!
//! We ask at the highest ApiVersions version we speak. A broker that does not know it answers
//! UNSUPPORTED_VERSION with a v0 body listing its own ApiVersions range (KIP-511); we then ask
//! again at the highest version both sides speak ([`api_versions_retry_version`]). The answer
//! is negotiated against [`MEPHISTO_APIS`](mephisto_wire::versions::MEPHISTO_APIS).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use mephisto_wire::messages::decode_response;
use mephisto_wire::versions::{
    api_versions_retry_version, negotiate_with, ApiSupport, NegotiatedVersions, MEPHISTO_APIS,
};
use tokio::time::Instant;

use super::RawSender;
use crate::error::EngineError;

/// Whether an ApiVersions response frame (response header v0: a 4-byte correlation id) starts
/// its body with error code 35, UNSUPPORTED_VERSION.
fn refuses_version(payload: &[u8]) -> bool {
    payload.get(4..6) == Some(&ResponseError::UnsupportedVersion.code().to_be_bytes()[..])
}

/// At most this many ApiVersions requests per handshake (each retry is at a lower version).
const MAX_ATTEMPTS: usize = 3;

/// Runs the handshake; everything must be done by `deadline`.
pub(super) async fn run(
    raw: &RawSender,
    deadline: Instant,
    max_versions: &[(ApiKey, i16)],
) -> Result<(NegotiatedVersions, ApiVersionsResponse), EngineError> {
    // Our table, with the configured caps applied.
    let table: Vec<ApiSupport> = MEPHISTO_APIS
        .iter()
        .map(|s| {
            let cap = max_versions
                .iter()
                .find_map(|&(api, v)| (api == s.api).then_some(v));
            ApiSupport {
                max: cap.map_or(s.max, |cap| s.max.min(cap)),
                ..*s
            }
        })
        .collect();
    let mut version = table
        .iter()
        .find(|s| s.api == ApiKey::ApiVersions)
        .map_or(0, |s| s.max.max(0));
    let timeout = deadline.saturating_duration_since(Instant::now());
    for _ in 0..MAX_ATTEMPTS {
        let mut request = ApiVersionsRequest::default();
        if version >= 3 {
            request = request
                .with_client_software_name(StrBytes::from_static_str("mephisto"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        }
        let payload = raw.request(request, version, deadline, timeout).await?;
        let response = match decode_response::<ApiVersionsRequest>(payload.clone(), version) {
            Ok(decoded) => decoded.body,
            Err(_) if version > 0 && refuses_version(&payload) => {
                // UNSUPPORTED_VERSION in a body we cannot read (librdkafka's mock broker writes
                // its array count as a varint in the v0 body): ask at v0, which every broker
                // speaks, as the Java client does when it cannot find the broker's range.
                tracing::debug!(broker = %raw.broker, from = version, "unreadable ApiVersions refusal, retrying at v0");
                version = 0;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(lower) = api_versions_retry_version(&response, version) {
            tracing::debug!(broker = %raw.broker, from = version, to = lower, "retrying ApiVersions");
            version = lower;
            continue;
        }
        let versions =
            negotiate_with(&table, &response).map_err(|source| EngineError::Versions {
                broker: raw.broker.to_string(),
                source,
            })?;
        return Ok((versions, response));
    }
    Err(EngineError::Protocol {
        broker: raw.broker.to_string(),
        detail: format!("ApiVersions still unsupported after {MAX_ATTEMPTS} attempts"),
    })
}
