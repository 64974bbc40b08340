//! Tables against a real broker (tansu, or the development broker with
//! `MEPHISTO_TEST_BROKER=dev`): an agent counts words in a table; every change goes to the
//! changelog in Faust's encoding (json key and value, a tombstone for a removal); a worker
//! that gets a partition recovers its counts from the changelog before it processes the
//! partition's events, so counts are exact across a stopped worker and a rebalance; a write
//! outside an event is a typed error.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use mephisto::{App, Table, TableError};
use support::tables::{send_words, Counting};
use support::topics::read_all;
use support::{tansu, unique};

const PARTITIONS: i32 = 3;

fn counting(url: &str, id: &str, topic: &str) -> Counting {
    support::tables::counting(url, id, topic, PARTITIONS)
}

fn table_of(t: &Table<String, i64>) -> BTreeMap<String, i64> {
    t.items().into_iter().collect()
}

fn expected(list: &[&str]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for w in list {
        *m.entry((*w).to_owned()).or_insert(0) += 1;
    }
    m
}

const FIRST: [&str; 12] = [
    "the", "quick", "brown", "fox", "the", "lazy", "dog", "the", "fox", "and", "a", "dog",
];
const SECOND: [&str; 6] = ["the", "fox", "again", "and", "again", "the"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_worker_recovers_the_counts_from_the_changelog() {
    let broker = tansu();
    let id = unique("tables-recover");
    let topic = unique("words");
    let first = counting(&broker.url, &id, &topic);
    let worker = first.app.start_worker().await.expect("worker");
    send_words(&first.words, &FIRST).await;
    assert!(
        worker.wait_idle(Duration::from_secs(60)).await,
        "first worker idle"
    );
    assert_eq!(table_of(&first.counts), expected(&FIRST));
    worker.stop().await.expect("stop");
    first.app.close().await;

    // Another process of the same app: it starts empty and recovers from the changelog.
    let second = counting(&broker.url, &id, &topic);
    let worker = second.app.start_worker().await.expect("worker");
    send_words(&second.words, &SECOND).await;
    assert!(
        worker.wait_idle(Duration::from_secs(60)).await,
        "second worker idle"
    );
    let mut all = FIRST.to_vec();
    all.extend(SECOND);
    assert_eq!(
        table_of(&second.counts),
        expected(&all),
        "recovered and counted on"
    );
    assert_eq!(second.counts.held_partitions(), vec![0, 1, 2]);
    // The worker shows its recoveries: every partition done, every change of the first read.
    let recovery = worker.recovery();
    assert_eq!(recovery.len(), 3, "{recovery:?}");
    assert!(
        recovery.iter().all(|r| r.done && r.records_left() == 0),
        "{recovery:?}"
    );
    let read: u64 = recovery.iter().map(|r| r.records).sum();
    assert_eq!(read, FIRST.len() as u64, "{recovery:?}");
    worker.stop().await.expect("stop");
    second.app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_changelog_holds_faust_records_and_tombstones() {
    let broker = tansu();
    let id = unique("tables-format");
    let c = counting(&broker.url, &id, &unique("words"));
    assert_eq!(c.counts.changelog_topic(), format!("{id}-counts-changelog"));
    let worker = c.app.start_worker().await.expect("worker");
    send_words(&c.words, &["fox", "fox", "-fox", "dog"]).await;
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    assert_eq!(table_of(&c.counts), expected(&["dog"]));
    let records = read_all(
        &broker.url,
        PARTITIONS,
        c.counts.changelog_topic(),
        4,
        Duration::from_secs(30),
    )
    .await;
    let mut fox: Vec<Option<Vec<u8>>> = Vec::new();
    let mut dog = Vec::new();
    for (key, value, _) in records.values().flatten() {
        match key.as_deref() {
            Some(b"\"fox\"") => fox.push(value.clone()),
            Some(b"\"dog\"") => dog.push(value.clone()),
            other => panic!("unexpected changelog key {other:?}"),
        }
    }
    // Faust's json: the key "fox" is `"fox"`, the count `1`, then `2`, then a tombstone.
    assert_eq!(fox, vec![Some(b"1".to_vec()), Some(b"2".to_vec()), None]);
    assert_eq!(dog, vec![Some(b"1".to_vec())]);
    worker.stop().await.expect("stop");
    c.app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_exact_when_one_of_two_workers_stops_mid_stream() {
    let broker = tansu();
    let id = unique("tables-two");
    let topic = unique("words");
    let a = counting(&broker.url, &id, &topic);
    let b = counting(&broker.url, &id, &topic);
    let wa = a.app.start_worker().await.expect("worker a");
    let wb = b.app.start_worker().await.expect("worker b");
    support::eventually(
        "both workers hold partitions",
        Duration::from_secs(60),
        || (!wa.partitions().is_empty() && !wb.partitions().is_empty()).then_some(()),
    )
    .await;
    let words: Vec<String> = (0..60).map(|i| format!("w{}", i % 9)).collect();
    let list: Vec<&str> = words.iter().map(String::as_str).collect();
    send_words(&a.words, &list[..30]).await;
    assert!(wa.wait_idle(Duration::from_secs(60)).await, "a idle");
    assert!(wb.wait_idle(Duration::from_secs(60)).await, "b idle");
    let held_by_a = a.counts.held_partitions();
    assert!(!held_by_a.is_empty(), "a holds table partitions");
    // Worker a leaves while b is running: b takes every partition and recovers a's.
    wa.stop().await.expect("stop a");
    a.app.close().await;
    send_words(&b.words, &list[30..]).await;
    assert!(wb.wait_idle(Duration::from_secs(90)).await, "b idle");
    assert_eq!(b.counts.held_partitions(), vec![0, 1, 2]);
    assert_eq!(table_of(&b.counts), expected(&list));
    wb.stop().await.expect("stop b");
    b.app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_outside_an_event_is_a_typed_error() {
    let broker = tansu();
    let c = counting(&broker.url, &unique("tables-outside"), &unique("words"));
    let err = c
        .counts
        .set("x".into(), 1)
        .await
        .expect_err("outside an event");
    assert!(matches!(err, TableError::OutsideEvent { .. }), "{err}");
    assert!(err.to_string().contains("outside an agent"), "{err}");
    // With the partitioner a write may come from anywhere.
    let free = c.app.table::<String, i64>("free").use_partitioner(true);
    c.app.declare().await.expect("declare");
    free.set("x".into(), 1).await.expect("partitioner write");
    c.app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_skips_what_does_not_decode_and_ends_on_empty_partitions() {
    let broker = tansu();
    let c = counting(&broker.url, &unique("tables-bad"), &unique("words"));
    c.app.declare().await.expect("declare");
    // Raw records in partition 0 of the changelog: two that do not decode, one that does;
    // partitions 1 and 2 stay empty.
    let raw = c
        .app
        .topic::<String, String>(c.counts.changelog_topic())
        .key_codec(mephisto::CodecName::Raw)
        .value_codec(mephisto::CodecName::Raw);
    for (k, v) in [("\"x\"", "not json"), ("not json", "1"), ("\"ok\"", "5")] {
        raw.send_with(
            Some(k.to_owned()),
            v.to_owned(),
            mephisto::SendOptions {
                partition: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("send")
        .await
        .expect("acked");
    }
    let worker = c.app.start_worker().await.expect("worker");
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    assert_eq!(c.counts.held_partitions(), vec![0, 1, 2]);
    assert_eq!(table_of(&c.counts), BTreeMap::from([("ok".to_owned(), 5)]));
    worker.stop().await.expect("stop");
    c.app.close().await;
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Hit {
    page: String,
    ts: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_follow_event_time_expire_and_hand_their_value_to_on_window_close() {
    use mephisto::state::window::Window;
    use std::sync::{Arc, Mutex};

    let broker = tansu();
    let app = support::app::test_app(&broker.url, &unique("tables-windows"), PARTITIONS);
    app.configure(|s| s.table_cleanup_interval = Duration::from_millis(100));
    let hits = app.topic::<String, Hit>(unique("hits"));
    type Closed = Vec<(String, (f64, f64), i64)>;
    let closed: Arc<Mutex<Closed>> = Arc::default();
    let seen = closed.clone();
    let views = app
        .windowed_table::<String, i64>(
            "views",
            Window::tumbling(Duration::from_secs(10)).expires(Duration::from_secs(30)),
        )
        .default_value(|| 0)
        .relative_to_field("ts")
        .on_window_close(move |page, range, n| {
            seen.lock().unwrap().push((page.clone(), range, *n));
        });
    let table = views.clone();
    let _agent = app
        .agent::<String, Hit>("count")
        .topic(&hits)
        .processing(move |mut hits| {
            let table = table.clone();
            async move {
                while let Some(hit) = hits.next().await {
                    table.update(hit.page, |n| *n += 1).await?;
                }
                Ok(())
            }
        });
    let worker = app.start_worker().await.expect("worker");
    // 9.95 falls in the window of 0 (Faust's ranges), 10.0 opens the next one, 5.0 comes
    // late but its window is not expired yet, 45.0 expires the windows starting at 0 and 10.
    for ts in [0.0, 9.95, 10.0, 25.0, 5.0] {
        let hit = Hit {
            page: "p".into(),
            ts,
        };
        hits.send(Some("p".into()), hit)
            .await
            .expect("send")
            .await
            .expect("acked");
    }
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    let keys = |t: &mephisto::WindowedTable<String, i64>| {
        let mut v: Vec<((f64, f64), i64)> = t
            .table()
            .items()
            .into_iter()
            .map(|(k, n)| (k.range, n))
            .collect();
        v.sort_by(|a, b| a.0 .0.total_cmp(&b.0 .0));
        v
    };
    assert_eq!(
        keys(&views),
        vec![((0.0, 9.9), 3), ((10.0, 19.9), 1), ((20.0, 29.9), 1)]
    );
    assert!(closed.lock().unwrap().is_empty(), "nothing expired yet");
    hits.send(
        Some("p".into()),
        Hit {
            page: "p".into(),
            ts: 45.0,
        },
    )
    .await
    .expect("send")
    .await
    .expect("acked");
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    support::eventually("windows expire", Duration::from_secs(10), || {
        (closed.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    let mut got = closed.lock().unwrap().clone();
    got.sort_by(|a, b| a.1 .0.total_cmp(&b.1 .0));
    assert_eq!(
        got,
        vec![("p".into(), (0.0, 9.9), 3), ("p".into(), (10.0, 19.9), 1)]
    );
    assert_eq!(keys(&views), vec![((20.0, 29.9), 1), ((40.0, 49.9), 1)]);
    worker.stop().await.expect("stop");
    app.close().await;
}

/// An app whose agent `register` stores each `name` under itself in the global table `users`.
fn registering(url: &str, id: &str, topic: &str) -> (App, Table<String, String>) {
    let app = support::app::test_app(url, id, PARTITIONS);
    let names = app.topic::<String, String>(topic);
    let users = app.global_table::<String, String>("users");
    let table = users.clone();
    let _agent = app
        .agent::<String, String>("register")
        .topic(&names)
        .processing(move |mut names| {
            let table = table.clone();
            async move {
                while let Some(name) = names.next().await {
                    table.set(name.clone(), name.to_uppercase()).await?;
                }
                Ok(())
            }
        });
    (app, users)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_holds_every_key_of_a_global_table() {
    let broker = tansu();
    let id = unique("tables-global");
    let topic = unique("names");
    let (a, users_a) = registering(&broker.url, &id, &topic);
    let (b, users_b) = registering(&broker.url, &id, &topic);
    let wa = a.start_worker().await.expect("worker a");
    let wb = b.start_worker().await.expect("worker b");
    support::eventually(
        "both workers hold partitions",
        Duration::from_secs(60),
        || (!wa.partitions().is_empty() && !wb.partitions().is_empty()).then_some(()),
    )
    .await;
    let names: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    let list: Vec<&str> = names.iter().map(String::as_str).collect();
    send_words(&a.topic::<String, String>(&topic), &list).await;
    assert!(wa.wait_idle(Duration::from_secs(60)).await, "a idle");
    assert!(wb.wait_idle(Duration::from_secs(60)).await, "b idle");
    let all: BTreeMap<String, String> = names
        .iter()
        .map(|n| (n.clone(), n.to_uppercase()))
        .collect();
    // Each worker wrote only its partitions' users, and reads everyone's.
    for (who, users) in [("a", &users_a), ("b", &users_b)] {
        support::eventually(
            &format!("{who} holds every user"),
            Duration::from_secs(30),
            || {
                let got: BTreeMap<String, String> = users.items().into_iter().collect();
                (got == all).then_some(())
            },
        )
        .await;
        assert_eq!(users.held_partitions(), vec![0, 1, 2]);
        assert_eq!(users.get(&"user7".to_owned()).as_deref(), Some("USER7"));
    }
    wa.stop().await.expect("stop a");
    wb.stop().await.expect("stop b");
    a.close().await;
    b.close().await;
}

/// An app whose agent applies "+m", "-m", "=m" (add m, remove everything else) to the set
/// of key `k` in the set table `members`.
fn set_app(url: &str, id: &str, topic: &str) -> (App, mephisto::SetTable<String, String>) {
    let app = support::app::test_app(url, id, PARTITIONS);
    let ops = app.topic::<String, String>(topic);
    let members = app.set_table::<String, String>("members");
    let table = members.clone();
    let _agent = app
        .agent::<String, String>("members")
        .topic(&ops)
        .processing(move |mut ops| {
            let table = table.clone();
            async move {
                while let Some(op) = ops.next().await {
                    let (sign, m) = op.split_at(1);
                    let key = "k".to_owned();
                    match sign {
                        "+" => table.add(key, m.to_owned()).await?,
                        "-" => table.discard(key, m.to_owned()).await?,
                        _ => {
                            let others: Vec<String> =
                                table.get(&key).into_iter().filter(|x| x != m).collect();
                            table.update(key, vec![m.to_owned()], others).await?
                        }
                    }
                }
                Ok(())
            }
        });
    (app, members)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_table_writes_faust_operations_and_recovers_from_them() {
    let broker = tansu();
    let id = unique("tables-set");
    let topic = unique("ops");
    let (app, members) = set_app(&broker.url, &id, &topic);
    let worker = app.start_worker().await.expect("worker");
    let ops = app.topic::<String, String>(&topic);
    for op in ["+a", "+b", "-a", "=c"] {
        // One key, so one partition and one order.
        ops.send(Some("k".into()), op.to_owned())
            .await
            .expect("send")
            .await
            .expect("acked");
    }
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    let only_c: std::collections::HashSet<String> = ["c".to_owned()].into();
    assert_eq!(members.get(&"k".to_owned()), only_c);
    let records = read_all(
        &broker.url,
        PARTITIONS,
        members.changelog_topic(),
        4,
        Duration::from_secs(30),
    )
    .await;
    let written: Vec<(Vec<u8>, Vec<u8>)> = records
        .values()
        .flatten()
        .map(|(k, v, _)| (k.clone().unwrap_or_default(), v.clone().unwrap_or_default()))
        .collect();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = [
        (r#"[1,"k"]"#, r#""a""#),
        (r#"[1,"k"]"#, r#""b""#),
        (r#"[2,"k"]"#, r#""a""#),
        (r#"[15,"k"]"#, r#"[["c"],["b"]]"#),
    ]
    .iter()
    .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect();
    assert_eq!(written, expected, "Faust's set operations");
    worker.stop().await.expect("stop");
    app.close().await;

    let (again, recovered) = set_app(&broker.url, &id, &topic);
    let worker = again.start_worker().await.expect("worker");
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    assert_eq!(recovered.get(&"k".to_owned()), only_c);
    worker.stop().await.expect("stop");
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_topic_with_other_partitions_than_the_changelog_is_a_typed_error() {
    use std::sync::{Arc, Mutex};

    let broker = tansu();
    let app = support::app::test_app(&broker.url, &unique("tables-mismatch"), PARTITIONS);
    let topic = unique("words");
    let words = app
        .topic::<String, String>(&topic)
        .partitions(PARTITIONS + 1);
    let counts = app.table::<String, i64>("counts").default_value(|| 0);
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let (table, seen) = (counts.clone(), errors.clone());
    let _agent = app
        .agent::<String, String>("count")
        .topic(&words)
        .processing(move |mut words| {
            let (table, seen) = (table.clone(), seen.clone());
            async move {
                while let Some(word) = words.next().await {
                    if let Err(e) = table.update(word, |n| *n += 1).await {
                        assert!(matches!(e, TableError::PartitionsMismatch { .. }), "{e}");
                        seen.lock().unwrap().push(e.to_string());
                    }
                }
                Ok(())
            }
        });
    let worker = app.start_worker().await.expect("worker");
    send_words(&words, &["a"]).await;
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let changelog = counts.changelog_topic();
    assert!(
        errors[0].contains(&format!("source topic {topic} has 4 partitions"))
            && errors[0].contains(&format!("changelog {changelog} has 3")),
        "{}",
        errors[0]
    );
    assert!(counts.is_empty(), "nothing written");
    worker.stop().await.expect("stop");
    app.close().await;
}
