//! Whole Kafka messages: a header plus a body from `kafka-protocol`, encoded into a caller-owned
//! [`BytesMut`] or decoded from a frame payload, for both directions (client: encode requests,
//! decode responses; embedded broker and fuzzing: decode requests, encode responses).
//!
//! This module owns the rules around the body codecs:
//! - the header version is chosen from the API and version (see [`crate::header`]);
//! - a version outside the message's range is an [`MessageError::UnsupportedVersion`], checked
//!   before anything is encoded or decoded;
//! - decoding never trusts a wire length (see the `guard` submodule) and never panics;
//! - **trailing bytes are an error.** Kafka extends flexible versions through tagged fields,
//!   which the decoder reads and keeps, and bumps the version for anything else, so bytes left
//!   after a complete body mean the two sides disagree about the version or the stream is
//!   corrupt. Failing loudly beats acting on a misread message. (Consumer-protocol payloads
//!   are different: they are versioned by their own prefix and do tolerate trailing bytes, see
//!   [`crate::consumer_protocol`].) The one exception is on the broker side:
//!   [`decode_request_kind_prefix`] leaves bytes after a request body to its caller, because
//!   Kafka's broker ignores them and clients rely on it (librdkafka 2.12 sends Metadata v12
//!   requests with three extra bytes). Responses are always decoded strictly.
//! - an ApiVersions response that fails to decode at the requested version but starts with
//!   error code 35 (UNSUPPORTED_VERSION) is decoded again as v0, because that is how a broker
//!   answers a version it does not know (KIP-511). [`DecodedResponse::version`] tells which.

mod apis;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{self as m, ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, Message, Request, StrBytes, VersionRange};

use crate::frame::{self, FrameError};
use crate::guard::{self, DecodeFailure, Int32Lengths};
use crate::header::{self, HeaderError};
use apis::for_every_api;

/// Which side of an exchange a message belongs to, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to broker.
    Request,
    /// Broker to client.
    Response,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Request => "request",
            Self::Response => "response",
        })
    }
}

/// What can go wrong while encoding or decoding a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The header could not be read or written.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The frame around the message could not be written.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The API key is not one `kafka-protocol` knows.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// The version is outside what the message type supports.
    #[error("{api:?} {direction} v{version} is not supported (supported: v{min} to v{max})")]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// Request or response.
        direction: Direction,
        /// The version asked for.
        version: i16,
        /// Lowest supported version.
        min: i16,
        /// Highest supported version.
        max: i16,
    },
    /// `kafka-protocol` refused to encode the message, typically because a field is set that
    /// does not exist at the chosen version.
    #[error("cannot encode {api:?} {direction} v{version}: {message}")]
    Encode {
        /// The API.
        api: ApiKey,
        /// Request or response.
        direction: Direction,
        /// The version used.
        version: i16,
        /// The encoder's explanation.
        message: String,
    },
    /// The body is truncated or otherwise not a valid encoding.
    #[error("malformed {api:?} {direction} v{version}: {message}")]
    Malformed {
        /// The API.
        api: ApiKey,
        /// Request or response.
        direction: Direction,
        /// The version used.
        version: i16,
        /// The decoder's explanation.
        message: String,
    },
    /// A length or count in the body claims more bytes than the body has left; refused before
    /// anything was reserved for it.
    #[error(
        "malformed {api:?} {direction} v{version}: length or count {claimed} at byte {offset} of \
         the body exceeds the {remaining} bytes that follow it"
    )]
    HostileLength {
        /// The API.
        api: ApiKey,
        /// Request or response.
        direction: Direction,
        /// The version used.
        version: i16,
        /// Offset of the length from the start of the body.
        offset: usize,
        /// The length or count it claimed.
        claimed: u32,
        /// Bytes that actually followed it.
        remaining: usize,
    },
    /// The body decoded but bytes were left over (see the module docs for why this is an error).
    #[error("{api:?} {direction} v{version} has {trailing} unexpected trailing bytes")]
    TrailingBytes {
        /// The API.
        api: ApiKey,
        /// Request or response.
        direction: Direction,
        /// The version used.
        version: i16,
        /// How many bytes were left.
        trailing: usize,
    },
    /// A response arrived with a different correlation id than the request it should answer.
    #[error("response correlation id {actual} does not match the expected {expected}")]
    CorrelationMismatch {
        /// The id of the request.
        expected: i32,
        /// The id in the response.
        actual: i32,
    },
    /// A `RequestKind` / `ResponseKind` variant this crate does not know (added to
    /// `kafka-protocol` after 0.18).
    #[error("this {0} kind is not supported by mephisto-wire")]
    UnknownKind(Direction),
}

/// A decoded response with the correlation id from its header.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedResponse<T> {
    /// Correlation id from the response header.
    pub correlation_id: i32,
    /// Version the body was decoded with: the requested one, or 0 for an ApiVersions response
    /// that fell back to v0 (see the module docs).
    pub version: i16,
    /// The response body.
    pub body: T,
}

/// A decoded request: its header (API key, version, correlation id, client id) and body.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// The API, already validated.
    pub api_key: ApiKey,
    /// The full request header.
    pub header: RequestHeader,
    /// The request body.
    pub body: RequestKind,
}

/// Checks that a response answers the request with correlation id `expected`.
pub fn check_correlation_id(expected: i32, actual: i32) -> Result<(), MessageError> {
    if expected == actual {
        Ok(())
    } else {
        Err(MessageError::CorrelationMismatch { expected, actual })
    }
}

// ---------------------------------------------------------------------------------------------
// Requests, client side.

/// Appends a request (header + body, no size prefix) to `buf`.
///
/// The header version follows from `R` and `version`. On error nothing is appended.
pub fn encode_request<R: Request>(
    buf: &mut BytesMut,
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<&StrBytes>,
) -> Result<(), MessageError> {
    let api = api_key(R::KEY)?;
    check_version(api, Direction::Request, version, R::VERSIONS)?;
    encode_message(buf, api, Direction::Request, request, version, |buf| {
        header::encode_request_header(buf, api, version, correlation_id, client_id)
    })
}

/// Appends a request as one whole frame (size prefix + header + body) to `buf`.
///
/// Fails without appending anything if the frame would exceed `max_frame_size`.
pub fn encode_request_frame<R: Request>(
    buf: &mut BytesMut,
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<&StrBytes>,
    max_frame_size: usize,
) -> Result<(), MessageError> {
    framed(buf, max_frame_size, |buf| {
        encode_request(buf, request, version, correlation_id, client_id)
    })
}

// ---------------------------------------------------------------------------------------------
// Responses, client side.

/// Decodes the response to an `R` request sent at `version` from a frame payload (the bytes
/// after the size prefix, as [`FrameDecoder::decode`](crate::frame::FrameDecoder::decode)
/// returns them).
///
/// The correlation id is returned, not checked; use [`check_correlation_id`] or
/// [`peek_correlation_id`](crate::header::peek_correlation_id) to match it to the request.
pub fn decode_response<R: Request>(
    payload: Bytes,
    version: i16,
) -> Result<DecodedResponse<R::Response>, MessageError> {
    let api = api_key(R::KEY)?;
    check_version(
        api,
        Direction::Response,
        version,
        <R::Response as Message>::VERSIONS,
    )?;
    let mut body = payload;
    let header = header::decode_response_header(&mut body, api, version)?;
    let (body, version) = decode_response_body::<R::Response>(api, version, body)?;
    Ok(DecodedResponse {
        correlation_id: header.correlation_id,
        version,
        body,
    })
}

/// Decodes a response payload (header + body) to a request with API `api_key` sent at
/// `version`, for callers that only know the API at run time (e.g. from an in-flight table).
pub fn decode_response_payload(
    api_key: ApiKey,
    version: i16,
    payload: Bytes,
) -> Result<DecodedResponse<ResponseKind>, MessageError> {
    // Version first, so an unsupported version is reported as such, not as a header problem.
    let range = message_versions(api_key, Direction::Response);
    check_version(api_key, Direction::Response, version, range)?;
    let mut body = payload;
    let header = header::decode_response_header(&mut body, api_key, version)?;
    let (body, version) = decode_response_kind_versioned(api_key, version, body)?;
    Ok(DecodedResponse {
        correlation_id: header.correlation_id,
        version,
        body,
    })
}

/// Decodes a response body (no header) of API `api_key` at `version`.
///
/// Works for every API `kafka-protocol` 0.18 knows; this is the entry point for fuzzing.
pub fn decode_response_kind(
    api_key: ApiKey,
    version: i16,
    body: Bytes,
) -> Result<ResponseKind, MessageError> {
    decode_response_kind_versioned(api_key, version, body).map(|(kind, _)| kind)
}

// ---------------------------------------------------------------------------------------------
// Requests and responses, broker side.

/// Decodes a whole request payload (header + body, no size prefix).
///
/// A broker that must answer even undecodable requests (e.g. an ApiVersions request at a version
/// it does not know, which KIP-511 answers with a v0 error response) should call
/// [`decode_request_header`](crate::header::decode_request_header) and [`decode_request_kind`]
/// separately.
pub fn decode_request(payload: Bytes) -> Result<DecodedRequest, MessageError> {
    let mut body = payload;
    let header = header::decode_request_header(&mut body)?;
    let api_key = api_key(header.request_api_key)?;
    let body = decode_request_kind(api_key, header.request_api_version, body)?;
    Ok(DecodedRequest {
        api_key,
        header,
        body,
    })
}

/// Decodes a request body (no header) of API `api_key` at `version`.
pub fn decode_request_kind(
    api_key: ApiKey,
    version: i16,
    body: Bytes,
) -> Result<RequestKind, MessageError> {
    macro_rules! dispatch {
        ($($api:ident => $req:ident,)*) => {
            match api_key {
                $(ApiKey::$api => decode_body::<m::$req>(api_key, Direction::Request, version, body)
                    .map(RequestKind::$api),)*
            }
        };
    }
    for_every_api!(dispatch)
}

/// Decodes a request body (no header) of API `api_key` at `version` from the front of `body`,
/// and leaves whatever follows it in `body`: a broker's decode, tolerant of trailing bytes as
/// Kafka's broker is. Everything else is checked as in [`decode_request_kind`].
pub fn decode_request_kind_prefix(
    api_key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<RequestKind, MessageError> {
    macro_rules! dispatch {
        ($($api:ident => $req:ident,)*) => {
            match api_key {
                $(ApiKey::$api => {
                    decode_body_prefix::<m::$req>(api_key, Direction::Request, version, body)
                        .map(RequestKind::$api)
                })*
            }
        };
    }
    for_every_api!(dispatch)
}

/// Appends the response (header + body, no size prefix) to an `R` request to `buf`.
///
/// On error nothing is appended.
pub fn encode_response<R: Request>(
    buf: &mut BytesMut,
    response: &R::Response,
    version: i16,
    correlation_id: i32,
) -> Result<(), MessageError> {
    encode_response_parts(buf, api_key(R::KEY)?, response, version, correlation_id)
}

/// Appends a response to `buf` as one whole frame (size prefix + header + body).
///
/// Fails without appending anything if the frame would exceed `max_frame_size`.
pub fn encode_response_frame<R: Request>(
    buf: &mut BytesMut,
    response: &R::Response,
    version: i16,
    correlation_id: i32,
    max_frame_size: usize,
) -> Result<(), MessageError> {
    framed(buf, max_frame_size, |buf| {
        encode_response::<R>(buf, response, version, correlation_id)
    })
}

/// Appends an untyped response (header + body, no size prefix) to `buf`; the API follows from
/// the variant. On error nothing is appended.
pub fn encode_response_kind(
    buf: &mut BytesMut,
    response: &ResponseKind,
    version: i16,
    correlation_id: i32,
) -> Result<(), MessageError> {
    macro_rules! dispatch {
        ($($api:ident => $req:ident,)*) => {
            match response {
                $(ResponseKind::$api(r) => {
                    encode_response_parts(buf, ApiKey::$api, r, version, correlation_id)
                })*
                _ => Err(MessageError::UnknownKind(Direction::Response)),
            }
        };
    }
    for_every_api!(dispatch)
}

/// Appends an untyped request (header + body, no size prefix) to `buf`; the API follows from
/// the variant. On error nothing is appended.
pub fn encode_request_kind(
    buf: &mut BytesMut,
    request: &RequestKind,
    version: i16,
    correlation_id: i32,
    client_id: Option<&StrBytes>,
) -> Result<(), MessageError> {
    macro_rules! dispatch {
        ($($api:ident => $req:ident,)*) => {
            match request {
                $(RequestKind::$api(r) => {
                    encode_request(buf, r, version, correlation_id, client_id)
                })*
                _ => Err(MessageError::UnknownKind(Direction::Request)),
            }
        };
    }
    for_every_api!(dispatch)
}

/// The versions `kafka-protocol` 0.18 can encode and decode for `api_key` in `direction`.
///
/// Request and response ranges can differ (e.g. OffsetCommit requests stop at v9 while responses
/// go to v10).
pub fn message_versions(api_key: ApiKey, direction: Direction) -> VersionRange {
    macro_rules! dispatch {
        ($($api:ident => $req:ident,)*) => {
            match (api_key, direction) {
                $(
                    (ApiKey::$api, Direction::Request) => <m::$req as Message>::VERSIONS,
                    (ApiKey::$api, Direction::Response) => {
                        <<m::$req as Request>::Response as Message>::VERSIONS
                    }
                )*
            }
        };
    }
    for_every_api!(dispatch)
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing.

fn api_key(raw: i16) -> Result<ApiKey, MessageError> {
    ApiKey::try_from(raw).map_err(|()| MessageError::UnknownApiKey(raw))
}

fn check_version(
    api: ApiKey,
    direction: Direction,
    version: i16,
    range: VersionRange,
) -> Result<(), MessageError> {
    if (range.min..=range.max).contains(&version) {
        Ok(())
    } else {
        Err(MessageError::UnsupportedVersion {
            api,
            direction,
            version,
            min: range.min,
            max: range.max,
        })
    }
}

fn encode_response_parts<T: Encodable + Message>(
    buf: &mut BytesMut,
    api: ApiKey,
    response: &T,
    version: i16,
    correlation_id: i32,
) -> Result<(), MessageError> {
    check_version(api, Direction::Response, version, T::VERSIONS)?;
    encode_message(buf, api, Direction::Response, response, version, |buf| {
        header::encode_response_header(buf, api, version, correlation_id)
    })
}

/// Writes a header then a body, reserving their exact size first; on error `buf` is restored.
fn encode_message<T: Encodable>(
    buf: &mut BytesMut,
    api: ApiKey,
    direction: Direction,
    body: &T,
    version: i16,
    write_header: impl FnOnce(&mut BytesMut) -> Result<(), HeaderError>,
) -> Result<(), MessageError> {
    let encode_error = |e: &dyn std::fmt::Display| MessageError::Encode {
        api,
        direction,
        version,
        message: format!("{e:#}").trim_end().to_owned(),
    };
    let start = buf.len();
    // The header is a few dozen bytes; reserving the body's exact size avoids regrowth.
    let size = body.compute_size(version).map_err(|e| encode_error(&e))?;
    buf.reserve(size + 64);
    let result = write_header(buf)
        .map_err(MessageError::from)
        .and_then(|()| body.encode(buf, version).map_err(|e| encode_error(&e)));
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

/// Runs `encode` between a size prefix and its patch; on error `buf` is restored.
fn framed(
    buf: &mut BytesMut,
    max_frame_size: usize,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), MessageError>,
) -> Result<(), MessageError> {
    let before = buf.len();
    let start = frame::begin_frame(buf);
    if let Err(e) = encode(buf) {
        buf.truncate(before);
        return Err(e);
    }
    frame::finish_frame(buf, start, max_frame_size)?;
    Ok(())
}

/// Decodes a whole body: version check, guarded decode, no trailing bytes.
fn decode_body<T: Decodable + Message>(
    api: ApiKey,
    direction: Direction,
    version: i16,
    body: Bytes,
) -> Result<T, MessageError> {
    let mut rest = body;
    let value = decode_body_prefix::<T>(api, direction, version, &mut rest)?;
    if !rest.is_empty() {
        return Err(MessageError::TrailingBytes {
            api,
            direction,
            version,
            trailing: rest.len(),
        });
    }
    Ok(value)
}

/// Decodes a body from the front of `rest` (version check, guarded decode) and leaves what
/// follows it in `rest`.
fn decode_body_prefix<T: Decodable + Message>(
    api: ApiKey,
    direction: Direction,
    version: i16,
    rest: &mut Bytes,
) -> Result<T, MessageError> {
    check_version(api, direction, version, T::VERSIONS)?;
    // A body is flexible exactly when its request uses header v2 (ApiVersions responses keep
    // header v0 but still have flexible bodies from v3, like their requests).
    let int32_lengths = if header::request_header_version(api, version) >= 2 {
        Int32Lengths::Absent
    } else {
        Int32Lengths::Possible
    };
    guard::decode_prefix::<T>(rest, version, int32_lengths).map_err(|failure| match failure {
        DecodeFailure::Hostile {
            offset,
            claimed,
            remaining,
        } => MessageError::HostileLength {
            api,
            direction,
            version,
            offset,
            claimed,
            remaining,
        },
        DecodeFailure::Malformed(message) => MessageError::Malformed {
            api,
            direction,
            version,
            message,
        },
    })
}

/// [`decode_body`] for responses, with the ApiVersions v0 fallback. Returns the version used.
fn decode_response_body<T: Decodable + Message>(
    api: ApiKey,
    version: i16,
    body: Bytes,
) -> Result<(T, i16), MessageError> {
    match decode_body::<T>(api, Direction::Response, version, body.clone()) {
        Ok(value) => Ok((value, version)),
        Err(error) if is_api_versions_fallback(api, version, &body, &error) => {
            decode_body::<T>(api, Direction::Response, 0, body)
                .map(|value| (value, 0))
                .map_err(|_| error)
        }
        Err(error) => Err(error),
    }
}

/// KIP-511: a broker answers an ApiVersions request at a version it does not know with a v0
/// body whose error code (the first field in every version) is UNSUPPORTED_VERSION.
fn is_api_versions_fallback(api: ApiKey, version: i16, body: &[u8], error: &MessageError) -> bool {
    api == ApiKey::ApiVersions
        && version > 0
        && !matches!(error, MessageError::UnsupportedVersion { .. })
        && body.first_chunk::<2>() == Some(&ResponseError::UnsupportedVersion.code().to_be_bytes())
}

fn decode_response_kind_versioned(
    api_key: ApiKey,
    version: i16,
    body: Bytes,
) -> Result<(ResponseKind, i16), MessageError> {
    macro_rules! dispatch {
        ($($api:ident => $req:ident,)*) => {
            match api_key {
                $(ApiKey::$api => decode_response_body::<<m::$req as Request>::Response>(
                    api_key, version, body,
                )
                .map(|(r, v)| (ResponseKind::$api(r), v)),)*
            }
        };
    }
    for_every_api!(dispatch)
}
