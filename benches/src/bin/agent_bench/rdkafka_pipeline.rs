//! Role `rdkafka-pipeline`: the pipeline by hand with librdkafka — a `BaseConsumer` in a group
//! of its own (`subscribe`), the value passed through (`noop`) or decoded with `serde_json` and
//! `a + b` written as a JSON number (`add`), a `BaseProducer` (linger 5 ms, acks=all,
//! idempotence on). An input offset is stored once the output record derived from it is
//! acknowledged (the agent's contract: an event is acked when its outputs are written), and
//! auto-committed every 2.8 s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use mephisto_benches::tansu::BoxError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _, ProducerContext};
use rdkafka::ClientContext;

use crate::child::{cpu_now, now_micros, stop_flag, Outcome};
use crate::mephisto_pipeline::Add;
use crate::options::Options;
use crate::rdkafka_config;

/// The producer's context: collects the input coordinates whose output is delivered.
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

/// Consumes, transforms and produces until the parent says stop.
pub fn run(o: &Options) -> Result<Outcome, BoxError> {
    let stop = stop_flag();
    let consumer: BaseConsumer = rdkafka_config::group_consumer(o, &o.group).create()?;
    let producer: BaseProducer<Delivered> =
        rdkafka_config::producer(o).create_with_context(Delivered::default())?;
    consumer.subscribe(&[o.input.as_str()])?;
    let noop = o.variant == "noop";
    let mut first_input_us = 0u64;
    let mut cpu_at_first_input_s = 0.0;
    let mut processed = 0u64;
    let mut stored: HashMap<i32, i64> = HashMap::new();
    let mut drained = Vec::new();
    let mut out = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let polled = consumer.poll(Duration::from_millis(20));
        let idle = polled.is_none();
        if let Some(message) = polled {
            let message = message?;
            if processed == 0 {
                first_input_us = now_micros();
                cpu_at_first_input_s = cpu_now();
            }
            processed += 1;
            let payload = message.payload().unwrap_or_default();
            let value = if noop {
                payload
            } else {
                let value: Add = serde_json::from_slice(payload)?;
                out.clear();
                serde_json::to_writer(&mut out, &(value.a + value.b))?;
                &out[..]
            };
            let source = Box::new((message.partition(), message.offset()));
            let mut record = BaseRecord::with_opaque_to(&o.output, source).payload(value);
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
        if idle || processed.is_multiple_of(256) {
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
        cpu_at_first_input_s,
        processed,
        ..Outcome::default()
    }
    .with_process_stats())
}
