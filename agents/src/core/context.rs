//! The actor an agent's code runs in, as a task-local (Faust's `current_event()` context
//! variable): code called from an agent function (a table write) finds the event being
//! processed, its ack and the agent's name without being handed them.

use std::sync::Arc;

use crate::core::sink::FailureHook;
use crate::core::slot::Slot;
use crate::core::stream::CurrentEvent;

/// What an actor shares with the code it runs.
#[derive(Clone)]
pub(crate) struct ActorContext {
    pub(crate) slot: Slot,
    pub(crate) agent: Arc<str>,
    pub(crate) failure: Option<FailureHook>,
}

tokio::task_local! {
    static ACTOR: ActorContext;
}

/// Runs `fut` with `context` as its actor.
pub(crate) async fn scope<F: std::future::Future>(context: ActorContext, fut: F) -> F::Output {
    ACTOR.scope(context, fut).await
}

/// Calls `f` with the current actor, if the caller runs in one.
pub(crate) fn with_actor<R>(f: impl FnOnce(&ActorContext) -> R) -> Option<R> {
    ACTOR.try_with(f).ok()
}

/// The event the calling agent code is processing (Faust's `current_event()`); `None` outside
/// an agent, or before its stream handed out an event.
pub fn current_event() -> Option<CurrentEvent> {
    with_actor(|a| {
        a.slot
            .lock()
            .current
            .clone()
            .map(CurrentEvent::from_current)
    })
    .flatten()
}

/// The partition of the event the calling agent code is processing, without copying the event
/// (a table read asks it every time).
pub fn current_partition() -> Option<i32> {
    with_actor(|a| {
        a.slot
            .lock()
            .current
            .as_ref()
            .and_then(|c| c.message.as_ref().map(|m| m.partition))
    })
    .flatten()
}
