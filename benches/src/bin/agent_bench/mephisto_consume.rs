//! Role `mephisto-consume`: a Mephisto [`App`] whose no-op agent reads the input topic over raw
//! bytes and yields nothing — the agents layer alone (group member, partition tasks, agent
//! queue, actor, acks and commits) on top of the fetcher. Set beside `mephisto-fetcher` it
//! shows what the layer costs. The child times itself, first to last input record, and stops
//! once it has seen the whole input (or after `--timeout`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use mephisto::{App, CodecName};
use mephisto_benches::tansu::BoxError;

use crate::child::{now_micros, seen_input, seen_so_far, Outcome};
use crate::mephisto_app::configure;
use crate::options::Options;

/// Runs the worker until the agent has seen `--records` events, then reports.
pub async fn run(o: &Options) -> Result<Outcome, BoxError> {
    let app = App::new(o.group.clone());
    configure(&app, o);
    let input = app
        .topic::<Bytes, Bytes>(o.input.clone())
        .key_codec(CodecName::Raw)
        .value_codec(CodecName::Raw);
    let records = o.records;
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(0u64);
    let _agent = app
        .agent::<Bytes, Bytes>("consume")
        .topic(&input)
        .concurrency(o.concurrency)
        .processing(move |mut stream| {
            let done = done_tx.clone();
            async move {
                let mut bytes = 0u64;
                while let Some(value) = stream.next().await {
                    bytes += value.len() as u64;
                    if seen_input() == records {
                        let _ = done.send(now_micros());
                    }
                }
                std::hint::black_box(bytes);
                Ok(())
            }
        });
    let worker = app.start_worker().await?;
    tokio::time::timeout(o.timeout, done_rx.wait_for(|&last| last > 0))
        .await
        .map_err(|_| format!("timed out after {} records", seen_so_far().processed))?
        .map_err(|_| "the agent ended before the whole input")?;
    let last = *done_rx.borrow();
    let mut outcome = seen_so_far().with_process_stats();
    outcome.last_input_us = last;
    // Stopping (commit, leave) is not measured; do not let it hang the run.
    let stop_by = Instant::now() + Duration::from_secs(10);
    let _ = tokio::time::timeout_at(stop_by.into(), worker.stop()).await;
    Ok(outcome)
}
