//! Two worker processes of one app (the page's `faustexample`), against a private tansu:
//! stopping one with SIGTERM hands its partitions to the other with nothing lost and nothing
//! read twice (the stopping worker finishes its events and commits before it leaves);
//! starting it again rebalances partitions back to it.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{mephisto_ok, tansu};

/// A `faustexample worker` process; its printed values are collected.
struct Worker {
    child: Child,
    values: Arc<Mutex<Vec<i64>>>,
    reader: Option<JoinHandle<()>>,
}

fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples")
        .join(name)
}

impl Worker {
    fn start(url: &str) -> Worker {
        let mut child = Command::new(example("faustexample"))
            .args(["worker", "-l", "warn"])
            .env("MEPHISTO_BROKER", url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start worker");
        let stdout = child.stdout.take().expect("stdout");
        let values: Arc<Mutex<Vec<i64>>> = Arc::default();
        let sink = values.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(v) = line.strip_prefix("myagent: ") {
                    if let Ok(v) = v.trim().parse::<i64>() {
                        sink.lock().unwrap().push(v);
                    }
                }
            }
        });
        Worker {
            child,
            values,
            reader: Some(reader),
        }
    }

    fn count(&self) -> usize {
        self.values.lock().unwrap().len()
    }

    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "worker did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "SIGTERM exit: {status}");
        if let Some(r) = self.reader.take() {
            r.join().expect("reader");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_hands_partitions_over_and_a_restart_takes_some_back() {
    let broker = tansu();
    let url = broker.url.clone();
    mephisto_ok(
        &url,
        &["topics", "create", "example-myagent", "--partitions", "4"],
        b"",
    );
    let produced = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (url, produced, stop) = (url.clone(), produced.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0usize;
            // Bounded: at most 2 000 rounds of 20 values.
            for _ in 0..2000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let lines: String = (next..next + 20).map(|v| format!("{v}\n")).collect();
                mephisto_ok(&url, &["produce", "example-myagent"], lines.as_bytes());
                next += 20;
                produced.store(next, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let mut a = Worker::start(&url);
    let b = Worker::start(&url);
    wait_until("both workers print", Duration::from_secs(90), || {
        a.count() > 0 && b.count() > 0
    });
    a.terminate();
    let b_at_stop = b.count();
    wait_until("B takes over", Duration::from_secs(60), || {
        b.count() > b_at_stop + 200
    });
    let a2 = Worker::start(&url);
    wait_until(
        "the restarted worker gets partitions back",
        Duration::from_secs(90),
        || a2.count() > 0,
    );
    stop.store(true, Ordering::SeqCst);
    producer.join().expect("producer");
    let total = produced.load(Ordering::SeqCst);
    wait_until("every value printed", Duration::from_secs(60), || {
        a.count() + b.count() + a2.count() >= total
    });
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for w in [&a, &b, &a2] {
        for v in w.values.lock().unwrap().iter() {
            *seen.entry(*v).or_default() += 1;
        }
    }
    let missing: Vec<i64> = (0..total as i64)
        .filter(|v| !seen.contains_key(v))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let twice: Vec<(&i64, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "two workers: {total} values; A printed {}, B {}, A restarted {}; {} printed twice",
        a.count(),
        b.count(),
        a2.count(),
        twice.len()
    );
    // A stopped cleanly, so nothing it printed is read again by B. A printed value can be
    // read twice only around the restart's rebalance (B gives partitions up while its
    // events are in flight): those are bounded by B's queue.
    let a_values: std::collections::BTreeSet<i64> =
        a.values.lock().unwrap().iter().copied().collect();
    let b_values: std::collections::BTreeSet<i64> =
        b.values.lock().unwrap().iter().copied().collect();
    assert!(
        a_values.is_disjoint(&b_values),
        "B re-read values A had processed: {:?}",
        a_values
            .intersection(&b_values)
            .take(10)
            .collect::<Vec<_>>()
    );
}
