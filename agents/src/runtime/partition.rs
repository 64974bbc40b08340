//! The partition task: one per assigned source partition, as Kafka Streams has tasks and Faust
//! active partitions. It owns its partition's fetched batches, decodes each record once per
//! route (agents reading the topic as the same types), records the offsets in the partition's
//! acks as delivered to every subscribed agent, and queues the events. An event is committed
//! once every agent that got it acked it (and its writes were acknowledged).
//!
//! Flow control is per partition: when an agent's queue is full the task waits and pauses its
//! partition (its fetching stops, the others go on). It ends when the partition is revoked or
//! lost, or when the worker stops; it then stops the partition's own agent instances
//! (`isolated_partitions`). A batch that does not decode (a decompression bomb, a corrupt
//! codec stream) is logged with its coordinates, dead-lettered raw for the agents that have a
//! dead-letter topic, and skipped; an invalid record inside a batch costs only that record.
//!
//! It is shaped for what tables add: a table partition's recovery runs before the loop, its
//! changelog writes go with the events' writes, and its flush comes before the revocation's
//! commit (the task keeps the partition in processing until then).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mephisto_engine::group::{AssignedPartition, Ownership};

use crate::core::ack::Acker;
use crate::core::event::Message;
use crate::runtime::acker::PartitionAcker;
use crate::runtime::client::Client;
use crate::runtime::error::RuntimeError;
use crate::runtime::route::{OpenRoute, Stop, TopicRoute};
use crate::runtime::tables::{Acquiring, Tables};

/// What a partition task reports to the worker.
pub(crate) struct Progress {
    started: Instant,
    /// Milliseconds from `started` to the task's last step (taking or delivering a batch, or
    /// waiting for data).
    last: AtomicU64,
    /// Set while the task waits for a batch (it is not stuck).
    idle: AtomicBool,
    /// The last batch handed out reached the partition's high watermark (as its fetch
    /// response reported it).
    caught_up: AtomicBool,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Progress {
            started: Instant::now(),
            last: AtomicU64::new(0),
            idle: AtomicBool::new(true),
            caught_up: AtomicBool::new(true),
        }
    }

    /// Whether the task waits for data with everything it was given delivered, its last
    /// batch having reached the high watermark.
    pub(crate) fn is_quiet(&self) -> bool {
        self.idle.load(Ordering::Relaxed) && self.caught_up.load(Ordering::Relaxed)
    }

    fn mark(&self, idle: bool) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
        self.idle.store(idle, Ordering::Relaxed);
    }

    /// How long since the task last moved, unless it is waiting for data.
    pub(crate) fn stuck_for(&self) -> Option<std::time::Duration> {
        if self.idle.load(Ordering::Relaxed) {
            return None;
        }
        let since = std::time::Duration::from_millis(self.last.load(Ordering::Relaxed));
        Some(self.started.elapsed().saturating_sub(since))
    }
}

/// The app's tables, for a partition task to hold its table partitions.
pub(crate) struct TableContext {
    pub(crate) tables: Arc<Tables>,
    pub(crate) client: Arc<Client>,
    /// Where a failed recovery is reported (the worker stops with it).
    pub(crate) failed: tokio::sync::mpsc::UnboundedSender<RuntimeError>,
}

/// Holds the partition's table partitions (recovering them first), unless the partition is
/// lost or the worker stops meanwhile. Returns the topic's partition count to release them
/// with, `None` when nothing is held.
async fn hold_tables(
    context: &TableContext,
    assigned: &AssignedPartition,
    stop: &mut Stop,
) -> Result<Option<usize>, ()> {
    if context.tables.is_empty() {
        return Ok(None);
    }
    let partition = assigned.partition();
    let mut progress = Acquiring::default();
    let acquire = async {
        let meta = context.client.cluster().topic(&partition.topic).await?;
        let n = meta.partitions.len();
        context
            .tables
            .acquire(&context.client, n, partition.partition, &mut progress)
            .await?;
        Ok::<usize, RuntimeError>(n)
    };
    let mut lost = assigned.acks().watch_ownership();
    let held = tokio::select! {
        held = acquire => match held {
            Ok(n) => Ok(Some(n)),
            Err(e) => {
                tracing::error!(%partition, error = %e, "table recovery failed; the partition's events are not processed and the worker stops");
                let _ = context.failed.send(e);
                Err(())
            }
        },
        _ = stop.changed() => Err(()),
        _ = lost.wait_for(|o| *o != Ownership::Owned) => {
            tracing::info!(%partition, "partition revoked during its tables' recovery; the recovery stops");
            Err(())
        }
    };
    if held.is_err() {
        context.tables.abandon(partition.partition, progress).await;
    }
    held
}

/// Runs one partition until it is no longer ours or the worker stops.
pub(crate) async fn run(
    assigned: AssignedPartition,
    routes: Arc<[Arc<dyn TopicRoute>]>,
    tables: TableContext,
    stopping: Arc<AtomicBool>,
    mut stop: Stop,
    progress: Arc<Progress>,
) {
    let partition = assigned.partition().clone();
    // Recovering is waiting, not being stuck; the worker is not idle before it is done.
    progress.caught_up.store(false, Ordering::Relaxed);
    let Ok(held_tables) = hold_tables(&tables, &assigned, &mut stop).await else {
        return;
    };
    progress.caught_up.store(true, Ordering::Relaxed);
    let acks = Arc::clone(assigned.acks());
    let acker: Arc<dyn Acker> = Arc::new(PartitionAcker::new(Arc::clone(&acks), stopping));
    let consumers: u32 = routes.iter().map(|r| r.consumers()).sum();
    let mut open: Vec<Box<dyn OpenRoute>> = Vec::with_capacity(routes.len());
    let mut first = 0u32;
    for route in routes.iter() {
        match route.open(
            partition.partition,
            Arc::clone(&acker),
            u8::try_from(first).unwrap_or(u8::MAX),
        ) {
            Ok(o) => open.push(o),
            Err(e) => {
                tracing::error!(%partition, error = %e, "cannot start the partition's agents; its records are not processed");
                close(open).await;
                return;
            }
        }
        first += route.consumers();
    }
    tracing::debug!(%partition, consumers, "partition task started");
    let mut messages: Vec<Message> = Vec::new();
    loop {
        progress.mark(true);
        let item = tokio::select! {
            item = assigned.next_batch() => item,
            _ = stop.changed() => None,
        };
        progress.mark(false);
        let Some(item) = item else {
            break;
        };
        let batch = match item {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(%partition, error = %e, "fetching the partition failed");
                continue;
            }
        };
        let records = match batch.records() {
            Ok(records) => records,
            Err(e) => {
                let what = format!(
                    "batch {}[{}]@{}..{}",
                    partition.topic,
                    partition.partition,
                    batch.start_offset(),
                    batch.next_offset()
                );
                tracing::error!(batch = %what, error = %e, "batch does not decode; skipped");
                for route in &open {
                    route
                        .dead_letter_batch(
                            batch.batch.as_bytes().clone(),
                            what.clone(),
                            e.to_string(),
                        )
                        .await;
                }
                acks.advance_to(batch.next_offset());
                continue;
            }
        };
        messages.clear();
        for record in records {
            match record {
                Ok(record) => messages.push(Message {
                    topic: Arc::clone(&partition.topic),
                    partition: partition.partition,
                    record,
                }),
                Err(e) => tracing::error!(
                    %partition, batch_offset = batch.start_offset(), error = %e,
                    "invalid record in batch; skipped"
                ),
            }
        }
        if !messages.is_empty() {
            while acks.room() < messages.len() && acks.is_owned() && !*stop.borrow() {
                tokio::select! {
                    () = acks.wait_for_room() => {}
                    _ = stop.changed() => {}
                }
            }
            let (delivered, refused) =
                acks.deliver_all(messages.iter().map(Message::offset), consumers);
            if let Some(e) = refused {
                tracing::warn!(%partition, error = %e, "records not delivered");
                messages.truncate(delivered);
            }
            let mut stopped_at = None;
            let routes = open.len();
            for (i, route) in open.iter_mut().enumerate() {
                if !route
                    .deliver(&mut messages, i + 1 == routes, &assigned, &mut stop)
                    .await
                {
                    stopped_at = Some(i);
                    break;
                }
            }
            if let Some(i) = stopped_at {
                // The routes after the one that stopped never got this batch.
                for route in open.iter().skip(i + 1) {
                    route.give_up(&messages);
                }
                break;
            }
        }
        acks.advance_to(batch.next_offset());
        progress.caught_up.store(
            batch.next_offset() >= batch.high_watermark,
            Ordering::Relaxed,
        );
    }
    close(open).await;
    if let Some(n) = held_tables {
        tables.tables.release(n, partition.partition).await;
    }
    tracing::debug!(%partition, ownership = ?assigned.ownership(), "partition task ended");
}

async fn close(open: Vec<Box<dyn OpenRoute>>) {
    for route in open {
        route.close().await;
    }
}
