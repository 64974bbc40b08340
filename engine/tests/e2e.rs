//! End to end against a real broker (tansu, one per test binary, see `support`): for every codec,
//! 100,000 keyed records produced by the Mephisto producer (acks=all, idempotence required) into
//! an 8-partition topic, then read back with the Mephisto fetcher.
//!
//! Checked for each codec:
//! - every record is acknowledged, in the partition murmur2 gives its key;
//! - the fetcher yields every record exactly once (no loss, no duplicate), at the offset its
//!   acknowledgement named, with its key and value;
//! - per partition, offset order is send order (hence per key too), offsets have no gap, and the
//!   fetcher's high watermark equals the record count (the Fetch high watermark, not
//!   ListOffsets(latest), which tansu gets wrong for multi-record batches);
//! - every batch is compressed with the codec and carries the producer id with gap-free
//!   sequences.
//!
//! Each codec is its own test (its own topic), so they run in parallel on the shared broker and a
//! failure names the codec. Durations are printed (`--nocapture`).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mephisto_engine::fetcher::{FetchPosition, Fetcher, FetcherConfig, TopicPartition};
use mephisto_engine::producer::partitioner::partition_for_key;
use mephisto_engine::producer::{Compression, Producer, ProducerConfig, ProducerRecord};
use mephisto_engine::{Admin, NewTopic};

const PARTITIONS: i32 = 8;
const RECORDS: usize = 100_000;
const KEYS: usize = 997;
/// Bound on the whole read-back of one codec.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Key of the `i`-th record sent: keys are visited in a scrambled order, so that partitions and
/// keys interleave.
fn key_of(i: usize) -> usize {
    (i * 7_919 + i / KEYS) % KEYS
}

/// Value of the `i`-th record: its index, its key, and filler to 20..=100 bytes.
fn value_of(i: usize, key: usize) -> Vec<u8> {
    let mut v = format!("{i}|{key}|").into_bytes();
    let len = 20 + (i * 31) % 81;
    let mut fill = (i % 251) as u8;
    while v.len() < len {
        v.push(fill);
        fill = fill.wrapping_mul(17).wrapping_add(3);
    }
    v
}

/// The index encoded at the start of a value.
fn index_of(value: &[u8]) -> usize {
    let end = value
        .iter()
        .position(|&b| b == b'|')
        .expect("index separator");
    std::str::from_utf8(&value[..end])
        .expect("ascii index")
        .parse()
        .expect("index")
}

async fn run(codec: Compression) {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = support::unique_topic(&format!("e2e-{}", codec.name()));
    Admin::new(cluster.clone())
        .create_topic(NewTopic::new(&topic, PARTITIONS, 1))
        .await
        .unwrap_or_else(|e| panic!("create {topic}: {e}"));

    // ---- produce ----
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig {
            compression: codec,
            idempotence: Some(true),
            ..ProducerConfig::default()
        },
    )
    .expect("producer");
    let keys: Vec<Bytes> = (0..KEYS)
        .map(|k| Bytes::from(format!("key-{k:04}")))
        .collect();
    let start = Instant::now();
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let k = key_of(i);
        let record = ProducerRecord::new(topic.as_str())
            .key(keys[k].clone())
            .value(value_of(i, k));
        deliveries.push(
            producer
                .enqueue(record)
                .await
                .unwrap_or_else(|e| panic!("{codec:?}: enqueue record {i}: {e}")),
        );
    }
    let mut acked = Vec::with_capacity(RECORDS);
    for (i, d) in deliveries.into_iter().enumerate() {
        let meta = d
            .await
            .unwrap_or_else(|e| panic!("{codec:?}: delivery of record {i}: {e}"));
        acked.push((meta.partition, meta.offset));
    }
    let produced = start.elapsed();
    let stats = producer.stats();
    producer.close().await;
    let identity = stats
        .identity
        .unwrap_or_else(|| panic!("{codec:?}: idempotence required but no producer id"));

    // Acknowledgements: the key's partition, and per partition the offsets 0..n in send order.
    let mut per_partition = vec![0i64; PARTITIONS as usize];
    for (i, &(partition, offset)) in acked.iter().enumerate() {
        let want = partition_for_key(&keys[key_of(i)], PARTITIONS);
        assert_eq!(Some(partition), want, "{codec:?}: record {i} partition");
        let next = &mut per_partition[partition as usize];
        assert_eq!(
            offset, *next,
            "{codec:?}: record {i} acknowledged at {partition}@{offset}, expected the next offset \
             {next} (send order = offset order)"
        );
        *next += 1;
    }
    assert_eq!(per_partition.iter().sum::<i64>(), RECORDS as i64);
    assert!(
        per_partition.iter().all(|&n| n > 0),
        "{codec:?}: every partition used: {per_partition:?}"
    );

    // ---- fetch ----
    let fetcher = Fetcher::new(
        cluster.clone(),
        FetcherConfig::default().with_max_wait(Duration::from_millis(100)),
    )
    .expect("fetcher");
    for p in 0..PARTITIONS {
        fetcher
            .assign(
                TopicPartition::new(topic.as_str(), p),
                FetchPosition::Earliest,
            )
            .expect("assign");
    }
    let start = Instant::now();
    let deadline = start + READ_TIMEOUT;
    // seen[i] = (partition, offset) where record i was read.
    let mut seen: Vec<Option<(i32, i64)>> = vec![None; RECORDS];
    let mut next_offset = vec![0i64; PARTITIONS as usize];
    let mut last_index: Vec<Option<usize>> = vec![None; PARTITIONS as usize];
    let mut next_sequence: BTreeMap<i32, i32> = BTreeMap::new();
    let mut read = 0usize;
    let mut batches = 0usize;
    while read < RECORDS {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = match tokio::time::timeout(left, fetcher.next_batch()).await {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => panic!("{codec:?}: fetch error after {read} records: {e}"),
            Err(_) => panic!(
                "{codec:?}: only {read} of {RECORDS} records read within {READ_TIMEOUT:?}; \
                 positions {next_offset:?}"
            ),
        };
        batches += 1;
        let p = batch.partition;
        assert_eq!(&*batch.topic, topic.as_str());
        assert_eq!(batch.batch.compression(), codec, "{codec:?}: batch codec");
        assert_eq!(batch.batch.producer_id(), identity.producer_id);
        let sequence = next_sequence.entry(p).or_insert(0);
        assert_eq!(
            batch.batch.base_sequence(),
            *sequence,
            "{codec:?}: partition {p}: batch at {} breaks the sequence",
            batch.batch.base_offset()
        );
        *sequence += batch.batch.record_count();
        for record in batch.records().expect("records") {
            let record = record.expect("record");
            let offset = record.offset();
            let slot = &mut next_offset[p as usize];
            assert_eq!(
                offset, *slot,
                "{codec:?}: partition {p}: offset {offset} where {slot} was due (gap or repeat)"
            );
            *slot += 1;
            let value = record.value().expect("non-null value");
            let i = index_of(value);
            assert!(i < RECORDS, "{codec:?}: index {i} out of range");
            assert!(
                seen[i].is_none(),
                "{codec:?}: record {i} read twice: at {:?} and {p}@{offset}",
                seen[i]
            );
            seen[i] = Some((p, offset));
            if let Some(prev) = last_index[p as usize] {
                assert!(
                    prev < i,
                    "{codec:?}: partition {p}: record {i} after record {prev} (send order broken)"
                );
            }
            last_index[p as usize] = Some(i);
            let k = key_of(i);
            assert_eq!(
                record.key(),
                Some(&keys[k][..]),
                "{codec:?}: record {i} key"
            );
            assert_eq!(value, &value_of(i, k)[..], "{codec:?}: record {i} value");
            assert_eq!(
                (p, offset),
                acked[i],
                "{codec:?}: record {i} read where it was not acknowledged"
            );
            read += 1;
        }
    }
    let fetched = start.elapsed();
    assert!(
        seen.iter().all(Option::is_some),
        "{codec:?}: records missing"
    );
    assert_eq!(
        next_offset, per_partition,
        "{codec:?}: per-partition counts"
    );
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new(topic.as_str(), p);
        assert_eq!(
            fetcher.high_watermark(&tp),
            Some(per_partition[p as usize]),
            "{codec:?}: high watermark of partition {p}"
        );
        assert_eq!(fetcher.position(&tp), Some(per_partition[p as usize]));
    }
    // Nothing beyond: a duplicate past the counted records would show up here.
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(300), fetcher.next_batch()).await
    {
        panic!("{codec:?}: unexpected data after every record was read: {extra:?}");
    }
    let fstats = fetcher.stats();
    eprintln!(
        "e2e {codec:?}: {RECORDS} records ({KEYS} keys, {PARTITIONS} partitions {per_partition:?}) \
         produced+acked in {produced:?} ({} Produce requests, {} retries); fetched in {fetched:?} \
         ({batches} batches, {} Fetch requests, {} bytes)",
        stats.requests, stats.retries, fstats.fetch_requests, fstats.fetched_bytes
    );
    fetcher.close();
    Admin::new(cluster)
        .delete_topic(&topic)
        .await
        .expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_100k_keyed_none() {
    run(Compression::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_100k_keyed_gzip() {
    run(Compression::Gzip).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_100k_keyed_snappy() {
    run(Compression::Snappy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_100k_keyed_lz4() {
    run(Compression::Lz4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_100k_keyed_zstd() {
    run(Compression::Zstd).await;
}
