//! Offset tracking for out-of-order acks, and the commit policy, as pure code.
//!
//! - [`PartitionWindow`]: one partition's delivered-but-not-committable offsets. Acks in
//!   any order; the committable offset is the end of the contiguous acked run, skipping
//!   offsets the fetch never delivered (compaction, transaction markers). Bounded memory.
//! - [`OffsetTracker`]: every owned partition, plus the commit policy (Faust's
//!   `broker_commit_interval` and `broker_commit_every`, and forced commits before a revoke
//!   or on close) as decisions: [`OffsetTracker::poll_commit`] returns what to commit.
//! - [`classify_commit_error`]: what an OffsetCommit error means for the commit; the
//!   group-level reaction is the member's
//!   ([`Member::handle_commit_error`](crate::membership::Member::handle_commit_error)).

mod commit_error;
mod config;
mod error;
mod tracker;
mod window;

pub use commit_error::{classify_commit_error, CommitErrorKind};
pub use config::CommitConfig;
pub use error::TrackError;
pub use tracker::{
    commit_response_errors, CommitId, CommitOutcome, OffsetTracker, OffsetsToCommit,
    PartitionHandle,
};
pub use window::{PartitionWindow, MAX_CONSUMERS};
