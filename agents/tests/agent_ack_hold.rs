//! Ack holds: a sink that queued a record holds its event until the write is done, so a
//! commit never covers an event whose output could still be lost.

use std::sync::Arc;

use mephisto::ack::{AckRef, MemoryAcks};
use mephisto::event::Headers;
use mephisto::Event;

fn event(seq: u64, acks: &MemoryAcks) -> Event<(), i64> {
    Event::new(
        None,
        seq as i64,
        Headers::default(),
        seq,
        Some(AckRef::new(Arc::new(acks.clone()), seq, 0)),
    )
}

#[test]
fn the_event_is_done_when_every_hold_is_released() {
    let acks = MemoryAcks::new();
    let ev = event(0, &acks);
    let first = ev.hold().expect("not done yet");
    let second = ev.hold().expect("not done yet");
    assert!(ev.ack(), "acked");
    assert!(!ev.ack(), "acked once");
    assert!(acks.acked_seqs().is_empty(), "held");
    first.release();
    assert!(acks.acked_seqs().is_empty(), "still held");
    drop(second);
    assert_eq!(acks.acked_seqs(), vec![0], "a dropped hold is released");
}

#[test]
fn a_release_before_the_ack_does_not_finish_the_event() {
    let acks = MemoryAcks::new();
    let ev = event(1, &acks);
    ev.hold().expect("hold").release();
    assert!(acks.acked_seqs().is_empty(), "nobody acked it");
    assert!(ev.ack());
    assert_eq!(acks.acked_seqs(), vec![1]);
    assert!(ev.hold().is_none(), "too late to hold");
}

#[test]
fn a_kept_hold_keeps_the_event_in_processing() {
    let acks = MemoryAcks::new();
    let ev = event(2, &acks);
    let hold = ev.hold().expect("hold");
    ev.ack();
    hold.keep();
    assert!(acks.acked_seqs().is_empty(), "never done");
    assert_eq!(acks.holds(), 1);
}

#[test]
fn clones_share_the_ack() {
    let acks = MemoryAcks::new();
    let ev = event(3, &acks);
    let copy = ev.clone();
    assert!(copy.ack());
    assert!(!ev.ack(), "the clone acked it already");
    assert_eq!(acks.acked_seqs(), vec![3]);
}
