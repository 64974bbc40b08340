//! Produce: every batch's framing and CRC-32C are checked, its records counted (per topic and
//! in total) and, for idempotent batches, its sequence checked against the producer's previous
//! batch; offsets are assigned per partition and the data dropped. With
//! [`ReplayConfig::sum_values`](super::ReplayConfig::sum_values) each record's value is also
//! read back with [`output_sum`] and summed per topic.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use mephisto_wire::record::{BatchHeader, DecodeOptions, RecordBatches, BATCH_HEADER_SIZE};

use super::stats::bump;
use super::topics::Topics;
use super::{lock, now_micros, Shared};
use crate::pipeline_workload::output_sum;

/// Why a partition's produced data was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    UnknownPartition,
    Corrupt,
}

/// The headers of the batches in `data`, each checked for framing and CRC.
fn checked_headers(data: &[u8]) -> Option<Vec<BatchHeader>> {
    let mut headers = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let header = rest
            .first_chunk::<BATCH_HEADER_SIZE>()
            .map(BatchHeader::decode)
            .filter(|h| h.magic == 2 && h.record_count >= 0)?;
        let size = header.size_in_bytes();
        let batch = rest.get(..size).filter(|b| b.len() >= BATCH_HEADER_SIZE)?;
        if crc32c::crc32c(batch.get(21..).unwrap_or(&[])) != header.crc {
            return None;
        }
        headers.push(header);
        rest = rest.get(size..).unwrap_or(&[]);
    }
    (!headers.is_empty()).then_some(headers)
}

/// The sum of [`output_sum`] over the records of `data` and the count of values it could not
/// read (a record that does not decode counts as one unreadable value).
fn value_sum(data: &Bytes) -> (i128, u64) {
    let mut sum = 0i128;
    let mut unreadable = 0u64;
    for batch in RecordBatches::new(data.clone(), DecodeOptions::default()) {
        let Ok(records) = batch.and_then(|b| b.records()) else {
            unreadable += 1;
            continue;
        };
        for record in &records {
            match record.ok().and_then(|r| r.value().and_then(output_sum)) {
                Some(v) => sum += i128::from(v),
                None => unreadable += 1,
            }
        }
    }
    (sum, unreadable)
}

impl Shared {
    pub(super) fn produce(&self, request: &ProduceRequest) -> ProduceResponse {
        let mut topics = lock(&self.topics);
        let responses = request
            .topic_data
            .iter()
            .map(|topic| {
                let index = topics.find(topic.name.as_str());
                let partitions = topic
                    .partition_data
                    .iter()
                    .map(|p| {
                        let answer = PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(0);
                        let appended = match index {
                            Some(i) => self.append(&mut topics, i, p.index, p.records.as_ref()),
                            None => Err(Refused::UnknownPartition),
                        };
                        match appended {
                            Ok(base) => answer.with_base_offset(base),
                            Err(Refused::UnknownPartition) => answer
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                            Err(Refused::Corrupt) => {
                                answer.with_error_code(ResponseError::CorruptMessage.code())
                            }
                        }
                    })
                    .collect();
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_topic_id(topic.topic_id)
                    .with_partition_responses(partitions)
            })
            .collect();
        ProduceResponse::default().with_responses(responses)
    }

    /// Checks the batches of one partition's produced data and assigns their offsets; returns
    /// the first batch's base offset. Nothing is counted if any batch is bad.
    fn append(
        &self,
        topics: &mut Topics,
        topic: usize,
        partition: i32,
        data: Option<&Bytes>,
    ) -> Result<i64, Refused> {
        let p = usize::try_from(partition).map_err(|_| Refused::UnknownPartition)?;
        if topics.get(topic).is_none_or(|t| p >= t.partitions()) {
            return Err(Refused::UnknownPartition);
        }
        let empty = Bytes::new();
        let data = data.unwrap_or(&empty);
        let Some(headers) = checked_headers(data) else {
            bump(&self.counters.corrupt_batches, 1);
            return Err(Refused::Corrupt);
        };
        let mut gaps = 0;
        let mut records = 0u64;
        for h in &headers {
            if h.producer_id >= 0
                && !topics.sequence_follows(
                    (h.producer_id, topic, p),
                    h.base_sequence,
                    h.record_count,
                )
            {
                gaps += 1;
            }
            records += h.record_count as u64;
        }
        let (sum, unreadable) = if self.config.sum_values {
            value_sum(data)
        } else {
            (0, 0)
        };
        let state = topics.get_mut(topic).ok_or(Refused::UnknownPartition)?;
        let log_end = state.log_end.get_mut(p).ok_or(Refused::UnknownPartition)?;
        let base = *log_end;
        for h in &headers {
            *log_end += i64::from(h.last_offset_delta) + 1;
        }
        let now = now_micros();
        let stats = &mut state.stats;
        stats.records += records;
        stats.batches += headers.len() as u64;
        stats.value_sum += sum;
        stats.unreadable_values += unreadable;
        if stats.first_append_us == 0 {
            stats.first_append_us = now;
        }
        stats.last_append_us = now;
        bump(&self.counters.produced_records, records);
        bump(&self.counters.produced_batches, headers.len() as u64);
        bump(&self.counters.produced_bytes, data.len() as u64);
        bump(&self.counters.sequence_gaps, gaps);
        Ok(base)
    }
}
