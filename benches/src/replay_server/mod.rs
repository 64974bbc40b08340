//! A loopback Kafka server for client and pipeline benchmarks: a **replay** side that serves a
//! pre-built input topic to consumers, a **sink** side that acknowledges produced batches
//! without storing them, and a minimal group coordinator so that group consumers (Mephisto's
//! `GroupConsumer`, librdkafka's, aiokafka's) can run pipelines on it.
//!
//! It exists to measure a client's own ceiling when a real broker on the same cores is the
//! bottleneck. It speaks just the APIs those clients need, through the wire crate's
//! broker-side codecs, at Mephisto's version ranges:
//! - ApiVersions (KIP-511 v0 fallback above v4), FindCoordinator (itself), InitProducerId (a
//!   fresh producer id per call, epoch 0);
//! - Metadata (itself as broker 1): the input topic and the sink topics. A topic a Metadata
//!   request names is created as a sink topic with the input's partition count when the
//!   request allows auto-creation (as `auto.create.topics.enable`); CreateTopics creates sink
//!   topics with the count asked for (configs are accepted and ignored). At most
//!   `MAX_TOPICS` topics;
//! - ListOffsets: earliest 0, latest (and max timestamp) the log end;
//! - Fetch: the input topic's record batches, built once at start with `BatchEncoder` from
//!   [`Payload`] records, sliced (never re-encoded) per request within `max_bytes` and
//!   `partition_max_bytes`; a sink topic answers no records at its produced count. A fetch
//!   that finds nothing is held for `max_wait_ms` (at most 1 s), as a broker's long poll;
//! - Produce (any topic): every batch's framing and CRC-32C are checked, its records counted
//!   (in total and per topic, see [`ReplayServer::sink_topic`]) and, for idempotent batches,
//!   its sequence checked against the producer's previous batch; offsets are assigned per
//!   partition and the data dropped. `acks=0` requests get no answer;
//! - JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch: one member per
//!   group at a time (`group`, `offsets`).
//!
//! Anything else closes the connection (and is counted, by API key:
//! [`ReplayServer::rejected_apis`]). It is bounded: at most [`MAX_CONNECTIONS`] connections,
//! frames up to [`MAX_FRAME_SIZE`], a connection idle for [`IDLE_TIMEOUT`] is closed, topics,
//! groups and tracked sequences are capped, and it binds to 127.0.0.1 only. Dropping the
//! [`ReplayServer`] stops every task. Nothing read from the network is trusted: malformed
//! input closes the connection or gets an error code, it never panics.
//!
//! # Layout
//! - `log`: the replayed partitions; `fetch`: Fetch.
//! - `topics`: the topic registry; `admin`: Metadata, CreateTopics, FindCoordinator,
//!   ListOffsets, ApiVersions.
//! - `sink`: Produce and the per-topic counts; `stats`: the counters.
//! - `group`: JoinGroup, SyncGroup, Heartbeat, LeaveGroup; `offsets`: OffsetCommit,
//!   OffsetFetch.

mod admin;
mod fetch;
mod group;
mod log;
mod offsets;
mod sink;
mod stats;
mod topics;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, FetchRequest, FetchResponse, InitProducerIdResponse, ProducerId,
    RequestKind, ResponseKind,
};
use mephisto_wire::compression::Compression;
use mephisto_wire::frame::{begin_frame, finish_frame, FrameDecoder};
use mephisto_wire::header::decode_request_header;
use mephisto_wire::messages::{decode_request_kind, encode_response_kind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

pub use stats::{ReplayStats, SinkTopicStats};

use admin::{api_versions, max_version};
use group::Groups;
use log::{build_log, PartitionLog};
use stats::{bump, Counters};
use topics::Topics;

/// Most connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request frame accepted, in bytes.
pub const MAX_FRAME_SIZE: usize = 64 * 1024 * 1024;
/// A connection with no complete request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a Fetch that finds nothing is held.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(1);

/// The APIs answered, with the versions advertised (Mephisto's range for each).
const APIS: [ApiKey; 14] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::InitProducerId,
];

/// The records of the replayed input topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Payload {
    /// The client benchmark's records ([`crate::workload`]): 16-byte key, 100-byte value.
    #[default]
    Client,
    /// The pipeline benchmark's records ([`crate::pipeline_workload`]): no key, a 100-byte
    /// JSON value `{"a":i,"b":i,"pad":…}`.
    Pipeline,
}

/// What the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayConfig {
    /// The input topic: replayed to consumers (produce to it is counted like any topic).
    pub topic: String,
    /// Its partition count (and that of auto-created sink topics).
    pub partitions: u32,
    /// Records of the log served to consumers, record `i` in partition `i % partitions`.
    pub records: u64,
    /// Records per pre-built batch (the last batch of a partition may hold fewer).
    pub records_per_batch: usize,
    /// Codec of the pre-built batches.
    pub compression: Compression,
    /// Print one line per Fetch to stderr (time, each partition's offset and bytes returned).
    pub trace: bool,
    /// What the records are.
    pub payload: Payload,
    /// Read every produced value back with
    /// [`output_sum`](crate::pipeline_workload::output_sum) and sum it per topic
    /// ([`SinkTopicStats::value_sum`]): a record decode per produced record.
    pub sum_values: bool,
}

#[derive(Debug)]
struct Shared {
    config: ReplayConfig,
    started: Instant,
    port: u16,
    logs: Vec<PartitionLog>,
    topics: Mutex<Topics>,
    groups: Mutex<Groups>,
    counters: Counters,
    active: AtomicUsize,
    next_producer_id: AtomicI64,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// A running replay/sink server; stops when dropped.
#[derive(Debug)]
pub struct ReplayServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.accept.abort();
        for task in lock(&self.shared.tasks).drain(..) {
            task.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wall clock in µs since the Unix epoch (0 if the clock is before it).
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl ReplayServer {
    /// Builds the log and starts serving on a free 127.0.0.1 port. Must run inside a tokio
    /// runtime.
    pub async fn start(config: ReplayConfig) -> std::io::Result<Self> {
        let logs = (0..config.partitions)
            .map(|p| build_log(&config, p))
            .collect::<std::io::Result<Vec<_>>>()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            topics: Mutex::new(Topics::new(&config.topic, config.partitions)),
            groups: Mutex::new(Groups::default()),
            config,
            started: Instant::now(),
            port: addr.port(),
            logs,
            counters: Counters::default(),
            active: AtomicUsize::new(0),
            next_producer_id: AtomicI64::new(1000),
            tasks: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                if accept_shared.active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                    drop(socket);
                    continue;
                }
                bump(&accept_shared.counters.connections, 1);
                accept_shared.active.fetch_add(1, Ordering::AcqRel);
                let conn_shared = Arc::clone(&accept_shared);
                let task = tokio::spawn(async move {
                    serve(socket, &conn_shared).await;
                    conn_shared.active.fetch_sub(1, Ordering::AcqRel);
                });
                let mut tasks = lock(&accept_shared.tasks);
                tasks.retain(|t| !t.is_finished());
                tasks.push(task.abort_handle());
            }
        });
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `kafka://127.0.0.1:PORT`, the bootstrap URL for Mephisto.
    pub fn url(&self) -> String {
        format!("kafka://{}", self.addr)
    }

    /// Bytes of record batches in the replayed log.
    pub fn log_bytes(&self) -> usize {
        self.shared.logs.iter().map(|l| l.data.len()).sum()
    }

    /// Batches in the replayed log.
    pub fn log_batches(&self) -> usize {
        self.shared.logs.iter().map(|l| l.batches.len()).sum()
    }

    /// The counters so far.
    pub fn stats(&self) -> ReplayStats {
        self.shared.counters.snapshot()
    }

    /// What topic `name` has received from producers so far, if the topic exists.
    pub fn sink_topic(&self, name: &str) -> Option<SinkTopicStats> {
        let topics = lock(&self.shared.topics);
        topics
            .find(name)
            .and_then(|i| topics.get(i))
            .map(|t| t.stats)
    }

    /// `(api key, requests)` of every API requested but not served, since start.
    pub fn rejected_apis(&self) -> Vec<(i16, u64)> {
        self.shared.counters.rejected_apis()
    }
}

/// Serves one connection, one request at a time (so responses keep the request order).
async fn serve(mut socket: TcpStream, shared: &Shared) {
    // Latency matters to pipelined clients; a failure here only costs speed.
    let _ = socket.set_nodelay(true);
    let decoder = FrameDecoder::new(MAX_FRAME_SIZE);
    let mut rbuf = BytesMut::with_capacity(256 * 1024);
    let mut wbuf = BytesMut::with_capacity(256 * 1024);
    loop {
        let payload = loop {
            match decoder.decode(&mut rbuf) {
                Ok(Some(payload)) => break payload,
                Ok(None) => {}
                Err(_) => {
                    bump(&shared.counters.rejected, 1);
                    return;
                }
            }
            if rbuf.capacity() - rbuf.len() < 64 * 1024 {
                rbuf.reserve(256 * 1024);
            }
            match tokio::time::timeout(IDLE_TIMEOUT, socket.read_buf(&mut rbuf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
        };
        let answer = match handle(shared, payload).await {
            Ok(answer) => answer,
            Err(()) => {
                bump(&shared.counters.rejected, 1);
                return;
            }
        };
        bump(&shared.counters.requests, 1);
        let Some((body, version, correlation_id)) = answer else {
            continue;
        };
        wbuf.clear();
        let start = begin_frame(&mut wbuf);
        if encode_response_kind(&mut wbuf, &body, version, correlation_id).is_err()
            || finish_frame(&mut wbuf, start, usize::MAX).is_err()
        {
            bump(&shared.counters.rejected, 1);
            return;
        }
        if socket.write_all(&wbuf).await.is_err() {
            return;
        }
        // Do not keep a multi-megabyte buffer around for every small answer that follows.
        if wbuf.capacity() > 16 * 1024 * 1024 {
            wbuf = BytesMut::with_capacity(256 * 1024);
        }
    }
}

type Answer = Option<(ResponseKind, i16, i32)>;

/// Decodes one request and answers it: `Ok(None)` for no answer (`acks=0`), `Err` to close.
async fn handle(shared: &Shared, payload: Bytes) -> Result<Answer, ()> {
    // The API key first (the header's layout depends on it): an API not served is counted.
    let key = payload
        .first_chunk::<2>()
        .map(|k| i16::from_be_bytes(*k))
        .ok_or(())?;
    let Some(api) = ApiKey::try_from(key).ok().filter(|api| APIS.contains(api)) else {
        shared.counters.reject_api(key);
        return Err(());
    };
    let mut body = payload;
    let header = decode_request_header(&mut body).map_err(|_| ())?;
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;
    if api == ApiKey::ApiVersions && version > max_version(ApiKey::ApiVersions) {
        // KIP-511: the error and our ApiVersions range, in a v0 body.
        let body = ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(vec![ApiVersion::default()
                .with_api_key(ApiKey::ApiVersions as i16)
                .with_min_version(0)
                .with_max_version(max_version(ApiKey::ApiVersions))]);
        return Ok(Some((ResponseKind::ApiVersions(body), 0, correlation_id)));
    }
    let client_id = header
        .client_id
        .as_ref()
        .map_or("client", |c| c.as_str())
        .to_owned();
    let request = decode_request_kind(api, version, body).map_err(|_| ())?;
    let response = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(shared.metadata(&r, version)),
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(shared.create_topics(&r, version))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(shared.find_coordinator(&r, version))
        }
        RequestKind::InitProducerId(_) => {
            let id = shared.next_producer_id.fetch_add(1, Ordering::Relaxed);
            ResponseKind::InitProducerId(
                InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(0),
            )
        }
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(shared.list_offsets(&r, version)),
        RequestKind::Fetch(r) => {
            bump(&shared.counters.fetches, 1);
            let (response, bytes) = shared.fetch(&r);
            let held = bytes == 0 && r.min_bytes > 0 && r.max_wait_ms > 0;
            if shared.config.trace {
                trace_fetch(&shared.started, &r, &response, held);
            }
            if held {
                let wait = Duration::from_millis(r.max_wait_ms.unsigned_abs().into());
                tokio::time::sleep(wait.min(MAX_FETCH_WAIT)).await;
            }
            bump(&shared.counters.fetch_bytes, bytes as u64);
            ResponseKind::Fetch(response)
        }
        RequestKind::Produce(r) => {
            bump(&shared.counters.produces, 1);
            let response = shared.produce(&r);
            if r.acks == 0 {
                return Ok(None);
            }
            ResponseKind::Produce(response)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(shared.join_group(&r, &client_id, version))
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(shared.sync_group(&r, version)),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(shared.heartbeat(&r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(shared.leave_group(&r, version)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(shared.offset_commit(&r)),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(shared.offset_fetch(&r, version)),
        _ => return Err(()),
    };
    Ok(Some((response, version, correlation_id)))
}

/// One line per Fetch: seconds since start, `max_bytes`, then `partition@offset:bytes`.
fn trace_fetch(started: &Instant, request: &FetchRequest, response: &FetchResponse, held: bool) {
    let mut line = format!(
        "{:10.6} fetch max_bytes={}",
        started.elapsed().as_secs_f64(),
        request.max_bytes
    );
    for (asked, answered) in request.topics.iter().zip(&response.responses) {
        for (p, data) in asked.partitions.iter().zip(&answered.partitions) {
            let bytes = data.records.as_ref().map_or(0, Bytes::len);
            line += &format!(" {}@{}:{}", p.partition, p.fetch_offset, bytes);
        }
    }
    if held {
        line += " (held for max_wait)";
    }
    eprintln!("{line}");
}
