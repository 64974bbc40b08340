//! Kafka wire protocol for Mephisto, with no I/O and no async runtime.
//!
//! # Layout
//! - [`varint`]: zig-zag varints and varlongs as record batches use them.
//! - [`frame`]: the 4-byte size prefix, with a maximum frame size checked before any allocation.
//! - [`header`]: request and response headers, chosen by API and version.
//! - `guard`: decoding through `kafka-protocol` without trusting lengths read off the wire
//!   (headers, messages and consumer-protocol payloads all decode through it).
//! - [`messages`]: request encoding and response decoding through the `kafka-protocol` crate.
//! - [`versions`]: the APIs we implement and version negotiation against a broker's ApiVersions.
//! - [`compression`]: gzip, snappy, lz4 and zstd in pure Rust, with a cap on decompressed size.
//! - [`record`]: the zero-copy record batch v2 decoder and the batch encoder.
//! - [`consumer_protocol`]: the subscription and assignment payloads of consumer groups.
//!
//! No two top-level modules import each other: `guard` and `varint` are leaves, and the
//! others use them and `frame`/`header` below `messages`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod compression;
pub mod consumer_protocol;
pub mod frame;
pub(crate) mod guard;
pub mod header;
pub mod messages;
pub mod record;
pub mod varint;
pub mod versions;
