//! The response decoders for every API in `mephisto_wire::versions::MEPHISTO_APIS`, at every version
//! in its range.
//!
//! Byte 0 picks the API (index into the table), byte 1 the version (low 7 bits, folded into the
//! API's range) and the mode (bit 7: the rest is a whole payload with a response header, decoded
//! with `decode_response_payload`; otherwise it is a bare body for `decode_response_kind`).
//! A body that decodes must re-encode, and the re-encoding must decode to the same value.
#![no_main]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use libfuzzer_sys::fuzz_target;
use mephisto_wire::messages::{
    decode_response_kind, decode_response_payload, encode_response_kind, message_versions,
    Direction, MessageError,
};
use mephisto_wire::versions::MEPHISTO_APIS;

/// `LENGTH_SLACK` of the decode guard.
const TAG_SLACK: u32 = 4096;

fuzz_target!(|data: &[u8]| {
    let [api_sel, ver_sel, rest @ ..] = data else {
        return;
    };
    let support = &MEPHISTO_APIS[usize::from(*api_sel) % MEPHISTO_APIS.len()];
    let span = (support.max - support.min + 1) as u8;
    let version = support.min + i16::from((ver_sel & 0x7f) % span);
    let input = Bytes::copy_from_slice(rest);

    // `decode_response_kind` does not say whether an ApiVersions body fell back to v0 (KIP-511);
    // such a body starts with error code 35, and its round trip is checked through the payload path.
    let fallback_possible = support.api == ApiKey::ApiVersions && rest.starts_with(&[0, 35]);
    let decoded = if ver_sel & 0x80 != 0 {
        decode_response_payload(support.api, version, input).map(|r| (r.body, r.version))
    } else {
        decode_response_kind(support.api, version, input).map(|body| (body, version))
    };
    let (body, used) = match decoded {
        Ok(x) => x,
        Err(MessageError::UnsupportedVersion { .. }) => {
            let range = message_versions(support.api, Direction::Response);
            assert!(
                !(range.min..=range.max).contains(&version),
                "{:?} v{version} is in the table and in kafka-protocol's range",
                support.api
            );
            return;
        }
        Err(_) => return,
    };
    if fallback_possible && ver_sel & 0x80 == 0 {
        return;
    }

    // decode → encode → decode is the identity.
    let mut buf = BytesMut::new();
    encode_response_kind(&mut buf, &body, used, 42).unwrap_or_else(|e| {
        panic!(
            "{:?} v{used}: decoded response does not re-encode: {e}",
            support.api
        )
    });
    let again = match decode_response_payload(support.api, used, buf.freeze()) {
        Ok(again) => again,
        // Documented strictness of the decode guard (`wire/src/guard.rs`): an unknown tagged field
        // whose tag *number* exceeds the bytes after it + 4096 is refused as a hostile length. A
        // decoded message keeps such a tag, and re-encoding drops the junk that followed it.
        Err(MessageError::HostileLength { claimed, .. }) if claimed > TAG_SLACK => return,
        Err(e) => panic!(
            "{:?} v{used}: re-encoded response does not decode: {e}",
            support.api
        ),
    };
    assert_eq!(again.correlation_id, 42);
    assert_eq!(
        again.body, body,
        "{:?} v{used}: round trip changed the response",
        support.api
    );
});
