//! [`Worker`]: runs every agent of an app (Faust's `faust worker`). One consumer-group member
//! (group id = app id) subscribes to all the agents' topics; a dispatch task hands each record
//! to its agent's queue (waiting when the queue is full, which pauses the member's reads: no
//! unbounded buffering), and each event's ack goes to the member's offset tracker, so the
//! commits cover only the contiguous processed prefix of every partition.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mephisto_engine::fetcher::{FetcherConfig, OffsetReset};
use mephisto_engine::group::{GroupConfig, GroupConsumer, GroupConsumerError};
use mephisto_engine::Cluster;
use tokio::task::JoinHandle;

use crate::ack::{AckSink, Delivery};
use crate::agent::{AgentError, AgentHandle};
use crate::app::error::AppError;
use crate::app::hub::Hub;
use crate::app::App;

/// Acks of topic events go to the consumer's offset tracker; it also counts the events handed
/// to agents and not acked yet (what a graceful stop waits for).
struct ConsumerAcks {
    consumer: Arc<GroupConsumer>,
    in_flight: AtomicU64,
}

impl AckSink for ConsumerAcks {
    fn ack(&self, delivery: &Delivery) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if let Some(c) = &delivery.coordinate {
            if let Err(e) = self.consumer.ack(&c.topic, c.partition, c.offset) {
                tracing::warn!(coordinate = %c, error = %e, "ack not recorded");
            }
        }
    }
}

/// A running worker.
pub struct Worker {
    app: App,
    consumer: Option<Arc<GroupConsumer>>,
    acks: Option<Arc<ConsumerAcks>>,
    hub: Arc<Hub>,
    dispatch: Option<JoinHandle<Result<(), GroupConsumerError>>>,
    agents: Vec<(String, AgentHandle)>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("app", &self.app.id())
            .field("agents", &self.agents.len())
            .finish()
    }
}

impl Worker {
    pub(crate) async fn start(app: App) -> Result<Worker, AppError> {
        let client = app.client().await?;
        app.declare().await?;
        let settings = app.settings();
        let hub = Hub::new(client.clone(), settings.stream_buffer_maxsize);
        let mut agents = Vec::new();
        for runtime in app.registered() {
            let info = runtime.info();
            let (handle, agent_routes) = runtime.start(&client, &hub)?;
            tracing::info!(agent = %info.name, topics = ?info.topics, concurrency = info.concurrency, "agent started");
            agents.push((info.name, handle));
            for (topic, route) in agent_routes {
                if !hub.add_route(topic.clone(), route) {
                    return Err(AppError::Config(format!(
                        "two agents of app {} read topic {topic}; give each agent its own topic \
                         (or use one agent with sinks)",
                        app.id()
                    )));
                }
            }
        }
        let (consumer, acks, dispatch) = if hub.topics().is_empty() {
            (None, None, None)
        } else {
            let reset = if settings.consumer_auto_offset_reset_earliest {
                OffsetReset::Earliest
            } else {
                OffsetReset::Latest
            };
            let mut config = GroupConfig::new(app.id())
                .with_session_timeout(settings.broker_session_timeout)
                .with_heartbeat_interval(settings.broker_heartbeat_interval)
                .with_max_poll_interval(settings.broker_max_poll_interval)
                .with_instance_id(settings.group_instance_id.clone())
                .with_fetcher(
                    FetcherConfig::default()
                        .with_auto_offset_reset(reset)
                        .with_max_wait(settings.consumer_fetch_max_wait),
                );
            config.commit.interval = settings.broker_commit_interval;
            config.commit.every = settings.broker_commit_every;
            // A member of its own: its JoinGroup must not queue behind the app's other traffic.
            let cluster = Cluster::connect(client.config(app.id())?).await?;
            let consumer = Arc::new(GroupConsumer::new(cluster, config)?);
            hub.set_consumer(consumer.clone());
            let acks = Arc::new(ConsumerAcks {
                consumer: consumer.clone(),
                in_flight: AtomicU64::new(0),
            });
            let dispatch = tokio::spawn(dispatch(consumer.clone(), hub.clone(), acks.clone()));
            (Some(consumer), Some(acks), Some(dispatch))
        };
        tracing::info!(app = %app.id(), broker = %client.url, agents = agents.len(), "worker ready");
        Ok(Worker {
            app,
            consumer,
            acks,
            hub,
            dispatch,
            agents,
        })
    }

    /// The app.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The consumer-group member, when some agent reads a topic.
    pub fn consumer(&self) -> Option<&GroupConsumer> {
        self.consumer.as_deref()
    }

    /// Waits until an agent stops by itself (its restart limit was exceeded, or its channel
    /// ended) or the consumer fails; returns that agent's or the consumer's error.
    pub async fn wait(&mut self) -> Result<(), AppError> {
        let mut finished = Vec::new();
        loop {
            for (i, (_, h)) in self.agents.iter().enumerate() {
                if h.is_finished() {
                    finished.push(i);
                }
            }
            if let Some(i) = finished.pop() {
                let (name, handle) = self.agents.remove(i);
                let result = handle.join().await;
                tracing::warn!(agent = %name, ?result, "agent stopped");
                return result.map_err(AppError::from);
            }
            if let Some(d) = &self.dispatch {
                if d.is_finished() {
                    if let Some(d) = self.dispatch.take() {
                        return match d.await {
                            Ok(r) => r.map_err(AppError::from),
                            Err(_) => Err(AppError::Closed("the dispatch task".into())),
                        };
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Records handed to agents and not acked yet.
    pub fn in_flight(&self) -> u64 {
        self.acks
            .as_ref()
            .map(|a| a.in_flight.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// Stops: no more records are handed out; the agents finish the events they were given
    /// (at most `shutdown_timeout`), then stop; the acked offsets are committed and the member
    /// leaves the group; what was sent is flushed.
    pub async fn stop(mut self) -> Result<(), AppError> {
        if let Some(d) = self.dispatch.take() {
            d.abort();
        }
        let grace = self.app.settings().shutdown_timeout;
        let deadline = tokio::time::Instant::now() + grace;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if self.in_flight() > 0 {
            tracing::warn!(
                in_flight = self.in_flight(),
                ?grace,
                "stopping with events not processed; they will be read again"
            );
        }
        for (_, h) in &self.agents {
            h.stop();
        }
        self.hub.stop_adopted();
        let mut result = Ok(());
        for (name, h) in self.agents.drain(..) {
            if let Err(e) = h.join().await {
                if !matches!(e, AgentError::Stopped { .. }) {
                    tracing::warn!(agent = %name, error = %e, "agent had stopped with an error");
                }
            }
        }
        if let Some(c) = self.consumer.take() {
            if let Err(e) = c.close().await {
                result = Err(AppError::from(e));
            }
        }
        self.app.close().await;
        tracing::info!(app = %self.app.id(), "worker stopped");
        result
    }
}

async fn dispatch(
    consumer: Arc<GroupConsumer>,
    hub: Arc<Hub>,
    counted: Arc<ConsumerAcks>,
) -> Result<(), GroupConsumerError> {
    let acks: Arc<dyn AckSink> = counted.clone();
    loop {
        let record = match consumer.next().await {
            Ok(r) => r,
            Err(GroupConsumerError::Closed) => return Ok(()),
            Err(e) => return Err(e),
        };
        match hub.route(&record.topic) {
            Some(route) => {
                counted.in_flight.fetch_add(1, Ordering::AcqRel);
                route(record, acks.clone()).await
            }
            None => {
                tracing::warn!(topic = %record.topic, "record of a topic no agent reads; acked");
                let _ = consumer.ack(&record.topic, record.partition, record.offset);
            }
        }
    }
}
