//! Mephisto: Faust's agent model in Rust.
//!
//! This is the broker-independent core of the Faust API: models and codecs, events, in-memory
//! channels, streams and their combinators, agents (concurrency, sinks, replies, supervision,
//! retry) and `test_context`. The broker wiring (topics, `App`) comes later.
//!
//! # What exists
//! * [`codec`]: models are serde types; codecs [`codec::Json`] (default for values),
//!   [`codec::Raw`] (default for keys: bytes or UTF-8 text), [`codec::Postcard`]; typed
//!   [`codec::CodecError`] naming codec, direction, key/value, Rust type and, when known, the
//!   topic/partition/offset.
//! * [`event`]: [`event::Event`] (key, value, headers, topic/partition/offset/timestamp when from
//!   a topic, ack), the `Faust-Ag-ReplyTo` / `Faust-Ag-CorrelationId` headers, Faust's
//!   `ReqRepResponse` (`key`, `value`, `correlation_id`, `__faust: {ns: "@ReqRepResponse"}`) and
//!   `ReqRepRequest`.
//! * [`ack`]: the [`ack::AckSink`] hook that receives each event's ack exactly once (out of
//!   order with concurrent actors), and [`ack::MemoryAcks`].
//! * [`channel`]: `app.channel()`: a bounded in-memory queue with cloneable senders and
//!   back-pressure.
//! * [`stream`]: [`stream::Stream`] (a `futures` stream of values; any `StreamExt` adapter
//!   works on it) with `filter`, `filter_async`, `take(max, within)`, `take_events`,
//!   `enumerate(start)`, `items()`, `events()`, `current_event()`, `noack()` and manual `ack`;
//!   `Stream::from_values` is Faust's `app.stream(iterable)`.
//! * [`agent`]: [`agent::Agent`]: a yielding or non-yielding async function over a stream, with
//!   `concurrency`, sinks (function, async function, channel, another agent), reply callback,
//!   supervisor restart limit and retry policy; `cast`/`send` into its channel.
//! * [`test_context`]: `agent.test_context()` and `put(value)` → yielded result.
//!
//! # What comes with the broker wiring
//! `App::new("id")`, `app.topic(...)` (topic sources and topic sinks, key/value codecs applied
//! on the wire, decode errors reported with their coordinate), `ask`/`map`/`join` over a reply
//! topic (`f-reply-<uuid>`), an [`ack::AckSink`] over the engine's offset tracker (commits),
//! default topic `<app id>-<agent name>`, `group_by`/`through`/`echo`, `isolated_partitions`,
//! flow control on rebalance, `test_context().put` decoding raw bytes through the topic's codecs.
//! Not here on purpose: there is no `App` type yet, because without a broker it would only be a
//! name holder.
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
pub mod channel;
pub mod codec;
pub mod event;
pub mod stream;
pub mod test_context;

pub use agent::{Agent, AgentError, AgentHandle, Reply, RestartPolicy, RetryPolicy, Sink};
pub use channel::{Channel, ChannelSender};
pub use codec::{BoxError, Codec, CodecError, CodecName};
pub use event::Event;
pub use stream::Stream;
pub use test_context::TestContext;
