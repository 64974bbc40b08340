//! A counting global allocator for allocation tests and the bench binaries: allocations, live
//! and peak bytes of the Rust heap (what Mephisto allocates; librdkafka's C `malloc`s do not
//! go through it), off unless [`enable`] is called, so that it costs one relaxed load per
//! allocation when off. The count is process-wide: every thread's allocations count.
//!
//! The binary installs it with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Live bytes allocated while enabled (frees of blocks allocated before count too, so it can
/// go below zero: read it through [`live_bytes`]).
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// [`System`], counting live and peak bytes once [`enable`]d.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

#[inline]
fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes as isize, Ordering::Relaxed) + bytes as isize;
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    if live > 0 {
        PEAK.fetch_max(live as usize, Ordering::Relaxed);
    }
}

#[inline]
fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes as isize, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ENABLED.load(Ordering::Relaxed) {
            shrank(layout.size());
        }
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Starts counting: live bytes from now on, and the peak from zero.
pub fn enable() {
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    ENABLED.store(true, Ordering::Relaxed);
}

/// Stops counting (the figures stay readable).
pub fn disable() {
    ENABLED.store(false, Ordering::Relaxed);
}

/// Whether counting is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Bytes allocated since [`enable`] and not freed (blocks from before it that were freed
/// count negatively).
pub fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Highest [`live_bytes`] since [`enable`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Allocations (and growing reallocations) since [`enable`].
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}
