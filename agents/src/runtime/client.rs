//! [`Client`]: an app's connection to the brokers, made at first use: one cluster handle for
//! the producer, admin and reply reader, the in-process development broker when the URL is
//! `memory://`, topic creation for what the app declares, and the tracker of the writes its
//! agents make.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use mephisto_engine::admin::is_topic_already_exists;
use mephisto_engine::producer::{
    Delivery, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
use mephisto_engine::{Admin, ClientConfig, Cluster, NewTopic};
use tokio::sync::OnceCell;

use crate::runtime::error::RuntimeError;
use crate::runtime::replies::ReplyConsumer;
use crate::runtime::settings::Settings;
use crate::runtime::topics::TopicSpec;
use crate::runtime::tracker::WriteTracker;

/// The URL scheme that selects the in-process development broker.
pub const MEMORY_URL: &str = "memory://";

#[cfg(feature = "dev-broker")]
use mephisto_dev_broker::{DevBroker, DevBrokerConfig};
/// Without the `dev-broker` feature there is never a development broker to keep alive.
#[cfg(not(feature = "dev-broker"))]
type DevBroker = std::convert::Infallible;

/// A connected app.
pub struct Client {
    url: String,
    cluster: Cluster,
    producer: Producer,
    admin: Admin,
    settings: Settings,
    created: Mutex<BTreeSet<String>>,
    replies: OnceCell<ReplyConsumer>,
    writes: WriteTracker,
    // Kept alive for as long as the app is connected.
    _dev_broker: Option<DevBroker>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "dev-broker")]
async fn start_dev_broker(
    settings: &Settings,
) -> Result<(String, Option<DevBroker>), RuntimeError> {
    let config = DevBrokerConfig {
        default_partitions: settings.topic_partitions,
        ..DevBrokerConfig::default()
    };
    let broker = DevBroker::start(config)
        .await
        .map_err(|e| RuntimeError::DevBroker(e.to_string()))?;
    tracing::info!(url = %broker.url(), "started the in-process development broker");
    Ok((broker.url(), Some(broker)))
}

#[cfg(not(feature = "dev-broker"))]
async fn start_dev_broker(
    _settings: &Settings,
) -> Result<(String, Option<DevBroker>), RuntimeError> {
    Err(RuntimeError::DevBrokerDisabled)
}

impl Client {
    /// Connects (starting the development broker for `memory://`).
    pub async fn connect(app_id: &str, settings: Settings) -> Result<Client, RuntimeError> {
        let (url, dev) = if settings.broker.trim().starts_with(MEMORY_URL) {
            start_dev_broker(&settings).await?
        } else {
            (settings.broker.clone(), None)
        };
        let config = client_config(&url, app_id, &settings)?;
        let cluster = Cluster::connect(config).await?;
        let producer_config = ProducerConfig {
            linger: settings.producer_linger,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(cluster.clone(), producer_config)?;
        Ok(Client {
            url,
            admin: Admin::new(cluster.clone()),
            cluster,
            producer,
            settings,
            created: Mutex::new(BTreeSet::new()),
            replies: OnceCell::new(),
            writes: WriteTracker::start(),
            _dev_broker: dev,
        })
    }

    /// The bootstrap URL in use (the development broker's for `memory://`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The cluster handle.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The app's producer.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The tracker of the writes agents make (it releases their events' holds).
    pub fn writes(&self) -> &WriteTracker {
        &self.writes
    }

    /// A client config for this connection's URL named after the app (a consumer group
    /// member gets a cluster handle of its own made from it).
    pub fn config(&self, app_id: &str) -> Result<ClientConfig, RuntimeError> {
        client_config(&self.url, app_id, &self.settings)
    }

    /// Creates the topics that are missing (once per name per process), then waits until
    /// the metadata shows them.
    pub async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<(), RuntimeError> {
        let todo: Vec<&TopicSpec> = {
            let created = self.created.lock().unwrap_or_else(|e| e.into_inner());
            specs
                .iter()
                .filter(|s| !created.contains(&s.name))
                .collect()
        };
        if todo.is_empty() {
            return Ok(());
        }
        let existing: BTreeSet<String> = self
            .admin
            .list_topics()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        for spec in &todo {
            if !existing.contains(&spec.name) {
                let mut topic = NewTopic::new(
                    spec.name.clone(),
                    spec.partitions.unwrap_or(self.settings.topic_partitions),
                    self.settings.topic_replication_factor,
                );
                for (k, v) in &spec.configs {
                    topic = topic.with_config(k.clone(), v.clone());
                }
                match self.admin.create_topic(topic).await {
                    Ok(_) => tracing::info!(topic = %spec.name, "created topic"),
                    Err(e) if is_topic_already_exists(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.created
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(spec.name.clone());
        }
        // Let the metadata cache see the new topics before anyone routes to them.
        self.wait_for_topics(specs).await
    }

    async fn wait_for_topics(&self, specs: &[TopicSpec]) -> Result<(), RuntimeError> {
        let waited = self.settings.broker_request_timeout;
        let deadline = tokio::time::Instant::now() + waited;
        loop {
            let meta = self.cluster.refresh_metadata().await?;
            let missing: Vec<String> = specs
                .iter()
                .map(|s| s.name.as_str())
                .filter(|n| !meta.topic(n).is_some_and(|t| t.all_partitions_led()))
                .map(str::to_owned)
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::TopicsNotReady {
                    topics: missing,
                    waited,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether this process has declared (created or found) `topic`.
    pub fn is_declared(&self, topic: &str) -> bool {
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(topic)
    }

    /// Queues one record and returns its delivery (awaiting it gives the record's metadata).
    pub async fn enqueue(&self, record: ProducerRecord) -> Result<Delivery, RuntimeError> {
        Ok(self.producer.enqueue(record).await?)
    }

    /// Produces one record and waits for the acknowledgement.
    pub async fn produce(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<(String, Option<Bytes>)>,
    ) -> Result<RecordMetadata, RuntimeError> {
        let mut record = ProducerRecord::new(topic);
        record.partition = partition;
        record.key = key;
        record.value = value;
        for (k, v) in headers {
            record = record.header(k, v);
        }
        Ok(self.producer.send(record).await?)
    }

    /// The reply reader of this process, started at first use (creating the reply topic with
    /// Faust's settings: one partition, `cleanup.policy=delete`, `retention.ms` =
    /// `reply_expires`).
    pub async fn replies(&self) -> Result<&ReplyConsumer, RuntimeError> {
        self.replies
            .get_or_try_init(|| async {
                let topic = self.settings.reply_to.clone();
                if self.settings.reply_create_topic {
                    self.ensure_topics(&[reply_topic_spec(&topic, &self.settings)])
                        .await?;
                }
                ReplyConsumer::start(
                    self.cluster.clone(),
                    topic,
                    self.settings.consumer_fetch_max_wait,
                )
                .await
            })
            .await
    }

    /// The reply reader, if an `ask` started it.
    pub fn started_replies(&self) -> Option<&ReplyConsumer> {
        self.replies.get()
    }

    /// Flushes and closes the producer, waits for the tracked writes, stops the reply reader
    /// and deletes this process's reply topic; each step within `grace` in all.
    pub async fn close(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        if tokio::time::timeout_at(deadline, self.producer.flush())
            .await
            .is_err()
        {
            tracing::warn!(?grace, "records still unacknowledged at close; given up");
        }
        let _ = tokio::time::timeout_at(deadline, self.writes.drained()).await;
        if let Some(r) = self.replies.get() {
            r.close();
            if self.settings.reply_create_topic {
                let delete = self.admin.delete_topic(r.topic());
                match tokio::time::timeout_at(deadline, delete).await {
                    Ok(Ok(_)) => tracing::debug!(topic = r.topic(), "reply topic deleted"),
                    Ok(Err(e)) => {
                        tracing::debug!(topic = r.topic(), error = %e, "reply topic not deleted")
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// The reply topic as Faust declares it.
pub fn reply_topic_spec(topic: &str, settings: &Settings) -> TopicSpec {
    TopicSpec {
        name: topic.to_owned(),
        partitions: Some(1),
        configs: vec![
            ("cleanup.policy".into(), "delete".into()),
            (
                "retention.ms".into(),
                settings.reply_expires.as_millis().to_string(),
            ),
        ],
    }
}

fn client_config(
    url: &str,
    app_id: &str,
    settings: &Settings,
) -> Result<ClientConfig, RuntimeError> {
    Ok(ClientConfig::from_url(url)?
        .with_client_id(app_id)
        .with_request_timeout(settings.broker_request_timeout))
}
