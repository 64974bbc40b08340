//! In-memory channels: bound and back-pressure, cloneable senders, shared queue, close.

use std::time::Duration;

use futures_util::StreamExt;
use mephisto::channel::{Channel, TrySendError};

#[tokio::test(start_paused = true)]
async fn bounded_channel_applies_back_pressure() {
    let ch: Channel<(), u32> = Channel::new(2);
    assert_eq!(ch.capacity(), 2);
    let tx = ch.sender();
    let tx2 = tx.clone();
    assert_eq!(tx.send(0).await.unwrap(), 0);
    assert_eq!(tx2.send(1).await.unwrap(), 1);
    assert_eq!(tx.try_send(9), Err(TrySendError::Full));
    // A third send waits while the queue is full.
    let blocked = tokio::time::timeout(Duration::from_millis(50), tx.send(2)).await;
    assert!(blocked.is_err(), "send must wait while the channel is full");
    let mut stream = ch.stream();
    assert_eq!(stream.next().await, Some(0));
    // One slot freed: the send goes through.
    let seq = tokio::time::timeout(Duration::from_millis(500), tx.send(3))
        .await
        .expect("send completes once a slot is free")
        .unwrap();
    // Sequence numbers increase; a send that failed (the `try_send`) or was cancelled (the
    // timed-out one) leaves a gap.
    assert_eq!(seq, 4);
    assert_eq!(stream.next().await, Some(1));
    assert_eq!(
        stream.next().await,
        Some(3),
        "the value sent with sequence number 4"
    );
}

#[tokio::test]
async fn streams_share_the_queue_and_end_on_close() {
    let ch: Channel<(), u32> = Channel::new(8);
    let tx = ch.sender();
    for i in 0..4 {
        tx.send(i).await.unwrap();
    }
    ch.close();
    assert!(tx.send(9).await.is_err(), "a closed channel takes nothing");
    let mut a = ch.stream();
    let mut b = ch.stream();
    assert_eq!(a.next().await, Some(0));
    assert_eq!(b.next().await, Some(1));
    assert_eq!(a.next().await, Some(2));
    assert_eq!(b.next().await, Some(3));
    assert_eq!(a.next().await, None);
    assert_eq!(b.next().await, None);
}
