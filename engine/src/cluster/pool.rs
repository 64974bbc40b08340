//! The connection pool: at most one live connection per (broker, [`Purpose`]), opened on first
//! use, reopened with exponential backoff and jitter after it dies.
//!
//! Separate purposes get separate TCP connections, so a Fetch the broker holds for
//! `max_wait_ms` never delays a heartbeat or a produce queued behind it (Kafka answers the
//! requests of one connection in order).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::{ApiKey, BrokerId};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::broker_url::BrokerAddr;
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::EngineError;

/// Which connection to a broker a request travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Metadata, admin, ListOffsets, offset commits and everything else that is quick.
    Default,
    /// Produce requests.
    Produce,
    /// Fetch requests, which the broker may hold for up to their max wait.
    Fetch,
    /// Consumer-group coordination (JoinGroup and SyncGroup can be held for a whole
    /// rebalance; heartbeats must not queue behind fetches).
    Group,
}

impl Purpose {
    /// The connection an API goes on by default: Produce → `Produce`, Fetch → `Fetch`,
    /// JoinGroup / SyncGroup / Heartbeat / LeaveGroup → `Group`, everything else `Default`.
    pub fn for_api(api: ApiKey) -> Self {
        match api {
            ApiKey::Produce => Self::Produce,
            ApiKey::Fetch => Self::Fetch,
            ApiKey::JoinGroup | ApiKey::SyncGroup | ApiKey::Heartbeat | ApiKey::LeaveGroup => {
                Self::Group
            }
            _ => Self::Default,
        }
    }
}

/// One pool entry.
#[derive(Debug)]
struct Slot {
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    conn: Option<Connection>,
    backoff: Backoff,
    /// No new connect attempt before this instant.
    retry_at: Option<Instant>,
    /// The last failed attempt: when, and why.
    failure: Option<(Instant, EngineError)>,
}

/// Connections by (broker id, purpose).
#[derive(Debug, Default)]
pub(super) struct Pool {
    slots: Mutex<HashMap<(BrokerId, Purpose), Arc<Slot>>>,
}

impl Pool {
    /// The live connection for `(id, purpose)` to `addr`, opening one if needed.
    ///
    /// Concurrent callers share one connect attempt: callers that queued behind a failed attempt
    /// get its error instead of trying again at once. After a failure, the next attempt waits
    /// for the reconnect backoff.
    pub(super) async fn get(
        &self,
        id: BrokerId,
        purpose: Purpose,
        addr: &BrokerAddr,
        config: &ClientConfig,
    ) -> Result<Connection, EngineError> {
        let arrived = Instant::now();
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(slots.entry((id, purpose)).or_insert_with(|| {
                Arc::new(Slot {
                    state: tokio::sync::Mutex::new(SlotState {
                        conn: None,
                        backoff: Backoff::new(
                            config.reconnect_backoff,
                            config.reconnect_backoff_max,
                        ),
                        retry_at: None,
                        failure: None,
                    }),
                })
            }))
        };
        let mut state = slot.state.lock().await;
        if let Some(conn) = &state.conn {
            if !conn.is_closed() && conn.broker() == addr {
                return Ok(conn.clone());
            }
            tracing::debug!(broker = %addr, ?purpose, "replacing dead connection");
        }
        state.conn = None;
        if let Some((at, error)) = &state.failure {
            if *at > arrived {
                return Err(error.clone());
            }
        }
        if let Some(at) = state.retry_at {
            tokio::time::sleep_until(at).await;
        }
        match Connection::connect(addr, config).await {
            Ok(conn) => {
                state.backoff.reset();
                state.retry_at = None;
                state.failure = None;
                state.conn = Some(conn.clone());
                Ok(conn)
            }
            Err(error) => {
                let now = Instant::now();
                state.retry_at = Some(now + state.backoff.next_delay());
                state.failure = Some((now, error.clone()));
                Err(error)
            }
        }
    }

    /// A live connection of any purpose to `id`, if one exists (no connecting).
    pub(super) fn any_live(&self, id: BrokerId) -> Option<Connection> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .iter()
            .filter(|((b, _), _)| *b == id)
            .find_map(|(_, slot)| {
                let state = slot.state.try_lock().ok()?;
                state.conn.as_ref().filter(|c| !c.is_closed()).cloned()
            })
    }

    /// Ids of brokers with a live connection right now.
    pub(super) fn live_brokers(&self) -> Vec<BrokerId> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<BrokerId> = slots
            .iter()
            .filter(|(_, slot)| {
                slot.state
                    .try_lock()
                    .is_ok_and(|s| s.conn.as_ref().is_some_and(|c| !c.is_closed()))
            })
            .map(|((id, _), _)| *id)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Closes (drops) the connections to brokers not in `keep`.
    pub(super) fn retain(&self, keep: impl Fn(BrokerId) -> bool) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|(id, _), _| keep(*id));
    }
}
