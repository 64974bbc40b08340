//! [`Client`]: the app's connection to the brokers, made at first use: one cluster handle for
//! the producer, admin and reply reader, the in-process development broker when the URL is
//! `memory://`, and topic creation for what the app declared.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use mephisto_engine::admin::is_topic_already_exists;
use mephisto_engine::producer::{Producer, ProducerConfig, ProducerRecord, RecordMetadata};
use mephisto_engine::{Admin, ClientConfig, Cluster, NewTopic};

#[cfg(feature = "dev-broker")]
use mephisto_dev_broker::{DevBroker, DevBrokerConfig};
/// Without the `dev-broker` feature there is never a development broker to keep alive.
#[cfg(not(feature = "dev-broker"))]
type DevBroker = std::convert::Infallible;

use tokio::sync::OnceCell;

use crate::app::error::AppError;
use crate::app::reply::ReplyConsumer;
use crate::app::settings::Settings;
use crate::app::topic::TopicSpec;

/// The URL scheme that selects the in-process development broker.
pub const MEMORY_URL: &str = "memory://";

/// A connected app.
pub struct Client {
    /// The bootstrap URL actually used (the development broker's for `memory://`).
    pub(crate) url: String,
    pub(crate) cluster: Cluster,
    pub(crate) producer: Producer,
    admin: Admin,
    settings: Settings,
    created: Mutex<BTreeSet<String>>,
    replies: OnceCell<ReplyConsumer>,
    // Kept alive for as long as the app is connected.
    _dev_broker: Option<DevBroker>,
}

/// Starts the in-process development broker for `memory://`: its URL, and the handle to keep.
#[cfg(feature = "dev-broker")]
async fn start_dev_broker(partitions: i32) -> Result<(String, Option<DevBroker>), AppError> {
    let config = DevBrokerConfig {
        default_partitions: partitions,
        ..DevBrokerConfig::default()
    };
    let broker = DevBroker::start(config)
        .await
        .map_err(|e| AppError::DevBroker(e.to_string()))?;
    tracing::info!(url = %broker.url(), "started the in-process development broker");
    Ok((broker.url(), Some(broker)))
}

/// `memory://` in a build without the `dev-broker` feature: an error.
#[cfg(not(feature = "dev-broker"))]
async fn start_dev_broker(_partitions: i32) -> Result<(String, Option<DevBroker>), AppError> {
    Err(AppError::DevBrokerDisabled)
}

impl Client {
    /// Connects (starting the development broker for `memory://`).
    pub(crate) async fn connect(app_id: &str, settings: Settings) -> Result<Client, AppError> {
        let (url, dev) = if settings.broker.trim().starts_with(MEMORY_URL) {
            start_dev_broker(settings.topic_partitions).await?
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
            _dev_broker: dev,
        })
    }

    /// A client config for `url` named after the app.
    pub(crate) fn config(&self, app_id: &str) -> Result<ClientConfig, AppError> {
        client_config(&self.url, app_id, &self.settings)
    }

    /// Creates the topics that are missing (once per name per process).
    pub(crate) async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<(), AppError> {
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
        for spec in todo {
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

    async fn wait_for_topics(&self, specs: &[TopicSpec]) -> Result<(), AppError> {
        let deadline = tokio::time::Instant::now() + self.settings.broker_request_timeout;
        loop {
            let meta = self.cluster.refresh_metadata().await?;
            let missing: Vec<&str> = specs
                .iter()
                .map(|s| s.name.as_str())
                .filter(|n| !meta.topic(n).is_some_and(|t| t.all_partitions_led()))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AppError::Config(format!(
                    "topics {missing:?} did not appear in the metadata"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Produces one record and waits for the acknowledgement.
    pub(crate) async fn produce(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<(String, Bytes)>,
    ) -> Result<RecordMetadata, AppError> {
        let mut record = ProducerRecord::new(topic);
        record.partition = partition;
        record.key = key;
        record.value = value;
        for (k, v) in headers {
            record = record.header(k, Some(v));
        }
        Ok(self.producer.send(record).await?)
    }

    /// Queues one record (waiting for room in the producer's buffer, so records queued one
    /// after the other keep their order) and returns the future of its acknowledgement.
    pub(crate) async fn enqueue(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<(String, Bytes)>,
    ) -> Result<crate::agent::Written, AppError> {
        let mut record = ProducerRecord::new(topic);
        record.partition = partition;
        record.key = key;
        record.value = value;
        for (k, v) in headers {
            record = record.header(k, Some(v));
        }
        let delivery = self.producer.enqueue(record).await?;
        let topic = topic.to_owned();
        Ok(Some(Box::pin(async move {
            delivery
                .await
                .map(|_| ())
                .map_err(|e| format!("{topic}: {e}"))
        })))
    }

    /// The reply reader of this process, started at first use.
    pub(crate) async fn replies(&self) -> Result<&ReplyConsumer, AppError> {
        self.replies
            .get_or_try_init(|| async {
                let topic = self.settings.reply_to.clone();
                if self.settings.reply_create_topic {
                    self.ensure_topics(&[TopicSpec {
                        name: topic.clone(),
                        partitions: Some(1),
                        configs: Vec::new(),
                    }])
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

    /// Flushes and closes the producer.
    pub(crate) async fn close(&self) {
        self.producer.flush().await;
        if let Some(r) = self.replies.get() {
            r.close();
        }
    }
}

fn client_config(url: &str, app_id: &str, settings: &Settings) -> Result<ClientConfig, AppError> {
    Ok(ClientConfig::from_url(url)?
        .with_client_id(app_id)
        .with_request_timeout(settings.broker_request_timeout))
}
