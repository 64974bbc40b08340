//! The `mephisto` binary end to end: topics, produce and consume against a private tansu (see
//! `support`), interop with confluent-kafka in both directions, and its one-line errors.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use support::{mephisto, mephisto_ok, python, tansu, unique};

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The one stderr line of a failed run.
fn one_error_line(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected a failure, stdout: {:?}",
        out.stdout
    );
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr:?}");
    assert!(stderr.starts_with("mephisto: "), "{stderr}");
    stderr
}

#[test]
fn topics_produce_and_consume() {
    let broker = tansu();
    let url = broker.url.as_str();
    let topic = unique("cli");
    mephisto_ok(
        url,
        &[
            "topics",
            "create",
            &topic,
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
        ],
        b"",
    );
    let listed = mephisto_ok(url, &["topics", "list"], b"");
    assert!(
        listed.lines().any(|l| l == format!("{topic}\t3")),
        "{listed}"
    );

    let lines: Vec<String> = (0..30)
        .map(|i| format!("key-{i}=value {i} = with separator"))
        .collect();
    let input = lines.join("\n") + "\n";
    mephisto_ok(
        url,
        &["produce", &topic, "--key-separator", "="],
        input.as_bytes(),
    );

    let out = mephisto_ok(
        url,
        &["consume", &topic, "--format", "json", "--count", "30"],
        b"",
    );
    let records = json_lines(&out);
    assert_eq!(records.len(), 30);
    let mut seen: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            assert_eq!(r["topic"], topic.as_str());
            assert!(r["timestamp"]
                .as_i64()
                .is_some_and(|t| t > 1_600_000_000_000));
            assert_eq!(r["headers"], serde_json::json!([]));
            (
                r["key"].as_str().expect("text key").to_owned(),
                r["value"].as_str().expect("text value").to_owned(),
            )
        })
        .collect();
    seen.sort();
    let mut want: Vec<(String, String)> = (0..30)
        .map(|i| (format!("key-{i}"), format!("value {i} = with separator")))
        .collect();
    want.sort();
    assert_eq!(seen, want);
    // Per partition, offsets are 0, 1, 2, ... in order, and keys hash to one partition.
    for p in 0..3 {
        let offsets: Vec<i64> = records
            .iter()
            .filter(|r| r["partition"] == p)
            .map(|r| r["offset"].as_i64().expect("offset"))
            .collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
    }

    // Line format, stopping on the idle timeout.
    let start = Instant::now();
    let out = mephisto_ok(url, &["consume", &topic, "--idle-timeout-ms", "1000"], b"");
    assert!(start.elapsed() < Duration::from_secs(15));
    let mut values: Vec<&str> = out.lines().collect();
    values.sort();
    let mut want: Vec<String> = (0..30)
        .map(|i| format!("value {i} = with separator"))
        .collect();
    want.sort();
    assert_eq!(values, want);

    // Every codec and acks level round-trips.
    for (codec, acks) in [
        ("gzip", "all"),
        ("snappy", "1"),
        ("lz4", "all"),
        ("zstd", "1"),
        ("none", "0"),
    ] {
        let t = unique(&format!("cli-{codec}"));
        mephisto_ok(url, &["topics", "create", &t, "--partitions", "1"], b"");
        let input: String = (0..50).map(|i| format!("{codec}-{i}\n")).collect();
        mephisto_ok(
            url,
            &["produce", &t, "--compression", codec, "--acks", acks],
            input.as_bytes(),
        );
        let out = mephisto_ok(
            url,
            &["consume", &t, "--count", "50", "--idle-timeout-ms", "5000"],
            b"",
        );
        assert_eq!(out, input, "{codec} / acks {acks}");
        mephisto_ok(url, &["topics", "delete", &t], b"");
    }

    mephisto_ok(url, &["topics", "delete", &topic], b"");
    let listed = mephisto_ok(url, &["topics", "list"], b"");
    assert!(
        !listed.lines().any(|l| l.starts_with(&format!("{topic}\t"))),
        "{listed}"
    );
    let out = mephisto(url, &["topics", "delete", &topic], b"");
    assert!(one_error_line(&out).contains("UNKNOWN_TOPIC_OR_PARTITION"));
}

#[test]
fn consume_from_latest_sees_only_new_records() {
    let broker = tansu();
    let url = broker.url.as_str();
    let topic = unique("cli-latest");
    mephisto_ok(url, &["topics", "create", &topic, "--partitions", "1"], b"");
    // One record per run, so one batch each: tansu's ListOffsets(latest) is only right for
    // single-record batches.
    for i in 0..3 {
        mephisto_ok(url, &["produce", &topic], format!("old-{i}\n").as_bytes());
    }
    let consumer = Command::new(env!("CARGO_BIN_EXE_mephisto"))
        .args([
            "--broker", url, "consume", &topic, "--from", "latest", "--count", "2",
        ])
        .args(["--idle-timeout-ms", "15000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("consumer");
    // Give it time to resolve the end of the log before producing.
    std::thread::sleep(Duration::from_millis(1500));
    mephisto_ok(url, &["produce", &topic], b"new-0\nnew-1\n");
    let out = consumer.wait_with_output().expect("consumer output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "new-0\nnew-1\n");
}

const PEER_CONSUME: &str = r#"
import json, sys
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
addr, topic, partitions, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = Consumer({"bootstrap.servers": addr, "group.id": "mephisto-cli-test", "enable.auto.commit": False})
c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
got = []
idle = 0
while len(got) < want and idle < 30:
    m = c.poll(1.0)
    if m is None:
        idle += 1
        continue
    if m.error():
        sys.exit(str(m.error()))
    got.append({"partition": m.partition(), "offset": m.offset(),
                "key": m.key().decode() if m.key() is not None else None,
                "value": m.value().decode()})
c.close()
print(json.dumps(got))
"#;

const PEER_PRODUCE: &str = r#"
import sys
from confluent_kafka import Producer
addr, topic = sys.argv[1], sys.argv[2]
p = Producer({"bootstrap.servers": addr, "compression.type": "lz4"})
for i in range(20):
    p.produce(topic, key=f"pk-{i}".encode(), value=f"peer value {i}".encode(), partition=i % 2,
              headers=[("origin", b"confluent"), ("bin", bytes([0xff, i]))])
p.produce(topic, key=None, value=bytes([0xde, 0xad, 0xbe, 0xef]), partition=0)
if p.flush(30):
    sys.exit("not delivered")
"#;

#[test]
fn interop_with_confluent_kafka() {
    let broker = tansu();
    let url = broker.url.as_str();

    // Ours → theirs.
    let topic = unique("cli-to-peer");
    mephisto_ok(url, &["topics", "create", &topic, "--partitions", "2"], b"");
    let input: String = (0..40).map(|i| format!("k{i}|v{i}\n")).collect();
    mephisto_ok(
        url,
        &[
            "produce",
            &topic,
            "--key-separator",
            "|",
            "--compression",
            "snappy",
        ],
        input.as_bytes(),
    );
    let read: Value =
        serde_json::from_str(&python(PEER_CONSUME, &[&broker.addr, &topic, "2", "40"]))
            .expect("peer JSON");
    let mut pairs: Vec<(String, String)> = read
        .as_array()
        .expect("list")
        .iter()
        .map(|m| {
            (
                m["key"].as_str().unwrap_or_default().to_owned(),
                m["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    let mut want: Vec<(String, String)> = (0..40)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    want.sort();
    assert_eq!(pairs, want, "confluent-kafka reads what our CLI wrote");

    // Theirs → ours.
    let topic = unique("cli-from-peer");
    mephisto_ok(url, &["topics", "create", &topic, "--partitions", "2"], b"");
    python(PEER_PRODUCE, &[&broker.addr, &topic]);
    let out = mephisto_ok(
        url,
        &[
            "consume",
            &topic,
            "--format",
            "json",
            "--count",
            "21",
            "--idle-timeout-ms",
            "10000",
        ],
        b"",
    );
    let records = json_lines(&out);
    assert_eq!(records.len(), 21);
    for r in &records {
        if r["key"].is_null() {
            assert_eq!(r["value_encoding"], "base64");
            let value = base64::engine::general_purpose::STANDARD
                .decode(r["value"].as_str().expect("base64 text"))
                .expect("base64");
            assert_eq!(value, [0xde, 0xad, 0xbe, 0xef]);
            continue;
        }
        let key = r["key"].as_str().expect("key");
        let i: u8 = key.trim_start_matches("pk-").parse().expect("index");
        assert_eq!(r["value"], format!("peer value {i}"));
        assert_eq!(r["partition"], i64::from(i % 2));
        assert!(r.get("value_encoding").is_none());
        let headers = r["headers"].as_array().expect("headers");
        assert_eq!(
            headers[0],
            serde_json::json!({"key": "origin", "value": "confluent"})
        );
        assert_eq!(headers[1]["key"], "bin");
        assert_eq!(headers[1]["value_encoding"], "base64");
        let bin = base64::engine::general_purpose::STANDARD
            .decode(headers[1]["value"].as_str().expect("text"))
            .expect("base64");
        assert_eq!(bin, [0xff, i]);
    }
}

#[test]
fn errors_are_one_line_and_fast() {
    // Nothing listens on port 1: a refused connection fails at once.
    let start = Instant::now();
    let out = mephisto("kafka://127.0.0.1:1", &["topics", "list"], b"");
    let line = one_error_line(&out);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(line.contains("127.0.0.1:1"), "{line}");
    assert_eq!(out.status.code(), Some(1));

    for args in [
        &["topics", "create", "t"][..],
        &["topics", "create", "t", "--partitions", "zero"],
        &["consume", "t", "--from", "middle"],
        &["produce", "t", "--acks", "2"],
        &["frobnicate"],
    ] {
        let out = mephisto("kafka://127.0.0.1:1", args, b"");
        one_error_line(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = mephisto("kafka://127.0.0.1:1", &["consume", "t", "--group", ""], b"");
    assert!(one_error_line(&out).contains("--group must not be empty"));
    assert_eq!(out.status.code(), Some(2));
    let out = mephisto("http://127.0.0.1:1", &["topics", "list"], b"");
    assert!(one_error_line(&out).contains("kafka://"));
}

#[test]
fn produce_errors() {
    let broker = tansu();
    let url = broker.url.as_str();
    let out = mephisto(url, &["produce", &unique("no-such-topic")], b"x\n");
    assert!(one_error_line(&out).contains("not in the cluster metadata"));
    let topic = unique("cli-sep");
    mephisto_ok(url, &["topics", "create", &topic, "--partitions", "1"], b"");
    let out = mephisto(
        url,
        &["produce", &topic, "--key-separator", ":"],
        b"a:1\nno separator\n",
    );
    assert!(one_error_line(&out).contains("line 2 has no key separator"));
    // The line before the bad one was sent.
    let got = mephisto_ok(
        url,
        &[
            "consume",
            &topic,
            "--format",
            "json",
            "--idle-timeout-ms",
            "1500",
        ],
        b"",
    );
    let records = json_lines(&got);
    assert_eq!(records.len(), 1);
    assert_eq!(
        (&records[0]["key"], &records[0]["value"]),
        (&Value::from("a"), &Value::from("1"))
    );
}
