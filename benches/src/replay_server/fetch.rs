//! Fetch: the input topic's pre-built batches within the request's byte limits; a sink topic
//! has nothing to read (its high watermark is the count of records produced to it).

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::{lock, Shared};

impl Shared {
    /// The Fetch answer and the record bytes it carries.
    pub(super) fn fetch(&self, request: &FetchRequest) -> (FetchResponse, usize) {
        let topics = lock(&self.topics);
        let mut remaining = usize::try_from(request.max_bytes).unwrap_or(0);
        let mut total = 0usize;
        let responses = request
            .topics
            .iter()
            .map(|topic| {
                let index = topics.find(topic.topic.as_str());
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let answer = PartitionData::default().with_partition_index(p.partition);
                        let Some(end) = index.and_then(|i| self.log_end(&topics, i, p.partition))
                        else {
                            return answer
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                        };
                        let answer = answer
                            .with_high_watermark(end)
                            .with_last_stable_offset(end)
                            .with_log_start_offset(0);
                        if p.fetch_offset < 0 || p.fetch_offset > end {
                            return answer.with_error_code(ResponseError::OffsetOutOfRange.code());
                        }
                        // Only the input topic (index 0) has records to read.
                        let log = usize::try_from(p.partition)
                            .ok()
                            .and_then(|i| self.logs.get(i))
                            .filter(|_| index == Some(0));
                        let records = match log {
                            Some(log) => {
                                let limit = usize::try_from(p.partition_max_bytes)
                                    .unwrap_or(0)
                                    .min(remaining);
                                log.read(p.fetch_offset, limit, total == 0)
                            }
                            None => Bytes::new(),
                        };
                        total += records.len();
                        remaining = remaining.saturating_sub(records.len());
                        answer.with_records(Some(records))
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(topic.topic.clone())
                    .with_topic_id(topic.topic_id)
                    .with_partitions(partitions)
            })
            .collect();
        (FetchResponse::default().with_responses(responses), total)
    }
}
