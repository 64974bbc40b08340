//! The sender task: drains ready batches from the accumulator into Produce requests (one per
//! leader broker, carrying at most one batch per partition), and handles the answers.
//!
//! # Loop
//! Each turn: get a producer identity if one is needed and nothing is in flight; look up the
//! leaders of the queued topics in the cached metadata; drain the ready batches whose leader is
//! known and whose broker has an in-flight slot (`max_in_flight` Produce requests per broker);
//! seal them (an idempotent batch gets its sequence here); send one request per broker on a
//! task of its own; then wait for a wakeup from the accumulator, a response, a metadata refresh
//! or the next linger/backoff/expiry deadline.
//!
//! # Answers
//! Per partition, the error code is sorted by [`classify`]:
//! - success (and `DUPLICATE_SEQUENCE_NUMBER`): the records resolve with their offsets;
//! - retriable (`NOT_LEADER_OR_FOLLOWER`, `REQUEST_TIMED_OUT`, `NOT_ENOUGH_REPLICAS`, ...; and
//!   transport failures: timeouts, dropped connections): the batch goes back to the front of
//!   its partition after an exponential backoff, with a metadata refresh first when leadership
//!   may have moved. While a partition has a retried batch it has at most one batch in flight,
//!   so the retries go out in order (and, when idempotent, in sequence order);
//! - anything else fails the batch's records with the broker's error.
//!
//! A batch fails for good after `retries` retries or once `delivery_timeout` has passed since
//! its first record; batches that time out while queued fail with
//! [`ProduceError::DeliveryTimeout`].
//!
//! # Idempotence
//! With idempotence on, the first batch waits for InitProducerId. If the cluster cannot give a
//! producer id (the API is missing, or the broker refuses it for good), the producer falls back
//! to plain `acks=all` with a `tracing::warn!` when idempotence was only the default, and fails
//! every record with [`ProduceError::IdempotenceUnavailable`] when it was requested explicitly.
//! A batch with a sequence that fails for good leaves a gap the broker would never accept, so
//! it (like `UNKNOWN_PRODUCER_ID` and a lost acknowledged batch) makes the producer take a new
//! identity: see [`sequence`](super::sequence).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    produce_request::{PartitionProduceData, TopicProduceData},
    produce_response::PartitionProduceResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use mephisto_wire::compression::Compression;
use tokio::sync::mpsc;

use crate::error::{EngineError, KafkaError};
use crate::producer::accumulator::Accumulator;
use crate::producer::batch::Batch;
use crate::producer::config::{Acks, IdempotenceMode, MAX_IN_FLIGHT_IDEMPOTENT};
use crate::producer::error::ProduceError;
use crate::producer::sequence::{
    classify, codes, restamp, Outcome, ProducerIdentity, SequenceTracker,
};
use crate::producer::topic_partition::TopicPartition;
use crate::producer::transport::{poll_once, InitError, TopicRoute, Transport};

/// The sender's share of the producer settings.
#[derive(Debug, Clone)]
pub(crate) struct SenderConfig {
    pub(crate) acks: Acks,
    pub(crate) compression: Compression,
    pub(crate) request_timeout: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
    pub(crate) max_in_flight: usize,
    /// Most bytes of batches in one Produce request (a single larger batch goes alone):
    /// `max_request_size`, and at most a quarter of `buffer_memory`.
    pub(crate) max_request_size: usize,
    pub(crate) idempotence: IdempotenceMode,
}

/// Where the producer identity stands.
#[derive(Debug, Clone)]
enum Identity {
    /// Not idempotent (turned off, or fell back).
    Disabled,
    /// Idempotent, and an identity is needed before anything is sent (at start, or after a
    /// reset); not asked again before `retry_at`.
    Needed { retry_at: Option<Instant> },
    /// Idempotent with the identity in the sequence tracker.
    Ready,
    /// Idempotence was required and is impossible: every batch fails with this.
    Failed(ProduceError),
}

/// A Produce request's outcome, back from its task.
struct Done {
    broker: i32,
    batches: Vec<Batch>,
    result: Result<Option<ProduceResponse>, EngineError>,
}

/// A Produce request for a broker's dispatcher.
struct Job {
    broker: i32,
    batches: Vec<Batch>,
    request: ProduceRequest,
}

/// Sends one broker's requests in the order they were drained: each is handed to the
/// connection (and its answer future polled once) before the next, so that a later batch of a
/// partition never reaches the broker before an earlier one. Answers are awaited on tasks of
/// their own, so requests stay pipelined.
async fn dispatcher(
    transport: Arc<dyn Transport>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    done: mpsc::UnboundedSender<Done>,
) {
    while let Some(Job {
        broker,
        batches,
        request,
    }) = jobs.recv().await
    {
        let done = done.clone();
        let report = move |result| {
            // The sender is gone only when the producer is: the batches then fail as closed.
            let _ = done.send(Done {
                broker,
                batches,
                result,
            });
        };
        match transport.start_produce(broker, request).await {
            Err(error) => report(Err(error)),
            Ok(mut in_flight) => match poll_once(&mut in_flight).await {
                Poll::Ready(result) => report(result),
                Poll::Pending => {
                    tokio::spawn(async move { report(in_flight.await) });
                }
            },
        }
    }
}

/// One partition's part of a Produce response.
struct Answer {
    code: i16,
    base_offset: i64,
    log_append_time: i64,
    message: Option<String>,
}

/// The error for a non-zero partition error code.
fn broker_error(tp: &TopicPartition, code: i16, message: Option<&str>) -> ProduceError {
    match KafkaError::with_message(code, message) {
        Some(error) => ProduceError::Broker {
            topic: Arc::clone(&tp.topic),
            partition: tp.partition,
            error,
        },
        None => ProduceError::Transport {
            topic: Arc::clone(&tp.topic),
            partition: tp.partition,
            error: EngineError::Protocol {
                broker: String::from("leader"),
                detail: format!("error code {code} for {tp} treated as a failure"),
            },
        },
    }
}

/// Counters shared with tests and the producer's diagnostics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SenderStats {
    /// Produce requests sent.
    pub(crate) requests: u64,
    /// Batches sent again after a retriable error.
    pub(crate) retries: u64,
    /// Producer identities obtained.
    pub(crate) identities: u64,
    /// The current identity, when idempotent.
    pub(crate) identity: Option<ProducerIdentity>,
}

/// The sender task's state; see the module docs.
pub(crate) struct Sender {
    transport: Arc<dyn Transport>,
    acc: Arc<Accumulator>,
    cfg: SenderConfig,
    seq: SequenceTracker,
    identity: Identity,
    broker_in_flight: HashMap<i32, usize>,
    partition_in_flight: HashMap<TopicPartition, usize>,
    /// Partitions with a retried batch, and the highest such batch id: one batch in flight
    /// until that batch is done.
    recovering: HashMap<TopicPartition, u64>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    /// One dispatcher task per broker, fed in drain order.
    dispatchers: HashMap<i32, mpsc::UnboundedSender<Job>>,
    refresh_tx: mpsc::UnboundedSender<()>,
    refresh_rx: mpsc::UnboundedReceiver<()>,
    refreshing: bool,
    want_refresh: bool,
    last_refresh: Option<Instant>,
    stats: Arc<std::sync::Mutex<SenderStats>>,
    rng: fastrand::Rng,
}

impl Sender {
    /// A sender for `acc` over `transport`.
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        acc: Arc<Accumulator>,
        cfg: SenderConfig,
        stats: Arc<std::sync::Mutex<SenderStats>>,
    ) -> Self {
        let identity = match cfg.idempotence {
            IdempotenceMode::Off => Identity::Disabled,
            IdempotenceMode::Preferred | IdempotenceMode::Required => {
                Identity::Needed { retry_at: None }
            }
        };
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (refresh_tx, refresh_rx) = mpsc::unbounded_channel();
        Sender {
            transport,
            acc,
            cfg,
            seq: SequenceTracker::new(),
            identity,
            broker_in_flight: HashMap::new(),
            partition_in_flight: HashMap::new(),
            recovering: HashMap::new(),
            done_tx,
            done_rx,
            dispatchers: HashMap::new(),
            refresh_tx,
            refresh_rx,
            refreshing: false,
            want_refresh: false,
            last_refresh: None,
            stats,
            rng: fastrand::Rng::new(),
        }
    }

    fn in_flight(&self) -> usize {
        self.broker_in_flight.values().sum()
    }

    /// Runs until the accumulator is closed and every batch is finished.
    pub(crate) async fn run(mut self) {
        loop {
            let now = Instant::now();
            let mut next_wakeup: Option<Instant> = None;
            let mut wake_at = |t: Instant| {
                next_wakeup = Some(next_wakeup.map_or(t, |n: Instant| n.min(t)));
            };

            if let Identity::Needed { retry_at } = self.identity {
                match retry_at {
                    Some(at) if at > now => wake_at(at),
                    _ if self.in_flight() == 0 && !self.acc.is_empty() => {
                        self.acquire_identity().await;
                        continue;
                    }
                    _ => {}
                }
            }

            let drained_wakeup = self.drain_and_send(now);
            if let Some(t) = drained_wakeup {
                wake_at(t);
            }

            if self.want_refresh && !self.refreshing {
                let earliest = self
                    .last_refresh
                    .map_or(now, |last| last + self.cfg.retry_backoff);
                if earliest <= now {
                    self.start_refresh(now);
                } else {
                    wake_at(earliest);
                }
            }

            if self.acc.is_closed() && self.acc.unfinished() == 0 && self.in_flight() == 0 {
                tracing::debug!("producer sender stopped");
                return;
            }
            if next_wakeup.is_none() {
                // Nothing queued or waiting: keep no idle batch buffers while idle.
                self.acc.release_idle_buffers();
            }

            let sleep = async {
                match next_wakeup {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = self.acc.wakeup().notified() => {}
                Some(done) = self.done_rx.recv() => {
                    self.handle_done(done, Instant::now());
                    // Take every other answer that is already there before draining again.
                    while let Ok(done) = self.done_rx.try_recv() {
                        self.handle_done(done, Instant::now());
                    }
                }
                Some(()) = self.refresh_rx.recv() => {
                    self.refreshing = false;
                }
                _ = sleep => {}
            }
        }
    }

    /// Asks for a producer id; on success restamps every queued batch that has a sequence.
    async fn acquire_identity(&mut self) {
        let result = self.transport.init_producer_id().await;
        let now = Instant::now();
        match result {
            Ok(identity) => {
                tracing::debug!(
                    producer_id = identity.producer_id,
                    epoch = identity.epoch,
                    "producer identity"
                );
                if let Ok(mut stats) = self.stats.lock() {
                    stats.identities += 1;
                    stats.identity = Some(identity);
                }
                self.seq.reset(Some(identity));
                self.restamp_queued(Some(identity));
                self.identity = Identity::Ready;
            }
            Err(InitError::Retriable(error)) => {
                let delay = self.backoff(1);
                tracing::debug!(%error, ?delay, "InitProducerId failed; retrying");
                if error.invalidates_metadata() {
                    self.want_refresh = true;
                }
                self.identity = Identity::Needed {
                    retry_at: Some(now + delay),
                };
            }
            Err(InitError::Unavailable(error)) => match self.cfg.idempotence {
                IdempotenceMode::Required => {
                    tracing::error!(%error, "idempotence required but unavailable");
                    self.identity = Identity::Failed(ProduceError::IdempotenceUnavailable {
                        reason: error.to_string(),
                    });
                }
                IdempotenceMode::Preferred | IdempotenceMode::Off => {
                    tracing::warn!(
                        %error,
                        "the cluster cannot give a producer id: producing without idempotence \
                         (acks=all)"
                    );
                    self.seq.reset(None);
                    self.restamp_queued(None);
                    if let Ok(mut stats) = self.stats.lock() {
                        stats.identity = None;
                    }
                    self.identity = Identity::Disabled;
                }
            },
        }
    }

    /// Gives every queued encoded batch the current identity and fresh sequences, in order.
    fn restamp_queued(&mut self, identity: Option<ProducerIdentity>) {
        let seq = &mut self.seq;
        self.acc.for_each_queued(|batch| {
            let Some(bytes) = batch.bytes() else {
                return;
            };
            let mut buf = BytesMut::from(&bytes[..]);
            let count = i32::try_from(batch.record_count()).unwrap_or(i32::MAX);
            let (stamp, base) = match identity {
                Some(id) => (id, seq.assign(&batch.tp, count)),
                None => (
                    ProducerIdentity {
                        producer_id: mephisto_wire::record::NO_PRODUCER_ID,
                        epoch: mephisto_wire::record::NO_PRODUCER_EPOCH,
                    },
                    None,
                ),
            };
            let wire_seq = base.unwrap_or(mephisto_wire::record::NO_SEQUENCE);
            if restamp(&mut buf, stamp, wire_seq) {
                batch.set_encoded(buf.freeze(), base);
            }
        });
    }

    /// Drains what can be sent now and sends it; returns the next deadline the drain reported.
    fn drain_and_send(&mut self, now: Instant) -> Option<Instant> {
        let routes: HashMap<Arc<str>, Option<Arc<TopicRoute>>> = self
            .acc
            .queued_topics()
            .into_iter()
            .map(|t| {
                let route = self.transport.route(&t);
                (t, route)
            })
            .collect();
        let identity_ready = matches!(self.identity, Identity::Ready | Identity::Disabled);
        let failing = matches!(self.identity, Identity::Failed(_));
        let idempotent = matches!(self.identity, Identity::Ready);
        let max_in_flight = if idempotent {
            self.cfg.max_in_flight.min(MAX_IN_FLIGHT_IDEMPOTENT)
        } else {
            self.cfg.max_in_flight
        };
        let mut planned: HashMap<i32, usize> = HashMap::new();
        let mut missing_leader = false;
        let broker_in_flight = &self.broker_in_flight;
        let partition_in_flight = &self.partition_in_flight;
        let recovering = &self.recovering;
        let seq = &self.seq;
        let max_request_size = self.cfg.max_request_size;
        let drained = self.acc.drain(now, |batch| {
            if failing {
                return true;
            }
            if !identity_ready {
                return false;
            }
            let Some(leader) = routes
                .get(&batch.tp.topic)
                .and_then(|r| r.as_ref())
                .and_then(|r| r.leader(batch.tp.partition))
            else {
                missing_leader = true;
                return false;
            };
            if broker_in_flight.get(&leader).copied().unwrap_or(0) >= max_in_flight {
                return false;
            }
            let in_flight = partition_in_flight.get(&batch.tp).copied().unwrap_or(0);
            if recovering.contains_key(&batch.tp) {
                if in_flight > 0 {
                    return false;
                }
                // A retried batch goes only when it is the oldest unacknowledged one.
                if let Some(base) = batch.base_sequence() {
                    if !seq.is_first_unacked(&batch.tp, base) {
                        return false;
                    }
                }
            }
            if idempotent && in_flight >= MAX_IN_FLIGHT_IDEMPOTENT {
                return false;
            }
            let len = batch.bytes().map_or(batch.size, Bytes::len);
            let used = planned.entry(leader).or_insert(0);
            if *used > 0 && *used + len > max_request_size {
                return false;
            }
            *used += len;
            true
        });
        if missing_leader {
            self.want_refresh = true;
        }
        for mut batch in drained.expired {
            let error = ProduceError::DeliveryTimeout {
                topic: Arc::clone(&batch.tp.topic),
                partition: batch.tp.partition,
                timeout: self.cfg.delivery_timeout,
                last_error: batch.last_error.take(),
            };
            self.fail_batch(batch, error);
        }
        if let Identity::Failed(error) = &self.identity {
            let error = error.clone();
            for batch in drained.batches {
                self.fail_batch(batch, error.clone());
            }
            return drained.next_wakeup;
        }
        let mut by_broker: BTreeMap<i32, Vec<Batch>> = BTreeMap::new();
        for mut batch in drained.batches {
            let leader = routes
                .get(&batch.tp.topic)
                .and_then(|r| r.as_ref())
                .and_then(|r| r.leader(batch.tp.partition));
            let Some(leader) = leader else {
                // Admitted with a leader a moment ago; cannot happen, but never lose a batch.
                self.acc.requeue(batch);
                continue;
            };
            if let Err(error) = self.encode(&mut batch) {
                self.fail_batch(batch, error);
                continue;
            }
            by_broker.entry(leader).or_default().push(batch);
        }
        for (broker, batches) in by_broker {
            self.send(broker, batches);
        }
        drained.next_wakeup
    }

    /// Encodes a new batch; an idempotent one gets the partition's next sequence.
    fn encode(&mut self, batch: &mut Batch) -> Result<(), ProduceError> {
        if batch.bytes().is_some() {
            return Ok(());
        }
        let identity = match self.identity {
            Identity::Ready => self.seq.identity(),
            _ => None,
        };
        let base = identity.map(|_| self.seq.next_sequence(&batch.tp));
        batch
            .encode(self.cfg.compression, identity, base)
            .map_err(|e| ProduceError::Encode(Arc::new(e)))?;
        if identity.is_some() {
            let count = i32::try_from(batch.record_count()).unwrap_or(i32::MAX);
            // The same sequence `next_sequence` returned: the tracker is ours alone.
            self.seq.assign(&batch.tp, count);
        }
        Ok(())
    }

    /// Sends one Produce request to `broker` on its own task.
    fn send(&mut self, broker: i32, mut batches: Vec<Batch>) {
        let mut topics: BTreeMap<Arc<str>, Vec<PartitionProduceData>> = BTreeMap::new();
        for batch in &mut batches {
            batch.attempts = batch.attempts.saturating_add(1);
            batch.retry_at = None;
            *self
                .partition_in_flight
                .entry(batch.tp.clone())
                .or_insert(0) += 1;
            topics.entry(Arc::clone(&batch.tp.topic)).or_default().push(
                PartitionProduceData::default()
                    .with_index(batch.tp.partition)
                    .with_records(batch.bytes().cloned()),
            );
        }
        let topic_data = topics
            .into_iter()
            .map(|(name, partitions)| {
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(name.to_string())))
                    .with_partition_data(partitions)
            })
            .collect();
        let timeout_ms = i32::try_from(self.cfg.request_timeout.as_millis()).unwrap_or(i32::MAX);
        let request = ProduceRequest::default()
            .with_acks(self.cfg.acks.as_i16())
            .with_timeout_ms(timeout_ms)
            .with_topic_data(topic_data);
        *self.broker_in_flight.entry(broker).or_insert(0) += 1;
        if let Ok(mut stats) = self.stats.lock() {
            stats.requests += 1;
        }
        self.dispatch(Job {
            broker,
            batches,
            request,
        });
    }

    /// Hands a request to its broker's dispatcher, starting one if needed.
    fn dispatch(&mut self, job: Job) {
        let tx = self.dispatchers.entry(job.broker).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(dispatcher(
                Arc::clone(&self.transport),
                rx,
                self.done_tx.clone(),
            ));
            tx
        });
        if let Err(mpsc::error::SendError(job)) = tx.send(job) {
            // The dispatcher is gone (it never stops while we hold its sender, but never lose
            // a request): answer for it so the batches are retried.
            let broker = job.broker;
            self.dispatchers.remove(&broker);
            let _ = self.done_tx.send(Done {
                broker,
                batches: job.batches,
                result: Err(EngineError::ConnectionClosed {
                    broker: format!("broker {broker}"),
                    reason: Arc::from("produce dispatcher stopped"),
                }),
            });
        }
    }

    fn start_refresh(&mut self, now: Instant) {
        self.want_refresh = false;
        self.refreshing = true;
        self.last_refresh = Some(now);
        let topics = self.acc.queued_topics();
        let transport = Arc::clone(&self.transport);
        let tx = self.refresh_tx.clone();
        tokio::spawn(async move {
            if let Err(error) = transport.refresh(topics).await {
                tracing::debug!(%error, "producer metadata refresh failed");
            }
            let _ = tx.send(());
        });
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        let exp = self
            .cfg
            .retry_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.cfg.retry_backoff_max);
        exp.mul_f64(0.8 + 0.4 * self.rng.f64())
            .min(self.cfg.retry_backoff_max)
    }

    fn handle_done(&mut self, done: Done, now: Instant) {
        if let Some(n) = self.broker_in_flight.get_mut(&done.broker) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.broker_in_flight.remove(&done.broker);
            }
        }
        for batch in &done.batches {
            if let Some(n) = self.partition_in_flight.get_mut(&batch.tp) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.partition_in_flight.remove(&batch.tp);
                }
            }
        }
        match done.result {
            Err(error) => {
                let retriable = error.is_retriable();
                if error.invalidates_metadata() {
                    self.want_refresh = true;
                }
                for batch in done.batches {
                    let failure = ProduceError::Transport {
                        topic: Arc::clone(&batch.tp.topic),
                        partition: batch.tp.partition,
                        error: error.clone(),
                    };
                    if retriable {
                        self.retry_or_fail(batch, failure, now);
                    } else {
                        self.fail_batch(batch, failure);
                    }
                }
            }
            Ok(None) => {
                for batch in done.batches {
                    self.succeed(batch, -1, -1);
                }
            }
            Ok(Some(response)) => {
                let mut answers: HashMap<(&str, i32), &PartitionProduceResponse> = HashMap::new();
                for topic in &response.responses {
                    for p in &topic.partition_responses {
                        answers.insert((topic.name.0.as_str(), p.index), p);
                    }
                }
                let mut outcomes = Vec::with_capacity(done.batches.len());
                for batch in done.batches {
                    let answer = answers
                        .get(&(&*batch.tp.topic, batch.tp.partition))
                        .map(|p| Answer {
                            code: p.error_code,
                            base_offset: p.base_offset,
                            log_append_time: p.log_append_time_ms,
                            message: p.error_message.as_ref().map(|m| m.as_str().to_owned()),
                        });
                    outcomes.push((batch, answer));
                }
                for (batch, answer) in outcomes {
                    self.handle_answer(batch, answer, now);
                }
            }
        }
    }

    fn handle_answer(&mut self, batch: Batch, answer: Option<Answer>, now: Instant) {
        let Some(Answer {
            code,
            base_offset,
            log_append_time,
            message,
        }) = answer
        else {
            let error = EngineError::Protocol {
                broker: String::from("leader"),
                detail: format!("Produce response has no answer for {}", batch.tp),
            };
            let failure = ProduceError::Transport {
                topic: Arc::clone(&batch.tp.topic),
                partition: batch.tp.partition,
                error,
            };
            self.retry_or_fail(batch, failure, now);
            return;
        };
        let base = batch.base_sequence();
        let first = base.is_some_and(|b| self.seq.is_first_unacked(&batch.tp, b));
        let failure = || broker_error(&batch.tp, code, message.as_deref());
        match classify(code, base.is_some(), first) {
            Outcome::Success => {
                if code == codes::DUPLICATE_SEQUENCE_NUMBER {
                    tracing::debug!(tp = %batch.tp, "duplicate batch: already written");
                }
                self.succeed(batch, base_offset, log_append_time);
            }
            Outcome::Retry { refresh_metadata } => {
                if refresh_metadata {
                    self.want_refresh = true;
                }
                let f = failure();
                self.retry_or_fail(batch, f, now);
            }
            Outcome::ResetAndRetry => {
                tracing::info!(tp = %batch.tp, "UNKNOWN_PRODUCER_ID: taking a new producer id");
                self.need_reset();
                self.requeue(batch, now);
            }
            Outcome::Fail { reset } => {
                let error = if code == codes::OUT_OF_ORDER_SEQUENCE_NUMBER {
                    ProduceError::OutOfOrderSequence {
                        topic: Arc::clone(&batch.tp.topic),
                        partition: batch.tp.partition,
                    }
                } else {
                    failure()
                };
                if reset {
                    self.need_reset();
                }
                self.fail_batch(batch, error);
            }
        }
    }

    fn need_reset(&mut self) {
        if matches!(self.identity, Identity::Ready) {
            self.identity = Identity::Needed { retry_at: None };
        }
    }

    fn succeed(&mut self, batch: Batch, base_offset: i64, log_append_time: i64) {
        if let Some(base) = batch.base_sequence() {
            self.seq.complete(&batch.tp, base);
        }
        self.leave_recovery(&batch);
        batch.succeed(base_offset, log_append_time);
    }

    fn fail_batch(&mut self, batch: Batch, error: ProduceError) {
        if let Some(base) = batch.base_sequence() {
            if self.seq.identity().is_some() {
                // Its sequence will never be written: later batches would be out of order.
                self.seq.complete(&batch.tp, base);
                self.need_reset();
            }
        }
        self.leave_recovery(&batch);
        tracing::debug!(tp = %batch.tp, %error, records = batch.record_count(), "batch failed");
        batch.fail(error);
    }

    fn leave_recovery(&mut self, batch: &Batch) {
        if self
            .recovering
            .get(&batch.tp)
            .is_some_and(|&mark| batch.id >= mark)
        {
            self.recovering.remove(&batch.tp);
        }
    }

    fn retry_or_fail(&mut self, mut batch: Batch, failure: ProduceError, now: Instant) {
        if batch.attempts > self.cfg.retries {
            self.fail_batch(batch, failure);
        } else if now >= batch.created + self.cfg.delivery_timeout {
            let timeout = ProduceError::DeliveryTimeout {
                topic: Arc::clone(&batch.tp.topic),
                partition: batch.tp.partition,
                timeout: self.cfg.delivery_timeout,
                last_error: Some(Box::new(failure)),
            };
            self.fail_batch(batch, timeout);
        } else {
            tracing::debug!(tp = %batch.tp, attempt = batch.attempts, %failure, "retrying batch");
            batch.last_error = Some(Box::new(failure));
            if let Ok(mut stats) = self.stats.lock() {
                stats.retries += 1;
            }
            self.requeue(batch, now);
        }
    }

    fn requeue(&mut self, mut batch: Batch, now: Instant) {
        let delay = self.backoff(batch.attempts);
        batch.retry_at = Some(now + delay);
        let mark = self.recovering.entry(batch.tp.clone()).or_insert(batch.id);
        *mark = (*mark).max(batch.id);
        self.acc.requeue(batch);
    }
}
