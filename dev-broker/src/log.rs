//! One partition's log: the record batches as produced (offsets assigned by rewriting the batch
//! header, nothing re-encoded), retention (bytes, age, compaction, which re-encodes only the
//! batches it shrinks) that advances the log start offset, reads by offset and by timestamp, and
//! the idempotent producers' sequence state for the partition.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use mephisto_wire::record::header::TIMESTAMP_TYPE_MASK;
use mephisto_wire::record::{
    BatchEncoder, BatchSpec, DecodeOptions, NewHeader, NewRecord, RecordBatch,
};

/// Byte positions in a v2 batch header (see `mephisto_wire::record::header`).
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const MAX_TIMESTAMP_AT: usize = 35;

/// How many recent batches per producer and partition are remembered for duplicate detection
/// (Kafka keeps five, matching `max.in.flight.requests.per.connection`).
const PRODUCER_BATCH_CACHE: usize = 5;

/// How a partition sheds data (the topic's `cleanup.policy`, `retention.bytes`,
/// `retention.ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retention {
    /// Bytes kept per partition (always enforced: memory stays bounded).
    pub bytes: u64,
    /// Age after which batches go (`delete` policy only), in milliseconds.
    pub ms: Option<i64>,
    /// `delete` in the cleanup policy.
    pub delete: bool,
    /// `compact` in the cleanup policy: over `bytes`, superseded records go first.
    pub compact: bool,
}

impl Retention {
    /// Delete policy, `bytes` per partition, no time limit.
    pub fn bytes(bytes: u64) -> Self {
        Self {
            bytes,
            ms: None,
            delete: true,
            compact: false,
        }
    }
}

/// One stored batch.
#[derive(Debug, Clone)]
pub(crate) struct StoredBatch {
    /// Offset of its first record.
    pub base_offset: i64,
    /// Offset after its last record.
    pub next_offset: i64,
    /// Largest timestamp in the batch (the log-append time for such batches).
    pub max_timestamp: i64,
    /// The batch bytes as served by Fetch.
    pub bytes: Bytes,
}

/// What the log remembers about one batch of an idempotent producer.
#[derive(Debug, Clone, Copy)]
struct SeqEntry {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    log_append_time: i64,
}

/// Sequence state of one producer id on this partition.
#[derive(Debug, Clone, Default)]
struct ProducerSeq {
    epoch: i16,
    recent: VecDeque<SeqEntry>,
}

/// The outcome of a successful append (or of a recognised duplicate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    /// Offset given to the first record.
    pub base_offset: i64,
    /// The log-append time stamped into the batch, or -1 for create-time topics.
    pub log_append_time: i64,
}

/// One partition.
#[derive(Debug, Default)]
pub(crate) struct PartitionLog {
    batches: VecDeque<StoredBatch>,
    bytes: u64,
    log_start: i64,
    high_watermark: i64,
    producers: BTreeMap<i64, ProducerSeq>,
}

/// The sequence number after `seq` (sequences wrap from `i32::MAX` to 0).
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl PartitionLog {
    /// First offset still stored.
    pub fn log_start(&self) -> i64 {
        self.log_start
    }

    /// Offset the next record will get (everything is committed at once: one replica).
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Validates and appends one batch produced to this partition.
    ///
    /// `batch` is the validated batch as received; `log_append_time` is `Some(now)` when the
    /// topic stamps the append time. Idempotent batches are checked against the producer's
    /// sequence state first; a batch already in the log returns its original offset.
    pub fn append(
        &mut self,
        batch: &RecordBatch,
        log_append_time: Option<i64>,
        retention: &Retention,
        now_ms: i64,
    ) -> Result<Appended, ResponseError> {
        let records = i64::from(batch.last_offset_delta()) + 1;
        let producer_id = batch.producer_id();
        if batch.has_producer_id() {
            let first_seq = batch.base_sequence();
            let last_seq = i32::try_from(
                (i64::from(first_seq) + i64::from(batch.last_offset_delta())) % (1i64 << 31),
            )
            .map_err(|_| ResponseError::InvalidRecord)?;
            let epoch = batch.producer_epoch();
            let state = self.producers.entry(producer_id).or_default();
            if state.recent.is_empty() || epoch > state.epoch {
                if first_seq != 0 {
                    return Err(ResponseError::OutOfOrderSequenceNumber);
                }
                state.epoch = epoch;
                state.recent.clear();
            } else if epoch < state.epoch {
                return Err(ResponseError::InvalidProducerEpoch);
            } else {
                if let Some(dup) = state
                    .recent
                    .iter()
                    .find(|e| e.first_seq == first_seq && e.last_seq == last_seq)
                {
                    return Ok(Appended {
                        base_offset: dup.base_offset,
                        log_append_time: dup.log_append_time,
                    });
                }
                let last = state.recent.back().map_or(-1, |e| e.last_seq);
                if first_seq != next_seq(last) {
                    let oldest = state.recent.front().map_or(0, |e| e.first_seq);
                    return Err(if first_seq >= oldest && first_seq <= last {
                        ResponseError::DuplicateSequenceNumber
                    } else {
                        ResponseError::OutOfOrderSequenceNumber
                    });
                }
            }
        }

        let base_offset = self.high_watermark;
        let mut bytes = BytesMut::from(batch.as_bytes().as_ref());
        let header = bytes
            .get_mut(..MAX_TIMESTAMP_AT + 8)
            .ok_or(ResponseError::CorruptMessage)?;
        header[..8].copy_from_slice(&base_offset.to_be_bytes());
        header[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
            .copy_from_slice(&0i32.to_be_bytes());
        let mut max_timestamp = batch.max_timestamp();
        if let Some(now) = log_append_time {
            stamp_log_append_time(&mut bytes, batch.attributes(), now);
            max_timestamp = now;
        }
        let bytes = bytes.freeze();
        self.bytes = self.bytes.saturating_add(bytes.len() as u64);
        self.batches.push_back(StoredBatch {
            base_offset,
            next_offset: base_offset + records,
            max_timestamp,
            bytes,
        });
        self.high_watermark = base_offset + records;
        if batch.has_producer_id() {
            let state = self.producers.entry(producer_id).or_default();
            state.recent.push_back(SeqEntry {
                first_seq: batch.base_sequence(),
                last_seq: i32::try_from(
                    (i64::from(batch.base_sequence()) + i64::from(batch.last_offset_delta()))
                        % (1i64 << 31),
                )
                .unwrap_or(i32::MAX),
                base_offset,
                log_append_time: log_append_time.unwrap_or(-1),
            });
            while state.recent.len() > PRODUCER_BATCH_CACHE {
                state.recent.pop_front();
            }
        }
        self.enforce_retention(retention, now_ms);
        Ok(Appended {
            base_offset,
            log_append_time: log_append_time.unwrap_or(-1),
        })
    }

    /// Applies `retention`: batches older than `retention.ms` go (delete policy); over
    /// `retention.bytes`, a compacted log is compacted first and, if that did not free a quarter
    /// of the budget, loses its oldest batches like a delete log (memory stays bounded, at the
    /// price of keys). The newest batch always stays, like Kafka's active segment.
    pub fn enforce_retention(&mut self, retention: &Retention, now_ms: i64) {
        if let (true, Some(ms)) = (retention.delete, retention.ms) {
            let horizon = now_ms.saturating_sub(ms);
            while self.batches.len() > 1
                && self
                    .batches
                    .front()
                    .is_some_and(|b| b.max_timestamp < horizon)
            {
                self.drop_oldest();
            }
        }
        if self.bytes <= retention.bytes {
            return;
        }
        let target = if retention.compact {
            self.compact();
            retention.bytes / 4 * 3
        } else {
            retention.bytes
        };
        while self.bytes > target && self.batches.len() > 1 {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(dropped) = self.batches.pop_front() {
            self.bytes = self.bytes.saturating_sub(dropped.bytes.len() as u64);
            self.log_start = self
                .batches
                .front()
                .map_or(self.high_watermark, |b| b.base_offset)
                .max(self.log_start);
        }
    }

    /// Keeps, in every batch but the newest, only the records whose key has no later record in
    /// the log (tombstones included). Offsets are unchanged; batches left empty go.
    fn compact(&mut self) {
        let mut latest: HashMap<Bytes, i64> = HashMap::new();
        for batch in &self.batches {
            for (offset, key) in record_keys(batch) {
                latest.insert(key, offset);
            }
        }
        let newest = self.batches.len().saturating_sub(1);
        let old = std::mem::take(&mut self.batches);
        for (i, batch) in old.into_iter().enumerate() {
            if i == newest {
                self.batches.push_back(batch);
                continue;
            }
            match rewrite(&batch, &latest) {
                Rewrite::Keep => self.batches.push_back(batch),
                Rewrite::Drop => {}
                Rewrite::Replace(new) => self.batches.push_back(new),
            }
        }
        self.bytes = self.batches.iter().map(|b| b.bytes.len() as u64).sum();
    }

    /// Batches from the one holding `offset`, as long as their total stays within `max_bytes`;
    /// with `at_least_one`, the first batch is returned even if it alone is larger.
    ///
    /// The caller has checked `log_start <= offset < high_watermark`.
    pub fn read(&self, offset: i64, max_bytes: usize, at_least_one: bool) -> Vec<Bytes> {
        let first = self.batches.partition_point(|b| b.next_offset <= offset);
        let mut out = Vec::new();
        let mut total = 0usize;
        for batch in self.batches.iter().skip(first) {
            let size = batch.bytes.len();
            if total.saturating_add(size) > max_bytes && !(out.is_empty() && at_least_one) {
                break;
            }
            total = total.saturating_add(size);
            out.push(batch.bytes.clone());
        }
        out
    }

    /// The first offset whose record timestamp is at least `timestamp`, with that timestamp
    /// (ListOffsets by time), or `None`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<(i64, i64)> {
        let batch = self.batches.iter().find(|b| b.max_timestamp >= timestamp)?;
        Some(
            record_offsets(batch)
                .into_iter()
                .find(|&(_, ts)| ts >= timestamp)
                .unwrap_or((batch.base_offset, batch.max_timestamp)),
        )
    }

    /// The offset of the record with the largest timestamp (the first such record), with the
    /// timestamp (ListOffsets `MAX_TIMESTAMP`), or `None` for an empty log.
    pub fn offset_of_max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<&StoredBatch> = None;
        for batch in &self.batches {
            if best.is_none_or(|b| batch.max_timestamp > b.max_timestamp) {
                best = Some(batch);
            }
        }
        let batch = best?;
        Some(
            record_offsets(batch)
                .into_iter()
                .find(|&(_, ts)| ts >= batch.max_timestamp)
                .unwrap_or((batch.base_offset, batch.max_timestamp)),
        )
    }
}

/// `(offset, timestamp)` of every record of a stored batch (empty if it cannot be read, which
/// cannot happen for a batch validated on the way in).
fn record_offsets(batch: &StoredBatch) -> Vec<(i64, i64)> {
    let Ok(parsed) = RecordBatch::parse(batch.bytes.clone(), &DecodeOptions::default()) else {
        return Vec::new();
    };
    let log_append = parsed.attributes() & TIMESTAMP_TYPE_MASK != 0;
    let Ok(records) = parsed.records() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for record in &records {
        let Ok(record) = record else { break };
        let ts = if log_append {
            batch.max_timestamp
        } else {
            record.timestamp()
        };
        out.push((record.offset(), ts));
    }
    out
}

/// Sets the log-append-time attribute and max timestamp of the batch in `bytes` and its CRC.
fn stamp_log_append_time(bytes: &mut [u8], attributes: i16, now: i64) {
    let attributes = attributes | TIMESTAMP_TYPE_MASK;
    if let Some(slot) = bytes.get_mut(ATTRIBUTES_AT..ATTRIBUTES_AT + 2) {
        slot.copy_from_slice(&attributes.to_be_bytes());
    }
    if let Some(slot) = bytes.get_mut(MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8) {
        slot.copy_from_slice(&now.to_be_bytes());
    }
    let crc = crc32c::crc32c(bytes.get(ATTRIBUTES_AT..).unwrap_or_default());
    if let Some(slot) = bytes.get_mut(CRC_AT..CRC_AT + 4) {
        slot.copy_from_slice(&crc.to_be_bytes());
    }
}

/// `(offset, key)` of every keyed record of a stored batch.
fn record_keys(batch: &StoredBatch) -> Vec<(i64, Bytes)> {
    let Ok(parsed) = RecordBatch::parse(batch.bytes.clone(), &DecodeOptions::default()) else {
        return Vec::new();
    };
    let Ok(records) = parsed.records() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for record in &records {
        let Ok(record) = record else { break };
        if let Some(key) = record.key() {
            out.push((record.offset(), Bytes::copy_from_slice(key)));
        }
    }
    out
}

/// What compaction does with one batch.
enum Rewrite {
    /// Nothing in it is superseded (or it cannot be re-encoded): keep it as is.
    Keep,
    /// Everything in it is superseded.
    Drop,
    /// Some records remain: this re-encoded batch, with the same offsets.
    Replace(StoredBatch),
}

/// The batch without its superseded records (keyless records stay).
fn rewrite(batch: &StoredBatch, latest: &HashMap<Bytes, i64>) -> Rewrite {
    let Ok(parsed) = RecordBatch::parse(batch.bytes.clone(), &DecodeOptions::default()) else {
        return Rewrite::Keep;
    };
    let Ok(records) = parsed.records() else {
        return Rewrite::Keep;
    };
    let mut kept = Vec::new();
    let mut removed = false;
    for record in &records {
        let Ok(record) = record else {
            return Rewrite::Keep;
        };
        let live = match record.key() {
            Some(key) => latest.get(key) == Some(&record.offset()),
            None => true,
        };
        if live {
            kept.push(record.to_record());
        } else {
            removed = true;
        }
    }
    if !removed {
        return Rewrite::Keep;
    }
    if kept.is_empty() {
        return Rewrite::Drop;
    }
    let header = parsed.header();
    let spec = BatchSpec {
        base_offset: parsed.base_offset(),
        partition_leader_epoch: 0,
        compression: parsed.compression(),
        timestamp_type: parsed.timestamp_type(),
        transactional: false,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
    };
    let mut out = Vec::new();
    let mut encoder = BatchEncoder::new();
    let mut writer = encoder.writer(&spec, &mut out);
    for record in &kept {
        let headers: Vec<(String, Option<Vec<u8>>)> = record
            .headers()
            .map(|h| {
                (
                    String::from_utf8_lossy(h.key()).into_owned(),
                    h.value().map(<[u8]>::to_vec),
                )
            })
            .collect();
        let new_headers: Vec<NewHeader<'_>> = headers
            .iter()
            .map(|(key, value)| NewHeader {
                key,
                value: value.as_deref(),
            })
            .collect();
        let new = NewRecord::new(record.key(), record.value(), record.timestamp())
            .with_headers(&new_headers);
        if writer.append_at(record.offset_delta(), &new).is_err() {
            return Rewrite::Keep;
        }
    }
    if writer
        .set_last_offset_delta(parsed.last_offset_delta())
        .is_err()
    {
        return Rewrite::Keep;
    }
    if writer.finish().is_err() {
        return Rewrite::Keep;
    }
    if parsed.attributes() & TIMESTAMP_TYPE_MASK != 0 {
        stamp_log_append_time(&mut out, parsed.attributes(), batch.max_timestamp);
    }
    Rewrite::Replace(StoredBatch {
        base_offset: batch.base_offset,
        next_offset: batch.next_offset,
        max_timestamp: batch.max_timestamp,
        bytes: Bytes::from(out),
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use mephisto_wire::record::{BatchEncoder, BatchSpec, NewRecord};

    use super::*;

    /// A batch of `count` records from producer 7 epoch `epoch` starting at `seq` (-1: none),
    /// timestamps `ts, ts+1, ...`.
    fn batch(seq: i32, epoch: i16, count: usize, ts: i64) -> RecordBatch {
        let spec = BatchSpec {
            producer_id: if seq < 0 { -1 } else { 7 },
            producer_epoch: if seq < 0 { -1 } else { epoch },
            base_sequence: seq,
            ..BatchSpec::default()
        };
        let values: Vec<String> = (0..count).map(|i| format!("v{i}")).collect();
        let records: Vec<NewRecord<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| NewRecord::new(None, Some(v.as_bytes()), ts + i as i64))
            .collect();
        let mut out = Vec::new();
        BatchEncoder::new()
            .encode(&spec, &records, &mut out)
            .expect("encode");
        RecordBatch::parse(Bytes::from(out), &DecodeOptions::default()).expect("parse")
    }

    #[test]
    fn sequences_are_checked_and_duplicates_return_the_original_offset() {
        let mut log = PartitionLog::default();
        let first = log
            .append(&batch(0, 0, 3, 100), None, &Retention::bytes(u64::MAX), 0)
            .expect("first");
        assert_eq!(first.base_offset, 0);
        let second = log
            .append(&batch(3, 0, 2, 100), None, &Retention::bytes(u64::MAX), 0)
            .expect("second");
        assert_eq!(second.base_offset, 3);
        // A retry of the first batch: success with its original offset, nothing appended.
        let dup = log
            .append(&batch(0, 0, 3, 100), None, &Retention::bytes(u64::MAX), 0)
            .expect("duplicate");
        assert_eq!(dup.base_offset, 0);
        assert_eq!(log.high_watermark(), 5);
        // A gap.
        assert_eq!(
            log.append(&batch(9, 0, 1, 100), None, &Retention::bytes(u64::MAX), 0),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        // Overlapping but not identical: a duplicate of something half-known.
        assert_eq!(
            log.append(&batch(1, 0, 1, 100), None, &Retention::bytes(u64::MAX), 0),
            Err(ResponseError::DuplicateSequenceNumber)
        );
        // An older epoch is fenced; a newer one must start at 0.
        assert_eq!(
            log.append(&batch(5, 0, 1, 100), None, &Retention::bytes(u64::MAX), 0)
                .map(|a| a.base_offset),
            Ok(5)
        );
        assert_eq!(
            log.append(&batch(3, 1, 1, 100), None, &Retention::bytes(u64::MAX), 0),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            log.append(&batch(0, 1, 1, 100), None, &Retention::bytes(u64::MAX), 0)
                .map(|a| a.base_offset),
            Ok(6)
        );
        assert_eq!(
            log.append(&batch(6, 0, 1, 100), None, &Retention::bytes(u64::MAX), 0),
            Err(ResponseError::InvalidProducerEpoch)
        );
        // A first batch of an unknown producer must start at 0.
        let mut fresh = PartitionLog::default();
        assert_eq!(
            fresh.append(&batch(4, 0, 1, 100), None, &Retention::bytes(u64::MAX), 0),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn offsets_are_rewritten_and_reads_respect_limits_and_retention() {
        let mut log = PartitionLog::default();
        let mut sizes = Vec::new();
        for i in 0..10 {
            log.append(
                &batch(-1, 0, 4, 1000 + i * 10),
                None,
                &Retention::bytes(u64::MAX),
                0,
            )
            .expect("append");
            sizes.push(log.read(i * 4, usize::MAX, true)[0].len());
        }
        assert_eq!(log.high_watermark(), 40);
        let all = log.read(0, usize::MAX, true);
        assert_eq!(all.len(), 10);
        for (i, bytes) in all.iter().enumerate() {
            let parsed =
                RecordBatch::parse(bytes.clone(), &DecodeOptions::default()).expect("stored");
            assert_eq!(
                parsed.base_offset(),
                i as i64 * 4,
                "base offset rewritten, CRC intact"
            );
        }
        // Reading from the middle of a batch starts at that batch.
        assert_eq!(log.read(6, usize::MAX, true).len(), 9);
        // Byte limits, and at least one batch.
        assert_eq!(log.read(0, sizes[0] * 2, true).len(), 2);
        assert_eq!(log.read(0, 1, true).len(), 1);
        assert!(log.read(0, 1, false).is_empty());
        // By timestamp: batch i holds 1000 + 10 i .. + 3.
        assert_eq!(log.offset_for_timestamp(1032), Some((14, 1032)));
        assert_eq!(log.offset_for_timestamp(1035), Some((16, 1040)));
        assert_eq!(log.offset_for_timestamp(5000), None);
        assert_eq!(log.offset_of_max_timestamp(), Some((39, 1093)));
        // Retention: keep about three batches.
        let keep = (sizes[0] * 3) as u64;
        log.append(&batch(-1, 0, 4, 2000), None, &Retention::bytes(keep), 0)
            .expect("append");
        assert_eq!(log.log_start(), 32);
        assert_eq!(log.read(32, usize::MAX, true).len(), 3);
    }

    #[test]
    fn log_append_time_is_stamped_with_a_valid_crc() {
        let mut log = PartitionLog::default();
        let appended = log
            .append(
                &batch(-1, 0, 2, 5),
                Some(123_456),
                &Retention::bytes(u64::MAX),
                0,
            )
            .expect("append");
        assert_eq!(appended.log_append_time, 123_456);
        let stored = log.read(0, usize::MAX, true).remove(0);
        let parsed = RecordBatch::parse(stored, &DecodeOptions::default()).expect("CRC valid");
        assert_eq!(parsed.max_timestamp(), 123_456);
        assert_ne!(parsed.attributes() & TIMESTAMP_TYPE_MASK, 0);
    }

    fn keyed(records: &[(&str, Option<&str>)], ts: i64) -> RecordBatch {
        let news: Vec<NewRecord<'_>> = records
            .iter()
            .map(|(k, v)| NewRecord::new(Some(k.as_bytes()), v.map(str::as_bytes), ts))
            .collect();
        let mut out = Vec::new();
        BatchEncoder::new()
            .encode(&BatchSpec::default(), &news, &mut out)
            .expect("encode");
        RecordBatch::parse(Bytes::from(out), &DecodeOptions::default()).expect("parse")
    }

    /// `(offset, key, value)` of everything stored.
    fn contents(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
        let mut out = Vec::new();
        for bytes in log.read(log.log_start(), usize::MAX, true) {
            let batch = RecordBatch::parse(bytes, &DecodeOptions::default()).expect("valid");
            for r in &batch.records().expect("records") {
                let r = r.expect("record");
                out.push((
                    r.offset(),
                    String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned(),
                    r.value().map(|v| String::from_utf8_lossy(v).into_owned()),
                ));
            }
        }
        out
    }

    #[test]
    fn compaction_keeps_the_latest_value_of_every_key_at_its_offset() {
        let one = keyed(&[("a", Some("0")), ("b", Some("0"))], 10).size_in_bytes() as u64;
        let retention = Retention {
            bytes: one * 6,
            ms: None,
            delete: false,
            compact: true,
        };
        let mut log = PartitionLog::default();
        log.append(&keyed(&[("early", Some("x"))], 5), None, &retention, 0)
            .expect("append");
        for round in 0..40 {
            let v = round.to_string();
            let c_value = if round == 20 { None } else { Some(v.as_str()) };
            log.append(
                &keyed(
                    &[
                        ("a", Some(v.as_str())),
                        ("b", Some(v.as_str())),
                        ("c", c_value),
                    ],
                    10,
                ),
                None,
                &retention,
                0,
            )
            .expect("append");
        }
        assert_eq!(log.high_watermark(), 121);
        assert!(log.bytes <= retention.bytes, "{} bytes", log.bytes);
        let got = contents(&log);
        assert!(got.len() < 60, "compacted: {} records left", got.len());
        // The key written once survives at its offset, and every key reads its last value.
        assert_eq!(
            got.first(),
            Some(&(0, "early".to_owned(), Some("x".to_owned())))
        );
        let mut last: BTreeMap<String, Option<String>> = BTreeMap::new();
        for (_, key, value) in &got {
            last.insert(key.clone(), value.clone());
        }
        let want: BTreeMap<String, Option<String>> = [
            ("a", Some("39")),
            ("b", Some("39")),
            ("c", Some("39")),
            ("early", Some("x")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
        .collect();
        assert_eq!(last, want);
        let offsets: Vec<i64> = got.iter().map(|g| g.0).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        assert_eq!(log.log_start(), 0, "nothing live was dropped");
        // Fetching from the start lands on the first remaining batch.
        assert!(!log.read(0, usize::MAX, true).is_empty());
    }

    #[test]
    fn time_retention_drops_old_batches() {
        let retention = Retention {
            bytes: u64::MAX,
            ms: Some(1000),
            delete: true,
            compact: false,
        };
        let mut log = PartitionLog::default();
        for i in 0..10 {
            log.append(&batch(-1, 0, 1, i * 1000), None, &retention, 0)
                .expect("append");
        }
        log.enforce_retention(&retention, 6500);
        // Batches whose newest record is older than 5500 are gone: 0..=5.
        assert_eq!(log.log_start(), 6);
        assert_eq!(log.high_watermark(), 10);
        log.enforce_retention(&retention, 1_000_000);
        assert_eq!(log.log_start(), 9, "the newest batch stays");
    }
}
