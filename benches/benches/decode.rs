//! Record-batch decode: Mephisto's zero-copy decoder against `kafka-protocol`'s
//! `RecordBatchDecoder` on the same bytes, plus a baseline (CRC + bare varint walk) that shows
//! the limit. One batch of 1000 records per iteration, 16-byte keys, CRC checked, every key,
//! value and header touched (lengths summed into `black_box`). Throughput is in records.
//! `mephisto/*` uses the borrowing record iterator of each batch; `mephisto-owned/100B` the
//! consumer-facing `FetchRecords` iterator, which yields owned records (one `Bytes`
//! reference-count increment each); `mephisto-fetch-ref/100B` the same walk lending borrowed
//! records (`FetchRecords::next_ref`).
//!
//! Run: `cargo bench -p mephisto-benches --bench decode -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::io::BufRead;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::{Compression as KpCompression, RecordBatchDecoder};
use mephisto_wire::compression::Compression;
use mephisto_wire::record::{
    BatchEncoder, BatchSpec, DecodeOptions, FetchRecords, NewHeader, NewRecord, RecordBatches,
};
use mephisto_wire::varint::{decode_varint, decode_varlong};

const RECORDS: usize = 1000;
const KEY_LEN: usize = 16;

/// A JSON-ish value of exactly `len` bytes (compressible like real payloads).
fn value(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!(
        r#"{{"id":{i},"user":"user-{}","ts":{},"amount":{}.{:02},"tags":["a","b"],"pad":""#,
        i * 7919 % 100_000,
        1_700_000_000_000u64 + i as u64 * 13,
        i * 31 % 1000,
        i % 100
    )
    .into_bytes();
    while v.len() < len {
        v.push(b'a' + (v.len() % 26) as u8);
    }
    v.truncate(len);
    v
}

/// One batch of `RECORDS` records.
fn batch(value_len: usize, headers: bool, codec: Compression) -> Bytes {
    let keys: Vec<[u8; KEY_LEN]> = (0..RECORDS)
        .map(|i| {
            let mut k = [b'k'; KEY_LEN];
            k[KEY_LEN - 8..].copy_from_slice(&(i as u64).to_be_bytes());
            k
        })
        .collect();
    let values: Vec<Vec<u8>> = (0..RECORDS).map(|i| value(i, value_len)).collect();
    let hdrs = [
        NewHeader {
            key: "trace-id",
            value: Some(b"4bf92f3577b34da6"),
        },
        NewHeader {
            key: "content-type",
            value: Some(b"application/json"),
        },
    ];
    let records: Vec<NewRecord<'_>> = keys
        .iter()
        .zip(&values)
        .enumerate()
        .map(|(i, (k, v))| {
            let r = NewRecord::new(Some(&k[..]), Some(&v[..]), 1_700_000_000_000 + i as i64);
            if headers {
                r.with_headers(&hdrs)
            } else {
                r
            }
        })
        .collect();
    let spec = BatchSpec {
        base_offset: 1_000_000,
        compression: codec,
        producer_id: 4242,
        producer_epoch: 1,
        base_sequence: 0,
        ..BatchSpec::default()
    };
    let mut out = Vec::new();
    BatchEncoder::new()
        .encode(&spec, &records, &mut out)
        .unwrap();
    Bytes::from(out)
}

/// Mephisto: batches → records (borrowed) → key, value, headers.
fn mephisto(buf: &Bytes) -> usize {
    let mut sum = 0usize;
    for batch in RecordBatches::new(buf.clone(), DecodeOptions::default()) {
        let records = batch.unwrap().records().unwrap();
        for r in &records {
            let r = r.unwrap();
            sum += r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len);
            for h in r.headers() {
                sum += h.key().len() + h.value().map_or(0, <[u8]>::len);
            }
        }
    }
    sum
}

/// Mephisto's convenience iterator for consumers: owned records (one `Bytes` slice each) across
/// the batches of a fetch response, control batches skipped.
fn mephisto_owned(buf: &Bytes) -> usize {
    let mut sum = 0usize;
    for r in FetchRecords::new(buf.clone(), DecodeOptions::default(), 0) {
        let r = r.unwrap();
        sum += r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len);
        for h in r.headers() {
            sum += h.key().len() + h.value().map_or(0, <[u8]>::len);
        }
    }
    sum
}

/// The same iterator lending borrowed records (`FetchRecords::next_ref`): no reference counts.
fn mephisto_fetch_ref(buf: &Bytes) -> usize {
    let mut sum = 0usize;
    let mut records = FetchRecords::new(buf.clone(), DecodeOptions::default(), 0);
    while let Some(r) = records.next_ref() {
        let r = r.unwrap();
        sum += r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len);
        for h in r.headers() {
            sum += h.key().len() + h.value().map_or(0, <[u8]>::len);
        }
    }
    sum
}

/// kafka-protocol's decoder (it checks the CRC too), same fields touched.
fn kafka_protocol(buf: &Bytes) -> usize {
    let mut b = buf.clone();
    let set =
        RecordBatchDecoder::decode_with_custom_compression(&mut b, Some(kp_decompress)).unwrap();
    let mut sum = 0usize;
    for r in &set.records {
        sum += r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len);
        for (k, v) in &r.headers {
            sum += k.len() + v.as_ref().map_or(0, Bytes::len);
        }
    }
    sum
}

/// Decompressor for kafka-protocol: uncompressed passes through (no copy); LZ4 frames are
/// decoded with `lz4_flex` block by block into one preallocated buffer (the same technique as
/// `mephisto_wire::compression`), so no C is compiled and neither side has the slow-`Read` pitfall.
fn kp_decompress(input: &mut Bytes, codec: KpCompression) -> anyhow::Result<Bytes> {
    match codec {
        KpCompression::None => Ok(input.clone()),
        KpCompression::Lz4 => {
            let mut out = Vec::with_capacity(input.len() * 4);
            let mut decoder = lz4_flex::frame::FrameDecoder::new(&input[..]);
            loop {
                let block = decoder.fill_buf()?;
                if block.is_empty() {
                    break;
                }
                let n = block.len();
                out.extend_from_slice(block);
                decoder.consume(n);
            }
            Ok(Bytes::from(out))
        }
        other => anyhow::bail!("{other:?} not used in this bench"),
    }
}

/// The limit: the CRC plus a walk over every varint of every record, no validation, no records
/// built.
fn baseline(buf: &Bytes) -> usize {
    let bytes = &buf[..];
    let stored = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
    assert_eq!(crc32c::crc32c(&bytes[21..]), stored);
    let count = i32::from_be_bytes(bytes[57..61].try_into().unwrap());
    let mut p = &bytes[61..];
    let mut sum = 0usize;
    let varint = |p: &mut &[u8]| -> i32 {
        let (v, n) = decode_varint(p).unwrap();
        *p = &p[n..];
        v
    };
    for _ in 0..count {
        let len = varint(&mut p);
        let mut r = &p[..len as usize];
        p = &p[len as usize..];
        r = &r[1..];
        let (_, n) = decode_varlong(r).unwrap();
        r = &r[n..];
        varint(&mut r);
        let k = varint(&mut r).max(0) as usize;
        r = &r[k..];
        let v = varint(&mut r).max(0) as usize;
        r = &r[v..];
        sum += k + v;
        let h = varint(&mut r);
        for _ in 0..h {
            let hk = varint(&mut r).max(0) as usize;
            r = &r[hk..];
            let hv = varint(&mut r).max(0) as usize;
            r = &r[hv..];
            sum += hk + hv;
        }
    }
    sum
}

fn bench(c: &mut Criterion) {
    let sets = [
        ("100B", batch(100, false, Compression::None)),
        ("100B-2hdr", batch(100, true, Compression::None)),
        ("1KB", batch(1024, false, Compression::None)),
        ("lz4-100B", batch(100, false, Compression::Lz4)),
    ];
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (name, buf) in &sets {
        // Same answer from every decoder before timing anything.
        let want = mephisto(buf);
        assert_eq!(kafka_protocol(buf), want, "{name}");
        eprintln!(
            "decode/{name}: batch {} bytes, {:.1} bytes/record",
            buf.len(),
            buf.len() as f64 / RECORDS as f64
        );
        group.bench_function(format!("mephisto/{name}"), |b| {
            b.iter(|| black_box(mephisto(black_box(buf))))
        });
        group.bench_function(format!("kafka-protocol/{name}"), |b| {
            b.iter(|| black_box(kafka_protocol(black_box(buf))))
        });
        if *name == "100B" {
            assert_eq!(mephisto_owned(buf), want, "{name}");
            group.bench_function(format!("mephisto-owned/{name}"), |b| {
                b.iter(|| black_box(mephisto_owned(black_box(buf))))
            });
            assert_eq!(mephisto_fetch_ref(buf), want, "{name}");
            group.bench_function(format!("mephisto-fetch-ref/{name}"), |b| {
                b.iter(|| black_box(mephisto_fetch_ref(black_box(buf))))
            });
        }
        if matches!(*name, "100B" | "1KB") {
            assert_eq!(baseline(buf), want, "{name}");
            group.bench_function(format!("baseline/{name}"), |b| {
                b.iter(|| black_box(baseline(black_box(buf))))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
