//! [`ProducerConfig`]: every producer setting with its default, the Java property it mirrors,
//! and the validation that resolves whether idempotence is on.

use std::time::Duration;

use mephisto_wire::compression::Compression;

/// How many replicas must have a batch before the broker acknowledges it (Java `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Acks {
    /// `acks=0`: the broker sends no response; records resolve with offset -1 once the request
    /// is written to the socket. Delivery is not confirmed and failures are not retried.
    None,
    /// `acks=1`: the partition leader has written the batch to its log.
    Leader,
    /// `acks=all` (`-1`): every in-sync replica has the batch. Required for idempotence.
    #[default]
    All,
}

impl Acks {
    /// The wire value of the Produce request's `acks` field: 0, 1 or -1.
    pub fn as_i16(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings. Build with [`ProducerConfig::default`] and struct update syntax.
///
/// The defaults follow librdkafka where the producer's latency matters (`linger`) and the Java
/// client elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Replicas that must acknowledge a batch. Default [`Acks::All`]. Java `acks`.
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent. Default 5 ms, as librdkafka's
    /// `linger.ms` (Java: 5 ms since 4.0, 0 before). Java `linger.ms`.
    pub linger: Duration,
    /// Upper bound in bytes of one partition batch (uncompressed records plus the 61-byte batch
    /// header): a batch that reaches it is sent without waiting for `linger`. A record larger than
    /// this goes alone in its own batch. Default 1,000,000 bytes, as librdkafka's `batch.size`
    /// (Java: 16 KiB); it stays below the broker's default `message.max.bytes` of 1,048,588 so
    /// that a full batch is always accepted. Java `batch.size`.
    pub batch_size: usize,
    /// Largest record, counted with its batch header, that `send` accepts; larger records fail
    /// at once with [`ProduceError::RecordTooLarge`](super::ProduceError::RecordTooLarge). Also
    /// the bound of the partition data in one Produce request (which also takes at most a
    /// quarter of `buffer_memory`, so that several requests can be in flight; a single larger
    /// batch goes alone). Default 1 MiB. Java `max.request.size`.
    pub max_request_size: usize,
    /// Bytes the producer may hold for records (queued, being sent, awaiting
    /// acknowledgement). Records are encoded into their batch's buffer when they are queued,
    /// and the budget counts those buffers' capacity, so it bounds the real memory, not an
    /// estimate (only a few idle buffers kept for reuse, at most 1/16 of it, are outside).
    /// When it is used up, `send` waits until batches complete: the buffer never grows past
    /// it. To enter, a record needs its size plus a batch header (61 bytes) free.
    ///
    /// Default 1 MiB, below Java's 32 MiB: the producer's throughput needs only what is in
    /// flight, about the rate times the acknowledgement latency (1 MiB carries 100 MB/s at
    /// 10 ms), and on loopback a larger buffer only lets the application run further ahead
    /// (see BENCHMARKS.md). Raise it for brokers far away or slow to acknowledge, and above
    /// `batch_size` when many partitions should fill whole batches at once. Java
    /// `buffer.memory`.
    pub buffer_memory: usize,
    /// Codec of every batch. Default none. Java `compression.type`.
    pub compression: Compression,
    /// Idempotent producing (producer id and per-partition sequences; no duplicates on retry).
    /// `None` (the default) turns it on when the settings allow it (`acks=all`,
    /// `max_in_flight <= 5`, `retries > 0`) and falls back to plain `acks=all`, with a warning,
    /// if the cluster cannot give a producer id. `Some(true)` makes both of those an error;
    /// `Some(false)` turns it off. Java `enable.idempotence`.
    pub idempotence: Option<bool>,
    /// How many times a batch is retried after a retriable error; `delivery_timeout` bounds the
    /// total time anyway. Default `u32::MAX`. Java `retries`.
    pub retries: u32,
    /// First wait before a retry; doubles per attempt up to `retry_backoff_max`, with jitter.
    /// Default 100 ms. Java `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// Longest wait between retries. Default 1 s. Java `retry.backoff.max.ms`.
    pub retry_backoff_max: Duration,
    /// Time from `send` until the record must be acknowledged, retries included; after it the
    /// record fails with [`ProduceError::DeliveryTimeout`](super::ProduceError::DeliveryTimeout).
    /// Default 120 s. Java `delivery.timeout.ms`.
    pub delivery_timeout: Duration,
    /// How long one Produce request may wait for its response; also the `timeout_ms` sent to the
    /// broker. Default 30 s. Java `request.timeout.ms`.
    pub request_timeout: Duration,
    /// Produce requests in flight per broker. At most 5 with idempotence (the broker keeps the
    /// last 5 batches per producer and partition). Default 5. Java
    /// `max.in.flight.requests.per.connection`.
    pub max_in_flight: usize,
    /// How long `send` waits for the topic's metadata (or buffer memory) before failing. Default
    /// 60 s. Java `max.block.ms`.
    pub max_block: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 1_000_000,
            max_request_size: 1024 * 1024,
            buffer_memory: 1024 * 1024,
            compression: Compression::None,
            idempotence: None,
            retries: u32::MAX,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 5,
            max_block: Duration::from_secs(60),
        }
    }
}

/// The most Produce requests per broker that idempotence allows.
pub const MAX_IN_FLIGHT_IDEMPOTENT: usize = 5;

/// A setting is out of range or contradicts another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid producer configuration: {0}")]
pub struct ConfigError(pub String);

/// Whether the producer will try to be idempotent, and whether failing to be is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotenceMode {
    /// Not idempotent.
    Off,
    /// Idempotent if the cluster gives a producer id, else plain `acks=all` with a warning.
    Preferred,
    /// Idempotent or failing: explicitly requested.
    Required,
}

impl ProducerConfig {
    /// Checks the settings and resolves the idempotence mode.
    pub fn validate(&self) -> Result<IdempotenceMode, ConfigError> {
        let bad = |msg: String| Err(ConfigError(msg));
        if self.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        if self.max_request_size == 0 || self.max_request_size > i32::MAX as usize {
            return bad(format!(
                "max_request_size must be in 1..={}, got {}",
                i32::MAX,
                self.max_request_size
            ));
        }
        if self.buffer_memory == 0 || self.buffer_memory > u32::MAX as usize {
            return bad(format!(
                "buffer_memory must be in 1..={}, got {}",
                u32::MAX,
                self.buffer_memory
            ));
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be positive".into());
        }
        if self.delivery_timeout.is_zero() || self.request_timeout.is_zero() {
            return bad("delivery_timeout and request_timeout must be positive".into());
        }
        if self.request_timeout.as_millis() > i32::MAX as u128 {
            return bad("request_timeout must fit in an int32 of milliseconds".into());
        }
        let compatible = self.acks == Acks::All
            && self.max_in_flight <= MAX_IN_FLIGHT_IDEMPOTENT
            && self.retries > 0;
        match self.idempotence {
            Some(false) => Ok(IdempotenceMode::Off),
            None if compatible => Ok(IdempotenceMode::Preferred),
            None => Ok(IdempotenceMode::Off),
            Some(true) if compatible => Ok(IdempotenceMode::Required),
            Some(true) => bad(format!(
                "idempotence requires acks=all, max_in_flight <= {MAX_IN_FLIGHT_IDEMPOTENT} and \
                 retries > 0 (got acks={:?}, max_in_flight={}, retries={})",
                self.acks, self.max_in_flight, self.retries
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_idempotent_when_possible() {
        let c = ProducerConfig::default();
        assert_eq!(c.validate(), Ok(IdempotenceMode::Preferred));
        let leader = ProducerConfig {
            acks: Acks::Leader,
            ..ProducerConfig::default()
        };
        assert_eq!(leader.validate(), Ok(IdempotenceMode::Off));
        let many = ProducerConfig {
            max_in_flight: 6,
            ..ProducerConfig::default()
        };
        assert_eq!(many.validate(), Ok(IdempotenceMode::Off));
    }

    #[test]
    fn explicit_idempotence_rejects_conflicts() {
        let ok = ProducerConfig {
            idempotence: Some(true),
            ..ProducerConfig::default()
        };
        assert_eq!(ok.validate(), Ok(IdempotenceMode::Required));
        for bad in [
            ProducerConfig {
                acks: Acks::None,
                ..ok.clone()
            },
            ProducerConfig {
                max_in_flight: 6,
                ..ok.clone()
            },
            ProducerConfig {
                retries: 0,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn zero_sizes_are_rejected() {
        for bad in [
            ProducerConfig {
                batch_size: 0,
                ..ProducerConfig::default()
            },
            ProducerConfig {
                buffer_memory: 0,
                ..ProducerConfig::default()
            },
            ProducerConfig {
                max_in_flight: 0,
                ..ProducerConfig::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }
}
