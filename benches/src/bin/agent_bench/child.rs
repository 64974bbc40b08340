//! The child side of the parent/child protocol: a child runs one role, and when the parent
//! writes a line to its stdin (or closes it) it prints one `RESULT key=value …` line on stdout
//! and exits. The Faust peer (`benches/peers/faust_pipeline.py`) speaks the same protocol.

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mephisto_benches::proc_stats;

use crate::options::Options;

/// Wall clock in µs since the Unix epoch: children and the parent compare these.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What a child reports on its `RESULT` line.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Wall clock (µs since the epoch) when the client saw its first input record.
    pub first_input_us: u64,
    /// Wall clock when it saw its last input record (the fetcher, which has no output).
    pub last_input_us: u64,
    /// Input records the client processed.
    pub processed: u64,
    /// User + system CPU seconds of the whole process (all threads), start-up included.
    pub cpu_seconds: f64,
    /// CPU seconds the process had used when it saw its first input record (start-up,
    /// connection, group join): `cpu_seconds` minus this is the steady-state share.
    pub cpu_at_first_input_s: f64,
    /// Peak resident set (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Peak of live Rust heap bytes, KiB (with `AGENT_BENCH_HEAP=1`; else 0).
    pub peak_heap_kib: u64,
    /// Ask latencies, µs, in order (ask roles).
    pub latencies_us: Vec<u64>,
    /// Time to the first successful ask (includes the worker's group join).
    pub first_ask_s: f64,
}

impl Outcome {
    /// Fills in the process's CPU time and peak RSS now.
    pub fn with_process_stats(mut self) -> Self {
        self.cpu_seconds = cpu_now();
        self.peak_rss_kib = proc_stats::peak_rss_kib().unwrap_or(0);
        self.peak_heap_kib = if mephisto_test_support::heap_stats::enabled() {
            (mephisto_test_support::heap_stats::peak_bytes() / 1024) as u64
        } else {
            0
        };
        self
    }

    /// The `RESULT` line.
    pub fn line(&self) -> String {
        let lat: Vec<String> = self.latencies_us.iter().map(u64::to_string).collect();
        format!(
            "RESULT first_input_us={} last_input_us={} processed={} cpu_s={:.3} \
             cpu_at_first_input_s={:.3} peak_rss_kib={} peak_heap_kib={} first_ask_s={:.3} latencies_us={}",
            self.first_input_us,
            self.last_input_us,
            self.processed,
            self.cpu_seconds,
            self.cpu_at_first_input_s,
            self.peak_rss_kib,
            self.peak_heap_kib,
            self.first_ask_s,
            if lat.is_empty() {
                "-".to_owned()
            } else {
                lat.join(",")
            },
        )
    }

    /// The outcome of the first `RESULT` line of `text`; unknown keys are ignored.
    pub fn parse(text: &str) -> Option<Outcome> {
        let line = text.lines().find(|l| l.starts_with("RESULT "))?;
        let mut o = Outcome::default();
        for field in line.split_whitespace().skip(1) {
            let (k, v) = field.split_once('=')?;
            match k {
                "first_input_us" => o.first_input_us = v.parse().ok()?,
                "last_input_us" => o.last_input_us = v.parse().ok()?,
                "processed" => o.processed = v.parse().ok()?,
                "cpu_s" => o.cpu_seconds = v.parse().ok()?,
                "cpu_at_first_input_s" => o.cpu_at_first_input_s = v.parse().ok()?,
                "peak_rss_kib" => o.peak_rss_kib = v.parse().ok()?,
                "peak_heap_kib" => o.peak_heap_kib = v.parse().ok()?,
                "first_ask_s" => o.first_ask_s = v.parse().ok()?,
                "latencies_us" if v != "-" => {
                    o.latencies_us = v.split(',').filter_map(|x| x.parse().ok()).collect()
                }
                _ => {}
            }
        }
        Some(o)
    }
}

/// Set when the parent writes a line to the child's stdin (or closes it).
pub fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        f.store(true, Ordering::SeqCst);
    });
    flag
}

/// Waits until `flag` is set (polling every 5 ms).
pub async fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The multi-threaded runtime of a Mephisto child (`--mephisto-threads` workers).
pub fn runtime(o: &Options) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads.max(1))
        .enable_all()
        .build()
}

static FIRST_INPUT_US: AtomicU64 = AtomicU64::new(0);
/// `f64` bits of the CPU seconds at the first input record.
static CPU_AT_FIRST_INPUT: AtomicU64 = AtomicU64::new(0);
static PROCESSED: AtomicU64 = AtomicU64::new(0);

/// The process's CPU seconds now (NaN if unknown).
pub fn cpu_now() -> f64 {
    proc_stats::own_cpu_seconds().unwrap_or(f64::NAN)
}

/// Marks one input record seen by a pipeline (the first starts the clock); returns how many
/// have been seen, this one included.
pub fn seen_input() -> u64 {
    let before = PROCESSED.fetch_add(1, Ordering::Relaxed);
    if before == 0 {
        FIRST_INPUT_US.store(now_micros(), Ordering::Relaxed);
        CPU_AT_FIRST_INPUT.store(cpu_now().to_bits(), Ordering::Relaxed);
    }
    before + 1
}

/// What [`seen_input`] has counted, as an outcome.
pub fn seen_so_far() -> Outcome {
    Outcome {
        first_input_us: FIRST_INPUT_US.load(Ordering::Relaxed),
        cpu_at_first_input_s: f64::from_bits(CPU_AT_FIRST_INPUT.load(Ordering::Relaxed)),
        processed: PROCESSED.load(Ordering::Relaxed),
        ..Outcome::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_round_trip() {
        let o = Outcome {
            first_input_us: 5,
            last_input_us: 9,
            processed: 3,
            cpu_seconds: 0.25,
            cpu_at_first_input_s: 0.125,
            peak_rss_kib: 1024,
            peak_heap_kib: 512,
            latencies_us: vec![1, 2],
            first_ask_s: 0.5,
        };
        let back = Outcome::parse(&format!("noise\n{}\n", o.line())).unwrap();
        assert_eq!(back.first_input_us, 5);
        assert_eq!(back.last_input_us, 9);
        assert_eq!(back.processed, 3);
        assert_eq!(back.peak_rss_kib, 1024);
        assert_eq!(back.cpu_at_first_input_s, 0.125);
        assert_eq!(back.latencies_us, vec![1, 2]);
        assert!(Outcome::parse("nothing").is_none());
        // The Faust peer prints only some keys.
        let faust = Outcome::parse("RESULT first_input_us=1 processed=2 cpu_s=0.1").unwrap();
        assert_eq!(faust.processed, 2);
    }
}
