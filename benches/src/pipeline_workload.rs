//! The records of the agent pipeline benchmark (`agent_bench`), shared by the prefill on tansu,
//! the replay server's log and the output checks, so that every party agrees on the input.
//!
//! Record `i` (0-based over the topic) goes to partition `i % partitions`, has no key and a
//! 100-byte JSON value `{"a":i,"b":i,"pad":"xxx…"}` (the pad fills it to exactly
//! [`VALUE_SIZE`] bytes). The `noop` pipeline passes the bytes through unchanged, the `add`
//! pipeline writes `a + b` as a JSON number; [`output_sum`] reads either form back, so the sum
//! over every output record must be [`expected_sum`].

/// Bytes of each value.
pub const VALUE_SIZE: usize = 100;

/// `{"a":` … `,"b":` … `,"pad":"` … `"}` without the numbers and the pad.
const FRAME: usize = 5 + 5 + 8 + 2;

/// The value of record `i`: `{"a":i,"b":i,"pad":"xxx…"}`, [`VALUE_SIZE`] bytes.
pub fn value(i: u64) -> Vec<u8> {
    let digits = i.to_string();
    let pad = VALUE_SIZE.saturating_sub(FRAME + 2 * digits.len());
    let mut v = Vec::with_capacity(VALUE_SIZE);
    v.extend_from_slice(b"{\"a\":");
    v.extend_from_slice(digits.as_bytes());
    v.extend_from_slice(b",\"b\":");
    v.extend_from_slice(digits.as_bytes());
    v.extend_from_slice(b",\"pad\":\"");
    v.resize(v.len() + pad, b'x');
    v.extend_from_slice(b"\"}");
    v
}

/// The partition of record `i`.
pub fn partition_of(i: u64, partitions: u32) -> i32 {
    // Partition counts fit in an i32, so the remainder does too.
    (i % u64::from(partitions.max(1))) as i32
}

/// The sum [`output_sum`] gives over the outputs of records `0..records` (`a + b = 2i`).
pub fn expected_sum(records: u64) -> i128 {
    let n = i128::from(records);
    n * (n - 1)
}

/// Parses the unsigned decimal number at the start of `bytes` (at most 18 digits).
fn leading_number(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 18 {
        return None;
    }
    bytes[..digits].iter().try_fold(0i64, |n, &d| {
        n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

/// The number after `key` (e.g. `"a":`) in `value`.
fn field(value: &[u8], key: &[u8]) -> Option<i64> {
    let at = value.windows(key.len()).position(|w| w == key)?;
    leading_number(value.get(at + key.len()..)?)
}

/// What one output record contributes to the sum: `a + b` for a passed-through input value
/// (`noop`), the number itself for an `add` output (`-` signs are accepted). `None` if the
/// bytes are neither.
pub fn output_sum(value: &[u8]) -> Option<i64> {
    match value.first()? {
        b'{' => field(value, b"\"a\":")?.checked_add(field(value, b"\"b\":")?),
        b'-' => leading_number(value.get(1..)?).map(|n| -n),
        _ => {
            let n = leading_number(value)?;
            // A number, and nothing but whitespace after it.
            let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
            value[digits..]
                .iter()
                .all(u8::is_ascii_whitespace)
                .then_some(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_100_bytes_of_json() {
        for i in [0, 7, 12_345, 999_999, 1_000_000, u64::from(u32::MAX)] {
            let v = value(i);
            assert_eq!(v.len(), VALUE_SIZE, "{i}");
            let json: serde_json::Value = serde_json::from_slice(&v).unwrap();
            assert_eq!(json["a"], i);
            assert_eq!(json["b"], i);
            assert_eq!(output_sum(&v), Some(2 * i as i64));
        }
    }

    #[test]
    fn sums_read_both_output_forms() {
        assert_eq!(output_sum(b"42"), Some(42));
        assert_eq!(output_sum(b"-3"), Some(-3));
        assert_eq!(output_sum(b"4x"), None);
        assert_eq!(output_sum(b""), None);
        assert_eq!(output_sum(b"{\"b\":1}"), None);
        assert_eq!(expected_sum(3), 6);
        assert_eq!(partition_of(9, 8), 1);
    }
}
