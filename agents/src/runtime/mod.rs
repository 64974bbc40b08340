//! The Kafka runtime: agents over topics. It builds on the core and the engine, and knows
//! nothing of the app.
//!
//! - [`worker`]: [`Worker`](worker::Worker) — one consumer-group member on a thread of its own
//!   (`group_thread`), a partition task per assigned partition (`partition`), the agents'
//!   queues fed through [`route`]s, graceful stop within a grace period.
//! - [`route`]: typed routes from a topic's records to the agents that read it, decoded once;
//!   [`subscriptions`]: the topics read, growing when a `group_by` adds one.
//! - [`tables`]: the app's tables as partition tasks hold them, and their recovery from
//!   changelogs before a partition's events are processed.
//! - `acker`: an event's ack as a slot update in its partition's window.
//! - [`writes`]: topic sinks and replies as queued records; [`tracker`]: their
//!   acknowledgements release their events; [`dead_letter`]: an agent's dead-letter topic.
//! - [`client`]: the app's connection (producer, admin, the development broker for
//!   `memory://`); [`replies`]: this process's reply reader for `ask`.
//! - [`settings`]: [`Settings`](settings::Settings) with Faust's names; [`topics`]:
//!   [`TopicSpec`](topics::TopicSpec); [`error`]: [`RuntimeError`](error::RuntimeError);
//!   [`ids`]: reply topic and correlation ids.

mod acker;
pub mod client;
pub mod dead_letter;
pub mod error;
mod group_thread;
pub mod ids;
mod partition;
pub mod replies;
pub mod route;
pub mod settings;
pub mod subscriptions;
pub mod tables;
pub mod topics;
pub mod tracker;
pub mod worker;
pub mod writes;
