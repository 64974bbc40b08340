//! Failover against librdkafka's mock cluster (3 brokers on loopback, with fault injection),
//! through the `rdkafka` dev-dependency: a partition leader that moves, and a broker that goes
//! down and comes back.

use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use mephisto_engine::{Admin, BrokerId, ClientConfig, Cluster, EngineError, OffsetSpec, Purpose};
use rdkafka::mocking::MockCluster;

fn mock(topic: &str) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let mock = MockCluster::new(3).expect("mock cluster");
    let servers = mock.bootstrap_servers();
    for server in servers.split(',') {
        assert!(
            server.starts_with("127.0.0.1:") || server.starts_with("localhost:"),
            "mock broker not on loopback: {servers}"
        );
    }
    mock.create_topic(topic, 1, 3).expect("create topic");
    mock
}

/// librdkafka's mock broker (2.12.1) appends one stray byte to every flexible-version
/// response, which the wire crate rejects as trailing bytes by design; pin the last
/// non-flexible versions of the APIs these tests use.
fn config(servers: &str) -> ClientConfig {
    ClientConfig::from_url(servers)
        .expect("mock bootstrap servers")
        .with_max_version(ApiKey::Metadata, 8)
        .with_max_version(ApiKey::ListOffsets, 5)
        .with_request_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(1))
        .with_api_timeout(Duration::from_secs(3))
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .with_retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn other_broker(cluster: &Cluster, not: BrokerId) -> BrokerId {
    *cluster
        .cached_metadata()
        .brokers
        .keys()
        .find(|id| **id != not)
        .expect("another broker")
}

#[tokio::test]
async fn a_moved_leader_is_found_after_a_metadata_refresh() {
    let topic = "moving";
    let mock = mock(topic);
    let cluster = Cluster::connect(config(&mock.bootstrap_servers()))
        .await
        .expect("connect to the mock cluster");
    assert_eq!(cluster.cached_metadata().brokers.len(), 3);
    let admin = Admin::new(cluster.clone());

    let old = cluster.leader(topic, 0).await.expect("leader");
    let first = admin
        .list_offset(topic, 0, OffsetSpec::Earliest)
        .await
        .expect("list offsets");
    assert_eq!(first.broker, old.broker);
    assert_eq!(first.offset, Some(0));

    let new = other_broker(&cluster, old.broker);
    mock.partition_leader(topic, 0, Some(new.0))
        .expect("move leader");
    let generation = cluster.cached_metadata().generation;
    // The cache still names the old leader: the request goes there, is refused, and the retry
    // goes to the new leader after a refresh.
    assert_eq!(
        cluster
            .cached_metadata()
            .leader(topic, 0)
            .expect("cached")
            .broker,
        old.broker
    );
    let start = Instant::now();
    let second = admin
        .list_offset(topic, 0, OffsetSpec::Earliest)
        .await
        .expect("list offsets after the move");
    eprintln!(
        "leader moved {} -> {}: ListOffsets answered by the new leader after {:?}",
        old.broker.0,
        new.0,
        start.elapsed()
    );
    assert_eq!(second.broker, new, "answered by the new leader");
    let metadata = cluster.cached_metadata();
    assert!(metadata.generation > generation, "metadata was refreshed");
    let led = metadata.leader(topic, 0).expect("leader");
    assert_eq!(led.broker, new);
    if let (Some(before), Some(after)) = (old.epoch, led.epoch) {
        assert!(after > before, "leader epoch {before} -> {after}");
    }
}

#[tokio::test]
async fn a_broker_down_then_up() {
    let topic = "downed";
    let mock = mock(topic);
    let cluster = Cluster::connect(config(&mock.bootstrap_servers()))
        .await
        .expect("connect to the mock cluster");
    let admin = Admin::new(cluster.clone());
    let leader = cluster.leader(topic, 0).await.expect("leader").broker;
    admin
        .list_offset(topic, 0, OffsetSpec::Earliest)
        .await
        .expect("list offsets");
    let conn = cluster
        .connection(leader, Purpose::Default)
        .await
        .expect("pooled connection");
    assert!(!conn.is_closed());

    // Down: the open connection is noticed dead as soon as the broker drops it.
    mock.broker_down(leader.0).expect("broker down");
    let start = Instant::now();
    while !conn.is_closed() && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    eprintln!(
        "dead broker connection detected after {:?}",
        start.elapsed()
    );
    assert!(
        conn.is_closed(),
        "connection to a downed broker still open after 5 s"
    );
    assert!(conn.close_reason().is_some_and(|e| e.is_retriable()));

    // While it is down (and still leader), lookups fail with a retriable transport error once
    // the API timeout (3 s) is spent.
    let start = Instant::now();
    let err = admin
        .list_offset(topic, 0, OffsetSpec::Earliest)
        .await
        .expect_err("leader is down");
    let elapsed = start.elapsed();
    eprintln!("ListOffsets to a downed leader gave up after {elapsed:?}: {err}");
    match &err {
        EngineError::RetriesExhausted { last, attempts, .. } => {
            assert!(last.is_retriable(), "{last}");
            assert!(*attempts > 1);
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");

    // Up again: the next request reconnects (after the reconnect backoff).
    mock.broker_up(leader.0).expect("broker up");
    let start = Instant::now();
    let offset = admin
        .list_offset(topic, 0, OffsetSpec::Earliest)
        .await
        .expect("broker is back");
    eprintln!("request after broker_up succeeded in {:?}", start.elapsed());
    assert_eq!(offset.broker, leader);
    assert!(!cluster
        .connection(leader, Purpose::Default)
        .await
        .expect("reconnected")
        .is_closed());

    // Down again, and this time the leadership moves: requests fail over.
    mock.broker_down(leader.0).expect("broker down");
    let new = other_broker(&cluster, leader);
    mock.partition_leader(topic, 0, Some(new.0))
        .expect("move leader");
    let start = Instant::now();
    let offset = admin
        .list_offset(topic, 0, OffsetSpec::Earliest)
        .await
        .expect("failover");
    eprintln!("failover to broker {} took {:?}", new.0, start.elapsed());
    assert_eq!(offset.broker, new);
}
