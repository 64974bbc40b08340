//! Faust's request/reply wire format: the `Faust-Ag-ReplyTo` / `Faust-Ag-CorrelationId`
//! headers that `agent.ask()` sets (Faust's default, `use_reply_headers=True`), the
//! `ReqRepResponse` record the replying agent sends to the reply topic, and the older
//! `ReqRepRequest` envelope.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Header carrying the reply topic of an `ask` (Faust: `Faust-Ag-ReplyTo`).
pub const REPLY_TO_HEADER: &str = "Faust-Ag-ReplyTo";
/// Header carrying the correlation id of an `ask` (Faust: `Faust-Ag-CorrelationId`).
pub const CORRELATION_ID_HEADER: &str = "Faust-Ag-CorrelationId";

/// Where a reply goes: the reply topic and the correlation id, from the reply headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    /// The reply topic (`Faust-Ag-ReplyTo`).
    pub topic: String,
    /// The correlation id (`Faust-Ag-CorrelationId`).
    pub correlation_id: String,
}

/// Builds the two reply headers of an `ask`.
pub fn reply_headers(reply_to: &str, correlation_id: &str) -> Vec<(String, Option<Bytes>)> {
    vec![
        (
            REPLY_TO_HEADER.to_string(),
            Some(Bytes::copy_from_slice(reply_to.as_bytes())),
        ),
        (
            CORRELATION_ID_HEADER.to_string(),
            Some(Bytes::copy_from_slice(correlation_id.as_bytes())),
        ),
    ]
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
