//! What one consumer group may make the broker hold: offsets only for partitions that exist,
//! a bounded number of members, and bounded protocol metadata per member.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use bytes::Bytes;
use common::Raw;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A simple-consumer commit (no member, generation -1) of `(topic, partition, offset)`.
fn commit(group: &str, entries: &[(&str, i32, i64)]) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset) in entries {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset);
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(topics)
}

/// `(topic, partition, error)` of every partition in a commit response, sorted.
fn commit_errors(r: &OffsetCommitResponse) -> Vec<(String, i32, i16)> {
    let mut out: Vec<_> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn offsets_for_missing_topics_and_partitions_are_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    common::create_topic(&mut raw, "present", 2, &[]).await;
    let unknown = ResponseError::UnknownTopicOrPartition.code();

    let r: OffsetCommitResponse = raw
        .request(
            ApiKey::OffsetCommit,
            8,
            &commit(
                "g",
                &[
                    ("present", 0, 5),
                    ("present", 7, 6),
                    ("nowhere-topic", 0, 7),
                    ("nowhere-topic", 1, 8),
                ],
            ),
        )
        .await;
    assert_eq!(
        commit_errors(&r),
        vec![
            ("nowhere-topic".into(), 0, unknown),
            ("nowhere-topic".into(), 1, unknown),
            ("present".into(), 0, 0),
            ("present".into(), 7, unknown),
        ]
    );
    // Only missing partitions: refused without creating the group.
    let r: OffsetCommitResponse = raw
        .request(
            ApiKey::OffsetCommit,
            8,
            &commit("ghost-group", &[("nowhere-topic", 0, 1)]),
        )
        .await;
    assert_eq!(
        commit_errors(&r),
        vec![("nowhere-topic".into(), 0, unknown)]
    );

    // OffsetFetch of every topic of the group shows only the partition that exists.
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_topics(None);
    let f: OffsetFetchResponse = raw.request(ApiKey::OffsetFetch, 7, &fetch).await;
    let stored: Vec<(String, i32, i64)> = f
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    assert_eq!(stored, vec![("present".into(), 0, 5)]);
    let named = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s("nowhere-topic")))
            .with_partition_indexes(vec![0, 1])]));
    let f: OffsetFetchResponse = raw.request(ApiKey::OffsetFetch, 7, &named).await;
    assert!(f.topics[0]
        .partitions
        .iter()
        .all(|p| p.committed_offset == -1));

    // Nor is anything of it on disk.
    let log = std::fs::read_to_string(dir.path().join("groups").join("offsets.log")).unwrap();
    assert!(log.contains("present"), "the valid commit is stored");
    assert!(!log.contains("nowhere-topic"), "offsets file: {log}");
    assert!(!log.contains("ghost-group"), "offsets file: {log}");
    broker.shutdown().await;
}

fn join_request(group: &str, metadata: Bytes) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(metadata)])
}

async fn group_ids(raw: &mut Raw) -> Vec<String> {
    let l: ListGroupsResponse = raw
        .request(ApiKey::ListGroups, 4, &ListGroupsRequest::default())
        .await;
    l.groups.iter().map(|g| g.group_id.to_string()).collect()
}

#[tokio::test]
async fn join_group_metadata_above_the_member_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    // The default cap is 1 MiB; 2 MiB of metadata is refused and nothing is held for it.
    let big = Bytes::from(vec![1u8; 2 << 20]);
    for _ in 0..3 {
        let r: JoinGroupResponse = raw
            .request(ApiKey::JoinGroup, 7, &join_request("fat", big.clone()))
            .await;
        assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    }
    assert!(!group_ids(&mut raw).await.contains(&"fat".to_string()));
    // Normal metadata joins (v7 asks for a member id first).
    let r: JoinGroupResponse = raw
        .request(
            ApiKey::JoinGroup,
            7,
            &join_request("thin", Bytes::from_static(b"subscription")),
        )
        .await;
    assert_eq!(r.error_code, ResponseError::MemberIdRequired.code());
    broker.shutdown().await;
}

#[tokio::test]
async fn a_group_holds_at_most_the_default_group_size() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    let req = join_request("crowd", Bytes::from_static(b"m"));
    // Each new member is held (pending its rejoin) and counts toward the group's size.
    let mut admitted = 0;
    let refused = loop {
        let r: JoinGroupResponse = raw.request(ApiKey::JoinGroup, 7, &req).await;
        if r.error_code != ResponseError::MemberIdRequired.code() {
            break r.error_code;
        }
        admitted += 1;
        assert!(admitted <= 1000, "more than 1,000 members admitted");
    };
    assert_eq!(refused, ResponseError::GroupMaxSizeReached.code());
    assert_eq!(admitted, 1000);
    broker.shutdown().await;
}
