//! The seed page's full example, `examples/agent.py`: an agent that adds numbers.
//!
//! ```python
//! class Add(faust.Record):
//!     a: int
//!     b: int
//!
//! app = faust.App('agent-example')
//! topic = app.topic('adding', value_type=Add)
//!
//! @app.agent(topic)
//! async def adding(stream):
//!     async for value in stream:
//!         yield value.a + value.b
//! ```
//!
//! `cargo run --example agent` runs a worker and asks it once, in one process, on the
//! in-process development broker (or on `MEPHISTO_BROKER` when it is set): it prints 8.
//!
//! As on the page, with a worker in one console (`faust -A examples.agent worker -l info`)
//! and `send_to_agent` in a second one; both need the same broker, e.g. `mephisto dev-broker`
//! (it listens on 127.0.0.1:9092, the default broker) or a Kafka in `MEPHISTO_BROKER`:
//!
//! ```text
//! cargo run -p mephisto-agents -- dev-broker                   # console 1
//! cargo run -p mephisto-agents --example agent -- worker -l info   # console 2
//! cargo run -p mephisto-agents --example send_to_agent          # console 3: prints 8
//! ```
//!
//! The types are checked at compile time (the page's "Static types" section): the stream
//! yields `Add` values and the agent yields `i64`s.
//!
//! The agent body is written as on the page, with `yield` in a loop (`async_stream`'s
//! `try_stream!`); [`adding_combinators`] is the same agent with `StreamExt::map`.

use futures_util::StreamExt;
use mephisto::{App, AppAgent, BoxError, Stream, Topic};
use serde::{Deserialize, Serialize};

/// The data sent to our agent: a JSON object with two integer fields, `a` and `b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Add {
    /// First term.
    pub a: i64,
    /// Second term.
    pub b: i64,
}

/// The app, its `adding` topic (values of the `Add` model) and the `adding` agent.
pub fn define() -> (App, Topic<String, Add>, AppAgent<String, Add, i64>) {
    // The application object that configures our environment.
    let app = App::new("agent-example");
    // The Kafka topic used by our agent is named 'adding', and its values are `Add` models.
    let topic = app.topic::<String, Add>("adding");
    // async def adding(stream: StreamT[Add]) -> AsyncIterable[int]:
    //     async for value in stream:
    //         yield value.a + value.b
    let adding = app.agent::<String, Add>("adding").topic(&topic).yielding(
        |mut stream: Stream<String, Add>| {
            async_stream::try_stream! {
                while let Some(value) = stream.next().await {
                    yield value.a + value.b;
                }
            }
        },
    );
    (app, topic, adding)
}

/// The same agent body with a combinator instead of a loop.
#[allow(dead_code)]
pub fn adding_combinators(
    stream: Stream<String, Add>,
) -> impl futures_util::Stream<Item = Result<i64, BoxError>> {
    stream.map(|value: Add| Ok(value.a + value.b))
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    let (app, _topic, adding) = define();
    if std::env::args_os().len() <= 1 {
        // The one-process run: on the embedded broker unless MEPHISTO_BROKER is set.
        let _ = app.clone().broker_unless_env("memory://");
    }
    app.main_with(|app| async move {
        let worker = app.start_worker().await?;
        println!("{}", adding.ask(Add { a: 4, b: 4 }).await?);
        worker.stop().await?;
        Ok(())
    })
}
