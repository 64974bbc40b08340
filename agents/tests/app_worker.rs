//! The app layer against a private tansu: a worker runs topic agents; `ask`, `cast`, `map`,
//! `join` go through Kafka and the reply topic; sinks (function, topic, agent) receive the
//! yielded values; a record that does not decode and an agent error are acked, logged and
//! dead-lettered without stopping the worker; a second worker of the same app resumes after
//! the committed offsets.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use mephisto::{App, AskOptions};
use serde::{Deserialize, Serialize};
use support::{tansu, unique};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// An app on `url` with test-friendly timeouts (tansu completes a join after half the session
/// timeout).
fn app(url: &str, id: &str) -> App {
    support::app::test_app(url, id, 3)
}

async fn eventually<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn ask_cast_map_join_and_sinks() {
    let broker = tansu();
    let id = unique("app-adding");
    let app = app(&broker.url, &id);
    let topic = app.topic::<String, Add>(unique("adding"));
    let yielded = Arc::new(Mutex::new(Vec::<i64>::new()));
    let log_topic = app.topic::<String, i64>(unique("agent-log"));
    let logged = Arc::new(Mutex::new(Vec::<i64>::new()));
    let seen = logged.clone();
    let _log_reader = app
        .agent::<String, i64>("log_reader")
        .topic(&log_topic)
        .processing(move |stream| {
            let seen = seen.clone();
            async move {
                let mut stream = stream;
                while let Some(v) = stream.next().await {
                    seen.lock().unwrap().push(v);
                }
                Ok(())
            }
        });
    let doubled = Arc::new(Mutex::new(Vec::<i64>::new()));
    let d = doubled.clone();
    let agent_b = app
        .agent::<String, i64>("agent_b")
        .processing(move |stream| {
            let d = d.clone();
            async move {
                let mut stream = stream;
                while let Some(v) = stream.next().await {
                    d.lock().unwrap().push(v * 2);
                }
                Ok(())
            }
        });
    assert_eq!(agent_b.topic_name(), Some(format!("{id}-agent_b").as_str()));
    let y = yielded.clone();
    let adding = app
        .agent::<String, Add>("adding")
        .topic(&topic)
        .concurrency(4)
        .yielding_to(
            vec![
                mephisto::Sink::func(move |v: i64| y.lock().unwrap().push(v)),
                log_topic.sink(),
                agent_b.as_sink(),
            ],
            |stream| stream.map(|v: Add| Ok(v.a + v.b)),
        );
    let worker = app.start_worker().await.expect("worker starts");

    assert_eq!(adding.ask(Add { a: 4, b: 4 }).await.expect("ask"), 8);
    adding.cast(Add { a: 2, b: 2 }).await.expect("cast");
    let joined = adding
        .join((1..=8).map(|i| Add { a: i, b: i * i }))
        .await
        .expect("join");
    assert_eq!(joined, (1..=8).map(|i| i + i * i).collect::<Vec<_>>());
    let mut mapped: Vec<i64> = adding
        .map((1..=20).map(|i| Add { a: i, b: 0 }))
        .map(|r| r.expect("map reply"))
        .collect()
        .await;
    mapped.sort();
    assert_eq!(mapped, (1..=20).collect::<Vec<_>>());
    let with_key = adding
        .ask_with(
            Some("k1".to_string()),
            Add { a: 40, b: 2 },
            AskOptions::default(),
        )
        .await
        .expect("ask with key");
    assert_eq!(with_key, 42);

    // 1 ask + 1 cast + 8 join + 20 map + 1 ask = 31 values through every sink.
    let expected = 31;
    eventually("the function sink", Duration::from_secs(30), || {
        (yielded.lock().unwrap().len() == expected).then_some(())
    })
    .await;
    eventually("the topic sink", Duration::from_secs(30), || {
        (logged.lock().unwrap().len() == expected).then_some(())
    })
    .await;
    eventually("the agent sink", Duration::from_secs(30), || {
        (doubled.lock().unwrap().len() == expected).then_some(())
    })
    .await;
    let mut a = yielded.lock().unwrap().clone();
    let mut b = logged.lock().unwrap().clone();
    let mut c: Vec<i64> = doubled.lock().unwrap().iter().map(|v| v / 2).collect();
    a.sort();
    b.sort();
    c.sort();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert!(a.contains(&4) && a.contains(&8) && a.contains(&42));
    worker.stop().await.expect("worker stops");
}

#[tokio::test]
async fn bad_records_and_agent_errors_are_dead_lettered_and_the_worker_goes_on() {
    let broker = tansu();
    let id = unique("app-errors");
    let app = app(&broker.url, &id);
    let topic = app.topic::<String, Add>(unique("errors-in")).partitions(1);
    let dlt_name = unique("errors-dlt");
    let dead = app
        .topic::<String, String>(dlt_name.clone())
        .value_codec(mephisto::codec::CodecName::Raw);
    let good = Arc::new(Mutex::new(Vec::<i64>::new()));
    let g = good.clone();
    let _agent = app
        .agent::<String, Add>("strict")
        .topic(&topic)
        .dead_letter(dlt_name.clone())
        .processing(move |stream| {
            let g = g.clone();
            async move {
                let mut stream = stream;
                while let Some(v) = stream.next().await {
                    if v.a < 0 {
                        return Err(format!("negative a: {}", v.a).into());
                    }
                    g.lock().unwrap().push(v.a + v.b);
                }
                Ok(())
            }
        });
    let dead_seen = Arc::new(Mutex::new(Vec::<(Vec<(String, String)>, String)>::new()));
    let ds = dead_seen.clone();
    let _dead_reader = app
        .agent::<String, String>("dead_reader")
        .topic(&dead)
        .processing(move |stream| {
            let ds = ds.clone();
            async move {
                let mut events = stream.events();
                while let Some(ev) = events.next().await {
                    let headers = ev
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (
                                String::from_utf8_lossy(k).into_owned(),
                                String::from_utf8_lossy(v.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect();
                    ds.lock().unwrap().push((headers, ev.value.clone()));
                }
                Ok(())
            }
        });
    let worker = app.start_worker().await.expect("worker starts");
    let raw = app
        .topic::<String, String>(topic.name().to_string())
        .value_codec(mephisto::codec::CodecName::Raw);
    topic.send(None, Add { a: 1, b: 1 }).await.expect("send");
    raw.send(None, "not json".to_string())
        .await
        .expect("send garbage");
    topic
        .send(None, Add { a: -1, b: 0 })
        .await
        .expect("send failing");
    topic.send(None, Add { a: 3, b: 3 }).await.expect("send");
    eventually("both good records", Duration::from_secs(60), || {
        (good.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        *good.lock().unwrap(),
        vec![2, 6],
        "order kept, bad ones skipped"
    );
    let dead = eventually("two dead letters", Duration::from_secs(30), || {
        let d = dead_seen.lock().unwrap();
        (d.len() == 2).then(|| d.clone())
    })
    .await;
    let errors: Vec<String> = dead
        .iter()
        .map(|(h, _)| {
            h.iter()
                .find(|(k, _)| k == "mephisto-error")
                .map(|(_, v)| v.clone())
                .expect("error header")
        })
        .collect();
    assert!(errors.iter().any(|e| e.contains("json")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("negative a")),
        "{errors:?}"
    );
    let values: Vec<&str> = dead.iter().map(|(_, v)| v.as_str()).collect();
    assert!(values.contains(&"not json"), "{values:?}");
    assert!(values.iter().any(|v| v.contains("-1")), "{values:?}");
    for (h, _) in &dead {
        let source = h
            .iter()
            .find(|(k, _)| k == "mephisto-source")
            .map(|(_, v)| v.as_str())
            .expect("source header");
        assert!(source.starts_with(topic.name()), "{source}");
    }
    worker.stop().await.expect("worker stops");
}

#[tokio::test]
async fn a_second_worker_resumes_after_the_committed_offsets() {
    let broker = tansu();
    let id = unique("app-resume");
    let topic_name = unique("resume-in");
    let run = |values: Vec<i64>| {
        let url = broker.url.clone();
        let id = id.clone();
        let topic_name = topic_name.clone();
        async move {
            let app = app(&url, &id);
            let topic = app.topic::<String, i64>(topic_name);
            let seen = Arc::new(Mutex::new(Vec::<i64>::new()));
            let s = seen.clone();
            let _agent = app
                .agent::<String, i64>("counter")
                .topic(&topic)
                .processing(move |stream| {
                    let s = s.clone();
                    async move {
                        let mut stream = stream;
                        while let Some(v) = stream.next().await {
                            s.lock().unwrap().push(v);
                        }
                        Ok(())
                    }
                });
            let worker = app.start_worker().await.expect("worker starts");
            for v in &values {
                topic.send(None, *v).await.expect("send");
            }
            eventually("this run's records", Duration::from_secs(60), || {
                (seen.lock().unwrap().len() >= values.len()).then_some(())
            })
            .await;
            // Let a commit happen, then stop (which commits again).
            tokio::time::sleep(Duration::from_millis(500)).await;
            worker.stop().await.expect("worker stops");
            let mut seen = seen.lock().unwrap().clone();
            seen.sort();
            seen
        }
    };
    let first = run((0..10).collect()).await;
    assert_eq!(first, (0..10).collect::<Vec<_>>());
    let second = run((10..15).collect()).await;
    assert_eq!(second, (10..15).collect::<Vec<_>>(), "nothing read twice");
}

#[tokio::test]
async fn isolated_partitions_give_each_partition_its_own_instance() {
    let broker = tansu();
    let app = app(&broker.url, &unique("app-isolated"));
    let topic = app
        .topic::<String, i64>(unique("isolated-in"))
        .partitions(3);
    let next_instance = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::<(usize, i32, i64)>::new()));
    let (n, s) = (next_instance.clone(), seen.clone());
    let _agent = app
        .agent::<String, i64>("isolated")
        .topic(&topic)
        .isolated_partitions()
        .processing(move |stream| {
            let instance = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let s = s.clone();
            async move {
                let mut events = stream.events();
                while let Some(ev) = events.next().await {
                    let c = ev.coordinate().expect("coordinate");
                    s.lock().unwrap().push((instance, c.partition, c.offset));
                }
                Ok(())
            }
        });
    let worker = app.start_worker().await.expect("worker starts");
    for i in 0..30 {
        topic
            .send_with(
                None,
                i,
                mephisto::app::SendOptions {
                    partition: Some((i % 3) as i32),
                    ..Default::default()
                },
            )
            .await
            .expect("send");
    }
    eventually("all 30 processed", Duration::from_secs(60), || {
        (seen.lock().unwrap().len() == 30).then_some(())
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    let mut partition_of: std::collections::BTreeMap<usize, std::collections::BTreeSet<i32>> =
        Default::default();
    let mut last: std::collections::BTreeMap<i32, i64> = Default::default();
    for (instance, partition, offset) in &seen {
        partition_of
            .entry(*instance)
            .or_default()
            .insert(*partition);
        let prev = last.insert(*partition, *offset);
        assert!(
            prev.is_none_or(|p| p < *offset),
            "partition {partition} out of order"
        );
    }
    assert_eq!(
        partition_of.len(),
        3,
        "one instance per partition: {partition_of:?}"
    );
    assert!(
        partition_of.values().all(|p| p.len() == 1),
        "{partition_of:?}"
    );
    worker.stop().await.expect("worker stops");
}

#[tokio::test]
async fn concurrent_actors_overlap_and_commit_what_they_processed() {
    let broker = tansu();
    let id = unique("app-concurrency");
    let topic_name = unique("concurrency-in");
    const EVENTS: i64 = 40;
    const WORK: Duration = Duration::from_millis(100);
    let run = |send: bool| {
        let (url, id, topic_name) = (broker.url.clone(), id.clone(), topic_name.clone());
        async move {
            let app = app(&url, &id);
            let topic = app.topic::<String, i64>(topic_name);
            let seen = Arc::new(Mutex::new(Vec::<(i64, std::time::Instant)>::new()));
            let s = seen.clone();
            let _agent = app
                .agent::<String, i64>("slow")
                .topic(&topic)
                .concurrency(10)
                .processing(move |stream| {
                    let s = s.clone();
                    async move {
                        let mut stream = stream;
                        while let Some(v) = stream.next().await {
                            tokio::time::sleep(WORK).await;
                            s.lock().unwrap().push((v, std::time::Instant::now()));
                        }
                        Ok(())
                    }
                });
            let worker = app.start_worker().await.expect("worker starts");
            if send {
                for v in 0..EVENTS {
                    topic.send(None, v).await.expect("send");
                }
                eventually("all processed", Duration::from_secs(60), || {
                    (seen.lock().unwrap().len() as i64 == EVENTS).then_some(())
                })
                .await;
            } else {
                tokio::time::sleep(Duration::from_secs(8)).await;
            }
            worker.stop().await.expect("worker stops");
            let seen = seen.lock().unwrap().clone();
            seen
        }
    };
    let first = run(true).await;
    let start = first.iter().map(|s| s.1).min().expect("some") - WORK;
    let end = first.iter().map(|s| s.1).max().expect("some");
    let wall = end - start;
    eprintln!("10 actors: {EVENTS} events of {WORK:?} each in {wall:?}");
    assert!(
        wall < WORK * (EVENTS as u32) / 3,
        "{EVENTS} events of {WORK:?} took {wall:?}: the actors did not overlap"
    );
    let second = run(false).await;
    assert!(
        second.is_empty(),
        "read again after a clean stop: {second:?}"
    );
}
