//! Table restore benchmark: how fast a worker recovers a table from its changelog, Mephisto
//! against faust-streaming, on the same broker in the same run.
//!
//! A development broker on a thread of this process (`--tansu`: a private tansu, whose
//! ListOffsets answers make Faust stop its recovery early; or `$MEPHISTO_BROKER`) gets a
//! changelog per client,
//! `<app id>-counts-changelog` with `--partitions` partitions, filled with `--records` records
//! (`--faust-records` for Faust's copy): key the JSON string of a 16-byte key, value the JSON
//! string of a 98-byte value (100 bytes encoded), each key once, as Faust's json codec writes
//! a `str -> str` table. Each client then starts a worker of its app whose agent reads an
//! empty topic with as many partitions, so that it holds every table partition, and recovers:
//!
//! - Mephisto: an `App` with `table::<String, String>("counts")`; the restore time is the
//!   longest partition recovery that `Worker::recovery` reports (they run in parallel, from
//!   the assignment to the high watermark), the rate `records / that time`.
//! - Faust (`benches/peers/faust_table_restore.py`, memory store): the time its log gives
//!   from "Restoring state from changelog topics" to "Done reading from changelog topics"
//!   (the script checks that every key was loaded).
//!
//! Mephisto restores the same changelog twice more with the durable store (`fjall://` in a
//! fresh directory): into an empty store (every record written to fjall with its offset, in
//! one batch per fetched batch), then, after the worker stopped, a restart on that store (the
//! partitions are loaded from fjall and nothing is read from the changelog: the time is the
//! load).
//!
//! In-agent rates: an agent reading `--events` events (keys from 10,000 words, 8
//! partitions) does `table.update(word, |n| *n += 1)` for each (the change goes to the
//! changelog, the event is committed once the broker has it), then another agent does
//! `table.get(word)` for each: events per second from the first event to the last, with the
//! memory store and with the durable store.
//!
//! The RSS of the bench process before and after Mephisto's restore gives what the table
//! takes; the live heap of a million-entry `String -> i64` partition (16-byte keys, 8-byte
//! values), counted by `mephisto_test_support::heap_stats`, the memory store's cost per
//! million entries.
//!
//! ```text
//! cargo run --release -p mephisto-benches --bin table_bench -- \
//!     [--records 1000000] [--faust-records 200000] [--partitions 8] [--events 500000]
//!     [--skip-faust] [--tansu]
//! ```

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use mephisto::state::store::StoreUrl;
use mephisto::App;
use mephisto_benches::fill::fill_topic;
use mephisto_benches::proc_stats;
use mephisto_benches::tansu::{BoxError, Tansu};
use mephisto_engine::admin::{Admin, NewTopic};
use mephisto_engine::producer::{Producer, ProducerConfig};
use mephisto_engine::{ClientConfig, Cluster};

#[global_allocator]
static ALLOC: mephisto_test_support::heap_stats::CountingAlloc =
    mephisto_test_support::heap_stats::CountingAlloc;

/// Live heap bytes of a million-entry table partition in the memory store: 16-byte keys,
/// 8-byte values (`String -> i64`, as a word count holds them).
fn memory_per_million() -> f64 {
    use mephisto::state::partition::PartitionData;
    use mephisto_test_support::heap_stats;
    heap_stats::enable();
    let before = heap_stats::live_bytes();
    let mut data: PartitionData<String, i64> = PartitionData::default();
    for i in 0..1_000_000u64 {
        data.apply(format!("{i:016x}"), Some(i as i64), i as i64);
    }
    let after = heap_stats::live_bytes();
    heap_stats::disable();
    drop(data);
    (after - before) as f64 / (1024.0 * 1024.0)
}

struct Options {
    records: u64,
    faust_records: u64,
    partitions: i32,
    skip_faust: bool,
    tansu: bool,
    events: u64,
}

fn options() -> Result<Options, BoxError> {
    let mut o = Options {
        records: 1_000_000,
        faust_records: 200_000,
        partitions: 8,
        skip_faust: false,
        tansu: false,
        events: 500_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--skip-faust" => o.skip_faust = true,
            "--tansu" => o.tansu = true,
            flag => {
                let v = args.next().ok_or(format!("{flag} needs a value"))?;
                match flag {
                    "--records" => o.records = v.parse()?,
                    "--faust-records" => o.faust_records = v.parse()?,
                    "--partitions" => o.partitions = v.parse()?,
                    "--events" => o.events = v.parse()?,
                    other => return Err(format!("unknown option {other}").into()),
                }
            }
        }
    }
    Ok(o)
}

/// Key `i`: 16 characters; value: 98 characters; both as JSON strings.
fn record(i: u64) -> (Bytes, Bytes) {
    let key = format!("\"{i:016x}\"");
    let value = format!("\"{}\"", format!("{:0>98}", i).replace('0', "v"));
    (Bytes::from(key), Bytes::from(value))
}

async fn cluster(url: &str) -> Result<Cluster, BoxError> {
    Ok(
        Cluster::connect(
            ClientConfig::from_url(url)?.with_request_timeout(Duration::from_secs(30)),
        )
        .await?,
    )
}

/// Creates `topic` and fills it with `records` changelog records, record `i` in partition
/// `i % partitions`.
async fn fill(url: &str, topic: &str, partitions: i32, records: u64) -> Result<(), BoxError> {
    fill_with(url, topic, partitions, records, &|i| {
        let (k, v) = record(i);
        (Some((i % partitions as u64) as i32), k, v)
    })
    .await
}

/// Creates `topic` and writes `records` records, record `i` being `make(i)` (partition, key,
/// value).
async fn fill_with(
    url: &str,
    topic: &str,
    partitions: i32,
    records: u64,
    make: &dyn Fn(u64) -> (Option<i32>, Bytes, Bytes),
) -> Result<(), BoxError> {
    let cluster = cluster(url).await?;
    Admin::new(cluster.clone())
        .create_topic(NewTopic::new(topic, partitions, 1))
        .await?;
    let producer = Producer::new(
        cluster,
        ProducerConfig {
            buffer_memory: 16 << 20,
            ..ProducerConfig::default()
        },
    )?;
    fill_topic(producer, topic, records, &|i| {
        let (partition, k, v) = make(i);
        (partition, Some(k), Some(v))
    })
    .await
}

/// App `id` on `url`, its tables in `store` (a durable store's directory) or in memory.
fn bench_app(url: &str, id: &str, o: &Options, store: Option<&Path>) -> App {
    let app = App::new(id).broker(url);
    app.configure(|s| {
        s.topic_partitions = o.partitions;
        s.broker_session_timeout = Duration::from_secs(6);
        s.broker_heartbeat_interval = Duration::from_secs(1);
        if let Some(dir) = store {
            s.store = StoreUrl::Fjall(Some(dir.to_owned()));
        }
    });
    app
}

/// Mephisto's restore (into `store`): seconds, peak RSS growth (MiB) and records read.
async fn mephisto(
    url: &str,
    id: &str,
    o: &Options,
    store: Option<&Path>,
) -> Result<(f64, f64, u64), BoxError> {
    let app = bench_app(url, id, o, store);
    let empty = app.topic::<String, String>(format!("{id}-empty"));
    let counts = app.table::<String, String>("counts");
    let _idle = app
        .agent::<String, String>("idle")
        .topic(&empty)
        .processing(|mut s| async move {
            while s.next().await.is_some() {}
            Ok(())
        });
    let rss_before = proc_stats::rss_kib().map_or(f64::NAN, |k| k as f64 / 1024.0);
    let started = Instant::now();
    let worker = app.start_worker().await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let (secs, read) = loop {
        let r = worker.recovery();
        if r.len() == o.partitions as usize && r.iter().all(|p| p.done) {
            let total: u64 = r.iter().map(|p| p.records).sum();
            if store.is_none() && total != o.records {
                return Err(format!("recovered {total} records, expected {}", o.records).into());
            }
            // A recovery's time starts once its partition is open: with a durable store, the
            // load came first, so the time is counted from the worker's start.
            let secs = match store {
                None => r.iter().map(|p| p.elapsed_ms).max().unwrap_or(0) as f64 / 1000.0,
                Some(_) => started.elapsed().as_secs_f64(),
            };
            break (secs, total);
        }
        if Instant::now() > deadline {
            return Err("Mephisto's recovery did not finish within 600 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rss_after = proc_stats::rss_kib().map_or(f64::NAN, |k| k as f64 / 1024.0);
    if counts.len() as u64 != o.records {
        return Err(format!("table holds {} keys, expected {}", counts.len(), o.records).into());
    }
    worker.stop().await?;
    app.close().await;
    Ok((secs, rss_after - rss_before, read))
}

/// Events per second of an agent doing one table update per event, then of one doing one
/// read per event (`store`: the durable store's directory).
async fn in_agent(
    url: &str,
    id: &str,
    o: &Options,
    store: Option<&Path>,
) -> Result<(f64, f64), BoxError> {
    let app = bench_app(url, id, o, store);
    let updates = app.topic::<String, String>(format!("{id}-updates"));
    let reads = app.topic::<String, String>(format!("{id}-reads"));
    let counts = app.table::<String, i64>("words").default_value(|| 0);
    let done = Arc::new(AtomicU64::new(0));
    // When each phase's first event was processed.
    let firsts: Arc<[OnceLock<Instant>; 2]> = Arc::new([OnceLock::new(), OnceLock::new()]);
    let (table, n, first) = (counts.clone(), Arc::clone(&done), Arc::clone(&firsts));
    let _update = app
        .agent::<String, String>("update")
        .topic(&updates)
        .processing(move |mut s| {
            let (table, n, first) = (table.clone(), Arc::clone(&n), Arc::clone(&first));
            async move {
                while let Some(word) = s.next().await {
                    first[0].get_or_init(Instant::now);
                    table.update(word, |c| *c += 1).await?;
                    n.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        });
    let (table, n, first) = (counts.clone(), Arc::clone(&done), Arc::clone(&firsts));
    let found = Arc::new(AtomicU64::new(0));
    let f = Arc::clone(&found);
    // The reads start once the updates are done (their events wait in the agent's queue).
    let (open, gate) = tokio::sync::watch::channel(false);
    let _read = app
        .agent::<String, String>("read")
        .topic(&reads)
        .processing(move |mut s| {
            let (table, n, f) = (table.clone(), Arc::clone(&n), Arc::clone(&f));
            let first = Arc::clone(&first);
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|o| *o).await;
                while let Some(word) = s.next().await {
                    first[1].get_or_init(Instant::now);
                    if table.get(&word).is_some_and(|c| c > 0) {
                        f.fetch_add(1, Ordering::Relaxed);
                    }
                    n.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        });
    let word = |i: u64| format!("word-{:05}", (i * 7919) % 10_000);
    for topic in [&updates, &reads] {
        fill_with(url, topic.name(), o.partitions, o.events, &|i| {
            let w = Bytes::from(format!("\"{}\"", word(i)));
            (None, w.clone(), w)
        })
        .await?;
    }
    let worker = app.start_worker().await?;
    let mut rates = Vec::new();
    for (phase, want) in [o.events, 2 * o.events].into_iter().enumerate() {
        if phase == 1 {
            open.send_replace(true);
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        while done.load(Ordering::Relaxed) < want {
            if Instant::now() > deadline {
                return Err("the agent did not finish within 600 s".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t0 = firsts[phase].get().copied().unwrap_or_else(Instant::now);
        rates.push(o.events as f64 / t0.elapsed().as_secs_f64());
    }
    if found.load(Ordering::Relaxed) != o.events {
        return Err("a read missed an updated word".into());
    }
    worker.stop().await?;
    app.close().await;
    Ok((rates[0], rates[1]))
}

/// Faust's restore in seconds.
fn faust(url: &str, id: &str, o: &Options) -> Result<f64, BoxError> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    let mut child = Command::new(python)
        .arg(root.join("benches/peers/faust_table_restore.py"))
        .arg(format!("{id}-empty"))
        .arg(o.faust_records.to_string())
        .env("MEPHISTO_BROKER", url)
        .env("FAUST_APP_ID", id)
        .env("FAUST_PARTITIONS", o.partitions.to_string())
        .env("FAUST_LOG", "info")
        .env(
            "FAUST_DATADIR",
            std::env::temp_dir().join(format!("table-bench-{id}")),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(std::env::temp_dir().join(format!("{id}.log")))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("RESTORE "));
    let _ = child.kill();
    let _ = child.wait();
    line.ok_or("Faust exited without restoring")?;
    // Faust's own account: from "Restoring state from changelog topics" to "Done reading
    // from changelog topics" in its log.
    let log = std::fs::read_to_string(std::env::temp_dir().join(format!("{id}.log")))?;
    let at = |what: &str| -> Option<f64> {
        let line = log.lines().find(|l| l.contains(what))?;
        // "[2026-12-07 19:19:30,956] ...": seconds of the day.
        let time = line.get(12..24)?;
        let (hms, ms) = time.split_once(',')?;
        let mut parts = hms.split(':').map(|p| p.parse::<f64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        Some(h * 3600.0 + m * 60.0 + s + ms.parse::<f64>().ok()? / 1000.0)
    };
    let start =
        at("Restoring state from changelog topics").ok_or("no recovery start in Faust's log")?;
    let end = at("Done reading from changelog topics").ok_or("no recovery end in Faust's log")?;
    Ok((end - start).max(0.001))
}

fn main() -> Result<(), BoxError> {
    let o = options()?;
    println!(
        "memory store: {:.1} MiB of heap per million entries (16-byte String keys, i64 values)\n",
        memory_per_million()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The development broker by default: Faust finds a changelog's end with ListOffsets,
    // which tansu answers wrong when the last batch holds several records (Faust then stops
    // its recovery early); `--tansu` for tansu anyway.
    let (_tansu, _dev);
    let url = match std::env::var("MEPHISTO_BROKER")
        .ok()
        .filter(|b| !b.trim().is_empty())
    {
        Some(url) => url,
        None if o.tansu => {
            let t = Tansu::start(&rt, "table-bench")?;
            let url = t.url.clone();
            _tansu = Some(t);
            url
        }
        None => {
            let d = mephisto_test_support::dev_broker_thread(Default::default());
            let url = d.url.clone();
            _dev = Some(d);
            url
        }
    };
    let run = std::process::id();
    let ours = format!("table-bench-{run}-mephisto");
    let theirs = format!("table-bench-{run}-faust");
    let started = Instant::now();
    rt.block_on(fill(
        &url,
        &format!("{ours}-counts-changelog"),
        o.partitions,
        o.records,
    ))?;
    rt.block_on(async {
        let c = cluster(&url).await?;
        Admin::new(c)
            .create_topic(NewTopic::new(format!("{ours}-empty"), o.partitions, 1))
            .await?;
        Ok::<(), BoxError>(())
    })?;
    eprintln!(
        "changelog of {} records ready in {:.1} s",
        o.records,
        started.elapsed().as_secs_f64()
    );
    let (secs, rss, _) = rt.block_on(mephisto(&url, &ours, &o, None))?;
    let rate = o.records as f64 / secs;
    let store = mephisto_test_support::ScratchDir::new("table-bench-store");
    let (dsecs, drss, dread) = rt.block_on(mephisto(&url, &ours, &o, Some(store.path())))?;
    if dread != o.records {
        return Err(format!(
            "durable restore read {dread} records, expected {}",
            o.records
        )
        .into());
    }
    let (rsecs, rrss, rread) = rt.block_on(mephisto(&url, &ours, &o, Some(store.path())))?;
    if rread != 0 {
        return Err(format!("the restart on the store read {rread} changelog records").into());
    }
    let disk = dir_size(store.path()) as f64 / (1024.0 * 1024.0);
    println!("| client | records | restore s | records/s | memory MiB (per M entries) |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| Mephisto (memory) | {} | {secs:.3} | {rate:.0} | {rss:.1} ({:.1}) |",
        o.records,
        rss * 1e6 / o.records as f64
    );
    println!(
        "| Mephisto (fjall://, empty store) | {} | {dsecs:.3} | {:.0} | {drss:.1} |",
        o.records,
        o.records as f64 / dsecs
    );
    println!(
        "| Mephisto (fjall://, restart: load, 0 records read) | {} | {rsecs:.3} | {:.0} | {rrss:.1} |",
        o.records,
        o.records as f64 / rsecs
    );
    println!(
        "\nfjall store on disk: {disk:.1} MiB for {} records",
        o.records
    );
    if !o.skip_faust {
        rt.block_on(fill(
            &url,
            &format!("{theirs}-counts-changelog"),
            o.partitions,
            o.faust_records,
        ))?;
        rt.block_on(async {
            let c = cluster(&url).await?;
            Admin::new(c)
                .create_topic(NewTopic::new(format!("{theirs}-empty"), o.partitions, 1))
                .await?;
            Ok::<(), BoxError>(())
        })?;
        let fs = faust(&url, &theirs, &o)?;
        let frate = o.faust_records as f64 / fs;
        println!(
            "| Faust (memory://) | {} | {fs:.3} | {frate:.0} | |",
            o.faust_records
        );
        println!(
            "\nMephisto / Faust restore rate: memory {:.1}×, fjall {:.1}×",
            rate / frate,
            o.records as f64 / dsecs / frate
        );
    }
    if o.events > 0 {
        let (mu, mr) = rt.block_on(in_agent(&url, &format!("{ours}-agent"), &o, None))?;
        let store = mephisto_test_support::ScratchDir::new("table-bench-agent");
        let (du, dr) = rt.block_on(in_agent(
            &url,
            &format!("{ours}-agent-fjall"),
            &o,
            Some(store.path()),
        ))?;
        println!(
            "\n| in an agent ({} events) | updates/s | reads/s |",
            o.events
        );
        println!("|---|---:|---:|");
        println!("| memory store | {mu:.0} | {mr:.0} |");
        println!("| fjall store | {du:.0} | {dr:.0} |");
    }
    Ok(())
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}
