//! [`Worker`]: runs an app's agents (Faust's `faust worker`). One consumer-group member (group
//! id = app id, on a thread of its own) reads every topic an agent reads; each assigned
//! partition gets a partition task that feeds the agents' queues; acks go straight to the
//! partition's offset window, so the commits cover only what every agent finished (and whose
//! writes the broker has).
//!
//! An agent that returns ends alone (events of its topics are acked on its behalf from then
//! on); [`Worker::wait`] returns when an agent fails for good, a write fails with no dead-letter
//! topic to take its event, or the membership fails. [`Worker::stop`] stops within the grace
//! period (`shutdown_timeout`, 25 s by default) whatever the queues hold: it gives up queued
//! events, lets events in processing finish, flushes writes, commits and leaves, each step
//! bounded, and reports what it had to abandon.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mephisto_engine::fetcher::{FetcherConfig, OffsetReset, TopicPartition};
use mephisto_engine::group::{
    GroupConfig, GroupConsumer, MemberState, PartitionAcks, PartitionEvents,
};
use mephisto_engine::producer::RecordMetadata;
use mephisto_wire::record::DecodeOptions;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};

use crate::core::error::AgentError;
use crate::core::event::Event;
use crate::core::queue::Queue;
use crate::core::supervisor::AgentHandle;
use crate::runtime::client::Client;
use crate::runtime::error::RuntimeError;
use crate::runtime::group_thread::GroupThread;
use crate::runtime::partition::{self, Progress, TableContext};
use crate::runtime::route::Stop;
use crate::runtime::settings::Settings;
use crate::runtime::subscriptions::Subscriptions;
use crate::runtime::tables::Tables;

/// Most agents one event can be delivered to (one bit each in its partition's window).
pub const MAX_AGENTS_PER_TOPIC: u32 = mephisto_engine::group::MAX_CONSUMERS;

/// An agent queue as the worker handles it, whatever its types.
pub trait QueueControl: Send + Sync {
    /// Stops taking events: the agent's actors end once it is empty, and partition tasks ack
    /// events for the agent on its behalf.
    fn close(&self);
    /// Gives up every queued event (not processed, not committed); returns how many.
    fn give_up_queued(&self) -> usize;
    /// The agent ended: stops taking events and acks the queued ones on its behalf (they are
    /// done for it, and must not hold back the commits of their partitions).
    fn finish(&self);
    /// Events queued now.
    fn queued(&self) -> usize;
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> QueueControl for Queue<Event<K, V>> {
    fn close(&self) {
        Queue::close(self);
    }

    fn queued(&self) -> usize {
        self.len()
    }

    fn finish(&self) {
        Queue::close(self);
        for ev in self.drain() {
            ev.ack();
        }
    }

    fn give_up_queued(&self) -> usize {
        let events = self.drain();
        let n = events.len();
        for ev in events {
            if let Some(a) = ev.ack_ref() {
                a.abandon();
            }
        }
        n
    }
}

/// An agent a worker runs, whatever its types (the app implements it).
pub trait WorkerAgent: Send + Sync {
    /// The agent's name.
    fn name(&self) -> String;
    /// Starts the agent's actors and adds the routes of its topics to `subscriptions`.
    fn start(&self, subscriptions: &Arc<Subscriptions>) -> Result<StartedAgent, RuntimeError>;
}

/// A started agent.
pub struct StartedAgent {
    /// Its actors (`None` when it only runs per-partition instances).
    pub handle: Option<AgentHandle>,
    /// Its queues.
    pub queues: Vec<Arc<dyn QueueControl>>,
}

/// A running agent: its name, what stops its actors, its queues.
type Running = (String, AbortHandle, Vec<Arc<dyn QueueControl>>);

/// A running partition task.
struct Task {
    acks: Arc<PartitionAcks>,
    progress: Arc<Progress>,
    handle: JoinHandle<()>,
}

/// What a stop had to give up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopReport {
    /// Queued events given up (read again after a restart or by the next owner).
    pub queued_abandoned: usize,
    /// Events still in processing when the grace period ran out.
    pub in_processing_abandoned: usize,
    /// Records written by agents and not acknowledged when the grace period ran out.
    pub writes_abandoned: usize,
    /// Whether the commit and the group's leave completed in time.
    pub left_cleanly: bool,
}

/// A running worker; see the [module docs](self).
pub struct Worker {
    app_id: String,
    settings: Settings,
    client: Arc<Client>,
    subscriptions: Arc<Subscriptions>,
    group: Option<GroupThread>,
    agents: Vec<Running>,
    /// Agents that stopped with an error.
    failures: mpsc::UnboundedReceiver<(String, AgentError)>,
    /// Table recoveries that failed (the worker stops with the first).
    recovery_failures: mpsc::UnboundedReceiver<RuntimeError>,
    tasks: Arc<Mutex<HashMap<TopicPartition, Task>>>,
    background: Vec<JoinHandle<()>>,
    tables: Arc<Tables>,
    stop_tx: watch::Sender<bool>,
    stopping: Arc<AtomicBool>,
    fatal: watch::Receiver<Option<AgentError>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("app", &self.app_id)
            .field("agents", &self.agents.len())
            .finish_non_exhaustive()
    }
}

/// The group member's settings from the app's.
fn group_config(app_id: &str, settings: &Settings) -> GroupConfig {
    let reset = if settings.consumer_auto_offset_reset_earliest {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    let mut config = GroupConfig::new(app_id)
        .with_session_timeout(settings.broker_session_timeout)
        .with_heartbeat_interval(settings.broker_heartbeat_interval)
        .with_max_poll_interval(settings.broker_max_poll_interval)
        .with_instance_id(settings.group_instance_id.clone())
        .with_fetcher(
            FetcherConfig::default()
                .with_auto_offset_reset(reset)
                .with_max_wait(settings.consumer_fetch_max_wait)
                .with_decode_options(DecodeOptions {
                    max_decompressed_size: settings.consumer_max_decompressed_bytes,
                    ..DecodeOptions::default()
                }),
        );
    config.commit.interval = settings.broker_commit_interval;
    config.commit.every = settings.broker_commit_every;
    config
}

impl Worker {
    /// Starts `agents` on `client`'s connection (the topics must exist: the app declares
    /// them first).
    pub async fn start(
        app_id: &str,
        client: Arc<Client>,
        agents: Vec<Arc<dyn WorkerAgent>>,
        tables: Tables,
    ) -> Result<Worker, RuntimeError> {
        let settings = client.settings().clone();
        let tables = Arc::new(tables);
        let subscriptions = Arc::new(Subscriptions::new(Arc::clone(&client)));
        let mut running = Vec::new();
        let mut background = Vec::new();
        let (failed, failures) = mpsc::unbounded_channel();
        let (recovery_failed, recovery_failures) = mpsc::unbounded_channel();
        for agent in agents {
            let name = agent.name();
            let started = agent.start(&subscriptions)?;
            tracing::info!(agent = %name, "agent started");
            let abort = match started.handle {
                Some(handle) => {
                    let abort = handle.abort_handle();
                    background.push(tokio::spawn(watch_agent(
                        name.clone(),
                        handle,
                        started.queues.clone(),
                        failed.clone(),
                    )));
                    abort
                }
                None => tokio::spawn(async {}).abort_handle(),
            };
            running.push((name, abort, started.queues));
        }
        subscriptions.seal();
        for topic in subscriptions.topics() {
            let agents: u32 = subscriptions
                .routes(&topic)
                .iter()
                .map(|r| r.consumers())
                .sum();
            if agents > MAX_AGENTS_PER_TOPIC {
                return Err(RuntimeError::TooManyAgents {
                    topic,
                    agents: agents as usize,
                    max: MAX_AGENTS_PER_TOPIC,
                });
            }
        }
        let (stop_tx, _) = watch::channel(false);
        let stopping = Arc::new(AtomicBool::new(false));
        let tasks: Arc<Mutex<HashMap<TopicPartition, Task>>> = Arc::default();
        let mut group = None;
        if !subscriptions.topics().is_empty() {
            let config = group_config(app_id, &settings);
            // A member of its own, on a thread of its own: its JoinGroup does not queue behind
            // the app's other traffic, and its heartbeats never wait for agent code.
            let (thread, events) = GroupThread::start(client.config(app_id)?, config).await?;
            let consumer = Arc::clone(thread.consumer());
            subscriptions.set_consumer(Arc::clone(&consumer));
            background.push(tokio::spawn(dispatch(
                events,
                Arc::clone(&subscriptions),
                Arc::clone(&tables),
                recovery_failed,
                Arc::clone(&tasks),
                Arc::clone(&stopping),
                stop_tx.subscribe(),
            )));
            background.push(tokio::spawn(record_polls(
                consumer,
                Arc::clone(&tasks),
                settings.broker_max_poll_interval,
            )));
            group = Some(thread);
        }
        background.extend(tables.start_global(&client));
        if !tables.is_empty() {
            background.push(tokio::spawn(clean_tables(
                Arc::clone(&tables),
                settings.table_cleanup_interval,
            )));
        }
        if tables.has_stores() {
            background.push(tokio::spawn(persist_tables(
                Arc::clone(&tables),
                settings.broker_commit_interval,
            )));
        }
        tracing::info!(app = %app_id, broker = %client.url(), agents = running.len(), "worker ready");
        let fatal = client.writes().fatal();
        Ok(Worker {
            app_id: app_id.to_owned(),
            settings,
            client,
            subscriptions,
            group,
            agents: running,
            failures,
            recovery_failures,
            tasks,
            background,
            tables,
            stop_tx,
            stopping,
            fatal,
        })
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<TopicPartition, Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The consumer-group member, when some agent reads a topic.
    pub fn consumer(&self) -> Option<&GroupConsumer> {
        self.group.as_ref().map(|g| &**g.consumer())
    }

    /// The topics read, with their routes.
    pub fn subscriptions(&self) -> &Arc<Subscriptions> {
        &self.subscriptions
    }

    /// The partitions this worker processes now.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        let mut v: Vec<TopicPartition> = self.tasks().keys().cloned().collect();
        v.sort();
        v
    }

    /// Waits until the record `md` names (a send's metadata) is processed by this worker: its
    /// partition's processed prefix is past it. Waits for the partition to be assigned here
    /// first; `false` after `timeout`, or if the partition goes to another worker first.
    pub async fn processed(&self, md: &RecordMetadata, timeout: Duration) -> bool {
        let tp = TopicPartition::new(Arc::clone(&md.topic), md.partition);
        let wait = async {
            loop {
                let acks = self.tasks().get(&tp).map(|t| Arc::clone(&t.acks));
                match acks {
                    Some(acks) => return acks.wait_processed(md.offset).await,
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// The recoveries of its table partitions: the running ones (records read and left,
    /// rate) and the last one of each.
    pub fn recovery(&self) -> Vec<crate::runtime::tables::RecoveryProgress> {
        self.tables.progress()
    }

    /// Waits until the worker is quiet: every partition task waits for data with its last
    /// batch at the partition's high watermark, nothing is queued or in processing, and every
    /// write is acknowledged, for a settling time of twice the fetch wait (so that what an
    /// agent wrote to a topic this worker reads is fetched too). `false` after `timeout`.
    /// For demos and tests: "wait until what was sent is processed".
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let settle = (self.settings.consumer_fetch_max_wait * 2).max(Duration::from_millis(200));
        let wait = async {
            let mut quiet_since: Option<tokio::time::Instant> = None;
            loop {
                let quiet = self.is_quiet();
                let now = tokio::time::Instant::now();
                match (quiet, quiet_since) {
                    (true, Some(since)) if now - since >= settle => return,
                    (true, None) => quiet_since = Some(now),
                    (false, _) => quiet_since = None,
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    fn is_quiet(&self) -> bool {
        if let Some(consumer) = self.consumer() {
            // Joined, and a task runs for every partition assigned.
            if consumer.member_state() != MemberState::Stable {
                return false;
            }
            let tasks = self.tasks();
            let covered = consumer
                .assignment()
                .iter()
                .all(|tp| tasks.get(tp).is_some_and(|t| !t.handle.is_finished()));
            if !covered {
                return false;
            }
        }
        let tasks_quiet = self.tasks().values().all(|t| {
            t.handle.is_finished() || (t.progress.is_quiet() && t.acks.in_processing() == 0)
        });
        let queues_empty = self
            .agents
            .iter()
            .flat_map(|(_, _, qs)| qs)
            .all(|q| q.queued() == 0);
        tasks_quiet && queues_empty && self.client.writes().pending() == 0
    }

    /// Waits until an agent stops with an error, a write fails with no dead-letter topic to
    /// take its event, or the membership fails; returns that error. An agent that ends
    /// normally is logged and the others go on.
    pub async fn wait(&mut self) -> Result<(), RuntimeError> {
        let consumer = self.group.as_ref().map(|g| Arc::clone(g.consumer()));
        let membership = async {
            match &consumer {
                Some(c) => c.finished().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(membership);
        loop {
            tokio::select! {
                Some((name, e)) = self.failures.recv() => {
                    tracing::error!(agent = %name, error = %e, "agent stopped");
                    return Err(e.into());
                }
                Some(e) = self.recovery_failures.recv() => return Err(e),
                changed = self.fatal.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                    let error = self.fatal.borrow_and_update().clone();
                    if let Some(e) = error {
                        return Err(e.into());
                    }
                }
                result = &mut membership => {
                    result?;
                    return Err(RuntimeError::Closed("the consumer group membership"));
                }
            }
        }
    }

    /// Stops within `shutdown_timeout`; see the [module docs](self). Returns what had to be
    /// given up, or the membership's error.
    pub async fn stop(mut self) -> Result<StopReport, RuntimeError> {
        let grace = self.settings.shutdown_timeout;
        let start = tokio::time::Instant::now();
        let deadline = start + grace;
        let mut report = StopReport::default();
        // The agents are stopped from here on, not finished.
        for task in self.background.drain(..) {
            task.abort();
        }
        // 1. No more events: partition tasks end, queued events are given up.
        self.stopping.store(true, Ordering::Relaxed);
        self.stop_tx.send_replace(true);
        for (_, _, queues) in &self.agents {
            for q in queues {
                report.queued_abandoned += q.give_up_queued();
            }
        }
        // 2. Events in processing get half the grace period to finish.
        let in_flight_until = start + grace / 2;
        let acks: Vec<Arc<PartitionAcks>> =
            self.tasks().values().map(|t| Arc::clone(&t.acks)).collect();
        let in_processing = |acks: &[Arc<PartitionAcks>]| -> usize {
            acks.iter().map(|a| a.in_processing()).sum::<usize>()
        };
        // Their writes finish meanwhile (the producer lingers a few milliseconds).
        while in_processing(&acks) > 0 && tokio::time::Instant::now() < in_flight_until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for (_, abort, queues) in &self.agents {
            abort.abort();
            for q in queues {
                q.close();
            }
        }
        // 3. What they wrote gets written (a quarter of the grace period), so that their
        //    events can be committed.
        let flush_until = start + grace * 3 / 4;
        let _ = tokio::time::timeout_at(flush_until, self.client.producer().flush()).await;
        let _ = tokio::time::timeout_at(flush_until, self.client.writes().drained()).await;
        report.writes_abandoned = self.client.writes().pending();
        // The durable stores took what was written: their journals go to disk.
        if self.tables.has_stores() {
            let tables = Arc::clone(&self.tables);
            // The journal to disk, then the memtables to sorted tables (the next start
            // then opens the store without replaying the journal).
            let persisted = tokio::task::spawn_blocking(move || {
                tables.persist().and_then(|()| tables.flush_stores())
            });
            match tokio::time::timeout_at(
                flush_until.max(tokio::time::Instant::now() + grace / 8),
                persisted,
            )
            .await
            {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    tracing::error!(error = %e, "the table stores could not be written to disk")
                }
                Ok(Err(_)) | Err(_) => {
                    tracing::warn!("writing the table stores to disk did not finish in time")
                }
            }
        }
        report.in_processing_abandoned = in_processing(&acks);
        // 4. Commit what is done and leave, in what is left.
        let mut result = Ok(());
        if let Some(group) = self.group.take() {
            match tokio::time::timeout_at(deadline, group.consumer().close()).await {
                Ok(Ok(())) => report.left_cleanly = true,
                Ok(Err(e)) => result = Err(RuntimeError::from(e)),
                Err(_) => tracing::warn!(
                    "the group's commit and leave did not finish within the grace period"
                ),
            }
        } else {
            report.left_cleanly = true;
        }
        let tasks: Vec<Task> = self.tasks().drain().map(|(_, t)| t).collect();
        for t in tasks {
            t.handle.abort();
        }
        self.tables.detach_stores();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.client.close(left).await;
        if report
            != (StopReport {
                left_cleanly: true,
                ..StopReport::default()
            })
        {
            tracing::warn!(
                queued_abandoned = report.queued_abandoned,
                in_processing_abandoned = report.in_processing_abandoned,
                writes_abandoned = report.writes_abandoned,
                left_cleanly = report.left_cleanly,
                ?grace,
                "worker stopped; what was given up is read again after a restart"
            );
        }
        tracing::info!(app = %self.app_id, elapsed = ?start.elapsed(), "worker stopped");
        result.map(|()| report)
    }
}

/// Follows one agent: when it ends normally its queues are finished (the other agents go on);
/// when it fails, the worker hears of it.
async fn watch_agent(
    name: String,
    handle: AgentHandle,
    queues: Vec<Arc<dyn QueueControl>>,
    failed: mpsc::UnboundedSender<(String, AgentError)>,
) {
    match handle.join().await {
        Ok(()) => {
            tracing::info!(agent = %name, "agent finished; the other agents go on");
            for q in &queues {
                q.finish();
            }
        }
        Err(e) => {
            let _ = failed.send((name, e));
        }
    }
}

/// Starts a partition task for each partition assigned.
async fn dispatch(
    mut events: PartitionEvents,
    subscriptions: Arc<Subscriptions>,
    tables: Arc<Tables>,
    recovery_failed: mpsc::UnboundedSender<RuntimeError>,
    tasks: Arc<Mutex<HashMap<TopicPartition, Task>>>,
    stopping: Arc<AtomicBool>,
    stop: Stop,
) {
    while let Some(assigned) = events.next().await {
        let tp = assigned.partition().clone();
        let routes = subscriptions.routes(&tp.topic);
        if routes.is_empty() {
            tracing::warn!(partition = %tp, "partition of a topic no agent reads");
        }
        let acks = Arc::clone(assigned.acks());
        let progress = Arc::new(Progress::new());
        let handle = tokio::spawn(partition::run(
            assigned,
            routes,
            TableContext {
                tables: Arc::clone(&tables),
                client: Arc::clone(subscriptions.client()),
                failed: recovery_failed.clone(),
            },
            Arc::clone(&stopping),
            stop.clone(),
            Arc::clone(&progress),
        ));
        let mut tasks = tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|_, t| !t.handle.is_finished());
        tasks.insert(
            tp,
            Task {
                acks,
                progress,
                handle,
            },
        );
    }
}

/// Drops expired windows of windowed tables every `interval` (Faust's
/// `table_cleanup_interval`).
async fn clean_tables(tables: Arc<Tables>, interval: Duration) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.tick().await;
    loop {
        tick.tick().await;
        let removed = tables.cleanup();
        if removed > 0 {
            tracing::debug!(removed, "expired table windows removed");
        }
    }
}

/// Writes the durable table stores' journals to disk every `interval` (the commit interval):
/// a crash of the machine loses at most what the stores took since.
async fn persist_tables(tables: Arc<Tables>, interval: Duration) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.tick().await;
    loop {
        tick.tick().await;
        let t = Arc::clone(&tables);
        match tokio::task::spawn_blocking(move || t.persist()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the table stores could not be written to disk")
            }
            Err(e) => tracing::error!(error = %e, "writing the table stores to disk failed"),
        }
    }
}

/// Tells the member the application is alive while no partition task is stuck longer than
/// the max poll interval (a stuck agent then costs the member its partitions, as in Kafka).
async fn record_polls(
    consumer: Arc<GroupConsumer>,
    tasks: Arc<Mutex<HashMap<TopicPartition, Task>>>,
    max_poll: Duration,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(max_poll / 2));
    loop {
        tick.tick().await;
        let stuck = tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|t| !t.handle.is_finished())
            .any(|t| t.progress.stuck_for().is_some_and(|d| d >= max_poll));
        if !stuck {
            consumer.record_poll();
        }
    }
}
