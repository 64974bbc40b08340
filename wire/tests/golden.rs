//! Golden vectors: record batches written by other encoders (kafka-python's builder and producer,
//! librdkafka's producer; the broker ones read back from tansu), one fixture per peer and codec, in
//! `tests/golden/`. Each `NAME.bin` is decoded with our decoder and compared field by field with
//! `NAME.json`, whose content comes from what the generator asked the peer to encode. How the
//! fixtures were made and how to regenerate them: `tests/golden/README.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use mephisto_wire::record::{
    BatchError, DecodeOptions, FetchRecords, Header, RecordBatches, TimestampType,
};
use serde_json::Value;

/// Fixtures expected: 3 peers x 5 codecs. Guards against a test that silently checks nothing.
const MIN_FIXTURES: usize = 15;

struct Fixture {
    name: String,
    bin: Bytes,
    json: Value,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn fixtures() -> Vec<Fixture> {
    let dir = golden_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "json").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= MIN_FIXTURES,
        "expected at least {MIN_FIXTURES} fixtures in {}, found {}",
        dir.display(),
        names.len()
    );
    names
        .into_iter()
        .map(|name| {
            let json_path = dir.join(format!("{name}.json"));
            let bin_path = dir.join(format!("{name}.bin"));
            let json: Value = serde_json::from_slice(
                &std::fs::read(&json_path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", json_path.display())),
            )
            .unwrap_or_else(|e| panic!("parsing {}: {e}", json_path.display()));
            let bin = std::fs::read(&bin_path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", bin_path.display()));
            assert_eq!(
                json["bin_len"].as_u64(),
                Some(bin.len() as u64),
                "{name}: .bin length differs from the JSON's bin_len"
            );
            Fixture {
                name,
                bin: Bytes::from(bin),
                json,
            }
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("hex {s}: {e}")))
        .collect()
}

/// A JSON hex string or null, as `Option<Vec<u8>>`.
fn opt_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(unhex(s)),
        other => panic!("expected hex string or null, got {other}"),
    }
}

fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("missing integer field {field} in {v}"))
}

fn boolean(v: &Value, field: &str) -> bool {
    v[field]
        .as_bool()
        .unwrap_or_else(|| panic!("missing bool field {field} in {v}"))
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {field} in {v}"))
}

/// Expected record content, from the JSON.
#[derive(Debug, PartialEq)]
struct Expected {
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn expected_records(batch: &Value) -> Vec<Expected> {
    batch["records"]
        .as_array()
        .expect("records array")
        .iter()
        .map(|r| Expected {
            offset: int(r, "offset"),
            timestamp: int(r, "timestamp"),
            key: opt_bytes(&r["key"]),
            value: opt_bytes(&r["value"]),
            headers: r["headers"]
                .as_array()
                .expect("headers array")
                .iter()
                .map(|h| {
                    let pair = h.as_array().expect("header pair");
                    (
                        pair[0].as_str().expect("header key").to_owned(),
                        opt_bytes(&pair[1]),
                    )
                })
                .collect(),
        })
        .collect()
}

fn decoded_headers<'a>(
    headers: impl Iterator<Item = Header<'a>>,
) -> Vec<(String, Option<Vec<u8>>)> {
    headers
        .map(|h| {
            let key = h
                .key_str()
                .unwrap_or_else(|e| panic!("header key not UTF-8: {e}"))
                .to_owned();
            // The Bytes accessors must agree with the slice accessors.
            assert_eq!(&h.key_bytes()[..], h.key());
            assert_eq!(h.value_bytes().as_deref(), h.value());
            (key, h.value().map(<[u8]>::to_vec))
        })
        .collect()
}

/// Records a mismatch instead of stopping, so one run reports every difference.
macro_rules! check {
    ($errs:expr, $ctx:expr, $what:expr, $got:expr, $want:expr) => {{
        match (&$got, &$want) {
            (got, want) => {
                if got != want {
                    let _ = writeln!(
                        $errs,
                        "{}: {}: decoded {:?}, expected {:?}",
                        $ctx, $what, got, want
                    );
                }
            }
        }
    }};
}

/// Decodes one fixture batch by batch and compares every field; returns the mismatches.
fn check_fixture(f: &Fixture) -> String {
    let mut errs = String::new();
    let want_batches = f.json["batches"].as_array().expect("batches array");
    let mut batches = RecordBatches::new(f.bin.clone(), DecodeOptions::default());
    for (i, want) in want_batches.iter().enumerate() {
        let ctx = format!("{} batch {i}", f.name);
        let batch = match batches.next() {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                let _ = writeln!(errs, "{ctx}: decode error: {e}");
                return errs;
            }
            None => {
                let _ = writeln!(errs, "{ctx}: missing (decoder yielded {i} batches)");
                return errs;
            }
        };
        check!(
            errs,
            ctx,
            "base_offset",
            batch.base_offset(),
            int(want, "base_offset")
        );
        check!(
            errs,
            ctx,
            "partition_leader_epoch",
            i64::from(batch.partition_leader_epoch()),
            int(want, "partition_leader_epoch")
        );
        check!(errs, ctx, "magic", batch.magic(), 2);
        check!(
            errs,
            ctx,
            "crc (stored vs computed)",
            batch.crc(),
            batch.compute_crc()
        );
        check!(
            errs,
            ctx,
            "codec",
            batch.compression().name(),
            text(want, "codec")
        );
        check!(
            errs,
            ctx,
            "codec (fixture)",
            text(want, "codec"),
            text(&f.json, "codec")
        );
        let ts_type = match batch.timestamp_type() {
            TimestampType::CreateTime => "create_time",
            TimestampType::LogAppendTime => "log_append_time",
        };
        check!(
            errs,
            ctx,
            "timestamp_type",
            ts_type,
            text(want, "timestamp_type")
        );
        check!(
            errs,
            ctx,
            "is_transactional",
            batch.is_transactional(),
            boolean(want, "is_transactional")
        );
        check!(
            errs,
            ctx,
            "is_control",
            batch.is_control(),
            boolean(want, "is_control")
        );
        check!(
            errs,
            ctx,
            "last_offset_delta",
            i64::from(batch.last_offset_delta()),
            int(want, "last_offset_delta")
        );
        check!(
            errs,
            ctx,
            "first (base) timestamp",
            batch.base_timestamp(),
            int(want, "first_timestamp")
        );
        check!(
            errs,
            ctx,
            "max_timestamp",
            batch.max_timestamp(),
            int(want, "max_timestamp")
        );
        check!(
            errs,
            ctx,
            "producer_id",
            batch.producer_id(),
            int(want, "producer_id")
        );
        check!(
            errs,
            ctx,
            "has_producer_id",
            batch.has_producer_id(),
            int(want, "producer_id") >= 0
        );
        check!(
            errs,
            ctx,
            "producer_epoch",
            i64::from(batch.producer_epoch()),
            int(want, "producer_epoch")
        );
        check!(
            errs,
            ctx,
            "base_sequence",
            i64::from(batch.base_sequence()),
            int(want, "base_sequence")
        );
        check!(
            errs,
            ctx,
            "record_count",
            i64::from(batch.record_count()),
            int(want, "record_count")
        );
        check!(
            errs,
            ctx,
            "next_offset",
            batch.next_offset(),
            int(want, "base_offset") + int(want, "last_offset_delta") + 1
        );

        let expected = expected_records(want);
        let records = match batch.records() {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(errs, "{ctx}: records(): {e}");
                continue;
            }
        };
        check!(
            errs,
            ctx,
            "declared_count",
            records.declared_count(),
            expected.len()
        );
        let base_sequence = batch.base_sequence();

        // Borrowing iterator (RecordRef).
        let mut got_ref = Vec::new();
        for (j, r) in records.iter().enumerate() {
            match r {
                Ok(r) => {
                    let rctx = format!("{ctx} record {j}");
                    check!(
                        errs,
                        rctx,
                        "timestamp_type",
                        r.timestamp_type(),
                        batch.timestamp_type()
                    );
                    let want_seq = if base_sequence < 0 {
                        -1
                    } else {
                        base_sequence + r.offset_delta()
                    };
                    check!(errs, rctx, "sequence", r.sequence(), want_seq);
                    check!(errs, rctx, "key_bytes", r.key_bytes().as_deref(), r.key());
                    check!(
                        errs,
                        rctx,
                        "value_bytes",
                        r.value_bytes().as_deref(),
                        r.value()
                    );
                    check!(
                        errs,
                        rctx,
                        "header_count",
                        r.header_count(),
                        r.headers().len()
                    );
                    got_ref.push(Expected {
                        offset: r.offset(),
                        timestamp: r.timestamp(),
                        key: r.key().map(<[u8]>::to_vec),
                        value: r.value().map(<[u8]>::to_vec),
                        headers: decoded_headers(r.headers()),
                    });
                }
                Err(e) => {
                    let _ = writeln!(errs, "{ctx} record {j}: {e}");
                    break;
                }
            }
        }
        compare_records(
            &mut errs,
            &format!("{ctx} (RecordRef)"),
            &got_ref,
            &expected,
        );

        // Owning iterator (Record).
        let mut got_owned = Vec::new();
        for (j, r) in records.clone().into_iter().enumerate() {
            match r {
                Ok(r) => got_owned.push(Expected {
                    offset: r.offset(),
                    timestamp: r.timestamp(),
                    key: r.key().map(<[u8]>::to_vec),
                    value: r.value().map(<[u8]>::to_vec),
                    headers: decoded_headers(r.headers()),
                }),
                Err(e) => {
                    let _ = writeln!(errs, "{ctx} record {j} (owned): {e}");
                    break;
                }
            }
        }
        compare_records(&mut errs, &format!("{ctx} (Record)"), &got_owned, &expected);
    }
    match batches.next() {
        None => {}
        Some(Ok(b)) => {
            let _ = writeln!(
                errs,
                "{}: decoder yielded an extra batch at offset {}",
                f.name,
                b.base_offset()
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(errs, "{}: error after the expected batches: {e}", f.name);
        }
    }
    check!(
        errs,
        f.name,
        "remaining_bytes after all batches",
        batches.remaining_bytes(),
        0
    );
    errs
}

fn compare_records(errs: &mut String, ctx: &str, got: &[Expected], want: &[Expected]) {
    check!(errs, ctx, "record count", got.len(), want.len());
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        let rctx = format!("{ctx} record {j}");
        check!(errs, rctx, "offset", g.offset, w.offset);
        check!(errs, rctx, "timestamp", g.timestamp, w.timestamp);
        check!(errs, rctx, "key", g.key, w.key);
        check!(errs, rctx, "value", g.value, w.value);
        check!(errs, rctx, "headers", g.headers, w.headers);
    }
}

#[test]
fn golden_batches_decode_exactly() {
    let mut report = String::new();
    let all = fixtures();
    for f in &all {
        report.push_str(&check_fixture(f));
    }
    assert!(
        report.is_empty(),
        "golden fixtures disagree with the decoder:\n{report}"
    );
    // Every codec is covered by every peer.
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let peers = all
            .iter()
            .filter(|f| text(&f.json, "codec") == codec)
            .count();
        assert!(peers >= 3, "codec {codec}: only {peers} fixtures");
    }
}

/// The consumer path: FetchRecords over the whole fixture from offset 0 yields every record of
/// every (data) batch in order, each a zero-copy slice of the fetch buffer for uncompressed
/// batches, and ends at the offset after the last batch.
#[test]
fn golden_batches_through_fetch_records() {
    let mut report = String::new();
    for f in fixtures() {
        let want: Vec<Expected> = f.json["batches"]
            .as_array()
            .expect("batches")
            .iter()
            .flat_map(expected_records)
            .collect();
        let last = f.json["batches"]
            .as_array()
            .and_then(|b| b.last())
            .expect("a batch");
        let want_next = int(last, "base_offset") + int(last, "last_offset_delta") + 1;
        let uncompressed = text(&f.json, "codec") == "none";
        let buf_range = f.bin.as_ptr() as usize..f.bin.as_ptr() as usize + f.bin.len();

        let mut fetch = FetchRecords::new(f.bin.clone(), DecodeOptions::default(), 0);
        let mut got = Vec::new();
        for r in fetch.by_ref() {
            match r {
                Ok(r) => {
                    if uncompressed {
                        if let Some(v) = r.value_bytes().filter(|v| !v.is_empty()) {
                            let p = v.as_ptr() as usize;
                            if !buf_range.contains(&p) {
                                let _ = writeln!(
                                    report,
                                    "{} offset {}: value is not a slice of the fetch buffer",
                                    f.name,
                                    r.offset()
                                );
                            }
                        }
                    }
                    got.push(Expected {
                        offset: r.offset(),
                        timestamp: r.timestamp(),
                        key: r.key().map(<[u8]>::to_vec),
                        value: r.value().map(<[u8]>::to_vec),
                        headers: decoded_headers(r.headers()),
                    });
                }
                Err(e) => {
                    let _ = writeln!(report, "{}: FetchRecords error: {e}", f.name);
                    break;
                }
            }
        }
        compare_records(
            &mut report,
            &format!("{} (FetchRecords)", f.name),
            &got,
            &want,
        );
        check!(
            report,
            f.name,
            "FetchRecords::next_offset",
            fetch.next_offset(),
            want_next
        );
        check!(
            report,
            f.name,
            "FetchRecords::remaining_bytes",
            fetch.remaining_bytes(),
            0
        );
    }
    assert!(
        report.is_empty(),
        "FetchRecords disagrees with the golden fixtures:\n{report}"
    );
}

/// Flipping one byte in the records region of a fixture's first batch is caught by the CRC check.
#[test]
fn golden_batches_corruption_is_detected_by_crc() {
    for f in fixtures() {
        let mut bytes = f.bin.to_vec();
        // Byte 70 lies in the first batch's records region (after the 61-byte header) for every
        // fixture; each first batch is larger than that.
        assert!(bytes.len() > 70, "{}: fixture too small", f.name);
        bytes[70] ^= 0x5a;
        let first = RecordBatches::new(Bytes::from(bytes), DecodeOptions::default()).next();
        match first {
            Some(Err(BatchError::CrcMismatch { .. })) => {}
            other => panic!("{}: expected a CRC mismatch, got {other:?}", f.name),
        }
    }
}
