//! The group APIs on the local coordinator. Only OffsetCommit needs more than a call: offsets
//! are stored only for partitions that exist here.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::Local;
use crate::group::MemberOrigin;
use crate::request::Caller;

/// How a member is described to DescribeGroups (Kafka's `client_host` is `/ip`).
pub(super) fn origin(caller: &Caller) -> MemberOrigin {
    MemberOrigin {
        client_id: caller.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", caller.peer.ip()),
    }
}

/// As Kafka does, offsets are stored only for partitions that exist; the others answer
/// UNKNOWN_TOPIC_OR_PARTITION (the layers in front have already authorized every topic, so
/// existence is revealed only to whoever may read it).
pub(super) async fn offset_commit(
    local: &Local,
    mut r: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let mut missing = Vec::new();
    r.topics = std::mem::take(&mut r.topics)
        .into_iter()
        .filter_map(|mut t| {
            let topic = local.logs.topic(&t.name.0);
            let (present, absent): (Vec<_>, Vec<_>) = std::mem::take(&mut t.partitions)
                .into_iter()
                .partition(|p| {
                    topic
                        .as_ref()
                        .is_some_and(|topic| topic.partition(p.partition_index).is_some())
                });
            if !absent.is_empty() {
                missing.push(t.clone().with_partitions(absent));
            }
            (!present.is_empty()).then(|| t.with_partitions(present))
        })
        .collect();
    let mut response = if r.topics.is_empty() {
        OffsetCommitResponse::default()
    } else {
        local.groups.offset_commit(r, version).await
    };
    for unknown in missing {
        let partitions = unknown.partitions.iter().map(|p| {
            OffsetCommitResponsePartition::default()
                .with_partition_index(p.partition_index)
                .with_error_code(ResponseError::UnknownTopicOrPartition.code())
        });
        match response.topics.iter_mut().find(|t| t.name == unknown.name) {
            Some(topic) => topic.partitions.extend(partitions),
            None => response.topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(unknown.name)
                    .with_topic_id(unknown.topic_id)
                    .with_partitions(partitions.collect()),
            ),
        }
    }
    response
}
