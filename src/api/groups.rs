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
use crate::backend::{self, BackendError};
use crate::broker::Broker;

const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();

/// Logs a group request the backend failed and gives its error code.
fn failed(ctx: &RequestContext, e: &BackendError) -> i16 {
    tracing::warn!(principal = %ctx.principal, api = ?ctx.api_key, "group request failed: {e}");
    e.group_code().code()
}

pub async fn join(broker: &Broker, ctx: &RequestContext, r: JoinGroupRequest) -> JoinGroupResponse {
    if !Access::new(broker, ctx).group(Action::Read, &r.group_id) {
        return JoinGroupResponse::default()
            .with_error_code(GROUP_DENIED)
            .with_generation_id(-1)
            .with_member_id(r.member_id);
    }
    let member_id = r.member_id.clone();
    backend::join_group(&*broker.backend, ctx.call(), r)
        .await
        .unwrap_or_else(|e| {
            JoinGroupResponse::default()
                .with_error_code(failed(ctx, &e))
                .with_generation_id(-1)
                .with_member_id(member_id)
        })
}

pub async fn sync(broker: &Broker, ctx: &RequestContext, r: SyncGroupRequest) -> SyncGroupResponse {
    if !Access::new(broker, ctx).group(Action::Read, &r.group_id) {
        return SyncGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    backend::sync_group(&*broker.backend, ctx.call(), r)
        .await
        .unwrap_or_else(|e| SyncGroupResponse::default().with_error_code(failed(ctx, &e)))
}

pub async fn heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    r: HeartbeatRequest,
) -> HeartbeatResponse {
    if !Access::new(broker, ctx).group(Action::Read, &r.group_id) {
        return HeartbeatResponse::default().with_error_code(GROUP_DENIED);
    }
    backend::heartbeat(&*broker.backend, ctx.call(), r)
        .await
        .unwrap_or_else(|e| HeartbeatResponse::default().with_error_code(failed(ctx, &e)))
}

pub async fn leave(
    broker: &Broker,
    ctx: &RequestContext,
    r: LeaveGroupRequest,
) -> LeaveGroupResponse {
    if !Access::new(broker, ctx).group(Action::Read, &r.group_id) {
        return LeaveGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    backend::leave_group(&*broker.backend, ctx.call(), r)
        .await
        .unwrap_or_else(|e| LeaveGroupResponse::default().with_error_code(failed(ctx, &e)))
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
    r.topics = allowed;
    let mut response = if r.topics.is_empty() {
        OffsetCommitResponse::default()
    } else {
        let asked = r.topics.clone();
        match backend::offset_commit(&*broker.backend, ctx.call(), r).await {
            Ok(response) => response,
            Err(e) => {
                OffsetCommitResponse::default().with_topics(denied_response(asked, failed(ctx, &e)))
            }
        }
    };
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
    mut r: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let access = Access::new(broker, ctx);
    if ctx.api_version >= 8 {
        use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
        // A group the principal may not describe never reaches the backend.
        let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups)
            .into_iter()
            .partition(|g| access.group(Action::Describe, &g.group_id));
        let answer = |groups: Vec<kafka_protocol::messages::GroupId>, code: i16| {
            groups
                .into_iter()
                .map(|g| {
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g)
                        .with_error_code(code)
                })
                .collect::<Vec<_>>()
        };
        // Groups asked for all their topics: those the principal may not describe are left out.
        let all_topics: std::collections::HashSet<_> = allowed
            .iter()
            .filter(|g| g.topics.is_none())
            .map(|g| g.group_id.clone())
            .collect();
        let asked: Vec<_> = allowed.iter().map(|g| g.group_id.clone()).collect();
        r.groups = allowed;
        let mut response = if r.groups.is_empty() {
            OffsetFetchResponse::default()
        } else {
            match backend::offset_fetch(&*broker.backend, ctx.call(), r).await {
                Ok(response) => response,
                Err(e) => {
                    OffsetFetchResponse::default().with_groups(answer(asked, failed(ctx, &e)))
                }
            }
        };
        for group in &mut response.groups {
            if all_topics.contains(&group.group_id) {
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
        let denied = denied.into_iter().map(|g| g.group_id).collect();
        response.groups.extend(answer(denied, GROUP_DENIED));
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
    let mut response = match backend::offset_fetch(&*broker.backend, ctx.call(), r).await {
        Ok(response) => response,
        Err(e) => OffsetFetchResponse::default().with_error_code(failed(ctx, &e)),
    };
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
    let mut response = backend::list_groups(&*broker.backend, ctx.call(), r)
        .await
        .unwrap_or_else(|e| ListGroupsResponse::default().with_error_code(failed(ctx, &e)));
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
    let asked = r.groups.clone();
    let mut response = match backend::describe_groups(&*broker.backend, ctx.call(), r).await {
        Ok(response) => response,
        Err(e) => {
            let code = failed(ctx, &e);
            DescribeGroupsResponse::default().with_groups(
                asked
                    .into_iter()
                    .map(|g| {
                        DescribedGroup::default()
                            .with_group_id(g)
                            .with_error_code(code)
                    })
                    .collect(),
            )
        }
    };
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
    let asked = r.groups_names.clone();
    let mut response = match backend::delete_groups(&*broker.backend, ctx.call(), r).await {
        Ok(response) => response,
        Err(e) => {
            let code = failed(ctx, &e);
            DeleteGroupsResponse::default().with_results(
                asked
                    .into_iter()
                    .map(|g| {
                        DeletableGroupResult::default()
                            .with_group_id(g)
                            .with_error_code(code)
                    })
                    .collect(),
            )
        }
    };
    response.results.extend(denied.into_iter().map(|g| {
        DeletableGroupResult::default()
            .with_group_id(g)
            .with_error_code(GROUP_DENIED)
    }));
    response
}
