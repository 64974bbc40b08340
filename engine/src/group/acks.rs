//! [`PartitionAcks`]: the processed prefix of one assigned partition, kept where its records
//! are processed and read by the group driver for commits.
//!
//! The per-offset window (consumer-group's [`PartitionWindow`]) sits behind a mutex of its
//! own, one per partition: an ack takes that lock, updates one slot (O(1) for consecutive
//! offsets) and publishes the committable offset and the number of offsets in processing
//! through atomics. The driver reads only those atomics; it never takes the window's lock, and
//! the ack path never takes the driver's. Acks of an assignment that is over go to its own
//! (detached) object and count for nothing.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mephisto_consumer_group::offsets::{PartitionWindow, TrackError};
use tokio::sync::{watch, Notify};

use crate::producer::TopicPartition;

/// Whether a partition is still ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ownership {
    /// Assigned: process its records.
    Owned,
    /// Given up cleanly: finish what is in processing (its offsets are committed once it is
    /// done, or after the drain deadline); process nothing new.
    Revoked,
    /// Lost without commit (session expired, fenced): stop; what is processed now is read
    /// again by the next owner.
    Lost,
}

impl Ownership {
    fn code(self) -> u8 {
        match self {
            Ownership::Owned => 0,
            Ownership::Revoked => 1,
            Ownership::Lost => 2,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            0 => Ownership::Owned,
            1 => Ownership::Revoked,
            _ => Ownership::Lost,
        }
    }
}

/// Ack counts shared by every partition of one consumer: wakes the driver each time `every`
/// more offsets are acked (the commit policy's count), and when a revoked partition has
/// nothing left in processing.
#[derive(Debug)]
pub(crate) struct AckCounter {
    acked: AtomicU64,
    next_wake: AtomicU64,
    every: u64,
    wake: Arc<Notify>,
}

impl AckCounter {
    pub(crate) fn new(every: u64, wake: Arc<Notify>) -> Self {
        let every = every.max(1);
        Self {
            acked: AtomicU64::new(0),
            next_wake: AtomicU64::new(every),
            every,
            wake,
        }
    }

    /// Offsets acked since the consumer started.
    pub(crate) fn total(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// `k` more offsets acked (one shared update for a group of acks).
    fn count(&self, k: u64) {
        if k == 0 {
            return;
        }
        let n = self.acked.fetch_add(k, Ordering::Relaxed) + k;
        if n >= self.next_wake.load(Ordering::Relaxed) {
            self.next_wake.store(n + self.every, Ordering::Relaxed);
            self.wake.notify_one();
        }
    }

    fn wake_driver(&self) {
        self.wake.notify_one();
    }
}

/// The acks of one assignment of one partition; see the [module docs](self).
///
/// Offsets are [delivered](Self::deliver_to) in increasing order (each to consumers `0..n`),
/// then [acked](Self::ack_by) by each consumer in any order; [`hold`](Self::hold) delays an
/// offset (a write it caused is not acknowledged yet) until [`release`](Self::release),
/// [`abandon_by`](Self::abandon_by) gives one up without processing (it is not committed in
/// this assignment). The committable offset is the end of the finished prefix.
#[derive(Debug)]
pub struct PartitionAcks {
    partition: TopicPartition,
    window: Mutex<PartitionWindow>,
    committable: AtomicI64,
    in_processing: AtomicUsize,
    ownership: AtomicU8,
    ownership_tx: watch::Sender<Ownership>,
    /// A deliverer waits for room in the window.
    wants_room: AtomicBool,
    room: Notify,
    /// Someone waits for the committable offset to move.
    wants_progress: AtomicBool,
    progress: Notify,
    counter: Arc<AckCounter>,
}

impl PartitionAcks {
    pub(crate) fn new(
        partition: TopicPartition,
        position: i64,
        capacity: usize,
        counter: Arc<AckCounter>,
    ) -> Self {
        Self {
            partition,
            window: Mutex::new(PartitionWindow::new(position, capacity.max(1))),
            committable: AtomicI64::new(position),
            in_processing: AtomicUsize::new(0),
            ownership: AtomicU8::new(Ownership::Owned.code()),
            ownership_tx: watch::Sender::new(Ownership::Owned),
            wants_room: AtomicBool::new(false),
            room: Notify::new(),
            wants_progress: AtomicBool::new(false),
            progress: Notify::new(),
            counter,
        }
    }

    /// The partition.
    pub fn partition(&self) -> &TopicPartition {
        &self.partition
    }

    fn window(&self) -> MutexGuard<'_, PartitionWindow> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes what the driver reads; wakes the driver when a revoked partition's drain is
    /// over, and a deliverer waiting for room when there is some.
    fn publish(&self, w: &PartitionWindow) {
        self.committable.store(w.committable(), Ordering::Release);
        let busy = w.in_processing();
        self.in_processing.store(busy, Ordering::Release);
        if busy == 0 && self.ownership() == Ownership::Revoked {
            self.counter.wake_driver();
        }
        if self.wants_progress.load(Ordering::Acquire)
            && self.wants_progress.swap(false, Ordering::AcqRel)
        {
            self.progress.notify_waiters();
        }
        if self.wants_room.load(Ordering::Acquire) && w.room() * 2 >= w.capacity() {
            self.wants_room.store(false, Ordering::Release);
            self.room.notify_waiters();
        }
    }

    /// Records that `offset` was handed to one consumer.
    pub fn deliver(&self, offset: i64) -> Result<(), TrackError> {
        self.deliver_to(offset, 1)
    }

    /// Records that `offset` was handed to consumers `0..consumers` (at most 32), each of
    /// which acks it once. [`TrackError::WindowFull`] when the window has no room: wait with
    /// [`wait_for_room`](Self::wait_for_room).
    pub fn deliver_to(&self, offset: i64, consumers: u32) -> Result<(), TrackError> {
        let mut w = self.window();
        w.delivered_with(offset, consumers)?;
        self.publish(&w);
        Ok(())
    }

    /// Delivers each offset of `offsets` to `consumers` consumers, in one lock, stopping at
    /// the first refusal; returns how many were delivered and the refusal, if any.
    pub fn deliver_all(
        &self,
        offsets: impl IntoIterator<Item = i64>,
        consumers: u32,
    ) -> (usize, Option<TrackError>) {
        let mut w = self.window();
        let mut n = 0;
        let mut refused = None;
        for offset in offsets {
            if let Err(e) = w.delivered_with(offset, consumers) {
                refused = Some(e);
                break;
            }
            n += 1;
        }
        self.publish(&w);
        (n, refused)
    }

    /// Room for this many more deliveries.
    pub fn room(&self) -> usize {
        self.window().room()
    }

    /// Waits until at least half the window is free again (after a
    /// [`TrackError::WindowFull`]).
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.wants_room.store(true, Ordering::Release);
            {
                let w = self.window();
                if w.room() * 2 >= w.capacity() || self.ownership() != Ownership::Owned {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Waits until the record at `offset` is processed (the committable offset is past it);
    /// returns `false` if the partition stops being ours first.
    pub async fn wait_processed(&self, offset: i64) -> bool {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.wants_progress.store(true, Ordering::Release);
            if self.committable() > offset {
                return true;
            }
            if !self.is_owned() {
                return false;
            }
            notified.await;
        }
    }

    /// Offsets between the last delivery and `next` are gaps (the end of a fetched batch,
    /// past transaction markers or records not handed out): once everything delivered is
    /// done, the committable offset is `next`.
    pub fn advance_to(&self, next: i64) {
        let mut w = self.window();
        w.advance_to(next);
        self.publish(&w);
    }

    /// Consumer 0 finished `offset` (the single-consumer case of [`ack_by`](Self::ack_by)).
    pub fn ack(&self, offset: i64) -> Result<bool, TrackError> {
        self.ack_by(offset, 0)
    }

    /// Consumer `consumer` finished `offset`. `Ok(false)` for a repeated ack of that
    /// consumer. Errors are caller bugs (an offset never delivered).
    pub fn ack_by(&self, offset: i64, consumer: u8) -> Result<bool, TrackError> {
        let acked = self.update(|w| w.acked_by(offset, consumer))?;
        if acked {
            self.counter.count(1);
        }
        Ok(acked)
    }

    /// Consumer `consumer` finished every offset of `offsets`, in one lock. Offsets already
    /// done are skipped; the first error (an offset never delivered) stops it.
    pub fn ack_many(
        &self,
        offsets: impl IntoIterator<Item = i64>,
        consumer: u8,
    ) -> Result<usize, TrackError> {
        let mut acked = 0;
        let result = {
            let mut w = self.window();
            let mut result = Ok(());
            for offset in offsets {
                match w.acked_by(offset, consumer) {
                    Ok(true) => acked += 1,
                    Ok(false) => {}
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if acked > 0 {
                self.publish(&w);
            }
            result
        };
        self.counter.count(acked as u64);
        result.map(|()| acked)
    }

    /// Keeps `offset` from being done until a matching [`release`](Self::release) (a write
    /// it caused is in flight). `Ok(false)` if it is already done.
    pub fn hold(&self, offset: i64) -> Result<bool, TrackError> {
        self.update(|w| w.hold(offset))
    }

    /// Removes a [`hold`](Self::hold) of `offset` (its write finished).
    pub fn release(&self, offset: i64) -> Result<bool, TrackError> {
        self.update(|w| w.release(offset))
    }

    /// Consumer `consumer` gives `offset` up without processing it (stopped before it, or
    /// the partition was revoked while it waited): it is never committed in this assignment.
    pub fn abandon_by(&self, offset: i64, consumer: u8) -> Result<bool, TrackError> {
        self.update(|w| w.abandon_by(offset, consumer))
    }

    fn update(
        &self,
        f: impl FnOnce(&mut PartitionWindow) -> Result<bool, TrackError>,
    ) -> Result<bool, TrackError> {
        let mut w = self.window();
        let changed = f(&mut w)?;
        if changed {
            self.publish(&w);
        }
        Ok(changed)
    }

    /// The offset a commit would carry now (the next offset to read).
    pub fn committable(&self) -> i64 {
        self.committable.load(Ordering::Acquire)
    }

    /// Delivered offsets not finished yet (acks or held writes outstanding).
    pub fn in_processing(&self) -> usize {
        self.in_processing.load(Ordering::Acquire)
    }

    /// Whether the partition is still ours.
    pub fn ownership(&self) -> Ownership {
        Ownership::from_code(self.ownership.load(Ordering::Acquire))
    }

    /// Whether the partition is still ours (one atomic load: cheap to check per record).
    pub fn is_owned(&self) -> bool {
        self.ownership.load(Ordering::Acquire) == Ownership::Owned.code()
    }

    /// Follows ownership changes.
    pub fn watch_ownership(&self) -> watch::Receiver<Ownership> {
        self.ownership_tx.subscribe()
    }

    pub(crate) fn set_ownership(&self, ownership: Ownership) {
        self.ownership.store(ownership.code(), Ordering::Release);
        self.ownership_tx.send_replace(ownership);
        // Deliverers waiting for room and callers waiting for progress stop waiting.
        self.room.notify_waiters();
        self.progress.notify_waiters();
        if ownership == Ownership::Revoked && self.in_processing() == 0 {
            self.counter.wake_driver();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(capacity: usize) -> PartitionAcks {
        let counter = Arc::new(AckCounter::new(3, Arc::new(Notify::new())));
        PartitionAcks::new(TopicPartition::new("t", 0), 5, capacity, counter)
    }

    #[test]
    fn the_committable_offset_and_the_count_in_processing_are_published() {
        let a = acks(8);
        assert_eq!(a.committable(), 5);
        let (n, refused) = a.deliver_all([5, 6, 8], 2);
        assert_eq!((n, refused), (3, None));
        a.advance_to(10);
        assert_eq!(a.in_processing(), 3);
        for (offset, consumer) in [(6, 0), (5, 0), (6, 1)] {
            assert_eq!(a.ack_by(offset, consumer), Ok(true));
        }
        assert_eq!(a.ack_by(6, 1), Ok(false), "a repeated ack");
        assert_eq!(a.committable(), 5);
        assert_eq!(a.ack_by(5, 1), Ok(true));
        assert_eq!(a.committable(), 8);
        assert_eq!(a.hold(8), Ok(true));
        a.ack_by(8, 0).unwrap();
        a.ack_by(8, 1).unwrap();
        assert_eq!(a.committable(), 8);
        assert_eq!(a.release(8), Ok(true));
        assert_eq!(a.committable(), 10);
        assert_eq!(a.in_processing(), 0);
        assert_eq!(a.counter.total(), 6);
    }

    #[test]
    fn a_full_window_refuses_and_reports_room_once_drained() {
        let a = acks(2);
        let (n, refused) = a.deliver_all([5, 6, 7], 1);
        assert_eq!(n, 2);
        assert_eq!(refused, Some(TrackError::WindowFull { capacity: 2 }));
        assert_eq!(a.room(), 0);
        a.ack(5).unwrap();
        assert_eq!(a.room(), 1);
    }

    #[tokio::test]
    async fn waiting_for_room_ends_when_acks_free_half_the_window_or_the_partition_goes() {
        let a = Arc::new(acks(2));
        a.deliver_all([5, 6], 1);
        let waiter = tokio::spawn({
            let a = Arc::clone(&a);
            async move { a.wait_for_room().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        a.ack(5).unwrap();
        waiter.await.unwrap();

        a.deliver(7).unwrap();
        let waiter = tokio::spawn({
            let a = Arc::clone(&a);
            async move { a.wait_for_room().await }
        });
        tokio::task::yield_now().await;
        a.set_ownership(Ownership::Lost);
        waiter.await.unwrap();
        assert!(!a.is_owned());
    }
}
