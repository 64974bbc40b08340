//! Connection-level behaviour against a scripted fake broker on loopback: the ApiVersions
//! retry rule, request timeouts, a broker that closes mid-request, out-of-order responses,
//! fire-and-forget requests, and unusable bootstrap addresses.

mod support;

use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use mephisto_engine::connection::Connection;
use mephisto_engine::{BrokerAddr, ClientConfig, Cluster, EngineError, Purpose};

use support::fake::{Action, FakeBroker, SilentListener};

fn config(url: &str) -> ClientConfig {
    ClientConfig::from_url(url)
        .expect("url")
        .with_request_timeout(Duration::from_millis(500))
        .with_connect_timeout(Duration::from_millis(500))
        .with_api_timeout(Duration::from_secs(2))
}

fn addr(s: &str) -> BrokerAddr {
    s.parse().expect("addr")
}

fn metadata_for(topic: &str) -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.to_owned()))))]))
}

#[tokio::test]
async fn api_versions_is_retried_at_the_version_the_broker_offers() {
    let fake = FakeBroker::start_with(2, |_| Action::Answer).await;
    let conn = Connection::connect(&addr(&fake.addr), &config(&fake.url))
        .await
        .expect("connect");
    assert_eq!(conn.versions().get(ApiKey::ApiVersions), Some(2));
    assert_eq!(conn.versions().get(ApiKey::Metadata), Some(12));
    let asked: Vec<i16> = fake
        .received()
        .iter()
        .filter(|(_, api, _)| *api == ApiKey::ApiVersions)
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(asked, [4, 2], "first at our max, then at the broker's");
}

#[tokio::test]
async fn request_timeout_is_typed_timely_and_closes_the_connection() {
    let fake = FakeBroker::start(|ctx| match ctx.api {
        ApiKey::Metadata => Action::Ignore,
        _ => Action::Answer,
    })
    .await;
    let conn = Connection::connect(&addr(&fake.addr), &config(&fake.url))
        .await
        .expect("connect");
    let version = conn
        .version_of::<MetadataRequest>()
        .expect("metadata version");
    let start = Instant::now();
    let err = conn
        .send(metadata_for("t"), version)
        .await
        .expect_err("the fake never answers");
    let elapsed = start.elapsed();
    eprintln!("request timeout (configured 500 ms) detected after {elapsed:?}");
    assert!(
        matches!(
            err,
            EngineError::RequestTimeout {
                api: ApiKey::Metadata,
                ..
            }
        ),
        "{err}"
    );
    assert!(elapsed >= Duration::from_millis(490), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    // The connection is closed: later requests fail at once with the reason.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(conn.is_closed());
    let start = Instant::now();
    let err = conn
        .send(metadata_for("t"), version)
        .await
        .expect_err("closed");
    assert!(matches!(err, EngineError::ConnectionClosed { .. }), "{err}");
    assert!(err.to_string().contains("got no response within"), "{err}");
    assert!(start.elapsed() < Duration::from_millis(100));
}

#[tokio::test]
async fn a_broker_closing_mid_request_fails_in_flight_requests_and_the_next_request_reconnects() {
    // Metadata #1: Cluster::connect (bootstrap connection). #2: first send on the pooled
    // connection. #3 and #4 are held, #5 makes the fake close that connection. Later ones are
    // answered.
    let fake = FakeBroker::start(|ctx| match (ctx.api, ctx.nth_of_api) {
        (ApiKey::Metadata, 3 | 4) => Action::Defer,
        (ApiKey::Metadata, 5) => Action::Close,
        _ => Action::Answer,
    })
    .await;
    let cluster = Cluster::connect(config(&fake.url))
        .await
        .expect("bootstrap");
    let broker = BrokerId(1);
    let send = |topic: &'static str| {
        let cluster = cluster.clone();
        async move {
            cluster
                .send(broker, Purpose::Default, move |_| metadata_for(topic))
                .await
        }
    };
    send("warm-up").await.expect("answered");
    let pooled = cluster
        .connection(broker, Purpose::Default)
        .await
        .expect("pooled");
    assert_eq!(fake.connections(), 2);

    let start = Instant::now();
    let (a, b, c) = tokio::join!(send("a"), send("b"), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        send("c").await
    });
    let elapsed = start.elapsed();
    eprintln!("3 in-flight requests failed {elapsed:?} after being sent (closing one ~50 ms in)");
    for result in [a, b, c] {
        let err = result.expect_err("connection closed under it");
        assert!(matches!(err, EngineError::ConnectionClosed { .. }), "{err}");
        assert!(err.is_retriable());
    }
    assert!(
        elapsed < Duration::from_millis(400),
        "not a timeout: {elapsed:?}"
    );
    assert!(pooled.is_closed());

    let start = Instant::now();
    let response = send("after").await.expect("reconnected");
    eprintln!(
        "next request reconnected and answered in {:?}",
        start.elapsed()
    );
    let names: Vec<&str> = response
        .body
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
        .collect();
    assert_eq!(names, ["after"]);
    assert_eq!(fake.connections(), 3, "one new connection");
    assert!(
        cluster.cached_metadata().generation >= 2,
        "dead connection refreshed metadata"
    );
}

#[tokio::test]
async fn out_of_order_responses_are_matched_by_correlation_id() {
    // The first Metadata request is held until the second is answered.
    let fake = FakeBroker::start(|ctx| match (ctx.api, ctx.nth_of_api) {
        (ApiKey::Metadata, 1) => Action::Defer,
        _ => Action::Answer,
    })
    .await;
    let conn = Connection::connect(&addr(&fake.addr), &config(&fake.url))
        .await
        .expect("connect");
    let version = conn.version_of::<MetadataRequest>().expect("version");
    let (first, second) = tokio::join!(conn.send(metadata_for("first"), version), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn.send(metadata_for("second"), version).await
    });
    let name = |r: &kafka_protocol::messages::MetadataResponse| {
        r.topics[0].name.as_ref().map(|n| n.0.as_str().to_owned())
    };
    assert_eq!(name(&first.expect("first")), Some("first".to_owned()));
    assert_eq!(name(&second.expect("second")), Some("second".to_owned()));
}

#[tokio::test]
async fn fire_and_forget_requests_resolve_once_written() {
    let fake = FakeBroker::start(|ctx| match (ctx.api, ctx.nth_of_api) {
        (ApiKey::Metadata, 1) => Action::Ignore,
        _ => Action::Answer,
    })
    .await;
    let conn = Connection::connect(&addr(&fake.addr), &config(&fake.url))
        .await
        .expect("connect");
    let version = conn.version_of::<MetadataRequest>().expect("version");
    conn.send_no_response(metadata_for("no-answer"), version)
        .await
        .expect("written");
    // The connection is still usable and nothing waits for the unanswered request.
    let answered = conn
        .send(metadata_for("answered"), version)
        .await
        .expect("answered");
    assert_eq!(answered.topics.len(), 1);
    let metadata_requests = fake
        .received()
        .iter()
        .filter(|(_, api, _)| *api == ApiKey::Metadata)
        .count();
    assert_eq!(metadata_requests, 2);
    assert!(!conn.is_closed());
}

#[tokio::test]
async fn refused_bootstrap_fails_at_once_with_a_clear_error() {
    let port = support::free_port();
    let url = format!("kafka://127.0.0.1:{port}");
    let start = Instant::now();
    let err = Cluster::connect(config(&url))
        .await
        .expect_err("nothing listens");
    let elapsed = start.elapsed();
    eprintln!("refused bootstrap reported after {elapsed:?}: {err}");
    match &err {
        EngineError::NoBrokerAvailable { attempts } => {
            assert_eq!(attempts.len(), 1);
            assert!(attempts[0].contains(&format!("127.0.0.1:{port}")), "{err}");
            assert!(attempts[0].contains("cannot connect"), "{err}");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
}

#[tokio::test]
async fn silent_bootstrap_fails_within_the_connect_timeout() {
    let silent = SilentListener::start().await;
    let refused = support::free_port();
    let url = format!("kafka://{},127.0.0.1:{refused}", silent.addr);
    let start = Instant::now();
    let err = Cluster::connect(config(&url))
        .await
        .expect_err("no broker answers");
    let elapsed = start.elapsed();
    eprintln!("silent + refused bootstrap reported after {elapsed:?}: {err}");
    match &err {
        EngineError::NoBrokerAvailable { attempts } => {
            assert_eq!(attempts.len(), 2, "{err}");
            assert!(attempts[0].contains("timed out after 500ms"), "{err}");
            assert!(attempts[1].contains("cannot connect"), "{err}");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(elapsed >= Duration::from_millis(490), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn concurrent_metadata_refreshes_are_coalesced() {
    let fake = FakeBroker::start(|_| Action::Answer).await;
    let cluster = Cluster::connect(config(&fake.url))
        .await
        .expect("bootstrap");
    let metadata_requests = || {
        fake.received()
            .iter()
            .filter(|(_, api, _)| *api == ApiKey::Metadata)
            .count()
    };
    let before = (cluster.cached_metadata().generation, metadata_requests());
    // Ten refreshes polled together: all read the generation before the first finishes, so
    // the later ones reuse its result.
    let refreshes = (0..10).map(|_| cluster.refresh_metadata()).collect();
    let results = futures_join_all(refreshes).await;
    for r in &results {
        assert_eq!(r.as_ref().expect("refresh").generation, before.0 + 1);
    }
    assert_eq!(
        metadata_requests(),
        before.1 + 1,
        "one Metadata request for 10 refreshes"
    );
    // A refresh asked for after that one is a new one.
    let again = cluster.refresh_metadata().await.expect("refresh");
    assert_eq!(again.generation, before.0 + 2);
}

/// Polls all futures concurrently on this task (a tiny `join_all`).
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut outputs: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outputs[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[tokio::test]
async fn metadata_is_refreshed_in_the_background_once_too_old() {
    let fake = FakeBroker::start(|_| Action::Answer).await;
    let cluster =
        Cluster::connect(config(&fake.url).with_metadata_max_age(Duration::from_millis(200)))
            .await
            .expect("bootstrap");
    assert_eq!(cluster.cached_metadata().generation, 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let generation = cluster.cached_metadata().generation;
    assert!(
        (3..=6).contains(&generation),
        "expected 2 to 5 background refreshes in 700 ms at 200 ms max age, generation {generation}"
    );
    // Dropping the cluster stops the refresher: no more Metadata requests.
    drop(cluster);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let count = fake.received().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.received().len(),
        count,
        "requests after the cluster was dropped"
    );
}
