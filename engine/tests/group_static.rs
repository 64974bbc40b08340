//! Static membership (KIP-345): a member restarted with the same `group.instance.id` within
//! the session timeout causes no rebalance.
//!
//! One scenario, two brokers:
//! - tansu (started by `support`), which keeps the group as it is across the restart: the
//!   restarted member gets its member id, generation and partitions back (about 8 s after
//!   the restart with a 10 s session timeout), the other member sees nothing;
//! - the in-process development broker (`mephisto_dev_broker::DevBroker`), which does as Kafka: the
//!   restarted member gets a new member id but the same generation and its partitions back.
//!
//! Each broker also runs the same restart with a dynamic member dropped without LeaveGroup,
//! which must be seen as a rebalance: the checks can tell one from the other there.
//!
//! librdkafka's mock cluster (2.x, through `rdkafka` 0.39) does not implement static
//! membership: run this scenario on it (JoinGroup v5, as in `group_mock.rs`) and the restarted
//! static member gets a new member id and the group a new generation, with the other member's
//! partitions revoked, exactly as for a dynamic member.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mephisto_dev_broker::{DevBroker, DevBrokerConfig};
use mephisto_engine::fetcher::{FetcherConfig, OffsetReset};
use mephisto_engine::group::{AssignorKind, GroupConfig, GroupConsumer, PartitionSet};
use mephisto_engine::{Admin, ClientConfig, Cluster, NewTopic};

const PARTITIONS: i32 = 4;

/// What one member saw.
#[derive(Default)]
struct Callbacks {
    assigned: Mutex<Vec<PartitionSet>>,
    revoked: Mutex<Vec<PartitionSet>>,
    lost: Mutex<Vec<PartitionSet>>,
}

impl Callbacks {
    fn counts(&self) -> (usize, usize, usize) {
        (
            self.assigned.lock().unwrap().len(),
            self.revoked.lock().unwrap().len(),
            self.lost.lock().unwrap().len(),
        )
    }
}

fn watch(m: &GroupConsumer) -> Arc<Callbacks> {
    let seen = Arc::new(Callbacks::default());
    let s = Arc::clone(&seen);
    m.on_assigned(move |p| s.assigned.lock().unwrap().push(p.clone()));
    let s = Arc::clone(&seen);
    m.on_revoked(move |p| s.revoked.lock().unwrap().push(p.clone()));
    let s = Arc::clone(&seen);
    m.on_lost(move |p| s.lost.lock().unwrap().push(p.clone()));
    seen
}

fn stable(m: &GroupConsumer) -> bool {
    format!("{:?}", m.member_state()) == "Stable"
}

/// Polls every member for a moment (the max poll interval; the topic stays empty).
async fn poll(members: &[&GroupConsumer]) {
    for m in members {
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_millis(50), m.next()).await {
            m.ack_record(&r).expect("ack");
        }
    }
}

/// Where the scenario runs: client configs per member, and the session timeout.
struct Target<F: Fn(&str) -> ClientConfig> {
    connect: F,
    session: Duration,
}

/// Two members (client ids `a` and `b`, static with instance ids `a` and `b` when `static_ids`)
/// share `topic`'s four partitions with `range`. Then `a` stops without LeaveGroup (a static
/// member's `close`; a dynamic one is dropped) and a new `a` starts at once.
///
/// Returns whether the group rebalanced: the other member saw a revocation, loss or new
/// assignment, or changed generation, or the new `a` came back with other partitions or
/// another generation, before `restart + session + 1 s`.
async fn restart_rebalances<F: Fn(&str) -> ClientConfig>(
    target: &Target<F>,
    topic: &str,
    group: &str,
    static_ids: bool,
) -> bool {
    let start = |instance: &str| {
        let config = GroupConfig::new(group)
            .with_assignor(AssignorKind::Range)
            .with_session_timeout(target.session)
            .with_heartbeat_interval(Duration::from_millis(500))
            .with_max_poll_interval(Duration::from_secs(30))
            .with_fetcher(FetcherConfig::default().with_auto_offset_reset(OffsetReset::Earliest))
            .with_instance_id(static_ids.then(|| instance.to_owned()));
        let client = (target.connect)(instance);
        let topic = topic.to_owned();
        async move {
            let m = GroupConsumer::connect(client, config)
                .await
                .expect("consumer");
            let seen = watch(&m);
            m.subscribe([topic.as_str()]);
            (m, seen)
        }
    };
    let (a, _) = start("a").await;
    let (b, seen_b) = start("b").await;
    let t = Instant::now();
    loop {
        poll(&[&a, &b]).await;
        let (sa, sb) = (a.assignment(), b.assignment());
        if sa.len() == 2
            && sb.len() == 2
            && sa.is_disjoint(&sb)
            && a.generation().map(|g| g.1) == b.generation().map(|g| g.1)
            && stable(&a)
            && stable(&b)
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no stable group of two: {sa:?} {sb:?} {:?} {:?}",
            a.generation(),
            b.generation()
        );
    }
    // Let the group settle: a late rebalance shows up here, not after the restart.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        poll(&[&a, &b]).await;
    }
    let (gen_a, owned_a) = (a.generation().expect("joined"), a.assignment());
    let (gen_b, owned_b) = (b.generation().expect("joined"), b.assignment());
    let seen_before = seen_b.counts();

    if static_ids {
        // A static member commits and sends no LeaveGroup.
        a.close().await.expect("close");
    }
    drop(a);
    let restarted = Instant::now();
    let (a2, seen_a2) = start("a").await;
    let until = restarted + target.session + Duration::from_secs(1);
    let mut back = None;
    while Instant::now() < until {
        poll(&[&a2, &b]).await;
        if back.is_none() && stable(&a2) && !a2.assignment().is_empty() {
            back = Some(restarted.elapsed());
        }
    }
    let rebalanced = b.generation().as_ref() != Some(&gen_b)
        || b.assignment() != owned_b
        || seen_b.counts() != seen_before
        || a2.generation().map(|g| g.1) != Some(gen_a.1)
        || a2.assignment() != owned_a
        || seen_a2.counts() != (1, 0, 0);
    eprintln!(
        "{} restart: a back after {back:?} with {:?} (was {owned_a:?}), generation {:?} -> {:?}; \
         b {:?} -> {:?}, {:?} (was {owned_b:?}), callbacks {:?} -> {:?}; rebalanced: {rebalanced}",
        if static_ids { "static" } else { "dynamic" },
        a2.assignment(),
        gen_a,
        a2.generation(),
        gen_b,
        b.generation(),
        b.assignment(),
        seen_before,
        seen_b.counts(),
    );
    for m in [a2, b] {
        let _ = tokio::time::timeout(Duration::from_secs(20), m.close()).await;
    }
    rebalanced
}

/// KIP-345 against the in-process development broker: the static restart causes no
/// rebalance, the dynamic one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_restart_within_the_session_timeout_causes_no_rebalance() {
    let broker = DevBroker::start(DevBrokerConfig::default())
        .await
        .expect("start the development broker");
    let url = broker.url();
    let target = Target {
        connect: |client: &str| {
            ClientConfig::from_url(&url)
                .expect("the development broker's URL")
                .with_client_id(client)
                .with_request_timeout(Duration::from_secs(10))
                .with_connect_timeout(Duration::from_secs(5))
                .with_api_timeout(Duration::from_secs(20))
        },
        session: Duration::from_secs(10),
    };
    let cluster = Cluster::connect((target.connect)("setup"))
        .await
        .expect("connect");
    let admin = Admin::new(cluster);
    for static_ids in [true, false] {
        let topic = support::unique_topic("static-restart");
        admin
            .create_topic(NewTopic::new(&topic, PARTITIONS, 1))
            .await
            .expect("create topic");
        let group = support::unique_topic("g-static-restart");
        let rebalanced = restart_rebalances(&target, &topic, &group, static_ids).await;
        assert_eq!(rebalanced, !static_ids, "static members: {static_ids}");
    }
}

/// The same on tansu: it keeps the group as it is across a static member's restart (the
/// restarted member gets its member id, generation and partitions back), and rebalances for
/// a dynamic member that comes back with a new member id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_static_member_restart_causes_no_rebalance() {
    let broker = support::broker();
    let target = Target {
        connect: |client: &str| support::config(&broker).with_client_id(client),
        session: Duration::from_secs(10),
    };
    let cluster = support::cluster(&broker).await;
    let admin = Admin::new(cluster);
    for static_ids in [true, false] {
        let topic = support::unique_topic("static-restart");
        admin
            .create_topic(NewTopic::new(&topic, PARTITIONS, 1))
            .await
            .expect("create topic");
        let group = support::unique_topic("g-static-restart");
        let rebalanced = restart_rebalances(&target, &topic, &group, static_ids).await;
        assert_eq!(rebalanced, !static_ids, "static members: {static_ids}");
    }
}
