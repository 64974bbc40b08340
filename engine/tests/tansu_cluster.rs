//! The engine against a real Kafka-compatible broker (tansu, started per test binary by
//! `support`, or `MEPHISTO_BROKER`): handshake and negotiated versions, metadata, admin
//! operations, ListOffsets, pipelining.

mod support;

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, MetadataRequest};
use mephisto_engine::admin::is_topic_already_exists;
use mephisto_engine::{Admin, Cluster, EngineError, NewTopic, OffsetSpec, Purpose};
use mephisto_wire::versions::MEPHISTO_APIS;

#[tokio::test]
async fn connects_and_negotiates_versions() {
    let broker = support::broker();
    let start = Instant::now();
    let cluster = support::cluster(&broker).await;
    eprintln!(
        "bootstrap (connect + ApiVersions + Metadata) took {:?}",
        start.elapsed()
    );
    let metadata = cluster.cached_metadata();
    assert_eq!(metadata.generation, 1);
    assert!(!metadata.brokers.is_empty());
    let (&id, info) = metadata.brokers.iter().next().expect("a broker");
    if std::env::var("MEPHISTO_BROKER").is_err() {
        assert_eq!(
            info.addr.to_string(),
            broker.addr,
            "tansu advertises its listener"
        );
    }

    let conn = cluster
        .connection(id, Purpose::Default)
        .await
        .expect("connection");
    let versions = conn.versions();
    for api in MEPHISTO_APIS.iter().filter(|a| a.required) {
        let v = versions
            .get(api.api)
            .unwrap_or_else(|| panic!("{:?} not negotiated", api.api));
        assert!((api.min..=api.max).contains(&v), "{:?} v{v}", api.api);
    }
    eprintln!(
        "negotiated with tansu: {:?}",
        versions.iter().collect::<Vec<_>>()
    );
    // The broker's own answer is kept, and each advertised range contains what we chose.
    for (api, v) in versions.iter() {
        let entry = conn
            .api_versions()
            .api_keys
            .iter()
            .find(|k| k.api_key == api as i16)
            .expect("negotiated APIs are advertised");
        assert!((entry.min_version..=entry.max_version).contains(&v));
    }
    assert_eq!(cluster.versions(id).await.expect("versions"), *versions);
    // Purposes are separate connections.
    let fetch = cluster
        .connection(id, Purpose::Fetch)
        .await
        .expect("fetch connection");
    let again = cluster
        .connection(id, Purpose::Default)
        .await
        .expect("pooled");
    assert!(!fetch.is_closed() && !again.is_closed());
    let response = cluster
        .send(id, Purpose::Default, |v| {
            mephisto_engine_metadata_request(v)
        })
        .await
        .expect("metadata request");
    assert_eq!(
        response.version,
        versions.get(ApiKey::Metadata).expect("metadata")
    );
    assert_eq!(response.broker, id);
}

fn mephisto_engine_metadata_request(version: i16) -> MetadataRequest {
    let request = MetadataRequest::default().with_topics(None);
    if version >= 4 {
        request.with_allow_auto_topic_creation(false)
    } else {
        request
    }
}

#[tokio::test]
async fn create_list_and_delete_topics() {
    let broker = support::broker();
    let admin = Admin::new(support::cluster(&broker).await);
    let name = support::unique_topic("cld");

    let start = Instant::now();
    let created = admin
        .create_topic(NewTopic::new(&name, 3, 1))
        .await
        .expect("create");
    eprintln!(
        "create_topic (until all partitions led) took {:?}",
        start.elapsed()
    );
    assert_eq!(created.name, name);

    let topics = admin.list_topics().await.expect("list");
    let topic = topics.iter().find(|t| t.name == name).expect("listed");
    assert_eq!(topic.partitions.len(), 3);
    assert!(topic.all_partitions_led());
    assert_eq!(
        topic
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );

    let err = admin
        .create_topic(NewTopic::new(&name, 3, 1))
        .await
        .expect_err("exists");
    assert!(is_topic_already_exists(&err), "{err}");
    assert!(!err.is_retriable());
    assert!(
        err.to_string().contains("TOPIC_ALREADY_EXISTS (36)"),
        "{err}"
    );

    let start = Instant::now();
    admin.delete_topic(&name).await.expect("delete");
    eprintln!(
        "delete_topic (until gone from metadata) took {:?}",
        start.elapsed()
    );
    let topics = admin.list_topics().await.expect("list");
    assert!(
        topics.iter().all(|t| t.name != name),
        "deleted topic still listed"
    );

    let err = admin.delete_topic(&name).await.expect_err("already gone");
    assert_eq!(
        err.kafka_kind(),
        Some(ResponseError::UnknownTopicOrPartition),
        "{err}"
    );
}

#[tokio::test]
async fn metadata_describes_created_topics() {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let admin = Admin::new(cluster.clone());
    let a = support::unique_topic("meta-a");
    let b = support::unique_topic("meta-b");
    let results = admin
        .create_topics(&[NewTopic::new(&a, 1, 1), NewTopic::new(&b, 4, 1)])
        .await
        .expect("create");
    assert!(results.values().all(Result::is_ok), "{results:?}");

    let before = cluster.cached_metadata().generation;
    let metadata = cluster.refresh_metadata().await.expect("refresh");
    assert!(metadata.generation > before);
    for (name, count) in [(&a, 1), (&b, 4)] {
        let topic = metadata.topic(name).expect("topic in metadata");
        assert_eq!(topic.partitions.len(), count);
        assert!(topic.error.is_none());
        for p in &topic.partitions {
            let leader = cluster.leader(name, p.partition).await.expect("leader");
            assert!(metadata.broker(leader.broker).is_some());
            assert_eq!(Some(leader.broker), p.leader);
        }
    }
    let err = cluster.leader(&b, 4).await.expect_err("no partition 4");
    assert!(
        matches!(err, EngineError::UnknownPartition { partition: 4, .. }),
        "{err}"
    );
    let err = cluster
        .topic("mephisto-no-such-topic")
        .await
        .expect_err("unknown");
    assert!(matches!(err, EngineError::UnknownTopic(_)), "{err}");
    admin.delete_topics(&[&a, &b]).await.expect("cleanup");
}

#[tokio::test]
async fn create_topic_with_configs() {
    let broker = support::broker();
    let admin = Admin::new(support::cluster(&broker).await);
    let name = support::unique_topic("compact");
    let created = admin
        .create_topic(
            NewTopic::new(&name, 1, 1)
                .with_config("cleanup.policy", "compact")
                .with_config("retention.ms", "3600000"),
        )
        .await
        .expect("create");
    eprintln!("CreateTopics returned configs: {:?}", created.configs);
    let configs = admin.describe_topic_config(&name).await.expect("describe");
    eprintln!("DescribeConfigs: {configs:?}");
    let value = |key: &str| {
        configs
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.clone())
    };
    assert_eq!(value("cleanup.policy").as_deref(), Some("compact"));
    assert_eq!(value("retention.ms").as_deref(), Some("3600000"));
    admin.delete_topic(&name).await.expect("cleanup");
}

#[tokio::test]
async fn list_offsets_earliest_on_an_empty_topic() {
    let broker = support::broker();
    let admin = Admin::new(support::cluster(&broker).await);
    let name = support::unique_topic("offsets");
    admin
        .create_topic(NewTopic::new(&name, 2, 1))
        .await
        .expect("create");
    let offsets = admin
        .list_offsets(
            &name,
            &[(0, OffsetSpec::Earliest), (1, OffsetSpec::Earliest)],
        )
        .await
        .expect("list offsets");
    assert_eq!(offsets.len(), 2);
    let leader = admin.cluster().leader(&name, 0).await.expect("leader");
    for (i, o) in offsets.iter().enumerate() {
        assert_eq!(o.partition, i as i32);
        assert_eq!(o.offset, Some(0), "{o:?}");
        assert_eq!(o.broker, leader.broker);
    }
    let err = admin
        .list_offset(&name, 7, OffsetSpec::Earliest)
        .await
        .expect_err("no such partition");
    assert!(matches!(err, EngineError::UnknownPartition { .. }), "{err}");
    admin.delete_topic(&name).await.expect("cleanup");
}

#[tokio::test]
async fn many_requests_are_pipelined_on_one_connection() {
    let broker = support::broker();
    let config = support::config(&broker).with_max_in_flight(8);
    let cluster = Cluster::connect(config).await.expect("connect");
    let id = *cluster
        .cached_metadata()
        .brokers
        .keys()
        .next()
        .expect("broker");
    let conn = cluster
        .connection(id, Purpose::Default)
        .await
        .expect("connection");
    let version = conn.version_of::<MetadataRequest>().expect("version");
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let conn = conn.clone();
        tasks.spawn(async move {
            conn.send(mephisto_engine_metadata_request(version), version)
                .await
        });
    }
    let mut ok = 0;
    while let Some(result) = tasks.join_next().await {
        let response = result.expect("task").expect("response");
        assert!(!response.brokers.is_empty());
        ok += 1;
    }
    eprintln!(
        "100 concurrent Metadata requests on one connection (8 in flight) took {:?}",
        start.elapsed()
    );
    assert_eq!(ok, 100);
    assert!(!conn.is_closed());
    assert!(start.elapsed() < Duration::from_secs(20));
}
