//! A mixed consumer group: one Mephisto [`GroupConsumer`] and one confluent-kafka consumer
//! (`.venv/bin/python`, from `scripts/install-peers.sh`) in the same group, for the `range`
//! and `roundrobin` assignors: the assignment is disjoint and complete, both consume, and
//! together they read every record exactly once.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mephisto_engine::fetcher::{FetcherConfig, OffsetReset};
use mephisto_engine::group::{AssignorKind, GroupConfig, GroupConsumer};
use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord};
use mephisto_engine::{Admin, NewTopic};

const PEER: &str = r#"
import sys, time
from confluent_kafka import Consumer
addr, topic, group, strategy = sys.argv[1:5]
c = Consumer({"bootstrap.servers": addr, "group.id": group,
              "partition.assignment.strategy": strategy,
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
def on_assign(consumer, parts):
    print("A " + ",".join(str(p.partition) for p in parts), flush=True)
c.subscribe([topic], on_assign=on_assign)
deadline = time.time() + 120
idle = 0.0
seen_any = False
while time.time() < deadline and idle < 10.0:
    m = c.poll(0.5)
    if m is None:
        if seen_any:
            idle += 0.5
        continue
    if m.error():
        continue
    seen_any = True
    idle = 0.0
    print(f"R {m.partition()} {m.offset()}", flush=True)
    c.commit(message=m, asynchronous=False)
c.close()
"#;

/// The peer process, killed on drop; its stdout lines are collected by a thread.
struct Peer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn start(addr: &str, topic: &str, group: &str, strategy: &str) -> Self {
        let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
        assert!(
            python.is_file(),
            "{} missing: run scripts/install-peers.sh",
            python.display()
        );
        let mut child = Command::new(python)
            .args(["-c", PEER, addr, topic, group, strategy])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python");
        let stdout = child.stdout.take().expect("stdout");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, lines }
    }

    fn assignment(&self) -> Option<BTreeSet<i32>> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("A "))
            .map(|a| a.split(',').filter_map(|p| p.trim().parse().ok()).collect())
    }

    fn records(&self) -> Vec<(i32, i64)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| {
                let mut parts = l.strip_prefix("R ")?.split(' ');
                Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
            })
            .collect()
    }
}

async fn mixed_group(assignor: AssignorKind, strategy: &str) {
    let broker = support::broker();
    let cluster = support::cluster(&broker).await;
    let topic = support::unique_topic(&format!("group-peer-{strategy}"));
    Admin::new(cluster.clone())
        .create_topic(NewTopic::new(&topic, 6, 1))
        .await
        .expect("create topic");
    let group = support::unique_topic("g-peer");

    let peer = Peer::start(&broker.addr, &topic, &group, strategy);
    let config = GroupConfig::new(&group)
        .with_assignor(assignor)
        .with_session_timeout(Duration::from_secs(6))
        .with_heartbeat_interval(Duration::from_millis(500))
        .with_fetcher(FetcherConfig::default().with_auto_offset_reset(OffsetReset::Earliest));
    let ours = GroupConsumer::connect(support::config(&broker), config)
        .await
        .expect("consumer");
    ours.subscribe([topic.as_str()]);

    // Wait for a disjoint, complete assignment over both members.
    let start = Instant::now();
    let (mine, theirs) = loop {
        let mine: BTreeSet<i32> = ours.assignment().iter().map(|tp| tp.partition).collect();
        let theirs = peer.assignment().unwrap_or_default();
        if !mine.is_empty()
            && !theirs.is_empty()
            && mine.is_disjoint(&theirs)
            && mine.len() + theirs.len() == 6
        {
            break (mine, theirs);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no shared assignment: ours {mine:?}, peer {theirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "{strategy}: ours {mine:?}, peer {theirs:?} after {:?}",
        start.elapsed()
    );

    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).expect("producer");
    let mut deliveries = Vec::new();
    for p in 0..6 {
        for i in 0..50 {
            let record = ProducerRecord::new(&topic)
                .partition(p)
                .value(format!("{p}-{i}"));
            deliveries.push(producer.enqueue(record).await.expect("enqueue"));
        }
    }
    producer.flush().await;
    for d in deliveries {
        d.await.expect("delivered");
    }

    let mut got = Vec::new();
    let expected_ours = mine.len() * 50;
    while got.len() < expected_ours {
        match tokio::time::timeout(Duration::from_secs(20), ours.next()).await {
            Ok(Ok(r)) => {
                ours.ack(&r.topic, r.partition, r.offset).expect("ack");
                got.push((r.partition, r.offset));
            }
            Ok(Err(e)) => panic!("next: {e}"),
            Err(_) => break,
        }
    }
    let wait = Instant::now();
    while peer.records().len() < theirs.len() * 50 && wait.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let theirs_got = peer.records();
    assert!(
        got.iter().all(|(p, _)| mine.contains(p)),
        "we read only ours"
    );
    assert!(
        theirs_got.iter().all(|(p, _)| theirs.contains(p)),
        "the peer read only its own"
    );
    let all: Vec<(i32, i64)> = got.iter().chain(theirs_got.iter()).copied().collect();
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "nothing read twice");
    assert_eq!(
        unique.len(),
        300,
        "everything read: ours {}, peer {}",
        got.len(),
        theirs_got.len()
    );
    ours.close().await.expect("close");
}

#[tokio::test]
async fn mixed_group_with_confluent_kafka_range() {
    mixed_group(AssignorKind::Range, "range").await;
}

#[tokio::test]
async fn mixed_group_with_confluent_kafka_roundrobin() {
    mixed_group(AssignorKind::RoundRobin, "roundrobin").await;
}
