//! Mephisto: Faust's agent model in Rust.
//!
//! Faust's Agents page, in Rust: an [`App`] declares typed [`Topic`]s and channels, agents
//! are async functions over a [`Stream`], a [`Worker`] runs them as one consumer-group member
//! per process, with a task per assigned partition, and [`AppAgent`]s can be `cast` to,
//! `ask`ed (the reply comes back through this process's reply topic), `map`ped and `join`ed.
//!
//! # Layout
//! Three layers, each a top-level module, importing only the ones below it (no two
//! top-level modules import each other, directly or around a loop):
//! * [`core`]: the broker-free core — events and acks, codecs, channels, streams, agents and
//!   their actors, supervision, sinks, `test_context`. It imports neither the engine nor the
//!   app.
//! * [`state`]: table state without a broker — a table partition's data and Faust's windows.
//!   It imports neither the engine nor the runtime.
//! * [`runtime`]: the Kafka runtime on core + engine — the worker, its partition tasks and
//!   routes, topic sinks and replies with their write tracking, dead letters, the reply
//!   reader, the connection and the settings, tables' partitions and their recovery.
//! * [`app`]: the Faust API on top — [`App`], [`Topic`], agent builders, `ask`/`map`/`join`,
//!   `group_by`/`through`/`echo`, and `app.main()`'s command line.
//!
//! The core's modules are re-exported at the crate root (`mephisto::agent`,
//! `mephisto::stream`, ...).
//!
//! # Example: the `adding` agent of Faust's Agents page
//! ```
//! use bytes::Bytes;
//! use futures_util::StreamExt;
//! use mephisto::agent::Agent;
//! use serde::{Deserialize, Serialize};
//!
//! // class Add(faust.Record): a: int; b: int
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Add {
//!     a: i64,
//!     b: i64,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // @app.agent(topic)
//! // async def adding(stream):
//! //     async for value in stream:
//! //         yield value.a + value.b
//! let adding: Agent<Bytes, Add, i64> =
//!     Agent::yielding("adding", |stream| stream.map(|value: Add| Ok(value.a + value.b)));
//!
//! // async with adding.test_context() as agent:
//! //     event = await agent.put(Add(a=4, b=4))
//! let agent = adding.test_context()?;
//! assert_eq!(agent.put(Add { a: 4, b: 4 }).await?, Some(8));
//! assert_eq!(agent.put(Add { a: 2, b: 2 }).await?, Some(4));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod app;
pub mod core;
pub mod runtime;
pub mod state;

pub use crate::core::{
    ack, agent, channel, codec, context, error, event, policy, queue, reqrep, sink, stream,
    supervisor, take, test_context,
};

pub use crate::app::{
    AgentBuilder, AgentInfo, App, AppAgent, AppError, AskOptions, Model, SendHandle, SendOptions,
    SetTable, Table, TableError, Topic, WindowKey, WindowSet, WindowedTable,
};
pub use crate::core::agent::{Agent, Reply};
pub use crate::core::channel::{Channel, ChannelSender};
pub use crate::core::codec::{Codec, CodecError, CodecName};
pub use crate::core::error::{AgentError, BoxError, WriteError};
pub use crate::core::event::Event;
pub use crate::core::policy::{RestartPolicy, RetryPolicy};
pub use crate::core::sink::Sink;
pub use crate::core::stream::Stream;
pub use crate::core::supervisor::AgentHandle;
pub use crate::core::test_context::TestContext;
pub use crate::runtime::settings::{Settings, DEFAULT_BROKER};
pub use crate::runtime::worker::{StopReport, Worker};
