//! Fetch-response level behaviour: truncated trailing batches, offsets with compaction gaps,
//! empty batches, control batches, the read_committed aborted-transactions filter, fetch-offset
//! skipping, log-append time and the delete horizon.

use bytes::Bytes;
use mephisto_wire::compression::Compression;
use mephisto_wire::record::{
    AbortedTransactions, BatchEncoder, BatchSpec, ControlRecordType, DecodeOptions, EndTxnMarker,
    FetchRecords, NewRecord, RecordBatch, RecordBatches, TimestampType,
};

fn opts() -> DecodeOptions {
    DecodeOptions::default()
}

/// Appends a data batch at `base_offset` with `n` records whose values are their offsets.
fn data(out: &mut Vec<u8>, spec: BatchSpec, n: i64) {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| (spec.base_offset + i).to_string().into_bytes())
        .collect();
    let records: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NewRecord::new(None, Some(&v[..]), 1000 + i as i64))
        .collect();
    BatchEncoder::new().encode(&spec, &records, out).unwrap();
}

fn txn(base_offset: i64, producer_id: i64) -> BatchSpec {
    BatchSpec {
        base_offset,
        producer_id,
        producer_epoch: 0,
        base_sequence: 0,
        transactional: true,
        ..BatchSpec::default()
    }
}

fn marker(out: &mut Vec<u8>, base_offset: i64, producer_id: i64, kind: ControlRecordType) {
    BatchEncoder::new()
        .encode_control(&txn(base_offset, producer_id), kind, 4, 2000, out)
        .unwrap();
}

/// The offsets of the data records `it` yields (values hold the offsets).
fn offsets(it: FetchRecords) -> Vec<i64> {
    it.map(|r| {
        let r = r.unwrap();
        let value: i64 = std::str::from_utf8(r.value().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(value, r.offset());
        r.offset()
    })
    .collect()
}

#[test]
fn truncated_trailing_batch_ends_silently() {
    let mut out = Vec::new();
    data(&mut out, BatchSpec::default(), 3);
    let first = out.len();
    data(
        &mut out,
        BatchSpec {
            base_offset: 3,
            ..BatchSpec::default()
        },
        3,
    );
    // Every cut inside the second batch: shorter than 17 bytes, shorter than its length.
    for cut in [first + 1, first + 16, first + 17, first + 60, out.len() - 1] {
        let mut it = RecordBatches::new(Bytes::copy_from_slice(&out[..cut]), opts());
        let batch = it.next().unwrap().unwrap();
        assert_eq!(batch.base_offset(), 0);
        assert!(it.next().is_none(), "cut at {cut}");
        assert_eq!(it.remaining_bytes(), cut - first);
        // FetchRecords yields the complete batch's records and stops without error.
        let f = FetchRecords::new(Bytes::copy_from_slice(&out[..cut]), opts(), 0);
        assert_eq!(offsets(f), vec![0, 1, 2]);
    }
    // Only a partial batch: nothing, no error.
    let mut it = RecordBatches::new(Bytes::copy_from_slice(&out[..first - 1]), opts());
    assert!(it.next().is_none());
    assert_eq!(it.remaining_bytes(), first - 1);
    assert!(RecordBatches::new(Bytes::new(), opts()).next().is_none());
}

#[test]
fn next_offset_with_compaction_gaps() {
    let mut out = Vec::new();
    let mut encoder = BatchEncoder::new();
    let mut w = encoder.writer(
        &BatchSpec {
            base_offset: 100,
            ..BatchSpec::default()
        },
        &mut out,
    );
    for delta in [0, 3, 7] {
        let v = (100 + delta).to_string();
        w.append_at(delta, &NewRecord::new(None, Some(v.as_bytes()), 0))
            .unwrap();
    }
    // Compaction removed the last records (up to delta 10) but kept the last offset delta.
    w.set_last_offset_delta(10).unwrap();
    w.finish().unwrap();
    let batch = RecordBatch::parse(Bytes::from(out.clone()), &opts()).unwrap();
    assert_eq!(batch.record_count(), 3);
    assert_eq!(batch.last_offset_delta(), 10);
    assert_eq!(batch.last_offset(), 110);
    assert_eq!(batch.next_offset(), 111);
    let records = batch.records().unwrap();
    let got: Vec<i64> = records.iter().map(|r| r.unwrap().offset()).collect();
    assert_eq!(got, vec![100, 103, 107]);

    let mut f = FetchRecords::new(Bytes::from(out), opts(), 100);
    assert_eq!(f.next().unwrap().unwrap().offset(), 100);
    assert_eq!(f.next_offset(), 101);
    assert_eq!(f.next().unwrap().unwrap().offset(), 103);
    assert_eq!(f.next().unwrap().unwrap().offset(), 107);
    assert_eq!(f.next_offset(), 108);
    assert!(f.next().is_none());
    // Past the batch's last offset, not past its last record.
    assert_eq!(f.next_offset(), 111);
}

#[test]
fn empty_batch_after_compaction() {
    for codec in [Compression::None, Compression::Lz4] {
        let mut out = Vec::new();
        let mut encoder = BatchEncoder::new();
        let mut w = encoder.writer(
            &BatchSpec {
                base_offset: 50,
                compression: codec,
                ..BatchSpec::default()
            },
            &mut out,
        );
        w.set_last_offset_delta(4).unwrap();
        w.finish().unwrap();
        data(
            &mut out,
            BatchSpec {
                base_offset: 55,
                ..BatchSpec::default()
            },
            2,
        );

        let batches: Vec<_> = RecordBatches::new(Bytes::from(out.clone()), opts())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(batches.len(), 2);
        let empty = &batches[0];
        assert_eq!(empty.record_count(), 0);
        assert_eq!(empty.next_offset(), 55);
        assert_eq!(empty.base_timestamp(), -1);
        assert_eq!(empty.records().unwrap().iter().count(), 0);
        assert_eq!(empty.records().unwrap().into_iter().count(), 0);

        let mut f = FetchRecords::new(Bytes::from(out.clone()), opts(), 50);
        assert_eq!(f.next().unwrap().unwrap().offset(), 55);
        assert_eq!(f.next().unwrap().unwrap().offset(), 56);
        assert!(f.next().is_none());
        assert_eq!(f.next_offset(), 57);

        // Only the empty batch: position still advances past it.
        let end = batches[0].size_in_bytes();
        let mut f = FetchRecords::new(Bytes::copy_from_slice(&out[..end]), opts(), 50);
        assert!(f.next().is_none());
        assert_eq!(f.next_offset(), 55);
    }
}

#[test]
fn control_batches_are_not_surfaced() {
    let mut out = Vec::new();
    data(&mut out, txn(0, 5), 2);
    marker(&mut out, 2, 5, ControlRecordType::Commit);
    data(&mut out, txn(3, 5), 1);
    marker(&mut out, 4, 5, ControlRecordType::Abort);

    let batches: Vec<_> = RecordBatches::new(Bytes::from(out.clone()), opts())
        .collect::<Result<_, _>>()
        .unwrap();
    let commit = &batches[1];
    assert!(commit.is_control());
    assert!(commit.is_transactional());
    assert_eq!(commit.record_count(), 1);
    let key = commit.control_record().unwrap().unwrap();
    assert_eq!(key.kind, ControlRecordType::Commit);
    assert_eq!(key.version, 0);
    let records = commit.records().unwrap();
    let r = records.iter().next().unwrap().unwrap();
    assert_eq!(
        EndTxnMarker::parse(r.value()).unwrap(),
        EndTxnMarker {
            version: 0,
            coordinator_epoch: 4
        }
    );
    assert_eq!(
        batches[3].control_record().unwrap().unwrap().kind,
        ControlRecordType::Abort
    );
    assert_eq!(batches[0].control_record().unwrap(), None);

    let mut f = FetchRecords::new(Bytes::from(out), opts(), 0);
    let got: Vec<i64> = f.by_ref().map(|r| r.unwrap().offset()).collect();
    assert_eq!(got, vec![0, 1, 3]);
    // Advanced past the trailing marker too.
    assert_eq!(f.next_offset(), 5);
}

#[test]
fn read_uncommitted_returns_aborted_data() {
    let mut out = Vec::new();
    data(&mut out, txn(0, 5), 2);
    marker(&mut out, 2, 5, ControlRecordType::Abort);
    let f = FetchRecords::new(Bytes::from(out), opts(), 0);
    assert_eq!(offsets(f), vec![0, 1]);
}

#[test]
fn abort_marker_removes_the_producer_id() {
    let mut out = Vec::new();
    data(&mut out, txn(0, 5), 2); // aborted transaction of pid 5
    marker(&mut out, 2, 5, ControlRecordType::Abort);
    data(&mut out, txn(3, 5), 2); // a later transaction of pid 5, not aborted
    marker(&mut out, 5, 5, ControlRecordType::Commit);
    let aborted = AbortedTransactions::new([(5, 0)]);
    let mut f = FetchRecords::read_committed(Bytes::from(out.clone()), opts(), 0, aborted);
    let got: Vec<i64> = f.by_ref().map(|r| r.unwrap().offset()).collect();
    assert_eq!(got, vec![3, 4]);
    assert_eq!(f.next_offset(), 6);

    // The filter itself, batch by batch.
    let mut filter = AbortedTransactions::new([(5, 0)]);
    let verdicts: Vec<bool> = RecordBatches::new(Bytes::from(out), opts())
        .map(|b| filter.should_skip(&b.unwrap()).unwrap())
        .collect();
    assert_eq!(verdicts, vec![true, false, false, false]);
    assert!(!filter.is_aborted(5));
}

#[test]
fn transactional_batch_of_aborted_pid_skipped_non_transactional_kept() {
    let mut out = Vec::new();
    data(&mut out, txn(0, 5), 2); // pid 5, transactional, aborted
    let non_txn = BatchSpec {
        transactional: false,
        ..txn(2, 5)
    };
    data(&mut out, non_txn, 2); // same pid, not transactional: kept
    data(&mut out, txn(4, 6), 1); // other pid: kept
    data(
        &mut out,
        BatchSpec {
            base_offset: 5,
            ..BatchSpec::default()
        },
        1,
    ); // no pid: kept
    data(&mut out, txn(6, 5), 1); // pid 5 still aborted (no marker yet): skipped
    marker(&mut out, 7, 5, ControlRecordType::Abort);
    let aborted = AbortedTransactions::new([(5, 0)]);
    let mut f = FetchRecords::read_committed(Bytes::from(out), opts(), 0, aborted);
    let got: Vec<i64> = f.by_ref().map(|r| r.unwrap().offset()).collect();
    assert_eq!(got, vec![2, 3, 4, 5]);
    assert_eq!(f.next_offset(), 8);
}

#[test]
fn aborted_transaction_applies_from_its_first_offset() {
    let mut out = Vec::new();
    data(&mut out, txn(0, 5), 2); // committed transaction of pid 5
    marker(&mut out, 2, 5, ControlRecordType::Commit);
    data(&mut out, txn(3, 5), 2); // aborted one, first offset 3
    marker(&mut out, 5, 5, ControlRecordType::Abort);
    // Listed out of order with another pid's entry; sorted by first offset.
    let aborted = AbortedTransactions::new([(5, 3), (9, 100)]);
    let mut filter = aborted.clone();
    let f = FetchRecords::read_committed(Bytes::from(out.clone()), opts(), 0, aborted);
    assert_eq!(offsets(f), vec![0, 1]);
    // Only the entry at or below a batch's last offset moved in.
    let mut batches = RecordBatches::new(Bytes::from(out), opts());
    assert!(!filter
        .should_skip(&batches.next().unwrap().unwrap())
        .unwrap());
    assert_eq!(filter.pending(), 2);
    assert!(!filter.is_aborted(5));
    assert!(!filter
        .should_skip(&batches.next().unwrap().unwrap())
        .unwrap());
    assert!(filter
        .should_skip(&batches.next().unwrap().unwrap())
        .unwrap());
    assert!(filter.is_aborted(5));
    assert_eq!(filter.pending(), 1);
    assert!(!filter
        .should_skip(&batches.next().unwrap().unwrap())
        .unwrap());
    assert!(!filter.is_aborted(5));
}

#[test]
fn first_offset_inside_a_batch_counts() {
    // The aborted transaction's first offset is within the batch (<= its last offset).
    let mut out = Vec::new();
    data(&mut out, txn(10, 5), 5); // offsets 10..=14
    let aborted = AbortedTransactions::new([(5, 14)]);
    let f = FetchRecords::read_committed(Bytes::from(out.clone()), opts(), 0, aborted);
    assert_eq!(offsets(f), Vec::<i64>::new());
    let aborted = AbortedTransactions::new([(5, 15)]);
    let f = FetchRecords::read_committed(Bytes::from(out), opts(), 0, aborted);
    assert_eq!(offsets(f), vec![10, 11, 12, 13, 14]);
}

#[test]
fn abort_marker_of_another_pid_does_not_clear() {
    let mut out = Vec::new();
    data(&mut out, txn(0, 5), 1);
    marker(&mut out, 1, 6, ControlRecordType::Abort);
    data(&mut out, txn(2, 5), 1);
    let aborted = AbortedTransactions::new([(5, 0)]);
    let f = FetchRecords::read_committed(Bytes::from(out), opts(), 0, aborted);
    assert_eq!(offsets(f), Vec::<i64>::new());
}

#[test]
fn skips_records_below_fetch_offset() {
    for codec in [Compression::None, Compression::Snappy] {
        let mut out = Vec::new();
        data(
            &mut out,
            BatchSpec {
                base_offset: 100,
                compression: codec,
                ..BatchSpec::default()
            },
            10,
        );
        data(
            &mut out,
            BatchSpec {
                base_offset: 110,
                compression: codec,
                ..BatchSpec::default()
            },
            2,
        );
        let mut f = FetchRecords::new(Bytes::from(out), opts(), 105);
        let got: Vec<i64> = f.by_ref().map(|r| r.unwrap().offset()).collect();
        assert_eq!(got, (105..112).collect::<Vec<_>>());
        assert_eq!(f.next_offset(), 112);
    }
}

#[test]
fn log_append_time_uses_max_timestamp() {
    let mut out = Vec::new();
    let spec = BatchSpec {
        timestamp_type: TimestampType::LogAppendTime,
        ..BatchSpec::default()
    };
    let records = [
        NewRecord::new(None, Some(&b"a"[..]), 10),
        NewRecord::new(None, Some(&b"b"[..]), 30),
        NewRecord::new(None, Some(&b"c"[..]), 20),
    ];
    BatchEncoder::new()
        .encode(&spec, &records, &mut out)
        .unwrap();
    let batch = RecordBatch::parse(Bytes::from(out), &opts()).unwrap();
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(batch.base_timestamp(), 10);
    assert_eq!(batch.max_timestamp(), 30);
    let ts: Vec<i64> = batch
        .records()
        .unwrap()
        .iter()
        .map(|r| r.unwrap().timestamp())
        .collect();
    assert_eq!(ts, vec![30, 30, 30]);
    let deltas: Vec<i64> = batch
        .records()
        .unwrap()
        .iter()
        .map(|r| r.unwrap().timestamp_delta())
        .collect();
    assert_eq!(deltas, vec![0, 20, 10]);
}

#[test]
fn delete_horizon_flag() {
    let mut out = Vec::new();
    let records = [
        NewRecord::new(None, Some(&b"a"[..]), 5000),
        NewRecord::new(None, None, 5010),
    ];
    BatchEncoder::new()
        .encode(&BatchSpec::default(), &records, &mut out)
        .unwrap();
    out[22] |= 0x40;
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = RecordBatch::parse(Bytes::from(out), &opts()).unwrap();
    assert!(batch.has_delete_horizon());
    assert_eq!(batch.delete_horizon_ms(), Some(5000));
    // Record timestamps stay relative to the base timestamp field.
    let ts: Vec<i64> = batch
        .records()
        .unwrap()
        .iter()
        .map(|r| r.unwrap().timestamp())
        .collect();
    assert_eq!(ts, vec![5000, 5010]);
}

#[test]
fn batch_error_ends_fetch_iteration() {
    let mut out = Vec::new();
    data(&mut out, BatchSpec::default(), 2);
    let second = out.len();
    data(
        &mut out,
        BatchSpec {
            base_offset: 2,
            ..BatchSpec::default()
        },
        2,
    );
    out[second + 16] = 1; // legacy magic in the second batch
    let mut f = FetchRecords::new(Bytes::from(out), opts(), 0);
    assert_eq!(f.next().unwrap().unwrap().offset(), 0);
    assert_eq!(f.next().unwrap().unwrap().offset(), 1);
    assert!(matches!(
        f.next(),
        Some(Err(mephisto_wire::record::BatchError::LegacyMagic {
            base_offset: 2,
            magic: 1
        }))
    ));
    assert!(f.next().is_none());
    assert_eq!(f.next_offset(), 2);
}

#[test]
fn records_outlive_the_fetch_buffer_view() {
    let mut out = Vec::new();
    data(
        &mut out,
        BatchSpec {
            compression: Compression::Gzip,
            ..BatchSpec::default()
        },
        3,
    );
    let kept: Vec<_> = FetchRecords::new(Bytes::from(out), opts(), 0)
        .collect::<Result<_, _>>()
        .unwrap();
    let values: Vec<_> = kept.iter().map(|r| r.value_bytes().unwrap()).collect();
    drop(kept);
    assert_eq!(
        values,
        vec![Bytes::from("0"), Bytes::from("1"), Bytes::from("2")]
    );
}

#[test]
fn next_ref_lends_the_same_records() {
    let mut out = Vec::new();
    data(&mut out, txn(0, 5), 3);
    marker(&mut out, 3, 5, ControlRecordType::Abort);
    data(
        &mut out,
        BatchSpec {
            base_offset: 4,
            compression: Compression::Zstd,
            ..BatchSpec::default()
        },
        3,
    );
    marker(&mut out, 7, 6, ControlRecordType::Commit);
    data(
        &mut out,
        BatchSpec {
            base_offset: 8,
            ..BatchSpec::default()
        },
        2,
    );
    let buf = Bytes::from(out);
    for fetch_offset in [0, 1, 5, 8, 10] {
        let owned = FetchRecords::read_committed(
            buf.clone(),
            opts(),
            fetch_offset,
            AbortedTransactions::new([(5, 0)]),
        );
        let want = offsets(owned);
        assert!(want.iter().all(|&o| o >= fetch_offset && o >= 4));
        // Borrowed only, then alternating borrowed and owned.
        for mix in [false, true] {
            let mut f = FetchRecords::read_committed(
                buf.clone(),
                opts(),
                fetch_offset,
                AbortedTransactions::new([(5, 0)]),
            );
            let mut got = Vec::new();
            let mut i = 0;
            loop {
                let offset = if mix && i % 2 == 1 {
                    match f.next() {
                        None => break,
                        Some(r) => r.unwrap().offset(),
                    }
                } else {
                    match f.next_ref() {
                        None => break,
                        Some(r) => {
                            let r = r.unwrap();
                            let v: i64 = std::str::from_utf8(r.value().unwrap())
                                .unwrap()
                                .parse()
                                .unwrap();
                            assert_eq!(v, r.offset());
                            r.offset()
                        }
                    }
                };
                got.push(offset);
                i += 1;
            }
            assert_eq!(got, want, "fetch offset {fetch_offset}, mix {mix}");
            assert_eq!(f.next_offset(), 10);
        }
    }
}
