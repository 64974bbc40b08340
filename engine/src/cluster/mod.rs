//! [`Cluster`]: the engine's view of a Kafka cluster — bootstrap, the metadata cache, the
//! connection pool — and the routing of requests to brokers.
//!
//! # Public API (stable; the producer, fetcher, group driver and CLI build on it)
//! ```text
//! Cluster::connect(ClientConfig) -> Result<Cluster>      bootstrap + first metadata
//! cluster.config() -> &ClientConfig
//!
//! // metadata (generation-stamped snapshots, Arc<ClusterMetadata>)
//! cluster.cached_metadata() -> Arc<ClusterMetadata>      no I/O
//! cluster.metadata().await -> Result<Arc<..>>            refreshed first if stale or too old
//! cluster.refresh_metadata().await -> Result<Arc<..>>    forced, coalesced with concurrent ones
//! cluster.invalidate_metadata(generation)                mark stale (ignored if already newer)
//! cluster.topic(name).await -> Result<TopicMetadata>     refreshes once if unknown
//! cluster.leader(topic, partition).await -> Result<Leader { broker, epoch }>
//!
//! // connections (one per (broker id, Purpose::{Default, Produce, Fetch, Group}))
//! cluster.connection(broker, purpose).await -> Result<Connection>
//! cluster.versions(broker).await -> Result<NegotiatedVersions>
//!
//! // requests: `build` gets the version negotiated with the chosen broker
//! cluster.send(broker, purpose, |version| request).await -> Result<Response<R::Response>>
//! cluster.send_with_timeout(broker, purpose, timeout, |version| request).await
//! cluster.send_no_response(broker, purpose, |version| request).await -> Result<Response<()>>
//! cluster.send_to_leader(topic, partition, purpose, |version, leader| request).await
//! cluster.send_to_any(|version| request).await
//! cluster.send_to_controller(|version| request).await
//! cluster.retry(|| async { ... }).await                  retries retriable errors, refreshing
//!                                                        metadata when they call for it
//! ```
//! [`Response`] carries the broker that answered, the version used and the body. Kafka error
//! codes inside response bodies are the caller's to read (turn them into errors with
//! [`EngineError::check_code`]); wrap the call in [`Cluster::retry`] to have retriable ones
//! retried.
//!
//! # Metadata
//! The cache holds every topic of the cluster (Metadata with a null topic list). It is refreshed
//! on demand, when an error invalidates it (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
//! LEADER_NOT_AVAILABLE, a dead or refused connection, see
//! [`EngineError::invalidates_metadata`]), and in the background once it is older than
//! [`ClientConfig::metadata_max_age`]. Concurrent refreshes are coalesced: callers that asked
//! while a refresh was running get its result instead of starting another. A refresh asks a
//! broker we already have a connection to, then the other known brokers in random order, then
//! the bootstrap brokers.
//!
//! # Lifetime
//! `Cluster` is a cheap `Clone` (an `Arc`). When the last clone is dropped, the background
//! refresher stops and the connections close once their in-flight requests are done.

mod metadata;
mod pool;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::Request;
use mephisto_wire::versions::NegotiatedVersions;
use tokio::sync::watch;
use tokio::time::Instant;

pub use metadata::{BrokerInfo, ClusterMetadata, Leader, PartitionMetadata, TopicMetadata};
pub use pool::Purpose;

use crate::backoff::Backoff;
use crate::broker_url::BrokerAddr;
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::EngineError;
use pool::Pool;

/// A response with where it came from.
#[derive(Debug, Clone)]
pub struct Response<T> {
    /// The broker that answered.
    pub broker: BrokerId,
    /// The version the request was sent (and the response decoded) at.
    pub version: i16,
    /// The response body.
    pub body: T,
}

/// A handle to a Kafka cluster; see the [module docs](self) for the API at a glance.
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    metadata: RwLock<Arc<ClusterMetadata>>,
    /// The generation of `metadata`, readable without its lock (per-record callers).
    generation: AtomicU64,
    /// Set when an error invalidated the current snapshot.
    stale: AtomicBool,
    /// Held while a metadata refresh runs; waiters reuse its result.
    refresh: tokio::sync::Mutex<()>,
    pool: Pool,
    /// Dropped with the last `Cluster`, which stops the background refresher.
    _shutdown: watch::Sender<()>,
}

impl Cluster {
    /// Connects to the first reachable bootstrap broker and loads the cluster metadata.
    ///
    /// Fails with [`EngineError::NoBrokerAvailable`] (listing every broker tried and why) when
    /// no bootstrap broker answers; each one is given at most the connect timeout.
    pub async fn connect(config: ClientConfig) -> Result<Self, EngineError> {
        config.validate()?;
        let (shutdown, watcher) = watch::channel(());
        let cluster = Self {
            inner: Arc::new(Inner {
                config,
                metadata: RwLock::new(Arc::new(ClusterMetadata::empty())),
                generation: AtomicU64::new(0),
                stale: AtomicBool::new(false),
                refresh: tokio::sync::Mutex::new(()),
                pool: Pool::default(),
                _shutdown: shutdown,
            }),
        };
        cluster.refresh_metadata().await?;
        tokio::spawn(refresher(Arc::downgrade(&cluster.inner), watcher));
        Ok(cluster)
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    // ---------------------------------------------------------------------------------------
    // Metadata.

    /// The current snapshot, without any I/O (it may be stale).
    pub fn cached_metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(
            &self
                .inner
                .metadata
                .read()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// The generation of the current snapshot (a cheap check of whether a copy of it is
    /// still current; generations only grow).
    pub fn metadata_generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The current snapshot, refreshed first if it was invalidated or is older than
    /// [`ClientConfig::metadata_max_age`].
    pub async fn metadata(&self) -> Result<Arc<ClusterMetadata>, EngineError> {
        let current = self.cached_metadata();
        if current.generation == 0
            || self.inner.stale.load(Ordering::Acquire)
            || current.fetched_at.elapsed() >= self.inner.config.metadata_max_age
        {
            self.refresh_after(current.generation).await
        } else {
            Ok(current)
        }
    }

    /// Fetches fresh metadata now. If a refresh is already running, waits for it and returns
    /// its result instead of starting another.
    pub async fn refresh_metadata(&self) -> Result<Arc<ClusterMetadata>, EngineError> {
        let seen = self.cached_metadata().generation;
        self.refresh_after(seen).await
    }

    /// Marks the snapshot of `generation` stale, so the next [`metadata`](Self::metadata) call
    /// refreshes it. Does nothing if the current snapshot is already newer.
    pub fn invalidate_metadata(&self, generation: u64) {
        if self.cached_metadata().generation == generation {
            self.inner.stale.store(true, Ordering::Release);
        }
    }

    /// Topic `name`'s metadata. If the snapshot does not have it (or has it without
    /// partitions, as while it is being created), refreshes once before giving up with
    /// [`EngineError::UnknownTopic`].
    pub async fn topic(&self, name: &str) -> Result<TopicMetadata, EngineError> {
        let known =
            |m: &ClusterMetadata| m.topic(name).filter(|t| !t.partitions.is_empty()).cloned();
        let current = self.metadata().await?;
        if let Some(topic) = known(&current) {
            return Ok(topic);
        }
        let fresh = self.refresh_after(current.generation).await?;
        known(&fresh).ok_or_else(|| EngineError::UnknownTopic(name.to_owned()))
    }

    /// The leader of `topic`-`partition`. Refreshes once when the snapshot has no answer
    /// (unknown topic or partition, no leader).
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<Leader, EngineError> {
        let current = self.metadata().await?;
        match current.leader(topic, partition) {
            Err(e) if e.invalidates_metadata() => self
                .refresh_after(current.generation)
                .await?
                .leader(topic, partition),
            result => result,
        }
    }

    async fn refresh_after(&self, seen: u64) -> Result<Arc<ClusterMetadata>, EngineError> {
        let _running = self.inner.refresh.lock().await;
        let current = self.cached_metadata();
        if current.generation > seen {
            return Ok(current);
        }
        let response = self.fetch_metadata(&current).await?;
        let fresh = Arc::new(ClusterMetadata::from_response(
            &response,
            current.generation + 1,
        ));
        *self
            .inner
            .metadata
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::clone(&fresh);
        self.inner
            .generation
            .store(fresh.generation, Ordering::Release);
        self.inner.stale.store(false, Ordering::Release);
        self.inner.pool.retain(|id| fresh.brokers.contains_key(&id));
        tracing::debug!(
            generation = fresh.generation,
            brokers = fresh.brokers.len(),
            topics = fresh.topics.len(),
            "metadata refreshed"
        );
        Ok(fresh)
    }

    /// Asks a broker for the metadata of every topic: a connected broker first, then the other
    /// known brokers in random order, then the bootstrap brokers.
    async fn fetch_metadata(
        &self,
        current: &ClusterMetadata,
    ) -> Result<MetadataResponse, EngineError> {
        let config = &self.inner.config;
        let live = self.inner.pool.live_brokers();
        let mut known: Vec<&BrokerInfo> = current
            .brokers
            .values()
            .filter(|b| !live.contains(&b.id))
            .collect();
        fastrand::shuffle(&mut known);
        let mut candidates: Vec<(Option<BrokerId>, BrokerAddr)> = live
            .iter()
            .filter_map(|id| current.broker(*id).map(|b| (Some(b.id), b.addr.clone())))
            .chain(known.into_iter().map(|b| (Some(b.id), b.addr.clone())))
            .collect();
        for addr in &config.bootstrap {
            if !candidates.iter().any(|(_, a)| a == addr) {
                candidates.push((None, addr.clone()));
            }
        }
        let mut attempts = Vec::new();
        for (id, addr) in candidates {
            let conn = match id {
                Some(id) => {
                    self.inner
                        .pool
                        .get(id, Purpose::Default, &addr, config)
                        .await
                }
                None => Connection::connect(&addr, config).await,
            };
            let result = match conn {
                Ok(conn) => request_all_metadata(&conn).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(response) => return Ok(response),
                Err(e) => {
                    tracing::debug!(broker = %addr, error = %e, "metadata request failed");
                    attempts.push(format!("{addr}: {e}"));
                }
            }
        }
        Err(EngineError::NoBrokerAvailable { attempts })
    }

    // ---------------------------------------------------------------------------------------
    // Connections.

    /// The connection for `purpose` to broker `broker`, opened (with the ApiVersions handshake)
    /// if there is none or it died. After a failed attempt, the next one waits for the
    /// reconnect backoff.
    pub async fn connection(
        &self,
        broker: BrokerId,
        purpose: Purpose,
    ) -> Result<Connection, EngineError> {
        let mut snapshot = self.metadata().await?;
        if snapshot.broker(broker).is_none() {
            snapshot = self.refresh_after(snapshot.generation).await?;
        }
        let Some(info) = snapshot.broker(broker) else {
            return Err(EngineError::UnknownBroker(broker));
        };
        let result = self
            .inner
            .pool
            .get(broker, purpose, &info.addr, &self.inner.config)
            .await;
        if let Err(e) = &result {
            if e.invalidates_metadata() {
                self.invalidate_metadata(snapshot.generation);
            }
        }
        result
    }

    /// The API versions negotiated with `broker` (connecting if needed).
    pub async fn versions(&self, broker: BrokerId) -> Result<NegotiatedVersions, EngineError> {
        let conn = match self.inner.pool.any_live(broker) {
            Some(conn) => conn,
            None => self.connection(broker, Purpose::Default).await?,
        };
        Ok(conn.versions().clone())
    }

    // ---------------------------------------------------------------------------------------
    // Requests.

    /// Sends the request `build(version)` to `broker` on its `purpose` connection, `version`
    /// being the one negotiated with that broker for `R`, and waits for the response (at most
    /// the request timeout).
    ///
    /// A transport failure also invalidates the metadata. Nothing is retried here; see
    /// [`retry`](Self::retry).
    pub async fn send<R, F>(
        &self,
        broker: BrokerId,
        purpose: Purpose,
        build: F,
    ) -> Result<Response<R::Response>, EngineError>
    where
        R: Request + Send + 'static,
        F: FnOnce(i16) -> R,
    {
        let timeout = self.inner.config.request_timeout;
        self.send_with_timeout(broker, purpose, timeout, build)
            .await
    }

    /// [`send`](Self::send) with an explicit response timeout (for Fetch long polls and
    /// JoinGroup, give the broker's allowed wait plus the request timeout).
    pub async fn send_with_timeout<R, F>(
        &self,
        broker: BrokerId,
        purpose: Purpose,
        timeout: Duration,
        build: F,
    ) -> Result<Response<R::Response>, EngineError>
    where
        R: Request + Send + 'static,
        F: FnOnce(i16) -> R,
    {
        let generation = self.cached_metadata().generation;
        let conn = self.connection(broker, purpose).await?;
        let version = conn.version_of::<R>()?;
        match conn
            .send_with_timeout(build(version), version, timeout)
            .await
        {
            Ok(body) => Ok(Response {
                broker,
                version,
                body,
            }),
            Err(e) => {
                if e.invalidates_metadata() {
                    self.invalidate_metadata(generation);
                }
                Err(e)
            }
        }
    }

    /// Sends a request that gets no response (a Produce with `acks = 0`); resolves once it is
    /// written to the socket.
    pub async fn send_no_response<R, F>(
        &self,
        broker: BrokerId,
        purpose: Purpose,
        build: F,
    ) -> Result<Response<()>, EngineError>
    where
        R: Request + Send + 'static,
        F: FnOnce(i16) -> R,
    {
        let generation = self.cached_metadata().generation;
        let conn = self.connection(broker, purpose).await?;
        let version = conn.version_of::<R>()?;
        match conn.send_no_response(build(version), version).await {
            Ok(()) => Ok(Response {
                broker,
                version,
                body: (),
            }),
            Err(e) => {
                if e.invalidates_metadata() {
                    self.invalidate_metadata(generation);
                }
                Err(e)
            }
        }
    }

    /// Sends `build(version, leader)` to the current leader of `topic`-`partition` (refreshing
    /// the metadata once if it does not know the leader).
    pub async fn send_to_leader<R, F>(
        &self,
        topic: &str,
        partition: i32,
        purpose: Purpose,
        build: F,
    ) -> Result<Response<R::Response>, EngineError>
    where
        R: Request + Send + 'static,
        F: FnOnce(i16, Leader) -> R,
    {
        let leader = self.leader(topic, partition).await?;
        self.send(leader.broker, purpose, |version| build(version, leader))
            .await
    }

    /// Sends `build(version)` on the `Default` connection of some broker: one we are already
    /// connected to if possible, otherwise the first known broker (in random order) that accepts
    /// a connection.
    pub async fn send_to_any<R, F>(&self, build: F) -> Result<Response<R::Response>, EngineError>
    where
        R: Request + Send + 'static,
        F: FnOnce(i16) -> R,
    {
        let broker = self.any_broker().await?;
        self.send(broker, Purpose::Default, build).await
    }

    /// Sends `build(version)` to the controller the metadata names (any broker if it names
    /// none; KRaft brokers forward controller requests).
    pub async fn send_to_controller<R, F>(
        &self,
        build: F,
    ) -> Result<Response<R::Response>, EngineError>
    where
        R: Request + Send + 'static,
        F: FnOnce(i16) -> R,
    {
        let snapshot = self.metadata().await?;
        match snapshot
            .controller
            .filter(|c| snapshot.broker(*c).is_some())
        {
            Some(controller) => self.send(controller, Purpose::Default, build).await,
            None => self.send_to_any(build).await,
        }
    }

    /// A broker that accepts a connection: a connected one, else the known ones in random order.
    async fn any_broker(&self) -> Result<BrokerId, EngineError> {
        let snapshot = self.metadata().await?;
        if let Some(id) = self
            .inner
            .pool
            .live_brokers()
            .into_iter()
            .find(|id| snapshot.broker(*id).is_some())
        {
            return Ok(id);
        }
        let mut ids: Vec<BrokerId> = snapshot.brokers.keys().copied().collect();
        fastrand::shuffle(&mut ids);
        let mut attempts = Vec::new();
        for id in ids {
            match self.connection(id, Purpose::Default).await {
                Ok(_) => return Ok(id),
                Err(e) => attempts.push(format!("broker {}: {e}", id.0)),
            }
        }
        Err(EngineError::NoBrokerAvailable { attempts })
    }

    /// Runs `op` until it succeeds, fails with an error that is not retriable, or the next
    /// attempt would start after [`ClientConfig::api_timeout`]; between attempts it waits with
    /// exponential backoff and jitter ([`ClientConfig::retry_backoff`]) and, when the error
    /// calls for it, marks the metadata stale so the next attempt routes on fresh metadata.
    ///
    /// Only give it operations that are safe to repeat. An attempt already running when the
    /// budget ends is not interrupted (each request has its own timeout).
    pub async fn retry<T, F, Fut>(&self, mut op: F) -> Result<T, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        let config = &self.inner.config;
        let start = Instant::now();
        let deadline = start + config.api_timeout;
        let mut backoff = Backoff::new(config.retry_backoff, config.retry_backoff_max);
        let mut attempts = 0u32;
        loop {
            let generation = self.cached_metadata().generation;
            attempts += 1;
            let error = match op().await {
                Ok(value) => return Ok(value),
                Err(e) if !e.is_retriable() => return Err(e),
                Err(e) => e,
            };
            let delay = backoff.next_delay();
            if Instant::now() + delay >= deadline {
                return Err(EngineError::RetriesExhausted {
                    attempts,
                    elapsed: start.elapsed(),
                    last: Box::new(error),
                });
            }
            tracing::debug!(attempt = attempts, error = %error, ?delay, "retrying");
            if error.invalidates_metadata() {
                self.invalidate_metadata(generation);
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// Sends a Metadata request for every topic on `conn`.
async fn request_all_metadata(conn: &Connection) -> Result<MetadataResponse, EngineError> {
    let version = conn.version_of::<MetadataRequest>()?;
    conn.send(all_topics_request(version), version).await
}

/// A Metadata request for every topic, without auto-creation, at `version`.
pub(crate) fn all_topics_request(version: i16) -> MetadataRequest {
    // v0 asks for every topic with an empty list; later versions with null.
    let topics = if version == 0 { Some(Vec::new()) } else { None };
    let request = MetadataRequest::default().with_topics(topics);
    if version >= 4 {
        request.with_allow_auto_topic_creation(false)
    } else {
        request
    }
}

/// Refreshes the metadata in the background once it is older than the max age; stops when the
/// last `Cluster` is dropped.
async fn refresher(cluster: Weak<Inner>, mut shutdown: watch::Receiver<()>) {
    let mut failures: Option<Backoff> = None;
    loop {
        let wait = {
            let Some(inner) = cluster.upgrade() else {
                return;
            };
            let max_age = inner.config.metadata_max_age;
            match failures.as_mut() {
                Some(backoff) => backoff.next_delay(),
                None => {
                    let snapshot = Cluster { inner }.cached_metadata();
                    max_age.saturating_sub(snapshot.fetched_at.elapsed())
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        let Some(inner) = cluster.upgrade() else {
            return;
        };
        let cluster_now = Cluster { inner };
        let config = cluster_now.config().clone();
        if cluster_now.cached_metadata().fetched_at.elapsed() < config.metadata_max_age {
            failures = None;
            continue;
        }
        match cluster_now.refresh_metadata().await {
            Ok(_) => failures = None,
            Err(e) => {
                tracing::debug!(error = %e, "background metadata refresh failed");
                failures.get_or_insert_with(|| {
                    Backoff::new(config.retry_backoff, config.retry_backoff_max)
                });
            }
        }
    }
}
