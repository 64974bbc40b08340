//! `mephisto consume`: every partition of a topic through the engine fetcher, printed one
//! record per line; stops after `--count` records or `--idle-timeout-ms` without one.

use std::time::Duration;

use mephisto_engine::fetcher::{
    FetchPosition, FetchedBatch, Fetcher, FetcherConfig, OffsetReset, TopicPartition,
};
use mephisto_engine::Cluster;

use crate::args::{ConsumeArgs, Format, From};
use crate::error::CliError;
use crate::output::{self, flush, write, Row};

/// Runs the command without a group (see `group` for `--group`).
pub async fn run(cluster: Cluster, args: ConsumeArgs) -> Result<(), CliError> {
    let topic = cluster.topic(&args.topic).await?;
    let (position, reset) = match args.from {
        From::Earliest => (FetchPosition::Earliest, OffsetReset::Earliest),
        From::Latest => (FetchPosition::Latest, OffsetReset::Latest),
    };
    let fetcher = Fetcher::new(
        cluster,
        FetcherConfig::default().with_auto_offset_reset(reset),
    )?;
    for partition in &topic.partitions {
        fetcher.assign(
            TopicPartition::new(topic.name.as_str(), partition.partition),
            position,
        )?;
    }
    let idle = args.idle_timeout_ms.map(Duration::from_millis);
    let limit = args.count.unwrap_or(u64::MAX);
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut printed = 0u64;
    let mut buf = Vec::with_capacity(64 * 1024);
    while printed < limit {
        let batch = match fetcher.try_next_batch() {
            Some(item) => item?,
            None => {
                // About to wait: show what we have.
                if flush(&mut stdout)?.is_none() {
                    return Ok(());
                }
                match idle {
                    None => fetcher.next_batch().await?,
                    Some(idle) => match tokio::time::timeout(idle, fetcher.next_batch()).await {
                        Ok(item) => item?,
                        Err(_) => {
                            tracing::info!(printed, "idle timeout");
                            break;
                        }
                    },
                }
            }
        };
        buf.clear();
        printed += format_batch(&batch, args.format, limit - printed, &mut buf)?;
        if write(&mut stdout, &buf)?.is_none() {
            return Ok(());
        }
    }
    flush(&mut stdout)?;
    Ok(())
}

/// Appends up to `limit` records of `batch` to `out`; returns how many.
fn format_batch(
    batch: &FetchedBatch,
    format: Format,
    limit: u64,
    out: &mut Vec<u8>,
) -> Result<u64, CliError> {
    let records = batch
        .records()
        .map_err(|e| CliError::Data(format!("undecodable batch: {e}")))?;
    let mut n = 0;
    for record in records {
        if n >= limit {
            break;
        }
        let record = record.map_err(|e| {
            CliError::Data(format!(
                "invalid record in {}-{}: {e}",
                batch.topic, batch.partition
            ))
        })?;
        let row = Row {
            topic: &batch.topic,
            partition: batch.partition,
            offset: record.offset(),
            timestamp: record.timestamp(),
            key: record.key(),
            value: record.value(),
            headers: record.headers().map(|h| (h.key(), h.value())).collect(),
        };
        match format {
            Format::Line => output::line(&row, out),
            Format::Json => output::json(&row, out),
        }
        n += 1;
    }
    Ok(n)
}
