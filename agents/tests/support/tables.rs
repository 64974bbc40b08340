//! The word-count app of the table tests (Mephisto's side; Faust's is
//! `peers/faust_table.py`).

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::StreamExt;
use mephisto::state::store::StoreUrl;
use mephisto::{App, AppAgent, SetTable, Table, Topic};

/// The word-count app: `words` (keyed by the word) → `count` agent → table `counts`; a word
/// "-x" removes x.
pub struct Counting {
    /// The app.
    pub app: App,
    /// `words`, keyed by the word.
    pub words: Topic<String, String>,
    /// The table `counts`.
    pub counts: Table<String, i64>,
    _agent: AppAgent<String, String, ()>,
}

/// App `id` on `url` whose topics get `partitions` partitions.
pub fn counting(url: &str, id: &str, topic: &str, partitions: i32) -> Counting {
    let app = super::app::test_app(url, id, partitions);
    let words = app.topic::<String, String>(topic);
    let counts = app.table::<String, i64>("counts").default_value(|| 0);
    let table = counts.clone();
    let agent = app
        .agent::<String, String>("count")
        .topic(&words)
        .processing(move |mut words| {
            let table = table.clone();
            async move {
                while let Some(word) = words.next().await {
                    match word.strip_prefix('-') {
                        Some(gone) => {
                            table.remove(&gone.to_owned()).await?;
                        }
                        None => {
                            table.update(word, |n| *n += 1).await?;
                        }
                    }
                }
                Ok(())
            }
        });
    Counting {
        app,
        words,
        counts,
        _agent: agent,
    }
}

/// Sends each word keyed by itself, waiting for its acknowledgement.
pub async fn send_words(words: &Topic<String, String>, list: &[&str]) {
    for w in list {
        words
            .send(Some((*w).to_owned()), (*w).to_owned())
            .await
            .expect("send")
            .await
            .expect("acked");
    }
}

/// An app whose agent applies "+m", "-m", "=m" (add m, remove everything else) to the set
/// of key `k` in the set table `members` (kept in a durable store in `store` when given).
pub fn set_app(
    url: &str,
    id: &str,
    topic: &str,
    partitions: i32,
    store: Option<&Path>,
) -> (App, SetTable<String, String>) {
    let app = super::app::test_app(url, id, partitions);
    let ops = app.topic::<String, String>(topic);
    let mut members = app.set_table::<String, String>("members");
    if let Some(dir) = store {
        members = members.store(StoreUrl::Fjall(Some(dir.to_owned())));
    }
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

/// The table's keys and values, sorted.
pub fn table_of(t: &Table<String, i64>) -> BTreeMap<String, i64> {
    t.items().into_iter().collect()
}

/// How many times each word of `list` occurs.
pub fn expected(list: &[&str]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for w in list {
        *m.entry((*w).to_owned()).or_insert(0) += 1;
    }
    m
}

/// Words of a first run.
pub const FIRST: [&str; 12] = [
    "the", "quick", "brown", "fox", "the", "lazy", "dog", "the", "fox", "and", "a", "dog",
];
/// Words of a second run.
pub const SECOND: [&str; 6] = ["the", "fox", "again", "and", "again", "the"];

/// Creates `topic` with `configs` and writes `per_partition` records to each of its
/// `partitions`: record `j` of partition `p` has key `"p<p>-<j % keys>"` and value `j`
/// (json).
pub async fn fill_changelog(
    url: &str,
    topic: &str,
    partitions: i32,
    per_partition: u64,
    keys: u64,
    configs: &[(&str, &str)],
) {
    use mephisto_engine::admin::{Admin, NewTopic};
    use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord};
    use mephisto_engine::{ClientConfig, Cluster};
    let cluster = Cluster::connect(ClientConfig::from_url(url).expect("url"))
        .await
        .expect("connect");
    let mut new = NewTopic::new(topic, partitions, 1);
    for (k, v) in configs {
        new = new.with_config(*k, *v);
    }
    Admin::new(cluster.clone())
        .create_topic(new)
        .await
        .expect("create the changelog");
    let producer = Producer::new(cluster, ProducerConfig::default()).expect("producer");
    let topic: std::sync::Arc<str> = std::sync::Arc::from(topic);
    let mut pending = Vec::new();
    for j in 0..per_partition {
        for p in 0..partitions {
            let mut r = ProducerRecord::for_topic(std::sync::Arc::clone(&topic));
            r.partition = Some(p);
            r.key = Some(format!("\"p{p}-{}\"", j % keys).into_bytes().into());
            r.value = Some(j.to_string().into_bytes().into());
            pending.push(producer.enqueue(r).await.expect("enqueue"));
        }
        if pending.len() >= 20_000 {
            for d in pending.drain(..) {
                d.await.expect("acked");
            }
        }
    }
    for d in pending {
        d.await.expect("acked");
    }
    producer.close().await;
}

/// Sends each operation of `ops` to the set-table app's topic, keyed `k` (one partition, one
/// order), waiting for each acknowledgement.
pub async fn send_ops(app: &App, topic: &str, ops: &[&str]) {
    let topic = app.topic::<String, String>(topic);
    for op in ops {
        topic
            .send(Some("k".into()), (*op).to_owned())
            .await
            .expect("send")
            .await
            .expect("acked");
    }
}
