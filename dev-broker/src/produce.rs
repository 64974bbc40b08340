//! Produce: validates each partition's record batch with the wire crate's decoder (framing, CRC,
//! codec, every record), checks idempotent sequences, and appends the batch bytes as received
//! with offsets assigned in the header (see [`PartitionLog::append`](crate::log::PartitionLog)).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use mephisto_wire::record::{BatchError, DecodeOptions, RecordBatch, RecordBatches};

use crate::state::Shared;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Handles a Produce request; `None` for acks=0 (no response is sent).
pub(crate) fn produce(
    shared: &Shared,
    request: &ProduceRequest,
    _version: i16,
) -> Option<ProduceResponse> {
    let acks_ok = matches!(request.acks, -1..=1);
    let transactional = request.transactional_id.is_some();
    let mut responses = Vec::new();
    let mut appended_any = false;
    {
        let mut state = shared.lock();
        for topic in &request.topic_data {
            let name = topic.name.to_string();
            let mut partitions = Vec::new();
            for data in &topic.partition_data {
                let mut response = PartitionProduceResponse::default()
                    .with_index(data.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                let outcome = if !acks_ok {
                    Err((ResponseError::InvalidRequiredAcks, None))
                } else if transactional {
                    Err((
                        ResponseError::TransactionalIdAuthorizationFailed,
                        Some("transactions are not supported by the development broker"),
                    ))
                } else {
                    match state.topics.get_mut(&name).and_then(|t| {
                        let stamp = t.log_append_time.then(now_ms);
                        let compact = t.retention.compact;
                        let retention = t.retention;
                        t.partition_mut(data.index)
                            .map(|p| (p, stamp, retention, compact))
                    }) {
                        None => Err((ResponseError::UnknownTopicOrPartition, None)),
                        Some((log, stamp, retention, compact)) => {
                            match validate(data.records.as_ref(), compact) {
                                Err(e) => Err(e),
                                Ok(batch) => {
                                    let result = log
                                        .append(&batch, stamp, &retention, now_ms())
                                        .map_err(|e| (e, None));
                                    response = response.with_log_start_offset(log.log_start());
                                    result
                                }
                            }
                        }
                    }
                };
                match outcome {
                    Ok(appended) => {
                        appended_any = true;
                        response = response
                            .with_base_offset(appended.base_offset)
                            .with_log_append_time_ms(appended.log_append_time);
                    }
                    Err((error, message)) => {
                        response = response
                            .with_error_code(error.code())
                            .with_error_message(message.map(StrBytes::from_static_str));
                    }
                }
                partitions.push(response);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(partitions),
            );
        }
    }
    if appended_any {
        shared.notify_data();
    }
    (request.acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// Checks that `records` is exactly one valid v2 batch (as Kafka requires of Produce v3+),
/// records included (with a key each on compacted topics), and that it is not transactional.
fn validate(
    records: Option<&Bytes>,
    needs_keys: bool,
) -> Result<RecordBatch, (ResponseError, Option<&'static str>)> {
    let corrupt = |why| Err((ResponseError::CorruptMessage, Some(why)));
    let invalid = |why| Err((ResponseError::InvalidRecord, Some(why)));
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return invalid("no record batch");
    };
    let mut batches = RecordBatches::new(records.clone(), DecodeOptions::default());
    let batch = match batches.next() {
        Some(Ok(batch)) => batch,
        Some(Err(BatchError::CrcMismatch { .. })) => return corrupt("CRC mismatch"),
        Some(Err(_)) => return corrupt("malformed record batch"),
        None => return corrupt("truncated record batch"),
    };
    if batches.next().is_some() || batches.remaining_bytes() != 0 {
        return invalid("a produce request must hold exactly one record batch per partition");
    }
    if batch.is_transactional() || batch.is_control() {
        return invalid("transactional and control batches are not supported");
    }
    if batch.record_count() < 1 || batch.last_offset_delta() != batch.record_count() - 1 {
        return invalid("the record count does not match the last offset delta");
    }
    let Ok(parsed) = batch.records() else {
        return corrupt("the records do not decompress");
    };
    let mut count = 0i32;
    for (i, record) in (&parsed).into_iter().enumerate() {
        match record {
            Ok(record) if needs_keys && record.key().is_none() => {
                return invalid("a compacted topic only accepts records with a key")
            }
            Ok(record) if usize::try_from(record.offset_delta()).ok() == Some(i) => {
                count = count.saturating_add(1)
            }
            Ok(_) => return invalid("record offset deltas are not consecutive"),
            Err(_) => return corrupt("malformed record"),
        }
    }
    if count != batch.record_count() {
        return invalid("the batch holds fewer records than it declares");
    }
    Ok(batch)
}
