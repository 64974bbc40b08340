//! The whole producer (accumulator, sender, sequences) on an in-memory broker that implements
//! the idempotence rules of a Kafka partition leader and can be told to fail, lose answers,
//! move leaders or stall. No sockets: the integration tests against tansu are in
//! `engine/tests/producer.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use mephisto_wire::record::{DecodeOptions, RecordBatch};
use tokio::sync::Semaphore;

use super::transport::{BoxFuture, InFlight, InitError, TopicRoute, Transport};
use super::*;
use crate::producer::sequence::increment_sequence;

/// One record as the fake broker stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    offset: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
    producer_id: i64,
    sequence: i32,
    compression: Compression,
}

/// What the next Produce call does instead of (or besides) its normal work.
#[derive(Debug, Clone)]
enum Fault {
    /// Answer every partition of the request with this code, writing nothing.
    Code(i16),
    /// Write the batches, then fail the call as a timed-out request (a lost answer).
    LoseAnswer,
    /// Forget every producer's state first (as after retention deleted its records).
    ForgetProducers,
}

#[derive(Debug)]
struct ProducerEntry {
    epoch: i16,
    /// Next expected sequence.
    next: i32,
    /// (base sequence, base offset) of the last 5 batches.
    recent: VecDeque<(i32, i64)>,
}

#[derive(Debug, Default)]
struct FakeState {
    /// Leaders as the metadata says; `true_leaders` is who really leads.
    leaders: HashMap<String, Vec<Option<i32>>>,
    true_leaders: HashMap<String, Vec<Option<i32>>>,
    logs: HashMap<(String, i32), Vec<Stored>>,
    producers: HashMap<(String, i32, i64), ProducerEntry>,
    next_pid: i64,
    init_unavailable: bool,
    faults: VecDeque<Fault>,
    /// Codes answered for every request while set.
    always: Option<i16>,
    requests: Vec<ProduceRequest>,
    refreshes: usize,
    acks_seen: Vec<i16>,
}

/// An in-memory broker cluster; see the module docs.
#[derive(Debug, Clone, Default)]
struct Fake {
    state: Arc<Mutex<FakeState>>,
    /// Produce calls wait for a permit while this holds none (a stalled broker).
    gate: Option<Arc<Semaphore>>,
}

impl Fake {
    fn new(topics: &[(&str, i32)]) -> Self {
        let fake = Fake::default();
        {
            let mut s = fake.lock();
            for &(topic, partitions) in topics {
                let leaders: Vec<Option<i32>> = (0..partitions).map(|p| Some(p % 2)).collect();
                s.leaders.insert(topic.into(), leaders.clone());
                s.true_leaders.insert(topic.into(), leaders);
            }
            s.next_pid = 1000;
        }
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    fn log(&self, topic: &str, partition: i32) -> Vec<Stored> {
        self.lock()
            .logs
            .get(&(topic.to_owned(), partition))
            .cloned()
            .unwrap_or_default()
    }

    /// Appends one partition's batch, applying the idempotence rules; returns (code, offset).
    fn append(s: &mut FakeState, topic: &str, partition: i32, records: &Bytes) -> (i16, i64) {
        let batch = match RecordBatch::parse(records.clone(), &DecodeOptions::default()) {
            Ok(b) => b,
            Err(_) => return (2, -1), // CORRUPT_MESSAGE
        };
        if batch.crc() != batch.compute_crc() {
            return (2, -1);
        }
        let header = *batch.header();
        let key = (topic.to_owned(), partition, header.producer_id);
        if header.producer_id >= 0 {
            match s.producers.get(&key) {
                Some(entry) if entry.epoch == header.producer_epoch => {
                    if let Some(&(_, offset)) = entry
                        .recent
                        .iter()
                        .find(|(seq, _)| *seq == header.base_sequence)
                    {
                        // A retry of a batch we have: Kafka answers with the original offset.
                        return (0, offset);
                    }
                    if header.base_sequence != entry.next {
                        return (45, -1);
                    }
                }
                Some(_) => return (47, -1),
                None if header.base_sequence != 0 => return (59, -1),
                None => {}
            }
        }
        let log = s.logs.entry((topic.to_owned(), partition)).or_default();
        let base_offset = log.len() as i64;
        let compression = batch.compression();
        let Ok(recs) = batch.records() else {
            return (2, -1);
        };
        let mut count = 0;
        for r in recs.iter() {
            let Ok(r) = r else { return (2, -1) };
            log.push(Stored {
                offset: base_offset + count,
                key: r.key_bytes(),
                value: r.value_bytes(),
                headers: r
                    .headers()
                    .map(|h| {
                        (
                            String::from_utf8_lossy(h.key()).into_owned(),
                            h.value_bytes(),
                        )
                    })
                    .collect(),
                producer_id: header.producer_id,
                sequence: if header.base_sequence < 0 {
                    -1
                } else {
                    increment_sequence(header.base_sequence, count as i32)
                },
                compression,
            });
            count += 1;
        }
        if header.producer_id >= 0 {
            let entry = s.producers.entry(key).or_insert(ProducerEntry {
                epoch: header.producer_epoch,
                next: 0,
                recent: VecDeque::new(),
            });
            entry.next = increment_sequence(header.base_sequence, count as i32);
            entry.recent.push_back((header.base_sequence, base_offset));
            if entry.recent.len() > 5 {
                entry.recent.pop_front();
            }
        }
        (0, base_offset)
    }

    fn handle(&self, broker: i32, request: ProduceRequest) -> Result<ProduceResponse, EngineError> {
        let mut s = self.lock();
        s.acks_seen.push(request.acks);
        s.requests.push(request.clone());
        let fault = s.faults.pop_front();
        if matches!(fault, Some(Fault::ForgetProducers)) {
            s.producers.clear();
        }
        let mut responses = Vec::new();
        for topic in &request.topic_data {
            let name = topic.name.0.as_str().to_owned();
            let mut partitions = Vec::new();
            for p in &topic.partition_data {
                let leads = s
                    .true_leaders
                    .get(&name)
                    .and_then(|l| l.get(p.index as usize))
                    .copied()
                    .flatten()
                    == Some(broker);
                let (code, offset) = if let Some(code) = s.always {
                    (code, -1)
                } else if let Some(Fault::Code(code)) = fault {
                    (code, -1)
                } else if !leads {
                    (6, -1)
                } else {
                    let records = p.records.clone().unwrap_or_default();
                    Self::append(&mut s, &name, p.index, &records)
                };
                partitions.push(
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code)
                        .with_base_offset(offset)
                        .with_log_append_time_ms(-1),
                );
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(partitions),
            );
        }
        if matches!(fault, Some(Fault::LoseAnswer)) {
            return Err(EngineError::RequestTimeout {
                broker: format!("fake-{broker}"),
                api: kafka_protocol::messages::ApiKey::Produce,
                timeout: Duration::from_millis(1),
            });
        }
        Ok(ProduceResponse::default().with_responses(responses))
    }
}

impl Transport for Fake {
    fn route(&self, topic: &str) -> Option<Arc<TopicRoute>> {
        self.lock()
            .leaders
            .get(topic)
            .map(|leaders| Arc::new(TopicRoute::new(leaders.clone())))
    }

    fn refresh(&self, _topics: Vec<Arc<str>>) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.refreshes += 1;
            s.leaders = s.true_leaders.clone();
            Ok(())
        })
    }

    fn start_produce(
        &self,
        broker: i32,
        request: ProduceRequest,
    ) -> BoxFuture<'_, Result<InFlight, EngineError>> {
        let fake = self.clone();
        Box::pin(async move {
            // The gate is a fair semaphore: requests pass it in the order of their first poll,
            // as a connection's queue would.
            let in_flight: InFlight = Box::pin(async move {
                if let Some(gate) = &fake.gate {
                    let _permit = gate.acquire().await;
                }
                let acks = request.acks;
                let response = fake.handle(broker, request)?;
                Ok((acks != 0).then_some(response))
            });
            Ok(in_flight)
        })
    }

    fn init_producer_id(&self) -> BoxFuture<'_, Result<ProducerIdentity, InitError>> {
        Box::pin(async move {
            let mut s = self.lock();
            if s.init_unavailable {
                return Err(InitError::Unavailable(EngineError::Versions {
                    broker: "fake".into(),
                    source: mephisto_wire::versions::VersionError::NotAvailable {
                        api: kafka_protocol::messages::ApiKey::InitProducerId,
                    },
                }));
            }
            s.next_pid += 1;
            Ok(ProducerIdentity {
                producer_id: s.next_pid,
                epoch: 0,
            })
        })
    }
}

fn producer(fake: &Fake, config: ProducerConfig) -> Producer {
    match Producer::with_transport(Arc::new(fake.clone()), config) {
        Ok(p) => p,
        Err(e) => panic!("producer: {e}"),
    }
}

fn fast() -> ProducerConfig {
    ProducerConfig {
        linger: Duration::from_millis(2),
        retry_backoff: Duration::from_millis(5),
        retry_backoff_max: Duration::from_millis(20),
        ..ProducerConfig::default()
    }
}

async fn ok(producer: &Producer, record: ProducerRecord) -> RecordMetadata {
    match producer.send(record).await {
        Ok(m) => m,
        Err(e) => panic!("send failed: {e}"),
    }
}

#[tokio::test]
async fn keyed_records_land_by_murmur2_with_offsets_in_order() {
    let fake = Fake::new(&[("t", 6)]);
    let p = producer(&fake, fast());
    let mut queued = Vec::new();
    for i in 0..60 {
        let key = format!("key-{}", i % 12);
        let record = ProducerRecord::new("t")
            .key(key.clone())
            .value(format!("v{i}"))
            .header("i", Some(Bytes::from(i.to_string())));
        match p.enqueue(record).await {
            Ok(d) => queued.push((key, i, d)),
            Err(e) => panic!("{e}"),
        }
    }
    let mut next: HashMap<i32, i64> = HashMap::new();
    for (key, i, delivery) in queued {
        let meta = match delivery.await {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            Some(meta.partition),
            partitioner::partition_for_key(key.as_bytes(), 6)
        );
        let expected = next.entry(meta.partition).or_insert(0);
        assert_eq!(
            meta.offset, *expected,
            "record {i}: offsets follow send order"
        );
        *expected += 1;
        let stored = fake.log("t", meta.partition);
        let Some(s) = stored.get(meta.offset as usize) else {
            panic!("offset {} not stored", meta.offset)
        };
        assert_eq!(s.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(s.value.as_deref(), Some(format!("v{i}").as_bytes()));
        assert_eq!(
            s.headers,
            vec![("i".into(), Some(Bytes::from(i.to_string())))]
        );
    }
    p.close().await;
}

#[tokio::test]
async fn idempotent_batches_carry_the_producer_id_and_increasing_sequences() {
    let fake = Fake::new(&[("t", 2)]);
    let p = producer(&fake, fast());
    for i in 0..20 {
        ok(
            &p,
            ProducerRecord::new("t").partition(1).value(format!("{i}")),
        )
        .await;
    }
    let stats = p.stats();
    let Some(identity) = stats.identity else {
        panic!("no producer id: {stats:?}")
    };
    assert_eq!(identity.producer_id, 1001);
    let log = fake.log("t", 1);
    assert_eq!(log.len(), 20);
    for (i, s) in log.iter().enumerate() {
        assert_eq!(s.producer_id, 1001);
        assert_eq!(s.sequence, i as i32, "sequences increase by record");
    }
    p.close().await;
}

#[tokio::test]
async fn a_lost_answer_is_retried_without_duplicates() {
    let fake = Fake::new(&[("t", 1)]);
    fake.fault(Fault::LoseAnswer);
    let p = producer(&fake, fast());
    let deliveries: Vec<Delivery> = {
        let mut v = Vec::new();
        for i in 0..5 {
            match p
                .enqueue(ProducerRecord::new("t").value(format!("{i}")))
                .await
            {
                Ok(d) => v.push(d),
                Err(e) => panic!("{e}"),
            }
        }
        v
    };
    for (i, d) in deliveries.into_iter().enumerate() {
        let meta = d.await;
        assert!(matches!(&meta, Ok(m) if m.offset == i as i64), "{meta:?}");
    }
    assert_eq!(fake.log("t", 0).len(), 5, "the retry was deduplicated");
    assert!(p.stats().retries >= 1);
    assert!(fake.lock().requests.len() >= 2);
    p.close().await;
}

#[tokio::test]
async fn without_idempotence_a_lost_answer_duplicates() {
    // The counterpart of the test above: proves the fault really makes the broker write twice
    // when batches carry no producer id.
    let fake = Fake::new(&[("t", 1)]);
    fake.fault(Fault::LoseAnswer);
    let p = producer(
        &fake,
        ProducerConfig {
            idempotence: Some(false),
            ..fast()
        },
    );
    let meta = ok(&p, ProducerRecord::new("t").value("x")).await;
    assert_eq!(
        meta.offset, 1,
        "written twice, the second copy acknowledged"
    );
    let log = fake.log("t", 0);
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|s| s.producer_id == -1));
    p.close().await;
}

#[tokio::test]
async fn not_leader_refreshes_metadata_and_retries() {
    let fake = Fake::new(&[("t", 2)]);
    // The metadata says broker 0 leads partition 0, but broker 1 does.
    fake.lock()
        .true_leaders
        .insert("t".into(), vec![Some(1), Some(1)]);
    let p = producer(&fake, fast());
    let meta = ok(&p, ProducerRecord::new("t").partition(0).value("x")).await;
    assert_eq!((meta.partition, meta.offset), (0, 0));
    assert!(fake.lock().refreshes >= 1);
    assert!(p.stats().retries >= 1);
    assert_eq!(fake.log("t", 0).len(), 1);
    p.close().await;
}

#[tokio::test]
async fn retriable_errors_are_retried_then_succeed() {
    let fake = Fake::new(&[("t", 1)]);
    for _ in 0..3 {
        fake.fault(Fault::Code(7)); // REQUEST_TIMED_OUT
    }
    let p = producer(&fake, fast());
    let meta = ok(&p, ProducerRecord::new("t").value("x")).await;
    assert_eq!(meta.offset, 0);
    assert_eq!(p.stats().retries, 3);
    p.close().await;
}

#[tokio::test]
async fn fatal_errors_fail_the_records() {
    let fake = Fake::new(&[("t", 1)]);
    fake.fault(Fault::Code(87)); // INVALID_RECORD
    let p = producer(&fake, fast());
    let result = p.send(ProducerRecord::new("t").value("x")).await;
    match result {
        Err(ProduceError::Broker {
            error, partition, ..
        }) => {
            assert_eq!((error.code(), partition), (87, 0));
        }
        other => panic!("{other:?}"),
    }
    // The failed batch's sequence forces a new identity; the next record goes through.
    let meta = ok(&p, ProducerRecord::new("t").value("y")).await;
    assert_eq!(meta.offset, 0);
    assert_eq!(p.stats().identities, 2);
    p.close().await;
}

#[tokio::test]
async fn retries_stop_at_the_delivery_timeout() {
    let fake = Fake::new(&[("t", 1)]);
    fake.lock().always = Some(19); // NOT_ENOUGH_REPLICAS, forever
    let p = producer(
        &fake,
        ProducerConfig {
            delivery_timeout: Duration::from_millis(150),
            ..fast()
        },
    );
    let started = std::time::Instant::now();
    let result = p.send(ProducerRecord::new("t").value("x")).await;
    assert!(
        matches!(result, Err(ProduceError::DeliveryTimeout { .. })),
        "{result:?}"
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    fake.lock().always = None;
    p.close().await;
}

#[tokio::test]
async fn retries_stop_at_the_retry_limit() {
    let fake = Fake::new(&[("t", 1)]);
    fake.lock().always = Some(19);
    let p = producer(
        &fake,
        ProducerConfig {
            retries: 2,
            ..fast()
        },
    );
    let result = p.send(ProducerRecord::new("t").value("x")).await;
    assert!(
        matches!(&result, Err(ProduceError::Broker { error, .. }) if error.code() == 19),
        "{result:?}"
    );
    assert_eq!(fake.lock().requests.len(), 3, "one try and two retries");
    fake.lock().always = None;
    p.close().await;
}

#[tokio::test]
async fn acks_zero_resolves_with_offset_minus_one() {
    let fake = Fake::new(&[("t", 1)]);
    let p = producer(
        &fake,
        ProducerConfig {
            acks: Acks::None,
            ..fast()
        },
    );
    let meta = ok(&p, ProducerRecord::new("t").value("x")).await;
    assert_eq!(meta.offset, -1);
    assert_eq!(fake.lock().acks_seen, vec![0]);
    assert_eq!(fake.log("t", 0).len(), 1);
    assert_eq!(
        fake.log("t", 0)[0].producer_id,
        -1,
        "acks=0 is never idempotent"
    );
    p.close().await;
}

#[tokio::test]
async fn acks_one_and_all_are_sent_as_configured() {
    for (acks, wire) in [(Acks::Leader, 1), (Acks::All, -1)] {
        let fake = Fake::new(&[("t", 1)]);
        let p = producer(&fake, ProducerConfig { acks, ..fast() });
        ok(&p, ProducerRecord::new("t").value("x")).await;
        assert_eq!(fake.lock().acks_seen, vec![wire]);
        p.close().await;
    }
}

#[tokio::test]
async fn missing_producer_ids_fall_back_unless_required() {
    let fake = Fake::new(&[("t", 1)]);
    fake.lock().init_unavailable = true;
    let p = producer(&fake, fast());
    let meta = ok(&p, ProducerRecord::new("t").value("x")).await;
    assert_eq!(meta.offset, 0);
    assert_eq!(fake.log("t", 0)[0].producer_id, -1, "plain acks=all");
    assert_eq!(p.stats().identity, None);
    p.close().await;

    let required = producer(
        &fake,
        ProducerConfig {
            idempotence: Some(true),
            ..fast()
        },
    );
    let result = required.send(ProducerRecord::new("t").value("y")).await;
    assert!(
        matches!(result, Err(ProduceError::IdempotenceUnavailable { .. })),
        "{result:?}"
    );
    assert_eq!(
        fake.log("t", 0).len(),
        1,
        "nothing written without a producer id"
    );
    required.close().await;
}

#[tokio::test]
async fn unknown_producer_id_takes_a_new_identity_and_retries() {
    let fake = Fake::new(&[("t", 1)]);
    let p = producer(&fake, fast());
    ok(&p, ProducerRecord::new("t").value("a")).await;
    ok(&p, ProducerRecord::new("t").value("b")).await;
    // The broker forgets us; our next batch has sequence 2: UNKNOWN_PRODUCER_ID.
    fake.fault(Fault::ForgetProducers);
    let meta = ok(&p, ProducerRecord::new("t").value("c")).await;
    assert_eq!(meta.offset, 2);
    let stats = p.stats();
    assert_eq!(stats.identities, 2);
    let log = fake.log("t", 0);
    assert_eq!(log.len(), 3);
    assert_eq!((log[2].producer_id, log[2].sequence), (1002, 0));
    p.close().await;
}

#[tokio::test]
async fn retries_keep_order_with_many_batches_in_flight() {
    let fake = Fake::new(&[("t", 1)]);
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake {
        gate: Some(Arc::clone(&gate)),
        ..fake
    };
    // The first request fails retriably; requests 2.. are already in flight behind it and
    // are answered OUT_OF_ORDER_SEQUENCE_NUMBER by the broker, then retried in order.
    fake.fault(Fault::Code(7));
    let p = producer(
        &fake,
        ProducerConfig {
            batch_size: 200, // about one 100-byte record per batch
            ..fast()
        },
    );
    let mut deliveries = Vec::new();
    for i in 0..20u8 {
        match p
            .enqueue(ProducerRecord::new("t").value(vec![i; 100]))
            .await
        {
            Ok(d) => deliveries.push(d),
            Err(e) => panic!("{e}"),
        }
    }
    // Let five requests pile up, then open the gate.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        p.stats().requests,
        5,
        "max_in_flight requests wait on the broker"
    );
    gate.add_permits(1_000);
    for (i, d) in deliveries.into_iter().enumerate() {
        let meta = d.await;
        assert!(
            matches!(&meta, Ok(m) if m.offset == i as i64),
            "{i}: {meta:?}"
        );
    }
    let log = fake.log("t", 0);
    assert_eq!(log.len(), 20);
    for (i, s) in log.iter().enumerate() {
        assert_eq!(
            s.value.as_deref(),
            Some(&[i as u8; 100][..]),
            "record {i} in order"
        );
    }
    p.close().await;
}

#[tokio::test]
async fn every_codec_is_sent_and_readable() {
    for codec in Compression::ALL {
        let fake = Fake::new(&[("t", 1)]);
        let p = producer(
            &fake,
            ProducerConfig {
                compression: codec,
                ..fast()
            },
        );
        let mut deliveries = Vec::new();
        for i in 0..50 {
            match p
                .enqueue(
                    ProducerRecord::new("t")
                        .key(format!("k{i}"))
                        .value(format!("value {i} ").repeat(10)),
                )
                .await
            {
                Ok(d) => deliveries.push(d),
                Err(e) => panic!("{e}"),
            }
        }
        for d in deliveries {
            assert!(d.await.is_ok());
        }
        let log = fake.log("t", 0);
        assert_eq!(log.len(), 50, "{codec:?}");
        assert!(log.iter().all(|s| s.compression == codec), "{codec:?}");
        assert_eq!(
            log[49].value.as_deref(),
            Some("value 49 ".repeat(10).as_bytes())
        );
        p.close().await;
    }
}

#[tokio::test]
async fn a_stalled_broker_blocks_send_within_the_memory_bound() {
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake {
        gate: Some(Arc::clone(&gate)),
        ..Fake::new(&[("t", 1)])
    };
    let buffer = 16 * 1024;
    let p = producer(
        &fake,
        ProducerConfig {
            buffer_memory: buffer,
            batch_size: 2048,
            ..fast()
        },
    );
    // Queue from a task until it blocks.
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let task = {
        let p = p.clone();
        let queued = Arc::clone(&queued);
        tokio::spawn(async move {
            let mut deliveries = Vec::new();
            for i in 0..400u32 {
                match p
                    .enqueue(ProducerRecord::new("t").value(vec![1u8; 200]))
                    .await
                {
                    Ok(d) => deliveries.push(d),
                    Err(e) => panic!("record {i}: {e}"),
                }
                queued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            deliveries
        })
    };
    let mut lowest = usize::MAX;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        lowest = lowest.min(p.available_memory());
        assert!(p.available_memory() <= buffer);
    }
    let stuck_at = queued.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        stuck_at > 0 && stuck_at < 400,
        "send blocks: {stuck_at} queued"
    );
    assert!(lowest < 300, "the buffer was used up: {lowest} bytes left");
    assert!(!task.is_finished());
    // The broker comes back: everything goes through.
    gate.add_permits(10_000);
    let deliveries = match tokio::time::timeout(Duration::from_secs(10), task).await {
        Ok(Ok(d)) => d,
        other => panic!("{other:?}"),
    };
    for d in deliveries {
        assert!(d.await.is_ok());
    }
    assert_eq!(fake.log("t", 0).len(), 400);
    assert_eq!(p.available_memory(), buffer, "all memory is returned");
    p.close().await;
}

#[tokio::test]
async fn flush_close_and_errors_before_queueing() {
    let fake = Fake::new(&[("t", 3)]);
    let p = producer(
        &fake,
        ProducerConfig {
            linger: Duration::from_secs(3600),
            max_block: Duration::from_millis(100),
            ..fast()
        },
    );
    let d = match p.enqueue(ProducerRecord::new("t").value("x")).await {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    // Lingering for an hour, but flush sends it now.
    tokio::time::timeout(Duration::from_secs(5), p.flush())
        .await
        .unwrap_or_else(|_| panic!("flush hung"));
    assert!(d.await.is_ok());

    let bad = p
        .send(ProducerRecord::new("t").partition(3).value("x"))
        .await;
    assert!(
        matches!(
            bad,
            Err(ProduceError::InvalidPartition { partitions: 3, .. })
        ),
        "{bad:?}"
    );
    let unknown = p.send(ProducerRecord::new("nope").value("x")).await;
    assert!(
        matches!(unknown, Err(ProduceError::MetadataTimeout { .. })),
        "{unknown:?}"
    );
    let huge = p
        .send(ProducerRecord::new("t").value(vec![0u8; 2 * 1024 * 1024]))
        .await;
    assert!(
        matches!(huge, Err(ProduceError::RecordTooLarge { .. })),
        "{huge:?}"
    );

    let pending = match p.enqueue(ProducerRecord::new("t").value("y")).await {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    tokio::time::timeout(Duration::from_secs(5), p.close())
        .await
        .unwrap_or_else(|_| panic!("close hung"));
    assert!(pending.await.is_ok(), "close sends what was queued");
    let after = p.send(ProducerRecord::new("t").value("z")).await;
    assert!(matches!(after, Err(ProduceError::Closed)), "{after:?}");
}

/// What an application holds per pending record: the delivery handle only (the record itself
/// is encoded in its batch).
#[test]
fn a_delivery_is_small() {
    assert!(
        std::mem::size_of::<Delivery>() <= 40,
        "{}",
        std::mem::size_of::<Delivery>()
    );
}
