//! Turning one partition of a Fetch response into what the fetcher buffers: a [`Chunk`] of data
//! batches with the offset to fetch next, or the reason there is none ([`Outcome`]).
//!
//! Pure code, no I/O: the broker loops call it, the unit tests feed it hand-built responses.
//!
//! # Rules (Kafka's `CompletedFetch` and `ByteBufferLogInputStream`)
//! - Batches are framed and CRC-checked here, off the application's path; records are parsed
//!   (and compressed batches inflated) only when the application iterates them.
//! - A partial trailing batch is normal (the broker cuts the response at the size limit): the
//!   chunk ends with the last complete batch and the next fetch starts after it.
//! - The offset to fetch next is the last complete batch's base offset + last offset delta + 1,
//!   so compaction gaps and empty batches are stepped over.
//! - Control batches are never handed out; with read_committed, batches of aborted
//!   transactions (per the response's aborted list) are dropped. Both still move the position.
//! - Batches entirely below the fetch offset are dropped; inside the first batch, records
//!   below it are skipped when iterated ([`FetchedBatch::start_offset`](super::FetchedBatch)).
//! - Data that holds no complete batch at all cannot make progress and is an error.

use std::collections::VecDeque;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::PartitionData;
use mephisto_wire::record::{
    AbortedTransactions, BatchError, DecodeOptions, RecordBatch, RecordBatches,
};

use super::batch::Watermarks;
use super::config::IsolationLevel;
use crate::error::KafkaError;

/// The data of one partition from one response.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Data batches to hand out, in offset order.
    pub batches: VecDeque<RecordBatch>,
    /// The offset the fetch asked for (records below it are skipped).
    pub start_offset: i64,
    /// Where the partition's position goes once every batch is handed out.
    pub next_offset: i64,
    /// The partition's offsets per the response.
    pub marks: Watermarks,
    /// Bytes accounted to the prefetch buffer for this chunk (its share of the response).
    pub bytes: usize,
    /// What stopped the chunk early, delivered after its batches.
    pub error: Option<ChunkError>,
}

/// A fault found while framing a partition's data.
#[derive(Debug)]
pub(crate) enum ChunkError {
    /// A batch did not validate.
    Corrupt {
        /// The position of the first record not delivered.
        offset: i64,
        /// Why.
        source: BatchError,
    },
    /// Data without one complete batch.
    NoProgress {
        /// The position.
        offset: i64,
        /// Bytes returned.
        size: usize,
    },
    /// An error decided elsewhere (a partition error code), queued behind the data.
    Delivered(super::error::FetchError),
}

/// What one partition of a Fetch response amounts to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Data (possibly no batches, e.g. only control batches or nothing new).
    Data(Chunk),
    /// OFFSET_OUT_OF_RANGE: the fetch offset is outside the log.
    OutOfRange,
    /// The leader moved or the metadata is otherwise stale: refresh and re-route.
    Reroute(KafkaError),
    /// A retriable error that does not call for new metadata: try again after a backoff.
    Retry(KafkaError),
    /// An error retrying does not fix.
    Fatal(KafkaError),
}

/// Sorts a partition's error code into an [`Outcome`] kind; `None` for no error.
pub(crate) fn classify(code: i16, message: Option<&str>) -> Option<Outcome> {
    let error = KafkaError::with_message(code, message)?;
    Some(if error.kind() == ResponseError::OffsetOutOfRange {
        Outcome::OutOfRange
    } else if error.invalidates_metadata() {
        Outcome::Reroute(error)
    } else if error.is_retriable() {
        Outcome::Retry(error)
    } else {
        Outcome::Fatal(error)
    })
}

/// Processes one partition of a Fetch response that was asked for at `fetch_offset`.
pub(crate) fn partition_outcome(
    data: PartitionData,
    fetch_offset: i64,
    isolation: IsolationLevel,
    options: &DecodeOptions,
) -> Outcome {
    if let Some(outcome) = classify(data.error_code, None) {
        return outcome;
    }
    let marks = Watermarks {
        high_watermark: data.high_watermark,
        last_stable_offset: (data.last_stable_offset >= 0).then_some(data.last_stable_offset),
        log_start_offset: (data.log_start_offset >= 0).then_some(data.log_start_offset),
    };
    let aborted = match isolation {
        IsolationLevel::ReadUncommitted => None,
        IsolationLevel::ReadCommitted => Some(AbortedTransactions::new(
            data.aborted_transactions
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.producer_id.0, t.first_offset)),
        )),
    };
    Outcome::Data(chunk(
        data.records.unwrap_or_default(),
        fetch_offset,
        marks,
        aborted,
        options,
    ))
}

/// Frames `records` into a [`Chunk`]; `aborted` is `Some` for read_committed.
pub(crate) fn chunk(
    records: Bytes,
    fetch_offset: i64,
    marks: Watermarks,
    mut aborted: Option<AbortedTransactions>,
    options: &DecodeOptions,
) -> Chunk {
    let size = records.len();
    let mut next_offset = fetch_offset;
    let mut batches = VecDeque::new();
    let mut error = None;
    let mut complete = 0usize;
    for item in RecordBatches::new(records, *options) {
        let batch = match item {
            Ok(batch) => batch,
            Err(source) => {
                error = Some(ChunkError::Corrupt {
                    offset: next_offset,
                    source,
                });
                break;
            }
        };
        complete += 1;
        if let Some(aborted) = aborted.as_mut() {
            match aborted.should_skip(&batch) {
                Ok(false) => {}
                Ok(true) => {
                    next_offset = next_offset.max(batch.next_offset());
                    continue;
                }
                Err(source) => {
                    error = Some(ChunkError::Corrupt {
                        offset: next_offset,
                        source,
                    });
                    break;
                }
            }
        }
        let below = batch.next_offset() <= fetch_offset;
        next_offset = next_offset.max(batch.next_offset());
        if batch.is_control() || below || batch.record_count() == 0 {
            continue;
        }
        batches.push_back(batch);
    }
    if complete == 0 && size > 0 && error.is_none() {
        error = Some(ChunkError::NoProgress {
            offset: fetch_offset,
            size,
        });
    }
    Chunk {
        batches,
        start_offset: fetch_offset,
        next_offset,
        marks,
        bytes: size,
        error,
    }
}
