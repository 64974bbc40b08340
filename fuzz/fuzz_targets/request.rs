//! The request decoders (what an embedded or test broker runs on untrusted bytes), for every API
//! `kafka-protocol` knows.
//!
//! Byte 0 selects the mode: bit 7 set → the rest is a whole request payload (header + body) for
//! `decode_request`; otherwise byte 0 (low 7 bits) indexes `ApiKey::iter()`, byte 1 is the version
//! (folded into the request's range), and the rest is a bare body for `decode_request_kind`.
//! A request that decodes must re-encode and decode to the same value.
#![no_main]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use libfuzzer_sys::fuzz_target;
use mephisto_wire::messages::{
    decode_request, decode_request_kind, encode_request_kind, message_versions, Direction,
    MessageError,
};

/// `LENGTH_SLACK` of the decode guard (`wire/src/guard.rs`), which documents refusing an unknown
/// tagged field whose tag *number* exceeds the bytes after it + 4096 as a hostile length. A
/// decoded message keeps such a tag, and re-encoding drops the junk that followed it, so the
/// re-encoding can trip that rule; only that case is tolerated.
const TAG_SLACK: u32 = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 0x80 != 0 {
        let Ok(req) = decode_request(Bytes::copy_from_slice(rest)) else {
            return;
        };
        let version = req.header.request_api_version;
        let mut buf = BytesMut::new();
        encode_request_kind(
            &mut buf,
            &req.body,
            version,
            req.header.correlation_id,
            req.header.client_id.as_ref(),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{:?} v{version}: decoded request does not re-encode: {e}",
                req.api_key
            )
        });
        let again = match decode_request(buf.freeze()) {
            Ok(again) => again,
            // See `TAG_SLACK`.
            Err(MessageError::HostileLength { claimed, .. }) if claimed > TAG_SLACK => return,
            Err(e) => panic!(
                "{:?} v{version}: re-encoded request does not decode: {e}",
                req.api_key
            ),
        };
        assert_eq!(again.api_key, req.api_key);
        assert_eq!(again.header.correlation_id, req.header.correlation_id);
        assert_eq!(again.header.client_id, req.header.client_id);
        assert_eq!(
            again.body, req.body,
            "{:?} v{version}: round trip changed the request",
            req.api_key
        );
        return;
    }

    let Some((&ver_sel, body)) = rest.split_first() else {
        return;
    };
    let apis: Vec<ApiKey> = ApiKey::iter().collect();
    let api = apis[usize::from(mode) % apis.len()];
    let range = message_versions(api, Direction::Request);
    let span = i32::from(range.max) - i32::from(range.min) + 1;
    let version = (i32::from(range.min) + i32::from(ver_sel) % span) as i16;
    let Ok(req) = decode_request_kind(api, version, Bytes::copy_from_slice(body)) else {
        return;
    };
    let mut buf = BytesMut::new();
    encode_request_kind(&mut buf, &req, version, 7, None)
        .unwrap_or_else(|e| panic!("{api:?} v{version}: decoded request does not re-encode: {e}"));
    let again = match decode_request(buf.freeze()) {
        Ok(again) => again,
        Err(MessageError::HostileLength { claimed, .. }) if claimed > TAG_SLACK => return,
        Err(e) => panic!("{api:?} v{version}: re-encoded request does not decode: {e}"),
    };
    assert_eq!(
        again.body, req,
        "{api:?} v{version}: round trip changed the request"
    );
});
