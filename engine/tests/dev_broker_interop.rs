//! The development broker with the Python peers (`.venv`, `scripts/install-peers.sh`):
//! confluent-kafka (librdkafka) and kafka-python produce to it (idempotent, every codec) and
//! Mephisto reads everything back; both consume what Mephisto produced; both consume in a group,
//! each alone and then together in one group; and Mephisto's group consumer shares a group with
//! librdkafka.
//! The peer script is `tests/peers/dev_broker_peer.py`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mephisto_dev_broker::{DevBroker, DevBrokerConfig};
use mephisto_engine::fetcher::{FetchPosition, Fetcher, FetcherConfig, TopicPartition};
use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord};
use mephisto_engine::{Admin, ClientConfig, Cluster, NewTopic};

const PEERS: [&str; 2] = ["confluent-kafka", "kafka-python"];

fn python() -> PathBuf {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        py.is_file(),
        "no Python peers at {}: run scripts/install-peers.sh",
        py.display()
    );
    py
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/dev_broker_peer.py")
}

/// Runs the peer script with `args`; its stdout lines. Panics with its stderr on failure.
async fn peer(args: &[&str]) -> Vec<String> {
    let child = tokio::process::Command::new(python())
        .arg(script())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn python");
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("peer {args:?} did not finish within 90 s"))
        .expect("peer output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "peer {args:?} failed: {}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

async fn start() -> (DevBroker, Cluster, String) {
    let broker = DevBroker::start(DevBrokerConfig::default())
        .await
        .expect("dev broker");
    let config = ClientConfig::from_url(&broker.url())
        .expect("url")
        .with_request_timeout(Duration::from_secs(10));
    let cluster = Cluster::connect(config).await.expect("connect");
    let addr = broker.local_addr().to_string();
    (broker, cluster, addr)
}

async fn create(cluster: &Cluster, name: &str, partitions: i32) {
    Admin::new(cluster.clone())
        .create_topic(NewTopic::new(name, partitions, 1))
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// Mephisto reads `want` values of `topic` from the start.
async fn mephisto_read(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    want: usize,
) -> Vec<String> {
    let fetcher = Fetcher::new(cluster.clone(), FetcherConfig::default()).expect("fetcher");
    for p in 0..partitions {
        fetcher
            .assign(TopicPartition::new(topic, p), FetchPosition::Earliest)
            .expect("assign");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, fetcher.next_batch()).await {
            Ok(Ok(batch)) => {
                for r in batch.records().expect("records") {
                    let r = r.expect("record");
                    got.push(String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned());
                }
            }
            Ok(Err(e)) => panic!("fetch: {e}"),
            Err(_) => break,
        }
    }
    fetcher.close();
    got
}

async fn mephisto_produce(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    count: usize,
    prefix: &str,
) {
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(topic)
            .partition((i % partitions as usize) as i32)
            .value(format!("{prefix}-{i}"));
        deliveries.push(producer.enqueue(record).await.expect("enqueue"));
    }
    producer.flush().await;
    for d in deliveries {
        d.await.expect("delivered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_produce_every_codec_and_mephisto_reads_it() {
    let (_broker, cluster, addr) = start().await;
    for which in PEERS {
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let topic = format!("peer-{which}-{codec}");
            create(&cluster, &topic, 3).await;
            let started = Instant::now();
            let out = peer(&["produce", which, &addr, &topic, "300", codec]).await;
            assert_eq!(out, vec!["produced 300".to_owned()]);
            let got = mephisto_read(&cluster, &topic, 3, 300).await;
            let want: BTreeSet<String> = (0..300).map(|i| format!("{which}-{codec}-{i}")).collect();
            let unique: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!(got.len(), 300, "{which} {codec}: no duplicate");
            assert_eq!(unique, want, "{which} {codec}");
            eprintln!("{which} {codec}: 300 records in {:?}", started.elapsed());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_consume_what_mephisto_produced() {
    let (_broker, cluster, addr) = start().await;
    create(&cluster, "to-peers", 3).await;
    mephisto_produce(&cluster, "to-peers", 3, 600, "m").await;
    for which in PEERS {
        let out = peer(&["consume", which, &addr, "to-peers", "3", "600"]).await;
        let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        let mut values = BTreeSet::new();
        for line in &out {
            let mut parts = line.splitn(3, ' ');
            let p: i32 = parts
                .next()
                .and_then(|v| v.parse().ok())
                .expect("partition");
            let o: i64 = parts.next().and_then(|v| v.parse().ok()).expect("offset");
            per_partition.entry(p).or_default().push(o);
            values.insert(parts.next().expect("value").to_owned());
        }
        assert_eq!(values.len(), 600, "{which}: every record once");
        for (p, offsets) in per_partition {
            assert_eq!(
                offsets,
                (0..200).collect::<Vec<i64>>(),
                "{which}: partition {p} in order"
            );
        }
    }
}

/// Parses group-mode output: the records and the final assignment.
fn group_output(out: &[String]) -> (Vec<String>, Vec<i32>) {
    let mut values = Vec::new();
    let mut assignment = Vec::new();
    for line in out {
        if let Some(list) = line.strip_prefix("assignment ") {
            assignment = list
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().expect("partition"))
                .collect();
        } else if let Some(value) = line.splitn(3, ' ').nth(2) {
            values.push(value.to_owned());
        }
    }
    (values, assignment)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_consume_in_a_group_alone_and_together() {
    let (broker, cluster, addr) = start().await;
    create(&cluster, "grouped", 4).await;
    mephisto_produce(&cluster, "grouped", 4, 400, "first").await;
    // Each peer alone in its own group reads everything.
    for which in PEERS {
        let group = format!("g-{which}");
        let out = peer(&["group", which, &addr, "grouped", &group, "8"]).await;
        let (values, assignment) = group_output(&out);
        let unique: BTreeSet<&String> = values.iter().collect();
        assert_eq!((values.len(), unique.len()), (400, 400), "{which} alone");
        assert_eq!(assignment, vec![0, 1, 2, 3], "{which} owns everything");
    }
    // Both implementations in one group: they split the partitions and, between them, read every
    // record exactly once (each commits every record before the next poll).
    let a = tokio::spawn({
        let addr = addr.clone();
        async move {
            peer(&[
                "group",
                "confluent-kafka",
                &addr,
                "grouped",
                "g-mixed",
                "14",
            ])
            .await
        }
    });
    let b = tokio::spawn({
        let addr = addr.clone();
        async move { peer(&["group", "kafka-python", &addr, "grouped", "g-mixed", "14"]).await }
    });
    tokio::time::sleep(Duration::from_secs(6)).await;
    mephisto_produce(&cluster, "grouped", 4, 400, "second").await;
    let (va, pa) = group_output(&a.await.expect("confluent task"));
    let (vb, pb) = group_output(&b.await.expect("kafka-python task"));
    eprintln!(
        "mixed group: confluent-kafka read {} owning {pa:?}, kafka-python read {} owning {pb:?}",
        va.len(),
        vb.len()
    );
    let mut all: Vec<&String> = va.iter().chain(vb.iter()).collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(total, all.len(), "no record read twice");
    assert_eq!(total, 800, "every record read");
    let union: BTreeSet<i32> = pa.iter().chain(pb.iter()).copied().collect();
    assert!(
        !pa.is_empty() && !pb.is_empty(),
        "both own partitions: {pa:?} {pb:?}"
    );
    assert_eq!(pa.len() + pb.len(), 4, "disjoint: {pa:?} {pb:?}");
    assert_eq!(union.len(), 4);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mephisto_and_librdkafka_share_a_group() {
    use std::sync::{Arc, Mutex};

    use mephisto_engine::fetcher::OffsetReset;
    use mephisto_engine::group::{AssignorKind, GroupConfig, GroupConsumer};

    let (broker, cluster, addr) = start().await;
    create(&cluster, "mixed", 4).await;
    let peer_task = tokio::spawn({
        let addr = addr.clone();
        async move {
            peer(&[
                "group",
                "confluent-kafka",
                &addr,
                "mixed",
                "g-mephisto-rdk",
                "12",
            ])
            .await
        }
    });
    let config = ClientConfig::from_url(&broker.url()).expect("url");
    let member = Arc::new(
        GroupConsumer::connect(
            config,
            GroupConfig::new("g-mephisto-rdk")
                .with_assignor(AssignorKind::Range)
                .with_session_timeout(Duration::from_secs(6))
                .with_heartbeat_interval(Duration::from_millis(500))
                .with_fetcher(
                    FetcherConfig::default().with_auto_offset_reset(OffsetReset::Earliest),
                ),
        )
        .await
        .expect("member"),
    );
    member.subscribe(["mixed"]);
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let reader = tokio::spawn({
        let member = Arc::clone(&member);
        let got = Arc::clone(&got);
        async move {
            while let Ok(r) = member.next().await {
                got.lock().unwrap().push(
                    String::from_utf8_lossy(r.record.value().unwrap_or_default()).into_owned(),
                );
                let _ = member.ack(&r.topic, r.partition, r.offset);
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    mephisto_produce(&cluster, "mixed", 4, 400, "mixed").await;
    let (peer_values, peer_assignment) = group_output(&peer_task.await.expect("peer task"));
    let mut all: Vec<String> = peer_values.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().len() + peer_values.len() < 400 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    all.extend(got.lock().unwrap().iter().cloned());
    eprintln!(
        "mephisto read {} owning {:?}; confluent-kafka read {} owning {peer_assignment:?}",
        got.lock().unwrap().len(),
        member
            .assignment()
            .iter()
            .map(|tp| tp.partition)
            .collect::<Vec<_>>(),
        peer_values.len()
    );
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(total, all.len(), "no record read twice");
    assert_eq!(total, 400, "every record read");
    assert!(
        !peer_assignment.is_empty() && peer_assignment.len() < 4,
        "librdkafka and Mephisto split the partitions: librdkafka had {peer_assignment:?}"
    );
    member.close().await.expect("close");
    reader.abort();
}
