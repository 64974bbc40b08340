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
//! (it starts at the log start), one that ends with transaction markers (the fetcher's
//! position passes control batches), an offset recorded beyond the high watermark (the
//! changelog was recreated: the partition is wiped and replayed, with a warning). A record
//! that does not decode is logged with its coordinates and skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mephisto_engine::fetcher::{FetchError, FetchPosition, Fetcher, FetcherConfig, TopicPartition};
use mephisto_wire::record::Record;

use crate::runtime::client::Client;
use crate::runtime::error::RuntimeError;
use crate::runtime::topics::TopicSpec;

/// What a table does with its partitions (the app's `Table` implements it).
pub trait TablePartitions: Send + Sync + 'static {
    /// The table's name.
    fn name(&self) -> &str;
    /// Its changelog topic (name, partitions, configs).
    fn changelog(&self) -> TopicSpec;
    /// Starts holding `partition` (empty, or as a durable store left it).
    fn open(&self, partition: i32);
    /// The offset of the last changelog record `partition`'s data includes.
    fn applied(&self, partition: i32) -> Option<i64>;
    /// Forgets `partition`'s data (its changelog is replayed from the start).
    fn wipe(&self, partition: i32);
    /// Applies changelog records of `partition`; a record that does not decode is logged and
    /// skipped. Returns how many were applied.
    fn apply(&self, partition: i32, records: &[Record]) -> usize;
    /// `partition` is recovered: callbacks run.
    fn recovered(&self, partition: i32);
    /// Stops holding `partition`.
    fn close(&self, partition: i32);
    /// Removes what expired (a windowed table's old windows); returns how many keys.
    fn cleanup(&self) -> usize;
}

/// What a recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records read from the changelog.
    pub records: u64,
    /// The changelog's high watermark it stopped at.
    pub high_watermark: i64,
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
        Tables {
            tables,
            held: Mutex::new(HashMap::new()),
            poll: Duration::from_millis(100),
        }
    }

    /// Whether the app has tables.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
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
    /// took.
    pub async fn acquire(
        &self,
        client: &Client,
        topic_partitions: usize,
        partition: i32,
    ) -> Result<Vec<(String, Recovery)>, RuntimeError> {
        let mut recovered = Vec::new();
        for i in self.co_partitioned(topic_partitions).collect::<Vec<_>>() {
            let holder = self.holder((i, partition));
            let mut count = holder.lock().await;
            if *count == 0 {
                let table = &self.tables[i];
                table.open(partition);
                let started = Instant::now();
                let r = recover(client, table.as_ref(), partition, self.poll).await?;
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
        }
        Ok(recovered)
    }

    /// Lets go of what [`acquire`](Self::acquire) held; the last holder closes the table
    /// partition.
    pub async fn release(&self, topic_partitions: usize, partition: i32) {
        for i in self.co_partitioned(topic_partitions).collect::<Vec<_>>() {
            let holder = self.holder((i, partition));
            let mut count = holder.lock().await;
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.tables[i].close(partition);
            }
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
) -> Result<Recovery, RuntimeError> {
    let topic = table.changelog().name;
    let tp = TopicPartition::new(topic.as_str(), partition);
    let fetcher = Fetcher::new(
        client.cluster().clone(),
        FetcherConfig::default().with_max_wait(poll),
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
    let reader = fetcher.reader(&tp).ok_or(failed(FetchError::Closed))?;
    let mut recovery = Recovery::default();
    let mut records: Vec<Record> = Vec::new();
    let mut wiped = false;
    loop {
        if let (Some(position), Some(high)) = (fetcher.position(&tp), fetcher.high_watermark(&tp)) {
            recovery.high_watermark = high;
            if position > high && !wiped {
                // The changelog holds less than the data includes: it was recreated.
                tracing::warn!(
                    table = table.name(),
                    partition,
                    applied = position - 1,
                    high_watermark = high,
                    "the table's data is ahead of its changelog (recreated?): wiped and replayed"
                );
                table.wipe(partition);
                wiped = true;
                fetcher.seek(&tp, FetchPosition::Earliest)?;
                continue;
            }
            if position >= high {
                break;
            }
        }
        let next = tokio::time::timeout(poll, reader.next_batch()).await;
        let batch = match next {
            Err(_elapsed) => continue,
            Ok(None) => return Err(failed(FetchError::Closed)),
            Ok(Some(Err(e))) => return Err(failed(e)),
            Ok(Some(Ok(batch))) => batch,
        };
        recovery.high_watermark = batch.high_watermark;
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
        table.apply(partition, &records);
        recovery.records += records.len() as u64;
    }
    fetcher.close();
    Ok(recovery)
}
