//! Mephisto's development broker: an in-process, in-memory, Kafka-compatible broker for
//! development and tests.
//!
//! [`DevBroker::start`] binds a loopback port and speaks the real Kafka wire protocol (through
//! `mephisto-wire` and `kafka-protocol`), so any Kafka client can use it: Mephisto's engine,
//! librdkafka, kafka-python. It is one broker (node 1) holding every partition, with nothing on
//! disk. It is a development and test tool, not a production broker: use Apache Kafka, Redpanda
//! or tansu in production. Among Mephisto's crates it depends on `mephisto-wire` only; the
//! `mephisto` CLI (`mephisto dev-broker`) and `memory://` app URLs use it behind the
//! `dev-broker` feature of `mephisto-agents`.
//!
//! # What it serves
//! ApiVersions, Metadata (auto-creating topics), CreateTopics, DeleteTopics, InitProducerId,
//! Produce (acks 0/1/-1, idempotent sequence checks), Fetch (long poll), ListOffsets,
//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! DescribeGroups, ListGroups and DescribeConfigs, at the versions in `handler::SERVED_APIS`,
//! which is exactly what ApiVersions advertises. Topic configs honoured: `cleanup.policy`
//! (`delete`, `compact` or both), `retention.bytes`, `retention.ms`, `message.timestamp.type`;
//! any other config is refused (INVALID_CONFIG) rather than ignored. Not served: transactions,
//! fetch sessions (every Fetch is a full one), ACLs, SASL, altering configs, DeleteRecords.
//!
//! # Bounds
//! Each partition keeps at most [`DevBrokerConfig::retention_bytes`] (or its topic's smaller
//! `retention.bytes`): the oldest batches go and the log start offset moves up; a compacted
//! topic is compacted first (only the last record of each key stays, at its offset), and loses
//! its oldest batches only if compaction does not bring it under three quarters of the limit.
//! A request larger than [`DevBrokerConfig::max_request_bytes`] closes its connection; a
//! malformed request gets an error response when its header decodes and the response type has
//! a top-level error code, and closes the connection otherwise.
//!
//! # Layout
//! - this file: [`DevBroker`] (start, address, shutdown), [`DevBrokerConfig`],
//!   [`DevBrokerError`].
//! - `handler`: request dispatch without a socket (the fuzzing entry point, public but hidden),
//!   and the table of served APIs.
//! - `server`: accept loop, per-connection request loop, timer task (group sessions and
//!   rebalance deadlines, time-based retention).
//! - `state`: the shared state behind one mutex.
//! - `log`: a partition log: batches, offsets, retention and compaction, idempotent sequences.
//! - `admin`: Metadata, CreateTopics, DeleteTopics, FindCoordinator, InitProducerId,
//!   DescribeConfigs.
//! - `produce`: Produce and batch validation.
//! - `fetch`: Fetch with long polling, ListOffsets.
//! - `group`: the group coordinator (it works on the groups the caller locked in `state`).
//! - `offsets`: OffsetCommit, OffsetFetch.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod admin;
mod fetch;
mod group;
#[doc(hidden)]
pub mod handler;
pub(crate) mod log;
mod offsets;
mod produce;
mod server;
mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[doc(hidden)]
pub use fetch::PendingFetch;
#[doc(hidden)]
pub use state::Shared;

/// How to run a [`DevBroker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevBrokerConfig {
    /// Address to listen on. Default `127.0.0.1:0` (a free port).
    pub listen: SocketAddr,
    /// Partitions of auto-created topics (and of CreateTopics asking for -1). Default 1.
    pub default_partitions: i32,
    /// Bytes kept per partition before the oldest batches are dropped. Default 64 MiB.
    pub retention_bytes: u64,
    /// Largest request accepted, in bytes; a larger one closes the connection. Default 100 MiB.
    pub max_request_bytes: usize,
    /// Kafka's `group.initial.rebalance.delay.ms`: how long the first join of an empty group
    /// waits for more members (extended by the same again while new members keep joining, up
    /// to the rebalance timeout). Default 0, the value of the `server.properties` Kafka ships
    /// for development; Kafka's built-in default is 3 s.
    pub initial_rebalance_delay: Duration,
}

impl Default for DevBrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            default_partitions: 1,
            retention_bytes: 64 * 1024 * 1024,
            max_request_bytes: 100 * 1024 * 1024,
            initial_rebalance_delay: Duration::ZERO,
        }
    }
}

/// Why a [`DevBroker`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevBrokerError {
    /// The configuration is unusable.
    #[error("invalid dev broker configuration: {0}")]
    Config(String),
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A running development broker. Dropping it stops it (without waiting); [`shutdown`] stops it
/// and waits.
///
/// [`shutdown`]: DevBroker::shutdown
#[derive(Debug)]
pub struct DevBroker {
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    ticker: Option<JoinHandle<()>>,
}

impl DevBroker {
    /// Binds `config.listen` and serves on the current tokio runtime.
    pub async fn start(config: DevBrokerConfig) -> Result<DevBroker, DevBrokerError> {
        if config.default_partitions < 1 {
            return Err(DevBrokerError::Config(format!(
                "default_partitions must be at least 1, not {}",
                config.default_partitions
            )));
        }
        if config.max_request_bytes < 64 {
            return Err(DevBrokerError::Config(
                "max_request_bytes must be at least 64".to_owned(),
            ));
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| DevBrokerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DevBrokerError::Bind {
                addr: config.listen,
                source,
            })?;
        let mut advertised = addr;
        if advertised.ip().is_unspecified() {
            advertised.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let shared = Arc::new(Shared::new(config, advertised));
        let accept = tokio::spawn(server::accept_loop(listener, Arc::clone(&shared)));
        let ticker = tokio::spawn(server::ticker(shared));
        tracing::info!(%addr, "dev broker listening");
        Ok(DevBroker {
            addr: advertised,
            accept: Some(accept),
            ticker: Some(ticker),
        })
    }

    /// The address it listens on (an unspecified listen address is reported as 127.0.0.1).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its bootstrap URL, `kafka://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("kafka://{}", self.addr)
    }

    /// Stops accepting, closes every connection and waits for the tasks to end.
    pub async fn shutdown(mut self) {
        for task in [self.accept.take(), self.ticker.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        for task in [self.accept.take(), self.ticker.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}
