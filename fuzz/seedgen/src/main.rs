//! Writes seed inputs for every fuzz target in `fuzz/fuzz_targets/` into `<corpus>/<target>/`.
//!
//! Usage: `mephisto-fuzz-seedgen <corpus-dir> [<golden-dir>]`
//!
//! Sources: the golden record batches written by real clients (`wire/tests/golden/*.bin`), batches
//! built here with our encoder for every codec (plain, with headers, idempotent, transactional,
//! control markers, log-append time, offset gaps, several batches with a partial tail), request and
//! response messages for every API in `mephisto_wire::versions::MEPHISTO_APIS` at their lowest,
//! middle and highest version (default and populated bodies), frames, consumer-protocol payloads
//! and varints. Each seed is prefixed with the selector bytes its target expects (see the
//! comment at the top of each target). File names are `<label>-<hash>`, so re-running is
//! idempotent.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{self as m, ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use mephisto_wire::compression::{self, Compression};
use mephisto_wire::consumer_protocol::{
    encode_assignment, encode_subscription, Assignment, Subscription,
};
use mephisto_wire::header::{encode_request_header, response_header_version};
use mephisto_wire::messages::{encode_request_kind, encode_response_kind};
use mephisto_wire::record::{
    BatchEncoder, BatchSpec, ControlRecordType, NewHeader, NewRecord, TimestampType,
};
use mephisto_wire::varint::{write_varint, write_varlong};
use mephisto_wire::versions::MEPHISTO_APIS;

struct Corpus {
    root: PathBuf,
    written: BTreeMap<String, usize>,
}

impl Corpus {
    fn add(&mut self, target: &str, label: &str, data: &[u8]) {
        let dir = self.root.join(target);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let mut h = DefaultHasher::new();
        data.hash(&mut h);
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{label}-{:016x}", h.finish()));
        if let Err(e) = std::fs::write(&path, data) {
            panic!("cannot write {}: {e}", path.display());
        }
        *self.written.entry(target.to_owned()).or_default() += 1;
    }

    fn add_prefixed(&mut self, target: &str, label: &str, prefix: &[u8], data: &[u8]) {
        let mut v = prefix.to_vec();
        v.extend_from_slice(data);
        self.add(target, label, &v);
    }
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_owned())
}

fn text(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 32);
    let mut i = 0u32;
    while v.len() < len {
        v.extend_from_slice(
            format!(
                "{{\"id\":{i},\"user\":\"u{}\",\"v\":{}}},",
                i % 13,
                i * 7 % 100
            )
            .as_bytes(),
        );
        i += 1;
    }
    v.truncate(len);
    v
}

/// One batch as (label, bytes) for each shape and codec, built with our encoder.
fn encoded_batches() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let big = text(3000);
    let headers = [
        NewHeader {
            key: "h1",
            value: Some(b"v1"),
        },
        NewHeader {
            key: "null",
            value: None,
        },
        NewHeader {
            key: "ключ-ü",
            value: Some(&[0xff, 0x00]),
        },
    ];
    let records = [
        NewRecord::new(Some(b"key-0"), Some(b"value-0"), 1_700_000_000_000).with_headers(&headers),
        NewRecord::new(None, Some(&big), 1_700_000_000_005),
        NewRecord::new(Some(b"key-2"), None, 1_699_999_999_990),
        NewRecord::new(Some(b""), Some(b""), 1_700_000_000_010),
    ];
    let mut enc = BatchEncoder::new();
    for codec in Compression::ALL {
        let name = codec.name();
        let mut buf = Vec::new();
        enc.encode(
            &BatchSpec {
                compression: codec,
                ..BatchSpec::default()
            },
            &records,
            &mut buf,
        )
        .expect("encode plain");
        out.push((format!("plain-{name}"), buf));

        let mut buf = Vec::new();
        let spec = BatchSpec {
            base_offset: 100,
            partition_leader_epoch: 5,
            compression: codec,
            transactional: true,
            producer_id: 4242,
            producer_epoch: 3,
            base_sequence: 17,
            ..BatchSpec::default()
        };
        enc.encode(&spec, &records[..2], &mut buf)
            .expect("encode txn");
        enc.encode_control(
            &BatchSpec {
                base_offset: 102,
                ..spec
            },
            ControlRecordType::Commit,
            9,
            1_700_000_000_100,
            &mut buf,
        )
        .expect("encode commit");
        enc.encode(
            &BatchSpec {
                base_offset: 103,
                producer_id: 4343,
                ..spec
            },
            &records[2..],
            &mut buf,
        )
        .expect("encode txn 2");
        enc.encode_control(
            &BatchSpec {
                base_offset: 105,
                producer_id: 4343,
                ..spec
            },
            ControlRecordType::Abort,
            9,
            1_700_000_000_200,
            &mut buf,
        )
        .expect("encode abort");
        out.push((format!("txn-{name}"), buf));

        let mut buf = Vec::new();
        let spec = BatchSpec {
            compression: codec,
            timestamp_type: TimestampType::LogAppendTime,
            ..BatchSpec::default()
        };
        let mut w = enc.writer(&spec, &mut buf);
        w.append_at(0, &records[0]).expect("append");
        w.append_at(3, &records[2]).expect("append");
        w.append_at(9, &records[3]).expect("append");
        w.set_last_offset_delta(12).expect("last delta");
        w.finish().expect("finish");
        out.push((format!("gaps-lat-{name}"), buf));

        // Empty batch (compaction can leave them).
        let mut buf = Vec::new();
        enc.encode(
            &BatchSpec {
                compression: codec,
                ..BatchSpec::default()
            },
            &[],
            &mut buf,
        )
        .expect("encode empty");
        out.push((format!("empty-{name}"), buf));
    }
    // Several batches of different codecs, with a partial trailing batch.
    let mut multi = Vec::new();
    for (_, b) in out.iter().filter(|(l, _)| l.starts_with("plain-")) {
        multi.extend_from_slice(b);
    }
    let tail = out[0].1.clone();
    multi.extend_from_slice(&tail[..tail.len() / 2]);
    out.push(("multi-partial".to_owned(), multi));
    out
}

/// Splits concatenated batches; returns (codec, record count, records region) per whole batch.
fn regions(bytes: &[u8]) -> Vec<(Compression, i32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 61 {
        let len = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let Ok(len) = usize::try_from(len) else { break };
        if rest.len() < 12 + len || len < 49 {
            break;
        }
        let batch = &rest[..12 + len];
        let attributes = i16::from_be_bytes([batch[21], batch[22]]);
        let count = i32::from_be_bytes([batch[57], batch[58], batch[59], batch[60]]);
        if let Ok(codec) = Compression::from_attributes(attributes) {
            out.push((codec, count, batch[61..].to_vec()));
        }
        rest = &rest[12 + len..];
    }
    out
}

fn golden(dir: Option<&Path>) -> Vec<(String, Vec<u8>)> {
    let Some(dir) = dir else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("seedgen: no golden directory at {}", dir.display());
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("bin") {
            continue;
        }
        if let Ok(bytes) = std::fs::read(&path) {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((format!("golden-{stem}"), bytes));
        }
    }
    out.sort();
    out
}

fn default_response(api: ApiKey) -> Option<ResponseKind> {
    macro_rules! defaults {
        ($($api:ident => $t:ident,)*) => {
            match api {
                $(ApiKey::$api => Some(ResponseKind::$api(m::$t::default())),)*
                _ => None,
            }
        };
    }
    defaults! {
        Produce => ProduceResponse, Fetch => FetchResponse, ListOffsets => ListOffsetsResponse,
        Metadata => MetadataResponse, OffsetCommit => OffsetCommitResponse,
        OffsetFetch => OffsetFetchResponse, FindCoordinator => FindCoordinatorResponse,
        JoinGroup => JoinGroupResponse, Heartbeat => HeartbeatResponse,
        LeaveGroup => LeaveGroupResponse, SyncGroup => SyncGroupResponse,
        ApiVersions => ApiVersionsResponse, CreateTopics => CreateTopicsResponse,
        DeleteTopics => DeleteTopicsResponse, InitProducerId => InitProducerIdResponse,
        AddPartitionsToTxn => AddPartitionsToTxnResponse, AddOffsetsToTxn => AddOffsetsToTxnResponse,
        EndTxn => EndTxnResponse, TxnOffsetCommit => TxnOffsetCommitResponse,
        DescribeConfigs => DescribeConfigsResponse,
    }
}

fn default_request(api: ApiKey) -> Option<RequestKind> {
    macro_rules! defaults {
        ($($api:ident => $t:ident,)*) => {
            match api {
                $(ApiKey::$api => Some(RequestKind::$api(m::$t::default())),)*
                _ => None,
            }
        };
    }
    defaults! {
        Produce => ProduceRequest, Fetch => FetchRequest, ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest, OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest, FindCoordinator => FindCoordinatorRequest,
        JoinGroup => JoinGroupRequest, Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest, SyncGroup => SyncGroupRequest,
        ApiVersions => ApiVersionsRequest, CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest, InitProducerId => InitProducerIdRequest,
        AddPartitionsToTxn => AddPartitionsToTxnRequest, AddOffsetsToTxn => AddOffsetsToTxnRequest,
        EndTxn => EndTxnRequest, TxnOffsetCommit => TxnOffsetCommitRequest,
        DescribeConfigs => DescribeConfigsRequest,
    }
}

fn subscription_payload(version: i16) -> Bytes {
    let mut owned = BTreeMap::new();
    owned.insert("orders".to_owned(), vec![0, 2]);
    let sub = Subscription {
        topics: vec!["orders".to_owned(), "payments".to_owned()],
        user_data: Some(Bytes::from_static(b"\x00\x01userdata")),
        owned_partitions: owned,
        generation_id: 7,
        rack_id: Some("rack-a".to_owned()),
    };
    encode_subscription(&sub, version).expect("subscription")
}

fn assignment_payload(version: i16) -> Bytes {
    let mut partitions = BTreeMap::new();
    partitions.insert("orders".to_owned(), vec![0, 1, 2]);
    partitions.insert("payments".to_owned(), vec![5]);
    let asg = Assignment {
        partitions,
        user_data: Some(Bytes::from_static(b"ud")),
    };
    encode_assignment(&asg, version).expect("assignment")
}

/// Responses with content, for the APIs the consumer leans on.
fn populated_responses(records: &Bytes) -> Vec<ResponseKind> {
    let mut out = Vec::new();

    let mut part = m::fetch_response::PartitionData::default();
    part.partition_index = 0;
    part.high_watermark = 200;
    part.last_stable_offset = 150;
    part.log_start_offset = 0;
    let mut aborted = m::fetch_response::AbortedTransaction::default();
    aborted.producer_id = m::ProducerId(4343);
    aborted.first_offset = 103;
    part.aborted_transactions = Some(vec![aborted]);
    part.records = Some(records.clone());
    let mut topic = m::fetch_response::FetchableTopicResponse::default();
    topic.topic = m::TopicName(s("orders"));
    topic.partitions = vec![part];
    let mut fetch = m::FetchResponse::default();
    fetch.session_id = 12;
    fetch.responses = vec![topic];
    out.push(ResponseKind::Fetch(fetch));

    let mut broker = m::metadata_response::MetadataResponseBroker::default();
    broker.node_id = m::BrokerId(1);
    broker.host = s("broker-1.example");
    broker.port = 9092;
    broker.rack = Some(s("rack-a"));
    let mut p = m::metadata_response::MetadataResponsePartition::default();
    p.partition_index = 0;
    p.leader_id = m::BrokerId(1);
    p.leader_epoch = 3;
    p.replica_nodes = vec![m::BrokerId(1), m::BrokerId(2)];
    p.isr_nodes = vec![m::BrokerId(1)];
    let mut t = m::metadata_response::MetadataResponseTopic::default();
    t.name = Some(m::TopicName(s("orders")));
    t.partitions = vec![p];
    let mut md = m::MetadataResponse::default();
    md.brokers = vec![broker];
    md.cluster_id = Some(s("cluster"));
    md.controller_id = m::BrokerId(1);
    md.topics = vec![t];
    out.push(ResponseKind::Metadata(md));

    let mut av = m::ApiVersionsResponse::default();
    av.api_keys = MEPHISTO_APIS
        .iter()
        .map(|a| {
            let mut v = m::api_versions_response::ApiVersion::default();
            v.api_key = a.api as i16;
            v.min_version = a.min;
            v.max_version = a.max;
            v
        })
        .collect();
    out.push(ResponseKind::ApiVersions(av));
    let mut av_err = m::ApiVersionsResponse::default();
    av_err.error_code = 35;
    out.push(ResponseKind::ApiVersions(av_err));

    let mut member = m::join_group_response::JoinGroupResponseMember::default();
    member.member_id = s("member-1");
    member.metadata = subscription_payload(3);
    let mut jg = m::JoinGroupResponse::default();
    jg.generation_id = 4;
    jg.protocol_name = Some(s("range"));
    jg.protocol_type = Some(s("consumer"));
    jg.leader = s("member-1");
    jg.member_id = s("member-1");
    jg.members = vec![member];
    out.push(ResponseKind::JoinGroup(jg));

    let mut sg = m::SyncGroupResponse::default();
    sg.protocol_type = Some(s("consumer"));
    sg.protocol_name = Some(s("range"));
    sg.assignment = assignment_payload(3);
    out.push(ResponseKind::SyncGroup(sg));

    let mut fc = m::FindCoordinatorResponse::default();
    fc.node_id = m::BrokerId(2);
    fc.host = s("broker-2.example");
    fc.port = 9093;
    out.push(ResponseKind::FindCoordinator(fc));
    let mut c = m::find_coordinator_response::Coordinator::default();
    c.key = s("group");
    c.node_id = m::BrokerId(2);
    c.host = s("broker-2.example");
    c.port = 9093;
    let mut fc4 = m::FindCoordinatorResponse::default();
    fc4.coordinators = vec![c];
    out.push(ResponseKind::FindCoordinator(fc4));

    let mut op = m::offset_fetch_response::OffsetFetchResponsePartition::default();
    op.partition_index = 1;
    op.committed_offset = 42;
    op.committed_leader_epoch = 3;
    op.metadata = Some(s("meta"));
    let mut ot = m::offset_fetch_response::OffsetFetchResponseTopic::default();
    ot.name = m::TopicName(s("orders"));
    ot.partitions = vec![op];
    let mut of = m::OffsetFetchResponse::default();
    of.topics = vec![ot];
    out.push(ResponseKind::OffsetFetch(of));
    out
}

fn populated_requests(records: &Bytes) -> Vec<RequestKind> {
    let mut out = Vec::new();
    let mut pd = m::produce_request::PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(records.clone());
    let mut td = m::produce_request::TopicProduceData::default();
    td.name = m::TopicName(s("orders"));
    td.partition_data = vec![pd];
    let mut produce = m::ProduceRequest::default();
    produce.acks = -1;
    produce.timeout_ms = 30_000;
    produce.topic_data = vec![td];
    out.push(RequestKind::Produce(produce));

    let mut fp = m::fetch_request::FetchPartition::default();
    fp.partition = 0;
    fp.fetch_offset = 100;
    fp.partition_max_bytes = 1 << 20;
    let mut ft = m::fetch_request::FetchTopic::default();
    ft.topic = m::TopicName(s("orders"));
    ft.partitions = vec![fp];
    let mut fetch = m::FetchRequest::default();
    fetch.max_wait_ms = 500;
    fetch.min_bytes = 1;
    fetch.max_bytes = 50 << 20;
    fetch.isolation_level = 1;
    fetch.topics = vec![ft];
    out.push(RequestKind::Fetch(fetch));

    let mut mt = m::metadata_request::MetadataRequestTopic::default();
    mt.name = Some(m::TopicName(s("orders")));
    let mut md = m::MetadataRequest::default();
    md.topics = Some(vec![mt]);
    out.push(RequestKind::Metadata(md));

    let mut proto = m::join_group_request::JoinGroupRequestProtocol::default();
    proto.name = s("range");
    proto.metadata = subscription_payload(1);
    let mut jg = m::JoinGroupRequest::default();
    jg.group_id = m::GroupId(s("group"));
    jg.session_timeout_ms = 45_000;
    jg.rebalance_timeout_ms = 300_000;
    jg.protocol_type = s("consumer");
    jg.protocols = vec![proto];
    out.push(RequestKind::JoinGroup(jg));

    let mut a = m::sync_group_request::SyncGroupRequestAssignment::default();
    a.member_id = s("member-1");
    a.assignment = assignment_payload(0);
    let mut sg = m::SyncGroupRequest::default();
    sg.group_id = m::GroupId(s("group"));
    sg.generation_id = 4;
    sg.member_id = s("member-1");
    sg.assignments = vec![a];
    out.push(RequestKind::SyncGroup(sg));
    out
}

fn response_api(r: &ResponseKind) -> Option<ApiKey> {
    Some(match r {
        ResponseKind::Fetch(_) => ApiKey::Fetch,
        ResponseKind::Metadata(_) => ApiKey::Metadata,
        ResponseKind::ApiVersions(_) => ApiKey::ApiVersions,
        ResponseKind::JoinGroup(_) => ApiKey::JoinGroup,
        ResponseKind::SyncGroup(_) => ApiKey::SyncGroup,
        ResponseKind::FindCoordinator(_) => ApiKey::FindCoordinator,
        ResponseKind::OffsetFetch(_) => ApiKey::OffsetFetch,
        _ => return None,
    })
}

fn request_api(r: &RequestKind) -> Option<ApiKey> {
    Some(match r {
        RequestKind::Produce(_) => ApiKey::Produce,
        RequestKind::Fetch(_) => ApiKey::Fetch,
        RequestKind::Metadata(_) => ApiKey::Metadata,
        RequestKind::JoinGroup(_) => ApiKey::JoinGroup,
        RequestKind::SyncGroup(_) => ApiKey::SyncGroup,
        _ => return None,
    })
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(root) = args.next() else {
        eprintln!("usage: mephisto-fuzz-seedgen <corpus-dir> [<golden-dir>]");
        std::process::exit(2);
    };
    let golden_dir = args.next().map(PathBuf::from);
    let mut c = Corpus {
        root: PathBuf::from(root),
        written: BTreeMap::new(),
    };

    let batches = encoded_batches();
    let goldens = golden(golden_dir.as_deref());
    let all: Vec<&(String, Vec<u8>)> = batches.iter().chain(goldens.iter()).collect();

    // record_batch: [flags] + records bytes. 0x1F = verify CRC, 1 MiB caps; 0x1E = no CRC check.
    for (label, bytes) in &all {
        c.add_prefixed("record_batch", &format!("{label}-crc"), &[0x1F], bytes);
        c.add_prefixed("record_batch", &format!("{label}-nocrc"), &[0x1E], bytes);
    }

    // record_batch_body and decompress, from each batch's records region.
    for (label, bytes) in &all {
        for (i, (codec, count, region)) in regions(bytes).into_iter().enumerate() {
            let count = u8::try_from(count).unwrap_or(u8::MAX);
            let bits = codec.attribute_bits() as u8;
            // As-is region (compressed if the codec says so), CRC verified, 1 MiB cap.
            let mut head = vec![bits, 0x0E, count];
            head.extend_from_slice(&(i as i64 * 10).to_be_bytes());
            c.add_prefixed(
                "record_batch_body",
                &format!("{label}-{i}-asis"),
                &head,
                &region,
            );
            if codec == Compression::None {
                // Uncompressed records, compressed by the target with each codec.
                for other in Compression::ALL {
                    let mut head = vec![other.attribute_bits() as u8, 0x0F, count];
                    head.extend_from_slice(&0i64.to_be_bytes());
                    c.add_prefixed(
                        "record_batch_body",
                        &format!("{label}-{i}-as-{}", other.name()),
                        &head,
                        &region,
                    );
                }
            } else {
                c.add_prefixed(
                    "decompress",
                    &format!("{label}-{i}"),
                    &[bits | (7 << 5)],
                    &region,
                );
                c.add_prefixed(
                    "decompress",
                    &format!("{label}-{i}-cap4k"),
                    &[bits | (4 << 5)],
                    &region,
                );
            }
        }
    }
    for codec in Compression::ALL {
        for (name, input) in [
            ("text", text(5000)),
            ("zeros", vec![0u8; 50_000]),
            ("empty", Vec::new()),
        ] {
            let mut packed = Vec::new();
            compression::compress(codec, &input, &mut packed).expect("compress");
            let bits = codec.attribute_bits() as u8;
            c.add_prefixed(
                "decompress",
                &format!("{}-{name}", codec.name()),
                &[bits | (7 << 5)],
                &packed,
            );
            c.add_prefixed(
                "decompress",
                &format!("{}-{name}-cap100", codec.name()),
                &[bits | (3 << 5)],
                &packed,
            );
        }
    }
    // Raw (unframed) snappy, as librdkafka writes it: a single-chunk xerial stream (input under
    // 32 KiB) minus its 16-byte header and 4-byte chunk length.
    let mut framed = Vec::new();
    compression::compress(Compression::Snappy, &text(3000), &mut framed).expect("snappy");
    c.add_prefixed("decompress", "snappy-raw", &[2 | (7 << 5)], &framed[20..]);

    // varint: canonical encodings of interesting values, back to back.
    let mut v = Vec::new();
    for x in [0i32, 1, -1, 63, -64, 64, 300, -300, i32::MAX, i32::MIN] {
        write_varint(&mut v, x);
    }
    c.add("varint", "varints", &v);
    let mut v = Vec::new();
    for x in [0i64, -1, 1 << 40, i64::MAX, i64::MIN] {
        write_varlong(&mut v, x);
    }
    c.add("varint", "varlongs", &v);
    c.add("varint", "too-long", &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);

    // Responses: [api index, version index | 0x80 for header+body] + bytes.
    let sample_records = Bytes::from(
        batches
            .iter()
            .find(|(l, _)| l == "txn-lz4")
            .map(|(_, b)| b.clone())
            .unwrap_or_default(),
    );
    let populated = populated_responses(&sample_records);
    for (idx, support) in MEPHISTO_APIS.iter().enumerate() {
        let mid = support.min + (support.max - support.min) / 2;
        let mut bodies: Vec<ResponseKind> = default_response(support.api).into_iter().collect();
        bodies.extend(
            populated
                .iter()
                .filter(|r| response_api(r) == Some(support.api))
                .cloned(),
        );
        for version in [support.min, mid, support.max] {
            let ver_sel = (version - support.min) as u8;
            for (k, body) in bodies.iter().enumerate() {
                let mut buf = BytesMut::new();
                if encode_response_kind(&mut buf, body, version, 1234).is_err() {
                    continue;
                }
                let header_len = if response_header_version(support.api, version) >= 1 {
                    5
                } else {
                    4
                };
                let label = format!("{:?}-v{version}-{k}", support.api);
                c.add_prefixed(
                    "response",
                    &format!("{label}-payload"),
                    &[idx as u8, ver_sel | 0x80],
                    &buf,
                );
                c.add_prefixed(
                    "response",
                    &format!("{label}-body"),
                    &[idx as u8, ver_sel],
                    &buf[header_len..],
                );
            }
        }
    }

    // Requests: [0x80] + whole payload, or [api index in ApiKey::iter(), version] + body.
    let api_index: BTreeMap<i16, u8> = ApiKey::iter()
        .enumerate()
        .map(|(i, k)| (k as i16, i as u8))
        .collect();
    let populated = populated_requests(&sample_records);
    let client_id = s("mephisto-seed");
    let mut frames = Vec::new();
    for support in MEPHISTO_APIS {
        let mid = support.min + (support.max - support.min) / 2;
        let mut bodies: Vec<RequestKind> = default_request(support.api).into_iter().collect();
        bodies.extend(
            populated
                .iter()
                .filter(|r| request_api(r) == Some(support.api))
                .cloned(),
        );
        for version in [support.min, mid, support.max] {
            for (k, body) in bodies.iter().enumerate() {
                let mut buf = BytesMut::new();
                if encode_request_kind(&mut buf, body, version, 77, Some(&client_id)).is_err() {
                    continue;
                }
                let mut header = BytesMut::new();
                if encode_request_header(&mut header, support.api, version, 77, Some(&client_id))
                    .is_err()
                {
                    continue;
                }
                let label = format!("{:?}-v{version}-{k}", support.api);
                c.add_prefixed("request", &format!("{label}-payload"), &[0x80], &buf);
                let ver_sel = (version - support.api.valid_versions().min) as u8;
                if let Some(&i) = api_index.get(&(support.api as i16)) {
                    c.add_prefixed(
                        "request",
                        &format!("{label}-body"),
                        &[i, ver_sel],
                        &buf[header.len()..],
                    );
                }
                let mut framed = (buf.len() as i32).to_be_bytes().to_vec();
                framed.extend_from_slice(&buf);
                frames.push((label, framed));
            }
        }
    }

    // Frames: [max size selector, delivery chunk] + one or more frames.
    let mut all_frames = Vec::new();
    for (label, f) in frames.iter().take(40) {
        c.add_prefixed("frame", label, &[6, 7], f);
        all_frames.extend_from_slice(f);
    }
    c.add_prefixed("frame", "many-1mib", &[6, 255], &all_frames);
    c.add_prefixed("frame", "many-unlimited-bytewise", &[7, 1], &all_frames);
    c.add_prefixed("frame", "too-large", &[3, 16], &all_frames);

    // Consumer protocol: [0] subscription / [1] assignment.
    for version in 0..=3 {
        c.add_prefixed(
            "consumer_protocol",
            &format!("subscription-v{version}"),
            &[0],
            &subscription_payload(version),
        );
        c.add_prefixed(
            "consumer_protocol",
            &format!("assignment-v{version}"),
            &[1],
            &assignment_payload(version),
        );
    }
    let mut future = subscription_payload(3).to_vec();
    future[..2].copy_from_slice(&5i16.to_be_bytes());
    future.extend_from_slice(b"future fields");
    c.add_prefixed(
        "consumer_protocol",
        "subscription-v5-trailing",
        &[0],
        &future,
    );
    c.add("consumer_protocol", "assignment-empty", &[1]);

    // record_roundtrip: [spec bits][base offset][first timestamp] + records (see the target).
    let mut recs = Vec::new();
    recs.extend_from_slice(&[0x08, 0, 0, 3, b'a', b'b', b'c', 5, 0]);
    recs.extend_from_slice(b"hello");
    recs.extend_from_slice(&[2, b'h', b'1', 2, b'v', b'1', 1, b'n', 0xff]);
    recs.extend_from_slice(&[0x01 | (2 << 5), 0xff, 0xfb, 0, 0]);
    recs.extend_from_slice(&[0x02, 0, 7, 1, b'k']);
    let big = text(2000);
    recs.extend_from_slice(&[
        0x04,
        0,
        1,
        0,
        (big.len() & 0xff) as u8,
        (big.len() >> 8) as u8,
    ]);
    recs.extend_from_slice(&big);
    recs.extend_from_slice(&[4, b'u', b't', b'f', b'8', 3, 1, 2, 3]);
    for spec in [
        0x00u8,
        0x01 | 0x10 | 0x20,
        0x02 | 0x08 | 0x40,
        0x03 | 0x80,
        0x04 | 0x10 | 0x20 | 0x40,
    ] {
        let mut head = vec![spec];
        head.extend_from_slice(&100i64.to_be_bytes());
        head.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        c.add_prefixed(
            "record_roundtrip",
            &format!("spec-{spec:02x}"),
            &head,
            &recs,
        );
    }

    for (target, n) in &c.written {
        println!("{target}: {n} seeds");
    }
}
