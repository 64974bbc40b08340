//! Request dispatch, with no socket: a request payload (or a decoded header and a body) in, a
//! [`Reply`] out. Owns the table of served APIs (exactly what ApiVersions advertises), the
//! KIP-511 ApiVersions fallback, and what happens to requests that cannot be served: an error
//! response where the response type has a top-level error code, otherwise a closed connection.
//! Bytes after a request body are ignored, as Kafka's broker ignores them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, HeartbeatResponse, InitProducerIdResponse, JoinGroupResponse,
    LeaveGroupResponse, ListGroupsResponse, RequestHeader, RequestKind, ResponseKind,
    SyncGroupResponse,
};
use mephisto_wire::frame::{begin_frame, finish_frame};
use mephisto_wire::header::decode_request_header;
use mephisto_wire::messages::{decode_request_kind_prefix, encode_response_kind};
use tokio::sync::oneshot;

use crate::fetch::PendingFetch;
use crate::state::Shared;
use crate::{admin, fetch, group, offsets, produce};

/// Every API the broker serves, with the versions it serves: `(api, min, max)`.
///
/// Minimums are the oldest versions `kafka-protocol` 0.18 decodes; maximums stop where a newer
/// version needs something the broker does not have (topic ids in Produce v13 / Fetch v13,
/// transactions V2 in Produce v12, a tiered-storage timeout in ListOffsets v10, KIP-1102 in
/// Metadata v13).
pub const SERVED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
];

/// What the connection does with one request.
#[derive(Debug)]
pub enum Reply {
    /// Write this frame (size prefix included).
    Frame(BytesMut),
    /// Write nothing (Produce with acks=0).
    Nothing,
    /// Close the connection without answering.
    Close,
    /// The answer comes later from the group coordinator (JoinGroup, SyncGroup).
    Deferred {
        /// Receives the response body.
        rx: oneshot::Receiver<ResponseKind>,
        /// Version to encode it at.
        version: i16,
        /// Correlation id to answer with.
        correlation_id: i32,
    },
    /// A Fetch waiting for data (long poll); see [`PendingFetch`].
    FetchWait(Box<PendingFetch>),
}

/// Handles one request payload (a frame without its size prefix).
///
/// A payload whose header does not decode closes the connection.
pub fn handle_payload(shared: &Shared, payload: Bytes) -> Reply {
    let mut body = payload;
    match decode_request_header(&mut body) {
        Ok(header) => handle(shared, &header, body),
        Err(_) => Reply::Close,
    }
}

/// Handles one request given its decoded header and its undecoded body. Never panics and never
/// blocks; the entry point for fuzzing.
pub fn handle(shared: &Shared, header: &RequestHeader, body: Bytes) -> Reply {
    let Ok(api) = ApiKey::try_from(header.request_api_key) else {
        return Reply::Close;
    };
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;
    let Some(&(_, min, max)) = SERVED_APIS.iter().find(|(a, _, _)| *a == api) else {
        return Reply::Close;
    };
    if api == ApiKey::ApiVersions && !(min..=max).contains(&version) {
        // KIP-511: answer with v0 and our ApiVersions range so the client can retry.
        let response = api_versions(ResponseError::UnsupportedVersion.code());
        return encode(&ResponseKind::ApiVersions(response), 0, correlation_id);
    }
    if !(min..=max).contains(&version) {
        return Reply::Close;
    }
    // Bytes after the body are ignored, as Kafka's broker ignores them (librdkafka 2.12+ sends
    // Metadata v12 with three).
    let mut body = body;
    let request = match decode_request_kind_prefix(api, version, &mut body) {
        Ok(request) => {
            if !body.is_empty() {
                tracing::debug!(
                    ?api,
                    version,
                    trailing = body.len(),
                    "dev broker: ignored trailing bytes"
                );
            }
            request
        }
        Err(error) => {
            tracing::debug!(?api, version, %error, "dev broker: malformed request");
            return match error_response(api, ResponseError::InvalidRequest.code()) {
                Some(response) => encode(&response, version, correlation_id),
                None => Reply::Close,
            };
        }
    };
    let client_id = header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let response = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(0)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(admin::metadata(shared, &r, version)),
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(shared, &r, version))
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(shared, &r, version))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(admin::find_coordinator(shared, &r, version))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(admin::init_producer_id(shared, &r))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(admin::describe_configs(shared, &r, version))
        }
        RequestKind::Produce(r) => match produce::produce(shared, &r, version) {
            Some(response) => ResponseKind::Produce(response),
            None => return Reply::Nothing,
        },
        RequestKind::Fetch(r) => {
            return match fetch::fetch(shared, r, version, correlation_id) {
                Ok(response) => encode(&ResponseKind::Fetch(response), version, correlation_id),
                Err(pending) => Reply::FetchWait(pending),
            };
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(fetch::list_offsets(shared, &r, version))
        }
        RequestKind::JoinGroup(r) => {
            let delay = shared.config.initial_rebalance_delay;
            let joined =
                group::join_group(&mut shared.lock().groups, &r, version, &client_id, delay);
            return match joined {
                Ok(response) => encode(&ResponseKind::JoinGroup(response), version, correlation_id),
                Err(rx) => Reply::Deferred {
                    rx,
                    version,
                    correlation_id,
                },
            };
        }
        RequestKind::SyncGroup(r) => {
            let synced = group::sync_group(&mut shared.lock().groups, &r, version);
            return match synced {
                Ok(response) => encode(&ResponseKind::SyncGroup(response), version, correlation_id),
                Err(rx) => Reply::Deferred {
                    rx,
                    version,
                    correlation_id,
                },
            };
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(group::heartbeat(&mut shared.lock().groups, &r))
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(group::leave_group(&mut shared.lock().groups, &r, version))
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(group::describe_groups(&shared.lock().groups, &r))
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(group::list_groups(&shared.lock().groups, &r))
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offsets::offset_commit(shared, &r))
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offsets::offset_fetch(shared, &r, version))
        }
        _ => return Reply::Close,
    };
    encode(&response, version, correlation_id)
}

/// The ApiVersions response listing [`SERVED_APIS`], with `error_code`.
fn api_versions(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SERVED_APIS
                .iter()
                .map(|&(api, min, max)| {
                    ApiVersion::default()
                        .with_api_key(api as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

/// An error response to a request of `api` whose body did not decode, for the response types
/// that have a top-level error code at every served version.
fn error_response(api: ApiKey, code: i16) -> Option<ResponseKind> {
    Some(match api {
        ApiKey::ApiVersions => ResponseKind::ApiVersions(api_versions(code)),
        ApiKey::JoinGroup => ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1),
        ),
        ApiKey::SyncGroup => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code))
        }
        ApiKey::Heartbeat => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        ApiKey::LeaveGroup => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code))
        }
        ApiKey::ListGroups => {
            ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(code))
        }
        ApiKey::InitProducerId => ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        ),
        _ => return None,
    })
}

/// Encodes a response as a whole frame; a response that does not encode (a bug) closes the
/// connection rather than sending garbage.
pub(crate) fn encode(response: &ResponseKind, version: i16, correlation_id: i32) -> Reply {
    match encode_frame(response, version, correlation_id) {
        Some(frame) => Reply::Frame(frame),
        None => Reply::Close,
    }
}

/// Encodes a response as a whole frame, or `None` if it does not encode.
pub(crate) fn encode_frame(
    response: &ResponseKind,
    version: i16,
    correlation_id: i32,
) -> Option<BytesMut> {
    let mut buf = BytesMut::new();
    let start = begin_frame(&mut buf);
    if let Err(error) = encode_response_kind(&mut buf, response, version, correlation_id) {
        tracing::warn!(%error, version, "dev broker: response does not encode");
        return None;
    }
    finish_frame(&mut buf, start, i32::MAX as usize).ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    //! Every served API at every served version, with realistic content, must produce a response
    //! that encodes and decodes (catches fields set at versions that lack them).

    use bytes::Bytes;
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use mephisto_wire::messages::{decode_response_payload, encode_request_kind};
    use mephisto_wire::record::{BatchEncoder, BatchSpec, NewRecord};

    use super::*;
    use crate::DevBrokerConfig;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    fn topic() -> TopicName {
        TopicName(s("t"))
    }

    fn batch() -> Bytes {
        let records = [NewRecord::new(
            Some(&b"k"[..]),
            Some(&b"v"[..]),
            1_700_000_000_000,
        )];
        let mut out = Vec::new();
        BatchEncoder::new()
            .encode(&BatchSpec::default(), &records, &mut out)
            .expect("encode");
        Bytes::from(out)
    }

    fn requests(api: ApiKey) -> Vec<RequestKind> {
        let group = GroupId(s("g"));
        match api {
            ApiKey::Produce => vec![RequestKind::Produce(
                ProduceRequest::default()
                    .with_acks(-1)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(topic())
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch()))])]),
            )],
            ApiKey::Fetch => vec![RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_bytes(1 << 20)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(topic())
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition_max_bytes(1 << 20)
                                .with_fetch_offset(0),
                            FetchPartition::default().with_partition(5),
                        ])]),
            )],
            ApiKey::ListOffsets => [-1, -2, -3, 0]
                .into_iter()
                .map(|ts| {
                    RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
                        ListOffsetsTopic::default().with_name(topic()).with_partitions(vec![
                            ListOffsetsPartition::default().with_timestamp(ts),
                        ]),
                    ]))
                })
                .collect(),
            ApiKey::Metadata => vec![
                RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
                RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic())),
                    MetadataRequestTopic::default().with_name(Some(TopicName(s("new")))),
                ]))),
            ],
            ApiKey::OffsetCommit => vec![RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(s("simple")))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(topic())
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default().with_committed_offset(1)
                        ])]),
            )],
            ApiKey::OffsetFetch => vec![
                RequestKind::OffsetFetch(
                    OffsetFetchRequest::default()
                        .with_group_id(GroupId(s("simple")))
                        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                            .with_name(topic())
                            .with_partition_indexes(vec![0, 1])])),
                ),
                RequestKind::OffsetFetch(
                    OffsetFetchRequest::default()
                        .with_group_id(GroupId(s("simple")))
                        .with_topics(None),
                ),
                RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                        OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s("simple")))
                            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                                .with_name(topic())
                                .with_partition_indexes(vec![0])])),
                    ])),
            ],
            ApiKey::FindCoordinator => vec![
                RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_key(s("g"))),
                RequestKind::FindCoordinator(
                    FindCoordinatorRequest::default()
                        .with_key(s("txn"))
                        .with_key_type(1),
                ),
                RequestKind::FindCoordinator(
                    FindCoordinatorRequest::default()
                        .with_coordinator_keys(vec![s("txn")])
                        .with_key_type(1),
                ),
                RequestKind::FindCoordinator(
                    FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g"), s("h")]),
                ),
            ],
            ApiKey::JoinGroup => vec![
                RequestKind::JoinGroup(
                    JoinGroupRequest::default()
                        .with_group_id(group.clone())
                        .with_session_timeout_ms(10_000)
                        .with_rebalance_timeout_ms(10_000)
                        .with_protocol_type(s("consumer"))
                        .with_protocols(vec![JoinGroupRequestProtocol::default()
                            .with_name(s("range"))
                            .with_metadata(Bytes::from_static(b"m"))]),
                ),
                RequestKind::JoinGroup(
                    JoinGroupRequest::default()
                        .with_group_id(group.clone())
                        .with_session_timeout_ms(1),
                ),
            ],
            ApiKey::Heartbeat => vec![RequestKind::Heartbeat(
                HeartbeatRequest::default()
                    .with_group_id(group.clone())
                    .with_member_id(s("x")),
            )],
            ApiKey::LeaveGroup => vec![
                RequestKind::LeaveGroup(
                    LeaveGroupRequest::default()
                        .with_group_id(group.clone())
                        .with_member_id(s("x")),
                ),
                RequestKind::LeaveGroup(
                    LeaveGroupRequest::default()
                        .with_group_id(group.clone())
                        .with_members(vec![MemberIdentity::default().with_member_id(s("x"))]),
                ),
            ],
            ApiKey::SyncGroup => vec![RequestKind::SyncGroup(
                SyncGroupRequest::default()
                    .with_group_id(group.clone())
                    .with_member_id(s("x")),
            )],
            ApiKey::DescribeGroups => vec![RequestKind::DescribeGroups(
                DescribeGroupsRequest::default()
                    .with_groups(vec![group.clone(), GroupId(s("none"))]),
            )],
            ApiKey::ListGroups => vec![RequestKind::ListGroups(ListGroupsRequest::default())],
            ApiKey::ApiVersions => vec![RequestKind::ApiVersions(ApiVersionsRequest::default())],
            ApiKey::CreateTopics => vec![RequestKind::CreateTopics(
                CreateTopicsRequest::default().with_topics(vec![
                    CreatableTopic::default()
                        .with_name(TopicName(s("made")))
                        .with_num_partitions(2)
                        .with_replication_factor(1),
                    CreatableTopic::default()
                        .with_name(topic())
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]),
            )],
            ApiKey::DeleteTopics => vec![RequestKind::DeleteTopics(
                DeleteTopicsRequest::default()
                    .with_topic_names(vec![TopicName(s("made")), TopicName(s("never"))])
                    .with_topics(vec![
                        DeleteTopicState::default().with_name(Some(TopicName(s("made"))))
                    ]),
            )],
            ApiKey::DescribeConfigs => vec![RequestKind::DescribeConfigs(
                DescribeConfigsRequest::default().with_resources(vec![
                    kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("t")),
                    kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(s("1"))
                        .with_configuration_keys(Some(vec![s("num.partitions")])),
                    kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("none")),
                ]),
            )],
            ApiKey::InitProducerId => vec![RequestKind::InitProducerId(
                InitProducerIdRequest::default().with_transaction_timeout_ms(1000),
            )],
            _ => Vec::new(),
        }
    }

    #[test]
    fn bytes_after_a_request_body_are_ignored_as_kafka_does() {
        let config = DevBrokerConfig::default();
        let shared = Shared::new(config.clone(), config.listen);
        shared
            .lock()
            .create_topic("t", 2, crate::log::Retention::bytes(1 << 20), false);
        let request = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic())),
        ])));
        // Flexible (v12, as librdkafka 2.12 sends it, three extra bytes) and not (v4).
        for (version, extra) in [(12, &[0u8, 0, 0][..]), (4, &[1, 2][..])] {
            let mut buf = BytesMut::new();
            encode_request_kind(&mut buf, &request, version, 7, Some(&s("c"))).expect("encode");
            buf.extend_from_slice(extra);
            let Reply::Frame(frame) = handle_payload(&shared, buf.freeze()) else {
                panic!("v{version}: an answer");
            };
            let decoded =
                decode_response_payload(ApiKey::Metadata, version, frame.freeze().slice(4..))
                    .unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert_eq!(decoded.correlation_id, 7);
            let ResponseKind::Metadata(metadata) = decoded.body else {
                panic!("v{version}: a Metadata response");
            };
            assert_eq!(metadata.topics.len(), 1);
            assert_eq!(metadata.topics[0].error_code, 0);
            assert_eq!(metadata.topics[0].partitions.len(), 2);
        }
    }

    #[test]
    fn every_served_api_and_version_answers_with_a_decodable_response() {
        let config = DevBrokerConfig::default();
        let shared = Shared::new(config.clone(), config.listen);
        shared
            .lock()
            .create_topic("t", 2, crate::log::Retention::bytes(1 << 20), false);
        let mut answered = 0;
        for &(api, min, max) in SERVED_APIS {
            let requests = requests(api);
            assert!(!requests.is_empty(), "{api:?} has test requests");
            for version in min..=max {
                for request in &requests {
                    let mut buf = BytesMut::new();
                    if encode_request_kind(&mut buf, request, version, 9, Some(&s("t"))).is_err() {
                        continue; // a field this version lacks
                    }
                    let frame = match handle_payload(&shared, buf.freeze()) {
                        Reply::Frame(frame) => frame,
                        Reply::FetchWait(pending) => {
                            let response = pending.poll(&shared, true).expect("forced");
                            encode_frame(&ResponseKind::Fetch(response), version, 9)
                                .unwrap_or_else(|| panic!("{api:?} v{version}: fetch encodes"))
                        }
                        Reply::Deferred { mut rx, .. } => match rx.try_recv() {
                            Ok(response) => encode_frame(&response, version, 9)
                                .unwrap_or_else(|| panic!("{api:?} v{version}: encodes")),
                            Err(_) => continue, // waits for other members
                        },
                        other => panic!("{api:?} v{version}: {other:?}"),
                    };
                    let payload = frame.freeze().slice(4..);
                    let decoded = decode_response_payload(api, version, payload)
                        .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
                    assert_eq!(decoded.correlation_id, 9);
                    answered += 1;
                }
            }
        }
        assert!(answered > 150, "{answered} answers");
    }
}
