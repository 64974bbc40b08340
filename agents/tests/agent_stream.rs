//! Stream combinators and acks.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mephisto::ack::MemoryAcks;
use mephisto::channel::Channel;
use mephisto::stream::Stream;

fn stream_of(values: Vec<i32>) -> (Stream<String, i32>, MemoryAcks) {
    let acks = MemoryAcks::new();
    (
        Stream::from_values_with_acks(values, Arc::new(acks.clone())),
        acks,
    )
}

#[tokio::test]
async fn acks_previous_event_at_next_and_last_on_drop() {
    let (mut s, acks) = stream_of(vec![10, 20, 30]);
    assert_eq!(s.next().await, Some(10));
    assert!(
        acks.acked_seqs().is_empty(),
        "not acked while being processed"
    );
    assert_eq!(s.next().await, Some(20));
    assert_eq!(acks.acked_seqs(), vec![0]);
    assert_eq!(s.current_event().unwrap().value, 20);
    drop(s);
    assert_eq!(acks.acked_seqs(), vec![0, 1]);
}

#[tokio::test]
async fn filter_skips_and_acks_skipped() {
    let (s, acks) = stream_of((0..6).collect());
    let got: Vec<i32> = s.filter(|v| v % 2 == 0).collect().await;
    assert_eq!(got, vec![0, 2, 4]);
    let mut seqs = acks.acked_seqs();
    seqs.sort();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn filter_async_and_chained_filters() {
    let (s, _acks) = stream_of((0..10).collect());
    let got: Vec<i32> = s
        .filter(|v| *v > 2)
        .filter_async(|v| {
            let keep = v % 3 == 0;
            async move {
                tokio::task::yield_now().await;
                keep
            }
        })
        .filter(|v| *v != 6)
        .collect()
        .await;
    assert_eq!(got, vec![3, 9]);
}

#[tokio::test]
async fn enumerate_items_events() {
    let (s, _) = stream_of(vec![5, 6, 7]);
    let got: Vec<(usize, i32)> = s.enumerate(1).collect().await;
    assert_eq!(got, vec![(1, 5), (2, 6), (3, 7)]);

    let ch: Channel<String, i32> = Channel::new(4);
    let tx = ch.sender().unwrap();
    tx.send_event(Some("a".into()), 1, vec![]).await.unwrap();
    tx.send(2).await.unwrap();
    drop(tx);
    ch.close();
    let items: Vec<(Option<String>, i32)> = ch.stream().items().collect().await;
    assert_eq!(items, vec![(Some("a".into()), 1), (None, 2)]);

    let ch: Channel<String, i32> = Channel::new(4);
    let tx = ch.sender().unwrap();
    tx.send_event(
        Some("k".into()),
        3,
        vec![("h".into(), bytes::Bytes::from_static(b"v"))],
    )
    .await
    .unwrap();
    drop(tx);
    ch.close();
    let events: Vec<_> = ch.stream().events().collect().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key.as_deref(), Some("k"));
    assert_eq!(events[0].header("h"), Some(&b"v"[..]));
    assert!(
        events[0].message.is_none(),
        "channel events have no topic metadata"
    );
    assert_eq!(events[0].delivery().seq, 0);
}

#[tokio::test]
async fn noack_requires_manual_ack() {
    let (s, acks) = stream_of(vec![1, 2, 3]);
    let mut events = s.noack().events();
    let a = events.next().await.unwrap();
    let b = events.next().await.unwrap();
    let c = events.next().await.unwrap();
    assert!(events.next().await.is_none());
    assert!(acks.acked_seqs().is_empty());
    assert!(events.ack(&c));
    assert!(b.ack());
    assert!(!b.ack(), "second ack is a no-op");
    drop(events);
    assert_eq!(acks.acked_seqs(), vec![2, 1]);
    assert!(!a.is_acked());
}

#[tokio::test]
async fn take_batches_by_max_and_acks_batch_at_next() {
    let (s, acks) = stream_of((0..7).collect());
    let mut batches = s.take(3, Duration::from_secs(10));
    assert_eq!(batches.next().await, Some(vec![0, 1, 2]));
    assert!(acks.acked_seqs().is_empty());
    assert_eq!(batches.next().await, Some(vec![3, 4, 5]));
    assert_eq!(acks.acked_seqs(), vec![0, 1, 2]);
    // Source ended: the remainder, then the end.
    assert_eq!(batches.next().await, Some(vec![6]));
    assert_eq!(batches.next().await, None);
    assert_eq!(acks.acked_seqs(), (0..7).collect::<Vec<u64>>());
}

#[tokio::test]
async fn take_yields_what_arrived_within() {
    let acks = MemoryAcks::new();
    let ch: Channel<(), i32> = Channel::with_acks(16, Arc::new(acks.clone()));
    let tx = ch.sender().unwrap();
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    let mut batches = ch.stream().take(100, Duration::from_millis(50));
    let start = std::time::Instant::now();
    assert_eq!(batches.next().await, Some(vec![1, 2]));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(45), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let feeder = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(3).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(4).await.unwrap();
    });
    assert_eq!(batches.next().await, Some(vec![3]));
    assert_eq!(acks.acked_seqs(), vec![0, 1]);
    assert_eq!(batches.next().await, Some(vec![4]));
    feeder.await.unwrap();
}

#[tokio::test]
async fn take_events_and_noack_take() {
    let (s, acks) = stream_of((0..4).collect());
    let mut batches = s.take_events(2, Duration::from_secs(10));
    let first = batches.next().await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.delivery().seq).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let _second = batches.next().await.unwrap();
    assert_eq!(acks.acked_seqs(), vec![0, 1]);
    drop(batches);
    assert_eq!(
        acks.acked_seqs(),
        vec![0, 1, 2, 3],
        "last batch acked on drop"
    );

    let (s, acks) = stream_of((0..4).collect());
    let mut batches = s.noack().take_events(3, Duration::from_secs(10));
    let first = batches.next().await.unwrap();
    let second = batches.next().await.unwrap();
    assert_eq!(second.len(), 1);
    assert!(batches.next().await.is_none());
    drop(batches);
    assert!(acks.acked_seqs().is_empty(), "noack take acks nothing");
    first[1].ack();
    assert_eq!(acks.acked_seqs(), vec![1]);
}
