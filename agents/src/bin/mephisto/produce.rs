//! `mephisto produce`: one record per stdin line through the engine producer; exits once every
//! record is acknowledged (or failed).

use std::collections::VecDeque;

use bytes::Bytes;
use mephisto_engine::producer::{
    Acks, Compression, Delivery, Producer, ProducerConfig, ProducerRecord,
};
use mephisto_engine::Cluster;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::args::{AcksArg, Codec, ProduceArgs};
use crate::error::CliError;

/// Records queued but not yet acknowledged before the oldest is awaited (bounds memory).
const MAX_PENDING: usize = 10_000;

fn compression(codec: Codec) -> Compression {
    match codec {
        Codec::None => Compression::None,
        Codec::Gzip => Compression::Gzip,
        Codec::Snappy => Compression::Snappy,
        Codec::Lz4 => Compression::Lz4,
        Codec::Zstd => Compression::Zstd,
    }
}

fn acks(acks: AcksArg) -> Acks {
    match acks {
        AcksArg::All => Acks::All,
        AcksArg::Leader => Acks::Leader,
        AcksArg::Zero => Acks::None,
    }
}

/// Splits a line into key and value at the first `separator`.
fn split(line: &[u8], separator: &[u8]) -> Option<(Bytes, Bytes)> {
    if separator.is_empty() || line.len() < separator.len() {
        return None;
    }
    let at = line.windows(separator.len()).position(|w| w == separator)?;
    let key = Bytes::copy_from_slice(line.get(..at)?);
    let value = Bytes::copy_from_slice(line.get(at + separator.len()..)?);
    Some((key, value))
}

/// Tracks acknowledgements: the count and the first failure.
#[derive(Default)]
struct Outcome {
    acknowledged: u64,
    failed: u64,
    first_error: Option<CliError>,
}

impl Outcome {
    async fn settle(&mut self, delivery: Delivery) {
        match delivery.await {
            Ok(_) => self.acknowledged += 1,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(CliError::Produce(e));
            }
        }
    }
}

/// Runs the command.
pub async fn run(cluster: Cluster, args: ProduceArgs) -> Result<(), CliError> {
    if args.key_separator.as_deref() == Some("") {
        return Err(CliError::Usage("--key-separator must not be empty".into()));
    }
    // The topic must exist (no auto-creation).
    cluster.topic(&args.topic).await?;
    let config = ProducerConfig {
        acks: acks(args.acks),
        compression: compression(args.compression),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(cluster, config)?;
    let separator = args.key_separator.map(String::into_bytes);
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut pending: VecDeque<Delivery> = VecDeque::new();
    let mut outcome = Outcome::default();
    let mut number = 0u64;
    let mut input_error = None;
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        number += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let record = ProducerRecord::new(args.topic.as_str());
        let record = match &separator {
            None => record.value(Bytes::copy_from_slice(&line)),
            Some(sep) => match split(&line, sep) {
                Some((key, value)) => record.key(key).value(value),
                None => {
                    input_error = Some(CliError::Usage(format!(
                        "line {number} has no key separator {:?}",
                        String::from_utf8_lossy(sep)
                    )));
                    break;
                }
            },
        };
        match producer.enqueue(record).await {
            Ok(delivery) => pending.push_back(delivery),
            Err(e) => {
                input_error = Some(CliError::Produce(e));
                break;
            }
        }
        while pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending.pop_front() {
                outcome.settle(oldest).await;
            }
        }
    }
    producer.flush().await;
    for delivery in pending {
        outcome.settle(delivery).await;
    }
    producer.close().await;
    tracing::info!(
        acknowledged = outcome.acknowledged,
        failed = outcome.failed,
        "produce done"
    );
    if let Some(e) = input_error {
        return Err(e);
    }
    match outcome.first_error {
        Some(first) if outcome.failed > 1 => Err(CliError::Deliveries {
            failed: outcome.failed,
            total: outcome.failed + outcome.acknowledged,
            first: Box::new(first),
        }),
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_separator() {
        let (k, v) = split(b"a:b:c", b":").expect("split");
        assert_eq!((&k[..], &v[..]), (&b"a"[..], &b"b:c"[..]));
        let (k, v) = split(b"::x", b"::").expect("split");
        assert_eq!((&k[..], &v[..]), (&b""[..], &b"x"[..]));
        assert!(split(b"abc", b":").is_none());
        assert!(split(b"", b":").is_none());
    }
}
