//! Table state without a broker: what a worker holds of a table partition
//! ([`partition::PartitionData`]), Faust's windows ([`window::Window`]), where a table keeps
//! its partitions ([`store::StoreUrl`]) and the durable store on disk
//! ([`durable::DurableStore`]). Neither the engine nor the runtime is imported here: the
//! runtime recovers and writes through these types, the app's `Table` is built on them.

pub mod durable;
pub mod partition;
pub mod store;
pub mod window;
