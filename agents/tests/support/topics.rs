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

/// Every record of `topic`'s partitions, read from the start until `expected` records in all
/// (or `within`), by partition.
pub async fn read_all(
    url: &str,
    partitions: i32,
    topic: &str,
    expected: usize,
    within: Duration,
) -> BTreeMap<i32, Vec<Written>> {
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
            .assign(TopicPartition::new(topic, p), FetchPosition::Offset(0))
            .expect("assign");
    }
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
