//! Role `mephisto-pipeline`: a Mephisto [`App`] whose agent reads the input topic and yields
//! every event to the output topic through [`Topic::sink`] — the pipeline the agents runtime
//! is judged by. Only the public `mephisto` API is used, so that this file alone changes with
//! that API.
//!
//! - `noop`: `Topic<Bytes, Bytes>` with raw key and value codecs: the value is a slice of the
//!   fetch response, yielded as it came and written by the sink without a copy.
//! - `add`: `Topic<String, Add>` with JSON values; yields `a + b` as a JSON number.
//!
//! Faust's defaults otherwise (one actor, commit every 2.8 s or 10,000 acks), producer linger
//! 5 ms, acks=all, idempotent.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use mephisto::{App, CodecName, Topic};
use mephisto_benches::tansu::BoxError;
use serde::{Deserialize, Serialize};

use crate::child::{seen_input, seen_so_far, stop_flag, wait_for, Outcome};
use crate::mephisto_app::{configure, topic_sink};
use crate::options::Options;

/// The `add` input model: `{"a":…,"b":…,"pad":…}` (the pad is skipped).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Add {
    /// First operand.
    pub a: i64,
    /// Second operand.
    pub b: i64,
}

/// Runs the worker until the parent says stop, then reports what the agent saw.
pub async fn run(o: &Options) -> Result<Outcome, BoxError> {
    let stop = stop_flag();
    let app = App::new(o.group.clone());
    configure(&app, o);
    match o.variant.as_str() {
        "noop" => noop(&app, o),
        _ => add(&app, o),
    }
    let worker = app.start_worker().await?;
    wait_for(&stop).await;
    let outcome = seen_so_far().with_process_stats();
    // Stopping (commit, leave) is not measured; do not let it hang the run.
    let _ = tokio::time::timeout(Duration::from_secs(10), worker.stop()).await;
    Ok(outcome)
}

/// A topic of raw keys and values.
fn raw_topic(app: &App, name: &str) -> Topic<Bytes, Bytes> {
    app.topic::<Bytes, Bytes>(name)
        .key_codec(CodecName::Raw)
        .value_codec(CodecName::Raw)
}

fn noop(app: &App, o: &Options) {
    let input = raw_topic(app, &o.input);
    let output = raw_topic(app, &o.output);
    let _agent = app
        .agent::<Bytes, Bytes>("pipeline")
        .topic(&input)
        .concurrency(o.concurrency)
        .yielding_to(vec![topic_sink(&output, &o.mephisto_sink)], |stream| {
            stream.map(|value: Bytes| {
                seen_input();
                Ok(value)
            })
        });
}

fn add(app: &App, o: &Options) {
    let input = app.topic::<String, Add>(o.input.clone());
    let output: Topic<String, i64> = app.topic(o.output.clone());
    let _agent = app
        .agent::<String, Add>("pipeline")
        .topic(&input)
        .concurrency(o.concurrency)
        .yielding_to(vec![topic_sink(&output, &o.mephisto_sink)], |stream| {
            stream.map(|value: Add| {
                seen_input();
                Ok(value.a + value.b)
            })
        });
}
