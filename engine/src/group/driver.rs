//! The driver task: runs the [`Member`](mephisto_consumer_group::membership::Member) per its
//! driver contract (requests out, answers and timeouts in, events handled, one timer armed),
//! commits through the offset tracker, and looks up committed positions of assigned
//! partitions. It runs on its own task, so heartbeats never wait for the application.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{BrokerId, OffsetCommitResponse};
use mephisto_consumer_group::assignor::TopicPartition;
use mephisto_consumer_group::membership::{GroupEvent, GroupRequest, PartitionSet, ResponseEvent};
use mephisto_consumer_group::offsets::{CommitErrorKind, CommitId};
use tokio::sync::oneshot;

use super::error::GroupConsumerError;
use super::offsets;
use super::protocol;
use super::state::{Listener, Shared, State};
use crate::error::EngineError;
use crate::fetcher::{FetchPosition, OffsetReset, TopicPartition as FetchPartition};

/// Delay before retrying a failed OffsetFetch.
const POSITIONS_RETRY: Duration = Duration::from_millis(200);
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
        progress |= maybe_commit(shared, &mut st, now);
        progress |= settle_revocations(&mut st, now);
        if !progress {
            break;
        }
    }
    let deadline = match (st.member.poll_timeout(), st.tracker.poll_timeout()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    (deadline, notices, st.finished.is_some())
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
            st.tracker.revoke(now, partitions.iter());
            if let Some(l) = &listeners.revoked {
                notices.push((Arc::clone(l), partitions.clone()));
            }
            st.revoking.push_back(partitions);
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
        return false;
    };
    st.commit_in_flight = Some(commit.id);
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
            match result {
                Ok(response) => {
                    let outcome = st.tracker.handle_commit_response(now, id, &response);
                    tracing::debug!(
                        committed = outcome.committed.len(),
                        failed = outcome.failed.len(),
                        "commit answered"
                    );
                    if let Some(error) = offsets::group_error(&response) {
                        tracing::warn!(%error, "offset commit failed");
                        st.member.handle_commit_error(now, generation, error);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "offset commit got no answer");
                    st.tracker
                        .commit_failed(now, id, CommitErrorKind::CoordinatorMoved);
                }
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

/// Commits every acked offset beyond what is committed, outside the tracker's policy.
fn commit_now(shared: &Arc<Shared>, reply: oneshot::Sender<Result<(), GroupConsumerError>>) {
    let (context, coordinator, offsets) = {
        let st = shared.lock();
        let offsets: BTreeMap<TopicPartition, i64> = st
            .active
            .iter()
            .filter_map(|tp| {
                let committable = st.tracker.committable(tp)?;
                (committable > st.tracker.committed(tp)?).then(|| (tp.clone(), committable))
            })
            .collect();
        (
            st.member.commit_context(),
            st.member.coordinator().cloned(),
            offsets,
        )
    };
    if offsets.is_empty() {
        let _ = reply.send(Ok(()));
        return;
    }
    let (Some(context), Some(coordinator)) = (context, coordinator) else {
        let _ = reply.send(Err(GroupConsumerError::NotReady(
            "no stable generation or coordinator",
        )));
        return;
    };
    let shared2 = Arc::clone(shared);
    tokio::spawn(async move {
        let result = offsets::commit(
            &shared2.cluster,
            BrokerId(coordinator.node_id),
            &shared2.config.member.group_id,
            &context,
            &offsets,
        )
        .await;
        let result = match result {
            Ok(response) => {
                let code = offsets::group_error(&response).map_or(0, |e| e.code());
                EngineError::check_code(
                    kafka_protocol::messages::ApiKey::OffsetCommit,
                    || None,
                    code,
                    None,
                )
                .map_err(GroupConsumerError::from)
            }
            Err(error) => Err(error.into()),
        };
        let _ = reply.send(result);
    });
}
