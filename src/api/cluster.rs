//! DescribeCluster and FindCoordinator: this broker is the whole cluster and every coordinator.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::broker::Broker;

const KEY_TYPE_GROUP: i8 = 0;

pub fn describe(
    broker: &Broker,
    ctx: &RequestContext,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if !Access::new(broker, ctx).cluster(Action::Describe) {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "not authorized to describe the cluster",
            )));
    }
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.node_id))
            .with_host(StrBytes::from_string(ctx.advertised_host.clone()))
            .with_port(ctx.advertised_port)])
}

pub fn find_coordinator(
    broker: &Broker,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let host = StrBytes::from_string(ctx.advertised_host.clone());
    let node = BrokerId(broker.node_id);
    let access = Access::new(broker, ctx);
    // Describe on the group (or transactional id) first, as Kafka; transaction coordinators
    // are then not offered: transactions are not supported.
    let error_for = |key: &str| {
        if req.key_type == KEY_TYPE_GROUP {
            (!access.group(Action::Describe, key))
                .then_some(ResponseError::GroupAuthorizationFailed)
        } else if !access.transactional_id(Action::Describe, key) {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else {
            Some(ResponseError::CoordinatorNotAvailable)
        }
    };
    if ctx.api_version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let error = error_for(&key);
                let c = Coordinator::default().with_key(key);
                match error {
                    Some(e) => c
                        .with_error_code(e.code())
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                    None => c
                        .with_node_id(node)
                        .with_host(host.clone())
                        .with_port(ctx.advertised_port),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match error_for(&req.key) {
        Some(e) => FindCoordinatorResponse::default()
            .with_error_code(e.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1),
        None => FindCoordinatorResponse::default()
            .with_node_id(node)
            .with_host(host)
            .with_port(ctx.advertised_port),
    }
}
