//! [`fill_topic`]: writes a bench's input to a topic, every record acknowledged before it
//! returns (in rounds of [`ROUND`], so pending deliveries stay bounded).

use std::sync::Arc;

use bytes::Bytes;
use mephisto_engine::producer::{Delivery, Producer, ProducerRecord};

use crate::tansu::BoxError;

/// Records queued before their acknowledgements are awaited.
pub const ROUND: usize = 50_000;

/// One record to write: partition (`None`: the partitioner's choice), key, value.
pub type Made = (Option<i32>, Option<Bytes>, Option<Bytes>);

/// Writes records `0..records` to `topic`, record `i` being `make(i)`, and closes the
/// producer once every one is acknowledged.
pub async fn fill_topic(
    producer: Producer,
    topic: &str,
    records: u64,
    make: &dyn Fn(u64) -> Made,
) -> Result<(), BoxError> {
    let topic: Arc<str> = Arc::from(topic);
    let mut pending: Vec<Delivery> = Vec::with_capacity(ROUND);
    for i in 0..records {
        let (partition, key, value) = make(i);
        let mut record = ProducerRecord::for_topic(Arc::clone(&topic));
        record.partition = partition;
        record.key = key;
        record.value = value;
        pending.push(producer.enqueue(record).await?);
        if pending.len() >= ROUND {
            for d in pending.drain(..) {
                d.await?;
            }
        }
    }
    for d in pending {
        d.await?;
    }
    producer.close().await;
    Ok(())
}
