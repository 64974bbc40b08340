//! Consumer-group membership for Mephisto, as pure code driven by events and time.
//!
//! # Layout
//! - [`assignor`]: the [`Assignor`] trait and the `range`, `roundrobin`, `cooperative-sticky`
//!   and `mephisto-standby` assignors.
//! - [`membership`]: the classic group protocol state machine (FindCoordinator, JoinGroup,
//!   SyncGroup, Heartbeat, LeaveGroup) with events and time in, requests and decisions out.
//! - [`offsets`]: offset tracking for out-of-order acks and the commit policy.
//! - [`topic_partition`]: [`TopicPartition`], the partition key all of them share.
//!
//! `topic_partition` is the leaf the others share; no two top-level modules import each
//! other, directly or around a loop. This crate opens no sockets and reads no clock: the
//! engine drives it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod assignor;
pub mod membership;
pub mod offsets;
pub mod topic_partition;

pub use assignor::{Assignor, GroupAssignment, MemberAssignment, MemberSubscription};
pub use topic_partition::TopicPartition;
