//! The driver task: runs the [`Member`](mephisto_consumer_group::membership::Member) per its
//! driver contract (requests out, answers and timeouts in, events handled, one timer armed),
//! commits through the offset tracker, and looks up committed positions of assigned
//! partitions. It runs on its own task, so heartbeats never wait for the application.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, BrokerId, OffsetCommitResponse};
use mephisto_consumer_group::assignor::TopicPartition;
use mephisto_consumer_group::membership::{
    GroupEvent, GroupRequest, PartitionSet, RequestFailure, ResponseEvent,
};
use mephisto_consumer_group::offsets::{CommitErrorKind, CommitId};
use tokio::sync::oneshot;

use super::error::GroupConsumerError;
use super::offsets;
use super::protocol;
use super::state::{CommitWaiter, Listener, Shared, State};
use crate::error::EngineError;
use crate::fetcher::{FetchPosition, OffsetReset, TopicPartition as FetchPartition};

/// Delay before retrying a failed OffsetFetch.
const POSITIONS_RETRY: Duration = Duration::from_millis(200);
/// How often a due commit looks again while no coordinator or stable generation is known.
const COMMIT_WAIT_POLL: Duration = Duration::from_millis(100);
/// Upper bound on the driver's inner drain loop per wake-up.
const MAX_ROUNDS: usize = 64;

/// What the request tasks and the handle send the driver.
pub(crate) enum Msg {
    /// An answer to a member request.
    Response(ResponseEvent),
    /// A tracker commit finished.
    Committed {
        id: CommitId,
        generation: i32,
        result: Result<OffsetCommitResponse, EngineError>,
    },
    /// Committed positions of newly assigned partitions.
    Positions {
        /// The partitions looked up, with their assignment token.
        partitions: Vec<(TopicPartition, u64)>,
        result: Result<BTreeMap<TopicPartition, Option<i64>>, EngineError>,
    },
    /// `commit().await`: commit every acked offset now.
    CommitNow(oneshot::Sender<Result<(), GroupConsumerError>>),
}

/// A callback to run once the state lock is released.
type Notice = (Listener, PartitionSet);

pub(crate) async fn run(shared: Arc<Shared>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Msg>) {
    loop {
        let (deadline, notices, finished) = step(&shared);
        for (listener, partitions) in notices {
            listener(&partitions);
        }
        if finished {
            break;
        }
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => handle(&shared, msg),
                None => break,
            },
            () = shared.wake.notified() => {}
            () = sleep => {
                shared.lock().member.handle_timeout(Instant::now());
            }
        }
    }
    shared.fetcher.close();
    shared.done.send_replace(true);
}

/// Drains requests, events, commits and settled revocations until nothing moves; returns
/// the next deadline, the callbacks to run, and whether the driver is done.
fn step(shared: &Arc<Shared>) -> (Option<Instant>, Vec<Notice>, bool) {
    let now = Instant::now();
    let mut notices = Vec::new();
    let mut st = shared.lock();
    for _ in 0..MAX_ROUNDS {
        let mut progress = false;
        while let Some(request) = st.member.poll_request(now) {
            send_request(shared, request);
            progress = true;
        }
        while let Some(event) = st.member.poll_event() {
            on_event(shared, &mut st, now, event, &mut notices);
            progress = true;
        }
        progress |= finish_draining(&mut st, now);
        progress |= maybe_commit(shared, &mut st, now);
        progress |= settle_revocations(&mut st, now);
        if !progress {
            break;
        }
    }
    expire_commit_waiters(shared, &mut st, now);
    if st.finished.is_some() {
        for waiter in st.commit_waiters.drain(..) {
            let _ = waiter.reply.send(Err(GroupConsumerError::Closed));
        }
    }
    let mut tracker_deadline = st.tracker.poll_timeout();
    if st.commit_in_flight.is_none() && !can_commit(&st) {
        // A commit that is due waits for the coordinator or a stable generation: the member's
        // progress wakes the driver; meanwhile look again now and then rather than spin.
        tracker_deadline = tracker_deadline.map(|d| d.max(now + COMMIT_WAIT_POLL));
    }
    let deadline = [
        st.member.poll_timeout(),
        tracker_deadline,
        st.draining.front().map(|(_, until)| *until),
        st.commit_waiters.iter().map(|w| w.deadline).min(),
    ]
    .into_iter()
    .flatten()
    .min();
    (deadline, notices, st.finished.is_some())
}

/// Whether a commit can be sent now (stable generation and a known coordinator).
fn can_commit(st: &State) -> bool {
    st.member.commit_context().is_some() && st.member.coordinator().is_some()
}

/// Fails the `commit()` calls whose request timeout passed.
fn expire_commit_waiters(shared: &Shared, st: &mut State, now: Instant) {
    let timeout = shared.cluster.config().request_timeout;
    let (expired, waiting): (Vec<CommitWaiter>, Vec<CommitWaiter>) =
        st.commit_waiters.drain(..).partition(|w| w.deadline <= now);
    st.commit_waiters = waiting;
    if !expired.is_empty() && st.commit_waiters.is_empty() {
        // Nobody waits any more: no retries on their behalf; the policy commits the rest.
        st.tracker.cancel_commit_request();
    }
    for waiter in expired {
        tracing::warn!(?timeout, "commit() timed out");
        let _ = waiter
            .reply
            .send(Err(GroupConsumerError::CommitTimeout(timeout)));
    }
}

fn send_request(shared: &Arc<Shared>, request: GroupRequest) {
    let cluster = shared.cluster.clone();
    let tx = shared.tx.clone();
    tokio::spawn(async move {
        let answer = protocol::exchange(&cluster, request).await;
        let _ = tx.send(Msg::Response(answer));
    });
}

fn engine_tp(tp: &TopicPartition) -> FetchPartition {
    FetchPartition::new(tp.0.as_str(), tp.1)
}

fn on_event(
    shared: &Arc<Shared>,
    st: &mut State,
    now: Instant,
    event: GroupEvent,
    notices: &mut Vec<Notice>,
) {
    let listeners = shared.listeners();
    match event {
        GroupEvent::Assigned {
            partitions,
            generation,
            ..
        } => {
            tracing::info!(generation, partitions = ?partitions, "partitions assigned");
            st.assignment_token += 1;
            let token = st.assignment_token;
            st.awaiting
                .extend(partitions.iter().map(|tp| (tp.clone(), token)));
            fetch_positions(
                shared,
                partitions.iter().map(|tp| (tp.clone(), token)).collect(),
                Duration::ZERO,
            );
            if let Some(l) = &listeners.assigned {
                notices.push((Arc::clone(l), partitions));
            }
        }
        GroupEvent::Revoked { partitions } => {
            tracing::info!(partitions = ?partitions, "partitions revoked");
            drop_partitions(shared, st, &partitions);
            if let Some(l) = &listeners.revoked {
                notices.push((Arc::clone(l), partitions.clone()));
            }
            // Records already handed out are let finish (acked) before the forced commit, as
            // the Java client's revocation callback runs between polls; bounded by DRAIN_MAX
            // and the rebalance timeout. A closing member does not wait.
            let wait = if st.closing {
                Duration::ZERO
            } else {
                DRAIN_MAX.min(shared.config.member.max_poll_interval / 2)
            };
            st.draining.push_back((partitions, now + wait));
        }
        GroupEvent::Lost { partitions } => {
            tracing::warn!(partitions = ?partitions, "partitions lost");
            drop_partitions(shared, st, &partitions);
            st.tracker.lose(partitions.iter());
            if let Some(l) = &listeners.lost {
                notices.push((Arc::clone(l), partitions));
            }
        }
        GroupEvent::MaxPollExceeded => {
            tracing::warn!(
                max_poll_interval = ?shared.config.member.max_poll_interval,
                "the application did not poll within max.poll.interval: left the group, \
                 rejoining on the next poll"
            );
        }
        GroupEvent::Closed => {
            tracing::info!("left the group");
            st.finished = Some(Ok(()));
        }
        GroupEvent::Fatal(error) => {
            tracing::error!(%error, "group membership failed");
            st.finished = Some(Err(error));
        }
    }
}

/// Stops fetching `partitions` and forgets their undelivered records.
fn drop_partitions(shared: &Shared, st: &mut State, partitions: &PartitionSet) {
    for tp in partitions {
        shared.fetcher.unassign(&engine_tp(tp));
        st.active.remove(tp);
        st.awaiting.remove(tp);
    }
    st.pending
        .retain(|r| !partitions.contains(&(r.topic.to_string(), r.partition)));
}

/// Looks up the committed offsets of `partitions` after `delay`.
fn fetch_positions(shared: &Arc<Shared>, partitions: Vec<(TopicPartition, u64)>, delay: Duration) {
    let shared2 = Arc::clone(shared);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let coordinator = shared2
            .lock()
            .member
            .coordinator()
            .map(|c| BrokerId(c.node_id));
        let result = match coordinator {
            Some(broker) => {
                let tps: Vec<TopicPartition> =
                    partitions.iter().map(|(tp, _)| tp.clone()).collect();
                offsets::fetch_committed(
                    &shared2.cluster,
                    broker,
                    &shared2.config.member.group_id,
                    &tps,
                )
                .await
            }
            None => Err(EngineError::Config("no group coordinator known yet".into())),
        };
        let _ = shared2.tx.send(Msg::Positions { partitions, result });
    });
}

/// Sends the tracker's commit if one is due and the membership allows committing.
fn maybe_commit(shared: &Arc<Shared>, st: &mut State, now: Instant) -> bool {
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
    let shared2 = Arc::clone(shared);
    tokio::spawn(async move {
        let result = offsets::commit(
            &shared2.cluster,
            BrokerId(coordinator.node_id),
            &shared2.config.member.group_id,
            &context,
            &commit.offsets,
        )
        .await;
        let _ = shared2.tx.send(Msg::Committed {
            id: commit.id,
            generation: context.generation_id,
            result,
        });
    });
    true
}

/// Longest wait for the application to finish the records of revoked partitions.
const DRAIN_MAX: Duration = Duration::from_secs(30);

/// Moves revocations whose handed-out records are all acked (or whose wait is over) to the
/// forced commit, oldest first.
fn finish_draining(st: &mut State, now: Instant) -> bool {
    let mut any = false;
    while let Some((partitions, until)) = st.draining.front() {
        let in_flight: usize = partitions
            .iter()
            .map(|tp| st.tracker.outstanding(tp).unwrap_or(0))
            .sum();
        if in_flight > 0 && now < *until {
            break;
        }
        if in_flight > 0 {
            tracing::warn!(
                in_flight,
                "revoked partitions still had records in processing; their offsets are not \
                 committed and the next owner reads them again"
            );
        }
        let Some((partitions, _)) = st.draining.pop_front() else {
            break;
        };
        st.tracker.revoke(now, partitions.iter());
        st.revoking.push_back(partitions);
        any = true;
    }
    any
}

/// Acknowledges revocations whose forced commit is done, oldest first.
fn settle_revocations(st: &mut State, now: Instant) -> bool {
    let mut any = false;
    while let Some(front) = st.revoking.front() {
        if !st.tracker.settled(front.iter()) {
            break;
        }
        st.revoking.pop_front();
        st.member.revocation_done(now);
        any = true;
    }
    any
}

fn handle(shared: &Arc<Shared>, msg: Msg) {
    let now = Instant::now();
    match msg {
        Msg::Response(event) => shared.lock().member.handle_response(now, event),
        Msg::Committed {
            id,
            generation,
            result,
        } => {
            let mut st = shared.lock();
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
                    let outcome =
                        st.tracker
                            .commit_failed(now, id, CommitErrorKind::CoordinatorMoved);
                    (outcome, None)
                }
            };
            if outcome.stale {
                return;
            }
            if outcome.failed.is_empty() {
                answer_waiters(&mut st, |w| w.ticket == Some(id), || Ok(()));
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
                    &mut st,
                    |w| w.ticket == Some(id),
                    || {
                        EngineError::check_code(ApiKey::OffsetCommit, || None, code, None)
                            .map_err(GroupConsumerError::from)
                    },
                );
            }
        }
        Msg::Positions { partitions, result } => match result {
            Ok(positions) => {
                let mut st = shared.lock();
                let reset = match shared.config.fetcher.auto_offset_reset {
                    OffsetReset::Earliest => FetchPosition::Earliest,
                    OffsetReset::Latest | OffsetReset::None => FetchPosition::Latest,
                };
                for (tp, token) in partitions {
                    // Only the assignment that started this lookup, if still ours.
                    if st.awaiting.get(&tp) != Some(&token) || !st.member.owned().contains(&tp) {
                        continue;
                    }
                    st.awaiting.remove(&tp);
                    let committed = positions.get(&tp).copied().flatten();
                    st.tracker.assign(tp.clone(), committed.unwrap_or(0));
                    let position = committed.map_or(reset, FetchPosition::Offset);
                    tracing::debug!(?tp, ?position, "fetching from");
                    if let Err(error) = shared.fetcher.assign(engine_tp(&tp), position) {
                        tracing::warn!(%error, "cannot assign in the fetcher");
                        continue;
                    }
                    st.active.insert(tp);
                }
            }
            Err(error) => {
                let still: Vec<(TopicPartition, u64)> = {
                    let st = shared.lock();
                    partitions
                        .into_iter()
                        .filter(|(tp, token)| st.awaiting.get(tp) == Some(token))
                        .collect()
                };
                if !still.is_empty() {
                    tracing::debug!(%error, "committed offsets lookup failed, retrying");
                    fetch_positions(shared, still, POSITIONS_RETRY);
                }
            }
        },
        Msg::CommitNow(reply) => commit_now(shared, reply),
    }
}

/// `commit().await`: asks the tracker for a commit of every acked offset not committed yet
/// and waits for it (answered by `maybe_commit` and the `Committed` handler).
fn commit_now(shared: &Arc<Shared>, reply: oneshot::Sender<Result<(), GroupConsumerError>>) {
    let mut st = shared.lock();
    if !st.tracker.has_uncommitted() {
        let _ = reply.send(Ok(()));
        return;
    }
    if st.finished.is_some() {
        let _ = reply.send(Err(GroupConsumerError::Closed));
        return;
    }
    st.tracker.request_commit();
    st.commit_waiters.push(CommitWaiter {
        reply,
        deadline: Instant::now() + shared.cluster.config().request_timeout,
        ticket: None,
    });
}

/// Answers the waiters matching `which` with `result()`.
fn answer_waiters(
    st: &mut State,
    which: impl Fn(&CommitWaiter) -> bool,
    result: impl Fn() -> Result<(), GroupConsumerError>,
) {
    let (done, waiting): (Vec<CommitWaiter>, Vec<CommitWaiter>) =
        st.commit_waiters.drain(..).partition(|w| which(w));
    st.commit_waiters = waiting;
    for waiter in done {
        let _ = waiter.reply.send(result());
    }
}
