//! DescribeCluster and FindCoordinator, in front of the backend: DescribeCluster is answered
//! to everyone (as Kafka does); Describe on each group or transactional id whose coordinator is asked for (a refused key
//! never reaches the backend).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::backend;
use crate::broker::Broker;

const KEY_TYPE_GROUP: i8 = 0;

/// Answered to every principal, as Kafka does: the brokers' addresses are what every client
/// needs to connect at all. Describe on the cluster only decides whether the cluster's
/// authorized operations are filled in when asked for; they are not computed here, so the
/// answer is Kafka's "not provided" either way.
pub async fn describe(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let asked_operations = req.include_cluster_authorized_operations;
    if asked_operations {
        Access::new(broker, ctx).cluster(Action::Describe);
    }
    backend::describe_cluster(&*broker.backend, ctx.call(), req)
        .await
        .map(|r| r.with_cluster_authorized_operations(i32::MIN))
        .unwrap_or_else(|e| {
            tracing::warn!(principal = %ctx.principal, "describe cluster failed: {e}");
            DescribeClusterResponse::default()
                .with_error_code(e.code().code())
                .with_error_message(Some(StrBytes::from_string(e.to_string())))
        })
}

pub async fn find_coordinator(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let access = Access::new(broker, ctx);
    // Describe on the group (or transactional id), as Kafka asks.
    let refusal = |key: &str| {
        if req.key_type == KEY_TYPE_GROUP {
            (!access.group(Action::Describe, key))
                .then_some(ResponseError::GroupAuthorizationFailed)
        } else {
            (!access.transactional_id(Action::Describe, key))
                .then_some(ResponseError::TransactionalIdAuthorizationFailed)
        }
    };
    let failed = |key: StrBytes, code: ResponseError| {
        Coordinator::default()
            .with_key(key)
            .with_error_code(code.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1)
    };
    if ctx.api_version >= 4 {
        let mut refused = Vec::new();
        let mut allowed = Vec::new();
        for key in std::mem::take(&mut req.coordinator_keys) {
            match refusal(&key) {
                Some(code) => refused.push(failed(key, code)),
                None => allowed.push(key),
            }
        }
        let mut response = if allowed.is_empty() {
            FindCoordinatorResponse::default()
        } else {
            let asked = allowed.clone();
            req.coordinator_keys = allowed;
            match backend::find_coordinator(&*broker.backend, ctx.call(), req).await {
                Ok(response) => response,
                Err(e) => {
                    tracing::warn!(principal = %ctx.principal, "find coordinator failed: {e}");
                    let code = e.group_code();
                    FindCoordinatorResponse::default()
                        .with_coordinators(asked.into_iter().map(|k| failed(k, code)).collect())
                }
            }
        };
        response.coordinators.extend(refused);
        return response;
    }
    let single = |code: ResponseError| {
        FindCoordinatorResponse::default()
            .with_error_code(code.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1)
    };
    if let Some(code) = refusal(&req.key) {
        return single(code);
    }
    backend::find_coordinator(&*broker.backend, ctx.call(), req)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(principal = %ctx.principal, "find coordinator failed: {e}");
            single(e.group_code())
        })
}
