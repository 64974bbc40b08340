//! Tests for `mephisto_wire::compression`: round trips, xerial framing, zip bombs, corrupt input.

use std::io::Write;
use std::time::{Duration, Instant};

use mephisto_wire::compression::{
    compress, decompress, Compression, CompressionError, DEFAULT_MAX_DECOMPRESSED_SIZE,
    XERIAL_BLOCK_SIZE, XERIAL_HEADER, XERIAL_MAGIC,
};
use proptest::prelude::*;

const MIB: usize = 1024 * 1024;
const GIB: usize = 1024 * MIB;

fn compressed(codec: Compression, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    compress(codec, input, &mut out).expect("compress");
    out
}

/// Deterministic pseudo-random bytes (xorshift), effectively incompressible.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Compressible text-like data.
fn text(len: usize) -> Vec<u8> {
    let words = [
        "kafka ",
        "record ",
        "batch ",
        "offset ",
        "partition ",
        "{\"key\":",
        "\"value\"}, ",
    ];
    let mut v = Vec::with_capacity(len + 16);
    let mut i = 0usize;
    while v.len() < len {
        v.extend_from_slice(words[(i * 7 + i / 3) % words.len()].as_bytes());
        v.extend_from_slice(i.to_string().as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

#[test]
fn attributes_map_to_codecs() {
    for (bits, codec) in [
        (0, Compression::None),
        (1, Compression::Gzip),
        (2, Compression::Snappy),
        (3, Compression::Lz4),
        (4, Compression::Zstd),
    ] {
        assert_eq!(Compression::from_attributes(bits).unwrap(), codec);
        assert_eq!(codec.attribute_bits(), bits);
        // Higher bits (timestamp type, transactional, control, ...) are ignored.
        assert_eq!(Compression::from_attributes(bits | 0x78).unwrap(), codec);
        assert_eq!(
            Compression::from_attributes(bits | i16::MIN).unwrap(),
            codec
        );
    }
    for c in Compression::ALL {
        assert_eq!(Compression::from_attributes(c.attribute_bits()).unwrap(), c);
    }
}

#[test]
fn unknown_codec_bits() {
    for bits in 5..=7i16 {
        match Compression::from_attributes(bits | 0x10) {
            Err(CompressionError::UnknownCodec(b)) => assert_eq!(b, bits),
            other => panic!("bits {bits}: {other:?}"),
        }
    }
    let msg = Compression::from_attributes(7).unwrap_err().to_string();
    assert!(msg.contains("unknown compression codec 7"), "{msg}");
}

#[test]
fn round_trip_every_codec() {
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one byte", vec![42]),
        ("small", b"hello kafka, hello mephisto".to_vec()),
        ("1 MiB text", text(MIB)),
        ("1 MiB zeros", vec![0; MIB]),
        ("incompressible 1 MiB", noise(MIB, 0x9E37_79B9_7F4A_7C15)),
        ("odd size", text(3 * XERIAL_BLOCK_SIZE + 17)),
    ];
    for codec in Compression::ALL {
        for (name, input) in &inputs {
            let c = compressed(codec, input);
            let d = decompress(codec, &c, DEFAULT_MAX_DECOMPRESSED_SIZE)
                .unwrap_or_else(|e| panic!("{codec} {name}: {e}"));
            assert!(d == *input, "{codec} {name}: round trip differs");
            // Exactly at the cap still succeeds; one byte under fails.
            let exact = decompress(codec, &c, input.len()).unwrap();
            assert_eq!(exact.len(), input.len(), "{codec} {name}");
            if !input.is_empty() {
                match decompress(codec, &c, input.len() - 1) {
                    Err(CompressionError::TooLarge { limit }) => {
                        assert_eq!(limit, input.len() - 1)
                    }
                    other => panic!("{codec} {name}: expected TooLarge, got {other:?}"),
                }
            }
        }
    }
}

#[test]
fn compress_appends_to_existing_output() {
    for codec in Compression::ALL {
        let mut out = b"HEADER".to_vec();
        compress(codec, b"payload payload payload", &mut out).unwrap();
        assert_eq!(&out[..6], b"HEADER");
        let d = decompress(codec, &out[6..], 1024).unwrap();
        assert_eq!(d, b"payload payload payload");
    }
}

#[test]
fn compressible_data_shrinks() {
    let input = text(MIB);
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let c = compressed(codec, &input);
        assert!(c.len() < input.len() / 2, "{codec}: {} bytes", c.len());
    }
}

// ---------------------------------------------------------------- snappy framing

#[test]
fn snappy_xerial_header_bytes_exact() {
    // kafka-python: _XERIAL_V1_HEADER = (-126, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 1, 1),
    // packed as '!bccccccBii'; snappy-java SnappyCodec: MAGIC_HEADER, DEFAULT_VERSION=1,
    // MINIMUM_COMPATIBLE_VERSION=1.
    let expected: [u8; 16] = *b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
    assert_eq!(XERIAL_HEADER, expected);
    assert_eq!(XERIAL_MAGIC, expected[..8]);

    let c = compressed(Compression::Snappy, b"abc");
    assert_eq!(&c[..16], &expected);
    // One chunk: BE length, then a raw snappy block of "abc".
    let len = u32::from_be_bytes(c[16..20].try_into().unwrap()) as usize;
    assert_eq!(c.len(), 20 + len);
    assert_eq!(
        snap::raw::Decoder::new().decompress_vec(&c[20..]).unwrap(),
        b"abc"
    );

    // Empty input: the header alone.
    assert_eq!(compressed(Compression::Snappy, b""), expected);
}

#[test]
fn snappy_xerial_chunks_are_32_kib() {
    let input = text(2 * XERIAL_BLOCK_SIZE + 5);
    let c = compressed(Compression::Snappy, &input);
    let mut rest = &c[16..];
    let mut sizes = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let block = &rest[4..4 + len];
        sizes.push(snap::raw::decompress_len(block).unwrap());
        rest = &rest[4 + len..];
    }
    assert_eq!(sizes, vec![XERIAL_BLOCK_SIZE, XERIAL_BLOCK_SIZE, 5]);
}

#[test]
fn snappy_decodes_a_java_written_stream() {
    // A xerial stream as written by the Java client around a legacy v0 message "PLAINDATA"
    // (fixture from ruby-kafka's snappy codec spec).
    let stream = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x1E#\x00\x00\x19\x01\\\x17\x8B\xA7x\xB9\x00\x00\xFF\xFF\xFF\xFF\x00\x00\x00\tPLAINDATA";
    let d = decompress(Compression::Snappy, stream, 1024).unwrap();
    assert_eq!(d.len(), 35);
    assert!(d.ends_with(b"\x00\x00\x00\x09PLAINDATA"));
}

#[test]
fn snappy_accepts_raw_block() {
    let input = text(100_000);
    let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
    assert!(!raw.starts_with(&XERIAL_MAGIC));
    assert_eq!(decompress(Compression::Snappy, &raw, MIB).unwrap(), input);
    // kafka-python's test payload, raw.
    let raw = snap::raw::Encoder::new()
        .compress_vec(&b"SNAPPY".repeat(50))
        .unwrap();
    assert_eq!(
        decompress(Compression::Snappy, &raw, MIB).unwrap(),
        b"SNAPPY".repeat(50)
    );
}

#[test]
fn snappy_xerial_two_chunks_and_concatenated_streams() {
    // Same shape as kafka-python's test_snappy_decode_xerial.
    let mut enc = snap::raw::Encoder::new();
    let b1 = enc.compress_vec(&b"SNAPPY".repeat(50)).unwrap();
    let b2 = enc.compress_vec(&b"XERIAL".repeat(50)).unwrap();
    let mut stream = XERIAL_HEADER.to_vec();
    stream.extend_from_slice(&(b1.len() as i32).to_be_bytes());
    stream.extend_from_slice(&b1);
    stream.extend_from_slice(&(b2.len() as i32).to_be_bytes());
    stream.extend_from_slice(&b2);
    let mut expected = b"SNAPPY".repeat(50);
    expected.extend_from_slice(&b"XERIAL".repeat(50));
    assert_eq!(
        decompress(Compression::Snappy, &stream, MIB).unwrap(),
        expected
    );

    // snappy-java concatenates streams by repeating the header.
    let mut twice = stream.clone();
    twice.extend_from_slice(&stream);
    let mut expected2 = expected.clone();
    expected2.extend_from_slice(&expected);
    assert_eq!(
        decompress(Compression::Snappy, &twice, MIB).unwrap(),
        expected2
    );
}

// ---------------------------------------------------------------- zip bombs

fn assert_too_large(codec: Compression, bomb: &[u8], cap: usize) {
    let start = Instant::now();
    match decompress(codec, bomb, cap) {
        Err(CompressionError::TooLarge { limit }) => assert_eq!(limit, cap),
        other => panic!(
            "{codec}: expected TooLarge, got {:?}",
            other.map(|v| v.len())
        ),
    }
    let took = start.elapsed();
    // Generous (debug build, shared CI): the point is "stopped at the cap", not "inflated 1 GiB".
    assert!(
        took < Duration::from_secs(10),
        "{codec}: bomb took {took:?}"
    );
}

#[test]
fn gzip_bomb() {
    // 1 GiB of zeros: one gzip member of 1 MiB of zeros, streamed into the encoder, repeated 1024
    // times (multi-member gzip is one valid stream for RFC 1952 readers).
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 64 * 1024];
    for _ in 0..16 {
        enc.write_all(&zeros).unwrap();
    }
    let member = enc.finish().unwrap();
    let bomb = member.repeat(GIB / MIB);
    assert!(bomb.len() < 4 * MIB, "{}", bomb.len());
    assert_too_large(Compression::Gzip, &bomb, MIB);

    // A single member that inflates to 64 MiB, streamed into the encoder 64 KiB at a time.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..(64 * MIB / zeros.len()) {
        enc.write_all(&zeros).unwrap();
    }
    let single = enc.finish().unwrap();
    assert_too_large(Compression::Gzip, &single, MIB);
}

#[test]
fn snappy_bomb() {
    // Raw block declaring 1 GiB: rejected from the header, before allocating.
    let mut raw = Vec::new();
    let mut n = GIB as u64;
    while n >= 0x80 {
        raw.push((n as u8) | 0x80);
        n >>= 7;
    }
    raw.push(n as u8);
    raw.extend_from_slice(&[0x00, 0x00, 0xfe, 0x01, 0x00]);
    assert_too_large(Compression::Snappy, &raw, MIB);

    // Xerial stream of 1 GiB of zeros: 64 chunks of a raw block of 16 MiB of zeros.
    let block = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 16 * MIB])
        .unwrap();
    let mut bomb = XERIAL_HEADER.to_vec();
    for _ in 0..64 {
        bomb.extend_from_slice(&(block.len() as i32).to_be_bytes());
        bomb.extend_from_slice(&block);
    }
    assert_too_large(Compression::Snappy, &bomb, MIB);

    // Many small chunks: the running total is what counts.
    let small = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 32 * 1024])
        .unwrap();
    let mut bomb = XERIAL_HEADER.to_vec();
    for _ in 0..64 {
        bomb.extend_from_slice(&(small.len() as i32).to_be_bytes());
        bomb.extend_from_slice(&small);
    }
    assert_too_large(Compression::Snappy, &bomb, MIB);
}

#[test]
fn lz4_bomb() {
    // One LZ4 frame of 1 GiB of zeros: compress one 64 KiB block of zeros, then repeat that
    // (independent) block 16384 times inside a single frame.
    let one = compressed(Compression::Lz4, &vec![0u8; 64 * 1024]);
    // magic(4) FLG BD HC = 7 bytes; then [len:u32 LE][data]; then the 4-byte end mark.
    let header = &one[..7];
    let len = u32::from_le_bytes(one[7..11].try_into().unwrap()) as usize;
    assert_eq!(len & 0x8000_0000, 0, "block should be compressed");
    let block = &one[7..11 + len];
    assert_eq!(&one[11 + len..], &[0, 0, 0, 0]);
    let mut bomb = header.to_vec();
    for _ in 0..(GIB / (64 * 1024)) {
        bomb.extend_from_slice(block);
    }
    bomb.extend_from_slice(&[0, 0, 0, 0]);
    assert_too_large(Compression::Lz4, &bomb, MIB);
}

/// A zstd frame of `blocks` RLE blocks of 128 KiB each (no checksum, no content size).
fn zstd_rle_frame(blocks: usize, byte: u8) -> Vec<u8> {
    let mut f = 0xFD2F_B528u32.to_le_bytes().to_vec();
    f.push(0x00); // FHD: no FCS, not single segment, no checksum, no dict
    f.push(7 << 3); // window descriptor: 2^(10+7) = 128 KiB
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = ((128 * 1024u32) << 3) | (1 << 1) | last; // RLE block
        f.extend_from_slice(&header.to_le_bytes()[..3]);
        f.push(byte);
    }
    f
}

#[test]
fn zstd_bomb() {
    let frame = zstd_rle_frame(8, 7);
    assert_eq!(
        decompress(Compression::Zstd, &frame, MIB).unwrap(),
        vec![7u8; MIB]
    );

    // 1 GiB of zeros in one frame of 32 KiB.
    let bomb = zstd_rle_frame(GIB / (128 * 1024), 0);
    assert!(bomb.len() < 64 * 1024);
    assert_too_large(Compression::Zstd, &bomb, MIB);

    // 1 GiB as 1024 concatenated frames made by our encoder.
    let one = compressed(Compression::Zstd, &vec![0u8; MIB]);
    let bomb = one.repeat(1024);
    assert_too_large(Compression::Zstd, &bomb, MIB);

    // A frame that declares a content size over the cap is refused from its header.
    let mut declared = 0xFD2F_B528u32.to_le_bytes().to_vec();
    declared.push(0b1110_0000); // FCS 8 bytes, single segment
    declared.extend_from_slice(&(GIB as u64).to_le_bytes());
    declared.extend_from_slice(&[1, 0, 0]); // would-be last raw block of size 0
    assert_too_large(Compression::Zstd, &declared, MIB);
}

#[test]
fn zstd_huge_window_is_refused() {
    let mut f = 0xFD2F_B528u32.to_le_bytes().to_vec();
    f.push(0x00);
    f.push(20 << 3); // window 2^30 = 1 GiB
    f.extend_from_slice(&[1, 0, 0]);
    assert_too_large(Compression::Zstd, &f, MIB);
}

#[test]
fn none_codec_respects_cap() {
    assert_too_large(Compression::None, &[0u8; 100], 99);
    assert_eq!(
        decompress(Compression::None, &[1, 2, 3], 3).unwrap(),
        vec![1, 2, 3]
    );
}

// ---------------------------------------------------------------- multi-frame / multi-member

#[test]
fn concatenated_frames_and_members() {
    for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
        let mut both = compressed(codec, b"first ");
        both.extend_from_slice(&compressed(codec, b"second"));
        assert_eq!(
            decompress(codec, &both, 1024).unwrap(),
            b"first second",
            "{codec}"
        );
    }
    // zstd skippable frame in front is ignored.
    let mut skip = 0x184D_2A50u32.to_le_bytes().to_vec();
    skip.extend_from_slice(&3u32.to_le_bytes());
    skip.extend_from_slice(b"xyz");
    skip.extend_from_slice(&compressed(Compression::Zstd, b"data"));
    assert_eq!(decompress(Compression::Zstd, &skip, 1024).unwrap(), b"data");
}

// ---------------------------------------------------------------- corrupt input

#[test]
fn corrupt_gzip() {
    let good = compressed(Compression::Gzip, &text(10_000));
    let cases: Vec<Vec<u8>> = vec![
        b"not gzip at all".to_vec(),
        good[..good.len() / 2].to_vec(), // truncated
        {
            let mut c = good.clone();
            let n = c.len();
            c[n - 6] ^= 0xff; // CRC32 in the trailer
            c
        },
        {
            let mut c = good.clone();
            let n = c.len();
            c[n - 2] ^= 0x01; // ISIZE in the trailer
            c
        },
        {
            let mut c = good.clone();
            c[12] ^= 0x55; // deflate body
            c
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        match decompress(Compression::Gzip, c, MIB) {
            Err(CompressionError::Gzip(_)) => {}
            other => panic!("case {i}: {:?}", other.map(|v| v.len())),
        }
    }
}

#[test]
fn corrupt_snappy() {
    // Raw block: declared 5 bytes, then a copy with offset 0 (invalid).
    match decompress(Compression::Snappy, &[0x05, 0x01, 0x00], MIB) {
        Err(CompressionError::Snappy(_)) => {}
        other => panic!("{other:?}"),
    }
    // Raw block whose declared length is longer than what it encodes.
    match decompress(Compression::Snappy, &[0x0a, 0x08, b'a', b'b', b'c'], MIB) {
        Err(CompressionError::Snappy(_)) | Err(CompressionError::SnappyFraming(_)) => {}
        other => panic!("{other:?}"),
    }
    let good = compressed(Compression::Snappy, &text(100_000));
    // Truncated xerial: chunk length exceeds the input.
    match decompress(Compression::Snappy, &good[..good.len() - 10], MIB) {
        Err(CompressionError::SnappyFraming(msg)) => assert!(msg.contains("chunk length")),
        other => panic!("{:?}", other.map(|v| v.len())),
    }
    // Truncated xerial header.
    match decompress(Compression::Snappy, &XERIAL_HEADER[..12], MIB) {
        Err(CompressionError::SnappyFraming(_)) => {}
        other => panic!("{other:?}"),
    }
    // Negative chunk length.
    let mut neg = XERIAL_HEADER.to_vec();
    neg.extend_from_slice(&(-5i32).to_be_bytes());
    match decompress(Compression::Snappy, &neg, MIB) {
        Err(CompressionError::SnappyFraming(_)) => {}
        other => panic!("{other:?}"),
    }
    // Partial chunk length.
    let mut part = XERIAL_HEADER.to_vec();
    part.extend_from_slice(&[0, 0]);
    match decompress(Compression::Snappy, &part, MIB) {
        Err(CompressionError::SnappyFraming(_)) => {}
        other => panic!("{other:?}"),
    }
    // Corrupt raw block inside a valid chunk.
    let mut bad = XERIAL_HEADER.to_vec();
    bad.extend_from_slice(&3i32.to_be_bytes());
    bad.extend_from_slice(&[0x05, 0x01, 0x00]);
    match decompress(Compression::Snappy, &bad, MIB) {
        Err(CompressionError::Snappy(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn corrupt_lz4() {
    let good = compressed(Compression::Lz4, &text(200_000));
    let cases: Vec<Vec<u8>> = vec![
        b"not lz4 at all".to_vec(),
        good[..good.len() / 2].to_vec(),
        good[..3].to_vec(),
        {
            let mut c = good.clone();
            c[6] ^= 0xff; // header checksum
            c
        },
        {
            let mut c = good.clone();
            c[4] |= 0x02; // reserved FLG bit
            c
        },
        {
            let mut c = good.clone();
            // Block length larger than the frame's block maximum.
            c[7..11].copy_from_slice(&0x00FF_FFFFu32.to_le_bytes());
            c
        },
        {
            // A block whose match offset points before the start of output.
            let mut c = good[..7].to_vec();
            c.extend_from_slice(&4u32.to_le_bytes());
            c.extend_from_slice(&[0x0f, 0x00, 0x10, 0x00]);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        match decompress(Compression::Lz4, c, MIB) {
            Err(CompressionError::Lz4(_)) => {}
            other => panic!("case {i}: {:?}", other.map(|v| v.len())),
        }
    }
}

#[test]
fn corrupt_zstd() {
    let good = compressed(Compression::Zstd, &text(200_000));
    let cases: Vec<Vec<u8>> = vec![
        b"not zstd at all".to_vec(),
        good[..good.len() / 2].to_vec(),
        good[..3].to_vec(),
        {
            let mut c = good.clone();
            let n = c.len();
            c[n - 1] ^= 0xff; // content checksum
            c
        },
        {
            let mut c = good.clone();
            c.extend_from_slice(b"trailing garbage");
            c
        },
        Vec::new(),
    ];
    for (i, c) in cases.iter().enumerate() {
        match decompress(Compression::Zstd, c, MIB) {
            Err(CompressionError::Zstd(_)) => {}
            other => panic!("case {i}: {:?}", other.map(|v| v.len())),
        }
    }
}

#[test]
fn empty_input_is_the_codecs_error() {
    assert!(matches!(
        decompress(Compression::Gzip, b"", MIB),
        Err(CompressionError::Gzip(_))
    ));
    assert!(matches!(
        decompress(Compression::Snappy, b"", MIB),
        Err(CompressionError::SnappyFraming(_))
    ));
    assert!(matches!(
        decompress(Compression::Lz4, b"", MIB),
        Err(CompressionError::Lz4(_))
    ));
    assert!(matches!(
        decompress(Compression::Zstd, b"", MIB),
        Err(CompressionError::Zstd(_))
    ));
    assert_eq!(
        decompress(Compression::None, b"", 0).unwrap(),
        Vec::<u8>::new()
    );
}

#[test]
fn errors_have_clear_messages() {
    let e = decompress(Compression::Zstd, b"nope", 10)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("zstd: "), "{e}");
    let e = decompress(Compression::Lz4, b"nope", 10)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("lz4: "), "{e}");
    let e = decompress(Compression::Gzip, b"nope", 10)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("gzip: "), "{e}");
    let e = decompress(Compression::Snappy, &[0x05, 0x01, 0x00], 10)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("snappy: "), "{e}");
    let e = decompress(Compression::None, b"12345", 4)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "decompressed data exceeds the limit of 4 bytes");
}

// ---------------------------------------------------------------- properties

/// Valid-looking prefixes so arbitrary tails reach past the magic checks.
fn prefixes(codec: Compression) -> Vec<Vec<u8>> {
    match codec {
        Compression::None => vec![Vec::new()],
        Compression::Gzip => vec![Vec::new(), vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff]],
        Compression::Snappy => vec![Vec::new(), XERIAL_HEADER.to_vec()],
        Compression::Lz4 => vec![Vec::new(), compressed(Compression::Lz4, b"")[..7].to_vec()],
        Compression::Zstd => vec![Vec::new(), vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048),
                                   cap in 0usize..(256 * 1024)) {
        for codec in Compression::ALL {
            for prefix in prefixes(codec) {
                let mut input = prefix;
                input.extend_from_slice(&data);
                if let Ok(out) = decompress(codec, &input, cap) {
                    prop_assert!(out.len() <= cap);
                }
            }
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_arbitrary(data in proptest::collection::vec(any::<u8>(), 0..70_000)) {
        for codec in Compression::ALL {
            let c = compressed(codec, &data);
            prop_assert_eq!(&decompress(codec, &c, data.len()).unwrap(), &data);
        }
    }

    #[test]
    fn mutated_valid_streams_never_panic(seed in any::<u64>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let input = text(5000 + (seed % 5000) as usize);
        for codec in Compression::ALL {
            let mut c = compressed(codec, &input);
            for (at, x) in &flips {
                let n = c.len();
                c[at % n] ^= x;
            }
            let _ = decompress(codec, &c, 64 * 1024);
        }
    }
}

// ---------------------------------------------------------------- real clients' batches

/// Decompresses the records region of every batch in every golden fixture (`wire/tests/golden/*.bin`,
/// written by kafka-python and librdkafka, some read back through a broker) and checks that the output
/// is exactly `recordsCount` length-prefixed records. This is the interop check for each codec's
/// framing: librdkafka sends raw snappy, kafka-python sends xerial snappy, both send LZ4 frames.
#[test]
fn golden_batches_from_real_clients_decompress() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut seen = std::collections::HashMap::<Compression, usize>::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("bin") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut rest = &bytes[..];
        while rest.len() >= 61 {
            let batch_len = i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
            let (batch, after) = rest.split_at(12 + batch_len);
            let attributes = i16::from_be_bytes(batch[21..23].try_into().unwrap());
            let count = i32::from_be_bytes(batch[57..61].try_into().unwrap());
            let codec = Compression::from_attributes(attributes).unwrap();
            let body = decompress(codec, &batch[61..], DEFAULT_MAX_DECOMPRESSED_SIZE)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            // Walk the records by their length prefixes: they must cover the body exactly.
            let mut at = 0usize;
            for _ in 0..count {
                let (len, n) = mephisto_wire::varint::decode_varint(&body[at..]).unwrap();
                at += n + usize::try_from(len).unwrap();
            }
            assert_eq!(
                at,
                body.len(),
                "{name}: records do not cover the decompressed body"
            );
            *seen.entry(codec).or_default() += 1;
            rest = after;
        }
        assert!(rest.is_empty(), "{name}: trailing bytes");
    }
    // Once the fixtures are present, every codec must have been exercised.
    if !seen.is_empty() {
        for codec in Compression::ALL {
            assert!(seen.contains_key(&codec), "no golden batch with {codec}");
        }
    }
}
