//! Offset commits: the consumer group's offset tracker, the OffsetCommit request it leads to,
//! and the commit round trip against a private tansu, Mephisto against rdkafka.
//!
//! - `offset_commit/acks/{in-order,shuffled}`: 64 partitions of one topic, 1024 offsets
//!   delivered per partition before the clock starts, then every offset acked by partition
//!   handle (`OffsetTracker::acked_at`, the engine's per-record path), interleaved over the
//!   partitions in offset order, or in one pre-shuffled order of all acks. Throughput in acks.
//!   `by-name/*`: the same acks through `OffsetTracker::acked(&(topic, partition), offset)`
//!   (a partition lookup per ack).
//! - `offset_commit/encode/{1,100,1000}`: from a tracker whose partitions all advanced,
//!   `poll_commit` (the committable offsets), the `kafka-protocol` `OffsetCommitRequest` built
//!   as the engine builds it (grouped by topic), and its frame through
//!   `mephisto_wire::messages::encode_request_frame` at the highest OffsetCommit version the
//!   engine speaks. `encode-only/*` encodes the prebuilt request alone. Throughput in
//!   partitions.
//! - `offset_commit/round-trip/*`: one commit of 8 partitions, waited for, against a tansu
//!   started on a free loopback port (`$TANSU_BIN`, else `.tools/bin/tansu` from
//!   `scripts/install-peers.sh`; skipped with a message if it cannot start). Each client joins
//!   its own group (6 s session timeout) once, before the clock starts.
//!   `mephisto-group` is `GroupConsumer::commit()` after the next record of each partition was
//!   acked (outside the clock: every record was consumed before, and each iteration acks one
//!   more offset per partition, so every commit carries 8 advanced offsets); `mephisto-cluster` is the engine's lowest path (`Cluster::send` of an
//!   OffsetCommit on a `Group` connection with the joined member's id and generation);
//!   `rdkafka` is `BaseConsumer::commit(&tpl, CommitMode::Sync)`.
//!
//! Run: `cargo bench -p mephisto-benches --bench offset_commit -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{ApiKey, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use mephisto_benches::tansu::{BoxError, Tansu};
use mephisto_consumer_group::assignor::TopicPartition;
use mephisto_consumer_group::offsets::{CommitConfig, OffsetTracker, PartitionHandle};
use mephisto_engine::fetcher::{FetcherConfig, OffsetReset};
use mephisto_engine::group::{GroupConfig, GroupConsumer};
use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord};
use mephisto_engine::{Admin, ClientConfig, Cluster, NewTopic, Purpose};
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

const ACK_PARTITIONS: i32 = 64;
const ACKS_PER_PARTITION: i64 = 1024;
const RT_PARTITIONS: i32 = 8;
/// Records per partition for the `mephisto-group` round trip: each timed `commit()` needs one
/// fresh acked offset per partition (the tracker records what it committed, so a commit of
/// nothing new is no round trip). Enough for a 0.5 s warm-up and 3 s measurement at 60 µs
/// per commit.
const RT_RECORDS: i64 = 60_000;
const GROUP_ID: &str = "bench-group";
/// The round-trip groups.
const MEPHISTO_GROUP: &str = "offset-commit-mephisto";
/// A member id as a broker hands them out (client id and a UUID).
const MEMBER_ID: &str = "mephisto-1c9f4a52-0d6e-4b7a-9f3e-2a8b7c6d5e4f";

/// A commit policy that never commits on its own (the benches decide when).
fn manual_commit() -> CommitConfig {
    CommitConfig {
        interval: Duration::from_secs(24 * 3600),
        every: u64::MAX,
        ..CommitConfig::default()
    }
}

fn partitions(count: i32) -> Vec<TopicPartition> {
    // 100 partitions per topic, as many topics as needed.
    (0..count)
        .map(|i| TopicPartition::new(format!("events-{:02}", i / 100), i % 100))
        .collect()
}

/// A tracker owning `tps` from offset 0, `per_partition` offsets delivered to each.
fn delivered_tracker(
    config: CommitConfig,
    tps: &[TopicPartition],
    per_partition: i64,
    now: Instant,
) -> OffsetTracker {
    let mut tracker = OffsetTracker::new(config, now);
    for tp in tps {
        tracker.assign(tp.clone(), 0);
    }
    for offset in 0..per_partition {
        for tp in tps {
            tracker.delivered(tp, offset).unwrap();
        }
    }
    tracker
}

/// Small deterministic generator for the shuffle (no `rand` dependency).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn bench_acks(c: &mut Criterion) {
    let tps = partitions(ACK_PARTITIONS);
    let now = Instant::now();
    let tracker = delivered_tracker(manual_commit(), &tps, ACKS_PER_PARTITION, now);
    let in_order: Vec<(usize, i64)> = (0..ACKS_PER_PARTITION)
        .flat_map(|offset| (0..tps.len()).map(move |p| (p, offset)))
        .collect();
    let mut shuffled = in_order.clone();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..shuffled.len()).rev() {
        let j = (xorshift(&mut state) % (i as u64 + 1)) as usize;
        shuffled.swap(i, j);
    }
    // The engine's path: each record carries its partition's handle (taken once per fetched
    // batch), so an ack is `acked_at(handle, offset)`. Clones of the tracker keep the slots,
    // so the handles stay valid in every clone.
    let handles: Vec<PartitionHandle> = tps
        .iter()
        .map(|tp| tracker.partition_handle(tp).expect("assigned"))
        .collect();
    let mut group = c.benchmark_group("offset_commit/acks");
    group.throughput(Throughput::Elements(in_order.len() as u64));
    for (name, order) in [("in-order", &in_order), ("shuffled", &shuffled)] {
        let by_handle: Vec<(PartitionHandle, i64)> =
            order.iter().map(|(p, o)| (handles[*p], *o)).collect();
        // Every ack is new, and all of them commit everything, on both paths.
        let mut check = tracker.clone();
        for (h, offset) in &by_handle {
            assert!(check.acked_at(*h, *offset).unwrap());
        }
        let mut check_by_name = tracker.clone();
        for (p, offset) in order {
            assert!(check_by_name.acked(&tps[*p], *offset).unwrap());
        }
        for tp in &tps {
            assert_eq!(check.committable(tp), Some(ACKS_PER_PARTITION));
            assert_eq!(check_by_name.committable(tp), Some(ACKS_PER_PARTITION));
        }
        group.bench_function(name, |b| {
            b.iter_batched(
                || tracker.clone(),
                |mut t| {
                    for (h, offset) in &by_handle {
                        black_box(t.acked_at(*h, *offset).unwrap());
                    }
                    t
                },
                BatchSize::LargeInput,
            )
        });
        group.bench_function(format!("by-name/{name}"), |b| {
            b.iter_batched(
                || tracker.clone(),
                |mut t| {
                    for (p, offset) in order {
                        black_box(t.acked(&tps[*p], *offset).unwrap());
                    }
                    t
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// The OffsetCommit request for `offsets`, built as the engine's `group::offsets::commit` does.
fn commit_request(
    group: &str,
    offsets: &BTreeMap<TopicPartition, i64>,
    generation: i32,
    member_id: &str,
) -> OffsetCommitRequest {
    let mut topics: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (tp, offset) in offsets {
        topics
            .entry(&tp.topic)
            .or_default()
            .push((tp.partition, *offset));
    }
    let mut r = OffsetCommitRequest::default();
    r.group_id = GroupId(s(group));
    r.generation_id_or_member_epoch = generation;
    r.member_id = s(member_id);
    r.topics = topics
        .iter()
        .map(|(name, parts)| {
            let mut t = OffsetCommitRequestTopic::default();
            t.name = TopicName(s(name));
            t.partitions = parts
                .iter()
                .map(|(partition, offset)| {
                    let mut p = OffsetCommitRequestPartition::default();
                    p.partition_index = *partition;
                    p.committed_offset = *offset;
                    p
                })
                .collect();
            t
        })
        .collect();
    r
}

fn encode(buf: &mut BytesMut, request: &OffsetCommitRequest, version: i16) {
    buf.clear();
    let client_id = StrBytes::from_static_str("mephisto");
    mephisto_wire::messages::encode_request_frame(
        buf,
        request,
        version,
        1,
        Some(&client_id),
        100 << 20,
    )
    .unwrap();
}

fn bench_encode(c: &mut Criterion) {
    let version = mephisto_wire::versions::supported(ApiKey::OffsetCommit)
        .expect("OffsetCommit supported")
        .max;
    let mut group = c.benchmark_group("offset_commit/encode");
    for count in [1, 100, 1000] {
        let tps = partitions(count);
        let now = Instant::now();
        // Due after any ack.
        let config = CommitConfig {
            every: 1,
            ..manual_commit()
        };
        let mut tracker = delivered_tracker(config, &tps, 10, now);
        for offset in 0..10 {
            for tp in &tps {
                tracker.acked(tp, offset).unwrap();
            }
        }
        let mut buf = BytesMut::with_capacity(64 << 10);
        let sample = tracker.clone().poll_commit(now).expect("a commit is due");
        assert_eq!(sample.offsets.len(), count as usize);
        let request = commit_request(GROUP_ID, &sample.offsets, 1, MEMBER_ID);
        encode(&mut buf, &request, version);
        eprintln!(
            "offset_commit/encode/{count}: OffsetCommit v{version}, frame {} bytes",
            buf.len()
        );
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(format!("poll-build-encode/{count}"), |b| {
            b.iter_batched(
                || tracker.clone(),
                |mut t| {
                    let commit = t.poll_commit(now).unwrap();
                    let request = commit_request(GROUP_ID, &commit.offsets, 1, MEMBER_ID);
                    encode(&mut buf, &request, version);
                    black_box(buf.len());
                    (t, commit, request)
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("encode-only/{count}"), |b| {
            b.iter(|| {
                encode(&mut buf, black_box(&request), version);
                black_box(buf.len())
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// Round trip against tansu.

/// Everything the round-trip benches need, set up once.
struct RoundTrip {
    group: GroupConsumer,
    /// The engine path: a cluster handle of its own, the coordinator, the member's ids.
    cluster: Cluster,
    coordinator: mephisto_engine::BrokerId,
    member: (String, i32),
    offsets: BTreeMap<TopicPartition, i64>,
    rdkafka: BaseConsumer,
    tpl: TopicPartitionList,
    // Last: killed after the clients are gone.
    _tansu: Tansu,
}

fn group_config(group: &str) -> GroupConfig {
    GroupConfig::new(group)
        .with_session_timeout(Duration::from_secs(6))
        .with_heartbeat_interval(Duration::from_millis(500))
        .with_max_poll_interval(Duration::from_secs(300))
        .with_commit(manual_commit())
        .with_fetcher(FetcherConfig::default().with_auto_offset_reset(OffsetReset::Earliest))
}

fn setup_round_trip(rt: &tokio::runtime::Runtime) -> Result<RoundTrip, BoxError> {
    let tansu = Tansu::start(rt, "offset-commit")?;
    let topic = format!("offset-commit-{}", std::process::id());
    let (group, cluster, coordinator, member, offsets) = rt.block_on(async {
        let cluster = Cluster::connect(ClientConfig::from_url(&tansu.url)?).await?;
        Admin::new(cluster.clone())
            .create_topic(NewTopic::new(&topic, RT_PARTITIONS, 1))
            .await?;
        // `RT_RECORDS` records per partition, for the group member to consume and ack one
        // offset per partition per commit.
        let started = Instant::now();
        let producer = Producer::new(cluster.clone(), ProducerConfig::default())?;
        let mut deliveries = Vec::new();
        for i in 0..RT_RECORDS {
            for p in 0..RT_PARTITIONS {
                let record = ProducerRecord::new(topic.as_str())
                    .partition(p)
                    .value(format!("{i}"));
                deliveries.push(producer.enqueue(record).await?);
            }
            if deliveries.len() >= 50_000 {
                for d in deliveries.drain(..) {
                    d.await?;
                }
            }
        }
        producer.flush().await;
        for d in deliveries {
            d.await?;
        }
        eprintln!(
            "offset_commit/round-trip: produced {} records in {:.1} s",
            RT_RECORDS * i64::from(RT_PARTITIONS),
            started.elapsed().as_secs_f64()
        );
        let coordinator = cluster.topic(&topic).await?.partitions[0]
            .leader
            .ok_or("no leader")?;

        let group = GroupConsumer::connect(
            ClientConfig::from_url(&tansu.url)?,
            group_config(MEPHISTO_GROUP),
        )
        .await?;
        group.subscribe([topic.as_str()]);
        let started = Instant::now();
        let mut offsets = BTreeMap::new();
        let mut delivered = 0i64;
        // Consume everything; ack offset 0 of each partition only.
        while delivered < RT_RECORDS * i64::from(RT_PARTITIONS) {
            let r = tokio::time::timeout(Duration::from_secs(30), group.next())
                .await
                .map_err(|_| "no records within 30 s")??;
            delivered += 1;
            if r.offset == 0 {
                group.ack_record(&r)?;
                offsets.insert(
                    TopicPartition::new(Arc::clone(&r.topic), r.partition),
                    r.offset + 1,
                );
            }
        }
        eprintln!(
            "offset_commit/round-trip: Mephisto joined and consumed {delivered} records in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        group.commit().await?;
        let member = group.generation().ok_or("not joined")?;
        Ok::<_, BoxError>((group, cluster, coordinator, member, offsets))
    })?;
    // `commit()` records what it committed: a commit of nothing new is no round trip, so each
    // timed commit must ack fresh offsets first.
    for (tp, offset) in &offsets {
        if group.committed(&tp.topic, tp.partition) != Some(*offset) {
            return Err(format!(
                "commit() did not record offset {offset} of {tp}: {:?}",
                group.committed(&tp.topic, tp.partition)
            )
            .into());
        }
    }

    let rdkafka: BaseConsumer = RdConfig::new()
        .set("bootstrap.servers", &tansu.bootstrap)
        .set("client.id", "rdkafka-bench")
        .set("group.id", "offset-commit-rdkafka")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    rdkafka.subscribe(&[topic.as_str()])?;
    let started = Instant::now();
    while rdkafka.assignment()?.count() < RT_PARTITIONS as usize {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("rdkafka was not assigned within 30 s".into());
        }
        if let Some(Err(e)) = rdkafka.poll(Duration::from_millis(100)) {
            eprintln!("rdkafka: {e}");
        }
    }
    eprintln!(
        "offset_commit/round-trip: rdkafka joined in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut tpl = TopicPartitionList::new();
    for (tp, offset) in &offsets {
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))?;
    }
    rdkafka.commit(&tpl, CommitMode::Sync)?;
    Ok(RoundTrip {
        group,
        cluster,
        coordinator,
        member,
        offsets,
        rdkafka,
        tpl,
        _tansu: tansu,
    })
}

/// The engine's lowest path: OffsetCommit on the coordinator's `Group` connection, with the
/// joined member's id and generation; fails on any error code.
async fn cluster_commit(rt: &RoundTrip) -> Result<i16, BoxError> {
    let (member_id, generation) = &rt.member;
    let response = rt
        .cluster
        .send(rt.coordinator, Purpose::Group, |_version| {
            commit_request(MEPHISTO_GROUP, &rt.offsets, *generation, member_id)
        })
        .await?;
    for t in &response.body.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                return Err(
                    format!("partition {} error {}", p.partition_index, p.error_code).into(),
                );
            }
        }
    }
    Ok(response.version)
}

fn bench_round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let setup = match setup_round_trip(&rt) {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("offset_commit/round-trip skipped: {e}");
            return;
        }
    };
    let version = rt.block_on(cluster_commit(&setup)).expect("engine commit");
    eprintln!("offset_commit/round-trip: OffsetCommit v{version} against tansu");
    let mut group = c.benchmark_group("offset_commit/round-trip");
    group.throughput(Throughput::Elements(1));
    // Bounded, so that `RT_RECORDS` fresh offsets per partition are enough.
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    // The next offset to ack per partition (offset 0 was acked and committed in the setup).
    let mut next = 1i64;
    group.bench_function("mephisto-group/8", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                assert!(
                    next < RT_RECORDS,
                    "out of fresh offsets: raise RT_RECORDS ({RT_RECORDS})"
                );
                for tp in setup.offsets.keys() {
                    assert!(setup.group.ack(&tp.topic, tp.partition, next).expect("ack"));
                }
                next += 1;
                let start = Instant::now();
                rt.block_on(setup.group.commit()).expect("commit");
                total += start.elapsed();
            }
            total
        })
    });
    eprintln!(
        "offset_commit/round-trip: mephisto-group committed {} times",
        next - 1
    );
    if let Some((tp, _)) = setup.offsets.first_key_value() {
        assert_eq!(setup.group.committed(&tp.topic, tp.partition), Some(next));
    }
    group.bench_function("mephisto-cluster/8", |b| {
        b.iter(|| rt.block_on(cluster_commit(&setup)).expect("commit"))
    });
    group.bench_function("rdkafka/8", |b| {
        b.iter(|| {
            setup
                .rdkafka
                .commit(&setup.tpl, CommitMode::Sync)
                .expect("commit")
        })
    });
    group.finish();
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), setup.group.close()).await;
    });
    drop(setup);
}

criterion_group!(benches, bench_acks, bench_encode, bench_round_trip);
criterion_main!(benches);
