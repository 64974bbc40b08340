//! Counting a pipeline's output records in the parent, to time the `N`th one: on a Kafka
//! broker with a Mephisto `Fetcher` (every partition from offset 0, no group, each value read
//! back and summed), on the replay server from its per-topic sink counters (the server sums
//! the values as it accepts them, and stamps the time of each append).

use std::time::{Duration, Instant};

use mephisto_benches::pipeline_workload::output_sum;
use mephisto_benches::replay_server::ReplayServer;
use mephisto_benches::tansu::BoxError;
use mephisto_engine::fetcher::{FetchPosition, Fetcher, FetcherConfig, TopicPartition};

use crate::broker::{cluster, Broker};
use crate::child::now_micros;

/// What the parent saw of an output topic.
#[derive(Debug, Clone, Default)]
pub struct Counted {
    /// Output records counted.
    pub records: u64,
    /// Sum of `output_sum` over the records.
    pub sum: i128,
    /// Records whose value `output_sum` could not read.
    pub unreadable: u64,
    /// When the first one was seen (µs since the epoch).
    pub first_output_us: u64,
    /// When the `expected`th record (or the last one counted) was seen.
    pub last_output_us: u64,
    /// Stopped by a time limit before `expected` records.
    pub timed_out: bool,
}

/// When to stop counting: at `expected` records, `max_after_first` after the first one, or at
/// `deadline`.
#[derive(Debug, Clone, Copy)]
pub struct Until {
    /// Records to wait for.
    pub expected: u64,
    /// Longest wait after the first record.
    pub max_after_first: Duration,
    /// Longest wait overall.
    pub deadline: Instant,
}

/// Counts the records of `topic` on `broker`.
pub fn count(
    rt: &tokio::runtime::Runtime,
    broker: &Broker,
    topic: &str,
    partitions: u32,
    until: Until,
) -> Result<Counted, BoxError> {
    match broker.replay() {
        Some(server) => Ok(count_on_replay(server, topic, until)),
        None => rt.block_on(count_with_fetcher(&broker.url, topic, partitions, until)),
    }
}

/// Polls the replay server's counters of `topic` every millisecond.
fn count_on_replay(server: &ReplayServer, topic: &str, until: Until) -> Counted {
    let mut stop_at = until.deadline;
    loop {
        let stats = server.sink_topic(topic).unwrap_or_default();
        let mut c = Counted {
            records: stats.records,
            sum: stats.value_sum,
            unreadable: stats.unreadable_values,
            first_output_us: stats.first_append_us,
            last_output_us: stats.last_append_us,
            timed_out: false,
        };
        if c.records >= until.expected {
            return c;
        }
        if c.first_output_us != 0 && stop_at == until.deadline {
            stop_at = stop_at.min(Instant::now() + until.max_after_first);
        }
        if Instant::now() >= stop_at {
            c.timed_out = true;
            return c;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

async fn count_with_fetcher(
    url: &str,
    topic: &str,
    partitions: u32,
    until: Until,
) -> Result<Counted, BoxError> {
    let cluster = cluster(url).await?;
    let config = FetcherConfig::default().with_max_wait(Duration::from_millis(50));
    let fetcher = Fetcher::new(cluster, config)?;
    for p in 0..partitions as i32 {
        fetcher.assign(TopicPartition::new(topic, p), FetchPosition::Offset(0))?;
    }
    let mut c = Counted::default();
    let mut stop_at = until.deadline;
    while c.records < until.expected {
        let Ok(batch) = tokio::time::timeout_at(
            tokio::time::Instant::from_std(stop_at),
            fetcher.next_batch(),
        )
        .await
        else {
            c.timed_out = true;
            break;
        };
        for record in batch?.records()? {
            match record?.value().and_then(output_sum) {
                Some(v) => c.sum += i128::from(v),
                None => c.unreadable += 1,
            }
            c.records += 1;
        }
        let now = now_micros();
        if c.first_output_us == 0 {
            c.first_output_us = now;
            stop_at = stop_at.min(Instant::now() + until.max_after_first);
        }
        c.last_output_us = now;
    }
    fetcher.close();
    Ok(c)
}
