//! Tables as the worker's partition tasks see them: [`TablePartitions`] (what a table does
//! with its partitions, implemented by the app's `Table`), [`Tables`] (the app's tables, with
//! a count of the partition tasks holding each table partition) and the recovery of a table
//! partition from its changelog.
//!
//! A table is co-partitioned with the topics it is written from: a partition task of a topic
//! with as many partitions as a table's changelog holds that table partition (the tasks of
//! several such topics share it). The first one to hold it recovers it before its stream
//! starts: it reads the changelog partition from after the offset the data already includes
//! (from the log start when none) up to the high watermark of the moment, then the task
//! processes its events. The last one to let it go closes it (the memory store forgets it).
//!
//! Recovery always ends: an empty changelog (high watermark 0), a compacted or trimmed one
//! (it starts at the log start), one that ends with transaction markers (read committed; the
//! fetcher's position passes control batches), one written on while the stream waits (the
//! end is the first high watermark seen), an offset recorded beyond the high watermark or
//! before the log start (the changelog was recreated or trimmed: the partition is wiped and
//! replayed, with a warning). A record that does not decode is logged with its coordinates
//! and skipped, or fails the recovery when the table says so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mephisto_engine::fetcher::{
    FetchError, FetchPosition, Fetcher, FetcherConfig, IsolationLevel, OffsetReset, TopicPartition,
};
use mephisto_wire::record::Record;

use crate::core::codec::CodecError;
use crate::runtime::client::Client;
use crate::runtime::error::RuntimeError;
use crate::runtime::topics::TopicSpec;
use crate::state::durable::{DurableStore, StoreError};
use crate::state::store::StoreUrl;

/// Why changelog records could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The durable store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record does not decode, and the table fails its recovery on one.
    #[error("changelog record {topic}[{partition}]@{offset} does not decode: {source}")]
    Undecodable {
        /// The changelog.
        topic: String,
        /// Its partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// Why.
        #[source]
        source: CodecError,
    },
}

/// What a table does with its partitions (the app's `Table` implements it).
pub trait TablePartitions: Send + Sync + 'static {
    /// The table's name.
    fn name(&self) -> &str;
    /// Its changelog topic (name, partitions, configs).
    fn changelog(&self) -> TopicSpec;
    /// Starts holding `partition` (empty, or as a durable store left it).
    fn open(&self, partition: i32) -> Result<(), StoreError>;
    /// The offset of the last changelog record `partition`'s data includes.
    fn applied(&self, partition: i32) -> Option<i64>;
    /// Forgets `partition`'s data, stored copy included (its changelog is replayed from the
    /// start).
    fn wipe(&self, partition: i32) -> Result<(), StoreError>;
    /// Applies changelog records of `partition` (to its stored copy too, with the last
    /// offset); a record that does not decode is logged and skipped (or is an error, when the
    /// table fails its recovery on one). Returns how many were applied.
    fn apply(&self, partition: i32, records: &[Record]) -> Result<usize, ApplyError>;
    /// Where the table keeps its partitions, when it says (else the app's `store`).
    fn store_url(&self) -> Option<StoreUrl>;
    /// Keeps the partitions in `store` from now on (the worker opened it before any
    /// partition).
    fn attach_store(&self, store: DurableStore);
    /// Lets go of the durable store (the worker stopped).
    fn detach_store(&self);
    /// `partition` is recovered: callbacks run.
    fn recovered(&self, partition: i32);
    /// Stops holding `partition`.
    fn close(&self, partition: i32);
    /// Removes what expired (a windowed table's old windows); returns how many keys.
    fn cleanup(&self) -> usize;
    /// Whether every worker holds every partition (Faust's `GlobalTable`).
    fn is_global(&self) -> bool {
        false
    }
    /// Records that `partition`'s data includes the changelog up to `offset` (a record this
    /// worker wrote itself).
    fn mark_applied(&self, partition: i32, offset: i64);
}

/// A global table's tail: which partitions this worker writes (their changelog records are
/// its own writes, already applied), and whether the tail has caught up once.
#[derive(Debug)]
struct Global {
    active: Mutex<std::collections::HashSet<i32>>,
    caught_up: tokio::sync::watch::Sender<bool>,
}

/// A table partition's recovery as the worker shows it ([`Tables::progress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryProgress {
    /// The table.
    pub table: String,
    /// The partition.
    pub partition: i32,
    /// Changelog records read so far.
    pub records: u64,
    /// The changelog's high watermark last seen.
    pub high_watermark: i64,
    /// The next offset to read (`None` before the first fetch).
    pub position: Option<i64>,
    /// Whether it is done.
    pub done: bool,
    /// Milliseconds since it started (until it ended, once done).
    pub elapsed_ms: u64,
}

impl RecoveryProgress {
    /// Records left to read, as far as the last high watermark tells.
    pub fn records_left(&self) -> i64 {
        self.position
            .map(|p| (self.high_watermark - p).max(0))
            .unwrap_or(self.high_watermark)
    }

    /// Records read per second so far.
    pub fn rate(&self) -> f64 {
        self.records as f64 * 1000.0 / self.elapsed_ms.max(1) as f64
    }
}

/// What a recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records read from the changelog.
    pub records: u64,
    /// The changelog's high watermark it stopped at.
    pub high_watermark: i64,
}

/// What an [`Tables::acquire`] of one partition got so far.
#[derive(Debug, Default)]
pub struct Acquiring {
    /// Tables (by index) whose partition it holds.
    held: Vec<usize>,
    /// The table whose partition it was opening or recovering.
    opening: Option<usize>,
}

/// How many partition tasks hold a table partition, behind a lock held through its recovery.
type Holders = Arc<tokio::sync::Mutex<usize>>;

/// The app's tables and the table partitions held by partition tasks.
#[derive(Default)]
pub struct Tables {
    tables: Vec<Arc<dyn TablePartitions>>,
    /// Partition tasks holding each (table index, partition), and a lock that makes the
    /// second holder wait until the first has recovered it.
    held: Mutex<HashMap<(usize, i32), Holders>>,
    /// How long a recovery waits for one fetch before it looks at the high watermark again.
    poll: Duration,
    /// The tails of global tables, by table index.
    globals: HashMap<usize, Arc<Global>>,
    /// Recoveries of this worker, by (table, partition): the running ones and the last of
    /// each.
    progress: Mutex<std::collections::BTreeMap<(String, i32), RecoveryProgress>>,
    /// The durable stores the tables use (each once).
    stores: Mutex<Vec<DurableStore>>,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables")
            .field(
                "tables",
                &self
                    .tables
                    .iter()
                    .map(|t| t.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Tables {
    /// The app's tables.
    pub fn new(tables: Vec<Arc<dyn TablePartitions>>) -> Self {
        let globals = tables
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_global())
            .map(|(i, _)| {
                (
                    i,
                    Arc::new(Global {
                        active: Mutex::new(Default::default()),
                        caught_up: tokio::sync::watch::channel(false).0,
                    }),
                )
            })
            .collect();
        Tables {
            tables,
            held: Mutex::new(HashMap::new()),
            poll: Duration::from_millis(100),
            globals,
            progress: Mutex::new(Default::default()),
            stores: Mutex::new(Vec::new()),
        }
    }

    /// The app's tables, some of them in the durable `stores` (already attached to them).
    pub fn with_stores(tables: Vec<Arc<dyn TablePartitions>>, stores: Vec<DurableStore>) -> Self {
        Tables {
            stores: Mutex::new(stores),
            ..Tables::new(tables)
        }
    }

    /// Writes the durable stores' journals to disk (the worker calls it every commit interval
    /// and when it stops): a crash of the machine then loses at most what came after.
    pub fn persist(&self) -> Result<(), StoreError> {
        let stores = lock(&self.stores).clone();
        for store in &stores {
            store.persist()?;
        }
        Ok(())
    }

    /// Writes the durable stores' memtables out (a clean stop): the next start opens them
    /// without replaying their journals.
    pub fn flush_stores(&self) -> Result<(), StoreError> {
        let stores = lock(&self.stores).clone();
        for store in &stores {
            store.flush()?;
        }
        Ok(())
    }

    /// Lets go of the durable stores (the worker stopped): each closes once nothing holds it.
    pub fn detach_stores(&self) {
        for t in &self.tables {
            t.detach_store();
        }
        lock(&self.stores).clear();
    }

    /// Whether any table is kept in a durable store.
    pub fn has_stores(&self) -> bool {
        !lock(&self.stores).is_empty()
    }

    /// Starts the tails of the global tables: each reads every partition of its changelog,
    /// from the start, for as long as the worker runs (the tasks are returned to be aborted
    /// with it). Partitions this worker writes are not applied again from the changelog.
    pub fn start_global(&self, client: &Arc<Client>) -> Vec<tokio::task::JoinHandle<()>> {
        self.globals
            .iter()
            .map(|(i, g)| {
                tokio::spawn(tail_global(
                    Arc::clone(client),
                    Arc::clone(&self.tables[*i]),
                    Arc::clone(g),
                    self.poll,
                ))
            })
            .collect()
    }

    /// Whether the app has tables.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The table partitions' recoveries: those running, and the last one of each.
    pub fn progress(&self) -> Vec<RecoveryProgress> {
        lock(&self.progress).values().cloned().collect()
    }

    /// Removes expired windows from every table (the worker calls it every
    /// `table_cleanup_interval`).
    pub fn cleanup(&self) -> usize {
        self.tables.iter().map(|t| t.cleanup()).sum()
    }

    fn co_partitioned(&self, partitions: usize) -> impl Iterator<Item = usize> + '_ {
        self.tables.iter().enumerate().filter_map(move |(i, t)| {
            let n = t
                .changelog()
                .partitions
                .and_then(|n| usize::try_from(n).ok());
            (n == Some(partitions)).then_some(i)
        })
    }

    fn holder(&self, key: (usize, i32)) -> Holders {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(held.entry(key).or_default())
    }

    /// Holds `partition` of every table co-partitioned with a topic of `topic_partitions`
    /// partitions, recovering those nobody held. Returns the tables recovered and what it
    /// took. What it got so far is in `progress`: if this fails or is cancelled (the
    /// partition was revoked, the worker stops), [`abandon`](Self::abandon) lets it go.
    pub async fn acquire(
        &self,
        client: &Client,
        topic_partitions: usize,
        partition: i32,
        progress: &mut Acquiring,
    ) -> Result<Vec<(String, Recovery)>, RuntimeError> {
        let mut recovered = Vec::new();
        for i in self.co_partitioned(topic_partitions).collect::<Vec<_>>() {
            let holder = self.holder((i, partition));
            let mut count = holder.lock().await;
            if *count == 0 {
                progress.opening = Some(i);
                let table = &self.tables[i];
                if let Some(global) = self.globals.get(&i) {
                    // Held already (the tail applies every partition): wait until the tail
                    // caught up, then this worker writes the partition.
                    let mut caught_up = global.caught_up.subscribe();
                    let _ = caught_up.wait_for(|c| *c).await;
                    lock(&global.active).insert(partition);
                    *count += 1;
                    continue;
                }
                table
                    .open(partition)
                    .map_err(|source| RuntimeError::Store {
                        table: table.name().to_owned(),
                        partition,
                        source: Box::new(source),
                    })?;
                let started = Instant::now();
                let key = (table.name().to_owned(), partition);
                let report = |p: &RecoveryProgress| {
                    lock(&self.progress).insert(key.clone(), p.clone());
                };
                let r = recover(client, table.as_ref(), partition, self.poll, &report).await?;
                tracing::info!(
                    table = table.name(),
                    partition,
                    records = r.records,
                    high_watermark = r.high_watermark,
                    ms = started.elapsed().as_millis() as u64,
                    "table partition recovered"
                );
                table.recovered(partition);
                recovered.push((table.name().to_owned(), r));
            }
            *count += 1;
            progress.opening = None;
            progress.held.push(i);
        }
        Ok(recovered)
    }

    /// Lets go of what an [`acquire`](Self::acquire) that failed or was cancelled got: the
    /// table partitions it held are released, the one it was recovering is closed (its
    /// partial data forgotten; a durable store keeps what it applied, with its offset).
    pub async fn abandon(&self, partition: i32, progress: Acquiring) {
        if let Some(i) = progress.opening {
            let holder = self.holder((i, partition));
            let count = holder.lock().await;
            if *count == 0 && !self.globals.contains_key(&i) {
                self.tables[i].close(partition);
                let key = (self.tables[i].name().to_owned(), partition);
                lock(&self.progress).remove(&key);
            }
        }
        for i in progress.held {
            self.release_one(i, partition).await;
        }
    }

    /// Lets go of what [`acquire`](Self::acquire) held; the last holder closes the table
    /// partition.
    pub async fn release(&self, topic_partitions: usize, partition: i32) {
        for i in self.co_partitioned(topic_partitions).collect::<Vec<_>>() {
            self.release_one(i, partition).await;
        }
    }

    async fn release_one(&self, i: usize, partition: i32) {
        let holder = self.holder((i, partition));
        let mut count = holder.lock().await;
        *count = count.saturating_sub(1);
        if *count == 0 {
            match self.globals.get(&i) {
                Some(global) => {
                    lock(&global.active).remove(&partition);
                }
                None => self.tables[i].close(partition),
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tails every partition of a global table's changelog: applies what other workers write,
/// records its own writes as applied, and says when it first reached the high watermarks.
async fn tail_global(
    client: Arc<Client>,
    table: Arc<dyn TablePartitions>,
    global: Arc<Global>,
    poll: Duration,
) {
    let spec = table.changelog();
    let partitions = spec.partitions.unwrap_or(0);
    let fetcher = match Fetcher::new(
        client.cluster().clone(),
        FetcherConfig::default().with_max_wait(poll),
    ) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(table = table.name(), error = %e, "cannot read the global table's changelog");
            return;
        }
    };
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(spec.name.as_str(), p))
        .collect();
    for tp in &tps {
        if let Err(e) = table.open(tp.partition) {
            tracing::error!(table = table.name(), error = %e, "cannot open the global table's store");
            return;
        }
        let start = match table.applied(tp.partition) {
            Some(offset) => FetchPosition::Offset(offset + 1),
            None => FetchPosition::Earliest,
        };
        if let Err(e) = fetcher.assign(tp.clone(), start) {
            tracing::error!(table = table.name(), error = %e, "cannot read the global table's changelog");
            return;
        }
    }
    let mut records: Vec<Record> = Vec::new();
    loop {
        if !*global.caught_up.borrow() {
            let done = tps.iter().all(|tp| {
                matches!(
                    (fetcher.position(tp), fetcher.high_watermark(tp)),
                    (Some(p), Some(h)) if p >= h
                )
            });
            if done {
                tracing::info!(table = table.name(), partitions, "global table recovered");
                for tp in &tps {
                    table.recovered(tp.partition);
                }
                global.caught_up.send_replace(true);
            }
        }
        let batch = match tokio::time::timeout(poll, fetcher.next_batch()).await {
            Err(_) => continue,
            Ok(Err(FetchError::Closed)) => return,
            Ok(Err(e)) => {
                tracing::warn!(table = table.name(), error = %e, "reading the global table's changelog");
                tokio::time::sleep(poll).await;
                continue;
            }
            Ok(Ok(batch)) => batch,
        };
        records.clear();
        if let Ok(it) = batch.records() {
            records.extend(it.filter_map(Result::ok));
        }
        let Some(last) = records.last().map(Record::offset) else {
            continue;
        };
        if lock(&global.active).contains(&batch.partition) {
            // This worker's own writes, applied when they were made.
            table.mark_applied(batch.partition, last);
        } else if let Err(e) = table.apply(batch.partition, &records) {
            tracing::error!(table = table.name(), error = %e, "the global table's store failed; the tail stops");
            return;
        }
    }
}

/// Reads `partition` of `table`'s changelog from after what its data includes up to the high
/// watermark, applying every record.
pub async fn recover(
    client: &Client,
    table: &dyn TablePartitions,
    partition: i32,
    poll: Duration,
    report: &(dyn Fn(&RecoveryProgress) + Sync),
) -> Result<Recovery, RuntimeError> {
    let started = Instant::now();
    let mut logged = Instant::now();
    let mut progress = RecoveryProgress {
        table: table.name().to_owned(),
        partition,
        records: 0,
        high_watermark: 0,
        position: None,
        done: false,
        elapsed_ms: 0,
    };
    let topic = table.changelog().name;
    let tp = TopicPartition::new(topic.as_str(), partition);
    // Committed records only (a transactional writer's aborted changes are not the table's;
    // up to the last stable offset, markers passed over).
    // Out of range is not a reason to jump (Kafka answers so for an offset past the end):
    // the data no longer matches the changelog, and is wiped and replayed.
    let fetcher = Fetcher::new(
        client.cluster().clone(),
        FetcherConfig::default()
            .with_max_wait(poll)
            .with_auto_offset_reset(OffsetReset::None)
            .with_isolation_level(IsolationLevel::ReadCommitted),
    )?;
    let start = match table.applied(partition) {
        Some(offset) => FetchPosition::Offset(offset + 1),
        None => FetchPosition::Earliest,
    };
    fetcher.assign(tp.clone(), start)?;
    let failed = |source: FetchError| RuntimeError::Recovery {
        table: table.name().to_owned(),
        partition,
        source,
    };
    let store_failed = |source: StoreError| RuntimeError::Store {
        table: table.name().to_owned(),
        partition,
        source: Box::new(source),
    };
    let reader = fetcher.reader(&tp).ok_or(failed(FetchError::Closed))?;
    let mut recovery = Recovery::default();
    let mut records: Vec<Record> = Vec::new();
    let mut wiped = false;
    let mut target: Option<i64> = None;
    loop {
        progress.records = recovery.records;
        progress.position = fetcher.position(&tp);
        progress.high_watermark = target
            .or(fetcher.high_watermark(&tp))
            .unwrap_or(recovery.high_watermark);
        progress.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        report(&progress);
        if logged.elapsed() >= Duration::from_secs(5) {
            logged = Instant::now();
            tracing::info!(
                table = table.name(),
                partition,
                records = progress.records,
                left = progress.records_left(),
                rate = progress.rate() as u64,
                "recovering table partition"
            );
        }
        if let (Some(position), Some(high)) = (fetcher.position(&tp), fetcher.high_watermark(&tp)) {
            if position > high && !wiped {
                // The changelog holds less than the data includes: it was recreated.
                tracing::warn!(
                    table = table.name(),
                    partition,
                    applied = position - 1,
                    high_watermark = high,
                    "the table's data is ahead of its changelog (recreated?): wiped and replayed"
                );
                table.wipe(partition).map_err(store_failed)?;
                wiped = true;
                fetcher.seek(&tp, FetchPosition::Earliest)?;
                continue;
            }
            // The end is the high watermark first seen (Kafka Streams restores to the end
            // offset of its start, Faust to its first highwater): a changelog written on
            // while the stream waits does not keep the recovery going.
            let end = *target.get_or_insert(high);
            recovery.high_watermark = end;
            if position >= end {
                break;
            }
        }
        let next = tokio::time::timeout(poll, reader.next_batch()).await;
        let batch = match next {
            Err(_elapsed) => continue,
            Ok(None) => return Err(failed(FetchError::Closed)),
            Ok(Some(Err(FetchError::OffsetOutOfRange { offset, .. }))) if !wiped => {
                // Past the end (the changelog was recreated) or before its start (retention
                // removed records the data lacks): what the data holds cannot be trusted.
                tracing::warn!(
                    table = table.name(),
                    partition,
                    offset,
                    "the table's data does not match its changelog (recreated or trimmed?): wiped and replayed"
                );
                table.wipe(partition).map_err(store_failed)?;
                wiped = true;
                fetcher.seek(&tp, FetchPosition::Earliest)?;
                continue;
            }
            Ok(Some(Err(e))) => return Err(failed(e)),
            Ok(Some(Ok(batch))) => batch,
        };
        records.clear();
        match batch.records() {
            Ok(it) => {
                for r in it {
                    match r {
                        Ok(r) => records.push(r),
                        Err(e) => tracing::error!(
                            table = table.name(), partition, batch_offset = batch.start_offset(), error = %e,
                            "invalid changelog record skipped"
                        ),
                    }
                }
            }
            Err(e) => tracing::error!(
                table = table.name(), partition, batch_offset = batch.start_offset(), error = %e,
                "changelog batch does not decode; skipped"
            ),
        }
        table
            .apply(partition, &records)
            .map_err(|source| RuntimeError::Changelog {
                table: table.name().to_owned(),
                partition,
                source: Box::new(source),
            })?;
        recovery.records += records.len() as u64;
    }
    fetcher.close();
    progress.records = recovery.records;
    progress.position = Some(recovery.high_watermark);
    progress.high_watermark = recovery.high_watermark;
    progress.done = true;
    progress.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report(&progress);
    Ok(recovery)
}
