//! What the producer needs from the cluster, as a small trait: cached partition routes,
//! metadata refreshes, Produce to a broker and InitProducerId.
//!
//! The producer runs on [`Cluster`](crate::cluster::Cluster) through this trait; the unit tests
//! run it on an in-memory broker, so that retries, sequence handling and back-pressure are
//! tested without sockets.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::error::EngineError;
use crate::producer::sequence::ProducerIdentity;

/// A boxed future, as the trait's async methods return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A Produce request on its way: resolves with the broker's answer.
pub(crate) type InFlight = BoxFuture<'static, Result<Option<ProduceResponse>, EngineError>>;

/// Polls `future` once; `Ready` if it finished on that poll.
pub(crate) async fn poll_once<T>(future: &mut BoxFuture<'_, T>) -> std::task::Poll<T> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx))).await
}

/// A topic's partitions and their leaders, from cached metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicRoute {
    /// Number of partitions (partitions are `0..partitions`).
    pub(crate) partitions: i32,
    /// Leader broker id of partition `i` at index `i`; `None` without a leader.
    pub(crate) leaders: Vec<Option<i32>>,
    /// The partitions that have a leader.
    pub(crate) available: Arc<[i32]>,
}

impl TopicRoute {
    /// The route with leader `leaders[i]` for partition `i`.
    pub(crate) fn new(leaders: Vec<Option<i32>>) -> Self {
        let available = (0..leaders.len())
            .filter(|&i| leaders[i].is_some())
            .filter_map(|i| i32::try_from(i).ok())
            .collect();
        TopicRoute {
            partitions: i32::try_from(leaders.len()).unwrap_or(i32::MAX),
            leaders,
            available,
        }
    }

    /// The leader of `partition`, if it has one.
    pub(crate) fn leader(&self, partition: i32) -> Option<i32> {
        usize::try_from(partition)
            .ok()
            .and_then(|i| self.leaders.get(i))
            .copied()
            .flatten()
    }
}

/// Why InitProducerId gave no producer id.
#[derive(Debug, Clone)]
pub(crate) enum InitError {
    /// The cluster cannot give one: the API is missing or the broker refused for good.
    Unavailable(EngineError),
    /// Try again later (coordinator loading, connection trouble).
    Retriable(EngineError),
}

/// The cluster operations the producer uses; see the module docs.
pub(crate) trait Transport: Send + Sync + 'static {
    /// The cached route of `topic`, without I/O; `None` if the metadata does not have it.
    /// Called for every record: it should not allocate when the metadata has not changed.
    fn route(&self, topic: &str) -> Option<Arc<TopicRoute>>;

    /// Fetches fresh metadata for `topics` (at least), and returns once it is cached.
    fn refresh(&self, topics: Vec<Arc<str>>) -> BoxFuture<'_, Result<(), EngineError>>;

    /// Hands a Produce request to `broker`'s connection and returns the future of its answer:
    /// the response, or `None` when `acks` is 0 (the broker does not answer; the future then
    /// resolves once the request is written).
    ///
    /// Ordering contract: when each call is awaited (and its returned future polled once)
    /// before the next call for the same broker, the requests reach the broker in call order.
    /// Idempotent producing depends on it: a broker processes one connection's requests in
    /// order, and a later batch overtaking an earlier one is OUT_OF_ORDER_SEQUENCE_NUMBER.
    fn start_produce(
        &self,
        broker: i32,
        request: ProduceRequest,
    ) -> BoxFuture<'_, Result<InFlight, EngineError>>;

    /// InitProducerId without a transactional id, to any broker.
    fn init_producer_id(&self) -> BoxFuture<'_, Result<ProducerIdentity, InitError>>;
}

#[cfg(test)]
mod tests {
    use super::TopicRoute;

    #[test]
    fn route_lists_partitions_with_a_leader() {
        let route = TopicRoute::new(vec![Some(1), None, Some(2), None]);
        assert_eq!(route.partitions, 4);
        assert_eq!(&*route.available, &[0, 2]);
        assert_eq!(
            (route.leader(0), route.leader(1), route.leader(9)),
            (Some(1), None, None)
        );
        assert_eq!(TopicRoute::new(Vec::new()).partitions, 0);
    }
}
