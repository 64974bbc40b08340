//! Streams: acks, `StreamExt` adapters with their usual meaning, Faust's own adapters, and
//! `take_batches`/`take_events` in virtual time.

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
async fn the_previous_event_is_acked_when_the_next_is_asked_for_never_on_drop() {
    let (mut s, acks) = stream_of(vec![10, 20, 30]);
    assert_eq!(s.next().await, Some(10));
    assert!(
        acks.acked_seqs().is_empty(),
        "not acked while being processed"
    );
    assert_eq!(s.next().await, Some(20));
    assert_eq!(acks.acked_seqs(), vec![0]);
    assert_eq!(s.current().unwrap().id().seq, 1);
    drop(s);
    // The actor acks the last event once the function is done with it; a stream dropped
    // because its actor was stopped mid-event commits nothing of it.
    assert_eq!(acks.acked_seqs(), vec![0]);
}

#[tokio::test]
async fn stream_ext_filter_acks_what_it_skips() {
    let (s, acks) = stream_of((0..6).collect());
    let got: Vec<i32> = s
        .filter(|v| futures_util::future::ready(v % 2 == 0))
        .collect()
        .await;
    assert_eq!(got, vec![0, 2, 4]);
    let mut seqs = acks.acked_seqs();
    seqs.sort();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn stream_ext_adapters_chain_as_usual() {
    let (s, _acks) = stream_of((0..10).collect());
    let got: Vec<i32> = s
        .filter(|v| futures_util::future::ready(*v > 2))
        .filter(|v| {
            let keep = v % 3 == 0;
            async move {
                tokio::task::yield_now().await;
                keep
            }
        })
        .take(2)
        .collect()
        .await;
    assert_eq!(got, vec![3, 6]);
}

#[tokio::test]
async fn enumerate_from_items_events() {
    let (s, _) = stream_of(vec![5, 6, 7]);
    let got: Vec<(usize, i32)> = s.enumerate_from(1).collect().await;
    assert_eq!(got, vec![(1, 5), (2, 6), (3, 7)]);
    let (s, _) = stream_of(vec![5, 6]);
    let got: Vec<(usize, i32)> = s.enumerate().collect().await;
    assert_eq!(
        got,
        vec![(0, 5), (1, 6)],
        "StreamExt::enumerate counts from 0"
    );

    let ch: Channel<String, i32> = Channel::new(4);
    let tx = ch.sender();
    tx.send_event(Some("a".into()), 1, vec![]).await.unwrap();
    tx.send(2).await.unwrap();
    ch.close();
    let items: Vec<(Option<String>, i32)> = ch.stream().items().collect().await;
    assert_eq!(items, vec![(Some("a".into()), 1), (None, 2)]);

    let ch: Channel<String, i32> = Channel::new(4);
    let tx = ch.sender();
    tx.send_event(
        Some("k".into()),
        3,
        vec![("h".into(), Some(bytes::Bytes::from_static(b"v")))],
    )
    .await
    .unwrap();
    ch.close();
    let events: Vec<_> = ch.stream().events().collect().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key.as_deref(), Some("k"));
    assert_eq!(events[0].header("h"), Some(&b"v"[..]));
    assert!(
        events[0].message().is_none(),
        "channel events have no topic metadata"
    );
    assert_eq!(events[0].seq(), 0);
}

#[tokio::test]
async fn noack_requires_manual_ack() {
    let (s, acks) = stream_of(vec![1, 2, 3]);
    let mut events = s.noack().events();
    let _a = events.next().await.unwrap();
    let b = events.next().await.unwrap();
    let c = events.next().await.unwrap();
    assert!(events.next().await.is_none());
    assert!(acks.acked_seqs().is_empty());
    assert!(events.ack(&c));
    assert!(b.ack());
    assert!(!b.ack(), "second ack is a no-op");
    drop(events);
    assert_eq!(acks.acked_seqs(), vec![2, 1]);
    assert!(!acks.is_acked(0));
}

#[tokio::test]
async fn take_batches_by_max_and_acks_a_batch_when_the_next_is_asked_for() {
    let (s, acks) = stream_of((0..7).collect());
    let mut batches = s.take_batches(3, Duration::from_secs(10));
    assert_eq!(batches.next().await, Some(vec![0, 1, 2]));
    assert!(acks.acked_seqs().is_empty());
    assert_eq!(batches.next().await, Some(vec![3, 4, 5]));
    assert_eq!(acks.acked_seqs(), vec![0, 1, 2]);
    // Source ended: the remainder, then the end.
    assert_eq!(batches.next().await, Some(vec![6]));
    assert_eq!(batches.next().await, None);
    assert_eq!(acks.acked_seqs(), (0..7).collect::<Vec<u64>>());
}

#[tokio::test(start_paused = true)]
async fn take_yields_what_arrived_within_in_virtual_time() {
    let acks = MemoryAcks::new();
    let ch: Channel<(), i32> = Channel::with_acks(16, Arc::new(acks.clone()));
    let tx = ch.sender();
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    let mut batches = ch.stream().take_batches(100, Duration::from_millis(50));
    let start = tokio::time::Instant::now();
    assert_eq!(batches.next().await, Some(vec![1, 2]));
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    let feeder = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(3).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(4).await.unwrap();
    });
    let start = tokio::time::Instant::now();
    assert_eq!(batches.next().await, Some(vec![3]));
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(70),
        "20 ms wait + 50 ms window"
    );
    assert_eq!(acks.acked_seqs(), vec![0, 1]);
    assert_eq!(batches.next().await, Some(vec![4]));
    assert_eq!(start.elapsed(), Duration::from_millis(370));
    feeder.await.unwrap();
}

#[tokio::test]
async fn take_events_never_acks_on_drop_and_noack_take_acks_nothing() {
    let (s, acks) = stream_of((0..4).collect());
    let mut batches = s.take_events(2, Duration::from_secs(10));
    let first = batches.next().await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.seq()).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let _second = batches.next().await.unwrap();
    assert_eq!(acks.acked_seqs(), vec![0, 1]);
    drop(batches);
    // A batch handed out but not finished (its agent stopped) is not committed.
    assert_eq!(
        acks.acked_seqs(),
        vec![0, 1],
        "the last batch is not acked on drop"
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
