//! Tests for `mephisto_wire::consumer_protocol`: round trips at every version, golden bytes built
//! by hand from Java's `ConsumerProtocol` layout, forward compatibility with newer peers, and
//! each error.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use mephisto_wire::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
    payload_version, Assignment, ConsumerProtocolError, Subscription, MAX_VERSION,
};
use proptest::prelude::*;

/// Java's non-flexible `STRING`: int16 length + UTF-8.
fn put_str(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn put_partitions(buf: &mut BytesMut, partitions: &[i32]) {
    buf.put_i32(partitions.len() as i32);
    for p in partitions {
        buf.put_i32(*p);
    }
}

/// A v3 subscription exactly as Java's `ConsumerProtocol.serializeSubscription` lays it out.
fn java_subscription_v3() -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3); // version prefix
    b.put_i32(2); // Topics: [string], sorted
    put_str(&mut b, "bar");
    put_str(&mut b, "foo");
    b.put_i32(3); // UserData: nullable bytes
    b.put_slice(&[1, 2, 3]);
    b.put_i32(1); // OwnedPartitions: [{Topic, Partitions: [int32]}] (v1+)
    put_str(&mut b, "foo");
    put_partitions(&mut b, &[0, 2]);
    b.put_i32(7); // GenerationId (v2+)
    put_str(&mut b, "rack1"); // RackId: nullable string (v3+)
    b.freeze()
}

fn sample_subscription() -> Subscription {
    Subscription {
        // Unsorted and with a duplicate: written sorted and deduplicated, like Java.
        topics: vec!["foo".into(), "bar".into(), "foo".into()],
        user_data: Some(Bytes::from_static(&[1, 2, 3])),
        owned_partitions: BTreeMap::from([("foo".to_owned(), vec![2, 0, 2])]),
        generation_id: 7,
        rack_id: Some("rack1".into()),
    }
}

#[test]
fn subscription_v3_golden_bytes() {
    let encoded = encode_subscription(&sample_subscription(), 3).unwrap();
    assert_eq!(encoded, java_subscription_v3());
    let decoded = decode_subscription(java_subscription_v3()).unwrap();
    assert_eq!(decoded.topics, ["bar", "foo"]);
    assert_eq!(decoded.owned_partitions["foo"], [0, 2]);
    assert_eq!(decoded.generation_id, 7);
    assert_eq!(decoded.rack_id.as_deref(), Some("rack1"));
    assert_eq!(decoded.user_data, Some(Bytes::from_static(&[1, 2, 3])));
}

#[test]
fn subscription_v0_golden_bytes_drop_newer_fields() {
    let mut expected = BytesMut::new();
    expected.put_i16(0);
    expected.put_i32(2);
    put_str(&mut expected, "bar");
    put_str(&mut expected, "foo");
    expected.put_i32(-1); // null user data
    let sub = Subscription {
        user_data: None,
        ..sample_subscription()
    };
    assert_eq!(encode_subscription(&sub, 0).unwrap(), expected.freeze());
}

#[test]
fn subscription_v1_and_v2_golden_bytes() {
    let mut v1 = BytesMut::new();
    v1.put_i16(1);
    v1.put_i32(1);
    put_str(&mut v1, "t");
    v1.put_i32(0); // empty (not null) user data
    v1.put_i32(1);
    put_str(&mut v1, "t");
    put_partitions(&mut v1, &[5]);
    let sub = Subscription {
        topics: vec!["t".into()],
        user_data: Some(Bytes::new()),
        owned_partitions: BTreeMap::from([("t".to_owned(), vec![5])]),
        generation_id: 3,
        rack_id: Some("ignored before v3".into()),
    };
    assert_eq!(encode_subscription(&sub, 1).unwrap(), v1.clone().freeze());

    let mut v2 = v1;
    v2[1] = 2;
    v2.put_i32(3);
    assert_eq!(encode_subscription(&sub, 2).unwrap(), v2.freeze());
}

#[test]
fn assignment_golden_bytes() {
    let mut expected = BytesMut::new();
    expected.put_i16(1);
    expected.put_i32(2); // AssignedPartitions
    put_str(&mut expected, "a");
    put_partitions(&mut expected, &[3, 1]);
    put_str(&mut expected, "b");
    put_partitions(&mut expected, &[]);
    expected.put_i32(-1); // null user data
    let assignment = Assignment {
        partitions: BTreeMap::from([("a".to_owned(), vec![3, 1]), ("b".to_owned(), vec![])]),
        user_data: None,
    };
    let expected = expected.freeze();
    assert_eq!(encode_assignment(&assignment, 1).unwrap(), expected);
    assert_eq!(decode_assignment(expected).unwrap(), assignment);
}

#[test]
fn newer_peer_with_trailing_fields_is_read_as_v3() {
    // A "v4" peer: the v3 layout, then fields we do not know.
    let mut v4 = BytesMut::from(&java_subscription_v3()[..]);
    v4[1] = 4;
    v4.put_i32(0x0102_0304);
    v4.put_slice(b"future");
    let v4 = v4.freeze();
    assert_eq!(payload_version(&v4), Ok(4));
    let decoded = decode_subscription(v4).unwrap();
    let expected = decode_subscription(java_subscription_v3()).unwrap();
    assert_eq!(decoded, expected);

    let mut assignment = BytesMut::from(&encode_assignment(&Assignment::default(), 3).unwrap()[..]);
    assignment[0..2].copy_from_slice(&i16::MAX.to_be_bytes());
    assignment.put_slice(&[9, 9, 9]);
    assert_eq!(
        decode_assignment(assignment.freeze()).unwrap(),
        Assignment::default()
    );
}

#[test]
fn trailing_bytes_after_an_older_version_are_ignored_too() {
    let mut v0 = BytesMut::from(&encode_subscription(&sample_subscription(), 0).unwrap()[..]);
    v0.put_slice(&[0xde, 0xad]);
    let decoded = decode_subscription(v0.freeze()).unwrap();
    assert_eq!(decoded.topics, ["bar", "foo"]);
    assert!(decoded.owned_partitions.is_empty());
    assert_eq!(decoded.generation_id, -1);
}

#[test]
fn negative_and_missing_versions_are_errors() {
    let negative = Bytes::from_static(&[0xff, 0xfe, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        decode_subscription(negative.clone()),
        Err(ConsumerProtocolError::NegativeVersion {
            what: "subscription",
            version: -2
        })
    );
    assert!(matches!(
        decode_assignment(negative),
        Err(ConsumerProtocolError::NegativeVersion { version: -2, .. })
    ));
    let err = decode_subscription(Bytes::from_static(&[0])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "consumer protocol subscription of 1 bytes has no version prefix"
    );
    assert!(decode_subscription(Bytes::new()).is_err());
    assert!(matches!(
        decode_assignment(Bytes::from_static(&[1])),
        Err(ConsumerProtocolError::MissingVersion { .. })
    ));
}

#[test]
fn empty_assignment_payload_means_nothing_assigned() {
    assert_eq!(decode_assignment(Bytes::new()), Ok(Assignment::default()));
}

#[test]
fn unwritable_versions_are_refused() {
    for version in [-1, MAX_VERSION + 1] {
        assert!(matches!(
            encode_subscription(&Subscription::default(), version),
            Err(ConsumerProtocolError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            encode_assignment(&Assignment::default(), version),
            Err(ConsumerProtocolError::UnsupportedVersion { .. })
        ));
    }
}

#[test]
fn truncated_payloads_are_malformed() {
    let full = java_subscription_v3();
    for cut in 2..full.len() {
        let err = decode_subscription(full.slice(..cut)).unwrap_err();
        assert!(
            matches!(err, ConsumerProtocolError::Malformed { version: 3, .. }),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn hostile_counts_are_errors() {
    // Topic count i32::MAX in a subscription; partition count i32::MAX in an assignment. Without
    // the decoder's guard each asks for gigabytes and aborts the test process.
    let mut sub = BytesMut::new();
    sub.put_i16(3);
    sub.put_i32(i32::MAX);
    assert!(matches!(
        decode_subscription(sub.freeze()),
        Err(ConsumerProtocolError::Malformed { .. })
    ));
    let mut assignment = BytesMut::new();
    assignment.put_i16(0);
    assignment.put_i32(1);
    put_str(&mut assignment, "t");
    assignment.put_i32(i32::MAX);
    assert!(matches!(
        decode_assignment(assignment.freeze()),
        Err(ConsumerProtocolError::Malformed { .. })
    ));
}

#[test]
fn user_data_is_not_copied() {
    let payload = java_subscription_v3();
    let decoded = decode_subscription(payload.clone()).unwrap();
    let user_data = decoded.user_data.unwrap();
    let offset = 2 + 4 + 5 + 5 + 4;
    assert_eq!(user_data.as_ptr(), payload[offset..].as_ptr());
}

#[test]
fn duplicate_topics_from_a_peer_are_merged() {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(2);
    put_str(&mut b, "t");
    put_partitions(&mut b, &[1]);
    put_str(&mut b, "t");
    put_partitions(&mut b, &[2]);
    b.put_i32(-1);
    let decoded = decode_assignment(b.freeze()).unwrap();
    assert_eq!(
        decoded.partitions,
        BTreeMap::from([("t".to_owned(), vec![1, 2])])
    );
}

fn topic() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,12}"
}

fn user_data() -> impl Strategy<Value = Option<Bytes>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..32).prop_map(Bytes::from))
}

fn partitions_by_topic() -> impl Strategy<Value = BTreeMap<String, Vec<i32>>> {
    prop::collection::btree_map(topic(), prop::collection::vec(any::<i32>(), 0..5), 0..4)
}

fn subscription() -> impl Strategy<Value = Subscription> {
    (
        prop::collection::vec(topic(), 0..6),
        user_data(),
        partitions_by_topic(),
        any::<i32>(),
        prop::option::of("[a-z0-9-]{0,10}"),
    )
        .prop_map(
            |(topics, user_data, owned_partitions, generation_id, rack_id)| Subscription {
                topics,
                user_data,
                owned_partitions,
                generation_id,
                rack_id,
            },
        )
}

/// What a subscription looks like after a trip through `version`.
fn as_seen_at(mut sub: Subscription, version: i16) -> Subscription {
    sub.topics.sort();
    sub.topics.dedup();
    if version < 1 {
        sub.owned_partitions.clear();
    }
    for partitions in sub.owned_partitions.values_mut() {
        partitions.sort_unstable();
        partitions.dedup();
    }
    if version < 2 {
        sub.generation_id = -1;
    }
    if version < 3 {
        sub.rack_id = None;
    }
    sub
}

proptest! {
    #[test]
    fn subscriptions_round_trip_at_every_version(sub in subscription(), version in 0i16..=3) {
        let encoded = encode_subscription(&sub, version).unwrap();
        prop_assert_eq!(payload_version(&encoded).unwrap(), version);
        let decoded = decode_subscription(encoded.clone()).unwrap();
        prop_assert_eq!(&decoded, &as_seen_at(sub, version));
        // Re-encoding what we decoded gives the same bytes.
        prop_assert_eq!(encode_subscription(&decoded, version).unwrap(), encoded);
    }

    #[test]
    fn assignments_round_trip_at_every_version(
        partitions in partitions_by_topic(),
        user_data in user_data(),
        version in 0i16..=3,
    ) {
        let assignment = Assignment { partitions, user_data };
        let encoded = encode_assignment(&assignment, version).unwrap();
        prop_assert_eq!(payload_version(&encoded).unwrap(), version);
        prop_assert_eq!(decode_assignment(encoded).unwrap(), assignment);
    }

    #[test]
    fn future_versions_with_any_trailing_bytes_decode_like_v3(
        sub in subscription(),
        future in 4i16..=i16::MAX,
        trailing in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let v3 = encode_subscription(&sub, 3).unwrap();
        let mut newer = BytesMut::from(&v3[..]);
        newer[0..2].copy_from_slice(&future.to_be_bytes());
        newer.put_slice(&trailing);
        prop_assert_eq!(
            decode_subscription(newer.freeze()).unwrap(),
            decode_subscription(v3).unwrap()
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let data = Bytes::from(data);
        let _ = decode_subscription(data.clone());
        let _ = decode_assignment(data);
    }
}
