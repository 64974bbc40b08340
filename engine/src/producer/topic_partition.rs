//! [`TopicPartition`]: the key of every per-partition map in the producer, the fetcher and the
//! group consumer. It is the consumer-group crate's type, re-exported here (and as
//! `producer::TopicPartition` and `fetcher::TopicPartition`), so the engine and the group state
//! machine share partition keys without conversion.

pub use mephisto_consumer_group::TopicPartition;
