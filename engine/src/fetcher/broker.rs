//! One broker's fetch loop: position resets (ListOffsets) and long-poll Fetch requests for every
//! assigned partition that broker leads, all partitions in one request, one request at a time,
//! on the broker's `Fetch` connection (so a held Fetch never delays other traffic).
//!
//! The loop plans under the state lock, sends without it, decodes the response's partitions
//! without it (framing and CRCs, see `response`), then applies the outcomes under the lock.
//! It ends when the broker leads none of the assigned partitions; the router starts it again
//! when one is routed to it.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, BrokerId};
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::FetchError;
use super::request::{fetch_request, list_offsets_request, FetchParams, FetchTarget, OffsetTarget};
use super::response::{classify, partition_outcome, Outcome};
use super::state::Plan;
use super::Shared;
use crate::backoff::Backoff;
use crate::cluster::Purpose;
use crate::error::EngineError;
use crate::producer::TopicPartition;

/// Runs the loop of `broker` until it has nothing to fetch or the fetcher closes.
pub(crate) async fn run(shared: Arc<Shared>, broker: BrokerId) {
    let mut wake = shared.wake_loops.subscribe();
    let client = shared.cluster.config();
    let mut backoff = Backoff::new(client.retry_backoff, client.retry_backoff_max);
    tracing::debug!(broker = broker.0, "fetch loop started");
    loop {
        wake.borrow_and_update();
        let plan = {
            let mut state = shared.lock();
            if state.closed {
                return;
            }
            let plan = state.plan(broker, Instant::now());
            if matches!(plan, Plan::Idle) {
                state.loops.remove(&broker);
            }
            plan
        };
        let ok = match plan {
            Plan::Idle => {
                tracing::debug!(broker = broker.0, "fetch loop idle, ending");
                return;
            }
            Plan::Wait(until) => {
                wait(&mut wake, until).await;
                continue;
            }
            Plan::Reset { id, targets } => reset(&shared, broker, id, &targets).await,
            Plan::Fetch {
                id,
                targets,
                max_bytes,
                long_poll,
            } => fetch(&shared, broker, id, &targets, max_bytes, long_poll).await,
        };
        if ok {
            backoff.reset();
        } else {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

/// Waits for a state change, or until `until`.
async fn wait(wake: &mut watch::Receiver<()>, until: Option<Instant>) {
    match until {
        Some(at) => {
            tokio::select! {
                _ = wake.changed() => {}
                () = tokio::time::sleep_until(at) => {}
            }
        }
        None => {
            // The sender lives in `Shared`, which this loop holds: `changed` cannot fail.
            let _ = wake.changed().await;
        }
    }
}

/// After a broker's answer was applied: invalidates the metadata (generation `generation`) if a
/// partition must move to another leader, wakes the application if data was queued, and wakes
/// the fetch loops to plan again.
fn after_answer(shared: &Shared, generation: u64, reroute: bool, queued: bool) {
    if reroute {
        shared.cluster.invalidate_metadata(generation);
    }
    if queued {
        shared.notify_app();
    }
    shared.notify_loops();
}

fn tp_of(topic: &Arc<str>, partition: i32) -> TopicPartition {
    TopicPartition::new(Arc::clone(topic), partition)
}

/// A whole request failed: release its partitions (re-routing them if the error says the
/// metadata is stale) and queue the error for the application if retrying cannot fix it.
fn request_failed(
    shared: &Shared,
    broker: BrokerId,
    id: u64,
    partitions: impl Iterator<Item = TopicPartition>,
    reserved: usize,
    generation: u64,
    error: EngineError,
) {
    let reroute = error.invalidates_metadata();
    {
        let mut state = shared.lock();
        state.unreserve(reserved);
        for tp in partitions {
            if reroute {
                state.reroute(id, &tp);
            } else {
                state.unmark(id, &tp);
            }
        }
        if !error.is_retriable() {
            tracing::warn!(broker = broker.0, %error, "fetch request failed");
            state.push_error(FetchError::Engine(error));
        } else {
            tracing::debug!(broker = broker.0, %error, "fetch request failed, will retry");
        }
    }
    if reroute {
        shared.cluster.invalidate_metadata(generation);
    }
    shared.notify_app();
    shared.notify_loops();
}

/// Sends one Fetch (a long poll, or one the broker answers at once) and applies its answer;
/// `false` if the request failed.
async fn fetch(
    shared: &Arc<Shared>,
    broker: BrokerId,
    id: u64,
    targets: &[FetchTarget],
    max_bytes: i32,
    long_poll: bool,
) -> bool {
    let config = &shared.config;
    let reserved = usize::try_from(max_bytes).unwrap_or(0);
    let generation = shared.cluster.cached_metadata().generation;
    let max_wait = if long_poll {
        config.max_wait
    } else {
        std::time::Duration::ZERO
    };
    let params = FetchParams {
        max_wait,
        min_bytes: config.min_bytes,
        max_bytes,
        isolation: config.isolation_level,
    };
    let timeout = max_wait + shared.cluster.config().request_timeout;
    let result = shared
        .cluster
        .send_with_timeout(broker, Purpose::Fetch, timeout, |version| {
            fetch_request(targets, params, version)
        })
        .await
        .and_then(|response| {
            EngineError::check_code(ApiKey::Fetch, || None, response.body.error_code, None)
                .map(|()| response)
        });
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            let partitions = targets.iter().map(|t| tp_of(&t.topic, t.partition));
            request_failed(shared, broker, id, partitions, reserved, generation, error);
            return false;
        }
    };

    // Decode outside the lock.
    let index: HashMap<(&str, i32), &FetchTarget> = targets
        .iter()
        .map(|t| ((&*t.topic, t.partition), t))
        .collect();
    let mut outcomes = Vec::new();
    let mut total = 0usize;
    let with_data = response
        .body
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter(|d| d.records.as_ref().is_some_and(|r| !r.is_empty()))
        .count();
    for topic in response.body.responses {
        let name = topic.topic.0.as_str();
        for mut data in topic.partitions {
            let Some(target) = index.get(&(name, data.partition_index)) else {
                continue;
            };
            let size = data.records.as_ref().map_or(0, |r| r.len());
            total += size;
            if with_data > 1 {
                // Several partitions share the response's buffer: each gets a buffer of its
                // own (one copy of its bytes), so that a record the application keeps pins
                // its partition's data, not the whole response, and the prefetch budget
                // (counted per partition) is what stays in memory.
                data.records = data.records.map(|r| bytes::Bytes::copy_from_slice(&r));
            }
            let outcome =
                partition_outcome(data, target.offset, config.isolation_level, &config.decode);
            outcomes.push((
                tp_of(&target.topic, target.partition),
                target.epoch,
                outcome,
            ));
        }
    }

    let mut queued = false;
    let mut reroute = false;
    {
        let mut state = shared.lock();
        state.unreserve(reserved);
        state.stats.fetched_bytes += total as u64;
        state.stats.largest_response_bytes = state.stats.largest_response_bytes.max(total);
        state.stats.max_partitions_per_response =
            state.stats.max_partitions_per_response.max(with_data);
        let now = Instant::now();
        for (tp, epoch, outcome) in outcomes {
            match outcome {
                Outcome::Data(chunk) => queued |= state.data(id, &tp, epoch, chunk),
                Outcome::OutOfRange => {
                    state.out_of_range(id, &tp);
                    queued = true;
                }
                Outcome::Reroute(error) => {
                    tracing::debug!(partition = %tp, %error, "leader changed, re-routing");
                    state.reroute(id, &tp);
                    reroute = true;
                }
                Outcome::Retry(error) => {
                    tracing::debug!(partition = %tp, %error, "retriable fetch error");
                    state.retry_later(id, &tp, now);
                }
                Outcome::Fatal(error) => {
                    tracing::warn!(partition = %tp, %error, "fetch error, partition stopped");
                    state.fail(id, &tp, error);
                    queued = true;
                }
            }
        }
        // Partitions the broker did not answer for: try them again after a backoff.
        for t in targets {
            state.retry_later(id, &tp_of(&t.topic, t.partition), now);
        }
    }
    after_answer(shared, generation, reroute, queued);
    true
}

/// Resolves positions with one ListOffsets; `false` if the request failed.
async fn reset(shared: &Arc<Shared>, broker: BrokerId, id: u64, targets: &[OffsetTarget]) -> bool {
    let isolation = shared.config.isolation_level;
    let generation = shared.cluster.cached_metadata().generation;
    shared.lock().stats.list_offsets_requests += 1;
    let result = shared
        .cluster
        .send(broker, Purpose::Default, |version| {
            list_offsets_request(targets, isolation, version)
        })
        .await;
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            let partitions = targets.iter().map(|t| tp_of(&t.topic, t.partition));
            request_failed(shared, broker, id, partitions, 0, generation, error);
            return false;
        }
    };
    let index: HashMap<(&str, i32), &OffsetTarget> = targets
        .iter()
        .map(|t| ((&*t.topic, t.partition), t))
        .collect();
    let mut reroute = false;
    let mut queued = false;
    {
        let mut state = shared.lock();
        let now = Instant::now();
        for topic in response.body.topics {
            let name = topic.name.0.as_str();
            for p in topic.partitions {
                let Some(target) = index.get(&(name, p.partition_index)) else {
                    continue;
                };
                let tp = tp_of(&target.topic, target.partition);
                match classify(p.error_code, None) {
                    None if p.offset >= 0 => state.reset_done(id, &tp, p.offset),
                    None => {
                        tracing::debug!(partition = %tp, offset = p.offset, "no offset yet");
                        state.retry_later(id, &tp, now);
                    }
                    Some(Outcome::Reroute(error)) => {
                        tracing::debug!(partition = %tp, %error, "leader changed, re-routing");
                        state.reroute(id, &tp);
                        reroute = true;
                    }
                    Some(Outcome::Retry(_)) => state.retry_later(id, &tp, now),
                    Some(Outcome::Fatal(error)) => {
                        state.fail(id, &tp, error);
                        queued = true;
                    }
                    // Not an answer ListOffsets gives; retry rather than act on it.
                    Some(Outcome::OutOfRange | Outcome::Data(_)) => state.retry_later(id, &tp, now),
                }
            }
        }
        for t in targets {
            state.retry_later(id, &tp_of(&t.topic, t.partition), now);
        }
    }
    after_answer(shared, generation, reroute, queued);
    true
}
