//! Reporting: a line per measurement on stderr as it completes, one JSON object per
//! measurement appended to `--out` (the input of `bench_plots`), and the markdown tables with
//! the ratios against the peers measured in the same run.

use std::io::Write;

use crate::child::now_micros;
use crate::runner::Measurement;

/// `1.234×`, or for small ratios `0.00021× (1/4800)`.
pub fn ratio(x: f64) -> String {
    if !x.is_finite() {
        "–".to_owned()
    } else if x >= 0.01 {
        format!("{x:.3}×")
    } else {
        format!("{x:.5}× (1/{:.0})", 1.0 / x)
    }
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `/proc/loadavg`'s three averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The progress line of a measurement.
pub fn line(m: &Measurement) {
    if let Some(e) = &m.error {
        eprintln!(
            "[{} {} p={} run {}] {} {}: FAILED: {e}",
            m.broker,
            m.kind,
            m.partitions,
            m.run,
            m.role(),
            m.variant
        );
        return;
    }
    eprintln!(
        "[{} {} p={} run {}] {} {}: {:.0} events/s, {} records, steady {:.2} s, CPU {:.2} s \
         (steady {:.2} s, {:.2} µs/event), broker CPU {:.2} s, peak RSS {:.1} MiB{} {}",
        m.broker,
        m.kind,
        m.partitions,
        m.run,
        m.role(),
        m.variant,
        m.rate(),
        m.counted.records,
        m.steady_s(),
        m.outcome.cpu_seconds,
        m.steady_cpu_s(),
        m.cpu_us_per_event(),
        m.broker_cpu,
        mib(m.outcome.peak_rss_kib),
        if m.outcome.peak_heap_kib > 0 {
            format!(" (heap peak {:.1} MiB)", mib(m.outcome.peak_heap_kib))
        } else {
            String::new()
        },
        m.problems.join("; ")
    );
}

/// Appends `m` as one JSON line to `path`.
pub fn append_jsonl(path: &str, m: &Measurement) -> std::io::Result<()> {
    let value = serde_json::json!({
        "broker": m.broker,
        "kind": m.kind,
        "role": m.role(),
        "client": m.client,
        "variant": m.variant,
        "partitions": m.partitions,
        "records": m.counted.records,
        "expected": m.expected,
        "events_per_s": m.rate(),
        "steady_s": m.steady_s(),
        "cpu_s": m.outcome.cpu_seconds,
        "steady_cpu_s": m.steady_cpu_s(),
        "cpu_us_per_event": m.cpu_us_per_event(),
        "peak_rss_mib": mib(m.outcome.peak_rss_kib),
        "peak_heap_mib": mib(m.outcome.peak_heap_kib),
        "broker_cpu_s": m.broker_cpu,
        "run": m.run,
        "timestamp": now_micros() / 1_000_000,
        "load": load_average(),
        "problems": m.problems,
        "error": m.error,
    });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{value}")
}

/// The measurement of `client` made beside `m` (same broker, set, partitions, run; same
/// variant unless `any_variant`).
fn peer<'a>(
    all: &'a [Measurement],
    m: &Measurement,
    client: &str,
    any_variant: bool,
) -> Option<&'a Measurement> {
    all.iter().find(|p| {
        p.client == client
            && p.broker == m.broker
            && p.kind == m.kind
            && p.partitions == m.partitions
            && p.run == m.run
            && (any_variant || p.variant == m.variant)
            && p.error.is_none()
    })
}

/// The ratios of `m` against its peers of the same run.
fn compared(all: &[Measurement], m: &Measurement) -> String {
    let mut parts = Vec::new();
    let rss = |a: &Measurement, b: &Measurement| {
        a.outcome.peak_rss_kib as f64 / b.outcome.peak_rss_kib.max(1) as f64
    };
    match m.client.as_str() {
        "mephisto" => {
            if let Some(p) = peer(all, m, "rdkafka", false) {
                parts.push(format!(
                    "{} rdkafka, RSS {:.2}×",
                    ratio(m.rate() / p.rate()),
                    rss(m, p)
                ));
            }
            if m.variant == "noop" {
                if let Some(p) = peer(all, m, "fetcher", true) {
                    parts.push(format!("{} fetcher", ratio(m.rate() / p.rate())));
                }
            }
        }
        "consume" => {
            if let Some(p) = peer(all, m, "fetcher", true) {
                parts.push(format!("{} fetcher", ratio(m.rate() / p.rate())));
            }
        }
        "faust" => {
            if let Some(p) = peer(all, m, "mephisto", false) {
                parts.push(format!("{} Mephisto", ratio(m.rate() / p.rate())));
            }
        }
        _ => {}
    }
    parts.join("; ")
}

/// The markdown table of every measurement.
pub fn tables(all: &[Measurement]) {
    if all.is_empty() {
        return;
    }
    println!("\nagent pipeline, load average {}", load_average());
    println!(
        "| broker | set | partitions | run | role | variant | events/s | records | steady s \
         | CPU s (steady) | CPU µs/event | broker CPU s | peak RSS MiB | compared (same run) \
         | notes |"
    );
    println!("|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for m in all {
        let notes = match &m.error {
            Some(e) => format!("FAILED: {e}"),
            None => m.problems.join("; "),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {:.2} | {:.2} ({:.2}) | {:.2} | {:.2} \
             | {:.1} | {} | {} |",
            m.broker,
            m.kind,
            m.partitions,
            m.run,
            m.role(),
            m.variant,
            m.rate(),
            m.counted.records,
            m.steady_s(),
            m.outcome.cpu_seconds,
            m.steady_cpu_s(),
            m.cpu_us_per_event(),
            m.broker_cpu,
            mib(m.outcome.peak_rss_kib),
            compared(all, m),
            notes.replace('|', "/"),
        );
    }
}
