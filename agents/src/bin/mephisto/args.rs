//! The command line, parsed by clap.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::CliError;

/// Mephisto: Kafka topics, producing and consuming from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "mephisto",
    version,
    about = "Mephisto: Kafka topics, producing and consuming from the command line"
)]
pub struct Cli {
    /// Bootstrap brokers: kafka://host:port[,host:port...].
    #[arg(
        long,
        global = true,
        env = "MEPHISTO_BROKER",
        default_value = "kafka://127.0.0.1:9092"
    )]
    pub broker: String,
    /// Log level on stderr.
    #[arg(short = 'l', long, global = true, value_enum, default_value_t = LogLevel::Warn)]
    pub loglevel: LogLevel,
    /// Request timeout in milliseconds; also bounds connecting and retries.
    #[arg(long, global = true, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors (the default).
    Warn,
    /// Progress.
    Info,
    /// Engine internals.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The `tracing` level.
    pub fn as_tracing(self) -> tracing::Level {
        match self {
            Self::Error => tracing::Level::ERROR,
            Self::Warn => tracing::Level::WARN,
            Self::Info => tracing::Level::INFO,
            Self::Debug => tracing::Level::DEBUG,
            Self::Trace => tracing::Level::TRACE,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list and delete topics.
    Topics {
        /// What to do with topics.
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Send stdin to a topic, one record per line.
    Produce(ProduceArgs),
    /// Print a topic's records, one per line.
    Consume(ConsumeArgs),
    /// Run the in-memory development broker (not for production: use Apache Kafka, Redpanda
    /// or tansu there).
    #[cfg(feature = "dev-broker")]
    DevBroker(DevBrokerArgs),
}

/// `dev-broker` options.
#[cfg(feature = "dev-broker")]
#[derive(Debug, Args)]
pub struct DevBrokerArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: std::net::SocketAddr,
    /// Partitions of auto-created topics.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,
    /// Bytes kept per partition; the oldest batches beyond it are dropped.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub retention_bytes: u64,
    /// Exit after this many milliseconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    pub exit_after_ms: Option<u64>,
    /// How long the first join of an empty group waits for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`; Kafka's built-in default is 3000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(..=300_000))]
    pub initial_rebalance_delay_ms: u64,
}

/// Topic commands.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics with their partition counts.
    List(ListArgs),
    /// Delete a topic.
    Delete(DeleteArgs),
}

/// `topics create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Replication factor (default: the broker's).
    #[arg(long, value_parser = clap::value_parser!(i16).range(1..))]
    pub replication: Option<i16>,
    /// A topic config, KEY=VALUE; repeatable.
    #[arg(long = "config", value_parser = parse_config)]
    pub configs: Vec<(String, String)>,
}

fn parse_config(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// `topics list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Also list internal topics (`__consumer_offsets`, ...).
    #[arg(long)]
    pub internal: bool,
}

/// `topics delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Topic name.
    pub name: String,
}

/// Batch compression codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
}

/// Acknowledgement levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AcksArg {
    /// Every in-sync replica.
    All,
    /// The leader.
    #[value(name = "1")]
    Leader,
    /// None: fire and forget.
    #[value(name = "0")]
    Zero,
}

/// `produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic name.
    pub topic: String,
    /// Split each line at the first SEP: the text before it is the key, after it the value.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// Batch compression.
    #[arg(long, value_enum, default_value_t = Codec::None)]
    pub compression: Codec,
    /// Acknowledgements to wait for.
    #[arg(long, value_enum, default_value_t = AcksArg::All)]
    pub acks: AcksArg,
}

/// Where `consume` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// The beginning of each partition.
    Earliest,
    /// The end of each partition: only new records.
    Latest,
}

/// Output formats of `consume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The value, one per line.
    Line,
    /// One JSON object per line: topic, partition, offset, timestamp, key, value, headers.
    Json,
}

/// `consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic name.
    pub topic: String,
    /// Where to start in every partition.
    #[arg(long, value_enum, default_value_t = From::Earliest)]
    pub from: From,
    /// Stop after this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many milliseconds without a record.
    #[arg(long)]
    pub idle_timeout_ms: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Line)]
    pub format: Format,
    /// Consume as a member of this consumer group: only the partitions the group assigns,
    /// from the committed offsets (`--from` applies where none is committed); what is printed
    /// is acknowledged and committed (on an interval and on exit, including SIGTERM/SIGINT).
    #[arg(long)]
    pub group: Option<String>,
    /// Partition assignor advertised first (with --group).
    #[arg(long, value_enum, default_value_t = AssignorArg::Range, requires = "group")]
    pub assignor: AssignorArg,
    /// Session timeout in milliseconds (with --group).
    #[arg(long, default_value_t = 45_000, requires = "group")]
    pub session_timeout_ms: u64,
    /// Static membership id, `group.instance.id` (with --group).
    #[arg(long, requires = "group")]
    pub instance_id: Option<String>,
}

/// Assignors of `consume --group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AssignorArg {
    /// `range`.
    Range,
    /// `roundrobin`.
    Roundrobin,
    /// `cooperative-sticky`.
    CooperativeSticky,
}

impl ConsumeArgs {
    /// Refuses option values the engine cannot use.
    pub fn check(&self) -> Result<(), CliError> {
        if self.group.as_deref() == Some("") {
            return Err(CliError::Usage("--group must not be empty".into()));
        }
        if self.instance_id.as_deref() == Some("") {
            return Err(CliError::Usage("--instance-id must not be empty".into()));
        }
        if self.session_timeout_ms == 0 || self.session_timeout_ms > i32::MAX as u64 {
            return Err(CliError::Usage(
                "--session-timeout-ms must be between 1 and 2147483647".into(),
            ));
        }
        Ok(())
    }
}

/// Prints a parse error as one line (help and version as clap renders them) and returns the
/// exit status.
pub fn report_parse_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let rendered = error.render().to_string();
            // clap's message, without its usage and help hints, on one line.
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let first = message.join(" ");
            let first = first.trim_start_matches("error: ");
            eprintln!("mephisto: {first} (see --help)");
            ExitCode::from(2)
        }
    }
}
