//! What the member tells the application (through the engine): assignment changes, lost
//! membership and fatal errors.

use std::collections::BTreeSet;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use mephisto_wire::consumer_protocol::ConsumerProtocolError;

use super::request::ApiKind;
use crate::topic_partition::TopicPartition;

/// A set of partitions, sorted.
pub type PartitionSet = BTreeSet<TopicPartition>;

/// Something the application must react to. Drain with
/// [`Member::poll_event`](super::Member::poll_event) after every input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// A SyncGroup completed. `partitions` are the partitions newly ours (all of them for
    /// eager assignors, only the added ones for cooperative ones); a partition is never
    /// reported assigned again before it was revoked or lost.
    Assigned {
        /// Partitions added to what we own.
        partitions: PartitionSet,
        /// The generation they belong to (commit offsets with it).
        generation: i32,
        /// The assignor's user data for us (e.g. standby partitions).
        user_data: Option<Bytes>,
    },
    /// Partitions we give up cleanly: commit their offsets now, then call
    /// [`Member::revocation_done`](super::Member::revocation_done). The member sends no
    /// JoinGroup or LeaveGroup until every `Revoked` is acknowledged (heartbeats go on).
    /// Eager assignors revoke everything before rejoining; cooperative ones only what moves.
    Revoked {
        /// Partitions no longer ours.
        partitions: PartitionSet,
    },
    /// Partitions that are no longer ours without a clean revoke (session timeout, fenced,
    /// generation reset, max poll exceeded): do not commit them, drop them.
    Lost {
        /// Partitions no longer ours.
        partitions: PartitionSet,
    },
    /// The application did not call [`Member::record_poll`](super::Member::record_poll)
    /// within `max_poll_interval`: the member left the group and rejoins on the next poll.
    MaxPollExceeded,
    /// [`Member::close`](super::Member::close) finished: the member sends nothing more.
    Closed,
    /// Unrecoverable: the member stops. Sticky: nothing is sent afterwards.
    Fatal(GroupError),
}

/// Errors that stop the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The broker answered with an error the Java client treats as fatal (e.g.
    /// FENCED_INSTANCE_ID on Join/Sync, INCONSISTENT_GROUP_PROTOCOL, INVALID_SESSION_TIMEOUT,
    /// GROUP_MAX_SIZE_REACHED, GROUP_AUTHORIZATION_FAILED).
    #[error("{api} failed: {error} (code {code})", code = error.code())]
    Broker {
        /// The API that failed.
        api: ApiKind,
        /// The error.
        error: ResponseError,
    },
    /// The broker supports no usable version of an API.
    #[error("{api}: {message}")]
    Unsupported {
        /// The API.
        api: ApiKind,
        /// The engine's explanation.
        message: String,
    },
    /// The coordinator chose a protocol we did not advertise.
    #[error("coordinator chose protocol {0:?}, which we did not advertise")]
    UnknownProtocol(Option<String>),
    /// As leader, a member's subscription could not be decoded.
    #[error("member `{member}` sent a subscription we cannot read: {source}")]
    BadSubscription {
        /// The member.
        member: String,
        /// The decoding error.
        source: ConsumerProtocolError,
    },
    /// Our assignment (from SyncGroup) could not be decoded.
    #[error("cannot read our assignment: {0}")]
    BadAssignment(ConsumerProtocolError),
    /// Our subscription or an assignment could not be encoded.
    #[error("cannot encode a consumer protocol payload: {0}")]
    Encode(ConsumerProtocolError),
    /// The chosen assignor failed.
    #[error("assignor `{assignor}` failed: {message}")]
    Assignor {
        /// The assignor.
        assignor: &'static str,
        /// Its error.
        message: String,
    },
}
