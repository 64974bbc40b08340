//! Agents: concurrency, sinks, replies, errors and panics under the supervisor, retry, and
//! test_context.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use mephisto::ack::MemoryAcks;
use mephisto::agent::{Agent, Reply};
use mephisto::channel::Channel;
use mephisto::error::AgentError;
use mephisto::policy::{RestartPolicy, RetryPolicy};
use mephisto::reqrep::{reply_headers, ReqRepResponse};
use mephisto::sink::Sink;
use mephisto::BoxError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// Captures `tracing` output on this thread (the tests run on a current-thread runtime).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let w = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || w.clone())
            .finish();
        let guard = tracing::subscriber::set_default(sub);
        (logs, guard)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn collector<T: Send + 'static>() -> (
    Arc<Mutex<Vec<T>>>,
    impl Fn(T) + Clone + Send + Sync + 'static,
) {
    let v = Arc::new(Mutex::new(Vec::new()));
    let v2 = v.clone();
    (v, move |t| v2.lock().unwrap().push(t))
}

#[tokio::test]
async fn adding_agent_through_test_context() {
    let adding: Agent<Bytes, Add, i64> =
        Agent::yielding("adding", |stream| stream.map(|v: Add| Ok(v.a + v.b)));
    let ctx = adding.test_context().unwrap();
    assert_eq!(ctx.put(Add { a: 4, b: 4 }).await.unwrap(), Some(8));
    assert_eq!(ctx.put(Add { a: 2, b: 2 }).await.unwrap(), Some(4));
    assert_eq!(ctx.results().get(&0), Some(&vec![8]));
    assert_eq!(ctx.results().get(&1), Some(&vec![4]));
    assert_eq!(ctx.acked(), vec![0, 1]);
}

#[tokio::test]
async fn non_yielding_agent_put_returns_none() {
    let (seen, push) = collector::<i64>();
    let agent: Agent<(), i64, ()> = Agent::processing("printer", move |mut stream| {
        let push = push_clone(&push);
        async move {
            while let Some(v) = stream.next().await {
                push(v);
            }
            Ok(())
        }
    });
    let ctx = agent.test_context().unwrap();
    assert_eq!(ctx.put(5).await.unwrap(), None);
    assert_eq!(ctx.put(6).await.unwrap(), None);
    assert_eq!(*seen.lock().unwrap(), vec![5, 6]);
}

fn push_clone<T, F: Fn(T) + Clone>(f: &F) -> F {
    f.clone()
}

#[tokio::test]
async fn concurrency_processes_out_of_order_and_acks_all() {
    let acks = MemoryAcks::new();
    let ch: Channel<(), u64> = Channel::with_acks(64, Arc::new(acks.clone()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let (done, push) = collector::<u64>();
    let (inf, maxf) = (in_flight.clone(), max_in_flight.clone());
    let agent: Agent<(), u64, u64> = Agent::yielding("imports_news", move |stream| {
        let (inf, maxf) = (inf.clone(), maxf.clone());
        stream.then(move |delay_ms| {
            let (inf, maxf) = (inf.clone(), maxf.clone());
            async move {
                let now = inf.fetch_add(1, Ordering::SeqCst) + 1;
                maxf.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                inf.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, BoxError>(delay_ms)
            }
        })
    })
    .channel(ch.clone())
    .concurrency(4)
    .sink(Sink::func(push));
    let handle = agent.start().unwrap();
    let delays = [120u64, 10, 80, 0, 40, 20, 60, 30];
    for d in delays {
        ch.send(d).await.unwrap();
    }
    ch.close();
    tokio::time::timeout(Duration::from_secs(10), handle.join())
        .await
        .expect("agent finishes when the channel ends")
        .unwrap();
    let order = acks.acked_seqs();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..8).collect::<Vec<u64>>(),
        "every event acked once"
    );
    assert_ne!(order, sorted, "acks recorded out of order: {order:?}");
    let m = max_in_flight.load(Ordering::SeqCst);
    assert!(m > 1 && m <= 4, "max in flight {m}");
    let done = done.lock().unwrap().clone();
    assert_eq!(done.len(), 8);
    assert_ne!(done, delays.to_vec(), "processed out of order: {done:?}");
}

#[tokio::test]
async fn sinks_function_async_and_another_agent() {
    let (f_seen, f_push) = collector::<i64>();
    let (a_seen, a_push) = collector::<i64>();
    let (b_seen, b_push) = collector::<i64>();
    let agent_b: Agent<(), i64, ()> = Agent::processing("agent_b", move |mut stream| {
        let b_push = push_clone(&b_push);
        async move {
            while let Some(v) = stream.next().await {
                b_push(v);
            }
            Ok(())
        }
    });
    let b_ctx = agent_b.start().unwrap();
    let a_push = Arc::new(a_push);
    let agent_a: Agent<(), i64, i64> =
        Agent::yielding("agent_a", |stream| stream.map(|v: i64| Ok(v * 10)))
            .sink(Sink::func(f_push))
            .sink(Sink::async_func(move |v| {
                let a_push = a_push.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    a_push(v);
                }
            }))
            .sink(Sink::agent(&agent_b));
    let ctx = agent_a.test_context().unwrap();
    for v in 1..=3 {
        assert_eq!(ctx.put(v).await.unwrap(), Some(v * 10));
    }
    assert_eq!(*f_seen.lock().unwrap(), vec![10, 20, 30]);
    // The async sink was awaited before the event was done.
    assert_eq!(*a_seen.lock().unwrap(), vec![10, 20, 30]);
    tokio::time::timeout(Duration::from_secs(5), async {
        while b_seen.lock().unwrap().len() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(*b_seen.lock().unwrap(), vec![10, 20, 30]);
    b_ctx.stop();
}

#[tokio::test]
async fn sinks_on_non_yielding_agent_are_rejected() {
    let agent: Agent<(), i64, ()> =
        Agent::processing("quiet", |_stream| async { Ok(()) }).sink(Sink::func(|_| {}));
    match agent.start() {
        Err(AgentError::SinksWithoutYield { agent }) => assert_eq!(agent, "quiet"),
        other => panic!("expected SinksWithoutYield, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn yielded_values_reach_reply_callback_and_sinks() {
    let (replies, reply_push) = collector::<Reply<i64>>();
    let (sunk, sink_push) = collector::<i64>();
    let adding: Agent<String, Add, i64> =
        Agent::yielding("adding", |stream| stream.map(|v: Add| Ok(v.a + v.b)))
            .on_reply(reply_push)
            .reply_keys_as_json()
            .sink(Sink::func(sink_push));
    let ctx = adding.test_context().unwrap();
    let got = ctx
        .put_event(
            Some("k1".into()),
            Add { a: 2, b: 2 },
            reply_headers("f-reply-abc", "cid-1"),
        )
        .await
        .unwrap();
    assert_eq!(got, Some(4));
    // No reply headers: no reply, but the sink still gets the value.
    assert_eq!(ctx.put(Add { a: 1, b: 1 }).await.unwrap(), Some(2));
    let replies = replies.lock().unwrap().clone();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].topic, "f-reply-abc");
    assert_eq!(replies[0].correlation_id, "cid-1");
    assert_eq!(replies[0].key, Some(serde_json::json!("k1")));
    assert_eq!(replies[0].value, 4);
    let response = ReqRepResponse::new(
        replies[0].key.clone(),
        replies[0].value,
        replies[0].correlation_id.clone(),
    );
    assert_eq!(
        serde_json::to_value(&response).unwrap()["__faust"]["ns"],
        "@ReqRepResponse"
    );
    assert_eq!(*sunk.lock().unwrap(), vec![4, 2]);
}

fn failing_agent(name: &str, bad: i64, panic: bool) -> Agent<(), i64, i64> {
    Agent::yielding(name.to_string(), move |stream| {
        stream.map(move |v: i64| {
            if v == bad {
                if panic {
                    panic!("boom on {v}");
                }
                return Err(format!("bad value {v}").into());
            }
            Ok(v)
        })
    })
}

async fn error_restarts(panic: bool) {
    let (logs, _guard) = Logs::capture();
    let acks = MemoryAcks::new();
    let ch: Channel<(), i64> = Channel::with_acks(16, Arc::new(acks.clone()));
    let (out, push) = collector::<i64>();
    let agent = failing_agent("fragile", 13, panic)
        .channel(ch.clone())
        .sink(Sink::func(push));
    let handle = agent.start().unwrap();
    for v in [1, 13, 2, 13, 3] {
        ch.send(v).await.unwrap();
    }
    ch.close();
    tokio::time::timeout(Duration::from_secs(5), handle.join())
        .await
        .unwrap()
        .expect("within the restart limit the agent keeps going");
    assert_eq!(
        *out.lock().unwrap(),
        vec![1, 2, 3],
        "actor restarted after each error"
    );
    let mut acked = acks.acked_seqs();
    acked.sort();
    assert_eq!(acked, vec![0, 1, 2, 3, 4], "failed events are acked too");
    let text = logs.text();
    assert_eq!(
        text.matches("agent raised an error; event acked, restarting actor")
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains("agent=fragile"), "{text}");
    assert!(
        text.contains(" seq=1 ") && text.contains(" seq=3 "),
        "{text}"
    );
    if panic {
        assert!(
            text.contains("panicked") && text.contains("boom on 13"),
            "{text}"
        );
    } else {
        assert!(text.contains("bad value 13"), "{text}");
    }
}

#[tokio::test]
async fn error_acks_logs_and_restarts() {
    error_restarts(false).await;
}

#[tokio::test]
async fn panic_acks_logs_and_restarts() {
    error_restarts(true).await;
}

async fn restart_limit(panic: bool) {
    let acks = MemoryAcks::new();
    let ch: Channel<(), i64> = Channel::with_acks(16, Arc::new(acks.clone()));
    let agent = failing_agent("doomed", 13, panic)
        .channel(ch.clone())
        .supervisor(RestartPolicy {
            max_restarts: 2,
            within: Duration::from_secs(60),
        });
    let handle = agent.start().unwrap();
    for _ in 0..4 {
        ch.send(13).await.unwrap();
    }
    let err = tokio::time::timeout(Duration::from_secs(5), handle.join())
        .await
        .unwrap()
        .unwrap_err();
    match &err {
        AgentError::TooManyRestarts {
            agent,
            max_restarts,
            last,
            ..
        } => {
            assert_eq!(agent, "doomed");
            assert_eq!(*max_restarts, 2);
            match (panic, last.as_ref()) {
                (false, AgentError::Failed { at, .. })
                | (true, AgentError::Panicked { at, .. }) => {
                    assert_eq!(at.as_ref().unwrap().seq, 2)
                }
                other => panic!("unexpected last error {other:?}"),
            }
        }
        other => panic!("expected TooManyRestarts, got {other}"),
    }
    assert_eq!(err.event().unwrap().seq, 2);
    assert_eq!(
        acks.acked_seqs(),
        vec![0, 1, 2],
        "the fourth event was never taken"
    );
}

#[tokio::test]
async fn error_restart_limit_stops_agent() {
    restart_limit(false).await;
}

#[tokio::test]
async fn panic_restart_limit_stops_agent() {
    restart_limit(true).await;
}

#[tokio::test]
async fn test_context_surfaces_errors_and_panics() {
    let ctx = failing_agent("ctx", 13, false).test_context().unwrap();
    assert_eq!(ctx.put(1).await.unwrap(), Some(1));
    match ctx.put(13).await {
        Err(AgentError::Failed { agent, at, source }) => {
            assert_eq!(agent, "ctx");
            assert_eq!(at.unwrap().seq, 1);
            assert_eq!(source.to_string(), "bad value 13");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    // The crashing supervisor stopped the agent.
    assert!(ctx.put(2).await.is_err());

    let ctx = failing_agent("ctx-panic", 13, true).test_context().unwrap();
    match ctx.put(13).await {
        Err(AgentError::Panicked { message, at, .. }) => {
            assert_eq!(message, "boom on 13");
            assert_eq!(at.unwrap().seq, 0);
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(ctx.acked(), vec![0], "the failed event is acked");
}

fn flaky(failures: usize, attempts: Arc<AtomicUsize>) -> Agent<(), i64, i64> {
    Agent::yielding("flaky", move |stream| {
        let attempts = attempts.clone();
        stream.map(move |v: i64| {
            if v == 7 && attempts.fetch_add(1, Ordering::SeqCst) < failures {
                return Err("transient".into());
            }
            Ok(v * 2)
        })
    })
}

#[tokio::test(start_paused = true)]
async fn retry_policy_redelivers_with_backoff_in_virtual_time() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let ctx = flaky(2, attempts.clone())
        .retry(RetryPolicy::new(3, Duration::from_millis(20)))
        .test_context()
        .unwrap();
    let start = tokio::time::Instant::now();
    assert_eq!(ctx.put(7).await.unwrap(), Some(14));
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    // Backoff 20 ms then 40 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(60));
    assert_eq!(ctx.put(1).await.unwrap(), Some(2));
    assert_eq!(ctx.acked(), vec![0, 1]);

    // Retries exhausted: acked, error surfaces.
    let attempts = Arc::new(AtomicUsize::new(0));
    let ctx = flaky(usize::MAX, attempts.clone())
        .retry(RetryPolicy::new(2, Duration::from_millis(1)))
        .test_context()
        .unwrap();
    assert!(matches!(ctx.put(7).await, Err(AgentError::Failed { .. })));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(ctx.acked(), vec![0]);
    assert_eq!(
        RetryPolicy::new(5, Duration::from_millis(10)).delay(4),
        Duration::from_millis(40)
    );
}

#[tokio::test]
async fn retry_redelivers_to_a_processing_agent_that_returned_an_error() {
    // A non-yielding agent owns its stream: the error drops it, and the event must still be
    // redelivered, not acked by the drop.
    let attempts = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Mutex::new(Vec::new()));
    let (a, d) = (attempts.clone(), done.clone());
    let agent: Agent<(), i64, ()> = Agent::processing("flaky_processor", move |mut stream| {
        let (a, d) = (a.clone(), d.clone());
        async move {
            while let Some(v) = stream.next().await {
                if v == 7 && a.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err("transient".into());
                }
                d.lock().unwrap().push(v);
            }
            Ok(())
        }
    })
    .retry(RetryPolicy::new(3, Duration::from_millis(5)));
    let ctx = agent.test_context().unwrap();
    ctx.put(7).await.unwrap();
    ctx.put(8).await.unwrap();
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "two failures, then success"
    );
    assert_eq!(*done.lock().unwrap(), vec![7, 8]);
    assert_eq!(ctx.acked(), vec![0, 1]);
}

#[tokio::test]
async fn panicking_sink_crashes_the_actor_like_the_agent() {
    let acks = MemoryAcks::new();
    let ch: Channel<(), i64> = Channel::with_acks(16, Arc::new(acks.clone()));
    let (out, push) = collector::<i64>();
    let agent: Agent<(), i64, i64> = Agent::yielding("sunk", |s| s.map(|v: i64| Ok(v)))
        .channel(ch.clone())
        .sink(Sink::func(move |v| {
            if v == 2 {
                panic!("sink refuses {v}");
            }
            push(v)
        }));
    let handle = agent.start().unwrap();
    for v in [1, 2, 3] {
        ch.send(v).await.unwrap();
    }
    ch.close();
    tokio::time::timeout(Duration::from_secs(5), handle.join())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*out.lock().unwrap(), vec![1, 3]);
    let mut acked = acks.acked_seqs();
    acked.sort();
    assert_eq!(acked, vec![0, 1, 2]);
}

#[tokio::test]
async fn stop_ends_a_running_agent() {
    let agent: Agent<(), i64, i64> = Agent::yielding("idle", |s| s.map(|v: i64| Ok(v)));
    let handle = agent.start().unwrap();
    assert!(!handle.is_finished());
    handle.stop();
    tokio::time::timeout(Duration::from_secs(5), handle.join())
        .await
        .unwrap()
        .unwrap();
}

/// A fetched record at `offset` with value `value` (JSON), through the wire crate.
fn record_at(offset: i64, value: &str) -> mephisto_wire::record::Record {
    use mephisto_wire::record::{BatchEncoder, BatchSpec, DecodeOptions, NewRecord, RecordBatch};
    let mut buf = Vec::new();
    let spec = BatchSpec {
        base_offset: offset,
        ..BatchSpec::default()
    };
    BatchEncoder::new()
        .encode(
            &spec,
            &[NewRecord::new(
                None,
                Some(value.as_bytes()),
                1_700_000_000_000,
            )],
            &mut buf,
        )
        .unwrap();
    let batch = RecordBatch::parse(Bytes::from(buf), &DecodeOptions::default()).unwrap();
    batch
        .records()
        .unwrap()
        .into_iter()
        .next()
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn topic_events_keep_their_coordinates_in_errors_and_logs() {
    use mephisto::ack::AckRef;
    use mephisto::event::{Coordinate, Event, Message};
    let (logs, _guard) = Logs::capture();
    let acks = MemoryAcks::new();
    let ch: Channel<(), i64> = Channel::new(4);
    let agent = failing_agent("located", 13, false)
        .channel(ch.clone())
        .supervisor(RestartPolicy::crash());
    let handle = agent.start().unwrap();
    let message = Message {
        topic: "numbers".into(),
        partition: 2,
        record: record_at(41, "13"),
    };
    let ev = Event::from_message(
        None,
        13,
        message,
        Some(AckRef::new(Arc::new(acks.clone()), 41, 0)),
    );
    ch.sender().deliver(ev).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), handle.join())
        .await
        .unwrap()
        .unwrap_err();
    let coordinate = Coordinate {
        topic: "numbers".into(),
        partition: 2,
        offset: 41,
    };
    assert_eq!(err.event().unwrap().coordinate.as_ref(), Some(&coordinate));
    assert!(err.to_string().contains("numbers[2]@41"), "{err}");
    assert_eq!(acks.acked_seqs(), vec![41], "the failed event is acked");
    let text = logs.text();
    assert!(text.contains("coordinate=numbers[2]@41"), "{text}");
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn log_lines_of_the_agent_name_the_agent_and_the_event() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let agent: Agent<(), i64, ()> = Agent::processing("logger", |mut stream| async move {
        while let Some(v) = stream.next().await {
            tracing::info!(value = v, "processing");
        }
        Ok(())
    });
    let ctx = agent.test_context().unwrap();
    ctx.put(10).await.unwrap();
    ctx.put(11).await.unwrap();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("processing")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("name=logger") && lines[0].contains("event=0"),
        "{text}"
    );
    assert!(
        lines[1].contains("event=1") && lines[1].contains("value=11"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_are_counted_per_topic_partition_and_offset() {
    use mephisto::ack::AckRef;
    use mephisto::event::{Event, Message};
    // Two events at the same offset of two partitions, each failing once: with two attempts
    // each, both succeed (counted by sequence number alone, the second would look like the
    // first one's third attempt and be given up).
    let failed = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let f = failed.clone();
    let acks = MemoryAcks::new();
    let ch: Channel<(), i64> = Channel::new(4);
    let (out, push) = collector::<i64>();
    let agent: Agent<(), i64, i64> = Agent::yielding("per_partition", move |stream| {
        let f = f.clone();
        stream.map(move |v: i64| {
            if f.lock().unwrap().insert(v) {
                return Err(format!("first attempt of {v}").into());
            }
            Ok(v)
        })
    })
    .channel(ch.clone())
    .retry(RetryPolicy::new(2, Duration::from_millis(10)))
    .supervisor(RestartPolicy::crash())
    .sink(Sink::func(push));
    let handle = agent.start().unwrap();
    for (partition, value) in [(0, 100), (1, 200)] {
        let message = Message {
            topic: "t".into(),
            partition,
            record: record_at(5, "x"),
        };
        let ack = AckRef::new(Arc::new(acks.clone()), 5 + 10 * partition as u64, 0);
        ch.sender()
            .deliver(Event::from_message(None, value, message, Some(ack)))
            .await
            .unwrap();
    }
    ch.close();
    tokio::time::timeout(Duration::from_secs(5), handle.join())
        .await
        .unwrap()
        .expect("both events succeed on their second attempt");
    assert_eq!(*out.lock().unwrap(), vec![100, 200]);
    assert_eq!(acks.acked_seqs(), vec![5, 15]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_take_batch_is_redelivered_whole_and_nothing_is_acked_before() {
    let acks = MemoryAcks::new();
    let ch: Channel<(), i64> = Channel::with_acks(16, Arc::new(acks.clone()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen_acks = Arc::new(Mutex::new(Vec::new()));
    let (a, sa, ack_view) = (attempts.clone(), seen_acks.clone(), acks.clone());
    let (out, push) = collector::<Vec<i64>>();
    let agent: Agent<(), i64, Vec<i64>> = Agent::yielding("batches", move |stream| {
        let (a, sa, ack_view) = (a.clone(), sa.clone(), ack_view.clone());
        stream
            .take_batches(3, Duration::from_secs(1))
            .map(move |batch: Vec<i64>| {
                sa.lock().unwrap().push(ack_view.acked_seqs());
                if a.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err("first attempt fails".into());
                }
                Ok(batch)
            })
    })
    .channel(ch.clone())
    .retry(RetryPolicy::new(3, Duration::from_millis(10)))
    .supervisor(RestartPolicy::crash())
    .sink(Sink::func(push));
    let handle = agent.start().unwrap();
    for v in [1, 2, 3] {
        ch.send(v).await.unwrap();
    }
    ch.close();
    tokio::time::timeout(Duration::from_secs(5), handle.join())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *out.lock().unwrap(),
        vec![vec![1, 2, 3]],
        "the whole batch again"
    );
    let seen = seen_acks.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![Vec::<u64>::new(), Vec::new()],
        "nothing acked before the retry succeeded"
    );
    assert_eq!(acks.acked_seqs(), vec![0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn the_restart_limit_counts_within_its_window_in_virtual_time() {
    let ch: Channel<(), i64> = Channel::new(16);
    let agent = failing_agent("windowed", 13, false)
        .channel(ch.clone())
        .supervisor(RestartPolicy {
            max_restarts: 2,
            within: Duration::from_secs(10),
        });
    let handle = agent.start().unwrap();
    // Two failures 6 s apart, twice: never more than 2 within 10 s.
    for _ in 0..4 {
        ch.send(13).await.unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    assert!(!handle.is_finished(), "within the limit");
    // Three failures at once: the third restart within the window stops the agent.
    for _ in 0..3 {
        ch.send(13).await.unwrap();
    }
    let err = tokio::time::timeout(Duration::from_secs(5), handle.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, AgentError::TooManyRestarts { .. }), "{err}");
}
