//! Draws the agent pipeline plots from `agent_bench --out` JSON lines (one measurement each):
//!
//! - `throughput_vs_partitions.svg`: events/s against partitions (log2 x, log10 y), one line
//!   per broker, role and variant, the median over runs at each point; from the partition
//!   sweep (`"kind": "sweep"`), or from every measurement if the file has no sweep;
//! - `cpu_per_event_vs_partitions.svg`: the client's steady-state CPU µs per event, same axes;
//! - `rss.svg`: peak RSS per role and variant (median over runs), one group of bars per
//!   broker; from the main measurement (`"kind": "main"`), or from every one if there is none.
//!
//! Failed measurements (an `error`) and zero rates are left out. Replay-server lines are
//! dashed.
//!
//! ```text
//! cargo run --release -p mephisto-benches --bin bench_plots -- \
//!     [--input results.jsonl] [--out-dir benches/plots]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use mephisto_benches::svg_plot::{BarChart, BarGroup, LineChart, Series};
use serde_json::Value;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One measurement line, as far as the plots need it.
#[derive(Debug, Clone)]
struct Row {
    broker: String,
    kind: String,
    role: String,
    variant: String,
    partitions: f64,
    /// Input records of the measurement (output records waited for).
    expected: u64,
    events_per_s: f64,
    cpu_us_per_event: f64,
    peak_rss_mib: f64,
}

fn row(v: &Value) -> Option<Row> {
    if !v.get("error").is_none_or(Value::is_null) {
        return None;
    }
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let num = |k: &str| v.get(k).and_then(Value::as_f64);
    let r = Row {
        broker: text("broker")?,
        kind: text("kind").unwrap_or_else(|| "main".into()),
        role: text("role")?,
        variant: text("variant").unwrap_or_default(),
        partitions: num("partitions")?,
        expected: v.get("expected").and_then(Value::as_u64).unwrap_or(0),
        events_per_s: num("events_per_s")?,
        cpu_us_per_event: num("cpu_us_per_event").unwrap_or(f64::NAN),
        peak_rss_mib: num("peak_rss_mib").unwrap_or(f64::NAN),
    };
    (r.events_per_s > 0.0).then_some(r)
}

/// `50,000 records` or `50,000–1,000,000 records`: the sizes behind a chart.
fn sizes(rows: &[&Row]) -> String {
    let group = |n: u64| {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let lo = rows.iter().map(|r| r.expected).min().unwrap_or(0);
    let hi = rows.iter().map(|r| r.expected).max().unwrap_or(0);
    if lo == hi {
        format!("{} records", group(lo))
    } else {
        format!("{}–{} records", group(lo), group(hi))
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The rows of `kind`, or all rows if none is of that kind.
fn of_kind<'a>(rows: &'a [Row], kind: &str) -> Vec<&'a Row> {
    let picked: Vec<&Row> = rows.iter().filter(|r| r.kind == kind).collect();
    if picked.is_empty() {
        rows.iter().collect()
    } else {
        picked
    }
}

/// A stable colour per role.
fn role_color(role: &str) -> usize {
    match role {
        "mephisto-pipeline" => 0,
        "rdkafka-pipeline" => 1,
        "mephisto-fetcher" => 2,
        "faust-pipeline" => 3,
        "mephisto-consume" => 4,
        _ => 5,
    }
}

/// One series per (broker, role, variant): the median of `metric` at each partition count.
fn series(rows: &[&Row], metric: fn(&Row) -> f64) -> Vec<Series> {
    let mut points: BTreeMap<(String, String, String), BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for r in rows {
        points
            .entry((r.broker.clone(), r.role.clone(), r.variant.clone()))
            .or_default()
            .entry(r.partitions as u64)
            .or_default()
            .push(metric(r));
    }
    let mut out: Vec<Series> = points
        .into_iter()
        .map(|((broker, role, variant), by_partitions)| Series {
            label: format!("{broker} {role} {variant}"),
            points: by_partitions
                .into_iter()
                .map(|(p, values)| (p as f64, median(values)))
                .collect(),
            color: role_color(&role),
            dashed: broker == "replay",
        })
        .collect();
    out.sort_by_key(|s| (s.dashed, s.color));
    out
}

fn rss_chart(rows: &[&Row]) -> BarChart {
    let mut by_broker: BTreeMap<String, BTreeMap<(usize, String), Vec<f64>>> = BTreeMap::new();
    for r in rows {
        by_broker
            .entry(r.broker.clone())
            .or_default()
            .entry((role_color(&r.role), format!("{} {}", r.role, r.variant)))
            .or_default()
            .push(r.peak_rss_mib);
    }
    let partitions: Vec<String> = {
        let mut p: Vec<u64> = rows.iter().map(|r| r.partitions as u64).collect();
        p.sort_unstable();
        p.dedup();
        p.iter().map(u64::to_string).collect()
    };
    BarChart {
        title: format!(
            "Peak RSS per client (median over runs; {} partitions, {})",
            partitions.join(", "),
            sizes(rows)
        ),
        y_label: "peak RSS (MiB, VmHWM)".into(),
        groups: by_broker
            .into_iter()
            .map(|(broker, bars)| BarGroup {
                label: broker,
                bars: bars
                    .into_iter()
                    .map(|((_, name), values)| (name, median(values)))
                    .collect(),
            })
            .collect(),
    }
}

fn run() -> Result<(), BoxError> {
    let mut input = PathBuf::from("results.jsonl");
    let mut out_dir = mephisto_test_support::process::repo_root().join("benches/plots");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).ok_or("option needs a value")?;
        match args[i].as_str() {
            "--input" => input = PathBuf::from(value),
            "--out-dir" => out_dir = PathBuf::from(value),
            other => return Err(format!("unknown option {other}").into()),
        }
        i += 2;
    }
    let text = std::fs::read_to_string(&input)
        .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| row(&v))
        .collect();
    if rows.is_empty() {
        return Err(format!("no measurements in {}", input.display()).into());
    }
    std::fs::create_dir_all(&out_dir)?;
    let sweep = of_kind(&rows, "sweep");
    let charts = [
        (
            "throughput_vs_partitions.svg",
            LineChart {
                title: format!(
                    "Pipeline throughput against partitions (median over runs; {})",
                    sizes(&sweep)
                ),
                x_label: "partitions (log2)".into(),
                y_label: "events/s (log10)".into(),
                series: series(&sweep, |r| r.events_per_s),
                x_log2: true,
                y_log10: true,
            }
            .to_svg(),
        ),
        (
            "cpu_per_event_vs_partitions.svg",
            LineChart {
                title: format!(
                    "Client CPU per event against partitions (steady state; {})",
                    sizes(&sweep)
                ),
                x_label: "partitions (log2)".into(),
                y_label: "CPU µs per event (log10)".into(),
                series: series(&sweep, |r| r.cpu_us_per_event),
                x_log2: true,
                y_log10: true,
            }
            .to_svg(),
        ),
        ("rss.svg", rss_chart(&of_kind(&rows, "main")).to_svg()),
    ];
    for (name, svg) in charts {
        let path = out_dir.join(name);
        std::fs::write(&path, svg)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_plots: {e}");
        std::process::exit(1);
    }
}
