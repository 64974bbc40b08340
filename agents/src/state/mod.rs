//! Table state without a broker: what a worker holds of a table partition
//! ([`partition::PartitionData`]) and Faust's windows ([`window::Window`]). Neither the engine
//! nor the runtime is imported here: the runtime recovers and writes through these types, the
//! app's `Table` is built on them.

pub mod partition;
pub mod window;
