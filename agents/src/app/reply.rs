//! [`ReplyConsumer`]: reads this process's reply topic and hands each `ReqRepResponse` to the
//! `ask` waiting for its correlation id. Not a group member: the reply topic belongs to this
//! process, so every partition is read from the start (a fresh topic) with no commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mephisto_engine::fetcher::{FetchError, FetchPosition, Fetcher, FetcherConfig, TopicPartition};
use mephisto_engine::Cluster;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::error::AppError;
use crate::event::ReqRepResponse;

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<serde_json::Value>>>>;

/// The reply reader.
pub struct ReplyConsumer {
    topic: String,
    fetcher: Arc<Fetcher>,
    waiters: Waiters,
    task: JoinHandle<()>,
}

impl ReplyConsumer {
    /// Starts reading every partition of `topic` from its start.
    pub(crate) async fn start(
        cluster: Cluster,
        topic: String,
        max_wait: Duration,
    ) -> Result<Self, AppError> {
        let meta = cluster.topic(&topic).await?;
        let config = FetcherConfig::default().with_max_wait(max_wait);
        let fetcher = Arc::new(Fetcher::new(cluster, config)?);
        for p in &meta.partitions {
            fetcher.assign(
                TopicPartition::new(topic.as_str(), p.partition),
                FetchPosition::Earliest,
            )?;
        }
        let waiters: Waiters = Arc::default();
        let task = tokio::spawn(read_replies(fetcher.clone(), waiters.clone()));
        Ok(ReplyConsumer {
            topic,
            fetcher,
            waiters,
            task,
        })
    }

    /// The reply topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Registers a correlation id; the receiver gets the reply's value (JSON).
    pub(crate) fn expect(&self, correlation_id: &str) -> oneshot::Receiver<serde_json::Value> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(correlation_id.to_owned(), tx);
        rx
    }

    /// Forgets a correlation id (its ask gave up).
    pub(crate) fn forget(&self, correlation_id: &str) {
        lock(&self.waiters).remove(correlation_id);
    }

    /// Stops reading.
    pub(crate) fn close(&self) {
        self.fetcher.close();
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn read_replies(fetcher: Arc<Fetcher>, waiters: Waiters) {
    loop {
        let batch = match fetcher.next_batch().await {
            Ok(batch) => batch,
            Err(FetchError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reply topic: fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let records = match batch.records() {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(topic = %batch.topic, partition = batch.partition, error = %e, "reply topic: undecodable batch skipped");
                continue;
            }
        };
        for record in records {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "reply topic: undecodable record skipped");
                    break;
                }
            };
            let Some(value) = record.value() else {
                continue;
            };
            match serde_json::from_slice::<ReqRepResponse<serde_json::Value, serde_json::Value>>(
                value,
            ) {
                Ok(response) => {
                    let waiter = lock(&waiters).remove(&response.correlation_id);
                    match waiter {
                        Some(tx) => {
                            let _ = tx.send(response.value);
                        }
                        None => tracing::debug!(
                            correlation_id = %response.correlation_id,
                            "reply for no waiting ask (late or another process's)"
                        ),
                    }
                }
                Err(e) => tracing::warn!(
                    topic = %batch.topic, partition = batch.partition, offset = record.offset(),
                    error = %e, "reply topic: not a ReqRepResponse; skipped"
                ),
            }
        }
    }
}
