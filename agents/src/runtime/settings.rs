//! [`Settings`]: the app's configuration, with Faust's setting names and defaults. The
//! runtime reads them to connect, to run the worker and to create topics.

use std::path::PathBuf;
use std::time::Duration;

use crate::core::codec::CodecName;
use crate::state::store::StoreUrl;

/// Default broker when neither the app nor `MEPHISTO_BROKER` names one.
pub const DEFAULT_BROKER: &str = "kafka://127.0.0.1:9092";

/// An app's settings. Field names follow Faust's (`broker`, `topic_partitions`,
/// `broker_commit_every`, ...); defaults are Faust's unless noted.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Bootstrap brokers, `kafka://host:port[,host:port]`, or `memory://` for the in-process
    /// development broker (one per app, gone with the process). Default: `$MEPHISTO_BROKER`,
    /// else `kafka://127.0.0.1:9092`.
    pub broker: String,
    /// Partitions of the topics the app creates (Faust: `topic_partitions`, 8).
    pub topic_partitions: i32,
    /// Replication factor of the topics the app creates (Faust: `topic_replication_factor`, 1).
    pub topic_replication_factor: i16,
    /// Whether declared topics missing on the broker are created at start (Faust creates the
    /// topics of agents and tables).
    pub topic_allow_declare: bool,
    /// How often acked offsets are committed (Faust: `broker_commit_interval`, 2.8 s).
    pub broker_commit_interval: Duration,
    /// How often windowed tables drop expired windows (Faust: `table_cleanup_interval`, 30 s).
    pub table_cleanup_interval: Duration,
    /// Commit after this many acks even before the interval (Faust: `broker_commit_every`,
    /// 10 000).
    pub broker_commit_every: u64,
    /// Consumer-group session timeout (Faust: `broker_session_timeout`, 60 s; ours: 10 s, the
    /// Java client's classic default: heartbeats never wait for agents here, so a short
    /// session only makes failover faster).
    pub broker_session_timeout: Duration,
    /// Consumer-group heartbeat interval (Faust: `broker_heartbeat_interval`, 3 s).
    pub broker_heartbeat_interval: Duration,
    /// Longest time an agent may spend between two events before the member is considered
    /// stuck and rejoins (Faust: `broker_max_poll_interval`, 1000 s).
    pub broker_max_poll_interval: Duration,
    /// Request timeout towards brokers (Faust: `broker_request_timeout`, 90 s; ours: 30 s).
    pub broker_request_timeout: Duration,
    /// Longest time a fetch waits for data before the broker answers (Kafka's
    /// `fetch.max.wait.ms`, 500 ms). Kafka answers as soon as data arrives; on brokers that
    /// always wait it out (tansu), a shorter wait lowers `ask` latency for more requests.
    pub consumer_fetch_max_wait: Duration,
    /// Largest decompressed records region of a fetched batch the worker accepts (ours; a
    /// batch over it is skipped as undecodable, so a small compression bomb cannot take the
    /// worker down). Default 64 MiB.
    pub consumer_max_decompressed_bytes: usize,
    /// How long the producer waits to fill a batch (Kafka's `linger.ms`; ours: 5 ms).
    pub producer_linger: Duration,
    /// Where a new consumer group starts: `true` = earliest (Faust's
    /// `consumer_auto_offset_reset = "earliest"`), `false` = latest.
    pub consumer_auto_offset_reset_earliest: bool,
    /// Capacity of each agent's in-memory queue (Faust: `stream_buffer_maxsize`, 4096).
    pub stream_buffer_maxsize: usize,
    /// Default key codec (Faust: `key_serializer`, `raw`).
    pub key_serializer: CodecName,
    /// Default value codec (Faust: `value_serializer`, `json`).
    pub value_serializer: CodecName,
    /// The reply topic of this process for `ask`/`map`/`join` (Faust: `reply_to`,
    /// `f-reply-<uuid>`).
    pub reply_to: String,
    /// Whether the reply topic is created at first use (Faust: `reply_create_topic`).
    pub reply_create_topic: bool,
    /// How long `ask` waits for its reply before failing (Faust waits forever; ours: 60 s).
    pub reply_timeout: Duration,
    /// Retention of the reply topic this process creates (Faust: `reply_expires`, 1 day):
    /// it is created with `cleanup.policy=delete` and this `retention.ms`, and deleted when
    /// the app closes cleanly, so processes leave nothing behind for good.
    pub reply_expires: Duration,
    /// The grace period of a stopping worker (SIGTERM): everything (finishing the events in
    /// processing, writing what they produced, committing, leaving the group) happens within
    /// it, and what could not is given up and logged. Default 25 s, inside a container's
    /// usual 30 s.
    pub shutdown_timeout: Duration,
    /// Static membership id (`group.instance.id`) of this worker, if any.
    pub group_instance_id: Option<String>,
    /// Where tables keep their partitions unless a table says otherwise (Faust: `store`,
    /// `memory://`): `memory://`, or `fjall://[path]` for the durable store (`rocksdb://` is
    /// read as `fjall://`).
    pub store: StoreUrl,
    /// The app's data directory (Faust: `datadir`, `<app id>-data`): a durable store without
    /// a path lives in its `tables/`.
    pub datadir: PathBuf,
}

impl Settings {
    /// Defaults for app `id`, reading `MEPHISTO_BROKER`.
    pub fn new(id: &str) -> Self {
        Settings {
            broker: std::env::var("MEPHISTO_BROKER")
                .ok()
                .filter(|b| !b.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_BROKER.to_string()),
            topic_partitions: 8,
            topic_replication_factor: 1,
            topic_allow_declare: true,
            broker_commit_interval: Duration::from_millis(2800),
            table_cleanup_interval: Duration::from_secs(30),
            broker_commit_every: 10_000,
            broker_session_timeout: Duration::from_secs(10),
            broker_heartbeat_interval: Duration::from_secs(3),
            broker_max_poll_interval: Duration::from_secs(1000),
            broker_request_timeout: Duration::from_secs(30),
            consumer_fetch_max_wait: Duration::from_millis(500),
            consumer_max_decompressed_bytes: 64 * 1024 * 1024,
            producer_linger: Duration::from_millis(5),
            consumer_auto_offset_reset_earliest: true,
            stream_buffer_maxsize: crate::core::channel::DEFAULT_CAPACITY,
            key_serializer: CodecName::DEFAULT_KEY,
            value_serializer: CodecName::DEFAULT_VALUE,
            reply_to: format!("f-reply-{}", crate::runtime::ids::new_id()),
            reply_create_topic: true,
            reply_timeout: Duration::from_secs(60),
            reply_expires: Duration::from_secs(24 * 3600),
            shutdown_timeout: Duration::from_secs(25),
            group_instance_id: None,
            store: StoreUrl::Memory,
            datadir: PathBuf::from(format!("{id}-data")),
        }
    }
}
