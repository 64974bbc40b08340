//! End-to-end client throughput: Mephisto's fetcher and producer against `rdkafka` (librdkafka)
//! on the same broker, each client in its own child process so that peak RSS (`VmHWM`) is per
//! client.
//!
//! The parent starts the broker (a private tansu, and/or the replay/sink server of
//! [`mephisto_benches::replay_server`], which it hosts itself), then re-executes itself once per
//! measurement with `--role ROLE`:
//! - `mephisto-consume` / `rdkafka-consume`: read every partition of the topic from offset 0 (no
//!   group; rdkafka's `BaseConsumer` with `assign`), fold every key and value byte into a
//!   checksum, check that offsets are consecutive per partition, stop at the expected count;
//! - `mephisto-produce` / `rdkafka-produce`: produce the workload (record `i` to partition
//!   `i % partitions`) with linger 5 ms, batches of up to 1,000,000 bytes (rdkafka also
//!   `batch.num.messages=10000`), acks=all, idempotence on, and wait for every acknowledgement;
//!   record 0 is produced and acknowledged before the clock starts (producer id, connection).
//!
//! rdkafka's consumer runs with `fetch.queue.backoff.ms=10` (its default of 1000 ms idles it
//! whenever its queue reaches 100k messages); `--rdkafka-config` properties override any of
//! the properties the roles set.
//!
//! A child prints one `RESULT key=value ...` line; the parent checks it (count, checksum,
//! offsets; for the sink, the records it acknowledged) and prints a table. Clients alternate
//! who goes first from one run to the next. Every wait is bounded (`--timeout`), every socket is
//! on 127.0.0.1, and a broker the parent started is killed when it exits.
//!
//! ```text
//! cargo run --release -p mephisto-benches --bin client_bench -- \
//!     [--target tansu|replay|both] [--mode consume|produce|all] [--records 1000000]
//!     [--partitions 8] [--runs 5] [--compression none|lz4] [--timeout 180]
//!     [--replay-batch 1000] [--rdkafka-check-crcs true|false] [--rdkafka-config k=v,k=v]
//!     [--mephisto-threads 2] [--mephisto-buffer-mib default|N]
//!     [--mephisto-producer-buffer-kib default|N]
//!     [--mephisto-max-wait-ms N] [--mephisto-partition-kib N] [--mephisto-max-bytes-kib N]
//! ```
//!
//! The tansu binary is `$TANSU_BIN`, else `.tools/bin/tansu` of this repository
//! (`scripts/install-peers.sh` installs it).
//!
//! `--role serve` runs the replay server alone for `--timeout` seconds (`--role create-topic`
//! creates `--topic` on `--broker`), and a client role can
//! be run by hand against it (`--role mephisto-consume --broker kafka://127.0.0.1:PORT --topic
//! bench`), e.g. under `perf` or `heaptrack`. `CLIENT_BENCH_TRACE_FETCH=1` makes the replay
//! server print every Fetch (partitions, offsets, bytes returned, long polls);
//! `CLIENT_BENCH_RDKAFKA_DEBUG=fetch,msg` turns on librdkafka's debug contexts, logged to stderr.
//!
//! Memory diagnostics: every child reports its `VmRSS` when the clock starts (`base`) and, for
//! Mephisto's producer, the most `Delivery` futures it held at once; `CLIENT_BENCH_HEAP=1`
//! makes the children count the Rust heap (peak reported; librdkafka's C heap is not counted),
//! and `CLIENT_BENCH_STATUS=1` prints their `/proc/self/status` memory lines at the end.

use std::collections::VecDeque;
use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mephisto_benches::replay_server::{Payload, ReplayConfig, ReplayServer, ReplayStats};
use mephisto_benches::tansu::Tansu;
use mephisto_benches::{proc_stats, workload};
use mephisto_engine::fetcher::{FetchPosition, Fetcher, FetcherConfig, TopicPartition};
use mephisto_engine::producer::{
    Acks, Compression, Delivery, Producer, ProducerConfig, ProducerRecord,
};
use mephisto_engine::{Admin, ClientConfig, Cluster, NewTopic};
use mephisto_test_support::heap_stats::{self, CountingAlloc};
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Counts the Rust heap when `CLIENT_BENCH_HEAP=1` (children report `heap_peak_kib`); one
/// relaxed load per allocation otherwise.
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

// ---------------------------------------------------------------------------------------------
// Options.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Tansu,
    Replay,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Tansu => "tansu",
            Target::Replay => "replay",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Consume,
    Produce,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Consume => "consume",
            Op::Produce => "produce",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    Mephisto,
    Rdkafka,
}

impl ClientKind {
    fn name(self) -> &'static str {
        match self {
            ClientKind::Mephisto => "mephisto",
            ClientKind::Rdkafka => "rdkafka",
        }
    }
}

/// Command-line options (`--key value` pairs).
#[derive(Debug, Clone)]
struct Options {
    role: Option<String>,
    targets: Vec<Target>,
    ops: Vec<Op>,
    records: u64,
    partitions: u32,
    runs: usize,
    compression: Compression,
    timeout: Duration,
    replay_batch: usize,
    rdkafka_check_crcs: bool,
    /// Extra librdkafka properties, `key=value,key=value`.
    rdkafka_config: Vec<(String, String)>,
    mephisto_threads: usize,
    /// Mephisto's buffer caps in MiB (fetcher `max_buffered_bytes`, producer `buffer_memory`);
    /// `None`: the defaults (64 MiB and 1 MiB).
    mephisto_buffer_mib: Option<usize>,
    /// The producer's `buffer_memory` in KiB (overrides `mephisto_buffer_mib` for it).
    mephisto_producer_buffer_kib: Option<usize>,
    /// Fetcher `max_wait`, `max_partition_bytes` and `max_bytes` overrides (diagnostics;
    /// 0 = default).
    mephisto_max_wait_ms: u64,
    mephisto_partition_kib: i32,
    mephisto_max_bytes_kib: i32,
    // Child-only.
    broker: String,
    topic: String,
}

impl Options {
    fn parse() -> Result<Self, BoxError> {
        let mut o = Options {
            role: None,
            targets: vec![Target::Tansu, Target::Replay],
            ops: vec![Op::Produce, Op::Consume],
            records: 1_000_000,
            partitions: 8,
            runs: 5,
            compression: Compression::None,
            timeout: Duration::from_secs(180),
            replay_batch: 1000,
            rdkafka_check_crcs: true,
            rdkafka_config: Vec::new(),
            mephisto_threads: 2,
            mephisto_buffer_mib: None,
            mephisto_producer_buffer_kib: None,
            mephisto_max_wait_ms: 0,
            mephisto_partition_kib: 0,
            mephisto_max_bytes_kib: 0,
            broker: String::new(),
            topic: String::new(),
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut it = args.chunks(2);
        for pair in &mut it {
            let [key, value] = pair else {
                return Err(format!("option {pair:?} has no value").into());
            };
            match key.as_str() {
                "--role" => o.role = Some(value.clone()),
                "--target" => {
                    o.targets = match value.as_str() {
                        "tansu" => vec![Target::Tansu],
                        "replay" => vec![Target::Replay],
                        "both" => vec![Target::Tansu, Target::Replay],
                        _ => return Err(format!("unknown target {value}").into()),
                    }
                }
                "--mode" => {
                    o.ops = match value.as_str() {
                        "consume" => vec![Op::Consume],
                        "produce" => vec![Op::Produce],
                        "all" => vec![Op::Produce, Op::Consume],
                        _ => return Err(format!("unknown mode {value}").into()),
                    }
                }
                "--records" => o.records = value.parse()?,
                "--partitions" => o.partitions = value.parse()?,
                "--runs" => o.runs = value.parse()?,
                "--compression" => {
                    o.compression = match value.as_str() {
                        "none" => Compression::None,
                        "lz4" => Compression::Lz4,
                        _ => return Err(format!("unsupported compression {value}").into()),
                    }
                }
                "--timeout" => o.timeout = Duration::from_secs(value.parse()?),
                "--replay-batch" => o.replay_batch = value.parse()?,
                "--rdkafka-check-crcs" => o.rdkafka_check_crcs = value.parse()?,
                "--mephisto-threads" => o.mephisto_threads = value.parse()?,
                "--mephisto-max-wait-ms" => o.mephisto_max_wait_ms = value.parse()?,
                "--mephisto-partition-kib" => o.mephisto_partition_kib = value.parse()?,
                "--mephisto-max-bytes-kib" => o.mephisto_max_bytes_kib = value.parse()?,
                "--mephisto-buffer-mib" => {
                    o.mephisto_buffer_mib = match value.as_str() {
                        "default" => None,
                        v => Some(v.parse()?),
                    }
                }
                "--mephisto-producer-buffer-kib" => {
                    o.mephisto_producer_buffer_kib = match value.as_str() {
                        "default" => None,
                        v => Some(v.parse()?),
                    }
                }
                "--rdkafka-config" => {
                    o.rdkafka_config = value
                        .split(',')
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            kv.split_once('=')
                                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                                .ok_or_else(|| format!("--rdkafka-config: {kv} is not key=value"))
                        })
                        .collect::<Result<_, _>>()?
                }
                "--broker" => o.broker = value.clone(),
                "--topic" => o.topic = value.clone(),
                _ => return Err(format!("unknown option {key}").into()),
            }
        }
        if o.partitions == 0 || o.partitions > 10_000 || o.records == 0 || o.runs == 0 {
            return Err("partitions, records and runs must be positive".into());
        }
        if !o.records.is_multiple_of(u64::from(o.partitions)) {
            return Err("records must be a multiple of partitions".into());
        }
        Ok(o)
    }

    fn compression_name(&self) -> &'static str {
        match self.compression {
            Compression::Lz4 => "lz4",
            _ => "none",
        }
    }

    fn rdkafka_config_arg(&self) -> String {
        let pairs: Vec<String> = self
            .rdkafka_config
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join(",")
    }

    /// The options a child needs, as arguments.
    fn child_args(&self, role: &str, broker: &str, topic: &str) -> Vec<String> {
        [
            ("--role", role.to_owned()),
            ("--broker", broker.to_owned()),
            ("--topic", topic.to_owned()),
            ("--records", self.records.to_string()),
            ("--partitions", self.partitions.to_string()),
            ("--compression", self.compression_name().to_owned()),
            ("--timeout", self.timeout.as_secs().to_string()),
            ("--rdkafka-check-crcs", self.rdkafka_check_crcs.to_string()),
            ("--mephisto-threads", self.mephisto_threads.to_string()),
            ("--rdkafka-config", self.rdkafka_config_arg()),
            (
                "--mephisto-max-wait-ms",
                self.mephisto_max_wait_ms.to_string(),
            ),
            (
                "--mephisto-partition-kib",
                self.mephisto_partition_kib.to_string(),
            ),
            (
                "--mephisto-max-bytes-kib",
                self.mephisto_max_bytes_kib.to_string(),
            ),
            (
                "--mephisto-buffer-mib",
                self.mephisto_buffer_mib
                    .map_or_else(|| "default".to_owned(), |m| m.to_string()),
            ),
            (
                "--mephisto-producer-buffer-kib",
                self.mephisto_producer_buffer_kib
                    .map_or_else(|| "default".to_owned(), |k| k.to_string()),
            ),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v])
        .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Child side.

/// What a child reports.
#[derive(Debug, Clone, Default)]
struct Outcome {
    records: u64,
    payload_bytes: u64,
    checksum: u64,
    /// From client creation to the last record consumed or acknowledged.
    total: Duration,
    /// From the moment the client is connected and knows the topic's metadata to the last
    /// record consumed (consume: from the assignment) or acknowledged (produce: from the send
    /// of record 1, once record 0 is acknowledged).
    steady: Duration,
    cpu_seconds: f64,
    peak_rss_kib: u64,
    /// `VmRSS` when the clock starts (connected, warmed up): the process's baseline.
    base_rss_kib: u64,
    /// Peak of the Rust heap (`CLIENT_BENCH_HEAP=1`; 0 otherwise). librdkafka's C heap is not
    /// counted.
    heap_peak_kib: u64,
    /// Produce (Mephisto): most `Delivery` futures the application held at once.
    max_pending: u64,
    /// Consume: every partition ended at the expected offset with no gap.
    offsets_ok: bool,
}

impl Outcome {
    fn line(&self) -> String {
        format!(
            "RESULT records={} bytes={} checksum={} total_s={:.6} steady_s={:.6} cpu_s={:.2} \
             peak_rss_kib={} base_rss_kib={} heap_peak_kib={} max_pending={} offsets_ok={}",
            self.records,
            self.payload_bytes,
            self.checksum,
            self.total.as_secs_f64(),
            self.steady.as_secs_f64(),
            self.cpu_seconds,
            self.peak_rss_kib,
            self.base_rss_kib,
            self.heap_peak_kib,
            self.max_pending,
            self.offsets_ok,
        )
    }

    fn parse(text: &str) -> Option<Outcome> {
        let line = text.lines().find(|l| l.starts_with("RESULT "))?;
        let mut o = Outcome::default();
        for field in line.split_whitespace().skip(1) {
            let (k, v) = field.split_once('=')?;
            match k {
                "records" => o.records = v.parse().ok()?,
                "bytes" => o.payload_bytes = v.parse().ok()?,
                "checksum" => o.checksum = v.parse().ok()?,
                "total_s" => o.total = Duration::from_secs_f64(v.parse().ok()?),
                "steady_s" => o.steady = Duration::from_secs_f64(v.parse().ok()?),
                "cpu_s" => o.cpu_seconds = v.parse().ok()?,
                "peak_rss_kib" => o.peak_rss_kib = v.parse().ok()?,
                "base_rss_kib" => o.base_rss_kib = v.parse().ok()?,
                "heap_peak_kib" => o.heap_peak_kib = v.parse().ok()?,
                "max_pending" => o.max_pending = v.parse().ok()?,
                "offsets_ok" => o.offsets_ok = v.parse().ok()?,
                _ => {}
            }
        }
        Some(o)
    }
}

/// Per-partition bookkeeping of a consumer: next expected offset.
struct OffsetCheck {
    next: Vec<i64>,
    gaps: u64,
}

impl OffsetCheck {
    fn new(partitions: u32) -> Self {
        Self {
            next: vec![0; partitions as usize],
            gaps: 0,
        }
    }

    #[inline]
    fn see(&mut self, partition: i32, offset: i64) {
        match self.next.get_mut(partition as usize) {
            Some(next) => {
                if *next != offset {
                    self.gaps += 1;
                }
                *next = offset + 1;
            }
            None => self.gaps += 1,
        }
    }

    fn complete(&self, per_partition: i64) -> bool {
        self.gaps == 0 && self.next.iter().all(|&n| n == per_partition)
    }
}

fn run_child(role: &str, o: &Options) -> Result<Outcome, BoxError> {
    let mut outcome = match role {
        "mephisto-consume" => mephisto_runtime(o)?.block_on(mephisto_consume(o))?,
        "mephisto-produce" => mephisto_runtime(o)?.block_on(mephisto_produce(o))?,
        "rdkafka-consume" => rdkafka_consume(o)?,
        "rdkafka-produce" => rdkafka_produce(o)?,
        "serve" => serve(o)?,
        "create-topic" => {
            let rt = mephisto_runtime(o)?;
            create_topic(&rt, &o.broker, &o.topic, o.partitions)?;
            Outcome::default()
        }
        _ => return Err(format!("unknown role {role}").into()),
    };
    outcome.cpu_seconds = proc_stats::own_cpu_seconds().unwrap_or(f64::NAN);
    outcome.peak_rss_kib = proc_stats::peak_rss_kib().unwrap_or(0);
    if heap_stats::enabled() {
        outcome.heap_peak_kib = (heap_stats::peak_bytes() / 1024) as u64;
    }
    if std::env::var_os("CLIENT_BENCH_STATUS").is_some() {
        // The memory lines of /proc/self/status, for the breakdown of the RSS (anonymous,
        // file-backed, stacks).
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        for line in status.lines() {
            if line.starts_with("Vm") || line.starts_with("Rss") {
                eprintln!("{role}: {line}");
            }
        }
    }
    Ok(outcome)
}

/// Runs the replay server alone for `--timeout` seconds (for profiling a client by hand).
fn serve(o: &Options) -> Result<Outcome, BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = ReplayServer::start(replay_config(o, "bench")).await?;
        eprintln!(
            "serving topic `bench` on {} for {:?}",
            server.url(),
            o.timeout
        );
        tokio::time::sleep(o.timeout).await;
        eprintln!("{:?}", server.stats());
        Ok(Outcome::default())
    })
}

fn replay_config(o: &Options, topic: &str) -> ReplayConfig {
    ReplayConfig {
        topic: topic.to_owned(),
        partitions: o.partitions,
        records: o.records,
        records_per_batch: o.replay_batch,
        compression: o.compression,
        trace: std::env::var_os("CLIENT_BENCH_TRACE_FETCH").is_some(),
        payload: Payload::Client,
        sum_values: false,
    }
}

fn mephisto_runtime(o: &Options) -> std::io::Result<tokio::runtime::Runtime> {
    if o.mephisto_threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.mephisto_threads)
            .enable_all()
            .build()
    }
}

fn mephisto_client(o: &Options) -> Result<ClientConfig, BoxError> {
    Ok(ClientConfig::from_url(&o.broker)?
        .with_client_id("mephisto-bench")
        .with_request_timeout(Duration::from_secs(30))
        .with_connect_timeout(Duration::from_secs(10)))
}

async fn mephisto_consume(o: &Options) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + o.timeout);
    let cluster = Cluster::connect(mephisto_client(o)?).await?;
    // Defaults: fetch max bytes 4 MiB (librdkafka 50 MiB), max.partition.fetch.bytes 1 MiB,
    // fetch.wait.max.ms 500, 8 MiB buffered (librdkafka 64 MiB); CRCs checked.
    let mut config = FetcherConfig::default();
    if let Some(mib) = o.mephisto_buffer_mib {
        config = config.with_max_buffered_bytes(mib << 20);
    }
    if o.mephisto_max_wait_ms > 0 {
        config = config.with_max_wait(Duration::from_millis(o.mephisto_max_wait_ms));
    }
    if o.mephisto_partition_kib > 0 {
        config = config.with_max_partition_bytes(o.mephisto_partition_kib.saturating_mul(1024));
    }
    if o.mephisto_max_bytes_kib > 0 {
        config = config.with_max_bytes(o.mephisto_max_bytes_kib.saturating_mul(1024));
    }
    let fetcher = Fetcher::new(cluster, config)?;
    // Connected, metadata known: the clock starts at the assignment.
    let assigned = Instant::now();
    for p in 0..o.partitions as i32 {
        fetcher.assign(
            TopicPartition::new(o.topic.as_str(), p),
            FetchPosition::Offset(0),
        )?;
    }
    let mut check = OffsetCheck::new(o.partitions);
    let (mut records, mut bytes, mut checksum) = (0u64, 0u64, 0u64);
    while records < o.records {
        let batch = tokio::time::timeout_at(deadline, fetcher.next_batch())
            .await
            .map_err(|_| format!("timed out after {records} records"))??;
        let partition = batch.partition;
        for record in batch.records()? {
            let record = record?;
            check.see(partition, record.offset());
            let (key, value) = (record.key(), record.value());
            bytes += (key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len)) as u64;
            checksum = checksum.wrapping_add(workload::touch(key, value));
            records += 1;
        }
    }
    let end = Instant::now();
    eprintln!("mephisto-consume: {:?}", fetcher.stats());
    fetcher.close();
    Ok(Outcome {
        records,
        payload_bytes: bytes,
        checksum,
        total: end - start,
        steady: end - assigned,
        offsets_ok: check.complete((o.records / u64::from(o.partitions)) as i64),
        ..Outcome::default()
    })
}

/// Record `i` of the workload for Mephisto: the key and value copied into buffers of their own
/// (as rdkafka copies them into its queue).
fn mephisto_record(o: &Options, i: u64) -> ProducerRecord {
    ProducerRecord {
        topic: Arc::from(o.topic.as_str()),
        partition: Some(workload::partition_of(i, o.partitions)),
        key: Some(Bytes::copy_from_slice(&workload::key(i))),
        value: Some(Bytes::copy_from_slice(&workload::value(i))),
        headers: Vec::new(),
        timestamp: Some(workload::timestamp(i)),
    }
}

async fn mephisto_produce(o: &Options) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + o.timeout);
    let cluster = Cluster::connect(mephisto_client(o)?).await?;
    // Warm the topic's metadata, as the rdkafka side does before its clock starts.
    cluster.topic(&o.topic).await?;
    let config = ProducerConfig {
        acks: Acks::All,
        linger: Duration::from_millis(5),
        // librdkafka's batch.size; at ~130 bytes a record this is below 10,000 records.
        batch_size: 1_000_000,
        compression: o.compression,
        idempotence: Some(true),
        buffer_memory: match (o.mephisto_producer_buffer_kib, o.mephisto_buffer_mib) {
            (Some(kib), _) => kib << 10,
            (None, Some(mib)) => mib << 20,
            (None, None) => ProducerConfig::default().buffer_memory,
        },
        ..ProducerConfig::default()
    };
    let producer = Producer::new(cluster, config)?;
    // Record 0 warms the producer up (producer id, connection) before the clock starts, on
    // both sides.
    let warm_up = producer.send(mephisto_record(o, 0));
    tokio::time::timeout_at(deadline, warm_up)
        .await
        .map_err(|_| "timed out")??;
    let base_rss_kib = proc_stats::rss_kib().unwrap_or(0);
    let work = async {
        let sending = Instant::now();
        let (mut held, mut max_pending) = (0u64, 0u64);
        // One queue of unacknowledged deliveries per partition: batches of one partition are
        // acknowledged in order, those of different partitions are not.
        let mut pending: Vec<VecDeque<Delivery>> =
            (0..o.partitions).map(|_| VecDeque::new()).collect();
        let mut cx = Context::from_waker(Waker::noop());
        let mut acked = 1u64;
        for i in 1..o.records {
            let partition = workload::partition_of(i, o.partitions);
            let queue = &mut pending[partition as usize];
            queue.push_back(producer.enqueue(mephisto_record(o, i)).await?);
            held += 1;
            max_pending = max_pending.max(held);
            // Retire what is already acknowledged, without waiting. `unconstrained`: tokio's
            // cooperative budget would otherwise make every poll after the first 128 (in a
            // task that has not yielded since) return `Pending`, and nothing would be retired.
            while let Some(front) = queue.front_mut() {
                let mut front = tokio::task::unconstrained(front);
                match Pin::new(&mut front).poll(&mut cx) {
                    Poll::Ready(result) => {
                        result?;
                        acked += 1;
                        held -= 1;
                        queue.pop_front();
                    }
                    Poll::Pending => break,
                }
            }
        }
        for queue in pending {
            for delivery in queue {
                delivery.await?;
                acked += 1;
            }
        }
        Ok::<_, BoxError>((acked, sending.elapsed(), max_pending))
    };
    let (acked, steady, max_pending) = tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| "timed out")??;
    let total = start.elapsed();
    eprintln!("mephisto-produce: {:?}", producer.stats());
    producer.close().await;
    Ok(Outcome {
        records: acked,
        payload_bytes: workload::payload_bytes(acked),
        checksum: 0,
        total,
        steady,
        base_rss_kib,
        max_pending,
        offsets_ok: true,
        ..Outcome::default()
    })
}

fn rdkafka_bootstrap(o: &Options) -> String {
    o.broker.trim_start_matches("kafka://").to_owned()
}

fn rdkafka_consume(o: &Options) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let deadline = start + o.timeout;
    // group.id is needed for assign(); nothing joins or commits.
    let mut config = RdConfig::new();
    config
        .set("bootstrap.servers", rdkafka_bootstrap(o))
        .set("client.id", "rdkafka-bench")
        .set("group.id", "mephisto-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("check.crcs", o.rdkafka_check_crcs.to_string())
        // The default (1000 ms) idles a fetcher whose queue reached queued.min.messages (100k
        // messages, ~12 MB here) for a whole second: a consumer faster than that stalls
        // ~1 s per 100k messages. 10 ms keeps rdkafka fetching.
        .set("fetch.queue.backoff.ms", "10");
    let consumer: BaseConsumer<Logging> = with_overrides(config, o).create_with_context(Logging)?;
    // Connect and load the topic's metadata before the clock starts, as Mephisto's
    // `Cluster::connect` does.
    consumer
        .client()
        .fetch_metadata(Some(&o.topic), Duration::from_secs(10))?;
    let assigned = Instant::now();
    let mut assignment = TopicPartitionList::new();
    for p in 0..o.partitions as i32 {
        assignment.add_partition_offset(&o.topic, p, Offset::Offset(0))?;
    }
    consumer.assign(&assignment)?;
    let mut check = OffsetCheck::new(o.partitions);
    let (mut records, mut bytes, mut checksum) = (0u64, 0u64, 0u64);
    while records < o.records {
        if Instant::now() >= deadline {
            return Err(format!("timed out after {records} records").into());
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        check.see(message.partition(), message.offset());
        let (key, value) = (message.key(), message.payload());
        bytes += (key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len)) as u64;
        checksum = checksum.wrapping_add(workload::touch(key, value));
        records += 1;
    }
    let end = Instant::now();
    drop(consumer);
    Ok(Outcome {
        records,
        payload_bytes: bytes,
        checksum,
        total: end - start,
        steady: end - assigned,
        offsets_ok: check.complete((o.records / u64::from(o.partitions)) as i64),
        ..Outcome::default()
    })
}

/// `config` with the `--rdkafka-config` properties set over it, and its `debug` contexts set
/// from `CLIENT_BENCH_RDKAFKA_DEBUG` (e.g. `fetch,msg`), if it is set.
fn with_overrides(mut config: RdConfig, o: &Options) -> RdConfig {
    for (key, value) in &o.rdkafka_config {
        config.set(key, value);
    }
    if let Ok(debug) = std::env::var("CLIENT_BENCH_RDKAFKA_DEBUG") {
        config.set("debug", debug);
        config.set_log_level(RDKafkaLogLevel::Debug);
    }
    config
}

/// Prints librdkafka's log lines to stderr with the time since the first one.
fn rdkafka_log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("{t:10.6} librdkafka {level:?} {facility}: {message}");
}

/// The consumer's context: logs to stderr.
struct Logging;

impl ClientContext for Logging {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        rdkafka_log(level, facility, message);
    }
}

impl ConsumerContext for Logging {}

/// The producer's context: counts delivery reports, logs to stderr.
#[derive(Default)]
struct Counting {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counting {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        rdkafka_log(level, facility, message);
    }
}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn rdkafka_produce(o: &Options) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let deadline = start + o.timeout;
    let mut config = RdConfig::new();
    config
        .set("bootstrap.servers", rdkafka_bootstrap(o))
        .set("client.id", "rdkafka-bench")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", o.compression_name());
    let producer: BaseProducer<Counting> =
        with_overrides(config, o).create_with_context(Counting::default())?;
    producer
        .client()
        .fetch_metadata(Some(&o.topic), Duration::from_secs(10))?;
    let mut sending = Instant::now();
    let mut base_rss_kib = 0;
    for i in 0..o.records {
        if i == 1 {
            // Record 0 warms the producer up (producer id, connection) before the clock
            // starts, on both sides.
            producer.flush(deadline.saturating_duration_since(Instant::now()))?;
            base_rss_kib = proc_stats::rss_kib().unwrap_or(0);
            sending = Instant::now();
        }
        let (key, value) = (workload::key(i), workload::value(i));
        let mut record = BaseRecord::to(&o.topic)
            .partition(workload::partition_of(i, o.partitions))
            .key(&key[..])
            .payload(&value[..])
            .timestamp(workload::timestamp(i));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if Instant::now() >= deadline {
                        return Err("timed out with the queue full".into());
                    }
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        if i % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(deadline.saturating_duration_since(Instant::now()))?;
    let end = Instant::now();
    let context = producer.context();
    let failed = context.failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} records failed").into());
    }
    let delivered = context.delivered.load(Ordering::Relaxed);
    Ok(Outcome {
        records: delivered,
        payload_bytes: workload::payload_bytes(delivered),
        checksum: 0,
        total: end - start,
        steady: end - sending,
        base_rss_kib,
        offsets_ok: true,
        ..Outcome::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Parent side: brokers.

/// Creates `topic` with `partitions` partitions on `url`.
fn create_topic(
    rt: &tokio::runtime::Runtime,
    url: &str,
    topic: &str,
    partitions: u32,
) -> Result<(), BoxError> {
    rt.block_on(async {
        let cluster = Cluster::connect(ClientConfig::from_url(url)?).await?;
        Admin::new(cluster)
            .create_topic(NewTopic::new(topic, partitions as i32, 1))
            .await?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Parent side: measurements.

/// One child run as the parent saw it.
#[derive(Debug, Clone)]
struct Measurement {
    target: Target,
    op: Op,
    client: ClientKind,
    run: usize,
    outcome: Outcome,
    /// CPU seconds the broker used during the run (tansu, or this process for the replay
    /// server).
    broker_cpu: f64,
    wall: Duration,
    problems: Vec<String>,
}

/// Runs one child and waits for it (at most the timeout plus 30 s; killed after that).
fn spawn_child(args: Vec<String>, timeout: Duration) -> Result<(Outcome, Duration), BoxError> {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut stdout = child.stdout.take().ok_or("no child stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let limit = started + timeout + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err("child did not finish in time; killed".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = started.elapsed();
    let text = reader.join().map_err(|_| "stdout reader panicked")?;
    if !status.success() {
        return Err(format!("child failed ({status}): {}", text.trim()).into());
    }
    let outcome = Outcome::parse(&text).ok_or_else(|| format!("no RESULT line in {text:?}"))?;
    Ok((outcome, wall))
}

struct Bench<'a> {
    o: &'a Options,
    expected_checksum: u64,
    results: Vec<Measurement>,
}

impl Bench<'_> {
    /// Runs `client`'s `op` against `broker`/`topic` and checks the outcome.
    #[allow(clippy::too_many_arguments)]
    fn measure(
        &mut self,
        target: Target,
        op: Op,
        client: ClientKind,
        run: usize,
        broker: &str,
        topic: &str,
        broker_cpu: &dyn Fn() -> f64,
        sink: Option<&ReplayServer>,
    ) -> Result<(), BoxError> {
        let role = format!("{}-{}", client.name(), op.name());
        let cpu_before = broker_cpu();
        let sink_before = sink.map(ReplayServer::stats).unwrap_or_default();
        let (outcome, wall) = spawn_child(self.o.child_args(&role, broker, topic), self.o.timeout)?;
        let broker_cpu = broker_cpu() - cpu_before;
        let sink_delta: ReplayStats =
            sink.map(ReplayServer::stats).unwrap_or_default() - sink_before;
        let mut problems = Vec::new();
        if outcome.records != self.o.records {
            problems.push(format!(
                "{} records, expected {}",
                outcome.records, self.o.records
            ));
        }
        if op == Op::Consume {
            if outcome.checksum != self.expected_checksum {
                problems.push("checksum mismatch".into());
            }
            if !outcome.offsets_ok {
                problems.push("offset gap or wrong end offset".into());
            }
        }
        if op == Op::Produce && sink.is_some() {
            if sink_delta.produced_records != self.o.records {
                problems.push(format!(
                    "sink acknowledged {} records",
                    sink_delta.produced_records
                ));
            }
            if sink_delta.corrupt_batches > 0 || sink_delta.sequence_gaps > 0 {
                problems.push(format!(
                    "sink saw {} corrupt batches, {} sequence gaps",
                    sink_delta.corrupt_batches, sink_delta.sequence_gaps
                ));
            }
        }
        let m = Measurement {
            target,
            op,
            client,
            run,
            outcome,
            broker_cpu,
            wall,
            problems,
        };
        eprintln!("{}", describe(&m, sink.map(|_| sink_delta)));
        self.results.push(m);
        Ok(())
    }
}

fn describe(m: &Measurement, sink: Option<ReplayStats>) -> String {
    let o = &m.outcome;
    let secs = o.steady.as_secs_f64();
    let mut line = format!(
        "[{} {} {} run {}] {:.0} records/s, {:.1} MB/s (steady {:.3} s, total {:.3} s, wall \
         {:.3} s), client CPU {:.2} s, broker CPU {:.2} s, peak RSS {:.1} MiB (base {:.1}, \
         heap peak {:.1}, max pending {})",
        m.target.name(),
        m.op.name(),
        m.client.name(),
        m.run,
        o.records as f64 / secs,
        o.payload_bytes as f64 / secs / 1e6,
        secs,
        o.total.as_secs_f64(),
        m.wall.as_secs_f64(),
        o.cpu_seconds,
        m.broker_cpu,
        o.peak_rss_kib as f64 / 1024.0,
        o.base_rss_kib as f64 / 1024.0,
        o.heap_peak_kib as f64 / 1024.0,
        o.max_pending,
    );
    if let Some(s) = sink {
        line += &format!(
            "; server: {} requests, {} fetches, {:.1} MB fetched, {} produce requests, {} \
             batches ({:.0} records/batch)",
            s.requests,
            s.fetches,
            s.fetch_bytes as f64 / 1e6,
            s.produces,
            s.produced_batches,
            s.produced_records as f64 / s.produced_batches.max(1) as f64
        );
    }
    if !m.problems.is_empty() {
        line += &format!(" INVALID: {}", m.problems.join("; "));
    }
    line
}

/// Clients in the order of run `run`: alternating who goes first.
fn order(run: usize) -> [ClientKind; 2] {
    if run.is_multiple_of(2) {
        [ClientKind::Mephisto, ClientKind::Rdkafka]
    } else {
        [ClientKind::Rdkafka, ClientKind::Mephisto]
    }
}

fn bench_tansu(bench: &mut Bench<'_>, rt: &tokio::runtime::Runtime) -> Result<(), BoxError> {
    let o = bench.o;
    let tansu = Tansu::start(rt, "client-bench")?;
    let tansu_pid = tansu.pid();
    let tansu_cpu = move || proc_stats::cpu_seconds(tansu_pid).unwrap_or(f64::NAN);
    let tag = format!("{}-{}", std::process::id(), o.compression_name());
    let mut consume_topic = None;
    if o.ops.contains(&Op::Produce) {
        for run in 0..o.runs {
            for client in order(run) {
                let topic = format!("bench-{}-{run}-{tag}", client.name());
                create_topic(rt, &tansu.url, &topic, o.partitions)?;
                bench.measure(
                    Target::Tansu,
                    Op::Produce,
                    client,
                    run,
                    &tansu.url,
                    &topic,
                    &tansu_cpu,
                    None,
                )?;
                if client == ClientKind::Mephisto && consume_topic.is_none() {
                    consume_topic = Some(topic);
                }
            }
        }
    }
    if o.ops.contains(&Op::Consume) {
        let topic = match consume_topic {
            Some(topic) => topic,
            None => {
                // Fill a topic first (not measured).
                let topic = format!("bench-fill-{tag}");
                create_topic(rt, &tansu.url, &topic, o.partitions)?;
                let args = o.child_args("mephisto-produce", &tansu.url, &topic);
                spawn_child(args, o.timeout)?;
                topic
            }
        };
        for run in 0..o.runs {
            for client in order(run) {
                bench.measure(
                    Target::Tansu,
                    Op::Consume,
                    client,
                    run,
                    &tansu.url,
                    &topic,
                    &tansu_cpu,
                    None,
                )?;
            }
        }
    }
    Ok(())
}

fn bench_replay(bench: &mut Bench<'_>, rt: &tokio::runtime::Runtime) -> Result<(), BoxError> {
    let o = bench.o;
    let topic = "bench";
    let server = rt.block_on(ReplayServer::start(replay_config(o, topic)))?;
    eprintln!(
        "replay server on {}: {} batches, {:.1} MB of record batches",
        server.addr(),
        server.log_batches(),
        server.log_bytes() as f64 / 1e6
    );
    let own_cpu = || proc_stats::own_cpu_seconds().unwrap_or(f64::NAN);
    let url = server.url();
    for op in [Op::Produce, Op::Consume] {
        if !o.ops.contains(&op) {
            continue;
        }
        for run in 0..o.runs {
            for client in order(run) {
                bench.measure(
                    Target::Replay,
                    op,
                    client,
                    run,
                    &url,
                    topic,
                    &own_cpu,
                    Some(&server),
                )?;
            }
        }
    }
    Ok(())
}

/// The valid runs of one (target, op, client).
fn runs_of(
    results: &[Measurement],
    target: Target,
    op: Op,
    client: ClientKind,
) -> Vec<&Measurement> {
    results
        .iter()
        .filter(|m| m.target == target && m.op == op && m.client == client)
        .filter(|m| m.problems.is_empty())
        .collect()
}

/// Records per second of a run (steady state).
fn rate(m: &Measurement) -> f64 {
    m.outcome.records as f64 / m.outcome.steady.as_secs_f64()
}

/// What the table shows for one client: its median run (by rate; the lower middle one for an
/// even count), its best rate and the largest peak RSS over its runs.
struct Summary<'a> {
    median: &'a Measurement,
    best_rate: f64,
    max_rss_kib: u64,
}

fn summarize<'a>(runs: &[&'a Measurement]) -> Option<Summary<'a>> {
    let mut sorted: Vec<&Measurement> = runs.to_vec();
    sorted.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    let median = *sorted.get(sorted.len().saturating_sub(1) / 2)?;
    let best_rate = sorted.last().map(|m| rate(m))?;
    let max_rss_kib = runs.iter().map(|m| m.outcome.peak_rss_kib).max()?;
    Some(Summary {
        median,
        best_rate,
        max_rss_kib,
    })
}

fn print_table(o: &Options, results: &[Measurement]) {
    println!(
        "\n{} records of {} B key + {} B value, {} partitions, compression {}; {} runs each: \
         the median run (best rate alongside), the largest peak RSS of the runs",
        o.records,
        workload::KEY_SIZE,
        workload::VALUE_SIZE,
        o.partitions,
        o.compression_name(),
        o.runs
    );
    println!(
        "| broker | op | client | records/s | best records/s | MB/s | steady s | total s | \
         client CPU s | broker CPU s | peak RSS MiB | rate vs rdkafka | RSS vs rdkafka |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &target in &o.targets {
        for &op in &o.ops {
            let peer = summarize(&runs_of(results, target, op, ClientKind::Rdkafka));
            for client in [ClientKind::Mephisto, ClientKind::Rdkafka] {
                let Some(s) = summarize(&runs_of(results, target, op, client)) else {
                    println!(
                        "| {} | {} | {} | no valid run ||||||||||",
                        target.name(),
                        op.name(),
                        client.name()
                    );
                    continue;
                };
                let m = s.median;
                let secs = m.outcome.steady.as_secs_f64();
                let (ratio, rss_ratio) = match (client, &peer) {
                    (ClientKind::Mephisto, Some(p)) => (
                        format!(
                            "{:.2}× (best {:.2}×)",
                            rate(m) / rate(p.median),
                            s.best_rate / p.best_rate
                        ),
                        format!("{:.2}", s.max_rss_kib as f64 / p.max_rss_kib.max(1) as f64),
                    ),
                    _ => (String::new(), String::new()),
                };
                println!(
                    "| {} | {} | {} | {:.2} M | {:.2} M | {:.1} | {:.3} | {:.3} | {:.2} | {:.2} | {:.1} | {} | {} |",
                    target.name(),
                    op.name(),
                    client.name(),
                    rate(m) / 1e6,
                    s.best_rate / 1e6,
                    m.outcome.payload_bytes as f64 / secs / 1e6,
                    secs,
                    m.outcome.total.as_secs_f64(),
                    m.outcome.cpu_seconds,
                    m.broker_cpu,
                    s.max_rss_kib as f64 / 1024.0,
                    ratio,
                    rss_ratio,
                );
            }
        }
    }
    let invalid = results.iter().filter(|m| !m.problems.is_empty()).count();
    if invalid > 0 {
        println!("\n{invalid} run(s) were invalid (see the log above) and are left out.");
    }
}

fn main() {
    let o = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("client_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some(role) = o.role.clone() {
        if std::env::var_os("CLIENT_BENCH_HEAP").is_some_and(|v| v == "1") {
            heap_stats::enable();
        }
        match run_child(&role, &o) {
            Ok(outcome) => println!("{}", outcome.line()),
            Err(e) => {
                eprintln!("client_bench {role}: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("client_bench: {e}");
            std::process::exit(1);
        }
    };
    let mut bench = Bench {
        o: &o,
        expected_checksum: workload::expected_checksum(o.records),
        results: Vec::new(),
    };
    let mut failed = false;
    for &target in &o.targets {
        let result = match target {
            Target::Tansu => bench_tansu(&mut bench, &rt),
            Target::Replay => bench_replay(&mut bench, &rt),
        };
        if let Err(e) = result {
            eprintln!("client_bench: {} failed: {e}", target.name());
            failed = true;
        }
    }
    print_table(&o, &bench.results);
    if failed {
        std::process::exit(1);
    }
}
