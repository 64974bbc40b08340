//! Agent pipeline benchmark: topic → agent → sink topic with a Mephisto `App`, against
//! `rdkafka` (librdkafka) doing the same work by hand, faust-streaming running the same
//! pipeline, and the bare Mephisto fetcher, on the same broker in the same run; plus the `ask`
//! round trip of Mephisto and rdkafka.
//!
//! The parent starts a broker holding the input topic — a private tansu (pre-filled; or
//! `$MEPHISTO_BROKER`) and/or the loopback replay server of `mephisto_benches::replay_server`
//! (hosted by the parent, input served from memory) — then re-executes itself once per
//! measurement with `--role ROLE`, so each client runs alone in its own process: peak RSS is
//! its `VmHWM`, CPU its user + system time (all threads). Roles:
//!
//! - `mephisto-pipeline` ([`mephisto_pipeline`]): an `App` whose agent reads the input topic
//!   and yields each event (`noop`, raw bytes) or `a + b` (`add`, JSON) to `Topic::sink()`.
//! - `rdkafka-pipeline` ([`rdkafka_pipeline`]): `BaseConsumer` in a group, `BaseProducer`; an
//!   input offset is stored once its output is acknowledged.
//! - `mephisto-fetcher` ([`fetcher`]): the bare `Fetcher` reading every partition to the end.
//! - `mephisto-consume` ([`mephisto_consume`]): an `App` whose no-op agent only reads (raw
//!   bytes, no output): the agents layer on top of the fetcher.
//! - `faust-pipeline` ([`faust`]): `benches/peers/faust_pipeline.py` on faust-streaming.
//! - `mephisto-ask`, `rdkafka-ask` ([`mephisto_ask`], [`rdkafka_ask`]; tansu only).
//!
//! Input: record `i` in partition `i % partitions`, no key, a 100-byte JSON value
//! `{"a":i,"b":i,"pad":"xx…"}` (`mephisto_benches::pipeline_workload`). Each pipeline reads it
//! from the start in a consumer group of its own and writes to a fresh output topic; the
//! parent counts the output records ([`output`]: a `Fetcher` on tansu, the server's sink
//! counters on the replay server) and checks the sum of `a + b` over them. Throughput = output
//! records / (time the `N`th output record is counted − time the child saw its first input
//! record): the group join is excluded. Faust reads the same input but is stopped after
//! `--faust-records` outputs (its sum is then not checked). The fetcher and the consuming app
//! time themselves, first to last input record. Clients take turns going first from run to run.
//!
//! ```text
//! cargo run --release -p mephisto-benches --bin agent_bench -- \
//!     [--broker tansu|replay|both] [--records 1000000] [--partitions 8] [--runs 1]
//!     [--variants noop,add] [--roles mephisto,rdkafka,fetcher,consume,faust] [--faust-records 20000]
//!     [--partitions-sweep 1,2,4,8,16,32,64,128,256] [--sweep-records 200000]
//!     [--sweep-roles mephisto,rdkafka,fetcher,consume] [--out results.jsonl]
//!     [--python .venv/bin/python] [--max-seconds 60] [--timeout 1200]
//!     [--asks 2000] [--warmup 200] [--skip-pipeline] [--skip-ask]
//!     [--mephisto-concurrency 1] [--mephisto-threads 2] [--fetch-wait-ms N]
//!     [--mephisto-sink topic|spawn]
//! ```
//!
//! `--max-seconds` bounds a pipeline run after its first output record (the partial rate is
//! then reported and marked), `--timeout` each child. `--out` appends one JSON object per
//! measurement (`bench_plots` draws them). Diagnostics: `--mephisto-concurrency N` runs N
//! actors; `--mephisto-sink spawn` replaces `Topic::sink()` by a function sink spawning each
//! send (not the same guarantee); `--fetch-wait-ms N` sets the long-poll wait of both ask
//! consumers. The tansu binary is `$TANSU_BIN`, else `.tools/bin/tansu` of this repository.

mod asks;
mod broker;
mod child;
mod faust;
mod fetcher;
mod mephisto_app;
mod mephisto_ask;
mod mephisto_consume;
mod mephisto_pipeline;
mod options;
mod output;
mod process;
mod rdkafka_ask;
mod rdkafka_config;
mod rdkafka_pipeline;
mod report;
mod runner;

use std::io::Write;

use mephisto_benches::tansu::BoxError;

use broker::{Broker, Input};
use child::{now_micros, runtime, Outcome};
use options::Options;
use runner::Campaign;

/// Runs the child role `role`.
fn run_child(role: &str, o: &Options) -> Result<Outcome, BoxError> {
    match role {
        "mephisto-pipeline" => runtime(o)?.block_on(mephisto_pipeline::run(o)),
        "rdkafka-pipeline" => rdkafka_pipeline::run(o),
        "mephisto-fetcher" => runtime(o)?.block_on(fetcher::run(o)),
        "mephisto-consume" => runtime(o)?.block_on(mephisto_consume::run(o)),
        "mephisto-ask" => runtime(o)?.block_on(mephisto_ask::run(o)),
        "rdkafka-ask" => rdkafka_ask::run(o),
        _ => Err(format!("unknown role {role}").into()),
    }
}

/// Heap accounting of a child (diagnostic, `AGENT_BENCH_HEAP=1`): the live heap's peak beside
/// the peak RSS, to tell live data from allocator slack.
#[global_allocator]
static ALLOC: mephisto_test_support::heap_stats::CountingAlloc =
    mephisto_test_support::heap_stats::CountingAlloc;

fn main() {
    if std::env::var_os("AGENT_BENCH_HEAP").is_some() {
        mephisto_test_support::heap_stats::enable();
    }
    let o = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("agent_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some(role) = o.role.clone() {
        match run_child(&role, &o) {
            Ok(outcome) => {
                println!("{}", outcome.line());
                let _ = std::io::stdout().flush();
                // Do not wait for librdkafka's or tokio's background threads.
                std::process::exit(0);
            }
            Err(e) => {
                println!("ERROR {e}");
                eprintln!("agent_bench {role}: {e}");
                std::process::exit(1);
            }
        }
    }
    if let Err(e) = parent(&o) {
        eprintln!("agent_bench: {e}");
        std::process::exit(1);
    }
}

fn parent(o: &Options) -> Result<(), BoxError> {
    // Two workers: the replay server, hosted here, answers while the parent counts.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tag = format!("{:x}", now_micros() & 0xff_ffff);
    eprintln!(
        "agent_bench {tag}: brokers {:?}, {} records over {} partitions, runs {}, sweep {:?} \
         ({} records), load average {}",
        o.brokers.kinds(),
        o.records,
        o.partitions,
        o.runs,
        o.sweep,
        o.sweep_records,
        report::load_average()
    );
    let mut campaign = Campaign {
        o,
        rt: &rt,
        tag: tag.clone(),
        done: Vec::new(),
    };
    let mut asks = Vec::new();
    for kind in o.brokers.kinds() {
        if !o.skip_pipeline {
            if let Err(e) = campaign.main(kind) {
                eprintln!("{kind}: main measurement: {e}");
            }
            campaign.sweep(kind)?;
        }
        if !o.skip_ask && *kind == "tansu" {
            let input = Input {
                topic: format!("agent-bench-in-{tag}-ask"),
                records: 0,
                partitions: o.partitions,
            };
            let broker = Broker::start(kind, &rt, &input)?;
            asks = asks::run(o, &rt, &broker, &tag)?;
        }
    }
    report::tables(&campaign.done);
    asks::table(&asks);
    Ok(())
}
