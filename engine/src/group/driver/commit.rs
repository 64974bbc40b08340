//! Commits: the tracker's policy commits and forced commits sent to the coordinator, their
//! answers, and the `commit().await` calls waiting for them.

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, BrokerId, OffsetCommitResponse};
use mephisto_consumer_group::membership::RequestFailure;
use mephisto_consumer_group::offsets::{CommitErrorKind, CommitId};
use tokio::sync::oneshot;

use super::state::{CommitWaiter, DriverState};
use crate::error::EngineError;
use crate::group::error::GroupConsumerError;
use crate::group::shared::Msg;
use crate::group::{offsets, protocol};

/// Sends the tracker's commit if one is due and the membership allows committing.
pub(super) fn maybe_commit(st: &mut DriverState, now: Instant) -> bool {
    if st.commit_in_flight.is_some() {
        return false;
    }
    let (Some(context), Some(coordinator)) =
        (st.member.commit_context(), st.member.coordinator().cloned())
    else {
        return false;
    };
    let Some(commit) = st.tracker.poll_commit(now) else {
        if !st.tracker.commit_requested() {
            // The request found nothing left to commit (a commit before it covered it).
            answer_waiters(st, |w| w.ticket.is_none(), || Ok(()));
        }
        return false;
    };
    st.commit_in_flight = Some(commit.id);
    for waiter in &mut st.commit_waiters {
        waiter.ticket.get_or_insert(commit.id);
    }
    let shared = Arc::clone(&st.shared);
    tokio::spawn(async move {
        let result = offsets::commit(
            shared.cluster(),
            BrokerId(coordinator.node_id),
            &shared.config().member.group_id,
            &context,
            &commit.offsets,
        )
        .await;
        shared.send(Msg::Committed {
            id: commit.id,
            generation: context.generation_id,
            result,
        });
    });
    true
}

/// Applies the answer to commit `id`.
pub(super) fn on_committed(
    st: &mut DriverState,
    now: Instant,
    id: CommitId,
    generation: i32,
    result: Result<OffsetCommitResponse, EngineError>,
) {
    if st.commit_in_flight == Some(id) {
        st.commit_in_flight = None;
    }
    let (outcome, error) = match result {
        Ok(response) => {
            let outcome = st.tracker.handle_commit_response(now, id, &response);
            tracing::debug!(
                committed = outcome.committed.len(),
                failed = outcome.failed.len(),
                "commit answered"
            );
            let error = offsets::group_error(&response);
            if let Some(error) = error {
                tracing::warn!(%error, "offset commit failed");
                st.member.handle_commit_error(now, generation, error);
            }
            (outcome, error.map(|e| e.code()))
        }
        Err(error) => {
            tracing::warn!(%error, "offset commit got no answer");
            if matches!(
                protocol::failure(&error),
                RequestFailure::Timeout | RequestFailure::Disconnected(_)
            ) {
                // As the Java client: the coordinator is presumed gone; find it again.
                st.member.handle_commit_error(
                    now,
                    generation,
                    ResponseError::CoordinatorNotAvailable,
                );
            }
            let outcome = st
                .tracker
                .commit_failed(now, id, CommitErrorKind::CoordinatorMoved);
            (outcome, None)
        }
    };
    if outcome.stale {
        return;
    }
    if outcome.failed.is_empty() {
        answer_waiters(st, |w| w.ticket == Some(id), || Ok(()));
    } else if st.tracker.commit_requested()
        && outcome.failed.iter().all(|(_, kind)| kind.is_retriable())
    {
        // The tracker retries the requested commit: wait for that one.
        for waiter in &mut st.commit_waiters {
            if waiter.ticket == Some(id) {
                waiter.ticket = None;
            }
        }
    } else {
        let code = error.unwrap_or(ResponseError::UnknownServerError.code());
        answer_waiters(
            st,
            |w| w.ticket == Some(id),
            || {
                EngineError::check_code(ApiKey::OffsetCommit, || None, code, None)
                    .map_err(GroupConsumerError::from)
            },
        );
    }
}

/// `commit().await`: asks the tracker for a commit of every acked offset not committed yet
/// and waits for it (answered by [`maybe_commit`] and [`on_committed`]).
pub(super) fn commit_now(
    st: &mut DriverState,
    reply: oneshot::Sender<Result<(), GroupConsumerError>>,
) {
    st.sync();
    if !st.tracker.has_uncommitted() {
        st.replies.push((reply, Ok(())));
        return;
    }
    if st.finished.is_some() {
        st.replies.push((reply, Err(GroupConsumerError::Closed)));
        return;
    }
    st.tracker.request_commit();
    st.commit_waiters.push(CommitWaiter {
        reply,
        deadline: Instant::now() + st.shared.cluster().config().request_timeout,
        ticket: None,
    });
}

/// Fails the `commit()` calls whose request timeout passed.
pub(super) fn expire_commit_waiters(st: &mut DriverState, now: Instant) {
    let timeout = st.shared.cluster().config().request_timeout;
    let (expired, waiting): (Vec<CommitWaiter>, Vec<CommitWaiter>) =
        st.commit_waiters.drain(..).partition(|w| w.deadline <= now);
    st.commit_waiters = waiting;
    if !expired.is_empty() && st.commit_waiters.is_empty() {
        // Nobody waits any more: no retries on their behalf; the policy commits the rest.
        st.tracker.cancel_commit_request();
    }
    for waiter in expired {
        tracing::warn!(?timeout, "commit() timed out");
        st.replies.push((
            waiter.reply,
            Err(GroupConsumerError::CommitTimeout(timeout)),
        ));
    }
}

/// Answers every waiter with `Closed` (the driver stops).
pub(super) fn close_waiters(st: &mut DriverState) {
    for waiter in std::mem::take(&mut st.commit_waiters) {
        st.replies
            .push((waiter.reply, Err(GroupConsumerError::Closed)));
    }
}

/// Answers the waiters matching `which` with `result()` (once the status is published).
fn answer_waiters(
    st: &mut DriverState,
    which: impl Fn(&CommitWaiter) -> bool,
    result: impl Fn() -> Result<(), GroupConsumerError>,
) {
    let (done, waiting): (Vec<CommitWaiter>, Vec<CommitWaiter>) =
        st.commit_waiters.drain(..).partition(|w| which(w));
    st.commit_waiters = waiting;
    for waiter in done {
        st.replies.push((waiter.reply, result()));
    }
}
