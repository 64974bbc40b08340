//! [`WriteTracker`]: follows each record an agent's write queued to its acknowledgement.
//!
//! It awaits each delivery in order and then releases the holds the write took on its source
//! events, so a commit never covers an event whose output could still be lost. A delivery that
//! fails after the producer's retries goes to the agent's error policy: its dead-letter hook
//! takes the source event (which is then done), or, without one, the hold is kept (the event
//! is read again after a restart) and the error is reported to the worker, which stops.
//!
//! A write may carry a step to run once the broker has the record ([`AfterAck`]: a table's
//! durable store applies the change with its changelog offset), in the order the records were
//! queued and before the holds are released; if the step fails, the holds are kept and the
//! worker stops, as for a write that failed.
//!
//! At most [`MAX_PENDING_WRITES`] records are followed at once: past it, writers wait for
//! room ([`WriteTracker::has_room`], [`WriteTracker::room`]), so an agent that writes faster
//! than acknowledgements are followed is slowed down instead of growing the backlog.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use mephisto_engine::producer::{Delivery, RecordMetadata};
use tokio::sync::{mpsc, watch, Notify};

use crate::core::ack::Hold;
use crate::core::error::{AgentError, BoxError, WriteError};
use crate::core::event::{Coordinate, EventId, Message};
use crate::core::sink::{FailureHook, WriteFor};
use crate::core::stream::CurrentEvent;

/// The holds one record keeps (no allocation for a single event).
enum Holds {
    None,
    One(Hold),
    Many(Vec<Hold>),
}

impl Holds {
    fn of(event: &WriteFor<'_>) -> Holds {
        match event.acks {
            [] => Holds::None,
            [one] => one.hold().map_or(Holds::None, Holds::One),
            many => Holds::Many(many.iter().filter_map(|a| a.hold()).collect()),
        }
    }

    /// Where the (first) held event was, when its source is a partition.
    fn at(&self) -> Option<EventId> {
        let hold = match self {
            Holds::None => None,
            Holds::One(h) => Some(h),
            Holds::Many(v) => v.first(),
        }?;
        let (topic, partition, offset) = hold.coordinate()?;
        Some(EventId {
            seq: u64::try_from(offset).unwrap_or_default(),
            coordinate: Some(Coordinate {
                topic,
                partition,
                offset,
            }),
        })
    }

    fn keep(self) {
        match self {
            Holds::None => {}
            Holds::One(h) => h.keep(),
            Holds::Many(v) => v.into_iter().for_each(Hold::keep),
        }
    }
}

/// A step run once the broker has a record (with where it was written), before the holds on
/// its source events are released.
pub type AfterAck = Box<dyn FnOnce(&RecordMetadata) -> Result<(), BoxError> + Send>;

/// A queued record followed to its acknowledgement.
struct Pending {
    delivery: Delivery,
    holds: Holds,
    topic: Arc<str>,
    source: Source,
    agent: Arc<str>,
    failure: Option<FailureHook>,
    then: Option<AfterAck>,
}

/// The source event's record, kept only when a dead-letter hook will take it on failure
/// (keeping a record pins its fetch buffer until the write is acknowledged; where the event
/// was is found from its hold otherwise).
enum Source {
    None,
    Record(Message),
}

impl Source {
    fn of(event: &WriteFor<'_>) -> Source {
        match (event.message, event.failure.is_some()) {
            (Some(m), true) => Source::Record(m.clone()),
            _ => Source::None,
        }
    }

    fn id(&self) -> Option<EventId> {
        match self {
            Source::None => None,
            Source::Record(m) => Some(CurrentEvent::of_message(m.clone(), None).id()),
        }
    }
}

/// Most records followed at once (about 150 bytes each while followed).
pub const MAX_PENDING_WRITES: usize = 32 * 1024;

/// What the writers and the tracker's task share.
#[derive(Default)]
struct Counts {
    /// Records followed and not settled.
    pending: AtomicUsize,
    /// Woken when nothing is pending.
    idle: Notify,
    /// Woken when a writer waits for room and half of it is free.
    room: Notify,
    wants_room: AtomicBool,
}

impl Counts {
    /// One record settled.
    fn settled(&self, n: usize) {
        let before = self.pending.fetch_sub(n, Ordering::AcqRel);
        if before == n {
            self.idle.notify_waiters();
        }
        if before - n <= MAX_PENDING_WRITES / 2 && self.wants_room.swap(false, Ordering::AcqRel) {
            self.room.notify_waiters();
        }
    }
}

/// Follows queued records to their acknowledgement; see the [module docs](self).
pub struct WriteTracker {
    tx: mpsc::UnboundedSender<Pending>,
    fatal: watch::Sender<Option<AgentError>>,
    counts: Arc<Counts>,
}

impl WriteTracker {
    /// Starts the tracker's task on the current runtime.
    pub(crate) fn start() -> WriteTracker {
        let (tx, rx) = mpsc::unbounded_channel();
        let fatal = watch::Sender::new(None);
        let counts = Arc::new(Counts::default());
        tokio::spawn(run(rx, fatal.clone(), Arc::clone(&counts)));
        WriteTracker { tx, fatal, counts }
    }

    /// Whether a writer may queue another record now (fewer than [`MAX_PENDING_WRITES`] are
    /// followed); else it waits for [`room`](Self::room).
    pub fn has_room(&self) -> bool {
        self.pending() < MAX_PENDING_WRITES
    }

    /// Waits until fewer than [`MAX_PENDING_WRITES`] records are followed.
    pub async fn room(&self) {
        loop {
            let notified = self.counts.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.counts.wants_room.store(true, Ordering::Release);
            if self.has_room() {
                return;
            }
            notified.await;
        }
    }

    /// Follows `delivery`, holding the acks of `event` until it is acknowledged.
    pub fn track(&self, delivery: Delivery, topic: &Arc<str>, event: WriteFor<'_>) {
        self.track_then(delivery, topic, event, None);
    }

    /// Follows `delivery` as [`track`](Self::track) does, running `then` once the broker has
    /// the record and before the holds are released.
    pub fn track_then(
        &self,
        delivery: Delivery,
        topic: &Arc<str>,
        event: WriteFor<'_>,
        then: Option<AfterAck>,
    ) {
        let pending = Pending {
            then,
            delivery,
            holds: Holds::of(&event),
            topic: Arc::clone(topic),
            source: Source::of(&event),
            agent: Arc::clone(event.agent),
            failure: event.failure.cloned(),
        };
        self.counts.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.tx.send(pending) {
            // The tracker stopped (the runtime is shutting down): nothing releases the holds.
            self.counts.settled(1);
            e.0.holds.keep();
        }
    }

    /// Follows `delivery` for the event the current actor is processing (its ack is held
    /// until the broker has the record and `then` ran). Outside an actor, or with no event
    /// being processed: followed as `outside`'s write with no hold when `outside` names a
    /// writer, else handed back to the caller.
    pub(crate) fn track_current(
        &self,
        delivery: Delivery,
        topic: &Arc<str>,
        then: Option<AfterAck>,
        outside: Option<Arc<str>>,
    ) -> Option<Delivery> {
        let held = crate::core::context::with_actor(|a| {
            let current = a.slot.lock().current.clone();
            (current, Arc::clone(&a.agent), a.failure.clone())
        });
        let (current, agent, failure) = match (held, outside) {
            (Some((Some(c), agent, failure)), _) if c.ack.is_some() => (Some(c), agent, failure),
            (Some((current, agent, failure)), Some(_)) => (current, agent, failure),
            (None, Some(writer)) => (None, writer, None),
            (_, None) => return Some(delivery),
        };
        let acks: Vec<_> = current
            .as_ref()
            .and_then(|c| c.ack.clone())
            .into_iter()
            .collect();
        self.track_then(
            delivery,
            topic,
            WriteFor {
                acks: &acks,
                message: current.as_ref().and_then(|c| c.message.as_ref()),
                agent: &agent,
                failure: failure.as_ref(),
            },
            then,
        );
        None
    }

    /// Records queued and not acknowledged (or failed) yet.
    pub fn pending(&self) -> usize {
        self.counts.pending.load(Ordering::Acquire)
    }

    /// Waits until every tracked record is settled.
    pub async fn drained(&self) {
        loop {
            let notified = self.counts.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.pending() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The first write failure no dead-letter hook took (the worker stops with it).
    pub fn fatal(&self) -> watch::Receiver<Option<AgentError>> {
        self.fatal.subscribe()
    }

    /// Reports a write that failed before it could be tracked (its event stays unacked):
    /// the worker stops with it.
    pub fn report(&self, error: AgentError) {
        tracing::error!(%error, "write failed and the agent has no dead-letter topic; the worker stops");
        report_fatal(&self.fatal, error);
    }
}

/// Records taken from the channel at a time.
const TAKE: usize = 256;

async fn run(
    mut rx: mpsc::UnboundedReceiver<Pending>,
    fatal: watch::Sender<Option<AgentError>>,
    counts: Arc<Counts>,
) {
    let mut taken = Vec::with_capacity(TAKE);
    while rx.recv_many(&mut taken, TAKE).await > 0 {
        let n = taken.len();
        for p in taken.drain(..) {
            settle(p, &fatal).await;
        }
        counts.settled(n);
    }
}

/// Waits for one record's acknowledgement and releases its holds (or applies the agent's
/// error policy to its failure).
async fn settle(p: Pending, fatal: &watch::Sender<Option<AgentError>>) {
    {
        let Pending {
            delivery,
            holds,
            topic,
            source,
            agent,
            failure,
            then,
        } = p;
        let delivered = delivery.await;
        if let (Ok(meta), Some(then)) = (&delivered, then) {
            if let Err(e) = then(meta) {
                let error = AgentError::WriteFailed {
                    agent: agent.to_string(),
                    at: source.id().or_else(|| holds.at()),
                    target: topic.to_string(),
                    source: Box::new(WriteError::AfterAck {
                        topic: topic.to_string(),
                        source: Arc::from(e),
                    }),
                };
                tracing::error!(%agent, %error,
                    "a written record's follow-up failed; the event stays unacked and the worker stops");
                holds.keep();
                report_fatal(fatal, error);
                return;
            }
        }
        if let Err(e) = delivered {
            let error = AgentError::WriteFailed {
                agent: agent.to_string(),
                at: source.id().or_else(|| holds.at()),
                target: topic.to_string(),
                source: Box::new(WriteError::Produce {
                    topic: topic.to_string(),
                    source: Arc::new(e),
                }),
            };
            match (failure, source) {
                (Some(hook), Source::Record(m)) => {
                    let event = CurrentEvent::of_message(m, None);
                    tracing::error!(%agent, %error, "write failed; the source event goes to the dead-letter topic");
                    hook(event, error).await;
                    drop(holds);
                }
                _ => {
                    tracing::error!(%agent, %error,
                        "write failed and the agent has no dead-letter topic; the event stays unacked and the worker stops");
                    holds.keep();
                    report_fatal(fatal, error);
                }
            }
        } else {
            drop(holds);
        }
    }
}

/// Records the first fatal error (the worker stops with it).
fn report_fatal(fatal: &watch::Sender<Option<AgentError>>, error: AgentError) {
    fatal.send_if_modified(|f| {
        if f.is_none() {
            *f = Some(error);
            true
        } else {
            false
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writers_wait_at_the_cap_until_half_of_it_is_free() {
        let tracker = WriteTracker::start();
        tracker
            .counts
            .pending
            .store(MAX_PENDING_WRITES, Ordering::Release);
        assert!(!tracker.has_room());
        let tracker = Arc::new(tracker);
        let waiter = tokio::spawn({
            let t = Arc::clone(&tracker);
            async move { t.room().await }
        });
        tokio::task::yield_now().await;
        // One settled record is not enough to wake it (room comes back by halves).
        tracker.counts.settled(1);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        tracker.counts.settled(MAX_PENDING_WRITES / 2);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert!(tracker.has_room());
    }
}
