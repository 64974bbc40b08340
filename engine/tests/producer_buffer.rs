//! The producer's bounded buffer against a real broker that stops answering: a private tansu
//! (`mephisto_test_support::tansu`) is frozen with SIGSTOP, so Produce requests hang
//! on open connections. `enqueue` must then block once `buffer_memory` is used up, never queue
//! more than the budget holds, and resume when the broker is thawed (SIGCONT).

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord};
use mephisto_engine::{Admin, ClientConfig, Cluster, NewTopic};
use mephisto_test_support::Broker;

/// Sends `signal` (`-STOP`, `-CONT`) to the broker process.
fn signal(tansu: &Broker, signal: &str) {
    let pid = tansu.pid().expect("a tansu process of our own");
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("kill {signal}: {e}"));
    assert!(status.success(), "kill {signal} failed");
}

async fn connect(url: &str) -> Cluster {
    let config = ClientConfig::from_url(url)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_request_timeout(Duration::from_secs(60))
        .with_connect_timeout(Duration::from_secs(2));
    // `tansu()` returned once it answered ApiVersions.
    Cluster::connect(config)
        .await
        .unwrap_or_else(|e| panic!("tansu at {url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_blocks_within_the_buffer_while_the_broker_is_frozen() {
    // A private tansu (never MEPHISTO_BROKER's): this test freezes it.
    let tansu = mephisto_test_support::tansu();
    let cluster = connect(&tansu.url).await;
    let topic = support::unique_topic("prod-buffer");
    Admin::new(cluster.clone())
        .create_topic(NewTopic::new(topic.clone(), 1, 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let buffer_memory = 64 * 1024;
    let value_len = 200;
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig {
            buffer_memory,
            batch_size: 8 * 1024,
            request_timeout: Duration::from_secs(60),
            ..ProducerConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Warm up: connection open, producer id obtained.
    producer
        .send(ProducerRecord::new(&topic).value("first"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(producer.available_memory(), buffer_memory);

    signal(&tansu, "-STOP");
    let total = 2000usize;
    let queued = Arc::new(AtomicUsize::new(0));
    let task = {
        let producer = producer.clone();
        let queued = Arc::clone(&queued);
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut deliveries = Vec::with_capacity(total);
            for i in 0..total {
                let record = ProducerRecord::new(&topic).value(vec![(i % 251) as u8; value_len]);
                match producer.enqueue(record).await {
                    Ok(d) => deliveries.push(d),
                    Err(e) => return Err(format!("record {i}: {e}")),
                }
                queued.fetch_add(1, Ordering::SeqCst);
            }
            Ok(deliveries)
        })
    };

    // While frozen: the queue fills up to the budget and stays there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = queued.load(Ordering::SeqCst);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(producer.available_memory() <= buffer_memory);
    }
    let second = queued.load(Ordering::SeqCst);
    assert!(
        !task.is_finished(),
        "enqueue must block while the broker is frozen"
    );
    assert_eq!(first, second, "nothing more is queued while blocked");
    assert!(first > 0, "records were queued before the buffer filled");
    // Every queued record holds at least its value's bytes of the budget.
    assert!(
        first * value_len <= buffer_memory,
        "{first} records of {value_len} bytes queued in a {buffer_memory}-byte buffer"
    );
    assert!(
        producer.available_memory() < 1024,
        "the budget is used up: {} bytes free",
        producer.available_memory()
    );

    signal(&tansu, "-CONT");
    let deliveries = match tokio::time::timeout(Duration::from_secs(60), task).await {
        Ok(Ok(Ok(d))) => d,
        other => panic!("producing did not resume: {other:?}"),
    };
    for (i, d) in deliveries.into_iter().enumerate() {
        let meta = d.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
        assert_eq!(meta.offset, 1 + i as i64, "in order after the first record");
    }
    producer.close().await;
    assert_eq!(
        producer.available_memory(),
        buffer_memory,
        "all memory returned"
    );
    // Dozens of pipelined requests went out at once on the thaw: sent in order, none was
    // rejected as out of sequence, so none was retried and no new producer id was needed.
    let stats = producer.stats();
    assert!(stats.requests > 10, "{stats:?}");
    assert_eq!((stats.retries, stats.identities), (0, 1), "{stats:?}");
}
