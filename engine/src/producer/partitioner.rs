//! Choosing a partition for a record.
//!
//! # Keyed records
//! `toPositive(murmur2(key)) % numPartitions`, exactly as the Java client's `BuiltInPartitioner`
//! (`Utils.murmur2`, seed `0x9747b28c`), kafka-python's `DefaultPartitioner` and librdkafka's
//! `murmur2_random` partitioner compute it, so a key lands in the same partition whichever of
//! those producers wrote it (Faust uses kafka-python's or aiokafka's copy of the same code).
//!
//! The Java quirks reproduced here:
//! - the hash is done in wrapping `int` (32-bit two's complement) arithmetic, with logical
//!   (`>>>`) shifts;
//! - Java bytes are signed, and `Utils.murmur2` masks every byte with `& 0xff` before using it,
//!   so the hash is over the unsigned byte values (a naive port that sign-extends bytes above
//!   0x7f gets different partitions for non-ASCII keys);
//! - `toPositive` is `n & 0x7fffffff`, not `abs(n)`: the two differ for every negative hash.
//!
//! # Unkeyed records: sticky partitioning (KIP-480)
//! A record without key and partition goes to the topic's current *sticky* partition, chosen at
//! random among the partitions that have a leader. When a record would have to start a new
//! batch there (the sticky partition's batch was sent, lingered out, flushed, or is full), the
//! accumulator first calls [`StickyPartitioner::on_new_batch`], which moves the topic to another
//! random partition, as the Java client's `onNewBatch` does (KIP-480). This fills one batch at a
//! time instead of spreading records thinly over every partition (round robin), which
//! gives fewer, larger batches and lower latency at low rates. We do not implement KIP-794's
//! adaptive weighting by broker queue length (Java 3.3+): the switch happens per batch, as in
//! Java 2.4 to 3.2 (librdkafka switches on a timer instead, `sticky.partitioning.linger.ms`).

use crate::producer::fast_hash::FastMap;

/// The murmur2 seed the Java client uses.
pub const MURMUR2_SEED: u32 = 0x9747_b28c;

/// Java's `Utils.murmur2(byte[])`: the 32-bit MurmurHash2 of `data` with seed `0x9747b28c`,
/// returned as Java's signed `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // `length` is a Java int: truncation to 32 bits is what Java does for arrays < 2 GiB.
    let mut h: u32 = MURMUR2_SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // Java's switch falls through from case 3 to case 1.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit (not `abs`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition of a keyed record in a topic of `num_partitions` partitions, or `None` when
/// the topic has no partitions.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> Option<i32> {
    if num_partitions <= 0 {
        return None;
    }
    Some(to_positive(murmur2(key)) % num_partitions)
}

/// The per-topic sticky partition of unkeyed records (KIP-480); see the module docs.
#[derive(Debug, Clone)]
pub struct StickyPartitioner {
    current: FastMap<String, i32>,
    rng: fastrand::Rng,
}

impl Default for StickyPartitioner {
    fn default() -> Self {
        Self::new()
    }
}

impl StickyPartitioner {
    /// A partitioner with no sticky choices yet.
    pub fn new() -> Self {
        StickyPartitioner {
            current: FastMap::default(),
            rng: fastrand::Rng::new(),
        }
    }

    /// The partition for an unkeyed record of `topic`, which has `num_partitions` partitions of
    /// which `available` have a leader (all of them are used if `available` is empty). `None`
    /// when the topic has no partitions.
    pub fn partition(
        &mut self,
        topic: &str,
        num_partitions: i32,
        available: &[i32],
    ) -> Option<i32> {
        if num_partitions <= 0 {
            return None;
        }
        if let Some(&p) = self.current.get(topic) {
            if p < num_partitions && (available.is_empty() || available.contains(&p)) {
                return Some(p);
            }
        }
        let chosen = self.pick(num_partitions, available, None);
        self.current.insert(topic.to_owned(), chosen);
        Some(chosen)
    }

    /// The batch of `topic`'s sticky partition `closed` was closed: the next unkeyed record of
    /// `topic` moves to another partition (a different one when there is more than one).
    /// Does nothing if `closed` is no longer the sticky partition.
    pub fn on_new_batch(
        &mut self,
        topic: &str,
        closed: i32,
        num_partitions: i32,
        available: &[i32],
    ) {
        if num_partitions <= 0 || self.current.get(topic) != Some(&closed) {
            return;
        }
        let chosen = self.pick(num_partitions, available, Some(closed));
        self.current.insert(topic.to_owned(), chosen);
    }

    fn pick(&mut self, num_partitions: i32, available: &[i32], avoid: Option<i32>) -> i32 {
        let in_range: Vec<i32> = available
            .iter()
            .copied()
            .filter(|&p| (0..num_partitions).contains(&p))
            .collect();
        if in_range.is_empty() {
            // No leader known anywhere: any partition (the batch waits for a leader).
            let n = num_partitions as usize;
            let mut p = self.rng.usize(..n) as i32;
            if n > 1 && Some(p) == avoid {
                p = (p + 1 + self.rng.usize(..n - 1) as i32) % num_partitions;
            }
            return p;
        }
        let candidates: Vec<i32> = match avoid {
            Some(a) if in_range.len() > 1 => in_range.into_iter().filter(|&p| p != a).collect(),
            _ => in_range,
        };
        let idx = self.rng.usize(..candidates.len());
        candidates.get(idx).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(key, Java's signed murmur2, partition of 1000)`.
    ///
    /// The first five and `abc` are the Java client's `UtilsTest.testMurmur2`; the partitions of
    /// `""`, `a`, `ab`, `abc`, `123456789` and `\0 ` among 1000 are kafka-python's
    /// `test_murmur2_java_compatibility` ("verified with KafkaProducer.partitionsFor"). The
    /// remaining rows (non-ASCII bytes, every byte value) were computed with kafka-python 3.0.12's
    /// `kafka.partitioner.default.murmur2` (`.venv`, `scripts/install-peers.sh`).
    const VECTORS: &[(&[u8], i32, i32)] = &[
        (b"21", -973_932_308, 340),
        (b"foobar", -790_332_482, 166),
        (b"a-little-bit-long-string", -985_981_536, 112),
        (b"a-little-bit-longer-string", -1_486_304_829, 819),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
            677,
        ),
        (b"abc", 479_470_107, 107),
        (b"", 275_646_681, 681),
        (b"a", -1_563_381_124, 524),
        (b"ab", 316_155_434, 434),
        (b"123456789", -1_822_237_082, 566),
        (b"\x00 ", 1_121_897_742, 742),
        (b"\xff\xfe\x80\x81", 1_055_649_942, 942),
    ];

    #[test]
    fn murmur2_matches_java_and_kafka_python() {
        for &(key, hash, partition) in VECTORS {
            assert_eq!(murmur2(key), hash, "murmur2({key:?})");
            assert_eq!(partition_for_key(key, 1000), Some(partition), "{key:?}");
        }
    }

    #[test]
    fn murmur2_of_every_byte_value() {
        // kafka-python: murmur2(bytes(range(256))) as a signed int, and its partition of 1000.
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(murmur2(&all), -1_948_347_274);
        assert_eq!(partition_for_key(&all, 1000), Some(374));
    }

    #[test]
    fn to_positive_is_a_mask_not_abs() {
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn no_partitions_no_choice() {
        assert_eq!(partition_for_key(b"k", 0), None);
        assert_eq!(StickyPartitioner::new().partition("t", 0, &[]), None);
    }

    #[test]
    fn sticky_stays_until_batch_closes_then_moves() {
        let mut s = StickyPartitioner::new();
        let first = s.partition("t", 8, &[]).unwrap_or(-1);
        assert!((0..8).contains(&first));
        for _ in 0..100 {
            assert_eq!(s.partition("t", 8, &[]), Some(first));
        }
        // Another topic has its own choice, and closing its batch does not move "t".
        let other = s.partition("u", 8, &[]).unwrap_or(-1);
        s.on_new_batch("u", other, 8, &[]);
        assert_eq!(s.partition("t", 8, &[]), Some(first));
        // A close of a partition that is not the sticky one is ignored.
        s.on_new_batch("t", (first + 1) % 8, 8, &[]);
        assert_eq!(s.partition("t", 8, &[]), Some(first));
        s.on_new_batch("t", first, 8, &[]);
        let second = s.partition("t", 8, &[]).unwrap_or(-1);
        assert_ne!(second, first, "moves to a different partition");
        assert!((0..8).contains(&second));
    }

    #[test]
    fn sticky_uses_available_partitions_and_spreads() {
        let mut s = StickyPartitioner::new();
        let available = [1, 3, 5];
        let mut seen = std::collections::BTreeSet::new();
        let mut p = s.partition("t", 6, &available).unwrap_or(-1);
        for _ in 0..200 {
            assert!(available.contains(&p), "{p}");
            seen.insert(p);
            s.on_new_batch("t", p, 6, &available);
            let next = s.partition("t", 6, &available).unwrap_or(-1);
            assert_ne!(next, p);
            p = next;
        }
        assert_eq!(seen.len(), 3, "every available partition is used");
        // The sticky partition loses its leader: the next record moves.
        let stuck = s.partition("t", 6, &available).unwrap_or(-1);
        let without: Vec<i32> = available.iter().copied().filter(|&q| q != stuck).collect();
        let moved = s.partition("t", 6, &without).unwrap_or(-1);
        assert!(without.contains(&moved));
    }

    #[test]
    fn single_partition_topic_stays_put() {
        let mut s = StickyPartitioner::new();
        assert_eq!(s.partition("t", 1, &[]), Some(0));
        s.on_new_batch("t", 0, 1, &[]);
        assert_eq!(s.partition("t", 1, &[0]), Some(0));
    }
}
