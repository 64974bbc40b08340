//! The parent side of the `ask` round trip (tansu only: the replay server stores no records,
//! so replies could not be read back): per run, a `mephisto-ask` and an `rdkafka-ask` child,
//! alternating who goes first, and their latency table.

use mephisto_benches::tansu::BoxError;
use tokio::runtime::Runtime;

use crate::broker::Broker;
use crate::child::Outcome;
use crate::mephisto_ask::percentile;
use crate::options::{ChildTopics, Options};
use crate::process::spawn_self;
use crate::report::mib;

/// One ask measurement.
#[derive(Debug, Clone)]
pub struct AskRun {
    /// `mephisto` or `rdkafka`.
    pub client: &'static str,
    /// Run index.
    pub run: usize,
    /// The child's report (latencies, first ask, RSS).
    pub outcome: Outcome,
}

/// Runs `--runs` rounds of both ask children on `broker`.
pub fn run(o: &Options, rt: &Runtime, broker: &Broker, tag: &str) -> Result<Vec<AskRun>, BoxError> {
    let mut asks = Vec::new();
    let mut args = o.clone();
    args.broker_url = broker.url.clone();
    for run in 0..o.runs {
        let clients: [&'static str; 2] = if run % 2 == 0 {
            ["mephisto", "rdkafka"]
        } else {
            ["rdkafka", "mephisto"]
        };
        for client in clients {
            let name = format!("{client}-ask-{run}-{tag}");
            let topics = ChildTopics {
                input: format!("agent-bench-{name}-requests"),
                output: format!("agent-bench-{name}-replies"),
                group: format!("agent-bench-{name}"),
                records: 0,
                partitions: o.partitions,
            };
            broker.create_topic(rt, &topics.input, o.partitions)?;
            if client == "rdkafka" {
                broker.create_topic(rt, &topics.output, 1)?;
            }
            let child = spawn_self(args.child_args(&format!("{client}-ask"), "add", &topics))?;
            let outcome = child.finish(o.timeout)?;
            let mut sorted = outcome.latencies_us.clone();
            sorted.sort_unstable();
            eprintln!(
                "run {run} {client:<8} ask: first ask after {:.2} s, p50 {} µs, p99 {} µs, \
                 max {} µs, peak RSS {:.1} MiB",
                outcome.first_ask_s,
                percentile(&sorted, 0.5).unwrap_or(0),
                percentile(&sorted, 0.99).unwrap_or(0),
                sorted.last().copied().unwrap_or(0),
                mib(outcome.peak_rss_kib)
            );
            asks.push(AskRun {
                client,
                run,
                outcome,
            });
        }
    }
    Ok(asks)
}

/// The latency table.
pub fn table(asks: &[AskRun]) {
    if asks.is_empty() {
        return;
    }
    println!("\n| run | client | asks | p50 ms | p99 ms | max ms | first ask s | peak RSS MiB |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for a in asks {
        let mut sorted = a.outcome.latencies_us.clone();
        sorted.sort_unstable();
        let ms = |v: Option<u64>| v.map_or(f64::NAN, |v| v as f64 / 1000.0);
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            a.run,
            a.client,
            sorted.len(),
            ms(percentile(&sorted, 0.5)),
            ms(percentile(&sorted, 0.99)),
            ms(sorted.last().copied()),
            a.outcome.first_ask_s,
            mib(a.outcome.peak_rss_kib)
        );
    }
}
