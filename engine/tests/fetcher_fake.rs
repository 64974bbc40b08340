//! The fetcher against a scripted two-broker cluster, for what tansu cannot be made to do:
//! NOT_LEADER_OR_FOLLOWER and a leader move, OFFSET_OUT_OF_RANGE under each reset policy,
//! read_committed with a correct aborted-transactions list, and a truncated trailing batch.
//!
//! The fake brokers speak just enough Kafka through the wire crate's broker-side codecs:
//! ApiVersions, Metadata (both brokers, topic `t`), ListOffsets and Fetch, all from one shared
//! [`Log`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchResponse, ListOffsetsResponse, MetadataResponse,
    ProducerId, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use mephisto_engine::fetcher::{
    FetchError, FetchPosition, Fetcher, FetcherConfig, IsolationLevel, OffsetReset, TopicPartition,
};
use mephisto_engine::{ClientConfig, Cluster};
use mephisto_wire::frame::{write_frame, FrameDecoder};
use mephisto_wire::messages::{decode_request, encode_response_kind};
use mephisto_wire::record::{BatchEncoder, BatchSpec, ControlRecordType, NewRecord};
use mephisto_wire::versions::MEPHISTO_APIS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One partition's log: batches as (base offset, next offset, bytes).
#[derive(Default)]
struct PartitionLog {
    batches: Vec<(i64, i64, Bytes)>,
    aborted: Vec<(i64, i64)>,
    log_start: i64,
    /// Cut the response after this many bytes (to leave a partial trailing batch).
    truncate_to: Option<usize>,
}

impl PartitionLog {
    fn end(&self) -> i64 {
        self.batches.last().map_or(self.log_start, |b| b.1)
    }
}

/// The cluster's state, shared by the fake brokers.
#[derive(Default)]
struct Log {
    partitions: BTreeMap<i32, PartitionLog>,
    /// Partition → leader id.
    leaders: BTreeMap<i32, i32>,
    /// Broker id → port.
    ports: BTreeMap<i32, u16>,
    /// (broker, API) → requests received.
    received: BTreeMap<(i32, i16), usize>,
}

type Shared = Arc<Mutex<Log>>;

fn lock(log: &Shared) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn respond(log: &Shared, me: i32, request: &RequestKind) -> Option<ResponseKind> {
    let mut log = lock(log);
    Some(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(
            ApiVersionsResponse::default().with_api_keys(
                MEPHISTO_APIS
                    .iter()
                    .map(|s| {
                        ApiVersion::default()
                            .with_api_key(s.api as i16)
                            .with_min_version(s.min)
                            .with_max_version(s.max)
                    })
                    .collect(),
            ),
        ),
        RequestKind::Metadata(_) => {
            *log.received
                .entry((me, ApiKey::Metadata as i16))
                .or_default() += 1;
            let brokers = log
                .ports
                .iter()
                .map(|(id, port)| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(*id))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(i32::from(*port))
                })
                .collect();
            let partitions = log
                .leaders
                .iter()
                .map(|(p, leader)| {
                    MetadataResponsePartition::default()
                        .with_partition_index(*p)
                        .with_leader_id(BrokerId(*leader))
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![BrokerId(*leader)])
                        .with_isr_nodes(vec![BrokerId(*leader)])
                })
                .collect();
            ResponseKind::Metadata(
                MetadataResponse::default()
                    .with_brokers(brokers)
                    .with_controller_id(BrokerId(1))
                    .with_topics(vec![MetadataResponseTopic::default()
                        .with_name(Some(name("t")))
                        .with_partitions(partitions)]),
            )
        }
        RequestKind::ListOffsets(r) => {
            *log.received
                .entry((me, ApiKey::ListOffsets as i16))
                .or_default() += 1;
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let part = log.partitions.get(&p.partition_index);
                            let offset = match (part, p.timestamp) {
                                (Some(part), -2) => part.log_start,
                                (Some(part), _) => part.end(),
                                (None, _) => -1,
                            };
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(if part.is_some() { 0 } else { 3 })
                                .with_offset(offset)
                                .with_timestamp(-1)
                        })
                        .collect();
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(topics))
        }
        RequestKind::Fetch(r) => {
            *log.received.entry((me, ApiKey::Fetch as i16)).or_default() += 1;
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| fetch_partition(&log, me, p.partition, p.fetch_offset))
                        .collect();
                    FetchableTopicResponse::default()
                        .with_topic(t.topic.clone())
                        .with_partitions(partitions)
                })
                .collect();
            ResponseKind::Fetch(FetchResponse::default().with_responses(topics))
        }
        _ => return None,
    })
}

fn fetch_partition(log: &Log, me: i32, partition: i32, offset: i64) -> PartitionData {
    let data = PartitionData::default().with_partition_index(partition);
    if log.leaders.get(&partition) != Some(&me) {
        return data.with_error_code(6); // NOT_LEADER_OR_FOLLOWER
    }
    let Some(part) = log.partitions.get(&partition) else {
        return data.with_error_code(3);
    };
    let end = part.end();
    if offset < part.log_start || offset > end {
        return data.with_error_code(1); // OFFSET_OUT_OF_RANGE
    }
    let mut records = Vec::new();
    for (_, next, bytes) in &part.batches {
        if *next > offset {
            records.extend_from_slice(bytes);
        }
    }
    if let Some(cut) = part.truncate_to {
        records.truncate(cut);
    }
    data.with_high_watermark(end)
        .with_last_stable_offset(end)
        .with_log_start_offset(part.log_start)
        .with_aborted_transactions(Some(
            part.aborted
                .iter()
                .map(|&(pid, first)| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(pid))
                        .with_first_offset(first)
                })
                .collect(),
        ))
        .with_records(Some(Bytes::from(records)))
}

async fn serve(mut socket: TcpStream, log: Shared, me: i32) {
    let decoder = FrameDecoder::default();
    let mut rbuf = BytesMut::new();
    loop {
        let payload = loop {
            match decoder.decode(&mut rbuf) {
                Ok(Some(payload)) => break payload,
                Ok(None) => {}
                Err(_) => return,
            }
            match socket.read_buf(&mut rbuf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let Ok(request) = decode_request(payload) else {
            return;
        };
        let version = request.header.request_api_version;
        let Some(response) = respond(&log, me, &request.body) else {
            return;
        };
        if matches!(response, ResponseKind::Fetch(_)) {
            // A short long-poll, so that idle fetch loops do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut inner = BytesMut::new();
        if encode_response_kind(
            &mut inner,
            &response,
            version,
            request.header.correlation_id,
        )
        .is_err()
        {
            return;
        }
        let mut frame = BytesMut::new();
        if write_frame(&mut frame, &inner, usize::MAX).is_err()
            || socket.write_all(&frame).await.is_err()
        {
            return;
        }
    }
}

/// Starts brokers 1 and 2 over `log`; returns the bootstrap URL (broker 1).
async fn start(log: &Shared) -> (String, Vec<tokio::task::JoinHandle<()>>) {
    let mut tasks = Vec::new();
    let mut url = String::new();
    for id in [1, 2] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        lock(log).ports.insert(id, port);
        if id == 1 {
            url = format!("kafka://127.0.0.1:{port}");
        }
        let log = Arc::clone(log);
        tasks.push(tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&log), id));
            }
        }));
    }
    (url, tasks)
}

async fn cluster(url: &str) -> Cluster {
    Cluster::connect(
        ClientConfig::from_url(url)
            .expect("url")
            .with_request_timeout(Duration::from_secs(5))
            .with_retry_backoff(Duration::from_millis(20), Duration::from_millis(200)),
    )
    .await
    .expect("connect")
}

fn batch(base_offset: i64, values: &[&str]) -> (i64, i64, Bytes) {
    batch_with(
        BatchSpec {
            base_offset,
            ..BatchSpec::default()
        },
        values,
    )
}

fn batch_with(spec: BatchSpec, values: &[&str]) -> (i64, i64, Bytes) {
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord::new(None, Some(v.as_bytes()), 1_700_000_000_000))
        .collect();
    let mut out = Vec::new();
    let encoded = BatchEncoder::new()
        .encode(&spec, &records, &mut out)
        .expect("encode");
    let _ = encoded;
    let next = spec.base_offset + values.len() as i64;
    (spec.base_offset, next, Bytes::from(out))
}

fn marker(base_offset: i64, producer_id: i64, kind: ControlRecordType) -> (i64, i64, Bytes) {
    let spec = BatchSpec {
        base_offset,
        transactional: true,
        producer_id,
        producer_epoch: 0,
        ..BatchSpec::default()
    };
    let mut out = Vec::new();
    BatchEncoder::new()
        .encode_control(&spec, kind, 0, 1_700_000_000_000, &mut out)
        .expect("marker");
    (base_offset, base_offset + 1, Bytes::from(out))
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

/// Reads `n` record values (with their partition and offset) or panics after 10 s.
async fn values(fetcher: &Fetcher, n: usize) -> Vec<(i32, i64, String)> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(10), fetcher.next_batch())
            .await
            .unwrap_or_else(|_| panic!("stalled after {got:?}"))
            .expect("batch");
        for r in batch.records().expect("records") {
            let r = r.expect("record");
            let v = String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned();
            got.push((batch.partition, r.offset(), v));
        }
    }
    got
}

async fn quiet(fetcher: &Fetcher) {
    if let Ok(r) = tokio::time::timeout(Duration::from_millis(400), fetcher.next_batch()).await {
        panic!("unexpected: {r:?}");
    }
}

fn config() -> FetcherConfig {
    FetcherConfig::default().with_max_wait(Duration::from_millis(50))
}

#[tokio::test]
async fn follows_the_leader_after_not_leader_or_follower() {
    let log: Shared = Arc::default();
    {
        let mut l = lock(&log);
        l.partitions.insert(
            0,
            PartitionLog {
                batches: vec![batch(0, &["a", "b"]), batch(2, &["c"])],
                ..PartitionLog::default()
            },
        );
        l.partitions.insert(
            1,
            PartitionLog {
                batches: vec![batch(0, &["x"])],
                ..PartitionLog::default()
            },
        );
        l.leaders.insert(0, 1);
        l.leaders.insert(1, 2);
    }
    let (url, _tasks) = start(&log).await;
    let fetcher = Fetcher::new(cluster(&url).await, config()).expect("fetcher");
    for p in [0, 1] {
        fetcher
            .assign(TopicPartition::new("t", p), FetchPosition::Offset(0))
            .expect("assign");
    }
    let mut got = values(&fetcher, 4).await;
    got.sort();
    assert_eq!(
        got,
        [
            (0, 0, "a".into()),
            (0, 1, "b".into()),
            (0, 2, "c".into()),
            (1, 0, "x".into())
        ]
    );
    // Partition 0 moves to broker 2: broker 1 answers NOT_LEADER_OR_FOLLOWER from now on.
    {
        let mut l = lock(&log);
        l.leaders.insert(0, 2);
        if let Some(p) = l.partitions.get_mut(&0) {
            p.batches.push(batch(3, &["d", "e"]));
        }
    }
    let got = values(&fetcher, 2).await;
    assert_eq!(got, [(0, 3, "d".into()), (0, 4, "e".into())]);
    quiet(&fetcher).await;
    let l = lock(&log);
    assert!(l.received[&(2, ApiKey::Fetch as i16)] > 0);
    assert!(
        l.received[&(1, ApiKey::Metadata as i16)]
            + l.received
                .get(&(2, ApiKey::Metadata as i16))
                .copied()
                .unwrap_or(0)
            >= 2,
        "metadata refreshed"
    );
}

#[tokio::test]
async fn out_of_range_under_each_policy() {
    let log: Shared = Arc::default();
    {
        let mut l = lock(&log);
        l.partitions.insert(
            0,
            PartitionLog {
                batches: vec![batch(10, &["a", "b"]), batch(12, &["c"])],
                log_start: 10,
                ..PartitionLog::default()
            },
        );
        l.leaders.insert(0, 1);
    }
    let (url, _tasks) = start(&log).await;
    let cluster = cluster(&url).await;
    let tp = TopicPartition::new("t", 0);

    let none = Fetcher::new(
        cluster.clone(),
        config().with_auto_offset_reset(OffsetReset::None),
    )
    .expect("fetcher");
    none.assign(tp.clone(), FetchPosition::Offset(3))
        .expect("assign");
    match tokio::time::timeout(Duration::from_secs(10), none.next_batch()).await {
        Ok(Err(FetchError::OffsetOutOfRange { partition, offset })) => {
            assert_eq!((partition, offset), (tp.clone(), 3));
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    quiet(&none).await;
    none.seek(&tp, FetchPosition::Offset(12)).expect("seek");
    assert_eq!(values(&none, 1).await, [(0, 12, "c".into())]);

    let earliest = Fetcher::new(
        cluster.clone(),
        config().with_auto_offset_reset(OffsetReset::Earliest),
    )
    .expect("fetcher");
    earliest
        .assign(tp.clone(), FetchPosition::Offset(3))
        .expect("assign");
    assert_eq!(
        values(&earliest, 3).await,
        [
            (0, 10, "a".into()),
            (0, 11, "b".into()),
            (0, 12, "c".into())
        ]
    );

    let latest = Fetcher::new(
        cluster.clone(),
        config().with_auto_offset_reset(OffsetReset::Latest),
    )
    .expect("fetcher");
    latest
        .assign(tp.clone(), FetchPosition::Offset(99))
        .expect("assign");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while latest.position(&tp) != Some(13) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            latest.position(&tp)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(p) = lock(&log).partitions.get_mut(&0) {
        p.batches.push(batch(13, &["new"]));
    }
    assert_eq!(values(&latest, 1).await, [(0, 13, "new".into())]);
}

#[tokio::test]
async fn read_committed_with_the_brokers_aborted_list() {
    let log: Shared = Arc::default();
    {
        let mut l = lock(&log);
        l.partitions.insert(
            0,
            PartitionLog {
                batches: vec![
                    batch_with(txn(0, 7), &["c0", "c1"]),
                    batch_with(txn(2, 8), &["a0", "a1"]),
                    marker(4, 7, ControlRecordType::Commit),
                    marker(5, 8, ControlRecordType::Abort),
                    batch(6, &["plain"]),
                    batch_with(txn(7, 8), &["c2"]),
                    marker(8, 8, ControlRecordType::Commit),
                ],
                aborted: vec![(8, 2)],
                ..PartitionLog::default()
            },
        );
        l.leaders.insert(0, 1);
    }
    let (url, _tasks) = start(&log).await;
    let cluster = cluster(&url).await;
    let tp = TopicPartition::new("t", 0);

    let committed = Fetcher::new(
        cluster.clone(),
        config().with_isolation_level(IsolationLevel::ReadCommitted),
    )
    .expect("fetcher");
    committed
        .assign(tp.clone(), FetchPosition::Earliest)
        .expect("assign");
    let got: Vec<String> = values(&committed, 4)
        .await
        .into_iter()
        .map(|g| g.2)
        .collect();
    assert_eq!(got, ["c0", "c1", "plain", "c2"]);
    quiet(&committed).await;
    assert_eq!(committed.position(&tp), Some(9), "past the last marker");

    let uncommitted = Fetcher::new(cluster.clone(), config()).expect("fetcher");
    uncommitted
        .assign(tp.clone(), FetchPosition::Earliest)
        .expect("assign");
    let got: Vec<String> = values(&uncommitted, 6)
        .await
        .into_iter()
        .map(|g| g.2)
        .collect();
    assert_eq!(got, ["c0", "c1", "a0", "a1", "plain", "c2"]);
    quiet(&uncommitted).await;
}

#[tokio::test]
async fn continues_after_a_truncated_trailing_batch() {
    let log: Shared = Arc::default();
    let first = batch(0, &["a", "b"]);
    let second = batch(2, &["c", "d", "e"]);
    let cut = first.2.len() + second.2.len() / 2;
    {
        let mut l = lock(&log);
        l.partitions.insert(
            0,
            PartitionLog {
                batches: vec![first, second],
                truncate_to: Some(cut),
                ..PartitionLog::default()
            },
        );
        l.leaders.insert(0, 1);
    }
    let (url, _tasks) = start(&log).await;
    let fetcher = Fetcher::new(cluster(&url).await, config()).expect("fetcher");
    let tp = TopicPartition::new("t", 0);
    fetcher
        .assign(tp.clone(), FetchPosition::Offset(0))
        .expect("assign");
    let got = values(&fetcher, 2).await;
    assert_eq!(got, [(0, 0, "a".into()), (0, 1, "b".into())]);
    // The next fetch asks from offset 2, where the broker now has room for the whole batch.
    if let Some(p) = lock(&log).partitions.get_mut(&0) {
        p.truncate_to = None;
    }
    let got = values(&fetcher, 3).await;
    assert_eq!(
        got,
        [(0, 2, "c".into()), (0, 3, "d".into()), (0, 4, "e".into())]
    );
    assert_eq!(fetcher.position(&tp), Some(5));
}
