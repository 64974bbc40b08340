//! Property tests of the member against a scripted coordinator in virtual time.
//!
//! - Chaos: random answers (successes, every §2.6 error, transport failures), time jumps,
//!   polls, acknowledgements, subscription changes, commit errors and closes. The member
//!   never panics, never sends a Heartbeat/SyncGroup for a generation other than the one it
//!   holds (nor an older one than it sent before), never sends JoinGroup with revocations
//!   pending or (eager) while owning partitions, never reports a partition assigned twice
//!   without a revoke/loss in between, never busy-loops, and sends nothing once closed or
//!   failed.
//! - Heartbeat gap: with a coordinator that answers within a bounded latency and an
//!   application that may stop polling, heartbeats while Stable are never more than
//!   `heartbeat_interval` + latency apart.

mod membership_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::LeaveGroupResponse;
use membership_support::*;
use mephisto_consumer_group::assignor::AssignContext;
use mephisto_consumer_group::membership::{
    GroupEvent, GroupRequest, Member, MemberState, RequestBody, RequestFailure, ResponseEvent,
};
use proptest::prelude::*;

type Parts = BTreeSet<mephisto_consumer_group::TopicPartition>;

#[derive(Debug, Clone)]
enum Outcome {
    Ok(u8),
    Error(i16),
    Fail,
}

#[derive(Debug, Clone)]
enum Action {
    Advance(u32),
    Respond { pick: usize, outcome: Outcome },
    Poll,
    Ack,
    Subscribe(u8),
    CommitError { stale: bool, code: i16 },
    RequestRejoin,
    Close,
}

const ERRORS: [i16; 14] = [14, 15, 16, 22, 23, 25, 26, 27, 79, 81, 82, 30, 7, 1000];
const RETRIABLE_ERRORS: [i16; 7] = [14, 15, 16, 22, 25, 27, 7];

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        16 => any::<u8>().prop_map(Outcome::Ok),
        4 => proptest::sample::select(RETRIABLE_ERRORS.to_vec()).prop_map(Outcome::Error),
        1 => proptest::sample::select(ERRORS.to_vec()).prop_map(Outcome::Error),
        2 => Just(Outcome::Fail),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (0u32..20_000).prop_map(Action::Advance),
        12 => (any::<usize>(), outcome()).prop_map(|(pick, outcome)| Action::Respond { pick, outcome }),
        2 => Just(Action::Poll),
        3 => Just(Action::Ack),
        1 => (0u8..8).prop_map(Action::Subscribe),
        1 => (any::<bool>(), proptest::sample::select(ERRORS.to_vec()))
            .prop_map(|(stale, code)| Action::CommitError { stale, code }),
        1 => Just(Action::RequestRejoin),
        1 => (0u8..10).prop_map(|n| if n == 0 { Action::Close } else { Action::Poll }),
    ]
}

fn topics(mask: u8) -> Vec<&'static str> {
    ["a", "b", "c"]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, t)| t)
        .collect()
}

/// The pretend coordinator's answers.
struct Fake {
    generation: i32,
    next_member: u32,
}

impl Fake {
    fn answer(&mut self, r: &GroupRequest, outcome: &Outcome) -> ResponseEvent {
        let request = r.id;
        let code = match outcome {
            Outcome::Fail => {
                return ResponseEvent::Failed {
                    request,
                    error: RequestFailure::Timeout,
                }
            }
            Outcome::Error(c) => Some(*c),
            Outcome::Ok(_) => None,
        };
        let v = match outcome {
            Outcome::Ok(v) => *v,
            _ => 0,
        };
        match &r.body {
            RequestBody::FindCoordinator(_) => ResponseEvent::FindCoordinator {
                request,
                response: code.map_or_else(|| find_ok(1 + i32::from(v % 3)), find_err),
            },
            RequestBody::JoinGroup(j) => {
                if let Some(c) = code {
                    self.next_member += 1;
                    return ResponseEvent::JoinGroup {
                        request,
                        response: join_err(c, &format!("m{}", self.next_member)),
                    };
                }
                let member_id = if j.member_id.is_empty() {
                    self.next_member += 1;
                    format!("m{}", self.next_member)
                } else {
                    j.member_id.clone()
                };
                if j.member_id.is_empty() && j.group_instance_id.is_none() && v % 2 == 0 {
                    return ResponseEvent::JoinGroup {
                        request,
                        response: join_err(79, &member_id),
                    };
                }
                self.generation += 1;
                let protocol = &j.protocols[usize::from(v / 2) % j.protocols.len()];
                let response = if v % 3 == 0 {
                    join_leader(
                        self.generation,
                        &member_id,
                        &protocol.name,
                        &[
                            (member_id.as_str(), protocol.metadata.clone()),
                            ("zz-other", subscription_bytes(&["a", "b"])),
                        ],
                    )
                    .with_skip_assignment(v % 7 == 0)
                } else {
                    join_follower(self.generation, &member_id, &protocol.name)
                };
                ResponseEvent::JoinGroup { request, response }
            }
            RequestBody::SyncGroup(_) => {
                let response = match code {
                    Some(c) => sync_err(c),
                    None => {
                        let all = [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("c", 0)];
                        let parts: Parts = all
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| v & (1 << i) != 0)
                            .map(|(_, (t, p))| tp(t, *p))
                            .collect();
                        sync_ok(&parts)
                    }
                };
                ResponseEvent::SyncGroup { request, response }
            }
            RequestBody::Heartbeat(_) => ResponseEvent::Heartbeat {
                request,
                response: hb(code.unwrap_or(0)),
            },
            RequestBody::LeaveGroup(_) => ResponseEvent::LeaveGroup {
                request,
                response: LeaveGroupResponse::default().with_error_code(code.unwrap_or(0)),
            },
            RequestBody::AssignmentMetadata(_) => {
                if code.is_some() {
                    return ResponseEvent::Failed {
                        request,
                        error: RequestFailure::Timeout,
                    };
                }
                let mut context = AssignContext::default();
                for (t, n) in [("a", 3), ("b", 2), ("c", 1)] {
                    context.partitions_per_topic.insert(t.to_owned(), n);
                }
                ResponseEvent::AssignmentMetadata { request, context }
            }
        }
    }
}

/// Checks the invariants while driving the member.
struct Checker {
    owned: Parts,
    stopped: bool,
    max_generation_sent: i32,
    last_id: u64,
    seen: Seen,
}

/// What a chaos run went through, to show the properties are not checked in a vacuum.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    assigned_nonempty: u32,
    revoked: u32,
    lost: u32,
    max_poll: u32,
    fatal: u32,
    closed: u32,
    heartbeats: u32,
    joins: u32,
    syncs_as_leader: u32,
    cooperative_generations: u32,
}

impl Seen {
    fn add(&mut self, o: Seen) {
        self.assigned_nonempty += o.assigned_nonempty;
        self.revoked += o.revoked;
        self.lost += o.lost;
        self.max_poll += o.max_poll;
        self.fatal += o.fatal;
        self.closed += o.closed;
        self.heartbeats += o.heartbeats;
        self.joins += o.joins;
        self.syncs_as_leader += o.syncs_as_leader;
        self.cooperative_generations += o.cooperative_generations;
    }
}

impl Checker {
    fn new() -> Self {
        Self {
            owned: Parts::new(),
            stopped: false,
            max_generation_sent: -1,
            last_id: 0,
            seen: Seen::default(),
        }
    }

    fn pump(
        &mut self,
        m: &mut Member,
        now: Instant,
        out: &mut Vec<GroupRequest>,
    ) -> Result<(), TestCaseError> {
        let mut n = 0;
        while let Some(r) = m.poll_request(now) {
            n += 1;
            prop_assert!(n < 100, "poll_request never returns None");
            prop_assert!(!self.stopped, "request after Fatal/Closed: {r:?}");
            prop_assert!(r.id.0 > self.last_id, "request ids increase");
            self.last_id = r.id.0;
            match &r.body {
                RequestBody::Heartbeat(b) => {
                    self.seen.heartbeats += 1;
                    self.check_generation(m, b.generation_id)?;
                }
                RequestBody::SyncGroup(s) => {
                    if !s.assignments.is_empty() {
                        self.seen.syncs_as_leader += 1;
                    }
                    if m.protocol() == Some("cooperative-sticky") {
                        self.seen.cooperative_generations += 1;
                    }
                    self.check_generation(m, s.generation_id)?;
                }
                RequestBody::JoinGroup(_) => {
                    self.seen.joins += 1;
                    prop_assert_eq!(
                        m.pending_revocations(),
                        0,
                        "JoinGroup with revocations pending"
                    );
                    let eager = m.protocol().is_none_or(|p| p == "range");
                    prop_assert!(
                        !eager || m.owned().is_empty(),
                        "eager JoinGroup while owning {:?}",
                        m.owned()
                    );
                }
                _ => {}
            }
            out.push(r);
        }
        while let Some(e) = m.poll_event() {
            match e.clone() {
                GroupEvent::Assigned {
                    partitions,
                    generation,
                    ..
                } => {
                    prop_assert_eq!(Some(generation), m.generation());
                    if !partitions.is_empty() {
                        self.seen.assigned_nonempty += 1;
                    }
                    for p in partitions {
                        prop_assert!(self.owned.insert(p.clone()), "{p:?} assigned twice");
                    }
                }
                GroupEvent::Revoked { partitions } | GroupEvent::Lost { partitions } => {
                    if let GroupEvent::Revoked { .. } = e {
                        self.seen.revoked += 1;
                    } else {
                        self.seen.lost += 1;
                    }
                    for p in partitions {
                        prop_assert!(self.owned.remove(&p), "{p:?} revoked/lost but not owned");
                    }
                }
                GroupEvent::Fatal(_) => {
                    self.seen.fatal += 1;
                    self.stopped = true;
                }
                GroupEvent::Closed => {
                    self.seen.closed += 1;
                    self.stopped = true;
                }
                GroupEvent::MaxPollExceeded => self.seen.max_poll += 1,
            }
        }
        prop_assert_eq!(&self.owned, m.owned());
        if let Some(t) = m.poll_timeout() {
            prop_assert!(
                t > now,
                "deadline not in the future after pumping: busy loop"
            );
        }
        Ok(())
    }

    fn check_generation(&mut self, m: &Member, generation: i32) -> Result<(), TestCaseError> {
        prop_assert_eq!(
            Some(generation),
            m.generation(),
            "request for another generation"
        );
        prop_assert!(
            generation >= self.max_generation_sent,
            "generation went backwards"
        );
        self.max_generation_sent = generation;
        Ok(())
    }
}

fn run_chaos(static_member: bool, actions: Vec<Action>) -> Result<Seen, TestCaseError> {
    // Short timeouts so sessions and max poll intervals expire within a run.
    let mut c = config();
    c.heartbeat_interval = Duration::from_secs(1);
    c.session_timeout = Duration::from_secs(10);
    c.max_poll_interval = Duration::from_secs(30);
    if static_member {
        c.group_instance_id = Some("inst".into());
    }
    let mut now = Instant::now();
    let mut m = Member::new(c, vec![eager(), cooperative()], now)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut fake = Fake {
        generation: 0,
        next_member: 0,
    };
    let mut chk = Checker::new();
    let mut outstanding: Vec<GroupRequest> = Vec::new();
    m.subscribe(now, ["a"]);
    chk.pump(&mut m, now, &mut outstanding)?;
    for action in actions {
        match action {
            Action::Advance(ms) => {
                let target = now + Duration::from_millis(u64::from(ms));
                while let Some(t) = m.poll_timeout() {
                    if t > target {
                        break;
                    }
                    now = t;
                    m.handle_timeout(now);
                    chk.pump(&mut m, now, &mut outstanding)?;
                }
                now = target;
                m.handle_timeout(now);
            }
            Action::Respond { pick, outcome } => {
                if !outstanding.is_empty() {
                    let r = outstanding.remove(pick % outstanding.len());
                    let event = fake.answer(&r, &outcome);
                    m.handle_response(now, event);
                }
            }
            Action::Poll => m.record_poll(now),
            Action::Ack => m.revocation_done(now),
            Action::Subscribe(mask) => m.subscribe(now, topics(mask)),
            Action::CommitError { stale, code } => {
                if let (Some(g), Some(e)) = (m.generation(), ResponseError::try_from_code(code)) {
                    let before = (m.generation(), m.member_id().to_owned(), m.state());
                    m.handle_commit_error(now, if stale { g - 1 } else { g }, e);
                    let generation_bound = matches!(code, 22 | 25 | 27);
                    if stale && generation_bound {
                        // The guard: an error about a generation we no longer hold changes nothing.
                        prop_assert_eq!(
                            before,
                            (m.generation(), m.member_id().to_owned(), m.state())
                        );
                    }
                }
            }
            Action::RequestRejoin => m.request_rejoin("test"),
            Action::Close => m.close(now),
        }
        chk.pump(&mut m, now, &mut outstanding)?;
    }
    Ok(chk.seen)
}

/// The chaos runs reach every interesting state (fixed seed, so this is deterministic).
#[test]
fn chaos_runs_cover_the_interesting_paths() {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = (any::<bool>(), proptest::collection::vec(action(), 1..120));
    let mut total = Seen::default();
    for _ in 0..300 {
        let (static_member, actions) = strategy
            .new_tree(&mut runner)
            .map(|t| proptest::strategy::ValueTree::current(&t))
            .expect("strategy generates");
        let seen = run_chaos(static_member, actions).expect("properties hold");
        total.add(seen);
    }
    eprintln!("{total:?}");
    for (what, n) in [
        ("assigned", total.assigned_nonempty),
        ("revoked", total.revoked),
        ("lost", total.lost),
        ("max poll", total.max_poll),
        ("fatal", total.fatal),
        ("closed", total.closed),
        ("heartbeats", total.heartbeats),
        ("joins", total.joins),
        ("leader syncs", total.syncs_as_leader),
        ("cooperative generations", total.cooperative_generations),
    ] {
        assert!(n >= 10, "only {n} {what} in 300 chaos runs: {total:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn chaos_dynamic_member(actions in proptest::collection::vec(action(), 1..120)) {
        run_chaos(false, actions)?;
    }

    #[test]
    fn chaos_static_member(actions in proptest::collection::vec(action(), 1..120)) {
        run_chaos(true, actions)?;
    }
}

// ---- heartbeat gap ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum AppAction {
    /// Time passes (ms) while the application polls (or not).
    Run { ms: u32, polling: bool },
    /// The next heartbeat answer is REBALANCE_IN_PROGRESS (another member joined).
    Rebalance,
    /// The engine acknowledges revocations.
    Ack,
}

fn app_action() -> impl Strategy<Value = AppAction> {
    prop_oneof![
        8 => (0u32..60_000, any::<bool>()).prop_map(|(ms, polling)| AppAction::Run { ms, polling }),
        1 => Just(AppAction::Rebalance),
        2 => Just(AppAction::Ack),
    ]
}

const MAX_LATENCY_MS: u64 = 800;

fn run_gap(latencies: Vec<u16>, actions: Vec<AppAction>) -> Result<u32, TestCaseError> {
    let c = config();
    let interval = c.heartbeat_interval;
    let slack = Duration::from_millis(MAX_LATENCY_MS);
    let mut now = Instant::now();
    let mut m =
        Member::new(c, vec![eager()], now).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut fake = Fake {
        generation: 0,
        next_member: 0,
    };
    let mut inflight: Vec<(Instant, GroupRequest)> = Vec::new();
    let mut lat = latencies.into_iter().cycle();
    let mut stable_since: Option<Instant> = None;
    let mut last_beat: Option<Instant> = None;
    let mut rebalance_next = false;
    let mut heartbeats_checked = 0u32;
    m.subscribe(now, ["a"]);
    for action in actions {
        let (ms, polling) = match action {
            AppAction::Run { ms, polling } => (ms, polling),
            AppAction::Rebalance => {
                rebalance_next = true;
                (0, true)
            }
            AppAction::Ack => {
                m.revocation_done(now);
                (0, true)
            }
        };
        let target = now + Duration::from_millis(u64::from(ms));
        loop {
            // Engine loop: drain requests, schedule answers, drain events.
            while let Some(r) = m.poll_request(now) {
                if matches!(r.body, RequestBody::Heartbeat(_)) && m.state() == MemberState::Stable {
                    if let Some(prev) = last_beat.into_iter().chain(stable_since).max() {
                        prop_assert!(
                            now - prev <= interval + slack,
                            "heartbeat gap {:?}",
                            now - prev
                        );
                        heartbeats_checked += 1;
                    }
                    last_beat = Some(now);
                }
                let latency =
                    Duration::from_millis(u64::from(lat.next().unwrap_or(0)) % MAX_LATENCY_MS);
                inflight.push((now + latency, r));
            }
            while m.poll_event().is_some() {}
            let stable = m.state() == MemberState::Stable;
            match (stable, stable_since) {
                (true, None) => stable_since = Some(now),
                (false, _) => {
                    stable_since = None;
                    last_beat = None;
                }
                _ => {}
            }
            if let Some(prev) = last_beat.into_iter().chain(stable_since).max() {
                prop_assert!(
                    now - prev <= interval + slack,
                    "no heartbeat for {:?}",
                    now - prev
                );
            }
            let next_answer = inflight.iter().map(|(t, _)| *t).min();
            let next = [next_answer, m.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= target => {
                    now = now.max(t);
                    if let Some(i) = inflight.iter().position(|(due, _)| *due <= now) {
                        let (_, r) = inflight.remove(i);
                        let outcome =
                            if rebalance_next && matches!(r.body, RequestBody::Heartbeat(_)) {
                                rebalance_next = false;
                                Outcome::Error(27)
                            } else {
                                Outcome::Ok(1) // follower joins, no MEMBER_ID_REQUIRED
                            };
                        let event = fake.answer(&r, &outcome);
                        m.handle_response(now, event);
                    }
                    m.handle_timeout(now);
                    if polling {
                        m.record_poll(now);
                    }
                }
                _ => break,
            }
        }
        now = target;
        m.handle_timeout(now);
        if polling {
            m.record_poll(now);
        }
    }
    Ok(heartbeats_checked)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn heartbeats_are_never_late_while_stable(
        latencies in proptest::collection::vec(any::<u16>(), 1..16),
        actions in proptest::collection::vec(app_action(), 1..40),
    ) {
        run_gap(latencies, actions)?;
    }
}

/// The gap property is not vacuous: a long healthy run does check many heartbeats.
#[test]
fn heartbeat_gap_run_checks_heartbeats() {
    let actions = vec![
        AppAction::Run {
            ms: 100_000,
            polling: true
        };
        3
    ];
    let checked = run_gap(vec![5, 700, 30], actions).expect("healthy run passes");
    // 300 s at one heartbeat every 3 s, minus the first one after joining.
    assert!(checked >= 95, "only {checked} heartbeat gaps checked");
    let mut h = Harness::new(config(), vec![eager()]);
    h.join_as_follower(&["a"], 1, &set(&[("a", 0)]));
    let mut beats = 0;
    for _ in 0..100 {
        h.advance(Duration::from_secs(1));
        beats += h.answer_heartbeats(0);
    }
    assert_eq!(beats, 33);
}
