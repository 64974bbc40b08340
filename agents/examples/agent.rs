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
//! Start a worker (`faust -A examples.agent worker -l info`), then ask it from a second
//! console with the `send_to_agent` example:
//!
//! ```text
//! cargo run --example agent -- worker -l info
//! cargo run --example send_to_agent
//! ```
//!
//! The types are checked at compile time (the page's "Static types" section): the stream
//! yields `Add` values and the agent yields `i64`s.

use futures_util::StreamExt;
use mephisto::{App, AppAgent, Topic};
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
    // async def adding(stream: StreamT[Add]) -> AsyncIterable[int]
    let adding = app
        .agent::<String, Add>("adding")
        .topic(&topic)
        .yielding(|stream| stream.map(|value: Add| Ok(value.a + value.b)));
    (app, topic, adding)
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    let (app, _topic, _adding) = define();
    app.main()
}
