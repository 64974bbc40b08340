//! `group_by` against Python Faust (PyPI `faust-streaming`): a Faust worker and a Mephisto
//! worker, each with an agent `regroup` regrouping the same transfers by
//! `Transfer.account_id`, write byte-identical records (key, value, headers) to the same
//! partitions of the same repartition topic, `regroup-<source>-Transfer.account_id-repartition`.
//!
//! Faust runs first, alone, until it has forwarded every transfer; then Mephisto (another app,
//! so another consumer group reading the source from the start) forwards them all again. Each
//! partition of the repartition topic then holds Faust's records followed by Mephisto's, and the
//! two halves must be the same records.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use support::topics::{read_all, Written};
use support::{faust_worker, tansu, unique};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Transfer {
    account_id: String,
    amount: f64,
}

const TRANSFERS: usize = 120;
const PARTITIONS: i32 = 4;

fn count(records: &BTreeMap<i32, Vec<Written>>) -> usize {
    records.values().map(Vec::len).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faust_and_mephisto_regroup_into_the_same_records_and_partitions() {
    let broker = tansu();
    let source = unique("transfers");
    let repartition = format!("regroup-{source}-Transfer.account_id-repartition");

    // The transfers, written without a key (the page's groupby example).
    let writer = support::app::test_app(&broker.url, &unique("groupby-writer"), PARTITIONS);
    let input = writer.topic::<String, Transfer>(source.clone());
    let mut last = None;
    for i in 0..TRANSFERS {
        let t = Transfer {
            account_id: format!("account-{}", i % 7),
            amount: i as f64 * 1.5,
        };
        last = Some(input.send(None, t).await.expect("queued"));
    }
    last.expect("sent").await.expect("written");

    // Faust regroups them all, then stops.
    let faust = faust_worker(
        "agents/tests/peers/faust_group_by.py",
        &[&source],
        &broker.url,
        &unique("faust-regroup"),
        false,
    );
    let by_faust = read_all(
        &broker.url,
        PARTITIONS,
        &repartition,
        TRANSFERS,
        Duration::from_secs(240),
    )
    .await;
    drop(faust);
    assert_eq!(
        count(&by_faust),
        TRANSFERS,
        "Faust forwarded every transfer"
    );

    // Mephisto regroups them all again, into the same topic.
    let app = support::app::test_app(&broker.url, &unique("mephisto-regroup"), PARTITIONS);
    let source_topic = app.topic::<String, Transfer>(source.clone());
    let _regroup = app
        .agent::<String, Transfer>("regroup")
        .topic(&source_topic)
        .processing(|stream| async move {
            let mut regrouped =
                stream.group_by(|t: &Transfer| t.account_id.clone(), "Transfer.account_id");
            while regrouped.next().await.is_some() {}
            Ok(())
        });
    let worker = app.start_worker().await.expect("worker");
    let all = read_all(
        &broker.url,
        PARTITIONS,
        &repartition,
        2 * TRANSFERS,
        Duration::from_secs(120),
    )
    .await;
    worker.stop().await.expect("stop");
    assert_eq!(
        count(&all),
        2 * TRANSFERS,
        "Mephisto forwarded every transfer"
    );

    // Per partition: Faust's records, then Mephisto's; the same records, whatever the order in
    // which the source partitions were read.
    for p in 0..PARTITIONS {
        let from_faust = by_faust.get(&p).cloned().unwrap_or_default();
        let everything = all.get(&p).cloned().unwrap_or_default();
        assert_eq!(
            everything[..from_faust.len()],
            from_faust[..],
            "partition {p} starts with Faust's"
        );
        let mut faust_sorted = from_faust.clone();
        let mut ours: Vec<Written> = everything[from_faust.len()..].to_vec();
        faust_sorted.sort();
        ours.sort();
        assert_eq!(
            ours, faust_sorted,
            "partition {p}: Mephisto's records are Faust's"
        );
    }
    // Every account's transfers are in one partition, keyed by the account id as text.
    for (p, records) in &all {
        for (key, value, _) in records {
            let key = String::from_utf8(key.clone().expect("keyed")).expect("text key");
            let t: Transfer =
                serde_json::from_slice(value.as_deref().expect("value")).expect("json");
            assert_eq!(t.account_id, key, "partition {p}");
        }
    }
}
