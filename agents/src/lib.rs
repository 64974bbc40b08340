//! Mephisto: Faust's agent model in Rust.
//!
//! This crate will own the Faust API (apps, models, topics, channels, agents, streams) on top of
//! the engine. It is empty until the agents work lands.
#![warn(missing_docs)]
