//! The group consumer against librdkafka's mock cluster (3 brokers on loopback, through the
//! `rdkafka` dev-dependency), whose classic group coordinator completes a generation only with
//! every live member (or after the session timeout) and accepts fault injection:
//!
//! - coordinator errors (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, REBALANCE_IN_PROGRESS)
//!   injected into FindCoordinator, JoinGroup, Heartbeat and OffsetCommit: the member recovers
//!   and nothing is lost;
//! - the coordinator moving to another broker, then to a third while the second is down;
//! - a cooperative-sticky join, checked strictly (only the newcomer's partitions move, the old
//!   members keep consuming, nothing read twice);
//! - an application slower than the session timeout keeps its membership.
//!
//! # The mock's group coordinator
//! - A rebalance waits a fixed delay for members: `group.initial.rebalance.delay.ms` (3 s) for
//!   the first join, then the session timeout minus 1 s (5 s here), whoever has rejoined.
//! - Injected errors are per API, cluster-wide (the next request of that API on any broker
//!   consumes one), and replace the whole answer.
//! - Its group state is cluster-wide: moving the coordinator keeps members and generation.
//! - Metadata is pinned to v8, JoinGroup to v5 and SyncGroup to v3: at their flexible versions
//!   (Metadata v9+, JoinGroup v6, SyncGroup v4) the member never gets an answer it accepts
//!   (Metadata: one stray trailing byte) and never joins. FindCoordinator v3, Heartbeat v4,
//!   LeaveGroup v4, OffsetCommit v8 and OffsetFetch v6 (flexible) work and are used.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use mephisto_consumer_group::offsets::CommitConfig;
use mephisto_engine::fetcher::{FetcherConfig, OffsetReset};
use mephisto_engine::group::{AssignorKind, GroupConfig, GroupConsumer, PartitionSet};
use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord};
use mephisto_engine::{ClientConfig, Cluster};
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

type Mock = MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

const SESSION: Duration = Duration::from_secs(6);

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
        .with_max_version(ApiKey::JoinGroup, 5)
        .with_max_version(ApiKey::SyncGroup, 3)
        .with_request_timeout(request_timeout())
        .with_connect_timeout(Duration::from_secs(1))
        .with_api_timeout(Duration::from_secs(10))
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .with_retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// The request timeout: 10 s (`MOCK_REQUEST_TIMEOUT_MS` overrides it). With 2 s, a SyncGroup
/// the mock holds until every member synced can time out on our side; the member then rejoins
/// on a new connection while the mock still holds its SyncGroup, and the mock aborts the test
/// process (`rd_kafka_mock_cgrp_classic_member_add: Assertion '!member->resp' failed`).
fn request_timeout() -> Duration {
    let ms = std::env::var("MOCK_REQUEST_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    Duration::from_millis(ms)
}

fn group_config(group: &str, assignor: AssignorKind) -> GroupConfig {
    GroupConfig::new(group)
        .with_assignor(assignor)
        .with_session_timeout(SESSION)
        .with_heartbeat_interval(Duration::from_millis(500))
        .with_max_poll_interval(Duration::from_secs(30))
        .with_commit(CommitConfig {
            interval: Duration::from_millis(300),
            ..CommitConfig::default()
        })
        .with_fetcher(
            FetcherConfig::default()
                .with_auto_offset_reset(OffsetReset::Earliest)
                .with_max_wait(Duration::from_millis(50)),
        )
}

async fn member(mock: &Mock, group: &str, assignor: AssignorKind) -> Arc<GroupConsumer> {
    Arc::new(
        GroupConsumer::connect(client_config(mock), group_config(group, assignor))
            .await
            .expect("consumer"),
    )
}

/// Produces records `from..to` to each of `partitions` (value `p-i`: record `i` of partition
/// `p` lands at offset `i`).
async fn produce(cluster: &Cluster, topic: &str, partitions: i32, from: usize, to: usize) {
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).expect("producer");
    let mut deliveries = Vec::new();
    for p in 0..partitions {
        for i in from..to {
            let record = ProducerRecord::new(topic)
                .partition(p)
                .value(format!("{p}-{i}"));
            deliveries.push(producer.enqueue(record).await.expect("enqueue"));
        }
    }
    producer.flush().await;
    for d in deliveries {
        let meta = d.await.expect("delivered");
        assert!(meta.offset >= 0);
    }
}

/// What a background reader read: `(partition, offset, when)`.
type Log = Arc<Mutex<Vec<(i32, i64, Instant)>>>;

/// Reads and acks in the background until `stop` is set (or 180 s passed).
fn reader(
    m: &Arc<GroupConsumer>,
    log: &Log,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (m, log, stop) = (Arc::clone(m), Arc::clone(log), Arc::clone(stop));
    tokio::spawn(async move {
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(180) {
            match tokio::time::timeout(Duration::from_millis(200), m.next()).await {
                Ok(Ok(r)) => {
                    m.ack(&r.topic, r.partition, r.offset).expect("ack");
                    log.lock()
                        .unwrap()
                        .push((r.partition, r.offset, Instant::now()));
                }
                Ok(Err(e)) => panic!("next: {e}"),
                Err(_) => {}
            }
        }
    })
}

/// Waits until the logs together hold every offset `0..per_partition` of `partitions`
/// partitions; panics after `within`.
async fn wait_all(logs: &[&Log], partitions: i32, per_partition: i64, within: Duration) {
    let start = Instant::now();
    loop {
        let seen: BTreeSet<(i32, i64)> = logs
            .iter()
            .flat_map(|l| {
                l.lock()
                    .unwrap()
                    .iter()
                    .map(|(p, o, _)| (*p, *o))
                    .collect::<Vec<_>>()
            })
            .collect();
        let want = (partitions as usize) * per_partition as usize;
        if seen.len() >= want {
            assert_eq!(seen.len(), want, "records beyond those produced");
            return;
        }
        assert!(
            start.elapsed() < within,
            "only {} of {want} records read within {within:?}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records read more than once (each extra reading counts).
fn duplicates(logs: &[&Log]) -> usize {
    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for l in logs {
        for (p, o, _) in l.lock().unwrap().iter() {
            *seen.entry((*p, *o)).or_default() += 1;
        }
    }
    seen.values().map(|n| n - 1).sum()
}

/// Waits until `members` own disjoint sets covering `partitions` partitions, all stable.
async fn wait_balanced(members: &[&GroupConsumer], partitions: usize, within: Duration) {
    let start = Instant::now();
    loop {
        let sets: Vec<PartitionSet> = members.iter().map(|m| m.assignment()).collect();
        let total: usize = sets.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<_> = sets.iter().flatten().collect();
        if total == partitions
            && union.len() == partitions
            && sets.iter().all(|s| !s.is_empty())
            && members
                .iter()
                .all(|m| format!("{:?}", m.member_state()) == "Stable")
        {
            return;
        }
        assert!(
            start.elapsed() < within,
            "no balanced assignment within {within:?}: {sets:?} {:?}",
            members
                .iter()
                .map(|m| (m.member_state(), m.generation()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Time until the newest of `n` expected records `from..` per partition shows up in `log`.
async fn time_to_read(
    m: &GroupConsumer,
    log: &Log,
    partitions: i32,
    upto: i64,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let seen: BTreeSet<(i32, i64)> = log
            .lock()
            .unwrap()
            .iter()
            .map(|(p, o, _)| (*p, *o))
            .collect();
        if (0..partitions).all(|p| (0..upto).all(|o| seen.contains(&(p, o)))) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "records up to {upto} not all read within {within:?}: {} read, member {:?} {:?} {:?}",
            seen.len(),
            m.member_state(),
            m.generation(),
            m.assignment()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Calls `commit` every 100 ms until it succeeds; returns how long that took and the errors
/// seen before. `GroupConsumer::commit` itself retries across a coordinator move within the
/// request timeout, so the errors are expected to stay empty (they are reported).
async fn commit_until_ok(m: &GroupConsumer, within: Duration) -> (Duration, Vec<String>) {
    let start = Instant::now();
    let mut errors = Vec::new();
    loop {
        match m.commit().await {
            Ok(()) => return (start.elapsed(), errors),
            Err(e) => errors.push(e.to_string()),
        }
        assert!(
            start.elapsed() < within,
            "commit still failing after {within:?}: {errors:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_errors_are_survived_and_nothing_is_lost() {
    use RDKafkaRespErr::*;
    const PARTITIONS: i32 = 3;
    let topic = "coord-errors";
    let group = "g-coord-errors";
    let mock = mock(topic, PARTITIONS);
    let cluster = Cluster::connect(client_config(&mock))
        .await
        .expect("connect");
    produce(&cluster, topic, PARTITIONS, 0, 100).await;

    // Discovery and the first join fail first.
    mock.request_errors(
        RDKafkaApiKey::FindCoordinator,
        &[
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        ],
    );
    mock.request_errors(
        RDKafkaApiKey::JoinGroup,
        &[
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        ],
    );
    let m = member(&mock, group, AssignorKind::Range).await;
    let joined = Instant::now();
    m.subscribe([topic]);
    let (log, stop): (Log, _) = (Arc::default(), Arc::new(AtomicBool::new(false)));
    let task = reader(&m, &log, &stop);
    let first = time_to_read(&m, &log, PARTITIONS, 100, Duration::from_secs(60)).await;
    let first_gen = m.generation().expect("joined");
    eprintln!("joined through 2 FindCoordinator and 2 JoinGroup errors; all 300 read after {first:?}, {first_gen:?}");

    // Heartbeats refused while consuming.
    mock.request_errors(
        RDKafkaApiKey::Heartbeat,
        &[
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        ],
    );
    let t = Instant::now();
    produce(&cluster, topic, PARTITIONS, 100, 200).await;
    let hb = time_to_read(&m, &log, PARTITIONS, 200, Duration::from_secs(60)).await;
    // Let the heartbeat errors be consumed and the rebalance (REBALANCE_IN_PROGRESS) finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_balanced(&[&m], PARTITIONS as usize, Duration::from_secs(30)).await;
    let after_hb = m.generation().expect("joined");
    eprintln!(
        "heartbeat errors: next 300 read after {hb:?}; stable again {:?} after the injection, {after_hb:?}",
        t.elapsed()
    );

    // Commits refused while consuming.
    mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        ],
    );
    let t = Instant::now();
    produce(&cluster, topic, PARTITIONS, 200, 300).await;
    let oc = time_to_read(&m, &log, PARTITIONS, 300, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_balanced(&[&m], PARTITIONS as usize, Duration::from_secs(30)).await;
    eprintln!(
        "commit errors: next 300 read after {oc:?}; stable {:?} after the injection, {:?}",
        t.elapsed(),
        m.generation()
    );
    wait_all(&[&log], PARTITIONS, 300, Duration::from_secs(30)).await;
    stop.store(true, Ordering::Relaxed);
    task.await.expect("reader");
    let dups = duplicates(&[&log]);
    eprintln!("duplicates: {dups} of {} reads", log.lock().unwrap().len());

    // Everything read is committed in the end.
    m.commit().await.expect("final commit");
    for p in 0..PARTITIONS {
        assert_eq!(m.committed(topic, p), Some(300), "partition {p} committed");
    }
    assert!(
        joined.elapsed() < Duration::from_secs(120),
        "{:?}",
        joined.elapsed()
    );
    m.close().await.expect("close");

    // A second run starts after the commit: nothing more to read.
    produce(&cluster, topic, PARTITIONS, 300, 310).await;
    let second = member(&mock, group, AssignorKind::Range).await;
    second.subscribe([topic]);
    let (log2, stop2): (Log, _) = (Arc::default(), Arc::new(AtomicBool::new(false)));
    let task2 = reader(&second, &log2, &stop2);
    let t = Instant::now();
    loop {
        if log2.lock().unwrap().len() >= 30 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "second run stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop2.store(true, Ordering::Relaxed);
    task2.await.expect("reader");
    let mut got: Vec<(i32, i64)> = log2
        .lock()
        .unwrap()
        .iter()
        .map(|(p, o, _)| (*p, *o))
        .collect();
    got.sort();
    let want: Vec<(i32, i64)> = (0..PARTITIONS)
        .flat_map(|p| (300..310).map(move |o| (p, o)))
        .collect();
    assert_eq!(got, want, "the second run resumes after the last commit");
    second.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_moves_and_is_found_again() {
    const PARTITIONS: i32 = 3;
    let topic = "coord-moves";
    let group = "g-coord-moves";
    let mock = mock(topic, PARTITIONS);
    mock.coordinator(MockCoordinator::Group(group.into()), 1)
        .expect("coordinator 1");
    let cluster = Cluster::connect(client_config(&mock))
        .await
        .expect("connect");
    produce(&cluster, topic, PARTITIONS, 0, 100).await;
    let m = member(&mock, group, AssignorKind::Range).await;
    let lost: Arc<Mutex<Vec<PartitionSet>>> = Arc::default();
    let l = Arc::clone(&lost);
    m.on_lost(move |p| l.lock().unwrap().push(p.clone()));
    m.subscribe([topic]);
    let (log, stop): (Log, _) = (Arc::default(), Arc::new(AtomicBool::new(false)));
    let task = reader(&m, &log, &stop);
    time_to_read(&m, &log, PARTITIONS, 100, Duration::from_secs(30)).await;
    let gen = m.generation().expect("joined");

    // Move 1: broker 1 answers NOT_COORDINATOR from now on; the group lives on in broker 2.
    mock.coordinator(MockCoordinator::Group(group.into()), 2)
        .expect("coordinator 2");
    let t = Instant::now();
    produce(&cluster, topic, PARTITIONS, 100, 200).await;
    let read = time_to_read(&m, &log, PARTITIONS, 200, Duration::from_secs(30)).await;
    // Twice the session timeout: without heartbeats reaching broker 2 the mock would evict
    // the member and start a new generation.
    tokio::time::sleep(2 * SESSION).await;
    assert_eq!(
        m.generation(),
        Some(gen.clone()),
        "same member and generation after move 1"
    );
    let (commit, errors) = commit_until_ok(&m, 2 * SESSION).await;
    eprintln!(
        "coordinator 1 -> 2: new records read after {read:?}; membership kept for {:?}; \
         commit() succeeded after {commit:?} (errors before: {errors:?})",
        t.elapsed()
    );

    // Move 2: to broker 3 while broker 2 is down (partition leaders moved to broker 1 first).
    for p in 0..PARTITIONS {
        mock.partition_leader(topic, p, Some(1)).expect("leader 1");
    }
    mock.coordinator(MockCoordinator::Group(group.into()), 3)
        .expect("coordinator 3");
    mock.broker_down(2).expect("broker 2 down");
    let t = Instant::now();
    produce(&cluster, topic, PARTITIONS, 200, 300).await;
    let read = time_to_read(&m, &log, PARTITIONS, 300, Duration::from_secs(30)).await;
    let (commit, errors) = commit_until_ok(&m, 2 * SESSION).await;
    tokio::time::sleep(2 * SESSION).await;
    let after = m.generation();
    eprintln!(
        "coordinator 2 (down) -> 3: new records read after {read:?}; commit() succeeded after \
         {commit:?} (errors before: {errors:?}); generation {gen:?} -> {after:?} after {:?}",
        t.elapsed()
    );
    assert_eq!(after, Some(gen), "same member and generation after move 2");
    mock.broker_up(2).expect("broker 2 up");

    wait_all(&[&log], PARTITIONS, 300, Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    task.await.expect("reader");
    assert_eq!(duplicates(&[&log]), 0, "nothing read twice");
    assert!(
        lost.lock().unwrap().is_empty(),
        "partitions lost: {:?}",
        lost.lock().unwrap()
    );
    for p in 0..PARTITIONS {
        assert_eq!(m.committed(topic, p), Some(300), "partition {p} committed");
    }
    m.close().await.expect("close");
}

/// `commit()` goes through the offset tracker: it commits the acked prefix (not what was read),
/// records it as committed, sends nothing when nothing is new, and survives NOT_COORDINATOR,
/// COORDINATOR_NOT_AVAILABLE and a coordinator move within one call (rediscover, retry). The
/// policy never commits on its own here, so every commit seen is `commit()`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_follows_the_coordinator_and_records_what_it_committed() {
    use RDKafkaRespErr::*;
    const PARTITIONS: i32 = 3;
    let topic = "commit-now";
    let group = "g-commit-now";
    let mock = mock(topic, PARTITIONS);
    mock.coordinator(MockCoordinator::Group(group.into()), 1)
        .expect("coordinator 1");
    let cluster = Cluster::connect(client_config(&mock))
        .await
        .expect("connect");
    produce(&cluster, topic, PARTITIONS, 0, 20).await;
    let never = CommitConfig {
        interval: Duration::from_secs(3600),
        every: u64::MAX,
        ..CommitConfig::default()
    };
    let m = GroupConsumer::connect(
        client_config(&mock),
        group_config(group, AssignorKind::Range).with_commit(never.clone()),
    )
    .await
    .expect("consumer");
    m.subscribe([topic]);
    // Read all 60; ack offsets 0..10 of each partition and 12, 13 (a hole at 10 and 11).
    let mut read = 0;
    while read < 60 {
        let r = tokio::time::timeout(Duration::from_secs(30), m.next())
            .await
            .expect("records within 30 s")
            .expect("next");
        read += 1;
        if r.offset < 10 || r.offset == 12 || r.offset == 13 {
            assert!(m.ack_record(&r).expect("ack"));
        }
    }
    for p in 0..PARTITIONS {
        assert_eq!(m.committed(topic, p), Some(0), "nothing committed yet");
    }

    // Both coordinator errors, and the group moves to broker 2: one call gets through.
    mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        ],
    );
    mock.coordinator(MockCoordinator::Group(group.into()), 2)
        .expect("coordinator 2");
    let t = Instant::now();
    m.commit().await.expect("commit across the move");
    eprintln!(
        "commit() through 2 coordinator errors and a move: {:?}",
        t.elapsed()
    );
    for p in 0..PARTITIONS {
        assert_eq!(
            m.committed(topic, p),
            Some(10),
            "partition {p}: the acked prefix, recorded"
        );
    }
    // Nothing new: answered without a request (an injected error would otherwise fail it).
    mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE],
    );
    let t = Instant::now();
    m.commit().await.expect("nothing to commit");
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    // A non-retriable error fails the call and commits nothing.
    m.ack(topic, 0, 10).expect("ack");
    let err = m.commit().await.expect_err("rejected commit");
    eprintln!("rejected commit: {err}");
    assert_eq!(m.committed(topic, 0), Some(10));
    // The hole filled: 10..14 of partition 0 commit on the next call.
    m.ack(topic, 0, 11).expect("ack");
    m.commit().await.expect("commit");
    assert_eq!(m.committed(topic, 0), Some(14));
    m.close().await.expect("close");

    // The broker has what `commit()` recorded: a new member resumes there.
    let second = GroupConsumer::connect(
        client_config(&mock),
        group_config(group, AssignorKind::Range).with_commit(never),
    )
    .await
    .expect("consumer");
    second.subscribe([topic]);
    let mut got = BTreeSet::new();
    while got.len() < 6 + 10 + 10 {
        let r = tokio::time::timeout(Duration::from_secs(30), second.next())
            .await
            .expect("records within 30 s")
            .expect("next");
        got.insert((r.partition, r.offset));
    }
    let want: BTreeSet<(i32, i64)> = (14..20)
        .map(|o| (0, o))
        .chain((1..PARTITIONS).flat_map(|p| (10..20).map(move |o| (p, o))))
        .collect();
    assert_eq!(got, want, "resumed at the committed offsets");
    second.close().await.expect("close");
}

/// `commit()` retries a retriable failure only within the request timeout (here 2 s), then
/// fails with `CommitTimeout`, having committed nothing; once the coordinator answers again the
/// next call commits. (A 2 s request timeout is also what a SyncGroup held for the rebalance
/// used to time out on: SyncGroup now waits the rebalance timeout plus the request timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_gives_up_after_the_request_timeout() {
    use RDKafkaRespErr::*;
    const PARTITIONS: i32 = 2;
    let topic = "commit-timeout";
    let group = "g-commit-timeout";
    let mock = mock(topic, PARTITIONS);
    let cluster = Cluster::connect(client_config(&mock))
        .await
        .expect("connect");
    produce(&cluster, topic, PARTITIONS, 0, 10).await;
    let request_timeout = Duration::from_secs(2);
    let m = GroupConsumer::connect(
        client_config(&mock).with_request_timeout(request_timeout),
        group_config(group, AssignorKind::Range).with_commit(CommitConfig {
            interval: Duration::from_secs(3600),
            every: u64::MAX,
            ..CommitConfig::default()
        }),
    )
    .await
    .expect("consumer");
    m.subscribe([topic]);
    for _ in 0..20 {
        let r = tokio::time::timeout(Duration::from_secs(30), m.next())
            .await
            .expect("records within 30 s")
            .expect("next");
        m.ack_record(&r).expect("ack");
    }
    // Far more errors than 100 ms retries fit in 2 s.
    mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS; 200],
    );
    let t = Instant::now();
    let err = m
        .commit()
        .await
        .expect_err("coordinator loading throughout");
    let took = t.elapsed();
    eprintln!("commit() gave up after {took:?}: {err}");
    assert!(
        matches!(err, mephisto_engine::group::GroupConsumerError::CommitTimeout(d) if d == request_timeout),
        "{err}"
    );
    assert!(
        took >= request_timeout && took < request_timeout + Duration::from_secs(2),
        "{took:?}"
    );
    for p in 0..PARTITIONS {
        assert_eq!(m.committed(topic, p), Some(0));
    }
    mock.clear_request_errors(RDKafkaApiKey::OffsetCommit);
    m.commit()
        .await
        .expect("commit once the coordinator answers");
    for p in 0..PARTITIONS {
        assert_eq!(m.committed(topic, p), Some(10));
    }
    m.close().await.expect("close");
}

/// Current-thread runtime: `next` and `ack` with no await between them are atomic with respect
/// to rebalances, so a record handed out is always acked before its partition can be revoked.
#[tokio::test]
async fn cooperative_sticky_join_moves_only_what_the_newcomer_takes() {
    const PARTITIONS: i32 = 6;
    let topic = "coop";
    let group = "g-coop";
    let mock = mock(topic, PARTITIONS);
    let cluster = Cluster::connect(client_config(&mock))
        .await
        .expect("connect");
    produce(&cluster, topic, PARTITIONS, 0, 50).await;

    let revoked: Arc<Mutex<Vec<(usize, PartitionSet)>>> = Arc::default();
    let lost: Arc<Mutex<Vec<(usize, PartitionSet)>>> = Arc::default();
    // Owner of each partition as the members' own events tell it, and how often a partition
    // was assigned to one member while another still owned it.
    let owners: Arc<Mutex<(BTreeMap<i32, usize>, usize)>> = Arc::default();
    let make = |i: usize, m: Arc<GroupConsumer>| {
        let r = Arc::clone(&revoked);
        let o = Arc::clone(&owners);
        m.on_revoked(move |p| {
            eprintln!(
                "member {i} revoked {:?}",
                p.iter().map(|tp| tp.partition).collect::<Vec<_>>()
            );
            r.lock().unwrap().push((i, p.clone()));
            let mut o = o.lock().unwrap();
            for tp in p {
                o.0.remove(&tp.partition);
            }
        });
        let o = Arc::clone(&owners);
        m.on_assigned(move |p| {
            eprintln!(
                "member {i} assigned {:?}",
                p.iter().map(|tp| tp.partition).collect::<Vec<_>>()
            );
            let mut o = o.lock().unwrap();
            for tp in p {
                if o.0.insert(tp.partition, i).is_some_and(|prev| prev != i) {
                    o.1 += 1;
                }
            }
        });
        let l = Arc::clone(&lost);
        m.on_lost(move |p| l.lock().unwrap().push((i, p.clone())));
        m.subscribe([topic]);
        m
    };
    let a = make(
        0,
        member(&mock, group, AssignorKind::CooperativeSticky).await,
    );
    let b = make(
        1,
        member(&mock, group, AssignorKind::CooperativeSticky).await,
    );
    let t = Instant::now();
    wait_balanced(&[&a, &b], PARTITIONS as usize, Duration::from_secs(60)).await;
    eprintln!("2 members balanced after {:?}", t.elapsed());
    let before = [a.assignment(), b.assignment()];
    let gen_before = a.generation().expect("joined").1;
    let stop = Arc::new(AtomicBool::new(false));
    let logs: [Log; 3] = Default::default();
    let ta = reader(&a, &logs[0], &stop);
    let tb = reader(&b, &logs[1], &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let revoked_before = revoked.lock().unwrap().len();

    let c = make(
        2,
        member(&mock, group, AssignorKind::CooperativeSticky).await,
    );
    let tc = reader(&c, &logs[2], &stop);
    let joined = Instant::now();
    // Produce continuously through the rebalance; note when an old member first leaves Stable.
    let mut rounds = 0usize;
    let mut rebalance_start: Option<Instant> = None;
    loop {
        let sets = [a.assignment(), b.assignment(), c.assignment()];
        let stable = [&a, &b, &c]
            .iter()
            .all(|m| format!("{:?}", m.member_state()) == "Stable");
        if rebalance_start.is_none()
            && [&a, &b]
                .iter()
                .any(|m| format!("{:?}", m.member_state()) != "Stable")
        {
            rebalance_start = Some(Instant::now());
        }
        if stable
            && sets.iter().all(|s| !s.is_empty())
            && sets.iter().map(BTreeSet::len).sum::<usize>() == 6
        {
            break;
        }
        assert!(
            joined.elapsed() < Duration::from_secs(90),
            "no balanced assignment: {sets:?}"
        );
        produce(&cluster, topic, PARTITIONS, 50 + rounds, 51 + rounds).await;
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let balanced = Instant::now();
    let start = rebalance_start.unwrap_or(joined);
    let read_during: usize = logs[..2]
        .iter()
        .map(|l| {
            l.lock()
                .unwrap()
                .iter()
                .filter(|(_, _, at)| *at >= start && *at <= balanced)
                .count()
        })
        .sum();
    let gen_after = c.generation().expect("joined").1;
    eprintln!(
        "newcomer balanced after {:?} (rebalance seen by an old member after {:?}; generations \
         {gen_before} -> {gen_after}); old members read {read_during} records in the {:?} window",
        joined.elapsed(),
        start - joined,
        balanced - start
    );
    assert!(
        read_during > 0,
        "the old members kept consuming through the rebalance"
    );
    produce(&cluster, topic, PARTITIONS, 50 + rounds, 55 + rounds).await;
    let total = (55 + rounds) as i64;
    let after = [a.assignment(), b.assignment(), c.assignment()];
    let breaches = owners.lock().unwrap().1;
    let moves: Vec<(usize, PartitionSet)> = revoked.lock().unwrap()[revoked_before..].to_vec();
    let moved: usize = moves.iter().map(|(_, s)| s.len()).sum();
    eprintln!(
        "cooperative join: {moved} partitions revoked {moves:?}, newcomer owns {}, breaches {breaches}",
        after[2].len()
    );
    assert_eq!(
        breaches, 0,
        "a partition was assigned while another member owned it"
    );
    assert!(
        lost.lock().unwrap().is_empty(),
        "lost: {:?}",
        lost.lock().unwrap()
    );
    for (i, old) in before.iter().enumerate() {
        assert!(
            after[i].is_subset(old),
            "member {i} gained partitions: {old:?} -> {:?}",
            after[i]
        );
    }
    for (i, set) in &moves {
        assert!(
            set.is_subset(&after[2]),
            "member {i} revoked {set:?}, not all taken by the newcomer {:?}",
            after[2]
        );
    }
    assert_eq!(
        moved,
        after[2].len(),
        "only the newcomer's partitions moved"
    );
    assert_eq!(after[2].len(), 2, "the newcomer takes its share");

    let refs: Vec<&Log> = logs.iter().collect();
    wait_all(&refs, PARTITIONS, total, Duration::from_secs(30)).await;
    stop.store(true, Ordering::Relaxed);
    for t in [ta, tb, tc] {
        t.await.expect("reader");
    }
    let dups = duplicates(&refs);
    eprintln!(
        "{} records read, {dups} twice",
        logs.iter().map(|l| l.lock().unwrap().len()).sum::<usize>()
    );
    assert_eq!(dups, 0, "nothing read twice");
    for m in [&a, &b, &c] {
        m.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_slower_than_the_session_timeout_keeps_its_membership() {
    const PARTITIONS: i32 = 2;
    let topic = "slow";
    let mock = mock(topic, PARTITIONS);
    let cluster = Cluster::connect(client_config(&mock))
        .await
        .expect("connect");
    produce(&cluster, topic, PARTITIONS, 0, 10).await;
    let m = member(&mock, "g-slow", AssignorKind::Range).await;
    m.subscribe([topic]);
    let mut got = Vec::new();
    let first = tokio::time::timeout(Duration::from_secs(30), m.next())
        .await
        .expect("first record in time")
        .expect("next");
    m.ack(&first.topic, first.partition, first.offset)
        .expect("ack");
    got.push((first.partition, first.offset));
    let gen = m.generation().expect("joined");
    let owned = m.assignment();
    // 1.5 times the session timeout between two records (below the max poll interval).
    tokio::time::sleep(SESSION + SESSION / 2).await;
    let second = tokio::time::timeout(Duration::from_secs(5), m.next())
        .await
        .expect("second record in time")
        .expect("next");
    m.ack(&second.topic, second.partition, second.offset)
        .expect("ack");
    got.push((second.partition, second.offset));
    assert_eq!(
        m.generation(),
        Some(gen.clone()),
        "same member and generation"
    );
    assert_eq!(m.assignment(), owned);
    while got.len() < 20 {
        let r = tokio::time::timeout(Duration::from_secs(10), m.next())
            .await
            .expect("records in time")
            .expect("next");
        m.ack(&r.topic, r.partition, r.offset).expect("ack");
        got.push((r.partition, r.offset));
    }
    got.sort();
    let want: Vec<(i32, i64)> = (0..PARTITIONS)
        .flat_map(|p| (0..10).map(move |o| (p, o)))
        .collect();
    assert_eq!(got, want, "everything read once");
    assert_eq!(m.generation(), Some(gen), "still the same generation");
    m.close().await.expect("close");
}

/// An eager (range) rebalance whose revocation commits are refused: by injected coordinator
/// errors, and by the mock itself, which answers REBALANCE_IN_PROGRESS to every OffsetCommit
/// while the group is joining (a real broker accepts the current generation's commits then).
/// Nothing may be lost; records whose commit was refused are read again by their next owner
/// (counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eager_rebalance_with_refused_commits_loses_nothing() {
    use RDKafkaRespErr::*;
    const PARTITIONS: i32 = 6;
    let topic = "eager-refused";
    let group = "g-eager-refused";
    let mock = mock(topic, PARTITIONS);
    let cluster = Cluster::connect(client_config(&mock))
        .await
        .expect("connect");
    produce(&cluster, topic, PARTITIONS, 0, 100).await;
    let a = member(&mock, group, AssignorKind::Range).await;
    let b = member(&mock, group, AssignorKind::Range).await;
    a.subscribe([topic]);
    b.subscribe([topic]);
    wait_balanced(&[&a, &b], PARTITIONS as usize, Duration::from_secs(60)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let logs: [Log; 3] = Default::default();
    let ta = reader(&a, &logs[0], &stop);
    let tb = reader(&b, &logs[1], &stop);
    let refs: Vec<&Log> = logs.iter().collect();
    wait_all(&refs, PARTITIONS, 100, Duration::from_secs(30)).await;
    for m in [&a, &b] {
        commit_until_ok(m, Duration::from_secs(10)).await;
    }
    // Read, acked, not committed yet (the commit interval is 300 ms) when the rebalance starts.
    produce(&cluster, topic, PARTITIONS, 100, 150).await;
    mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        ],
    );
    let gen_before = a.generation().expect("joined").1;
    let c = member(&mock, group, AssignorKind::Range).await;
    c.subscribe([topic]);
    let tc = reader(&c, &logs[2], &stop);
    let joined = Instant::now();
    wait_balanced(&[&a, &b, &c], PARTITIONS as usize, Duration::from_secs(90)).await;
    eprintln!(
        "3 members balanced {:?} after the join: {:?}",
        joined.elapsed(),
        [&a, &b, &c].map(|m| (m.generation(), m.assignment().len()))
    );
    let rebalances = (c.generation().expect("joined").1 - gen_before) as usize;
    produce(&cluster, topic, PARTITIONS, 150, 200).await;
    wait_all(&refs, PARTITIONS, 200, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in [ta, tb, tc] {
        t.await.expect("reader");
    }
    let dups = duplicates(&refs);
    let mut counts: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for l in &refs {
        for (p, o, _) in l.lock().unwrap().iter() {
            *counts.entry((*p, *o)).or_default() += 1;
        }
    }
    let twice: Vec<(i32, i64)> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| *k)
        .collect();
    eprintln!(
        "{} reads of 1200 records: {dups} read twice (their commit was refused), offsets {:?}..={:?}",
        logs.iter().map(|l| l.lock().unwrap().len()).sum::<usize>(),
        twice.iter().map(|k| k.1).min(),
        twice.iter().map(|k| k.1).max()
    );
    // Only records acked after the last accepted commit before the join (100..150) may come
    // again, at most once per rebalance. An injected REBALANCE_IN_PROGRESS answering a commit
    // in a stable generation makes the member rejoin: there may be two rebalances.
    eprintln!(
        "{rebalances} rebalances (generation {gen_before} -> {})",
        gen_before + rebalances as i32
    );
    assert!(
        counts.values().all(|n| *n <= 1 + rebalances),
        "a record read more than once per rebalance"
    );
    assert!(
        twice.iter().all(|(_, o)| (100..150).contains(o)),
        "records committed before the join read again: {twice:?}"
    );
    for m in [&a, &b, &c] {
        m.close().await.expect("close");
    }
}
