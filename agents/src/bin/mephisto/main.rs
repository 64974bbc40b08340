//! The `mephisto` command line: topics, produce and consume, thin over the engine.
//!
//! ```text
//! mephisto [--broker URL] [-l LEVEL] [--timeout-ms T] <command>
//!   topics create NAME --partitions N [--replication R] [--config k=v]...
//!   topics list [--internal]
//!   topics delete NAME
//!   produce TOPIC [--key-separator SEP] [--compression none|gzip|snappy|lz4|zstd] [--acks all|1|0]
//!   consume TOPIC [--from earliest|latest] [--count N] [--idle-timeout-ms T] [--format line|json]
//!                 [--group G [--assignor range|roundrobin|cooperative-sticky]
//!                  [--session-timeout-ms T] [--instance-id ID]]
//!   dev-broker [--listen 127.0.0.1:9092] [--partitions N] [--retention-bytes B] [--exit-after-ms T]
//!              [--initial-rebalance-delay-ms T]
//! ```
//!
//! `dev-broker` exists only with the `dev-broker` cargo feature (on by default).
//!
//! The broker comes from `--broker`, else `MEPHISTO_BROKER`, else `kafka://127.0.0.1:9092`.
//! Every failure (bad arguments, an unreachable broker, a Kafka error) is one line on stderr
//! and a non-zero exit status: 2 for bad arguments, 1 otherwise.
//!
//! # Layout
//! - `args`: the command line (clap).
//! - `error`: [`CliError`](error::CliError).
//! - `topics`, `produce`, `consume`, `dev_broker`: one file per command; `group`:
//!   `consume --group`.
//! - `output`: the `line` and `json` record formats of `consume`.

mod args;
mod consume;
#[cfg(feature = "dev-broker")]
mod dev_broker;
mod error;
mod group;
mod output;
mod produce;
mod topics;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mephisto_engine::{ClientConfig, Cluster};

use args::{Cli, Command, TopicsCommand};
use error::CliError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return args::report_parse_error(&e),
    };
    init_logging(cli.loglevel);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mephisto: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mephisto: {}", one_line(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Error messages stay on one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn init_logging(level: args::LogLevel) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(level.as_tracing())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn run(cli: Cli) -> Result<(), CliError> {
    // Refuse what is not supported before touching the network.
    if let Command::Consume(consume) = &cli.command {
        consume.check()?;
    }
    // The development broker needs no broker to talk to.
    #[cfg(feature = "dev-broker")]
    if let Command::DevBroker(args) = cli.command {
        return dev_broker::run(args).await;
    }
    let timeout = Duration::from_millis(cli.timeout_ms.max(1));
    let config = ClientConfig::from_url(&cli.broker)?
        .with_client_id("mephisto-cli")
        .with_request_timeout(timeout)
        .with_connect_timeout(timeout.min(Duration::from_secs(10)))
        .with_api_timeout(timeout);
    let cluster = tokio::time::timeout(timeout, Cluster::connect(config))
        .await
        .map_err(|_| CliError::Timeout {
            what: format!("connecting to {}", cli.broker),
            after: timeout,
        })??;
    match cli.command {
        Command::Topics { command } => match command {
            TopicsCommand::Create(create) => topics::create(&cluster, create).await,
            TopicsCommand::List(list) => topics::list(&cluster, list).await,
            TopicsCommand::Delete(delete) => topics::delete(&cluster, delete).await,
        },
        Command::Produce(produce) => produce::run(cluster, produce).await,
        Command::Consume(consume) => match consume.group.clone() {
            Some(group) => group::run(cluster, consume, group).await,
            None => consume::run(cluster, consume).await,
        },
        #[cfg(feature = "dev-broker")]
        Command::DevBroker(_) => Ok(()),
    }
}
