//! The records of the client benchmark, shared by every producer, consumer and the replay server
//! so that all of them agree on what the topic holds.
//!
//! Record `i` (0-based, over the whole topic) goes to partition `i % partitions` and has a
//! 16-byte key (`key-` and `i` in 12 decimal digits) and a 100-byte JSON-like value that embeds
//! `i` (compressible like real payloads). In partition `p`, offset `o` holds record
//! `o * partitions + p`.
//!
//! Consumers fold every key and value byte into a checksum with [`touch`] (a wrapping sum of
//! 8-byte words: cheap, vectorisable, and the same work for every client); the sum over the
//! whole topic must equal [`expected_checksum`], which proves that every record was delivered
//! once and read in full.

/// Bytes of each key.
pub const KEY_SIZE: usize = 16;
/// Bytes of each value.
pub const VALUE_SIZE: usize = 100;
/// Create timestamp of record 0 (ms since the epoch); record `i` has `BASE_TIMESTAMP + i / 1000`.
pub const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

const VALUE_TEMPLATE: &[u8; VALUE_SIZE] = b"{\"id\":0000000000,\"user\":\"user-00000\",\"amount\":000.00,\"tags\":[\"a\",\"b\"],\"pad\":\"abcdefghijklmnopqrstu\"}";

/// Writes `n` as `digits` decimal digits (leading zeros, high digits dropped) into `out`.
#[inline]
fn put_decimal(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The key of record `i`.
#[inline]
pub fn key(i: u64) -> [u8; KEY_SIZE] {
    let mut k = *b"key-000000000000";
    put_decimal(&mut k[4..], i);
    k
}

/// The value of record `i`.
#[inline]
pub fn value(i: u64) -> [u8; VALUE_SIZE] {
    let mut v = *VALUE_TEMPLATE;
    put_decimal(&mut v[6..16], i);
    put_decimal(&mut v[30..35], i.wrapping_mul(7919) % 100_000);
    put_decimal(&mut v[46..49], i.wrapping_mul(31) % 1000);
    put_decimal(&mut v[50..52], i % 100);
    v
}

/// The partition of record `i`.
#[inline]
pub fn partition_of(i: u64, partitions: u32) -> i32 {
    // `partitions` fits in an i32 (Kafka partition counts do), so the remainder does too.
    (i % u64::from(partitions.max(1))) as i32
}

/// The record at `offset` of `partition`.
#[inline]
pub fn record_index(partition: i32, offset: i64, partitions: u32) -> u64 {
    (offset as u64) * u64::from(partitions) + partition as u64
}

/// The create timestamp of record `i`.
#[inline]
pub fn timestamp(i: u64) -> i64 {
    BASE_TIMESTAMP + (i / 1000) as i64
}

/// Folds `bytes` into a word: a wrapping sum of its 8-byte little-endian words and its length.
#[inline]
fn fold(bytes: &[u8]) -> u64 {
    let mut sum = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        sum = sum.wrapping_add(u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    let mut word = [0u8; 8];
    word[..rest.len()].copy_from_slice(rest);
    sum.wrapping_add(u64::from_le_bytes(word).rotate_left(5))
}

/// The checksum of one record: reads every byte of its key and value.
#[inline]
pub fn touch(key: Option<&[u8]>, value: Option<&[u8]>) -> u64 {
    let k = key.map_or(0x9e37_79b9, fold);
    let v = value.map_or(0x7f4a_7c15, fold);
    k.wrapping_add(v.rotate_left(17))
}

/// The sum of [`touch`] over records `0..records`.
pub fn expected_checksum(records: u64) -> u64 {
    (0..records).fold(0u64, |sum, i| {
        sum.wrapping_add(touch(Some(&key(i)), Some(&value(i))))
    })
}

/// Key and value bytes of `records` records (what the MB/s figures count).
pub fn payload_bytes(records: u64) -> u64 {
    records * (KEY_SIZE + VALUE_SIZE) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_well_formed() {
        assert_eq!(&key(42), b"key-000000000042");
        let v = value(1234);
        assert_eq!(v.len(), VALUE_SIZE);
        assert!(v.starts_with(b"{\"id\":0000001234,"));
        assert!(v.ends_with(b"\"}"));
        assert_ne!(
            touch(Some(&key(1)), Some(&value(1))),
            touch(Some(&key(2)), Some(&value(2)))
        );
        assert_eq!(record_index(3, 5, 8), 43);
        assert_eq!(partition_of(43, 8), 3);
    }
}
