//! The record batch decoders on arbitrary bytes (a Fetch partition's `records` field): every batch,
//! record, key, value and header is touched, through `RecordBatches` (borrowed and owned record
//! iterators, control records) and through `FetchRecords` (read_uncommitted and read_committed).
//!
//! Byte 0 holds options: bit 0 verifies CRCs (off lets the fuzzer reach past the CRC check into
//! records and compressed bodies), bits 1–2 pick the decompressed-size cap, bits 3–4 the batch-size
//! cap. The rest is the records bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mephisto_wire::record::{
    AbortedTransactions, BatchRecords, DecodeOptions, FetchRecords, RecordBatch, RecordBatches,
};

const DECOMPRESSED_CAPS: [usize; 4] = [0, 256, 64 * 1024, 1 << 20];
const BATCH_CAPS: [usize; 4] = [61, 1024, 64 * 1024, 1 << 20];

fn touch_bytes(b: Option<&[u8]>) -> usize {
    b.map_or(usize::MAX, |s| {
        s.iter()
            .fold(s.len(), |a, &x| a.wrapping_add(usize::from(x)))
    })
}

fn touch_records(records: &BatchRecords, batch: &RecordBatch) -> usize {
    let mut acc = 0usize;
    let mut yielded = 0usize;
    for r in records {
        let Ok(r) = r else { break };
        yielded += 1;
        assert_eq!(
            r.offset(),
            batch
                .base_offset()
                .wrapping_add(i64::from(r.offset_delta()))
        );
        acc = acc
            .wrapping_add(r.timestamp() as usize)
            .wrapping_add(r.sequence() as usize)
            .wrapping_add(r.attributes() as usize)
            .wrapping_add(r.size_in_bytes())
            .wrapping_add(touch_bytes(r.key()))
            .wrapping_add(touch_bytes(r.value()));
        assert_eq!(r.key_bytes().as_deref(), r.key());
        assert_eq!(r.value_bytes().as_deref(), r.value());
        let mut n = 0;
        for h in r.headers() {
            n += 1;
            let _ = h.key_str();
            assert_eq!(&h.key_bytes()[..], h.key());
            assert_eq!(h.value_bytes().as_deref(), h.value());
            acc = acc
                .wrapping_add(touch_bytes(Some(h.key())))
                .wrapping_add(touch_bytes(h.value()));
        }
        assert_eq!(n, r.header_count());
        let owned = r.to_record();
        assert_eq!(owned.offset(), r.offset());
        assert_eq!(owned.key(), r.key());
        assert_eq!(owned.value(), r.value());
        assert_eq!(owned.headers().count(), r.header_count());
    }
    assert!(yielded <= records.declared_count());
    // The owning iterator yields the same records.
    let owned: Vec<_> = records.clone().into_iter().map_while(Result::ok).collect();
    assert_eq!(owned.len(), yielded);
    acc
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let options = DecodeOptions {
        verify_crc: flags & 1 != 0,
        max_decompressed_size: DECOMPRESSED_CAPS[usize::from((flags >> 1) & 3)],
        max_batch_size: BATCH_CAPS[usize::from((flags >> 3) & 3)],
    };
    let bytes = Bytes::copy_from_slice(rest);

    let mut acc = 0usize;
    let mut batches = RecordBatches::new(bytes.clone(), options);
    for batch in batches.by_ref() {
        let Ok(batch) = batch else { break };
        if options.verify_crc {
            assert_eq!(batch.crc(), batch.compute_crc());
        }
        assert!(batch.size_in_bytes() <= options.max_batch_size);
        assert!(batch.record_count() >= 0);
        let _ = (
            batch.header(),
            batch.partition_leader_epoch(),
            batch.magic(),
            batch.attributes(),
            batch.compression(),
            batch.timestamp_type(),
            batch.is_transactional(),
            batch.is_control(),
            batch.delete_horizon_ms(),
            batch.last_offset(),
            batch.next_offset(),
            batch.max_timestamp(),
            batch.has_producer_id(),
            batch.producer_epoch(),
            batch.base_sequence(),
            batch.raw_records(),
        );
        let _ = batch.control_record();
        if let Ok(records) = batch.records() {
            assert!(
                records.as_bytes().len()
                    <= options.max_decompressed_size.max(batch.raw_records().len())
            );
            acc = acc.wrapping_add(touch_records(&records, &batch));
        }
    }
    assert!(batches.remaining_bytes() <= bytes.len());

    // The same bytes as one batch.
    if let Ok(batch) = RecordBatch::parse(bytes.clone(), &options) {
        if let Ok(records) = batch.records() {
            acc = acc.wrapping_add(touch_records(&records, &batch));
        }
    }

    // Through the consumer's iterator, read_uncommitted then read_committed with aborted
    // transactions taken from the first bytes.
    let fetch_offset = rest.first().map_or(0, |&b| i64::from(b) - 8);
    let mut fetch = FetchRecords::new(bytes.clone(), options, fetch_offset);
    let mut last = i64::MIN;
    for r in fetch.by_ref() {
        let Ok(r) = r else { break };
        assert!(r.offset() >= fetch_offset);
        // Strictly increasing (the position only wraps past i64::MAX, which Java also does).
        assert!(r.offset() > last || last == i64::MIN || last == i64::MAX);
        last = r.offset();
        acc = acc
            .wrapping_add(touch_bytes(r.key()))
            .wrapping_add(touch_bytes(r.value()));
        for h in r.headers() {
            acc = acc.wrapping_add(touch_bytes(h.value()));
        }
    }
    let _ = (
        fetch.next_offset(),
        fetch.last_leader_epoch(),
        fetch.remaining_bytes(),
    );

    let aborted = AbortedTransactions::new(
        rest.chunks_exact(2)
            .take(4)
            .map(|c| (i64::from(c[0] % 4) - 1, i64::from(c[1]) - 4)),
    );
    let committed = FetchRecords::read_committed(bytes, options, fetch_offset, aborted);
    for r in committed {
        let Ok(r) = r else { break };
        acc = acc.wrapping_add(touch_bytes(r.value()));
    }
    std::hint::black_box(acc);
});
