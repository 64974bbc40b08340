//! The consumer-group payloads (JoinGroup subscription, SyncGroup assignment) on arbitrary bytes.
//!
//! Byte 0, bit 0 picks subscription (0) or assignment (1); the rest is the payload. Anything that
//! decodes must re-encode at the version it was read with (clamped to `MAX_VERSION`) and decode to
//! the same value, modulo the normalisation the encoder documents (subscription topics and owned
//! partitions sorted and deduplicated).
#![no_main]

use std::collections::BTreeMap;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mephisto_wire::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
    payload_version, Subscription, MAX_VERSION,
};

fn normalise(mut s: Subscription) -> Subscription {
    s.topics.sort_unstable();
    s.topics.dedup();
    for partitions in s.owned_partitions.values_mut() {
        partitions.sort_unstable();
        partitions.dedup();
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let payload = Bytes::copy_from_slice(rest);
    let version = payload_version(rest).map(|v| v.min(MAX_VERSION));

    if sel & 1 == 0 {
        let Ok(sub) = decode_subscription(payload) else {
            return;
        };
        let version = version.expect("a decoded subscription has a version");
        let bytes = encode_subscription(&sub, version)
            .unwrap_or_else(|e| panic!("decoded subscription v{version} does not re-encode: {e}"));
        assert_eq!(payload_version(&bytes), Ok(version));
        let again = decode_subscription(bytes).expect("re-encoded subscription decodes");
        assert_eq!(
            normalise(again),
            normalise(sub),
            "subscription v{version} round trip"
        );
    } else {
        let Ok(asg) = decode_assignment(payload) else {
            return;
        };
        let version = version.unwrap_or(0);
        let bytes = encode_assignment(&asg, version)
            .unwrap_or_else(|e| panic!("decoded assignment v{version} does not re-encode: {e}"));
        let again = decode_assignment(bytes).expect("re-encoded assignment decodes");
        assert_eq!(again, asg, "assignment v{version} round trip");
        let _: &BTreeMap<String, Vec<i32>> = &again.partitions;
    }
});
