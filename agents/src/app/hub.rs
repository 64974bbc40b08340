//! [`Hub`]: what a running worker shares with its agents' streams: the routes from topics to
//! agent queues (growing when a `group_by` or `through` attaches a topic), the consumer-group
//! member (re-subscribed when a topic is attached), and the app's producer. [`StreamWiring`]
//! is the [`TopicContext`] a topic agent's stream gets.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use mephisto_engine::group::GroupConsumer;
use mephisto_engine::producer::ProducerRecord;

use crate::agent::AgentHandle;
use crate::app::client::Client;
use crate::app::route::Route;
use crate::app::topic::TopicSpec;
use crate::repartition::{Acked, TopicContext};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A worker's shared wiring.
pub(crate) struct Hub {
    client: Arc<Client>,
    capacity: usize,
    routes: Mutex<BTreeMap<String, Route>>,
    consumer: Mutex<Option<Arc<GroupConsumer>>>,
    shared: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
    adopted: Mutex<Vec<AgentHandle>>,
}

impl Hub {
    /// Keeps an agent instance started by a route (`isolated_partitions`), to stop it with
    /// the worker.
    pub(crate) fn adopt(&self, handle: AgentHandle) {
        lock(&self.adopted).push(handle);
    }

    /// Stops the adopted instances.
    pub(crate) fn stop_adopted(&self) {
        for h in lock(&self.adopted).drain(..) {
            h.stop();
        }
    }

    pub(crate) fn new(client: Arc<Client>, capacity: usize) -> Arc<Hub> {
        Arc::new(Hub {
            client,
            capacity,
            routes: Mutex::new(BTreeMap::new()),
            consumer: Mutex::new(None),
            shared: Mutex::new(HashMap::new()),
            adopted: Mutex::new(Vec::new()),
        })
    }

    /// Adds a route at start; `false` if the topic already has one.
    pub(crate) fn add_route(&self, topic: String, route: Route) -> bool {
        let mut routes = lock(&self.routes);
        if routes.contains_key(&topic) {
            return false;
        }
        routes.insert(topic, route);
        true
    }

    /// The route of `topic`.
    pub(crate) fn route(&self, topic: &str) -> Option<Route> {
        lock(&self.routes).get(topic).cloned()
    }

    /// The topics with a route.
    pub(crate) fn topics(&self) -> Vec<String> {
        lock(&self.routes).keys().cloned().collect()
    }

    /// Sets the member and subscribes it to every routed topic.
    pub(crate) fn set_consumer(&self, consumer: Arc<GroupConsumer>) {
        let routes = lock(&self.routes);
        consumer.subscribe(routes.keys().cloned());
        *lock(&self.consumer) = Some(consumer);
    }

    async fn attach(self: Arc<Self>, topic: String, route: Route) -> Result<(), String> {
        if lock(&self.routes).contains_key(&topic) {
            return Ok(());
        }
        self.client
            .ensure_topics(&[TopicSpec {
                name: topic.clone(),
                partitions: None,
                configs: Vec::new(),
            }])
            .await
            .map_err(|e| e.to_string())?;
        let routes = {
            let mut routes = lock(&self.routes);
            if routes.contains_key(&topic) {
                return Ok(());
            }
            routes.insert(topic.clone(), route);
            let consumer = lock(&self.consumer).clone();
            consumer.map(|c| (c, routes.keys().cloned().collect::<Vec<_>>()))
        };
        if let Some((consumer, topics)) = routes {
            tracing::info!(%topic, "worker now also reads this topic; rejoining the group");
            consumer.subscribe(topics);
        }
        Ok(())
    }
}

/// The [`TopicContext`] of one agent's stream over one topic.
pub(crate) struct StreamWiring {
    pub(crate) hub: Arc<Hub>,
    pub(crate) agent: String,
    pub(crate) topic: String,
}

impl TopicContext for StreamWiring {
    fn agent(&self) -> &str {
        &self.agent
    }

    fn source_topic(&self) -> &str {
        &self.topic
    }

    fn capacity(&self) -> usize {
        self.hub.capacity
    }

    fn enqueue(
        &self,
        topic: String,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<(String, Bytes)>,
    ) -> BoxFuture<'static, Result<Acked, String>> {
        let producer = self.hub.client.producer.clone();
        async move {
            let mut record = ProducerRecord::new(topic);
            record.key = key;
            record.value = value;
            for (k, v) in headers {
                record = record.header(k, Some(v));
            }
            let delivery = producer.enqueue(record).await.map_err(|e| e.to_string())?;
            let acked: Acked =
                async move { delivery.await.map(|_| ()).map_err(|e| e.to_string()) }.boxed();
            Ok(acked)
        }
        .boxed()
    }

    fn attach(&self, topic: String, route: Route) -> BoxFuture<'static, Result<(), String>> {
        self.hub.clone().attach(topic, route).boxed()
    }

    fn shared(
        &self,
        key: &str,
        make: &mut dyn FnMut() -> Arc<dyn Any + Send + Sync>,
    ) -> Arc<dyn Any + Send + Sync> {
        lock(&self.hub.shared)
            .entry(format!("{}/{key}", self.agent))
            .or_insert_with(make)
            .clone()
    }

    fn for_topic(&self, topic: String) -> Arc<dyn TopicContext> {
        Arc::new(StreamWiring {
            hub: self.hub.clone(),
            agent: self.agent.clone(),
            topic,
        })
    }
}
