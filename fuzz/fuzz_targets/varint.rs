//! Varint / varlong decoding on arbitrary bytes, checked against a straightforward reference
//! (Java's `ByteUtils.readVarint` semantics) and against the encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mephisto_wire::varint::{
    decode_varint, decode_varlong, varint_len, varlong_len, write_varint, write_varlong,
    zigzag_decode32, zigzag_decode64, zigzag_encode32, zigzag_encode64, VarintError,
    MAX_VARINT_LEN, MAX_VARLONG_LEN,
};

/// Reference decoder: base-128 little-endian groups, at most `max` bytes, zig-zag at the end.
fn reference(buf: &[u8], max: usize) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().take(max).enumerate() {
        value |= u64::from(b & 0x7f).checked_shl(7 * i as u32).unwrap_or(0);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= max {
        Err(VarintError::TooLong { max_len: max })
    } else {
        Err(VarintError::Truncated {
            available: buf.len(),
        })
    }
}

fuzz_target!(|data: &[u8]| {
    // Decode every suffix start so the fuzzer's bytes are all used as varint heads.
    for start in 0..data.len().min(64) {
        let buf = &data[start..];

        let got = decode_varint(buf);
        let want = reference(buf, MAX_VARINT_LEN).map(|(v, n)| (zigzag_decode32(v as u32), n));
        assert_eq!(got, want, "varint on {:02x?}", &buf[..buf.len().min(12)]);
        if let Ok((v, n)) = got {
            assert!((1..=MAX_VARINT_LEN).contains(&n));
            let mut enc = Vec::new();
            write_varint(&mut enc, v);
            assert_eq!(enc.len(), varint_len(v));
            assert!(enc.len() <= n);
            assert_eq!(decode_varint(&enc), Ok((v, enc.len())));
            // Canonical input re-encodes to the same bytes (a maximal-length encoding may carry
            // surplus high bits in its last byte, which decoding drops, as Java does).
            if enc.len() == n && n < MAX_VARINT_LEN {
                assert_eq!(&enc[..], &buf[..n]);
            }
        }

        let got = decode_varlong(buf);
        let want = reference(buf, MAX_VARLONG_LEN).map(|(v, n)| (zigzag_decode64(v), n));
        assert_eq!(got, want, "varlong on {:02x?}", &buf[..buf.len().min(12)]);
        if let Ok((v, n)) = got {
            assert!((1..=MAX_VARLONG_LEN).contains(&n));
            let mut enc = Vec::new();
            write_varlong(&mut enc, v);
            assert_eq!(enc.len(), varlong_len(v));
            assert!(enc.len() <= n);
            assert_eq!(decode_varlong(&enc), Ok((v, enc.len())));
            if enc.len() == n && n < MAX_VARLONG_LEN {
                assert_eq!(&enc[..], &buf[..n]);
            }
        }
    }

    // Encode → decode round trip of values taken from the input.
    for chunk in data.chunks_exact(8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            continue;
        };
        let v64 = i64::from_le_bytes(bytes);
        let v32 = v64 as i32;
        assert_eq!(zigzag_decode32(zigzag_encode32(v32)), v32);
        assert_eq!(zigzag_decode64(zigzag_encode64(v64)), v64);
        let mut enc = Vec::new();
        write_varint(&mut enc, v32);
        assert_eq!(decode_varint(&enc), Ok((v32, varint_len(v32))));
        enc.clear();
        write_varlong(&mut enc, v64);
        assert_eq!(decode_varlong(&enc), Ok((v64, varlong_len(v64))));
    }
});
