//! `mephisto consume --group`: consume as a member of a consumer group. Prints each record,
//! flushes, then acknowledges it (so a commit never covers a record that was not written);
//! acked offsets are committed every second, on a rebalance and on exit. SIGTERM and SIGINT
//! end the loop: the consumer commits and leaves the group (static members do not leave).

use std::time::Duration;

use mephisto_engine::fetcher::{FetcherConfig, OffsetReset};
use mephisto_engine::group::{AssignorKind, ConsumedRecord, GroupConfig, GroupConsumer};
use mephisto_engine::Cluster;

use crate::args::{AssignorArg, ConsumeArgs, Format, From};
use crate::error::CliError;
use crate::output::{self, flush, write, Row};

/// How often acked offsets are committed.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `consume --group GROUP`.
pub async fn run(cluster: Cluster, args: ConsumeArgs, group: String) -> Result<(), CliError> {
    let mut stop = Stop::install()?;
    let session = Duration::from_millis(args.session_timeout_ms);
    let reset = match args.from {
        From::Earliest => OffsetReset::Earliest,
        From::Latest => OffsetReset::Latest,
    };
    let assignor = match args.assignor {
        AssignorArg::Range => AssignorKind::Range,
        AssignorArg::Roundrobin => AssignorKind::RoundRobin,
        AssignorArg::CooperativeSticky => AssignorKind::CooperativeSticky,
    };
    let mut config = GroupConfig::new(group)
        .with_assignor(assignor)
        .with_session_timeout(session)
        .with_heartbeat_interval(
            (session / 3).clamp(Duration::from_millis(1), Duration::from_secs(3)),
        )
        .with_instance_id(args.instance_id.clone())
        .with_fetcher(FetcherConfig::default().with_auto_offset_reset(reset));
    config.commit.interval = COMMIT_INTERVAL;
    let consumer = GroupConsumer::new(cluster, config)?;
    consumer.subscribe([args.topic.as_str()]);
    let result = consume(&consumer, &args, &mut stop).await;
    let closed = consumer.close().await;
    result?;
    closed?;
    Ok(())
}

/// The print loop; returns when the count is reached, the idle timeout passes, stdout
/// closes or a signal arrives.
async fn consume(
    consumer: &GroupConsumer,
    args: &ConsumeArgs,
    stop: &mut Stop,
) -> Result<(), CliError> {
    let idle = args.idle_timeout_ms.map(Duration::from_millis);
    let limit = args.count.unwrap_or(u64::MAX);
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut buf = Vec::with_capacity(4096);
    let mut printed = 0u64;
    while printed < limit {
        let next = async {
            match idle {
                None => Some(consumer.next().await),
                Some(idle) => tokio::time::timeout(idle, consumer.next()).await.ok(),
            }
        };
        let record = tokio::select! {
            biased;
            () = stop.wait() => {
                tracing::info!(printed, "signal: committing and leaving the group");
                break;
            }
            next = next => match next {
                None => {
                    tracing::info!(printed, "idle timeout");
                    break;
                }
                Some(record) => record?,
            },
        };
        buf.clear();
        format_record(&record, args.format, &mut buf);
        if write(&mut stdout, &buf)?.is_none() || flush(&mut stdout)?.is_none() {
            return Ok(());
        }
        consumer.ack(&record.topic, record.partition, record.offset)?;
        printed += 1;
    }
    flush(&mut stdout)?;
    Ok(())
}

fn format_record(record: &ConsumedRecord, format: Format, out: &mut Vec<u8>) {
    let r = &record.record;
    let row = Row {
        topic: &record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp: r.timestamp(),
        key: r.key(),
        value: r.value(),
        headers: r.headers().map(|h| (h.key(), h.value())).collect(),
    };
    match format {
        Format::Line => output::line(&row, out),
        Format::Json => output::json(&row, out),
    }
}

/// SIGTERM and SIGINT.
struct Stop {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Stop {
    fn install() -> Result<Self, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
