//! FindCoordinator: reading either response layout (v0–3 top-level fields, v4+ batched
//! `Coordinators`).

use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FindCoordinatorResponse;

use super::member::Member;
use super::request::{ApiKind, Coordinator};

/// The coordinator (or error) a FindCoordinator response gives for `group_id`.
///
/// v4+ responses list one entry per key: the entry for `group_id` is used (the first one if
/// none matches). Older responses carry the answer in top-level fields.
pub fn coordinator_from_response(
    response: &FindCoordinatorResponse,
    group_id: &str,
) -> Result<Coordinator, ResponseError> {
    let (error_code, node_id, host, port) = match response
        .coordinators
        .iter()
        .find(|c| c.key.as_str() == group_id)
        .or_else(|| response.coordinators.first())
    {
        Some(c) => (c.error_code, c.node_id.0, c.host.as_str(), c.port),
        None => (
            response.error_code,
            response.node_id.0,
            response.host.as_str(),
            response.port,
        ),
    };
    if let Some(error) = ResponseError::try_from_code(error_code) {
        return Err(error);
    }
    if node_id < 0 || host.is_empty() {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    Ok(Coordinator {
        node_id,
        host: host.to_owned(),
        port,
    })
}

impl Member {
    /// A FindCoordinator answer we waited for.
    pub(crate) fn on_find_coordinator(&mut self, now: Instant, response: &FindCoordinatorResponse) {
        self.coordinator.lookup = None;
        match coordinator_from_response(response, &self.config.group_id) {
            Ok(coordinator) => {
                tracing::debug!(group = %self.config.group_id, ?coordinator, "coordinator found");
                self.coordinator.known = Some(coordinator);
                self.backoff.reset();
                self.retry_at = None;
            }
            Err(error) => {
                self.apply_reaction(now, ApiKind::FindCoordinator, error, None, None);
            }
        }
    }
}
