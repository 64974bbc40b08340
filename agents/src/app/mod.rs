//! The app: Faust's `faust.App` on the Kafka runtime. It owns the settings, the registered
//! agents and, once connected, the runtime's [`Client`].
//!
//! * [`App::topic`] / [`App::topic_many`] describe typed [`Topic`]s, [`App::channel`] makes
//!   an in-memory [`Channel`].
//! * [`App::agent`] starts an [`AgentBuilder`]: source (a topic, a channel, or by default the
//!   topic `<app id>-<agent name>`), concurrency, retry, dead-letter topic,
//!   `isolated_partitions`; `yielding` or `processing` registers it and returns an
//!   [`AppAgent`] with `cast`, `send`, `ask`, `map`, `kvmap`, `join`, `kvjoin` and `add_sink`.
//! * [`App::start_worker`] creates the agents' topics and runs every agent in a [`Worker`].
//!   [`App::main`] gives the app Faust's command line (`worker`, `send`, `agents`).
//! * Streams of topic agents get `group_by`, `through` and `echo` (`repartition`).
//!
//! Module map: `topic` ([`Topic`]), `builder` ([`AgentBuilder`]), `agent` ([`AppAgent`] and
//! what the worker runs of it), `ask` (`ask`, `map`, `join`), `repartition` (streams through
//! topics), `cli` (`app.main()`), `error` ([`AppError`]).

mod agent;
mod ask;
mod builder;
mod cli;
mod error;
mod repartition;
mod set_table;
mod table;
mod table_store;
mod topic;
mod windowed;

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::OnceCell;

pub use agent::{AgentInfo, AppAgent, AskOptions};
pub use builder::AgentBuilder;
pub use error::AppError;
pub use set_table::SetTable;
pub use table::{Table, TableError};
pub use topic::{Model, SendHandle, SendOptions, Topic};
pub use windowed::{WindowKey, WindowSet, WindowedTable};

use crate::core::channel::Channel;
use crate::runtime::client::Client;
use crate::runtime::error::RuntimeError;
use crate::runtime::settings::Settings;
use crate::runtime::tables::{TablePartitions, Tables};
use crate::runtime::topics::TopicSpec;
use crate::runtime::worker::{Worker, WorkerAgent};
use crate::runtime::writes::ClientSource;
use crate::state::durable::DurableStore;
use agent::Registered;

/// A Mephisto application (Faust's `faust.App`). Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

struct AppInner {
    id: String,
    settings: Mutex<Settings>,
    agents: Mutex<Vec<Arc<dyn Registered>>>,
    tables: Mutex<Vec<Arc<dyn TablePartitions>>>,
    client: OnceCell<Arc<Client>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("id", &self.inner.id).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl App {
    /// An app named `id` (also its consumer group id) with default [`Settings`]; the broker
    /// comes from `MEPHISTO_BROKER`, else `kafka://127.0.0.1:9092`.
    pub fn new(id: impl Into<String>) -> App {
        let id = id.into();
        let settings = Settings::new(&id);
        App {
            inner: Arc::new(AppInner {
                id,
                settings: Mutex::new(settings),
                agents: Mutex::new(Vec::new()),
                tables: Mutex::new(Vec::new()),
                client: OnceCell::new(),
            }),
        }
    }

    /// Sets the broker URL (`kafka://host:port,...`, or `memory://` for the in-process
    /// development broker). Takes effect if the app has not connected yet.
    pub fn broker(self, url: impl Into<String>) -> App {
        let url = url.into();
        self.configure(|s| s.broker = url);
        self
    }

    /// Uses `url` unless `MEPHISTO_BROKER` names a broker: the examples run on the in-process
    /// development broker (`memory://`) on a machine with no Kafka, and on a real one when
    /// it is set.
    pub fn broker_unless_env(self, url: impl Into<String>) -> App {
        let from_env = std::env::var("MEPHISTO_BROKER").is_ok_and(|b| !b.trim().is_empty());
        if from_env {
            self
        } else {
            self.broker(url)
        }
    }

    /// Changes settings. Takes effect if the app has not connected yet.
    pub fn configure(&self, f: impl FnOnce(&mut Settings)) {
        if self.inner.client.initialized() {
            tracing::warn!(app = %self.inner.id, "settings changed after the app connected; ignored by the connection");
        }
        f(&mut lock(&self.inner.settings));
    }

    /// The app id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// A copy of the settings.
    pub fn settings(&self) -> Settings {
        lock(&self.inner.settings).clone()
    }

    /// Describes a topic with key type `K` and value type `V` (Faust's
    /// `app.topic('name', key_type=K, value_type=V)`).
    pub fn topic<K: Model, V: Model>(&self, name: impl Into<String>) -> Topic<K, V> {
        Topic::new(self.clone(), vec![name.into()])
    }

    /// A table named `name` with keys `K` and values `V` (Faust's `app.Table(name)`): its
    /// changelog is `<app id>-<name>-changelog`, with the app's `topic_partitions` unless
    /// [`Table::partitions`] says otherwise. See [`Table`].
    pub fn table<K, V>(&self, name: impl Into<String>) -> Table<K, V>
    where
        K: Model + std::hash::Hash + Eq,
        V: Model,
    {
        let partitions = self.settings().topic_partitions;
        let table = Table::new(self.clone(), name.into(), partitions, false);
        lock(&self.inner.tables).push(table.as_partitions());
        table
    }

    /// A table of sets (Faust's `app.SetTable(name)`): `add`/`discard`/`update` members of a
    /// key's set, Faust's operation records in a changelog that is not compacted. See
    /// [`SetTable`].
    pub fn set_table<K, M>(&self, name: impl Into<String>) -> SetTable<K, M>
    where
        K: Model + std::hash::Hash + Eq,
        M: Model + std::hash::Hash + Eq,
    {
        let partitions = self.settings().topic_partitions;
        let table = SetTable::new(self.clone(), name.into(), partitions);
        lock(&self.inner.tables).push(table.as_partitions());
        table
    }

    /// A global table (Faust's `app.GlobalTable(name)`): every worker holds every partition,
    /// kept current by reading the whole changelog for as long as it runs, and reads every
    /// key; writes still go to the changelog partition of the event being processed. Meant
    /// for data that is read much more than written.
    pub fn global_table<K, V>(&self, name: impl Into<String>) -> Table<K, V>
    where
        K: Model + std::hash::Hash + Eq,
        V: Model,
    {
        let partitions = self.settings().topic_partitions;
        let table = Table::new(self.clone(), name.into(), partitions, true);
        lock(&self.inner.tables).push(table.as_partitions());
        table
    }

    /// A windowed table (Faust's `app.Table(name).tumbling(...)` / `.hopping(...)` /
    /// `using_window(SlidingWindow(...))`): keys `(key, window)`, expired windows removed.
    /// See [`WindowedTable`].
    pub fn windowed_table<K, V>(
        &self,
        name: impl Into<String>,
        window: crate::state::window::Window,
    ) -> WindowedTable<K, V>
    where
        K: Model + std::hash::Hash + Eq,
        V: Model,
    {
        WindowedTable::new(self.table::<WindowKey<K>, V>(name), window)
    }

    /// Describes several topics read as one source; the first is the main topic (Faust's
    /// `app.topic('a', 'b', ...)`).
    pub fn topic_many<K: Model, V: Model, I, S>(&self, names: I) -> Topic<K, V>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Topic::new(self.clone(), names.into_iter().map(Into::into).collect())
    }

    /// An in-memory bounded channel (Faust's `app.channel()`), of capacity
    /// `stream_buffer_maxsize`.
    pub fn channel<K, V>(&self) -> Channel<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        Channel::new(self.settings().stream_buffer_maxsize)
    }

    /// Starts defining the agent `name` (Faust's `@app.agent(...)`).
    pub fn agent<K: Model, V: Model>(&self, name: impl Into<String>) -> AgentBuilder<K, V> {
        AgentBuilder::new(self.clone(), name.into())
    }

    /// The registered agents.
    pub fn agents(&self) -> Vec<AgentInfo> {
        lock(&self.inner.agents).iter().map(|a| a.info()).collect()
    }

    pub(crate) fn register(&self, agent: Arc<dyn Registered>) {
        lock(&self.inner.agents).push(agent);
    }

    /// The connection, made at first use.
    pub(crate) async fn client(&self) -> Result<Arc<Client>, AppError> {
        Ok(self.connect().await?)
    }

    async fn connect(&self) -> Result<Arc<Client>, RuntimeError> {
        self.inner
            .client
            .get_or_try_init(|| async {
                Client::connect(&self.inner.id, self.settings())
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// Asks of this process waiting for their reply now (each `ask` that returned, timed
    /// out or was cancelled is forgotten).
    pub fn pending_asks(&self) -> usize {
        self.inner
            .client
            .get()
            .and_then(|c| c.started_replies().map(|r| r.waiting()))
            .unwrap_or(0)
    }

    /// The reply topic of this process (Faust's `reply_to`).
    pub fn reply_topic(&self) -> String {
        self.settings().reply_to
    }

    /// The bootstrap URL in use once connected (the development broker's for `memory://`).
    pub async fn broker_url(&self) -> Result<String, AppError> {
        Ok(self.client().await?.url().to_owned())
    }

    /// The topics the registered agents and tables use (sources, dead-letter topics,
    /// changelogs).
    pub fn declared_topics(&self) -> Vec<TopicSpec> {
        let mut specs: Vec<TopicSpec> = lock(&self.inner.agents)
            .iter()
            .flat_map(|a| a.topics())
            .collect();
        specs.extend(lock(&self.inner.tables).iter().map(|t| t.changelog()));
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs.dedup_by(|a, b| a.name == b.name);
        specs
    }

    /// Connects and creates the agents' topics that are missing.
    pub async fn declare(&self) -> Result<(), AppError> {
        let client = self.client().await?;
        if self.settings().topic_allow_declare {
            client.ensure_topics(&self.declared_topics()).await?;
        }
        Ok(())
    }

    /// Starts a worker: creates the topics, starts every agent and the consumer-group member
    /// that feeds them. Stop it with [`Worker::stop`].
    pub async fn start_worker(&self) -> Result<Worker, AppError> {
        let client = self.client().await?;
        self.declare().await?;
        let agents: Vec<Arc<dyn WorkerAgent>> = lock(&self.inner.agents)
            .iter()
            .map(|a| Arc::clone(a).as_worker_agent())
            .collect();
        let tables = self.open_tables()?;
        Ok(Worker::start(&self.inner.id, client, agents, tables).await?)
    }

    /// The app's tables, each attached to its durable store when it has one (a store
    /// directory is opened once, whatever tables share it).
    fn open_tables(&self) -> Result<Tables, AppError> {
        let settings = self.settings();
        let tables = lock(&self.inner.tables).clone();
        let mut stores: Vec<DurableStore> = Vec::new();
        for table in &tables {
            let url = table.store_url().unwrap_or_else(|| settings.store.clone());
            let Some(dir) = url.directory(&settings.datadir) else {
                continue;
            };
            let store = match stores.iter().find(|s| s.path() == dir) {
                Some(s) => s.clone(),
                None => {
                    let s = DurableStore::open(&dir)?;
                    tracing::info!(path = %dir.display(), "table store opened");
                    stores.push(s.clone());
                    s
                }
            };
            table.attach_store(store);
        }
        Ok(Tables::with_stores(tables, stores))
    }

    /// Flushes what was sent and closes the connection's producer and reply reader (deleting
    /// this process's reply topic), within the shutdown grace period.
    pub async fn close(&self) {
        if let Some(client) = self.inner.client.get() {
            client.close(self.settings().shutdown_timeout).await;
        }
    }

    /// Runs the app's command line (Faust's `app.main()`): `worker [-l LEVEL]`,
    /// `send <topic|@agent> [VALUE] [-k KEY]`, `agents`. Builds its own multi-threaded tokio
    /// runtime; returns the process exit code.
    pub fn main(&self) -> std::process::ExitCode {
        cli::main(self.clone(), std::env::args_os().collect())
    }

    /// With command-line arguments, [`main`](Self::main); without, runs `demo` on a runtime of
    /// its own (the examples use it: `cargo run --example X` runs a demo, `cargo run --example
    /// X -- worker -l info` a worker). An error is printed and gives exit status 1.
    pub fn main_with<F, Fut>(&self, demo: F) -> std::process::ExitCode
    where
        F: FnOnce(App) -> Fut,
        Fut: std::future::Future<Output = Result<(), crate::core::error::BoxError>>,
    {
        if std::env::args_os().len() > 1 {
            return self.main();
        }
        cli::run_demo(self.clone(), demo)
    }
}

impl ClientSource for App {
    fn ready(&self) -> Option<Arc<Client>> {
        self.inner.client.get().cloned()
    }

    fn client(&self) -> BoxFuture<'_, Result<Arc<Client>, RuntimeError>> {
        self.connect().boxed()
    }
}
