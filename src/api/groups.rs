//! The consumer group APIs with authorization in front of the coordinator (`crate::group`),
//! as Kafka decides them: Read on the group to join, sync, heartbeat, leave and commit;
//! Describe on the group to find its coordinator, fetch its offsets or describe it; Delete to
//! delete it; and per topic Read to commit and Describe to fetch offsets.
//!
//! A denied group gets `GROUP_AUTHORIZATION_FAILED` without reaching the coordinator; a
//! denied topic inside an allowed group gets `TOPIC_AUTHORIZATION_FAILED` for its partitions
//! (commits) or is left out of an all-topics offset fetch.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::broker::Broker;
use crate::group::MemberOrigin;

const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const UNKNOWN_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();

fn origin(ctx: &RequestContext) -> MemberOrigin {
    MemberOrigin {
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
    }
}

pub async fn join(broker: &Broker, ctx: &RequestContext, r: JoinGroupRequest) -> JoinGroupResponse {
    if !Access::new(broker, ctx).group(Action::Read, &r.group_id) {
        return JoinGroupResponse::default()
            .with_error_code(GROUP_DENIED)
            .with_generation_id(-1)
            .with_member_id(r.member_id);
    }
    broker
        .groups
        .join_group(&origin(ctx), r, ctx.api_version)
        .await
}

pub async fn sync(broker: &Broker, ctx: &RequestContext, r: SyncGroupRequest) -> SyncGroupResponse {
    if !Access::new(broker, ctx).group(Action::Read, &r.group_id) {
        return SyncGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    broker.groups.sync_group(r, ctx.api_version).await
}

pub async fn heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    r: HeartbeatRequest,
) -> HeartbeatResponse {
    if !Access::new(broker, ctx).group(Action::Read, &r.group_id) {
        return HeartbeatResponse::default().with_error_code(GROUP_DENIED);
    }
    broker.groups.heartbeat(r, ctx.api_version).await
}

pub async fn leave(
    broker: &Broker,
    ctx: &RequestContext,
    r: LeaveGroupRequest,
) -> LeaveGroupResponse {
    if !Access::new(broker, ctx).group(Action::Read, &r.group_id) {
        return LeaveGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    broker.groups.leave_group(r, ctx.api_version).await
}

/// Commits only the topics the principal may Read; the others answer TOPIC_AUTHORIZATION_FAILED.
pub async fn offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    mut r: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let access = Access::new(broker, ctx);
    let denied_response =
        |topics: Vec<_>, code: i16| -> Vec<OffsetCommitResponseTopic> {
            topics
            .into_iter()
            .map(|t: kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect()
        };
    if !access.group(Action::Read, &r.group_id) {
        return OffsetCommitResponse::default()
            .with_topics(denied_response(r.topics, GROUP_DENIED));
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.topics)
        .into_iter()
        .partition(|t| access.topic(Action::Read, &t.name));
    // As Kafka does, offsets are stored only for partitions that exist; the others answer
    // UNKNOWN_TOPIC_OR_PARTITION (after authorization, so existence is not revealed).
    let mut missing = Vec::new();
    r.topics = allowed
        .into_iter()
        .filter_map(|mut t| {
            let topic = broker.logs.topic(&t.name.0);
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
        broker.groups.offset_commit(r, ctx.api_version).await
    };
    for unknown in denied_response(missing, UNKNOWN_PARTITION) {
        match response.topics.iter_mut().find(|t| t.name == unknown.name) {
            Some(topic) => topic.partitions.extend(unknown.partitions),
            None => response.topics.push(unknown),
        }
    }
    response
        .topics
        .extend(denied_response(denied, TOPIC_DENIED));
    response
}

/// Offsets of the groups the principal may Describe, for the topics it may Describe: named
/// topics it may not describe answer TOPIC_AUTHORIZATION_FAILED, and an all-topics fetch
/// leaves them out.
pub async fn offset_fetch(
    broker: &Broker,
    ctx: &RequestContext,
    r: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let access = Access::new(broker, ctx);
    if ctx.api_version >= 8 {
        let denied_groups: Vec<bool> = r
            .groups
            .iter()
            .map(|g| !access.group(Action::Describe, &g.group_id))
            .collect();
        let all_topics: Vec<bool> = r.groups.iter().map(|g| g.topics.is_none()).collect();
        let mut response = broker.groups.offset_fetch(r, ctx.api_version).await;
        for ((group, denied), all) in response
            .groups
            .iter_mut()
            .zip(denied_groups)
            .zip(all_topics)
        {
            if denied {
                group.error_code = GROUP_DENIED;
                group.topics.clear();
                continue;
            }
            if all {
                group
                    .topics
                    .retain(|t| access.topic(Action::Describe, &t.name));
            }
            for t in &mut group.topics {
                if !access.topic(Action::Describe, &t.name) {
                    for p in &mut t.partitions {
                        p.error_code = TOPIC_DENIED;
                        p.committed_offset = -1;
                        p.metadata = None;
                    }
                }
            }
        }
        return response;
    }
    let all = r.topics.is_none();
    if !access.group(Action::Describe, &r.group_id) {
        let mut response = OffsetFetchResponse::default().with_error_code(GROUP_DENIED);
        // v1 has no top-level error: the partitions carry it.
        response.topics = r
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partition_indexes
                            .into_iter()
                            .map(|i| {
                                kafka_protocol::messages::offset_fetch_response::OffsetFetchResponsePartition::default()
                                    .with_partition_index(i)
                                    .with_committed_offset(-1)
                                    .with_error_code(GROUP_DENIED)
                            })
                            .collect(),
                    )
            })
            .collect();
        return response;
    }
    let mut response = broker.groups.offset_fetch(r, ctx.api_version).await;
    if all {
        response
            .topics
            .retain(|t| access.topic(Action::Describe, &t.name));
    }
    for t in &mut response.topics {
        if !access.topic(Action::Describe, &t.name) {
            for p in &mut t.partitions {
                p.error_code = TOPIC_DENIED;
                p.committed_offset = -1;
                p.metadata = None;
            }
        }
    }
    response
}

/// Every group with Describe on the cluster; otherwise the groups the principal may Describe.
pub async fn list(
    broker: &Broker,
    ctx: &RequestContext,
    r: ListGroupsRequest,
) -> ListGroupsResponse {
    let access = Access::new(broker, ctx);
    let mut response = broker.groups.list_groups(r, ctx.api_version).await;
    if !access.cluster(Action::Describe) {
        response
            .groups
            .retain(|g| access.group(Action::Describe, &g.group_id));
    }
    response
}

pub async fn describe(
    broker: &Broker,
    ctx: &RequestContext,
    mut r: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let access = Access::new(broker, ctx);
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups)
        .into_iter()
        .partition(|g| access.group(Action::Describe, g));
    r.groups = allowed;
    let mut response = broker.groups.describe_groups(r, ctx.api_version).await;
    response.groups.extend(denied.into_iter().map(|g| {
        DescribedGroup::default()
            .with_group_id(g)
            .with_error_code(GROUP_DENIED)
    }));
    response
}

pub async fn delete(
    broker: &Broker,
    ctx: &RequestContext,
    mut r: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let access = Access::new(broker, ctx);
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups_names)
        .into_iter()
        .partition(|g| access.group(Action::Delete, g));
    r.groups_names = allowed;
    let mut response = broker.groups.delete_groups(r, ctx.api_version).await;
    response.results.extend(denied.into_iter().map(|g| {
        DeletableGroupResult::default()
            .with_group_id(g)
            .with_error_code(GROUP_DENIED)
    }));
    response
}
