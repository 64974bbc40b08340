//! The supervisor of an agent's actors: [`Agent::start`] runs `concurrency` actors and
//! returns an [`AgentHandle`] that ends when they all have (or one stops the agent).

use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

use crate::core::actor::run_actor;
use crate::core::agent::Agent;
use crate::core::error::AgentError;
use crate::core::policy::Restarts;

impl<K, V, O> Agent<K, V, O>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    /// Starts the actors on the current tokio runtime.
    pub fn start(&self) -> Result<AgentHandle, AgentError> {
        if !self.yields() && !self.sinks.is_empty() {
            return Err(AgentError::SinksWithoutYield {
                agent: self.name.to_string(),
            });
        }
        let restarts = Arc::new(Mutex::new(Restarts::default()));
        let mut set = JoinSet::new();
        for actor in 0..self.concurrency {
            set.spawn(run_actor(self.clone(), actor, Arc::clone(&restarts)));
        }
        let name = self.name.to_string();
        let handle_name = name.clone();
        let supervisor = tokio::spawn(async move {
            while let Some(res) = set.join_next().await {
                match res {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(join) if join.is_cancelled() => {}
                    Err(_) => {
                        return Err(AgentError::Stopped { agent: name });
                    }
                }
            }
            Ok(())
        });
        Ok(AgentHandle {
            name: handle_name,
            supervisor,
        })
    }
}

/// A running agent.
pub struct AgentHandle {
    name: String,
    supervisor: tokio::task::JoinHandle<Result<(), AgentError>>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until every actor has finished: `Ok` when the function returned or the source
    /// ended, the error when the agent stopped on one (restart limit, a failed write with no
    /// dead-letter topic, a misconfiguration).
    pub async fn join(self) -> Result<(), AgentError> {
        let AgentHandle { name, supervisor } = self;
        match supervisor.await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(_) => Err(AgentError::Stopped { agent: name }),
        }
    }

    /// Stops the actors.
    pub fn stop(&self) {
        self.supervisor.abort();
    }

    /// Whether the agent has stopped.
    pub fn is_finished(&self) -> bool {
        self.supervisor.is_finished()
    }

    /// A handle that stops the agent.
    pub fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.supervisor.abort_handle()
    }
}
