//! Tables in the durable store (`fjall://`) against a real broker (tansu, or the development
//! broker with `MEPHISTO_TEST_BROKER=dev`): a worker restarted on the same data directory
//! loads its partitions from the store and reads nothing of the changelog it already has; a
//! stored offset beyond the changelog's end (the changelog was recreated) wipes the stored
//! partition and replays the changelog; a set table keeps whole sets.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use mephisto::state::durable::DurableStore;
use mephisto::state::store::StoreUrl;
use mephisto::{App, SetTable};
use mephisto_test_support::ScratchDir;
use support::tables::{expected, fill_changelog, send_words, table_of, Counting, FIRST, SECOND};
use support::{tansu, unique};

const PARTITIONS: i32 = 3;

fn counting_in(url: &str, id: &str, topic: &str, dir: &Path) -> Counting {
    let c = support::tables::counting(url, id, topic, PARTITIONS);
    let store = StoreUrl::Fjall(Some(dir.to_owned()));
    c.app.configure(|s| s.store = store);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_store_reads_none_of_the_changelog_it_has() {
    let broker = tansu();
    let dir = ScratchDir::new("mephisto-store");
    let id = unique("store-restart");
    let topic = unique("words");
    let first = counting_in(&broker.url, &id, &topic, dir.path());
    let worker = first.app.start_worker().await.expect("worker");
    send_words(&first.words, &FIRST).await;
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    assert_eq!(table_of(&first.counts), expected(&FIRST));
    worker.stop().await.expect("stop");
    first.app.close().await;
    drop(first); // Its table holds the store (one process at a time: fjall locks it).

    // The store holds every change the broker acknowledged, with its changelog offset.
    let store = DurableStore::open(dir.path()).expect("store");
    let mut stored = 0usize;
    let mut applied = 0i64;
    for p in 0..PARTITIONS {
        let part = store.partition("counts", p).expect("partition");
        part.for_each(|_, _| stored += 1).expect("read");
        applied += part.applied().expect("offset").map_or(0, |o| o + 1);
    }
    assert_eq!(stored, expected(&FIRST).len(), "one key per word");
    assert_eq!(applied, FIRST.len() as i64, "every change's offset");
    drop(store);

    let second = counting_in(&broker.url, &id, &topic, dir.path());
    let worker = second.app.start_worker().await.expect("worker");
    send_words(&second.words, &SECOND).await;
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    let mut all = FIRST.to_vec();
    all.extend(SECOND);
    assert_eq!(
        table_of(&second.counts),
        expected(&all),
        "loaded, counted on"
    );
    let recovery = worker.recovery();
    assert_eq!(recovery.len(), PARTITIONS as usize, "{recovery:?}");
    assert!(recovery.iter().all(|r| r.done), "{recovery:?}");
    let read: u64 = recovery.iter().map(|r| r.records).sum();
    assert_eq!(read, 0, "nothing replayed: {recovery:?}");
    worker.stop().await.expect("stop");
    second.app.close().await;
    drop(second);

    // A memory store replays the whole changelog (what the durable store saves).
    let third = support::tables::counting(&broker.url, &id, &topic, PARTITIONS);
    let worker = third.app.start_worker().await.expect("worker");
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    assert_eq!(table_of(&third.counts), expected(&all));
    let read: u64 = worker.recovery().iter().map(|r| r.records).sum();
    assert_eq!(read, all.len() as u64);
    worker.stop().await.expect("stop");
    third.app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_offset_beyond_the_changelog_wipes_the_partition_and_replays_it() {
    let broker = tansu();
    let dir = ScratchDir::new("mephisto-store");
    let id = unique("store-ahead");
    let topic = unique("words");
    // A store left by an earlier changelog of the same name (since deleted and recreated):
    // a key the changelog never had, at an offset it does not reach.
    {
        let store = DurableStore::open(dir.path()).expect("store");
        for p in 0..PARTITIONS {
            store
                .partition("counts", p)
                .expect("partition")
                .write([(&br#""ghost""#[..], Some(&b"41"[..]))], 1_000)
                .expect("write");
        }
    }
    let app = counting_in(&broker.url, &id, &topic, dir.path());
    let worker = app.app.start_worker().await.expect("worker");
    send_words(&app.words, &FIRST).await;
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    assert_eq!(table_of(&app.counts), expected(&FIRST), "no ghost");
    worker.stop().await.expect("stop");
    app.app.close().await;
    drop(app);
    let store = DurableStore::open(dir.path()).expect("store");
    for p in 0..PARTITIONS {
        let part = store.partition("counts", p).expect("partition");
        assert_eq!(part.get(br#""ghost""#).expect("read"), None, "wiped");
        assert!(part.applied().expect("offset").is_none_or(|o| o < 1_000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_offset_before_the_log_start_wipes_the_partition_and_replays_it() {
    // The development broker: it applies retention.bytes as it appends.
    let broker = support::dev_broker();
    let dir = ScratchDir::new("mephisto-store");
    let id = unique("store-behind");
    let topic = unique("words");
    let changelog = format!("{id}-counts-changelog");
    let configs = [("cleanup.policy", "delete"), ("retention.bytes", "8192")];
    fill_changelog(&broker.url, &changelog, PARTITIONS, 3_000, 300, &configs).await;
    let starts = support::topics::log_starts(&broker.url, &changelog, PARTITIONS).await;
    assert!(starts.iter().all(|s| *s > 3), "log starts {starts:?}");
    // A store that stopped at offset 2: what came after it is gone from the changelog, so
    // the stored copy cannot be completed.
    {
        let store = DurableStore::open(dir.path()).expect("store");
        for p in 0..PARTITIONS {
            store
                .partition("counts", p)
                .expect("partition")
                .write([(&br#""ghost""#[..], Some(&b"41"[..]))], 2)
                .expect("write");
        }
    }
    let (left, _) = support::topics::latest_values(&broker.url, &changelog, PARTITIONS).await;
    let want: BTreeMap<String, i64> = left
        .into_iter()
        .map(|(k, v)| {
            (
                serde_json::from_slice(&k).expect("json key"),
                serde_json::from_slice(&v).expect("json value"),
            )
        })
        .collect();
    let app = counting_in(&broker.url, &id, &topic, dir.path());
    let worker = app.app.start_worker().await.expect("worker");
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    assert_eq!(
        table_of(&app.counts),
        want,
        "wiped and replayed from the log start"
    );
    worker.stop().await.expect("stop");
    app.app.close().await;
}

fn set_app(url: &str, id: &str, topic: &str, dir: &Path) -> (App, SetTable<String, String>) {
    support::tables::set_app(url, id, topic, PARTITIONS, Some(dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_table_keeps_whole_sets_in_the_store() {
    let broker = tansu();
    let dir = ScratchDir::new("mephisto-store");
    let id = unique("store-set");
    let topic = unique("ops");
    let (app, members) = set_app(&broker.url, &id, &topic, dir.path());
    let worker = app.start_worker().await.expect("worker");
    support::tables::send_ops(&app, &topic, &["+a", "+b", "-a", "+d", "=c", "+e"]).await;
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    let want: HashSet<String> = ["c".to_owned(), "e".to_owned()].into();
    assert_eq!(members.get(&"k".to_owned()), want);
    worker.stop().await.expect("stop");
    app.close().await;
    drop((app, members));

    let (again, recovered) = set_app(&broker.url, &id, &topic, dir.path());
    let worker = again.start_worker().await.expect("worker");
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    assert_eq!(
        recovered.get(&"k".to_owned()),
        want,
        "loaded from the store"
    );
    let read: u64 = worker.recovery().iter().map(|r| r.records).sum();
    assert_eq!(read, 0, "nothing replayed");
    worker.stop().await.expect("stop");
    again.close().await;
}
