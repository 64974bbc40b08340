//! One actor of an agent: runs the agent function over a stream of the agent's source, sends
//! each yielded value to the reply and the sinks, and handles the function's errors and
//! panics (retry, dead letter, ack, restart under the supervisor's limit). See
//! [`Agent`](crate::core::agent::Agent) for the rules.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tracing::Instrument;

use crate::core::ack::AckRef;
use crate::core::agent::Agent;
use crate::core::channel::Channel;
use crate::core::context::{self, ActorContext};
use crate::core::error::{panic_message, AgentError, At, BoxError, WriteError};
use crate::core::event::{Event, EventId, Message};
use crate::core::policy::Restarts;
use crate::core::reqrep::ReplyTo;
use crate::core::sink::{dispatch, Attempt, WriteFor};
use crate::core::slot::Slot;
use crate::core::stream::CurrentEvent;

/// How one run of the agent function ended.
enum Outcome {
    /// The function returned, or its stream ended.
    Finished,
    /// It returned an error.
    Error(BoxError),
    /// It (or a sink) panicked.
    Panic(String),
    /// A yielded value could not be written.
    Write(String, WriteError),
}

/// What the actor needs of the current event after a yield.
struct Yielded {
    reply: Option<(ReplyTo, Option<serde_json::Value>)>,
    /// The acks of the event, or of every event of a `take` batch.
    acks: YieldAcks,
    message: Option<Message>,
    seq: u64,
    id: Option<EventId>,
}

pub(crate) async fn run_actor<K, V, O>(
    agent: Agent<K, V, O>,
    actor: usize,
    restarts: Arc<Mutex<Restarts>>,
) -> Result<(), AgentError>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    let slot = Slot::default();
    let mut retrying: Option<(EventId, u32)> = None;
    loop {
        // Every log line of the agent's code names the agent, the actor and the event it is on;
        // the stream records `event` each time it hands one out.
        let span = tracing::error_span!(
            "agent",
            name = %agent.name,
            actor,
            event = tracing::field::Empty
        );
        let stream = agent
            .channel
            .stream()
            .with_slot(slot.clone())
            .exclusive(agent.concurrency == 1)
            .keep_copies(agent.retry.is_some())
            .with_key_json(agent.key_json);
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| (agent.fun)(stream))) {
            Ok(out) => {
                let context = ActorContext {
                    slot: slot.clone(),
                    agent: Arc::clone(&agent.name),
                    failure: agent.failure.clone(),
                };
                context::scope(context, drive(&agent, out, &slot, &span, &mut retrying)).await
            }
            Err(p) => Outcome::Panic(panic_message(p.as_ref())),
        };
        let (current, fatal) = {
            let mut s = slot.lock();
            (s.current.clone(), s.fatal.take())
        };
        if let Some(error) = fatal {
            give_up_slot(&slot, &agent.channel);
            return Err(error);
        }
        let at = current.as_ref().map(|c| c.id());
        let error = match outcome {
            Outcome::Finished => {
                // The function is done with its last event (or batch).
                let acks = {
                    let mut s = slot.lock();
                    if s.auto_ack {
                        s.take_acks()
                    } else {
                        Vec::new()
                    }
                };
                for a in acks {
                    a.ack();
                }
                give_up_slot(&slot, &agent.channel);
                tracing::debug!(agent = %agent.name, actor, "actor finished");
                return Ok(());
            }
            Outcome::Error(source) => AgentError::Failed {
                agent: agent.name.to_string(),
                at: at.clone(),
                source: Arc::from(source),
            },
            Outcome::Panic(message) => AgentError::Panicked {
                agent: agent.name.to_string(),
                at: at.clone(),
                message,
            },
            Outcome::Write(target, source) => AgentError::WriteFailed {
                agent: agent.name.to_string(),
                at: at.clone(),
                target,
                source: Box::new(source),
            },
        };
        // Retry: redeliver the event (or batch) to the restarted actor, unacked.
        if let (Some(policy), Some(id)) = (agent.retry, at.clone()) {
            let attempt = match &retrying {
                Some((rid, n)) if *rid == id => n + 1,
                _ => 2,
            };
            let copies = slot.lock().copies.as_mut().map(std::mem::take);
            if let Some(copies) = copies.filter(|c| !c.is_empty()) {
                if attempt <= policy.max_attempts {
                    let delay = policy.delay(attempt);
                    tracing::warn!(
                        agent = %agent.name, actor, seq = id.seq,
                        coordinate = %At(Some(&id)), attempt, ?delay, %error,
                        "agent failed on event; retrying it"
                    );
                    {
                        let mut s = slot.lock();
                        s.current = None;
                        s.batch.clear();
                        let rest = std::mem::take(&mut s.redeliver);
                        s.redeliver = copies;
                        s.redeliver.extend(rest);
                    }
                    tokio::time::sleep(delay).await;
                    retrying = Some((id, attempt));
                    continue;
                }
            }
        }
        retrying = None;
        if let (Some(obs), Some(c)) = (&agent.observer, &current) {
            obs.on_error(c.seq, &error);
        }
        let write_failed = matches!(error, AgentError::WriteFailed { .. });
        match (&agent.failure, &current) {
            // The dead letter is written before the ack can be committed.
            (Some(failure), Some(c)) => {
                failure(CurrentEvent::from_current(c.clone()), error.clone()).await;
            }
            _ if write_failed => {
                // Nowhere to put the event: stop; it is read again after a restart.
                tracing::error!(agent = %agent.name, actor, seq = at.as_ref().map(|a| a.seq),
                    coordinate = %At(at.as_ref()), %error,
                    "agent output could not be written and there is no dead-letter topic; stopping");
                give_up_slot(&slot, &agent.channel);
                return Err(error);
            }
            _ => {}
        }
        // Faust: the event is acked and not processed again.
        let acks = slot.lock().take_acks();
        for a in acks {
            a.ack();
        }
        tracing::error!(
            agent = %agent.name, actor, seq = at.as_ref().map(|a| a.seq),
            coordinate = %At(at.as_ref()), %error,
            "agent raised an error; event acked, restarting actor"
        );
        let allowed = restarts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(agent.supervisor);
        if !allowed {
            tracing::error!(agent = %agent.name, "restart limit exceeded; agent stopped");
            give_up_slot(&slot, &agent.channel);
            return Err(AgentError::TooManyRestarts {
                agent: agent.name.to_string(),
                max_restarts: agent.supervisor.max_restarts,
                within: agent.supervisor.within,
                last: Box::new(error),
            });
        }
    }
}

/// The actor ends: events its stream had taken and not handed out go back to the front of
/// the agent's queue (another actor takes them, or the worker acks them for an agent that
/// finished and gives them up for one that failed); retry copies are dropped.
fn give_up_slot<K: Clone + Send + 'static, V: Clone + Send + 'static>(
    slot: &Slot,
    channel: &Channel<K, V>,
) {
    let left: Vec<Event<K, V>> = {
        let mut s = slot.lock();
        if let Some(c) = &mut s.copies {
            c.clear();
        }
        std::mem::take(&mut s.redeliver)
            .into_iter()
            .filter_map(|b| b.downcast::<Event<K, V>>().ok().map(|ev| *ev))
            .collect()
    };
    if !left.is_empty() {
        channel.queue().return_front(left);
    }
}

/// Runs the function's output until it ends or fails.
async fn drive<K, V, O>(
    agent: &Agent<K, V, O>,
    mut out: BoxStream<'static, Result<O, BoxError>>,
    slot: &Slot,
    span: &tracing::Span,
    retrying: &mut Option<(EventId, u32)>,
) -> Outcome
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    loop {
        let next = AssertUnwindSafe(out.next())
            .catch_unwind()
            .instrument(span.clone())
            .await;
        match next {
            Ok(Some(Ok(value))) => {
                let y = yielded(slot, retrying.is_some(), agent.failure.is_some());
                if let (Some((rid, _)), Some(id)) = (retrying.as_ref(), y.id.as_ref()) {
                    if rid != id {
                        *retrying = None;
                    }
                }
                if let Some(obs) = &agent.observer {
                    obs.on_yield(y.seq, &value);
                }
                // A sink or reply that panics crashes the actor like the agent function would
                // (Faust calls sinks inside the actor).
                let sent = AssertUnwindSafe(deliver(agent, &y, value))
                    .catch_unwind()
                    .instrument(span.clone())
                    .await;
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err((target, e))) => return Outcome::Write(target, e),
                    Err(p) => return Outcome::Panic(panic_message(p.as_ref())),
                }
            }
            Ok(Some(Err(e))) => return Outcome::Error(e),
            Ok(None) => return Outcome::Finished,
            Err(p) => return Outcome::Panic(panic_message(p.as_ref())),
        }
    }
}

/// The acks a yielded value is for (no allocation for the usual single event).
enum YieldAcks {
    None,
    One(AckRef),
    Many(Vec<AckRef>),
}

impl YieldAcks {
    fn as_slice(&self) -> &[AckRef] {
        match self {
            YieldAcks::None => &[],
            YieldAcks::One(a) => std::slice::from_ref(a),
            YieldAcks::Many(v) => v,
        }
    }
}

/// What the current event gives the writes of a value yielded for it: its acks, reply address,
/// id when retrying, and its message only when a dead-letter hook may need the record (else
/// a failed write names the event by its hold).
fn yielded(slot: &Slot, with_id: bool, with_message: bool) -> Yielded {
    let s = slot.lock();
    match &s.current {
        Some(c) => Yielded {
            reply: c.reply.clone(),
            acks: match &c.ack {
                Some(a) => YieldAcks::One(a.clone()),
                None if !s.batch.is_empty() => YieldAcks::Many(s.batch.clone()),
                None => YieldAcks::None,
            },
            message: if with_message {
                c.message.clone()
            } else {
                None
            },
            seq: c.seq,
            id: with_id.then(|| c.id()),
        },
        None => Yielded {
            reply: None,
            acks: YieldAcks::None,
            message: None,
            seq: 0,
            id: None,
        },
    }
}

/// Sends a yielded value to the reply (when the event asked for one) and the sinks.
async fn deliver<K, V, O>(
    agent: &Agent<K, V, O>,
    y: &Yielded,
    value: O,
) -> Result<(), (String, WriteError)>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    let event = WriteFor {
        acks: y.acks.as_slice(),
        message: y.message.as_ref(),
        agent: &agent.name,
        failure: agent.failure.as_ref(),
    };
    if let Some((to, key)) = &y.reply {
        match &agent.replier {
            Some(replier) => match replier.try_reply(to, key.as_ref(), &value, event) {
                Attempt::Done => {}
                Attempt::Failed(e) => return Err((to.topic.clone(), e)),
                Attempt::WouldBlock => replier
                    .reply(to, key.as_ref(), &value, event)
                    .await
                    .map_err(|e| (to.topic.clone(), e))?,
            },
            None => tracing::warn!(
                agent = %agent.name, seq = y.seq,
                "event asks for a reply but the agent has no replier"
            ),
        }
    }
    dispatch(&agent.sinks, value, event).await
}
