//! Every codec's decompressor on arbitrary bytes, with small caps; plus compress → decompress round
//! trips. Byte 0 picks the codec (low 3 bits; 5..=7 exercise `from_attributes`' error) and the cap
//! (high bits); the rest is the compressed input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mephisto_wire::compression::{compress, decompress, Compression, CompressionError};

const CAPS: [usize; 8] = [0, 1, 7, 100, 4096, 65_536, 300_000, 1 << 20];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let codec = match Compression::from_attributes(i16::from(sel & 0x07)) {
        Ok(c) => c,
        Err(CompressionError::UnknownCodec(bits)) => {
            assert!((5..=7).contains(&bits));
            return;
        }
        Err(e) => panic!("from_attributes returned {e:?}"),
    };
    let cap = CAPS[usize::from(sel >> 5)];

    match decompress(codec, input, cap) {
        Ok(out) => {
            assert!(
                out.len() <= cap,
                "{codec}: {} bytes over cap {cap}",
                out.len()
            );
            // The cap is exact: the same input with cap = len succeeds identically, one less fails.
            let again =
                decompress(codec, input, out.len()).expect("same input, cap = output length");
            assert_eq!(again, out);
            if !out.is_empty() {
                match decompress(codec, input, out.len() - 1) {
                    Err(CompressionError::TooLarge { limit }) => assert_eq!(limit, out.len() - 1),
                    other => panic!("{codec}: cap len-1 gave {:?}", other.map(|v| v.len())),
                }
            }
        }
        Err(CompressionError::TooLarge { limit }) => assert_eq!(limit, cap),
        Err(CompressionError::UnknownCodec(_)) => panic!("UnknownCodec from decompress"),
        Err(_) => {}
    }

    // Round trip: our own output always decodes back, within an exact cap.
    let mut packed = Vec::new();
    compress(codec, input, &mut packed).expect("compress never fails on slices");
    let back = decompress(codec, &packed, input.len()).expect("round trip");
    assert!(back == input, "{codec}: round trip differs");
});
