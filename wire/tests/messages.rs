//! Tests for `mephisto_wire::header` and `mephisto_wire::messages`: header versions, request and
//! response round trips across every version of a representative set of APIs, each error, and a
//! fuzz-style sweep feeding hostile bytes to every decoder while measuring the largest single
//! allocation.
//!
//! The sweep needs to see allocations, so this test binary installs a global allocator that
//! records, per thread, the largest allocation requested. That takes `unsafe` (implementing
//! `GlobalAlloc`); it is test-only, forwards every call unchanged to `System`, and the library
//! itself stays `#![forbid(unsafe_code)]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    api_versions_response, fetch_request, fetch_response, join_group_request, join_group_response,
    metadata_request, metadata_response, offset_commit_request, offset_commit_response,
    produce_request, produce_response, sync_group_request, ApiKey, ApiVersionsRequest,
    ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, GroupId, JoinGroupRequest,
    JoinGroupResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, ProduceRequest, ProduceResponse, ProducerId, RequestKind, ResponseKind,
    SyncGroupRequest, SyncGroupResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Encodable, Message, Request, StrBytes};
use mephisto_wire::frame::{FrameDecoder, DEFAULT_MAX_FRAME_SIZE};
use mephisto_wire::header::{
    decode_request_header, decode_response_header, encode_request_header, encode_response_header,
    peek_correlation_id, request_header_version, response_header_version, CorrelationIds,
    HeaderError,
};
use mephisto_wire::messages::{
    check_correlation_id, decode_request, decode_request_kind, decode_request_kind_prefix,
    decode_response, decode_response_kind, decode_response_payload, encode_request,
    encode_request_frame, encode_request_kind, encode_response, encode_response_frame,
    encode_response_kind, message_versions, Direction, MessageError,
};
use mephisto_wire::versions::MEPHISTO_APIS;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestCaseError, TestRng, TestRunner};

// ---------------------------------------------------------------------------------------------
// Largest-allocation probe.

struct PeakAlloc;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = LARGEST.try_with(|largest| {
        if size > largest.get() {
            largest.set(size);
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; `note` only
// touches a const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

/// Runs `f` and returns its result with the largest single allocation it asked for (this thread).
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    let result = f();
    (result, LARGEST.with(Cell::get))
}

// ---------------------------------------------------------------------------------------------
// Strategies. Only fields that exist at the chosen version are set; the rest keep their defaults.

fn s() -> impl Strategy<Value = StrBytes> + Clone {
    "[a-z0-9._-]{0,12}".prop_map(StrBytes::from_string)
}

fn opt_s() -> impl Strategy<Value = Option<StrBytes>> + Clone {
    prop::option::of(s())
}

fn blob() -> impl Strategy<Value = Bytes> + Clone {
    vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

/// Unknown tagged fields, only for flexible versions (tags above every known one).
fn tags(flexible: bool) -> BoxedStrategy<BTreeMap<i32, Bytes>> {
    if flexible {
        btree_map(10..1000i32, blob(), 0..3).boxed()
    } else {
        Just(BTreeMap::new()).boxed()
    }
}

fn flexible_request(api: ApiKey, v: i16) -> bool {
    request_header_version(api, v) == 2
}

fn metadata_request(v: i16) -> BoxedStrategy<MetadataRequest> {
    let topic = s().prop_map(|name| {
        metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(name)))
    });
    (
        prop::option::of(vec(topic, 0..4)),
        any::<[bool; 3]>(),
        tags(flexible_request(ApiKey::Metadata, v)),
    )
        .prop_map(move |(topics, flags, tags)| {
            let mut r = MetadataRequest::default();
            // v0 has no null ("all topics"): an empty list means all.
            r.topics = if v == 0 {
                Some(topics.unwrap_or_default())
            } else {
                topics
            };
            if v >= 4 {
                r.allow_auto_topic_creation = flags[0];
            }
            if (8..=10).contains(&v) {
                r.include_cluster_authorized_operations = flags[1];
            }
            if v >= 8 {
                r.include_topic_authorized_operations = flags[2];
            }
            r.unknown_tagged_fields = tags;
            r
        })
        .boxed()
}

fn metadata_response(v: i16) -> BoxedStrategy<MetadataResponse> {
    let broker =
        (any::<i32>(), s(), any::<i32>(), opt_s()).prop_map(move |(id, host, port, rack)| {
            let mut b = metadata_response::MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(host)
                .with_port(port);
            if v >= 1 {
                b.rack = rack;
            }
            b
        });
    let partition = (
        any::<(i16, i32, i32, i32)>(),
        vec(any::<i32>(), 0..4),
        vec(any::<i32>(), 0..4),
        vec(any::<i32>(), 0..3),
    )
        .prop_map(move |((err, idx, leader, epoch), replicas, isr, offline)| {
            let mut p = metadata_response::MetadataResponsePartition::default()
                .with_error_code(err)
                .with_partition_index(idx)
                .with_leader_id(BrokerId(leader))
                .with_replica_nodes(replicas.into_iter().map(BrokerId).collect())
                .with_isr_nodes(isr.into_iter().map(BrokerId).collect());
            if v >= 7 {
                p.leader_epoch = epoch;
            }
            if v >= 5 {
                p.offline_replicas = offline.into_iter().map(BrokerId).collect();
            }
            p
        });
    let topic = (any::<(i16, bool, i32)>(), s(), vec(partition, 0..3)).prop_map(
        move |((err, internal, ops), name, partitions)| {
            let mut t = metadata_response::MetadataResponseTopic::default()
                .with_error_code(err)
                .with_name(Some(TopicName(name)))
                .with_partitions(partitions);
            if v >= 1 {
                t.is_internal = internal;
            }
            if v >= 8 {
                t.topic_authorized_operations = ops;
            }
            t
        },
    );
    (
        any::<(i32, i32, i32, i16)>(),
        vec(broker, 0..3),
        opt_s(),
        vec(topic, 0..3),
        tags(flexible_request(ApiKey::Metadata, v)),
    )
        .prop_map(
            move |((throttle, controller, cluster_ops, err), brokers, cluster_id, topics, tags)| {
                let mut r = MetadataResponse::default()
                    .with_brokers(brokers)
                    .with_topics(topics);
                if v >= 3 {
                    r.throttle_time_ms = throttle;
                }
                if v >= 2 {
                    r.cluster_id = cluster_id;
                }
                if v >= 1 {
                    r.controller_id = BrokerId(controller);
                }
                if (8..=10).contains(&v) {
                    r.cluster_authorized_operations = cluster_ops;
                }
                if v >= 13 {
                    r.error_code = err;
                }
                r.unknown_tagged_fields = tags;
                r
            },
        )
        .boxed()
}

fn fetch_request(v: i16) -> BoxedStrategy<FetchRequest> {
    let partition = any::<(i32, i32, i64, i32, i64, i32)>().prop_map(
        move |(partition, leader_epoch, offset, last_epoch, log_start, max_bytes)| {
            let mut p = fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes);
            if v >= 9 {
                p.current_leader_epoch = leader_epoch;
            }
            if v >= 12 {
                p.last_fetched_epoch = last_epoch;
            }
            if v >= 5 {
                p.log_start_offset = log_start;
            }
            p
        },
    );
    let topic = (s(), vec(partition, 0..3)).prop_map(move |(name, partitions)| {
        let mut t = fetch_request::FetchTopic::default().with_partitions(partitions);
        if v <= 12 {
            t.topic = TopicName(name);
        }
        t
    });
    let forgotten = (s(), vec(any::<i32>(), 0..3)).prop_map(move |(name, partitions)| {
        let mut t = fetch_request::ForgottenTopic::default().with_partitions(partitions);
        if v <= 12 {
            t.topic = TopicName(name);
        }
        t
    });
    (
        any::<(i32, i32, i32, i8, i32, i32)>(),
        vec(topic, 0..3),
        vec(forgotten, 0..2),
        opt_s(),
        s(),
        tags(flexible_request(ApiKey::Fetch, v)),
    )
        .prop_map(
            move |(
                (wait, min, max, isolation, session, epoch),
                topics,
                forgotten,
                cluster,
                rack,
                tags,
            )| {
                let mut r = FetchRequest::default()
                    .with_max_wait_ms(wait)
                    .with_min_bytes(min)
                    .with_max_bytes(max)
                    .with_isolation_level(isolation)
                    .with_topics(topics);
                if v >= 7 {
                    r.session_id = session;
                    r.session_epoch = epoch;
                    r.forgotten_topics_data = forgotten;
                }
                if v >= 12 {
                    r.cluster_id = cluster;
                }
                if v >= 11 {
                    r.rack_id = rack;
                }
                r.unknown_tagged_fields = tags;
                r
            },
        )
        .boxed()
}

fn fetch_response(v: i16) -> BoxedStrategy<FetchResponse> {
    let aborted = any::<(i64, i64)>().prop_map(|(pid, first)| {
        fetch_response::AbortedTransaction::default()
            .with_producer_id(ProducerId(pid))
            .with_first_offset(first)
    });
    let partition = (
        any::<(i32, i16, i64, i64, i64, i32)>(),
        any::<(i32, i64, i32, i32)>(),
        prop::option::of(vec(aborted, 0..3)),
        prop::option::of(blob()),
    )
        .prop_map(
            move |(
                (idx, err, hw, lso, log_start, preferred),
                (epoch, end, leader, leader_epoch),
                aborted,
                records,
            )| {
                let mut p = fetch_response::PartitionData::default()
                    .with_partition_index(idx)
                    .with_error_code(err)
                    .with_high_watermark(hw)
                    .with_last_stable_offset(lso)
                    .with_aborted_transactions(aborted)
                    .with_records(records);
                if v >= 5 {
                    p.log_start_offset = log_start;
                }
                if v >= 11 {
                    p.preferred_read_replica = BrokerId(preferred);
                }
                if v >= 12 {
                    p.diverging_epoch = fetch_response::EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end);
                    p.current_leader = fetch_response::LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(leader_epoch);
                }
                p
            },
        );
    let topic = (s(), vec(partition, 0..3)).prop_map(move |(name, partitions)| {
        let mut t = fetch_response::FetchableTopicResponse::default().with_partitions(partitions);
        if v <= 12 {
            t.topic = TopicName(name);
        }
        t
    });
    let endpoint = (any::<(i32, i32)>(), s(), opt_s()).prop_map(|((id, port), host, rack)| {
        fetch_response::NodeEndpoint::default()
            .with_node_id(BrokerId(id))
            .with_host(host)
            .with_port(port)
            .with_rack(rack)
    });
    (
        any::<(i32, i16, i32)>(),
        vec(topic, 0..3),
        vec(endpoint, 0..2),
        tags(flexible_request(ApiKey::Fetch, v)),
    )
        .prop_map(
            move |((throttle, err, session), responses, endpoints, tags)| {
                let mut r = FetchResponse::default()
                    .with_throttle_time_ms(throttle)
                    .with_responses(responses);
                if v >= 7 {
                    r.error_code = err;
                    r.session_id = session;
                }
                if v >= 16 {
                    r.node_endpoints = endpoints;
                }
                r.unknown_tagged_fields = tags;
                r
            },
        )
        .boxed()
}

fn produce_request(v: i16) -> BoxedStrategy<ProduceRequest> {
    let partition = (any::<i32>(), prop::option::of(blob())).prop_map(|(index, records)| {
        produce_request::PartitionProduceData::default()
            .with_index(index)
            .with_records(records)
    });
    let topic = (s(), vec(partition, 0..3)).prop_map(move |(name, partitions)| {
        let mut t = produce_request::TopicProduceData::default().with_partition_data(partitions);
        if v <= 12 {
            t.name = TopicName(name);
        }
        t
    });
    (
        opt_s(),
        any::<(i16, i32)>(),
        vec(topic, 0..3),
        tags(flexible_request(ApiKey::Produce, v)),
    )
        .prop_map(|(txn, (acks, timeout), topics, tags)| {
            let mut r = ProduceRequest::default()
                .with_transactional_id(txn.map(TransactionalId))
                .with_acks(acks)
                .with_timeout_ms(timeout)
                .with_topic_data(topics);
            r.unknown_tagged_fields = tags;
            r
        })
        .boxed()
}

fn produce_response(v: i16) -> BoxedStrategy<ProduceResponse> {
    let record_error = (any::<i32>(), opt_s()).prop_map(|(index, message)| {
        produce_response::BatchIndexAndErrorMessage::default()
            .with_batch_index(index)
            .with_batch_index_error_message(message)
    });
    let partition = (
        any::<(i32, i16, i64, i64, i64)>(),
        vec(record_error, 0..2),
        opt_s(),
        any::<(i32, i32)>(),
    )
        .prop_map(
            move |((index, err, base, append, log_start), errors, message, (leader, epoch))| {
                let mut p = produce_response::PartitionProduceResponse::default()
                    .with_index(index)
                    .with_error_code(err)
                    .with_base_offset(base)
                    .with_log_append_time_ms(append);
                if v >= 5 {
                    p.log_start_offset = log_start;
                }
                if v >= 8 {
                    p.record_errors = errors;
                    p.error_message = message;
                }
                if v >= 10 {
                    p.current_leader = produce_response::LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(epoch);
                }
                p
            },
        );
    let topic = (s(), vec(partition, 0..3)).prop_map(move |(name, partitions)| {
        let mut t =
            produce_response::TopicProduceResponse::default().with_partition_responses(partitions);
        if v <= 12 {
            t.name = TopicName(name);
        }
        t
    });
    (
        vec(topic, 0..3),
        any::<i32>(),
        tags(flexible_request(ApiKey::Produce, v)),
    )
        .prop_map(|(responses, throttle, tags)| {
            let mut r = ProduceResponse::default()
                .with_responses(responses)
                .with_throttle_time_ms(throttle);
            r.unknown_tagged_fields = tags;
            r
        })
        .boxed()
}

fn join_group_request(v: i16) -> BoxedStrategy<JoinGroupRequest> {
    let protocol = (s(), blob()).prop_map(|(name, metadata)| {
        join_group_request::JoinGroupRequestProtocol::default()
            .with_name(name)
            .with_metadata(metadata)
    });
    (
        (s(), s(), s()),
        any::<(i32, i32)>(),
        opt_s(),
        vec(protocol, 0..3),
        opt_s(),
        tags(flexible_request(ApiKey::JoinGroup, v)),
    )
        .prop_map(
            move |(
                (group, member, protocol_type),
                (session, rebalance),
                instance,
                protocols,
                reason,
                tags,
            )| {
                let mut r = JoinGroupRequest::default()
                    .with_group_id(GroupId(group))
                    .with_session_timeout_ms(session)
                    .with_member_id(member)
                    .with_protocol_type(protocol_type)
                    .with_protocols(protocols);
                if v >= 1 {
                    r.rebalance_timeout_ms = rebalance;
                }
                if v >= 5 {
                    r.group_instance_id = instance;
                }
                if v >= 8 {
                    r.reason = reason;
                }
                r.unknown_tagged_fields = tags;
                r
            },
        )
        .boxed()
}

fn join_group_response(v: i16) -> BoxedStrategy<JoinGroupResponse> {
    let member = (s(), opt_s(), blob()).prop_map(move |(id, instance, metadata)| {
        let mut m = join_group_response::JoinGroupResponseMember::default()
            .with_member_id(id)
            .with_metadata(metadata);
        if v >= 5 {
            m.group_instance_id = instance;
        }
        m
    });
    (
        any::<(i32, i16, i32, bool)>(),
        (opt_s(), s(), s(), s()),
        vec(member, 0..3),
        tags(flexible_request(ApiKey::JoinGroup, v)),
    )
        .prop_map(
            move |(
                (throttle, err, generation, skip),
                (ptype, pname, leader, member_id),
                members,
                tags,
            )| {
                let mut r = JoinGroupResponse::default()
                    .with_error_code(err)
                    .with_generation_id(generation)
                    .with_protocol_name(Some(pname))
                    .with_leader(leader)
                    .with_member_id(member_id)
                    .with_members(members);
                if v >= 2 {
                    r.throttle_time_ms = throttle;
                }
                if v >= 7 {
                    r.protocol_type = ptype;
                }
                if v >= 9 {
                    r.skip_assignment = skip;
                }
                r.unknown_tagged_fields = tags;
                r
            },
        )
        .boxed()
}

fn sync_group_request(v: i16) -> BoxedStrategy<SyncGroupRequest> {
    let assignment = (s(), blob()).prop_map(|(member, assignment)| {
        sync_group_request::SyncGroupRequestAssignment::default()
            .with_member_id(member)
            .with_assignment(assignment)
    });
    (
        (s(), any::<i32>(), s()),
        (opt_s(), opt_s(), opt_s()),
        vec(assignment, 0..3),
        tags(flexible_request(ApiKey::SyncGroup, v)),
    )
        .prop_map(
            move |((group, generation, member), (instance, ptype, pname), assignments, tags)| {
                let mut r = SyncGroupRequest::default()
                    .with_group_id(GroupId(group))
                    .with_generation_id(generation)
                    .with_member_id(member)
                    .with_assignments(assignments);
                if v >= 3 {
                    r.group_instance_id = instance;
                }
                if v >= 5 {
                    r.protocol_type = ptype;
                    r.protocol_name = pname;
                }
                r.unknown_tagged_fields = tags;
                r
            },
        )
        .boxed()
}

fn sync_group_response(v: i16) -> BoxedStrategy<SyncGroupResponse> {
    (
        any::<(i32, i16)>(),
        (opt_s(), opt_s()),
        blob(),
        tags(flexible_request(ApiKey::SyncGroup, v)),
    )
        .prop_map(move |((throttle, err), (ptype, pname), assignment, tags)| {
            let mut r = SyncGroupResponse::default()
                .with_error_code(err)
                .with_assignment(assignment);
            if v >= 1 {
                r.throttle_time_ms = throttle;
            }
            if v >= 5 {
                r.protocol_type = ptype;
                r.protocol_name = pname;
            }
            r.unknown_tagged_fields = tags;
            r
        })
        .boxed()
}

fn offset_commit_request(v: i16) -> BoxedStrategy<OffsetCommitRequest> {
    let partition =
        (any::<(i32, i64, i32)>(), opt_s()).prop_map(move |((index, offset, epoch), metadata)| {
            let mut p = offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(index)
                .with_committed_offset(offset)
                .with_committed_metadata(metadata);
            if v >= 6 {
                p.committed_leader_epoch = epoch;
            }
            p
        });
    let topic = (s(), vec(partition, 0..3)).prop_map(|(name, partitions)| {
        offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(TopicName(name))
            .with_partitions(partitions)
    });
    (
        (s(), any::<i32>(), s(), opt_s(), any::<i64>()),
        vec(topic, 0..3),
        tags(flexible_request(ApiKey::OffsetCommit, v)),
    )
        .prop_map(
            move |((group, generation, member, instance, retention), topics, tags)| {
                let mut r = OffsetCommitRequest::default()
                    .with_group_id(GroupId(group))
                    .with_generation_id_or_member_epoch(generation)
                    .with_member_id(member)
                    .with_topics(topics);
                if v >= 7 {
                    r.group_instance_id = instance;
                }
                if v <= 4 {
                    r.retention_time_ms = retention;
                }
                r.unknown_tagged_fields = tags;
                r
            },
        )
        .boxed()
}

fn offset_commit_response(v: i16) -> BoxedStrategy<OffsetCommitResponse> {
    let partition = any::<(i32, i16)>().prop_map(|(index, err)| {
        offset_commit_response::OffsetCommitResponsePartition::default()
            .with_partition_index(index)
            .with_error_code(err)
    });
    let topic = (s(), vec(partition, 0..3)).prop_map(move |(name, partitions)| {
        let mut t = offset_commit_response::OffsetCommitResponseTopic::default()
            .with_partitions(partitions);
        if v <= 9 {
            t.name = TopicName(name);
        }
        t
    });
    // The response header follows the response's own flexibility (v8+), like the request's.
    (any::<i32>(), vec(topic, 0..3), tags(v >= 8))
        .prop_map(move |(throttle, topics, tags)| {
            let mut r = OffsetCommitResponse::default().with_topics(topics);
            if v >= 3 {
                r.throttle_time_ms = throttle;
            }
            r.unknown_tagged_fields = tags;
            r
        })
        .boxed()
}

fn api_versions_request(v: i16) -> BoxedStrategy<ApiVersionsRequest> {
    (s(), s(), tags(v >= 3))
        .prop_map(move |(name, version, tags)| {
            let mut r = ApiVersionsRequest::default();
            if v >= 3 {
                r.client_software_name = name;
                r.client_software_version = version;
            }
            r.unknown_tagged_fields = tags;
            r
        })
        .boxed()
}

fn api_versions_response(v: i16) -> BoxedStrategy<ApiVersionsResponse> {
    let key = any::<(i16, i16, i16)>().prop_map(|(key, min, max)| {
        api_versions_response::ApiVersion::default()
            .with_api_key(key)
            .with_min_version(min)
            .with_max_version(max)
    });
    let feature = (s(), any::<(i16, i16)>()).prop_map(|(name, (min, max))| {
        api_versions_response::SupportedFeatureKey::default()
            .with_name(name)
            .with_min_version(min)
            .with_max_version(max)
    });
    (
        any::<(i16, i32, i64, bool)>(),
        vec(key, 0..5),
        vec(feature, 0..2),
        tags(v >= 3),
    )
        .prop_map(move |((err, throttle, epoch, zk), keys, features, tags)| {
            let mut r = ApiVersionsResponse::default()
                .with_error_code(err)
                .with_api_keys(keys);
            if v >= 1 {
                r.throttle_time_ms = throttle;
            }
            if v >= 3 {
                r.supported_features = features;
                r.finalized_features_epoch = epoch;
                r.zk_migration_ready = zk;
            }
            r.unknown_tagged_fields = tags;
            r
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Round-trip drivers.

/// A version of `R` with a request and a response for it.
fn versioned<R: Request, T: Debug>(
    make: fn(i16) -> BoxedStrategy<T>,
) -> impl Strategy<Value = (i16, T)> {
    let range = <R as Message>::VERSIONS;
    (range.min..=range.max).prop_flat_map(move |v| (Just(v), make(v)))
}

fn request_round_trip<R>(
    request: R,
    version: i16,
    correlation_id: i32,
    client_id: Option<StrBytes>,
) -> Result<(), TestCaseError>
where
    R: Request + Clone + Into<RequestKind>,
{
    let mut wire = BytesMut::from(&b"earlier bytes stay"[..]);
    encode_request_frame(
        &mut wire,
        &request,
        version,
        correlation_id,
        client_id.as_ref(),
        DEFAULT_MAX_FRAME_SIZE,
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let _ = wire.split_to(18);
    let payload = FrameDecoder::default().decode(&mut wire).unwrap().unwrap();
    prop_assert!(wire.is_empty());

    let decoded =
        decode_request(payload.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(decoded.api_key as i16, R::KEY);
    prop_assert_eq!(decoded.header.request_api_key, R::KEY);
    prop_assert_eq!(decoded.header.request_api_version, version);
    prop_assert_eq!(decoded.header.correlation_id, correlation_id);
    prop_assert_eq!(decoded.header.client_id, client_id.clone());
    let kind: RequestKind = request.into();
    prop_assert_eq!(&decoded.body, &kind);

    // The untyped encoder writes the same bytes.
    let mut again = BytesMut::new();
    encode_request_kind(
        &mut again,
        &kind,
        version,
        correlation_id,
        client_id.as_ref(),
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&again[..], &payload[..]);
    Ok(())
}

fn response_round_trip<R>(
    response: R::Response,
    version: i16,
    correlation_id: i32,
) -> Result<(), TestCaseError>
where
    R: Request,
    R::Response: Clone + PartialEq + Debug + Into<ResponseKind>,
{
    let api = ApiKey::try_from(R::KEY).unwrap();
    let mut wire = BytesMut::new();
    encode_response_frame::<R>(
        &mut wire,
        &response,
        version,
        correlation_id,
        DEFAULT_MAX_FRAME_SIZE,
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let payload = FrameDecoder::default().decode(&mut wire).unwrap().unwrap();
    prop_assert_eq!(peek_correlation_id(&payload).unwrap(), correlation_id);

    let decoded = decode_response::<R>(payload.clone(), version)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(decoded.correlation_id, correlation_id);
    prop_assert_eq!(decoded.version, version);
    prop_assert_eq!(&decoded.body, &response);

    let kind: ResponseKind = response.into();
    let untyped = decode_response_payload(api, version, payload.clone())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&untyped.body, &kind);
    prop_assert_eq!(untyped.correlation_id, correlation_id);

    let mut again = BytesMut::new();
    encode_response_kind(&mut again, &kind, version, correlation_id)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&again[..], &payload[..]);
    Ok(())
}

macro_rules! round_trips {
    ($($name:ident: $req:ty => $req_strategy:ident, $resp_strategy:ident;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            $(
                #[test]
                fn $name(
                    (v, request) in versioned::<$req, _>($req_strategy),
                    response in any::<u64>(),
                    correlation_id in any::<i32>(),
                    client_id in opt_s(),
                ) {
                    request_round_trip(request, v, correlation_id, client_id)?;
                    // A response at the same version (clamped to the response's own range).
                    let range = <<$req as Request>::Response as Message>::VERSIONS;
                    let rv = v.clamp(range.min, range.max);
                    let value = draw($resp_strategy(rv), response);
                    response_round_trip::<$req>(value, rv, correlation_id)?;
                }
            )*
        }
    };
}

round_trips! {
    metadata_round_trips: MetadataRequest => metadata_request, metadata_response;
    fetch_round_trips: FetchRequest => fetch_request, fetch_response;
    produce_round_trips: ProduceRequest => produce_request, produce_response;
    join_group_round_trips: JoinGroupRequest => join_group_request, join_group_response;
    sync_group_round_trips: SyncGroupRequest => sync_group_request, sync_group_response;
    offset_commit_round_trips: OffsetCommitRequest => offset_commit_request, offset_commit_response;
    api_versions_round_trips: ApiVersionsRequest => api_versions_request, api_versions_response;
}

proptest! {
    #[test]
    fn offset_commit_v10_responses_round_trip(response in offset_commit_response(10), id in any::<i32>()) {
        // Responses go one version past requests here; make sure the extra version works too.
        response_round_trip::<OffsetCommitRequest>(response, 10, id)?;
    }

    #[test]
    fn request_headers_round_trip(
        key in prop::sample::select(ApiKey::iter().collect::<Vec<_>>()),
        version_pick in any::<prop::sample::Index>(),
        correlation_id in any::<i32>(),
        client_id in opt_s(),
        body in vec(any::<u8>(), 0..16),
    ) {
        let range = message_versions(key, Direction::Request);
        let version = range.min + version_pick.index((range.max - range.min + 1) as usize) as i16;
        let mut buf = BytesMut::new();
        encode_request_header(&mut buf, key, version, correlation_id, client_id.as_ref()).unwrap();
        let header_len = buf.len();
        buf.put_slice(&body);
        let mut payload = buf.freeze();
        let header = decode_request_header(&mut payload).unwrap();
        prop_assert_eq!(header.request_api_key, key as i16);
        prop_assert_eq!(header.request_api_version, version);
        prop_assert_eq!(header.correlation_id, correlation_id);
        prop_assert_eq!(header.client_id, client_id.clone());
        prop_assert_eq!(&payload[..], &body[..], "the body starts right after the header");
        let flexible = request_header_version(key, version) == 2;
        let expected_len = 10 + client_id.map_or(0, |c| c.len()) + usize::from(flexible);
        prop_assert_eq!(header_len, expected_len);
    }

    #[test]
    fn response_headers_round_trip(
        key in prop::sample::select(ApiKey::iter().collect::<Vec<_>>()),
        version_pick in any::<prop::sample::Index>(),
        correlation_id in any::<i32>(),
        body in vec(any::<u8>(), 0..16),
    ) {
        let range = message_versions(key, Direction::Response);
        let version = range.min + version_pick.index((range.max - range.min + 1) as usize) as i16;
        let mut buf = BytesMut::new();
        encode_response_header(&mut buf, key, version, correlation_id).unwrap();
        let expected = 4 + usize::from(response_header_version(key, version) == 1);
        prop_assert_eq!(buf.len(), expected);
        buf.put_slice(&body);
        let mut payload = buf.freeze();
        prop_assert_eq!(peek_correlation_id(&payload).unwrap(), correlation_id);
        let header = decode_response_header(&mut payload, key, version).unwrap();
        prop_assert_eq!(header.correlation_id, correlation_id);
        prop_assert_eq!(&payload[..], &body[..]);
    }

    #[test]
    fn correlation_ids_wrap_to_zero(start in any::<i32>(), steps in 0usize..10) {
        let mut ids = CorrelationIds::starting_at(start);
        let mut expected = start.max(0);
        for _ in 0..steps {
            prop_assert_eq!(ids.next(), expected);
            expected = if expected == i32::MAX { 0 } else { expected + 1 };
        }
        prop_assert_eq!(ids.peek(), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Headers.

#[test]
fn api_versions_responses_use_header_v0_at_every_version() {
    for version in 0..=4 {
        assert_eq!(response_header_version(ApiKey::ApiVersions, version), 0);
        let mut buf = BytesMut::new();
        let body = ApiVersionsResponse::default().with_error_code(0);
        encode_response::<ApiVersionsRequest>(&mut buf, &body, version, 0x0102_0304).unwrap();
        // Correlation id, then the body's error code straight away: no tagged-field byte.
        assert_eq!(&buf[..6], &[1, 2, 3, 4, 0, 0], "v{version}");
        let decoded = decode_response::<ApiVersionsRequest>(buf.freeze(), version).unwrap();
        assert_eq!(decoded.correlation_id, 0x0102_0304);
        assert_eq!(decoded.version, version);
    }
    // Requests still switch to header v2 at v3 (flexible), and other flexible responses to v1.
    assert_eq!(request_header_version(ApiKey::ApiVersions, 2), 1);
    assert_eq!(request_header_version(ApiKey::ApiVersions, 3), 2);
    assert_eq!(response_header_version(ApiKey::Metadata, 8), 0);
    assert_eq!(response_header_version(ApiKey::Metadata, 9), 1);
}

#[test]
fn requests_and_responses_agree_on_flexibility() {
    // The decoder decides "flexible body" from the request header version for both directions;
    // this checks that the rule also holds for every response kafka-protocol knows.
    for key in ApiKey::iter() {
        let range = message_versions(key, Direction::Response);
        for version in range.min..=range.max {
            let response_flexible = if key == ApiKey::ApiVersions {
                version >= 3
            } else {
                key.response_header_version(version) == 1
            };
            assert_eq!(
                request_header_version(key, version) == 2,
                response_flexible,
                "{key:?} v{version}"
            );
        }
    }
}

#[test]
fn flexible_response_header_carries_a_tagged_field_byte() {
    let mut buf = BytesMut::new();
    encode_response::<MetadataRequest>(&mut buf, &MetadataResponse::default(), 9, 7).unwrap();
    assert_eq!(&buf[..5], &[0, 0, 0, 7, 0]);
}

#[test]
fn request_header_golden_bytes() {
    let mut buf = BytesMut::new();
    let client = StrBytes::from_static_str("mephisto");
    encode_request_header(&mut buf, ApiKey::Metadata, 12, 42, Some(&client)).unwrap();
    let mut expected = vec![0, 3, 0, 12, 0, 0, 0, 42, 0, 8];
    expected.extend_from_slice(b"mephisto");
    expected.push(0); // empty tagged fields: header v2
    assert_eq!(&buf[..], &expected[..]);

    buf.clear();
    encode_request_header(&mut buf, ApiKey::Produce, 3, -1, None).unwrap();
    assert_eq!(&buf[..], &[0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
}

#[test]
fn header_errors() {
    assert_eq!(
        peek_correlation_id(&[0, 0, 1]),
        Err(HeaderError::Truncated {
            what: "response header",
            len: 3,
            needed: 4
        })
    );
    let mut short = Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0]);
    assert!(matches!(
        decode_request_header(&mut short),
        Err(HeaderError::Truncated { needed: 8, .. })
    ));
    let mut unknown = Bytes::from_static(&[0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    assert_eq!(
        decode_request_header(&mut unknown),
        Err(HeaderError::UnknownApiKey(999))
    );
    // Client id length says 5 but only 2 bytes follow.
    let mut truncated = Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 1, 0, 5, b'a', b'b']);
    let err = decode_request_header(&mut truncated).unwrap_err();
    assert!(
        matches!(err, HeaderError::Malformed { version: 1, .. }),
        "{err}"
    );
    assert_eq!(truncated.len(), 12, "input untouched on error");
}

// ---------------------------------------------------------------------------------------------
// Message errors.

#[test]
fn unknown_api_key_is_a_typed_error() {
    let payload = Bytes::from_static(&[0x7f, 0xff, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    assert_eq!(
        decode_request(payload),
        Err(MessageError::Header(HeaderError::UnknownApiKey(0x7fff)))
    );
}

#[test]
fn versions_outside_the_message_range_are_refused_both_ways() {
    let mut buf = BytesMut::from(&b"keep"[..]);
    let err = encode_request(&mut buf, &MetadataRequest::default(), 14, 1, None).unwrap_err();
    assert_eq!(
        err,
        MessageError::UnsupportedVersion {
            api: ApiKey::Metadata,
            direction: Direction::Request,
            version: 14,
            min: 0,
            max: 13
        }
    );
    assert_eq!(
        err.to_string(),
        "Metadata request v14 is not supported (supported: v0 to v13)"
    );
    assert_eq!(&buf[..], b"keep");
    assert!(matches!(
        encode_request(&mut buf, &ProduceRequest::default(), 2, 1, None),
        Err(MessageError::UnsupportedVersion { min: 3, .. })
    ));
    assert!(matches!(
        decode_response::<FetchRequest>(Bytes::from_static(&[0, 0, 0, 1]), 3),
        Err(MessageError::UnsupportedVersion {
            api: ApiKey::Fetch,
            version: 3,
            ..
        })
    ));
    assert!(matches!(
        decode_response_payload(ApiKey::Fetch, 19, Bytes::from_static(&[0, 0, 0, 1])),
        Err(MessageError::UnsupportedVersion { version: 19, .. })
    ));
    assert!(matches!(
        decode_request_kind(ApiKey::Fetch, -1, Bytes::new()),
        Err(MessageError::UnsupportedVersion { version: -1, .. })
    ));
}

#[test]
fn fields_missing_at_a_version_fail_to_encode_and_leave_the_buffer() {
    let request = JoinGroupRequest::default()
        .with_group_instance_id(Some(StrBytes::from_static_str("static-1")));
    let mut buf = BytesMut::from(&b"keep"[..]);
    let err = encode_request(&mut buf, &request, 4, 1, None).unwrap_err();
    assert!(
        matches!(
            err,
            MessageError::Encode {
                api: ApiKey::JoinGroup,
                version: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(&buf[..], b"keep");
    // The same request is fine where the field exists.
    encode_request(&mut buf, &request, 5, 1, None).unwrap();
}

#[test]
fn truncated_body_is_malformed() {
    let mut buf = BytesMut::new();
    let response = MetadataResponse::default()
        .with_brokers(vec![metadata_response::MetadataResponseBroker::default()
            .with_host(StrBytes::from_static_str("h"))]);
    encode_response::<MetadataRequest>(&mut buf, &response, 1, 5).unwrap();
    let full = buf.freeze();
    for cut in 4..full.len() {
        let err = decode_response::<MetadataRequest>(full.slice(..cut), 1).unwrap_err();
        assert!(
            matches!(
                err,
                MessageError::Malformed {
                    api: ApiKey::Metadata,
                    version: 1,
                    ..
                }
            ),
            "cut at {cut}: {err}"
        );
    }
    assert!(decode_response::<MetadataRequest>(full, 1).is_ok());
}

#[test]
fn trailing_bytes_are_refused() {
    let mut buf = BytesMut::new();
    encode_response::<HeartbeatLike>(&mut buf, &Default::default(), 4, 9).unwrap();
    buf.put_u8(0xab);
    let err = decode_response::<HeartbeatLike>(buf.freeze(), 4).unwrap_err();
    assert_eq!(
        err,
        MessageError::TrailingBytes {
            api: ApiKey::Heartbeat,
            direction: Direction::Response,
            version: 4,
            trailing: 1
        }
    );

    let mut buf = BytesMut::new();
    encode_request(&mut buf, &MetadataRequest::default(), 4, 1, None).unwrap();
    buf.put_slice(&[1, 2]);
    assert!(matches!(
        decode_request(buf.freeze()),
        Err(MessageError::TrailingBytes {
            trailing: 2,
            direction: Direction::Request,
            ..
        })
    ));
}

#[test]
fn a_broker_may_decode_a_request_body_and_leave_what_follows() {
    let request = MetadataRequest::default().with_allow_auto_topic_creation(true);
    for (version, extra) in [(12i16, &[0u8, 0, 0][..]), (4, &[1, 2][..]), (1, &[][..])] {
        let mut buf = BytesMut::new();
        encode_request(&mut buf, &request, version, 1, None).unwrap();
        let mut body = buf.freeze();
        let header = decode_request_header(&mut body).unwrap();
        assert_eq!(header.request_api_version, version);
        let mut rest = with_extra_bytes(&body, extra);
        let decoded = decode_request_kind_prefix(ApiKey::Metadata, version, &mut rest).unwrap();
        assert_eq!(
            decoded,
            RequestKind::Metadata(request.clone()),
            "v{version}"
        );
        assert_eq!(&rest[..], extra, "v{version}");
        // The strict decode refuses the same bytes when there are any.
        let strict = decode_request_kind(ApiKey::Metadata, version, with_extra_bytes(&body, extra));
        assert_eq!(strict.is_ok(), extra.is_empty(), "v{version}");
    }
    // Malformed is still malformed.
    let mut short = Bytes::from_static(&[0xff]);
    assert!(decode_request_kind_prefix(ApiKey::Metadata, 12, &mut short).is_err());
    assert_eq!(&short[..], &[0xff]);
}

fn with_extra_bytes(body: &[u8], extra: &[u8]) -> Bytes {
    let mut buf = BytesMut::from(body);
    buf.put_slice(extra);
    buf.freeze()
}

type HeartbeatLike = kafka_protocol::messages::HeartbeatRequest;

#[test]
fn correlation_mismatch_helper() {
    assert_eq!(check_correlation_id(5, 5), Ok(()));
    let err = check_correlation_id(5, 6).unwrap_err();
    assert_eq!(
        err,
        MessageError::CorrelationMismatch {
            expected: 5,
            actual: 6
        }
    );
    assert_eq!(
        err.to_string(),
        "response correlation id 6 does not match the expected 5"
    );
}

#[test]
fn api_versions_unsupported_version_answer_falls_back_to_v0() {
    // What a broker that only knows ApiVersions v0..=2 sends to a v4 request: a v0 body with
    // UNSUPPORTED_VERSION and its ApiVersions range.
    let mut payload = BytesMut::new();
    payload.put_i32(77); // correlation id, header v0
    payload.put_i16(35); // error code
    payload.put_i32(1); // one api key entry
    payload.put_i16(18);
    payload.put_i16(0);
    payload.put_i16(2);
    let decoded = decode_response::<ApiVersionsRequest>(payload.freeze(), 4).unwrap();
    assert_eq!(decoded.correlation_id, 77);
    assert_eq!(decoded.version, 0);
    assert_eq!(decoded.body.error_code, 35);
    assert_eq!(decoded.body.api_keys.len(), 1);
    assert_eq!(decoded.body.api_keys[0].max_version, 2);

    // Without error 35 there is no fallback: garbage stays an error.
    let mut bad = BytesMut::new();
    bad.put_i32(77);
    bad.put_i16(0);
    bad.put_i32(0);
    assert!(decode_response::<ApiVersionsRequest>(bad.freeze(), 4).is_err());
}

#[test]
fn hostile_compact_count_is_refused_before_allocating() {
    // Metadata v9 response body: throttle, then a compact array of brokers claiming 2^32 - 2.
    let body = Bytes::from_static(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let (result, largest) =
        largest_allocation(|| decode_response_kind(ApiKey::Metadata, 9, body.clone()));
    let err = result.unwrap_err();
    assert_eq!(
        err,
        MessageError::HostileLength {
            api: ApiKey::Metadata,
            direction: Direction::Response,
            version: 9,
            offset: 4,
            claimed: u32::MAX,
            remaining: 0
        }
    );
    assert!(largest < 4096, "largest allocation {largest} bytes");
}

#[test]
fn hostile_int32_count_is_refused_with_a_bounded_allocation() {
    // Metadata v1 response body: a classic array of brokers claiming i32::MAX elements.
    let body = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]);
    let (result, largest) =
        largest_allocation(|| decode_response_kind(ApiKey::Metadata, 1, body.clone()));
    assert!(
        matches!(result, Err(MessageError::Malformed { .. })),
        "{result:?}"
    );
    // Unguarded this asks for i32::MAX * 56 bytes and aborts the process.
    assert!(largest < 16 << 20, "largest allocation {largest} bytes");
}

#[test]
fn large_int32_data_values_survive_the_guard() {
    // Fetch session ids are random positive int32s, far above the remaining length: the guard
    // clamps them on its first pass and must hand back the true value.
    for version in [7, 11, 12, 16] {
        let response = FetchResponse::default()
            .with_session_id(i32::MAX)
            .with_throttle_time_ms(1_000_000_000);
        let mut buf = BytesMut::new();
        encode_response::<FetchRequest>(&mut buf, &response, version, 3).unwrap();
        let decoded = decode_response::<FetchRequest>(buf.freeze(), version).unwrap();
        assert_eq!(decoded.body, response, "v{version}");
    }
}

#[test]
fn hostile_tagged_field_count_is_refused() {
    // ApiVersions v3 request body: two empty compact strings, then a tagged-field count of 2^28.
    let body = Bytes::from_static(&[1, 1, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert!(matches!(
        decode_request_kind(ApiKey::ApiVersions, 3, body),
        Err(MessageError::HostileLength {
            claimed: 0x1000_0000,
            ..
        })
    ));
}

#[test]
fn absurd_tag_numbers_are_refused_small_ones_kept() {
    // Documented strictness: a tag number beyond the remaining bytes + 4096 is treated like a
    // hostile length. Kafka numbers tags from 0, so real messages never get near it.
    let mut request = ApiVersionsRequest::default();
    request
        .unknown_tagged_fields
        .insert(4000, Bytes::from_static(b"kept"));
    let mut buf = BytesMut::new();
    encode_request(&mut buf, &request, 3, 1, None).unwrap();
    let decoded = decode_request(buf.freeze()).unwrap();
    assert_eq!(decoded.body, RequestKind::ApiVersions(request.clone()));

    request
        .unknown_tagged_fields
        .insert(100_000, Bytes::from_static(b"x"));
    let mut buf = BytesMut::new();
    encode_request(&mut buf, &request, 3, 1, None).unwrap();
    assert!(matches!(
        decode_request(buf.freeze()),
        Err(MessageError::HostileLength {
            claimed: 100_000,
            ..
        })
    ));
}

#[test]
fn every_api_is_dispatched() {
    // An empty body is malformed (or, for bodies with no required fields, fine) for every API
    // and version: never "unknown", never a panic.
    for key in ApiKey::iter() {
        for direction in [Direction::Request, Direction::Response] {
            let range = message_versions(key, direction);
            assert!(range.min <= range.max, "{key:?}");
            for version in range.min..=range.max {
                let result = match direction {
                    Direction::Request => {
                        decode_request_kind(key, version, Bytes::new()).map(|_| ())
                    }
                    Direction::Response => {
                        decode_response_kind(key, version, Bytes::new()).map(|_| ())
                    }
                };
                match result {
                    Ok(()) | Err(MessageError::Malformed { .. }) => {}
                    Err(other) => panic!("{key:?} {direction} v{version}: {other}"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz-style sweep.

/// Draws one value from `strategy`, deterministically from `seed`.
fn draw<T: Debug>(strategy: BoxedStrategy<T>, seed: u64) -> T {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(ProptestConfig::default(), rng);
    strategy.new_tree(&mut runner).unwrap().current()
}

/// Every table API except the representative set, whose samples come from the strategies.
macro_rules! table_defaults {
    ($kind:ident, $key:expr) => {
        match $key {
            ApiKey::ListOffsets => $kind::ListOffsets(Default::default()),
            ApiKey::OffsetFetch => $kind::OffsetFetch(Default::default()),
            ApiKey::FindCoordinator => $kind::FindCoordinator(Default::default()),
            ApiKey::Heartbeat => $kind::Heartbeat(Default::default()),
            ApiKey::LeaveGroup => $kind::LeaveGroup(Default::default()),
            ApiKey::CreateTopics => $kind::CreateTopics(Default::default()),
            ApiKey::DeleteTopics => $kind::DeleteTopics(Default::default()),
            ApiKey::InitProducerId => $kind::InitProducerId(Default::default()),
            ApiKey::AddPartitionsToTxn => $kind::AddPartitionsToTxn(Default::default()),
            ApiKey::AddOffsetsToTxn => $kind::AddOffsetsToTxn(Default::default()),
            ApiKey::EndTxn => $kind::EndTxn(Default::default()),
            ApiKey::TxnOffsetCommit => $kind::TxnOffsetCommit(Default::default()),
            ApiKey::DescribeConfigs => $kind::DescribeConfigs(Default::default()),
            other => panic!("no sample for {other:?}"),
        }
    };
}

fn sample_request(key: ApiKey, v: i16, seed: u64) -> RequestKind {
    match key {
        ApiKey::Metadata => RequestKind::Metadata(draw(metadata_request(v), seed)),
        ApiKey::Fetch => RequestKind::Fetch(draw(fetch_request(v), seed)),
        ApiKey::Produce => RequestKind::Produce(draw(produce_request(v), seed)),
        ApiKey::JoinGroup => RequestKind::JoinGroup(draw(join_group_request(v), seed)),
        ApiKey::SyncGroup => RequestKind::SyncGroup(draw(sync_group_request(v), seed)),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(draw(offset_commit_request(v), seed)),
        ApiKey::ApiVersions => RequestKind::ApiVersions(draw(api_versions_request(v), seed)),
        other => table_defaults!(RequestKind, other),
    }
}

fn sample_response(key: ApiKey, v: i16, seed: u64) -> ResponseKind {
    match key {
        ApiKey::Metadata => ResponseKind::Metadata(draw(metadata_response(v), seed)),
        ApiKey::Fetch => ResponseKind::Fetch(draw(fetch_response(v), seed)),
        ApiKey::Produce => ResponseKind::Produce(draw(produce_response(v), seed)),
        ApiKey::JoinGroup => ResponseKind::JoinGroup(draw(join_group_response(v), seed)),
        ApiKey::SyncGroup => ResponseKind::SyncGroup(draw(sync_group_response(v), seed)),
        ApiKey::OffsetCommit => ResponseKind::OffsetCommit(draw(offset_commit_response(v), seed)),
        ApiKey::ApiVersions => ResponseKind::ApiVersions(draw(api_versions_response(v), seed)),
        other => table_defaults!(ResponseKind, other),
    }
}

/// A valid body of `key` at `version` to mutate: a generated message for the representative set,
/// the default message for the other table APIs.
fn sample_body(key: ApiKey, version: i16, direction: Direction, seed: u64) -> Bytes {
    let mut buf = BytesMut::new();
    let encoded = match direction {
        Direction::Response => sample_response(key, version, seed).encode(&mut buf, version),
        Direction::Request => sample_request(key, version, seed).encode(&mut buf, version),
    };
    if let Err(e) = encoded {
        panic!("{key:?} {direction} v{version}: sample does not encode: {e:#}");
    }
    buf.freeze()
}

/// Largest single allocation a decode of `len` bytes may ask for: the guard admits counts up to
/// the remaining length plus 4096, times the largest element struct (344 bytes in
/// kafka-protocol 0.18; 512 leaves room).
fn allocation_bound(len: usize) -> usize {
    (len + 4096) * 512
}

/// Mutations aimed at lengths and counts: random overwrites plus planted huge int32s and varints.
#[derive(Debug, Clone)]
enum Mutation {
    Byte(prop::sample::Index, u8),
    Int32(prop::sample::Index, i32),
    Varint(prop::sample::Index, u32),
    Truncate(prop::sample::Index),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Byte(i, b)),
        (
            any::<prop::sample::Index>(),
            prop_oneof![Just(i32::MAX), Just(0x0100_0000), Just(-2), any::<i32>()]
        )
            .prop_map(|(i, v)| Mutation::Int32(i, v)),
        (
            any::<prop::sample::Index>(),
            prop_oneof![Just(u32::MAX), Just(1 << 28), Just(70_000), any::<u32>()]
        )
            .prop_map(|(i, v)| Mutation::Varint(i, v)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        vec(any::<u8>(), 1..8).prop_map(Mutation::Append),
    ]
}

fn apply(body: &[u8], mutations: &[Mutation]) -> Bytes {
    let mut out = body.to_vec();
    for m in mutations {
        match m {
            Mutation::Byte(i, b) if !out.is_empty() => {
                let i = i.index(out.len());
                out[i] = *b;
            }
            Mutation::Int32(i, v) if out.len() >= 4 => {
                let i = i.index(out.len() - 3);
                out[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            Mutation::Varint(i, v) if !out.is_empty() => {
                let mut encoded = Vec::new();
                let mut v = *v;
                while v >= 0x80 {
                    encoded.push((v as u8) | 0x80);
                    v >>= 7;
                }
                encoded.push(v as u8);
                let i = i.index(out.len());
                let end = (i + encoded.len()).min(out.len());
                out.splice(i..end, encoded);
            }
            Mutation::Truncate(i) if !out.is_empty() => {
                let keep = i.index(out.len());
                out.truncate(keep);
            }
            Mutation::Append(extra) => out.extend_from_slice(extra),
            _ => {}
        }
    }
    Bytes::from(out)
}

/// Every (API, version, direction) to sweep: the table's APIs at every version kafka-protocol
/// knows for them.
fn table_targets() -> Vec<(ApiKey, i16, Direction)> {
    let mut targets = Vec::new();
    for support in MEPHISTO_APIS {
        for direction in [Direction::Response, Direction::Request] {
            let range = message_versions(support.api, direction);
            for version in range.min..=range.max {
                targets.push((support.api, version, direction));
            }
        }
    }
    targets
}

fn decode_any(key: ApiKey, version: i16, direction: Direction, body: Bytes) -> bool {
    match direction {
        Direction::Response => decode_response_kind(key, version, body).is_ok(),
        Direction::Request => decode_request_kind(key, version, body).is_ok(),
    }
}

/// Decodes `body` and checks time and memory; returns whether it decoded.
fn check_bounded(
    key: ApiKey,
    version: i16,
    direction: Direction,
    body: Bytes,
) -> Result<bool, TestCaseError> {
    let len = body.len();
    let started = Instant::now();
    let (ok, largest) = largest_allocation(|| decode_any(key, version, direction, body));
    let elapsed = started.elapsed();
    prop_assert!(
        largest <= allocation_bound(len),
        "{:?} {} v{}: {} bytes in, largest allocation {}",
        key,
        direction,
        version,
        len,
        largest
    );
    prop_assert!(
        elapsed < Duration::from_secs(1),
        "{key:?} {direction} v{version}: took {elapsed:?}"
    );
    Ok(ok)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_bytes_never_panic_or_overallocate(
        inputs in vec(vec(any::<u8>(), 0..512), 1..4),
    ) {
        for (key, version, direction) in table_targets() {
            for input in &inputs {
                check_bounded(key, version, direction, Bytes::from(input.clone()))?;
            }
        }
    }

    #[test]
    fn mutated_messages_never_panic_or_overallocate(
        mutations in vec(vec(mutation(), 1..4), 1..4),
        seed in any::<u64>(),
    ) {
        for (key, version, direction) in table_targets() {
            let body = sample_body(key, version, direction, seed);
            for m in &mutations {
                check_bounded(key, version, direction, apply(&body, m))?;
            }
        }
    }

    #[test]
    fn every_kafka_protocol_api_survives_random_bytes(input in vec(any::<u8>(), 0..256)) {
        for key in ApiKey::iter() {
            for direction in [Direction::Response, Direction::Request] {
                let range = message_versions(key, direction);
                for version in range.min..=range.max {
                    check_bounded(key, version, direction, Bytes::from(input.clone()))?;
                }
            }
        }
    }
}

#[test]
fn mutated_representative_messages_still_decode_sometimes() {
    // Guard against a sweep that only ever exercises the first bytes: valid samples decode, so
    // the mutation sweep starts from real messages.
    for (seed, (key, version, direction)) in table_targets().into_iter().enumerate() {
        let body = sample_body(key, version, direction, seed as u64);
        assert!(
            decode_any(key, version, direction, body.clone()),
            "{key:?} {direction} v{version}: the unmutated sample must decode"
        );
    }
    // Force at least one sample through a big int32 data value to cover the second pass.
    let body = {
        let mut buf = BytesMut::new();
        FetchResponse::default()
            .with_session_id(0x4000_0000)
            .encode(&mut buf, 12)
            .unwrap();
        buf.freeze()
    };
    assert!(decode_any(ApiKey::Fetch, 12, Direction::Response, body));
}
