//! Encoder ↔ decoder: records built from the input are encoded with `BatchEncoder` (every codec,
//! both timestamp types, transactional or not, explicit offset gaps, an optional control marker
//! batch after the data batch) and decoded again with CRC checks on; every field must come back.
//!
//! Input: byte 0 = spec bits (codec index % 5 in bits 0–2, bit 3 log-append time, bit 4
//! transactional, bit 5 append a COMMIT/ABORT marker batch, bit 6 explicit offset gaps, bit 7
//! raise the last offset delta), bytes 1..9 base offset (low 48 bits), 9..17 first timestamp, then records:
//! [flags][ts delta: i16][key len: u8][key][value len: u16][value] then per header
//! [key len: u8][key (lossy UTF-8)][value len: u8, 0xff = null][value].
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mephisto_wire::compression::Compression;
use mephisto_wire::record::{
    BatchEncoder, BatchSpec, ControlRecordType, DecodeOptions, FetchRecords, NewHeader, NewRecord,
    RecordBatches, TimestampType,
};

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
}

struct OwnedRecord {
    delta_gap: i32,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let (Some(spec_bits), Some(base), Some(ts0)) = (input.u8(), input.take(8), input.take(8))
    else {
        return;
    };
    // Realistic offsets (48 bits), so base + delta never wraps.
    let base_offset =
        i64::from_be_bytes(base.try_into().unwrap_or_default()) & 0x0000_FFFF_FFFF_FFFF;
    let first_ts = i64::from_be_bytes(ts0.try_into().unwrap_or_default());
    let codec = Compression::ALL[usize::from(spec_bits & 7) % 5];
    let gaps = spec_bits & 0x40 != 0;

    let mut records = Vec::new();
    while let Some(flags) = input.u8() {
        let Some(d) = input.take(2) else { break };
        let ts_delta = i64::from(i16::from_be_bytes([d[0], d[1]]));
        let key = if flags & 1 != 0 {
            None
        } else {
            let n = usize::from(input.u8().unwrap_or(0));
            Some(
                input
                    .take(n.min(input.0.len()))
                    .unwrap_or_default()
                    .to_vec(),
            )
        };
        let value = if flags & 2 != 0 {
            None
        } else {
            let n = input
                .take(2)
                .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
            Some(
                input
                    .take(n.min(input.0.len()))
                    .unwrap_or_default()
                    .to_vec(),
            )
        };
        let mut headers = Vec::new();
        for _ in 0..((flags >> 2) & 7) {
            let n = usize::from(input.u8().unwrap_or(0));
            let k = String::from_utf8_lossy(input.take(n.min(input.0.len())).unwrap_or_default())
                .into_owned();
            let v = match input.u8() {
                Some(0xff) | None => None,
                Some(n) => Some(
                    input
                        .take(usize::from(n).min(input.0.len()))
                        .unwrap_or_default()
                        .to_vec(),
                ),
            };
            headers.push((k, v));
        }
        records.push(OwnedRecord {
            delta_gap: if gaps { i32::from(flags >> 5) + 1 } else { 1 },
            timestamp: first_ts.wrapping_add(ts_delta),
            key,
            value,
            headers,
        });
        if records.len() >= 200 {
            break;
        }
    }

    let header_sets: Vec<Vec<NewHeader<'_>>> = records
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
    let new_records: Vec<NewRecord<'_>> = records
        .iter()
        .zip(&header_sets)
        .map(|(r, h)| {
            NewRecord::new(r.key.as_deref(), r.value.as_deref(), r.timestamp).with_headers(h)
        })
        .collect();

    let transactional = spec_bits & 0x10 != 0;
    let spec = BatchSpec {
        base_offset,
        partition_leader_epoch: 3,
        compression: codec,
        timestamp_type: if spec_bits & 8 != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        transactional,
        producer_id: if transactional { 77 } else { -1 },
        producer_epoch: if transactional { 2 } else { -1 },
        base_sequence: if transactional { 5 } else { -1 },
    };

    let mut enc = BatchEncoder::new();
    let mut out = Vec::new();
    let mut deltas = Vec::new();
    let encoded = {
        let mut w = enc.writer(&spec, &mut out);
        let mut delta: i32 = -1;
        for (r, nr) in records.iter().zip(&new_records) {
            delta = match delta.checked_add(r.delta_gap) {
                Some(d) => d,
                None => return,
            };
            w.append_at(delta, nr)
                .expect("append_at with increasing deltas");
            deltas.push(delta);
        }
        if spec_bits & 0x80 != 0 {
            w.set_last_offset_delta(delta.max(0).saturating_add(3))
                .expect("raise last delta");
        }
        w.finish().expect("finish")
    };
    let marker = if spec_bits & 0x20 != 0 {
        let kind = if first_ts & 1 == 0 {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        };
        let next = base_offset
            .wrapping_add(i64::from(encoded.last_offset_delta))
            .wrapping_add(1);
        enc.encode_control(
            &BatchSpec {
                base_offset: next,
                ..spec
            },
            kind,
            9,
            first_ts,
            &mut out,
        )
        .expect("control batch");
        Some(kind)
    } else {
        None
    };

    let options = DecodeOptions {
        max_decompressed_size: 64 << 20,
        ..DecodeOptions::default()
    };
    let bytes = Bytes::from(out);
    let mut batches = RecordBatches::new(bytes.clone(), options);
    let batch = batches
        .next()
        .expect("one batch")
        .expect("our batch decodes");
    assert_eq!(batch.crc(), encoded.crc);
    assert_eq!(batch.base_offset(), base_offset);
    assert_eq!(batch.compression(), codec);
    assert_eq!(batch.timestamp_type(), spec.timestamp_type);
    assert_eq!(batch.is_transactional(), transactional);
    assert!(!batch.is_control());
    assert_eq!(batch.producer_id(), spec.producer_id);
    assert_eq!(batch.producer_epoch(), spec.producer_epoch);
    assert_eq!(batch.base_sequence(), spec.base_sequence);
    assert_eq!(batch.partition_leader_epoch(), 3);
    assert_eq!(batch.record_count() as usize, records.len());
    assert_eq!(batch.last_offset_delta(), encoded.last_offset_delta);
    assert_eq!(batch.max_timestamp(), encoded.max_timestamp);

    let body = batch.records().expect("records");
    let mut n = 0;
    for (i, got) in body.iter().enumerate() {
        let got = got.expect("record decodes");
        let want = &records[i];
        assert_eq!(got.offset_delta(), deltas[i]);
        assert_eq!(got.offset(), base_offset.wrapping_add(i64::from(deltas[i])));
        match spec.timestamp_type {
            TimestampType::CreateTime => assert_eq!(got.timestamp(), want.timestamp),
            TimestampType::LogAppendTime => assert_eq!(got.timestamp(), encoded.max_timestamp),
        }
        assert_eq!(got.key(), want.key.as_deref());
        assert_eq!(got.value(), want.value.as_deref());
        let hs: Vec<(Vec<u8>, Option<Vec<u8>>)> = got
            .headers()
            .map(|h| (h.key().to_vec(), h.value().map(<[u8]>::to_vec)))
            .collect();
        let want_hs: Vec<(Vec<u8>, Option<Vec<u8>>)> = want
            .headers
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect();
        assert_eq!(hs, want_hs);
        n += 1;
    }
    assert_eq!(n, records.len());

    match marker {
        Some(kind) => {
            let control = batches
                .next()
                .expect("marker batch")
                .expect("marker decodes");
            assert!(control.is_control() && control.is_transactional());
            let rec = control
                .control_record()
                .expect("control record")
                .expect("present");
            assert_eq!(rec.kind, kind);
            assert!(batches.next().is_none());
        }
        None => assert!(batches.next().is_none()),
    }

    // The consumer's view: exactly the data records, never the marker.
    let fetched: Vec<_> = FetchRecords::new(bytes, options, i64::MIN)
        .map(|r| r.expect("fetch decodes"))
        .collect();
    assert_eq!(fetched.len(), records.len());
});
