//! librdkafka settings of the rdkafka roles: an idempotent producer batching like Mephisto's,
//! and a group consumer with the same session and heartbeat as the Mephisto apps.

use rdkafka::config::ClientConfig as RdConfig;

use crate::mephisto_app::{HEARTBEAT, SESSION_TIMEOUT};
use crate::options::Options;

/// `host:port` of the bootstrap URL.
pub fn bootstrap(o: &Options) -> String {
    o.broker_url.trim_start_matches("kafka://").to_owned()
}

/// Linger 5 ms, batches up to 1 MB or 10,000 messages, acks=all, idempotence on.
pub fn producer(o: &Options) -> RdConfig {
    let mut config = RdConfig::new();
    config
        .set("bootstrap.servers", bootstrap(o))
        .set("client.id", "rdkafka-agent-bench")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("acks", "all")
        .set("enable.idempotence", "true");
    config
}

/// Group `group`, from the earliest offset, offsets stored by the application and
/// auto-committed every 2.8 s (Faust's `broker_commit_interval`).
pub fn group_consumer(o: &Options, group: &str) -> RdConfig {
    let mut config = RdConfig::new();
    config
        .set("bootstrap.servers", bootstrap(o))
        .set("client.id", "rdkafka-agent-bench")
        .set("group.id", group)
        .set(
            "session.timeout.ms",
            SESSION_TIMEOUT.as_millis().to_string(),
        )
        .set("heartbeat.interval.ms", HEARTBEAT.as_millis().to_string())
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "2800")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // See client_bench: the default 1000 ms idles a fast consumer.
        .set("fetch.queue.backoff.ms", "10");
    config
}
