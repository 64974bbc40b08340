//! `app.main()`: the app's own command line, as Faust gives one to every app.
//!
//! ```text
//! <program> [-b URL] worker [-l LEVEL] [--datadir DIR] [--store URL]
//!                                                 run every agent until SIGINT/SIGTERM
//! <program> [-b URL] send <TOPIC|@AGENT> [VALUE] [-k KEY] [-p PARTITION]
//! <program> [-b URL] agents                       list the agents
//! ```
//!
//! `send` writes VALUE (default: empty) and KEY as given: for a JSON topic the value must be
//! JSON (`'{"a": 4, "b": 4}'`), for a raw one any text. Errors are one line on stderr and exit
//! status 1 (2 for bad arguments).

use std::ffi::OsString;
use std::process::ExitCode;

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};

use crate::app::error::AppError;
use crate::app::App;
use crate::state::store::StoreUrl;

#[derive(Debug, Parser)]
#[command(about = "A Mephisto app: run its worker, send to its agents, list them.")]
struct Cli {
    /// Broker URL (`kafka://host:port,...` or `memory://`); default: the app's setting
    /// (`MEPHISTO_BROKER`, else kafka://127.0.0.1:9092).
    #[arg(short = 'b', long, global = true)]
    broker: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs every agent of the app until SIGINT or SIGTERM.
    Worker {
        /// Log level.
        #[arg(short = 'l', long = "loglevel", value_enum, default_value = "warn")]
        loglevel: Level,
        /// The app's data directory (Faust's `--datadir`; default `<app id>-data`).
        #[arg(long)]
        datadir: Option<std::path::PathBuf>,
        /// Where tables keep their partitions (Faust's `store`): `memory://`, or `fjall://`
        /// (in the data directory) or `fjall://PATH` for the durable store.
        #[arg(long, value_parser = parse_store)]
        store: Option<StoreUrl>,
    },
    /// Sends one record to a topic or to an agent (`@name`).
    Send {
        /// A topic name, or `@agent`.
        target: String,
        /// The value (JSON for JSON topics).
        value: Option<String>,
        /// The key.
        #[arg(short = 'k', long)]
        key: Option<String>,
        /// An explicit partition.
        #[arg(short = 'p', long)]
        partition: Option<i32>,
    },
    /// Lists the app's agents.
    Agents,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    fn tracing(self) -> tracing::Level {
        match self {
            Level::Error => tracing::Level::ERROR,
            Level::Warn => tracing::Level::WARN,
            Level::Info => tracing::Level::INFO,
            Level::Debug => tracing::Level::DEBUG,
            Level::Trace => tracing::Level::TRACE,
        }
    }
}

/// The app's runtime: multi-threaded, so an agent that blocks its thread leaves the others
/// (and the producer) running; the consumer group runs on a thread of its own anyway.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
        )
        .enable_all()
        .build()
}

pub(crate) fn main(app: App, args: Vec<OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let level = match &cli.command {
        Cmd::Worker { loglevel, .. } => loglevel.tracing(),
        _ => tracing::Level::WARN,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    if let Some(url) = cli.broker.clone() {
        app.configure(|s| s.broker = url);
    }
    if let Cmd::Worker { datadir, store, .. } = &cli.command {
        if let Some(dir) = datadir {
            app.configure(|s| s.datadir = dir.clone());
        }
        if let Some(url) = store {
            app.configure(|s| s.store = url.clone());
        }
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", app.id());
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(&app, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", app.id());
            ExitCode::from(1)
        }
    }
}

fn parse_store(url: &str) -> Result<StoreUrl, String> {
    StoreUrl::parse(url).map_err(|e| e.to_string())
}

pub(crate) fn run_demo<F, Fut>(app: App, demo: F) -> ExitCode
where
    F: FnOnce(App) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::core::error::BoxError>>,
{
    let level = std::env::var("MEPHISTO_LOGLEVEL")
        .ok()
        .and_then(|l| Level::from_str(&l, true).ok())
        .unwrap_or(Level::Warn);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level.tracing())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", app.id());
            return ExitCode::from(1);
        }
    };
    let id = app.id().to_owned();
    match runtime.block_on(demo(app)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{id}: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(app: &App, command: Cmd) -> Result<(), AppError> {
    match command {
        Cmd::Worker { .. } => run_worker(app).await,
        Cmd::Agents => {
            println!(
                "{:<24} {:<40} {:>11}  yields",
                "agent", "topic", "concurrency"
            );
            for a in app.agents() {
                let topic = if a.topics.is_empty() {
                    "(channel)".to_string()
                } else {
                    a.topics.join(",")
                };
                println!(
                    "{:<24} {:<40} {:>11}  {}",
                    a.name, topic, a.concurrency, a.yields
                );
            }
            Ok(())
        }
        Cmd::Send {
            target,
            value,
            key,
            partition,
        } => {
            let (topic, value_codec) = match target.strip_prefix('@') {
                Some(name) => {
                    let info = app
                        .agents()
                        .into_iter()
                        .find(|a| a.name == name)
                        .ok_or_else(|| AppError::UnknownAgent(name.to_owned()))?;
                    let topic = info
                        .topics
                        .first()
                        .cloned()
                        .ok_or_else(|| AppError::ChannelAgent(name.to_owned()))?;
                    (topic, info.value_codec)
                }
                None => (target, "raw"),
            };
            let value = value.unwrap_or_default();
            match value_codec {
                "json" => {
                    serde_json::from_str::<serde_json::Value>(&value).map_err(|source| {
                        AppError::NotJson {
                            topic: topic.clone(),
                            source,
                        }
                    })?;
                }
                "raw" => {}
                codec => {
                    return Err(AppError::NotText {
                        topic: topic.clone(),
                        codec,
                    })
                }
            }
            app.declare().await?;
            let client = app.client().await?;
            let md = client
                .produce(
                    &topic,
                    partition,
                    key.map(Bytes::from),
                    Some(Bytes::from(value)),
                    Vec::new(),
                )
                .await?;
            println!(
                "{{\"topic\": {:?}, \"partition\": {}, \"offset\": {}}}",
                md.topic.as_ref(),
                md.partition,
                md.offset
            );
            app.close().await;
            Ok(())
        }
    }
}

async fn run_worker(app: &App) -> Result<(), AppError> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(AppError::Process)?;
    let mut worker = app.start_worker().await?;
    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: stopping"); Ok(()) }
        _ = terminate.recv() => { tracing::info!("SIGTERM: stopping"); Ok(()) }
        r = worker.wait() => r.map_err(AppError::from),
    };
    let stopped = worker.stop().await.map(|_| ()).map_err(AppError::from);
    outcome.and(stopped)
}
