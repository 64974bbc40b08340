//! Role `rdkafka-ask`: the ask round trip by hand — an echo thread (group consumer on the
//! request topic, computes `a + b`, produces Faust's `ReqRepResponse` to the topic named by the
//! `Faust-Ag-ReplyTo` header) and a requester (producer with the reply headers, a consumer
//! assigned to its one-partition reply topic).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mephisto_benches::tansu::BoxError;
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::child::Outcome;
use crate::mephisto_ask::ask_loop_done;
use crate::mephisto_pipeline::Add;
use crate::options::Options;
use crate::rdkafka_config;

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
    let mut config = rdkafka_config::group_consumer(&o, &format!("{}-worker", o.group));
    if let Some(ms) = o.fetch_wait_ms {
        config.set("fetch.wait.max.ms", ms.to_string());
    }
    let consumer: BaseConsumer = config.create()?;
    let producer: BaseProducer = rdkafka_config::producer(&o).create()?;
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

pub fn run(o: &Options) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (o, stop) = (o.clone(), stop.clone());
        std::thread::spawn(move || rdkafka_echo(o, stop))
    };
    // The requester: a producer and a consumer of its own reply topic (created by the parent,
    // one partition), like Mephisto's reply reader (200 ms max wait, from the start).
    let reply_topic = o.output.clone();
    let producer: BaseProducer = rdkafka_config::producer(o).create()?;
    let mut config = RdConfig::new();
    config
        .set("bootstrap.servers", rdkafka_config::bootstrap(o))
        .set("client.id", "rdkafka-agent-bench")
        .set("group.id", format!("{}-client", o.group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set(
            "fetch.wait.max.ms",
            o.fetch_wait_ms.unwrap_or(500).to_string(),
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
        ..Outcome::default()
    }
    .with_process_stats();
    stop.store(true, Ordering::SeqCst);
    echo.join().map_err(|_| "echo thread panicked")??;
    Ok(outcome)
}
