//! [`ReplyConsumer`]: reads this process's reply topic and hands each `ReqRepResponse` to the
//! `ask` waiting for its correlation id. Not a group member: the reply topic belongs to this
//! process, so every partition is read from the start (a fresh topic) with no commit.
//!
//! An `ask` waits through a [`ReplyWaiter`]: dropping it (the ask was cancelled or timed out)
//! forgets its correlation id, and a correlation id already waited for is refused rather
//! than stealing the other ask's reply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mephisto_engine::fetcher::{FetchError, FetchPosition, Fetcher, FetcherConfig, TopicPartition};
use mephisto_engine::Cluster;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::core::reqrep::ReqRepResponse;
use crate::runtime::error::RuntimeError;

/// Waiting asks by correlation id, each with the token of its [`ReplyWaiter`].
type Waiters = Arc<Mutex<HashMap<String, (u64, oneshot::Sender<serde_json::Value>)>>>;

static NEXT_TOKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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
    ) -> Result<Self, RuntimeError> {
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

    /// Waits for the reply to `correlation_id`: refused when that id is waited for already.
    pub fn expect(&self, correlation_id: &str) -> Result<ReplyWaiter, RuntimeError> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = lock(&self.waiters);
        if waiters.contains_key(correlation_id) {
            return Err(RuntimeError::DuplicateCorrelationId(
                correlation_id.to_owned(),
            ));
        }
        let token = NEXT_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        waiters.insert(correlation_id.to_owned(), (token, tx));
        Ok(ReplyWaiter {
            waiters: Arc::clone(&self.waiters),
            token,
            correlation_id: correlation_id.to_owned(),
            rx,
        })
    }

    /// Asks waiting for their reply now.
    pub fn waiting(&self) -> usize {
        lock(&self.waiters).len()
    }

    /// Stops reading.
    pub(crate) fn close(&self) {
        self.fetcher.close();
        self.task.abort();
    }
}

/// One `ask` waiting for its reply; dropping it forgets the correlation id.
pub struct ReplyWaiter {
    waiters: Waiters,
    token: u64,
    correlation_id: String,
    rx: oneshot::Receiver<serde_json::Value>,
}

impl ReplyWaiter {
    /// The correlation id waited for.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// The reply's value (JSON), or `Err(Closed)` when the reply reader stopped.
    pub async fn reply(&mut self) -> Result<serde_json::Value, RuntimeError> {
        (&mut self.rx)
            .await
            .map_err(|_| RuntimeError::Closed("the reply reader"))
    }
}

impl Drop for ReplyWaiter {
    fn drop(&mut self) {
        let mut waiters = lock(&self.waiters);
        if waiters
            .get(&self.correlation_id)
            .is_some_and(|(token, _)| *token == self.token)
        {
            waiters.remove(&self.correlation_id);
        }
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
                        Some((_, tx)) => {
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
