//! Classification of OffsetCommit errors, as the Java client's
//! `ConsumerCoordinator.OffsetCommitResponseHandler`.
//!
//! The group-level consequences (rejoin, reset, rediscover, fatal) are the member's:
//! forward the error to [`Member::handle_commit_error`](crate::membership::Member::handle_commit_error).
//! This classification tells the offset tracker whether the commit may be retried.

use kafka_protocol::error::ResponseError;

/// What an OffsetCommit error means for the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitErrorKind {
    /// Transient (COORDINATOR_LOAD_IN_PROGRESS, UNKNOWN_TOPIC_OR_PARTITION, a timeout): retry.
    Retriable,
    /// The coordinator moved or is unreachable (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
    /// REQUEST_TIMED_OUT, no response): retry once it is found again.
    CoordinatorMoved,
    /// REBALANCE_IN_PROGRESS: not committed; the group rejoins, commit after the rebalance.
    RebalanceInProgress,
    /// ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID: our generation is gone; these offsets can never
    /// be committed (the Java client's `CommitFailedException`).
    MembershipLost,
    /// OFFSET_METADATA_TOO_LARGE, INVALID_COMMIT_OFFSET_SIZE and other non-retriable errors
    /// about the request itself: this commit will never succeed.
    Rejected,
    /// GROUP_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED, FENCED_INSTANCE_ID: the
    /// consumer cannot go on.
    Fatal,
}

impl CommitErrorKind {
    /// Whether sending the same commit again may succeed in the same generation.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            CommitErrorKind::Retriable | CommitErrorKind::CoordinatorMoved
        )
    }
}

/// Classifies one OffsetCommit error code.
pub fn classify_commit_error(error: ResponseError) -> CommitErrorKind {
    use ResponseError as E;
    match error {
        E::CoordinatorNotAvailable | E::NotCoordinator | E::RequestTimedOut => {
            CommitErrorKind::CoordinatorMoved
        }
        E::RebalanceInProgress => CommitErrorKind::RebalanceInProgress,
        E::IllegalGeneration | E::UnknownMemberId => CommitErrorKind::MembershipLost,
        E::GroupAuthorizationFailed | E::TopicAuthorizationFailed | E::FencedInstanceId => {
            CommitErrorKind::Fatal
        }
        E::OffsetMetadataTooLarge | E::InvalidCommitOffsetSize => CommitErrorKind::Rejected,
        other if other.is_retriable() => CommitErrorKind::Retriable,
        _ => CommitErrorKind::Rejected,
    }
}
