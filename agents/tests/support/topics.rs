//! Reading topics back in tests: every record of a topic's partitions, raw.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mephisto_engine::fetcher::{FetchPosition, Fetcher, FetcherConfig, TopicPartition};
use mephisto_engine::{ClientConfig, Cluster};

/// A record as read back: key, value and headers.
pub type Written = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

/// A fetcher on every partition of `topic`, from its log start.
pub async fn from_start(url: &str, topic: &str, partitions: i32) -> Fetcher {
    let cluster = Cluster::connect(ClientConfig::from_url(url).expect("url"))
        .await
        .expect("connect");
    let fetcher = Fetcher::new(
        cluster,
        FetcherConfig::default().with_max_wait(Duration::from_millis(100)),
    )
    .expect("fetcher");
    for p in 0..partitions {
        fetcher
            .assign(TopicPartition::new(topic, p), FetchPosition::Earliest)
            .expect("assign");
    }
    fetcher
}

/// The log start offset of each partition of `topic`.
pub async fn log_starts(url: &str, topic: &str, partitions: i32) -> Vec<i64> {
    use mephisto_engine::admin::{Admin, OffsetSpec};
    let cluster = Cluster::connect(ClientConfig::from_url(url).expect("url"))
        .await
        .expect("connect");
    let spec: Vec<(i32, OffsetSpec)> = (0..partitions).map(|p| (p, OffsetSpec::Earliest)).collect();
    Admin::new(cluster)
        .list_offsets(topic, &spec)
        .await
        .expect("list offsets")
        .into_iter()
        .map(|o| o.offset.unwrap_or(-1))
        .collect()
}

/// The last value of every key `topic` still holds (from each partition's log start to its
/// end; a tombstone removes the key), and how many records that was.
pub async fn latest_values(
    url: &str,
    topic: &str,
    partitions: i32,
) -> (BTreeMap<Vec<u8>, Vec<u8>>, u64) {
    let fetcher = from_start(url, topic, partitions).await;
    let mut latest = BTreeMap::new();
    let mut read = 0u64;
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while done < partitions && Instant::now() < deadline {
        let Ok(Ok(batch)) =
            tokio::time::timeout(Duration::from_secs(1), fetcher.next_batch()).await
        else {
            continue;
        };
        for record in batch.records().expect("records") {
            let record = record.expect("record");
            let key = record.key().expect("key").to_vec();
            match record.value() {
                Some(v) => latest.insert(key, v.to_vec()),
                None => latest.remove(&key),
            };
            read += 1;
        }
        done = (0..partitions)
            .filter(|p| {
                let tp = TopicPartition::new(topic, *p);
                matches!((fetcher.position(&tp), fetcher.high_watermark(&tp)), (Some(a), Some(h)) if a >= h)
            })
            .count() as i32;
    }
    fetcher.close();
    (latest, read)
}

/// Every record of `topic`'s partitions, read from the start until `expected` records in all
/// (or `within`), by partition.
pub async fn read_all(
    url: &str,
    partitions: i32,
    topic: &str,
    expected: usize,
    within: Duration,
) -> BTreeMap<i32, Vec<Written>> {
    let fetcher = from_start(url, topic, partitions).await;
    let mut out: BTreeMap<i32, Vec<Written>> = BTreeMap::new();
    let mut n = 0;
    let deadline = Instant::now() + within;
    while n < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(batch) = tokio::time::timeout(left, fetcher.next_batch()).await else {
            break;
        };
        let Ok(batch) = batch else {
            // The topic may not exist yet: try again.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        for record in batch.records().expect("records") {
            let record = record.expect("record");
            let headers = record
                .headers()
                .map(|h| (h.key().to_vec(), h.value().map(<[u8]>::to_vec)))
                .collect();
            out.entry(batch.partition).or_default().push((
                record.key().map(<[u8]>::to_vec),
                record.value().map(<[u8]>::to_vec),
                headers,
            ));
            n += 1;
        }
    }
    fetcher.close();
    out
}
