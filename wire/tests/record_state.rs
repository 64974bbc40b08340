//! [`BatchState`], the encoder over a caller's buffer: records appended one at a time (from a
//! caller's own [`RecordFields`] type) and sealed in place or compressed decode back through
//! [`RecordBatch`] to what was appended, are byte-identical to [`BatchEncoder`]'s batches, and
//! the sizes it predicts are exact ([`BatchState::record_size`]) or bounds
//! ([`record_size_bound`]). [`restamp_producer`] rewrites the producer fields and keeps the
//! batch valid.

use bytes::Bytes;
use mephisto_wire::compression::Compression;
use mephisto_wire::record::{
    record_size_bound, restamp_producer, BatchEncoder, BatchSpec, BatchState, DecodeOptions,
    EncodeError, NewHeader, NewRecord, RecordBatch, RecordFields, TimestampType, BATCH_HEADER_SIZE,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// A record as an application might hold it: owned fields, headers as pairs.
#[derive(Debug, Clone)]
struct OwnedRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

impl RecordFields for OwnedRecord {
    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    fn timestamp(&self) -> i64 {
        self.timestamp
    }

    fn headers(&self) -> impl Iterator<Item = NewHeader<'_>> {
        self.headers.iter().map(|(k, v)| NewHeader {
            key: k,
            value: v.as_deref(),
        })
    }
}

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

fn bytes_opt(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        4 => vec(any::<u8>(), 0..max).prop_map(Some),
    ]
}

fn owned_record() -> impl Strategy<Value = OwnedRecord> {
    (
        bytes_opt(40),
        bytes_opt(300),
        vec(("[a-z0-9é-]{0,10}", bytes_opt(60)), 0..4),
        prop_oneof![
            any::<i64>(),
            1_600_000_000_000i64..1_800_000_000_000,
            Just(-1i64)
        ],
    )
        .prop_map(|(key, value, headers, timestamp)| OwnedRecord {
            key,
            value,
            headers,
            timestamp,
        })
}

fn spec() -> impl Strategy<Value = BatchSpec> {
    (
        any::<i64>(),
        codec(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(-1i64), any::<i64>()],
        any::<i16>(),
        prop_oneof![Just(-1i32), 0..i32::MAX],
    )
        .prop_map(
            |(base_offset, compression, log_append, transactional, pid, epoch, seq)| BatchSpec {
                base_offset,
                compression,
                timestamp_type: if log_append {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                },
                transactional,
                producer_id: pid,
                producer_epoch: epoch,
                base_sequence: seq,
                ..BatchSpec::default()
            },
        )
}

/// The same batch from [`BatchEncoder`].
fn with_encoder(spec: &BatchSpec, records: &[OwnedRecord]) -> Vec<u8> {
    let headers: Vec<Vec<NewHeader<'_>>> = records
        .iter()
        .map(|r| RecordFields::headers(r).collect())
        .collect();
    let new: Vec<NewRecord<'_>> = records
        .iter()
        .zip(&headers)
        .map(|(r, h)| {
            NewRecord::new(r.key.as_deref(), r.value.as_deref(), r.timestamp).with_headers(h)
        })
        .collect();
    let mut out = Vec::new();
    BatchEncoder::new().encode(spec, &new, &mut out).unwrap();
    out
}

/// Checks the decoded `batch` against `spec` and `records`.
fn check(
    batch: &RecordBatch,
    spec: &BatchSpec,
    records: &[OwnedRecord],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(batch.base_offset(), spec.base_offset);
    prop_assert_eq!(batch.compression(), spec.compression);
    prop_assert_eq!(batch.timestamp_type(), spec.timestamp_type);
    prop_assert_eq!(batch.is_transactional(), spec.transactional);
    prop_assert!(!batch.is_control());
    prop_assert_eq!(batch.producer_id(), spec.producer_id);
    prop_assert_eq!(batch.producer_epoch(), spec.producer_epoch);
    prop_assert_eq!(batch.base_sequence(), spec.base_sequence);
    prop_assert_eq!(batch.record_count() as usize, records.len());
    prop_assert_eq!(batch.crc(), batch.compute_crc());
    let n = records.len() as i32;
    prop_assert_eq!(batch.last_offset_delta(), (n - 1).max(0));
    let max_ts = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    prop_assert_eq!(
        batch.base_timestamp(),
        records.first().map_or(-1, |r| r.timestamp)
    );
    prop_assert_eq!(batch.max_timestamp(), max_ts);
    let decoded = batch.records().unwrap();
    let mut count = 0;
    for (i, (item, want)) in decoded.iter().zip(records).enumerate() {
        let r = item.unwrap();
        prop_assert_eq!(r.offset_delta(), i as i32);
        if spec.timestamp_type == TimestampType::CreateTime {
            prop_assert_eq!(r.timestamp(), want.timestamp);
        }
        prop_assert_eq!(r.key(), want.key.as_deref());
        prop_assert_eq!(r.value(), want.value.as_deref());
        let headers: Vec<(String, Option<Vec<u8>>)> = r
            .headers()
            .map(|h| {
                (
                    h.key_str().unwrap().to_owned(),
                    h.value().map(<[u8]>::to_vec),
                )
            })
            .collect();
        prop_assert_eq!(&headers, &want.headers);
        count += 1;
    }
    prop_assert_eq!(count, records.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Records appended one by one (`append_with` making the room when told the size, or
    /// `append` after `record_size`) into a buffer the encoder never reallocates, then sealed
    /// in place (uncompressed) or compressed behind existing bytes: the batch decodes to the
    /// records and equals `BatchEncoder`'s.
    #[test]
    fn state_round_trip(
        spec in spec(),
        records in vec(owned_record(), 0..30),
        prefix in vec(any::<u8>(), 0..8),
    ) {
        let mut state = BatchState::new();
        // No buffer until the first record: `append_with` makes it, as a producer does.
        let mut buf = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let size = state.record_size(r).unwrap();
            prop_assert!(size <= record_size_bound(r).unwrap());
            if i % 2 == 0 {
                let mut prepared = None;
                let delta = state.append_with(&mut buf, r, |out, n| {
                    if out.capacity() == 0 {
                        *out = Vec::with_capacity(BATCH_HEADER_SIZE + n);
                        BatchState::write_header_space(out);
                    } else {
                        out.reserve_exact(n);
                    }
                    prepared = Some((n, out.len(), out.capacity()));
                });
                prop_assert_eq!(delta.unwrap(), i as i32);
                let Some((n, len, cap)) = prepared else {
                    return Err(TestCaseError::fail("prepare was not called"));
                };
                prop_assert_eq!(n, size, "prepare gets the exact size");
                prop_assert_eq!(buf.len() - len, size, "and that is what is written");
                prop_assert_eq!(buf.capacity(), cap, "into the room prepared");
            } else {
                buf.reserve_exact(size);
                let (len, cap) = (buf.len(), buf.capacity());
                prop_assert_eq!(state.append(&mut buf, r).unwrap(), i as i32);
                prop_assert_eq!(buf.len() - len, size, "record_size is exact");
                prop_assert_eq!(buf.capacity(), cap, "no reallocation when the room is reserved");
            }
        }
        if records.is_empty() {
            BatchState::write_header_space(&mut buf);
        }
        prop_assert!(buf.len() >= BATCH_HEADER_SIZE);
        prop_assert_eq!(state.record_count() as usize, records.len());
        prop_assert_eq!(state.base_timestamp(), records.first().map(|r| r.timestamp));

        let (bytes, encoded) = if spec.compression == Compression::None {
            let encoded = state.seal(&spec, &mut buf).unwrap();
            prop_assert_eq!(encoded.range.clone(), 0..buf.len());
            (buf, encoded)
        } else {
            let mut out = prefix.clone();
            let encoded = state
                .seal_compressed(&spec, &buf[BATCH_HEADER_SIZE..], &mut out)
                .unwrap();
            prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
            prop_assert_eq!(encoded.range.clone(), prefix.len()..out.len());
            (out[prefix.len()..].to_vec(), encoded)
        };
        prop_assert_eq!(&bytes, &with_encoder(&spec, &records), "same bytes as BatchEncoder");
        prop_assert_eq!(encoded.record_count as usize, records.len());
        let batch = RecordBatch::parse(Bytes::from(bytes), &DecodeOptions::default()).unwrap();
        prop_assert_eq!(batch.crc(), encoded.crc);
        check(&batch, &spec, &records)?;
    }

    /// A sealed batch restamped with new producer fields decodes with them, a valid CRC and the
    /// same records.
    #[test]
    fn restamped_batches_stay_valid(
        spec in spec(),
        records in vec(owned_record(), 1..10),
        pid in any::<i64>(),
        epoch in any::<i16>(),
        seq in 0..i32::MAX,
    ) {
        let mut bytes = with_encoder(&spec, &records);
        prop_assert!(restamp_producer(&mut bytes, pid, epoch, seq));
        let restamped = BatchSpec { producer_id: pid, producer_epoch: epoch, base_sequence: seq, ..spec };
        let batch = RecordBatch::parse(Bytes::from(bytes), &DecodeOptions::default()).unwrap();
        check(&batch, &restamped, &records)?;
    }
}

#[test]
fn short_buffers_are_errors_not_panics() {
    let state = BatchState::new();
    let mut short = vec![0u8; BATCH_HEADER_SIZE - 1];
    assert!(matches!(
        state.seal(&BatchSpec::default(), &mut short),
        Err(EncodeError::NoHeader { len }) if len == BATCH_HEADER_SIZE - 1
    ));
    assert!(!restamp_producer(&mut short, 1, 1, 1));
    assert_eq!(short, vec![0u8; BATCH_HEADER_SIZE - 1]);
}

#[test]
fn empty_batch_seals() {
    let state = BatchState::new();
    let mut buf = Vec::new();
    BatchState::write_header_space(&mut buf);
    let encoded = state.seal(&BatchSpec::default(), &mut buf).unwrap();
    assert_eq!(encoded.record_count, 0);
    assert_eq!((encoded.base_timestamp, encoded.max_timestamp), (-1, -1));
    let batch = RecordBatch::parse(Bytes::from(buf), &DecodeOptions::default()).unwrap();
    assert_eq!(batch.record_count(), 0);
    assert_eq!(batch.crc(), batch.compute_crc());
}
