//! Idempotence bookkeeping: the producer id and epoch from InitProducerId, the next sequence of
//! every partition, and which batches of a partition are unacknowledged, in sequence order.
//!
//! # Rules (protocol notes §5.2, Java `TransactionManager`)
//! - Every batch carries the producer id, the epoch and the sequence of its first record; the
//!   next batch of the partition starts at `base + record_count`. Sequences are int32 and wrap
//!   from `i32::MAX` to 0 (Java `DefaultRecordBatch.incrementSequence`), not to `i32::MIN`.
//! - The broker keeps the last 5 batches per producer and partition, so at most 5 may be
//!   unacknowledged at once: the sender limits in-flight Produce requests per broker to
//!   `max_in_flight <= 5` and puts at most one batch per partition in a request.
//! - A retried batch is resent with the same sequence (the same bytes), so a batch the broker
//!   already has is not written twice.
//!
//! # Error codes ([`classify`])
//! - `DUPLICATE_SEQUENCE_NUMBER` (46): the broker already has this batch; it is a success.
//! - `OUT_OF_ORDER_SEQUENCE_NUMBER` (45) on a batch that is *not* the partition's first
//!   unacknowledged one: an earlier batch failed and is being retried; this one is retried after
//!   it. On the first unacknowledged batch it means the broker lost records it had acknowledged
//!   (unclean leader election): the batch fails with `OutOfOrderSequence` and the producer takes
//!   a new identity.
//! - `UNKNOWN_PRODUCER_ID` (59): the broker no longer has state for our producer id (its records
//!   were deleted by retention). The producer takes a new identity (a new InitProducerId; every
//!   partition's sequence restarts at 0) and retries the batch under it.
//! - `INVALID_PRODUCER_EPOCH` (47) and `PRODUCER_FENCED` (90): the batch fails, and the producer
//!   takes a new identity for the batches after it.
//!
//! "A new identity" happens once nothing is in flight: the sender stops draining, waits for every
//! outstanding response, asks for a new producer id, then restamps the queued batches (producer
//! id, epoch, fresh sequences from 0 in their old order) with [`restamp`]. Java 2.5+ bumps the
//! epoch of the same producer id instead (KIP-360); a new id is equivalent for a producer
//! without a transactional id.

use std::collections::{HashMap, VecDeque};

use crate::producer::topic_partition::TopicPartition;

/// Producer id and epoch from InitProducerId.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerIdentity {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub epoch: i16,
}

/// `sequence + increment` with Java's wrap: past `i32::MAX` it continues from 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Kafka error codes the producer handles specially.
pub mod codes {
    /// No error.
    pub const NONE: i16 = 0;
    /// The request or batch is larger than the broker accepts.
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    /// The broker is not the leader (any more).
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// A sequence gap: an earlier batch is missing.
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    /// The broker already has this batch.
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    /// The producer epoch is stale.
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// The broker has no state for the producer id.
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    /// Another producer took over the (transactional) id.
    pub const PRODUCER_FENCED: i16 = 90;
}

/// What the sender does with one partition's answer to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The batch is written (or was already: a duplicate).
    Success,
    /// Retry the batch; `refresh_metadata` when leadership may have moved.
    Retry {
        /// Whether the partition's leader should be looked up again first.
        refresh_metadata: bool,
    },
    /// Take a new producer identity, then retry the batch under it.
    ResetAndRetry,
    /// Fail the batch; `reset` when the producer must also take a new identity.
    Fail {
        /// Whether to take a new producer identity for later batches.
        reset: bool,
    },
}

/// Sorts a partition-level error code of a Produce response.
///
/// `idempotent` says whether the batch carried a producer id; `first_unacked` whether it is the
/// partition's oldest unacknowledged batch.
pub fn classify(code: i16, idempotent: bool, first_unacked: bool) -> Outcome {
    use kafka_protocol::error::ResponseError;
    match code {
        codes::NONE | codes::DUPLICATE_SEQUENCE_NUMBER => Outcome::Success,
        codes::OUT_OF_ORDER_SEQUENCE_NUMBER if idempotent => {
            if first_unacked {
                Outcome::Fail { reset: true }
            } else {
                Outcome::Retry {
                    refresh_metadata: false,
                }
            }
        }
        codes::UNKNOWN_PRODUCER_ID if idempotent => Outcome::ResetAndRetry,
        codes::INVALID_PRODUCER_EPOCH | codes::PRODUCER_FENCED => {
            Outcome::Fail { reset: idempotent }
        }
        // Kafka marks it retriable, but a retry sends the same bytes again: Java splits the
        // batch instead, which we do not (the default batch_size stays below the broker limit).
        codes::MESSAGE_TOO_LARGE => Outcome::Fail { reset: false },
        other => match ResponseError::try_from_code(other) {
            Some(err) if err.is_retriable() => Outcome::Retry {
                refresh_metadata: needs_metadata(other),
            },
            _ => Outcome::Fail { reset: false },
        },
    }
}

/// Whether a retriable error means the partition's leader should be looked up again.
pub fn needs_metadata(code: i16) -> bool {
    // UNKNOWN_TOPIC_OR_PARTITION 3, LEADER_NOT_AVAILABLE 5, NOT_LEADER_OR_FOLLOWER 6,
    // KAFKA_STORAGE_ERROR 56, FENCED_LEADER_EPOCH 74, UNKNOWN_LEADER_EPOCH 75.
    matches!(code, 3 | 5 | 6 | 56 | 74 | 75)
}

/// One partition's sequence state.
#[derive(Debug, Default, Clone)]
struct PartitionSequence {
    /// Sequence of the next new batch.
    next: i32,
    /// Base sequences of batches that have a sequence and are not acknowledged yet, in
    /// sequence order.
    unacked: VecDeque<i32>,
}

/// Producer identity and per-partition sequences; see the module docs.
#[derive(Debug, Default, Clone)]
pub struct SequenceTracker {
    identity: Option<ProducerIdentity>,
    partitions: HashMap<TopicPartition, PartitionSequence>,
}

impl SequenceTracker {
    /// No identity yet: batches are sent without producer id.
    pub fn new() -> Self {
        SequenceTracker::default()
    }

    /// The current identity, if the producer is idempotent.
    pub fn identity(&self) -> Option<ProducerIdentity> {
        self.identity
    }

    /// Adopts a new identity (or none); every partition's sequence restarts at 0 and nothing is
    /// unacknowledged. Queued batches that already had sequences must be restamped by the
    /// caller, in order, through [`assign`](Self::assign).
    pub fn reset(&mut self, identity: Option<ProducerIdentity>) {
        self.identity = identity;
        self.partitions.clear();
    }

    /// Gives a batch of `record_count` records of `tp` its base sequence and records it as
    /// unacknowledged. `None` without identity.
    pub fn assign(&mut self, tp: &TopicPartition, record_count: i32) -> Option<i32> {
        self.identity?;
        let state = self.partitions.entry(tp.clone()).or_default();
        let base = state.next;
        state.next = increment_sequence(base, record_count.max(1));
        state.unacked.push_back(base);
        Some(base)
    }

    /// The next sequence `tp` would get.
    pub fn next_sequence(&self, tp: &TopicPartition) -> i32 {
        self.partitions.get(tp).map_or(0, |s| s.next)
    }

    /// Whether the batch of `tp` at `base` is the oldest unacknowledged one.
    pub fn is_first_unacked(&self, tp: &TopicPartition, base: i32) -> bool {
        self.partitions
            .get(tp)
            .and_then(|s| s.unacked.front())
            .is_some_and(|&first| first == base)
    }

    /// Unacknowledged batches of `tp`.
    pub fn unacked(&self, tp: &TopicPartition) -> usize {
        self.partitions.get(tp).map_or(0, |s| s.unacked.len())
    }

    /// The batch of `tp` at `base` is done (acknowledged or failed for good).
    pub fn complete(&mut self, tp: &TopicPartition, base: i32) {
        if let Some(state) = self.partitions.get_mut(tp) {
            if let Some(pos) = state.unacked.iter().position(|&s| s == base) {
                state.unacked.remove(pos);
            }
        }
    }
}

/// Rewrites the producer id, epoch and base sequence of an encoded v2 batch and its CRC
/// (the wire crate's [`restamp_producer`](mephisto_wire::record::restamp_producer)).
///
/// Returns `false` (leaving `batch` unchanged) if `batch` is shorter than a batch header.
pub fn restamp(batch: &mut [u8], identity: ProducerIdentity, base_sequence: i32) -> bool {
    mephisto_wire::record::restamp_producer(
        batch,
        identity.producer_id,
        identity.epoch,
        base_sequence,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mephisto_wire::record::{BatchEncoder, BatchSpec, DecodeOptions, NewRecord, RecordBatch};

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn sequence_wraps_to_zero_like_java() {
        assert_eq!(increment_sequence(0, 5), 5);
        assert_eq!(increment_sequence(i32::MAX - 5, 5), i32::MAX);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(i32::MAX, i32::MAX), i32::MAX - 1);
    }

    #[test]
    fn assign_advances_and_wraps_per_partition() {
        let mut s = SequenceTracker::new();
        assert_eq!(s.assign(&tp(0), 3), None, "no identity, no sequence");
        s.reset(Some(ProducerIdentity {
            producer_id: 7,
            epoch: 0,
        }));
        assert_eq!(s.assign(&tp(0), 3), Some(0));
        assert_eq!(s.assign(&tp(0), 2), Some(3));
        assert_eq!(s.assign(&tp(1), 10), Some(0), "partitions are independent");
        assert_eq!(s.next_sequence(&tp(0)), 5);
        assert_eq!(s.unacked(&tp(0)), 2);

        // Put partition 2 near the end of the int32 range.
        s.partitions.insert(
            tp(2),
            PartitionSequence {
                next: i32::MAX - 1,
                unacked: VecDeque::new(),
            },
        );
        assert_eq!(s.assign(&tp(2), 4), Some(i32::MAX - 1));
        assert_eq!(s.next_sequence(&tp(2)), 2, "wrapped past i32::MAX to 0");
        assert_eq!(s.assign(&tp(2), 1), Some(2));
    }

    #[test]
    fn first_unacked_follows_completion_order() {
        let mut s = SequenceTracker::new();
        s.reset(Some(ProducerIdentity {
            producer_id: 1,
            epoch: 0,
        }));
        let a = s.assign(&tp(0), 1).unwrap_or(-1);
        let b = s.assign(&tp(0), 1).unwrap_or(-1);
        assert!(s.is_first_unacked(&tp(0), a));
        assert!(!s.is_first_unacked(&tp(0), b));
        s.complete(&tp(0), a);
        assert!(s.is_first_unacked(&tp(0), b));
        s.complete(&tp(0), b);
        assert_eq!(s.unacked(&tp(0)), 0);
        s.reset(Some(ProducerIdentity {
            producer_id: 2,
            epoch: 0,
        }));
        assert_eq!(
            s.next_sequence(&tp(0)),
            0,
            "a new identity restarts sequences"
        );
    }

    #[test]
    fn duplicate_is_success_and_out_of_order_depends_on_position() {
        assert_eq!(classify(0, true, true), Outcome::Success);
        assert_eq!(classify(46, true, false), Outcome::Success);
        assert_eq!(classify(45, true, true), Outcome::Fail { reset: true });
        assert_eq!(
            classify(45, true, false),
            Outcome::Retry {
                refresh_metadata: false
            }
        );
        assert_eq!(classify(59, true, true), Outcome::ResetAndRetry);
        assert_eq!(classify(90, true, true), Outcome::Fail { reset: true });
        assert_eq!(
            classify(6, false, true),
            Outcome::Retry {
                refresh_metadata: true
            }
        );
        assert_eq!(
            classify(7, true, true),
            Outcome::Retry {
                refresh_metadata: false
            },
            "REQUEST_TIMED_OUT is retriable"
        );
        assert_eq!(classify(10, true, true), Outcome::Fail { reset: false });
        assert_eq!(classify(87, true, true), Outcome::Fail { reset: false });
    }

    #[test]
    fn restamp_rewrites_identity_and_crc() {
        let spec = BatchSpec {
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: 40,
            ..BatchSpec::default()
        };
        let mut buf = Vec::new();
        let records = [
            NewRecord::new(Some(&b"k"[..]), Some(&b"v"[..]), 1),
            NewRecord::new(None, Some(&b"w"[..]), 2),
        ];
        let encoded = BatchEncoder::new().encode(&spec, &records, &mut buf);
        assert!(encoded.is_ok());
        let identity = ProducerIdentity {
            producer_id: 99,
            epoch: 3,
        };
        assert!(restamp(&mut buf, identity, 7));
        let batch = RecordBatch::parse(Bytes::from(buf), &DecodeOptions::default());
        let batch = match batch {
            Ok(b) => b,
            Err(e) => panic!("restamped batch does not parse: {e}"),
        };
        assert_eq!(batch.crc(), batch.compute_crc());
        assert_eq!(batch.header().producer_id, 99);
        assert_eq!(batch.header().producer_epoch, 3);
        assert_eq!(batch.header().base_sequence, 7);
        assert_eq!(batch.header().record_count, 2);
        assert!(!restamp(&mut [0u8; 10], identity, 0));
    }
}
