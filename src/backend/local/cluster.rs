//! DescribeCluster and FindCoordinator on one node: it is the whole cluster and every group's
//! coordinator; it has no transaction coordinator (transactions are not supported locally).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Local;
use crate::backend::Call;

const KEY_TYPE_GROUP: i8 = 0;

pub(super) fn describe(
    local: &Local,
    call: Call<'_>,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(local.cluster_id.clone()))
        .with_controller_id(BrokerId(local.node_id))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(local.node_id))
            .with_host(StrBytes::from_string(call.advertised_host.to_string()))
            .with_port(call.advertised_port)])
}

pub(super) fn find_coordinator(
    local: &Local,
    call: Call<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let host = StrBytes::from_string(call.advertised_host.to_string());
    let node = BrokerId(local.node_id);
    let unavailable = req.key_type != KEY_TYPE_GROUP;
    if call.api_version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                if unavailable {
                    c.with_error_code(ResponseError::CoordinatorNotAvailable.code())
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                } else {
                    c.with_node_id(node)
                        .with_host(host.clone())
                        .with_port(call.advertised_port)
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    if unavailable {
        return FindCoordinatorResponse::default()
            .with_error_code(ResponseError::CoordinatorNotAvailable.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1);
    }
    FindCoordinatorResponse::default()
        .with_node_id(node)
        .with_host(host)
        .with_port(call.advertised_port)
}
