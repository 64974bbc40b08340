//! Mephisto's engine: the only crate that opens sockets.
//!
//! This crate will own broker connections, cluster metadata, the producer, the fetcher, admin
//! requests and the driver of the consumer-group state machine. It is empty until the engine
//! work lands.
#![warn(missing_docs)]
