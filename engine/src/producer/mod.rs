//! The producer: records in, acknowledged offsets out.
//!
//! ```no_run
//! # async fn demo(cluster: mephisto_engine::cluster::Cluster) -> Result<(), Box<dyn std::error::Error>> {
//! use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord};
//!
//! let producer = Producer::new(cluster, ProducerConfig::default())?;
//! let meta = producer
//!     .send(ProducerRecord::new("events").key("user-1").value("clicked"))
//!     .await?;
//! println!("written at {}-{}@{}", meta.topic, meta.partition, meta.offset);
//! producer.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # How a record travels
//! 1. [`Producer::send`] (or [`Producer::enqueue`]) checks the record's size, waits for the
//!    topic's metadata if it is not cached, picks the partition ([`partitioner`]: murmur2 of the
//!    key as Java does, sticky for unkeyed records), takes buffer memory (waiting while
//!    `buffer_memory` is used up) and encodes the record straight into its partition's open
//!    batch buffer (`accumulator`, `batch`): the application's key and value are freed on its
//!    own thread as soon as they are copied, and the producer keeps no allocation per record.
//! 2. The sender task (`sender`) drains batches that are full, have lingered, or are being
//!    flushed, seals them (batch header with producer id and sequence, CRC; compression), and
//!    sends one Produce request per leader broker.
//! 3. The broker's answer resolves every record's future with its offset, or the batch is
//!    retried ([`sequence`] sorts the error codes), or its records fail with a
//!    [`ProduceError`].
//!
//! # Layout
//! - [`config`]: [`ProducerConfig`] and [`Acks`], defaults and validation.
//! - [`record`]: [`ProducerRecord`], [`RecordHeader`], [`RecordMetadata`].
//! - [`error`]: the error type, [`ProduceError`].
//! - [`partitioner`]: murmur2 and the sticky partitioner.
//! - [`sequence`]: idempotence bookkeeping and the classification of Produce error codes.
//! - [`topic_partition`]: the map key, [`TopicPartition`].
//! - `accumulator`, `batch`: per-partition batches and the memory budget (crate-private).
//! - `sender`: the task that sends batches and handles answers (crate-private).
//! - `transport`: what the producer needs from the cluster, as a trait (crate-private), and
//!   `cluster_transport`, its implementation on [`Cluster`].

mod accumulator;
mod batch;
mod cluster_transport;
pub mod config;
pub mod error;
mod fast_hash;
pub mod partitioner;
pub mod record;
mod sender;
pub mod sequence;
pub mod topic_partition;
mod transport;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::error::EngineError;
use accumulator::{Accumulator, AccumulatorConfig, Target};
use batch::{RecordData, RecordSlot};
use sender::{Sender, SenderConfig, SenderStats};
use transport::{TopicRoute, Transport};

pub use config::{Acks, ConfigError, IdempotenceMode, ProducerConfig};
pub use error::ProduceError;
pub use mephisto_wire::compression::Compression;
pub use record::{ProducerRecord, RecordHeader, RecordMetadata};
pub use sequence::ProducerIdentity;
pub use topic_partition::TopicPartition;

/// The acknowledgement of one queued record: resolves when the broker has acknowledged it
/// (immediately after the request is written with `acks=0`), or with the reason it failed.
#[derive(Debug)]
#[must_use = "a delivery does nothing unless awaited; dropping it does not cancel the record"]
pub struct Delivery {
    /// The record's place in its batch (40 bytes: an application that keeps many deliveries
    /// pending holds this much per record).
    slot: RecordSlot,
}

impl Delivery {
    /// The partition the record was queued for.
    pub fn partition(&self) -> i32 {
        self.slot.partition()
    }
}

impl Future for Delivery {
    type Output = Result<RecordMetadata, ProduceError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.slot).poll(cx)
    }
}

/// Why [`Producer::try_enqueue`] did not queue a record.
#[derive(Debug)]
pub enum TryEnqueueError {
    /// Queueing would have to wait; the record is given back (boxed: the error stays small
    /// on the path that succeeds).
    WouldBlock(Box<ProducerRecord>, Blocked),
    /// The record cannot be queued.
    Failed(ProduceError),
}

/// What [`Producer::try_enqueue`] would have waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// The topic's metadata.
    Metadata,
    /// This much buffer memory.
    Memory(usize),
}

/// Counters of the producer's work so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Produce requests sent.
    pub requests: u64,
    /// Batches sent again after a retriable error.
    pub retries: u64,
    /// Producer ids obtained (1 for an idempotent producer that never had to reset).
    pub identities: u64,
    /// The current producer id and epoch, when idempotent.
    pub identity: Option<ProducerIdentity>,
}

/// A Kafka producer. Cheap to clone: clones share the buffer and the sender task.
///
/// The sender task stops when [`close`](Self::close) is called or the last clone is dropped
/// (after sending what was queued).
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    acc: Arc<Accumulator>,
    transport: Arc<dyn Transport>,
    config: ProducerConfig,
    sender: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<Mutex<SenderStats>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The sender sends what is queued, then stops.
        self.acc.close();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Producer {
    /// A producer on `cluster`. Must be called inside a tokio runtime: it spawns the sender
    /// task there. Fails with [`ProduceError::Config`] if the settings are invalid.
    pub fn new(cluster: Cluster, config: ProducerConfig) -> Result<Self, ProduceError> {
        let transport = cluster_transport::ClusterTransport::new(cluster, config.request_timeout);
        Self::with_transport(Arc::new(transport), config)
    }

    /// A producer on `transport`; spawns the sender on the current tokio runtime.
    fn with_transport(
        transport: Arc<dyn Transport>,
        config: ProducerConfig,
    ) -> Result<Self, ProduceError> {
        let idempotence = config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ProduceError::Config(ConfigError(
                "a producer must be created inside a tokio runtime".into(),
            ))
        })?;
        let acc = Arc::new(Accumulator::new(AccumulatorConfig {
            linger: config.linger,
            batch_size: config.batch_size,
            max_request_size: config.max_request_size,
            buffer_memory: config.buffer_memory,
            delivery_timeout: config.delivery_timeout,
        }));
        let stats = Arc::new(Mutex::new(SenderStats::default()));
        let sender = Sender::new(
            Arc::clone(&transport),
            Arc::clone(&acc),
            SenderConfig {
                acks: config.acks,
                compression: config.compression,
                request_timeout: config.request_timeout,
                delivery_timeout: config.delivery_timeout,
                retries: config.retries,
                retry_backoff: config.retry_backoff,
                retry_backoff_max: config.retry_backoff_max,
                max_in_flight: config.max_in_flight,
                // A request takes at most a quarter of the buffer, so that with a small
                // buffer several requests are in flight at once (the broker works on one while
                // the next is filled) instead of one request holding all of it.
                max_request_size: config.max_request_size.min(config.buffer_memory / 4).max(1),
                idempotence,
            },
            Arc::clone(&stats),
        );
        let handle = runtime.spawn(sender.run());
        Ok(Producer {
            inner: Arc::new(Inner {
                acc,
                transport,
                config,
                sender: Mutex::new(Some(handle)),
                stats,
            }),
        })
    }

    /// The settings this producer runs with.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// Counters and the current producer identity.
    pub fn stats(&self) -> ProducerStats {
        let stats = self
            .inner
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        ProducerStats {
            requests: stats.requests,
            retries: stats.retries,
            identities: stats.identities,
            identity: stats.identity,
        }
    }

    /// Sends `record` and resolves once the broker has acknowledged it (for `acks=0`: once the
    /// request is written, with offset -1).
    ///
    /// Waits first for the topic's metadata and for buffer memory (at most `max_block`), then
    /// for the acknowledgement. Futures that are polled concurrently are queued in the order
    /// they are first polled; to keep many records in flight from one task, use
    /// [`enqueue`](Self::enqueue), which returns as soon as the record is queued.
    pub fn send(
        &self,
        record: ProducerRecord,
    ) -> impl Future<Output = Result<RecordMetadata, ProduceError>> + Send + 'static {
        let producer = self.clone();
        async move { producer.enqueue(record).await?.await }
    }

    /// Queues `record` and returns its [`Delivery`] once it is in a batch (after waiting for
    /// metadata and buffer memory, at most `max_block`). Records queued one after the other
    /// for the same partition are written in that order.
    pub async fn enqueue(&self, record: ProducerRecord) -> Result<Delivery, ProduceError> {
        let max_block = self.inner.config.max_block;
        // `max_block` counts from the first wait; a record that waited opens its batch at the
        // time it stopped waiting.
        let deadline = Instant::now() + max_block;
        let mut record = record;
        loop {
            match self.try_enqueue(record) {
                Ok(delivery) => return Ok(delivery),
                Err(TryEnqueueError::Failed(e)) => return Err(e),
                Err(TryEnqueueError::WouldBlock(r, Blocked::Metadata)) => {
                    self.route(&r.topic, deadline).await?;
                    record = *r;
                }
                Err(TryEnqueueError::WouldBlock(r, Blocked::Memory(cost))) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    // Wait for the memory, then give it back: the next try takes it again
                    // (another record may take it first; `max_block` still bounds the wait).
                    drop(self.inner.acc.reserve(cost, remaining).await?);
                    record = *r;
                }
            }
        }
    }

    /// Queues `record` if that can be done without waiting (its topic's metadata is cached
    /// and buffer memory is free); otherwise gives it back with [`TryEnqueueError::WouldBlock`]
    /// (use [`enqueue`](Self::enqueue)). The synchronous path of an application that queues
    /// one record per event.
    pub fn try_enqueue(&self, record: ProducerRecord) -> Result<Delivery, TryEnqueueError> {
        let inner = &self.inner;
        if inner.acc.is_closed() {
            return Err(TryEnqueueError::Failed(ProduceError::Closed));
        }
        let Some(route) = inner
            .transport
            .route(&record.topic)
            .filter(|r| r.partitions > 0)
        else {
            return Err(TryEnqueueError::WouldBlock(
                Box::new(record),
                Blocked::Metadata,
            ));
        };
        let ProducerRecord {
            topic,
            partition,
            key,
            value,
            headers,
            timestamp,
        } = record;
        let data = RecordData {
            key,
            value,
            headers,
            timestamp: timestamp.unwrap_or_else(now_ms),
        };
        let cost = inner
            .acc
            .check_size(&data)
            .map_err(TryEnqueueError::Failed)?;
        let target = match (partition, &data.key) {
            (Some(p), _) => {
                if p < 0 || p >= route.partitions {
                    return Err(TryEnqueueError::Failed(ProduceError::InvalidPartition {
                        topic: topic.to_string(),
                        partition: p,
                        partitions: route.partitions,
                    }));
                }
                Target::Partition(p)
            }
            (None, Some(key)) => match partitioner::partition_for_key(key, route.partitions) {
                Some(p) => Target::Partition(p),
                None => {
                    return Err(TryEnqueueError::Failed(ProduceError::InvalidPartition {
                        topic: topic.to_string(),
                        partition: -1,
                        partitions: route.partitions,
                    }))
                }
            },
            (None, None) => Target::Sticky {
                num_partitions: route.partitions,
                available: Arc::clone(&route.available),
            },
        };
        let permit = match inner
            .acc
            .try_reserve(cost)
            .map_err(TryEnqueueError::Failed)?
        {
            Some(permit) => permit,
            None => {
                let record = ProducerRecord {
                    topic,
                    partition,
                    key: data.key,
                    value: data.value,
                    headers: data.headers,
                    timestamp: Some(data.timestamp),
                };
                return Err(TryEnqueueError::WouldBlock(
                    Box::new(record),
                    Blocked::Memory(cost),
                ));
            }
        };
        let appended = inner
            .acc
            .append(&topic, target, data, permit, None)
            .map_err(TryEnqueueError::Failed)?;
        Ok(Delivery {
            slot: appended.slot,
        })
    }

    /// The topic's route from the metadata, refreshing it until `deadline` if it is missing.
    async fn route(&self, topic: &str, deadline: Instant) -> Result<Arc<TopicRoute>, ProduceError> {
        let transport = &self.inner.transport;
        let mut last = EngineError::UnknownTopic(topic.to_owned());
        let mut delay = self.inner.config.retry_backoff;
        loop {
            if let Some(route) = transport.route(topic).filter(|r| r.partitions > 0) {
                return Ok(route);
            }
            let refresh =
                tokio::time::timeout_at(deadline.into(), transport.refresh(vec![Arc::from(topic)]))
                    .await;
            match refresh {
                Ok(Ok(())) => {}
                Ok(Err(error)) => last = error,
                Err(_) => {}
            }
            if let Some(route) = transport.route(topic).filter(|r| r.partitions > 0) {
                return Ok(route);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ProduceError::MetadataTimeout {
                    topic: topic.to_owned(),
                    waited: self.inner.config.max_block,
                    last,
                });
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(self.inner.config.retry_backoff_max);
        }
    }

    /// Makes every record queued so far ready to send and waits until each is acknowledged
    /// or failed.
    pub async fn flush(&self) {
        let upto = self.inner.acc.begin_flush();
        self.inner.acc.wait_flushed(upto).await;
    }

    /// Refuses new records ([`ProduceError::Closed`]), sends and waits for everything queued
    /// (bounded by `delivery_timeout`), then stops the sender task.
    pub async fn close(&self) {
        self.inner.acc.close();
        self.inner.acc.wait_flushed(u64::MAX).await;
        let handle = self
            .inner
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            if let Err(error) = handle.await {
                tracing::error!(%error, "producer sender task failed");
            }
        }
    }

    /// Bytes of buffer memory free right now (of `buffer_memory`).
    pub fn available_memory(&self) -> usize {
        self.inner.acc.available_memory()
    }
}
