//! The development broker (`mephisto_dev_broker`) against the engine's own clients and
//! against raw requests: topics, idempotent produce with every codec read back exactly once,
//! auto-creation, long polling, out-of-range and retention, ListOffsets, the group coordinator
//! (rebalances on join, leave and session expiry, MEMBER_ID_REQUIRED, static members), commits,
//! and malformed input. Every broker is in-process on 127.0.0.1:0.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiVersionsRequest, DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, MetadataRequest,
    OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use mephisto_dev_broker::{DevBroker, DevBrokerConfig};
use mephisto_engine::fetcher::{
    FetchPosition, Fetcher, FetcherConfig, OffsetReset, TopicPartition,
};
use mephisto_engine::group::{AssignorKind, GroupConfig, GroupConsumer};
use mephisto_engine::producer::{Compression, Producer, ProducerConfig, ProducerRecord};
use mephisto_engine::{Admin, ClientConfig, Cluster, NewTopic, OffsetSpec};
use mephisto_test_support::wait_until_async;
use mephisto_wire::messages::{decode_response, encode_request_frame};
use mephisto_wire::record::{BatchEncoder, BatchSpec, NewRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn broker_with(config: DevBrokerConfig) -> DevBroker {
    DevBroker::start(config).await.expect("dev broker starts")
}

async fn broker() -> DevBroker {
    broker_with(DevBrokerConfig::default()).await
}

fn client_config(broker: &DevBroker) -> ClientConfig {
    ClientConfig::from_url(&broker.url())
        .expect("url")
        .with_client_id("dev-broker-tests")
        .with_request_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(5))
        .with_api_timeout(Duration::from_secs(20))
}

async fn cluster(broker: &DevBroker) -> Cluster {
    Cluster::connect(client_config(broker))
        .await
        .expect("connect")
}

async fn create(cluster: &Cluster, name: &str, partitions: i32) {
    Admin::new(cluster.clone())
        .create_topic(NewTopic::new(name, partitions, 1))
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// Reads `want` records from `topic` (all partitions from the start), as (partition, offset,
/// value).
async fn read_all(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    want: usize,
) -> Vec<(i32, i64, Vec<u8>)> {
    let fetcher = Fetcher::new(cluster.clone(), FetcherConfig::default()).expect("fetcher");
    for p in 0..partitions {
        fetcher
            .assign(TopicPartition::new(topic, p), FetchPosition::Earliest)
            .expect("assign");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, fetcher.next_batch()).await {
            Ok(Ok(batch)) => {
                for r in batch.records().expect("records") {
                    let r = r.expect("record");
                    got.push((
                        batch.partition,
                        r.offset(),
                        r.value().unwrap_or_default().to_vec(),
                    ));
                }
            }
            Ok(Err(e)) => panic!("fetch: {e}"),
            Err(_) => break,
        }
    }
    fetcher.close();
    got
}

/// Partition 0's offset for `spec`.
async fn offset(admin: &Admin, topic: &str, spec: OffsetSpec) -> i64 {
    admin
        .list_offset(topic, 0, spec)
        .await
        .expect("list offsets")
        .offset
        .expect("an offset")
}

// ---------------------------------------------------------------------------------------------
// A raw client: one connection, requests encoded by hand.

struct Raw {
    stream: TcpStream,
    next_id: i32,
}

impl Raw {
    async fn connect(broker: &DevBroker) -> Raw {
        Raw {
            stream: TcpStream::connect(broker.local_addr())
                .await
                .expect("connect"),
            next_id: 1,
        }
    }

    async fn send_only<R: Request>(&mut self, request: &R, version: i16) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        let mut buf = BytesMut::new();
        encode_request_frame(
            &mut buf,
            request,
            version,
            id,
            Some(&StrBytes::from_static_str("raw")),
            usize::MAX,
        )
        .expect("encode");
        self.stream.write_all(&buf).await.expect("write");
        id
    }

    async fn recv<R: Request>(&mut self, version: i16) -> R::Response {
        let mut size = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(30), self.stream.read_exact(&mut size))
            .await
            .expect("response in time")
            .expect("read size");
        let mut payload = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream
            .read_exact(&mut payload)
            .await
            .expect("read payload");
        decode_response::<R>(Bytes::from(payload), version)
            .expect("decode response")
            .body
    }

    async fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        self.send_only(request, version).await;
        self.recv::<R>(version).await
    }

    /// Whether the broker closed the connection (read returns EOF) within `within`.
    async fn closed(&mut self, within: Duration) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(within, self.stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn join(
    group: &str,
    member: &str,
    instance: Option<&str>,
    session_ms: i32,
    metadata: &'static [u8],
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(metadata))])
}

fn sync(
    group: &str,
    member: &str,
    instance: Option<&str>,
    generation: i32,
    assignments: Vec<(&str, &'static [u8])>,
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from_static(a))
                })
                .collect(),
        )
}

fn heartbeat(
    group: &str,
    member: &str,
    instance: Option<&str>,
    generation: i32,
) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
}

// ---------------------------------------------------------------------------------------------
// Topics, produce, fetch.

#[tokio::test]
async fn topics_are_created_listed_and_deleted() {
    let broker = broker().await;
    let cluster = cluster(&broker).await;
    let admin = Admin::new(cluster.clone());
    create(&cluster, "alpha", 3).await;
    create(&cluster, "beta", 1).await;
    let again = admin.create_topic(NewTopic::new("alpha", 3, 1)).await;
    assert!(
        again
            .as_ref()
            .is_err_and(mephisto_engine::admin::is_topic_already_exists),
        "{again:?}"
    );
    let bad_rf = admin.create_topic(NewTopic::new("gamma", 1, 3)).await;
    assert!(
        bad_rf.is_err(),
        "replication factor 3 on one broker: {bad_rf:?}"
    );
    let names: BTreeSet<String> = admin
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        names.contains("alpha") && names.contains("beta"),
        "{names:?}"
    );
    assert_eq!(
        cluster
            .topic("alpha")
            .await
            .expect("alpha")
            .partitions
            .len(),
        3
    );
    admin.delete_topic("alpha").await.expect("delete");
    let names: BTreeSet<String> = admin
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        !names.contains("alpha") && names.contains("beta"),
        "{names:?}"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn idempotent_producer_every_codec_ten_thousand_records_read_back_once_in_order() {
    let broker = broker().await;
    let cluster = cluster(&broker).await;
    let started = Instant::now();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("codec-{}", codec.name());
        create(&cluster, &topic, 3).await;
        let producer = Producer::new(
            cluster.clone(),
            ProducerConfig {
                idempotence: Some(true),
                compression: codec,
                ..ProducerConfig::default()
            },
        )
        .expect("producer");
        let mut deliveries = Vec::with_capacity(10_000);
        for i in 0..10_000usize {
            let record = ProducerRecord::new(topic.as_str())
                .key(format!("k{}", i % 97))
                .value(format!("v-{i}"));
            deliveries.push(producer.enqueue(record).await.expect("enqueue"));
        }
        producer.flush().await;
        for d in deliveries {
            d.await.expect("delivered");
        }
        producer.close().await;

        let got = read_all(&cluster, &topic, 3, 10_000).await;
        assert_eq!(got.len(), 10_000, "{}: every record read", codec.name());
        let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        let mut values = BTreeSet::new();
        for (p, offset, value) in &got {
            per_partition.entry(*p).or_default().push(*offset);
            assert!(
                values.insert(value.clone()),
                "{}: duplicate {value:?}",
                codec.name()
            );
        }
        for (p, offsets) in per_partition {
            let expected: Vec<i64> = (0..offsets.len() as i64).collect();
            assert_eq!(
                offsets,
                expected,
                "{}: partition {p} in order from 0",
                codec.name()
            );
        }
    }
    eprintln!(
        "5 codecs x 10000 records produced and read in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn metadata_auto_creates_topics_with_the_default_partition_count() {
    let broker = broker_with(DevBrokerConfig {
        default_partitions: 4,
        ..DevBrokerConfig::default()
    })
    .await;
    let mut raw = Raw::connect(&broker).await;
    let ask = |name: &str, auto: bool| {
        MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(s(name))))
            ]))
            .with_allow_auto_topic_creation(auto)
    };
    // The engine's own Cluster never asks for auto-creation: an unknown topic stays unknown.
    let response = raw.call(&ask("auto-made", false), 12).await;
    assert_eq!(
        response.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    // librdkafka and kafka-python do ask.
    let response = raw.call(&ask("auto-made", true), 12).await;
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[0].partitions.len(), 4);
    assert!(!response.topics[0].topic_id.is_nil());
    let response = raw.call(&ask("bad/name", true), 12).await;
    assert_eq!(
        response.topics[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
    // v0-v3 (no flag: always auto-create).
    let response = raw.call(&ask("auto-old", true), 3).await;
    assert_eq!(response.topics[0].error_code, 0);
    let cluster = cluster(&broker).await;
    assert_eq!(
        cluster
            .topic("auto-made")
            .await
            .expect("topic")
            .partitions
            .len(),
        4
    );
    assert_eq!(
        cluster
            .topic("auto-old")
            .await
            .expect("topic")
            .partitions
            .len(),
        4
    );
}

#[tokio::test]
async fn fetch_long_poll_is_woken_by_produce() {
    let broker = broker().await;
    let cluster = cluster(&broker).await;
    create(&cluster, "poll", 1).await;
    let fetcher = Fetcher::new(
        cluster.clone(),
        FetcherConfig::default().with_max_wait(Duration::from_secs(20)),
    )
    .expect("fetcher");
    fetcher
        .assign(TopicPartition::new("poll", 0), FetchPosition::Offset(0))
        .expect("assign");
    // Let the fetcher park its long poll first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).expect("producer");
    let sent = Instant::now();
    producer
        .send(ProducerRecord::new("poll").partition(0).value("wake"))
        .await
        .expect("delivered");
    let batch = tokio::time::timeout(Duration::from_secs(10), fetcher.next_batch())
        .await
        .expect("a batch before the timeout")
        .expect("batch");
    let waited = sent.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "woken after {waited:?}, not at max_wait"
    );
    assert_eq!(batch.batch.record_count(), 1);
    eprintln!("long poll answered {waited:?} after the produce");
}

#[tokio::test]
async fn retention_moves_the_log_start_and_out_of_range_fetches_are_refused() {
    let broker = broker_with(DevBrokerConfig {
        retention_bytes: 4096,
        ..DevBrokerConfig::default()
    })
    .await;
    let cluster = cluster(&broker).await;
    create(&cluster, "small", 1).await;
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).expect("producer");
    for i in 0..200 {
        producer
            .send(
                ProducerRecord::new("small")
                    .partition(0)
                    .value(format!("record-{i:04}-{}", "x".repeat(40))),
            )
            .await
            .expect("delivered");
    }
    let admin = Admin::new(cluster.clone());
    let earliest = offset(&admin, "small", OffsetSpec::Earliest).await;
    let latest = offset(&admin, "small", OffsetSpec::Latest).await;
    assert_eq!(latest, 200);
    assert!(earliest > 100, "the log start moved up: {earliest}");

    // Raw fetches below the log start and beyond the end.
    let mut raw = Raw::connect(&broker).await;
    for offset in [0, earliest - 1, latest + 1] {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(s("small")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let response = raw.call(&request, 12).await;
        let p = &response.responses[0].partitions[0];
        assert_eq!(
            p.error_code,
            ResponseError::OffsetOutOfRange.code(),
            "offset {offset}"
        );
        assert_eq!(p.log_start_offset, earliest);
        assert_eq!(p.high_watermark, latest);
    }
    // At the log start there is data.
    let got = read_all(&cluster, "small", 1, (latest - earliest) as usize).await;
    assert_eq!(got.first().map(|g| g.1), Some(earliest));
    assert_eq!(got.last().map(|g| g.1), Some(latest - 1));
}

#[tokio::test]
async fn list_offsets_latest_is_the_high_watermark_with_multi_record_batches() {
    let broker = broker().await;
    let cluster = cluster(&broker).await;
    create(&cluster, "multi", 1).await;
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig {
            linger: Duration::from_millis(50),
            ..ProducerConfig::default()
        },
    )
    .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..500 {
        let record = ProducerRecord::new("multi")
            .partition(0)
            .value(format!("m{i}"))
            .timestamp(1_000_000 + i);
        deliveries.push(producer.enqueue(record).await.expect("enqueue"));
    }
    producer.flush().await;
    for d in deliveries {
        d.await.expect("delivered");
    }
    let admin = Admin::new(cluster.clone());
    assert_eq!(offset(&admin, "multi", OffsetSpec::Latest).await, 500);
    assert_eq!(offset(&admin, "multi", OffsetSpec::Earliest).await, 0);
    // By timestamp: the record written at 1_000_000 + 123 is offset 123.
    assert_eq!(
        offset(&admin, "multi", OffsetSpec::Timestamp(1_000_123)).await,
        123
    );
    let fetcher = Fetcher::new(cluster.clone(), FetcherConfig::default()).expect("fetcher");
    fetcher
        .assign(TopicPartition::new("multi", 0), FetchPosition::Offset(0))
        .expect("assign");
    let batch = fetcher.next_batch().await.expect("batch");
    assert_eq!(batch.high_watermark, 500);
    assert!(batch.batch.record_count() > 1, "multi-record batches");
}

// ---------------------------------------------------------------------------------------------
// Groups.

fn group_config(group: &str) -> GroupConfig {
    GroupConfig::new(group)
        .with_assignor(AssignorKind::Range)
        .with_session_timeout(Duration::from_secs(6))
        .with_heartbeat_interval(Duration::from_millis(300))
        .with_max_poll_interval(Duration::from_secs(30))
        .with_fetcher(FetcherConfig::default().with_auto_offset_reset(OffsetReset::Earliest))
}

/// Polls `next()` in the background so the member keeps its poll interval.
fn keep_polling(member: Arc<GroupConsumer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(r) = member.next().await {
            let _ = member.ack(&r.topic, r.partition, r.offset);
        }
    })
}

#[tokio::test]
async fn two_group_consumers_split_partitions_and_the_survivor_takes_all() {
    let broker = broker().await;
    let cluster = cluster(&broker).await;
    create(&cluster, "shared", 4).await;
    let a = Arc::new(
        GroupConsumer::connect(client_config(&broker), group_config("g-split"))
            .await
            .expect("a"),
    );
    let b = Arc::new(
        GroupConsumer::connect(client_config(&broker), group_config("g-split"))
            .await
            .expect("b"),
    );
    a.subscribe(["shared"]);
    b.subscribe(["shared"]);
    let pa = keep_polling(Arc::clone(&a));
    let pb = keep_polling(Arc::clone(&b));
    let started = Instant::now();
    wait_until_async("split 2/2", Duration::from_secs(20), || {
        a.assignment().len() == 2 && b.assignment().len() == 2
    })
    .await;
    let union: BTreeSet<_> = a.assignment().union(&b.assignment()).cloned().collect();
    assert_eq!(union.len(), 4);
    let (_, generation) = a.generation().expect("a joined");
    eprintln!(
        "two members balanced after {:?} (generation {generation})",
        started.elapsed()
    );

    b.close().await.expect("b leaves");
    pb.abort();
    let left = Instant::now();
    wait_until_async("survivor owns all", Duration::from_secs(20), || {
        a.assignment().len() == 4
    })
    .await;
    let (_, after) = a.generation().expect("a joined");
    assert!(after > generation, "generation {generation} -> {after}");
    eprintln!(
        "survivor took all partitions {:?} after the leave",
        left.elapsed()
    );
    a.close().await.expect("close");
    pa.abort();
}

#[tokio::test]
async fn member_id_required_then_join_succeeds() {
    let broker = broker().await;
    let mut raw = Raw::connect(&broker).await;
    let first = raw.call(&join("g-mir", "", None, 10_000, b"m"), 5).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    assert!(!first.member_id.is_empty());
    let second = raw
        .call(&join("g-mir", &first.member_id, None, 10_000, b"m"), 5)
        .await;
    assert_eq!(second.error_code, 0);
    assert_eq!(second.generation_id, 1);
    assert_eq!(second.leader, first.member_id);
    assert_eq!(second.members.len(), 1);
    // Old versions join at once.
    let old = raw.call(&join("g-mir-v3", "", None, 10_000, b"m"), 3).await;
    assert_eq!(old.error_code, 0);
    assert_eq!(old.generation_id, 1);
}

#[tokio::test]
async fn the_initial_rebalance_delay_gathers_the_first_members_into_one_generation() {
    let broker = broker_with(DevBrokerConfig {
        initial_rebalance_delay: Duration::from_millis(600),
        ..DevBrokerConfig::default()
    })
    .await;
    let mut a = Raw::connect(&broker).await;
    let mut b = Raw::connect(&broker).await;
    let started = Instant::now();
    a.send_only(&join("g-delay", "", None, 10_000, b"a"), 3)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // B joins within A's delay: the delay starts again (Kafka's InitialDelayedJoin), and both
    // are in generation 1.
    b.send_only(&join("g-delay", "", None, 10_000, b"b"), 3)
        .await;
    let join_a = a.recv::<JoinGroupRequest>(3).await;
    let join_b = b.recv::<JoinGroupRequest>(3).await;
    let waited = started.elapsed();
    assert_eq!((join_a.error_code, join_b.error_code), (0, 0));
    assert_eq!((join_a.generation_id, join_b.generation_id), (1, 1));
    assert_eq!(join_a.leader, join_a.member_id, "the first joiner leads");
    assert_eq!(join_a.members.len(), 2);
    assert!(
        waited >= Duration::from_millis(1100),
        "joined after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "joined after {waited:?}");
    // A rejoin of the settled group is not delayed.
    let mut c = Raw::connect(&broker).await;
    let started = Instant::now();
    let join_c = c.call(&join("g-delay-2", "", None, 10_000, b"c"), 3).await;
    assert_eq!((join_c.error_code, join_c.generation_id), (0, 1));
    assert!(started.elapsed() >= Duration::from_millis(600));
    let sync_c = c
        .call(&sync("g-delay-2", &join_c.member_id, None, 1, vec![]), 3)
        .await;
    assert_eq!(sync_c.error_code, 0);
    let started = Instant::now();
    let again = c
        .call(
            &join("g-delay-2", &join_c.member_id, None, 10_000, b"c2"),
            3,
        )
        .await;
    assert_eq!((again.error_code, again.generation_id), (0, 2));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_member_that_stops_heartbeating_is_expired_and_the_group_rebalances() {
    let broker = broker().await;
    let mut a = Raw::connect(&broker).await;
    let join_a = a.call(&join("g-exp", "", None, 600, b"a"), 3).await;
    assert_eq!((join_a.error_code, join_a.generation_id), (0, 1));
    let sync_a = a
        .call(
            &sync(
                "g-exp",
                &join_a.member_id,
                None,
                1,
                vec![(&join_a.member_id, b"all")],
            ),
            3,
        )
        .await;
    assert_eq!(sync_a.error_code, 0);
    assert_eq!(&sync_a.assignment[..], b"all");
    // B joins; A never heartbeats or rejoins again, so only its session expiry ends the join
    // phase (the rebalance timeout is 30 s).
    let mut b = Raw::connect(&broker).await;
    let started = Instant::now();
    let join_b = b.call(&join("g-exp", "", None, 10_000, b"b"), 3).await;
    let waited = started.elapsed();
    assert_eq!(join_b.error_code, 0);
    assert_eq!(join_b.generation_id, 2, "a new generation without A");
    assert_eq!(join_b.leader, join_b.member_id, "B leads");
    assert_eq!(join_b.members.len(), 1);
    assert!(waited < Duration::from_secs(5), "expiry took {waited:?}");
    // A is gone.
    let hb = a
        .call(&heartbeat("g-exp", &join_a.member_id, None, 1), 3)
        .await;
    assert_eq!(hb.error_code, ResponseError::UnknownMemberId.code());
    eprintln!("session expiry rebalanced after {waited:?}");
}

#[tokio::test]
async fn heartbeat_errors_follow_the_generation_and_rebalances() {
    let broker = broker().await;
    let mut a = Raw::connect(&broker).await;
    let ja = a.call(&join("g-hb", "", None, 10_000, b"a"), 3).await;
    a.call(&sync("g-hb", &ja.member_id, None, 1, vec![]), 3)
        .await;
    assert_eq!(
        a.call(&heartbeat("g-hb", &ja.member_id, None, 1), 3)
            .await
            .error_code,
        0
    );
    assert_eq!(
        a.call(&heartbeat("g-hb", &ja.member_id, None, 7), 3)
            .await
            .error_code,
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        a.call(&heartbeat("g-hb", "nobody", None, 1), 3)
            .await
            .error_code,
        ResponseError::UnknownMemberId.code()
    );
    // B's join puts the group in PreparingRebalance: A hears it on its heartbeat.
    let mut b = Raw::connect(&broker).await;
    b.send_only(&join("g-hb", "", None, 10_000, b"b"), 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        a.call(&heartbeat("g-hb", &ja.member_id, None, 1), 3)
            .await
            .error_code,
        ResponseError::RebalanceInProgress.code()
    );
    // A rejoins: both get generation 2, A (first joiner) leads with both members.
    let ja2 = a
        .call(&join("g-hb", &ja.member_id, None, 10_000, b"a"), 3)
        .await;
    let jb = b.recv::<JoinGroupRequest>(3).await;
    assert_eq!((ja2.generation_id, jb.generation_id), (2, 2));
    assert_eq!(ja2.leader, ja.member_id);
    assert_eq!(ja2.members.len(), 2);
    assert!(jb.members.is_empty());
    // B's sync waits for the leader's.
    b.send_only(&sync("g-hb", &jb.member_id, None, 2, vec![]), 3)
        .await;
    let sa = a
        .call(
            &sync(
                "g-hb",
                &ja.member_id,
                None,
                2,
                vec![(&ja.member_id, b"x"), (&jb.member_id, b"y")],
            ),
            3,
        )
        .await;
    let sb = b.recv::<SyncGroupRequest>(3).await;
    assert_eq!(
        (&sa.assignment[..], &sb.assignment[..]),
        (&b"x"[..], &b"y"[..])
    );
    // B leaves: A hears of the rebalance and rejoins alone into generation 3.
    let leave = b
        .call(
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("g-hb")))
                .with_member_id(jb.member_id.clone()),
            1,
        )
        .await;
    assert_eq!(leave.error_code, 0);
    assert_eq!(
        a.call(&heartbeat("g-hb", &ja.member_id, None, 2), 3)
            .await
            .error_code,
        ResponseError::RebalanceInProgress.code()
    );
    let ja3 = a
        .call(&join("g-hb", &ja.member_id, None, 10_000, b"a"), 3)
        .await;
    assert_eq!(
        (ja3.error_code, ja3.generation_id, ja3.members.len()),
        (0, 3, 1)
    );
}

#[tokio::test]
async fn a_static_member_rejoining_keeps_the_generation_and_fences_its_old_id() {
    let broker = broker().await;
    let mut a = Raw::connect(&broker).await;
    let ja = a
        .call(&join("g-static", "", Some("inst-a"), 10_000, b"a"), 5)
        .await;
    assert_eq!(
        ja.error_code, 0,
        "static members need no MEMBER_ID_REQUIRED round"
    );
    let mut b = Raw::connect(&broker).await;
    b.send_only(&join("g-static", "", Some("inst-b"), 10_000, b"b"), 5)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // B's join started a rebalance; A rejoins, then both are in generation 2.
    let ja2 = a
        .call(
            &join("g-static", &ja.member_id, Some("inst-a"), 10_000, b"a"),
            5,
        )
        .await;
    assert_eq!(ja2.generation_id, 2);
    let generation = ja2.generation_id;
    let jb0 = b.recv::<JoinGroupRequest>(5).await;
    assert_eq!(jb0.generation_id, generation);
    a.send_only(
        &sync(
            "g-static",
            &ja.member_id,
            Some("inst-a"),
            generation,
            vec![],
        ),
        5,
    )
    .await;
    let _ = a.recv::<SyncGroupRequest>(5).await;
    // B "restarts": a new connection joins with its instance id and no member id.
    let mut b2 = Raw::connect(&broker).await;
    let rejoin = b2
        .call(&join("g-static", "", Some("inst-b"), 10_000, b"b"), 5)
        .await;
    assert_eq!(rejoin.error_code, 0);
    assert_eq!(rejoin.generation_id, generation, "no new generation");
    assert_ne!(rejoin.member_id, jb0.member_id);
    // The old member id is fenced, the new one heartbeats fine, and A saw no rebalance.
    let old = b
        .call(
            &heartbeat("g-static", &jb0.member_id, Some("inst-b"), generation),
            3,
        )
        .await;
    assert_eq!(old.error_code, ResponseError::FencedInstanceId.code());
    let new = b2
        .call(
            &heartbeat("g-static", &rejoin.member_id, Some("inst-b"), generation),
            3,
        )
        .await;
    assert_eq!(new.error_code, 0);
    let hb_a = a
        .call(
            &heartbeat("g-static", &ja.member_id, Some("inst-a"), generation),
            3,
        )
        .await;
    assert_eq!(hb_a.error_code, 0);
}

#[tokio::test]
async fn commits_round_trip_through_offset_fetch() {
    let broker = broker().await;
    let cluster = cluster(&broker).await;
    create(&cluster, "committed", 2).await;
    let mut raw = Raw::connect(&broker).await;
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g-commit")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("committed")))
            .with_partitions(vec![
                OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(42)
                    .with_committed_metadata(Some(s("meta"))),
                OffsetCommitRequestPartition::default()
                    .with_partition_index(9)
                    .with_committed_offset(1),
            ])]);
    let response = raw.call(&commit, 8).await;
    let codes: Vec<i16> = response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![0, ResponseError::UnknownTopicOrPartition.code()]
    );

    // v7: listed partitions, -1 when none.
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("g-commit")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s("committed")))
            .with_partition_indexes(vec![0, 1])]));
    let response = raw.call(&fetch, 7).await;
    let got: Vec<(i32, i64)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(got, vec![(0, 42), (1, -1)]);
    assert_eq!(
        response.topics[0].partitions[0].metadata.as_deref(),
        Some("meta")
    );
    // v8: batched groups, all partitions.
    let fetch = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s("g-commit")))
        .with_topics(None)]);
    let response = raw.call(&fetch, 8).await;
    let group = &response.groups[0];
    assert_eq!(group.topics.len(), 1);
    assert_eq!(group.topics[0].partitions[0].committed_offset, 42);

    // A member's commit with a stale generation is refused.
    let ja = raw.call(&join("g-commit", "", None, 10_000, b"m"), 3).await;
    let stale = commit
        .clone()
        .with_generation_id_or_member_epoch(ja.generation_id + 5)
        .with_member_id(ja.member_id.clone());
    let response = raw.call(&stale, 8).await;
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        ResponseError::IllegalGeneration.code()
    );
    // And a simple commit into a group with members too.
    let response = raw.call(&commit, 8).await;
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        ResponseError::UnknownMemberId.code()
    );
}

#[tokio::test]
async fn group_consumer_commits_are_seen_by_offset_fetch_and_resumed() {
    let broker = broker().await;
    let cluster = cluster(&broker).await;
    create(&cluster, "resume", 2).await;
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).expect("producer");
    for i in 0..50 {
        producer
            .send(
                ProducerRecord::new("resume")
                    .partition(i % 2)
                    .value(format!("r{i}")),
            )
            .await
            .expect("delivered");
    }
    let first = GroupConsumer::connect(client_config(&broker), group_config("g-resume"))
        .await
        .expect("consumer");
    first.subscribe(["resume"]);
    for _ in 0..50 {
        let r = tokio::time::timeout(Duration::from_secs(20), first.next())
            .await
            .expect("in time")
            .expect("record");
        first.ack(&r.topic, r.partition, r.offset).expect("ack");
    }
    first.commit().await.expect("commit");
    first.close().await.expect("close");
    let mut raw = Raw::connect(&broker).await;
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("g-resume")))
        .with_topics(None);
    let response = raw.call(&fetch, 7).await;
    let committed: BTreeMap<i32, i64> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(committed, BTreeMap::from([(0, 25), (1, 25)]));
}

// ---------------------------------------------------------------------------------------------
// Bad input.

#[tokio::test]
async fn api_versions_above_ours_gets_the_v0_fallback() {
    let broker = broker().await;
    let mut raw = Raw::connect(&broker).await;
    // v4 is ours; claim v9 by hand: header v2 + an empty v3-style body.
    let mut frame = BytesMut::new();
    let payload: Vec<u8> = [
        &18i16.to_be_bytes()[..],
        &9i16.to_be_bytes(),
        &77i32.to_be_bytes(),
        &3i16.to_be_bytes(),
        b"raw",
        &[0u8], // header tagged fields
        &[1u8, 1, 0],
    ]
    .concat();
    frame.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    frame.extend_from_slice(&payload);
    raw.stream.write_all(&frame).await.expect("write");
    let response = raw.recv::<ApiVersionsRequest>(0).await;
    assert_eq!(
        response.error_code,
        ResponseError::UnsupportedVersion.code()
    );
    let entry = response
        .api_keys
        .iter()
        .find(|k| k.api_key == 18)
        .expect("ApiVersions listed");
    assert_eq!(entry.max_version, 4);
}

#[tokio::test]
async fn malformed_requests_close_the_connection_and_others_are_still_served() {
    let broker = broker_with(DevBrokerConfig {
        max_request_bytes: 1 << 20,
        ..DevBrokerConfig::default()
    })
    .await;
    let cluster = cluster(&broker).await;
    // Garbage after a valid size prefix.
    let mut raw = Raw::connect(&broker).await;
    raw.stream
        .write_all(&[0, 0, 0, 6, 0xff, 0x13, 0, 1, 2, 3])
        .await
        .expect("write");
    assert!(
        raw.closed(Duration::from_secs(5)).await,
        "unknown API key closes"
    );
    // A huge size prefix.
    let mut raw = Raw::connect(&broker).await;
    raw.stream
        .write_all(&i32::MAX.to_be_bytes())
        .await
        .expect("write");
    assert!(
        raw.closed(Duration::from_secs(5)).await,
        "oversized frame closes"
    );
    // A negative one.
    let mut raw = Raw::connect(&broker).await;
    raw.stream
        .write_all(&(-5i32).to_be_bytes())
        .await
        .expect("write");
    assert!(
        raw.closed(Duration::from_secs(5)).await,
        "negative size closes"
    );
    // A valid header with a truncated JoinGroup body: an error response.
    let mut raw = Raw::connect(&broker).await;
    let payload: Vec<u8> = [
        &11i16.to_be_bytes()[..],
        &3i16.to_be_bytes(),
        &5i32.to_be_bytes(),
        &(-1i16).to_be_bytes(),
        &[0u8, 3, b'g'],
    ]
    .concat();
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    raw.stream.write_all(&frame).await.expect("write");
    let response = raw.recv::<JoinGroupRequest>(3).await;
    assert_eq!(response.error_code, ResponseError::InvalidRequest.code());
    // A truncated Produce body (no top-level error code): closed.
    let mut raw = Raw::connect(&broker).await;
    let payload: Vec<u8> = [
        &0i16.to_be_bytes()[..],
        &7i16.to_be_bytes(),
        &6i32.to_be_bytes(),
        &(-1i16).to_be_bytes(),
        &[0u8, 1],
    ]
    .concat();
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    raw.stream.write_all(&frame).await.expect("write");
    assert!(
        raw.closed(Duration::from_secs(5)).await,
        "undecodable Produce closes"
    );
    // The broker still serves everyone else.
    let admin = Admin::new(cluster.clone());
    admin
        .create_topic(NewTopic::new("after-garbage", 1, 1))
        .await
        .expect("still serving");
    let fresh = Cluster::connect(client_config(&broker))
        .await
        .expect("new clients connect");
    assert_eq!(
        fresh
            .topic("after-garbage")
            .await
            .expect("topic")
            .partitions
            .len(),
        1
    );
}

#[tokio::test]
async fn bytes_after_a_request_body_are_ignored_as_kafka_does() {
    let broker = broker().await;
    let mut raw = Raw::connect(&broker).await;
    // Metadata v12 with three bytes after the body, as librdkafka 2.12 sends it, then v4 with two.
    for (version, extra) in [(12i16, &[0u8, 0, 0][..]), (4, &[1, 2][..])] {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(s("trailing"))))
            ]))
            .with_allow_auto_topic_creation(true);
        let mut buf = BytesMut::new();
        encode_request_frame(
            &mut buf,
            &request,
            version,
            40 + i32::from(version),
            None,
            usize::MAX,
        )
        .expect("encode");
        buf.extend_from_slice(extra);
        let size = i32::try_from(buf.len() - 4).expect("small");
        buf[..4].copy_from_slice(&size.to_be_bytes());
        raw.stream.write_all(&buf).await.expect("write");
        let response = raw.recv::<MetadataRequest>(version).await;
        assert_eq!(response.topics.len(), 1, "v{version}");
        assert_eq!(response.topics[0].error_code, 0, "v{version}");
        assert_eq!(response.topics[0].partitions.len(), 1, "v{version}");
    }
    // The connection is still open and served.
    let versions = raw.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(versions.error_code, 0);
}

fn produce_request(topic: &str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

fn encoded_batch(values: &[&str]) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord::new(None, Some(v.as_bytes()), 1_700_000_000_000))
        .collect();
    let mut out = Vec::new();
    BatchEncoder::new()
        .encode(&BatchSpec::default(), &records, &mut out)
        .expect("encode");
    out
}

#[tokio::test]
async fn produce_acks_and_batch_validation() {
    let broker = broker().await;
    let cluster = cluster(&broker).await;
    create(&cluster, "raw-produce", 1).await;
    let mut raw = Raw::connect(&broker).await;
    let good = Bytes::from(encoded_batch(&["a", "b", "c"]));
    // acks=0: no response; the next request's response is the next frame.
    raw.send_only(&produce_request("raw-produce", 0, good.clone()), 9)
        .await;
    let response = raw
        .call(&produce_request("raw-produce", 1, good.clone()), 9)
        .await;
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 3),
        "the acks=0 batch took 0..3"
    );
    // acks=2 is not a thing.
    let response = raw
        .call(&produce_request("raw-produce", 2, good.clone()), 9)
        .await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRequiredAcks.code()
    );
    // A flipped byte in the records breaks the CRC.
    let mut bad = encoded_batch(&["a", "b", "c"]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let response = raw
        .call(&produce_request("raw-produce", -1, Bytes::from(bad)), 9)
        .await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ResponseError::CorruptMessage.code()
    );
    // Two batches in one partition's records.
    let mut two = encoded_batch(&["x"]);
    two.extend_from_slice(&encoded_batch(&["y"]));
    let response = raw
        .call(&produce_request("raw-produce", -1, Bytes::from(two)), 9)
        .await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRecord.code()
    );
    // Unknown topics are not created by Produce.
    let response = raw.call(&produce_request("nope", -1, good), 9).await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let admin = Admin::new(cluster.clone());
    assert_eq!(offset(&admin, "raw-produce", OffsetSpec::Latest).await, 6);
}

#[tokio::test]
async fn describe_and_list_groups() {
    let broker = broker().await;
    let mut raw = Raw::connect(&broker).await;
    let joined = raw
        .call(&join("g-described", "", None, 10_000, b"meta"), 3)
        .await;
    raw.call(
        &sync(
            "g-described",
            &joined.member_id,
            None,
            1,
            vec![(&joined.member_id, b"plan")],
        ),
        3,
    )
    .await;
    let listed = raw.call(&ListGroupsRequest::default(), 4).await;
    let found: Vec<(String, String)> = listed
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
        .collect();
    assert_eq!(found, vec![("g-described".to_owned(), "Stable".to_owned())]);
    let described = raw
        .call(
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(s("g-described")), GroupId(s("g-none"))]),
            5,
        )
        .await;
    let g = &described.groups[0];
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.protocol_data.as_str(), "range");
    assert_eq!(&g.members[0].member_assignment[..], b"plan");
    assert_eq!(&g.members[0].member_metadata[..], b"meta");
    assert_eq!(described.groups[1].group_state.as_str(), "Dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_join_one_by_one_and_read_everything_once() {
    let broker = broker().await;
    let cluster = cluster(&broker).await;
    create(&cluster, "coop", 6).await;
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).expect("producer");
    let seen: Arc<std::sync::Mutex<BTreeMap<(i32, i64), usize>>> = Arc::default();
    let mut members: Vec<Arc<GroupConsumer>> = Vec::new();
    let mut readers = Vec::new();
    let started = Instant::now();
    for n in 1..=3usize {
        let m = Arc::new(
            GroupConsumer::connect(
                client_config(&broker),
                group_config("g-coop").with_assignor(AssignorKind::CooperativeSticky),
            )
            .await
            .expect("member"),
        );
        m.subscribe(["coop"]);
        readers.push(tokio::spawn({
            let m = Arc::clone(&m);
            let seen = Arc::clone(&seen);
            async move {
                while let Ok(r) = m.next().await {
                    *seen
                        .lock()
                        .unwrap()
                        .entry((r.partition, r.offset))
                        .or_default() += 1;
                    let _ = m.ack(&r.topic, r.partition, r.offset);
                }
            }
        }));
        members.push(m);
        // Records keep arriving while members join.
        let mut deliveries = Vec::new();
        for i in 0..100 {
            let record = ProducerRecord::new("coop")
                .partition(i % 6)
                .value(format!("{n}-{i}"));
            deliveries.push(producer.enqueue(record).await.expect("enqueue"));
        }
        producer.flush().await;
        for d in deliveries {
            d.await.expect("delivered");
        }
        let share = 6 / n;
        wait_until_async(
            &format!("{n} members balanced"),
            Duration::from_secs(30),
            || members.iter().all(|m| m.assignment().len() == share),
        )
        .await;
    }
    eprintln!(
        "3 cooperative members balanced after {:?}",
        started.elapsed()
    );
    let generations: BTreeSet<i32> = members
        .iter()
        .map(|m| m.generation().expect("joined").1)
        .collect();
    assert_eq!(generations.len(), 1, "one generation: {generations:?}");
    wait_until_async("every record read", Duration::from_secs(30), || {
        seen.lock().unwrap().len() == 300
    })
    .await;
    let twice = seen.lock().unwrap().values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "no record read twice");
    for m in &members {
        m.close().await.expect("close");
    }
    for r in readers {
        r.abort();
    }
}

#[tokio::test]
async fn shutdown_closes_connections_and_stops_accepting() {
    let broker = broker().await;
    let addr = broker.local_addr();
    assert!(addr.ip().is_loopback());
    assert_eq!(broker.url(), format!("kafka://{addr}"));
    let mut raw = Raw::connect(&broker).await;
    let versions = raw.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(versions.error_code, 0);
    broker.shutdown().await;
    assert!(
        raw.closed(Duration::from_secs(5)).await,
        "open connections are closed"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens any more"
    );
    // Dropping a broker stops it too.
    let dropped = DevBroker::start(DevBrokerConfig::default())
        .await
        .expect("start");
    let addr = dropped.local_addr();
    drop(dropped);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "dropped broker stopped"
    );
}

#[tokio::test]
async fn topic_configs_are_honoured_described_or_refused() {
    let broker = broker().await;
    let cluster = cluster(&broker).await;
    let admin = Admin::new(cluster.clone());
    admin
        .create_topic(
            NewTopic::new("stamped", 1, 1)
                .with_config("message.timestamp.type", "LogAppendTime")
                .with_config("retention.bytes", "100000"),
        )
        .await
        .expect("create");
    let configs: BTreeMap<String, Option<String>> = admin
        .describe_topic_config("stamped")
        .await
        .expect("describe")
        .into_iter()
        .collect();
    assert_eq!(
        configs
            .get("message.timestamp.type")
            .cloned()
            .flatten()
            .as_deref(),
        Some("LogAppendTime")
    );
    assert_eq!(
        configs.get("retention.bytes").cloned().flatten().as_deref(),
        Some("100000")
    );
    // The broker stamps its own time.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).expect("producer");
    let meta = producer
        .send(ProducerRecord::new("stamped").value("x").timestamp(42))
        .await
        .expect("delivered");
    assert!(
        meta.timestamp >= before,
        "log-append time {}",
        meta.timestamp
    );
    // Compacted topics, with time retention.
    admin
        .create_topic(
            NewTopic::new("compacted", 1, 1)
                .with_config("cleanup.policy", "compact")
                .with_config("retention.ms", "3600000"),
        )
        .await
        .expect("compacted topic");
    let configs: BTreeMap<String, Option<String>> = admin
        .describe_topic_config("compacted")
        .await
        .expect("describe")
        .into_iter()
        .collect();
    assert_eq!(
        configs.get("cleanup.policy").cloned().flatten().as_deref(),
        Some("compact")
    );
    assert_eq!(
        configs.get("retention.ms").cloned().flatten().as_deref(),
        Some("3600000")
    );
    // A keyless record cannot go to a compacted topic.
    let strict = Producer::new(
        cluster.clone(),
        ProducerConfig {
            delivery_timeout: Duration::from_secs(5),
            ..ProducerConfig::default()
        },
    )
    .expect("producer");
    let keyless = strict
        .send(ProducerRecord::new("compacted").value("no key"))
        .await;
    assert!(keyless.is_err(), "{keyless:?}");
    strict
        .send(ProducerRecord::new("compacted").key("k").value("keyed"))
        .await
        .expect("keyed record");
    // Configs the broker does not implement are refused, not silently ignored.
    let unknown = admin
        .create_topic(NewTopic::new("segmented", 1, 1).with_config("segment.bytes", "1024"))
        .await;
    assert!(unknown.is_err(), "{unknown:?}");
    let names: Vec<String> = admin
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(!names.contains(&"segmented".to_owned()), "{names:?}");
}

#[tokio::test]
async fn a_compacted_topic_keeps_the_last_value_of_every_key() {
    let broker = broker_with(DevBrokerConfig {
        retention_bytes: 16 * 1024,
        ..DevBrokerConfig::default()
    })
    .await;
    let cluster = cluster(&broker).await;
    let admin = Admin::new(cluster.clone());
    admin
        .create_topic(NewTopic::new("table", 1, 1).with_config("cleanup.policy", "compact"))
        .await
        .expect("create");
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).expect("producer");
    let mut expected = BTreeMap::new();
    for chunk in 0..40 {
        let mut deliveries = Vec::new();
        for j in 0..50 {
            let i = chunk * 50 + j;
            let key = format!("key-{}", i % 23);
            let value = format!("value-{i}-{}", "p".repeat(20));
            expected.insert(key.clone(), value.clone());
            let record = ProducerRecord::new("table")
                .partition(0)
                .key(key)
                .value(value);
            deliveries.push(producer.enqueue(record).await.expect("enqueue"));
        }
        producer.flush().await;
        for d in deliveries {
            d.await.expect("delivered");
        }
    }
    assert_eq!(offset(&admin, "table", OffsetSpec::Latest).await, 2000);
    let got = read_all_keyed(&cluster, "table").await;
    eprintln!("{} of 2000 records left after compaction", got.len());
    assert!(got.len() < 2000, "compacted: {} records left", got.len());
    let mut last = BTreeMap::new();
    for (key, value) in got {
        last.insert(key, value);
    }
    assert_eq!(last, expected, "every key reads its last value");
}

/// Every (key, value) of partition 0 of `topic` from the start, until the high watermark.
async fn read_all_keyed(cluster: &Cluster, topic: &str) -> Vec<(String, String)> {
    let fetcher = Fetcher::new(cluster.clone(), FetcherConfig::default()).expect("fetcher");
    fetcher
        .assign(TopicPartition::new(topic, 0), FetchPosition::Earliest)
        .expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(batch) = tokio::time::timeout(Duration::from_secs(2), fetcher.next_batch()).await
        else {
            break;
        };
        let batch = batch.expect("batch");
        for r in batch.records().expect("records") {
            let r = r.expect("record");
            got.push((
                String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned(),
            ));
        }
        if batch.next_offset() >= batch.high_watermark {
            break;
        }
    }
    fetcher.close();
    got
}

#[tokio::test]
async fn find_coordinator_answers_this_broker_single_and_batched() {
    let broker = broker().await;
    let mut raw = Raw::connect(&broker).await;
    let addr = broker.local_addr();
    let single = raw
        .call(&FindCoordinatorRequest::default().with_key(s("g1")), 3)
        .await;
    assert_eq!(single.error_code, 0);
    assert_eq!(
        (single.host.to_string(), single.port),
        (addr.ip().to_string(), i32::from(addr.port()))
    );
    let batched = raw
        .call(
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g1"), s("g2")]),
            4,
        )
        .await;
    let keys: Vec<(String, i16, i32)> = batched
        .coordinators
        .iter()
        .map(|c| (c.key.to_string(), c.error_code, c.port))
        .collect();
    let port = i32::from(addr.port());
    assert_eq!(
        keys,
        vec![("g1".to_owned(), 0, port), ("g2".to_owned(), 0, port)]
    );
    // Transaction coordinators are not offered.
    let txn = raw
        .call(
            &FindCoordinatorRequest::default()
                .with_key(s("tx"))
                .with_key_type(1),
            3,
        )
        .await;
    assert_eq!(
        txn.error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
}
