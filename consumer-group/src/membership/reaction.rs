//! How the member reacts to each error code, per API: the table of protocol.md §2.6 (the
//! Java client's `AbstractCoordinator` / `ConsumerCoordinator` handlers) as one function.
//!
//! The table says *what* to do; the member applies generation-dependent reactions
//! ([`Reaction::ResetGeneration`], [`Reaction::ResetMember`], [`Reaction::Rejoin`]) only if the
//! response answers a request sent with the generation it still holds.

use kafka_protocol::error::ResponseError;

use super::request::ApiKind;

/// What to do about an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Retry the same step after the retry backoff (COORDINATOR_LOAD_IN_PROGRESS and other
    /// retriable errors).
    Backoff,
    /// Forget the coordinator, find it again, then retry (NOT_COORDINATOR,
    /// COORDINATOR_NOT_AVAILABLE).
    Rediscover,
    /// Rejoin keeping generation and member id (REBALANCE_IN_PROGRESS).
    Rejoin,
    /// Forget the generation, keep the member id, rejoin (ILLEGAL_GENERATION).
    ResetGeneration,
    /// Forget generation and member id, rejoin (UNKNOWN_MEMBER_ID; FENCED_INSTANCE_ID on
    /// Heartbeat).
    ResetMember,
    /// Take the member id from the response and rejoin at once (MEMBER_ID_REQUIRED).
    AdoptMemberId,
    /// Stop: the member cannot continue.
    Fatal,
    /// Not the member's concern: an OffsetCommit error about the offsets themselves
    /// (OFFSET_METADATA_TOO_LARGE, UNKNOWN_TOPIC_OR_PARTITION, ...), handled by the offset
    /// tracker's classification.
    Ignore,
}

/// The reaction to `error` in a response to `api`.
///
/// | error | Join | Sync | Heartbeat | OffsetCommit |
/// |---|---|---|---|---|
/// | COORDINATOR_LOAD_IN_PROGRESS (14) | backoff | backoff | backoff | backoff |
/// | COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR (15/16) | rediscover | rediscover | rediscover | rediscover |
/// | ILLEGAL_GENERATION (22) | reset generation | reset generation | reset generation | reset generation |
/// | UNKNOWN_MEMBER_ID (25) | reset member | reset member | reset member | reset member |
/// | REBALANCE_IN_PROGRESS (27) | rejoin | rejoin | rejoin | rejoin |
/// | MEMBER_ID_REQUIRED (79) | adopt member id | fatal | fatal | fatal |
/// | FENCED_INSTANCE_ID (82) | fatal | fatal | reset member | fatal |
/// | INCONSISTENT_GROUP_PROTOCOL / INVALID_SESSION_TIMEOUT / GROUP_MAX_SIZE_REACHED (23/26/81) | fatal | fatal | fatal | fatal |
/// | GROUP_AUTHORIZATION_FAILED, INVALID_GROUP_ID, UNSUPPORTED_VERSION | fatal | fatal | fatal | fatal |
/// | REQUEST_TIMED_OUT (7) | rediscover | rediscover | rediscover | rediscover |
/// | other retriable | backoff | backoff | backoff | ignore |
/// | other | fatal | fatal | fatal | ignore |
///
/// FindCoordinator: GROUP_AUTHORIZATION_FAILED and non-retriable errors are fatal, the rest
/// back off. LeaveGroup errors are only logged by the member (it has already reset), but the
/// table still classifies them.
pub fn reaction(api: ApiKind, error: ResponseError) -> Reaction {
    use ResponseError as E;
    match error {
        E::CoordinatorLoadInProgress => Reaction::Backoff,
        E::CoordinatorNotAvailable | E::NotCoordinator | E::RequestTimedOut => {
            if api == ApiKind::FindCoordinator {
                Reaction::Backoff
            } else {
                Reaction::Rediscover
            }
        }
        E::IllegalGeneration => Reaction::ResetGeneration,
        E::UnknownMemberId => Reaction::ResetMember,
        E::RebalanceInProgress => Reaction::Rejoin,
        E::MemberIdRequired if api == ApiKind::JoinGroup => Reaction::AdoptMemberId,
        E::FencedInstanceId if api == ApiKind::Heartbeat => Reaction::ResetMember,
        E::FencedInstanceId
        | E::MemberIdRequired
        | E::InconsistentGroupProtocol
        | E::InvalidSessionTimeout
        | E::GroupMaxSizeReached
        | E::GroupAuthorizationFailed
        | E::InvalidGroupId
        | E::UnsupportedVersion => Reaction::Fatal,
        _ if api == ApiKind::OffsetCommit => Reaction::Ignore,
        other if other.is_retriable() => Reaction::Backoff,
        _ => Reaction::Fatal,
    }
}
