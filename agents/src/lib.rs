//! Mephisto: Faust's agent model in Rust.
//!
//! Faust's Agents page, in Rust: an [`App`] declares typed [`Topic`]s and channels, agents
//! are async functions over a [`Stream`], a [`Worker`] runs them as one consumer-group member
//! per process, and [`AppAgent`]s can be `cast` to, `ask`ed (the reply comes back through this
//! process's reply topic), `map`ped and `join`ed.
//!
//! # Modules
//! * [`app`]: [`App`] (settings with Faust's names, `topic`, `topic_many`, `channel`,
//!   `agent`, `start_worker`, `main` for the `worker`/`send`/`agents` command line),
//!   [`Topic`] (codecs, partitions, `send`, `sink`), [`AgentBuilder`] (topic or channel
//!   source, default topic `<app id>-<agent name>`, `concurrency`, `retry`, `supervisor`,
//!   `dead_letter`), [`AppAgent`] (`cast`, `send` with `reply_to` and correlation id, `ask`,
//!   `map`, `kvmap`, `join`, `kvjoin`, sinks, `test_context`), [`Worker`].
//! * [`codec`]: models are serde types; codecs [`codec::Json`] (default for values),
//!   [`codec::Raw`] (default for keys: bytes or UTF-8 text), [`codec::Postcard`]; typed
//!   [`codec::CodecError`] naming codec, direction, key/value, Rust type and, when known, the
//!   topic/partition/offset. A record that does not decode is logged with its coordinate,
//!   dead-lettered when the agent has a dead-letter topic, and acked: the worker goes on.
//! * [`event`]: [`event::Event`] (key, value, headers, topic/partition/offset/timestamp when from
//!   a topic, ack), the `Faust-Ag-ReplyTo` / `Faust-Ag-CorrelationId` headers, Faust's
//!   `ReqRepResponse` and `ReqRepRequest`.
//! * [`ack`]: the [`ack::AckSink`] hook that receives each event's ack exactly once (out of
//!   order with concurrent actors); a worker's acks go to the consumer's offset tracker, which
//!   commits only the contiguous processed prefix of each partition.
//! * [`channel`]: `app.channel()`: a bounded in-memory queue with back-pressure.
//! * [`stream`]: [`stream::Stream`] (a `futures` stream of values; any `StreamExt` adapter
//!   works on it) with `filter`, `filter_async`, `take(max, within)`, `take_events`,
//!   `enumerate(start)`, `items()`, `events()`, `current_event()`, `noack()` and manual `ack`,
//!   and, through topics, `group_by(key_fn, name)`, `through(topic)` and `echo(topics)`.
//! * [`agent`]: [`agent::Agent`], the broker-free core of an agent: concurrency, sinks,
//!   replies, a supervisor with a restart limit, a retry policy.
//! * [`test_context`]: `agent.test_context()` and `put(value)` → yielded result, no broker.
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

pub mod ack;
pub mod agent;
pub mod app;
pub mod channel;
pub mod codec;
pub mod event;
mod repartition;
pub mod stream;
pub mod test_context;

pub use agent::{Agent, AgentError, AgentHandle, Reply, RestartPolicy, RetryPolicy, Sink, Written};
pub use app::{AgentBuilder, App, AppAgent, AppError, AskOptions, Settings, Topic, Worker};
pub use channel::{Channel, ChannelSender};
pub use codec::{BoxError, Codec, CodecError, CodecName};
pub use event::Event;
pub use stream::Stream;
pub use test_context::TestContext;
