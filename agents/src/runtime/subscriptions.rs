//! [`Subscriptions`]: the topics a worker reads and their routes, shared by the worker, its
//! partition tasks and the streams of its agents (a `group_by` or `through` adds a topic while
//! the worker runs: the topic is created when missing, its route added, and the consumer
//! subscribes to it, which rebalances the group).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use mephisto_engine::group::GroupConsumer;

use crate::runtime::client::Client;
use crate::runtime::error::RuntimeError;
use crate::runtime::route::{RouteTable, TopicRoute};
use crate::runtime::topics::TopicSpec;

#[derive(Default)]
struct State {
    /// Routes of topics being set up (merged as agents are added).
    building: RouteTable,
    /// Routes by topic, as partition tasks take them.
    routes: BTreeMap<String, Arc<[Arc<dyn TopicRoute>]>>,
    consumer: Option<Arc<GroupConsumer>>,
}

/// See the [module docs](self).
pub struct Subscriptions {
    client: Arc<Client>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions")
            .field("topics", &self.topics())
            .finish()
    }
}

impl Subscriptions {
    pub(crate) fn new(client: Arc<Client>) -> Self {
        Subscriptions {
            client,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Adds routes to the table being built (at worker start, before the table is sealed).
    pub fn build(&self, f: impl FnOnce(&mut RouteTable)) {
        f(&mut self.lock().building);
    }

    /// Turns what was built into routes.
    pub(crate) fn seal(&self) {
        let mut state = self.lock();
        for topic in state.building.topics() {
            let routes = state.building.take(&topic);
            let entry = state
                .routes
                .entry(topic)
                .or_insert_with(|| Arc::from(Vec::new()));
            let mut all: Vec<Arc<dyn TopicRoute>> = entry.iter().cloned().collect();
            all.extend(routes);
            *entry = Arc::from(all);
        }
    }

    /// The routes of `topic`.
    pub(crate) fn routes(&self, topic: &str) -> Arc<[Arc<dyn TopicRoute>]> {
        self.lock()
            .routes
            .get(topic)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// The topics read.
    pub fn topics(&self) -> Vec<String> {
        self.lock().routes.keys().cloned().collect()
    }

    pub(crate) fn set_consumer(&self, consumer: Arc<GroupConsumer>) {
        let topics = {
            let mut state = self.lock();
            state.consumer = Some(Arc::clone(&consumer));
            state.routes.keys().cloned().collect::<Vec<_>>()
        };
        consumer.subscribe(topics);
    }

    /// Reads `spec`'s topic too, with the routes `add` builds (once per topic: a second call
    /// for a topic already read does nothing). Creates the topic when missing and subscribes
    /// the consumer to it.
    pub async fn attach(
        &self,
        spec: TopicSpec,
        add: impl FnOnce(&mut RouteTable),
    ) -> Result<(), RuntimeError> {
        if self.lock().routes.contains_key(&spec.name) {
            return Ok(());
        }
        self.client
            .ensure_topics(std::slice::from_ref(&spec))
            .await?;
        let (consumer, topics) = {
            let mut state = self.lock();
            if state.routes.contains_key(&spec.name) {
                return Ok(());
            }
            let mut table = RouteTable::new();
            add(&mut table);
            let routes: Vec<Arc<dyn TopicRoute>> = table.take(&spec.name);
            state.routes.insert(spec.name.clone(), Arc::from(routes));
            (
                state.consumer.clone(),
                state.routes.keys().cloned().collect::<Vec<_>>(),
            )
        };
        if let Some(consumer) = consumer {
            tracing::info!(topic = %spec.name, "worker now also reads this topic; rejoining the group");
            consumer.subscribe(topics);
        }
        Ok(())
    }
}
