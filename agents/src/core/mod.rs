//! The broker-free core of the Faust API: events and their acks, codecs, channels, streams,
//! agents and their actors, supervision, sinks and test contexts. It imports neither the
//! engine nor the app; the Kafka runtime and the app build on it.
//!
//! - [`ack`]: [`Acker`](ack::Acker), [`AckRef`](ack::AckRef), [`Hold`](ack::Hold).
//! - [`event`]: [`Event`](event::Event), [`Message`](event::Message),
//!   [`Headers`](event::Headers), [`Coordinate`](event::Coordinate).
//! - [`reqrep`]: Faust's reply headers and `ReqRepResponse` / `ReqRepRequest`.
//! - [`codec`]: [`Codec`](codec::Codec), `Json`, `Raw`, `Postcard`, [`SerdeCodec`](codec::SerdeCodec).
//! - [`queue`]: the bounded queue between an agent's senders and its actors.
//! - [`channel`]: [`Channel`](channel::Channel) (Faust's `app.channel()`).
//! - [`context`]: the actor agent code runs in ([`current_event`](context::current_event)).
//! - [`stream`], [`take`]: [`Stream`](stream::Stream) and its adapters.
//! - [`agent`], `actor`, [`supervisor`], [`policy`]: agents, their actors and supervisor,
//!   restart and retry policies.
//! - [`sink`]: [`Sink`](sink::Sink), [`Writer`](sink::Writer), [`Replier`](sink::Replier).
//! - [`error`]: [`AgentError`](error::AgentError), [`WriteError`](error::WriteError).
//! - [`test_context`](mod@test_context): `agent.test_context()`.
//! - `slot`: what an actor shares with its stream.

pub mod ack;
mod actor;
pub mod agent;
pub mod channel;
pub mod codec;
pub mod context;
pub mod error;
pub mod event;
pub mod policy;
pub mod queue;
pub mod reqrep;
pub mod sink;
mod slot;
pub mod stream;
pub mod supervisor;
pub mod take;
pub mod test_context;
