//! The development broker's request handling (`mephisto_dev_broker::handler`) on
//! arbitrary bytes, for every API it serves, with no socket.
//!
//! Byte 0 selects the mode:
//! - bit 7 set: the rest is a whole request payload (header + body) for `handle_payload`;
//! - bits 7-6 = `01`: the rest is the record batch of a Produce request (its length, magic and
//!   CRC fixed up so that validation, idempotence checks, appends, retention and compaction are
//!   reached), to a delete topic (bit 0 clear) or a small compacted one (bit 0 set), followed
//!   by a Fetch of that partition from offset 0;
//! - otherwise byte 0 (low 6 bits) indexes the served APIs, byte 1 is the version (folded into
//!   the served range, plus one version either side to reach the unsupported-version paths),
//!   and the rest is the body.
//!
//! The broker state persists across runs (so sequences of inputs reach state-dependent code)
//! and is reset when it holds too many topics or groups.
//!
//! Whatever the input, handling must not panic, and a frame it answers with must carry a size
//! prefix matching its length.
#![no_main]

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use libfuzzer_sys::fuzz_target;
use mephisto_dev_broker::handler::{handle, handle_payload, Reply, SERVED_APIS};
use mephisto_dev_broker::{DevBrokerConfig, Shared};
use mephisto_wire::messages::encode_request;

const TOPICS: [&str; 2] = ["fuzz", "fuzz-compact"];

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let config = DevBrokerConfig {
            retention_bytes: 64 * 1024,
            default_partitions: 2,
            ..DevBrokerConfig::default()
        };
        let addr = config.listen;
        let shared = Shared::new(config, addr);
        create_topics(&shared);
        shared
    })
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn send<R: Request>(shared: &Shared, request: &R, version: i16) {
    let mut buf = BytesMut::new();
    encode_request(&mut buf, request, version, 1, Some(&s("fuzz"))).expect("encodes");
    check(shared, handle_payload(shared, buf.freeze()));
}

fn create_topics(shared: &Shared) {
    let topic = |name: &str| {
        CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(1)
            .with_replication_factor(1)
    };
    let compacted = topic(TOPICS[1]).with_configs(vec![
        CreatableTopicConfig::default()
            .with_name(s("cleanup.policy"))
            .with_value(Some(s("compact"))),
        CreatableTopicConfig::default()
            .with_name(s("retention.bytes"))
            .with_value(Some(s("4096"))),
    ]);
    let request = CreateTopicsRequest::default().with_topics(vec![topic(TOPICS[0]), compacted]);
    send(shared, &request, 7);
}

fn check(shared: &Shared, reply: Reply) {
    let frame = match reply {
        Reply::Frame(frame) => frame,
        Reply::FetchWait(pending) => {
            // The deadline "passed": the answer must come now.
            let _ = pending.poll(shared, true).expect("a forced poll answers");
            return;
        }
        Reply::Nothing | Reply::Close | Reply::Deferred { .. } => return,
    };
    let size = frame
        .first_chunk::<4>()
        .map(|b| i32::from_be_bytes(*b))
        .expect("a size prefix");
    assert_eq!(
        size as usize,
        frame.len() - 4,
        "size prefix matches the frame"
    );
}

/// Makes `records` framed like one v2 batch: batch length, magic 2, and a valid CRC.
fn fix_up(records: &mut [u8]) {
    let len = records.len();
    if let Some(slot) = records.get_mut(8..12) {
        slot.copy_from_slice(&((len as i32) - 12).to_be_bytes());
    }
    if let Some(magic) = records.get_mut(16) {
        *magic = 2;
    }
    if len >= 61 {
        let crc = crc32c::crc32c(&records[21..]);
        records[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let shared = shared();
    // Keep the state bounded across the whole run.
    if shared.reset_if_larger_than(64) {
        create_topics(shared);
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 0x80 != 0 {
        let reply = handle_payload(shared, Bytes::copy_from_slice(rest));
        check(shared, reply);
        return;
    }
    if mode & 0x40 != 0 {
        let topic = TOPICS[usize::from(mode & 1)];
        let mut records = rest.to_vec();
        fix_up(&mut records);
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(records)))])]);
        send(shared, &produce, 9);
        let fetch = FetchRequest::default()
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![
                    FetchPartition::default().with_partition_max_bytes(1 << 20)
                ])]);
        send(shared, &fetch, 12);
        return;
    }
    let Some((&ver_sel, body)) = rest.split_first() else {
        return;
    };
    let (api, min, max) = SERVED_APIS[usize::from(mode) % SERVED_APIS.len()];
    let span = i32::from(max) - i32::from(min) + 3;
    let version = (i32::from(min) - 1 + i32::from(ver_sel) % span) as i16;
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let reply = handle(shared, &header, Bytes::copy_from_slice(body));
    check(shared, reply);
});
