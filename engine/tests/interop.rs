//! Interoperability with the two Python peers (`.venv`, `scripts/install-peers.sh`) through a
//! real broker (tansu, see `support`), for every codec, field by field: keys, values (text,
//! binary, empty, null), headers (binary, empty, repeated keys, non-ASCII keys, null values where
//! the peer allows them), explicit timestamps (not monotonic, so that batches have negative
//! timestamp deltas) and the timestamp type.
//!
//! - `peers_write_mephisto_reads`: confluent-kafka (librdkafka) and kafka-python each write every
//!   codec; the Mephisto fetcher reads everything back exactly, at the offsets the peers' delivery
//!   reports name, from batches compressed with the codec the peer was given.
//! - `mephisto_writes_peers_read`: the Mephisto producer writes every codec; both peers read
//!   everything back exactly.
//! - `ten_thousand_keys_land_where_kafka_python_puts_them`: 10,000 keys (random bytes, empty,
//!   non-ASCII) produced by Mephisto land, through the broker, in the partition kafka-python's
//!   `DefaultPartitioner` computes for them.
//!
//! What `producer.rs` and `fetcher.rs` already cover (confluent-kafka writing every codec without
//! timestamps, both peers reading Mephisto's text records, 60 keys against librdkafka) is not
//! repeated here. The peer scripts live in `tests/peers/`.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mephisto_engine::fetcher::{FetchPosition, Fetcher, FetcherConfig, TopicPartition};
use mephisto_engine::producer::{
    Compression, Producer, ProducerConfig, ProducerRecord, RecordHeader,
};
use mephisto_engine::{Admin, Cluster, NewTopic};
use mephisto_wire::record::TimestampType;

/// Records per codec in the field-by-field tests.
const PER_CODEC: usize = 120;
const PARTITIONS: i32 = 3;

/// One record as written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    partition: i32,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What the peers may not be given.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// kafka-python refuses null header values, and a record whose key and value are both null.
    null_header_values: bool,
    null_key_and_value: bool,
}

const ANYTHING: Limits = Limits {
    null_header_values: true,
    null_key_and_value: true,
};
const KAFKA_PYTHON: Limits = Limits {
    null_header_values: false,
    null_key_and_value: false,
};

/// The `i`-th test record of `codec`.
fn spec(codec: Compression, i: usize, limits: Limits) -> Rec {
    let value = match i % 7 {
        0 => None,
        1 => Some(Vec::new()),
        2 => Some((0..=255u8).map(|b| b.wrapping_add(i as u8)).collect()),
        3 => Some(b"abc".repeat(700 + i % 13)),
        _ => Some(
            format!("value-{}-{i}|", codec.name())
                .repeat(1 + i % 4)
                .into_bytes(),
        ),
    };
    let key = match i % 5 {
        0 if value.is_some() || limits.null_key_and_value => None,
        0 | 1 => Some(Vec::new()),
        2 => Some(format!("key-{i}").into_bytes()),
        3 => Some(vec![0x00, 0xff, i as u8, 0x80, 0x7f]),
        _ => Some(format!("ключ-{i}").into_bytes()),
    };
    let null_or = |fallback: &[u8]| {
        if limits.null_header_values {
            None
        } else {
            Some(fallback.to_vec())
        }
    };
    let headers = match i % 4 {
        0 => Vec::new(),
        1 => vec![("codec".to_owned(), Some(codec.name().as_bytes().to_vec()))],
        2 => vec![
            ("bin".to_owned(), Some(vec![0x00, 0xff, i as u8])),
            ("empty".to_owned(), Some(Vec::new())),
            ("dup".to_owned(), Some(b"first".to_vec())),
            ("dup".to_owned(), Some(b"second".to_vec())),
        ],
        _ => vec![
            ("ключ".to_owned(), Some("значение".as_bytes().to_vec())),
            ("null".to_owned(), null_or(b"not-null")),
        ],
    };
    // Explicit create times, not monotonic within a batch (negative deltas), all > 0 (librdkafka
    // reads 0 as "now").
    let timestamp = 1_500_000_000_000 + ((i as i64 * 104_729) % 1_000_003) * 1_000 + i as i64;
    Rec {
        partition: (i % PARTITIONS as usize) as i32,
        timestamp,
        key,
        value,
        headers,
    }
}

// ---------------------------------------------------------------------------------------------
// Line format of tests/peers/common.py.

fn hx(b: &Option<Vec<u8>>) -> String {
    match b {
        None => "-".to_owned(),
        Some(b) if b.is_empty() => "=".to_owned(),
        Some(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn hx_headers(headers: &[(String, Option<Vec<u8>>)]) -> String {
    if headers.is_empty() {
        return ".".to_owned();
    }
    headers
        .iter()
        .map(|(k, v)| format!("{}:{}", hx(&Some(k.as_bytes().to_vec())), hx(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
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

/// Runs `tests/peers/{script}` with `args` and `stdin`; its stdout, failing the test on a
/// non-zero exit. Runs on a blocking thread.
async fn run_peer(script: &str, args: Vec<String>, stdin: String) -> String {
    let script = peers_dir().join(script);
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(python())
            .arg(&script)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let mut input = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(stdin.as_bytes());
        });
        let out = child.wait_with_output().expect("peer output");
        let _ = writer.join();
        assert!(
            out.status.success(),
            "{} {args:?} failed ({}):\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("peer thread")
}

async fn create_topic(cluster: &Cluster, prefix: &str, partitions: i32) -> String {
    let topic = support::unique_topic(prefix);
    Admin::new(cluster.clone())
        .create_topic(NewTopic::new(&topic, partitions, 1))
        .await
        .unwrap_or_else(|e| panic!("create {topic}: {e}"));
    topic
}

/// Reads `count` records of `topic` (partitions `0..partitions`) with the Mephisto fetcher:
/// `(partition, offset) -> (record, timestamp type, codec of its batch)`. Fails on a repeated
/// offset, an error, or when they do not all arrive within 30 s; checks nothing more arrives.
async fn mephisto_read(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    count: usize,
) -> BTreeMap<(i32, i64), (Rec, TimestampType, Compression)> {
    let fetcher = Fetcher::new(
        cluster.clone(),
        FetcherConfig::default().with_max_wait(Duration::from_millis(100)),
    )
    .expect("fetcher");
    for p in 0..partitions {
        fetcher
            .assign(TopicPartition::new(topic, p), FetchPosition::Earliest)
            .expect("assign");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = BTreeMap::new();
    while got.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = match tokio::time::timeout(left, fetcher.next_batch()).await {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => panic!("fetch error after {} records: {e}", got.len()),
            Err(_) => panic!("only {} of {count} records read within 30 s", got.len()),
        };
        let codec = batch.batch.compression();
        for r in batch.records().expect("records") {
            let r = r.expect("record");
            let rec = Rec {
                partition: batch.partition,
                timestamp: r.timestamp(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                headers: r
                    .headers()
                    .map(|h| {
                        (
                            std::str::from_utf8(h.key())
                                .expect("UTF-8 header key")
                                .to_owned(),
                            h.value().map(<[u8]>::to_vec),
                        )
                    })
                    .collect(),
            };
            let previous = got.insert(
                (batch.partition, r.offset()),
                (rec, r.timestamp_type(), codec),
            );
            assert!(
                previous.is_none(),
                "{}@{} read twice",
                batch.partition,
                r.offset()
            );
        }
    }
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(300), fetcher.next_batch()).await
    {
        panic!("unexpected extra data: {extra:?}");
    }
    fetcher.close();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_write_mephisto_reads() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    for (writer, limits) in [
        ("confluent-kafka", ANYTHING),
        ("kafka-python", KAFKA_PYTHON),
    ] {
        let topic = create_topic(&cluster, &format!("interop-{writer}"), PARTITIONS).await;
        let mut specs: Vec<(Compression, Rec)> = Vec::new();
        let mut input = String::new();
        for codec in Compression::ALL {
            for i in 0..PER_CODEC {
                let rec = spec(codec, i, limits);
                input.push_str(&format!(
                    "{} {} {} {} {} {} {}\n",
                    specs.len(),
                    codec.name(),
                    rec.partition,
                    rec.timestamp,
                    hx(&rec.key),
                    hx(&rec.value),
                    hx_headers(&rec.headers)
                ));
                specs.push((codec, rec));
            }
        }
        let start = Instant::now();
        let out = run_peer(
            "write.py",
            vec![writer.to_owned(), broker.addr.clone(), topic.clone()],
            input,
        )
        .await;
        let written = start.elapsed();
        // index -> (partition, offset) from the peer's delivery reports.
        let mut at: BTreeMap<(i32, i64), usize> = BTreeMap::new();
        for line in out.lines().filter(|l| !l.is_empty()) {
            let f: Vec<i64> = line
                .split(' ')
                .map(|x| x.parse().expect("number"))
                .collect();
            let (idx, partition, offset, timestamp) = (f[0] as usize, f[1] as i32, f[2], f[3]);
            let (_, want) = &specs[idx];
            assert_eq!(
                partition, want.partition,
                "{writer}: record {idx} partition"
            );
            assert_eq!(
                timestamp, want.timestamp,
                "{writer}: record {idx} reported timestamp"
            );
            assert!(
                at.insert((partition, offset), idx).is_none(),
                "{writer}: two records delivered at {partition}@{offset}"
            );
        }
        assert_eq!(at.len(), specs.len(), "{writer}: delivery reports");

        let start = Instant::now();
        let got = mephisto_read(&cluster, &topic, PARTITIONS, specs.len()).await;
        let read = start.elapsed();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            at.keys().collect::<Vec<_>>(),
            "{writer}: offsets read vs delivered"
        );
        let mut per_codec: BTreeMap<&str, usize> = BTreeMap::new();
        for (pos, idx) in &at {
            let (codec, want) = &specs[*idx];
            let (rec, ts_type, batch_codec) = &got[pos];
            assert_eq!(
                rec, want,
                "{writer}: record {idx} ({codec:?}) at {}@{} differs",
                pos.0, pos.1
            );
            assert_eq!(
                *ts_type,
                TimestampType::CreateTime,
                "{writer}: record {idx}"
            );
            assert_eq!(
                batch_codec, codec,
                "{writer}: record {idx} in a batch of the wrong codec"
            );
            *per_codec.entry(codec.name()).or_default() += 1;
        }
        eprintln!(
            "{writer} wrote {} records in {written:?}; Mephisto read them back exactly in \
             {read:?}: {per_codec:?}",
            specs.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mephisto_writes_peers_read() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "interop-mephisto", PARTITIONS).await;
    let mut expected: Vec<String> = Vec::new();
    for codec in Compression::ALL {
        let producer = Producer::new(
            cluster.clone(),
            ProducerConfig {
                compression: codec,
                idempotence: Some(true),
                linger: Duration::from_millis(20),
                ..ProducerConfig::default()
            },
        )
        .expect("producer");
        let records: Vec<Rec> = (0..PER_CODEC).map(|i| spec(codec, i, ANYTHING)).collect();
        let mut deliveries = Vec::new();
        for rec in &records {
            let mut record = ProducerRecord::new(topic.as_str())
                .partition(rec.partition)
                .timestamp(rec.timestamp);
            record.key = rec.key.clone().map(Bytes::from);
            record.value = rec.value.clone().map(Bytes::from);
            record.headers = rec
                .headers
                .iter()
                .map(|(k, v)| RecordHeader {
                    key: k.clone(),
                    value: v.clone().map(Bytes::from),
                })
                .collect();
            deliveries.push(producer.enqueue(record).await.expect("enqueue"));
        }
        for (rec, d) in records.iter().zip(deliveries) {
            let meta = d
                .await
                .unwrap_or_else(|e| panic!("{codec:?}: delivery: {e}"));
            assert_eq!(meta.partition, rec.partition);
            assert_eq!(meta.timestamp, rec.timestamp, "{codec:?}: create time kept");
            expected.push(format!(
                "{} {} create {} {} {} {}",
                meta.partition,
                meta.offset,
                rec.timestamp,
                hx(&rec.key),
                hx(&rec.value),
                hx_headers(&rec.headers)
            ));
        }
        producer.close().await;
    }
    expected.sort();
    for reader in ["kafka-python", "confluent-kafka"] {
        let start = Instant::now();
        let out = run_peer(
            "read.py",
            vec![
                reader.to_owned(),
                broker.addr.clone(),
                topic.clone(),
                PARTITIONS.to_string(),
                expected.len().to_string(),
            ],
            String::new(),
        )
        .await;
        let got: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(got.len(), expected.len(), "{reader}: records read");
        for (g, w) in got.iter().zip(&expected) {
            assert_eq!(g, w, "{reader} reads what Mephisto wrote");
        }
        eprintln!(
            "{reader} read {} Mephisto records (5 codecs) exactly in {:?}",
            got.len(),
            start.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keys_land_where_kafka_python_puts_them() {
    const KEYS: usize = 10_000;
    const PARTS: i32 = 13;
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = create_topic(&cluster, "interop-keys", PARTS).await;

    // Keys: random bytes of length 0..=40 (deterministic xorshift), some text, some non-ASCII.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let keys: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| match i % 4 {
            0 => format!("user-{i}").into_bytes(),
            1 => format!("ключ-{i}-✓").into_bytes(),
            _ => {
                let len = if i == 2 { 0 } else { (next() % 41) as usize };
                (0..len).map(|_| next() as u8).collect()
            }
        })
        .collect();
    assert!(keys.iter().any(Vec::is_empty), "the empty key is covered");

    let input: String = keys
        .iter()
        .map(|k| format!("{}\n", hx(&Some(k.clone()))))
        .collect();
    let out = run_peer("partitions.py", vec![PARTS.to_string()], input).await;
    let theirs: Vec<i32> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().expect("partition"))
        .collect();
    assert_eq!(theirs.len(), KEYS, "kafka-python answered every key");

    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).expect("producer");
    let mut deliveries = Vec::with_capacity(KEYS);
    for (i, k) in keys.iter().enumerate() {
        let record = ProducerRecord::new(topic.as_str())
            .key(k.clone())
            .value(i.to_string());
        deliveries.push(producer.enqueue(record).await.expect("enqueue"));
    }
    let mut acked = BTreeMap::new();
    for (i, d) in deliveries.into_iter().enumerate() {
        let meta = d.await.expect("delivery");
        assert_eq!(
            meta.partition, theirs[i],
            "key {:02x?}: our delivery report vs kafka-python's DefaultPartitioner",
            keys[i]
        );
        acked.insert((meta.partition, meta.offset), i);
    }
    producer.close().await;

    // Through the broker: each record is read back from the partition kafka-python chose.
    let got = mephisto_read(&cluster, &topic, PARTS, KEYS).await;
    let mut used = std::collections::BTreeSet::new();
    for ((partition, offset), (rec, _, _)) in &got {
        let i: usize = std::str::from_utf8(rec.value.as_deref().expect("value"))
            .expect("index")
            .parse()
            .expect("index");
        assert_eq!(rec.key.as_deref(), Some(&keys[i][..]), "record {i} key");
        assert_eq!(
            *partition, theirs[i],
            "record {i} read from partition {partition}, kafka-python says {}",
            theirs[i]
        );
        assert_eq!(acked.get(&(*partition, *offset)), Some(&i));
        used.insert(*partition);
    }
    assert_eq!(got.len(), KEYS);
    assert_eq!(used.len(), PARTS as usize, "every partition used");
}
