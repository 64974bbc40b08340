//! Unit tests of the fetcher's pure parts: one partition's response decoding (on hand-built
//! responses, through the wire crate's encoder and decoder), and the state machine (buffer
//! accounting, planning, positions, resets, errors).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use mephisto_wire::messages::{decode_response, encode_response};
use mephisto_wire::record::{
    AbortedTransactions, BatchEncoder, BatchSpec, ControlRecordType, DecodeOptions, NewRecord,
};
use tokio::time::Instant;

use super::batch::{FetchedBatch, Watermarks};
use super::config::{FetcherConfig, IsolationLevel, OffsetReset};
use super::error::FetchError;
use super::response::{chunk, classify, partition_outcome, Chunk, ChunkError, Outcome};
use super::state::{FetchPosition, Plan, State};
use crate::cluster::Leader;
use crate::producer::TopicPartition;

const MARKS: Watermarks = Watermarks {
    high_watermark: 100,
    last_stable_offset: Some(100),
    log_start_offset: Some(0),
};

/// Appends a batch at `base` with `count` records valued `v{offset}`.
fn data_batch(out: &mut Vec<u8>, spec: BatchSpec, count: i64) {
    let values: Vec<String> = (0..count)
        .map(|i| format!("v{}", spec.base_offset + i))
        .collect();
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord::new(None, Some(v.as_bytes()), 1_700_000_000_000))
        .collect();
    BatchEncoder::new()
        .encode(&spec, &records, out)
        .expect("encode");
}

fn at(base_offset: i64) -> BatchSpec {
    BatchSpec {
        base_offset,
        ..BatchSpec::default()
    }
}

fn txn(base_offset: i64, producer_id: i64) -> BatchSpec {
    BatchSpec {
        base_offset,
        transactional: true,
        producer_id,
        producer_epoch: 0,
        base_sequence: 0,
        ..BatchSpec::default()
    }
}

fn marker(out: &mut Vec<u8>, base_offset: i64, producer_id: i64, kind: ControlRecordType) {
    BatchEncoder::new()
        .encode_control(&txn(base_offset, producer_id), kind, 0, 1, out)
        .expect("control");
}

fn values(batches: &VecDeque<mephisto_wire::record::RecordBatch>, start: i64) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let fetched = FetchedBatch::new(Arc::from("t"), 0, MARKS, b.clone(), start);
            fetched
                .records()
                .expect("records")
                .map(|r| {
                    let r = r.expect("record");
                    String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn uncommitted(records: Vec<u8>, fetch_offset: i64) -> Chunk {
    chunk(
        Bytes::from(records),
        fetch_offset,
        MARKS,
        None,
        &DecodeOptions::default(),
    )
}

#[test]
fn records_are_slices_of_the_response_frame() {
    let mut records = Vec::new();
    data_batch(&mut records, at(0), 3);
    data_batch(&mut records, at(3), 2);
    let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("t")))
        .with_partitions(vec![PartitionData::default()
            .with_partition_index(0)
            .with_high_watermark(5)
            .with_records(Some(Bytes::from(records)))])]);
    for version in [4i16, 11, 12] {
        let mut buf = BytesMut::new();
        encode_response::<FetchRequest>(&mut buf, &response, version, 7).expect("encode");
        let payload = buf.freeze();
        let frame = payload.as_ptr() as usize..payload.as_ptr() as usize + payload.len();
        let decoded = decode_response::<FetchRequest>(payload.clone(), version).expect("decode");
        let data = decoded
            .body
            .responses
            .into_iter()
            .next()
            .and_then(|t| t.partitions.into_iter().next())
            .expect("partition");
        let Outcome::Data(chunk) = partition_outcome(
            data,
            0,
            IsolationLevel::ReadUncommitted,
            &DecodeOptions::default(),
        ) else {
            panic!("data expected");
        };
        assert_eq!(chunk.batches.len(), 2);
        assert_eq!(chunk.next_offset, 5);
        let mut seen = 0;
        for batch in &chunk.batches {
            let b = batch.as_bytes();
            assert!(
                frame.contains(&(b.as_ptr() as usize)),
                "v{version}: batch copied"
            );
            let fetched = FetchedBatch::new(Arc::from("t"), 0, MARKS, batch.clone(), 0);
            for r in fetched.records().expect("records") {
                let value = r.expect("record").value_bytes().expect("value");
                assert!(
                    frame.contains(&(value.as_ptr() as usize)),
                    "v{version}: value copied"
                );
                seen += 1;
            }
        }
        assert_eq!(seen, 5);
    }
}

#[test]
fn truncated_trailing_batch_ends_the_chunk_silently() {
    let mut records = Vec::new();
    data_batch(&mut records, at(0), 2);
    data_batch(&mut records, at(2), 2);
    let complete = records.len();
    data_batch(&mut records, at(4), 5);
    for cut in [
        complete + 1,
        complete + 16,
        complete + 40,
        records.len() - 1,
    ] {
        let c = uncommitted(records[..cut].to_vec(), 0);
        assert!(c.error.is_none(), "cut at {cut}");
        assert_eq!(c.batches.len(), 2);
        assert_eq!(c.next_offset, 4, "continue from the last complete batch");
        assert_eq!(c.bytes, cut);
    }
    // Not even one complete batch: no progress is possible.
    let c = uncommitted(records[complete..complete + 30].to_vec(), 4);
    assert!(matches!(
        c.error,
        Some(ChunkError::NoProgress {
            offset: 4,
            size: 30
        })
    ));
    // Nothing at all is fine.
    let c = uncommitted(Vec::new(), 9);
    assert!(c.error.is_none() && c.batches.is_empty());
    assert_eq!(c.next_offset, 9);
}

#[test]
fn next_offset_steps_over_compaction_gaps_and_empty_batches() {
    let mut records = Vec::new();
    // Offsets 0 and 9 survive compaction in a batch whose last offset delta is 9.
    {
        let mut encoder = BatchEncoder::new();
        let mut writer = encoder.writer(&at(0), &mut records);
        writer
            .append_at(0, &NewRecord::new(None, Some(b"v0"), 1))
            .expect("append");
        writer
            .append_at(9, &NewRecord::new(None, Some(b"v9"), 1))
            .expect("append");
        writer.finish().expect("finish");
    }
    // An empty batch covering 10..=14.
    {
        let mut encoder = BatchEncoder::new();
        let mut writer = encoder.writer(&at(10), &mut records);
        writer.set_last_offset_delta(4).expect("delta");
        writer.finish().expect("finish");
    }
    data_batch(&mut records, at(20), 1);
    let c = uncommitted(records, 0);
    assert!(c.error.is_none());
    assert_eq!(c.batches.len(), 2, "the empty batch is not handed out");
    assert_eq!(values(&c.batches, 0), ["v0", "v9", "v20"]);
    assert_eq!(c.next_offset, 21);
}

#[test]
fn records_below_the_fetch_offset_are_skipped() {
    let mut records = Vec::new();
    data_batch(&mut records, at(0), 3);
    data_batch(&mut records, at(3), 4);
    data_batch(&mut records, at(7), 2);
    let c = uncommitted(records, 5);
    assert_eq!(c.batches.len(), 2, "the batch entirely below is dropped");
    assert_eq!(values(&c.batches, 5), ["v5", "v6", "v7", "v8"]);
    let first = FetchedBatch::new(Arc::from("t"), 0, MARKS, c.batches[0].clone(), 5);
    assert_eq!(first.start_offset(), 5);
    assert_eq!(first.next_offset(), 7);
    assert_eq!(c.next_offset, 9);
}

/// pid 7 commits 0..=2 (marker 3), pid 8 aborts 4..=6 (marker 7), pid 9 writes 8 outside a
/// transaction, pid 7 commits 9 (marker 10).
fn transactional_log() -> Vec<u8> {
    let mut records = Vec::new();
    data_batch(&mut records, txn(0, 7), 3);
    marker(&mut records, 3, 7, ControlRecordType::Commit);
    data_batch(&mut records, txn(4, 8), 3);
    marker(&mut records, 7, 8, ControlRecordType::Abort);
    data_batch(&mut records, at(8), 1);
    data_batch(&mut records, txn(9, 7), 1);
    marker(&mut records, 10, 7, ControlRecordType::Commit);
    records
}

#[test]
fn read_committed_drops_aborted_transactions_and_markers() {
    let records = Bytes::from(transactional_log());
    let committed = chunk(
        records.clone(),
        0,
        MARKS,
        Some(AbortedTransactions::new([(8, 4)])),
        &DecodeOptions::default(),
    );
    assert_eq!(
        values(&committed.batches, 0),
        ["v0", "v1", "v2", "v8", "v9"]
    );
    assert_eq!(committed.next_offset, 11, "past the last marker");
    let all = chunk(records, 0, MARKS, None, &DecodeOptions::default());
    assert_eq!(
        values(&all.batches, 0),
        ["v0", "v1", "v2", "v4", "v5", "v6", "v8", "v9"],
        "read_uncommitted shows the aborted records, never a marker"
    );
    assert!(all.batches.iter().all(|b| !b.is_control()));
    assert_eq!(all.next_offset, 11);

    // Through the response: the aborted list comes from the partition data.
    let data = PartitionData::default()
        .with_records(Some(Bytes::from(transactional_log())))
        .with_high_watermark(11)
        .with_last_stable_offset(11)
        .with_aborted_transactions(Some(vec![AbortedTransaction::default()
            .with_producer_id(ProducerId(8))
            .with_first_offset(4)]));
    let Outcome::Data(c) = partition_outcome(
        data,
        0,
        IsolationLevel::ReadCommitted,
        &DecodeOptions::default(),
    ) else {
        panic!("data expected");
    };
    assert_eq!(values(&c.batches, 0), ["v0", "v1", "v2", "v8", "v9"]);
    assert_eq!(c.marks.last_stable_offset, Some(11));
}

#[test]
fn a_corrupt_batch_stops_the_chunk_after_the_good_ones() {
    let mut records = Vec::new();
    data_batch(&mut records, at(0), 2);
    let second = records.len();
    data_batch(&mut records, at(2), 2);
    data_batch(&mut records, at(4), 2);
    // Flip a byte of the second batch's records (covered by its CRC).
    let last = second + 70;
    records[last] ^= 0xff;
    let c = uncommitted(records, 0);
    assert_eq!(c.batches.len(), 1);
    assert!(
        matches!(c.error, Some(ChunkError::Corrupt { offset: 2, .. })),
        "{:?}",
        c.error
    );
}

#[test]
fn error_codes_are_sorted() {
    let kind = |code: i16| match classify(code, None) {
        None => "none",
        Some(Outcome::OutOfRange) => "out of range",
        Some(Outcome::Reroute(_)) => "reroute",
        Some(Outcome::Retry(_)) => "retry",
        Some(Outcome::Fatal(_)) => "fatal",
        Some(Outcome::Data(_)) => "data",
    };
    assert_eq!(kind(0), "none");
    assert_eq!(kind(1), "out of range");
    for code in [3, 5, 6, 74, 75, 100] {
        assert_eq!(kind(code), "reroute", "code {code}");
    }
    assert_eq!(kind(7), "retry"); // REQUEST_TIMED_OUT
    assert_eq!(kind(29), "fatal"); // TOPIC_AUTHORIZATION_FAILED
    assert_eq!(kind(-1), "fatal"); // UNKNOWN_SERVER_ERROR
}

// ---------------------------------------------------------------------------------------------
// State.

const LEADER: Leader = Leader {
    broker: BrokerId(1),
    epoch: Some(3),
};

fn state(config: FetcherConfig) -> State {
    State::new(
        config,
        (Duration::from_millis(10), Duration::from_millis(100)),
    )
}

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

/// Assigns `tp(p)` at `offset` with a known leader.
fn assign(s: &mut State, p: i32, offset: i64) {
    s.assign(tp(p), FetchPosition::Offset(offset))
        .expect("assign");
    if let Some(ps) = s.partitions.get_mut(&tp(p)) {
        ps.leader = Some(LEADER);
    }
}

/// Plans a Fetch; its reservation is released at once, as if it had been answered.
fn plan_fetch(s: &mut State) -> (u64, Vec<super::request::FetchTarget>, i32) {
    match s.plan(BrokerId(1), Instant::now()) {
        Plan::Fetch {
            id,
            targets,
            max_bytes,
            ..
        } => {
            s.unreserve(usize::try_from(max_bytes).unwrap_or(0));
            (id, targets, max_bytes)
        }
        other => panic!("expected a fetch, got {other:?}"),
    }
}

fn batches_chunk(from: i64, batches: i64, per_batch: i64) -> (Chunk, usize) {
    let mut records = Vec::new();
    for b in 0..batches {
        data_batch(&mut records, at(from + b * per_batch), per_batch);
    }
    let size = records.len();
    (uncommitted(records, from), size)
}

#[test]
fn one_request_for_all_partitions_of_a_broker() {
    let mut s = state(FetcherConfig::default());
    for p in 0..3 {
        assign(&mut s, p, 10 * i64::from(p));
    }
    // A partition led elsewhere is not part of it.
    s.assign(tp(9), FetchPosition::Offset(0)).expect("assign");
    if let Some(ps) = s.partitions.get_mut(&tp(9)) {
        ps.leader = Some(Leader {
            broker: BrokerId(2),
            epoch: None,
        });
    }
    let (_, targets, max_bytes) = plan_fetch(&mut s);
    let mut got: Vec<(i32, i64, Option<i32>)> = targets
        .iter()
        .map(|t| (t.partition, t.offset, t.leader_epoch))
        .collect();
    got.sort();
    assert_eq!(got, [(0, 0, Some(3)), (1, 10, Some(3)), (2, 20, Some(3))]);
    assert_eq!(max_bytes, FetcherConfig::default().max_bytes);
    assert!(targets.iter().all(|t| t.max_bytes == 1024 * 1024));
    // Everything is in flight: nothing more to do until an answer.
    assert!(matches!(
        s.plan(BrokerId(1), Instant::now()),
        Plan::Wait(None)
    ));
    // Unassigning everything led by a broker makes its loop idle.
    for p in 0..3 {
        s.unassign(&tp(p));
    }
    assert!(matches!(s.plan(BrokerId(1), Instant::now()), Plan::Idle));
}

#[test]
fn buffer_accounting_and_back_pressure() {
    let (chunk_a, size) = batches_chunk(0, 4, 5);
    let cap = size + size / 2;
    let config = FetcherConfig::default()
        .with_max_buffered_bytes(cap)
        .with_max_partition_bytes(i32::try_from(4 * size).expect("small"));
    let mut s = state(config.clone());
    assign(&mut s, 0, 0);
    let Plan::Fetch {
        id,
        targets,
        max_bytes,
        ..
    } = s.plan(BrokerId(1), Instant::now())
    else {
        panic!("expected a fetch");
    };
    assert_eq!(
        max_bytes as usize, cap,
        "asks for no more than the free space"
    );
    assert_eq!(s.reserved_bytes, cap);
    // While it is in flight, its reservation keeps other requests out.
    assign(&mut s, 1, 0);
    assert!(matches!(
        s.plan(BrokerId(1), Instant::now()),
        Plan::Wait(None)
    ));
    s.unassign(&tp(1));
    assert!(s.data(id, &tp(0), targets[0].epoch, chunk_a));
    s.unreserve(cap);
    assert_eq!(s.buffered_bytes, size);
    // Half a buffer free is less than min_free_bytes (half the cap): wait.
    assert!(cap - size < config.min_free_bytes());
    assert!(matches!(
        s.plan(BrokerId(1), Instant::now()),
        Plan::Wait(None)
    ));
    // Taking batches releases their bytes; the position follows.
    let (first, _) = s.take();
    let first = first.expect("a batch").expect("ok");
    assert_eq!((first.start_offset(), first.next_offset()), (0, 5));
    assert_eq!(s.partitions[&tp(0)].position, Some(5));
    assert!(s.buffered_bytes < size);
    for expected_next in [10, 15, 20] {
        let (item, _) = s.take();
        assert_eq!(
            item.expect("batch").expect("ok").next_offset(),
            expected_next
        );
    }
    assert_eq!(s.buffered_bytes, 0);
    assert!(s.take().0.is_none());
    let (_, targets, _) = plan_fetch(&mut s);
    assert_eq!(
        targets[0].offset, 20,
        "the next fetch starts after the last batch"
    );
}

/// The borrowing view yields the same records as the owning iterator, from the start offset.
#[test]
fn records_view_matches_records() {
    let mut out = Vec::new();
    data_batch(&mut out, at(10), 5);
    let batch =
        mephisto_wire::record::RecordBatch::parse(Bytes::from(out), &DecodeOptions::default())
            .expect("batch");
    let fetched = FetchedBatch::new(Arc::from("t"), 0, MARKS, batch, 12);
    let owned: Vec<(i64, Vec<u8>)> = fetched
        .records()
        .expect("records")
        .map(|r| {
            let r = r.expect("record");
            (r.offset(), r.value().unwrap_or_default().to_vec())
        })
        .collect();
    let view = fetched.records_view().expect("view");
    let borrowed: Vec<(i64, Vec<u8>)> = view
        .iter()
        .map(|r| {
            let r = r.expect("record");
            (r.offset(), r.value().unwrap_or_default().to_vec())
        })
        .collect();
    assert_eq!(owned.len(), 3);
    assert_eq!(owned[0], (12, b"v12".to_vec()));
    assert_eq!(owned, borrowed);
}

/// A chunk without records at `offset` from a partition whose high watermark is `offset`.
fn at_end_chunk(offset: i64) -> Chunk {
    let marks = Watermarks {
        high_watermark: offset,
        last_stable_offset: Some(offset),
        log_start_offset: Some(0),
    };
    chunk(Bytes::new(), offset, marks, None, &DecodeOptions::default())
}

/// The consume stall: right after a response, partitions with more data at the broker are
/// held back by their prefetch room, the others are at their high watermark. A long poll for
/// the latter would be held by the broker for max_wait and keep the loop from fetching the
/// former as soon as the application drains them.
#[test]
fn partitions_held_by_prefetch_room_do_not_wait_behind_a_long_poll() {
    let (full, size) = batches_chunk(0, 4, 5);
    let config =
        FetcherConfig::default().with_max_partition_bytes(i32::try_from(size).expect("small"));
    let max_wait = config.max_wait;
    let mut s = state(config);
    assign(&mut s, 0, 0);
    assign(&mut s, 1, 0);
    let (id, targets, _) = plan_fetch(&mut s);
    assert_eq!(targets.len(), 2);
    let (e0, e1) = (s.partitions[&tp(0)].epoch, s.partitions[&tp(1)].epoch);
    // Partition 0 gets a full prefetch room (high watermark 100, more to read); partition 1
    // nothing (at its high watermark).
    assert!(s.data(id, &tp(0), e0, full));
    assert!(!s.data(id, &tp(1), e1, at_end_chunk(0)));

    // No long poll for partition 1 alone: wait for the application (at most max_wait).
    let t0 = Instant::now();
    match s.plan(BrokerId(1), t0) {
        Plan::Wait(Some(at)) => assert_eq!(at, t0 + max_wait),
        other => panic!("expected a bounded wait, got {other:?}"),
    }
    // Planning again changes nothing (no spinning, same deadline).
    let later = t0 + max_wait / 2;
    match s.plan(BrokerId(1), later) {
        Plan::Wait(Some(at)) => assert_eq!(at, t0 + max_wait),
        other => panic!("expected a bounded wait, got {other:?}"),
    }
    // If the application does not drain, partition 1 is still polled once per max_wait, but
    // without waiting at the broker.
    let Plan::Fetch {
        id,
        targets,
        max_bytes,
        long_poll,
    } = s.plan(BrokerId(1), t0 + max_wait)
    else {
        panic!("expected a short poll");
    };
    s.unreserve(usize::try_from(max_bytes).unwrap_or(0));
    assert!(
        !long_poll,
        "must not long-poll while data waits at the broker"
    );
    let polled: Vec<i32> = targets.iter().map(|t| t.partition).collect();
    assert_eq!(polled, [1]);
    assert!(!s.data(id, &tp(1), e1, at_end_chunk(0)));
    // The next short poll is a full max_wait later.
    let t1 = t0 + max_wait + Duration::from_millis(1);
    match s.plan(BrokerId(1), t1) {
        Plan::Wait(Some(at)) => assert_eq!(at, t1 + max_wait),
        other => panic!("expected a bounded wait, got {other:?}"),
    }

    // The application takes a batch: partition 0 is back under its room, the loops are woken
    // and both partitions are fetched at once (partition 0 has data: the broker answers).
    let (item, freed) = s.take();
    assert!(item.expect("a batch").is_ok());
    assert!(
        freed,
        "a partition back under its prefetch room wakes the loops"
    );
    let Plan::Fetch {
        id,
        targets,
        max_bytes,
        ..
    } = s.plan(BrokerId(1), t1)
    else {
        panic!("expected a fetch");
    };
    s.unreserve(usize::try_from(max_bytes).unwrap_or(0));
    let mut fetched: Vec<(i32, i64)> = targets.iter().map(|t| (t.partition, t.offset)).collect();
    fetched.sort_unstable();
    assert_eq!(fetched, [(0, 20), (1, 0)]);

    // Once everything is read up to the high watermarks, an idle fetcher long-polls as usual.
    while s.take().0.is_some() {}
    assert!(!s.data(id, &tp(0), e0, at_end_chunk(20)));
    assert!(!s.data(id, &tp(1), e1, at_end_chunk(0)));
    let Plan::Fetch { long_poll, .. } = s.plan(BrokerId(1), t1) else {
        panic!("expected a long poll");
    };
    assert!(long_poll);
}

/// A paused partition with data at the broker (an application's flow control: it is resumed
/// once its queue drains) does not wait behind a long poll of the others either: the others
/// are polled without waiting at the broker, once per max_wait, and a resume is served at once.
#[test]
fn paused_partitions_with_data_do_not_wait_behind_a_long_poll() {
    let config = FetcherConfig::default();
    let max_wait = config.max_wait;
    let mut s = state(config);
    assign(&mut s, 0, 0);
    assign(&mut s, 1, 0);
    let (id, _, _) = plan_fetch(&mut s);
    let (e0, e1) = (s.partitions[&tp(0)].epoch, s.partitions[&tp(1)].epoch);
    assert!(!s.data(id, &tp(0), e0, at_end_chunk(0)));
    assert!(!s.data(id, &tp(1), e1, at_end_chunk(0)));
    // Partition 0 has more at the broker and is paused; partition 1 is at its end.
    if let Some(ps) = s.partitions.get_mut(&tp(0)) {
        ps.marks = Some(MARKS);
    }
    s.set_paused(&tp(0), true).expect("assigned");
    let t0 = Instant::now();
    match s.plan(BrokerId(1), t0) {
        Plan::Wait(Some(at)) => assert_eq!(at, t0 + max_wait),
        other => panic!("expected a bounded wait, got {other:?}"),
    }
    let Plan::Fetch {
        long_poll,
        targets,
        max_bytes,
        id,
    } = s.plan(BrokerId(1), t0 + max_wait)
    else {
        panic!("expected a short poll");
    };
    s.unreserve(usize::try_from(max_bytes).unwrap_or(0));
    assert!(
        !long_poll,
        "must not long-poll while a paused partition has data"
    );
    assert_eq!(targets.len(), 1);
    assert!(!s.data(id, &tp(1), e1, at_end_chunk(0)));
    // Resumed: fetched at once, with the other one (the broker answers: there is data).
    s.set_paused(&tp(0), false).expect("assigned");
    let Plan::Fetch { targets, .. } = s.plan(BrokerId(1), t0 + max_wait) else {
        panic!("expected a fetch");
    };
    assert_eq!(targets.len(), 2);
}

/// A partition with data at the broker waiting out a retry backoff does not wait behind a long
/// poll of the others either: the loop waits for its backoff.
#[test]
fn partitions_in_retry_backoff_do_not_wait_behind_a_long_poll() {
    let mut s = state(FetcherConfig::default());
    assign(&mut s, 0, 0);
    assign(&mut s, 1, 0);
    let (id, _, _) = plan_fetch(&mut s);
    let (e0, e1) = (s.partitions[&tp(0)].epoch, s.partitions[&tp(1)].epoch);
    // Partition 0: more data at the broker (high watermark 100), then a retriable error.
    assert!(!s.data(id, &tp(0), e0, at_end_chunk(0)));
    assert!(!s.data(id, &tp(1), e1, at_end_chunk(0)));
    let t0 = Instant::now();
    let retry_at = t0 + Duration::from_millis(10);
    if let Some(ps) = s.partitions.get_mut(&tp(0)) {
        ps.marks = Some(MARKS);
        ps.retry_at = Some(retry_at);
    }
    match s.plan(BrokerId(1), t0) {
        Plan::Wait(Some(at)) => assert_eq!(at, retry_at),
        other => panic!("expected to wait for the backoff, got {other:?}"),
    }
    // After it, both are fetched (partition 0 has data: the broker answers at once).
    let Plan::Fetch { targets, .. } = s.plan(BrokerId(1), retry_at) else {
        panic!("expected a fetch");
    };
    assert_eq!(targets.len(), 2);
}

#[test]
fn prefetch_runs_ahead_of_the_application() {
    let mut s = state(FetcherConfig::default());
    assign(&mut s, 0, 0);
    let (id, targets, _) = plan_fetch(&mut s);
    let (c, _) = batches_chunk(0, 2, 3);
    assert!(s.data(id, &tp(0), targets[0].epoch, c));
    // Not read yet, but the partition is fetched again from where the data ends.
    let (id, targets, _) = plan_fetch(&mut s);
    assert_eq!(targets[0].offset, 6);
    let (c, _) = batches_chunk(6, 1, 3);
    assert!(s.data(id, &tp(0), targets[0].epoch, c));
    let offsets: Vec<i64> = std::iter::from_fn(|| s.take().0)
        .map(|r| r.expect("ok").next_offset())
        .collect();
    assert_eq!(offsets, [3, 6, 9]);
    assert_eq!(s.partitions[&tp(0)].position, Some(9));
}

#[test]
fn seek_drops_prefetched_data_and_stale_answers() {
    let mut s = state(FetcherConfig::default());
    assign(&mut s, 0, 0);
    let (id, targets, _) = plan_fetch(&mut s);
    let (c, size) = batches_chunk(0, 2, 3);
    assert!(s.data(id, &tp(0), targets[0].epoch, c));
    assert_eq!(s.buffered_bytes, size);
    let (id, targets, _) = plan_fetch(&mut s);
    s.seek(&tp(0), FetchPosition::Offset(100)).expect("seek");
    assert_eq!(s.buffered_bytes, 0, "prefetched bytes released");
    assert_eq!(s.partitions[&tp(0)].position, Some(100));
    // The answer to the request sent before the seek is dropped.
    let (c, _) = batches_chunk(6, 1, 3);
    assert!(!s.data(id, &tp(0), targets[0].epoch, c));
    assert!(s.take().0.is_none());
    let (_, targets, _) = plan_fetch(&mut s);
    assert_eq!(targets[0].offset, 100);
}

#[test]
fn out_of_range_with_policy_none_stops_after_the_buffered_data() {
    let config = FetcherConfig::default().with_auto_offset_reset(OffsetReset::None);
    let mut s = state(config);
    assign(&mut s, 0, 0);
    let (id, targets, _) = plan_fetch(&mut s);
    let (c, _) = batches_chunk(0, 1, 3);
    assert!(s.data(id, &tp(0), targets[0].epoch, c));
    let (id, _, _) = plan_fetch(&mut s);
    s.out_of_range(id, &tp(0));
    // Stopped: nothing is fetched.
    assert!(matches!(
        s.plan(BrokerId(1), Instant::now()),
        Plan::Wait(None)
    ));
    assert_eq!(s.take().0.expect("batch").expect("ok").next_offset(), 3);
    match s.take().0 {
        Some(Err(FetchError::OffsetOutOfRange { partition, offset })) => {
            assert_eq!((partition, offset), (tp(0), 3));
        }
        other => panic!("expected the error, got {other:?}"),
    }
    assert!(s.take().0.is_none());
    s.seek(&tp(0), FetchPosition::Offset(1)).expect("seek");
    let (_, targets, _) = plan_fetch(&mut s);
    assert_eq!(targets[0].offset, 1);
}

#[test]
fn out_of_range_with_a_policy_resets_through_list_offsets() {
    let config = FetcherConfig::default().with_auto_offset_reset(OffsetReset::Earliest);
    let mut s = state(config);
    assign(&mut s, 0, 50);
    let (id, _, _) = plan_fetch(&mut s);
    s.out_of_range(id, &tp(0));
    assert_eq!(s.partitions[&tp(0)].position, None);
    let (id, targets) = match s.plan(BrokerId(1), Instant::now()) {
        Plan::Reset { id, targets } => (id, targets),
        other => panic!("expected a reset, got {other:?}"),
    };
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].timestamp, -2, "earliest");
    s.reset_done(id, &tp(0), 7);
    assert_eq!(s.partitions[&tp(0)].position, Some(7));
    let (_, targets, _) = plan_fetch(&mut s);
    assert_eq!(targets[0].offset, 7);
}

#[test]
fn leader_changes_and_retriable_errors() {
    let mut s = state(FetcherConfig::default());
    assign(&mut s, 0, 0);
    assign(&mut s, 1, 0);
    let (id, _, _) = plan_fetch(&mut s);
    s.reroute(id, &tp(0));
    s.retry_later(id, &tp(1), Instant::now());
    assert_eq!(s.partitions[&tp(0)].leader, None, "back to the router");
    // Partition 1 waits for its backoff.
    match s.plan(BrokerId(1), Instant::now()) {
        Plan::Wait(Some(at)) => assert!(at > Instant::now()),
        other => panic!("expected a timed wait, got {other:?}"),
    }
}

#[test]
fn paused_partitions_are_neither_fetched_nor_handed_out() {
    let mut s = state(FetcherConfig::default());
    assign(&mut s, 0, 0);
    assign(&mut s, 1, 0);
    let (id, targets, _) = plan_fetch(&mut s);
    for t in &targets {
        let (c, _) = batches_chunk(0, 1, 2);
        assert!(s.data(id, &tp(t.partition), t.epoch, c));
    }
    s.set_paused(&tp(0), true).expect("pause");
    let (item, _) = s.take();
    assert_eq!(item.expect("batch").expect("ok").partition, 1);
    assert!(s.take().0.is_none(), "partition 0 is paused");
    let (_, targets, _) = plan_fetch(&mut s);
    assert_eq!(targets.iter().map(|t| t.partition).collect::<Vec<_>>(), [1]);
    s.set_paused(&tp(0), false).expect("resume");
    assert_eq!(s.take().0.expect("batch").expect("ok").partition, 0);
    assert!(matches!(
        s.set_paused(&tp(5), true),
        Err(FetchError::NotAssigned(_))
    ));
}

#[test]
fn only_control_batches_move_the_position() {
    let mut s = state(FetcherConfig::default());
    assign(&mut s, 0, 3);
    let (id, targets, _) = plan_fetch(&mut s);
    let mut records = Vec::new();
    marker(&mut records, 3, 7, ControlRecordType::Commit);
    let c = uncommitted(records, 3);
    assert!(
        !s.data(id, &tp(0), targets[0].epoch, c),
        "nothing for the application"
    );
    assert_eq!(s.partitions[&tp(0)].position, Some(4));
    assert_eq!(s.buffered_bytes, 0);
}
