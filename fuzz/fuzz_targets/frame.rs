//! The frame decoder on an arbitrary byte stream delivered in arbitrary pieces.
//!
//! Byte 0 picks the maximum frame size, byte 1 the delivery pattern; the rest is the stream. Checks
//! that frames come out whole and in order, that nothing is lost or invented, that `bytes_needed`
//! agrees with `decode`, and that `write_frame` round-trips every payload. Each payload is also
//! handed to the request decoder and `peek_correlation_id`, as a broker would.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use mephisto_wire::frame::{write_frame, FrameDecoder, SIZE_PREFIX_LEN};
use mephisto_wire::header::peek_correlation_id;
use mephisto_wire::messages::decode_request;

const MAX_SIZES: [usize; 8] = [0, 1, 4, 16, 255, 4096, 1 << 20, usize::MAX];

fuzz_target!(|data: &[u8]| {
    let [size_sel, pattern, stream @ ..] = data else {
        return;
    };
    let decoder = FrameDecoder::new(MAX_SIZES[usize::from(size_sel & 7)]);
    let chunk = usize::from(*pattern).max(1);

    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut consumed = 0usize;
    let mut frames = Vec::new();
    'feed: while fed < stream.len() {
        let end = (fed + chunk).min(stream.len());
        buf.put_slice(&stream[fed..end]);
        fed = end;
        loop {
            let needed = decoder.bytes_needed(&buf);
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(payload)) => {
                    assert_eq!(
                        needed,
                        Ok(0),
                        "decode produced a frame bytes_needed did not expect"
                    );
                    assert!(payload.len() <= decoder.max_frame_size());
                    assert_eq!(before - buf.len(), SIZE_PREFIX_LEN + payload.len());
                    consumed += SIZE_PREFIX_LEN + payload.len();
                    let declared = &stream[consumed - payload.len() - SIZE_PREFIX_LEN..];
                    assert_eq!(
                        &declared[SIZE_PREFIX_LEN..SIZE_PREFIX_LEN + payload.len()],
                        &payload[..]
                    );
                    frames.push(payload);
                }
                Ok(None) => {
                    let needed = needed.expect("bytes_needed errs where decode does not");
                    assert!(needed > 0);
                    assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                    break;
                }
                Err(e) => {
                    assert!(
                        needed.is_err(),
                        "decode failed ({e}) where bytes_needed did not"
                    );
                    break 'feed;
                }
            }
        }
    }
    assert!(consumed <= stream.len());

    for payload in frames {
        // Round trip through the writer.
        let mut out = BytesMut::new();
        write_frame(&mut out, &payload, decoder.max_frame_size()).expect("payload within limit");
        let again = decoder
            .decode(&mut out)
            .expect("re-decode")
            .expect("whole frame");
        assert_eq!(again, payload);
        assert!(out.is_empty());

        let _ = peek_correlation_id(&payload);
        let _ = decode_request(payload);
    }
});
