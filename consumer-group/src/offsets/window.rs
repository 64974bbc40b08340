//! One partition's window of delivered, not yet committable offsets.
//!
//! Records are delivered in offset order, possibly with gaps (compaction, transaction
//! markers, aborted records); acks arrive in any order. The committable offset (the next
//! offset to read, as OffsetCommit expects) is the smallest delivered offset not yet acked,
//! or one past the last delivered offset once all are acked. Offsets never delivered are
//! gaps and never block it (Faust's "hole at the head" stall cannot happen).
//!
//! # Memory bound
//! The window holds one 16-byte entry per delivered offset from the smallest unacked one to
//! the last delivered one, and never more than `capacity` entries: [`PartitionWindow::delivered`]
//! refuses more with [`TrackError::WindowFull`], and the engine must stop handing out records
//! of that partition until acks drain the window. The worst case is `16 * capacity` bytes per
//! partition (plus `VecDeque` slack, at most double), reached only while that many records
//! are in flight behind one unacked record.

use std::collections::VecDeque;

use super::error::TrackError;

/// The outstanding offsets of one partition.
#[derive(Debug, Clone)]
pub struct PartitionWindow {
    /// Delivered offsets, ascending, each with its ack flag. The front is never acked (acked
    /// fronts are dropped at once).
    outstanding: VecDeque<(i64, bool)>,
    /// The committable offset when `outstanding` is empty: one past the last delivered
    /// offset, or the starting position.
    next: i64,
    /// The last delivered offset, if any.
    last_delivered: Option<i64>,
    capacity: usize,
}

impl PartitionWindow {
    /// A window starting at `position` (the next offset to read), holding at most
    /// `capacity` outstanding offsets.
    pub fn new(position: i64, capacity: usize) -> Self {
        Self {
            outstanding: VecDeque::new(),
            next: position,
            last_delivered: None,
            capacity,
        }
    }

    /// Records that `offset` was delivered. Offsets must increase; skipped offsets are gaps.
    pub fn delivered(&mut self, offset: i64) -> Result<(), TrackError> {
        let floor = self
            .last_delivered
            .map_or(self.next, |l| l.saturating_add(1));
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
        self.outstanding.push_back((offset, false));
        self.last_delivered = Some(offset);
        self.next = offset + 1;
        Ok(())
    }

    /// Records that `offset` was processed. Returns `Ok(true)` if this ack is new, `Ok(false)`
    /// for a repeated ack or an offset already behind the committable one.
    pub fn acked(&mut self, offset: i64) -> Result<bool, TrackError> {
        if offset < self.committable() {
            return Ok(false);
        }
        let Some(index) = self.index_of(offset) else {
            return Err(TrackError::NotDelivered { offset });
        };
        let Some(entry) = self.outstanding.get_mut(index) else {
            return Err(TrackError::NotDelivered { offset });
        };
        if entry.1 {
            return Ok(false);
        }
        entry.1 = true;
        while self.outstanding.front().is_some_and(|(_, acked)| *acked) {
            self.outstanding.pop_front();
        }
        Ok(true)
    }

    /// Where `offset` sits in `outstanding`. Offsets are usually consecutive, so the slot
    /// `offset - front` is tried first (one load); only gaps (compaction, transaction markers)
    /// fall back to a binary search.
    fn index_of(&self, offset: i64) -> Option<usize> {
        let front = self.outstanding.front()?.0;
        let guess = usize::try_from(offset.checked_sub(front)?).ok()?;
        if self
            .outstanding
            .get(guess)
            .is_some_and(|(o, _)| *o == offset)
        {
            return Some(guess);
        }
        self.outstanding
            .binary_search_by_key(&offset, |(o, _)| *o)
            .ok()
    }

    /// The offset to commit: the smallest unacked delivered offset, else one past the last
    /// delivered offset, else the starting position.
    pub fn committable(&self) -> i64 {
        self.outstanding.front().map_or(self.next, |(o, _)| *o)
    }

    /// Number of outstanding entries (never above the capacity).
    pub fn len(&self) -> usize {
        self.outstanding.len()
    }

    /// Whether every delivered offset is acked.
    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// The capacity given at creation.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
