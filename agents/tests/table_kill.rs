//! kill -9 of a word-count worker (`examples/word_count.rs`) with the durable store, then a
//! restart on the same data directory, against a private tansu (or the development broker):
//! no word is lost, the only extra counts are events processed after the last commit (at
//! least once; the figure is printed), and the restart replays only the changelog written
//! after what the store had, not the whole changelog. `KILL_STORE=memory://` runs it with the
//! memory store (the restart then replays everything, which the test flags). When a count is
//! missing, the test prints where: the words topic (what `shuffle_words` sent), the posts
//! topic, the group's committed offsets, the killed worker's errors and the restarted
//! worker's log.

mod support;

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mephisto::App;
use mephisto_engine::fetcher::Fetcher;
use mephisto_test_support::ScratchDir;
use support::{example, tansu};

const PARTITIONS: i32 = 8;
const CHANGELOG: &str = "word-counts-word_counts-changelog";
const POSTS: usize = 3_000;
const WORDS_PER_POST: usize = 10;
const VOCABULARY: usize = 200;

/// The word-count example as a worker on `url`, its tables in `data`, logging to `log`.
fn worker(url: &str, data: &Path, log: &Path) -> Child {
    Command::new(example("word_count"))
        .env("MEPHISTO_BROKER", url)
        .args(["worker", "-l", "info", "--store"])
        .arg(std::env::var("KILL_STORE").unwrap_or_else(|_| "fjall://".into()))
        .arg("--datadir")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).expect("log file"))
        .spawn()
        .expect("start the word_count worker")
}

fn post(i: usize) -> String {
    (0..WORDS_PER_POST)
        .map(|j| format!("w{}", (i * 7 + j * 13) % VOCABULARY))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The changelog read as it grows: the last count of each word and the records read.
struct Changelog {
    fetcher: Fetcher,
    counts: HashMap<String, i64>,
    /// The changelog partition of each word.
    partitions: HashMap<String, i32>,
    records: u64,
}

impl Changelog {
    async fn open(url: &str) -> Changelog {
        let fetcher = support::topics::from_start(url, CHANGELOG, PARTITIONS).await;
        Changelog {
            fetcher,
            counts: HashMap::new(),
            partitions: HashMap::new(),
            records: 0,
        }
    }

    /// Reads what arrives within `wait`.
    async fn read(&mut self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        while let Ok(batch) = tokio::time::timeout_at(until, self.fetcher.next_batch()).await {
            let Ok(batch) = batch else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            for r in batch.records().expect("records") {
                let r = r.expect("record");
                let word: String = serde_json::from_slice(r.key().expect("key")).expect("json");
                let n: i64 = serde_json::from_slice(r.value().expect("value")).expect("json");
                self.partitions.insert(word.clone(), batch.partition);
                self.counts.insert(word, n);
                self.records += 1;
            }
        }
    }

    fn total(&self) -> i64 {
        self.counts.values().sum()
    }
}

/// Sum of `records=N` of the worker's "table partition recovered" log lines.
fn replayed(log: &Path) -> (usize, u64) {
    let text = strip_ansi(&std::fs::read_to_string(log).unwrap_or_default());
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("table partition recovered"))
        .collect();
    let records = lines
        .iter()
        .filter_map(|l| {
            let at = l.find("records=")? + "records=".len();
            l[at..].split(' ').next()?.parse::<u64>().ok()
        })
        .sum();
    (lines.len(), records)
}

/// `text` without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kill_9_with_the_durable_store_loses_nothing_and_replays_only_the_tail() {
    let broker = tansu();
    let data = ScratchDir::new("mephisto-wc-data");
    let logs = ScratchDir::new("mephisto-wc-logs");
    let (log_a, log_b) = (logs.path().join("a.log"), logs.path().join("b.log"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut a = worker(&broker.url, data.path(), &log_a);
    let ready = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("worker ready")
    };
    mephisto_test_support::wait_until("worker a ready", Duration::from_secs(60), || ready(&log_a));
    let sender = App::new("word-counts-sender").broker(&broker.url);
    let posts = sender.topic::<String, String>("posts");
    let mut expected: HashMap<String, i64> = HashMap::new();
    for i in 0..POSTS {
        for w in post(i).split(' ') {
            *expected.entry(w.to_owned()).or_insert(0) += 1;
        }
    }
    // Posts go out over a few seconds while the worker counts; it is killed once a third of
    // the words are counted, measuring how fast the changelog grows just before.
    let started = Instant::now();
    let sending = rt.spawn(async move {
        let mut pending = Vec::with_capacity(POSTS);
        for i in 0..POSTS {
            pending.push(posts.send(None, post(i)).await.expect("send"));
            if i % 100 == 99 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for d in pending {
            d.await.expect("acked");
        }
    });
    let (at_kill, kill_rate) = rt.block_on(async {
        let mut changelog = Changelog::open(&broker.url).await;
        let third = (POSTS * WORDS_PER_POST / 3) as u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        while changelog.records < third && Instant::now() < deadline {
            changelog.read(Duration::from_millis(100)).await;
        }
        let (before, t0) = (changelog.records, Instant::now());
        changelog.read(Duration::from_millis(300)).await;
        // The rate just before the kill, or the average since the worker started if higher
        // (the worker may pause between fetches at that moment).
        let recent = (changelog.records - before) as f64 / t0.elapsed().as_secs_f64();
        let average = changelog.records as f64 / started.elapsed().as_secs_f64();
        let rate = recent.max(average);
        a.kill().expect("kill -9");
        let _ = a.wait();
        changelog.read(Duration::from_millis(500)).await;
        (changelog.records, rate)
    });
    rt.block_on(sending).expect("sender");
    assert!(at_kill > 0, "worker a counted nothing before the kill");
    assert!(
        at_kill < (POSTS * WORDS_PER_POST) as u64,
        "worker a counted everything before the kill"
    );

    let b = worker(&broker.url, data.path(), &log_b);
    let total_words: i64 = expected.values().sum();
    let (counts, word_partitions) = rt.block_on(async {
        let mut changelog = Changelog::open(&broker.url).await;
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut last = (0, Instant::now());
        loop {
            changelog.read(Duration::from_millis(500)).await;
            if changelog.records != last.0 {
                last = (changelog.records, Instant::now());
            }
            let done =
                changelog.total() >= total_words && last.1.elapsed() > Duration::from_secs(3);
            if done || Instant::now() > deadline {
                break (changelog.counts, changelog.partitions);
            }
        }
    });
    stop(b);
    let (recovered, replayed) = replayed(&log_b);
    let mut lost = Vec::new();
    let mut extra = 0i64;
    for (word, want) in &expected {
        let got = counts.get(word).copied().unwrap_or(0);
        if got < *want {
            lost.push((word.clone(), word_partitions.get(word).copied(), *want, got));
        }
        extra += (got - want).max(0);
    }
    println!(
        "kill -9 after {at_kill} changelog records ({kill_rate:.0}/s just before); restart replayed \
         {replayed} records over {recovered} partitions; {extra} extra counts of {total_words} words \
         (events processed after the last commit)"
    );
    let tail = |log: &Path| {
        let text = strip_ansi(&std::fs::read_to_string(log).unwrap_or_default());
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    if !lost.is_empty() {
        // Where the words went missing: the words topic (what shuffle_words sent).
        let sent = rt.block_on(support::topics::read_all(
            &broker.url,
            PARTITIONS,
            "word-counts-count_words",
            usize::MAX,
            Duration::from_secs(10),
        ));
        let mut per_word: HashMap<String, i64> = HashMap::new();
        for (_, v, _) in sent.values().flatten() {
            let w: String =
                serde_json::from_slice(v.as_deref().unwrap_or(b"null")).unwrap_or_default();
            *per_word.entry(w).or_insert(0) += 1;
        }
        let short: Vec<_> = lost
            .iter()
            .map(|(w, _, want, _)| (w.clone(), per_word.get(w).copied().unwrap_or(0), *want))
            .collect();
        println!(
            "words topic: {} records; lost words as sent (word, sent, expected): {short:?}",
            sent.values().map(Vec::len).sum::<usize>()
        );
        let posts = rt.block_on(support::topics::read_all(
            &broker.url,
            PARTITIONS,
            "posts",
            usize::MAX,
            Duration::from_secs(10),
        ));
        let per_partition: Vec<(i32, usize)> = posts.iter().map(|(p, r)| (*p, r.len())).collect();
        println!("posts topic by partition: {per_partition:?}");
        let committed = support::python(
            "import sys\nfrom confluent_kafka import Consumer, TopicPartition\nc = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': 'word-counts'})\nfor t in ['posts', 'word-counts-count_words']:\n    print(t, [tp.offset for tp in c.committed([TopicPartition(t, p) for p in range(8)], timeout=10)])",
            &[&broker.addr],
        );
        println!("committed offsets:\n{committed}");
        let text = strip_ansi(&std::fs::read_to_string(&log_a).unwrap_or_default());
        let notable: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .take(20)
            .collect();
        println!("worker a's errors and warnings:\n{}", notable.join("\n"));
    }
    assert!(
        lost.is_empty(),
        "lost counts (word, partition, expected, got): {lost:?}\n--- worker b's log, last lines:\n{}",
        tail(&log_b)
    );
    assert_eq!(
        recovered, PARTITIONS as usize,
        "every partition recovered once"
    );
    // Duplicates only from the last commit interval (2.8 s) of each agent: a post read again
    // sends its words again, a word read again counts again.
    let window = kill_rate * 2.8 * 2.0 + 1_000.0;
    assert!(
        (extra as f64) <= window,
        "{extra} extra counts: more than two commit intervals of events ({window:.0})"
    );
    // The store had everything but what came after its last write to the OS: at most about one
    // commit interval (2.8 s) of changelog at the rate before the kill, never the whole of it.
    let interval = kill_rate * 2.8 + 500.0;
    assert!(
        (replayed as f64) <= interval.min(at_kill as f64 * 0.9),
        "replayed {replayed} of {at_kill} records (one commit interval ≈ {interval:.0})"
    );
}
