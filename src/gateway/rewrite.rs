//! Every broker address in an upstream response, rewritten to the gateway's.
//!
//! A client must never learn an upstream broker's own address: it would connect to the cluster
//! directly, past every layer of the gateway. So every response that carries one passes
//! [`response`], which rewrites each address through the [`AddressMap`], each node to its own
//! address (never one node for the whole cluster).
//!
//! A node the map cannot address (a node id outside the port range) is not listed with its
//! upstream address, and not silently dropped either (a partition it leads would look led by
//! a broker the client cannot find). It is removed from broker lists, and every place that
//! names it as where to go becomes an explicit, retriable "not available": a partition it leads
//! reports `LEADER_NOT_AVAILABLE` with no leader, a coordinator on it
//! `COORDINATOR_NOT_AVAILABLE`, a KIP-951 leader hint on it "no hint". Clients retry and
//! refresh; none is routed to the wrong node. The ids are returned in [`Rewritten`] so the
//! caller can warn (once per node: [`UnaddressableWarnings`]); the configuration fix is a wider
//! port range.
//!
//! Errors in FindCoordinator entries carry no address at all (`-1`, `""`, `-1`, as Kafka itself
//! answers errors), so not even an error leaks an upstream host.
//!
//! Responses of APIs that carry addresses the rewriter does not handle ([`NOT_REWRITTEN`])
//! are refused, never passed through: [`crate::gateway::api_versions`] removes those APIs from
//! what the gateway advertises.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::fetch_response::NodeEndpoint as FetchNodeEndpoint;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::produce_response::NodeEndpoint as ProduceNodeEndpoint;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterResponse, FetchResponse, FindCoordinatorResponse,
    MetadataResponse, ProduceResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;

use super::addressing::{AddressMap, Advertised};

/// "No node" in Kafka's responses.
const NO_NODE: i32 = -1;
/// "No port" in Kafka's error answers.
const NO_PORT: i32 = -1;
/// "No epoch" in a KIP-951 leader hint.
const NO_EPOCH: i32 = -1;
/// DescribeCluster's endpoint type for controllers (KIP-919).
const ENDPOINT_TYPE_CONTROLLER: i8 = 2;
/// FindCoordinator's first version with the batched `coordinators` list (KIP-699).
const FIND_COORDINATOR_BATCHED: i16 = 4;
/// How many distinct unaddressable nodes [`UnaddressableWarnings`] remembers.
const MAX_WARNED_NODES: usize = 1024;

/// The APIs whose responses carry broker addresses and are rewritten, each with the highest
/// version the rewriter was written against. A newer `kafka-protocol` that raises one of these
/// versions may have added an address field: a test fails until this table is reviewed, and
/// ApiVersions never advertises above it.
pub const REWRITTEN: &[(ApiKey, i16)] = &[
    (ApiKey::Metadata, 13),
    (ApiKey::FindCoordinator, 6),
    (ApiKey::DescribeCluster, 2),
    (ApiKey::Produce, 13),
    (ApiKey::Fetch, 18),
];

/// The APIs whose responses carry broker addresses the rewriter does not handle (share groups,
/// KRaft quorum and controller APIs): never served by the gateway.
pub const NOT_REWRITTEN: &[ApiKey] = &[
    ApiKey::ShareFetch,
    ApiKey::ShareAcknowledge,
    ApiKey::DescribeQuorum,
    ApiKey::Vote,
    ApiKey::BeginQuorumEpoch,
    ApiKey::EndQuorumEpoch,
    ApiKey::FetchSnapshot,
    ApiKey::UpdateRaftVoter,
];

/// The highest versions of Produce and Fetch without KIP-951 `node_endpoints`: what the
/// gateway would cap them to if it could not rewrite those endpoints.
pub const BEFORE_NODE_ENDPOINTS: &[(ApiKey, i16)] = &[(ApiKey::Produce, 9), (ApiKey::Fetch, 15)];

/// Whether the KIP-951 node endpoints of Produce and Fetch are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeEndpoints {
    /// Rewritten like every other address ([`produce`], [`fetch`]): every version of
    /// [`REWRITTEN`] may be advertised.
    Rewrite,
    /// Not rewritten: Produce and Fetch are capped below the versions that carry them.
    CapBelow,
}

/// The highest version of each address-carrying API the gateway may advertise.
pub fn version_caps(node_endpoints: NodeEndpoints) -> Vec<(ApiKey, i16)> {
    REWRITTEN
        .iter()
        .map(|&(key, max)| {
            let capped = match node_endpoints {
                NodeEndpoints::Rewrite => None,
                NodeEndpoints::CapBelow => BEFORE_NODE_ENDPOINTS
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|&(_, cap)| cap),
            };
            (key, capped.unwrap_or(max).min(max))
        })
        .collect()
}

/// What a rewrite found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// Upstream node ids the map could not address, reported as unavailable to the client.
    pub unaddressable: BTreeSet<i32>,
}

/// A response the rewriter must not pass on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("{api:?} responses carry broker addresses the gateway does not rewrite")]
    NotRewritable { api: ApiKey },
    #[error("{api:?} v{version} is newer than the v{max} the gateway rewrites")]
    VersionTooNew { api: ApiKey, version: i16, max: i16 },
}

/// Rewrites every broker address in `response` (of API version `version`).
pub fn response(
    response: &mut ResponseKind,
    version: i16,
    map: &AddressMap,
) -> Result<Rewritten, RewriteError> {
    let rewritten = match response {
        ResponseKind::Metadata(_) => Some(ApiKey::Metadata),
        ResponseKind::FindCoordinator(_) => Some(ApiKey::FindCoordinator),
        ResponseKind::DescribeCluster(_) => Some(ApiKey::DescribeCluster),
        ResponseKind::Produce(_) => Some(ApiKey::Produce),
        ResponseKind::Fetch(_) => Some(ApiKey::Fetch),
        _ => None,
    };
    let max = rewritten.and_then(|api| REWRITTEN.iter().find(|(key, _)| *key == api));
    if let Some(&(api, max)) = max {
        if version > max {
            return Err(RewriteError::VersionTooNew { api, version, max });
        }
    }
    Ok(match response {
        ResponseKind::Metadata(r) => metadata(r, map),
        ResponseKind::FindCoordinator(r) => find_coordinator(r, version, map),
        ResponseKind::DescribeCluster(r) => describe_cluster(r, map),
        ResponseKind::Produce(r) => produce(r, map),
        ResponseKind::Fetch(r) => fetch(r, map),
        ResponseKind::ShareFetch(_) => return Err(not_rewritable(ApiKey::ShareFetch)),
        ResponseKind::ShareAcknowledge(_) => return Err(not_rewritable(ApiKey::ShareAcknowledge)),
        ResponseKind::DescribeQuorum(_) => return Err(not_rewritable(ApiKey::DescribeQuorum)),
        ResponseKind::Vote(_) => return Err(not_rewritable(ApiKey::Vote)),
        ResponseKind::BeginQuorumEpoch(_) => return Err(not_rewritable(ApiKey::BeginQuorumEpoch)),
        ResponseKind::EndQuorumEpoch(_) => return Err(not_rewritable(ApiKey::EndQuorumEpoch)),
        ResponseKind::FetchSnapshot(_) => return Err(not_rewritable(ApiKey::FetchSnapshot)),
        ResponseKind::UpdateRaftVoter(_) => return Err(not_rewritable(ApiKey::UpdateRaftVoter)),
        _ => Rewritten::default(),
    })
}

fn not_rewritable(api: ApiKey) -> RewriteError {
    RewriteError::NotRewritable { api }
}

/// Metadata: every broker with its own advertised address; partitions led by an unaddressable
/// node have no leader (`LEADER_NOT_AVAILABLE`); the controller id is kept if addressable.
pub fn metadata(response: &mut MetadataResponse, map: &AddressMap) -> Rewritten {
    let mut found = Rewritten::default();
    rewrite_list(&mut response.brokers, map, &mut found);
    for topic in &mut response.topics {
        for partition in &mut topic.partitions {
            if unaddressable(map, partition.leader_id, &mut found) {
                partition.leader_id = BrokerId(NO_NODE);
                if partition.error_code == 0 {
                    partition.error_code = ResponseError::LeaderNotAvailable.code();
                }
            }
        }
    }
    if unaddressable(map, response.controller_id, &mut found) {
        response.controller_id = BrokerId(NO_NODE);
    }
    found
}

/// FindCoordinator: the single coordinator (v0-v3) or each of the batched ones (v4+).
pub fn find_coordinator(
    response: &mut FindCoordinatorResponse,
    version: i16,
    map: &AddressMap,
) -> Rewritten {
    let mut found = Rewritten::default();
    if version < FIND_COORDINATOR_BATCHED {
        let at = Coordinator {
            error_code: &mut response.error_code,
            error_message: &mut response.error_message,
            node_id: &mut response.node_id,
            host: &mut response.host,
            port: &mut response.port,
        };
        at.rewrite(map, &mut found);
    } else {
        for entry in &mut response.coordinators {
            let at = Coordinator {
                error_code: &mut entry.error_code,
                error_message: &mut entry.error_message,
                node_id: &mut entry.node_id,
                host: &mut entry.host,
                port: &mut entry.port,
            };
            at.rewrite(map, &mut found);
        }
    }
    found
}

/// The address fields of one coordinator answer (the single and the batched shapes).
struct Coordinator<'a> {
    error_code: &'a mut i16,
    error_message: &'a mut Option<StrBytes>,
    node_id: &'a mut BrokerId,
    host: &'a mut StrBytes,
    port: &'a mut i32,
}

impl Coordinator<'_> {
    fn rewrite(self, map: &AddressMap, found: &mut Rewritten) {
        if *self.error_code == 0 {
            let node_id = self.node_id.0;
            match map.advertised(node_id) {
                Ok(address) => {
                    *self.host = StrBytes::from_string(address.host);
                    *self.port = i32::from(address.port);
                    return;
                }
                Err(_) => {
                    found.unaddressable.insert(node_id);
                    *self.error_code = ResponseError::CoordinatorNotAvailable.code();
                    *self.error_message = Some(StrBytes::from_string(format!(
                        "coordinator node {node_id} is not reachable through the gateway"
                    )));
                }
            }
        }
        *self.node_id = BrokerId(NO_NODE);
        *self.host = StrBytes::default();
        *self.port = NO_PORT;
    }
}

/// DescribeCluster: every broker with its own advertised address. Controllers (KIP-919
/// endpoint type 2) are not reachable through the gateway: that answer becomes
/// `UNSUPPORTED_ENDPOINT_TYPE` with no nodes.
pub fn describe_cluster(response: &mut DescribeClusterResponse, map: &AddressMap) -> Rewritten {
    let mut found = Rewritten::default();
    if response.endpoint_type == ENDPOINT_TYPE_CONTROLLER {
        response.brokers.clear();
        response.controller_id = BrokerId(NO_NODE);
        if response.error_code == 0 {
            response.error_code = ResponseError::UnsupportedEndpointType.code();
            response.error_message = Some(StrBytes::from_static_str(
                "controllers are not reachable through the gateway",
            ));
        }
        return found;
    }
    rewrite_list(&mut response.brokers, map, &mut found);
    if unaddressable(map, response.controller_id, &mut found) {
        response.controller_id = BrokerId(NO_NODE);
    }
    found
}

/// Produce: the KIP-951 node endpoints, and leader hints pointing at unaddressable nodes.
pub fn produce(response: &mut ProduceResponse, map: &AddressMap) -> Rewritten {
    let mut found = Rewritten::default();
    rewrite_list(&mut response.node_endpoints, map, &mut found);
    for topic in &mut response.responses {
        for partition in &mut topic.partition_responses {
            let hint = &mut partition.current_leader;
            if unaddressable(map, hint.leader_id, &mut found) {
                hint.leader_id = BrokerId(NO_NODE);
                hint.leader_epoch = NO_EPOCH;
            }
        }
    }
    found
}

/// Fetch: the KIP-951 node endpoints, leader hints and preferred read replicas pointing at
/// unaddressable nodes (the client then reads from the leader).
pub fn fetch(response: &mut FetchResponse, map: &AddressMap) -> Rewritten {
    let mut found = Rewritten::default();
    rewrite_list(&mut response.node_endpoints, map, &mut found);
    for topic in &mut response.responses {
        for partition in &mut topic.partitions {
            let hint = &mut partition.current_leader;
            if unaddressable(map, hint.leader_id, &mut found) {
                hint.leader_id = BrokerId(NO_NODE);
                hint.leader_epoch = NO_EPOCH;
            }
            if unaddressable(map, partition.preferred_read_replica, &mut found) {
                partition.preferred_read_replica = BrokerId(NO_NODE);
            }
        }
    }
    found
}

/// A listed broker: its id, and where it is reached.
trait BrokerAddress {
    fn node_id(&self) -> i32;
    fn set_address(&mut self, address: Advertised);
}

macro_rules! broker_address {
    ($type:ty, $id:ident) => {
        impl BrokerAddress for $type {
            fn node_id(&self) -> i32 {
                self.$id.0
            }
            fn set_address(&mut self, address: Advertised) {
                self.host = StrBytes::from_string(address.host);
                self.port = i32::from(address.port);
            }
        }
    };
}

broker_address!(MetadataResponseBroker, node_id);
broker_address!(DescribeClusterBroker, broker_id);
broker_address!(ProduceNodeEndpoint, node_id);
broker_address!(FetchNodeEndpoint, node_id);

/// Rewrites every broker of `list` to its advertised address; drops (and notes) those the map
/// cannot address.
fn rewrite_list<T: BrokerAddress>(list: &mut Vec<T>, map: &AddressMap, found: &mut Rewritten) {
    list.retain_mut(|broker| {
        let node_id = broker.node_id();
        match map.advertised(node_id) {
            Ok(address) => {
                broker.set_address(address);
                true
            }
            Err(_) => {
                found.unaddressable.insert(node_id);
                false
            }
        }
    });
}

/// Whether `node` names a real node (not "none") that the map cannot address; noted if so.
fn unaddressable(map: &AddressMap, node: BrokerId, found: &mut Rewritten) -> bool {
    let node_id = node.0;
    if node_id < 0 || map.check(node_id).is_ok() {
        return false;
    }
    found.unaddressable.insert(node_id);
    true
}

/// Warns once per unaddressable node, not once per response: Metadata is asked often.
#[derive(Debug, Default)]
pub struct UnaddressableWarnings {
    warned: Mutex<BTreeSet<i32>>,
}

impl UnaddressableWarnings {
    /// Logs the nodes of `rewritten` not warned about before; returns how many were new.
    pub fn note(&self, rewritten: &Rewritten, map: &AddressMap) -> usize {
        let mut warned = self.warned.lock();
        let mut new = 0;
        for &node_id in &rewritten.unaddressable {
            if warned.len() >= MAX_WARNED_NODES || !warned.insert(node_id) {
                continue;
            }
            new += 1;
            let reason = map
                .advertised(node_id)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            tracing::warn!(
                node_id,
                reason = %reason,
                "upstream node is not reachable through the gateway; clients see it as unavailable"
            );
        }
        new
    }
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
