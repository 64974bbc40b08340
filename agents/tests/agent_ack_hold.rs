//! Ack holds: a sink that queued a record holds its event's ack until the write is done, so a
//! commit never covers an event whose output could still be lost.

use bytes::Bytes;
use mephisto::ack::{Delivery, MemoryAcks};
use mephisto::Event;
use std::sync::Arc;

fn event(seq: u64, acks: &MemoryAcks) -> Event<(), i64> {
    Event::new(
        None,
        seq as i64,
        Vec::<(String, Bytes)>::new(),
        None,
        Delivery {
            seq,
            coordinate: None,
        },
        Arc::new(acks.clone()),
    )
}

#[test]
fn the_ack_waits_for_every_hold() {
    let acks = MemoryAcks::new();
    let ev = event(0, &acks);
    let first = ev.hold().expect("not acked yet");
    let second = ev.hold().expect("not acked yet");
    assert!(ev.ack(), "the ack is asked for");
    assert!(ev.is_acked());
    assert!(!ev.ack(), "asked once");
    assert!(acks.acked_seqs().is_empty(), "held");
    first.release();
    assert!(acks.acked_seqs().is_empty(), "still held");
    second.release();
    assert_eq!(acks.acked_seqs(), vec![0]);
}

#[test]
fn a_release_before_the_ack_does_not_ack() {
    let acks = MemoryAcks::new();
    let ev = event(1, &acks);
    ev.hold().expect("hold").release();
    assert!(acks.acked_seqs().is_empty(), "nobody asked for the ack");
    assert!(ev.ack());
    assert_eq!(acks.acked_seqs(), vec![1]);
    assert!(ev.hold().is_none(), "too late to hold");
}

#[test]
fn an_abandoned_hold_keeps_the_event_unacked() {
    let acks = MemoryAcks::new();
    let ev = event(2, &acks);
    let hold = ev.hold().expect("hold");
    ev.ack();
    hold.abandon();
    assert!(acks.acked_seqs().is_empty(), "never acked");
}
