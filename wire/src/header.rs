//! Request and response headers: which header version goes with which API and version, encoding
//! and decoding them through `kafka-protocol`'s [`RequestHeader`] / [`ResponseHeader`], and
//! correlation ids (allocation, and reading one from a response before its type is known).
//!
//! Header versions in use since Kafka 4.0: requests use v1 (`api_key, api_version,
//! correlation_id, client_id`) or v2 (v1 plus tagged fields) for flexible API versions; responses
//! use v0 (`correlation_id`) or v1 (v0 plus tagged fields). ApiVersions responses always use
//! v0, whatever the request version (KIP-511), because a client must be able to read the
//! broker's answer before it knows which versions the broker speaks.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::guard::{self, Int32Lengths};

/// What can go wrong with a header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The frame is shorter than the fixed part of the header.
    #[error("frame of {len} bytes is too short for a {what} (needs at least {needed})")]
    Truncated {
        /// Which header was being read.
        what: &'static str,
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The API key is not one `kafka-protocol` knows.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// `kafka-protocol` rejected the header bytes.
    #[error("malformed {what} (v{version}): {message}")]
    Malformed {
        /// Which header was being read.
        what: &'static str,
        /// Header version used.
        version: i16,
        /// The decoder's explanation.
        message: String,
    },
    /// `kafka-protocol` refused to encode the header (e.g. a client id longer than 32767 bytes).
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// Which header was being written.
        what: &'static str,
        /// The encoder's explanation.
        message: String,
    },
}

/// Request header version (1 or 2) for `api_key` at `api_version`.
///
/// Versions outside the API's range get the header of the nearest flexible/non-flexible side,
/// as `kafka-protocol` computes it; callers reject such versions separately.
pub fn request_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    api_key.request_header_version(api_version)
}

/// Response header version (0 or 1) for `api_key` at `api_version`.
///
/// ApiVersions always answers with v0 (KIP-511), which this function enforces itself rather than
/// relying on the generated table.
pub fn response_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(api_version)
    }
}

/// Appends a request header for `api_key` v`api_version` to `buf`, choosing v1 or v2.
pub fn encode_request_header(
    buf: &mut BytesMut,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    client_id: Option<&StrBytes>,
) -> Result<(), HeaderError> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(api_version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.cloned());
    header
        .encode(buf, request_header_version(api_key, api_version))
        .map_err(|e| HeaderError::Encode {
            what: "request header",
            message: format!("{e:#}"),
        })
}

/// Reads a request header from the front of `payload` (a frame without its size prefix),
/// leaving `payload` at the start of the body.
///
/// The API key and version are read first to pick the header version; an unknown API key is an
/// error (the body could not be interpreted anyway).
pub fn decode_request_header(payload: &mut Bytes) -> Result<RequestHeader, HeaderError> {
    const FIXED: usize = 8;
    let Some(fixed) = payload.first_chunk::<FIXED>() else {
        return Err(HeaderError::Truncated {
            what: "request header",
            len: payload.len(),
            needed: FIXED,
        });
    };
    let raw_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let api_version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|()| HeaderError::UnknownApiKey(raw_key))?;
    let version = request_header_version(api_key, api_version);
    guard::decode_prefix::<RequestHeader>(payload, version, Int32Lengths::Absent).map_err(
        |failure| HeaderError::Malformed {
            what: "request header",
            version,
            message: failure.to_string(),
        },
    )
}

/// Appends a response header for a response to `api_key` v`api_version` to `buf`.
pub fn encode_response_header(
    buf: &mut BytesMut,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
) -> Result<(), HeaderError> {
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(buf, response_header_version(api_key, api_version))
        .map_err(|e| HeaderError::Encode {
            what: "response header",
            message: format!("{e:#}"),
        })
}

/// Reads the response header of a response to `api_key` v`api_version` from the front of
/// `payload`, leaving `payload` at the start of the body.
pub fn decode_response_header(
    payload: &mut Bytes,
    api_key: ApiKey,
    api_version: i16,
) -> Result<ResponseHeader, HeaderError> {
    let version = response_header_version(api_key, api_version);
    guard::decode_prefix::<ResponseHeader>(payload, version, Int32Lengths::Absent).map_err(
        |failure| HeaderError::Malformed {
            what: "response header",
            version,
            message: failure.to_string(),
        },
    )
}

/// Reads the correlation id from the first 4 bytes of a response frame (without its size
/// prefix), before the response type is known. Every response header version starts with it.
pub fn peek_correlation_id(payload: &[u8]) -> Result<i32, HeaderError> {
    match payload.first_chunk::<4>() {
        Some(bytes) => Ok(i32::from_be_bytes(*bytes)),
        None => Err(HeaderError::Truncated {
            what: "response header",
            len: payload.len(),
            needed: 4,
        }),
    }
}

/// Hands out correlation ids for one connection: 0, 1, 2, … up to `i32::MAX`, then 0 again.
///
/// Ids stay non-negative so they are easy to tell apart from sentinel values in logs. Wrapping is
/// harmless as long as fewer than 2^31 requests are in flight on one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorrelationIds {
    next: i32,
}

impl CorrelationIds {
    /// An allocator whose first id is 0.
    pub const fn new() -> Self {
        Self { next: 0 }
    }

    /// An allocator whose first id is `first` (negative values start at 0).
    pub const fn starting_at(first: i32) -> Self {
        Self {
            next: if first < 0 { 0 } else { first },
        }
    }

    /// Returns the next id and advances, wrapping from `i32::MAX` back to 0.
    #[allow(clippy::should_implement_trait)] // not an iterator: it never ends
    pub fn next(&mut self) -> i32 {
        let id = self.next;
        self.next = if id == i32::MAX { 0 } else { id + 1 };
        id
    }

    /// The id the next call to [`next`](Self::next) will return.
    pub const fn peek(&self) -> i32 {
        self.next
    }
}
