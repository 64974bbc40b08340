//! [`Transport`] on a [`Cluster`]: routes from the cached metadata, Produce on each broker's
//! `Produce` connection at the negotiated version, InitProducerId to any broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{BrokerId, InitProducerIdRequest, ProduceRequest, ProducerId};

use crate::cluster::{Cluster, ClusterMetadata, Purpose};
use crate::error::{EngineError, KafkaError};
use crate::producer::sequence::ProducerIdentity;
use crate::producer::transport::{
    poll_once, BoxFuture, InFlight, InitError, TopicRoute, Transport,
};

/// Routes built from one metadata snapshot, by topic.
#[derive(Debug, Default)]
struct RouteCache {
    /// The generation of the snapshot the routes come from; a new snapshot empties the cache.
    generation: Option<u64>,
    routes: HashMap<String, Arc<TopicRoute>>,
    /// The last route asked for, with its topic (most producers write to one topic).
    last: Option<(Box<str>, Arc<TopicRoute>)>,
}

/// The producer's view of a [`Cluster`].
#[derive(Debug)]
pub(crate) struct ClusterTransport {
    cluster: Cluster,
    /// `route` is called for every record: routes are built once per metadata snapshot.
    routes: Mutex<RouteCache>,
    /// How long to wait for a Produce response: the producer's request timeout (which the
    /// broker also gets as `timeout_ms`) plus a margin, so the broker's own timeout answer
    /// arrives before ours fires.
    produce_wait: Duration,
}

impl ClusterTransport {
    pub(crate) fn new(cluster: Cluster, request_timeout: Duration) -> Self {
        ClusterTransport {
            cluster,
            routes: Mutex::new(RouteCache::default()),
            produce_wait: request_timeout + Duration::from_secs(1),
        }
    }
}

impl Transport for ClusterTransport {
    fn route(&self, topic: &str) -> Option<Arc<TopicRoute>> {
        // Per record: the snapshot itself (a lock and a shared count) only when it changed.
        let generation = self.cluster.metadata_generation();
        let mut cache = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.generation != Some(generation) {
            cache.routes.clear();
            cache.last = None;
            cache.generation = None;
        }
        if let Some((name, route)) = &cache.last {
            if **name == *topic {
                return Some(Arc::clone(route));
            }
        }
        if let Some(route) = cache.routes.get(topic) {
            let route = Arc::clone(route);
            cache.last = Some((topic.into(), Arc::clone(&route)));
            return Some(route);
        }
        let metadata = self.cluster.cached_metadata();
        if cache.generation != Some(metadata.generation) {
            cache.routes.clear();
            cache.generation = Some(metadata.generation);
        }
        let route = Arc::new(build_route(&metadata, topic)?);
        cache.routes.insert(topic.to_owned(), Arc::clone(&route));
        cache.last = Some((topic.into(), Arc::clone(&route)));
        Some(route)
    }

    fn refresh(&self, _topics: Vec<Arc<str>>) -> BoxFuture<'_, Result<(), EngineError>> {
        // The cluster's cache holds every topic: one refresh covers them all.
        Box::pin(async move { self.cluster.refresh_metadata().await.map(|_| ()) })
    }

    fn start_produce(
        &self,
        broker: i32,
        request: ProduceRequest,
    ) -> BoxFuture<'_, Result<InFlight, EngineError>> {
        Box::pin(async move {
            // The connection itself, not `Cluster::send`: its send puts the request in the
            // connection's queue on the first poll, which keeps the order of calls.
            let conn = self
                .cluster
                .connection(BrokerId(broker), Purpose::Produce)
                .await?;
            let version = conn.version_of::<ProduceRequest>()?;
            let wait = self.produce_wait;
            let mut in_flight: InFlight = if request.acks == 0 {
                Box::pin(
                    async move { conn.send_no_response(request, version).await.map(|()| None) },
                )
            } else {
                Box::pin(async move {
                    conn.send_with_timeout(request, version, wait)
                        .await
                        .map(Some)
                })
            };
            match poll_once(&mut in_flight).await {
                Poll::Ready(result) => Ok(Box::pin(std::future::ready(result)) as InFlight),
                Poll::Pending => Ok(in_flight),
            }
        })
    }

    fn init_producer_id(&self) -> BoxFuture<'_, Result<ProducerIdentity, InitError>> {
        Box::pin(async move {
            // As the Java client asks for an idempotent (non-transactional) producer id.
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(i32::MAX)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let response = match self.cluster.send_to_any(|_| request).await {
                Ok(r) => r,
                Err(error) => {
                    return Err(match error {
                        EngineError::Versions { .. } => InitError::Unavailable(error),
                        e if e.is_retriable() => InitError::Retriable(e),
                        e => InitError::Unavailable(e),
                    })
                }
            };
            let body = response.body;
            match KafkaError::from_code(body.error_code) {
                None if body.producer_id.0 >= 0 => Ok(ProducerIdentity {
                    producer_id: body.producer_id.0,
                    epoch: body.producer_epoch,
                }),
                None => Err(InitError::Unavailable(EngineError::Protocol {
                    broker: format!("broker {}", response.broker.0),
                    detail: format!(
                        "InitProducerId answered producer id {} without an error",
                        body.producer_id.0
                    ),
                })),
                Some(error) => {
                    let retriable = error.is_retriable()
                        || matches!(error.kind(), ResponseError::ConcurrentTransactions);
                    let error = EngineError::Kafka {
                        api: kafka_protocol::messages::ApiKey::InitProducerId,
                        resource: None,
                        error,
                    };
                    Err(if retriable {
                        InitError::Retriable(error)
                    } else {
                        InitError::Unavailable(error)
                    })
                }
            }
        })
    }
}

/// `topic`'s route in `metadata`.
fn build_route(metadata: &ClusterMetadata, topic: &str) -> Option<TopicRoute> {
    let topic = metadata.topic(topic)?;
    let count = topic
        .partitions
        .iter()
        .map(|p| p.partition.saturating_add(1))
        .max()
        .unwrap_or(0)
        .max(0);
    let mut leaders = vec![None; usize::try_from(count).unwrap_or(0)];
    for p in &topic.partitions {
        if let Some(slot) = usize::try_from(p.partition)
            .ok()
            .and_then(|i| leaders.get_mut(i))
        {
            *slot = p.leader.map(|b| b.0);
        }
    }
    Some(TopicRoute::new(leaders))
}
