//! The driver task: runs the [`Member`] per its driver contract (requests out, answers and
//! timeouts in, events handled, one timer armed), commits through the offset tracker what the
//! partitions' acks report, and looks up committed positions of assigned partitions. It owns
//! all of that state (`state`) and runs on its own task, so heartbeats never wait for the
//! application; the handle talks to it with messages and reads the status it publishes.
//!
//! - `state`: [`DriverState`], what the task owns.
//! - `rebalance`: assignments, revocations (drain, then forced commit), losses.
//! - `commit`: commits and `commit().await`.

mod commit;
mod rebalance;
mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mephisto_consumer_group::membership::{GroupRequest, Member};
use mephisto_consumer_group::offsets::OffsetTracker;
use tokio::sync::mpsc::UnboundedReceiver;

use super::protocol;
use super::shared::{Msg, Shared};
use state::DriverState;

/// How often a due commit looks again while no coordinator or stable generation is known.
const COMMIT_WAIT_POLL: Duration = Duration::from_millis(100);
/// Upper bound on the driver's inner drain loop per wake-up.
const MAX_ROUNDS: usize = 64;

/// Runs the driver until the member is closed or failed (or the handle is gone).
pub(crate) async fn run(
    shared: Arc<Shared>,
    member: Member,
    tracker: OffsetTracker,
    mut rx: UnboundedReceiver<Msg>,
) {
    let mut st = DriverState::new(Arc::clone(&shared), member, tracker);
    loop {
        let deadline = step(&mut st);
        publish(&mut st);
        if st.finished.is_some() {
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
                Some(msg) => handle(&mut st, msg),
                None => break,
            },
            () = shared.wake().notified() => {}
            () = sleep => {
                st.sync();
                st.member.handle_timeout(Instant::now());
            }
        }
        publish(&mut st);
    }
    rebalance::abandon_all(&mut st);
    commit::close_waiters(&mut st);
    shared.fetcher().close();
    shared.close_partitions();
    publish(&mut st);
}

/// Publishes the status, then runs the callbacks and answers the `commit()` calls of the
/// step (so that a caller sees what its commit did).
fn publish(st: &mut DriverState) {
    st.shared.publish(st.status());
    for (listener, partitions) in std::mem::take(&mut st.notices) {
        listener(&partitions);
    }
    for (reply, result) in std::mem::take(&mut st.replies) {
        let _ = reply.send(result);
    }
}

/// Drains requests, events, commits and settled revocations until nothing moves; returns the
/// next deadline.
fn step(st: &mut DriverState) -> Option<Instant> {
    let now = Instant::now();
    st.sync();
    for _ in 0..MAX_ROUNDS {
        let mut progress = false;
        while let Some(request) = st.member.poll_request(now) {
            send_request(&st.shared, request);
            progress = true;
        }
        while let Some(event) = st.member.poll_event() {
            rebalance::on_event(st, now, event);
            progress = true;
        }
        progress |= rebalance::finish_draining(st, now);
        progress |= commit::maybe_commit(st, now);
        progress |= rebalance::settle_revocations(st, now);
        if !progress {
            break;
        }
    }
    commit::expire_commit_waiters(st, now);
    if st.finished.is_some() {
        commit::close_waiters(st);
    }
    let mut tracker_deadline = st.tracker.poll_timeout();
    if st.commit_in_flight.is_none() && !st.can_commit() {
        // A commit that is due waits for the coordinator or a stable generation: the member's
        // progress wakes the driver; meanwhile look again now and then rather than spin.
        tracker_deadline = tracker_deadline.map(|d| d.max(now + COMMIT_WAIT_POLL));
    }
    // Acks are reported by the partitions' atomics: look at them at least once per commit
    // interval while partitions are owned.
    let sync = (!st.owned.is_empty()).then(|| now + st.shared.config().commit.interval);
    [
        st.member.poll_timeout(),
        tracker_deadline,
        st.draining.front().map(|(_, until)| *until),
        st.commit_waiters.iter().map(|w| w.deadline).min(),
        sync,
    ]
    .into_iter()
    .flatten()
    .min()
}

fn send_request(shared: &Arc<Shared>, request: GroupRequest) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let answer = protocol::exchange(shared.cluster(), request).await;
        shared.send(Msg::Response(answer));
    });
}

fn handle(st: &mut DriverState, msg: Msg) {
    let now = Instant::now();
    match msg {
        Msg::Subscribe(topics) => st.member.subscribe(now, topics),
        Msg::UserData(data) => st.member.set_user_data(data),
        Msg::Polled => st.sync(),
        Msg::CommitNow(reply) => commit::commit_now(st, reply),
        Msg::Close => {
            st.closing = true;
            st.member.close(now);
        }
        Msg::Response(event) => st.member.handle_response(now, event),
        Msg::Committed {
            id,
            generation,
            result,
        } => commit::on_committed(st, now, id, generation, result),
        Msg::Positions { partitions, result } => rebalance::on_positions(st, partitions, result),
    }
}
