//! The member's events: assignments (committed positions looked up, partitions assigned in
//! the fetcher with fresh acks, handed out in partition mode), revocations (fetching stops,
//! what is in processing gets to finish, then the forced commit), losses (dropped without
//! commit), and the end of the membership.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::BrokerId;
use mephisto_consumer_group::membership::{GroupEvent, PartitionSet};

use super::state::{DriverState, Owned};
use crate::error::EngineError;
use crate::fetcher::{FetchPosition, OffsetReset, TopicPartition};
use crate::group::acks::{Ownership, PartitionAcks};
use crate::group::assigned::AssignedPartition;
use crate::group::offsets;
use crate::group::shared::Msg;

/// Delay before retrying a failed OffsetFetch.
const POSITIONS_RETRY: Duration = Duration::from_millis(200);
/// Longest wait for the application to finish the records of revoked partitions.
const DRAIN_MAX: Duration = Duration::from_secs(30);

/// Handles one member event.
pub(super) fn on_event(st: &mut DriverState, now: Instant, event: GroupEvent) {
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
                st,
                partitions.iter().map(|tp| (tp.clone(), token)).collect(),
                Duration::ZERO,
            );
            let listener = st.shared.listeners().assigned.clone();
            if let Some(l) = listener {
                st.notices.push((l, partitions));
            }
        }
        GroupEvent::Revoked { partitions } => {
            tracing::info!(partitions = ?partitions, "partitions revoked");
            stop_partitions(st, &partitions, Ownership::Revoked);
            let listener = st.shared.listeners().revoked.clone();
            if let Some(l) = listener {
                st.notices.push((l, partitions.clone()));
            }
            // Records in processing are let finish (acked) before the forced commit, as the
            // Java client's revocation callback runs between polls; bounded by DRAIN_MAX and
            // half the max poll interval. A closing member does not wait.
            let wait = if st.closing {
                Duration::ZERO
            } else {
                DRAIN_MAX.min(st.shared.config().member.max_poll_interval / 2)
            };
            st.draining.push_back((partitions, now + wait));
        }
        GroupEvent::Lost { partitions } => {
            tracing::warn!(partitions = ?partitions, "partitions lost");
            stop_partitions(st, &partitions, Ownership::Lost);
            for tp in &partitions {
                st.owned.remove(tp);
            }
            st.tracker.lose(partitions.iter());
            let listener = st.shared.listeners().lost.clone();
            if let Some(l) = listener {
                st.notices.push((l, partitions));
            }
        }
        GroupEvent::MaxPollExceeded => {
            tracing::warn!(
                max_poll_interval = ?st.shared.config().member.max_poll_interval,
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

/// Stops fetching `partitions`, stops handing out their records, and tells whoever processes
/// them. Acks by name still reach a revoked partition until its forced commit is settled.
fn stop_partitions(st: &mut DriverState, partitions: &PartitionSet, ownership: Ownership) {
    let mut active = st.shared.active();
    for tp in partitions {
        st.shared.fetcher().unassign(tp);
        if ownership == Ownership::Lost {
            active.remove(tp);
        }
        st.awaiting.remove(tp);
        if let Some(owned) = st.owned.get(tp) {
            owned.acks.set_ownership(ownership);
        }
    }
}

/// Every partition still owned is lost (the driver stops).
pub(super) fn abandon_all(st: &mut DriverState) {
    st.shared.active().clear();
    for owned in std::mem::take(&mut st.owned).into_values() {
        owned.acks.set_ownership(Ownership::Lost);
    }
}

/// Looks up the committed offsets of `partitions` after `delay`, at the coordinator known
/// now.
fn fetch_positions(st: &DriverState, partitions: Vec<(TopicPartition, u64)>, delay: Duration) {
    let shared = Arc::clone(&st.shared);
    let coordinator = st.member.coordinator().map(|c| BrokerId(c.node_id));
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let result = match coordinator {
            Some(broker) => {
                let tps: Vec<TopicPartition> =
                    partitions.iter().map(|(tp, _)| tp.clone()).collect();
                offsets::fetch_committed(
                    shared.cluster(),
                    broker,
                    &shared.config().member.group_id,
                    &tps,
                )
                .await
            }
            None => Err(EngineError::Config("no group coordinator known yet".into())),
        };
        shared.send(Msg::Positions { partitions, result });
    });
}

/// Applies the committed offsets of newly assigned partitions (or retries the lookup).
pub(super) fn on_positions(
    st: &mut DriverState,
    partitions: Vec<(TopicPartition, u64)>,
    result: Result<BTreeMap<TopicPartition, Option<i64>>, EngineError>,
) {
    let positions = match result {
        Ok(positions) => positions,
        Err(error) => {
            let still: Vec<(TopicPartition, u64)> = partitions
                .into_iter()
                .filter(|(tp, token)| st.awaiting.get(tp) == Some(token))
                .collect();
            if !still.is_empty() {
                tracing::debug!(%error, "committed offsets lookup failed, retrying");
                fetch_positions(st, still, POSITIONS_RETRY);
            }
            return;
        }
    };
    let reset = match st.shared.config().fetcher.auto_offset_reset {
        OffsetReset::Earliest => FetchPosition::Earliest,
        OffsetReset::Latest | OffsetReset::None => FetchPosition::Latest,
    };
    let capacity = st.shared.config().commit.max_outstanding;
    for (tp, token) in partitions {
        // Only the assignment that started this lookup, if still ours.
        if st.awaiting.get(&tp) != Some(&token) || !st.member.owned().contains(&tp) {
            continue;
        }
        st.awaiting.remove(&tp);
        let committed = positions.get(&tp).copied().flatten();
        let start = committed.unwrap_or(0);
        let position = committed.map_or(reset, FetchPosition::Offset);
        tracing::debug!(?tp, ?position, "fetching from");
        if let Err(error) = st.shared.fetcher().assign(tp.clone(), position) {
            tracing::warn!(%error, "cannot assign in the fetcher");
            continue;
        }
        st.tracker.assign(tp.clone(), start);
        let Some(handle) = st.tracker.partition_handle(&tp) else {
            continue;
        };
        let acks = Arc::new(PartitionAcks::new(
            tp.clone(),
            start,
            capacity,
            Arc::clone(st.shared.counter()),
        ));
        if let Some(old) = st.owned.insert(
            tp.clone(),
            Owned {
                handle,
                acks: Arc::clone(&acks),
                synced: start,
            },
        ) {
            old.acks.set_ownership(Ownership::Lost);
        }
        st.shared.active().insert(tp.clone(), Arc::clone(&acks));
        if st.shared.partition_mode() {
            match st.shared.fetcher().reader(&tp) {
                Some(reader) => {
                    if !st.shared.hand_out(AssignedPartition::new(acks, reader)) {
                        tracing::debug!(partition = %tp, "nobody takes assigned partitions");
                    }
                }
                None => tracing::warn!(partition = %tp, "assigned partition has no reader"),
            }
        }
    }
}

/// Moves revocations whose partitions have nothing in processing (or whose wait is over) to
/// the forced commit, oldest first.
pub(super) fn finish_draining(st: &mut DriverState, now: Instant) -> bool {
    let mut any = false;
    while let Some((partitions, until)) = st.draining.front() {
        let in_processing: usize = partitions
            .iter()
            .filter_map(|tp| st.owned.get(tp))
            .map(|o| o.acks.in_processing())
            .sum();
        if in_processing > 0 && now < *until {
            break;
        }
        if in_processing > 0 {
            tracing::warn!(
                in_processing,
                "revoked partitions still had records in processing; their offsets are not \
                 committed and the next owner reads them again"
            );
        }
        let Some((partitions, _)) = st.draining.pop_front() else {
            break;
        };
        st.sync();
        st.tracker.revoke(now, partitions.iter());
        st.revoking.push_back(partitions);
        any = true;
    }
    any
}

/// Acknowledges revocations whose forced commit is done, oldest first.
pub(super) fn settle_revocations(st: &mut DriverState, now: Instant) -> bool {
    let mut any = false;
    while let Some(front) = st.revoking.front() {
        if !st.tracker.settled(front.iter()) {
            break;
        }
        if let Some(partitions) = st.revoking.pop_front() {
            let mut active = st.shared.active();
            for tp in &partitions {
                if let Some(owned) = st.owned.remove(tp) {
                    if active.get(tp).is_some_and(|a| Arc::ptr_eq(a, &owned.acks)) {
                        active.remove(tp);
                    }
                }
            }
        }
        st.member.revocation_done(now);
        any = true;
    }
    any
}
