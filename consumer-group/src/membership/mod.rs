//! The classic consumer-group protocol (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup) as a sans-IO state machine in the style of `quinn-proto`'s `Connection`.
//!
//! [`Member`] takes inputs (`handle_response`, `handle_timeout`, `subscribe`, `record_poll`,
//! `revocation_done`, `close`) with the current time as an argument, and produces outputs
//! (`poll_request`, `poll_event`, `poll_timeout`). It reads no clock and opens no socket;
//! the engine drives it (see the driver contract on [`Member`]).
//!
//! Requests are version-independent ([`RequestBody`]): the engine builds the
//! `kafka-protocol` message at the negotiated version. Responses come back as the decoded
//! `kafka-protocol` structs in a [`ResponseEvent`], tagged with the [`RequestId`] they
//! answer; answers nobody waits for any more are ignored.
//!
//! Error handling follows the Java client (protocol.md §2.6), table in [`reaction()`]:
//! generation-dependent reactions apply only if the failed request carried the generation
//! we still hold.
//!
//! # Files
//! - `config.rs`: [`MemberConfig`]. `request.rs`, `response.rs`, `event.rs`: the types
//!   crossing the boundary. `reaction.rs`: the error table.
//! - `member.rs`: [`Member`] and its public methods. `state.rs`: internal state.
//! - `driver.rs`: choosing the next request, routing answers. `coordinator.rs`,
//!   `join.rs`, `leader.rs`, `heartbeat.rs`: one protocol step each. `transitions.rs`: shared
//!   state changes. `timer.rs`: deadlines. `backoff.rs`: retry delays.

mod backoff;
mod config;
mod coordinator;
mod driver;
mod event;
mod heartbeat;
mod join;
mod leader;
mod member;
mod reaction;
mod request;
mod response;
mod state;
mod timer;
mod transitions;

pub use config::{ConfigError, MemberConfig};
pub use coordinator::coordinator_from_response;
pub use event::{GroupError, GroupEvent, PartitionSet};
pub use join::PROTOCOL_TYPE;
pub use member::{CommitContext, Member, MemberState};
pub use reaction::{reaction, Reaction};
pub use request::{
    ApiKind, AssignmentMetadataRequest, Coordinator, FindCoordinatorRequest, GroupRequest,
    HeartbeatRequest, JoinGroupRequest, JoinProtocol, LeaveGroupRequest, LeavingMember,
    RequestBody, RequestId, SyncAssignment, SyncGroupRequest, Target,
};
pub use response::{RequestFailure, ResponseEvent};
pub use timer::Timer;
