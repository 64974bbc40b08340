//! One test per validation rule of the record batch v2 decoder (protocol.md §3.5): a valid batch
//! is built with the encoder, one field is corrupted, the CRC is recomputed where needed so that
//! the rule under test is the one that fires, and the exact error variant is checked.

use bytes::Bytes;
use mephisto_wire::compression::Compression;
use mephisto_wire::record::{
    BatchEncoder, BatchError, BatchSpec, ControlError, ControlRecordType, DecodeOptions, NewHeader,
    NewRecord, RecordBatch, RecordBatches, RecordError, RecordField,
};
use mephisto_wire::varint::{write_varint, write_varlong};

const HEADER: usize = 61;
const BATCH_LENGTH_AT: usize = 8;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const COUNT_AT: usize = 57;

fn encode(spec: &BatchSpec, records: &[NewRecord<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    BatchEncoder::new().encode(spec, records, &mut out).unwrap();
    out
}

fn one_record_batch() -> Vec<u8> {
    encode(
        &BatchSpec::default(),
        &[NewRecord::new(Some(&b"key"[..]), Some(&b"value"[..]), 1000)],
    )
}

fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

fn set_i32(batch: &mut [u8], at: usize, v: i32) {
    batch[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Replaces the records region of `batch` (taken from the encoder) with `region` and the record
/// count with `count`, fixing the batch length and CRC.
fn with_region(batch: &[u8], region: &[u8], count: i32) -> Vec<u8> {
    let mut out = batch[..HEADER].to_vec();
    out.extend_from_slice(region);
    let len = (out.len() - 12) as i32;
    set_i32(&mut out, BATCH_LENGTH_AT, len);
    set_i32(&mut out, COUNT_AT, count);
    fix_crc(&mut out);
    out
}

/// A field of a hand-written record.
enum F<'a> {
    Byte(u8),
    Varint(i32),
    Varlong(i64),
    Raw(&'a [u8]),
}

fn fields(fs: &[F<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for f in fs {
        match f {
            F::Byte(b) => body.push(*b),
            F::Varint(v) => write_varint(&mut body, *v),
            F::Varlong(v) => write_varlong(&mut body, *v),
            F::Raw(r) => body.extend_from_slice(r),
        }
    }
    body
}

/// A record with its length prefix computed from its fields.
fn record(fs: &[F<'_>]) -> Vec<u8> {
    let body = fields(fs);
    let mut out = Vec::new();
    write_varint(&mut out, body.len() as i32);
    out.extend_from_slice(&body);
    out
}

/// Fields of the record `one_record_batch` encodes: ts delta 0, offset delta 0, key, value, no
/// headers.
fn valid_fields() -> Vec<F<'static>> {
    vec![
        F::Byte(0),
        F::Varlong(0),
        F::Varint(0),
        F::Varint(3),
        F::Raw(b"key"),
        F::Varint(5),
        F::Raw(b"value"),
        F::Varint(0),
    ]
}

fn decode_one(bytes: Vec<u8>, options: DecodeOptions) -> Result<RecordBatch, BatchError> {
    let mut it = RecordBatches::new(Bytes::from(bytes), options);
    let first = it.next().expect("one item");
    assert!(it.next().is_none(), "iteration ends after the first item");
    first
}

/// Decodes the single batch in `bytes` and collects its records; the first error wins.
fn record_error(bytes: Vec<u8>) -> RecordError {
    let batch = decode_one(bytes, DecodeOptions::default()).expect("batch header valid");
    let records = batch.records().expect("records available");
    let mut errors = records.iter().filter_map(Result::err);
    let first = errors.next().expect("a record error");
    // Both iterators agree.
    let owned = records
        .clone()
        .into_iter()
        .find_map(Result::err)
        .expect("owned iterator error");
    assert_eq!(first, owned);
    first
}

fn region_batch(region: &[u8], count: i32) -> Vec<u8> {
    with_region(&one_record_batch(), region, count)
}

#[test]
fn hand_built_record_matches_encoder() {
    let batch = one_record_batch();
    assert_eq!(&batch[HEADER..], record(&valid_fields()).as_slice());
    let rebuilt = region_batch(&record(&valid_fields()), 1);
    assert_eq!(rebuilt, batch);
    let b = decode_one(rebuilt, DecodeOptions::default()).unwrap();
    let records: Vec<_> = b
        .records()
        .unwrap()
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key(), Some(&b"key"[..]));
}

// ---- framing -------------------------------------------------------------------------------

#[test]
fn batch_length_below_minimum() {
    let mut b = one_record_batch();
    set_i32(&mut b, BATCH_LENGTH_AT, 48);
    assert!(matches!(
        decode_one(b, DecodeOptions::default()),
        Err(BatchError::BatchLengthTooSmall {
            base_offset: 0,
            batch_length: 48,
            minimum: 49
        })
    ));
    let mut b = one_record_batch();
    set_i32(&mut b, BATCH_LENGTH_AT, -1);
    assert!(matches!(
        decode_one(b, DecodeOptions::default()),
        Err(BatchError::BatchLengthTooSmall {
            batch_length: -1,
            ..
        })
    ));
}

#[test]
fn batch_length_above_max_batch_size() {
    let b = one_record_batch();
    let size = b.len();
    let options = DecodeOptions {
        max_batch_size: size - 1,
        ..DecodeOptions::default()
    };
    match decode_one(b.clone(), options) {
        Err(BatchError::BatchTooLarge {
            base_offset: 0,
            size: s,
            max,
        }) => {
            assert_eq!((s, max), (size, size - 1));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Exactly at the limit is fine.
    let options = DecodeOptions {
        max_batch_size: size,
        ..DecodeOptions::default()
    };
    assert!(decode_one(b, options).is_ok());
}

#[test]
fn legacy_magic_is_a_distinct_error() {
    for magic in [0u8, 1] {
        let mut b = one_record_batch();
        b[MAGIC_AT] = magic;
        match decode_one(b, DecodeOptions::default()) {
            Err(BatchError::LegacyMagic {
                base_offset: 0,
                magic: m,
            }) => assert_eq!(m, magic as i8),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn unsupported_magic() {
    for magic in [3u8, 0xff] {
        let mut b = one_record_batch();
        b[MAGIC_AT] = magic;
        match decode_one(b, DecodeOptions::default()) {
            Err(BatchError::UnsupportedMagic { magic: m, .. }) => assert_eq!(m, magic as i8),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn crc_mismatch() {
    let good = one_record_batch();
    let stored = u32::from_be_bytes(good[CRC_AT..CRC_AT + 4].try_into().unwrap());
    let mut b = good.clone();
    let at = b.len() - 2; // last byte of the value (the header count follows)
    b[at] ^= 0x01;
    let computed = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
    match decode_one(b.clone(), DecodeOptions::default()) {
        Err(BatchError::CrcMismatch {
            base_offset: 0,
            stored: s,
            computed: c,
        }) => {
            assert_eq!((s, c), (stored, computed));
            assert_ne!(s, c);
        }
        other => panic!("unexpected {other:?}"),
    }
    // With verification off the batch decodes (and the value shows the flipped byte).
    let options = DecodeOptions {
        verify_crc: false,
        ..DecodeOptions::default()
    };
    let batch = decode_one(b, options).unwrap();
    let r = batch
        .records()
        .unwrap()
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(r.value(), Some(&b"valud"[..]));
}

#[test]
fn crc_covers_attributes_but_not_leader_epoch() {
    // The partition leader epoch (bytes 12..16) is outside the CRC.
    let mut b = one_record_batch();
    set_i32(&mut b, 12, 77);
    let batch = decode_one(b, DecodeOptions::default()).unwrap();
    assert_eq!(batch.partition_leader_epoch(), 77);
    // The attributes (byte 21) are inside it.
    let mut b = one_record_batch();
    b[ATTRIBUTES_AT + 1] ^= 0x10;
    assert!(matches!(
        decode_one(b, DecodeOptions::default()),
        Err(BatchError::CrcMismatch { .. })
    ));
}

#[test]
fn negative_record_count() {
    let mut b = one_record_batch();
    set_i32(&mut b, COUNT_AT, -1);
    fix_crc(&mut b);
    assert!(matches!(
        decode_one(b, DecodeOptions::default()),
        Err(BatchError::NegativeRecordCount {
            base_offset: 0,
            count: -1
        })
    ));
}

#[test]
fn unknown_compression_codec() {
    for codec in 5..=7u8 {
        let mut b = one_record_batch();
        b[ATTRIBUTES_AT + 1] |= codec;
        fix_crc(&mut b);
        match decode_one(b, DecodeOptions::default()) {
            Err(BatchError::UnknownCompression {
                base_offset: 0,
                codec: c,
            }) => {
                assert_eq!(c, i16::from(codec))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn compressed_batch(codec: Compression) -> Vec<u8> {
    let value = vec![b'x'; 10_000];
    let records: Vec<_> = (0..10)
        .map(|i| NewRecord::new(None, Some(&value[..]), i))
        .collect();
    encode(
        &BatchSpec {
            compression: codec,
            ..BatchSpec::default()
        },
        &records,
    )
}

#[test]
fn decompression_error() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let good = compressed_batch(codec);
        assert!(good.len() < 10_000, "{codec:?} compresses");
        // Cut the compressed payload in half (keeping the header consistent).
        let region = &good[HEADER..HEADER + (good.len() - HEADER) / 2];
        let b = with_region(&good, region, 10);
        let batch = decode_one(b, DecodeOptions::default()).unwrap();
        match batch.records() {
            Err(BatchError::Decompression {
                base_offset: 0,
                codec: c,
                ..
            }) => assert_eq!(c, codec),
            other => panic!("{codec:?}: unexpected {other:?}"),
        }
    }
}

#[test]
fn decompressed_size_over_cap() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let b = compressed_batch(codec);
        let options = DecodeOptions {
            max_decompressed_size: 50_000,
            ..DecodeOptions::default()
        };
        let batch = decode_one(b.clone(), options).unwrap();
        match batch.records() {
            Err(BatchError::DecompressedTooLarge {
                base_offset: 0,
                codec: c,
                limit,
            }) => {
                assert_eq!((c, limit), (codec, 50_000));
            }
            other => panic!("{codec:?}: unexpected {other:?}"),
        }
        // A cap above the real size is fine.
        let options = DecodeOptions {
            max_decompressed_size: 200_000,
            ..DecodeOptions::default()
        };
        let batch = decode_one(b, options).unwrap();
        assert_eq!(batch.records().unwrap().iter().count(), 10);
    }
}

// ---- records -------------------------------------------------------------------------------

#[test]
fn negative_record_length() {
    let mut region = Vec::new();
    write_varint(&mut region, -2);
    region.extend_from_slice(&fields(&valid_fields()));
    assert_eq!(
        record_error(region_batch(&region, 1)),
        RecordError::NegativeRecordLength {
            index: 0,
            position: 0,
            length: -2
        }
    );
}

#[test]
fn record_length_beyond_remaining() {
    let body = fields(&valid_fields());
    let mut region = Vec::new();
    write_varint(&mut region, body.len() as i32 + 1);
    region.extend_from_slice(&body);
    assert_eq!(
        record_error(region_batch(&region, 1)),
        RecordError::RecordLengthOutOfBounds {
            index: 0,
            position: 0,
            length: body.len() as i32 + 1,
            remaining: body.len(),
        }
    );
}

#[test]
fn record_length_varint_truncated_and_too_long() {
    // The second record's length varint is cut at the end of the region.
    let mut region = record(&valid_fields());
    let second_at = region.len();
    region.push(0x80);
    assert_eq!(
        record_error(region_batch(&region, 2)),
        RecordError::VarintTruncated {
            index: 1,
            position: second_at,
            field: RecordField::Length
        }
    );
    // Six bytes with continuation bits.
    let mut region = record(&valid_fields());
    region.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    assert_eq!(
        record_error(region_batch(&region, 2)),
        RecordError::VarintTooLong {
            index: 1,
            position: second_at,
            field: RecordField::Length
        }
    );
}

#[test]
fn field_varint_truncated_inside_record() {
    // The record's declared length ends in the middle of the offset delta varint.
    let body = fields(&[F::Byte(0), F::Varlong(0), F::Raw(&[0x80])]);
    let mut region = Vec::new();
    write_varint(&mut region, body.len() as i32);
    region.extend_from_slice(&body);
    assert_eq!(
        record_error(region_batch(&region, 1)),
        RecordError::VarintTruncated {
            index: 0,
            position: 0,
            field: RecordField::OffsetDelta
        }
    );
}

#[test]
fn field_varint_too_long() {
    // Key length written in 6 bytes.
    let region = record(&[
        F::Byte(0),
        F::Varlong(0),
        F::Varint(0),
        F::Raw(&[0x86, 0x80, 0x80, 0x80, 0x80, 0x00]),
        F::Raw(b"key"),
        F::Varint(-1),
        F::Varint(0),
    ]);
    assert_eq!(
        record_error(region_batch(&region, 1)),
        RecordError::VarintTooLong {
            index: 0,
            position: 0,
            field: RecordField::KeyLength
        }
    );
    // Timestamp delta varlong written in 11 bytes.
    let mut ts = vec![0x80; 10];
    ts.push(0);
    let region = record(&[
        F::Byte(0),
        F::Raw(&ts),
        F::Varint(0),
        F::Varint(-1),
        F::Varint(-1),
        F::Varint(0),
    ]);
    assert_eq!(
        record_error(region_batch(&region, 1)),
        RecordError::VarintTooLong {
            index: 0,
            position: 0,
            field: RecordField::TimestampDelta
        }
    );
}

#[test]
fn key_and_value_length_below_minus_one() {
    let region = record(&[
        F::Byte(0),
        F::Varlong(0),
        F::Varint(0),
        F::Varint(-2),
        F::Varint(-1),
        F::Varint(0),
    ]);
    assert_eq!(
        record_error(region_batch(&region, 1)),
        RecordError::InvalidLength {
            index: 0,
            position: 0,
            field: RecordField::KeyLength,
            length: -2
        }
    );
    let region = record(&[
        F::Byte(0),
        F::Varlong(0),
        F::Varint(0),
        F::Varint(-1),
        F::Varint(-5),
        F::Varint(0),
    ]);
    assert_eq!(
        record_error(region_batch(&region, 1)),
        RecordError::InvalidLength {
            index: 0,
            position: 0,
            field: RecordField::ValueLength,
            length: -5
        }
    );
}

#[test]
fn key_and_value_out_of_bounds() {
    // Key length 10, but only 3 bytes follow in the record.
    let region = record(&[
        F::Byte(0),
        F::Varlong(0),
        F::Varint(0),
        F::Varint(10),
        F::Raw(b"key"),
    ]);
    assert_eq!(
        record_error(region_batch(&region, 1)),
        RecordError::FieldOutOfBounds {
            index: 0,
            position: 0,
            field: RecordField::Key,
            length: 10,
            remaining: 3,
        }
    );
    let region = record(&[
        F::Byte(0),
        F::Varlong(0),
        F::Varint(0),
        F::Varint(-1),
        F::Varint(6),
        F::Raw(b"value"),
    ]);
    assert_eq!(
        record_error(region_batch(&region, 1)),
        RecordError::FieldOutOfBounds {
            index: 0,
            position: 0,
            field: RecordField::Value,
            length: 6,
            remaining: 5,
        }
    );
}

#[test]
fn empty_record_has_no_attributes() {
    let region = [0u8]; // length 0
    assert_eq!(
        record_error(region_batch(&region, 1)),
        RecordError::FieldOutOfBounds {
            index: 0,
            position: 0,
            field: RecordField::Attributes,
            length: 1,
            remaining: 0,
        }
    );
}

#[test]
fn negative_header_count() {
    let mut fs = valid_fields();
    *fs.last_mut().unwrap() = F::Varint(-1);
    assert_eq!(
        record_error(region_batch(&record(&fs), 1)),
        RecordError::NegativeHeaderCount {
            index: 0,
            position: 0,
            count: -1
        }
    );
}

#[test]
fn header_count_larger_than_remaining_bytes() {
    let mut fs = valid_fields();
    *fs.last_mut().unwrap() = F::Varint(3);
    fs.push(F::Raw(&[0, 0])); // 2 bytes left, 3 headers declared
    assert_eq!(
        record_error(region_batch(&record(&fs), 1)),
        RecordError::HeaderCountTooLarge {
            index: 0,
            position: 0,
            count: 3,
            remaining: 2
        }
    );
}

#[test]
fn negative_header_key_length() {
    let mut fs = valid_fields();
    *fs.last_mut().unwrap() = F::Varint(2);
    fs.extend([
        F::Varint(1),
        F::Raw(b"a"),
        F::Varint(-1),
        F::Varint(-1), // second header: key length -1
        F::Varint(-1),
    ]);
    assert_eq!(
        record_error(region_batch(&record(&fs), 1)),
        RecordError::NegativeHeaderKeyLength {
            index: 0,
            position: 0,
            header: 1,
            length: -1
        }
    );
}

#[test]
fn header_value_length_below_minus_one_and_out_of_bounds() {
    let mut fs = valid_fields();
    *fs.last_mut().unwrap() = F::Varint(1);
    fs.extend([F::Varint(1), F::Raw(b"a"), F::Varint(-3)]);
    assert_eq!(
        record_error(region_batch(&record(&fs), 1)),
        RecordError::InvalidLength {
            index: 0,
            position: 0,
            field: RecordField::HeaderValueLength,
            length: -3,
        }
    );
    let mut fs = valid_fields();
    *fs.last_mut().unwrap() = F::Varint(1);
    fs.extend([F::Varint(5), F::Raw(b"abc")]);
    assert_eq!(
        record_error(region_batch(&record(&fs), 1)),
        RecordError::FieldOutOfBounds {
            index: 0,
            position: 0,
            field: RecordField::HeaderKey,
            length: 5,
            remaining: 3,
        }
    );
    let mut fs = valid_fields();
    *fs.last_mut().unwrap() = F::Varint(1);
    fs.extend([F::Varint(1), F::Raw(b"a"), F::Varint(4), F::Raw(b"xy")]);
    assert_eq!(
        record_error(region_batch(&record(&fs), 1)),
        RecordError::FieldOutOfBounds {
            index: 0,
            position: 0,
            field: RecordField::HeaderValue,
            length: 4,
            remaining: 2,
        }
    );
}

#[test]
fn record_not_consuming_its_declared_length() {
    // One extra byte inside the record, counted by its length.
    let mut fs = valid_fields();
    fs.push(F::Byte(0xaa));
    let body = fields(&fs);
    assert_eq!(
        record_error(region_batch(&record(&fs), 1)),
        RecordError::RecordSizeMismatch {
            index: 0,
            position: 0,
            declared: body.len(),
            consumed: body.len() - 1,
        }
    );
}

#[test]
fn bytes_left_after_declared_record_count() {
    let mut region = record(&valid_fields());
    region.extend_from_slice(&record(&valid_fields()));
    let one = record(&valid_fields()).len();
    // Two records present, one declared.
    let b = region_batch(&region, 1);
    let batch = decode_one(b, DecodeOptions::default()).unwrap();
    let records = batch.records().unwrap();
    let items: Vec<_> = records.iter().collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(
        items[1].as_ref().unwrap_err(),
        &RecordError::TrailingBytes {
            declared: 1,
            remaining: one
        }
    );
}

#[test]
fn fewer_records_than_declared() {
    let region = record(&valid_fields());
    let b = region_batch(&region, 3);
    let batch = decode_one(b, DecodeOptions::default()).unwrap();
    let items: Vec<_> = batch.records().unwrap().into_iter().collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(
        items[1].as_ref().unwrap_err(),
        &RecordError::FewerRecordsThanDeclared {
            declared: 3,
            found: 1
        }
    );
}

#[test]
fn errors_report_record_index_and_position() {
    let first = record(&valid_fields());
    let mut region = first.clone();
    region.extend_from_slice(&first);
    let mut bad = valid_fields();
    bad[3] = F::Varint(-7);
    region.extend_from_slice(&record(&bad));
    assert_eq!(
        record_error(region_batch(&region, 3)),
        RecordError::InvalidLength {
            index: 2,
            position: 2 * first.len(),
            field: RecordField::KeyLength,
            length: -7,
        }
    );
}

#[test]
fn record_errors_in_compressed_batches() {
    // The same rules apply to the decompressed region.
    let mut region = record(&valid_fields());
    region.push(0x80);
    let mut compressed = Vec::new();
    mephisto_wire::compression::compress(Compression::Lz4, &region, &mut compressed).unwrap();
    let template = encode(
        &BatchSpec {
            compression: Compression::Lz4,
            ..BatchSpec::default()
        },
        &[NewRecord::new(None, None, 0)],
    );
    let b = with_region(&template, &compressed, 2);
    assert_eq!(
        record_error(b),
        RecordError::VarintTruncated {
            index: 1,
            position: region.len() - 1,
            field: RecordField::Length,
        }
    );
}

#[test]
fn record_errors_surface_through_fetch_records() {
    let mut fs = valid_fields();
    *fs.last_mut().unwrap() = F::Varint(-1);
    let b = region_batch(&record(&fs), 1);
    let mut it =
        mephisto_wire::record::FetchRecords::new(Bytes::from(b), DecodeOptions::default(), 0);
    match it.next() {
        Some(Err(BatchError::Record {
            base_offset: 0,
            source,
        })) => {
            assert!(matches!(source, RecordError::NegativeHeaderCount { .. }))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(it.next().is_none());
}

#[test]
fn single_batch_parse_reports_truncation() {
    let b = one_record_batch();
    let n = b.len();
    match RecordBatch::parse(Bytes::from(b[..n - 1].to_vec()), &DecodeOptions::default()) {
        Err(BatchError::Truncated { needed, available }) => {
            assert_eq!((needed, available), (n, n - 1))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(RecordBatch::parse(Bytes::from(b), &DecodeOptions::default()).is_ok());
}

// ---- control records -------------------------------------------------------------------------

fn control_with_key(key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let spec = BatchSpec {
        producer_id: 9,
        producer_epoch: 0,
        ..BatchSpec::default()
    };
    BatchEncoder::new()
        .encode_control(&spec, ControlRecordType::Commit, 0, 0, &mut out)
        .unwrap();
    let region = record(&[
        F::Byte(0),
        F::Varlong(0),
        F::Varint(0),
        F::Varint(key.len() as i32),
        F::Raw(key),
        F::Varint(value.map_or(-1, |v| v.len() as i32)),
        F::Raw(value.unwrap_or_default()),
        F::Varint(0),
    ]);
    with_region(&out, &region, 1)
}

#[test]
fn control_record_key_too_short_and_bad_version() {
    let batch = decode_one(control_with_key(&[0, 0, 0], None), DecodeOptions::default()).unwrap();
    assert!(batch.is_control());
    assert!(matches!(
        batch.control_record(),
        Err(BatchError::Control {
            base_offset: 0,
            source: ControlError::KeyTooShort { len: 3 }
        })
    ));
    let batch = decode_one(
        control_with_key(&[0xff, 0xff, 0, 0], None),
        DecodeOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        batch.control_record(),
        Err(BatchError::Control {
            source: ControlError::InvalidKeyVersion { version: -1 },
            ..
        })
    ));
}

#[test]
fn end_txn_marker_value_errors() {
    use mephisto_wire::record::{ControlRecord, EndTxnMarker};
    assert_eq!(EndTxnMarker::parse(None), Err(ControlError::NullValue));
    assert_eq!(
        EndTxnMarker::parse(Some(&[0, 0, 0, 0, 1])),
        Err(ControlError::ValueTooShort { len: 5 })
    );
    assert_eq!(
        EndTxnMarker::parse(Some(&[0x80, 0, 0, 0, 0, 1])),
        Err(ControlError::InvalidValueVersion { version: i16::MIN })
    );
    assert_eq!(ControlRecord::parse(None), Err(ControlError::NullKey));
    // Newer versions with extra bytes are accepted.
    assert_eq!(
        EndTxnMarker::parse(Some(&[0, 1, 0, 0, 0, 7, 0xaa])),
        Ok(EndTxnMarker {
            version: 1,
            coordinator_epoch: 7
        })
    );
    assert_eq!(
        ControlRecord::parse(Some(&[0, 0, 0, 5])).unwrap().kind,
        ControlRecordType::Unknown(5)
    );
}

#[test]
fn headers_are_validated_before_iteration() {
    // A record whose second header is broken fails as a whole; the headers of valid records
    // iterate without further checks.
    let h = [
        NewHeader {
            key: "a",
            value: None,
        },
        NewHeader {
            key: "b",
            value: Some(b"1"),
        },
    ];
    let b = encode(
        &BatchSpec::default(),
        &[NewRecord::new(None, Some(&b"v"[..]), 0).with_headers(&h)],
    );
    let batch = decode_one(b, DecodeOptions::default()).unwrap();
    let records = batch.records().unwrap();
    let r = records.iter().next().unwrap().unwrap();
    let hs: Vec<_> = r
        .headers()
        .map(|h| (h.key_str().unwrap(), h.value()))
        .collect();
    assert_eq!(hs, vec![("a", None), ("b", Some(&b"1"[..]))]);
}

#[test]
fn an_invalid_record_whose_length_holds_costs_only_itself() {
    // Three records; the middle one's header count is -1 (invalid) but its length prefix is
    // right: both iterators report it and go on with the third.
    let mut bad = valid_fields();
    bad[2] = F::Varint(1);
    *bad.last_mut().unwrap() = F::Varint(-1);
    let mut third = valid_fields();
    third[2] = F::Varint(2);
    let mut region = record(&valid_fields());
    region.extend_from_slice(&record(&bad));
    region.extend_from_slice(&record(&third));
    let b = region_batch(&region, 3);
    let batch = decode_one(b, DecodeOptions::default()).expect("batch header valid");
    let records = batch.records().expect("records available");
    let borrowed: Vec<Result<i64, ()>> = records
        .iter()
        .map(|r| r.map(|r| r.offset()).map_err(|_| ()))
        .collect();
    assert_eq!(borrowed, vec![Ok(0), Err(()), Ok(2)]);
    let owned: Vec<Result<i64, ()>> = records
        .into_iter()
        .map(|r| r.map(|r| r.offset()).map_err(|_| ()))
        .collect();
    assert_eq!(owned, vec![Ok(0), Err(()), Ok(2)]);
}

#[test]
fn a_record_whose_length_is_out_of_bounds_ends_the_iteration() {
    let mut region = record(&valid_fields());
    // A length prefix larger than what is left.
    write_varint(&mut region, 1000);
    region.extend_from_slice(b"short");
    let b = region_batch(&region, 2);
    let batch = decode_one(b, DecodeOptions::default()).expect("batch header valid");
    let records = batch.records().expect("records available");
    let got: Vec<bool> = records.iter().map(|r| r.is_ok()).collect();
    assert_eq!(got, vec![true, false]);
}
