//! `agent.test_context()`: run an agent on an in-memory channel, without a broker (Faust's
//! `AgentTestWrapper`).
//!
//! The test context clones the agent (function, sinks, reply callback, concurrency, retry) onto
//! a fresh channel under a crashing supervisor ([`RestartPolicy::crash`]): the first error stops
//! the agent, and [`TestContext::put`] returns it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::core::ack::Acker;
use crate::core::agent::{Agent, Observer};
use crate::core::channel::{Channel, ChannelSender, DEFAULT_CAPACITY};
use crate::core::error::AgentError;
use crate::core::policy::RestartPolicy;

struct State<O> {
    results: Mutex<BTreeMap<u64, Vec<O>>>,
    errors: Mutex<BTreeMap<u64, AgentError>>,
    acked: Mutex<Vec<u64>>,
    stopped: Mutex<Option<Result<(), AgentError>>>,
    notify: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Acks<O>(Arc<State<O>>);

impl<O: Send + 'static> Acker for Acks<O> {
    fn ack(&self, id: u64, _consumer: u8) -> bool {
        {
            let mut acked = lock(&self.0.acked);
            if acked.contains(&id) {
                return false;
            }
            acked.push(id);
        }
        self.0.notify.notify_waiters();
        true
    }
    fn hold(&self, _id: u64) -> bool {
        false
    }
    fn release(&self, _id: u64) {}
    fn abandon(&self, _id: u64, _consumer: u8) {}
}

struct Obs<O>(Arc<State<O>>);

impl<O: Clone + Send + 'static> Observer<O> for Obs<O> {
    fn on_yield(&self, seq: u64, value: &O) {
        lock(&self.0.results)
            .entry(seq)
            .or_default()
            .push(value.clone());
    }
    fn on_error(&self, seq: u64, error: &AgentError) {
        lock(&self.0.errors).insert(seq, error.clone());
    }
}

/// A running agent on an in-memory channel. Stops the agent when dropped.
pub struct TestContext<K, V, O> {
    name: String,
    sender: ChannelSender<K, V>,
    state: Arc<State<O>>,
    abort: tokio::task::AbortHandle,
}

impl<K, V, O> Agent<K, V, O>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    /// Starts a copy of this agent on a fresh in-memory channel (needs a tokio runtime).
    pub fn test_context(&self) -> Result<TestContext<K, V, O>, AgentError> {
        let state = Arc::new(State {
            results: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
            acked: Mutex::new(Vec::new()),
            stopped: Mutex::new(None),
            notify: Notify::new(),
        });
        let channel = Channel::with_acks(DEFAULT_CAPACITY, Arc::new(Acks(state.clone())));
        let sender = channel.sender();
        let mut agent = self
            .clone()
            .channel(channel)
            .supervisor(RestartPolicy::crash());
        agent.observer = Some(Arc::new(Obs(state.clone())));
        let handle = agent.start()?;
        let abort = handle.abort_handle();
        let watch = state.clone();
        tokio::spawn(async move {
            let r = handle.join().await;
            *lock(&watch.stopped) = Some(r);
            watch.notify.notify_waiters();
        });
        Ok(TestContext {
            name: self.name.to_string(),
            sender,
            state,
            abort,
        })
    }
}

impl<K, V, O> TestContext<K, V, O>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    /// Sends `value`, waits until the agent is done with it (acked), and returns the last value
    /// yielded for it (`None` when it yielded nothing, e.g. an agent that does not yield). The
    /// agent's error on this event, or its stop, is returned as an error.
    pub async fn put(&self, value: V) -> Result<Option<O>, AgentError> {
        self.put_event(None, value, Vec::new()).await
    }

    /// Like [`TestContext::put`] with a key and headers.
    pub async fn put_event(
        &self,
        key: Option<K>,
        value: V,
        headers: Vec<(String, Option<Bytes>)>,
    ) -> Result<Option<O>, AgentError> {
        let seq = self
            .sender
            .send_event(key, value, headers)
            .await
            .map_err(|_| self.stopped())?;
        self.wait(seq).await?;
        Ok(lock(&self.state.results)
            .get(&seq)
            .and_then(|v| v.last().cloned()))
    }

    /// Waits until event `seq` is acked; returns its error if the agent failed on it.
    pub async fn wait(&self, seq: u64) -> Result<(), AgentError> {
        loop {
            let notified = self.state.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.state.acked).contains(&seq) {
                break;
            }
            if let Some(r) = lock(&self.state.stopped).clone() {
                if let Some(e) = lock(&self.state.errors).remove(&seq) {
                    return Err(e);
                }
                return Err(r.err().unwrap_or_else(|| self.stopped()));
            }
            notified.await;
        }
        match lock(&self.state.errors).remove(&seq) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn stopped(&self) -> AgentError {
        AgentError::Stopped {
            agent: self.name.clone(),
        }
    }

    /// Values yielded so far, by event sequence number (Faust's `results[offset]`).
    pub fn results(&self) -> BTreeMap<u64, Vec<O>> {
        lock(&self.state.results).clone()
    }

    /// Acked sequence numbers, in ack order.
    pub fn acked(&self) -> Vec<u64> {
        lock(&self.state.acked).clone()
    }

    /// The agent's final result once it has stopped.
    pub fn stopped_with(&self) -> Option<Result<(), AgentError>> {
        lock(&self.state.stopped).clone()
    }

    /// A sender into the test channel (to feed it without waiting).
    pub fn sender(&self) -> ChannelSender<K, V> {
        self.sender.clone()
    }

    /// Stops the agent.
    pub fn stop(&self) {
        self.abort.abort();
    }
}

impl<K, V, O> Drop for TestContext<K, V, O> {
    fn drop(&mut self) {
        self.abort.abort();
    }
}
