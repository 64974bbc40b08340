//! The fetcher against a real broker (tansu, started per test binary by `support`, or
//! `MEPHISTO_BROKER`): every record exactly once and in order per partition, several partitions
//! in one request, zero-copy batches, earliest / latest positions, out-of-range handling,
//! back-pressure, read_committed against a transactional peer producer, and records written by
//! confluent-kafka.
//!
//! The peer tests run `.venv/bin/python` (created by `scripts/install-peers.sh`) and fail when
//! it is missing.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mephisto_engine::fetcher::{
    FetchError, FetchPosition, FetchedBatch, Fetcher, FetcherConfig, IsolationLevel, OffsetReset,
    TopicPartition,
};
use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord};
use mephisto_engine::{Admin, Cluster, NewTopic};

/// One record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

async fn create_topic(cluster: &Cluster, prefix: &str, partitions: i32) -> String {
    let name = support::unique_topic(prefix);
    Admin::new(cluster.clone())
        .create_topic(NewTopic::new(&name, partitions, 1))
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    name
}

fn producer(cluster: &Cluster) -> Producer {
    Producer::new(cluster.clone(), ProducerConfig::default()).expect("producer")
}

/// Produces records `from..to` to `partition`, queued together (multi-record batches). Values
/// are `v-{partition}-{i}`, keys `k-{i}`, one header `i`.
async fn produce_bulk(producer: &Producer, topic: &str, partition: i32, from: usize, to: usize) {
    let mut deliveries = Vec::with_capacity(to - from);
    for i in from..to {
        let record = ProducerRecord::new(topic)
            .partition(partition)
            .key(format!("k-{i}"))
            .value(format!("v-{partition}-{i}"))
            .header("i", Some(Bytes::from(i.to_string())));
        deliveries.push(producer.enqueue(record).await.expect("enqueue"));
    }
    producer.flush().await;
    for d in deliveries {
        d.await.expect("delivered");
    }
}

/// Produces one record and waits for its acknowledgement (so it is a batch of its own).
async fn produce_one(producer: &Producer, topic: &str, partition: i32, value: &str) -> i64 {
    producer
        .send(
            ProducerRecord::new(topic)
                .partition(partition)
                .value(value.to_owned()),
        )
        .await
        .expect("delivered")
        .offset
}

fn records_of(batch: &FetchedBatch) -> Vec<Got> {
    batch
        .records()
        .expect("records")
        .map(|r| {
            let r = r.expect("record");
            Got {
                partition: batch.partition,
                offset: r.offset(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                headers: r
                    .headers()
                    .map(|h| {
                        (
                            String::from_utf8_lossy(h.key()).into_owned(),
                            h.value().map(<[u8]>::to_vec),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Reads batches until `want` records arrived or `timeout` passed.
async fn read(fetcher: &Fetcher, want: usize, timeout: Duration) -> (Vec<Got>, Vec<FetchedBatch>) {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut batches = Vec::new();
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, fetcher.next_batch()).await {
            Ok(Ok(batch)) => {
                got.extend(records_of(&batch));
                batches.push(batch);
            }
            Ok(Err(e)) => panic!("fetch error after {} records: {e}", got.len()),
            Err(_) => break,
        }
    }
    (got, batches)
}

/// Nothing more arrives within `wait`.
async fn assert_quiet(fetcher: &Fetcher, wait: Duration) {
    if let Ok(r) = tokio::time::timeout(wait, fetcher.next_batch()).await {
        panic!("unexpected extra fetch result: {r:?}");
    }
}

fn fast_config() -> FetcherConfig {
    FetcherConfig::default().with_max_wait(Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_partitions_every_record_once_in_order() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "fetch3", 3).await;
    let producer = producer(&cluster);
    let per_partition = [500usize, 300, 700];
    // Two rounds, so that each partition has at least two batches.
    for (p, &n) in per_partition.iter().enumerate() {
        produce_bulk(&producer, &topic, p as i32, 0, n / 2).await;
    }
    for (p, &n) in per_partition.iter().enumerate() {
        produce_bulk(&producer, &topic, p as i32, n / 2, n).await;
    }
    let fetcher = Fetcher::new(cluster.clone(), fast_config()).expect("fetcher");
    for p in 0..3 {
        fetcher
            .assign(
                TopicPartition::new(topic.as_str(), p),
                FetchPosition::Earliest,
            )
            .expect("assign");
    }
    let total: usize = per_partition.iter().sum();
    let (got, batches) = read(&fetcher, total, Duration::from_secs(20)).await;
    assert_eq!(got.len(), total, "records read");
    assert_quiet(&fetcher, Duration::from_millis(600)).await;

    let mut by_partition: BTreeMap<i32, Vec<&Got>> = BTreeMap::new();
    for g in &got {
        by_partition.entry(g.partition).or_default().push(g);
    }
    for (p, &n) in per_partition.iter().enumerate() {
        let records = &by_partition[&(p as i32)];
        assert_eq!(records.len(), n, "partition {p}");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(
                r.offset, i as i64,
                "partition {p}: offsets in order, no gap"
            );
            assert_eq!(r.key.as_deref(), Some(format!("k-{i}").as_bytes()));
            assert_eq!(r.value.as_deref(), Some(format!("v-{p}-{i}").as_bytes()));
            assert_eq!(
                r.headers,
                vec![("i".to_owned(), Some(i.to_string().into_bytes()))]
            );
        }
        let tp = TopicPartition::new(topic.as_str(), p as i32);
        assert_eq!(
            fetcher.position(&tp),
            Some(n as i64),
            "position after the last batch"
        );
        assert_eq!(
            fetcher.high_watermark(&tp),
            Some(n as i64),
            "high watermark"
        );
    }
    let stats = fetcher.stats();
    eprintln!("stats: {stats:?}, {} batches", batches.len());
    // Partitions are assigned one at a time, so the first Fetch may leave before the last
    // assignment; what must hold is that one Fetch carries several partitions of the broker.
    assert!(
        stats.max_partitions_per_response >= 2,
        "one Fetch carried several partitions: {stats:?}"
    );
    assert_eq!(stats.buffered_bytes, 0, "everything handed out");

    // Zero copy: consecutive batches of one response are adjacent slices of one buffer, and
    // record values point into their batch.
    let mut adjacent = 0;
    for pair in batches.windows(2) {
        let (a, b) = (&pair[0].batch, &pair[1].batch);
        let a_end = a.as_bytes().as_ptr() as usize + a.size_in_bytes();
        if pair[0].partition == pair[1].partition && a_end == b.as_bytes().as_ptr() as usize {
            adjacent += 1;
        }
    }
    for fb in &batches {
        let bytes = fb.batch.as_bytes();
        let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        for r in fb.records().expect("records") {
            let value = r.expect("record").value_bytes().expect("value");
            assert!(
                range.contains(&(value.as_ptr() as usize)),
                "value copied out of the batch"
            );
        }
    }
    assert!(
        adjacent > 0,
        "no two batches of one response share a buffer"
    );
    Admin::new(cluster)
        .delete_topic(&topic)
        .await
        .expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earliest_and_latest_positions() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "fetch-pos", 1).await;
    let producer = producer(&cluster);
    // Single-record batches: tansu answers ListOffsets(latest) with the last batch's base
    // offset + 1, which is only right for them.
    for i in 0..5 {
        assert_eq!(
            produce_one(&producer, &topic, 0, &format!("old-{i}")).await,
            i
        );
    }
    let tp = TopicPartition::new(topic.as_str(), 0);

    let latest = Fetcher::new(cluster.clone(), fast_config()).expect("fetcher");
    latest
        .assign(tp.clone(), FetchPosition::Latest)
        .expect("assign");
    let deadline = Instant::now() + Duration::from_secs(10);
    while latest.position(&tp).is_none() {
        assert!(Instant::now() < deadline, "latest position never resolved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(latest.position(&tp), Some(5), "latest = log end offset");
    assert_quiet(&latest, Duration::from_millis(500)).await;
    for i in 0..3 {
        produce_one(&producer, &topic, 0, &format!("new-{i}")).await;
    }
    let (got, _) = read(&latest, 3, Duration::from_secs(10)).await;
    let values: Vec<_> = got
        .iter()
        .map(|g| g.value.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        values,
        [b"new-0".to_vec(), b"new-1".to_vec(), b"new-2".to_vec()]
    );
    assert_eq!(got.iter().map(|g| g.offset).collect::<Vec<_>>(), [5, 6, 7]);
    assert_eq!(latest.high_watermark(&tp), Some(8));

    let earliest = Fetcher::new(cluster.clone(), fast_config()).expect("fetcher");
    earliest
        .assign(tp.clone(), FetchPosition::Earliest)
        .expect("assign");
    let (got, _) = read(&earliest, 8, Duration::from_secs(10)).await;
    assert_eq!(
        got.iter().map(|g| g.offset).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );

    // An explicit offset inside the log, then a seek back.
    let at = Fetcher::new(cluster.clone(), fast_config()).expect("fetcher");
    at.assign(tp.clone(), FetchPosition::Offset(6))
        .expect("assign");
    let (got, _) = read(&at, 2, Duration::from_secs(10)).await;
    assert_eq!(got.iter().map(|g| g.offset).collect::<Vec<_>>(), [6, 7]);
    at.seek(&tp, FetchPosition::Offset(2)).expect("seek");
    let (got, _) = read(&at, 6, Duration::from_secs(10)).await;
    assert_eq!(
        got.iter().map(|g| g.offset).collect::<Vec<_>>(),
        [2, 3, 4, 5, 6, 7]
    );
    assert!(matches!(
        at.seek(
            &TopicPartition::new(topic.as_str(), 9),
            FetchPosition::Earliest
        ),
        Err(FetchError::NotAssigned(_))
    ));
    assert!(matches!(
        at.seek(&tp, FetchPosition::Offset(-3)),
        Err(FetchError::InvalidOffset { offset: -3, .. })
    ));
    Admin::new(cluster)
        .delete_topic(&topic)
        .await
        .expect("cleanup");
}

/// tansu gap (v0.6.0): a Fetch past the log end is answered with no error and no records,
/// never OFFSET_OUT_OF_RANGE, so the reset policies cannot be exercised against it; they are
/// tested on hand-built responses (unit tests) and a scripted broker (`fetcher_fake.rs`). This
/// test pins the gap: if tansu starts answering OFFSET_OUT_OF_RANGE it fails, and the policies
/// should then be tested here too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_gap_fetch_past_the_end_is_not_out_of_range() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "fetch-oor", 1).await;
    let producer = producer(&cluster);
    produce_bulk(&producer, &topic, 0, 0, 10).await;
    let tp = TopicPartition::new(topic.as_str(), 0);
    if support::is_dev_broker() {
        // The development broker answers OFFSET_OUT_OF_RANGE as Kafka does: the policies run
        // for real.
        return out_of_range_policies(&cluster, &topic, &tp).await;
    }
    let none = Fetcher::new(
        cluster.clone(),
        fast_config().with_auto_offset_reset(OffsetReset::None),
    )
    .expect("fetcher");
    none.assign(tp.clone(), FetchPosition::Offset(1_000))
        .expect("assign");
    assert_quiet(&none, Duration::from_secs(1)).await;
    let stats = none.stats();
    assert!(
        stats.fetch_requests >= 2,
        "the fetcher kept polling: {stats:?}"
    );
    assert_eq!(
        none.high_watermark(&tp),
        Some(10),
        "tansu answered without an error"
    );
    // Once past the gap, a seek works as usual.
    none.seek(&tp, FetchPosition::Offset(7)).expect("seek");
    let (got, _) = read(&none, 3, Duration::from_secs(10)).await;
    assert_eq!(got.iter().map(|g| g.offset).collect::<Vec<_>>(), [7, 8, 9]);
    Admin::new(cluster)
        .delete_topic(&topic)
        .await
        .expect("cleanup");
}

/// On a broker that answers OFFSET_OUT_OF_RANGE (the development broker): `none` surfaces it,
/// `earliest` starts over at the log start, `latest` waits for new records.
async fn out_of_range_policies(cluster: &Cluster, topic: &str, tp: &TopicPartition) {
    let none = Fetcher::new(
        cluster.clone(),
        fast_config().with_auto_offset_reset(OffsetReset::None),
    )
    .expect("fetcher");
    none.assign(tp.clone(), FetchPosition::Offset(1_000))
        .expect("assign");
    let r = tokio::time::timeout(Duration::from_secs(10), none.next_batch())
        .await
        .expect("an answer");
    assert!(
        matches!(r, Err(FetchError::OffsetOutOfRange { .. })),
        "reset none surfaces the error: {r:?}"
    );
    let earliest = Fetcher::new(
        cluster.clone(),
        fast_config().with_auto_offset_reset(OffsetReset::Earliest),
    )
    .expect("fetcher");
    earliest
        .assign(tp.clone(), FetchPosition::Offset(1_000))
        .expect("assign");
    let (got, _) = read(&earliest, 10, Duration::from_secs(10)).await;
    assert_eq!(
        got.iter().map(|g| g.offset).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>(),
        "reset earliest reads from the start"
    );
    let latest = Fetcher::new(
        cluster.clone(),
        fast_config().with_auto_offset_reset(OffsetReset::Latest),
    )
    .expect("fetcher");
    latest
        .assign(tp.clone(), FetchPosition::Offset(1_000))
        .expect("assign");
    assert_quiet(&latest, Duration::from_secs(1)).await;
    let producer = producer(cluster);
    produce_bulk(&producer, topic, 0, 10, 12).await;
    let (got, _) = read(&latest, 2, Duration::from_secs(10)).await;
    assert_eq!(
        got.iter().map(|g| g.offset).collect::<Vec<_>>(),
        [10, 11],
        "reset latest reads only new records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_bounds_the_buffer() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "fetch-bp", 2).await;
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig {
            // Small batches, so that a small response is possible.
            batch_size: 2_048,
            ..ProducerConfig::default()
        },
    )
    .expect("producer");
    let per_partition = 2_000;
    for p in 0..2 {
        produce_bulk(&producer, &topic, p, 0, per_partition).await;
    }
    let cap = 16 * 1024;
    let fetcher = Fetcher::new(
        cluster.clone(),
        fast_config()
            .with_max_buffered_bytes(cap)
            .with_max_partition_bytes(8 * 1024),
    )
    .expect("fetcher");
    for p in 0..2 {
        fetcher
            .assign(
                TopicPartition::new(topic.as_str(), p),
                FetchPosition::Earliest,
            )
            .expect("assign");
    }
    // The application does not read: fetching must stop near the cap.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = fetcher.stats();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = fetcher.stats();
    eprintln!("while not reading: {stalled:?}");
    assert!(stalled.buffered_bytes > 0, "nothing was prefetched");
    assert!(
        stalled.peak_buffered_bytes <= cap + stalled.largest_response_bytes,
        "buffer grew past the cap plus one response: {stalled:?}"
    );
    assert_eq!(
        stalled.fetch_requests, later.fetch_requests,
        "fetching went on while the buffer was full"
    );

    // Reading drains the buffer and fetching resumes until everything arrived, in order.
    let (got, _) = read(&fetcher, 2 * per_partition, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2 * per_partition);
    for p in 0..2 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|g| g.partition == p)
            .map(|g| g.offset)
            .collect();
        assert_eq!(
            offsets,
            (0..per_partition as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
    }
    let end = fetcher.stats();
    eprintln!("after reading: {end:?}");
    assert!(
        stalled.fetched_bytes * 2 < end.fetched_bytes,
        "most of the data was fetched without a reader: {stalled:?} then {end:?}"
    );
    assert!(
        end.peak_buffered_bytes <= cap + end.largest_response_bytes,
        "{end:?}"
    );
    Admin::new(cluster)
        .delete_topic(&topic)
        .await
        .expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "fetch-pause", 2).await;
    let producer = producer(&cluster);
    produce_bulk(&producer, &topic, 0, 0, 5).await;
    produce_bulk(&producer, &topic, 1, 0, 5).await;
    let (p0, p1) = (
        TopicPartition::new(topic.as_str(), 0),
        TopicPartition::new(topic.as_str(), 1),
    );
    let fetcher = Fetcher::new(cluster.clone(), fast_config()).expect("fetcher");
    fetcher
        .assign(p0.clone(), FetchPosition::Earliest)
        .expect("assign");
    fetcher
        .assign(p1.clone(), FetchPosition::Earliest)
        .expect("assign");
    fetcher.pause(&p1).expect("pause");
    let (got, _) = read(&fetcher, 5, Duration::from_secs(10)).await;
    assert!(
        got.iter().all(|g| g.partition == 0),
        "paused partition delivered"
    );
    assert_quiet(&fetcher, Duration::from_millis(600)).await;
    fetcher.resume(&p1).expect("resume");
    let (got, _) = read(&fetcher, 5, Duration::from_secs(10)).await;
    assert_eq!(
        got.iter()
            .map(|g| (g.partition, g.offset))
            .collect::<Vec<_>>(),
        (0..5).map(|o| (1, o)).collect::<Vec<_>>()
    );
    assert!(fetcher.unassign(&p0));
    assert!(!fetcher.unassign(&p0));
    assert_eq!(fetcher.assignment(), vec![p1]);
    Admin::new(cluster)
        .delete_topic(&topic)
        .await
        .expect("cleanup");
}

// ---------------------------------------------------------------------------------------------
// Peers.

fn venv_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/install-peers.sh (creates .venv with confluent-kafka)",
        python.display()
    );
    python
}

/// Runs `script` with the venv's python, `args` as `sys.argv[1..]`; panics on failure.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const PEER_PRODUCE: &str = r#"
import sys
from confluent_kafka import Producer
addr, topic = sys.argv[1], sys.argv[2]
errors = []
def report(err, msg):
    if err is not None:
        errors.append(str(err))
for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
    p = Producer({"bootstrap.servers": addr, "compression.type": codec, "linger.ms": 20,
                  "enable.idempotence": codec == "zstd"})
    for i in range(200):
        p.produce(topic, value=f"peer-{codec}-{i}".encode(), key=f"key-{i}".encode(),
                  partition=i % 3, headers=[("codec", codec.encode()), ("empty", None)],
                  on_delivery=report)
    p.poll(0)
    left = p.flush(30)
    if left:
        sys.exit(f"{left} records not delivered")
if errors:
    sys.exit("delivery errors: " + "; ".join(errors[:5]))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_records_written_by_confluent_kafka() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "fetch-peer", 3).await;
    python(PEER_PRODUCE, &[&broker.addr, &topic]);
    let fetcher = Fetcher::new(cluster.clone(), fast_config()).expect("fetcher");
    for p in 0..3 {
        fetcher
            .assign(
                TopicPartition::new(topic.as_str(), p),
                FetchPosition::Earliest,
            )
            .expect("assign");
    }
    let (got, batches) = read(&fetcher, 1_000, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1_000);
    assert_quiet(&fetcher, Duration::from_millis(600)).await;
    let codecs: std::collections::BTreeSet<String> = batches
        .iter()
        .map(|b| format!("{:?}", b.batch.compression()))
        .collect();
    eprintln!("peer batches: {} with codecs {codecs:?}", batches.len());
    assert_eq!(codecs.len(), 5, "every codec seen: {codecs:?}");
    for p in 0..3 {
        let mine: Vec<&Got> = got.iter().filter(|g| g.partition == p).collect();
        let want: Vec<(String, String)> = ["none", "gzip", "snappy", "lz4", "zstd"]
            .iter()
            .flat_map(|codec| {
                (0..200)
                    .filter(|i| i % 3 == p)
                    .map(move |i| (format!("key-{i}"), format!("peer-{codec}-{i}")))
            })
            .collect();
        assert_eq!(mine.len(), want.len(), "partition {p}");
        for (i, (g, (key, value))) in mine.iter().zip(&want).enumerate() {
            assert_eq!(g.offset, i as i64, "partition {p}");
            assert_eq!(g.key.as_deref(), Some(key.as_bytes()));
            assert_eq!(g.value.as_deref(), Some(value.as_bytes()));
            let codec = value.split('-').nth(1).unwrap_or_default();
            assert_eq!(
                g.headers,
                vec![
                    ("codec".to_owned(), Some(codec.as_bytes().to_vec())),
                    ("empty".to_owned(), None)
                ]
            );
        }
    }
    Admin::new(cluster)
        .delete_topic(&topic)
        .await
        .expect("cleanup");
}

const PEER_TRANSACTIONS: &str = r#"
import sys
from confluent_kafka import Producer
addr, topic, txid = sys.argv[1], sys.argv[2], sys.argv[3]
p = Producer({"bootstrap.servers": addr, "transactional.id": txid, "linger.ms": 5})
p.init_transactions(30)
def txn(values, commit):
    p.begin_transaction()
    for v in values:
        p.produce(topic, value=v.encode(), partition=0)
    p.flush(30)
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)
txn(["c0", "c1", "c2"], True)
txn(["a0", "a1", "a2"], False)
txn(["c3"], True)
"#;

/// A raw read_committed Fetch of partition 0 from offset 0: the broker's aborted list and LSO.
async fn raw_aborted_list(cluster: &Cluster, topic: &str) -> (Vec<(i64, i64)>, i64, i64) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let leader = cluster.leader(topic, 0).await.expect("leader");
    let response = cluster
        .send(leader.broker, mephisto_engine::Purpose::Fetch, |_| {
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(100)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_isolation_level(1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)])])
        })
        .await
        .expect("raw fetch");
    let data = &response.body.responses[0].partitions[0];
    let aborted = data
        .aborted_transactions
        .iter()
        .flatten()
        .map(|t| (t.producer_id.0, t.first_offset))
        .collect();
    (aborted, data.last_stable_offset, data.high_watermark)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_of_a_peer_read_uncommitted_and_committed() {
    if support::is_dev_broker() {
        eprintln!(
            "skipped on the development broker: it refuses transactional producers \
             (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); read_committed runs on tansu"
        );
        return;
    }
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "fetch-txn", 1).await;
    let txid = format!("{topic}-tx");
    python(PEER_TRANSACTIONS, &[&broker.addr, &topic, &txid]);
    let (aborted, lso, hw) = raw_aborted_list(&cluster, &topic).await;
    eprintln!(
        "broker: aborted transactions {aborted:?}, last stable offset {lso}, high watermark {hw}"
    );
    let tp = TopicPartition::new(topic.as_str(), 0);

    let values = |got: &[Got]| -> Vec<String> {
        got.iter()
            .map(|g| String::from_utf8_lossy(g.value.as_deref().unwrap_or_default()).into_owned())
            .collect()
    };

    // read_uncommitted: all data records, never a control record; the position ends past the
    // last commit marker.
    let uncommitted = Fetcher::new(cluster.clone(), fast_config()).expect("fetcher");
    uncommitted
        .assign(tp.clone(), FetchPosition::Earliest)
        .expect("assign");
    let (got, batches) = read(&uncommitted, 7, Duration::from_secs(10)).await;
    assert_eq!(values(&got), ["c0", "c1", "c2", "a0", "a1", "a2", "c3"]);
    assert!(batches.iter().all(|b| !b.batch.is_control()));
    assert!(batches.iter().all(|b| b.batch.is_transactional()));
    assert_quiet(&uncommitted, Duration::from_millis(500)).await;
    assert_eq!(
        uncommitted.position(&tp),
        Some(hw),
        "position past the final marker"
    );

    // read_committed. tansu gap (v0.6.0): its read_committed Fetch lists no aborted
    // transaction, so no client can drop the aborted one; the filter itself is tested on a
    // scripted broker with a correct list (`fetcher_fake.rs`) and in the unit tests. Pin the
    // gap so that this test fails, and gets its real expectation, once tansu is fixed.
    assert!(
        aborted.is_empty(),
        "tansu now lists aborted transactions ({aborted:?}): expect [c0, c1, c2, c3] below"
    );
    let committed = Fetcher::new(
        cluster.clone(),
        fast_config().with_isolation_level(IsolationLevel::ReadCommitted),
    )
    .expect("fetcher");
    committed
        .assign(tp.clone(), FetchPosition::Earliest)
        .expect("assign");
    let (got, _) = read(&committed, 7, Duration::from_secs(10)).await;
    assert_quiet(&committed, Duration::from_millis(500)).await;
    // What the broker's (empty) list implies: every data record, no control record.
    assert_eq!(values(&got), ["c0", "c1", "c2", "a0", "a1", "a2", "c3"]);
    assert_eq!(committed.position(&tp), Some(hw));
    Admin::new(cluster)
        .delete_topic(&topic)
        .await
        .expect("cleanup");
}

/// Throughput figure, measured once and printed, not asserted: 100,000 records of 100 bytes
/// in one partition, produced by the engine producer, then fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_100k_records_of_100_bytes() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "fetch-tput", 1).await;
    let producer = producer(&cluster);
    let count = 100_000usize;
    let value = Bytes::from(vec![b'x'; 100]);
    let start = Instant::now();
    let mut deliveries = Vec::with_capacity(count);
    for _ in 0..count {
        let record = ProducerRecord::new(topic.as_str())
            .partition(0)
            .value(value.clone());
        deliveries.push(producer.enqueue(record).await.expect("enqueue"));
    }
    producer.flush().await;
    for d in deliveries {
        d.await.expect("delivered");
    }
    let produced = start.elapsed();

    let fetcher = Fetcher::new(cluster.clone(), fast_config()).expect("fetcher");
    let tp = TopicPartition::new(topic.as_str(), 0);
    fetcher
        .assign(tp.clone(), FetchPosition::Earliest)
        .expect("assign");
    let start = Instant::now();
    let mut seen = 0usize;
    let mut bytes = 0usize;
    let mut next = 0i64;
    while seen < count {
        let batch = tokio::time::timeout(Duration::from_secs(30), fetcher.next_batch())
            .await
            .expect("no stall")
            .expect("batch");
        for r in batch.records().expect("records") {
            let r = r.expect("record");
            assert_eq!(r.offset(), next);
            next += 1;
            bytes += r.value().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    let fetched = start.elapsed();
    let stats = fetcher.stats();
    eprintln!(
        "100k x 100 B: produced in {produced:?}; fetched in {fetched:?} = {:.0} records/s, \
         {:.1} MB/s of values; {} Fetch requests, {} batches",
        count as f64 / fetched.as_secs_f64(),
        bytes as f64 / fetched.as_secs_f64() / 1e6,
        stats.fetch_requests,
        stats.batches_delivered
    );
    assert_eq!(seen, count);
    Admin::new(cluster)
        .delete_topic(&topic)
        .await
        .expect("cleanup");
}
