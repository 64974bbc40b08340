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
use support::tables::{expected, fill_changelog, send_words, table_of, Counting, FIRST, SECOND};
use support::topics::read_all;
use support::{tansu, unique};

const PARTITIONS: i32 = 3;

fn counting(url: &str, id: &str, topic: &str) -> Counting {
    support::tables::counting(url, id, topic, PARTITIONS)
}

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

/// Writes to partition 0 of `c`'s changelog two records that do not decode and one that
/// does (`"ok"` → 5).
async fn write_bad_changelog(c: &Counting) {
    c.app.declare().await.expect("declare");
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_skips_what_does_not_decode_and_ends_on_empty_partitions() {
    let broker = tansu();
    let c = counting(&broker.url, &unique("tables-bad"), &unique("words"));
    // Partitions 1 and 2 stay empty.
    write_bad_changelog(&c).await;
    let worker = c.app.start_worker().await.expect("worker");
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    assert_eq!(c.counts.held_partitions(), vec![0, 1, 2]);
    assert_eq!(table_of(&c.counts), BTreeMap::from([("ok".to_owned(), 5)]));
    worker.stop().await.expect("stop");
    c.app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_fails_on_bad_records_stops_the_worker_with_their_coordinates() {
    let broker = tansu();
    let c = counting(&broker.url, &unique("tables-strict"), &unique("words"));
    let _ = c.counts.clone().fail_recovery_on_bad_records(true);
    write_bad_changelog(&c).await;
    let mut worker = c.app.start_worker().await.expect("worker");
    let err = tokio::time::timeout(Duration::from_secs(60), worker.wait())
        .await
        .expect("the worker stops")
        .expect_err("with the recovery's error");
    let text = err.to_string();
    assert!(
        text.contains("does not decode") && text.contains("-counts-changelog[0]@0"),
        "{text}"
    );
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

fn set_app(url: &str, id: &str, topic: &str) -> (App, mephisto::SetTable<String, String>) {
    support::tables::set_app(url, id, topic, PARTITIONS, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_table_writes_faust_operations_and_recovers_from_them() {
    let broker = tansu();
    let id = unique("tables-set");
    let topic = unique("ops");
    let (app, members) = set_app(&broker.url, &id, &topic);
    let worker = app.start_worker().await.expect("worker");
    support::tables::send_ops(&app, &topic, &["+a", "+b", "-a", "=c"]).await;
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

/// A counting app (and its id and topic) whose changelog holds `per_partition` records
/// `p<p>-<j>` in each partition before it starts.
async fn filled(url: &str, name: &str, per_partition: u64) -> (Counting, String, String) {
    let (id, topic) = (unique(name), unique("words"));
    let changelog = format!("{id}-counts-changelog");
    fill_changelog(url, &changelog, PARTITIONS, per_partition, u64::MAX, &[]).await;
    (counting(url, &id, &topic), id, topic)
}

/// Slows `table`'s recovery down: 1 ms every 20 changelog records (about 1 s per 20,000).
fn slow_recovery(table: &Table<String, i64>) {
    let n = std::sync::atomic::AtomicU64::new(0);
    let _ = table.clone().on_changelog_event(move |_, _| {
        if n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(20)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_during_recovery_restarts_it_cleanly_with_the_new_assignment() {
    const PER_PARTITION: u64 = 40_000;
    // The development broker: it answers fetches within their size limits (recovery goes in
    // many small steps, so a revocation stops it midway) and completes joins at once (tansu
    // waits half the session timeout).
    let broker = support::dev_broker();
    let (a, id, topic) = filled(&broker.url, "tables-rebalance", PER_PARTITION).await;
    slow_recovery(&a.counts);
    let worker_a = a.app.start_worker().await.expect("worker a");
    support::eventually("a recovering", Duration::from_secs(60), || {
        let r = worker_a.recovery();
        (!r.is_empty() && r.iter().any(|p| !p.done && p.records > 0)).then_some(())
    })
    .await;
    // B joins while A recovers: the group rebalances in the middle of A's recoveries.
    let b = counting(&broker.url, &id, &topic);
    let worker_b = b.app.start_worker().await.expect("worker b");
    let mut a_unfinished = true;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while worker_b.recovery().is_empty() {
        a_unfinished = worker_a.recovery().iter().any(|p| !p.done);
        assert!(std::time::Instant::now() < deadline, "B got no partition");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        a_unfinished,
        "A had recovered everything before B got partitions (make its recovery longer)"
    );
    send_words(&a.words, &SECOND).await;
    for w in [&worker_a, &worker_b] {
        assert!(w.wait_idle(Duration::from_secs(120)).await, "idle");
    }
    // Each partition has one holder, and nobody keeps a partition it does not hold (the
    // revoked recoveries' partial data is gone).
    let (held_a, held_b) = (a.counts.held_partitions(), b.counts.held_partitions());
    let mut all: Vec<i32> = held_a.iter().chain(&held_b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2], "a {held_a:?}, b {held_b:?}");
    assert!(
        !held_a.is_empty() && !held_b.is_empty(),
        "a {held_a:?}, b {held_b:?}"
    );
    // Every key is there exactly once: the changelog's and the words counted since.
    let total = a.counts.len() + b.counts.len();
    assert_eq!(
        total,
        (PER_PARTITION * PARTITIONS as u64) as usize + expected(&SECOND).len()
    );
    let mut counted = table_of(&a.counts);
    counted.extend(table_of(&b.counts));
    for (word, n) in expected(&SECOND) {
        assert_eq!(counted.get(&word), Some(&n), "{word}");
    }
    assert_eq!(counted.get("p1-7"), Some(&7));
    for (w, app) in [(worker_a, a.app), (worker_b, b.app)] {
        w.stop().await.expect("stop");
        app.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_starts_at_the_log_start_of_a_trimmed_or_compacted_changelog() {
    // The development broker: it applies retention.bytes and compaction as it appends.
    let broker = support::dev_broker();
    for policy in ["delete", "compact"] {
        let id = unique("tables-trimmed");
        let topic = unique("words");
        let changelog = format!("{id}-counts-changelog");
        // 3,000 records per partition over 300 keys, 8 KiB kept: the log start moves (and,
        // compacted, the log has gaps).
        let configs = [("cleanup.policy", policy), ("retention.bytes", "8192")];
        fill_changelog(&broker.url, &changelog, PARTITIONS, 3_000, 300, &configs).await;
        let starts = support::topics::log_starts(&broker.url, &changelog, PARTITIONS).await;
        let (left, read) =
            support::topics::latest_values(&broker.url, &changelog, PARTITIONS).await;
        match policy {
            // Retention moved the log start.
            "delete" => assert!(starts.iter().all(|s| *s > 0), "log starts {starts:?}"),
            // Compaction left gaps: fewer records than offsets.
            _ => assert!(read < 3 * 3_000, "compacted: {read} records left"),
        }
        let c = counting(&broker.url, &id, &topic);
        let worker = c.app.start_worker().await.expect("worker");
        assert!(
            worker.wait_idle(Duration::from_secs(60)).await,
            "{policy}: idle"
        );
        let recovery = worker.recovery();
        assert!(recovery.iter().all(|r| r.done), "{policy}: {recovery:?}");
        let recovered: u64 = recovery.iter().map(|r| r.records).sum();
        assert_eq!(
            recovered, read,
            "{policy}: every record the changelog still has"
        );
        let want: BTreeMap<String, i64> = left
            .into_iter()
            .map(|(k, v)| {
                let k: String = serde_json::from_slice(&k).expect("json key");
                (k, serde_json::from_slice(&v).expect("json value"))
            })
            .collect();
        assert_eq!(table_of(&c.counts), want, "{policy}");
        worker.stop().await.expect("stop");
        c.app.close().await;
    }
}

/// A transactional writer of the changelog (confluent-kafka): two committed transactions of
/// keys `t0..t29` over 3 partitions, values `100 * t + i`; every partition ends with a
/// commit marker.
const PEER_TRANSACTIONAL_CHANGELOG: &str = r#"
import sys, json
from confluent_kafka import Producer
addr, topic, txid = sys.argv[1], sys.argv[2], sys.argv[3]
p = Producer({"bootstrap.servers": addr, "transactional.id": txid, "linger.ms": 5})
p.init_transactions(30)
for t in range(2):
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, key=json.dumps(f"t{i}"), value=json.dumps(100 * t + i), partition=i % 3)
    p.flush(30)
    p.commit_transaction(30)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_ends_on_a_changelog_that_ends_with_transaction_markers() {
    if support::is_dev_broker() {
        eprintln!(
            "skipped on the development broker: it refuses transactional producers \
             (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); runs on tansu"
        );
        return;
    }
    let broker = tansu();
    let id = unique("tables-txn");
    let topic = unique("words");
    let changelog = format!("{id}-counts-changelog");
    fill_changelog(&broker.url, &changelog, PARTITIONS, 0, 1, &[]).await;
    support::python(
        PEER_TRANSACTIONAL_CHANGELOG,
        &[&broker.addr, &changelog, &format!("{id}-tx")],
    );
    let c = counting(&broker.url, &id, &topic);
    let worker = c.app.start_worker().await.expect("worker");
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    let recovery = worker.recovery();
    assert!(
        recovery.iter().all(|r| r.done && r.records_left() == 0),
        "{recovery:?}"
    );
    let read: u64 = recovery.iter().map(|r| r.records).sum();
    assert_eq!(read, 60, "every data record, no marker: {recovery:?}");
    let want: BTreeMap<String, i64> = (0..30).map(|i| (format!("t{i}"), 100 + i)).collect();
    assert_eq!(table_of(&c.counts), want);
    worker.stop().await.expect("stop");
    c.app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_recovery_holds_up_neither_other_partitions_nor_heartbeats() {
    const PER_PARTITION: u64 = 8_000;
    let broker = tansu();
    let (c, _, _) = filled(&broker.url, "tables-long", PER_PARTITION).await;
    // Partition 2's recovery takes 1 ms per record (8 s, longer than the 6 s session timeout),
    // blocking the thread it runs on, as a heavy recovery does.
    let _ = c.counts.clone().on_changelog_event(|k: &String, _| {
        if k.starts_with("p2-") {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let recoveries: std::sync::Arc<std::sync::Mutex<Vec<i32>>> = Default::default();
    let seen = std::sync::Arc::clone(&recoveries);
    let _ = c
        .counts
        .clone()
        .on_recover(move |p| seen.lock().expect("lock").push(p));
    let worker = c.app.start_worker().await.expect("worker");
    let started = std::time::Instant::now();
    // Words sent to partitions 0 and 1 are counted while partition 2 still recovers.
    for (p, word) in [(0, "zero"), (1, "one")] {
        c.words
            .send_with(
                Some(word.to_owned()),
                word.to_owned(),
                mephisto::SendOptions {
                    partition: Some(p),
                    ..Default::default()
                },
            )
            .await
            .expect("send")
            .await
            .expect("acked");
    }
    support::eventually("words counted", Duration::from_secs(30), || {
        (c.counts.get(&"zero".to_owned()) == Some(1) && c.counts.get(&"one".to_owned()) == Some(1))
            .then_some(())
    })
    .await;
    let partition_2 = |w: &mephisto::Worker| {
        w.recovery()
            .into_iter()
            .find(|r| r.partition == 2)
            .is_some_and(|r| r.done)
    };
    assert!(
        !partition_2(&worker),
        "partition 2 had recovered before the other partitions' words were counted"
    );
    support::eventually("partition 2 recovered", Duration::from_secs(60), || {
        partition_2(&worker).then_some(())
    })
    .await;
    assert!(
        started.elapsed() > Duration::from_secs(6),
        "the recovery was shorter than the session timeout"
    );
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    // The member kept its partitions through it: each was recovered once, no rebalance.
    let mut recovered = recoveries.lock().expect("lock").clone();
    recovered.sort_unstable();
    assert_eq!(recovered, vec![0, 1, 2], "recovered once each");
    assert_eq!(c.counts.len() as u64, PER_PARTITION * 3 + 2);
    worker.stop().await.expect("stop");
    c.app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changelog_written_on_during_recovery_does_not_keep_it_going() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let broker = tansu();
    let (c, id, _) = filled(&broker.url, "tables-moving", 4_000).await;
    // Recovery reads at most about 5,000 records a second (1 ms every 5)...
    let n = std::sync::atomic::AtomicU64::new(0);
    let _ = c.counts.clone().on_changelog_event(move |_, _| {
        if n.fetch_add(1, Ordering::Relaxed).is_multiple_of(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    // ... while another writer adds about 20,000 a second to the changelog, until it ends.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (url, stop) = (broker.url.clone(), Arc::clone(&stop));
        let topic: Arc<str> = Arc::from(format!("{id}-counts-changelog"));
        async move {
            use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord};
            let cluster = mephisto_engine::Cluster::connect(
                mephisto_engine::ClientConfig::from_url(&url).expect("url"),
            )
            .await
            .expect("connect");
            let producer = Producer::new(cluster, ProducerConfig::default()).expect("producer");
            let mut i = 0u64;
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                for _ in 0..1_000 {
                    let mut r = ProducerRecord::for_topic(Arc::clone(&topic));
                    r.partition = Some((i % PARTITIONS as u64) as i32);
                    r.key = Some(format!("\"late-{i}\"").into_bytes().into());
                    r.value = Some(b"1".to_vec().into());
                    // Acknowledged or not, it is in the changelog by the time it matters.
                    drop(producer.enqueue(r).await.expect("enqueue"));
                    i += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            producer.close().await;
            i
        }
    });
    let started = std::time::Instant::now();
    let worker = c.app.start_worker().await.expect("worker");
    let done = |w: &mephisto::Worker| {
        let r = w.recovery();
        r.len() == PARTITIONS as usize && r.iter().all(|p| p.done)
    };
    while !done(&worker) && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    assert!(
        done(&worker),
        "recovery still running after {took:?} ({written} records written meanwhile)"
    );
    assert!(
        written > 20_000,
        "the writer kept writing through the recovery ({written})"
    );
    worker.stop().await.expect("stop");
    c.app.close().await;
}
