//! The replay server as a pipeline broker: a Mephisto group member joins, reads the whole
//! input, commits and leaves; a producer writes to a sink topic created with CreateTopics and
//! the server's counters see every record and the sum of its values; malformed input closes
//! only the connection that sent it.

use std::time::Duration;

use bytes::Bytes;
use mephisto_benches::pipeline_workload;
use mephisto_benches::replay_server::{Payload, ReplayConfig, ReplayServer};
use mephisto_engine::fetcher::{FetcherConfig, OffsetReset};
use mephisto_engine::group::{GroupConfig, GroupConsumer};
use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord};
use mephisto_engine::{Admin, ClientConfig, Cluster, NewTopic};
use mephisto_wire::compression::Compression;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RECORDS: u64 = 300;
const PARTITIONS: u32 = 3;

async fn server() -> ReplayServer {
    ReplayServer::start(ReplayConfig {
        topic: "in".into(),
        partitions: PARTITIONS,
        records: RECORDS,
        records_per_batch: 16,
        compression: Compression::None,
        trace: false,
        payload: Payload::Pipeline,
        sum_values: true,
    })
    .await
    .unwrap()
}

fn client(server: &ReplayServer) -> ClientConfig {
    ClientConfig::from_url(&server.url())
        .unwrap()
        .with_request_timeout(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_reads_everything_and_commits() {
    let server = server().await;
    let config = GroupConfig::new("g")
        .with_session_timeout(Duration::from_secs(6))
        .with_heartbeat_interval(Duration::from_secs(1))
        .with_fetcher(FetcherConfig::default().with_auto_offset_reset(OffsetReset::Earliest));
    let member = GroupConsumer::connect(client(&server), config)
        .await
        .unwrap();
    member.subscribe(["in"]);
    let mut sum = 0i128;
    for _ in 0..RECORDS {
        let record = tokio::time::timeout(Duration::from_secs(20), member.next())
            .await
            .expect("a record within 20 s")
            .unwrap();
        let value = record.record.value().unwrap();
        sum += i128::from(pipeline_workload::output_sum(value).unwrap());
        member.ack_record(&record).unwrap();
    }
    assert_eq!(sum, pipeline_workload::expected_sum(RECORDS));
    tokio::time::timeout(Duration::from_secs(10), member.commit())
        .await
        .unwrap()
        .unwrap();
    for p in 0..PARTITIONS as i32 {
        assert_eq!(member.committed("in", p), Some(i64::from(100)));
    }
    member.close().await.unwrap();
    assert!(
        server.rejected_apis().is_empty(),
        "{:?}",
        server.rejected_apis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_topic_counts_records_and_sums_values() {
    let server = server().await;
    let cluster = Cluster::connect(client(&server)).await.unwrap();
    Admin::new(cluster.clone())
        .create_topic(NewTopic::new("out", 2, 1))
        .await
        .unwrap();
    let producer = Producer::new(cluster, ProducerConfig::default()).unwrap();
    let mut pending = Vec::new();
    for i in 0..50u64 {
        let mut record = ProducerRecord::new("out");
        record.partition = Some((i % 2) as i32);
        record.value = Some(Bytes::from(if i % 2 == 0 {
            pipeline_workload::value(i)
        } else {
            (2 * i).to_string().into_bytes()
        }));
        pending.push(producer.enqueue(record).await.unwrap());
    }
    for d in pending {
        d.await.unwrap();
    }
    producer.close().await;
    let stats = server.sink_topic("out").unwrap();
    assert_eq!(stats.records, 50);
    assert_eq!(stats.value_sum, pipeline_workload::expected_sum(50));
    assert_eq!(stats.unreadable_values, 0);
    assert!(stats.first_append_us > 0 && stats.last_append_us >= stats.first_append_us);
    assert_eq!(server.stats().sequence_gaps, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_closes_only_its_connection() {
    let server = server().await;
    let garbage: [&[u8]; 3] = [
        // A frame far above the size limit.
        &[0x7f, 0xff, 0xff, 0xff],
        // A frame of an API key nobody serves (32000), version 0.
        &[0, 0, 0, 10, 0x7d, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff],
        // A JoinGroup frame whose body is cut short.
        &[0, 0, 0, 12, 0, 11, 0, 5, 0, 0, 0, 1, 0xff, 0xff, 0, 3],
    ];
    for bytes in garbage {
        let mut socket = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        socket.write_all(bytes).await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
            .await
            .expect("the server closes the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert!(server.stats().rejected >= 3);
    assert_eq!(server.rejected_apis(), vec![(127, 1)]);
    // Still serving.
    Cluster::connect(client(&server)).await.unwrap();
}
