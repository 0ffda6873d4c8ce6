//! Hostile and broken bytes on the wire: every case ends in a clear error or a clean close,
//! and the broker keeps serving a second, well-behaved client.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use bytes::{BufMut, BytesMut};
use common::Raw;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

async fn still_serves(addr: std::net::SocketAddr) {
    let mut good = Raw::connect(addr).await;
    let resp: ApiVersionsResponse = good
        .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(resp.error_code, 0);
    assert!(!resp.api_keys.is_empty());
}

#[tokio::test]
async fn negative_zero_and_huge_sizes_close_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let addr = broker.addresses[0];
    for size in [-1i32, i32::MIN, 0, i32::MAX, 100 * 1024 * 1024 + 1] {
        let mut raw = Raw::connect(addr).await;
        use tokio::io::AsyncWriteExt;
        raw.stream.write_all(&size.to_be_bytes()).await.unwrap();
        // The broker must close at once, without waiting for (or allocating) the body.
        assert!(
            raw.is_closed().await,
            "size {size} did not close the connection"
        );
        still_serves(addr).await;
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn truncated_frame_unknown_key_and_garbage_close_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let addr = broker.addresses[0];

    // Declares 100 bytes, sends 10, hangs up.
    {
        let mut raw = Raw::connect(addr).await;
        use tokio::io::AsyncWriteExt;
        let mut buf = BytesMut::new();
        buf.put_i32(100);
        buf.put_slice(&[0u8; 10]);
        raw.stream.write_all(&buf).await.unwrap();
        raw.stream.shutdown().await.unwrap();
    }
    still_serves(addr).await;

    // Unknown API key.
    let mut raw = Raw::connect(addr).await;
    let mut buf = BytesMut::new();
    buf.put_i16(9999);
    buf.put_i16(0);
    buf.put_i32(1);
    buf.put_i16(-1);
    raw.send_frame(&buf).await;
    assert!(raw.is_closed().await);
    still_serves(addr).await;

    // A header shorter than key + version + correlation id.
    let mut raw = Raw::connect(addr).await;
    raw.send_frame(&[0, 3]).await;
    assert!(raw.is_closed().await);

    // A valid Metadata header followed by garbage: a topic array claiming 2^31-1 entries.
    let mut raw = Raw::connect(addr).await;
    let mut buf = BytesMut::new();
    buf.put_i16(ApiKey::Metadata as i16);
    buf.put_i16(4);
    buf.put_i32(7);
    buf.put_i16(-1);
    buf.put_i32(i32::MAX);
    buf.put_slice(b"garbage");
    raw.send_frame(&buf).await;
    assert!(raw.is_closed().await);

    // Random bytes after a Produce header.
    let mut raw = Raw::connect(addr).await;
    let mut buf = BytesMut::new();
    buf.put_i16(ApiKey::Produce as i16);
    buf.put_i16(9);
    buf.put_i32(8);
    buf.put_slice(&[0xff; 64]);
    raw.send_frame(&buf).await;
    assert!(raw.is_closed().await);
    still_serves(addr).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn unsupported_api_versions_version_gets_v0_answer_with_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    let mut buf = BytesMut::new();
    buf.put_i16(ApiKey::ApiVersions as i16);
    buf.put_i16(99);
    buf.put_i32(42);
    buf.put_slice(b"whatever the future brings");
    raw.send_frame(&buf).await;
    let mut frame = raw.read_frame().await.unwrap();
    use kafka_protocol::protocol::Decodable;
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, 42);
    let resp = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(resp.error_code, 35);
    let produce = resp.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert!(produce.min_version >= 3 && produce.max_version >= produce.min_version);

    // Any other API at an unsupported version closes the connection.
    let mut raw = Raw::connect(broker.addresses[0]).await;
    let mut buf = BytesMut::new();
    buf.put_i16(ApiKey::Metadata as i16);
    buf.put_i16(99);
    buf.put_i32(1);
    buf.put_i16(-1);
    raw.send_frame(&buf).await;
    assert!(raw.is_closed().await);
    broker.shutdown().await;
}

#[tokio::test]
async fn bad_crc_and_decompression_bomb_are_refused_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_with(
        dir.path(),
        &[(
            "max_decompressed_batch_bytes = 67108864",
            "max_decompressed_batch_bytes = 1048576",
        )],
    )
    .await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    common::create_topic(&mut raw, "t", 1, &[]).await;

    let good = common::batch(&[b"hello"], Compression::None, None);
    let mut bad = BytesMut::from(&good[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let resp: ProduceResponse = raw
        .request(
            ApiKey::Produce,
            9,
            &common::produce_request("t", 0, -1, bad.freeze()),
        )
        .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code, 2,
        "CORRUPT_MESSAGE expected"
    );

    // 16 MiB of zeros compressed by zstd to a few hundred bytes, against a 1 MiB cap.
    let zeros = vec![0u8; 16 * 1024 * 1024];
    let bomb = common::batch(&[&zeros], Compression::Zstd, None);
    assert!(bomb.len() < 64 * 1024);
    let resp: ProduceResponse = raw
        .request(
            ApiKey::Produce,
            9,
            &common::produce_request("t", 0, -1, bomb),
        )
        .await;
    let code = resp.responses[0].partition_responses[0].error_code;
    assert_eq!(code, 10, "MESSAGE_TOO_LARGE expected, got {code}");

    // Nothing of either was stored; a good batch still goes to offset 0.
    let resp: ProduceResponse = raw
        .request(
            ApiKey::Produce,
            9,
            &common::produce_request("t", 0, -1, good),
        )
        .await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    broker.shutdown().await;
}

#[tokio::test]
async fn every_advertised_api_and_version_is_routed_and_encodable() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    let versions: ApiVersionsResponse = raw
        .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    for (api, version) in versions
        .api_keys
        .iter()
        .flat_map(|a| (a.min_version..=a.max_version).map(move |v| (a, v)))
    {
        let key = ApiKey::try_from(api.api_key).unwrap();
        // A default-valued request of every advertised API must get an answer, not a close.
        let mut body = BytesMut::new();
        let mut req = populated(key, version);
        if let RequestKind::Produce(p) = &mut req {
            p.acks = 1;
        }
        if let RequestKind::Fetch(f) = &mut req {
            f.max_wait_ms = 0;
        }
        if let RequestKind::JoinGroup(_) | RequestKind::SyncGroup(_) = &req {
            continue; // long-polling group APIs are exercised by the consumer group tests
        }
        req.encode(&mut body, version).unwrap();
        let mut conn = Raw::connect(broker.addresses[0]).await;
        let mut frame = BytesMut::new();
        use kafka_protocol::protocol::Encodable;
        RequestHeader::default()
            .with_request_api_key(api.api_key)
            .with_request_api_version(version)
            .with_correlation_id(5)
            .encode(&mut frame, key.request_header_version(version))
            .unwrap();
        frame.put_slice(&body);
        conn.send_frame(&frame).await;
        assert!(
            conn.read_frame().await.is_some(),
            "{key:?} v{version} got no response"
        );
    }
    broker.shutdown().await;
}

/// A request naming topic `t` partition 0 (and a group) where the API has such fields, so that
/// responses carry per-topic and per-partition fields at every version.
fn populated(key: ApiKey, version: i16) -> RequestKind {
    use kafka_protocol::protocol::StrBytes;
    let topic = || TopicName(StrBytes::from_static_str("t"));
    let group = || GroupId(StrBytes::from_static_str("g"));
    match key {
        ApiKey::Produce => RequestKind::Produce(common::produce_request(
            "t",
            0,
            1,
            common::batch(&[b"x"], kafka_protocol::records::Compression::None, None),
        )),
        ApiKey::Fetch => RequestKind::Fetch(
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_bytes(1 << 20)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(topic())
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_partition_max_bytes(1 << 20)])]),
        ),
        ApiKey::ListOffsets => RequestKind::ListOffsets(
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ])]),
        ),
        ApiKey::Metadata => {
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
            ])))
        }
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic())
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(0),
                        ]),
                ]),
        ),
        ApiKey::OffsetFetch if version >= 8 => {
            RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(group())
                .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0])])),
        ]))
        }
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(group())
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(topic())
                        .with_partition_indexes(vec![0]),
                ])),
        ),
        ApiKey::FindCoordinator if version >= 4 => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
        ),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
        ),
        ApiKey::DescribeGroups => {
            RequestKind::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![group()]))
        }
        ApiKey::CreateTopics => {
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(format!("created-v{version}"))))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]))
        }
        ApiKey::DeleteTopics if version >= 6 => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("missing"))))]),
        ),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName(StrBytes::from_static_str("missing"))]),
        ),
        ApiKey::DeleteRecords => {
            RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic())
                .with_partitions(vec![delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(0)]),
        ]))
        }
        ApiKey::DescribeConfigs => {
            RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t")),
        ]))
        }
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(StrBytes::from_static_str("86400000"))),
                    ]),
            ]),
        ),
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic())
                    .with_count(1),
            ]))
        }
        ApiKey::InitProducerId => RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
        other => RequestKind::decode_default(other),
    }
}

trait DefaultKind {
    fn decode_default(key: ApiKey) -> RequestKind;
}

impl DefaultKind for RequestKind {
    fn decode_default(key: ApiKey) -> RequestKind {
        match key {
            ApiKey::Produce => RequestKind::Produce(Default::default()),
            ApiKey::Fetch => RequestKind::Fetch(Default::default()),
            ApiKey::ListOffsets => RequestKind::ListOffsets(Default::default()),
            ApiKey::Metadata => RequestKind::Metadata(Default::default()),
            ApiKey::OffsetCommit => RequestKind::OffsetCommit(Default::default()),
            ApiKey::OffsetFetch => RequestKind::OffsetFetch(Default::default()),
            ApiKey::FindCoordinator => RequestKind::FindCoordinator(Default::default()),
            ApiKey::JoinGroup => RequestKind::JoinGroup(Default::default()),
            ApiKey::Heartbeat => RequestKind::Heartbeat(Default::default()),
            ApiKey::LeaveGroup => RequestKind::LeaveGroup(Default::default()),
            ApiKey::SyncGroup => RequestKind::SyncGroup(Default::default()),
            ApiKey::DescribeGroups => RequestKind::DescribeGroups(Default::default()),
            ApiKey::ListGroups => RequestKind::ListGroups(Default::default()),
            ApiKey::ApiVersions => RequestKind::ApiVersions(Default::default()),
            ApiKey::CreateTopics => RequestKind::CreateTopics(Default::default()),
            ApiKey::DeleteTopics => RequestKind::DeleteTopics(Default::default()),
            ApiKey::DeleteRecords => RequestKind::DeleteRecords(Default::default()),
            ApiKey::InitProducerId => RequestKind::InitProducerId(Default::default()),
            ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(Default::default()),
            ApiKey::CreatePartitions => RequestKind::CreatePartitions(Default::default()),
            ApiKey::DeleteGroups => RequestKind::DeleteGroups(Default::default()),
            ApiKey::IncrementalAlterConfigs => {
                RequestKind::IncrementalAlterConfigs(Default::default())
            }
            ApiKey::DescribeCluster => RequestKind::DescribeCluster(Default::default()),
            ApiKey::SaslHandshake => RequestKind::SaslHandshake(Default::default()),
            ApiKey::DescribeUserScramCredentials => {
                RequestKind::DescribeUserScramCredentials(Default::default())
            }
            ApiKey::AlterUserScramCredentials => {
                RequestKind::AlterUserScramCredentials(Default::default())
            }
            ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(Default::default()),
            ApiKey::DescribeClientQuotas => RequestKind::DescribeClientQuotas(Default::default()),
            // No entries: routed and answered without changing any quota.
            ApiKey::AlterClientQuotas => RequestKind::AlterClientQuotas(Default::default()),
            ApiKey::DescribeAcls => RequestKind::DescribeAcls(Default::default()),
            // Routed and answered without changing the (shared, read-only) test policy folder:
            // the binding is invalid and the filter matches nothing.
            ApiKey::CreateAcls => RequestKind::CreateAcls(
                kafka_protocol::messages::CreateAclsRequest::default().with_creations(vec![
                    kafka_protocol::messages::create_acls_request::AclCreation::default()
                        .with_resource_type(2)
                        .with_resource_name(kafka_protocol::protocol::StrBytes::from_static_str(
                            "t",
                        ))
                        .with_resource_pattern_type(2)
                        .with_principal(kafka_protocol::protocol::StrBytes::from_static_str(
                            "User:x",
                        ))
                        .with_host(kafka_protocol::protocol::StrBytes::from_static_str("*"))
                        .with_operation(3)
                        .with_permission_type(3),
                ]),
            ),
            ApiKey::DeleteAcls => RequestKind::DeleteAcls(
                kafka_protocol::messages::DeleteAclsRequest::default().with_filters(vec![
                    kafka_protocol::messages::delete_acls_request::DeleteAclsFilter::default()
                        .with_resource_type_filter(2)
                        .with_resource_name_filter(Some(
                            kafka_protocol::protocol::StrBytes::from_static_str("none"),
                        ))
                        .with_pattern_type_filter(3)
                        .with_operation(1)
                        .with_permission_type(1),
                ]),
            ),
            other => panic!("advertised API {other:?} has no default request in this test"),
        }
    }
}

#[tokio::test]
async fn huge_array_counts_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let addr = broker.addresses[0];
    // Non-flexible Metadata v4: i32 array count; flexible v12: unsigned varint count 2^32-1.
    let cases: Vec<Vec<u8>> = vec![
        {
            let mut b = BytesMut::new();
            b.put_i16(ApiKey::Metadata as i16);
            b.put_i16(4);
            b.put_i32(1);
            b.put_i16(-1);
            b.put_i32(i32::MAX);
            b.to_vec()
        },
        {
            let mut b = BytesMut::new();
            b.put_i16(ApiKey::Metadata as i16);
            b.put_i16(12);
            b.put_i32(2);
            b.put_i16(-1); // client id
            b.put_u8(0); // header tagged fields
            b.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // topics: varint 2^32-1
            b.to_vec()
        },
        {
            // Produce v3 whose topic array claims 2^31-1 entries.
            let mut b = BytesMut::new();
            b.put_i16(ApiKey::Produce as i16);
            b.put_i16(3);
            b.put_i32(3);
            b.put_i16(-1);
            b.put_i16(-1); // transactional id
            b.put_i16(1); // acks
            b.put_i32(1000); // timeout
            b.put_i32(i32::MAX);
            b.to_vec()
        },
    ];
    for case in cases {
        let mut raw = Raw::connect(addr).await;
        raw.send_frame(&case).await;
        assert!(raw.is_closed().await);
        still_serves(addr).await;
    }
    broker.shutdown().await;
}
