//! Decoding through `kafka-protocol` without trusting wire lengths.
//!
//! # The hazard
//! `kafka-protocol` 0.18 decodes arrays with `Vec::with_capacity(n)` where `n` comes straight from
//! the wire (an `int32` for classic arrays, an unsigned varint for compact arrays). Nine hostile
//! bytes (a Metadata v9 response whose broker count is `0xFFFF_FFFF`) ask the allocator for about
//! 400 GB, and Rust *aborts the process* when an allocation fails; `catch_unwind` cannot help.
//!
//! # The guard
//! Everything is decoded through [`GuardBuf`], a [`Buf`] that watches the two reads an array
//! count can come from. `kafka-protocol` reads an `int32` with `try_get_i32` and every varint
//! byte with `try_get_u8` (the only other user of `try_get_u8` is `bool`), so:
//!
//! * **Varints** (compact array/string/bytes lengths, tagged-field counts, tags and sizes): before
//!   each `try_get_u8` the guard decodes the varint that would start there, exactly as
//!   `kafka-protocol` does (at most 5 bytes, `u32` arithmetic). If its value is larger than the
//!   bytes after it plus [`LENGTH_SLACK`], the read fails. A valid message never contains such a
//!   varint: lengths and counts must fit in what follows, and tags are small numbers. Continuation
//!   bytes see a shorter varint ending at the same place, and a `bool` is `0` or `1`, so neither
//!   can trip the check on valid input. (The one exception is a 5-byte varint whose last byte
//!   still has its continuation bit set, which Java rejects as malformed anyway.)
//! * **`int32`s** cannot be judged alone: an array count and a data field (say a fetch session
//!   id) look the same. The guard *clamps* any positive value above `remaining + LENGTH_SLACK`
//!   down to that bound and notes that it did. A clamped array count or `bytes` length still
//!   exceeds what is left, so that decode fails exactly where the real one would have failed,
//!   but with a bounded allocation. A clamped data field does not steer the decoder
//!   (`kafka-protocol`'s control flow depends only on the version, lengths, counts, tags and
//!   `int8` null markers), so if the clamped pass succeeds, every clamped value was data, the
//!   real decode follows the same path with the same counts, and a second, plain pass yields the
//!   true values. Most messages contain no such `int32` and are decoded once.
//!
//!   Flexible versions (KIP-482) encode every length and count as a varint, so there the guard
//!   leaves `int32`s alone and never needs a second pass ([`Int32Lengths::Absent`]). Checked
//!   statically for `kafka-protocol` 0.18: none of its 150 `int32` array/bytes length decodes is
//!   reachable at a flexible version of its message. This matters because Fetch responses carry
//!   a random session id: at v12+ they are decoded once.
//!
//! This relies on two facts about `kafka-protocol` 0.18, both checked: which `Buf` methods its
//! primitive decoders call, and that no array reachable in any message version has elements
//! that decode from zero bytes (were there one, a huge count would not fail on the clamped pass).
//! The tests in `wire/tests/messages.rs` feed hostile counts of both kinds and assert a bounded
//! largest allocation, so a `kafka-protocol` upgrade that breaks either fact fails those tests
//! (by assertion or by aborting the test process) instead of shipping.
//!
//! One deliberate strictness follows: an unknown tagged field whose *tag number* exceeds the
//! bytes after it plus [`LENGTH_SLACK`] is refused as hostile. Kafka numbers tags from 0 per
//! struct; no real message comes near 4096.
//!
//! # What is still allowed
//! A count that fits the remaining bytes is honoured, so one array can reserve up to
//! `(remaining bytes + LENGTH_SLACK) × size_of::<element>()` before the decoder finds out the
//! elements are not there (the largest element struct in `kafka-protocol` 0.18 is 344 bytes,
//! most are under 100). That memory is reserved but never touched, is freed when the decode
//! fails, and is bounded by the frame size the engine accepts; a smaller cap for responses that
//! are never large (everything but Fetch) bounds it further.

use std::fmt;
use std::ops::Range;

use bytes::{Buf, Bytes};
use kafka_protocol::protocol::buf::ByteBuf;
use kafka_protocol::protocol::Decodable;

/// How far a declared length or count may exceed the bytes that follow it before the guard
/// steps in. Keeps small data values near the end of a message from causing a second pass, and
/// tag numbers (small integers, assigned from 0 upwards) from tripping the varint check, while
/// bounding what a tiny hostile message can make a decoder reserve (4096 elements).
pub(crate) const LENGTH_SLACK: usize = 4096;

/// Why a guarded decode failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeFailure {
    /// A varint length or count claimed more than could possibly follow it.
    Hostile {
        /// Offset of the varint from the start of the decoded region.
        offset: usize,
        /// The value it claimed.
        claimed: u32,
        /// Bytes that actually followed it.
        remaining: usize,
    },
    /// `kafka-protocol` rejected the bytes; its message.
    Malformed(String),
}

impl fmt::Display for DecodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hostile {
                offset,
                claimed,
                remaining,
            } => write!(
                f,
                "length or count {claimed} at byte {offset} exceeds the {remaining} bytes that \
                 follow it"
            ),
            Self::Malformed(message) => f.write_str(message),
        }
    }
}

/// Whether the encoding being decoded can contain `int32` lengths and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Int32Lengths {
    /// Non-flexible encodings: classic arrays and `bytes` carry `int32` lengths.
    Possible,
    /// Flexible encodings and headers: every length is a varint.
    Absent,
}

/// Decodes a `T` at `version` from the front of `buf` and advances `buf` past it.
///
/// On error `buf` is left unchanged. See the module docs for why this never allocates from an
/// unchecked wire length.
pub(crate) fn decode_prefix<T: Decodable>(
    buf: &mut Bytes,
    version: i16,
    int32_lengths: Int32Lengths,
) -> Result<T, DecodeFailure> {
    let mut probe = GuardBuf::new(buf.clone(), int32_lengths == Int32Lengths::Possible);
    let result = T::decode(&mut probe, version);
    if let Some(hazard) = probe.tripped {
        return Err(hazard);
    }
    let value = result.map_err(malformed)?;
    if !probe.clamped {
        *buf = probe.inner;
        return Ok(value);
    }
    // Some int32 was clamped and the decode still succeeded, so every clamped value was data and
    // the real decode takes the same path with the same (already bounded) counts.
    drop(value);
    let mut rest = buf.clone();
    let value = T::decode(&mut rest, version).map_err(malformed)?;
    *buf = rest;
    Ok(value)
}

fn malformed(error: impl fmt::Display) -> DecodeFailure {
    DecodeFailure::Malformed(format!("{error:#}").trim_end().to_owned())
}

/// A [`Bytes`]-backed buffer that refuses impossible varint lengths and clamps large `int32`s.
#[derive(Debug)]
pub(crate) struct GuardBuf {
    inner: Bytes,
    start_len: usize,
    /// Whether `int32`s may be lengths and so must be clamped.
    clamp_int32: bool,
    /// Set when an `int32` was clamped; the result then needs a second, plain pass.
    clamped: bool,
    /// Set when a varint was refused; the decode error is then ours, not `kafka-protocol`'s.
    tripped: Option<DecodeFailure>,
}

impl GuardBuf {
    fn new(inner: Bytes, clamp_int32: bool) -> Self {
        let start_len = inner.len();
        Self {
            inner,
            start_len,
            clamp_int32,
            clamped: false,
            tripped: None,
        }
    }

    fn limit(&self, after: usize) -> usize {
        after.saturating_add(LENGTH_SLACK)
    }
}

/// Decodes the unsigned varint at the start of `bytes` the way `kafka-protocol` does: at most 5
/// bytes, stopping at the first byte below `0x80`, bits beyond 32 dropped. Returns the value and
/// its length, or `None` if `bytes` ends first (the real read then fails on its own).
fn peek_varint(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for (i, &b) in bytes.iter().take(5).enumerate() {
        value |= u32::from(b & 0x7f) << (7 * i);
        if b < 0x80 || i == 4 {
            return Some((value, i + 1));
        }
    }
    None
}

impl Buf for GuardBuf {
    fn remaining(&self) -> usize {
        self.inner.len()
    }

    fn chunk(&self) -> &[u8] {
        &self.inner
    }

    fn advance(&mut self, cnt: usize) {
        // `Buf` callers check `remaining` first; clamp anyway so a misuse cannot panic.
        self.inner.advance(cnt.min(self.inner.len()));
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        self.inner.split_to(len.min(self.inner.len()))
    }

    fn try_get_u8(&mut self) -> Result<u8, bytes::TryGetError> {
        if let Some((value, len)) = peek_varint(&self.inner) {
            let after = self.inner.len() - len;
            if value as usize > self.limit(after) {
                let failure = DecodeFailure::Hostile {
                    offset: self.start_len - self.inner.len(),
                    claimed: value,
                    remaining: after,
                };
                self.tripped.get_or_insert(failure);
                return Err(bytes::TryGetError {
                    requested: value as usize,
                    available: after,
                });
            }
        }
        self.inner.try_get_u8()
    }

    fn try_get_i32(&mut self) -> Result<i32, bytes::TryGetError> {
        let value = self.inner.try_get_i32()?;
        if !self.clamp_int32 {
            return Ok(value);
        }
        let limit = self.limit(self.inner.len());
        match usize::try_from(value) {
            Ok(v) if v > limit => {
                self.clamped = true;
                // limit < v <= i32::MAX, so the conversion cannot fail.
                Ok(i32::try_from(limit).unwrap_or(value))
            }
            _ => Ok(value),
        }
    }
}

impl ByteBuf for GuardBuf {
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes {
        let end = r.end.min(self.inner.len());
        self.inner.slice(r.start.min(end)..end)
    }

    fn get_bytes(&mut self, size: usize) -> Bytes {
        self.inner.split_to(size.min(self.inner.len()))
    }
}
