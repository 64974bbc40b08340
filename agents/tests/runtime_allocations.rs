//! Allocations per event on the hot path, socket to agent function, counted by a global
//! allocator (`mephisto_test_support::heap_stats`) in a worker reading a real broker (tansu, or the development broker with
//! `MEPHISTO_TEST_BROKER=dev`; both run in processes of their own, so only the worker's
//! allocations are counted).
//!
//! The window is the steady state of one worker: after a warm-up of events (buffers grown,
//! queues sized), the count of allocations made by every thread of the process while the agent
//! processes the next events, divided by their number. What the worker does once per fetch
//! response, per commit or per heartbeat is spread over thousands of events; what it does per
//! event shows as one or more. A raw-bytes agent makes none per event; an agent of a JSON model
//! makes what serde makes decoding the value, and nothing else.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use mephisto::{App, CodecName};
use mephisto_test_support::heap_stats::{self, CountingAlloc};
use serde::{Deserialize, Serialize};
use support::app::test_app;
use support::{tansu, unique};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// The count is process-wide: the tests of this file take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Events written; the first `WARM_UP` are not counted.
const EVENTS: u64 = 60_000;
const WARM_UP: u64 = 10_000;
/// The counted window ends here (the last events may arrive in a short final fetch).
const WINDOW_END: u64 = 55_000;

/// A model with one owned field: serde allocates its `String` for each value.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount: f64,
}

fn order(i: u64) -> Order {
    Order {
        id: i as i64,
        customer: format!("customer-{:06}", i % 1000),
        amount: i as f64 / 4.0,
    }
}

/// Allocations per event while an agent processes events `WARM_UP..WINDOW_END`; `seen` is
/// bumped by the agent for each event.
async fn per_event(seen: &AtomicU64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    let wait_for = |n: u64| async move {
        while seen.load(Ordering::Acquire) < n {
            assert!(
                Instant::now() < deadline,
                "the agent saw {} of {n} events",
                seen.load(Ordering::Acquire)
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    };
    wait_for(WARM_UP).await;
    let from = seen.load(Ordering::Acquire);
    heap_stats::enable();
    wait_for(WINDOW_END).await;
    heap_stats::disable();
    let to = seen.load(Ordering::Acquire);
    heap_stats::allocations() as f64 / (to - from) as f64
}

/// What serde_json allocates decoding one `Order` value, on average over the same values.
fn serde_per_value() -> f64 {
    let values: Vec<Vec<u8>> = (0..1000)
        .map(|i| serde_json::to_vec(&order(i)).expect("encodes"))
        .collect();
    heap_stats::enable();
    for v in &values {
        std::hint::black_box(serde_json::from_slice::<Order>(v).expect("decodes"));
    }
    heap_stats::disable();
    heap_stats::allocations() as f64 / values.len() as f64
}

/// Writes `EVENTS` records to `topic` with the app's producer, before any counting.
async fn fill<F: Fn(u64) -> Bytes>(app: &App, topic: &str, value: F) {
    let raw = app
        .topic::<Bytes, Bytes>(topic)
        .key_codec(CodecName::Raw)
        .value_codec(CodecName::Raw);
    let mut last = None;
    for i in 0..EVENTS {
        last = Some(raw.send(None, value(i)).await.expect("queued"));
    }
    if let Some(handle) = last {
        handle.await.expect("written");
    }
}

/// A processing agent on `topic` that only counts its events.
fn counting_agent<V: mephisto::app::Model>(
    app: &App,
    topic: &mephisto::Topic<Bytes, V>,
) -> Arc<AtomicU64> {
    let seen = Arc::new(AtomicU64::new(0));
    let s = Arc::clone(&seen);
    app.agent::<Bytes, V>("count")
        .topic(topic)
        .processing(move |mut stream| {
            let s = Arc::clone(&s);
            async move {
                while let Some(v) = stream.next().await {
                    std::hint::black_box(&v);
                    s.fetch_add(1, Ordering::Release);
                }
                Ok(())
            }
        });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_bytes_agent_allocates_nothing_per_event() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let broker = tansu();
    let app = test_app(&broker.url, &unique("alloc-raw"), 4);
    let name = unique("alloc-raw-in");
    fill(&app, &name, |i| {
        Bytes::from(format!("value-{i:08}-{}", "x".repeat(64)))
    })
    .await;
    let topic = app
        .topic::<Bytes, Bytes>(name)
        .key_codec(CodecName::Raw)
        .value_codec(CodecName::Raw);
    let seen = counting_agent(&app, &topic);
    let worker = app.start_worker().await.expect("worker");
    let per_event = per_event(&seen).await;
    worker.stop().await.expect("stop");
    eprintln!("raw bytes agent: {per_event:.4} allocations per event");
    assert!(
        per_event < 0.05,
        "a raw-bytes agent allocates {per_event:.4} times per event (fetch responses, commits \
         and heartbeats spread over the events are a few hundredths at most)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_agent_allocates_only_what_serde_does() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let broker = tansu();
    let app = test_app(&broker.url, &unique("alloc-json"), 4);
    let name = unique("alloc-json-in");
    fill(&app, &name, |i| {
        Bytes::from(serde_json::to_vec(&order(i)).expect("encodes"))
    })
    .await;
    let topic = app
        .topic::<Bytes, Order>(name)
        .key_codec(CodecName::Raw)
        .value_codec(CodecName::Json);
    let seen = counting_agent(&app, &topic);
    let worker = app.start_worker().await.expect("worker");
    let per_event = per_event(&seen).await;
    worker.stop().await.expect("stop");
    let serde = serde_per_value();
    eprintln!(
        "JSON model agent: {per_event:.4} allocations per event, serde_json alone {serde:.4}"
    );
    assert!(serde >= 1.0, "the model's String is allocated by serde");
    assert!(
        per_event < serde + 0.05,
        "a model agent allocates {per_event:.4} times per event, serde alone {serde:.4}"
    );
}
