//! What the agents runtime promises, on a real broker (tansu, or the development broker with
//! `MEPHISTO_TEST_BROKER=dev`): every agent subscribed to a topic gets every event; an agent
//! that returns ends alone; `cast` returns a handle once queued; an `ask` that gives up forgets
//! its correlation id and a colliding id is refused; reply topics get Faust's settings and go
//! away on close; heartbeats go on while an agent blocks its thread; a stopping worker stays
//! within its grace period whatever its queues hold, and commits nothing it did not finish;
//! `group_by` with concurrency > 1 is refused.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mephisto::{AgentError, App, AppError, AskOptions};
use mephisto_engine::{Admin, ClientConfig, Cluster};
use support::app::test_app;
use support::{tansu, unique};

type Seen = Arc<Mutex<Vec<i64>>>;

/// An agent on `topic` recording what it sees.
fn recorder(app: &App, name: &str, topic: &mephisto::Topic<String, i64>) -> Seen {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    app.agent::<String, i64>(name)
        .topic(topic)
        .processing(move |mut stream| {
            let s = s.clone();
            async move {
                while let Some(v) = stream.next().await {
                    s.lock().unwrap().push(v);
                }
                Ok(())
            }
        });
    seen
}

fn sorted(seen: &Seen) -> Vec<i64> {
    let mut v = seen.lock().unwrap().clone();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_agent_subscribed_to_a_topic_gets_every_event() {
    let broker = tansu();
    let app = test_app(&broker.url, &unique("multi"), 2);
    let topic = app.topic::<String, i64>(unique("multi-in"));
    let a = recorder(&app, "a", &topic);
    let b = recorder(&app, "b", &topic);
    let worker = app.start_worker().await.expect("worker");
    for i in 0..20 {
        topic
            .send(Some(format!("k{i}")), i)
            .await
            .expect("queued")
            .await
            .expect("written");
    }
    assert!(worker.wait_idle(Duration::from_secs(60)).await);
    let all: Vec<i64> = (0..20).collect();
    assert_eq!(sorted(&a), all, "agent a");
    assert_eq!(sorted(&b), all, "agent b");
    // The partitions are committed once both agents acked: a second worker reads nothing.
    worker.stop().await.expect("stop");
    let app2 = test_app(&broker.url, app.id(), 2);
    let topic2 = app2.topic::<String, i64>(topic.name().to_owned());
    let again = recorder(&app2, "a", &topic2);
    let worker = app2.start_worker().await.expect("worker");
    assert!(worker.wait_idle(Duration::from_secs(60)).await);
    assert!(sorted(&again).is_empty(), "re-read {:?}", sorted(&again));
    worker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_function_returns_ends_alone_and_its_events_are_acked_for_it() {
    let broker = tansu();
    let app = test_app(&broker.url, &unique("quit"), 1);
    let quits = app.topic::<String, i64>(unique("quit-in"));
    let steady = app.topic::<String, i64>(unique("steady-in"));
    let quitter_saw = Arc::new(AtomicUsize::new(0));
    let q = quitter_saw.clone();
    app.agent::<String, i64>("quitter")
        .topic(&quits)
        .processing(move |mut stream| {
            let q = q.clone();
            async move {
                // Takes one event and returns.
                if stream.next().await.is_some() {
                    q.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            }
        });
    let steady_saw = recorder(&app, "steady", &steady);
    let mut worker = app.start_worker().await.expect("worker");
    for i in 0..5 {
        quits.send(None, i).await.expect("queued");
        steady.send(None, i).await.expect("queued");
    }
    let waited = tokio::time::timeout(Duration::from_secs(8), worker.wait()).await;
    assert!(waited.is_err(), "the worker goes on: {waited:?}");
    assert!(worker.wait_idle(Duration::from_secs(60)).await);
    assert_eq!(quitter_saw.load(Ordering::SeqCst), 1);
    assert_eq!(sorted(&steady_saw), vec![0, 1, 2, 3, 4]);
    // The ended agent's topic is committed past its events: nothing stalls.
    let consumer = worker.consumer().expect("member");
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.committed(quits.name(), 0) != Some(5) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(consumer.committed(quits.name(), 0), Some(5));
    worker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cast_returns_once_queued_with_a_handle_for_the_delivery() {
    let broker = tansu();
    let app = test_app(&broker.url, &unique("cast"), 1);
    let agent = app
        .agent::<String, i64>("sink")
        .processing(|mut stream| async move {
            while stream.next().await.is_some() {}
            Ok(())
        });
    let mut handles = Vec::new();
    for i in 0..10 {
        handles.push(agent.cast(i).await.expect("queued").expect("a topic agent"));
    }
    let mut offsets = Vec::new();
    for h in handles {
        offsets.push(h.await.expect("written").offset);
    }
    assert_eq!(offsets, (0..10).collect::<Vec<i64>>());
    app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_that_gives_up_forgets_its_waiter_and_a_colliding_id_is_refused() {
    let broker = tansu();
    let app = test_app(&broker.url, &unique("ask"), 1);
    // An agent that never yields: no reply ever comes.
    let mute = app
        .agent::<String, i64>("mute")
        .processing(|mut stream| async move {
            while stream.next().await.is_some() {}
            Ok(())
        });
    let gave_up = tokio::time::timeout(Duration::from_millis(500), mute.ask(1)).await;
    assert!(gave_up.is_err(), "no reply");
    assert_eq!(app.pending_asks(), 0, "the cancelled ask forgot its waiter");
    let options = || AskOptions {
        correlation_id: Some("same-id".into()),
        ..AskOptions::default()
    };
    let first = mute.ask_with(None, 1, options());
    let second = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        mute.ask_with(None, 2, options()).await
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            r = first => panic!("the first ask cannot be answered: {r:?}"),
            r = second => r,
        }
    })
    .await
    .expect("the second ask is refused at once");
    assert!(
        matches!(
            outcome,
            Err(AppError::Runtime(
                mephisto::runtime::error::RuntimeError::DuplicateCorrelationId(_)
            ))
        ),
        "{outcome:?}"
    );
    assert_eq!(app.pending_asks(), 0);
    app.close().await;
}

async fn admin(url: &str) -> Admin {
    let config = ClientConfig::from_url(url).expect("url");
    Admin::new(Cluster::connect(config).await.expect("cluster"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_topic_has_faust_settings_and_goes_away_on_close() {
    let broker = tansu();
    let server = test_app(&broker.url, &unique("replier"), 1);
    let adding = server
        .agent::<String, i64>("double")
        .yielding(|stream| stream.map(|v: i64| Ok(v * 2)));
    let worker = server.start_worker().await.expect("worker");
    let client = test_app(&broker.url, &unique("asker"), 1);
    let remote = client
        .agent::<String, i64>("double")
        .topic(adding.topic().expect("topic agent"))
        .yielding(|stream| stream.map(|v: i64| Ok(v * 2)));
    assert_eq!(remote.ask(21).await.expect("reply"), 42);
    let reply_topic = client.reply_topic();
    let admin = admin(&broker.url).await;
    let configs = admin
        .describe_topic_config(&reply_topic)
        .await
        .expect("describe");
    let get = |k: &str| {
        configs
            .iter()
            .find(|(name, _)| name == k)
            .and_then(|(_, v)| v.clone())
    };
    assert_eq!(get("cleanup.policy").as_deref(), Some("delete"));
    assert_eq!(get("retention.ms").as_deref(), Some("86400000"));
    client.close().await;
    let names: Vec<String> = admin
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(!names.contains(&reply_topic), "{reply_topic} left behind");
    worker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_go_on_while_an_agent_blocks_its_thread_for_twice_the_session() {
    let broker = tansu();
    let app = test_app(&broker.url, &unique("blocker"), 1);
    let session = app.settings().broker_session_timeout;
    let topic = app.topic::<String, i64>(unique("blocker-in"));
    let started = Arc::new(AtomicUsize::new(0));
    let st = started.clone();
    app.agent::<String, i64>("blocker")
        .topic(&topic)
        .processing(move |mut stream| {
            let st = st.clone();
            async move {
                while stream.next().await.is_some() {
                    st.fetch_add(1, Ordering::SeqCst);
                    // Blocking code in an agent: the whole thread is taken.
                    std::thread::sleep(session * 2);
                }
                Ok(())
            }
        });
    let worker = app.start_worker().await.expect("worker");
    topic.send(None, 1).await.expect("queued");
    let consumer = worker.consumer().expect("member");
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "the agent took the event"
    );
    let before = consumer.generation().expect("joined");
    let assignment = consumer.assignment();
    // While the agent blocks, the member stays in its generation.
    tokio::time::sleep(session + session / 2).await;
    assert_eq!(consumer.generation(), Some(before.clone()), "no rebalance");
    assert_eq!(consumer.assignment(), assignment);
    assert_eq!(
        consumer.member_state(),
        mephisto_engine::group::MemberState::Stable
    );
    assert!(worker.wait_idle(Duration::from_secs(60)).await);
    assert_eq!(
        consumer.generation(),
        Some(before),
        "still the same generation"
    );
    worker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_stays_within_its_grace_and_commits_nothing_unfinished() {
    let broker = tansu();
    let id = unique("grace");
    let app = test_app(&broker.url, &id, 1);
    let grace = Duration::from_secs(3);
    app.configure(|s| {
        s.shutdown_timeout = grace;
        s.stream_buffer_maxsize = 16;
    });
    let topic = app.topic::<String, i64>(unique("grace-in"));
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let taken = Arc::new(AtomicUsize::new(0));
    let t = taken.clone();
    // A `take` agent whose batches take far longer than the grace period.
    app.agent::<String, i64>("slow")
        .topic(&topic)
        .processing(move |stream| {
            let (f, t) = (f.clone(), t.clone());
            async move {
                let mut batches = stream.take_batches(4, Duration::from_millis(100));
                while let Some(batch) = batches.next().await {
                    t.fetch_add(batch.len(), Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    f.fetch_add(batch.len(), Ordering::SeqCst);
                }
                Ok(())
            }
        });
    let worker = app.start_worker().await.expect("worker");
    for i in 0..100 {
        topic.send(None, i).await.expect("queued");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while taken.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(taken.load(Ordering::SeqCst) > 0, "a batch is in processing");
    let start = Instant::now();
    let report = worker.stop().await.expect("stop");
    let took = start.elapsed();
    assert!(took < grace + Duration::from_secs(2), "stop took {took:?}");
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    assert!(report.in_processing_abandoned > 0, "{report:?}");
    // A new worker of the same app reads every record again: nothing was committed of the
    // batch that never finished.
    let app2 = test_app(&broker.url, &id, 1);
    let topic2 = app2.topic::<String, i64>(topic.name().to_owned());
    let again = recorder(&app2, "slow", &topic2);
    let worker = app2.start_worker().await.expect("worker");
    assert!(worker.wait_idle(Duration::from_secs(60)).await);
    assert_eq!(sorted(&again), (0..100).collect::<Vec<i64>>());
    worker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_on_an_agent_with_concurrency_is_refused() {
    let broker = tansu();
    let app = test_app(&broker.url, &unique("gb-conc"), 1);
    let topic = app.topic::<String, i64>(unique("gb-conc-in"));
    app.agent::<String, i64>("regroup")
        .topic(&topic)
        .concurrency(2)
        .processing(|stream| async move {
            let mut s = stream.group_by(|v: &i64| format!("k{}", v % 2), "parity");
            while s.next().await.is_some() {}
            Ok(())
        });
    let mut worker = app.start_worker().await.expect("worker");
    let error = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("the agent stops at once");
    match error {
        Err(mephisto::runtime::error::RuntimeError::Agent(AgentError::Misconfigured {
            agent,
            reason,
        })) => {
            assert_eq!(agent, "regroup");
            assert!(reason.contains("concurrency"), "{reason}");
        }
        other => panic!("expected Misconfigured, got {other:?}"),
    }
    worker.stop().await.expect("stop");
}
