//! A loopback Kafka server for client benchmarks: a **replay** side that serves a pre-built topic
//! to consumers, and a **sink** side that acknowledges produced batches without storing them.
//!
//! It exists to measure a client's own ceiling when a real broker on the same cores is the
//! bottleneck. It speaks just the APIs a consumer without a group and an idempotent producer
//! need, through the wire crate's broker-side codecs:
//! - ApiVersions (KIP-511 v0 fallback above v4), Metadata (itself as broker 1, one topic),
//!   FindCoordinator (itself), InitProducerId (a fresh producer id per call, epoch 0);
//! - ListOffsets: earliest 0, latest (and max timestamp) the log end;
//! - Fetch: the topic's record batches, built once at start with [`BatchEncoder`] from
//!   [`workload`] records, sliced (never re-encoded) per request within `max_bytes` and
//!   `partition_max_bytes`; a fetch at the log end is held for `max_wait_ms` (at most 1 s), as a
//!   broker's long poll;
//! - Produce: every batch's framing and CRC-32C are checked, its records counted and, for
//!   idempotent batches, its sequence checked against the producer's previous batch; offsets
//!   are assigned per partition and the data dropped. `acks=0` requests get no answer.
//!
//! Anything else closes the connection (and is counted). It is bounded: at most
//! [`MAX_CONNECTIONS`] connections, frames up to [`MAX_FRAME_SIZE`], a connection idle for
//! [`IDLE_TIMEOUT`] is closed, and it binds to 127.0.0.1 only. Dropping the [`ReplayServer`]
//! stops every task. Nothing read from the network is trusted: malformed input closes the
//! connection, it never panics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, ProducerId, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use mephisto_wire::compression::Compression;
use mephisto_wire::frame::{begin_frame, finish_frame, FrameDecoder};
use mephisto_wire::header::decode_request_header;
use mephisto_wire::messages::{decode_request_kind, encode_response_kind};
use mephisto_wire::record::{BatchEncoder, BatchHeader, BatchSpec, NewRecord, BATCH_HEADER_SIZE};
use mephisto_wire::versions::{supported, MEPHISTO_APIS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

use crate::workload;

/// Most connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request frame accepted, in bytes.
pub const MAX_FRAME_SIZE: usize = 64 * 1024 * 1024;
/// A connection with no complete request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a Fetch at the log end is held.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(1);

/// Kafka error codes used here.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const CORRUPT_MESSAGE: i16 = 2;
const UNSUPPORTED_VERSION: i16 = 35;

/// The APIs answered, with the versions advertised (Mephisto's range for each). The other APIs
/// Mephisto requires of every broker (the group ones) are advertised too, so that it accepts
/// the server, but requests for them close the connection.
const APIS: [ApiKey; 7] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::FindCoordinator,
    ApiKey::ApiVersions,
    ApiKey::InitProducerId,
];

/// What the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayConfig {
    /// The one topic it knows (for Fetch and Produce).
    pub topic: String,
    /// Its partition count.
    pub partitions: u32,
    /// Records of the log served to consumers, laid out as [`workload`] says.
    pub records: u64,
    /// Records per pre-built batch (the last batch of a partition may hold fewer).
    pub records_per_batch: usize,
    /// Codec of the pre-built batches.
    pub compression: Compression,
    /// Print one line per Fetch to stderr (time, each partition's offset and bytes returned).
    pub trace: bool,
}

/// Counters since the server started; subtract two snapshots to get one run's share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered (or, for `acks=0` Produce, handled).
    pub requests: u64,
    /// Fetch requests.
    pub fetches: u64,
    /// Record-batch bytes sent in Fetch responses.
    pub fetch_bytes: u64,
    /// Produce requests.
    pub produces: u64,
    /// Records in accepted produced batches.
    pub produced_records: u64,
    /// Accepted produced batches.
    pub produced_batches: u64,
    /// Bytes of accepted produced batches.
    pub produced_bytes: u64,
    /// Produced batches refused for bad framing or CRC.
    pub corrupt_batches: u64,
    /// Idempotent batches whose base sequence did not follow the previous batch.
    pub sequence_gaps: u64,
    /// Connections closed on a request that is malformed or of an API not served.
    pub rejected: u64,
}

impl std::ops::Sub for ReplayStats {
    type Output = ReplayStats;

    fn sub(self, before: ReplayStats) -> ReplayStats {
        ReplayStats {
            connections: self.connections.wrapping_sub(before.connections),
            requests: self.requests.wrapping_sub(before.requests),
            fetches: self.fetches.wrapping_sub(before.fetches),
            fetch_bytes: self.fetch_bytes.wrapping_sub(before.fetch_bytes),
            produces: self.produces.wrapping_sub(before.produces),
            produced_records: self.produced_records.wrapping_sub(before.produced_records),
            produced_batches: self.produced_batches.wrapping_sub(before.produced_batches),
            produced_bytes: self.produced_bytes.wrapping_sub(before.produced_bytes),
            corrupt_batches: self.corrupt_batches.wrapping_sub(before.corrupt_batches),
            sequence_gaps: self.sequence_gaps.wrapping_sub(before.sequence_gaps),
            rejected: self.rejected.wrapping_sub(before.rejected),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    fetches: AtomicU64,
    fetch_bytes: AtomicU64,
    produces: AtomicU64,
    produced_records: AtomicU64,
    produced_batches: AtomicU64,
    produced_bytes: AtomicU64,
    corrupt_batches: AtomicU64,
    sequence_gaps: AtomicU64,
    rejected: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// One partition of the replayed log: its batches back to back, and where each one is.
#[derive(Debug)]
struct PartitionLog {
    data: Bytes,
    /// (last offset, end byte) of each batch, in order; batch `i` starts where `i - 1` ends.
    batches: Vec<(i64, usize)>,
    end_offset: i64,
}

impl PartitionLog {
    /// The batches from the one holding `offset` on, within `limit` bytes (but at least one
    /// batch if `at_least_one`).
    fn read(&self, offset: i64, limit: usize, at_least_one: bool) -> Bytes {
        let first = self.batches.partition_point(|&(last, _)| last < offset);
        let start = match first.checked_sub(1) {
            Some(prev) => self.batches.get(prev).map_or(0, |&(_, end)| end),
            None => 0,
        };
        let mut end = start;
        for &(_, batch_end) in self.batches.iter().skip(first) {
            let fits = batch_end - start <= limit;
            if fits || (end == start && at_least_one) {
                end = batch_end;
            }
            if !fits {
                break;
            }
        }
        self.data.slice(start..end)
    }
}

/// Produce-side state: per-partition log end and per-producer next sequence.
#[derive(Debug, Default)]
struct Sink {
    log_end: Vec<i64>,
    next_sequence: HashMap<(i64, i32), i32>,
}

#[derive(Debug)]
struct Shared {
    config: ReplayConfig,
    started: Instant,
    port: u16,
    logs: Vec<PartitionLog>,
    sink: Mutex<Sink>,
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

/// Builds partition `p`'s log: its records in batches of `config.records_per_batch`.
fn build_log(config: &ReplayConfig, p: u32) -> std::io::Result<PartitionLog> {
    let partitions = config.partitions.max(1);
    let count = config.records / u64::from(partitions)
        + u64::from(u64::from(p) < config.records % u64::from(partitions));
    let per_batch = config.records_per_batch.max(1);
    let mut encoder = BatchEncoder::new();
    let mut data = Vec::new();
    let mut batches = Vec::new();
    let mut offset = 0u64;
    let mut keys = Vec::with_capacity(per_batch);
    let mut values = Vec::with_capacity(per_batch);
    while offset < count {
        let n = (count - offset).min(per_batch as u64);
        keys.clear();
        values.clear();
        for o in offset..offset + n {
            let i = workload::record_index(p as i32, o as i64, partitions);
            keys.push(workload::key(i));
            values.push(workload::value(i));
        }
        let records: Vec<NewRecord<'_>> = (0..n as usize)
            .map(|j| {
                let i = workload::record_index(p as i32, (offset + j as u64) as i64, partitions);
                NewRecord::new(Some(&keys[j]), Some(&values[j]), workload::timestamp(i))
            })
            .collect();
        let spec = BatchSpec {
            base_offset: offset as i64,
            partition_leader_epoch: 0,
            compression: config.compression,
            ..BatchSpec::default()
        };
        encoder
            .encode(&spec, &records, &mut data)
            .map_err(std::io::Error::other)?;
        offset += n;
        batches.push((offset as i64 - 1, data.len()));
    }
    Ok(PartitionLog {
        data: Bytes::from(data),
        batches,
        end_offset: count as i64,
    })
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
            sink: Mutex::new(Sink {
                log_end: vec![0; config.partitions as usize],
                next_sequence: HashMap::new(),
            }),
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
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ReplayStats {
            connections: get(&c.connections),
            requests: get(&c.requests),
            fetches: get(&c.fetches),
            fetch_bytes: get(&c.fetch_bytes),
            produces: get(&c.produces),
            produced_records: get(&c.produced_records),
            produced_batches: get(&c.produced_batches),
            produced_bytes: get(&c.produced_bytes),
            corrupt_batches: get(&c.corrupt_batches),
            sequence_gaps: get(&c.sequence_gaps),
            rejected: get(&c.rejected),
        }
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
    let mut body = payload;
    let header = decode_request_header(&mut body).map_err(|_| ())?;
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;
    let api = ApiKey::try_from(header.request_api_key)?;
    if !APIS.contains(&api) {
        return Err(());
    }
    if api == ApiKey::ApiVersions && version > max_version(ApiKey::ApiVersions) {
        // KIP-511: the error and our ApiVersions range, in a v0 body.
        let body = ApiVersionsResponse::default()
            .with_error_code(UNSUPPORTED_VERSION)
            .with_api_keys(vec![ApiVersion::default()
                .with_api_key(ApiKey::ApiVersions as i16)
                .with_min_version(0)
                .with_max_version(max_version(ApiKey::ApiVersions))]);
        return Ok(Some((ResponseKind::ApiVersions(body), 0, correlation_id)));
    }
    let request = decode_request_kind(api, version, body).map_err(|_| ())?;
    let response = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(shared.metadata(&r)),
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

fn max_version(api: ApiKey) -> i16 {
    supported(api).map_or(0, |s| s.max)
}

fn api_versions() -> ApiVersionsResponse {
    let keys = MEPHISTO_APIS
        .iter()
        .filter(|s| s.required || APIS.contains(&s.api))
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.api as i16)
                .with_min_version(s.min)
                .with_max_version(s.max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(keys)
}

fn host() -> StrBytes {
    StrBytes::from_static_str("127.0.0.1")
}

impl Shared {
    fn is_topic(&self, name: &TopicName) -> bool {
        name.as_str() == self.config.topic
    }

    fn partition(&self, index: i32) -> Option<usize> {
        usize::try_from(index)
            .ok()
            .filter(|&p| p < self.config.partitions as usize)
    }

    fn metadata(&self, request: &MetadataRequest) -> MetadataResponse {
        let ours = || {
            let partitions = (0..self.config.partitions as i32)
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(1))
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![BrokerId(1)])
                        .with_isr_nodes(vec![BrokerId(1)])
                })
                .collect();
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(
                    self.config.topic.clone(),
                ))))
                .with_topic_id(uuid::Uuid::from_u128(
                    0x6d65_7068_6973_746f_0000_0000_0000_0001,
                ))
                .with_partitions(partitions)
        };
        let topics = match &request.topics {
            None => vec![ours()],
            Some(asked) => asked
                .iter()
                .map(|t| match &t.name {
                    Some(name) if self.is_topic(name) => ours(),
                    name => MetadataResponseTopic::default()
                        .with_name(name.clone())
                        .with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
                })
                .collect(),
        };
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(host())
                .with_port(i32::from(self.port))])
            .with_cluster_id(Some(StrBytes::from_static_str("mephisto-replay")))
            .with_controller_id(BrokerId(1))
            .with_topics(topics)
    }

    /// Fields that do not exist at `version` must stay at their defaults, or encoding fails.
    fn find_coordinator(
        &self,
        request: &FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        let port = i32::from(self.port);
        if version < 4 {
            return FindCoordinatorResponse::default()
                .with_node_id(BrokerId(1))
                .with_host(host())
                .with_port(port);
        }
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(1))
                    .with_host(host())
                    .with_port(port)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    }

    fn list_offsets(&self, request: &ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
        // The leader epoch exists from v4 on.
        let epoch = if version >= 4 { 0 } else { -1 };
        let topics = request
            .topics
            .iter()
            .map(|topic| {
                let known = self.is_topic(&topic.name);
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let answer = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1);
                        match self.partition(p.partition_index).filter(|_| known) {
                            None => answer.with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
                            Some(i) => {
                                let end = self.logs.get(i).map_or(0, |l| l.end_offset);
                                let offset = match p.timestamp {
                                    -1 => end,
                                    -3 => (end - 1).max(0),
                                    _ => 0,
                                };
                                answer.with_offset(offset).with_leader_epoch(epoch)
                            }
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }

    /// The Fetch answer and the record bytes it carries.
    fn fetch(&self, request: &FetchRequest) -> (FetchResponse, usize) {
        let mut remaining = usize::try_from(request.max_bytes).unwrap_or(0);
        let mut total = 0usize;
        let responses = request
            .topics
            .iter()
            .map(|topic| {
                let known = self.is_topic(&topic.topic);
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let answer = PartitionData::default().with_partition_index(p.partition);
                        let Some(log) = self
                            .partition(p.partition)
                            .filter(|_| known)
                            .and_then(|i| self.logs.get(i))
                        else {
                            return answer.with_error_code(UNKNOWN_TOPIC_OR_PARTITION);
                        };
                        let answer = answer
                            .with_high_watermark(log.end_offset)
                            .with_last_stable_offset(log.end_offset)
                            .with_log_start_offset(0);
                        if p.fetch_offset < 0 || p.fetch_offset > log.end_offset {
                            return answer.with_error_code(OFFSET_OUT_OF_RANGE);
                        }
                        let limit = usize::try_from(p.partition_max_bytes)
                            .unwrap_or(0)
                            .min(remaining);
                        let records = log.read(p.fetch_offset, limit, total == 0);
                        total += records.len();
                        remaining = remaining.saturating_sub(records.len());
                        answer.with_records(Some(records))
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(topic.topic.clone())
                    .with_topic_id(topic.topic_id)
                    .with_partitions(partitions)
            })
            .collect();
        (FetchResponse::default().with_responses(responses), total)
    }

    fn produce(&self, request: &ProduceRequest) -> ProduceResponse {
        let mut sink = lock(&self.sink);
        let responses = request
            .topic_data
            .iter()
            .map(|topic| {
                let known = self.is_topic(&topic.name);
                let partitions = topic
                    .partition_data
                    .iter()
                    .map(|p| {
                        let answer = PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(0);
                        match self.partition(p.index).filter(|_| known) {
                            None => answer.with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
                            Some(i) => match self.append(&mut sink, i, p.records.as_ref()) {
                                Ok(base) => answer.with_base_offset(base),
                                Err(()) => answer.with_error_code(CORRUPT_MESSAGE),
                            },
                        }
                    })
                    .collect();
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_topic_id(topic.topic_id)
                    .with_partition_responses(partitions)
            })
            .collect();
        ProduceResponse::default().with_responses(responses)
    }

    /// Checks the batches of one partition's produced data and assigns their offsets; returns
    /// the first batch's base offset. Nothing is counted if any batch is bad.
    fn append(&self, sink: &mut Sink, partition: usize, data: Option<&Bytes>) -> Result<i64, ()> {
        let data: &[u8] = data.map_or(&[], |d| d.as_ref());
        let mut headers = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let header = rest
                .first_chunk::<BATCH_HEADER_SIZE>()
                .map(BatchHeader::decode)
                .filter(|h| h.magic == 2 && h.record_count >= 0)
                .ok_or(())?;
            let size = header.size_in_bytes();
            let batch = rest.get(..size).filter(|b| b.len() >= BATCH_HEADER_SIZE);
            let batch = batch.ok_or(())?;
            if crc32c::crc32c(batch.get(21..).unwrap_or(&[])) != header.crc {
                bump(&self.counters.corrupt_batches, 1);
                return Err(());
            }
            headers.push(header);
            rest = rest.get(size..).unwrap_or(&[]);
        }
        if headers.is_empty() {
            return Err(());
        }
        let log_end = sink.log_end.get_mut(partition).ok_or(())?;
        let base = *log_end;
        let mut gaps = 0;
        for h in &headers {
            *log_end += i64::from(h.last_offset_delta) + 1;
            if h.producer_id >= 0 {
                let key = (h.producer_id, partition as i32);
                let next = h.base_sequence.wrapping_add(h.record_count);
                match sink.next_sequence.insert(key, next) {
                    Some(expected) if expected != h.base_sequence => gaps += 1,
                    None if h.base_sequence != 0 => gaps += 1,
                    _ => {}
                }
            }
            bump(&self.counters.produced_records, h.record_count as u64);
        }
        bump(&self.counters.produced_batches, headers.len() as u64);
        bump(&self.counters.produced_bytes, data.len() as u64);
        bump(&self.counters.sequence_gaps, gaps);
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mephisto_wire::record::{DecodeOptions, RecordBatches};

    fn config() -> ReplayConfig {
        ReplayConfig {
            topic: "t".into(),
            partitions: 3,
            records: 1000,
            records_per_batch: 64,
            compression: Compression::None,
            trace: false,
        }
    }

    #[test]
    fn logs_hold_the_workload_records() {
        let config = config();
        let mut checksum = 0u64;
        let mut count = 0;
        for p in 0..3 {
            let log = build_log(&config, p).unwrap();
            let mut next = 0;
            for batch in RecordBatches::new(log.data.clone(), DecodeOptions::default()) {
                let batch = batch.unwrap();
                for record in &batch.records().unwrap() {
                    let record = record.unwrap();
                    assert_eq!(record.offset(), next);
                    next += 1;
                    count += 1;
                    checksum = checksum.wrapping_add(workload::touch(record.key(), record.value()));
                }
            }
            assert_eq!(next, log.end_offset);
            // Reads start at the batch holding the offset and respect the byte limit.
            let all = log.read(0, usize::MAX, true);
            assert_eq!(all.len(), log.data.len());
            let one = log.read(70, 1, true);
            assert_eq!(one.len(), log.batches[1].1 - log.batches[0].1);
            assert!(log.read(70, 1, false).is_empty());
            assert!(log.read(log.end_offset, usize::MAX, true).is_empty());
        }
        assert_eq!(count, 1000);
        assert_eq!(checksum, workload::expected_checksum(1000));
    }
}
