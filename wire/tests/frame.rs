//! Tests for `mephisto_wire::frame`: round trips through arbitrary read splits, limits checked
//! before any reservation, zero-copy splitting, and the encoder's in-place size patch.

use bytes::{BufMut, BytesMut};
use mephisto_wire::frame::{
    begin_frame, finish_frame, write_frame, FrameDecoder, FrameError, DEFAULT_MAX_FRAME_SIZE,
    SIZE_PREFIX_LEN,
};
use proptest::prelude::*;

/// Feeds `wire` to a decoder in chunks of the given sizes, like a socket would, and collects the
/// frames. Checks `bytes_needed` against what `decode` does at every step.
fn decode_in_chunks(decoder: FrameDecoder, wire: &[u8], chunks: &[usize]) -> Vec<Vec<u8>> {
    let mut read_buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut offset = 0;
    let mut chunk_sizes = chunks.iter().copied().cycle();
    loop {
        // Drain every complete frame.
        loop {
            let needed = decoder.bytes_needed(&read_buf).unwrap();
            match decoder.decode(&mut read_buf).unwrap() {
                Some(frame) => {
                    assert_eq!(needed, 0, "a frame came out while bytes were still needed");
                    frames.push(frame.to_vec());
                }
                None => {
                    assert!(needed > 0, "nothing came out although nothing was needed");
                    assert!(needed <= decoder.max_frame_size() + SIZE_PREFIX_LEN);
                    break;
                }
            }
        }
        if offset == wire.len() {
            break;
        }
        let n = chunk_sizes
            .next()
            .unwrap_or(1)
            .clamp(1, wire.len() - offset);
        read_buf.extend_from_slice(&wire[offset..offset + n]);
        offset += n;
    }
    assert!(read_buf.is_empty(), "bytes left over after the last frame");
    frames
}

proptest! {
    #[test]
    fn frames_round_trip_through_any_read_split(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        chunks in prop::collection::vec(1usize..64, 1..8),
    ) {
        let mut wire = BytesMut::new();
        for p in &payloads {
            write_frame(&mut wire, p, DEFAULT_MAX_FRAME_SIZE).unwrap();
        }
        let expected_len: usize = payloads.iter().map(|p| p.len() + SIZE_PREFIX_LEN).sum();
        prop_assert_eq!(wire.len(), expected_len);
        let frames = decode_in_chunks(FrameDecoder::default(), &wire, &chunks);
        prop_assert_eq!(frames, payloads);
    }

    #[test]
    fn begin_finish_matches_write_frame(
        prefix in prop::collection::vec(any::<u8>(), 0..16),
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut a = BytesMut::from(&prefix[..]);
        write_frame(&mut a, &payload, DEFAULT_MAX_FRAME_SIZE).unwrap();
        let mut b = BytesMut::from(&prefix[..]);
        let start = begin_frame(&mut b);
        b.put_slice(&payload);
        prop_assert_eq!(finish_frame(&mut b, start, DEFAULT_MAX_FRAME_SIZE).unwrap(), payload.len());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn any_prefix_is_judged_before_reserving(prefix in any::<[u8; 4]>(), max in 0usize..1 << 20) {
        let decoder = FrameDecoder::new(max);
        let mut buf = BytesMut::with_capacity(8);
        buf.put_slice(&prefix);
        let capacity = buf.capacity();
        let declared = i32::from_be_bytes(prefix);
        match decoder.decode(&mut buf) {
            Err(FrameError::NegativeSize { size }) => prop_assert!(size < 0 && size == declared),
            Err(FrameError::TooLarge { size, max: m }) => {
                prop_assert!(size > max && m == max && size as i64 == declared as i64)
            }
            Ok(Some(frame)) => prop_assert!(declared == 0 && frame.is_empty()),
            Ok(None) => {
                prop_assert!(declared > 0 && declared as usize <= max);
                prop_assert_eq!(decoder.bytes_needed(&buf).unwrap(), declared as usize);
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
        prop_assert_eq!(buf.capacity(), capacity, "the decoder must never reserve");
    }
}

#[test]
fn declared_size_beyond_the_cap_fails_on_a_four_byte_buffer() {
    // 0x7FFF_FFFF is the largest size a prefix can declare (2 GiB - 1).
    let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
    let capacity = buf.capacity();
    let decoder = FrameDecoder::default();
    let expected = FrameError::TooLarge {
        size: 0x7fff_ffff,
        max: DEFAULT_MAX_FRAME_SIZE,
    };
    assert_eq!(decoder.bytes_needed(&buf), Err(expected.clone()));
    assert_eq!(decoder.decode(&mut buf), Err(expected));
    assert_eq!(buf.capacity(), capacity);
    assert_eq!(buf.len(), 4, "nothing consumed on error");
}

#[test]
fn four_gib_read_as_unsigned_is_a_negative_size() {
    // A peer (or a bug) writing 4 GiB - 1 as an unsigned size: Kafka sizes are int32, so this is
    // -1, rejected at once without waiting for the "payload".
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0x00][..]);
    let capacity = buf.capacity();
    let err = FrameDecoder::default().decode(&mut buf).unwrap_err();
    assert_eq!(err, FrameError::NegativeSize { size: -1 });
    assert_eq!(
        err.to_string(),
        "frame size prefix is negative (-1); the stream is corrupt or not Kafka"
    );
    assert_eq!(buf.capacity(), capacity);
}

#[test]
fn negative_size_is_rejected() {
    let mut buf = BytesMut::new();
    buf.put_i32(i32::MIN);
    assert_eq!(
        FrameDecoder::default().decode(&mut buf),
        Err(FrameError::NegativeSize { size: i32::MIN })
    );
    assert_eq!(
        FrameDecoder::default().bytes_needed(&buf),
        Err(FrameError::NegativeSize { size: i32::MIN })
    );
}

#[test]
fn custom_cap_is_inclusive() {
    let decoder = FrameDecoder::new(10);
    let mut ok = BytesMut::new();
    write_frame(&mut ok, &[7; 10], 10).unwrap();
    assert_eq!(decoder.decode(&mut ok).unwrap().unwrap().len(), 10);

    let mut too_big = BytesMut::new();
    too_big.put_i32(11);
    assert_eq!(
        decoder.decode(&mut too_big),
        Err(FrameError::TooLarge { size: 11, max: 10 })
    );
}

#[test]
fn partial_prefix_needs_the_rest_of_the_prefix() {
    let decoder = FrameDecoder::default();
    for len in 0..4 {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 9][..len]);
        assert_eq!(decoder.bytes_needed(&buf).unwrap(), 4 - len);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), len);
    }
    let mut buf = BytesMut::from(&[0u8, 0, 0, 9, 1, 2][..]);
    assert_eq!(decoder.bytes_needed(&buf).unwrap(), 7);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
}

#[test]
fn frames_are_split_off_without_copying() {
    let mut buf = BytesMut::new();
    write_frame(&mut buf, b"hello", 100).unwrap();
    write_frame(&mut buf, b"world!", 100).unwrap();
    let base = buf.as_ptr();
    let decoder = FrameDecoder::default();
    let first = decoder.decode(&mut buf).unwrap().unwrap();
    let second = decoder.decode(&mut buf).unwrap().unwrap();
    assert_eq!(&first[..], b"hello");
    assert_eq!(&second[..], b"world!");
    // Same allocation, right after each size prefix.
    assert_eq!(first.as_ptr(), base.wrapping_add(4));
    assert_eq!(second.as_ptr(), base.wrapping_add(4 + 5 + 4));
}

#[test]
fn oversized_outgoing_frame_leaves_the_buffer_as_it_was() {
    let mut buf = BytesMut::from(&b"earlier frame"[..]);
    let start = begin_frame(&mut buf);
    buf.put_slice(&[0; 11]);
    assert_eq!(
        finish_frame(&mut buf, start, 10),
        Err(FrameError::TooLarge { size: 11, max: 10 })
    );
    assert_eq!(&buf[..], b"earlier frame");

    assert_eq!(
        write_frame(&mut buf, &[0; 11], 10),
        Err(FrameError::TooLarge { size: 11, max: 10 })
    );
    assert_eq!(&buf[..], b"earlier frame");
}

#[test]
fn finish_frame_on_a_foreign_buffer_is_an_error_not_a_panic() {
    let mut long = BytesMut::from(&[0u8; 32][..]);
    let start = begin_frame(&mut long);
    let mut short = BytesMut::from(&[0u8; 8][..]);
    assert_eq!(
        finish_frame(&mut short, start, 100),
        Err(FrameError::StartOutOfRange { start: 32, len: 8 })
    );
}

#[test]
fn size_is_big_endian() {
    let mut buf = BytesMut::new();
    write_frame(&mut buf, &[0xaa; 0x0102], DEFAULT_MAX_FRAME_SIZE).unwrap();
    assert_eq!(&buf[..4], &[0, 0, 1, 2]);
}
