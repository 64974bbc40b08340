//! Agent pipeline benchmark: a Mephisto [`App`] (topic → agent → sink topic) against `rdkafka`
//! (librdkafka) doing the same work by hand, on the same broker in the same run, and the `ask`
//! round trip of both.
//!
//! The parent starts a private tansu (or uses `$MEPHISTO_BROKER`), pre-fills the input topic
//! (`--partitions 8`, `--records 200000` JSON values `{"a": i, "b": i}`, record `i` in partition
//! `i % partitions`, no key), then re-executes itself once per measurement with `--role ROLE`,
//! so each client runs alone in its own process and its peak RSS is its own `VmHWM`:
//!
//! - `mephisto-pipeline`: an [`App`] whose agent reads the input topic and yields the value
//!   unchanged (`--variant noop`) or `a + b` (`--variant add`), with `Topic::sink()` of a fresh
//!   output topic; a consumer group of its own, 6 s session timeout.
//! - `rdkafka-pipeline`: a `BaseConsumer` in a group of its own (6 s session timeout,
//!   `subscribe`), `serde_json` decoding, the same output, a `BaseProducer` (linger 5 ms,
//!   acks=all, idempotence on); an input offset is stored once the output record derived from
//!   it is acknowledged and auto-committed every 2.8 s (Faust's `broker_commit_interval`).
//!
//! While a pipeline child runs, the parent counts the output topic's records with a Mephisto
//! `Fetcher` (every partition from offset 0, no group) and checks the sum of the output values
//! (`a + b` summed over the input). Throughput = output records / (time the `N`th output record
//! is seen − time the child saw its first input record): the clock starts at the first input
//! record, so the group join (about half the session timeout on tansu) is excluded. A run stops
//! at `N` records or `--max-seconds` after the first output record (then the partial rate is
//! reported and marked). The parent then tells the child to report its `VmHWM` and CPU time.
//!
//! - `mephisto-ask`: a worker app running the `adding` agent and a client app in the same
//!   process; the client asks sequentially (`--warmup` asks, then `--asks` timed ones).
//! - `rdkafka-ask`: the same by hand: an echo thread (group consumer on the request topic,
//!   computes `a + b`, produces Faust's `ReqRepResponse` to the topic named by the
//!   `Faust-Ag-ReplyTo` header) and a requester (producer with the reply headers, a consumer
//!   assigned to its one-partition reply topic).
//!
//! ```text
//! cargo run --release -p mephisto-benches --bin agent_bench -- \
//!     [--records 200000] [--partitions 8] [--runs 1] [--variants noop,add]
//!     [--mephisto-concurrency 1] [--max-seconds 30] [--asks 2000] [--warmup 200]
//!     [--skip-pipeline] [--skip-ask] [--timeout 1200]
//!     [--fetch-wait-ms N] [--mephisto-sink topic|spawn]
//! ```
//!
//! Diagnostics: `--mephisto-concurrency N` runs N actors; `--mephisto-sink spawn` replaces
//! `Topic::sink()` by a function sink that spawns each send, so the actor does not wait for the
//! acknowledgement (the event is then acked before its output is written: not the same
//! guarantee); `--fetch-wait-ms N` sets the long-poll wait of both sides' ask consumers
//! (rdkafka's `fetch.wait.max.ms`, Mephisto's `consumer_fetch_max_wait`).
//!
//! `--timeout` bounds each child (an ask child runs `--asks` round trips, ~0.3 s each on
//! tansu, whose Fetch long polls run to their max wait).
//!
//! The tansu binary is `$TANSU_BIN`, else `.tools/bin/tansu` of this repository.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use mephisto::{App, Sink, Topic};
use mephisto_benches::proc_stats;
use mephisto_benches::tansu::Tansu;
use mephisto_engine::fetcher::{FetchPosition, Fetcher, FetcherConfig, TopicPartition};
use mephisto_engine::producer::{Delivery, Producer, ProducerConfig, ProducerRecord};
use mephisto_engine::{Admin, ClientConfig, Cluster, NewTopic};
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The input model (Faust's `Add` record of the Agents page).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// Session timeout of every group member (tansu completes a join after about half of it).
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
const HEARTBEAT: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// Options.

#[derive(Debug, Clone)]
struct Options {
    role: Option<String>,
    broker: String,
    records: u64,
    partitions: u32,
    runs: usize,
    variants: Vec<String>,
    variant: String,
    concurrency: usize,
    max_seconds: u64,
    asks: usize,
    warmup: usize,
    skip_pipeline: bool,
    skip_ask: bool,
    timeout: Duration,
    input: String,
    output: String,
    group: String,
    threads: usize,
    /// Diagnostic: `fetch.wait.max.ms` of both rdkafka ask consumers (default: librdkafka's
    /// 500 ms for the echo, 200 ms for the replies, as Mephisto's worker and reply reader).
    rdkafka_fetch_wait_ms: Option<u64>,
    /// Diagnostic: `spawn` replaces `Topic::sink()` by a function sink that spawns each send
    /// (the actor does not wait for the acknowledgement; the event is acked before its output
    /// is written, so this is not the same guarantee). Default `topic`.
    mephisto_sink: String,
}

impl Options {
    fn parse() -> Result<Self, BoxError> {
        let mut o = Options {
            role: None,
            broker: String::new(),
            records: 200_000,
            partitions: 8,
            runs: 1,
            variants: vec!["noop".into(), "add".into()],
            variant: "add".into(),
            concurrency: 1,
            max_seconds: 30,
            asks: 2000,
            warmup: 200,
            skip_pipeline: false,
            skip_ask: false,
            timeout: Duration::from_secs(1200),
            input: String::new(),
            output: String::new(),
            group: String::new(),
            threads: 2,
            rdkafka_fetch_wait_ms: None,
            mephisto_sink: "topic".into(),
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let flag = args[i].as_str();
            match flag {
                "--skip-pipeline" => {
                    o.skip_pipeline = true;
                    i += 1;
                    continue;
                }
                "--skip-ask" => {
                    o.skip_ask = true;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let value = args
                .get(i + 1)
                .ok_or_else(|| format!("{flag} needs a value"))?
                .clone();
            match flag {
                "--role" => o.role = Some(value),
                "--broker" => o.broker = value,
                "--records" => o.records = value.parse()?,
                "--partitions" => o.partitions = value.parse()?,
                "--runs" => o.runs = value.parse()?,
                "--variants" => o.variants = value.split(',').map(str::to_owned).collect(),
                "--variant" => o.variant = value,
                "--mephisto-concurrency" => o.concurrency = value.parse()?,
                "--max-seconds" => o.max_seconds = value.parse()?,
                "--asks" => o.asks = value.parse()?,
                "--warmup" => o.warmup = value.parse()?,
                "--timeout" => o.timeout = Duration::from_secs(value.parse()?),
                "--input" => o.input = value,
                "--output" => o.output = value,
                "--group" => o.group = value,
                "--mephisto-threads" => o.threads = value.parse()?,
                "--fetch-wait-ms" => o.rdkafka_fetch_wait_ms = Some(value.parse()?),
                "--mephisto-sink" => o.mephisto_sink = value,
                _ => return Err(format!("unknown option {flag}").into()),
            }
            i += 2;
        }
        for v in &o.variants {
            if v != "noop" && v != "add" {
                return Err(format!("unknown variant {v} (noop, add)").into());
            }
        }
        Ok(o)
    }

    fn child_args(&self, role: &str, variant: &str, output: &str, group: &str) -> Vec<String> {
        [
            ("--role", role.to_owned()),
            ("--broker", self.broker.clone()),
            ("--records", self.records.to_string()),
            ("--partitions", self.partitions.to_string()),
            ("--variant", variant.to_owned()),
            ("--mephisto-concurrency", self.concurrency.to_string()),
            ("--asks", self.asks.to_string()),
            ("--warmup", self.warmup.to_string()),
            ("--timeout", self.timeout.as_secs().to_string()),
            ("--input", self.input.clone()),
            ("--output", output.to_owned()),
            ("--group", group.to_owned()),
            ("--mephisto-threads", self.threads.to_string()),
            ("--mephisto-sink", self.mephisto_sink.clone()),
        ]
        .into_iter()
        .chain(
            self.rdkafka_fetch_wait_ms
                .map(|ms| ("--fetch-wait-ms", ms.to_string())),
        )
        .flat_map(|(k, v)| [k.to_owned(), v])
        .collect()
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Child side.

/// What a child reports on its `RESULT` line.
#[derive(Debug, Clone, Default)]
struct Outcome {
    /// Wall clock (µs since the epoch) when the client saw its first input record.
    first_input_us: u64,
    /// Input records the client processed (pipeline).
    processed: u64,
    cpu_seconds: f64,
    peak_rss_kib: u64,
    /// Ask latencies, µs, in order (ask roles).
    latencies_us: Vec<u64>,
    /// Time to the first successful ask (includes the worker's group join).
    first_ask_s: f64,
}

impl Outcome {
    fn line(&self) -> String {
        let lat: Vec<String> = self.latencies_us.iter().map(u64::to_string).collect();
        format!(
            "RESULT first_input_us={} processed={} cpu_s={:.2} peak_rss_kib={} first_ask_s={:.3} \
             latencies_us={}",
            self.first_input_us,
            self.processed,
            self.cpu_seconds,
            self.peak_rss_kib,
            self.first_ask_s,
            if lat.is_empty() {
                "-".to_owned()
            } else {
                lat.join(",")
            },
        )
    }

    fn parse(text: &str) -> Option<Outcome> {
        let line = text.lines().find(|l| l.starts_with("RESULT "))?;
        let mut o = Outcome::default();
        for field in line.split_whitespace().skip(1) {
            let (k, v) = field.split_once('=')?;
            match k {
                "first_input_us" => o.first_input_us = v.parse().ok()?,
                "processed" => o.processed = v.parse().ok()?,
                "cpu_s" => o.cpu_seconds = v.parse().ok()?,
                "peak_rss_kib" => o.peak_rss_kib = v.parse().ok()?,
                "first_ask_s" => o.first_ask_s = v.parse().ok()?,
                "latencies_us" if v != "-" => {
                    o.latencies_us = v.split(',').filter_map(|x| x.parse().ok()).collect()
                }
                _ => {}
            }
        }
        Some(o)
    }
}

/// Set when the parent writes a line to the child's stdin (or closes it).
fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        f.store(true, Ordering::SeqCst);
    });
    flag
}

async fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn runtime(o: &Options) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads.max(1))
        .enable_all()
        .build()
}

fn run_child(role: &str, o: &Options) -> Result<Outcome, BoxError> {
    let mut outcome = match role {
        "mephisto-pipeline" => runtime(o)?.block_on(mephisto_pipeline(o))?,
        "rdkafka-pipeline" => rdkafka_pipeline(o)?,
        "mephisto-ask" => runtime(o)?.block_on(mephisto_ask(o))?,
        "rdkafka-ask" => rdkafka_ask(o)?,
        _ => return Err(format!("unknown role {role}").into()),
    };
    outcome.cpu_seconds = proc_stats::own_cpu_seconds().unwrap_or(f64::NAN);
    outcome.peak_rss_kib = proc_stats::peak_rss_kib().unwrap_or(0);
    Ok(outcome)
}

/// Settings shared by every Mephisto app of the bench.
fn configure(app: &App, o: &Options) {
    let broker = o.broker.clone();
    let partitions = o.partitions as i32;
    let fetch_wait = o.rdkafka_fetch_wait_ms;
    app.configure(|s| {
        s.broker = broker;
        s.topic_partitions = partitions;
        s.broker_session_timeout = SESSION_TIMEOUT;
        s.broker_heartbeat_interval = HEARTBEAT;
        if let Some(ms) = fetch_wait {
            s.consumer_fetch_max_wait = std::time::Duration::from_millis(ms);
        }
    });
}

static FIRST_INPUT_US: AtomicU64 = AtomicU64::new(0);
static PROCESSED: AtomicU64 = AtomicU64::new(0);

fn seen_input() {
    if PROCESSED.fetch_add(1, Ordering::Relaxed) == 0 {
        FIRST_INPUT_US.store(now_micros(), Ordering::Relaxed);
    }
}

/// `topic.sink()`, or with `spawn` (diagnostic) a function sink spawning each send.
fn topic_sink<V: mephisto::app::Model>(topic: &Topic<String, V>, kind: &str) -> Sink<V> {
    if kind != "spawn" {
        return topic.sink();
    }
    let topic = topic.clone();
    Sink::func(move |value: V| {
        let topic = topic.clone();
        tokio::spawn(async move {
            if let Err(e) = topic.send(None, value).await {
                eprintln!("spawned sink send failed: {e}");
            }
        });
    })
}

async fn mephisto_pipeline(o: &Options) -> Result<Outcome, BoxError> {
    let stop = stop_flag();
    let app = App::new(o.group.clone());
    configure(&app, o);
    let input = app.topic::<String, Add>(o.input.clone());
    let concurrency = o.concurrency;
    match o.variant.as_str() {
        "noop" => {
            let output = app.topic::<String, Add>(o.output.clone());
            let _agent = app
                .agent::<String, Add>("pipeline")
                .topic(&input)
                .concurrency(concurrency)
                .yielding(|stream| {
                    stream.map(|value: Add| {
                        seen_input();
                        Ok(value)
                    })
                })
                .sink(topic_sink(&output, &o.mephisto_sink));
        }
        _ => {
            let output: Topic<String, i64> = app.topic(o.output.clone());
            let _agent = app
                .agent::<String, Add>("pipeline")
                .topic(&input)
                .concurrency(concurrency)
                .yielding(|stream| {
                    stream.map(|value: Add| {
                        seen_input();
                        Ok(value.a + value.b)
                    })
                })
                .sink(topic_sink(&output, &o.mephisto_sink));
        }
    }
    let worker = app.start_worker().await?;
    println!("STARTED");
    wait_for(&stop).await;
    let outcome = Outcome {
        first_input_us: FIRST_INPUT_US.load(Ordering::Relaxed),
        processed: PROCESSED.load(Ordering::Relaxed),
        cpu_seconds: proc_stats::own_cpu_seconds().unwrap_or(f64::NAN),
        peak_rss_kib: proc_stats::peak_rss_kib().unwrap_or(0),
        ..Outcome::default()
    };
    // Stopping (commit, leave) is not measured; do not let it hang the run.
    let _ = tokio::time::timeout(Duration::from_secs(10), worker.stop()).await;
    Ok(outcome)
}

fn rdkafka_bootstrap(o: &Options) -> String {
    o.broker.trim_start_matches("kafka://").to_owned()
}

fn rd_producer_config(o: &Options) -> RdConfig {
    let mut config = RdConfig::new();
    config
        .set("bootstrap.servers", rdkafka_bootstrap(o))
        .set("client.id", "rdkafka-agent-bench")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("acks", "all")
        .set("enable.idempotence", "true");
    config
}

fn rd_group_config(o: &Options, group: &str) -> RdConfig {
    let mut config = RdConfig::new();
    config
        .set("bootstrap.servers", rdkafka_bootstrap(o))
        .set("client.id", "rdkafka-agent-bench")
        .set("group.id", group)
        .set(
            "session.timeout.ms",
            SESSION_TIMEOUT.as_millis().to_string(),
        )
        .set("heartbeat.interval.ms", HEARTBEAT.as_millis().to_string())
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "2800")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // See client_bench: the default 1000 ms idles a fast consumer.
        .set("fetch.queue.backoff.ms", "10");
    config
}

/// The pipeline producer's context: collects the input coordinates whose output is delivered.
#[derive(Default)]
struct Delivered {
    done: Mutex<Vec<(i32, i64)>>,
    failed: AtomicU64,
}

impl ClientContext for Delivered {}

impl ProducerContext for Delivered {
    type DeliveryOpaque = Box<(i32, i64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, source: Box<(i32, i64)>) {
        match result {
            Ok(_) => self
                .done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(*source),
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn rdkafka_pipeline(o: &Options) -> Result<Outcome, BoxError> {
    let stop = stop_flag();
    let consumer: BaseConsumer = rd_group_config(o, &o.group).create()?;
    let producer: BaseProducer<Delivered> =
        rd_producer_config(o).create_with_context(Delivered::default())?;
    consumer.subscribe(&[o.input.as_str()])?;
    println!("STARTED");
    let noop = o.variant == "noop";
    let mut first_input_us = 0u64;
    let mut processed = 0u64;
    let mut stored: HashMap<i32, i64> = HashMap::new();
    let mut drained = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let polled = consumer.poll(Duration::from_millis(20));
        let idle = polled.is_none();
        if let Some(message) = polled {
            let message = message?;
            if processed == 0 {
                first_input_us = now_micros();
            }
            processed += 1;
            let value: Add = serde_json::from_slice(message.payload().unwrap_or_default())?;
            let out = if noop {
                serde_json::to_vec(&value)?
            } else {
                serde_json::to_vec(&(value.a + value.b))?
            };
            let source = Box::new((message.partition(), message.offset()));
            let mut record = BaseRecord::with_opaque_to(&o.output, source).payload(&out[..]);
            loop {
                match producer.send::<[u8], [u8]>(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(1));
                    }
                    Err((error, _)) => return Err(error.into()),
                }
            }
        }
        if idle || processed % 256 == 0 {
            producer.poll(Duration::ZERO);
            std::mem::swap(
                &mut drained,
                &mut *producer
                    .context()
                    .done
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            for (partition, offset) in drained.drain(..) {
                let next = offset + 1;
                let entry = stored.entry(partition).or_insert(0);
                if next > *entry {
                    *entry = next;
                    consumer.store_offset(&o.input, partition, next)?;
                }
            }
        }
    }
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} output records failed").into());
    }
    Ok(Outcome {
        first_input_us,
        processed,
        ..Outcome::default()
    })
}

/// Summary line of the latencies; also on stderr for the log.
fn ask_loop_done(name: &str, latencies: &[u64]) {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    if let (Some(p50), Some(max)) = (percentile(&sorted, 0.5), sorted.last()) {
        eprintln!(
            "{name}: {} asks, p50 {p50} µs, p99 {} µs, max {max} µs",
            sorted.len(),
            percentile(&sorted, 0.99).unwrap_or(0)
        );
    }
}

async fn mephisto_ask(o: &Options) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let worker_app = App::new(format!("{}-worker", o.group));
    configure(&worker_app, o);
    let topic = worker_app.topic::<String, Add>(o.input.clone());
    let _adding = worker_app
        .agent::<String, Add>("adding")
        .topic(&topic)
        .yielding(|stream| stream.map(|value: Add| Ok(value.a + value.b)));
    let worker = worker_app.start_worker().await?;
    // The client: another app (its own connection and reply topic) that knows the agent.
    let client_app = App::new(format!("{}-client", o.group));
    configure(&client_app, o);
    let client_topic = client_app.topic::<String, Add>(o.input.clone());
    let adding = client_app
        .agent::<String, Add>("adding")
        .topic(&client_topic)
        .yielding(|stream| stream.map(|value: Add| Ok(value.a + value.b)));
    let first = adding.ask(Add { a: 4, b: 4 }).await?;
    if first != 8 {
        return Err(format!("ask returned {first}, expected 8").into());
    }
    let first_ask_s = start.elapsed().as_secs_f64();
    for i in 0..o.warmup as i64 {
        adding.ask(Add { a: i, b: 1 }).await?;
    }
    let mut latencies = Vec::with_capacity(o.asks);
    for i in 0..o.asks as i64 {
        let t = Instant::now();
        let sum = adding.ask(Add { a: i, b: i }).await?;
        latencies.push(t.elapsed().as_micros() as u64);
        if sum != 2 * i {
            return Err(format!("ask returned {sum}, expected {}", 2 * i).into());
        }
    }
    ask_loop_done("mephisto-ask", &latencies);
    let outcome = Outcome {
        latencies_us: latencies,
        first_ask_s,
        cpu_seconds: proc_stats::own_cpu_seconds().unwrap_or(f64::NAN),
        peak_rss_kib: proc_stats::peak_rss_kib().unwrap_or(0),
        ..Outcome::default()
    };
    client_app.close().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), worker.stop()).await;
    Ok(outcome)
}

/// Faust's `ReqRepResponse`.
#[derive(Debug, Serialize, Deserialize)]
struct ReqRepResponse {
    key: Option<String>,
    value: i64,
    correlation_id: String,
}

const REPLY_TO_HEADER: &str = "Faust-Ag-ReplyTo";
const CORRELATION_ID_HEADER: &str = "Faust-Ag-CorrelationId";

/// The rdkafka echo service: reads requests in a group, replies `a + b` to their reply topic.
fn rdkafka_echo(o: Options, stop: Arc<AtomicBool>) -> Result<(), BoxError> {
    let mut config = rd_group_config(&o, &format!("{}-worker", o.group));
    if let Some(ms) = o.rdkafka_fetch_wait_ms {
        config.set("fetch.wait.max.ms", ms.to_string());
    }
    let consumer: BaseConsumer = config.create()?;
    let producer: BaseProducer = rd_producer_config(&o).create()?;
    consumer.subscribe(&[o.input.as_str()])?;
    while !stop.load(Ordering::SeqCst) {
        let Some(message) = consumer.poll(Duration::from_millis(20)) else {
            producer.poll(Duration::ZERO);
            continue;
        };
        let message = message?;
        let value: Add = serde_json::from_slice(message.payload().unwrap_or_default())?;
        let (mut reply_to, mut cid) = (None, None);
        if let Some(headers) = message.headers() {
            for h in headers.iter() {
                let text = h.value.and_then(|v| std::str::from_utf8(v).ok());
                match h.key {
                    REPLY_TO_HEADER => reply_to = text.map(str::to_owned),
                    CORRELATION_ID_HEADER => cid = text.map(str::to_owned),
                    _ => {}
                }
            }
        }
        if let (Some(reply_to), Some(cid)) = (reply_to, cid) {
            let body = serde_json::to_vec(&ReqRepResponse {
                key: None,
                value: value.a + value.b,
                correlation_id: cid,
            })?;
            producer
                .send::<[u8], [u8]>(BaseRecord::to(&reply_to).payload(&body[..]))
                .map_err(|(e, _)| e)?;
        }
        producer.poll(Duration::ZERO);
        consumer.store_offset_from_message(&message)?;
    }
    Ok(())
}

fn rdkafka_ask(o: &Options) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (o, stop) = (o.clone(), stop.clone());
        std::thread::spawn(move || rdkafka_echo(o, stop))
    };
    // The requester: a producer and a consumer of its own reply topic (created by the parent,
    // one partition), like Mephisto's reply reader (200 ms max wait, from the start).
    let reply_topic = o.output.clone();
    let producer: BaseProducer = rd_producer_config(o).create()?;
    let mut config = RdConfig::new();
    config
        .set("bootstrap.servers", rdkafka_bootstrap(o))
        .set("client.id", "rdkafka-agent-bench")
        .set("group.id", format!("{}-client", o.group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set(
            "fetch.wait.max.ms",
            o.rdkafka_fetch_wait_ms.unwrap_or(500).to_string(),
        );
    let replies: BaseConsumer = config.create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&reply_topic, 0, Offset::Beginning)?;
    replies.assign(&assignment)?;
    let deadline = start + o.timeout;
    let mut next_id = 0u64;
    let mut ask = |a: i64, b: i64, wait: Duration| -> Result<Option<i64>, BoxError> {
        next_id += 1;
        let cid = format!("rd-{next_id}");
        let body = serde_json::to_vec(&Add { a, b })?;
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: REPLY_TO_HEADER,
                value: Some(reply_topic.as_bytes()),
            })
            .insert(Header {
                key: CORRELATION_ID_HEADER,
                value: Some(cid.as_bytes()),
            });
        producer
            .send::<[u8], [u8]>(BaseRecord::to(&o.input).payload(&body[..]).headers(headers))
            .map_err(|(e, _)| e)?;
        let until = Instant::now() + wait;
        while Instant::now() < until {
            producer.poll(Duration::ZERO);
            let Some(message) = replies.poll(Duration::from_millis(1)) else {
                continue;
            };
            let message = message?;
            let reply: ReqRepResponse =
                serde_json::from_slice(message.payload().unwrap_or_default())?;
            if reply.correlation_id == cid {
                return Ok(Some(reply.value));
            }
        }
        Ok(None)
    };
    // The first ask waits for the echo's group join; asks that time out are retried.
    let first_ask_s = loop {
        if Instant::now() >= deadline {
            return Err("no reply to the first ask".into());
        }
        if ask(4, 4, Duration::from_secs(2))? == Some(8) {
            break start.elapsed().as_secs_f64();
        }
    };
    for i in 0..o.warmup as i64 {
        ask(i, 1, Duration::from_secs(30))?.ok_or("warm-up ask timed out")?;
    }
    let mut latencies = Vec::with_capacity(o.asks);
    for i in 0..o.asks as i64 {
        let t = Instant::now();
        let sum = ask(i, i, Duration::from_secs(30))?.ok_or("ask timed out")?;
        latencies.push(t.elapsed().as_micros() as u64);
        if sum != 2 * i {
            return Err(format!("ask returned {sum}, expected {}", 2 * i).into());
        }
    }
    ask_loop_done("rdkafka-ask", &latencies);
    let outcome = Outcome {
        latencies_us: latencies,
        first_ask_s,
        cpu_seconds: proc_stats::own_cpu_seconds().unwrap_or(f64::NAN),
        peak_rss_kib: proc_stats::peak_rss_kib().unwrap_or(0),
        ..Outcome::default()
    };
    stop.store(true, Ordering::SeqCst);
    echo.join().map_err(|_| "echo thread panicked")??;
    Ok(outcome)
}

// ---------------------------------------------------------------------------------------------
// Parent side: broker, topics, the output counter.

async fn cluster(url: &str) -> Result<Cluster, BoxError> {
    Ok(Cluster::connect(
        ClientConfig::from_url(url)?
            .with_client_id("agent-bench-parent")
            .with_request_timeout(Duration::from_secs(30)),
    )
    .await?)
}

async fn create_topic(url: &str, topic: &str, partitions: u32) -> Result<(), BoxError> {
    let cluster = cluster(url).await?;
    Admin::new(cluster.clone())
        .create_topic(NewTopic::new(topic, partitions as i32, 1))
        .await?;
    // Wait until the metadata knows every partition's leader.
    for _ in 0..100 {
        let meta = cluster.refresh_metadata().await?;
        if meta.topic(topic).is_some_and(|t| t.all_partitions_led()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("topic {topic} has no leaders").into())
}

/// Produces `{"a": i, "b": i}` for `i` in `0..records` to partition `i % partitions`.
async fn prefill(url: &str, topic: &str, records: u64, partitions: u32) -> Result<(), BoxError> {
    let cluster = cluster(url).await?;
    let producer = Producer::new(cluster, ProducerConfig::default())?;
    let mut pending: Vec<Delivery> = Vec::new();
    for i in 0..records {
        let value = serde_json::to_vec(&Add {
            a: i as i64,
            b: i as i64,
        })?;
        let mut record = ProducerRecord::new(topic);
        record.partition = Some((i % u64::from(partitions)) as i32);
        record.value = Some(Bytes::from(value));
        pending.push(producer.enqueue(record).await?);
        if pending.len() >= 50_000 {
            for d in pending.drain(..) {
                d.await?;
            }
        }
    }
    for d in pending {
        d.await?;
    }
    producer.close().await;
    Ok(())
}

/// What the parent saw of the output topic.
#[derive(Debug, Clone, Default)]
struct Counted {
    records: u64,
    sum: i128,
    first_output_us: u64,
    last_output_us: u64,
    timed_out: bool,
}

/// Counts the records of `topic` (every partition from offset 0) until `expected` are seen, or
/// `max_after_first` after the first one, or `deadline`. Sums `a + b` (noop) or the value.
async fn count_output(
    url: &str,
    topic: &str,
    partitions: u32,
    noop: bool,
    expected: u64,
    max_after_first: Duration,
    deadline: Instant,
) -> Result<Counted, BoxError> {
    let cluster = cluster(url).await?;
    let config = FetcherConfig::default().with_max_wait(Duration::from_millis(50));
    let fetcher = Fetcher::new(cluster, config)?;
    for p in 0..partitions as i32 {
        fetcher.assign(TopicPartition::new(topic, p), FetchPosition::Offset(0))?;
    }
    let mut c = Counted::default();
    let mut stop_at = deadline;
    while c.records < expected {
        let Ok(batch) = tokio::time::timeout_at(
            tokio::time::Instant::from_std(stop_at),
            fetcher.next_batch(),
        )
        .await
        else {
            c.timed_out = true;
            break;
        };
        let batch = batch?;
        for record in batch.records()? {
            let record = record?;
            let value = record.value().unwrap_or_default();
            c.sum += if noop {
                let v: Add = serde_json::from_slice(value)?;
                i128::from(v.a + v.b)
            } else {
                i128::from(serde_json::from_slice::<i64>(value)?)
            };
            c.records += 1;
        }
        let now = now_micros();
        if c.first_output_us == 0 {
            c.first_output_us = now;
            stop_at = stop_at.min(Instant::now() + max_after_first);
        }
        c.last_output_us = now;
    }
    fetcher.close();
    Ok(c)
}

/// A running child: its stdin (a line = "stop and report") and its stdout reader.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: std::thread::JoinHandle<String>,
}

fn spawn_child(args: Vec<String>) -> Result<Running, BoxError> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdin = child.stdin.take();
    let mut stdout = child.stdout.take().ok_or("no child stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    Ok(Running {
        child,
        stdin,
        stdout: reader,
    })
}

impl Running {
    /// Asks the child to report, waits for it (at most `limit`) and parses its result.
    fn finish(mut self, limit: Duration) -> Result<Outcome, BoxError> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let until = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err("child did not finish in time; killed".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let text = self.stdout.join().map_err(|_| "stdout reader panicked")?;
        if !status.success() {
            return Err(format!("child failed ({status}): {}", text.trim()).into());
        }
        Outcome::parse(&text).ok_or_else(|| format!("no RESULT line in {text:?}").into())
    }
}

/// One pipeline measurement.
#[derive(Debug, Clone)]
struct PipelineRun {
    client: &'static str,
    variant: String,
    run: usize,
    counted: Counted,
    outcome: Outcome,
    broker_cpu: f64,
    /// From the child's spawn to the last output record.
    total_s: f64,
    problems: Vec<String>,
}

impl PipelineRun {
    /// Seconds from the child's first input record to the last output record counted.
    fn steady_s(&self) -> f64 {
        self.counted
            .last_output_us
            .saturating_sub(self.outcome.first_input_us) as f64
            / 1e6
    }

    fn rate(&self) -> f64 {
        self.counted.records as f64 / self.steady_s().max(1e-9)
    }
}

/// One ask measurement.
#[derive(Debug, Clone)]
struct AskRun {
    client: &'static str,
    run: usize,
    outcome: Outcome,
}

fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

/// `0.123×`, or for small ratios `0.00021× (1/4800)`.
fn ratio(x: f64) -> String {
    if x >= 0.01 {
        format!("{x:.3}×")
    } else {
        format!("{x:.5}× (1/{:.0})", 1.0 / x)
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let o = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("agent_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some(role) = o.role.clone() {
        match run_child(&role, &o) {
            Ok(outcome) => {
                println!("{}", outcome.line());
                let _ = std::io::stdout().flush();
                // Do not wait for librdkafka's or tokio's background threads.
                std::process::exit(0);
            }
            Err(e) => {
                println!("ERROR {e}");
                eprintln!("agent_bench {role}: {e}");
                std::process::exit(1);
            }
        }
    }
    if let Err(e) = parent(o) {
        eprintln!("agent_bench: {e}");
        std::process::exit(1);
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn parent(mut o: Options) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut tansu = None;
    o.broker = match std::env::var("MEPHISTO_BROKER")
        .ok()
        .filter(|b| !b.trim().is_empty())
    {
        Some(url) => url,
        None => {
            let t = Tansu::start(&rt, "agent-bench")?;
            let url = t.url.clone();
            tansu = Some(t);
            url
        }
    };
    let tansu_pid = tansu.as_ref().map(Tansu::pid);
    let broker_cpu = move || {
        tansu_pid
            .and_then(proc_stats::cpu_seconds)
            .unwrap_or(f64::NAN)
    };
    let tag = format!("{:x}", now_micros() & 0xff_ffff);
    eprintln!(
        "agent_bench: broker {}, {} records, {} partitions, load average {}",
        o.broker,
        o.records,
        o.partitions,
        load_average()
    );
    let mut pipeline = Vec::new();
    if !o.skip_pipeline {
        o.input = format!("agent-bench-in-{tag}");
        rt.block_on(create_topic(&o.broker, &o.input, o.partitions))?;
        let t = Instant::now();
        rt.block_on(prefill(&o.broker, &o.input, o.records, o.partitions))?;
        eprintln!(
            "prefilled {} in {:.2} s",
            o.input,
            t.elapsed().as_secs_f64()
        );
        let n = o.records as i128;
        let expected_sum = n * (n - 1);
        for run in 0..o.runs {
            for variant in o.variants.clone() {
                let clients: [&'static str; 2] = if run % 2 == 0 {
                    ["mephisto", "rdkafka"]
                } else {
                    ["rdkafka", "mephisto"]
                };
                for client in clients {
                    let name = format!("{client}-{variant}-{run}-{tag}");
                    let output = format!("agent-bench-out-{name}");
                    rt.block_on(create_topic(&o.broker, &output, o.partitions))?;
                    let role = format!("{client}-pipeline");
                    let cpu_before = broker_cpu();
                    let spawned = now_micros();
                    let child = spawn_child(o.child_args(
                        &role,
                        &variant,
                        &output,
                        &format!("agent-bench-{name}"),
                    ))?;
                    let counted = rt.block_on(count_output(
                        &o.broker,
                        &output,
                        o.partitions,
                        variant == "noop",
                        o.records,
                        Duration::from_secs(o.max_seconds),
                        Instant::now() + o.timeout,
                    ));
                    let outcome = child.finish(Duration::from_secs(30));
                    let counted = counted?;
                    let outcome = outcome?;
                    let mut problems = Vec::new();
                    if counted.records < o.records {
                        problems.push(format!(
                            "partial: {} of {} records in the time limit",
                            counted.records, o.records
                        ));
                    } else if counted.records > o.records {
                        problems.push(format!("{} duplicates", counted.records - o.records));
                    } else if counted.sum != expected_sum {
                        problems.push(format!(
                            "sum of outputs {} expected {expected_sum}",
                            counted.sum
                        ));
                    }
                    let r = PipelineRun {
                        client,
                        variant: variant.clone(),
                        run,
                        total_s: counted.last_output_us.saturating_sub(spawned) as f64 / 1e6,
                        counted,
                        outcome,
                        broker_cpu: broker_cpu() - cpu_before,
                        problems,
                    };
                    eprintln!(
                        "run {} {:<8} {:<4}: {:>9.0} events/s, {} records, steady {:.2} s, \
                         total {:.2} s, client CPU {:.2} s, broker CPU {:.2} s, peak RSS {:.1} \
                         MiB {}",
                        r.run,
                        r.client,
                        r.variant,
                        r.rate(),
                        r.counted.records,
                        r.steady_s(),
                        r.total_s,
                        r.outcome.cpu_seconds,
                        r.broker_cpu,
                        mib(r.outcome.peak_rss_kib),
                        r.problems.join("; ")
                    );
                    pipeline.push(r);
                }
            }
        }
    }
    let mut asks = Vec::new();
    if !o.skip_ask {
        for run in 0..o.runs {
            let clients: [&'static str; 2] = if run % 2 == 0 {
                ["mephisto", "rdkafka"]
            } else {
                ["rdkafka", "mephisto"]
            };
            for client in clients {
                let name = format!("{client}-ask-{run}-{tag}");
                let mut args = o.clone();
                args.input = format!("agent-bench-{name}-requests");
                rt.block_on(create_topic(&o.broker, &args.input, o.partitions))?;
                let reply = format!("agent-bench-{name}-replies");
                if client == "rdkafka" {
                    rt.block_on(create_topic(&o.broker, &reply, 1))?;
                }
                let child = spawn_child(args.child_args(
                    &format!("{client}-ask"),
                    "add",
                    &reply,
                    &format!("agent-bench-{name}"),
                ))?;
                let outcome = child.finish(o.timeout)?;
                let mut sorted = outcome.latencies_us.clone();
                sorted.sort_unstable();
                eprintln!(
                    "run {run} {client:<8} ask: first ask after {:.2} s, p50 {} µs, p99 {} µs, \
                     max {} µs, peak RSS {:.1} MiB",
                    outcome.first_ask_s,
                    percentile(&sorted, 0.5).unwrap_or(0),
                    percentile(&sorted, 0.99).unwrap_or(0),
                    sorted.last().copied().unwrap_or(0),
                    mib(outcome.peak_rss_kib)
                );
                asks.push(AskRun {
                    client,
                    run,
                    outcome,
                });
            }
        }
    }
    print_tables(&o, &pipeline, &asks);
    drop(tansu);
    Ok(())
}

fn print_tables(o: &Options, pipeline: &[PipelineRun], asks: &[AskRun]) {
    println!(
        "\nagent pipeline: {} records, {} partitions, Mephisto concurrency {}, load average {}",
        o.records,
        o.partitions,
        o.concurrency,
        load_average()
    );
    if !pipeline.is_empty() {
        println!(
            "| run | variant | client | events/s | records | steady s | total s | client CPU s \
             | broker CPU s | peak RSS MiB | rate vs rdkafka | RSS vs rdkafka | notes |"
        );
        println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for r in pipeline {
            let peer = pipeline
                .iter()
                .find(|p| p.client == "rdkafka" && p.run == r.run && p.variant == r.variant);
            let (rate_ratio, rss_ratio) = match (r.client, peer) {
                ("mephisto", Some(p)) => (
                    ratio(r.rate() / p.rate()),
                    format!(
                        "{:.2}",
                        r.outcome.peak_rss_kib as f64 / p.outcome.peak_rss_kib.max(1) as f64
                    ),
                ),
                _ => (String::new(), String::new()),
            };
            println!(
                "| {} | {} | {} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} |",
                r.run,
                r.variant,
                r.client,
                r.rate(),
                r.counted.records,
                r.steady_s(),
                r.total_s,
                r.outcome.cpu_seconds,
                r.broker_cpu,
                mib(r.outcome.peak_rss_kib),
                rate_ratio,
                rss_ratio,
                r.problems.join("; ")
            );
        }
    }
    if !asks.is_empty() {
        println!(
            "\n| run | client | asks | p50 ms | p99 ms | max ms | first ask s | peak RSS MiB |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|");
        for a in asks {
            let mut sorted = a.outcome.latencies_us.clone();
            sorted.sort_unstable();
            let ms = |v: Option<u64>| v.map_or(f64::NAN, |v| v as f64 / 1000.0);
            println!(
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
                a.run,
                a.client,
                sorted.len(),
                ms(percentile(&sorted, 0.5)),
                ms(percentile(&sorted, 0.99)),
                ms(sorted.last().copied()),
                a.outcome.first_ask_s,
                mib(a.outcome.peak_rss_kib)
            );
        }
    }
}
