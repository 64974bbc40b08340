//! The replayed input topic: each partition's record batches, built once at start and sliced
//! (never re-encoded) per Fetch.

use bytes::Bytes;
use mephisto_wire::record::{BatchEncoder, BatchSpec, NewRecord};

use super::{Payload, ReplayConfig};
use crate::{pipeline_workload, workload};

/// One partition of the replayed log: its batches back to back, and where each one is.
#[derive(Debug)]
pub(super) struct PartitionLog {
    pub(super) data: Bytes,
    /// (last offset, end byte) of each batch, in order; batch `i` starts where `i - 1` ends.
    pub(super) batches: Vec<(i64, usize)>,
    pub(super) end_offset: i64,
}

impl PartitionLog {
    /// The batches from the one holding `offset` on, within `limit` bytes (but at least one
    /// batch if `at_least_one`).
    pub(super) fn read(&self, offset: i64, limit: usize, at_least_one: bool) -> Bytes {
        let first = self.batches.partition_point(|&(last, _)| last < offset);
        let start = match first.checked_sub(1) {
            Some(prev) => self.batches.get(prev).map_or(0, |&(_, end)| end),
            None => 0,
        };
        let mut end = start;
        for &(_, batch_end) in self.batches.iter().skip(first) {
            let fits = batch_end - start <= limit;
            if fits || (end == start && at_least_one) {
                end = batch_end;
            }
            if !fits {
                break;
            }
        }
        self.data.slice(start..end)
    }
}

/// Key and value of record `i` of the topic.
fn record(payload: Payload, i: u64) -> (Option<Vec<u8>>, Vec<u8>) {
    match payload {
        Payload::Client => (Some(workload::key(i).to_vec()), workload::value(i).to_vec()),
        Payload::Pipeline => (None, pipeline_workload::value(i)),
    }
}

/// Builds partition `p`'s log: its records in batches of `config.records_per_batch`.
pub(super) fn build_log(config: &ReplayConfig, p: u32) -> std::io::Result<PartitionLog> {
    let partitions = config.partitions.max(1);
    let count = config.records / u64::from(partitions)
        + u64::from(u64::from(p) < config.records % u64::from(partitions));
    let per_batch = config.records_per_batch.max(1);
    let mut encoder = BatchEncoder::new();
    let mut data = Vec::new();
    let mut batches = Vec::new();
    let mut offset = 0u64;
    let mut rows = Vec::with_capacity(per_batch);
    while offset < count {
        let n = (count - offset).min(per_batch as u64);
        rows.clear();
        for o in offset..offset + n {
            let i = workload::record_index(p as i32, o as i64, partitions);
            let (key, value) = record(config.payload, i);
            rows.push((key, value, workload::timestamp(i)));
        }
        let records: Vec<NewRecord<'_>> = rows
            .iter()
            .map(|(k, v, ts)| NewRecord::new(k.as_deref(), Some(v), *ts))
            .collect();
        let spec = BatchSpec {
            base_offset: offset as i64,
            partition_leader_epoch: 0,
            compression: config.compression,
            ..BatchSpec::default()
        };
        encoder
            .encode(&spec, &records, &mut data)
            .map_err(std::io::Error::other)?;
        offset += n;
        batches.push((offset as i64 - 1, data.len()));
    }
    Ok(PartitionLog {
        data: Bytes::from(data),
        batches,
        end_offset: count as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mephisto_wire::compression::Compression;
    use mephisto_wire::record::{DecodeOptions, RecordBatches};

    fn config(payload: Payload) -> ReplayConfig {
        ReplayConfig {
            topic: "t".into(),
            partitions: 3,
            records: 1000,
            records_per_batch: 64,
            compression: Compression::None,
            trace: false,
            payload,
            sum_values: false,
        }
    }

    /// Every record of every partition, as (partition, offset, key, value).
    fn records(config: &ReplayConfig) -> Vec<(u32, i64, Option<Bytes>, Bytes)> {
        let mut out = Vec::new();
        for p in 0..config.partitions {
            let log = build_log(config, p).unwrap();
            for batch in RecordBatches::new(log.data.clone(), DecodeOptions::default()) {
                for record in &batch.unwrap().records().unwrap() {
                    let record = record.unwrap();
                    out.push((
                        p,
                        record.offset(),
                        record.key().map(Bytes::copy_from_slice),
                        Bytes::copy_from_slice(record.value().unwrap_or_default()),
                    ));
                }
            }
            // Reads start at the batch holding the offset and respect the byte limit.
            let all = log.read(0, usize::MAX, true);
            assert_eq!(all.len(), log.data.len());
            let one = log.read(70, 1, true);
            assert_eq!(one.len(), log.batches[1].1 - log.batches[0].1);
            assert!(log.read(70, 1, false).is_empty());
            assert!(log.read(log.end_offset, usize::MAX, true).is_empty());
        }
        out
    }

    #[test]
    fn logs_hold_the_client_workload() {
        let records = records(&config(Payload::Client));
        assert_eq!(records.len(), 1000);
        let mut checksum = 0u64;
        let mut next = [0i64; 3];
        for (p, offset, key, value) in &records {
            assert_eq!(*offset, next[*p as usize]);
            next[*p as usize] += 1;
            checksum = checksum.wrapping_add(workload::touch(key.as_deref(), Some(value)));
        }
        assert_eq!(checksum, workload::expected_checksum(1000));
    }

    #[test]
    fn logs_hold_the_pipeline_workload() {
        let records = records(&config(Payload::Pipeline));
        assert_eq!(records.len(), 1000);
        let mut sum = 0i128;
        for (p, offset, key, value) in &records {
            assert!(key.is_none());
            assert_eq!(value.len(), pipeline_workload::VALUE_SIZE);
            let i = workload::record_index(*p as i32, *offset, 3);
            assert_eq!(&value[..], &pipeline_workload::value(i)[..]);
            sum += i128::from(pipeline_workload::output_sum(value).unwrap());
        }
        assert_eq!(sum, pipeline_workload::expected_sum(1000));
    }
}
