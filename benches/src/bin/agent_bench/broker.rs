//! The brokers a campaign runs on, each holding one input topic ready to read: a private tansu
//! (in-memory storage; `$MEPHISTO_BROKER` replaces it) with the input created and pre-filled,
//! or the loopback replay server (hosted by this process) serving the input from memory. A
//! fresh broker is started per input (the main measurement, each point of a sweep), so output
//! topics of earlier runs do not pile up.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mephisto_benches::fill::fill_topic;
use mephisto_benches::pipeline_workload;
use mephisto_benches::proc_stats;
use mephisto_benches::replay_server::{Payload, ReplayConfig, ReplayServer};
use mephisto_benches::tansu::{BoxError, Tansu};
use mephisto_engine::producer::{Producer, ProducerConfig};
use mephisto_engine::{Admin, ClientConfig, Cluster, NewTopic};
use mephisto_wire::compression::Compression;
use tokio::runtime::Runtime;

/// The input topic of a broker.
#[derive(Debug, Clone)]
pub struct Input {
    /// Topic name.
    pub topic: String,
    /// Records it holds.
    pub records: u64,
    /// Its partitions.
    pub partitions: u32,
}

enum Inner {
    Tansu(Tansu),
    /// `$MEPHISTO_BROKER`: not ours to start or stop; its CPU is not measured.
    External,
    Replay(ReplayServer),
}

/// A broker with its input topic.
pub struct Broker {
    /// `tansu`, `external` or `replay`.
    pub kind: &'static str,
    /// `kafka://127.0.0.1:PORT`.
    pub url: String,
    inner: Inner,
}

/// A Mephisto cluster connection of the parent.
pub async fn cluster(url: &str) -> Result<Cluster, BoxError> {
    Ok(Cluster::connect(
        ClientConfig::from_url(url)?
            .with_client_id("agent-bench-parent")
            .with_request_timeout(Duration::from_secs(30)),
    )
    .await?)
}

impl Broker {
    /// Starts a broker of `kind` (`tansu` or `replay`) holding `input`.
    pub fn start(kind: &str, rt: &Runtime, input: &Input) -> Result<Broker, BoxError> {
        let started = Instant::now();
        let broker = if kind == "replay" {
            let config = ReplayConfig {
                topic: input.topic.clone(),
                partitions: input.partitions,
                records: input.records,
                records_per_batch: 1000,
                compression: Compression::None,
                trace: false,
                payload: Payload::Pipeline,
                sum_values: true,
            };
            let server = rt.block_on(ReplayServer::start(config))?;
            Broker {
                kind: "replay",
                url: server.url(),
                inner: Inner::Replay(server),
            }
        } else {
            let broker = match std::env::var("MEPHISTO_BROKER")
                .ok()
                .filter(|b| !b.trim().is_empty())
            {
                Some(url) => Broker {
                    kind: "external",
                    url,
                    inner: Inner::External,
                },
                None => {
                    let tansu = Tansu::start(rt, "agent-bench")?;
                    Broker {
                        kind: "tansu",
                        url: tansu.url.clone(),
                        inner: Inner::Tansu(tansu),
                    }
                }
            };
            broker.create_topic(rt, &input.topic, input.partitions)?;
            rt.block_on(prefill(&broker.url, input))?;
            broker
        };
        eprintln!(
            "{} on {}: {} ({} records, {} partitions) ready in {:.2} s",
            broker.kind,
            broker.url,
            input.topic,
            input.records,
            input.partitions,
            started.elapsed().as_secs_f64()
        );
        Ok(broker)
    }

    /// CPU seconds the broker used so far: tansu's process, or this process for the replay
    /// server it hosts (which then includes the parent's own small share); NaN if unknown.
    pub fn cpu_seconds(&self) -> f64 {
        let pid = match &self.inner {
            Inner::Tansu(t) => Some(t.pid()),
            Inner::Replay(_) => Some(std::process::id()),
            Inner::External => None,
        };
        pid.and_then(proc_stats::cpu_seconds).unwrap_or(f64::NAN)
    }

    /// The replay server, if this is one.
    pub fn replay(&self) -> Option<&ReplayServer> {
        match &self.inner {
            Inner::Replay(server) => Some(server),
            _ => None,
        }
    }

    /// Creates `topic` and waits until every partition has a leader.
    pub fn create_topic(&self, rt: &Runtime, topic: &str, partitions: u32) -> Result<(), BoxError> {
        rt.block_on(async {
            let cluster = cluster(&self.url).await?;
            Admin::new(cluster.clone())
                .create_topic(NewTopic::new(topic, partitions as i32, 1))
                .await?;
            for _ in 0..100 {
                let meta = cluster.refresh_metadata().await?;
                if meta.topic(topic).is_some_and(|t| t.all_partitions_led()) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(format!("topic {topic} has no leaders").into())
        })
    }

    /// Deletes `topic` (best effort: a tansu keeps every record in memory otherwise). The
    /// replay server keeps no records, so it has nothing to free.
    pub fn delete_topic(&self, rt: &Runtime, topic: &str) {
        if self.replay().is_some() {
            return;
        }
        let deleted = rt.block_on(async {
            let cluster = cluster(&self.url).await?;
            Admin::new(cluster).delete_topic(topic).await?;
            Ok::<(), BoxError>(())
        });
        if let Err(e) = deleted {
            eprintln!("could not delete {topic}: {e}");
        }
    }
}

/// Produces the pipeline workload to the input topic: record `i` to partition
/// `i % partitions`, no key.
async fn prefill(url: &str, input: &Input) -> Result<(), BoxError> {
    let cluster = cluster(url).await?;
    let config = ProducerConfig {
        buffer_memory: 8 << 20,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(cluster, config)?;
    let partitions = input.partitions;
    fill_topic(producer, &input.topic, input.records, &|i| {
        (
            Some(pipeline_workload::partition_of(i, partitions)),
            None,
            Some(Bytes::from(pipeline_workload::value(i))),
        )
    })
    .await
}
