//! [`AppError`]: what the app, its topics and its agents' `cast`/`ask`/`map` can fail with.

use std::time::Duration;

use mephisto_engine::fetcher::FetchError;
use mephisto_engine::group::GroupConsumerError;
use mephisto_engine::producer::ProduceError;
use mephisto_engine::EngineError;

use crate::core::codec::CodecError;
use crate::core::error::AgentError;
use crate::runtime::error::RuntimeError;

/// An error of the app layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// Connecting, producing, running the worker or reading replies failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A key or value could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A table's durable store could not be opened.
    #[error(transparent)]
    Store(Box<crate::state::durable::StoreError>),
    /// A record sent from an agent could not be written; the agent's error policy has the
    /// failure (its dead-letter hook, else the worker stops with it).
    #[error("the write to {topic} failed (the agent's error policy has it)")]
    WriteFailed {
        /// The topic.
        topic: String,
    },
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
    /// No agent of the app has this name.
    #[error("no agent named {0}")]
    UnknownAgent(String),
    /// The agent reads an in-memory channel, not a topic.
    #[error("agent {0} reads a channel, not a topic")]
    ChannelAgent(String),
    /// `isolated_partitions` needs a topic source and one actor.
    #[error("agent {0}: isolated_partitions needs a topic source and concurrency 1")]
    IsolatedPartitions(String),
    /// A value given as text is not JSON for a JSON topic.
    #[error("the value for {topic} must be JSON: {source}")]
    NotJson {
        /// The topic.
        topic: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A value cannot be given as text for this topic's codec.
    #[error("{topic} uses {codec} values, which cannot be given as text")]
    NotText {
        /// The topic.
        topic: String,
        /// The codec.
        codec: &'static str,
    },
    /// The target agent or channel is closed.
    #[error("{0} is closed")]
    Closed(String),
    /// The async runtime or the signal handlers could not be set up.
    #[error("cannot set up the process: {0}")]
    Process(#[source] std::io::Error),
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        AppError::Runtime(e.into())
    }
}

impl From<ProduceError> for AppError {
    fn from(e: ProduceError) -> Self {
        AppError::Runtime(e.into())
    }
}

impl From<GroupConsumerError> for AppError {
    fn from(e: GroupConsumerError) -> Self {
        AppError::Runtime(e.into())
    }
}

impl From<FetchError> for AppError {
    fn from(e: FetchError) -> Self {
        AppError::Runtime(e.into())
    }
}

impl From<crate::state::durable::StoreError> for AppError {
    fn from(e: crate::state::durable::StoreError) -> Self {
        AppError::Store(Box::new(e))
    }
}
