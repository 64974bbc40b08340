//! Role `mephisto-ask`: a worker app running the `adding` agent and a client app in the same
//! process; the client asks sequentially (`--warmup` asks, then `--asks` timed ones).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mephisto::App;
use mephisto_benches::tansu::BoxError;

use crate::child::Outcome;
use crate::mephisto_app::configure;
use crate::mephisto_pipeline::Add;
use crate::options::Options;

/// Summary line of the latencies; also on stderr for the log.
pub fn ask_loop_done(name: &str, latencies: &[u64]) {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    if let (Some(p50), Some(max)) = (percentile(&sorted, 0.5), sorted.last()) {
        eprintln!(
            "{name}: {} asks, p50 {p50} µs, p99 {} µs, max {max} µs",
            sorted.len(),
            percentile(&sorted, 0.99).unwrap_or(0)
        );
    }
}

pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

pub async fn run(o: &Options) -> Result<Outcome, BoxError> {
    let start = Instant::now();
    let worker_app = App::new(format!("{}-worker", o.group));
    configure(&worker_app, o);
    let topic = worker_app.topic::<String, Add>(o.input.clone());
    let _adding = worker_app
        .agent::<String, Add>("adding")
        .topic(&topic)
        .yielding(|stream| stream.map(|value: Add| Ok(value.a + value.b)));
    let worker = worker_app.start_worker().await?;
    // The client: another app (its own connection and reply topic) that knows the agent.
    let client_app = App::new(format!("{}-client", o.group));
    configure(&client_app, o);
    let client_topic = client_app.topic::<String, Add>(o.input.clone());
    let adding = client_app
        .agent::<String, Add>("adding")
        .topic(&client_topic)
        .yielding(|stream| stream.map(|value: Add| Ok(value.a + value.b)));
    let first = adding.ask(Add { a: 4, b: 4 }).await?;
    if first != 8 {
        return Err(format!("ask returned {first}, expected 8").into());
    }
    let first_ask_s = start.elapsed().as_secs_f64();
    for i in 0..o.warmup as i64 {
        adding.ask(Add { a: i, b: 1 }).await?;
    }
    let mut latencies = Vec::with_capacity(o.asks);
    for i in 0..o.asks as i64 {
        let t = Instant::now();
        let sum = adding.ask(Add { a: i, b: i }).await?;
        latencies.push(t.elapsed().as_micros() as u64);
        if sum != 2 * i {
            return Err(format!("ask returned {sum}, expected {}", 2 * i).into());
        }
    }
    ask_loop_done("mephisto-ask", &latencies);
    let outcome = Outcome {
        latencies_us: latencies,
        first_ask_s,
        ..Outcome::default()
    }
    .with_process_stats();
    client_app.close().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), worker.stop()).await;
    Ok(outcome)
}
