//! Zig-zag varint and varlong encoding: round trips, lengths, boundaries and error cases.

use bytes::BytesMut;
use mephisto_wire::varint::{
    decode_varint, decode_varlong, put_varint, put_varlong, varint_len, varlong_len, write_varint,
    write_varlong, VarintError, MAX_VARINT_LEN, MAX_VARLONG_LEN,
};
use proptest::prelude::*;

fn enc32(v: i32) -> Vec<u8> {
    let mut out = Vec::new();
    write_varint(&mut out, v);
    out
}

fn enc64(v: i64) -> Vec<u8> {
    let mut out = Vec::new();
    write_varlong(&mut out, v);
    out
}

#[test]
fn varint_boundaries_round_trip() {
    let values = [
        0,
        1,
        -1,
        63,
        -64,
        64,
        -65,
        8191,
        -8192,
        8192,
        i32::MAX,
        i32::MIN,
        i32::MAX - 1,
        i32::MIN + 1,
    ];
    for v in values {
        let bytes = enc32(v);
        assert_eq!(bytes.len(), varint_len(v), "len of {v}");
        assert!(bytes.len() <= MAX_VARINT_LEN);
        assert_eq!(decode_varint(&bytes), Ok((v, bytes.len())), "decode {v}");
    }
    assert_eq!(enc32(63).len(), 1);
    assert_eq!(enc32(64).len(), 2);
    assert_eq!(enc32(-64).len(), 1);
    assert_eq!(enc32(-65).len(), 2);
    assert_eq!(enc32(i32::MAX).len(), 5);
    assert_eq!(enc32(i32::MIN).len(), 5);
}

/// The length formula at every width: both sides of each power of two of the zig-zag value.
#[test]
fn lengths_at_every_bit_width() {
    for bit in 0..32u32 {
        for z in [
            1u32 << bit,
            (1u32 << bit) - 1,
            (1u32 << bit) | ((1u32 << bit) - 1),
        ] {
            let v = ((z >> 1) as i32) ^ -((z & 1) as i32);
            assert_eq!(varint_len(v), enc32(v).len(), "zig-zag {z:#x}");
        }
    }
    for bit in 0..64u32 {
        for z in [
            1u64 << bit,
            (1u64 << bit) - 1,
            (1u64 << bit) | ((1u64 << bit) - 1),
        ] {
            let v = ((z >> 1) as i64) ^ -((z & 1) as i64);
            assert_eq!(varlong_len(v), enc64(v).len(), "zig-zag {z:#x}");
        }
    }
}

#[test]
fn varlong_boundaries_round_trip() {
    let values = [
        0,
        1,
        -1,
        63,
        -64,
        64,
        i64::from(i32::MAX),
        i64::from(i32::MIN),
        i64::MAX,
        i64::MIN,
        i64::MAX - 1,
        i64::MIN + 1,
    ];
    for v in values {
        let bytes = enc64(v);
        assert_eq!(bytes.len(), varlong_len(v), "len of {v}");
        assert!(bytes.len() <= MAX_VARLONG_LEN);
        assert_eq!(decode_varlong(&bytes), Ok((v, bytes.len())), "decode {v}");
    }
    assert_eq!(enc64(i64::MAX).len(), 10);
    assert_eq!(enc64(i64::MIN).len(), 10);
}

#[test]
fn known_wire_bytes() {
    // Java ByteUtils.writeVarint(300) = zigzag 600 = 0xd8 0x04.
    assert_eq!(enc32(300), [0xd8, 0x04]);
    assert_eq!(enc32(-1), [0x01]);
    assert_eq!(
        enc64(i64::MIN),
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
    );
}

#[test]
fn decode_ignores_trailing_bytes() {
    assert_eq!(decode_varint(&[0x02, 0xff, 0xff]), Ok((1, 1)));
    assert_eq!(decode_varlong(&[0xd8, 0x04, 0x80]), Ok((300, 2)));
}

#[test]
fn empty_input_is_truncated() {
    assert_eq!(
        decode_varint(&[]),
        Err(VarintError::Truncated { available: 0 })
    );
    assert_eq!(
        decode_varlong(&[]),
        Err(VarintError::Truncated { available: 0 })
    );
}

#[test]
fn truncated_multibyte() {
    assert_eq!(
        decode_varint(&[0x80]),
        Err(VarintError::Truncated { available: 1 })
    );
    assert_eq!(
        decode_varint(&[0xff, 0xff, 0xff, 0xff]),
        Err(VarintError::Truncated { available: 4 })
    );
    assert_eq!(
        decode_varlong(&[0xff; 9]),
        Err(VarintError::Truncated { available: 9 })
    );
}

#[test]
fn too_long_is_distinct_from_truncated() {
    // Five bytes all with the continuation bit: a sixth byte would be needed.
    assert_eq!(
        decode_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
        Err(VarintError::TooLong { max_len: 5 })
    );
    assert_eq!(
        decode_varint(&[0xff; 5]),
        Err(VarintError::TooLong { max_len: 5 })
    );
    assert_eq!(
        decode_varlong(&[0x80; 11]),
        Err(VarintError::TooLong { max_len: 10 })
    );
    assert_eq!(
        decode_varlong(&[0xff; 10]),
        Err(VarintError::TooLong { max_len: 10 })
    );
}

#[test]
fn non_canonical_encodings_decode_like_java() {
    // Padded zero (0x80 0x00) is accepted by Java's readVarint; so are we.
    assert_eq!(decode_varint(&[0x80, 0x00]), Ok((0, 2)));
    // High bits of the fifth byte beyond 32 bits are dropped, as Java does.
    assert_eq!(
        decode_varint(&[0xfe, 0xff, 0xff, 0xff, 0x7f]),
        Ok((i32::MAX, 5))
    );
}

#[test]
fn put_into_bytes_mut() {
    let mut buf = BytesMut::new();
    put_varint(&mut buf, -300);
    put_varlong(&mut buf, 1 << 40);
    let (a, n) = decode_varint(&buf).unwrap();
    let (b, m) = decode_varlong(&buf[n..]).unwrap();
    assert_eq!((a, b), (-300, 1 << 40));
    assert_eq!(n + m, buf.len());
}

proptest! {
    #[test]
    fn varint_round_trip(v in any::<i32>(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
        let mut bytes = enc32(v);
        let len = bytes.len();
        prop_assert_eq!(len, varint_len(v));
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(decode_varint(&bytes), Ok((v, len)));
        // Every strict prefix is truncated.
        for cut in 0..len {
            prop_assert_eq!(decode_varint(&bytes[..cut]), Err(VarintError::Truncated { available: cut }));
        }
    }

    #[test]
    fn varlong_round_trip(v in any::<i64>(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
        let mut bytes = enc64(v);
        let len = bytes.len();
        prop_assert_eq!(len, varlong_len(v));
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(decode_varlong(&bytes), Ok((v, len)));
        for cut in 0..len {
            prop_assert_eq!(decode_varlong(&bytes[..cut]), Err(VarintError::Truncated { available: cut }));
        }
    }

    #[test]
    fn varint_matches_varlong_for_i32(v in any::<i32>()) {
        // A varint and a varlong of the same value have the same bytes.
        prop_assert_eq!(enc32(v), enc64(i64::from(v)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
        if let Ok((_, n)) = decode_varint(&bytes) {
            prop_assert!((1..=5).contains(&n) && n <= bytes.len());
        }
        if let Ok((_, n)) = decode_varlong(&bytes) {
            prop_assert!((1..=10).contains(&n) && n <= bytes.len());
        }
    }
}
