//! The producer against a real Kafka-compatible broker (tansu, one private instance per test
//! binary, see `support`), read back two ways: a raw Fetch through [`Cluster`] decoded by the
//! wire crate (which also shows the batch headers: producer id, sequences, codec), and the
//! Python peers (kafka-python and confluent-kafka from `.venv`, `scripts/install-peers.sh`) as
//! independent readers. Keyed records are checked against the partition confluent-kafka's
//! `murmur2_random` partitioner (the Java client's) picks for the same keys.
//!
//! tansu quirk: ListOffsets(latest) is wrong for multi-record batches, so end offsets come from
//! the Fetch high watermark.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use mephisto_engine::producer::partitioner::partition_for_key;
use mephisto_engine::producer::{
    Acks, Compression, Delivery, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
use mephisto_engine::{Admin, Cluster, NewTopic, Purpose};
use mephisto_wire::record::{DecodeOptions, RecordBatches};

/// One record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadRecord {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// One batch header as read back.
#[derive(Debug, Clone, Copy)]
struct ReadBatch {
    count: i32,
    producer_id: i64,
    base_sequence: i32,
    compression: Compression,
}

async fn create_topic(cluster: &Cluster, prefix: &str, partitions: i32) -> String {
    let topic = support::unique_topic(prefix);
    Admin::new(cluster.clone())
        .create_topic(NewTopic::new(topic.clone(), partitions, 1))
        .await
        .unwrap_or_else(|e| panic!("create {topic}: {e}"));
    topic
}

/// Every record and batch header of `topic`-`partition`, by raw Fetch until the high watermark.
async fn fetch_all(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
) -> (Vec<ReadRecord>, Vec<ReadBatch>, i64) {
    let mut records = Vec::new();
    let mut batches = Vec::new();
    let mut offset = 0i64;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = FetchRequest::default()
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(64 * 1024 * 1024)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(32 * 1024 * 1024)])]);
        let response = cluster
            .send_to_leader(topic, partition, Purpose::Fetch, |_, _| request)
            .await
            .unwrap_or_else(|e| panic!("fetch {topic}-{partition}@{offset}: {e}"));
        let data = response
            .body
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .unwrap_or_else(|| panic!("no fetch answer for {topic}-{partition}"));
        assert_eq!(data.error_code, 0, "fetch error for {topic}-{partition}");
        let high_watermark = data.high_watermark;
        let bytes = data.records.clone().unwrap_or_default();
        for batch in RecordBatches::new(bytes, DecodeOptions::default()) {
            let batch = batch.unwrap_or_else(|e| panic!("bad batch from the broker: {e}"));
            let header = *batch.header();
            if header.last_offset() < offset {
                continue;
            }
            assert_eq!(batch.crc(), batch.compute_crc(), "CRC of a batch we wrote");
            batches.push(ReadBatch {
                count: header.record_count,
                producer_id: header.producer_id,
                base_sequence: header.base_sequence,
                compression: batch.compression(),
            });
            let recs = batch.records().unwrap_or_else(|e| panic!("records: {e}"));
            for r in recs.iter() {
                let r = r.unwrap_or_else(|e| panic!("record: {e}"));
                if r.offset() < offset {
                    continue;
                }
                records.push(ReadRecord {
                    partition,
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
                });
            }
            offset = header.next_offset();
        }
        if offset >= high_watermark {
            return (records, batches, high_watermark);
        }
        assert!(
            Instant::now() < deadline,
            "fetch of {topic}-{partition} stuck at {offset} (high watermark {high_watermark})"
        );
    }
}

/// The high watermark of `topic`-`partition`, from a Fetch at offset 0.
async fn high_watermark(cluster: &Cluster, topic: &str, partition: i32) -> i64 {
    let request = FetchRequest::default()
        .with_max_wait_ms(10)
        .with_min_bytes(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1024 * 1024)])]);
    let response = cluster
        .send_to_leader(topic, partition, Purpose::Fetch, |_, _| request)
        .await
        .unwrap_or_else(|e| panic!("fetch: {e}"));
    response
        .body
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| p.high_watermark)
        .unwrap_or(-1)
}

fn test_record(topic: &str, i: usize) -> ProducerRecord {
    ProducerRecord::new(topic)
        .key(format!("key-{}", i % 37))
        .value(format!("value {i} ").repeat(1 + i % 7))
        .header("seq", Some(Bytes::from(i.to_string())))
        .header("null", None)
}

fn expected_of(record: &ProducerRecord, meta: &RecordMetadata) -> ReadRecord {
    ReadRecord {
        partition: meta.partition,
        offset: meta.offset,
        key: record.key.as_ref().map(|k| k.to_vec()),
        value: record.value.as_ref().map(|v| v.to_vec()),
        headers: record
            .headers
            .iter()
            .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
            .collect(),
    }
}

/// Queues `records` without waiting between them, then awaits every acknowledgement.
async fn produce_all(producer: &Producer, records: &[ProducerRecord]) -> Vec<RecordMetadata> {
    let mut deliveries: Vec<Delivery> = Vec::with_capacity(records.len());
    for record in records {
        deliveries.push(
            producer
                .enqueue(record.clone())
                .await
                .unwrap_or_else(|e| panic!("enqueue: {e}")),
        );
    }
    let mut metas = Vec::with_capacity(records.len());
    for d in deliveries {
        metas.push(d.await.unwrap_or_else(|e| panic!("delivery: {e}")));
    }
    metas
}

/// Reads everything back by Fetch and checks it against what we sent and were told.
async fn check_read_back(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    records: &[ProducerRecord],
    metas: &[RecordMetadata],
) -> Vec<Vec<ReadBatch>> {
    let mut expected: BTreeMap<(i32, i64), ReadRecord> = BTreeMap::new();
    for (r, m) in records.iter().zip(metas) {
        assert_eq!(&*m.topic, topic);
        let key = r.key.as_deref().unwrap_or_default();
        assert_eq!(
            Some(m.partition),
            partition_for_key(key, partitions),
            "keyed records land where murmur2 says"
        );
        assert!(
            expected
                .insert((m.partition, m.offset), expected_of(r, m))
                .is_none(),
            "two records acknowledged at {}-{}",
            m.partition,
            m.offset
        );
    }
    let mut all_batches = Vec::new();
    for p in 0..partitions {
        let (read, batches, hw) = fetch_all(cluster, topic, p).await;
        let want: Vec<&ReadRecord> = expected.range((p, 0)..(p + 1, 0)).map(|(_, r)| r).collect();
        assert_eq!(hw, want.len() as i64, "high watermark of partition {p}");
        assert_eq!(read.len(), want.len(), "records in partition {p}");
        for (got, want) in read.iter().zip(want) {
            assert_eq!(got, want);
        }
        all_batches.push(batches);
    }
    all_batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_idempotent_every_codec_reads_back() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    for codec in Compression::ALL {
        let topic = create_topic(&cluster, &format!("prod-{}", codec.name()), 3).await;
        let producer = Producer::new(
            cluster.clone(),
            ProducerConfig {
                compression: codec,
                batch_size: 2048, // several batches per partition
                ..ProducerConfig::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let records: Vec<ProducerRecord> = (0..600).map(|i| test_record(&topic, i)).collect();
        let metas = produce_all(&producer, &records).await;
        let stats = producer.stats();
        producer.close().await;

        let identity = stats
            .identity
            .unwrap_or_else(|| panic!("{codec:?}: no producer id from tansu"));
        assert!(identity.producer_id >= 0);
        let partitions = check_read_back(&cluster, &topic, 3, &records, &metas).await;
        let count: usize = partitions.iter().map(Vec::len).sum();
        assert!(count > 3, "{codec:?}: {count} batches");
        // Every batch carries our producer id and the codec, and starts at the sequence where
        // the partition's previous batch ended.
        for batches in &partitions {
            let mut next_sequence = 0;
            for b in batches {
                assert_eq!(b.producer_id, identity.producer_id, "{codec:?}");
                assert_eq!(b.compression, codec);
                assert_eq!(b.base_sequence, next_sequence, "{codec:?}: {batches:?}");
                next_sequence += b.count;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_one_and_acks_zero() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;

    let topic = create_topic(&cluster, "prod-acks1", 2).await;
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig {
            acks: Acks::Leader,
            compression: Compression::Lz4,
            ..ProducerConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let records: Vec<ProducerRecord> = (0..300).map(|i| test_record(&topic, i)).collect();
    let metas = produce_all(&producer, &records).await;
    assert_eq!(producer.stats().identity, None, "acks=1 is not idempotent");
    producer.close().await;
    let partitions = check_read_back(&cluster, &topic, 2, &records, &metas).await;
    assert!(partitions
        .iter()
        .flatten()
        .all(|b| b.producer_id == -1 && b.base_sequence == -1));

    let topic = create_topic(&cluster, "prod-acks0", 2).await;
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig {
            acks: Acks::None,
            ..ProducerConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let records: Vec<ProducerRecord> = (0..300).map(|i| test_record(&topic, i)).collect();
    let metas = produce_all(&producer, &records).await;
    assert!(
        metas.iter().all(|m| m.offset == -1),
        "acks=0 has no offsets"
    );
    producer.close().await;
    // Nothing confirms acks=0 writes: wait for the high watermarks to reach the counts.
    let mut per_partition = [0i64; 2];
    for m in &metas {
        per_partition[m.partition as usize] += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (p, want) in per_partition.iter().enumerate() {
        loop {
            let hw = high_watermark(&cluster, &topic, p as i32).await;
            if hw == *want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partition {p}: {hw} of {want} records"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (read, _, _) = fetch_all(&cluster, &topic, p as i32).await;
        assert_eq!(read.len() as i64, *want);
    }
}

fn python() -> PathBuf {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        py.is_file(),
        "no Python peers at {}: run scripts/install-peers.sh",
        py.display()
    );
    py
}

/// Runs a Python script with `args`; returns its stdout, failing the test on a non-zero exit.
fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python: {e}"));
    assert!(
        out.status.success(),
        "python failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads `count` records of `topic` (partitions `0..partitions`) with kafka-python or
/// confluent-kafka; prints one line per record: `partition offset key value headers` in hex
/// (`-` for null), headers as `k=v` joined by `,`.
const READER: &str = r#"
import sys, time
which, addr, topic, partitions, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
hx = lambda b: "-" if b is None else (b.hex() or "=")
rows = []
deadline = time.time() + 30
if which == "kafka-python":
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=addr, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest")
    c.assign([TopicPartition(topic, p) for p in range(partitions)])
    c.seek_to_beginning()
    while len(rows) < count and time.time() < deadline:
        for tp, msgs in c.poll(500).items():
            for m in msgs:
                h = ",".join("%s=%s" % (k, hx(v)) for k, v in (m.headers or []))
                rows.append("%d %d %s %s %s" % (m.partition, m.offset, hx(m.key), hx(m.value), h or "."))
    c.close()
else:
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": addr, "group.id": "mephisto-reader", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    while len(rows) < count and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise SystemExit(str(m.error()))
        h = ",".join("%s=%s" % (k, hx(v)) for k, v in (m.headers() or []))
        rows.append("%d %d %s %s %s" % (m.partition(), m.offset(), hx(m.key()), hx(m.value()), h or "."))
    c.close()
print("\n".join(sorted(rows)))
"#;

fn peer_line(r: &ReadRecord) -> String {
    let hx = |b: &Option<Vec<u8>>| match b {
        None => "-".to_owned(),
        Some(b) if b.is_empty() => "=".to_owned(),
        Some(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    };
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|(k, v)| format!("{k}={}", hx(v)))
        .collect();
    let headers = if headers.is_empty() {
        ".".to_owned()
    } else {
        headers.join(",")
    };
    format!(
        "{} {} {} {} {}",
        r.partition,
        r.offset,
        hx(&r.key),
        hx(&r.value),
        headers
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_peers_read_what_we_write() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "prod-peers", 3).await;
    // One producer per codec writes into the same topic: the peers read mixed codecs.
    let mut all_records = Vec::new();
    let mut all_metas = Vec::new();
    for (n, codec) in Compression::ALL.into_iter().enumerate() {
        let producer = Producer::new(
            cluster.clone(),
            ProducerConfig {
                compression: codec,
                ..ProducerConfig::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let records: Vec<ProducerRecord> =
            (0..80).map(|i| test_record(&topic, n * 100 + i)).collect();
        all_metas.extend(produce_all(&producer, &records).await);
        all_records.extend(records);
        producer.close().await;
    }
    let mut expected: Vec<String> = all_records
        .iter()
        .zip(&all_metas)
        .map(|(r, m)| peer_line(&expected_of(r, m)))
        .collect();
    expected.sort();
    let count = all_records.len().to_string();
    for reader in ["kafka-python", "confluent-kafka"] {
        let out = tokio::task::spawn_blocking({
            let args = [
                reader.to_owned(),
                broker.addr.clone(),
                topic.clone(),
                "3".to_owned(),
                count.clone(),
            ];
            move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                run_python(READER, &args)
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<String> = out.lines().map(str::to_owned).collect();
        assert_eq!(
            got.len(),
            expected.len(),
            "{reader} read {} records",
            got.len()
        );
        assert_eq!(got, expected, "{reader} reads what we wrote");
    }
}

/// Produces `keys` with confluent-kafka's `murmur2_random` partitioner (the Java client's) and
/// prints `key partition` per key; also prints kafka-python's DefaultPartitioner choice.
const PEER_PARTITIONS: &str = r#"
import sys
from confluent_kafka import Producer
from kafka.partitioner.default import murmur2
addr, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
keys = sys.argv[4:]
got = {}
def report(err, msg):
    if err is not None:
        raise SystemExit(str(err))
    got[msg.key().decode()] = msg.partition()
p = Producer({"bootstrap.servers": addr, "partitioner": "murmur2_random", "enable.idempotence": False})
for k in keys:
    p.produce(topic, key=k.encode(), value=b"x", on_delivery=report)
p.flush(30)
for k in keys:
    print(k, got[k], (murmur2(k.encode()) & 0x7fffffff) % partitions)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_partitions_match_the_java_partitioner() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let partitions = 7;
    let topic = create_topic(&cluster, "prod-keys", partitions).await;
    let keys: Vec<String> = (0..60)
        .map(|i| match i % 3 {
            0 => format!("user-{i}"),
            1 => format!("ключ-{i}"), // non-ASCII: bytes above 0x7f
            _ => format!("{i}"),
        })
        .collect();
    let producer =
        Producer::new(cluster.clone(), ProducerConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let ours: Vec<ProducerRecord> = keys
        .iter()
        .map(|k| ProducerRecord::new(&topic).key(k.clone()).value("ours"))
        .collect();
    let metas = produce_all(&producer, &ours).await;
    producer.close().await;

    let mut args = vec![broker.addr.clone(), topic.clone(), partitions.to_string()];
    args.extend(keys.iter().cloned());
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python(PEER_PARTITIONS, &args)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let peer: BTreeMap<String, (i32, i32)> = out
        .lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            let k = it.next()?.to_owned();
            let librdkafka = it.next()?.parse().ok()?;
            let kafka_python = it.next()?.parse().ok()?;
            Some((k, (librdkafka, kafka_python)))
        })
        .collect();
    assert_eq!(peer.len(), keys.len(), "peer output:\n{out}");
    let mut spread = std::collections::BTreeSet::new();
    for (k, m) in keys.iter().zip(&metas) {
        let (librdkafka, kafka_python) = peer[k];
        assert_eq!(
            m.partition, librdkafka,
            "key {k:?}: confluent-kafka murmur2_random"
        );
        assert_eq!(m.partition, kafka_python, "key {k:?}: kafka-python");
        spread.insert(m.partition);
    }
    assert!(spread.len() > 3, "keys spread over partitions: {spread:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unkeyed_records_stick_to_a_partition_per_batch() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "prod-sticky", 4).await;
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig {
            batch_size: 4096,
            linger: Duration::from_millis(50),
            ..ProducerConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let records: Vec<ProducerRecord> = (0..400)
        .map(|i| ProducerRecord::new(&topic).value(vec![b'u'; 100 + i % 3]))
        .collect();
    let metas = produce_all(&producer, &records).await;
    producer.close().await;
    // Runs of the same partition, each about one batch (4 KiB / ~110 B ≈ 36 records).
    let mut runs = Vec::new();
    let mut current = (metas[0].partition, 0usize);
    for m in &metas {
        if m.partition == current.0 {
            current.1 += 1;
        } else {
            runs.push(current);
            current = (m.partition, 1);
        }
    }
    runs.push(current);
    assert!(runs.len() >= 5, "moves between partitions: {runs:?}");
    assert!(
        runs[..runs.len() - 1].iter().all(|&(_, n)| n >= 20),
        "sticks for a batch at a time: {runs:?}"
    );
    let mut total = 0;
    for p in 0..4 {
        total += high_watermark(&cluster, &topic, p).await;
    }
    assert_eq!(total, 400);
}
