//! [`Queue`]: the bounded queue between an agent's senders (partition tasks, channel senders)
//! and its actors. Many producers, many consumers, FIFO.
//!
//! It is built for the per-event path: a producer pushes a whole fetched batch under one lock
//! (waiting for room when the queue is full: back-pressure, resumed once half the queue is
//! free), and a consumer alone on the queue takes up to a batch in one lock too. Items are not
//! moved one by one on the way: the queue holds chunks (the producers' buffers, handed over
//! whole), and a consumer with an empty buffer takes the front chunk whole, its own buffer
//! going back to a small pool the producers draw their next buffer from. So nothing is
//! allocated per item once the buffers have grown. Waiting is done with wakers kept in the
//! queue, so a stream polls it without boxing a future.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The queue was closed: nothing more is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue is closed")]
pub struct Closed;

/// Pushes of at most this many items join the last chunk instead of making a new one.
const SMALL_PUSH: usize = 16;
/// Emptied buffers kept for reuse.
const SPARE_BUFFERS: usize = 2;

struct State<T> {
    /// The items, in order, in the buffers they were pushed in.
    chunks: VecDeque<VecDeque<T>>,
    /// Items over all chunks.
    len: usize,
    /// Empty buffers, their capacity kept, for the next pushes.
    spare: Vec<VecDeque<T>>,
    closed: bool,
    readers: Vec<Waker>,
    writers: Vec<Waker>,
}

impl<T> State<T> {
    fn buffer(&mut self) -> VecDeque<T> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps an emptied buffer for reuse (unless it is larger than the queue ever needs).
    fn recycle(&mut self, buffer: VecDeque<T>, capacity: usize) {
        if buffer.is_empty()
            && buffer.capacity() > 0
            && buffer.capacity() <= capacity.max(SMALL_PUSH)
            && self.spare.len() < SPARE_BUFFERS
        {
            self.spare.push(buffer);
        }
    }

    /// Appends `items` (all of them) after the last item.
    fn append(&mut self, items: &mut VecDeque<T>, n: usize) {
        if n == 0 {
            return;
        }
        self.len += n;
        match self.chunks.back_mut() {
            Some(last) if n <= SMALL_PUSH => last.extend(items.drain(..n)),
            _ if n == items.len() => {
                let fresh = self.buffer();
                let chunk = std::mem::replace(items, fresh);
                self.chunks.push_back(chunk);
            }
            _ => {
                let mut chunk = self.buffer();
                chunk.extend(items.drain(..n));
                self.chunks.push_back(chunk);
            }
        }
    }

    /// Moves up to `max` (at least 1) items to `out`; the front chunk whole when it fits an
    /// empty `out`.
    fn take(&mut self, max: usize, out: &mut VecDeque<T>, capacity: usize) {
        let mut want = max.max(1);
        while want > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if out.is_empty() && front.len() <= want {
                let Some(chunk) = self.chunks.pop_front() else {
                    break;
                };
                self.len -= chunk.len();
                let old = std::mem::replace(out, chunk);
                self.recycle(old, capacity);
                // One whole chunk per take: the caller comes back when it is used up.
                break;
            }
            let k = want.min(front.len());
            out.extend(front.drain(..k));
            self.len -= k;
            want -= k;
            if front.is_empty() {
                if let Some(empty) = self.chunks.pop_front() {
                    self.recycle(empty, capacity);
                }
            }
        }
    }
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
                chunks: VecDeque::new(),
                len: 0,
                spare: Vec::new(),
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

    /// The most items it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.lock().len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Accepts nothing more; readers get what is queued, then the end.
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

    /// Takes every queued item.
    pub fn drain(&self) -> Vec<T> {
        let (items, writers) = {
            let mut s = self.lock();
            s.len = 0;
            let items = std::mem::take(&mut s.chunks)
                .into_iter()
                .flatten()
                .collect();
            (items, std::mem::take(&mut s.writers))
        };
        writers.into_iter().for_each(Waker::wake);
        items
    }

    /// Puts items back at the front, in their order (taken but not handed out), even past
    /// capacity or after [`close`](Self::close).
    pub fn return_front(&self, items: impl IntoIterator<Item = T, IntoIter: DoubleEndedIterator>) {
        let readers = {
            let mut s = self.lock();
            let mut chunk = s.buffer();
            chunk.extend(items);
            let n = chunk.len();
            if n > 0 {
                s.len += n;
                s.chunks.push_front(chunk);
            } else {
                s.recycle(chunk, self.capacity);
            }
            let k = n.min(s.readers.len());
            s.readers.drain(..k).collect::<Vec<_>>()
        };
        readers.into_iter().for_each(Waker::wake);
    }

    /// Moves as many of `items` as there is room for (from the front); `Ready(Ok)` once all
    /// are queued, `Pending` (woken when room frees up) otherwise. `items` may come back as
    /// another (empty) buffer.
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
            let room = self.capacity.saturating_sub(s.len);
            let n = room.min(items.len());
            s.append(items, n);
            if !items.is_empty() {
                register(&mut s.writers, cx.waker());
            }
            if n > 0 {
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

    /// Pushes all of `items`, waiting for room as needed.
    pub async fn push_all(&self, items: &mut VecDeque<T>) -> Result<(), Closed> {
        std::future::poll_fn(|cx| self.poll_push(cx, items)).await
    }

    /// Pushes one item, waiting for room; the item comes back if the queue is closed.
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

    /// Pushes one item if there is room.
    pub fn try_push(&self, item: T) -> Result<(), (TryPushError, T)> {
        let reader = {
            let mut s = self.lock();
            if s.closed {
                return Err((TryPushError::Closed, item));
            }
            if s.len >= self.capacity {
                return Err((TryPushError::Full, item));
            }
            s.len += 1;
            match s.chunks.back_mut() {
                Some(last) => last.push_back(item),
                None => {
                    let mut chunk = s.buffer();
                    chunk.push_back(item);
                    s.chunks.push_back(chunk);
                }
            }
            s.readers.pop()
        };
        if let Some(w) = reader {
            w.wake();
        }
        Ok(())
    }

    /// Moves up to `max` (at least 1) items to `out` (which may come back as another buffer
    /// when it was empty): `Ready(true)` when some were moved, `Ready(false)` once the queue is
    /// closed and empty, `Pending` (woken on a push) otherwise.
    pub fn poll_pop(&self, cx: &mut Context<'_>, max: usize, out: &mut VecDeque<T>) -> Poll<bool> {
        let writers = {
            let mut s = self.lock();
            if s.len == 0 {
                if s.closed {
                    return Poll::Ready(false);
                }
                register(&mut s.readers, cx.waker());
                return Poll::Pending;
            }
            s.take(max, out, self.capacity);
            if s.len <= self.capacity / 2 {
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
        let mut out = VecDeque::new();
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

    /// One step of the model test.
    #[derive(Debug, Clone)]
    enum Op {
        Push(u8),
        TryPush,
        Pop(u8),
        ReturnFront(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..40).prop_map(Op::Push),
            Just(Op::TryPush),
            (0u8..40).prop_map(Op::Pop),
            (0u8..4).prop_map(Op::ReturnFront),
        ]
    }

    proptest::proptest! {
        /// Whatever the mix of pushes (small ones join a chunk, large ones hand theirs over),
        /// pops (whole chunks or parts) and returns, the queue is the FIFO of a plain
        /// `VecDeque` and never exceeds its capacity through pushes.
        #[test]
        fn behaves_as_a_bounded_fifo(ops in proptest::collection::vec(op(), 1..80), cap in 1usize..64) {
            let q = Queue::new(cap);
            let mut model: VecDeque<u32> = VecDeque::new();
            let mut next = 0u32;
            let waker = futures_util::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            let mut taken: VecDeque<u32> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(n) => {
                        let mut items: VecDeque<u32> = (next..next + u32::from(n)).collect();
                        next += u32::from(n);
                        let before = items.len();
                        let _ = q.poll_push(&mut cx, &mut items);
                        let pushed = before - items.len();
                        // Up to the room left (returned items may have filled it past capacity).
                        proptest::prop_assert_eq!(pushed, before.min(cap.saturating_sub(model.len())));
                        let first = next - u32::from(n);
                        model.extend(first..first + u32::try_from(pushed).unwrap_or(0));
                        // What did not fit is dropped: the next pushes go on with new numbers.
                    }
                    Op::TryPush => {
                        let r = q.try_push(next);
                        if model.len() < cap {
                            proptest::prop_assert!(r.is_ok());
                            model.push_back(next);
                        } else {
                            proptest::prop_assert!(matches!(r, Err((TryPushError::Full, _))));
                        }
                        next += 1;
                    }
                    Op::Pop(max) => {
                        let mut out = std::mem::take(&mut taken);
                        out.clear();
                        let r = q.poll_pop(&mut cx, usize::from(max), &mut out);
                        let want = usize::from(max).max(1).min(model.len());
                        match r {
                            Poll::Ready(true) => {
                                proptest::prop_assert!(!out.is_empty() && out.len() <= want);
                                let expect: Vec<u32> = model.drain(..out.len()).collect();
                                proptest::prop_assert_eq!(out.iter().copied().collect::<Vec<_>>(), expect);
                            }
                            _ => proptest::prop_assert!(model.is_empty()),
                        }
                        taken = out;
                    }
                    Op::ReturnFront(n) => {
                        let back: Vec<u32> = (0..u32::from(n)).map(|i| 1_000_000 + next + i).collect();
                        next += u32::from(n);
                        q.return_front(back.clone());
                        for v in back.into_iter().rev() {
                            model.push_front(v);
                        }
                    }
                }
                proptest::prop_assert_eq!(q.len(), model.len());
            }
            proptest::prop_assert_eq!(q.drain(), model.into_iter().collect::<Vec<_>>());
        }
    }
}
