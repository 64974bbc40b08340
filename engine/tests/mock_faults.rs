//! The producer and the fetcher under faults, against librdkafka's mock cluster (3 brokers on
//! loopback, through the `rdkafka` dev-dependency):
//!
//! - partition leaders that move while idempotent sends are in flight, and while the fetcher
//!   reads;
//! - a leader broker that goes down and comes back, mid-produce and mid-fetch;
//! - retriable error codes (and dropped connections) injected into Produce, Fetch and
//!   ListOffsets responses;
//! - fatal error codes injected into Produce, Fetch and ListOffsets responses, which must reach
//!   the caller with the code's name, without retries, and leave the client usable.
//!
//! Every run is read back with the Mephisto fetcher and checked record by record: every record
//! present exactly once, in send order per partition, where its acknowledgement said it was.
//!
//! # The mock's quirks
//! - Its Metadata responses at the flexible versions (v9+) carry one stray trailing byte, which
//!   the wire crate rejects: Metadata is pinned to v8. Produce v10, Fetch v12, ListOffsets v7 and
//!   InitProducerId v4 (all flexible) decode fine and are used unpinned.
//! - It checks idempotent sequences only for transactional producers
//!   (`rd_kafka_mock_validate_records` returns early without a transactional id). A broker
//!   refuses a batch whose predecessor is missing (OUT_OF_ORDER_SEQUENCE_NUMBER; the producer
//!   re-sends it after its predecessor) and drops a re-sent batch it already has; the mock
//!   appends both. So where produce faults happen, order and uniqueness are checked the way a
//!   broker enforces them: by producer sequence (gap-free, in send order, each record once,
//!   exact re-sends counted once and reported); the log itself must then still have gap-free
//!   offsets and every record where its acknowledgement put it. Where no produce fault happens,
//!   the log order itself must be the send order.
//! - Injected errors are whole-request: the mock appends nothing and sets the code on every
//!   partition (and, for Fetch v7+, at the top level too).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use mephisto_engine::fetcher::{FetchError, FetchPosition, Fetcher, FetcherConfig, TopicPartition};
use mephisto_engine::producer::{
    Delivery, ProduceError, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
use mephisto_engine::{Admin, ClientConfig, Cluster, EngineError, OffsetSpec, Purpose};
use mephisto_test_support::wait_until_async;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

type Mock = MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

const BROKERS: [i32; 3] = [1, 2, 3];

fn mock(topic: &str, partitions: i32) -> Mock {
    let mock = MockCluster::new(3).expect("mock cluster");
    let servers = mock.bootstrap_servers();
    for server in servers.split(',') {
        assert!(
            server.starts_with("127.0.0.1:") || server.starts_with("localhost:"),
            "mock broker not on loopback: {servers}"
        );
    }
    mock.create_topic(topic, partitions, 3)
        .expect("create topic");
    mock
}

fn client_config(mock: &Mock) -> ClientConfig {
    ClientConfig::from_url(&mock.bootstrap_servers())
        .expect("mock bootstrap servers")
        .with_max_version(ApiKey::Metadata, 8)
        .with_request_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(1))
        .with_api_timeout(Duration::from_secs(10))
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .with_retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

async fn connect(mock: &Mock) -> Cluster {
    let cluster = Cluster::connect(client_config(mock))
        .await
        .expect("connect to the mock cluster");
    assert_eq!(cluster.cached_metadata().brokers.len(), 3);
    cluster
}

fn producer_config() -> ProducerConfig {
    ProducerConfig {
        idempotence: Some(true),
        linger: Duration::from_millis(2),
        // Small batches: many requests, so that faults land between and during them.
        batch_size: 2_048,
        retry_backoff: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
        delivery_timeout: Duration::from_secs(30),
        ..ProducerConfig::default()
    }
}

fn fetcher_config() -> FetcherConfig {
    // About one batch per partition per request and little prefetch: reading takes many
    // requests, so that faults land between them and data is still unfetched after each fault.
    FetcherConfig::default()
        .with_max_wait(Duration::from_millis(50))
        .with_max_partition_bytes(1_024)
        .with_max_buffered_bytes(4_096)
}

fn value_of(i: usize) -> String {
    format!("r{i:06}")
}

fn index_of(value: &[u8]) -> usize {
    std::str::from_utf8(&value[1..])
        .expect("ascii")
        .parse()
        .expect("index")
}

/// Queues records `range` (record `i` goes to partition `i % partitions`) without waiting.
async fn enqueue(
    producer: &Producer,
    topic: &str,
    partitions: i32,
    range: std::ops::Range<usize>,
) -> Vec<(usize, Delivery)> {
    let mut out = Vec::with_capacity(range.len());
    for i in range {
        let record = ProducerRecord::new(topic)
            .partition((i % partitions as usize) as i32)
            .key(format!("k{i}"))
            .value(value_of(i));
        out.push((
            i,
            producer
                .enqueue(record)
                .await
                .unwrap_or_else(|e| panic!("enqueue {i}: {e}")),
        ));
    }
    out
}

/// Awaits every delivery; panics on the first failure.
async fn acks(deliveries: Vec<(usize, Delivery)>, into: &mut BTreeMap<usize, RecordMetadata>) {
    for (i, d) in deliveries {
        let meta = d
            .await
            .unwrap_or_else(|e| panic!("record {i} not delivered: {e}"));
        into.insert(i, meta);
    }
}

/// One batch as read: its idempotence stamp and its records `(offset, index)`.
#[derive(Debug, Clone)]
struct ReadBatch {
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    records: Vec<(i64, usize)>,
}

/// Reads with the Mephisto fetcher, remembering every batch of every partition.
struct Reader {
    fetcher: Fetcher,
    topic: String,
    batches: BTreeMap<i32, Vec<ReadBatch>>,
    records: usize,
    deadline: Instant,
}

impl Reader {
    fn new(cluster: &Cluster, topic: &str, partitions: i32, timeout: Duration) -> Self {
        let fetcher = Fetcher::new(cluster.clone(), fetcher_config()).expect("fetcher");
        for p in 0..partitions {
            fetcher
                .assign(TopicPartition::new(topic, p), FetchPosition::Earliest)
                .expect("assign");
        }
        Self {
            fetcher,
            topic: topic.to_owned(),
            batches: BTreeMap::new(),
            records: 0,
            deadline: Instant::now() + timeout,
        }
    }

    /// The next batch, or the fetcher's error; panics at the deadline.
    async fn try_step(&mut self) -> Result<(), FetchError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let batch = match tokio::time::timeout(left, self.fetcher.next_batch()).await {
            Ok(result) => result?,
            Err(_) => panic!(
                "read stalled after {} records: positions {:?}",
                self.records,
                self.positions()
            ),
        };
        assert_eq!(&*batch.topic, self.topic.as_str());
        let mut records = Vec::new();
        for r in batch.records().expect("records") {
            let r = r.expect("record");
            records.push((r.offset(), index_of(r.value().expect("value"))));
        }
        self.records += records.len();
        self.batches
            .entry(batch.partition)
            .or_default()
            .push(ReadBatch {
                producer_id: batch.batch.producer_id(),
                epoch: batch.batch.producer_epoch(),
                base_sequence: batch.batch.base_sequence(),
                records,
            });
        Ok(())
    }

    async fn step(&mut self) {
        if let Err(e) = self.try_step().await {
            panic!("fetch error after {} records: {e}", self.records);
        }
    }

    /// Reads until `count` records arrived, then checks that nothing more comes.
    async fn until(&mut self, count: usize) {
        while self.records < count {
            self.step().await;
        }
        if let Ok(extra) =
            tokio::time::timeout(Duration::from_millis(300), self.fetcher.next_batch()).await
        {
            panic!("unexpected data after {count} records: {extra:?}");
        }
    }

    /// Reads until at least `min` records arrived and then nothing more for 500 ms.
    async fn drain(&mut self, min: usize) {
        while self.records < min {
            self.step().await;
        }
        while let Ok(result) =
            tokio::time::timeout(Duration::from_millis(500), self.try_step()).await
        {
            if let Err(e) = result {
                panic!("fetch error after {} records: {e}", self.records);
            }
        }
    }

    fn positions(&self) -> Vec<Option<i64>> {
        let mut out = Vec::new();
        for tp in self.fetcher.assignment() {
            out.push(self.fetcher.position(&tp));
        }
        out
    }
}

/// What [`check_read`] found beyond its assertions.
#[derive(Debug, Default)]
struct Checked {
    /// Batches the mock appended twice (exact re-sends, dropped as a broker would have).
    resent: usize,
    /// Partitions whose log order differs from their sequence order.
    reordered: Vec<i32>,
}

/// Checks what `reader` read against records `0..sent` (record `i` in partition
/// `i % partitions`; those in `missing` were never acknowledged):
/// - per partition, log offsets are gap-free from 0, and every acknowledged record was read at
///   the offset its acknowledgement named;
/// - in producer-sequence order (what a broker enforces; the mock does not, see the module
///   docs), each producer identity's batches have gap-free sequences from 0, and the records are
///   exactly the partition's records, each once, in send order. Exact re-sends (same producer
///   id, epoch, base sequence and records) count once and are reported.
fn check_read(
    reader: &Reader,
    partitions: i32,
    sent: usize,
    missing: &[usize],
    acked: &BTreeMap<usize, RecordMetadata>,
) -> Checked {
    let mut checked = Checked::default();
    for p in 0..partitions {
        let batches = reader.batches.get(&p).cloned().unwrap_or_default();
        // Log order.
        let mut offsets: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
        let mut next = 0i64;
        for b in &batches {
            for &(offset, i) in &b.records {
                assert_eq!(offset, next, "partition {p}: log offsets have a gap");
                next += 1;
                offsets.entry(i).or_default().push(offset);
            }
        }
        for (i, at) in &offsets {
            if let Some(meta) = acked.get(i) {
                assert_eq!(meta.partition, p, "record {i} read from another partition");
                assert!(
                    at.contains(&meta.offset),
                    "record {i} acknowledged at {} but read at {at:?}",
                    meta.offset
                );
            }
        }
        // Sequence order, identity by identity in the order they first appear in the log.
        let mut identities: Vec<(i64, i16)> = Vec::new();
        for b in &batches {
            assert!(
                b.producer_id >= 0,
                "partition {p}: a batch without producer id"
            );
            if !identities.contains(&(b.producer_id, b.epoch)) {
                identities.push((b.producer_id, b.epoch));
            }
        }
        let mut in_sequence: Vec<usize> = Vec::new();
        let mut reordered = false;
        for id in identities {
            let mut mine: Vec<&ReadBatch> = batches
                .iter()
                .filter(|b| (b.producer_id, b.epoch) == id)
                .collect();
            reordered |= mine
                .windows(2)
                .any(|w| w[0].base_sequence >= w[1].base_sequence);
            mine.sort_by_key(|b| b.base_sequence);
            let mut expect = 0i32;
            let mut last: Option<&ReadBatch> = None;
            for b in mine {
                let indexes: Vec<usize> = b.records.iter().map(|r| r.1).collect();
                if let Some(prev) = last.filter(|prev| prev.base_sequence == b.base_sequence) {
                    let prev_indexes: Vec<usize> = prev.records.iter().map(|r| r.1).collect();
                    assert_eq!(
                        prev_indexes, indexes,
                        "partition {p}: sequence {} of {id:?} written twice with other records",
                        b.base_sequence
                    );
                    checked.resent += 1;
                    continue;
                }
                assert_eq!(
                    b.base_sequence, expect,
                    "partition {p}: producer {id:?} sequence gap"
                );
                expect += b.records.len() as i32;
                in_sequence.extend(indexes);
                last = Some(b);
            }
        }
        if reordered {
            checked.reordered.push(p);
        }
        let want: Vec<usize> = (0..sent)
            .filter(|i| (i % partitions as usize) as i32 == p && !missing.contains(i))
            .collect();
        if in_sequence != want {
            let lost: Vec<&usize> = want.iter().filter(|i| !in_sequence.contains(i)).collect();
            panic!(
                "partition {p}: {} records in sequence order, {} expected; lost {:?}; order or \
                 duplicates wrong from position {:?}",
                in_sequence.len(),
                want.len(),
                &lost[..lost.len().min(20)],
                in_sequence.iter().zip(&want).position(|(a, b)| a != b)
            );
        }
    }
    checked
}

/// [`check_read`] for runs without produce faults: the log itself is in send order.
fn assert_exactly_once_in_log_order(
    reader: &Reader,
    partitions: i32,
    sent: usize,
    missing: &[usize],
    acked: &BTreeMap<usize, RecordMetadata>,
) {
    let checked = check_read(reader, partitions, sent, missing, acked);
    assert_eq!(checked.resent, 0, "re-sent batches in the log");
    assert!(
        checked.reordered.is_empty(),
        "log order differs from sequence order in partitions {:?}",
        checked.reordered
    );
}

fn leader_of(cluster: &Cluster, topic: &str, partition: i32) -> i32 {
    cluster
        .cached_metadata()
        .leader(topic, partition)
        .expect("leader")
        .broker
        .0
}

/// Waits (at most 10 s) until `cond` holds.
/// Waits at most 10 s for `cond`.
async fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    wait_until_async(what, Duration::from_secs(10), cond).await
}

// ---------------------------------------------------------------------------------------------
// Leader moves.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_moves_mid_produce() {
    const PARTITIONS: i32 = 4;
    const ROUNDS: usize = 8;
    const PER_ROUND: usize = 1_250;
    let topic = "moving-produce";
    let mock = mock(topic, PARTITIONS);
    // Responses take 50 ms, so that the requests of a round are still in flight when the
    // leaders move.
    mock.broker_round_trip_time(-1, Duration::from_millis(50))
        .expect("rtt");
    let cluster = connect(&mock).await;
    let config = producer_config();
    let buffer = config.buffer_memory;
    let producer = Producer::new(cluster.clone(), config).expect("producer");
    let start = Instant::now();
    let mut pending = Vec::new();
    let mut leaders: Vec<i32> = (0..PARTITIONS)
        .map(|p| leader_of(&cluster, topic, p))
        .collect();
    for round in 0..ROUNDS {
        let before = producer.stats().requests;
        pending.extend(
            enqueue(
                &producer,
                topic,
                PARTITIONS,
                round * PER_ROUND..(round + 1) * PER_ROUND,
            )
            .await,
        );
        wait_for("a Produce request of the round", || {
            producer.stats().requests > before
        })
        .await;
        assert!(
            producer.available_memory() < buffer,
            "round {round}: records must be unacknowledged when the leaders move"
        );
        for (p, leader) in leaders.iter_mut().enumerate() {
            let next = BROKERS
                [(BROKERS.iter().position(|b| b == leader).expect("broker") + 1) % BROKERS.len()];
            mock.partition_leader(topic, p as i32, Some(next))
                .expect("move leader");
            *leader = next;
        }
    }
    let mut acked = BTreeMap::new();
    acks(pending, &mut acked).await;
    let produced = start.elapsed();
    let stats = producer.stats();
    producer.close().await;
    eprintln!(
        "{} records, {ROUNDS} leader moves of every partition: all acknowledged in {produced:?}; \
         {stats:?}",
        acked.len()
    );
    assert!(
        stats.retries > 0,
        "no batch was refused by a former leader: {stats:?}"
    );
    assert_eq!(stats.identities, 1, "no producer id reset");
    for (p, leader) in leaders.iter().enumerate() {
        assert_eq!(
            leader_of(&cluster, topic, p as i32),
            *leader,
            "the producer's metadata follows the last move"
        );
    }

    mock.broker_round_trip_time(-1, Duration::ZERO)
        .expect("rtt");
    let total = ROUNDS * PER_ROUND;
    let mut reader = Reader::new(&cluster, topic, PARTITIONS, Duration::from_secs(30));
    reader.until(total).await;
    let checked = check_read(&reader, PARTITIONS, total, &[], &acked);
    eprintln!("read back: {checked:?}");
    assert_eq!(
        checked.resent, 0,
        "a refused batch cannot have been appended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_moves_mid_fetch() {
    const PARTITIONS: i32 = 4;
    const TOTAL: usize = 10_000;
    let topic = "moving-fetch";
    let mock = mock(topic, PARTITIONS);
    let cluster = connect(&mock).await;
    let producer = Producer::new(cluster.clone(), producer_config()).expect("producer");
    let mut acked = BTreeMap::new();
    acks(
        enqueue(&producer, topic, PARTITIONS, 0..TOTAL).await,
        &mut acked,
    )
    .await;
    producer.close().await;

    let start = Instant::now();
    let mut reader = Reader::new(&cluster, topic, PARTITIONS, Duration::from_secs(60));
    // At least 100 batches are in the log (10,000 records of ~20 bytes in batches of at most
    // 2 KiB): leaders move after batches 10, 25, 40, 55 and 70 are read, and 30 or more batches
    // are left to read after the last move.
    const MOVE_AT: [usize; 5] = [10, 25, 40, 55, 70];
    let mut moves = 0;
    let mut read_after_last_move = 0;
    let mut leaders: Vec<i32> = (0..PARTITIONS)
        .map(|p| leader_of(&cluster, topic, p))
        .collect();
    while reader.records < TOTAL {
        reader.step().await;
        read_after_last_move += 1;
        let batches: usize = reader.batches.values().map(Vec::len).sum();
        if MOVE_AT.contains(&batches) {
            for (p, leader) in leaders.iter_mut().enumerate() {
                let next = BROKERS[(BROKERS.iter().position(|b| b == leader).expect("broker") + 1)
                    % BROKERS.len()];
                mock.partition_leader(topic, p as i32, Some(next))
                    .expect("move leader");
                *leader = next;
            }
            moves += 1;
            read_after_last_move = 0;
        }
    }
    reader.until(TOTAL).await;
    let stats = reader.fetcher.stats();
    eprintln!(
        "{TOTAL} records read across {moves} leader moves of every partition in {:?}: {stats:?}",
        start.elapsed()
    );
    assert_eq!(moves, MOVE_AT.len());
    assert!(
        read_after_last_move >= 20,
        "only {read_after_last_move} batches read after the last move"
    );
    assert_exactly_once_in_log_order(&reader, PARTITIONS, TOTAL, &[], &acked);
    // Data after the last move came from the new leaders (the old ones refuse with
    // NOT_LEADER_OR_FOLLOWER): the fetcher's metadata names them.
    for (p, leader) in leaders.iter().enumerate() {
        assert_eq!(
            leader_of(&cluster, topic, p as i32),
            *leader,
            "partition {p}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A broker down, then up.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_then_up_mid_produce() {
    const PARTITIONS: i32 = 3;
    const CHUNK: usize = 1_500;
    let topic = "downed-produce";
    let mock = mock(topic, PARTITIONS);
    // Every partition on broker 1, which goes down.
    for p in 0..PARTITIONS {
        mock.partition_leader(topic, p, Some(1)).expect("leader");
    }
    let cluster = connect(&mock).await;
    for p in 0..PARTITIONS {
        assert_eq!(leader_of(&cluster, topic, p), 1);
    }
    let config = producer_config();
    let buffer = config.buffer_memory;
    let producer = Producer::new(cluster.clone(), config).expect("producer");
    let mut acked = BTreeMap::new();
    let start = Instant::now();

    // 1. Delivered normally.
    acks(
        enqueue(&producer, topic, PARTITIONS, 0..CHUNK).await,
        &mut acked,
    )
    .await;

    // 2. Down while idle; records queued while it is down are sent once it is back.
    mock.broker_down(1).expect("down");
    let retries = producer.stats().retries;
    let pending = enqueue(&producer, topic, PARTITIONS, CHUNK..2 * CHUNK).await;
    wait_for("the producer to fail against the downed broker", || {
        producer.stats().retries > retries
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        producer.available_memory() < buffer,
        "records were acknowledged while their leader was down"
    );
    mock.broker_up(1).expect("up");
    let back = Instant::now();
    acks(pending, &mut acked).await;
    let resumed = back.elapsed();

    // 3. Down while requests are in flight (responses delayed 300 ms): the mock appended them
    //    but the acknowledgements are lost; the producer re-sends the same batches.
    mock.broker_round_trip_time(1, Duration::from_millis(300))
        .expect("rtt");
    let requests = producer.stats().requests;
    let pending = enqueue(&producer, topic, PARTITIONS, 2 * CHUNK..3 * CHUNK).await;
    wait_for("requests in flight", || {
        producer.stats().requests > requests
    })
    .await;
    let retries = producer.stats().retries;
    mock.broker_down(1).expect("down");
    wait_for("the in-flight requests to fail", || {
        producer.stats().retries > retries
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    mock.broker_round_trip_time(1, Duration::ZERO).expect("rtt");
    mock.broker_up(1).expect("up");
    acks(pending, &mut acked).await;
    let stats = producer.stats();
    producer.close().await;
    eprintln!(
        "{} records through two outages of the leader: resumed {resumed:?} after broker_up; \
         total {:?}; {stats:?}",
        acked.len(),
        start.elapsed()
    );
    assert_eq!(stats.identities, 1, "no producer id reset");

    let total = 3 * CHUNK;
    let mut reader = Reader::new(&cluster, topic, PARTITIONS, Duration::from_secs(30));
    // Exact re-sends the mock appended twice (see the module docs) come on top of `total`:
    // read until nothing more arrives.
    reader.drain(total).await;
    let checked = check_read(&reader, PARTITIONS, total, &[], &acked);
    eprintln!(
        "read back: {} records; {checked:?} (re-sent batches the mock appended twice; a broker \
         would have dropped them by sequence)",
        reader.records
    );
    // Phases 1 and 2 cannot re-send anything: their records sit exactly where acknowledged,
    // in send order.
    for p in 0..PARTITIONS {
        let first: Vec<(i64, usize)> = reader.batches[&p]
            .iter()
            .flat_map(|b| b.records.iter().copied())
            .take_while(|r| r.1 < 2 * CHUNK)
            .collect();
        let want: Vec<usize> = (0..2 * CHUNK)
            .filter(|i| (i % PARTITIONS as usize) as i32 == p)
            .collect();
        assert_eq!(first.iter().map(|r| r.1).collect::<Vec<_>>(), want);
        for &(offset, i) in &first {
            assert_eq!(acked[&i].offset, offset, "record {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_then_up_mid_fetch() {
    const PARTITIONS: i32 = 3;
    const TOTAL: usize = 9_000;
    let topic = "downed-fetch";
    let mock = mock(topic, PARTITIONS);
    let cluster = connect(&mock).await;
    let producer = Producer::new(cluster.clone(), producer_config()).expect("producer");
    let mut acked = BTreeMap::new();
    acks(
        enqueue(&producer, topic, PARTITIONS, 0..TOTAL).await,
        &mut acked,
    )
    .await;
    producer.close().await;

    let mut reader = Reader::new(&cluster, topic, PARTITIONS, Duration::from_secs(60));
    while reader.records < TOTAL / 5 {
        reader.step().await;
    }
    let down = leader_of(&cluster, topic, 0);
    let led: Vec<i32> = (0..PARTITIONS)
        .filter(|p| leader_of(&cluster, topic, *p) == down)
        .collect();
    mock.broker_down(down).expect("down");
    let start = Instant::now();
    // While it is down: partitions it leads make no progress past what was prefetched; the
    // others go on.
    let mut during = BTreeMap::<i32, usize>::new();
    while start.elapsed() < Duration::from_millis(700) && reader.records < TOTAL {
        let before: BTreeMap<i32, usize> =
            reader.batches.iter().map(|(p, b)| (*p, b.len())).collect();
        match tokio::time::timeout(Duration::from_millis(100), reader.try_step()).await {
            Ok(Ok(())) => {
                for (p, b) in &reader.batches {
                    if b.len() > before.get(p).copied().unwrap_or(0) {
                        *during.entry(*p).or_default() += 1;
                    }
                }
            }
            Ok(Err(e)) => panic!("error surfaced while a broker is down: {e}"),
            Err(_) => {}
        }
    }
    let positions_down = reader.positions();
    mock.broker_up(down).expect("up");
    let up = Instant::now();
    reader.until(TOTAL).await;
    eprintln!(
        "broker {down} (leader of {led:?}) down for {:?} at {} records; batches read meanwhile \
         per partition {during:?}; positions {positions_down:?}; the rest ({TOTAL} in all) read \
         {:?} after broker_up; {:?}",
        up - start,
        TOTAL / 5,
        up.elapsed(),
        reader.fetcher.stats()
    );
    for p in &led {
        assert!(
            positions_down[*p as usize].unwrap_or(0) < (TOTAL / PARTITIONS as usize) as i64,
            "partition {p} was read to the end before its leader went down"
        );
        // What was prefetched (at most ~4 KiB) and a response already on its way.
        assert!(
            during.get(p).copied().unwrap_or(0) <= 3,
            "partition {p} kept delivering ({during:?}) while its leader was down"
        );
    }
    assert_exactly_once_in_log_order(&reader, PARTITIONS, TOTAL, &[], &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_down_longer_than_the_delivery_timeout_fails_the_records() {
    let topic = "down-timeout";
    let mock = mock(topic, 2);
    mock.partition_leader(topic, 0, Some(1)).expect("leader");
    mock.partition_leader(topic, 1, Some(2)).expect("leader");
    let cluster = connect(&mock).await;
    let delivery_timeout = Duration::from_secs(1);
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig {
            delivery_timeout,
            request_timeout: Duration::from_millis(500),
            ..producer_config()
        },
    )
    .expect("producer");
    let mut acked = BTreeMap::new();
    acks(enqueue(&producer, topic, 2, 0..10).await, &mut acked).await;
    mock.broker_down(1).expect("down");
    let start = Instant::now();
    let mut pending = enqueue(&producer, topic, 2, 10..20).await;
    // Partition 1 (broker 2) is unaffected; partition 0's records time out.
    let mut failed = Vec::new();
    for (i, d) in pending.drain(..) {
        match d.await {
            Ok(meta) => {
                assert_eq!(meta.partition, 1, "record {i} acked by a downed leader");
                acked.insert(i, meta);
            }
            Err(e) => {
                assert_eq!(i % 2, 0, "record {i} of partition 1 failed: {e}");
                assert!(
                    matches!(e, ProduceError::DeliveryTimeout { partition: 0, .. }),
                    "record {i}: {e:?}"
                );
                failed.push(i);
            }
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "leader down: {} records failed with DeliveryTimeout after {elapsed:?} (timeout \
         {delivery_timeout:?}); {:?}",
        failed.len(),
        producer.stats()
    );
    assert_eq!(failed, (10..20).step_by(2).collect::<Vec<_>>());
    assert!(elapsed >= delivery_timeout, "{elapsed:?}");
    assert!(elapsed < delivery_timeout * 3, "{elapsed:?}");
    // Back up: the producer goes on.
    mock.broker_up(1).expect("up");
    acks(enqueue(&producer, topic, 2, 20..30).await, &mut acked).await;
    producer.close().await;
    let mut reader = Reader::new(&cluster, topic, 2, Duration::from_secs(30));
    reader.until(acked.len()).await;
    assert_exactly_once_in_log_order(&reader, 2, 30, &failed, &acked);
}

// ---------------------------------------------------------------------------------------------
// Injected errors.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_produce_errors_are_retried() {
    const PARTITIONS: i32 = 3;
    const TOTAL: usize = 3_000;
    let topic = "retriable-produce";
    let mock = mock(topic, PARTITIONS);
    let cluster = connect(&mock).await;
    let producer = Producer::new(cluster.clone(), producer_config()).expect("producer");
    // Warm up (producer id, connections) so that the errors hit data requests.
    let mut acked = BTreeMap::new();
    acks(
        enqueue(&producer, topic, PARTITIONS, 0..30).await,
        &mut acked,
    )
    .await;
    use RDKafkaRespErr::*;
    let errors = [
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR__TRANSPORT, // the mock drops the connection
        RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH,
    ];
    mock.request_errors(RDKafkaApiKey::Produce, &errors);
    let retries = producer.stats().retries;
    let start = Instant::now();
    acks(
        enqueue(&producer, topic, PARTITIONS, 30..TOTAL).await,
        &mut acked,
    )
    .await;
    let stats = producer.stats();
    producer.close().await;
    eprintln!(
        "{TOTAL} records through {} injected Produce errors in {:?}: {stats:?}",
        errors.len(),
        start.elapsed()
    );
    assert!(
        stats.retries - retries >= errors.len() as u64,
        "each injected error fails at least one batch: {stats:?}"
    );
    assert_eq!(stats.identities, 1, "no producer id reset");
    let mut reader = Reader::new(&cluster, topic, PARTITIONS, Duration::from_secs(30));
    reader.until(TOTAL).await;
    let checked = check_read(&reader, PARTITIONS, TOTAL, &[], &acked);
    eprintln!("read back: {checked:?}");
    assert_eq!(
        checked.resent, 0,
        "a failed request cannot have been appended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_fetch_and_list_offsets_errors_are_retried() {
    const PARTITIONS: i32 = 3;
    const TOTAL: usize = 3_000;
    let topic = "retriable-fetch";
    let mock = mock(topic, PARTITIONS);
    let cluster = connect(&mock).await;
    let producer = Producer::new(cluster.clone(), producer_config()).expect("producer");
    let mut acked = BTreeMap::new();
    acks(
        enqueue(&producer, topic, PARTITIONS, 0..TOTAL).await,
        &mut acked,
    )
    .await;
    producer.close().await;

    use RDKafkaRespErr::*;
    let list_errors = [
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR__TRANSPORT,
    ];
    let fetch_errors = [
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH,
        RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
        RD_KAFKA_RESP_ERR__TRANSPORT,
        RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH,
        RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE,
    ];
    mock.request_errors(RDKafkaApiKey::ListOffsets, &list_errors);
    mock.request_errors(RDKafkaApiKey::Fetch, &fetch_errors);
    let start = Instant::now();
    let mut reader = Reader::new(&cluster, topic, PARTITIONS, Duration::from_secs(30));
    reader.until(TOTAL).await;
    let stats = reader.fetcher.stats();
    eprintln!(
        "{TOTAL} records read through {} ListOffsets and {} Fetch errors in {:?}: {stats:?}",
        list_errors.len(),
        fetch_errors.len(),
        start.elapsed()
    );
    assert_exactly_once_in_log_order(&reader, PARTITIONS, TOTAL, &[], &acked);
    reader.fetcher.close();
    // Only the fetcher sent Fetch and ListOffsets: if raw requests now get no error, every
    // injected error hit the fetcher.
    assert_eq!(raw_list_offsets_code(&cluster, topic).await, 0);
    assert_eq!(raw_fetch_codes(&cluster, topic).await, (0, 0));
    assert!(
        stats.list_offsets_requests > list_errors.len() as u64,
        "{stats:?}"
    );
}

/// The partition error code of a raw ListOffsets(earliest) for `topic`-0, sent once to its leader.
async fn raw_list_offsets_code(cluster: &Cluster, topic: &str) -> i16 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let response = cluster
        .send_to_leader(topic, 0, Purpose::Default, |_, _| {
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-2)])])
        })
        .await
        .expect("raw ListOffsets");
    response.body.topics[0].partitions[0].error_code
}

/// The top-level and partition error codes of a raw Fetch of `topic`-0 at offset 0.
async fn raw_fetch_codes(cluster: &Cluster, topic: &str) -> (i16, i16) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let response = cluster
        .send_to_leader(topic, 0, Purpose::Fetch, |_, _| {
            FetchRequest::default()
                .with_max_wait_ms(10)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)])])
        })
        .await
        .expect("raw Fetch");
    (
        response.body.error_code,
        response.body.responses[0].partitions[0].error_code,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_does_not_know_the_topic_is_a_typed_error_within_the_timeouts() {
    let topic = "unknown-to-the-leader";
    let mock = mock(topic, 1);
    let client = client_config(&mock).with_api_timeout(Duration::from_secs(1));
    let cluster = Cluster::connect(client.clone()).await.expect("connect");
    use RDKafkaRespErr::*;
    // The metadata lists the topic, but its leader answers UNKNOWN_TOPIC_OR_PARTITION (as while
    // a topic is being deleted, or created on another broker first).
    mock.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART; 500],
    );
    let start = Instant::now();
    let err = Admin::new(cluster.clone())
        .list_offset(topic, 0, OffsetSpec::Earliest)
        .await
        .expect_err("unknown to the leader");
    let elapsed = start.elapsed();
    eprintln!("ListOffsets: {err} after {elapsed:?}");
    assert!(
        matches!(err, EngineError::RetriesExhausted { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.kafka().map(|k| k.name()).as_deref(),
        Some("UNKNOWN_TOPIC_OR_PARTITION"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{err}"
    );
    assert!(
        elapsed < client.api_timeout + Duration::from_millis(500),
        "{elapsed:?}"
    );
    mock.clear_request_errors(RDKafkaApiKey::ListOffsets);

    // Produce: retried (it is retriable) until the delivery timeout.
    let delivery_timeout = Duration::from_secs(1);
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig {
            delivery_timeout,
            ..producer_config()
        },
    )
    .expect("producer");
    producer
        .send(ProducerRecord::new(topic).partition(0).value(value_of(0)))
        .await
        .expect("warm up");
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART; 500],
    );
    let start = Instant::now();
    let err = producer
        .send(ProducerRecord::new(topic).partition(0).value(value_of(1)))
        .await
        .expect_err("unknown to the leader");
    let elapsed = start.elapsed();
    let stats = producer.stats();
    eprintln!("Produce: {err} after {elapsed:?}; {stats:?}");
    assert!(
        matches!(err, ProduceError::DeliveryTimeout { partition: 0, .. }),
        "{err:?}"
    );
    // The timeout names the broker's last answer.
    assert!(
        err.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "last error not named: {err}"
    );
    assert!(stats.retries > 1, "retried: {stats:?}");
    assert!(
        elapsed >= delivery_timeout && elapsed < delivery_timeout * 2,
        "{elapsed:?}"
    );
    mock.clear_request_errors(RDKafkaApiKey::Produce);
    producer
        .send(ProducerRecord::new(topic).partition(0).value(value_of(2)))
        .await
        .expect("the producer goes on");
    producer.close().await;
}

/// The name Kafka gives the code of an error that reached the caller.
fn produce_error_name(e: &ProduceError) -> Option<String> {
    match e {
        ProduceError::Broker { error, .. } => Some(error.name()),
        ProduceError::Transport { error, .. } => error.kafka().map(|k| k.name()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_produce_errors_reach_the_caller_by_name() {
    let topic = "fatal-produce";
    let mock = mock(topic, 1);
    let cluster = connect(&mock).await;
    let producer = Producer::new(cluster.clone(), producer_config()).expect("producer");
    let send = |i: usize| producer.send(ProducerRecord::new(topic).partition(0).value(value_of(i)));
    let mut acked = BTreeMap::new();
    let mut failed = Vec::new();
    let mut n = 0usize;
    acked.insert(n, send(n).await.expect("first record"));
    n += 1;
    use RDKafkaRespErr::*;
    let fatal = [
        (
            RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            "TOPIC_AUTHORIZATION_FAILED",
        ),
        (
            RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED,
            "CLUSTER_AUTHORIZATION_FAILED",
        ),
        (RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "MESSAGE_TOO_LARGE"),
        (
            RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
            "RECORD_LIST_TOO_LARGE",
        ),
        (
            RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS,
            "INVALID_REQUIRED_ACKS",
        ),
        (RD_KAFKA_RESP_ERR_INVALID_RECORD, "INVALID_RECORD"),
    ];
    for (code, name) in fatal {
        mock.request_errors(RDKafkaApiKey::Produce, &[code]);
        let requests = producer.stats().requests;
        let start = Instant::now();
        let err = send(n)
            .await
            .expect_err("the injected error fails the record");
        let elapsed = start.elapsed();
        eprintln!("{name}: surfaced after {elapsed:?}: {err}");
        assert_eq!(
            produce_error_name(&err).as_deref(),
            Some(name),
            "the caller gets the code's name: {err:?}"
        );
        assert!(matches!(err, ProduceError::Broker { .. }), "{err:?}");
        assert!(err.to_string().contains(name), "{err}");
        assert_eq!(
            producer.stats().requests,
            requests + 1,
            "{name} is not retried"
        );
        assert!(elapsed < Duration::from_secs(1), "{name}: {elapsed:?}");
        failed.push(n);
        n += 1;
        // The producer goes on: the next record is written.
        acked.insert(
            n,
            send(n)
                .await
                .unwrap_or_else(|e| panic!("after {name}: {e}")),
        );
        n += 1;
    }
    let stats = producer.stats();
    producer.close().await;
    eprintln!("{stats:?}");
    let mut reader = Reader::new(&cluster, topic, 1, Duration::from_secs(30));
    reader.until(acked.len()).await;
    assert_exactly_once_in_log_order(&reader, 1, n, &failed, &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_fetch_and_list_offsets_errors_reach_the_caller_by_name() {
    const PARTITIONS: i32 = 2;
    const TOTAL: usize = 1_000;
    let topic = "fatal-fetch";
    let mock = mock(topic, PARTITIONS);
    let cluster = connect(&mock).await;
    let producer = Producer::new(cluster.clone(), producer_config()).expect("producer");
    let mut acked = BTreeMap::new();
    acks(
        enqueue(&producer, topic, PARTITIONS, 0..TOTAL).await,
        &mut acked,
    )
    .await;
    producer.close().await;
    use RDKafkaRespErr::*;

    // ListOffsets through the admin client: not retried, named.
    let admin = Admin::new(cluster.clone());
    for (code, name) in [
        (
            RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            "TOPIC_AUTHORIZATION_FAILED",
        ),
        (
            RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT,
            "UNSUPPORTED_FOR_MESSAGE_FORMAT",
        ),
    ] {
        mock.request_errors(RDKafkaApiKey::ListOffsets, &[code]);
        let start = Instant::now();
        let err = admin
            .list_offset(topic, 0, OffsetSpec::Earliest)
            .await
            .expect_err("injected");
        eprintln!("ListOffsets {name}: after {:?}: {err}", start.elapsed());
        assert_eq!(
            err.kafka().map(|k| k.name()).as_deref(),
            Some(name),
            "{err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    // Fetch: the error reaches next_batch by name, once; after it (and a seek if it stopped
    // the partition) every record is read exactly once.
    for (code, name) in [
        (
            RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            "TOPIC_AUTHORIZATION_FAILED",
        ),
        (RD_KAFKA_RESP_ERR_INVALID_MSG, "CORRUPT_MESSAGE"),
        (
            RD_KAFKA_RESP_ERR_UNSUPPORTED_COMPRESSION_TYPE,
            "UNSUPPORTED_COMPRESSION_TYPE",
        ),
    ] {
        let mut reader = Reader::new(&cluster, topic, PARTITIONS, Duration::from_secs(30));
        while reader.records < TOTAL / 4 {
            reader.step().await;
        }
        mock.request_errors(RDKafkaApiKey::Fetch, &[code]);
        let start = Instant::now();
        let mut surfaced = Vec::new();
        while reader.records < TOTAL {
            match reader.try_step().await {
                Ok(()) => {}
                Err(e) => {
                    let named = match &e {
                        FetchError::Kafka { error, .. } => Some(error.name()),
                        FetchError::Engine(error) => error.kafka().map(|k| k.name()),
                        _ => None,
                    };
                    eprintln!("Fetch {name}: surfaced after {:?}: {e}", start.elapsed());
                    assert_eq!(named.as_deref(), Some(name), "{e:?}");
                    assert!(e.to_string().contains(name), "{e}");
                    if let Some(tp) = e.partition().cloned() {
                        let at = reader.fetcher.position(&tp).expect("position");
                        reader
                            .fetcher
                            .seek(&tp, FetchPosition::Offset(at))
                            .expect("seek");
                    }
                    surfaced.push(e.to_string());
                }
            }
        }
        reader.until(TOTAL).await;
        if name == "CORRUPT_MESSAGE" {
            // Kafka marks CORRUPT_MESSAGE retriable: retried, never surfaced.
            assert!(surfaced.is_empty(), "{surfaced:?}");
        } else {
            assert!(!surfaced.is_empty(), "{name} never reached the caller");
        }
        assert_exactly_once_in_log_order(&reader, PARTITIONS, TOTAL, &[], &acked);
    }
}
