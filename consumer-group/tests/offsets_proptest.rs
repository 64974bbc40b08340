//! Property tests of offset tracking against a simple model.
//!
//! - Window: random deliveries with gaps and random ack order; the committable offset always
//!   equals the model (smallest unacked delivered offset, else one past the last delivered,
//!   else the start), never goes backwards, and the window never holds more than its
//!   capacity (nor more than the delivered offsets from the smallest unacked one on).
//! - Tracker: random acks, time, commit triggers and outcomes; a commit never carries an
//!   offset that did not advance or that is beyond the model's committable offset, and
//!   committed offsets never go backwards.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mephisto_consumer_group::offsets::{
    CommitConfig, CommitErrorKind, OffsetTracker, OffsetsToCommit, PartitionWindow, TrackError,
};
use mephisto_consumer_group::TopicPartition;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Deliver the next offset, after skipping `gap` offsets.
    Deliver { gap: u8 },
    /// Ack the `pick`-th delivered, unacked offset.
    Ack { pick: usize },
    /// Ack an arbitrary offset (possibly a gap or out of range).
    AckAny { offset: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => prop_oneof![6 => Just(0u8), 1 => 1u8..20].prop_map(|gap| Op::Deliver { gap }),
        5 => any::<usize>().prop_map(|pick| Op::Ack { pick }),
        1 => any::<u8>().prop_map(|offset| Op::AckAny { offset }),
    ]
}

struct Model {
    start: i64,
    delivered: BTreeSet<i64>,
    acked: BTreeSet<i64>,
}

impl Model {
    fn committable(&self) -> i64 {
        match self.delivered.difference(&self.acked).next() {
            Some(o) => *o,
            None => self.delivered.last().map_or(self.start, |l| l + 1),
        }
    }
    fn next_delivery(&self, gap: u8) -> i64 {
        self.delivered.last().map_or(self.start, |l| l + 1) + i64::from(gap)
    }
    fn unacked(&self) -> Vec<i64> {
        self.delivered.difference(&self.acked).copied().collect()
    }
    fn outstanding(&self) -> usize {
        let c = self.committable();
        self.delivered.range(c..).count()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn window_matches_the_model(
        start in 0i64..1_000_000,
        capacity in 1usize..40,
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let mut w = PartitionWindow::new(start, capacity);
        let mut m = Model { start, delivered: BTreeSet::new(), acked: BTreeSet::new() };
        let mut last = w.committable();
        prop_assert_eq!(last, start);
        for op in ops {
            match op {
                Op::Deliver { gap } => {
                    let o = m.next_delivery(gap);
                    match w.delivered(o) {
                        Ok(()) => { m.delivered.insert(o); }
                        Err(TrackError::WindowFull { capacity: c }) => {
                            prop_assert_eq!(c, capacity);
                            prop_assert_eq!(m.outstanding(), capacity);
                        }
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Ack { pick } => {
                    let unacked = m.unacked();
                    if !unacked.is_empty() {
                        let o = unacked[pick % unacked.len()];
                        prop_assert_eq!(w.acked(o), Ok(true));
                        m.acked.insert(o);
                    }
                }
                Op::AckAny { offset } => {
                    let o = start + i64::from(offset);
                    let got = w.acked(o);
                    if o < m.committable() {
                        prop_assert_eq!(got, Ok(false));
                    } else if m.delivered.contains(&o) {
                        prop_assert_eq!(got, Ok(!m.acked.contains(&o)));
                        m.acked.insert(o);
                    } else {
                        prop_assert_eq!(got, Err(TrackError::NotDelivered { offset: o }));
                    }
                }
            }
            let c = w.committable();
            prop_assert_eq!(c, m.committable());
            prop_assert!(c >= last, "went backwards: {} -> {}", last, c);
            last = c;
            prop_assert_eq!(w.len(), m.outstanding());
            prop_assert!(w.len() <= capacity);
        }
    }
}

#[derive(Debug, Clone)]
enum TOp {
    Deliver { part: u8, gap: u8 },
    Ack { part: u8, pick: usize },
    Advance { ms: u16 },
    Poll,
    Finish { ok: bool, kind: u8 },
    Revoke { part: u8 },
}

fn top() -> impl Strategy<Value = TOp> {
    prop_oneof![
        6 => (0u8..3, prop_oneof![4 => Just(0u8), 1 => 1u8..5]).prop_map(|(part, gap)| TOp::Deliver { part, gap }),
        6 => (0u8..3, any::<usize>()).prop_map(|(part, pick)| TOp::Ack { part, pick }),
        3 => (0u16..5000).prop_map(|ms| TOp::Advance { ms }),
        3 => Just(TOp::Poll),
        3 => (any::<bool>(), 0u8..4).prop_map(|(ok, kind)| TOp::Finish { ok, kind }),
        1 => (0u8..3).prop_map(|part| TOp::Revoke { part }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn tracker_commits_only_progress_and_never_goes_back(
        ops in proptest::collection::vec(top(), 0..300),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut t = OffsetTracker::new(CommitConfig { every: 7, max_outstanding: 16, ..CommitConfig::default() }, now);
        let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("t", p)).collect();
        let mut models: Vec<Model> = (0..3).map(|p| Model { start: 10 * p, delivered: BTreeSet::new(), acked: BTreeSet::new() }).collect();
        let mut committed: Vec<i64> = (0..3).map(|p| 10 * p).collect();
        let mut revoked = [false; 3];
        for (tp, m) in tps.iter().zip(&models) {
            t.assign(tp.clone(), m.start);
        }
        let mut in_flight: Option<OffsetsToCommit> = None;
        for op in ops {
            match op {
                TOp::Deliver { part, gap } => {
                    let i = usize::from(part);
                    if revoked[i] { continue; }
                    let o = models[i].next_delivery(gap);
                    match t.delivered(&tps[i], o) {
                        Ok(()) => { models[i].delivered.insert(o); }
                        Err(TrackError::WindowFull { .. }) => prop_assert_eq!(models[i].outstanding(), 16),
                        Err(TrackError::UnknownPartition { .. }) => prop_assert!(!t.is_tracked(&tps[i])),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                TOp::Ack { part, pick } => {
                    let i = usize::from(part);
                    let unacked = models[i].unacked();
                    if unacked.is_empty() || !t.is_tracked(&tps[i]) { continue; }
                    let o = unacked[pick % unacked.len()];
                    prop_assert_eq!(t.acked(&tps[i], o), Ok(true));
                    models[i].acked.insert(o);
                }
                TOp::Advance { ms } => now += Duration::from_millis(u64::from(ms)),
                TOp::Poll => {
                    if let Some(c) = t.poll_commit(now) {
                        prop_assert!(in_flight.is_none(), "two commits in flight");
                        prop_assert!(!c.offsets.is_empty());
                        for (tp, off) in &c.offsets {
                            let i = usize::try_from(tp.partition).unwrap_or(0);
                            prop_assert!(*off > committed[i], "commit of {:?} did not advance", tp);
                            prop_assert_eq!(*off, models[i].committable());
                        }
                        in_flight = Some(c);
                    }
                }
                TOp::Finish { ok, kind } => {
                    if let Some(c) = in_flight.take() {
                        let outcome = if ok {
                            t.commit_succeeded(now, c.id)
                        } else {
                            let kind = [CommitErrorKind::Retriable, CommitErrorKind::CoordinatorMoved,
                                CommitErrorKind::MembershipLost, CommitErrorKind::RebalanceInProgress][usize::from(kind)];
                            t.commit_failed(now, c.id, kind)
                        };
                        prop_assert!(!outcome.stale);
                        for (tp, off) in outcome.committed {
                            let i = usize::try_from(tp.partition).unwrap_or(0);
                            prop_assert!(off > committed[i]);
                            committed[i] = off;
                        }
                    }
                }
                TOp::Revoke { part } => {
                    let i = usize::from(part);
                    revoked[i] = true;
                    t.revoke(now, [&tps[i]]);
                }
            }
            for (i, tp) in tps.iter().enumerate() {
                if let Some(c) = t.committed(tp) {
                    prop_assert_eq!(c, committed[i]);
                    prop_assert!(t.committable(tp) >= Some(c));
                    prop_assert!(t.outstanding(tp).unwrap_or(0) <= 16);
                }
            }
            if in_flight.is_none() {
                if let Some(d) = t.poll_timeout() {
                    // A timer is only armed while something can still happen at it.
                    prop_assert!(d >= t0);
                }
            }
        }
        // Draining: with successes, every revoked partition settles.
        for _ in 0..10 {
            if let Some(c) = in_flight.take() { t.commit_succeeded(now, c.id); }
            now += Duration::from_secs(61);
            in_flight = t.poll_commit(now);
        }
        if let Some(c) = in_flight.take() { t.commit_succeeded(now, c.id); }
        for (i, tp) in tps.iter().enumerate() {
            if revoked[i] {
                prop_assert!(t.settled([tp]), "revoked partition {tp:?} never settled");
            }
        }
    }
}

/// Operations on two trackers fed the same records, one by name, one by handle.
#[derive(Debug, Clone)]
enum HOp {
    /// Deliver the next offset of partition `part` (after `gap` skipped offsets).
    Deliver { part: u8, gap: u8 },
    /// Ack the `pick`-th delivered offset of `part` (acked or not: repeats included).
    Ack { part: u8, pick: usize },
    /// Ack an arbitrary offset of `part` (a gap, beyond the last delivery, or committed).
    AckAny { part: u8, offset: u8 },
    /// Lose `part` and assign it again at its committable offset: old handles go stale.
    Reassign { part: u8 },
}

fn hop() -> impl Strategy<Value = HOp> {
    prop_oneof![
        8 => (0u8..4, prop_oneof![4 => Just(0u8), 1 => 1u8..5]).prop_map(|(part, gap)| HOp::Deliver { part, gap }),
        8 => (0u8..4, any::<usize>()).prop_map(|(part, pick)| HOp::Ack { part, pick }),
        1 => (0u8..4, any::<u8>()).prop_map(|(part, offset)| HOp::AckAny { part, offset }),
        1 => (0u8..4).prop_map(|part| HOp::Reassign { part }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// For any deliveries and any ack order, acking by handle (`delivered_at`/`acked_at`)
    /// gives the same results and the same committable offsets as acking by name; handles of
    /// an assignment that is over are refused and change nothing.
    #[test]
    fn handle_path_matches_name_path(
        ops in proptest::collection::vec(hop(), 0..400),
    ) {
        let now = Instant::now();
        let config = CommitConfig { max_outstanding: 32, ..CommitConfig::default() };
        let mut by_name = OffsetTracker::new(config.clone(), now);
        let mut by_handle = OffsetTracker::new(config, now);
        // Two topics, so that partitions share numbers and slots are reused.
        let tps: Vec<TopicPartition> = (0..4).map(|i| TopicPartition::new(format!("topic-{}", i % 2), i / 2)).collect();
        let mut handles = Vec::new();
        let mut stale = Vec::new();
        let mut delivered: Vec<Vec<i64>> = vec![Vec::new(); tps.len()];
        let mut next: Vec<i64> = (0..4).map(|i| 100 * i).collect();
        for (tp, start) in tps.iter().zip(&next) {
            by_name.assign(tp.clone(), *start);
            by_handle.assign(tp.clone(), *start);
            handles.push(by_handle.partition_handle(tp).expect("assigned"));
        }
        for op in ops {
            match op {
                HOp::Deliver { part, gap } => {
                    let i = usize::from(part);
                    let o = next[i] + i64::from(gap);
                    let a = by_name.delivered(&tps[i], o);
                    let b = by_handle.delivered_at(handles[i], o);
                    prop_assert_eq!(&a, &b);
                    if a.is_ok() {
                        delivered[i].push(o);
                        next[i] = o + 1;
                    }
                }
                HOp::Ack { part, pick } => {
                    let i = usize::from(part);
                    if delivered[i].is_empty() { continue; }
                    let o = delivered[i][pick % delivered[i].len()];
                    prop_assert_eq!(by_name.acked(&tps[i], o), by_handle.acked_at(handles[i], o));
                }
                HOp::AckAny { part, offset } => {
                    let i = usize::from(part);
                    let o = 100 * i64::from(part) + i64::from(offset);
                    prop_assert_eq!(by_name.acked(&tps[i], o), by_handle.acked_at(handles[i], o));
                }
                HOp::Reassign { part } => {
                    let i = usize::from(part);
                    let at = by_name.committable(&tps[i]).expect("tracked");
                    prop_assert_eq!(by_handle.committable(&tps[i]), Some(at));
                    by_name.lose([&tps[i]]);
                    by_handle.lose([&tps[i]]);
                    prop_assert_eq!(by_handle.acked_at(handles[i], at), Err(TrackError::StaleHandle));
                    by_name.assign(tps[i].clone(), at);
                    by_handle.assign(tps[i].clone(), at);
                    stale.push(handles[i]);
                    handles[i] = by_handle.partition_handle(&tps[i]).expect("assigned");
                    delivered[i].clear();
                    next[i] = at;
                }
            }
            // A stale handle never reaches the new assignment (nor another partition that
            // reused its slot).
            for h in &stale {
                prop_assert_eq!(by_handle.acked_at(*h, 0), Err(TrackError::StaleHandle));
                prop_assert_eq!(by_handle.delivered_at(*h, i64::MAX - 1), Err(TrackError::StaleHandle));
            }
            for tp in &tps {
                prop_assert_eq!(by_name.committable(tp), by_handle.committable(tp));
                prop_assert_eq!(by_name.outstanding(tp), by_handle.outstanding(tp));
            }
        }
        // Both trackers commit the same offsets.
        let later = now + Duration::from_secs(3600);
        let a = by_name.poll_commit(later).map(|c| c.offsets);
        let b = by_handle.poll_commit(later).map(|c| c.offsets);
        prop_assert_eq!(a, b);
    }
}
