//! [`RuntimeError`]: what connecting, producing, running a worker and reading replies can
//! fail with.

use std::time::Duration;

use mephisto_engine::fetcher::FetchError;
use mephisto_engine::group::GroupConsumerError;
use mephisto_engine::producer::ProduceError;
use mephisto_engine::EngineError;

use crate::core::error::AgentError;

/// An error of the Kafka runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// Connecting to or talking with the brokers failed.
    #[error("broker: {0}")]
    Engine(#[from] EngineError),
    /// A record could not be produced.
    #[error("produce: {0}")]
    Produce(#[from] ProduceError),
    /// The consumer group failed.
    #[error("consumer group: {0}")]
    Group(#[from] GroupConsumerError),
    /// Reading a topic failed.
    #[error("fetch: {0}")]
    Fetch(#[from] FetchError),
    /// An agent stopped with an error.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The in-process development broker could not start.
    #[error("development broker: {0}")]
    DevBroker(String),
    /// `memory://` was asked for, but this build has no development broker (the
    /// `dev-broker` feature of `mephisto-agents` is off).
    #[error("`memory://` needs the development broker, which this build leaves out (cargo feature `dev-broker` of mephisto-agents)")]
    DevBrokerDisabled,
    /// Topics the app created did not show up in the metadata in time.
    #[error("topics {topics:?} did not appear in the metadata within {waited:?}")]
    TopicsNotReady {
        /// The missing topics.
        topics: Vec<String>,
        /// How long we waited.
        waited: Duration,
    },
    /// More agents read one topic than one event can be delivered to.
    #[error("{agents} agents read topic {topic}; at most {max} can")]
    TooManyAgents {
        /// The topic.
        topic: String,
        /// How many read it.
        agents: usize,
        /// The limit.
        max: u32,
    },
    /// The worker's consumer could not get a thread of its own.
    #[error("cannot start the consumer's thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A correlation id already has an `ask` waiting for its reply.
    #[error("correlation id {0} is already waiting for a reply")]
    DuplicateCorrelationId(String),
    /// Something this process runs is closed.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// Reading a table partition's changelog failed.
    #[error("recovering partition {partition} of table {table}: {source}")]
    Recovery {
        /// The table.
        table: String,
        /// The partition.
        partition: i32,
        /// What the changelog reader reported.
        #[source]
        source: FetchError,
    },
    /// A table partition's changelog records could not be applied.
    #[error("recovering partition {partition} of table {table}: {source}")]
    Changelog {
        /// The table.
        table: String,
        /// The partition.
        partition: i32,
        /// Why (boxed: it names a path or a codec error).
        #[source]
        source: Box<crate::runtime::tables::ApplyError>,
    },
    /// A table partition's durable store failed.
    #[error("table {table}, partition {partition}: {source}")]
    Store {
        /// The table.
        table: String,
        /// The partition.
        partition: i32,
        /// The store's error (boxed: it names a path).
        #[source]
        source: Box<crate::state::durable::StoreError>,
    },
}
