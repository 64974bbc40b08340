//! Mephisto's engine: the client's only crate that opens sockets.
//!
//! # Layout
//! - [`config`]: [`ClientConfig`], bootstrap brokers, timeouts, backoff, limits.
//! - [`broker_url`]: parsing `kafka://host:port,host:port` bootstrap lists.
//! - [`error`]: [`EngineError`] and [`KafkaError`] (every Kafka error code, named, with Kafka's
//!   retriable flag).
//! - [`backoff`]: exponential backoff with jitter for reconnects and retries.
//! - [`connection`]: one pipelined broker connection driven by its own task.
//! - [`cluster`]: [`Cluster`], the metadata cache and the connection pool; routes requests to
//!   brokers, partition leaders or any broker. Its module docs list the public API.
//! - [`admin`]: topic creation and deletion, topic listing, ListOffsets.
//! - [`producer`]: batching per partition, idempotence, the murmur2 partitioner, a bounded
//!   buffer; `send` resolves when the broker acknowledged.
//! - [`fetcher`]: long-poll Fetch per leader broker, a bounded prefetch buffer, offset reset,
//!   read_committed; yields `Bytes`-backed batches with no copy per record.
//! - [`group`]: [`GroupConsumer`](group::GroupConsumer), a consumer-group member (classic protocol).
//!
//! The producer, the fetcher and the consumer-group driver build on [`Cluster`]; no two
//! top-level modules import each other, directly or around a loop (the leaves — `config`,
//! `broker_url`, `error`, `backoff` — sit below `connection` and `cluster`, which sit below the
//! clients). The in-memory development broker is its own crate, `mephisto-dev-broker`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod backoff;
pub mod broker_url;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod error;
pub mod fetcher;
pub mod group;
pub mod producer;

pub use admin::{Admin, NewTopic, OffsetSpec};
pub use broker_url::BrokerAddr;
pub use cluster::{Cluster, Purpose, Response};
pub use config::ClientConfig;
pub use error::{EngineError, KafkaError};
pub use kafka_protocol::messages::BrokerId;
