//! Encode → decode round trips of record batches over every codec: null and empty keys and
//! values, headers with null values, large values, many records, arbitrary timestamps, offsets
//! and producer fields. Also: arbitrary corruption never panics.

use bytes::Bytes;
use mephisto_wire::compression::Compression;
use mephisto_wire::record::{
    BatchEncoder, BatchSpec, DecodeOptions, NewHeader, NewRecord, RecordBatch, RecordBatches,
    TimestampType,
};
use proptest::collection::vec;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct OwnedRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
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

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        1_600_000_000_000i64..1_800_000_000_000,
        Just(-1i64)
    ]
}

fn owned_record() -> impl Strategy<Value = OwnedRecord> {
    (
        bytes_opt(40),
        bytes_opt(200),
        vec(("[a-zA-Z0-9._é-]{0,12}", bytes_opt(100)), 0..4),
        timestamp(),
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
        any::<i32>(),
        codec(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(-1i64), any::<i64>()],
        any::<i16>(),
        prop_oneof![Just(-1i32), 0..i32::MAX, Just(i32::MAX)],
    )
        .prop_map(
            |(
                base_offset,
                leader_epoch,
                compression,
                log_append,
                transactional,
                pid,
                epoch,
                seq,
            )| {
                BatchSpec {
                    base_offset,
                    partition_leader_epoch: leader_epoch,
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
                }
            },
        )
}

fn java_sequence(base: i32, delta: i32) -> i32 {
    if base < 0 {
        -1
    } else if base > i32::MAX - delta {
        delta - (i32::MAX - base) - 1
    } else {
        base + delta
    }
}

fn encode(spec: &BatchSpec, records: &[OwnedRecord], out: &mut Vec<u8>) {
    let headers: Vec<Vec<NewHeader<'_>>> = records
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .map(|(k, v)| NewHeader {
                    key: k,
                    value: v.as_deref(),
                })
                .collect()
        })
        .collect();
    let new: Vec<NewRecord<'_>> = records
        .iter()
        .zip(&headers)
        .map(|(r, h)| {
            NewRecord::new(r.key.as_deref(), r.value.as_deref(), r.timestamp).with_headers(h)
        })
        .collect();
    let encoded = BatchEncoder::new().encode(spec, &new, out).unwrap();
    assert_eq!(encoded.record_count as usize, records.len());
}

/// Checks every header field and every record of `batch` against what was encoded.
fn check_batch(
    batch: &RecordBatch,
    spec: &BatchSpec,
    records: &[OwnedRecord],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(batch.base_offset(), spec.base_offset);
    prop_assert_eq!(batch.partition_leader_epoch(), spec.partition_leader_epoch);
    prop_assert_eq!(batch.magic(), 2);
    prop_assert_eq!(batch.compression(), spec.compression);
    prop_assert_eq!(batch.timestamp_type(), spec.timestamp_type);
    prop_assert_eq!(batch.is_transactional(), spec.transactional);
    prop_assert!(!batch.is_control());
    prop_assert!(!batch.has_delete_horizon());
    prop_assert_eq!(batch.producer_id(), spec.producer_id);
    prop_assert_eq!(batch.producer_epoch(), spec.producer_epoch);
    prop_assert_eq!(batch.base_sequence(), spec.base_sequence);
    prop_assert_eq!(batch.record_count() as usize, records.len());
    prop_assert_eq!(batch.crc(), batch.compute_crc());
    prop_assert_eq!(batch.size_in_bytes(), 12 + batch.batch_length() as usize);
    let n = records.len() as i32;
    prop_assert_eq!(batch.last_offset_delta(), if n == 0 { 0 } else { n - 1 });
    prop_assert_eq!(
        batch.next_offset(),
        spec.base_offset.wrapping_add(i64::from(n.max(1)))
    );
    let base_ts = records.first().map_or(-1, |r| r.timestamp);
    let max_ts = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    prop_assert_eq!(batch.base_timestamp(), base_ts);
    prop_assert_eq!(batch.max_timestamp(), max_ts);

    let decoded = batch.records().unwrap();
    let mut count = 0;
    for (i, (item, want)) in decoded.iter().zip(records).enumerate() {
        let r = item.unwrap();
        let delta = i as i32;
        prop_assert_eq!(r.offset_delta(), delta);
        prop_assert_eq!(r.offset(), spec.base_offset.wrapping_add(i64::from(delta)));
        let ts = match spec.timestamp_type {
            TimestampType::CreateTime => want.timestamp,
            TimestampType::LogAppendTime => max_ts,
        };
        prop_assert_eq!(r.timestamp(), ts);
        prop_assert_eq!(r.timestamp_type(), spec.timestamp_type);
        prop_assert_eq!(r.sequence(), java_sequence(spec.base_sequence, delta));
        prop_assert_eq!(r.key(), want.key.as_deref());
        prop_assert_eq!(r.value(), want.value.as_deref());
        let (kb, vb) = (r.key_bytes(), r.value_bytes());
        prop_assert_eq!(kb.as_deref(), want.key.as_deref());
        prop_assert_eq!(vb.as_deref(), want.value.as_deref());
        prop_assert_eq!(r.header_count(), want.headers.len());
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
        for h in r.headers() {
            prop_assert_eq!(&h.key_bytes()[..], h.key());
            let vb = h.value_bytes();
            prop_assert_eq!(vb.as_deref(), h.value());
        }
        // The owned form agrees with the borrowed one.
        let owned = r.to_record();
        prop_assert_eq!(owned.offset(), r.offset());
        prop_assert_eq!(owned.timestamp(), r.timestamp());
        prop_assert_eq!(owned.sequence(), r.sequence());
        prop_assert_eq!(owned.key(), r.key());
        prop_assert_eq!(owned.value(), r.value());
        prop_assert_eq!(owned.headers().count(), r.header_count());
        count += 1;
    }
    prop_assert_eq!(count, records.len());
    // The borrowed iterator ends cleanly (no count error) and so does the owned one.
    prop_assert!(decoded.iter().all(|r| r.is_ok()));
    let owned: Vec<_> = decoded
        .clone()
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    prop_assert_eq!(owned.len(), records.len());
    for (r, want) in owned.iter().zip(records) {
        prop_assert_eq!(r.key(), want.key.as_deref());
        prop_assert_eq!(r.value(), want.value.as_deref());
        let headers: Vec<(String, Option<Vec<u8>>)> = r
            .headers()
            .map(|h| {
                (
                    h.key_str().unwrap().to_owned(),
                    h.value_bytes().map(|b| b.to_vec()),
                )
            })
            .collect();
        prop_assert_eq!(&headers, &want.headers);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn batch_round_trip(spec in spec(), records in vec(owned_record(), 0..40)) {
        let mut out = Vec::new();
        encode(&spec, &records, &mut out);
        let mut batches = RecordBatches::new(Bytes::from(out), DecodeOptions::default());
        let batch = batches.next().unwrap().unwrap();
        prop_assert!(batches.next().is_none());
        prop_assert_eq!(batches.remaining_bytes(), 0);
        check_batch(&batch, &spec, &records)?;
    }

    #[test]
    fn several_batches_then_truncated_tail(
        specs in vec(spec(), 1..5),
        records in vec(vec(owned_record(), 0..8), 5),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut out = Vec::new();
        let mut ends = Vec::new();
        for (spec, recs) in specs.iter().zip(&records) {
            encode(spec, recs, &mut out);
            ends.push(out.len());
        }
        // Whole buffer: every batch.
        let all: Vec<_> = RecordBatches::new(Bytes::from(out.clone()), DecodeOptions::default())
            .collect::<Result<_, _>>()
            .unwrap();
        prop_assert_eq!(all.len(), specs.len());
        for ((batch, spec), recs) in all.iter().zip(&specs).zip(&records) {
            check_batch(batch, spec, recs)?;
        }
        // Cut anywhere: the complete batches before the cut, then a silent end.
        let at = cut.index(out.len() + 1);
        let complete = ends.iter().filter(|&&e| e <= at).count();
        let mut it = RecordBatches::new(Bytes::copy_from_slice(&out[..at]), DecodeOptions::default());
        let got: Vec<_> = it.by_ref().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(got.len(), complete);
        let consumed = if complete == 0 { 0 } else { ends[complete - 1] };
        prop_assert_eq!(it.remaining_bytes(), at - consumed);
    }

    #[test]
    fn corruption_never_panics(
        spec in spec(),
        records in vec(owned_record(), 1..6),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        verify_crc in any::<bool>(),
    ) {
        let mut out = Vec::new();
        encode(&spec, &records, &mut out);
        for (at, byte) in flips {
            let i = at.index(out.len());
            out[i] = byte;
        }
        let options = DecodeOptions { verify_crc, ..DecodeOptions::default() };
        for batch in RecordBatches::new(Bytes::from(out), options) {
            let Ok(batch) = batch else { continue };
            let _ = batch.control_record();
            let Ok(records) = batch.records() else { continue };
            for r in records.iter().flatten() {
                let _ = (r.key(), r.value(), r.offset(), r.timestamp(), r.sequence());
                for h in r.headers() {
                    let _ = (h.key_str(), h.value());
                }
            }
            for r in records.into_iter().flatten() {
                for h in r.headers() {
                    let _ = (h.key_bytes(), h.value_bytes());
                }
            }
        }
    }
}

proptest! {
    // Few cases: each compresses and decompresses megabytes.
    #![proptest_config(ProptestConfig { cases: 5, ..ProptestConfig::default() })]

    #[test]
    fn large_values_every_codec(
        len in (1usize << 20)..(1usize << 20) + 4096,
        seed in any::<u8>(),
        key in bytes_opt(16),
    ) {
        // Partly compressible, partly not.
        let value: Vec<u8> = (0..len)
            .map(|i| if i % 3 == 0 { (i as u8).wrapping_mul(seed | 1) } else { seed })
            .collect();
        for codec in Compression::ALL {
            let spec = BatchSpec { compression: codec, base_offset: 5, ..BatchSpec::default() };
            let records = vec![
                OwnedRecord { key: key.clone(), value: Some(value.clone()), headers: vec![("h".into(), None)], timestamp: 1 },
                OwnedRecord { key: None, value: Some(Vec::new()), headers: vec![], timestamp: 2 },
                OwnedRecord { key: key.clone(), value: None, headers: vec![], timestamp: 0 },
            ];
            let mut out = Vec::new();
            encode(&spec, &records, &mut out);
            let batch = RecordBatch::parse(Bytes::from(out), &DecodeOptions::default()).unwrap();
            check_batch(&batch, &spec, &records)?;
        }
    }
}

#[test]
fn many_records_every_codec() {
    let records: Vec<OwnedRecord> = (0..20_000)
        .map(|i: i64| OwnedRecord {
            key: if i % 7 == 0 {
                None
            } else {
                Some(i.to_be_bytes().to_vec())
            },
            value: Some(format!("value-{i}").into_bytes()),
            headers: if i % 3 == 0 {
                vec![
                    ("trace".into(), Some(i.to_le_bytes().to_vec())),
                    ("n".into(), None),
                ]
            } else {
                vec![]
            },
            timestamp: 1_700_000_000_000 + (i % 1000) - 500,
        })
        .collect();
    for codec in Compression::ALL {
        let spec = BatchSpec {
            compression: codec,
            base_offset: 1 << 40,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: i32::MAX - 10_000,
            ..BatchSpec::default()
        };
        let mut out = Vec::new();
        encode(&spec, &records, &mut out);
        let batch = RecordBatch::parse(Bytes::from(out), &DecodeOptions::default()).unwrap();
        check_batch(&batch, &spec, &records).unwrap();
        // The sequence wrapped from i32::MAX to 0 inside the batch.
        let decoded = batch.records().unwrap();
        let last = decoded.iter().last().unwrap().unwrap();
        assert_eq!(last.sequence(), 20_000 - 10_000 - 2);
    }
}

#[test]
fn encoder_reuses_buffers_and_appends() {
    let mut encoder = BatchEncoder::new();
    let mut out = vec![0xee; 3]; // existing contents are kept
    let a = encoder
        .encode(
            &BatchSpec {
                compression: Compression::Zstd,
                ..BatchSpec::default()
            },
            &[NewRecord::new(None, Some(&b"a"[..]), 1)],
            &mut out,
        )
        .unwrap();
    let b = encoder
        .encode(
            &BatchSpec {
                base_offset: 1,
                ..BatchSpec::default()
            },
            &[NewRecord::new(None, Some(&b"b"[..]), 2)],
            &mut out,
        )
        .unwrap();
    assert_eq!(&out[..3], &[0xee; 3]);
    assert_eq!(a.range.start, 3);
    assert_eq!(a.range.end, b.range.start);
    assert_eq!(b.range.end, out.len());
    let batches: Vec<_> = RecordBatches::new(Bytes::from(out).slice(3..), DecodeOptions::default())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].crc(), a.crc);
    assert_eq!(batches[1].crc(), b.crc);
}

#[test]
fn dropped_writer_removes_partial_batch() {
    let mut encoder = BatchEncoder::new();
    let mut out = b"keep".to_vec();
    {
        let mut w = encoder.writer(&BatchSpec::default(), &mut out);
        w.append(&NewRecord::new(None, Some(&b"x"[..]), 0)).unwrap();
        assert_eq!(w.record_count(), 1);
    }
    assert_eq!(out, b"keep");
}

#[test]
fn writer_rejects_non_increasing_offset_deltas() {
    let mut encoder = BatchEncoder::new();
    let mut out = Vec::new();
    let mut w = encoder.writer(&BatchSpec::default(), &mut out);
    w.append_at(5, &NewRecord::new(None, None, 0)).unwrap();
    assert!(matches!(
        w.append_at(5, &NewRecord::new(None, None, 0)),
        Err(
            mephisto_wire::record::EncodeError::OffsetDeltaNotIncreasing {
                previous: Some(5),
                given: 5
            }
        )
    ));
    assert!(matches!(
        w.set_last_offset_delta(4),
        Err(mephisto_wire::record::EncodeError::LastOffsetDeltaTooSmall { last: 5, given: 4 })
    ));
    assert_eq!(w.append(&NewRecord::new(None, None, 0)).unwrap(), 6);
}

#[test]
fn matches_kafka_protocol_crate() {
    // Cross-check against an independent implementation: kafka-protocol decodes our batch.
    use kafka_protocol::records::RecordBatchDecoder;
    let h = [
        NewHeader {
            key: "h1",
            value: Some(b"v1"),
        },
        NewHeader {
            key: "h2",
            value: None,
        },
    ];
    let records = [
        NewRecord::new(Some(&b"k0"[..]), Some(&b"v0"[..]), 1000).with_headers(&h),
        NewRecord::new(None, None, 999),
        NewRecord::new(Some(&b""[..]), Some(&b"v2"[..]), 1005),
    ];
    let spec = BatchSpec {
        base_offset: 100,
        producer_id: 7,
        producer_epoch: 1,
        base_sequence: 10,
        transactional: true,
        partition_leader_epoch: 3,
        ..BatchSpec::default()
    };
    let mut out = Vec::new();
    BatchEncoder::new()
        .encode(&spec, &records, &mut out)
        .unwrap();
    let mut buf = Bytes::from(out);
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert_eq!(set.records.len(), 3);
    let r0 = &set.records[0];
    assert_eq!(r0.offset, 100);
    assert_eq!(r0.timestamp, 1000);
    assert_eq!(r0.sequence, 10);
    assert_eq!(r0.producer_id, 7);
    assert!(r0.transactional);
    assert_eq!(r0.key.as_deref(), Some(&b"k0"[..]));
    assert_eq!(r0.headers.len(), 2);
    assert_eq!(set.records[1].key, None);
    assert_eq!(set.records[1].value, None);
    assert_eq!(set.records[1].timestamp, 999);
    assert_eq!(set.records[2].offset, 102);
    assert_eq!(set.records[2].key.as_deref(), Some(&b""[..]));
}
