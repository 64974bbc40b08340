//! Arbitrary records regions inside a well-formed batch, so the fuzzer spends its time in the record
//! parser and the decompressors rather than on the batch framing and CRC.
//!
//! Layout of the input: byte 0 = attributes low byte (codec bits 0–2, timestamp type, transactional,
//! control, delete horizon), byte 1 = mode (bit 0: compress the body with the codec ourselves, so
//! arbitrary *record* bytes are reached through every codec; otherwise the body is used as the
//! already-compressed region, reaching the decompressors through the batch path; bit 1: verify the
//! CRC, which we compute correctly; bits 2–3: decompressed-size cap), byte 2 = declared record count
//! (0..=255), bytes 3..11 = base offset, then the body.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mephisto_wire::compression::{compress, Compression};
use mephisto_wire::record::{
    BatchHeader, DecodeOptions, FetchRecords, RecordBatch, BATCH_HEADER_SIZE,
};

const CAPS: [usize; 4] = [16, 4096, 64 * 1024, 1 << 20];

fuzz_target!(|data: &[u8]| {
    if data.len() < 11 {
        return;
    }
    let (head, body) = data.split_at(11);
    let attributes = i16::from(head[0]);
    let mode = head[1];
    let record_count = i32::from(head[2]);
    let base_offset = i64::from_be_bytes(head[3..11].try_into().unwrap_or_default());

    let region = match Compression::from_attributes(attributes) {
        Ok(codec) if mode & 1 != 0 && codec != Compression::None => {
            let mut out = Vec::new();
            if compress(codec, body, &mut out).is_err() {
                return;
            }
            out
        }
        _ => body.to_vec(),
    };

    let Ok(batch_length) = i32::try_from(BATCH_HEADER_SIZE - 12 + region.len()) else {
        return;
    };
    let mut header = BatchHeader {
        base_offset,
        batch_length,
        partition_leader_epoch: 7,
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta: record_count.saturating_sub(1).max(0),
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_000_999,
        producer_id: i64::from(head[0] & 0x10) - 1,
        producer_epoch: 0,
        base_sequence: 0,
        record_count,
    };
    let mut h = [0u8; BATCH_HEADER_SIZE];
    header.encode(&mut h);
    let mut batch = h.to_vec();
    batch.extend_from_slice(&region);
    header.crc = crc32c::crc32c(&batch[21..]);
    header.encode(&mut h);
    batch[..BATCH_HEADER_SIZE].copy_from_slice(&h);

    let options = DecodeOptions {
        verify_crc: mode & 2 != 0,
        max_decompressed_size: CAPS[usize::from((mode >> 2) & 3)],
        ..DecodeOptions::default()
    };
    let bytes = Bytes::from(batch);
    let parsed = RecordBatch::parse(bytes.clone(), &options);
    let Ok(parsed) = parsed else {
        // Only the codec bits (5..=7) can make this header invalid.
        assert!(
            Compression::from_attributes(attributes).is_err(),
            "valid batch rejected: {:?}",
            parsed.err()
        );
        return;
    };
    assert_eq!(parsed.header(), &header);
    assert_eq!(parsed.crc(), parsed.compute_crc());
    let _ = parsed.control_record();
    if let Ok(records) = parsed.records() {
        for r in &records {
            let Ok(r) = r else { break };
            let _ = (r.offset(), r.timestamp(), r.sequence(), r.key(), r.value());
            for h in r.headers() {
                std::hint::black_box((h.key(), h.value()));
            }
            let owned = r.to_record();
            assert_eq!(owned.value(), r.value());
        }
    }
    for r in FetchRecords::new(bytes, options, 0) {
        let Ok(r) = r else { break };
        std::hint::black_box((r.key(), r.value(), r.headers().count()));
    }
});
