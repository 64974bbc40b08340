//! Offset window and commit policy: out-of-order acks, gaps, the interval/count triggers,
//! forced commits around revocation, per-partition commit results.

use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use mephisto_consumer_group::offsets::{
    CommitConfig, CommitErrorKind, OffsetTracker, PartitionWindow, TrackError,
};
use mephisto_consumer_group::TopicPartition;

fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}

#[test]
fn out_of_order_acks_commit_the_contiguous_run() {
    let mut w = PartitionWindow::new(10, 100);
    for o in 10..15 {
        w.delivered(o).expect("in order");
    }
    assert_eq!(w.committable(), 10);
    assert_eq!(w.acked(12), Ok(true));
    assert_eq!(w.acked(11), Ok(true));
    assert_eq!(w.committable(), 10, "10 is still being processed");
    assert_eq!(w.acked(10), Ok(true));
    assert_eq!(w.committable(), 13);
    assert_eq!(w.len(), 2);
    assert_eq!(w.acked(14), Ok(true));
    assert_eq!(w.acked(13), Ok(true));
    assert_eq!(w.committable(), 15);
    assert!(w.is_empty());
}

#[test]
fn gaps_never_block_the_commit() {
    let mut w = PartitionWindow::new(0, 100);
    for o in [0, 1, 5, 6] {
        w.delivered(o).expect("increasing");
    }
    w.acked(0).expect("delivered");
    w.acked(1).expect("delivered");
    assert_eq!(w.committable(), 5, "2..=4 were never delivered (compacted)");
    w.acked(6).expect("delivered");
    assert_eq!(w.committable(), 5);
    w.acked(5).expect("delivered");
    assert_eq!(w.committable(), 7);
    // A gap at the head: the fetch from 7 started at 20 (transaction markers, compaction).
    w.delivered(20).expect("increasing");
    assert_eq!(w.committable(), 20);
    w.acked(20).expect("delivered");
    assert_eq!(w.committable(), 21);
}

#[test]
fn window_rejects_caller_mistakes() {
    let mut w = PartitionWindow::new(5, 2);
    assert_eq!(
        w.delivered(4),
        Err(TrackError::OutOfOrder {
            offset: 4,
            expected_at_least: 5
        })
    );
    w.delivered(5).expect("ok");
    w.delivered(8).expect("ok");
    assert_eq!(
        w.delivered(8),
        Err(TrackError::OutOfOrder {
            offset: 8,
            expected_at_least: 9
        })
    );
    assert_eq!(w.delivered(9), Err(TrackError::WindowFull { capacity: 2 }));
    assert_eq!(
        w.acked(6),
        Err(TrackError::NotDelivered { offset: 6 }),
        "a gap"
    );
    assert_eq!(w.acked(9), Err(TrackError::NotDelivered { offset: 9 }));
    assert_eq!(w.acked(8), Ok(true));
    assert_eq!(w.acked(8), Ok(false), "repeated ack");
    assert_eq!(w.acked(5), Ok(true));
    assert_eq!(w.acked(5), Ok(false), "already committable");
    assert_eq!(w.committable(), 9);
    w.delivered(9).expect("room again");
    assert_eq!(w.delivered(i64::MAX), Err(TrackError::OffsetOverflow));
}

fn tracker(now: Instant) -> OffsetTracker {
    OffsetTracker::new(CommitConfig::default(), now)
}

#[test]
fn commits_on_the_interval_only_what_advanced() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    let a = tp("a", 0);
    let b = tp("b", 0);
    t.assign(a.clone(), 100);
    t.assign(b.clone(), 7);
    assert_eq!(t.poll_timeout(), None, "nothing to commit, no timer");
    for o in 100..105 {
        t.delivered(&a, o).expect("ok");
        t.acked(&a, o).expect("ok");
    }
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_millis(2800)));
    assert_eq!(t.poll_commit(t0 + Duration::from_millis(2799)), None);
    let c = t
        .poll_commit(t0 + Duration::from_millis(2800))
        .expect("interval");
    assert!(!c.forced);
    assert_eq!(
        c.offsets.into_iter().collect::<Vec<_>>(),
        vec![(a.clone(), 105)],
        "b did not move"
    );
    assert_eq!(t.poll_timeout(), None, "one commit in flight");
    let out = t.commit_succeeded(t0 + Duration::from_secs(3), c.id);
    assert_eq!(out.committed.get(&a), Some(&105));
    assert_eq!(t.committed(&a), Some(105));
    // Nothing moved since: no commit at the next interval.
    assert_eq!(t.poll_commit(t0 + Duration::from_secs(10)), None);
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn commits_after_every_n_acks() {
    let t0 = Instant::now();
    let mut t = OffsetTracker::new(
        CommitConfig {
            every: 3,
            ..CommitConfig::default()
        },
        t0,
    );
    let a = tp("a", 0);
    t.assign(a.clone(), 0);
    for o in 0..3 {
        t.delivered(&a, o).expect("ok");
    }
    t.acked(&a, 0).expect("ok");
    t.acked(&a, 1).expect("ok");
    assert_eq!(t.poll_commit(t0), None);
    t.acked(&a, 1).expect("repeat does not count");
    assert_eq!(t.poll_commit(t0), None);
    t.acked(&a, 2).expect("ok");
    let c = t.poll_commit(t0).expect("third ack");
    assert_eq!(c.offsets[&a], 3);
    assert_eq!(t.poll_commit(t0), None, "one in flight at a time");
}

#[test]
fn revoke_forces_a_commit_then_drops_the_partition() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    let a = tp("a", 0);
    let b = tp("b", 1);
    t.assign(a.clone(), 0);
    t.assign(b.clone(), 0);
    t.delivered(&a, 0).expect("ok");
    t.acked(&a, 0).expect("ok");
    t.delivered(&b, 0).expect("ok");
    t.revoke(t0, [&a]);
    assert!(!t.settled([&a]));
    let c = t
        .poll_commit(t0)
        .expect("forced, no waiting for the interval");
    assert!(c.forced);
    assert_eq!(c.offsets[&a], 1);
    assert!(!c.offsets.contains_key(&b), "b has nothing acked");
    t.commit_succeeded(t0, c.id);
    assert!(t.settled([&a]));
    assert!(!t.is_tracked(&a));
    assert!(t.is_tracked(&b));
    assert_eq!(
        t.acked(&a, 0),
        Err(TrackError::UnknownPartition {
            topic: "a".into(),
            partition: 0
        })
    );
}

#[test]
fn revoke_with_nothing_to_commit_settles_at_once() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    let a = tp("a", 0);
    t.assign(a.clone(), 42);
    t.delivered(&a, 42).expect("ok"); // delivered, not acked: nothing advanced
    t.revoke(t0, [&a]);
    assert_eq!(t.poll_commit(t0), None);
    assert!(t.settled([&a]));
    assert!(!t.is_tracked(&a));
    // Unknown partitions are trivially settled.
    assert!(t.settled([&tp("zz", 9)]));
}

#[test]
fn forced_commit_retries_retriable_failures_and_gives_up_on_others() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    let a = tp("a", 0);
    t.assign(a.clone(), 0);
    t.delivered(&a, 0).expect("ok");
    t.acked(&a, 0).expect("ok");
    t.revoke(t0, [&a]);
    let c = t.poll_commit(t0).expect("forced");
    t.commit_failed(t0, c.id, CommitErrorKind::CoordinatorMoved);
    assert!(!t.settled([&a]));
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_millis(100)));
    assert_eq!(
        t.poll_commit(t0 + Duration::from_millis(99)),
        None,
        "backoff"
    );
    let c = t
        .poll_commit(t0 + Duration::from_millis(100))
        .expect("retry");
    assert_eq!(c.offsets[&a], 1);
    t.commit_failed(t0, c.id, CommitErrorKind::MembershipLost);
    assert!(
        t.settled([&a]),
        "cannot be committed in this generation: given up"
    );
    assert!(!t.is_tracked(&a));
}

#[test]
fn forced_commit_gives_up_after_its_timeout() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    let a = tp("a", 0);
    t.assign(a.clone(), 0);
    t.delivered(&a, 0).expect("ok");
    t.acked(&a, 0).expect("ok");
    t.revoke(t0, [&a]);
    let mut now = t0;
    let mut attempts = 0;
    while !t.settled([&a]) {
        if let Some(c) = t.poll_commit(now) {
            attempts += 1;
            t.commit_failed(now, c.id, CommitErrorKind::Retriable);
        }
        if t.settled([&a]) {
            break;
        }
        now = t
            .poll_timeout()
            .expect("a deadline while revoking")
            .max(now);
        assert!(now <= t0 + Duration::from_secs(60), "gave up late");
    }
    assert!(now >= t0 + Duration::from_secs(60));
    assert!(attempts > 100, "{attempts} attempts");
}

#[test]
fn lost_partitions_are_dropped_without_commit() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    let a = tp("a", 0);
    t.assign(a.clone(), 0);
    t.delivered(&a, 0).expect("ok");
    t.acked(&a, 0).expect("ok");
    t.revoke(t0, [&a]);
    t.lose([&a]);
    assert!(t.settled([&a]));
    assert_eq!(t.poll_commit(t0 + Duration::from_secs(10)), None);
}

#[test]
fn per_partition_results_and_stale_ids() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    let a = tp("a", 0);
    let b = tp("a", 1);
    for p in [&a, &b] {
        t.assign(p.clone(), 0);
        t.delivered(p, 0).expect("ok");
        t.acked(p, 0).expect("ok");
    }
    let later = t0 + Duration::from_secs(3);
    let c = t.poll_commit(later).expect("interval");
    let stale = t.commit_succeeded(
        later,
        mephisto_consumer_group::offsets::CommitId(c.id.0 + 7),
    );
    assert!(stale.stale);
    let response =
        OffsetCommitResponse::default().with_topics(vec![OffsetCommitResponseTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("a")))
            .with_partitions(vec![
                OffsetCommitResponsePartition::default().with_partition_index(0),
                OffsetCommitResponsePartition::default()
                    .with_partition_index(1)
                    .with_error_code(14),
            ])]);
    let out = t.handle_commit_response(later, c.id, &response);
    assert_eq!(out.committed.keys().collect::<Vec<_>>(), vec![&a]);
    assert_eq!(out.failed, vec![(b.clone(), CommitErrorKind::Retriable)]);
    assert_eq!(t.committed(&a), Some(1));
    assert_eq!(t.committed(&b), Some(0));
    // The failed one goes out again at the next interval, alone.
    let c = t
        .poll_commit(later + Duration::from_millis(2800))
        .expect("retry at interval");
    assert_eq!(c.offsets.keys().collect::<Vec<_>>(), vec![&b]);
}

#[test]
fn revoke_during_a_periodic_commit_forces_another() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    let a = tp("a", 0);
    t.assign(a.clone(), 0);
    t.delivered(&a, 0).expect("ok");
    t.delivered(&a, 1).expect("ok");
    t.acked(&a, 0).expect("ok");
    let c = t
        .poll_commit(t0 + Duration::from_secs(3))
        .expect("interval");
    assert!(!c.forced);
    t.acked(&a, 1).expect("ok");
    t.revoke(t0, [&a]);
    assert_eq!(t.poll_commit(t0), None, "one in flight");
    t.commit_succeeded(t0, c.id);
    assert!(!t.settled([&a]), "offset 2 is not committed yet");
    let c = t.poll_commit(t0).expect("forced");
    assert!(c.forced);
    assert_eq!(c.offsets[&a], 2);
    t.commit_succeeded(t0, c.id);
    assert!(t.settled([&a]));
}

#[test]
fn huge_durations_mean_never_and_do_not_panic() {
    let t0 = Instant::now();
    let mut t = OffsetTracker::new(
        CommitConfig {
            interval: Duration::MAX,
            forced_timeout: Duration::MAX,
            retry_backoff: Duration::MAX,
            ..CommitConfig::default()
        },
        t0,
    );
    let a = tp("a", 0);
    t.assign(a.clone(), 0);
    t.delivered(&a, 0).expect("ok");
    t.acked(&a, 0).expect("ok");
    assert_eq!(t.poll_timeout(), None);
    assert_eq!(t.poll_commit(t0 + Duration::from_secs(1_000_000)), None);
    t.revoke(t0, [&a]);
    let c = t.poll_commit(t0).expect("forced");
    t.commit_failed(t0, c.id, CommitErrorKind::Retriable);
    assert!(!t.settled([&a]));
}

/// A requested commit (the application's `commit()`) is sent at the next poll whatever the
/// policy says, waits for the commit in flight, is retried after the backoff when it fails
/// retriably, is not retried after a non-retriable failure, and records what it committed.
#[test]
fn requested_commit_is_sent_retried_and_recorded() {
    let t0 = Instant::now();
    let config = CommitConfig {
        interval: Duration::from_secs(3600),
        every: u64::MAX,
        retry_backoff: Duration::from_millis(100),
        ..CommitConfig::default()
    };
    let mut t = OffsetTracker::new(config, t0);
    let a = tp("t", 0);
    t.assign(a.clone(), 0);
    // Nothing acked: a request settles at once with nothing to commit.
    t.request_commit();
    assert!(t.commit_requested());
    assert!(!t.has_uncommitted());
    assert_eq!(t.poll_commit(t0), None);
    assert!(!t.commit_requested());
    assert_eq!(t.poll_timeout(), None);

    for o in 0..3 {
        t.delivered(&a, o).expect("in order");
        t.acked(&a, o).expect("delivered");
    }
    assert!(t.has_uncommitted());
    assert_eq!(t.poll_commit(t0), None, "the policy alone is not due");
    t.request_commit();
    assert_eq!(t.poll_timeout(), Some(t0), "due at once");
    let c = t.poll_commit(t0).expect("requested");
    assert_eq!(c.offsets.get(&a), Some(&3));
    assert!(!c.forced);
    assert!(!t.commit_requested());

    // The coordinator moved: retried after the backoff, not before.
    let out = t.commit_failed(t0, c.id, CommitErrorKind::CoordinatorMoved);
    assert_eq!(
        out.failed,
        vec![(a.clone(), CommitErrorKind::CoordinatorMoved)]
    );
    assert!(t.commit_requested());
    let retry_at = t0 + Duration::from_millis(100);
    assert_eq!(t.poll_timeout(), Some(retry_at));
    assert_eq!(t.poll_commit(t0 + Duration::from_millis(50)), None);
    let c = t.poll_commit(retry_at).expect("retried");
    assert_eq!(c.offsets.get(&a), Some(&3));
    let out = t.commit_succeeded(retry_at, c.id);
    assert_eq!(out.committed.get(&a), Some(&3));
    assert_eq!(t.committed(&a), Some(3), "recorded as committed");
    assert!(!t.commit_requested());
    assert!(!t.has_uncommitted());

    // A request while a policy commit is in flight waits for it, then sends the rest.
    t.delivered(&a, 3).expect("in order");
    t.acked(&a, 3).expect("delivered");
    t.request_commit();
    let first = t.poll_commit(retry_at).expect("requested");
    t.delivered(&a, 4).expect("in order");
    t.acked(&a, 4).expect("delivered");
    t.request_commit();
    assert_eq!(
        t.poll_commit(retry_at),
        None,
        "one commit in flight at a time"
    );
    t.commit_succeeded(retry_at, first.id);
    let second = t.poll_commit(retry_at).expect("the second request");
    assert_eq!(second.offsets.get(&a), Some(&5));
    t.commit_succeeded(retry_at, second.id);

    // A request withdrawn while its commit is in flight is not retried after a failure.
    t.delivered(&a, 5).expect("in order");
    t.acked(&a, 5).expect("delivered");
    t.request_commit();
    let c = t.poll_commit(retry_at).expect("requested");
    t.cancel_commit_request();
    t.commit_failed(retry_at, c.id, CommitErrorKind::CoordinatorMoved);
    assert!(!t.commit_requested());
    assert_eq!(
        t.poll_commit(retry_at + Duration::from_secs(1)),
        None,
        "left to the policy"
    );
    assert!(t.has_uncommitted());
    t.request_commit();
    let second = t.poll_commit(retry_at).expect("requested again");
    assert_eq!(second.offsets.get(&a), Some(&6));

    // Our generation is gone: not retried.
    t.commit_failed(retry_at, second.id, CommitErrorKind::MembershipLost);
    assert!(!t.commit_requested());
    assert_eq!(t.poll_commit(retry_at + Duration::from_secs(1)), None);
    assert_eq!(t.committed(&a), Some(5));
}

/// Handles: valid for one assignment of a partition; lookups by name and by handle agree.
#[test]
fn partition_handles_follow_assignments() {
    let t0 = Instant::now();
    let mut t = OffsetTracker::new(CommitConfig::default(), t0);
    let a = tp("t", 0);
    let b = tp("u", 0);
    assert_eq!(t.partition_handle(&a), None);
    t.assign(a.clone(), 10);
    t.assign(b.clone(), 0);
    let ha = t.partition_handle(&a).expect("assigned");
    let hb = t.partition_handle(&b).expect("assigned");
    assert_ne!(ha, hb);
    t.delivered_at(ha, 10).expect("in order");
    t.delivered(&a, 11).expect("in order");
    assert_eq!(t.acked_at(ha, 11), Ok(true));
    assert_eq!(t.acked(&a, 11), Ok(false), "repeated");
    assert_eq!(t.acked_at(ha, 10), Ok(true));
    assert_eq!(t.committable(&a), Some(12));
    assert_eq!(
        t.acked_at(hb, 0),
        Err(TrackError::NotDelivered { offset: 0 })
    );
    // Lost, then the slot is reused by another partition: the old handle is stale.
    t.lose([&a]);
    assert_eq!(t.acked_at(ha, 12), Err(TrackError::StaleHandle));
    let c = tp("v", 3);
    t.assign(c.clone(), 0);
    let hc = t.partition_handle(&c).expect("assigned");
    t.delivered_at(hc, 0).expect("in order");
    assert_eq!(t.acked_at(ha, 0), Err(TrackError::StaleHandle));
    assert_eq!(t.acked_at(hc, 0), Ok(true));
    // Assigned again: a new handle, the old one stale.
    t.assign(c.clone(), 5);
    assert_eq!(t.delivered_at(hc, 5), Err(TrackError::StaleHandle));
    assert_ne!(t.partition_handle(&c), Some(hc));
}
