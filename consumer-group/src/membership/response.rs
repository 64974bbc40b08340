//! What the engine feeds back: the decoded `kafka-protocol` responses, tagged with the
//! [`RequestId`] of the request they answer, or a transport failure.

use kafka_protocol::messages::{
    FindCoordinatorResponse, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse,
    SyncGroupResponse,
};

use super::request::RequestId;
use crate::assignor::AssignContext;

/// An answer to a [`GroupRequest`](super::GroupRequest).
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseEvent {
    /// FindCoordinator answered (any version: v0–3 top-level fields or v4+ `Coordinators`).
    FindCoordinator {
        /// The request answered.
        request: RequestId,
        /// The response.
        response: FindCoordinatorResponse,
    },
    /// JoinGroup answered.
    JoinGroup {
        /// The request answered.
        request: RequestId,
        /// The response.
        response: JoinGroupResponse,
    },
    /// SyncGroup answered.
    SyncGroup {
        /// The request answered.
        request: RequestId,
        /// The response.
        response: SyncGroupResponse,
    },
    /// Heartbeat answered.
    Heartbeat {
        /// The request answered.
        request: RequestId,
        /// The response.
        response: HeartbeatResponse,
    },
    /// LeaveGroup answered.
    LeaveGroup {
        /// The request answered.
        request: RequestId,
        /// The response.
        response: LeaveGroupResponse,
    },
    /// The leader's metadata lookup answered.
    AssignmentMetadata {
        /// The request answered.
        request: RequestId,
        /// Partition counts (and end offsets) for the requested topics.
        context: AssignContext,
    },
    /// The request got no response (timeout, connection lost, no usable version).
    Failed {
        /// The request that failed.
        request: RequestId,
        /// Why.
        error: RequestFailure,
    },
}

impl ResponseEvent {
    /// The request this answers.
    pub fn request(&self) -> RequestId {
        match self {
            ResponseEvent::FindCoordinator { request, .. }
            | ResponseEvent::JoinGroup { request, .. }
            | ResponseEvent::SyncGroup { request, .. }
            | ResponseEvent::Heartbeat { request, .. }
            | ResponseEvent::LeaveGroup { request, .. }
            | ResponseEvent::AssignmentMetadata { request, .. }
            | ResponseEvent::Failed { request, .. } => *request,
        }
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestFailure {
    /// No response within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// The connection failed or closed before the response.
    #[error("connection failed: {0}")]
    Disconnected(String),
    /// The broker supports no version of the API we can speak: fatal.
    #[error("broker supports no usable version: {0}")]
    Unsupported(String),
}
