//! Role `mephisto-fetcher`: the bare `mephisto_engine::fetcher::Fetcher` reading every
//! partition of the input topic from offset 0 to the end — no group, no agent, no output. The
//! reference for what the agents layer costs: a `noop` pipeline should consume at a good share
//! of this rate. Every value's length is summed (each record is touched once).

use std::time::{Duration, Instant};

use mephisto_benches::tansu::BoxError;
use mephisto_engine::fetcher::{FetchPosition, Fetcher, FetcherConfig, TopicPartition};
use mephisto_engine::{ClientConfig, Cluster};

use crate::child::{cpu_now, now_micros, Outcome};
use crate::options::Options;

/// Reads `--records` records (the whole input), then reports; fails after `--timeout`.
pub async fn run(o: &Options) -> Result<Outcome, BoxError> {
    let deadline = tokio::time::Instant::from_std(Instant::now() + o.timeout);
    let config = ClientConfig::from_url(&o.broker_url)?
        .with_client_id("agent-bench-fetcher")
        .with_request_timeout(Duration::from_secs(30));
    let cluster = Cluster::connect(config).await?;
    let fetcher = Fetcher::new(cluster, FetcherConfig::default())?;
    for p in 0..o.partitions as i32 {
        fetcher.assign(
            TopicPartition::new(o.input.as_str(), p),
            FetchPosition::Offset(0),
        )?;
    }
    let mut outcome = Outcome::default();
    let mut bytes = 0u64;
    while outcome.processed < o.records {
        let batch = tokio::time::timeout_at(deadline, fetcher.next_batch())
            .await
            .map_err(|_| format!("timed out after {} records", outcome.processed))??;
        if outcome.first_input_us == 0 {
            outcome.first_input_us = now_micros();
            outcome.cpu_at_first_input_s = cpu_now();
        }
        for record in batch.records()? {
            bytes += record?.value().map_or(0, <[u8]>::len) as u64;
            outcome.processed += 1;
        }
        outcome.last_input_us = now_micros();
    }
    fetcher.close();
    std::hint::black_box(bytes);
    Ok(outcome.with_process_stats())
}
