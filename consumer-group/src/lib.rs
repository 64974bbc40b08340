//! Consumer-group membership for Mephisto, as pure code driven by events and time.
//!
//! This crate will own the classic group protocol state machine, the assignors and offset
//! tracking. It opens no sockets. It is empty until the consumer-group work lands.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
