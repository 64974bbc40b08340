//! `stream.group_by(...)` against a private tansu (the seed page's `examples/groupby.py`):
//! transfers written without a key are re-partitioned by account id through the topic
//! `<agent>-<source topic>-<name>-repartition`; with two workers of one app, every account's
//! transfers reach one agent instance only. Also `through` and `echo`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mephisto::{App, Worker};
use serde::{Deserialize, Serialize};
use support::{tansu, unique};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BankTransfer {
    account_id: String,
    amount: f64,
}

fn app(url: &str, id: &str) -> App {
    support::app::test_app(url, id, 4)
}

type Seen = Arc<Mutex<Vec<(String, Option<String>, usize)>>>;

/// The groupby app as one worker process would define it; `n` names the worker.
fn groupby_app(url: &str, id: &str, source: &str, seen: Seen, n: usize) -> App {
    let app = app(url, id);
    let topic = app.topic::<String, BankTransfer>(source);
    let _stream = app
        .agent::<String, BankTransfer>("stream")
        .topic(&topic)
        .processing(move |s| {
            let seen = seen.clone();
            async move {
                let mut items = s
                    .group_by(|t: &BankTransfer| t.account_id.clone(), "account_id")
                    .items();
                while let Some((key, transfer)) = items.next().await {
                    seen.lock().unwrap().push((transfer.account_id, key, n));
                }
                Ok(())
            }
        });
    app
}

async fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn owned(worker: &Worker, topic: &str) -> BTreeSet<i32> {
    worker
        .consumer()
        .map(|c| c.assignment())
        .unwrap_or_default()
        .iter()
        .filter(|tp| &*tp.topic == topic)
        .map(|tp| tp.partition)
        .collect()
}

#[tokio::test]
async fn group_by_sends_each_account_to_one_worker() {
    let broker = tansu();
    let id = unique("groupby");
    let source = unique("groupby-src");
    let repartition = format!("stream-{source}-account_id-repartition");
    let seen: Seen = Arc::default();
    let a = groupby_app(&broker.url, &id, &source, seen.clone(), 0);
    let b = groupby_app(&broker.url, &id, &source, seen.clone(), 1);
    let wa = a.start_worker().await.expect("worker A");
    let wb = b.start_worker().await.expect("worker B");
    // Both members own part of the source and of the repartition topic (the group settled
    // after the repartition topic was attached).
    wait_until(
        "the group settles on both topics",
        Duration::from_secs(90),
        || {
            let (ra, rb) = (owned(&wa, &repartition), owned(&wb, &repartition));
            let (sa, sb) = (owned(&wa, &source), owned(&wb, &source));
            ra.len() + rb.len() == 4 && !ra.is_empty() && !rb.is_empty() && sa.len() + sb.len() == 4
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let topic = a.topic::<String, BankTransfer>(source.clone());
    let accounts: Vec<String> = (0..12).map(|i| format!("acct-{i}")).collect();
    let mut sent = 0;
    for round in 0..10 {
        for acct in &accounts {
            let t = BankTransfer {
                account_id: acct.clone(),
                amount: f64::from(round),
            };
            topic.send(None, t).await.expect("send");
            sent += 1;
        }
    }
    wait_until("every transfer regrouped", Duration::from_secs(60), || {
        seen.lock().unwrap().len() >= sent
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), sent, "each transfer once");
    let mut by_account: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (acct, key, worker) in &seen {
        assert_eq!(
            key.as_deref(),
            Some(acct.as_str()),
            "the new key is the account id"
        );
        by_account.entry(acct.clone()).or_default().insert(*worker);
    }
    for (acct, workers) in &by_account {
        assert_eq!(workers.len(), 1, "{acct} reached workers {workers:?}");
    }
    let workers_used: BTreeSet<usize> = by_account.values().flatten().copied().collect();
    assert_eq!(
        workers_used.len(),
        2,
        "both workers got accounts: {by_account:?}"
    );
    wa.stop().await.expect("stop A");
    wb.stop().await.expect("stop B");
}

#[tokio::test]
async fn through_and_echo_forward_and_continue() {
    let broker = tansu();
    let id = unique("through");
    let app = app(&broker.url, &id);
    let source = app.topic::<String, i64>(unique("through-src"));
    let middle = app.topic::<String, i64>(unique("through-mid"));
    let copy = app.topic::<String, i64>(unique("echo-copy"));
    let got = Arc::new(Mutex::new(Vec::<(Option<String>, i64, String)>::new()));
    let copied = Arc::new(Mutex::new(Vec::<i64>::new()));
    let (g, c) = (got.clone(), copied.clone());
    let (mid, cp) = (middle.clone(), copy.clone());
    let _agent = app
        .agent::<String, i64>("relay")
        .topic(&source)
        .processing(move |s| {
            let g = g.clone();
            let events = s.through(&mid).echo(std::slice::from_ref(&cp)).events();
            async move {
                let mut events = events;
                while let Some(ev) = events.next().await {
                    let topic = ev
                        .message()
                        .map(|m| m.topic.to_string())
                        .unwrap_or_default();
                    g.lock().unwrap().push((ev.key.clone(), ev.value, topic));
                }
                Ok(())
            }
        });
    let _copy_reader = app
        .agent::<String, i64>("copy_reader")
        .topic(&copy)
        .processing(move |s| {
            let c = c.clone();
            async move {
                let mut s = s;
                while let Some(v) = s.next().await {
                    c.lock().unwrap().push(v);
                }
                Ok(())
            }
        });
    let worker = app.start_worker().await.expect("worker");
    for i in 0..20 {
        source.send(Some(format!("k{i}")), i).await.expect("send");
    }
    wait_until("relayed and copied", Duration::from_secs(60), || {
        got.lock().unwrap().len() >= 20 && copied.lock().unwrap().len() >= 20
    })
    .await;
    let got = got.lock().unwrap().clone();
    for (key, value, topic) in &got {
        assert_eq!(
            key.as_deref(),
            Some(format!("k{value}").as_str()),
            "key kept"
        );
        assert_eq!(topic, middle.name(), "read back from the through topic");
    }
    let mut values: Vec<i64> = got.iter().map(|g| g.1).collect();
    values.sort();
    assert_eq!(values, (0..20).collect::<Vec<_>>());
    let mut copied = copied.lock().unwrap().clone();
    copied.sort();
    assert_eq!(copied, (0..20).collect::<Vec<_>>());
    worker.stop().await.expect("stop");
}
