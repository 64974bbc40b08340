//! The router: finds the leader of every assigned partition that has none (newly assigned, or
//! whose leader moved) from the cluster metadata, and starts the fetch loop of each leader
//! that has none running.
//!
//! Partitions whose leader the metadata does not know (topic not created yet, election under
//! way) are tried again after a backoff, on refreshed metadata.

use std::sync::Arc;

use super::Shared;
use crate::backoff::Backoff;
use crate::producer::TopicPartition;

/// Runs until the fetcher closes.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut wake = shared.wake_loops.subscribe();
    let client = shared.cluster.config();
    let mut backoff = Backoff::new(client.retry_backoff, client.retry_backoff_max);
    loop {
        wake.borrow_and_update();
        let unrouted: Vec<TopicPartition> = {
            let state = shared.lock();
            if state.closed {
                return;
            }
            state
                .partitions
                .iter()
                .filter(|(_, ps)| ps.leader.is_none())
                .map(|(tp, _)| tp.clone())
                .collect()
        };
        if unrouted.is_empty() {
            // The sender lives in `Shared`, which this task holds: `changed` cannot fail.
            let _ = wake.changed().await;
            continue;
        }
        let metadata = match shared.cluster.metadata().await {
            Ok(metadata) => metadata,
            Err(error) => {
                tracing::debug!(%error, "metadata for routing failed");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let mut missing = 0usize;
        let mut start = Vec::new();
        {
            let mut guard = shared.lock();
            let state = &mut *guard;
            for tp in &unrouted {
                match metadata.leader(&tp.topic, tp.partition) {
                    Ok(leader) => {
                        if let Some(ps) = state.partitions.get_mut(tp) {
                            if ps.leader.is_none() {
                                ps.leader = Some(leader);
                                if state.loops.insert(leader.broker) {
                                    start.push(leader.broker);
                                }
                            }
                        }
                    }
                    Err(error) => {
                        missing += 1;
                        tracing::debug!(partition = %tp, %error, "no leader known yet");
                    }
                }
            }
        }
        for broker in start {
            shared.spawn_loop(broker);
        }
        shared.notify_loops();
        if missing > 0 {
            shared.cluster.invalidate_metadata(metadata.generation);
            let delay = backoff.next_delay();
            if backoff.attempts().is_multiple_of(10) {
                tracing::warn!(
                    partitions = missing,
                    "no leader known for assigned partitions"
                );
            }
            tokio::time::sleep(delay).await;
        } else {
            backoff.reset();
        }
    }
}
