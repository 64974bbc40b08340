//! Faults the runtime turns into its error policy instead of a stuck or dead worker, on the
//! in-process development broker (`memory://`), which checks what Kafka checks (a compacted
//! topic refuses records without a key):
//! - a write that fails after it was queued (a sink to a compacted topic, without a key) sends
//!   the source event to the agent's dead-letter topic, which makes it done; without a
//!   dead-letter topic the worker stops with the error and commits nothing past the event;
//! - a batch that does not decode (over the worker's decompression cap: a compression bomb)
//!   is logged, dead-lettered raw and skipped, and the records after it are processed.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mephisto::{AgentError, App};
use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord};
use mephisto_engine::{ClientConfig, Cluster};
use mephisto_wire::compression::Compression;
use support::unique;

/// An app on its own in-process development broker.
fn memory_app(id: &str) -> App {
    let app = App::new(id).broker("memory://");
    app.configure(|s| {
        s.broker_session_timeout = Duration::from_secs(6);
        s.broker_heartbeat_interval = Duration::from_secs(1);
        s.broker_commit_interval = Duration::from_millis(200);
        s.topic_partitions = 1;
    });
    app
}

type DeadLetters = Arc<Mutex<Vec<(Vec<u8>, String)>>>;

/// An agent reading the dead-letter topic: raw values and their error header.
fn dead_letter_reader(app: &App, topic: &str) -> DeadLetters {
    let seen: DeadLetters = Arc::default();
    let s = seen.clone();
    let dead = app
        .topic::<bytes::Bytes, bytes::Bytes>(topic)
        .key_codec(mephisto::CodecName::Raw)
        .value_codec(mephisto::CodecName::Raw);
    app.agent::<bytes::Bytes, bytes::Bytes>(format!("{topic}-reader"))
        .topic(&dead)
        .processing(move |stream| {
            let s = s.clone();
            async move {
                let mut events = stream.events();
                while let Some(ev) = events.next().await {
                    let error = ev
                        .header("mephisto-error")
                        .map(|e| String::from_utf8_lossy(e).into_owned())
                        .unwrap_or_default();
                    s.lock().unwrap().push((ev.value.to_vec(), error));
                }
                Ok(())
            }
        });
    seen
}

async fn committed(worker: &mephisto::Worker, topic: &str, want: i64) -> Option<i64> {
    let consumer = worker.consumer().expect("member");
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.committed(topic, 0) != Some(want) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    consumer.committed(topic, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_sends_its_event_to_the_dead_letter_topic() {
    let app = memory_app(&unique("wf-dl"));
    let input = app.topic::<String, i64>("wf-in");
    let compacted = app
        .topic::<String, i64>("wf-compacted")
        .config("cleanup.policy", "compact");
    let dead = dead_letter_reader(&app, "wf-dead");
    app.agent::<String, i64>("writer")
        .topic(&input)
        .dead_letter("wf-dead")
        .yielding_to(vec![compacted.sink()], |stream| stream.map(|v: i64| Ok(v)));
    let mut worker = app.start_worker().await.expect("worker");
    for i in 0..3 {
        input.send(None, i).await.expect("queued");
    }
    assert!(worker.wait_idle(Duration::from_secs(60)).await);
    let dead = dead.lock().unwrap().clone();
    assert_eq!(dead.len(), 3, "{dead:?}");
    for (i, (value, error)) in dead.iter().enumerate() {
        assert_eq!(
            value,
            i.to_string().as_bytes(),
            "the source record, as read"
        );
        assert!(error.contains("wf-compacted"), "{error}");
    }
    assert_eq!(
        committed(&worker, "wf-in", 3).await,
        Some(3),
        "dead-lettered events are done"
    );
    let still = tokio::time::timeout(Duration::from_secs(2), worker.wait()).await;
    assert!(still.is_err(), "the worker goes on: {still:?}");
    worker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_without_a_dead_letter_topic_stops_the_worker() {
    let app = memory_app(&unique("wf-stop"));
    let input = app.topic::<String, i64>("wf-in");
    let compacted = app
        .topic::<String, i64>("wf-compacted")
        .config("cleanup.policy", "compact");
    app.agent::<String, i64>("writer")
        .topic(&input)
        .yielding_to(vec![compacted.sink()], |stream| stream.map(|v: i64| Ok(v)));
    let mut worker = app.start_worker().await.expect("worker");
    input.send(None, 7).await.expect("queued");
    let error = tokio::time::timeout(Duration::from_secs(60), worker.wait())
        .await
        .expect("the worker stops on the failed write");
    match error {
        Err(mephisto::runtime::error::RuntimeError::Agent(AgentError::WriteFailed {
            agent,
            target,
            ..
        })) => {
            assert_eq!(agent, "writer");
            assert_eq!(target, "wf-compacted");
        }
        other => panic!("expected WriteFailed, got {other:?}"),
    }
    let consumer = worker.consumer().expect("member");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(
        consumer.committed("wf-in", 0),
        Some(1),
        "the event whose output was lost is not committed"
    );
    worker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_the_decompression_cap_is_skipped_and_dead_lettered() {
    let app = memory_app(&unique("bomb"));
    app.configure(|s| s.consumer_max_decompressed_bytes = 1024 * 1024);
    let input = app.topic::<String, i64>("bomb-in");
    let dead = dead_letter_reader(&app, "bomb-dead");
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let s = seen.clone();
    app.agent::<String, i64>("counter")
        .topic(&input)
        .dead_letter("bomb-dead")
        .processing(move |mut stream| {
            let s = s.clone();
            async move {
                while let Some(v) = stream.next().await {
                    s.lock().unwrap().push(v);
                }
                Ok(())
            }
        });
    let mut worker = app.start_worker().await.expect("worker");
    input
        .send(None, 1)
        .await
        .expect("queued")
        .await
        .expect("written");
    // A zstd batch whose value inflates to 2 MB: a few KB on the wire, over the worker's cap.
    let url = app.broker_url().await.expect("url");
    let cluster = Cluster::connect(ClientConfig::from_url(&url).expect("url"))
        .await
        .expect("cluster");
    let producer = Producer::new(
        cluster,
        ProducerConfig {
            compression: Compression::Zstd,
            max_request_size: 8 * 1024 * 1024,
            buffer_memory: 16 * 1024 * 1024,
            ..ProducerConfig::default()
        },
    )
    .expect("producer");
    let bomb = producer
        .send(
            ProducerRecord::new("bomb-in")
                .partition(0)
                .value(vec![b'0'; 2_000_000]),
        )
        .await
        .expect("the broker takes it");
    assert_eq!(bomb.offset, 1);
    input
        .send(None, 3)
        .await
        .expect("queued")
        .await
        .expect("written");
    assert!(worker.wait_idle(Duration::from_secs(60)).await);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![1, 3],
        "the records around the bomb"
    );
    let dead = dead.lock().unwrap().clone();
    assert_eq!(dead.len(), 1, "the raw batch is dead-lettered");
    assert!(
        dead[0].0.len() < 100_000,
        "raw, as fetched: {} bytes",
        dead[0].0.len()
    );
    assert!(dead[0].1.contains("bomb-in[0]@1"), "{}", dead[0].1);
    assert_eq!(committed(&worker, "bomb-in", 3).await, Some(3));
    let still = tokio::time::timeout(Duration::from_secs(1), worker.wait()).await;
    assert!(still.is_err(), "the worker goes on: {still:?}");
    worker.stop().await.expect("stop");
    producer.close().await;
}
