//! [`AppError`]: what the app, its topics and its agents' `cast`/`ask`/`map` can fail with.

use std::time::Duration;

use mephisto_engine::fetcher::FetchError;
use mephisto_engine::group::GroupConsumerError;
use mephisto_engine::producer::ProduceError;
use mephisto_engine::EngineError;

use crate::agent::AgentError;
use crate::codec::CodecError;

/// An error of the app layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// Connecting to or talking with the brokers failed.
    #[error("broker: {0}")]
    Engine(#[from] EngineError),
    /// A record could not be produced.
    #[error("produce: {0}")]
    Produce(#[from] ProduceError),
    /// The consumer group failed.
    #[error("consumer group: {0}")]
    Group(#[from] GroupConsumerError),
    /// Reading replies failed.
    #[error("reply consumer: {0}")]
    Fetch(#[from] FetchError),
    /// A key or value could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// An agent stopped with an error.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// No reply to an `ask` arrived in time.
    #[error("no reply from agent {agent} within {after:?} (correlation id {correlation_id}, reply topic {reply_to})")]
    ReplyTimeout {
        /// The agent asked.
        agent: String,
        /// The request's correlation id.
        correlation_id: String,
        /// The reply topic.
        reply_to: String,
        /// How long we waited.
        after: Duration,
    },
    /// A setting or an argument is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The in-process development broker could not start.
    #[error("development broker: {0}")]
    DevBroker(String),
    /// A `memory://` URL in a build without the `dev-broker` feature.
    #[error("memory:// needs the in-process development broker, and this build of mephisto-agents has its `dev-broker` feature off")]
    DevBrokerDisabled,
    /// The target agent or channel is closed.
    #[error("{0} is closed")]
    Closed(String),
    /// A signal handler could not be installed.
    #[error("signals: {0}")]
    Signals(String),
}
