//! The record formats of `consume`: `line` (the value, raw) and `json` (one object per line).
//!
//! JSON fields, in this order: `topic`, `partition`, `offset`, `timestamp`, `key`, `value`,
//! `headers` (a list of `{"key", "value"}`). Keys and values are text when they are valid
//! UTF-8, else base64 with a sibling flag (`"key_encoding": "base64"`,
//! `"value_encoding": "base64"`, and `"value_encoding"` inside a header); null stays null.

use std::io::Write;

use base64::Engine as _;

use crate::error::CliError;

/// One record to print.
pub struct Row<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Key, or `None` for null.
    pub key: Option<&'a [u8]>,
    /// Value, or `None` for null.
    pub value: Option<&'a [u8]>,
    /// Headers in order.
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Appends the `line` form: the value's bytes and a newline (an empty line for null).
pub fn line(row: &Row<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(row.value.unwrap_or_default());
    out.push(b'\n');
}

fn json_string(s: &str, out: &mut String) {
    // Serializing a `&str` cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
}

/// Appends `"name":<text or base64 or null>` and, for base64, `"name_encoding":"base64"`.
fn bytes_field(name: &str, bytes: Option<&[u8]>, out: &mut String) {
    json_string(name, out);
    out.push(':');
    match bytes {
        None => out.push_str("null"),
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => json_string(text, out),
            Err(_) => {
                json_string(&base64::engine::general_purpose::STANDARD.encode(b), out);
                out.push(',');
                json_string(&format!("{name}_encoding"), out);
                out.push_str(":\"base64\"");
            }
        },
    }
}

/// Appends the `json` form and a newline.
pub fn json(row: &Row<'_>, out: &mut Vec<u8>) {
    let mut s = String::with_capacity(128);
    s.push_str("{\"topic\":");
    json_string(row.topic, &mut s);
    s.push_str(&format!(
        ",\"partition\":{},\"offset\":{},\"timestamp\":{},",
        row.partition, row.offset, row.timestamp
    ));
    bytes_field("key", row.key, &mut s);
    s.push(',');
    bytes_field("value", row.value, &mut s);
    s.push_str(",\"headers\":[");
    for (i, (key, value)) in row.headers.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"key\":");
        json_string(&String::from_utf8_lossy(key), &mut s);
        s.push(',');
        bytes_field("value", *value, &mut s);
        s.push('}');
    }
    s.push_str("]}\n");
    out.extend_from_slice(s.as_bytes());
}

/// Writes to stdout; `None` when the reader went away (a closed pipe ends the command quietly).
pub fn write(out: &mut impl Write, bytes: &[u8]) -> Result<Option<()>, CliError> {
    match out.write_all(bytes) {
        Ok(()) => Ok(Some(())),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Flushes stdout; `None` when the reader went away.
pub fn flush(out: &mut impl Write) -> Result<Option<()>, CliError> {
    match out.flush() {
        Ok(()) => Ok(Some(())),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_base64_and_null() {
        let row = Row {
            topic: "t\"q",
            partition: 2,
            offset: 7,
            timestamp: 1_700_000_000_000,
            key: Some(b"k\n"),
            value: Some(&[0xff, 0x00, 0x80]),
            headers: vec![(b"h", Some(b"x")), (b"b", Some(&[0xc3])), (b"n", None)],
        };
        let mut out = Vec::new();
        json(&row, &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["topic"], "t\"q");
        assert_eq!(v["partition"], 2);
        assert_eq!(v["offset"], 7);
        assert_eq!(v["timestamp"], 1_700_000_000_000i64);
        assert_eq!(v["key"], "k\n");
        assert!(v.get("key_encoding").is_none());
        assert_eq!(v["value"], "/wCA");
        assert_eq!(v["value_encoding"], "base64");
        assert_eq!(
            v["headers"][0],
            serde_json::json!({"key": "h", "value": "x"})
        );
        assert_eq!(
            v["headers"][1],
            serde_json::json!({"key": "b", "value": "ww==", "value_encoding": "base64"})
        );
        assert_eq!(
            v["headers"][2],
            serde_json::json!({"key": "n", "value": null})
        );

        let mut out = Vec::new();
        json(
            &Row {
                key: None,
                value: None,
                headers: vec![],
                ..row
            },
            &mut out,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert!(v["key"].is_null() && v["value"].is_null());
        assert_eq!(v["headers"], serde_json::json!([]));
    }

    #[test]
    fn line_is_the_raw_value() {
        let row = Row {
            topic: "t",
            partition: 0,
            offset: 0,
            timestamp: 0,
            key: Some(b"k"),
            value: Some(b"hello"),
            headers: vec![],
        };
        let mut out = Vec::new();
        line(&row, &mut out);
        line(&Row { value: None, ..row }, &mut out);
        assert_eq!(out, b"hello\n\n");
    }
}
