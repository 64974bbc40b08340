//! One partition's window of delivered, not yet committable offsets.
//!
//! Records are delivered in offset order, possibly with gaps (compaction, transaction
//! markers, aborted records); acks arrive in any order. The committable offset (the next
//! offset to read, as OffsetCommit expects) is the smallest delivered offset not yet done,
//! or one past the last delivered offset (or the end given to [`PartitionWindow::advance_to`])
//! once all are done. Offsets never delivered are gaps and never block it (Faust's "hole at
//! the head" stall cannot happen).
//!
//! # Consumers and holds
//! An offset can be delivered to several consumers at once (every agent subscribed to a topic
//! gets each event): [`PartitionWindow::delivered_with`] delivers it to consumers `0..n` (at
//! most [`MAX_CONSUMERS`]), each of which acks it once with [`PartitionWindow::acked_by`] (a
//! repeated ack of the same consumer changes nothing); the offset is done when every consumer
//! acked it and no hold is left. [`PartitionWindow::hold`] adds a hold (a write the offset
//! caused must finish before it counts as processed), [`PartitionWindow::release`] removes one.
//! [`PartitionWindow::abandon_by`] acks for a consumer that gives the offset up without
//! processing it: the offset is then never committable in this window (its record is read
//! again by the next owner), but it no longer counts as
//! [in processing](PartitionWindow::in_processing) once its holds are released.
//!
//! # Memory bound
//! The window holds one 16-byte entry per delivered offset from the smallest unfinished one
//! to the last delivered one, and never more than `capacity` entries:
//! [`PartitionWindow::delivered`] refuses more with [`TrackError::WindowFull`], and the caller
//! must stop handing out records of that partition until acks drain the window. The worst case
//! is `16 * capacity` bytes per partition (plus `VecDeque` slack, at most double), reached only
//! while that many records are in flight behind one unfinished record.

use std::collections::VecDeque;

use super::error::TrackError;

/// Most consumers one offset can be delivered to.
pub const MAX_CONSUMERS: u32 = 32;

/// One delivered offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    offset: i64,
    /// Consumers that have not acked it yet, one bit each.
    pending: u32,
    /// Writes it caused that are not finished.
    holds: u16,
    /// Given up by a consumer: never committable.
    abandoned: bool,
}

impl Entry {
    fn busy(self) -> bool {
        self.pending != 0 || self.holds != 0
    }

    fn finished(self) -> bool {
        !self.busy() && !self.abandoned
    }
}

/// The outstanding offsets of one partition.
#[derive(Debug, Clone)]
pub struct PartitionWindow {
    /// Delivered offsets, ascending. The front is never finished (finished fronts are
    /// dropped at once).
    outstanding: VecDeque<Entry>,
    /// The committable offset when `outstanding` is empty: one past the last delivered
    /// offset, the starting position, or where [`PartitionWindow::advance_to`] moved it.
    next: i64,
    /// Entries still busy (consumers or holds left).
    busy: usize,
    capacity: usize,
}

/// What a change did to an entry's busy count.
enum Change {
    Unchanged,
    Changed,
}

impl PartitionWindow {
    /// A window starting at `position` (the next offset to read), holding at most
    /// `capacity` outstanding offsets.
    pub fn new(position: i64, capacity: usize) -> Self {
        Self {
            outstanding: VecDeque::new(),
            next: position,
            busy: 0,
            capacity,
        }
    }

    /// Records that `offset` was delivered to one consumer (consumer 0). Offsets must
    /// increase; skipped offsets are gaps.
    pub fn delivered(&mut self, offset: i64) -> Result<(), TrackError> {
        self.delivered_with(offset, 1)
    }

    /// Records that `offset` was delivered to consumers `0..consumers` (1 to
    /// [`MAX_CONSUMERS`]; out-of-range counts are clamped), each of which acks it once.
    pub fn delivered_with(&mut self, offset: i64, consumers: u32) -> Result<(), TrackError> {
        // `next` is one past the last delivery, or further after `advance_to`.
        let floor = self.next;
        if offset < floor {
            return Err(TrackError::OutOfOrder {
                offset,
                expected_at_least: floor,
            });
        }
        if offset == i64::MAX {
            return Err(TrackError::OffsetOverflow);
        }
        if self.outstanding.len() >= self.capacity {
            return Err(TrackError::WindowFull {
                capacity: self.capacity,
            });
        }
        let consumers = consumers.clamp(1, MAX_CONSUMERS);
        let pending = if consumers == 32 {
            u32::MAX
        } else {
            (1u32 << consumers) - 1
        };
        self.outstanding.push_back(Entry {
            offset,
            pending,
            holds: 0,
            abandoned: false,
        });
        self.busy += 1;
        self.next = offset + 1;
        Ok(())
    }

    /// Room for this many more deliveries.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.outstanding.len())
    }

    /// Moves the committable offset for when every delivered offset is done to `next`, if it
    /// is ahead: offsets between the last delivery and `next` are gaps (the end of a fetched
    /// batch whose last records were transaction markers, or a batch skipped as undecodable).
    pub fn advance_to(&mut self, next: i64) {
        if next > self.next {
            self.next = next;
        }
    }

    /// Consumer 0 finished `offset` (the single-consumer case of [`acked_by`](Self::acked_by)).
    pub fn acked(&mut self, offset: i64) -> Result<bool, TrackError> {
        self.acked_by(offset, 0)
    }

    /// Consumer `consumer` finished `offset`. Returns `Ok(true)` if this ack is new,
    /// `Ok(false)` for a repeated ack or an offset already behind the committable one.
    pub fn acked_by(&mut self, offset: i64, consumer: u8) -> Result<bool, TrackError> {
        self.change(offset, |e| {
            let bit = 1u32.checked_shl(u32::from(consumer)).unwrap_or(0);
            if e.pending & bit == 0 {
                return Change::Unchanged;
            }
            e.pending &= !bit;
            Change::Changed
        })
    }

    /// Consumer 0 gives `offset` up (the single-consumer case of
    /// [`abandon_by`](Self::abandon_by)).
    pub fn abandon(&mut self, offset: i64) -> Result<bool, TrackError> {
        self.abandon_by(offset, 0)
    }

    /// Consumer `consumer` gives `offset` up without processing it: the offset stays
    /// uncommittable in this window (see this module's docs). Same results as
    /// [`acked_by`](Self::acked_by).
    pub fn abandon_by(&mut self, offset: i64, consumer: u8) -> Result<bool, TrackError> {
        self.change(offset, |e| {
            let bit = 1u32.checked_shl(u32::from(consumer)).unwrap_or(0);
            if e.pending & bit == 0 {
                return Change::Unchanged;
            }
            e.pending &= !bit;
            e.abandoned = true;
            Change::Changed
        })
    }

    /// Adds a hold to `offset` if it is still in processing (a write that must finish
    /// before it counts as processed). `Ok(false)` if it is already done (or holds are at
    /// their limit, 65 535).
    pub fn hold(&mut self, offset: i64) -> Result<bool, TrackError> {
        self.change(offset, |e| {
            if !e.busy() || e.holds == u16::MAX {
                return Change::Unchanged;
            }
            e.holds += 1;
            Change::Changed
        })
    }

    /// Removes a hold of `offset`. `Ok(false)` if it had none.
    pub fn release(&mut self, offset: i64) -> Result<bool, TrackError> {
        self.change(offset, |e| {
            if e.holds == 0 {
                return Change::Unchanged;
            }
            e.holds -= 1;
            Change::Changed
        })
    }

    fn change(
        &mut self,
        offset: i64,
        f: impl FnOnce(&mut Entry) -> Change,
    ) -> Result<bool, TrackError> {
        if offset < self.committable() {
            return Ok(false);
        }
        let index = self
            .index_of(offset)
            .ok_or(TrackError::NotDelivered { offset })?;
        let Some(entry) = self.outstanding.get_mut(index) else {
            return Err(TrackError::NotDelivered { offset });
        };
        let was_busy = entry.busy();
        if let Change::Unchanged = f(entry) {
            return Ok(false);
        }
        if was_busy && !entry.busy() {
            self.busy -= 1;
        }
        while self.outstanding.front().is_some_and(|e| e.finished()) {
            self.outstanding.pop_front();
        }
        Ok(true)
    }

    /// Where `offset` sits in `outstanding`. Offsets are usually consecutive, so the slot
    /// `offset - front` is tried first (one load); only gaps (compaction, transaction markers)
    /// fall back to a binary search.
    fn index_of(&self, offset: i64) -> Option<usize> {
        let front = self.outstanding.front()?.offset;
        let guess = usize::try_from(offset.checked_sub(front)?).ok()?;
        if self
            .outstanding
            .get(guess)
            .is_some_and(|e| e.offset == offset)
        {
            return Some(guess);
        }
        self.outstanding
            .binary_search_by_key(&offset, |e| e.offset)
            .ok()
    }

    /// The offset to commit: the smallest unfinished delivered offset, else one past the last
    /// delivered offset (or where [`advance_to`](Self::advance_to) moved it), else the starting
    /// position.
    pub fn committable(&self) -> i64 {
        self.outstanding.front().map_or(self.next, |e| e.offset)
    }

    /// Number of outstanding entries (never above the capacity).
    pub fn len(&self) -> usize {
        self.outstanding.len()
    }

    /// Whether every delivered offset is done.
    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// Delivered offsets still in processing (a consumer or a hold left); abandoned and
    /// finished ones do not count.
    pub fn in_processing(&self) -> usize {
        self.busy
    }

    /// The capacity given at creation.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_offsets_are_done_when_every_consumer_acked() {
        let mut w = PartitionWindow::new(10, 8);
        w.delivered_with(10, 2).unwrap();
        w.delivered_with(11, 2).unwrap();
        assert_eq!(w.acked_by(11, 1), Ok(true));
        assert_eq!(w.acked_by(10, 0), Ok(true));
        assert_eq!(
            w.acked_by(10, 0),
            Ok(false),
            "a repeated ack changes nothing"
        );
        assert_eq!(w.committable(), 10);
        assert_eq!(w.acked_by(10, 1), Ok(true));
        assert_eq!(w.committable(), 11);
        assert_eq!(w.acked_by(11, 0), Ok(true));
        assert_eq!(w.committable(), 12);
        assert_eq!(w.acked_by(11, 0), Ok(false));
        assert_eq!(w.in_processing(), 0);
    }

    #[test]
    fn a_hold_keeps_the_offset_in_processing() {
        let mut w = PartitionWindow::new(0, 8);
        w.delivered(0).unwrap();
        assert_eq!(w.hold(0), Ok(true));
        assert_eq!(w.acked(0), Ok(true));
        assert_eq!(w.committable(), 0);
        assert_eq!(w.in_processing(), 1);
        assert_eq!(w.release(0), Ok(true));
        assert_eq!(w.committable(), 1);
        assert_eq!(w.hold(0), Ok(false));
        assert_eq!(w.release(0), Ok(false));
    }

    #[test]
    fn an_abandoned_offset_blocks_the_commit_but_is_not_in_processing() {
        let mut w = PartitionWindow::new(0, 8);
        for o in 0..3 {
            w.delivered(o).unwrap();
        }
        assert_eq!(w.acked(0), Ok(true));
        assert_eq!(w.abandon(1), Ok(true));
        assert_eq!(w.acked(2), Ok(true));
        assert_eq!(w.committable(), 1);
        assert_eq!(w.in_processing(), 0);
        assert_eq!(w.acked(1), Ok(false));
    }

    #[test]
    fn thirty_two_consumers_fit() {
        let mut w = PartitionWindow::new(0, 8);
        w.delivered_with(0, 40).unwrap();
        for c in 0..32 {
            assert_eq!(w.acked_by(0, c), Ok(true));
        }
        assert_eq!(w.committable(), 1);
    }

    #[test]
    fn advance_moves_past_trailing_gaps_once_everything_is_done() {
        let mut w = PartitionWindow::new(0, 8);
        w.delivered(0).unwrap();
        w.advance_to(5);
        assert_eq!(w.committable(), 0);
        w.acked(0).unwrap();
        assert_eq!(w.committable(), 5);
        assert_eq!(
            w.delivered(3),
            Err(TrackError::OutOfOrder {
                offset: 3,
                expected_at_least: 5
            })
        );
        w.delivered(5).unwrap();
        w.advance_to(4);
        w.acked(5).unwrap();
        assert_eq!(w.committable(), 6);
    }
}
