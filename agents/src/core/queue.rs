//! [`Queue`]: the bounded queue between an agent's senders (partition tasks, channel senders)
//! and its actors. Many producers, many consumers, FIFO.
//!
//! It is built for the per-event path: a producer pushes a whole fetched batch under one lock
//! (waiting for room when the queue is full: back-pressure, resumed once half the queue is
//! free), a consumer that is alone on the queue takes up to a batch in one lock too, and
//! nothing is allocated per item beyond the ring buffer's growth up to its capacity. Waiting is
//! done with wakers kept in the queue, so a stream polls it without boxing a future.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The queue was closed: nothing more is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue is closed")]
pub struct Closed;

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    readers: Vec<Waker>,
    writers: Vec<Waker>,
}

/// A bounded FIFO queue; see the [module docs](self).
pub struct Queue<T> {
    state: Mutex<State<T>>,
    capacity: usize,
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

fn register(wakers: &mut Vec<Waker>, waker: &Waker) {
    if !wakers.iter().any(|w| w.will_wake(waker)) {
        wakers.push(waker.clone());
    }
}

impl<T> Queue<T> {
    /// A queue holding at most `capacity` (at least 1) items.
    pub fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                readers: Vec::new(),
                writers: Vec::new(),
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Refuses new items; readers get what is queued, then the end. Waiting writers get
    /// [`Closed`].
    pub fn close(&self) {
        let (readers, writers) = {
            let mut s = self.lock();
            s.closed = true;
            (
                std::mem::take(&mut s.readers),
                std::mem::take(&mut s.writers),
            )
        };
        readers.into_iter().chain(writers).for_each(Waker::wake);
    }

    /// Takes every queued item out (for a stopping worker that gives them up).
    pub fn drain(&self) -> Vec<T> {
        let (items, writers) = {
            let mut s = self.lock();
            (s.items.drain(..).collect(), std::mem::take(&mut s.writers))
        };
        writers.into_iter().for_each(Waker::wake);
        items
    }

    /// Puts `items` back at the front, in their order, whatever the room or whether the queue
    /// is closed (events an ending actor had taken and not handed out: the queue's other
    /// readers, or whoever drains it, deal with them).
    pub fn return_front(&self, items: impl IntoIterator<Item = T, IntoIter: DoubleEndedIterator>) {
        let readers = {
            let mut s = self.lock();
            let before = s.items.len();
            for item in items.into_iter().rev() {
                s.items.push_front(item);
            }
            let n = s.items.len() - before;
            let k = n.min(s.readers.len());
            s.readers.drain(..k).collect::<Vec<_>>()
        };
        readers.into_iter().for_each(Waker::wake);
    }

    /// Moves items from the front of `items` into the queue while there is room; on a full
    /// queue registers `cx` to be woken when room frees. `Ready(Ok)` once `items` is empty,
    /// `Ready(Err(Closed))` on a closed queue (the items not taken stay in `items`).
    pub fn poll_push(
        &self,
        cx: &mut Context<'_>,
        items: &mut VecDeque<T>,
    ) -> Poll<Result<(), Closed>> {
        let readers = {
            let mut s = self.lock();
            if s.closed {
                return Poll::Ready(Err(Closed));
            }
            let room = self.capacity.saturating_sub(s.items.len());
            let n = room.min(items.len());
            s.items.extend(items.drain(..n));
            if !items.is_empty() {
                register(&mut s.writers, cx.waker());
            }
            if n > 0 {
                // Wake as many readers as there are new items (they take one each, or all).
                let k = n.min(s.readers.len());
                s.readers.drain(..k).collect::<Vec<_>>()
            } else {
                Vec::new()
            }
        };
        readers.into_iter().for_each(Waker::wake);
        if items.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// Pushes every item of `items`, waiting for room; `Err(Closed)` on a closed queue (the
    /// items not taken stay in `items`).
    pub async fn push_all(&self, items: &mut VecDeque<T>) -> Result<(), Closed> {
        std::future::poll_fn(|cx| self.poll_push(cx, items)).await
    }

    /// Pushes one item, waiting for room.
    pub async fn push(&self, item: T) -> Result<(), (Closed, T)> {
        let mut items = VecDeque::from([item]);
        match self.push_all(&mut items).await {
            Ok(()) => Ok(()),
            Err(Closed) => match items.pop_front() {
                Some(item) => Err((Closed, item)),
                None => Ok(()),
            },
        }
    }

    /// Pushes one item if there is room now.
    pub fn try_push(&self, item: T) -> Result<(), (TryPushError, T)> {
        let reader = {
            let mut s = self.lock();
            if s.closed {
                return Err((TryPushError::Closed, item));
            }
            if s.items.len() >= self.capacity {
                return Err((TryPushError::Full, item));
            }
            s.items.push_back(item);
            s.readers.pop()
        };
        if let Some(w) = reader {
            w.wake();
        }
        Ok(())
    }

    /// Takes up to `max` (at least 1) items into `out`, or registers `cx` when nothing is
    /// queued. `Ready(false)` once the queue is closed and empty.
    pub fn poll_pop(&self, cx: &mut Context<'_>, max: usize, out: &mut VecDeque<T>) -> Poll<bool> {
        let writers = {
            let mut s = self.lock();
            if s.items.is_empty() {
                if s.closed {
                    return Poll::Ready(false);
                }
                register(&mut s.readers, cx.waker());
                return Poll::Pending;
            }
            let n = max.max(1).min(s.items.len());
            out.extend(s.items.drain(..n));
            // Writers waiting for room go on once half the queue is free: woken together,
            // they refill it in a few large pushes rather than one event each.
            if s.items.len() <= self.capacity / 2 {
                std::mem::take(&mut s.writers)
            } else {
                Vec::new()
            }
        };
        writers.into_iter().for_each(Waker::wake);
        Poll::Ready(true)
    }

    /// The next item, waiting for one; `None` once the queue is closed and empty.
    pub async fn pop(&self) -> Option<T> {
        let mut out = VecDeque::with_capacity(1);
        if std::future::poll_fn(|cx| self.poll_pop(cx, 1, &mut out)).await {
            out.pop_front()
        } else {
            None
        }
    }
}

/// Why [`Queue::try_push`] did not push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryPushError {
    /// The queue is at capacity.
    #[error("the queue is full")]
    Full,
    /// The queue is closed.
    #[error("the queue is closed")]
    Closed,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn items_come_out_in_order_and_a_full_queue_waits() {
        let q = Arc::new(Queue::new(2));
        let mut items: VecDeque<u32> = (0..5).collect();
        let writer = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.push_all(&mut items).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(q.len(), 2, "the writer waits for room");
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(q.pop().await.unwrap());
        }
        writer.await.unwrap().unwrap();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        q.close();
        assert_eq!(q.pop().await, None);
        assert!(matches!(q.push(9).await, Err((Closed, 9))));
    }

    #[tokio::test]
    async fn a_closed_queue_is_drained_before_it_ends() {
        let q = Queue::new(4);
        q.try_push(1).unwrap();
        q.try_push(2).unwrap();
        q.close();
        assert_eq!(q.pop().await, Some(1));
        assert_eq!(q.pop().await, Some(2));
        assert_eq!(q.pop().await, None);
    }

    #[tokio::test]
    async fn returned_items_go_first_even_past_capacity_or_closing() {
        let q = Queue::new(2);
        q.try_push(3).unwrap();
        q.try_push(4).unwrap();
        q.close();
        q.return_front(vec![1, 2]);
        assert_eq!(q.len(), 4);
        assert_eq!(q.drain(), vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn several_readers_share_the_items() {
        let q = Arc::new(Queue::new(16));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let q = Arc::clone(&q);
                tokio::spawn(async move {
                    let mut n = 0;
                    while q.pop().await.is_some() {
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut items: VecDeque<u32> = (0..100).collect();
        q.push_all(&mut items).await.unwrap();
        q.close();
        let mut total = 0;
        for r in readers {
            total += r.await.unwrap();
        }
        assert_eq!(total, 100);
    }
}
