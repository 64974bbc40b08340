//! [`CliError`]: everything a command can fail with, each shown as one line.

use std::time::Duration;

use mephisto_engine::fetcher::FetchError;
use mephisto_engine::group::GroupConsumerError;
use mephisto_engine::producer::ProduceError;
use mephisto_engine::EngineError;

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage that clap cannot catch.
    #[error("{0}")]
    Usage(String),
    /// Fetched data that does not decode.
    #[error("{0}")]
    Data(String),
    /// The engine (connections, metadata, admin).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The producer.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// The fetcher.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Several records were not acknowledged.
    #[error("{failed} of {total} records failed, the first with: {first}")]
    Deliveries {
        /// Records that failed.
        failed: u64,
        /// Records sent.
        total: u64,
        /// The first failure.
        first: Box<CliError>,
    },
    /// The consumer group.
    #[error(transparent)]
    Group(#[from] GroupConsumerError),
    /// Reading stdin or writing stdout.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The development broker could not start.
    #[cfg(feature = "dev-broker")]
    #[error("dev-broker: {0}")]
    DevBroker(String),
    /// An operation did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        what: String,
        /// The limit.
        after: Duration,
    },
}

impl CliError {
    /// The process exit status: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            _ => 1,
        }
    }
}
