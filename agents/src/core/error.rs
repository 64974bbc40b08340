//! The core's errors: [`AgentError`] (an agent or one of its events failed) and
//! [`WriteError`] (a sink or reply could not write a value).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::core::codec::CodecError;
use crate::core::event::EventId;

/// A boxed error, as agent functions return.
pub use crate::core::codec::BoxError;

/// Why an agent (or one of its events) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The agent function returned an error.
    #[error("agent {agent} raised an error{}: {source}", at_suffix(.at))]
    Failed {
        /// Agent name.
        agent: String,
        /// The event it was processing, if any.
        at: Option<EventId>,
        /// The error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The agent function panicked.
    #[error("agent {agent} panicked{}: {message}", at_suffix(.at))]
    Panicked {
        /// Agent name.
        agent: String,
        /// The event it was processing, if any.
        at: Option<EventId>,
        /// The panic message.
        message: String,
    },
    /// A value the agent yielded could not be written (a sink, a reply or a forward) and the
    /// agent has no dead-letter topic to take the event: the worker stops, and the event is
    /// read again after a restart.
    #[error("agent {agent}: writing to {target} failed{}: {source}", at_suffix(.at))]
    WriteFailed {
        /// Agent name.
        agent: String,
        /// The event whose output failed.
        at: Option<EventId>,
        /// Where it was written (a topic, or a sink's description).
        target: String,
        /// Why.
        #[source]
        source: Box<WriteError>,
    },
    /// The supervisor's restart limit was exceeded; the agent stopped.
    #[error(
        "agent {agent} stopped: more than {max_restarts} restarts within {within:?}; last: {last}"
    )]
    TooManyRestarts {
        /// Agent name.
        agent: String,
        /// The limit.
        max_restarts: u32,
        /// The window.
        within: Duration,
        /// The crash that exceeded it.
        last: Box<AgentError>,
    },
    /// Sinks were given to an agent that does not yield (Faust: `Agent must yield to use sinks`).
    #[error("agent {agent} must yield to use sinks")]
    SinksWithoutYield {
        /// Agent name.
        agent: String,
    },
    /// The agent is configured in a way that cannot work (Faust's `ImproperlyConfigured`).
    #[error("agent {agent} is misconfigured: {reason}")]
    Misconfigured {
        /// Agent name.
        agent: String,
        /// What is wrong.
        reason: String,
    },
    /// The agent is not running (stopped, or its channel closed).
    #[error("agent {agent} is not running")]
    Stopped {
        /// Agent name.
        agent: String,
    },
}

fn at_suffix(at: &Option<EventId>) -> String {
    match at {
        Some(id) => format!(" on {id}"),
        None => String::new(),
    }
}

impl AgentError {
    /// The event the error happened on, when known (for `TooManyRestarts`, the last crash's).
    pub fn event(&self) -> Option<&EventId> {
        match self {
            AgentError::Failed { at, .. }
            | AgentError::Panicked { at, .. }
            | AgentError::WriteFailed { at, .. } => at.as_ref(),
            AgentError::TooManyRestarts { last, .. } => last.event(),
            _ => None,
        }
    }
}

/// Why a value could not be written.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The value (or key) does not encode.
    #[error(transparent)]
    Encode(Arc<CodecError>),
    /// The producer refused or failed the record (after its retries).
    #[error("producing to {topic}: {source}")]
    Produce {
        /// The topic.
        topic: String,
        /// The producer's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The broker has the record, but what had to follow it failed (a table's durable store
    /// could not apply the change).
    #[error("after writing to {topic}: {source}")]
    AfterAck {
        /// The topic.
        topic: String,
        /// The failure.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The target (a channel, an agent) is closed.
    #[error("{target} is closed")]
    Closed {
        /// What was written to.
        target: String,
    },
}

impl From<CodecError> for WriteError {
    fn from(e: CodecError) -> Self {
        WriteError::Encode(Arc::new(e))
    }
}

/// A panic payload as text.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// `topic[partition]@offset`, or `-` for channel events, for log fields.
pub(crate) struct At<'a>(pub(crate) Option<&'a EventId>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.and_then(|id| id.coordinate.as_ref()) {
            Some(c) => c.fmt(f),
            None => f.write_str("-"),
        }
    }
}
