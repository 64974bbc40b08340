//! Heap allocations made while decoding, counted with a global allocator (on this thread only):
//! uncompressed batches decode with no allocation per record or per batch beyond the one-time
//! promotion of the `Bytes` buffer; compressed batches allocate the decompressed body once and
//! nothing per record. Encoding with `BatchState` into a buffer with room allocates nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use mephisto_wire::compression::Compression;
use mephisto_wire::record::{
    record_size_bound, BatchEncoder, BatchSpec, BatchState, DecodeOptions, FetchRecords, NewHeader,
    NewRecord, RecordBatches, BATCH_HEADER_SIZE,
};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACK.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACK.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count_allocs<T>(f: impl FnOnce() -> T) -> (T, usize) {
    ALLOCS.store(0, Ordering::Relaxed);
    TRACK.with(|t| t.set(true));
    let out = f();
    TRACK.with(|t| t.set(false));
    (out, ALLOCS.load(Ordering::Relaxed))
}

fn fetch_buffer(codec: Compression, batches: usize, per_batch: usize) -> Bytes {
    let headers = [
        NewHeader {
            key: "trace-id",
            value: Some(b"0123456789abcdef"),
        },
        NewHeader {
            key: "null",
            value: None,
        },
    ];
    let value = [7u8; 100];
    let mut out = Vec::new();
    let mut encoder = BatchEncoder::new();
    for b in 0..batches {
        let keys: Vec<[u8; 16]> = (0..per_batch).map(|i| [(i % 251) as u8; 16]).collect();
        let records: Vec<_> = keys
            .iter()
            .map(|k| {
                NewRecord::new(Some(&k[..]), Some(&value[..]), 1_700_000_000_000)
                    .with_headers(&headers)
            })
            .collect();
        let spec = BatchSpec {
            base_offset: (b * per_batch) as i64,
            compression: codec,
            ..BatchSpec::default()
        };
        encoder.encode(&spec, &records, &mut out).unwrap();
    }
    Bytes::from(out)
}

/// Walks every field of every record through the borrowing API; returns a checksum.
fn walk(buf: &Bytes) -> usize {
    let mut sum = 0;
    for batch in RecordBatches::new(buf.clone(), DecodeOptions::default()) {
        let records = batch.unwrap().records().unwrap();
        for r in &records {
            let r = r.unwrap();
            sum += r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len);
            for h in r.headers() {
                sum += h.key_str().unwrap().len() + h.value().map_or(0, <[u8]>::len);
            }
        }
    }
    sum
}

#[test]
fn allocations_do_not_grow_with_records() {
    // Uncompressed: the borrowing path allocates nothing once the buffer is shared (the first
    // clone of a `Bytes` made from a `Vec` promotes it, one allocation).
    for per_batch in [10, 1000] {
        let buf = fetch_buffer(Compression::None, 3, per_batch);
        let _promote = buf.clone();
        let (sum, allocs) = count_allocs(|| walk(&buf));
        assert_eq!(sum, 3 * per_batch * (16 + 100 + 8 + 16 + 4));
        assert_eq!(allocs, 0, "uncompressed, {per_batch} records per batch");

        // Owned records: one `Bytes` slice each, still no heap allocation.
        let (n, allocs) = count_allocs(|| {
            FetchRecords::new(buf.clone(), DecodeOptions::default(), 0)
                .map(|r| r.unwrap().value().map_or(0, <[u8]>::len))
                .sum::<usize>()
        });
        assert_eq!(n, 3 * per_batch * 100);
        assert_eq!(allocs, 0, "owned records, {per_batch} records per batch");
    }

    // Compressed: `records()` calls `compression::decompress` once (its allocations are the
    // codec's: the output buffer and its growth); iterating the records allocates nothing.
    for codec in [
        Compression::Lz4,
        Compression::Snappy,
        Compression::Zstd,
        Compression::Gzip,
    ] {
        let mut per_batch_allocs = Vec::new();
        for per_batch in [10, 1000] {
            let buf = fetch_buffer(codec, 1, per_batch);
            let _promote = buf.clone();
            let batch = RecordBatches::new(buf.clone(), DecodeOptions::default())
                .next()
                .unwrap()
                .unwrap();
            let (records, decompress_allocs) = count_allocs(|| batch.records().unwrap());
            assert!(decompress_allocs >= 1);
            per_batch_allocs.push(decompress_allocs);
            let (sum, allocs) = count_allocs(|| {
                let mut sum = 0;
                for r in &records {
                    let r = r.unwrap();
                    sum += r.value().map_or(0, <[u8]>::len);
                    for h in r.headers() {
                        sum += h.key().len();
                    }
                }
                sum
            });
            assert_eq!(sum, per_batch * (100 + 8 + 4));
            // The decompressed `Bytes` is promoted to shared on its first clone, if any.
            assert_eq!(allocs, 0, "{codec:?} record iteration, {per_batch} records");
        }
        println!("{codec:?}: allocations in records(): {per_batch_allocs:?}");
    }
}

#[test]
fn batch_state_appends_and_seals_without_allocating() {
    let headers = [NewHeader {
        key: "trace-id",
        value: Some(b"0123456789abcdef"),
    }];
    let value = [7u8; 100];
    let record = NewRecord::new(Some(&b"key"[..]), Some(&value[..]), 1_700_000_000_000)
        .with_headers(&headers);
    let bound = record_size_bound(&record).unwrap();
    let mut buf = Vec::with_capacity(BATCH_HEADER_SIZE + 1000 * bound);
    BatchState::write_header_space(&mut buf);
    let mut state = BatchState::new();
    let spec = BatchSpec {
        producer_id: 7,
        producer_epoch: 1,
        base_sequence: 0,
        ..BatchSpec::default()
    };
    let (sealed, allocs) = count_allocs(|| {
        for _ in 0..1000 {
            state.append(&mut buf, &record).unwrap();
        }
        state.seal(&spec, &mut buf).unwrap()
    });
    assert_eq!(allocs, 0);
    assert_eq!(sealed.record_count, 1000);
    assert_eq!(
        RecordBatches::new(Bytes::from(buf), DecodeOptions::default()).count(),
        1
    );
}
