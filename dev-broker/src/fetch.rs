//! Fetch (stored batches served as stored, per-partition and per-request byte limits, long
//! polling on `max_wait_ms`/`min_bytes`) and ListOffsets (earliest, latest, max timestamp, by
//! timestamp).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};

use crate::state::Shared;

/// Longest a Fetch is held, whatever `max_wait_ms` says.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// A Fetch that did not have `min_bytes` yet: the connection waits for new data or the deadline,
/// then calls [`PendingFetch::poll`] again.
#[derive(Debug)]
pub struct PendingFetch {
    request: FetchRequest,
    /// Request version.
    pub version: i16,
    /// Correlation id to answer with.
    pub correlation_id: i32,
    /// When to answer with whatever there is.
    pub deadline: Instant,
}

impl PendingFetch {
    /// The response now if there is enough data or `force` (the deadline passed), else `None`.
    pub fn poll(&self, shared: &Shared, force: bool) -> Option<FetchResponse> {
        let (response, enough) = read(shared, &self.request, self.version);
        (enough || force).then_some(response)
    }
}

/// Handles a Fetch: the response if it can be answered now, or the pending fetch to wait on.
pub(crate) fn fetch(
    shared: &Shared,
    request: FetchRequest,
    version: i16,
    correlation_id: i32,
) -> Result<FetchResponse, Box<PendingFetch>> {
    let (response, enough) = read(shared, &request, version);
    if enough || request.max_wait_ms <= 0 {
        return Ok(response);
    }
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    Err(Box::new(PendingFetch {
        request,
        version,
        correlation_id,
        deadline: Instant::now() + wait,
    }))
}

/// Builds the response from what is stored; the flag says whether it should be sent now (enough
/// bytes, or an error to report).
fn read(shared: &Shared, request: &FetchRequest, version: i16) -> (FetchResponse, bool) {
    if version >= 7 && (request.session_id != 0 || request.session_epoch > 0) {
        // Fetch sessions are not offered (every response carries session id 0), so a client
        // cannot hold one.
        return (
            FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code()),
            true,
        );
    }
    let state = shared.lock();
    let max_bytes = if request.max_bytes <= 0 {
        usize::MAX
    } else {
        usize::try_from(request.max_bytes).unwrap_or(usize::MAX)
    };
    let mut total = 0usize;
    let mut any_error = false;
    let mut topics = Vec::new();
    for topic in &request.topics {
        let name = topic.topic.to_string();
        let stored = state.topics.get(&name);
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            if request.isolation_level == 1 {
                data = data.with_aborted_transactions(Some(Vec::new()));
            }
            let Some(log) = stored.and_then(|t| t.partition(p.partition)) else {
                any_error = true;
                partitions
                    .push(data.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let hw = log.high_watermark();
            data = data
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(log.log_start());
            if p.current_leader_epoch > 0 {
                any_error = true;
                partitions.push(data.with_error_code(ResponseError::UnknownLeaderEpoch.code()));
                continue;
            }
            if p.fetch_offset < log.log_start() || p.fetch_offset > hw {
                any_error = true;
                partitions.push(data.with_error_code(ResponseError::OffsetOutOfRange.code()));
                continue;
            }
            if p.fetch_offset < hw {
                let partition_max = usize::try_from(p.partition_max_bytes).unwrap_or(0);
                let room = max_bytes.saturating_sub(total).min(partition_max);
                let batches = log.read(p.fetch_offset, room, total == 0);
                let size: usize = batches.iter().map(Bytes::len).sum();
                total = total.saturating_add(size);
                if !batches.is_empty() {
                    data = data.with_records(Some(concat(batches)));
                }
            }
            partitions.push(data);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let enough = any_error || total >= min_bytes || request.topics.is_empty();
    (FetchResponse::default().with_responses(topics), enough)
}

/// The batches as one buffer (no copy for a single batch).
fn concat(mut batches: Vec<Bytes>) -> Bytes {
    if batches.len() == 1 {
        return batches.pop().unwrap_or_default();
    }
    let mut buf = BytesMut::with_capacity(batches.iter().map(Bytes::len).sum());
    for batch in batches {
        buf.extend_from_slice(&batch);
    }
    buf.freeze()
}

/// ListOffsets: -1 latest (the high watermark), -2 earliest, -3 the record with the largest
/// timestamp, -4 earliest local (= earliest), -5 latest tiered (none: -1), or the first offset
/// with a timestamp at least the one given.
pub(crate) fn list_offsets(
    shared: &Shared,
    request: &ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let state = shared.lock();
    let mut topics = Vec::new();
    for topic in &request.topics {
        let stored = state.topics.get(&topic.name.to_string());
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            let mut response = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            if version >= 4 {
                response = response.with_leader_epoch(0);
            }
            let Some(log) = stored.and_then(|t| t.partition(p.partition_index)) else {
                partitions
                    .push(response.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let found = match p.timestamp {
                -1 => Some((log.high_watermark(), -1)),
                -2 | -4 => Some((log.log_start(), -1)),
                -3 => log.offset_of_max_timestamp(),
                -5 => None,
                ts if ts >= 0 => log.offset_for_timestamp(ts),
                _ => {
                    partitions.push(response.with_error_code(ResponseError::InvalidRequest.code()));
                    continue;
                }
            };
            if let Some((offset, timestamp)) = found {
                response = response.with_offset(offset).with_timestamp(timestamp);
            }
            partitions.push(response);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
