//! [`Table`]: Faust's `app.Table(...)`: a key/value map sharded like the stream that writes
//! it, every change sent to the table's changelog topic, so that another worker recovers it.
//!
//! - A write from an agent (`set`, `update`, `remove`) changes the partition of the event being
//!   processed and sends the change to the same partition of `<app id>-<table>-changelog`
//!   (json keys and values by default, as Faust; a removal is a tombstone). The event is not
//!   committed before the broker has the change. A write with no event in context is an error
//!   unless the table uses the partitioner (`use_partitioner`); an event from a topic whose
//!   partition count differs from the changelog's is [`TableError::PartitionsMismatch`].
//! - A read (`get`) returns the stored value, else the default (Faust's `default=int`: a
//!   missing key reads as the default and is not stored until written).
//! - The worker holds the table partitions of its assigned partitions and recovers each from
//!   its changelog before the partition's events are processed (`runtime::tables`).
//! - With a durable store (the app's or the table's `store` is `fjall://`), a partition opened
//!   is first loaded from the store, and recovery reads the changelog only after the stored
//!   offset. The store takes each of this worker's writes once the broker has it, with its
//!   changelog offset, in one atomic batch (never a change the changelog may not have), before
//!   the event that made it can be committed.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use mephisto_engine::producer::{ProducerRecord, RecordMetadata};
use mephisto_wire::record::Record;

use crate::app::error::AppError;
use crate::app::table_store::TableStore;
use crate::app::topic::Model;
use crate::app::App;
use crate::core::codec::{Codec, CodecError, CodecName, Direction, SerdeCodec};
use crate::core::context;
use crate::core::error::WriteError;
use crate::runtime::tables::{ApplyError, TablePartitions};
use crate::runtime::topics::TopicSpec;
use crate::runtime::tracker::AfterAck;
use crate::runtime::writes::ClientSource;
use crate::state::durable::{DurableStore, StoreError};
use crate::state::partition::{PartitionData, PartitionMap};
use crate::state::store::StoreUrl;
use crate::state::window::Window;

/// What a table write can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// A write outside an agent's event, to a table that does not use the partitioner.
    #[error("table {table}: cannot write outside an agent processing an event (the changelog partition is the event's), unless the table uses the partitioner")]
    OutsideEvent {
        /// The table.
        table: String,
    },
    /// The event's topic and the changelog have different partition counts (Faust's
    /// `PartitionsMismatch`): the table would not be co-partitioned with it.
    #[error("table {table}: source topic {source_topic} has {source_partitions} partitions but changelog {changelog} has {changelog_partitions}; they must match")]
    PartitionsMismatch {
        /// The table.
        table: String,
        /// The event's topic.
        source_topic: String,
        /// Its partitions.
        source_partitions: usize,
        /// The changelog topic.
        changelog: String,
        /// Its partitions.
        changelog_partitions: usize,
    },
    /// A key or value could not be encoded.
    #[error("table {table}: {source}")]
    Codec {
        /// The table.
        table: String,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
    /// The change could not be queued for the changelog.
    #[error("table {table}: {source}")]
    Write {
        /// The table.
        table: String,
        /// The write's error.
        #[source]
        source: WriteError,
    },
    /// The app could not connect.
    #[error("table {table}: {source}")]
    App {
        /// The table.
        table: String,
        /// The app's error.
        #[source]
        source: Box<AppError>,
    },
}

type DefaultFn<V> = Arc<dyn Fn() -> V + Send + Sync>;
type OnRecover = Arc<dyn Fn(i32) + Send + Sync>;
type OnChangelogEvent<K, V> = Arc<dyn Fn(&K, Option<&V>) + Send + Sync>;

/// Called with an expired key and its value.
pub(crate) type OnWindowClose<K, V> = Arc<dyn Fn(&K, &V) + Send + Sync>;

/// How a windowed table's keys expire (set by [`WindowedTable`](crate::app::WindowedTable)).
pub(crate) struct Expiry<K, V> {
    /// The windows.
    pub(crate) window: Window,
    /// The start of a key's window.
    pub(crate) start: Arc<dyn Fn(&K) -> f64 + Send + Sync>,
    /// Called with each expired key and its value (Faust's `on_window_close`).
    pub(crate) on_close: Option<OnWindowClose<K, V>>,
}

/// Options of [`App::table`], set before the worker starts.
struct Options<K, V> {
    default: Option<DefaultFn<V>>,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    use_partitioner: bool,
    help: String,
    on_recover: Vec<OnRecover>,
    on_changelog_event: Option<OnChangelogEvent<K, V>>,
    expiry: Option<Expiry<K, V>>,
    /// A changelog record that does not decode fails the recovery (else: logged, skipped).
    fail_on_bad_records: bool,
}

struct Inner<K, V> {
    name: String,
    app: App,
    changelog: Mutex<TopicSpec>,
    topic: Arc<str>,
    options: Mutex<Options<K, V>>,
    partitions: PartitionMap<K, V>,
    /// Source topics whose partition count was checked.
    verified: Mutex<HashSet<String>>,
    /// Latest event time (seconds) written per partition, for window expiry.
    latest: Mutex<HashMap<i32, f64>>,
    /// Every worker holds every partition (Faust's `GlobalTable`).
    global: bool,
    /// Where the partitions are kept.
    store: TableStore,
}

impl<K, V> Inner<K, V> {
    /// Applies a change of this worker the broker has (at `meta`) to the stored partition.
    fn persist(
        &self,
        meta: &RecordMetadata,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let Some(stored) = self.store.get(meta.partition) else {
            // Not held here (a partitioner-chosen partition of another worker).
            return Ok(());
        };
        if meta.offset < 0 {
            tracing::warn!(table = %self.name, partition = meta.partition,
                "the broker did not say where the change was written (acks=0?); the stored copy is not updated");
            return Ok(());
        }
        stored.write([(key, value)], meta.offset)
    }
}

/// A table (Faust's `app.Table`), made by [`App::table`] or [`App::global_table`]: a key/value
/// map sharded like the stream that writes it. A write from an agent changes the partition of
/// the event being processed and sends the change to the same partition of
/// `<app id>-<table>-changelog` (json by default, a tombstone for a removal); the event is not
/// committed before the broker has it. A read returns the stored value, else the default.
/// The worker recovers its partitions from the changelog before processing their events.
/// Cheap to clone.
pub struct Table<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Table {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V> std::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.inner.name)
            .field("changelog", &self.inner.topic)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: Model + Hash + Eq, V: Model> Table<K, V> {
    /// A table that [`App::table`] registers (or a set table uses to write its changelog).
    pub(crate) fn new(app: App, name: String, partitions: i32, global: bool) -> Self {
        let topic = format!("{}-{}-changelog", app.id(), name);
        let changelog = TopicSpec {
            name: topic.clone(),
            partitions: Some(partitions),
            configs: vec![("cleanup.policy".into(), "compact".into())],
        };
        Table {
            inner: Arc::new(Inner {
                name,
                app,
                changelog: Mutex::new(changelog),
                topic: Arc::from(topic.as_str()),
                options: Mutex::new(Options {
                    default: None,
                    key_codec: Arc::new(SerdeCodec(CodecName::Json)),
                    value_codec: Arc::new(SerdeCodec(CodecName::Json)),
                    use_partitioner: false,
                    help: String::new(),
                    on_recover: Vec::new(),
                    on_changelog_event: None,
                    expiry: None,
                    fail_on_bad_records: false,
                }),
                latest: Mutex::new(HashMap::new()),
                global,
                partitions: PartitionMap::default(),
                verified: Mutex::new(HashSet::new()),
                store: TableStore::default(),
            }),
        }
    }

    /// The value a missing key reads as (Faust's `default=int`); it is not stored until
    /// written.
    pub fn default_value(self, f: impl Fn() -> V + Send + Sync + 'static) -> Self {
        lock(&self.inner.options).default = Some(Arc::new(f));
        self
    }

    /// Encodes keys in the changelog with `codec` (json by default; Faust uses raw for bytes).
    pub fn key_codec(self, codec: CodecName) -> Self {
        lock(&self.inner.options).key_codec = Arc::new(SerdeCodec(codec));
        self
    }

    /// Encodes values in the changelog with `codec` (json by default).
    pub fn value_codec(self, codec: CodecName) -> Self {
        lock(&self.inner.options).value_codec = Arc::new(SerdeCodec(codec));
        self
    }

    /// Lets the producer's partitioner choose the changelog partition (murmur2 of the key),
    /// which allows writes outside an agent (Faust's `use_partitioner=True`).
    pub fn use_partitioner(self, yes: bool) -> Self {
        lock(&self.inner.options).use_partitioner = yes;
        self
    }

    /// Keeps the table's partitions in `url` rather than in the app's `store` (Faust's
    /// `store=`): `StoreUrl::parse("fjall://")?` for a durable store in the app's `datadir`.
    pub fn store(self, url: StoreUrl) -> Self {
        self.inner.store.set_url(url);
        self
    }

    /// Makes a changelog record that does not decode fail the recovery (the partition's
    /// events are then not processed) instead of being logged with its coordinates and
    /// skipped, the default.
    pub fn fail_recovery_on_bad_records(self, yes: bool) -> Self {
        lock(&self.inner.options).fail_on_bad_records = yes;
        self
    }

    /// A description (Faust's `help`).
    pub fn help(self, text: impl Into<String>) -> Self {
        lock(&self.inner.options).help = text.into();
        self
    }

    /// Calls `f` with each partition once it is recovered (Faust's `on_recover`).
    pub fn on_recover(self, f: impl Fn(i32) + Send + Sync + 'static) -> Self {
        lock(&self.inner.options).on_recover.push(Arc::new(f));
        self
    }

    /// Calls `f` with each change read from the changelog during recovery (Faust's
    /// `on_changelog_event`; `None` for a removal).
    pub fn on_changelog_event(self, f: impl Fn(&K, Option<&V>) + Send + Sync + 'static) -> Self {
        lock(&self.inner.options).on_changelog_event = Some(Arc::new(f));
        self
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its description.
    pub fn help_text(&self) -> String {
        lock(&self.inner.options).help.clone()
    }

    /// Its changelog topic.
    pub fn changelog_topic(&self) -> &str {
        &self.inner.topic
    }

    /// Creates the changelog with `n` partitions (Faust's `partitions`; default the app's
    /// `topic_partitions`): as many as the topics that write the table.
    pub fn partitions(self, n: i32) -> Self {
        lock(&self.inner.changelog).partitions = Some(n);
        self
    }

    /// The changelog's partition count.
    pub fn partition_count(&self) -> i32 {
        lock(&self.inner.changelog).partitions.unwrap_or(0)
    }

    fn current_partition(&self) -> Option<i32> {
        context::current_partition()
    }

    /// The value of `key`: stored, else the default, else `None`. Inside an agent it reads
    /// the partition of the event being processed; outside, every partition this worker
    /// holds.
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_in(self.current_partition(), key)
    }

    /// Whether `key` is stored (a default does not count).
    pub fn contains(&self, key: &K) -> bool {
        let parts = self.inner.partitions.lock();
        match self.current_partition() {
            Some(p) => parts.get(&p).is_some_and(|d| d.contains(key)),
            None => parts.values().any(|d| d.contains(key)),
        }
    }

    /// The keys of every partition this worker holds.
    pub fn keys(&self) -> Vec<K> {
        self.inner
            .partitions
            .lock()
            .values()
            .flat_map(|d| d.iter().map(|(k, _)| k.clone()))
            .collect()
    }

    /// The keys and values of every partition this worker holds.
    pub fn items(&self) -> Vec<(K, V)> {
        self.inner
            .partitions
            .lock()
            .values()
            .flat_map(|d| d.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }

    /// Keys stored in the partitions this worker holds.
    pub fn len(&self) -> usize {
        self.inner
            .partitions
            .lock()
            .values()
            .map(PartitionData::len)
            .sum()
    }

    /// Whether no key is stored here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The partitions this worker holds.
    pub fn held_partitions(&self) -> Vec<i32> {
        self.inner.partitions.held()
    }

    /// Stores `value` under `key` (Faust's `table[key] = value`).
    pub async fn set(&self, key: K, value: V) -> Result<(), TableError> {
        let partition = self.write_partition().await?;
        let encoded = self.encode(&key, Some(&value))?;
        if let Some(p) = partition {
            self.inner
                .partitions
                .lock()
                .entry(p)
                .or_default()
                .set(key, value);
        }
        let then = self.store_after_ack(&encoded);
        self.send(partition, encoded, then).await
    }

    /// What the durable store does once the broker has a change (`None` without one).
    fn store_after_ack(&self, (key, value): &(Bytes, Option<Bytes>)) -> Option<AfterAck> {
        if !self.inner.store.is_durable() {
            return None;
        }
        let inner = Arc::clone(&self.inner);
        let (key, value) = (key.clone(), value.clone());
        Some(Box::new(move |meta: &RecordMetadata| {
            inner
                .persist(meta, &key, value.as_deref())
                .map_err(Into::into)
        }))
    }

    /// Changes the value of `key` in place (from the stored value, else the default; a key
    /// with neither is left alone and `None` returned), then stores it: `table.update(word,
    /// |n| *n += 1)` is Faust's `table[word] += 1`. Returns the new value.
    pub async fn update(&self, key: K, f: impl FnOnce(&mut V)) -> Result<Option<V>, TableError> {
        let partition = self.write_partition().await?;
        let Some(p) = partition else {
            // Partitioner-chosen: this worker may not hold the key's partition.
            let Some(mut v) = self.get(&key) else {
                return Ok(None);
            };
            f(&mut v);
            self.set(key, v.clone()).await?;
            return Ok(Some(v));
        };
        let value = {
            let mut parts = self.inner.partitions.lock();
            let data = parts.entry(p).or_default();
            match data.get_mut(&key) {
                Some(v) => {
                    f(v);
                    v.clone()
                }
                None => {
                    let Some(mut v) = lock(&self.inner.options).default.as_ref().map(|d| d())
                    else {
                        return Ok(None);
                    };
                    f(&mut v);
                    data.set(key.clone(), v.clone());
                    v
                }
            }
        };
        let encoded = self.encode(&key, Some(&value))?;
        let then = self.store_after_ack(&encoded);
        self.send(Some(p), encoded, then).await?;
        Ok(Some(value))
    }

    /// Removes `key` (Faust's `del table[key]`): a tombstone goes to the changelog.
    pub async fn remove(&self, key: &K) -> Result<Option<V>, TableError> {
        let partition = self.write_partition().await?;
        let old = match partition {
            Some(p) => self
                .inner
                .partitions
                .lock()
                .get_mut(&p)
                .and_then(|d| d.remove(key)),
            None => {
                let mut parts = self.inner.partitions.lock();
                parts.values_mut().find_map(|d| d.remove(key))
            }
        };
        let encoded = self.encode(key, None)?;
        let then = self.store_after_ack(&encoded);
        self.send(partition, encoded, then).await?;
        Ok(old)
    }

    fn encode(&self, key: &K, value: Option<&V>) -> Result<(Bytes, Option<Bytes>), TableError> {
        let options = lock(&self.inner.options);
        let codec = |source| TableError::Codec {
            table: self.inner.name.clone(),
            source,
        };
        let k = options.key_codec.encode(key).map_err(codec)?;
        let v = match value {
            Some(v) => Some(options.value_codec.encode(v).map_err(codec)?),
            None => None,
        };
        Ok((k, v))
    }

    /// The changelog partition of a write: the current event's (checked once per source
    /// topic), or `None` for the partitioner.
    pub(crate) async fn write_partition(&self) -> Result<Option<i32>, TableError> {
        if lock(&self.inner.options).use_partitioner {
            return Ok(None);
        }
        let Some(message) = context::current_event().and_then(|e| e.message().cloned()) else {
            return Err(TableError::OutsideEvent {
                table: self.inner.name.clone(),
            });
        };
        if !lock(&self.inner.verified).contains(&*message.topic) {
            let client = self.inner.app.client().await.map_err(|e| TableError::App {
                table: self.inner.name.clone(),
                source: Box::new(e),
            })?;
            let meta =
                client
                    .cluster()
                    .topic(&message.topic)
                    .await
                    .map_err(|e| TableError::App {
                        table: self.inner.name.clone(),
                        source: Box::new(AppError::from(
                            crate::runtime::error::RuntimeError::from(e),
                        )),
                    })?;
            let source_partitions = meta.partitions.len();
            let changelog_partitions = usize::try_from(self.partition_count()).unwrap_or(0);
            if source_partitions != changelog_partitions {
                return Err(TableError::PartitionsMismatch {
                    table: self.inner.name.clone(),
                    source_topic: message.topic.to_string(),
                    source_partitions,
                    changelog: self.inner.topic.to_string(),
                    changelog_partitions,
                });
            }
            lock(&self.inner.verified).insert(message.topic.to_string());
        }
        Ok(Some(message.partition))
    }

    /// Queues the change for the changelog; the event being processed (if any) is not
    /// committed before the broker has it and `then` (a durable store's update) ran.
    pub(crate) async fn send(
        &self,
        partition: Option<i32>,
        (key, value): (Bytes, Option<Bytes>),
        then: Option<AfterAck>,
    ) -> Result<(), TableError> {
        let failed = |source| TableError::Write {
            table: self.inner.name.clone(),
            source,
        };
        let client = ClientSource::client(&self.inner.app).await.map_err(|e| {
            failed(WriteError::Produce {
                topic: self.inner.topic.to_string(),
                source: Arc::new(e),
            })
        })?;
        let mut record = ProducerRecord::for_topic(Arc::clone(&self.inner.topic));
        record.partition = partition;
        record.key = Some(key);
        record.value = value;
        client.writes().room().await;
        let delivery = client.producer().enqueue(record).await.map_err(|e| {
            failed(WriteError::Produce {
                topic: self.inner.topic.to_string(),
                source: Arc::new(e),
            })
        })?;
        let writer: Arc<str> = Arc::from(format!("table {}", self.inner.name));
        // Named as a writer, the record is always followed (nothing is handed back).
        let followed =
            client
                .writes()
                .track_current(delivery, &self.inner.topic, then, Some(writer));
        debug_assert!(followed.is_none());
        Ok(())
    }

    /// Replaces the changelog's topic configs (a set table's changelog is not compacted).
    pub(crate) fn set_changelog_configs(&self, configs: Vec<(String, String)>) {
        lock(&self.inner.changelog).configs = configs;
    }

    /// Makes the table expire windows (a windowed table's inner table); its changelog is
    /// compacted and deleted after `expires`, as Faust's.
    pub(crate) fn set_expiry(&self, expiry: Expiry<K, V>) {
        if let Some(e) = expiry.window.expiry() {
            let ms = (e * 1000.0) as i64;
            let mut spec = lock(&self.inner.changelog);
            spec.configs = vec![
                ("cleanup.policy".into(), "compact,delete".into()),
                ("retention.ms".into(), ms.to_string()),
            ];
        }
        lock(&self.inner.options).expiry = Some(expiry);
    }

    /// Records an event time (seconds) seen in `partition`.
    pub(crate) fn note_time(&self, partition: i32, time: f64) {
        let mut latest = lock(&self.inner.latest);
        let t = latest.entry(partition).or_insert(time);
        if time > *t {
            *t = time;
        }
    }

    /// Removes the keys of expired windows (relative to the latest event time of their
    /// partition), calling `on_window_close` with each and its value. Returns how many.
    pub fn expire(&self) -> usize {
        let (window, start, on_close) = {
            let o = lock(&self.inner.options);
            let Some(e) = &o.expiry else { return 0 };
            (e.window, Arc::clone(&e.start), e.on_close.clone())
        };
        let latest = lock(&self.inner.latest).clone();
        let mut closed = Vec::new();
        {
            let mut parts = self.inner.partitions.lock();
            for (p, data) in parts.iter_mut() {
                let Some(&now) = latest.get(p) else { continue };
                closed.extend(data.remove_where(|k| window.stale(start(k), now)));
            }
        }
        if let Some(f) = on_close {
            for (k, v) in &closed {
                f(k, v);
            }
        }
        closed.len()
    }

    /// The partition of the event being processed, if any.
    pub(crate) fn event_partition(&self) -> Option<i32> {
        self.current_partition()
    }

    /// The stored value in `partition`, else the default.
    pub(crate) fn get_in(&self, partition: Option<i32>, key: &K) -> Option<V> {
        let stored = {
            let parts = self.inner.partitions.lock();
            let here = partition.and_then(|p| parts.get(&p).and_then(|d| d.get(key).cloned()));
            match (here, partition) {
                (Some(v), _) => Some(v),
                // A global table reads every key, whichever partition wrote it.
                (None, None) => parts.values().find_map(|d| d.get(key).cloned()),
                (None, Some(_)) if self.inner.global => {
                    parts.values().find_map(|d| d.get(key).cloned())
                }
                (None, Some(_)) => None,
            }
        };
        stored.or_else(|| lock(&self.inner.options).default.as_ref().map(|f| f()))
    }

    pub(crate) fn as_partitions(&self) -> Arc<dyn TablePartitions> {
        Arc::new(self.clone())
    }
}

impl<K: Model + Hash + Eq, V: Model> TablePartitions for Table<K, V> {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn changelog(&self) -> TopicSpec {
        lock(&self.inner.changelog).clone()
    }

    fn open(&self, partition: i32) -> Result<(), StoreError> {
        self.inner.partitions.open(partition);
        let Some(stored) = self.inner.store.open(&self.inner.name, partition)? else {
            return Ok(());
        };
        let (key_codec, value_codec) = {
            let o = lock(&self.inner.options);
            (Arc::clone(&o.key_codec), Arc::clone(&o.value_codec))
        };
        let mut data = PartitionData::default();
        let mut undecodable = 0usize;
        stored.for_each(|k, v| {
            let key = key_codec.decode(&Bytes::copy_from_slice(k));
            let value = value_codec.decode(&Bytes::copy_from_slice(v));
            match (key, value) {
                (Ok(k), Ok(v)) => data.set(k, v),
                _ => undecodable += 1,
            }
        })?;
        if undecodable > 0 {
            tracing::warn!(table = %self.inner.name, partition, undecodable,
                "stored keys or values do not decode (codec changed?): the stored partition is wiped and replayed from the changelog");
            stored.wipe()?;
            data = PartitionData::default();
        } else if let Some(applied) = stored.applied()? {
            data.mark_applied(applied);
        }
        tracing::debug!(table = %self.inner.name, partition, keys = data.len(), applied = ?data.applied(), "table partition loaded from the store");
        self.inner.partitions.lock().insert(partition, data);
        Ok(())
    }

    fn applied(&self, partition: i32) -> Option<i64> {
        self.inner.partitions.applied(partition)
    }

    fn wipe(&self, partition: i32) -> Result<(), StoreError> {
        self.inner.partitions.wipe(partition);
        self.inner.store.wipe(partition)
    }

    fn store_url(&self) -> Option<StoreUrl> {
        self.inner.store.url()
    }

    fn attach_store(&self, store: DurableStore) {
        self.inner.store.attach(store);
    }

    fn detach_store(&self) {
        self.inner.store.detach();
    }

    fn apply(&self, partition: i32, records: &[Record]) -> Result<usize, ApplyError> {
        let (key_codec, value_codec, hook, strict) = {
            let o = lock(&self.inner.options);
            (
                Arc::clone(&o.key_codec),
                Arc::clone(&o.value_codec),
                o.on_changelog_event.clone(),
                o.fail_on_bad_records,
            )
        };
        let bad = |offset: i64, source: CodecError| ApplyError::Undecodable {
            topic: self.inner.topic.to_string(),
            partition,
            offset,
            source,
        };
        let stored = self.inner.store.get(partition);
        let mut raw = Vec::with_capacity(if stored.is_some() { records.len() } else { 0 });
        let mut decoded = Vec::with_capacity(records.len());
        for r in records {
            let coordinate = || format!("{}[{}]@{}", self.inner.topic, partition, r.offset());
            let Some(kb) = r.key_bytes() else {
                if strict {
                    let e = CodecError::new::<K>("key", Direction::Decode, "no key");
                    return Err(bad(r.offset(), e));
                }
                tracing::error!(table = %self.inner.name, record = %coordinate(), "changelog record without a key skipped");
                continue;
            };
            let key = match key_codec.decode(&kb) {
                Ok(k) => k,
                Err(e) if strict => return Err(bad(r.offset(), e)),
                Err(e) => {
                    tracing::error!(table = %self.inner.name, record = %coordinate(), error = %e, "changelog key does not decode; skipped");
                    continue;
                }
            };
            let value = match r.value_bytes() {
                None => None,
                Some(vb) => match value_codec.decode(&vb) {
                    Ok(v) => Some(v),
                    Err(e) if strict => return Err(bad(r.offset(), e)),
                    Err(e) => {
                        tracing::error!(table = %self.inner.name, record = %coordinate(), error = %e, "changelog value does not decode; skipped");
                        continue;
                    }
                },
            };
            if let Some(h) = &hook {
                h(&key, value.as_ref());
            }
            decoded.push((key, value, r.offset()));
            if stored.is_some() {
                raw.push((kb, r.value_bytes()));
            }
        }
        let n = decoded.len();
        {
            let mut parts = self.inner.partitions.lock();
            let data = parts.entry(partition).or_default();
            for (k, v, offset) in decoded {
                data.apply(k, v, offset);
            }
            if let Some(last) = records.last() {
                data.mark_applied(last.offset());
            }
        }
        if let (Some(stored), Some(last)) = (stored, records.last()) {
            stored.write(
                raw.iter().map(|(k, v)| (&k[..], v.as_deref())),
                last.offset(),
            )?;
        }
        Ok(n)
    }

    fn recovered(&self, partition: i32) {
        let callbacks = lock(&self.inner.options).on_recover.clone();
        for f in callbacks {
            f(partition);
        }
    }

    fn close(&self, partition: i32) {
        self.inner.partitions.close(partition);
        self.inner.store.close(partition);
        lock(&self.inner.latest).remove(&partition);
    }

    fn cleanup(&self) -> usize {
        self.expire()
    }

    fn is_global(&self) -> bool {
        self.inner.global
    }

    fn mark_applied(&self, partition: i32, offset: i64) {
        self.inner.partitions.mark_applied(partition, offset);
    }
}
