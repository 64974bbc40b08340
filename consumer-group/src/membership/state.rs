//! The member's internal state: where it is in the join cycle, and what it holds.

use std::collections::VecDeque;
use std::time::Instant;

use super::request::{Coordinator, RequestBody, RequestId, SyncAssignment, Target};
use crate::assignor::MemberSubscription;

/// The generation we belong to, from a successful JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Generation {
    /// The generation id.
    pub(crate) id: i32,
    /// Index of the chosen assignor in the member's list.
    pub(crate) assignor: usize,
    /// Whether the chosen assignor is cooperative.
    pub(crate) cooperative: bool,
}

/// Where the member is in the join cycle.
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    /// No subscription (never subscribed, unsubscribed, closed or failed).
    Idle,
    /// Wants to send JoinGroup as soon as it may (coordinator known, revocations acknowledged,
    /// backoff over, application polling).
    Unjoined,
    /// JoinGroup in flight.
    Joining { request: RequestId },
    /// Leader: waiting for the metadata to assign with (`request` is `None` until sent).
    Assigning {
        request: Option<RequestId>,
        members: Vec<MemberSubscription>,
    },
    /// SyncGroup to send (`request` `None`) or in flight.
    Syncing {
        request: Option<RequestId>,
        generation: i32,
        assignments: Vec<SyncAssignment>,
    },
    /// Member of a generation with an assignment.
    Stable,
}

/// Why the member is leaving: LeaveGroup (dynamic members) follows once every revocation is
/// acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leave {
    /// The subscription became empty: leave, then stay idle until subscribed again.
    Unsubscribe,
    /// `close()`: leave, then report `Closed`.
    Close,
}

/// A heartbeat in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InFlightHeartbeat {
    pub(crate) request: RequestId,
    pub(crate) generation: i32,
    pub(crate) sent_at: Instant,
}

/// Heartbeat bookkeeping.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heartbeats {
    /// The heartbeat in flight (at most one).
    pub(crate) in_flight: Option<InFlightHeartbeat>,
    /// When the next heartbeat may be sent.
    pub(crate) next_at: Option<Instant>,
    /// Send time of the last successful heartbeat (or the completion of the join): the
    /// session is lost `session_timeout` after it.
    pub(crate) session_anchor: Option<Instant>,
}

impl Heartbeats {
    /// Forgets everything (generation gone).
    pub(crate) fn clear(&mut self) {
        *self = Heartbeats::default();
    }
}

/// Requests queued for sending regardless of phase (LeaveGroup after max poll).
pub(crate) type Outbox = VecDeque<(Target, RequestBody)>;

/// Close progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Not closing.
    Open,
    /// LeaveGroup sent; waiting for its answer.
    AwaitingLeave(RequestId),
    /// Done.
    Closed,
}

/// The coordinator and its lookup.
#[derive(Debug, Clone, Default)]
pub(crate) struct CoordinatorState {
    pub(crate) known: Option<Coordinator>,
    pub(crate) lookup: Option<RequestId>,
}
