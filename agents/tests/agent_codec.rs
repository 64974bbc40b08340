//! Codecs, events and Faust's request/reply wire types.

use std::sync::Arc;

use bytes::Bytes;
use mephisto::ack::{AckRef, MemoryAcks};
use mephisto::codec::{self, Codec, CodecName, Direction, Json, Part, Postcard, Raw, SerdeCodec};
use mephisto::event::{Coordinate, Event, Headers};
use mephisto::reqrep::{
    reply_headers, ReqRepRequest, ReqRepResponse, CORRELATION_ID_HEADER, REPLY_TO_HEADER,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[test]
fn json_round_trip_and_faust_shape() {
    let bytes = Codec::<Add>::encode(&Json, &Add { a: 4, b: 4 }).unwrap();
    assert_eq!(&bytes[..], br#"{"a":4,"b":4}"#);
    let back: Add = Json.decode(&bytes).unwrap();
    let by_name: Add = SerdeCodec(CodecName::Json).decode(&bytes).unwrap();
    assert_eq!(by_name, back);
    assert_eq!(back, Add { a: 4, b: 4 });
}

#[test]
fn postcard_round_trip_is_compact() {
    let v = Add { a: 1, b: -1 };
    let bytes = Codec::<Add>::encode(&Postcard, &v).unwrap();
    assert!(bytes.len() < 4, "{bytes:?}");
    assert_eq!(Codec::<Add>::decode(&Postcard, &bytes).unwrap(), v);
}

#[test]
fn raw_round_trip_bytes_and_strings() {
    let b = Bytes::from_static(b"\x00\xffkey");
    assert_eq!(
        Codec::<Bytes>::decode(&Raw, &Raw.encode(&b).unwrap()).unwrap(),
        b
    );
    let v = vec![1u8, 2, 3];
    assert_eq!(
        Codec::<Vec<u8>>::decode(&Raw, &Raw.encode(&v).unwrap()).unwrap(),
        v
    );
    let s = "clé".to_string();
    assert_eq!(
        Codec::<String>::decode(&Raw, &Raw.encode(&s).unwrap()).unwrap(),
        s
    );
}

#[test]
fn codecs_by_name() {
    assert_eq!("json".parse::<CodecName>().unwrap(), CodecName::Json);
    assert_eq!("raw".parse::<CodecName>().unwrap(), CodecName::Raw);
    assert_eq!(
        "postcard".parse::<CodecName>().unwrap(),
        CodecName::Postcard
    );
    assert!("pickle".parse::<CodecName>().is_err());
    assert_eq!(CodecName::DEFAULT_KEY, CodecName::Raw);
    assert_eq!(CodecName::DEFAULT_VALUE, CodecName::Json);
    for name in [CodecName::Json, CodecName::Postcard] {
        let bytes = codec::encode(name, &Add { a: 2, b: 3 }).unwrap();
        assert_eq!(
            codec::decode::<Add>(name, &bytes).unwrap(),
            Add { a: 2, b: 3 }
        );
    }
    let bytes = codec::encode(CodecName::Raw, &"k1").unwrap();
    assert_eq!(&bytes[..], b"k1");
    assert_eq!(
        codec::decode::<String>(CodecName::Raw, b"k1").unwrap(),
        "k1"
    );
    let err = codec::encode(CodecName::Raw, &Add { a: 1, b: 1 }).unwrap_err();
    assert_eq!(err.codec, "raw");
    assert_eq!(err.direction, Direction::Encode);
}

#[test]
fn typed_errors_name_what_failed() {
    let err = Codec::<Add>::decode(&Json, &Bytes::from_static(br#"{"a":1}"#))
        .unwrap_err()
        .for_part(Part::Value)
        .at(Coordinate {
            topic: "adding".into(),
            partition: 3,
            offset: 42,
        });
    assert_eq!(err.codec, "json");
    assert_eq!(err.direction, Direction::Decode);
    assert_eq!(err.part, Part::Value);
    assert!(err.type_name.ends_with("Add"), "{}", err.type_name);
    let text = err.to_string();
    assert!(text.contains("failed to decode value as json"), "{text}");
    assert!(text.contains("adding[3]@42"), "{text}");
    assert!(text.contains("missing field `b`"), "{text}");
    assert!(std::error::Error::source(&err).is_some());

    let err = Codec::<String>::decode(&Raw, &Bytes::from_static(b"\xff\xfe")).unwrap_err();
    assert_eq!((err.codec, err.direction), ("raw", Direction::Decode));
    assert!(err.at.is_none());

    let err = Codec::<Add>::decode(&Postcard, &Bytes::new()).unwrap_err();
    assert_eq!(err.codec, "postcard");
}

#[test]
fn req_rep_response_matches_faust_json() {
    let r = ReqRepResponse::new(Some("k".to_string()), 8i64, "cid-1");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "key": "k", "value": 8, "correlation_id": "cid-1",
            "__faust": {"ns": "@ReqRepResponse"}
        })
    );
    // As Faust writes it, and without the metadata block.
    let back: ReqRepResponse<String, i64> =
        serde_json::from_str(r#"{"key": null, "value": 4, "correlation_id": "x"}"#).unwrap();
    assert_eq!(back.value, 4);
    assert_eq!(back.key, None);
    let req = ReqRepRequest::new(Add { a: 1, b: 2 }, "f-reply-1", "cid");
    let json = serde_json::to_value(&req).unwrap();
    assert_eq!(json["reply_to"], "f-reply-1");
    assert_eq!(json["__faust"]["ns"], "@ReqRepRequest");
}

#[test]
fn event_reply_headers_and_ack_once() {
    assert_eq!(REPLY_TO_HEADER, "Faust-Ag-ReplyTo");
    assert_eq!(CORRELATION_ID_HEADER, "Faust-Ag-CorrelationId");
    let acks = MemoryAcks::new();
    let ev: Event<String, i64> = Event::new(
        Some("k".into()),
        1,
        Headers::from_pairs(reply_headers("f-reply-x", "cid-9")),
        7,
        Some(AckRef::new(Arc::new(acks.clone()), 7, 0)),
    );
    let to = ev.reply_to().unwrap();
    assert_eq!(
        (to.topic.as_str(), to.correlation_id.as_str()),
        ("f-reply-x", "cid-9")
    );
    let clone = ev.clone();
    assert!(ev.ack());
    assert!(!clone.ack());
    assert!(acks.is_acked(7));
    assert_eq!(acks.acked_seqs(), vec![7]);
}
