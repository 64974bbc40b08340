//! Zig-zag varints (`i32`, at most 5 bytes) and varlongs (`i64`, at most 10 bytes) as the record
//! batch v2 format uses them (protobuf zig-zag encoding, little-endian base-128 groups).
//!
//! Decoding mirrors Kafka's `ByteUtils.readVarint` / `readVarlong`: a varint whose fifth byte still
//! has the continuation bit set (tenth byte for a varlong) is rejected as [`VarintError::TooLong`],
//! and surplus high bits in the last allowed byte are ignored. Decoding takes a slice and returns
//! the value and the number of bytes consumed; it never reads past the slice and never panics.

use bytes::BufMut;

/// Maximum encoded length of a varint (`i32`).
pub const MAX_VARINT_LEN: usize = 5;
/// Maximum encoded length of a varlong (`i64`).
pub const MAX_VARLONG_LEN: usize = 10;

/// Why a varint or varlong could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    /// The input ended while the continuation bit was still set.
    #[error(
        "varint truncated: input ended after {available} byte(s) with the continuation bit set"
    )]
    Truncated {
        /// Bytes that were available (all had the continuation bit set).
        available: usize,
    },
    /// The continuation bit was still set on the last byte the type allows.
    #[error("varint too long: continuation bit set on byte {max_len} (maximum {max_len} bytes)")]
    TooLong {
        /// The maximum encoded length for this type (5 for varints, 10 for varlongs).
        max_len: usize,
    },
}

/// Zig-zag encodes an `i32` into the unsigned form that is written as base-128 groups.
#[inline]
pub const fn zigzag_encode32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

/// Zig-zag decodes an unsigned `u32` into the signed value it represents.
#[inline]
pub const fn zigzag_decode32(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// Zig-zag encodes an `i64`.
#[inline]
pub const fn zigzag_encode64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Zig-zag decodes a `u64` into the signed value it represents.
#[inline]
pub const fn zigzag_decode64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Decodes a zig-zag varint from the start of `buf`, returning the value and the bytes consumed.
///
/// The one- and two-byte cases (values -8192..=8191) are inlined; longer encodings take an
/// out-of-line path.
#[inline]
pub fn decode_varint(buf: &[u8]) -> Result<(i32, usize), VarintError> {
    if let Some(&[b0, b1]) = buf.first_chunk::<2>() {
        if b0 < 0x80 {
            return Ok((zigzag_decode32(u32::from(b0)), 1));
        }
        if b1 < 0x80 {
            let v = u32::from(b0 & 0x7f) | u32::from(b1) << 7;
            return Ok((zigzag_decode32(v), 2));
        }
    } else if let Some(&b0) = buf.first() {
        if b0 < 0x80 {
            return Ok((zigzag_decode32(u32::from(b0)), 1));
        }
    }
    decode_varint_slow(buf)
}

/// The multi-byte (and error) path of [`decode_varint`].
#[inline(never)]
fn decode_varint_slow(buf: &[u8]) -> Result<(i32, usize), VarintError> {
    let mut value: u32 = 0;
    let mut shift = 0u32;
    for (i, &b) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        // Bits shifted past 32 in the fifth byte are dropped, as Java's `ByteUtils.readVarint` does.
        value |= u32::from(b & 0x7f).wrapping_shl(shift);
        if b < 0x80 {
            return Ok((zigzag_decode32(value), i + 1));
        }
        shift += 7;
    }
    if buf.len() >= MAX_VARINT_LEN {
        Err(VarintError::TooLong {
            max_len: MAX_VARINT_LEN,
        })
    } else {
        Err(VarintError::Truncated {
            available: buf.len(),
        })
    }
}

/// Decodes a zig-zag varlong from the start of `buf`, returning the value and the bytes consumed.
#[inline]
pub fn decode_varlong(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    if let Some(&[b0, b1]) = buf.first_chunk::<2>() {
        if b0 < 0x80 {
            return Ok((zigzag_decode64(u64::from(b0)), 1));
        }
        if b1 < 0x80 {
            let v = u64::from(b0 & 0x7f) | u64::from(b1) << 7;
            return Ok((zigzag_decode64(v), 2));
        }
    } else if let Some(&b0) = buf.first() {
        if b0 < 0x80 {
            return Ok((zigzag_decode64(u64::from(b0)), 1));
        }
    }
    decode_varlong_slow(buf)
}

/// The multi-byte (and error) path of [`decode_varlong`].
#[inline(never)]
fn decode_varlong_slow(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    for (i, &b) in buf.iter().take(MAX_VARLONG_LEN).enumerate() {
        value |= u64::from(b & 0x7f).wrapping_shl(shift);
        if b < 0x80 {
            return Ok((zigzag_decode64(value), i + 1));
        }
        shift += 7;
    }
    if buf.len() >= MAX_VARLONG_LEN {
        Err(VarintError::TooLong {
            max_len: MAX_VARLONG_LEN,
        })
    } else {
        Err(VarintError::Truncated {
            available: buf.len(),
        })
    }
}

/// Number of bytes [`put_varint`] writes for `v`.
#[inline]
pub const fn varint_len(v: i32) -> usize {
    let z = zigzag_encode32(v);
    // Each byte carries 7 bits: ceil(bits / 7) bytes for the index of the highest set bit
    // (`| 1` makes zero take one byte), computed as (index * 9 + 73) / 64, exact for every
    // index up to 63 (protobuf's VarintSize), with a multiply and a shift instead of a division.
    let index = 31 - (z | 1).leading_zeros() as usize;
    (index * 9 + 73) / 64
}

/// Number of bytes [`put_varlong`] writes for `v`.
#[inline]
pub const fn varlong_len(v: i64) -> usize {
    let z = zigzag_encode64(v);
    let index = 63 - (z | 1).leading_zeros() as usize;
    (index * 9 + 73) / 64
}

/// Writes the base-128 groups of `z` into `scratch`, returning the length used.
#[inline]
fn encode_groups(mut z: u64, scratch: &mut [u8; MAX_VARLONG_LEN]) -> usize {
    let mut n = 0;
    for slot in scratch.iter_mut() {
        n += 1;
        if z < 0x80 {
            *slot = z as u8;
            break;
        }
        *slot = (z as u8 & 0x7f) | 0x80;
        z >>= 7;
    }
    n
}

/// Appends `v` as a zig-zag varint to `buf` (a `Vec<u8>`, `BytesMut`, or any other `BufMut`).
#[inline]
pub fn put_varint<B: BufMut + ?Sized>(buf: &mut B, v: i32) {
    let z = zigzag_encode32(v);
    if z < 0x80 {
        buf.put_u8(z as u8);
        return;
    }
    let mut scratch = [0u8; MAX_VARLONG_LEN];
    let n = encode_groups(u64::from(z), &mut scratch);
    buf.put_slice(scratch.get(..n).unwrap_or(&[]));
}

/// Appends `v` as a zig-zag varlong to `buf`.
#[inline]
pub fn put_varlong<B: BufMut + ?Sized>(buf: &mut B, v: i64) {
    let z = zigzag_encode64(v);
    if z < 0x80 {
        buf.put_u8(z as u8);
        return;
    }
    let mut scratch = [0u8; MAX_VARLONG_LEN];
    let n = encode_groups(z, &mut scratch);
    buf.put_slice(scratch.get(..n).unwrap_or(&[]));
}

/// Appends `v` as a zig-zag varint to a `Vec<u8>` (a thin wrapper over [`put_varint`]).
#[inline]
pub fn write_varint(out: &mut Vec<u8>, v: i32) {
    put_varint(out, v);
}

/// Appends `v` as a zig-zag varlong to a `Vec<u8>` (a thin wrapper over [`put_varlong`]).
#[inline]
pub fn write_varlong(out: &mut Vec<u8>, v: i64) {
    put_varlong(out, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        // Values from the protobuf zig-zag table.
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(v, bytes) in cases {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(out, bytes, "encode {v}");
            assert_eq!(varint_len(v), bytes.len());
            assert_eq!(decode_varint(bytes), Ok((v, bytes.len())));
        }
    }
}
