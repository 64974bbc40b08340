//! Tables that Faust and Mephisto share (PyPI faust-streaming 0.15.3 against the same broker):
//! a Python Faust worker recovers a table from the changelog a Mephisto worker wrote and finds
//! the same counts, and a Mephisto worker recovers a table from the changelog a Faust worker
//! wrote. Both sides: app id, table `counts` (str → int, json key and value), changelog
//! `<app id>-counts-changelog` with 4 partitions, agent `count`.
//!
//! On the development broker: the two apps take turns on one group id with different assignor
//! protocols, which Kafka allows once the group is empty and tansu refuses
//! (`InconsistentGroupProtocol` long after the last member left).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use mephisto::App;
use support::topics::read_all;
use support::{dev_broker, faust_worker, unique};

const PARTITIONS: i32 = 4;
const SCRIPT: &str = "agents/tests/peers/faust_table.py";
const WORDS: [&str; 14] = [
    "the", "quick", "brown", "fox", "the", "lazy", "dog", "the", "fox", "and", "a", "dog", "é",
    "the",
];

fn expected() -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for w in WORDS {
        *m.entry(w.to_owned()).or_insert(0) += 1;
    }
    m
}

/// A Mephisto app `id` whose agent `count` reads `topic` into the table `counts`.
fn counting(url: &str, id: &str, topic: &str) -> (App, mephisto::Table<String, i64>) {
    let c = support::tables::counting(url, id, topic, PARTITIONS);
    (c.app, c.counts)
}

async fn send_words(app: &App, topic: &str) {
    let words = app.topic::<String, String>(topic);
    for w in WORDS {
        words
            .send(Some(w.to_owned()), w.to_owned())
            .await
            .expect("send")
            .await
            .expect("acked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faust_recovers_a_table_mephisto_wrote() {
    let broker = dev_broker();
    let id = unique("tables-to-faust");
    let topic = unique("words");
    let (app, counts) = counting(&broker.url, &id, &topic);
    let worker = app.start_worker().await.expect("worker");
    send_words(&app, &topic).await;
    assert!(worker.wait_idle(Duration::from_secs(60)).await, "idle");
    assert_eq!(
        counts.items().into_iter().collect::<BTreeMap<_, _>>(),
        expected()
    );
    worker.stop().await.expect("stop");
    app.close().await;

    // Faust's worker of the same app: its events are committed, so it only recovers.
    let mut faust = faust_worker(SCRIPT, &["dump", &topic], &broker.url, &id, true);
    let stdout = faust.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("TABLE ").map(str::to_owned))
    });
    let line = tokio::time::timeout(Duration::from_secs(150), line)
        .await
        .expect("Faust printed its table within 150 s")
        .expect("reader")
        .expect("a line");
    let by_faust: BTreeMap<String, i64> = serde_json::from_str(&line).expect("JSON table");
    assert_eq!(by_faust, expected(), "Faust's recovered table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mephisto_recovers_a_table_faust_wrote() {
    let broker = dev_broker();
    let id = unique("tables-from-faust");
    let topic = unique("words");
    let writer = support::app::test_app(&broker.url, &unique("writer"), PARTITIONS);
    send_words(&writer, &topic).await;
    writer.close().await;

    let mut faust = faust_worker(SCRIPT, &["count", &topic], &broker.url, &id, false);
    let changelog = format!("{id}-counts-changelog");
    let written = read_all(
        &broker.url,
        PARTITIONS,
        &changelog,
        WORDS.len(),
        Duration::from_secs(150),
    )
    .await;
    let n: usize = written.values().map(Vec::len).sum();
    assert_eq!(n, WORDS.len(), "Faust wrote one changelog record per word");
    assert!(
        faust.terminate(Duration::from_secs(60)),
        "Faust stops on SIGTERM"
    );
    // A group cannot mix Faust's assignor protocol with ours: let Faust's member expire (its
    // session is 6 s) in case it did not leave.
    tokio::time::sleep(Duration::from_secs(8)).await;

    // Mephisto's worker of the same app reads another (empty) topic with as many partitions:
    // it holds every partition of `counts` and recovers them from Faust's changelog.
    let (app, counts) = counting(&broker.url, &id, &unique("other"));
    let worker = app.start_worker().await.expect("worker");
    assert!(worker.wait_idle(Duration::from_secs(90)).await, "idle");
    assert_eq!(counts.held_partitions(), vec![0, 1, 2, 3]);
    assert_eq!(
        counts.items().into_iter().collect::<BTreeMap<_, _>>(),
        expected()
    );
    worker.stop().await.expect("stop");
    app.close().await;
}
