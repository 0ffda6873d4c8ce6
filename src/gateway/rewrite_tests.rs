#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch as FetchLeader, NodeEndpoint as FetchEndpoint,
    PartitionData,
};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch as ProduceLeader, NodeEndpoint as ProduceEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{ListOffsetsResponse, ShareFetchResponse, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, Message};

use super::*;
use crate::gateway::addressing::{PortPerNodeSettings, SniSettings};

/// Nodes 1, 2 and 3 on ports 9201..9203; node 4 and above have no port.
fn ports_map() -> AddressMap {
    AddressMap::port_per_node(&PortPerNodeSettings {
        bootstrap_port: 9092,
        first_port: 9201,
        last_port: 9203,
        node_id_base: 1,
        advertised_host: "gw.example.com".to_string(),
        advertised_first_port: None,
    })
    .unwrap()
}

fn sni_map() -> AddressMap {
    AddressMap::sni(&SniSettings {
        domain: "kafka.test".to_string(),
        advertised_port: 9093,
    })
    .unwrap()
}

/// Every upstream host in these tests contains this; no encoded answer may.
const UPSTREAM: &str = "upstream";

fn upstream_host(node: i32) -> StrBytes {
    StrBytes::from_string(format!("{UPSTREAM}-{node}.internal"))
}

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

/// Encodes at `version`, checks no upstream host is in the bytes, decodes back.
fn round_trip<T: Encodable + Decodable + Message>(message: &T, version: i16) -> T {
    let mut buf = BytesMut::new();
    message.encode(&mut buf, version).unwrap();
    let bytes: Bytes = buf.freeze();
    assert!(
        !bytes
            .windows(UPSTREAM.len())
            .any(|w| w == UPSTREAM.as_bytes()),
        "an upstream host reached the client at version {version}"
    );
    let mut read = bytes.clone();
    T::decode(&mut read, version).unwrap()
}

fn metadata_response(leaders: &[(i32, i32)], nodes: &[i32], controller: i32) -> MetadataResponse {
    let brokers = nodes
        .iter()
        .map(|&n| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(n))
                .with_host(upstream_host(n))
                .with_port(9092)
                .with_rack(Some(StrBytes::from_string(format!("rack-{n}"))))
        })
        .collect();
    let partitions = leaders
        .iter()
        .map(|&(index, leader)| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(7)
                .with_replica_nodes(nodes.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(nodes.iter().copied().map(BrokerId).collect())
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(s("cluster")))
        .with_controller_id(BrokerId(controller))
        .with_topics(vec![MetadataResponseTopic::default()
            .with_name(Some(TopicName(s("orders"))))
            .with_partitions(partitions)])
}

#[test]
fn metadata_lists_every_broker_at_its_own_address() {
    let mut response = metadata_response(&[(0, 1), (1, 2), (2, 3)], &[1, 2, 3], 2);
    let found = metadata(&mut response, &ports_map());
    assert!(found.unaddressable.is_empty());
    let max = MetadataResponse::VERSIONS.max;
    for version in 0..=max {
        let got = round_trip(&response, version);
        let brokers: Vec<(i32, &str, i32)> = got
            .brokers
            .iter()
            .map(|b| (b.node_id.0, b.host.as_str(), b.port))
            .collect();
        assert_eq!(
            brokers,
            vec![
                (1, "gw.example.com", 9201),
                (2, "gw.example.com", 9202),
                (3, "gw.example.com", 9203),
            ],
            "version {version}"
        );
        if version >= 1 {
            assert_eq!(got.controller_id, BrokerId(2), "version {version}");
            assert_eq!(got.brokers[0].rack.as_deref(), Some("rack-1"));
        }
        let leaders: Vec<(i32, i16)> = got.topics[0]
            .partitions
            .iter()
            .map(|p| (p.leader_id.0, p.error_code))
            .collect();
        assert_eq!(leaders, vec![(1, 0), (2, 0), (3, 0)], "version {version}");
    }
}

#[test]
fn metadata_with_sni_names_each_broker() {
    let mut response = metadata_response(&[(0, 3)], &[0, 3, 1000], 0);
    metadata(&mut response, &sni_map());
    let got = round_trip(&response, MetadataResponse::VERSIONS.max);
    let brokers: Vec<(&str, i32)> = got
        .brokers
        .iter()
        .map(|b| (b.host.as_str(), b.port))
        .collect();
    assert_eq!(
        brokers,
        vec![
            ("broker-0.kafka.test", 9093),
            ("broker-3.kafka.test", 9093),
            ("broker-1000.kafka.test", 9093),
        ]
    );
    assert_eq!(got.controller_id, BrokerId(0));
}

#[test]
fn metadata_reports_partitions_of_an_unaddressable_leader_as_unavailable() {
    let mut response = metadata_response(&[(0, 1), (1, 4), (2, -1)], &[1, 2, 4], 4);
    response.topics[0].partitions[2].error_code = ResponseError::LeaderNotAvailable.code();
    let found = metadata(&mut response, &ports_map());
    assert_eq!(found.unaddressable, BTreeSet::from([4]));
    let got = round_trip(&response, MetadataResponse::VERSIONS.max);
    let ids: Vec<i32> = got.brokers.iter().map(|b| b.node_id.0).collect();
    assert_eq!(
        ids,
        vec![1, 2],
        "node 4 is listed with no address of its own"
    );
    let partitions: Vec<(i32, i16)> = got.topics[0]
        .partitions
        .iter()
        .map(|p| (p.leader_id.0, p.error_code))
        .collect();
    let unavailable = ResponseError::LeaderNotAvailable.code();
    assert_eq!(
        partitions,
        vec![(1, 0), (-1, unavailable), (-1, unavailable)]
    );
    assert_eq!(got.controller_id, BrokerId(-1));
}

#[test]
fn metadata_keeps_an_error_the_upstream_gave() {
    let mut response = metadata_response(&[(0, 9)], &[1], 1);
    let fenced = ResponseError::FencedLeaderEpoch.code();
    response.topics[0].partitions[0].error_code = fenced;
    metadata(&mut response, &ports_map());
    assert_eq!(response.topics[0].partitions[0].error_code, fenced);
    assert_eq!(response.topics[0].partitions[0].leader_id, BrokerId(-1));
}

#[test]
fn find_coordinator_single_versions_rewrite_the_one_coordinator() {
    for version in 0..FIND_COORDINATOR_BATCHED {
        let mut response = FindCoordinatorResponse::default()
            .with_node_id(BrokerId(3))
            .with_host(upstream_host(3))
            .with_port(9092);
        let found = find_coordinator(&mut response, version, &ports_map());
        assert!(found.unaddressable.is_empty());
        let got = round_trip(&response, version);
        assert_eq!(
            (got.error_code, got.node_id.0, got.host.as_str(), got.port),
            (0, 3, "gw.example.com", 9203),
            "version {version}"
        );
    }
}

#[test]
fn find_coordinator_single_error_and_unaddressable_carry_no_address() {
    let mut error = FindCoordinatorResponse::default()
        .with_error_code(ResponseError::CoordinatorLoadInProgress.code())
        .with_node_id(BrokerId(1))
        .with_host(upstream_host(1))
        .with_port(9092);
    find_coordinator(&mut error, 3, &ports_map());
    let got = round_trip(&error, 3);
    assert_eq!(
        (got.error_code, got.node_id.0, got.host.as_str(), got.port),
        (ResponseError::CoordinatorLoadInProgress.code(), -1, "", -1)
    );

    let mut far = FindCoordinatorResponse::default()
        .with_node_id(BrokerId(50))
        .with_host(upstream_host(50))
        .with_port(9092);
    let found = find_coordinator(&mut far, 3, &ports_map());
    assert_eq!(found.unaddressable, BTreeSet::from([50]));
    let got = round_trip(&far, 3);
    assert_eq!(
        (got.error_code, got.node_id.0, got.host.as_str(), got.port),
        (ResponseError::CoordinatorNotAvailable.code(), -1, "", -1)
    );
    assert!(got.error_message.unwrap().contains("node 50"));
}

#[test]
fn find_coordinator_batched_versions_rewrite_every_coordinator() {
    let coordinator = |key: &'static str, node: i32| {
        Coordinator::default()
            .with_key(s(key))
            .with_node_id(BrokerId(node))
            .with_host(upstream_host(node))
            .with_port(9092)
    };
    let max = FindCoordinatorResponse::VERSIONS.max;
    for version in FIND_COORDINATOR_BATCHED..=max {
        let mut response = FindCoordinatorResponse::default().with_coordinators(vec![
            coordinator("group-a", 1),
            coordinator("group-b", 3),
            coordinator("group-c", 77),
            coordinator("group-d", 2).with_error_code(ResponseError::NotCoordinator.code()),
        ]);
        let found = find_coordinator(&mut response, version, &ports_map());
        assert_eq!(found.unaddressable, BTreeSet::from([77]));
        let got = round_trip(&response, version);
        let entries: Vec<(&str, i16, i32, &str, i32)> = got
            .coordinators
            .iter()
            .map(|c| {
                (
                    c.key.as_str(),
                    c.error_code,
                    c.node_id.0,
                    c.host.as_str(),
                    c.port,
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("group-a", 0, 1, "gw.example.com", 9201),
                ("group-b", 0, 3, "gw.example.com", 9203),
                (
                    "group-c",
                    ResponseError::CoordinatorNotAvailable.code(),
                    -1,
                    "",
                    -1
                ),
                ("group-d", ResponseError::NotCoordinator.code(), -1, "", -1),
            ],
            "version {version}"
        );
    }
}

fn describe_cluster_response(nodes: &[i32], controller: i32) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_cluster_id(s("cluster"))
        .with_controller_id(BrokerId(controller))
        .with_brokers(
            nodes
                .iter()
                .map(|&n| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(n))
                        .with_host(upstream_host(n))
                        .with_port(9092)
                })
                .collect(),
        )
}

#[test]
fn describe_cluster_lists_every_broker_at_its_own_address() {
    let mut response = describe_cluster_response(&[1, 2, 3, 9], 9);
    let found = describe_cluster(&mut response, &ports_map());
    assert_eq!(found.unaddressable, BTreeSet::from([9]));
    for version in 0..=DescribeClusterResponse::VERSIONS.max {
        let got = round_trip(&response, version);
        let brokers: Vec<(i32, &str, i32)> = got
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.host.as_str(), b.port))
            .collect();
        assert_eq!(
            brokers,
            vec![
                (1, "gw.example.com", 9201),
                (2, "gw.example.com", 9202),
                (3, "gw.example.com", 9203),
            ],
            "version {version}"
        );
        assert_eq!(got.controller_id, BrokerId(-1));
    }
}

#[test]
fn describe_cluster_of_controllers_is_refused() {
    let mut response = describe_cluster_response(&[1, 2], 1).with_endpoint_type(2);
    describe_cluster(&mut response, &ports_map());
    let got = round_trip(&response, DescribeClusterResponse::VERSIONS.max);
    assert_eq!(
        got.error_code,
        ResponseError::UnsupportedEndpointType.code()
    );
    assert!(got.brokers.is_empty());
    assert_eq!(got.controller_id, BrokerId(-1));
}

#[test]
fn produce_node_endpoints_and_leader_hints_are_rewritten() {
    let endpoint = |n: i32| {
        ProduceEndpoint::default()
            .with_node_id(BrokerId(n))
            .with_host(upstream_host(n))
            .with_port(9092)
            .with_rack(Some(s("rack")))
    };
    let partition = |index: i32, leader: i32| {
        PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_current_leader(
                ProduceLeader::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(5),
            )
    };
    let mut response = ProduceResponse::default()
        .with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(s("orders")))
            .with_partition_responses(vec![partition(0, 2), partition(1, 8)])])
        .with_node_endpoints(vec![endpoint(2), endpoint(8)]);
    let found = produce(&mut response, &ports_map());
    assert_eq!(found.unaddressable, BTreeSet::from([8]));
    let got = round_trip(&response, ProduceResponse::VERSIONS.max);
    let endpoints: Vec<(i32, &str, i32)> = got
        .node_endpoints
        .iter()
        .map(|e| (e.node_id.0, e.host.as_str(), e.port))
        .collect();
    assert_eq!(endpoints, vec![(2, "gw.example.com", 9202)]);
    let hints: Vec<(i32, i32)> = got.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.current_leader.leader_id.0, p.current_leader.leader_epoch))
        .collect();
    assert_eq!(hints, vec![(2, 5), (-1, -1)]);
}

#[test]
fn fetch_node_endpoints_leader_hints_and_read_replicas_are_rewritten() {
    let endpoint = |n: i32| {
        FetchEndpoint::default()
            .with_node_id(BrokerId(n))
            .with_host(upstream_host(n))
            .with_port(9092)
    };
    let partition = |index: i32, leader: i32, replica: i32| {
        PartitionData::default()
            .with_partition_index(index)
            .with_current_leader(
                FetchLeader::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(5),
            )
            .with_preferred_read_replica(BrokerId(replica))
    };
    let mut response = FetchResponse::default()
        .with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(s("orders")))
            .with_partitions(vec![
                partition(0, 1, 3),
                partition(1, 6, 7),
                partition(2, -1, -1),
            ])])
        .with_node_endpoints(vec![endpoint(1), endpoint(3), endpoint(6)]);
    let found = fetch(&mut response.clone(), &sni_map());
    assert!(found.unaddressable.is_empty(), "SNI addresses every node");
    let found = fetch(&mut response, &ports_map());
    assert_eq!(found.unaddressable, BTreeSet::from([6, 7]));
    let got = round_trip(&response, FetchResponse::VERSIONS.max);
    let endpoints: Vec<(i32, &str, i32)> = got
        .node_endpoints
        .iter()
        .map(|e| (e.node_id.0, e.host.as_str(), e.port))
        .collect();
    assert_eq!(
        endpoints,
        vec![(1, "gw.example.com", 9201), (3, "gw.example.com", 9203)]
    );
    let partitions: Vec<(i32, i32, i32)> = got.responses[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.current_leader.leader_id.0,
                p.current_leader.leader_epoch,
                p.preferred_read_replica.0,
            )
        })
        .collect();
    assert_eq!(partitions, vec![(1, 5, 3), (-1, -1, -1), (-1, 5, -1)]);
}

#[test]
fn the_dispatcher_rewrites_known_apis_and_refuses_unknown_address_carriers() {
    let map = ports_map();
    let mut kind = ResponseKind::Metadata(metadata_response(&[(0, 1)], &[1], 1));
    response(&mut kind, 12, &map).unwrap();
    let ResponseKind::Metadata(rewritten) = &kind else {
        panic!("kind changed")
    };
    assert_eq!(rewritten.brokers[0].host.as_str(), "gw.example.com");

    let mut share = ResponseKind::ShareFetch(ShareFetchResponse::default());
    assert_eq!(
        response(&mut share, 1, &map),
        Err(RewriteError::NotRewritable {
            api: ApiKey::ShareFetch
        })
    );
    assert_eq!(
        response(&mut kind, 14, &map),
        Err(RewriteError::VersionTooNew {
            api: ApiKey::Metadata,
            version: 14,
            max: 13
        })
    );
    let mut plain = ResponseKind::ListOffsets(ListOffsetsResponse::default());
    assert_eq!(response(&mut plain, 8, &map), Ok(Rewritten::default()));
}

#[test]
fn the_rewritten_versions_are_the_crates_newest() {
    for &(key, max) in REWRITTEN {
        assert_eq!(
            key.valid_versions().max,
            max,
            "{key:?}: kafka-protocol now knows a newer version; review its response for new \
             address fields, then update REWRITTEN"
        );
    }
}

/// Every response type of the protocol crate with a `host` field is either rewritten, refused,
/// or an ACL (whose `host` is a client host pattern, not a broker address).
#[test]
fn every_response_with_a_host_field_is_accounted_for() {
    let acl_apis = [ApiKey::DescribeAcls, ApiKey::DeleteAcls];
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor/kafka-protocol/src/messages");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        let Some(stem) = file.strip_suffix("_response.rs") else {
            continue;
        };
        let source = std::fs::read_to_string(&path).unwrap();
        if !source.contains("pub host: StrBytes") {
            continue;
        }
        seen += 1;
        let camel: String = stem
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next().unwrap().to_ascii_uppercase().to_string() + c.as_str()
            })
            .collect();
        let key = ApiKey::iter()
            .find(|k| format!("{k:?}") == camel)
            .unwrap_or_else(|| panic!("no ApiKey for {file}"));
        let known = REWRITTEN.iter().any(|(k, _)| *k == key)
            || NOT_REWRITTEN.contains(&key)
            || acl_apis.contains(&key);
        assert!(
            known,
            "{key:?} responses carry a host the rewriter does not know"
        );
    }
    assert!(
        seen >= 10,
        "only {seen} response types with a host field found"
    );
}

#[test]
fn capped_versions_are_the_last_without_node_endpoints() {
    let with_endpoint =
        ProduceResponse::default().with_node_endpoints(vec![ProduceEndpoint::default()
            .with_node_id(BrokerId(1))
            .with_host(s("x"))]);
    let encoded = |r: &ProduceResponse, v| {
        let mut buf = BytesMut::new();
        r.encode(&mut buf, v).unwrap();
        buf
    };
    let caps = version_caps(NodeEndpoints::CapBelow);
    let produce_cap = caps.iter().find(|(k, _)| *k == ApiKey::Produce).unwrap().1;
    let empty = ProduceResponse::default();
    assert_eq!(
        encoded(&with_endpoint, produce_cap),
        encoded(&empty, produce_cap)
    );
    assert_ne!(
        encoded(&with_endpoint, produce_cap + 1),
        encoded(&empty, produce_cap + 1)
    );

    let fetch_with = FetchResponse::default().with_node_endpoints(vec![FetchEndpoint::default()
        .with_node_id(BrokerId(1))
        .with_host(s("x"))]);
    let fetch_cap = caps.iter().find(|(k, _)| *k == ApiKey::Fetch).unwrap().1;
    let fetch_encoded = |r: &FetchResponse, v| {
        let mut buf = BytesMut::new();
        r.encode(&mut buf, v).unwrap();
        buf
    };
    let fetch_empty = FetchResponse::default();
    assert_eq!(
        fetch_encoded(&fetch_with, fetch_cap),
        fetch_encoded(&fetch_empty, fetch_cap)
    );
    assert_ne!(
        fetch_encoded(&fetch_with, fetch_cap + 1),
        fetch_encoded(&fetch_empty, fetch_cap + 1)
    );

    let full = version_caps(NodeEndpoints::Rewrite);
    assert_eq!(full, REWRITTEN.to_vec());
    assert!(caps.contains(&(ApiKey::Metadata, 13)));
}

#[test]
fn unaddressable_nodes_are_warned_about_once() {
    let map = ports_map();
    let warnings = UnaddressableWarnings::default();
    let found = Rewritten {
        unaddressable: BTreeSet::from([7, 8]),
    };
    assert_eq!(warnings.note(&found, &map), 2);
    assert_eq!(warnings.note(&found, &map), 0);
    let more = Rewritten {
        unaddressable: BTreeSet::from([8, 9]),
    };
    assert_eq!(warnings.note(&more, &map), 1);
}
