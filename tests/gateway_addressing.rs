//! Gateway addressing end to end: real TLS handshakes routed by SNI name, and per-node ports
//! bound as upstream nodes appear. Over loopback, with real sockets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::eventually;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use palisade::gateway::addressing::{
    AddressMap, PortPerNodeSettings, PortRange, Route, SniDomain, SniNameError, SniSettings,
};
use palisade::gateway::node_ports::{
    NodePortError, NodePortEvent, NodePortListeners, RETRY_FAILED,
};
use palisade::gateway::rewrite;
use palisade::gateway::sni::{self, SniError};
use palisade::tls::{provider, DevCa};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// How long a step may take before the test gives up (a hang, not a slow machine).
const PATIENCE: Duration = Duration::from_secs(60);

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

// ---------------------------------------------------------------------------------------------
// SNI
// ---------------------------------------------------------------------------------------------

struct SniGateway {
    addr: SocketAddr,
    /// What the server side made of each connection, in order.
    outcomes: mpsc::UnboundedReceiver<Result<(Route, String), SniError>>,
    client: Arc<ClientConfig>,
}

/// A TLS port routed by SNI under `kafka.test`, with a `*.kafka.test` certificate from a CA
/// made here. Each accepted connection is told, over TLS, where it was routed.
async fn sni_gateway() -> SniGateway {
    let ca = DevCa::generate("gateway test ca").unwrap();
    let issued = ca.issue_server("gateway", &["*.kafka.test"]).unwrap();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let server = Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.cert_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client = Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let domain = Arc::new(
        SniDomain::new(&SniSettings {
            domain: "kafka.test".to_string(),
            advertised_port: 9093,
        })
        .unwrap(),
    );
    let listener = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, outcomes) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (domain, server, tx) = (domain.clone(), server.clone(), tx.clone());
            tokio::spawn(async move {
                match sni::accept(tcp, &domain, server).await {
                    Ok(mut conn) => {
                        let line = format!("{}\n", conn.route);
                        conn.stream.write_all(line.as_bytes()).await.unwrap();
                        conn.stream.flush().await.unwrap();
                        let _ = tx.send(Ok((conn.route, conn.server_name.clone())));
                        // Hold the connection until the client has read and left.
                        let mut rest = Vec::new();
                        let _ =
                            tokio::io::AsyncReadExt::read_to_end(&mut conn.stream, &mut rest).await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        }
    });
    SniGateway {
        addr,
        outcomes,
        client,
    }
}

impl SniGateway {
    /// Connects to the gateway's address with `name` as the server name; what the gateway
    /// said the connection reached, or the handshake error.
    async fn connect(&self, name: ServerName<'static>) -> Result<String, std::io::Error> {
        let tcp = TcpStream::connect(self.addr).await?;
        let connector = tokio_rustls::TlsConnector::from(self.client.clone());
        let stream = connector.connect(name, tcp).await?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await?;
        Ok(line.trim_end().to_string())
    }

    async fn outcome(&mut self) -> Result<(Route, String), SniError> {
        tokio::time::timeout(PATIENCE, self.outcomes.recv())
            .await
            .expect("the gateway decided nothing")
            .unwrap()
    }
}

fn dns(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_string()).unwrap()
}

fn alert_of(error: &std::io::Error) -> Option<AlertDescription> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

#[tokio::test]
async fn sni_names_route_each_connection_to_its_node() {
    let mut gw = sni_gateway().await;
    assert_eq!(
        gw.connect(dns("broker-2.kafka.test")).await.unwrap(),
        "node 2"
    );
    assert_eq!(
        gw.outcome().await.unwrap(),
        (Route::Node(2), "broker-2.kafka.test".to_string())
    );
    assert_eq!(
        gw.connect(dns("broker-1001.kafka.test")).await.unwrap(),
        "node 1001"
    );
    assert_eq!(gw.outcome().await.unwrap().0, Route::Node(1001));
    assert_eq!(
        gw.connect(dns("bootstrap.kafka.test")).await.unwrap(),
        "bootstrap"
    );
    assert_eq!(gw.outcome().await.unwrap().0, Route::Bootstrap);
    assert_eq!(
        gw.connect(dns("BROKER-7.Kafka.Test")).await.unwrap(),
        "node 7"
    );
    assert_eq!(gw.outcome().await.unwrap().0, Route::Node(7));
}

#[tokio::test]
async fn sni_names_outside_the_domain_are_refused_in_the_handshake() {
    let mut gw = sni_gateway().await;
    let err = gw.connect(dns("broker-2.other.test")).await.unwrap_err();
    assert_eq!(
        alert_of(&err),
        Some(AlertDescription::UnrecognisedName),
        "{err}"
    );
    assert!(matches!(
        gw.outcome().await,
        Err(SniError::Refused(SniNameError::OutsideDomain { .. }))
    ));
}

#[tokio::test]
async fn sni_names_that_name_no_node_are_refused_though_the_certificate_covers_them() {
    let mut gw = sni_gateway().await;
    // `*.kafka.test` covers these names: only the router refuses them.
    for name in [
        "broker-abc.kafka.test",
        "broker-01.kafka.test",
        "www.kafka.test",
    ] {
        let err = gw.connect(dns(name)).await.unwrap_err();
        assert_eq!(
            alert_of(&err),
            Some(AlertDescription::UnrecognisedName),
            "{name}: {err}"
        );
        assert!(
            matches!(
                gw.outcome().await,
                Err(SniError::Refused(SniNameError::NotABroker { .. }))
            ),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_connection_without_a_server_name_is_refused() {
    let mut gw = sni_gateway().await;
    // Clients send no SNI when they connect to an IP address.
    let err = gw
        .connect(ServerName::IpAddress(LOOPBACK.into()))
        .await
        .unwrap_err();
    assert_eq!(
        alert_of(&err),
        Some(AlertDescription::UnrecognisedName),
        "{err}"
    );
    assert!(matches!(
        gw.outcome().await,
        Err(SniError::Refused(SniNameError::Missing { .. }))
    ));
}

#[tokio::test]
async fn plaintext_on_the_sni_port_is_refused() {
    let mut gw = sni_gateway().await;
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    // The start of a Kafka ApiVersions request, not a TLS record.
    tcp.write_all(&[0, 0, 0, 20, 0, 18, 0, 3, 0, 0, 0, 1])
        .await
        .unwrap();
    assert!(matches!(gw.outcome().await, Err(SniError::ClientHello(_))));
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        PATIENCE,
        tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut rest),
    )
    .await
    .expect("the gateway kept the connection open");
    // Closed, at most after an alert: never a Kafka answer.
    assert!(
        read.is_err() || rest.first().is_none_or(|&b| b == 21),
        "{rest:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// A port per node
// ---------------------------------------------------------------------------------------------

/// The first of `count` consecutive loopback ports that are free right now.
fn free_ports(count: u16) -> u16 {
    for _ in 0..500 {
        let probe = std::net::TcpListener::bind((LOOPBACK, 0)).unwrap();
        let first = probe.local_addr().unwrap().port();
        drop(probe);
        if first.checked_add(count).is_none() {
            continue;
        }
        let held: Result<Vec<_>, _> = (first..first + count)
            .map(|port| std::net::TcpListener::bind((LOOPBACK, port)))
            .collect();
        if held.is_ok() {
            return first;
        }
    }
    panic!("no {count} consecutive free ports");
}

/// Nodes 1 to 4 on the four ports from `first`.
fn range(first: u16) -> Arc<PortRange> {
    Arc::new(
        PortRange::new(&PortPerNodeSettings {
            bootstrap_port: 1,
            first_port: first,
            last_port: first + 3,
            node_id_base: 1,
            advertised_host: "127.0.0.1".to_string(),
            advertised_first_port: None,
        })
        .unwrap(),
    )
}

async fn next(listeners: &mut NodePortListeners) -> NodePortEvent {
    tokio::time::timeout(PATIENCE, listeners.next())
        .await
        .expect("no event from the node listeners")
        .expect("the node listeners stopped")
}

/// Connects to `port` and returns the node id the gateway tagged the connection with.
async fn connect_and_tag(listeners: &mut NodePortListeners, port: u16) -> i32 {
    let client = TcpStream::connect((LOOPBACK, port)).await.unwrap();
    let local = client.local_addr().unwrap();
    match next(listeners).await {
        NodePortEvent::Accepted(conn) => {
            assert_eq!(conn.peer, local, "another connection was accepted");
            conn.node_id
        }
        other => panic!("expected a connection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_new_node_gets_its_port_and_connections_are_tagged_with_it() {
    let first = free_ports(4);
    let (nodes, watched) = watch::channel(BTreeMap::<i32, ()>::new());
    let mut listeners = NodePortListeners::start(range(first), LOOPBACK, watched);

    // Nothing is bound before the node is known.
    assert!(TcpStream::connect((LOOPBACK, first + 1)).await.is_err());

    nodes.send_replace(BTreeMap::from([(2, ())]));
    match next(&mut listeners).await {
        NodePortEvent::Bound { node_id, addr } => {
            assert_eq!((node_id, addr), (2, SocketAddr::new(LOOPBACK, first + 1)));
        }
        other => panic!("expected node 2 bound, got {other:?}"),
    }
    assert_eq!(connect_and_tag(&mut listeners, first + 1).await, 2);

    nodes.send_replace(BTreeMap::from([(2, ()), (4, ())]));
    match next(&mut listeners).await {
        NodePortEvent::Bound { node_id, addr } => {
            assert_eq!((node_id, addr.port()), (4, first + 3));
        }
        other => panic!("expected node 4 bound, got {other:?}"),
    }
    assert_eq!(connect_and_tag(&mut listeners, first + 3).await, 4);
    assert_eq!(connect_and_tag(&mut listeners, first + 1).await, 2);

    // Node 2 leaves Metadata (restarting): its port stays, still tagged with it.
    nodes.send_replace(BTreeMap::from([(4, ())]));
    assert_eq!(connect_and_tag(&mut listeners, first + 1).await, 2);

    // Dropping the listeners closes the ports.
    drop(listeners);
    let closed = eventually(PATIENCE, || async {
        TcpStream::connect((LOOPBACK, first + 3)).await.is_err()
    })
    .await;
    assert!(
        closed,
        "node 4's port still accepts after the listeners were dropped"
    );
}

#[tokio::test]
async fn a_port_in_use_is_reported_with_its_port_and_node_then_retried() {
    let first = free_ports(4);
    let taken = std::net::TcpListener::bind((LOOPBACK, first + 2)).unwrap();
    let (nodes, watched) = watch::channel(BTreeMap::<i32, ()>::new());
    let mut listeners = NodePortListeners::start(range(first), LOOPBACK, watched);

    nodes.send_replace(BTreeMap::from([(3, ())]));
    match next(&mut listeners).await {
        NodePortEvent::Failed(error) => {
            assert!(
                matches!(error, NodePortError::Bind { node_id: 3, .. }),
                "{error}"
            );
            let text = error.to_string();
            assert!(
                text.contains(&format!("port {}", first + 2)) && text.contains("node 3"),
                "{text}"
            );
        }
        other => panic!("expected a bind failure, got {other:?}"),
    }

    // The port frees up; the next change of the node set binds it.
    drop(taken);
    nodes.send_replace(BTreeMap::from([(3, ()), (1, ())]));
    let mut bound = Vec::new();
    while bound.len() < 2 {
        match next(&mut listeners).await {
            NodePortEvent::Bound { node_id, addr } => bound.push((node_id, addr.port())),
            other => panic!("expected bindings, got {other:?}"),
        }
    }
    bound.sort();
    assert_eq!(bound, vec![(1, first), (3, first + 2)]);
    assert_eq!(connect_and_tag(&mut listeners, first + 2).await, 3);
}

/// The node set does not change, yet the port is bound once it frees up: failures are retried
/// on a timer too (paused clock: the retry comes without waiting for it).
#[tokio::test(start_paused = true)]
async fn a_port_in_use_is_retried_after_a_while_without_a_change() {
    let first = free_ports(4);
    let taken = std::net::TcpListener::bind((LOOPBACK, first)).unwrap();
    let (nodes, watched) = watch::channel(BTreeMap::<i32, ()>::new());
    let mut listeners = NodePortListeners::start(range(first), LOOPBACK, watched);
    nodes.send_replace(BTreeMap::from([(1, ())]));
    match next(&mut listeners).await {
        NodePortEvent::Failed(error) => assert_eq!(error.node_id(), 1, "{error}"),
        other => panic!("expected a bind failure, got {other:?}"),
    }
    drop(taken);
    let before = tokio::time::Instant::now();
    match next(&mut listeners).await {
        NodePortEvent::Bound { node_id, addr } => {
            assert_eq!((node_id, addr.port()), (1, first));
        }
        other => panic!("expected node 1 bound, got {other:?}"),
    }
    assert!(before.elapsed() >= RETRY_FAILED, "retried before its time");
}

#[tokio::test]
async fn a_node_outside_the_range_is_reported_once() {
    let first = free_ports(4);
    let (nodes, watched) = watch::channel(BTreeMap::<i32, ()>::new());
    let mut listeners = NodePortListeners::start(range(first), LOOPBACK, watched);

    nodes.send_replace(BTreeMap::from([(9, ())]));
    match next(&mut listeners).await {
        NodePortEvent::Failed(error) => {
            assert_eq!(error.node_id(), 9);
            assert!(
                matches!(error, NodePortError::Unaddressable { .. }),
                "{error}"
            );
            assert!(error.to_string().contains("node ids 1..=4"), "{error}");
        }
        other => panic!("expected node 9 refused, got {other:?}"),
    }
    // The next change reports only what is new: node 1 bound, node 9 not again.
    nodes.send_replace(BTreeMap::from([(9, ()), (1, ())]));
    match next(&mut listeners).await {
        NodePortEvent::Bound { node_id, .. } => assert_eq!(node_id, 1),
        other => panic!("expected node 1 bound, got {other:?}"),
    }
    assert_eq!(connect_and_tag(&mut listeners, first).await, 1);
}

// ---------------------------------------------------------------------------------------------
// A real client follows the rewritten addresses
// ---------------------------------------------------------------------------------------------

/// The Metadata an upstream cluster of nodes 1, 2 and 3 would send: each leads one partition
/// of `orders`, at a host name that does not resolve here.
fn upstream_metadata() -> MetadataResponse {
    let brokers = (1..=3)
        .map(|n| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(n))
                .with_host(StrBytes::from_string(format!("upstream-{n}.invalid")))
                .with_port(9092)
        })
        .collect();
    let partitions = (0..3)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(p + 1))
                .with_replica_nodes(vec![BrokerId(p + 1)])
                .with_isr_nodes(vec![BrokerId(p + 1)])
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_static_str("upstream")))
        .with_controller_id(BrokerId(1))
        .with_topics(vec![MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("orders"))))
            .with_partitions(partitions)])
}

/// Answers ApiVersions and Metadata (the upstream's, rewritten through `map`) on one
/// connection, until the client leaves; other requests get no answer.
async fn serve_bootstrap(mut tcp: TcpStream, map: Arc<AddressMap>) {
    loop {
        let mut size = [0u8; 4];
        if tcp.read_exact(&mut size).await.is_err() {
            return;
        }
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        if tcp.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut body = Bytes::from(body);
        let key = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]])).unwrap();
        let version = i16::from_be_bytes([body[2], body[3]]);
        let header = RequestHeader::decode(&mut body, key.request_header_version(version)).unwrap();
        let mut out = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, key.response_header_version(version))
            .unwrap();
        match key {
            ApiKey::ApiVersions => {
                let ranges = [
                    (ApiKey::ApiVersions, 0, 3),
                    (ApiKey::Metadata, 0, 9),
                    (ApiKey::Produce, 3, 7),
                ];
                ApiVersionsResponse::default()
                    .with_api_keys(
                        ranges
                            .iter()
                            .map(|&(k, min, max)| {
                                ApiVersion::default()
                                    .with_api_key(k as i16)
                                    .with_min_version(min)
                                    .with_max_version(max)
                            })
                            .collect(),
                    )
                    .encode(&mut out, version.min(3))
                    .unwrap();
            }
            ApiKey::Metadata => {
                let mut response = upstream_metadata();
                let found = rewrite::metadata(&mut response, &map);
                assert!(found.unaddressable.is_empty());
                response.encode(&mut out, version).unwrap();
            }
            _ => continue,
        }
        let mut frame = (out.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&out);
        if tcp.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// librdkafka learns the cluster from rewritten Metadata and connects to each partition's
/// leader at that node's own gateway port: the upstream's host names (which do not resolve
/// here) never reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_reaches_each_leader_through_its_own_port() {
    let first = free_ports(4);
    let ports = range(first);
    let map = Arc::new(AddressMap::PortPerNode((*ports).clone()));
    let bootstrap = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let bootstrap_addr = bootstrap.local_addr().unwrap();
    {
        let map = map.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = bootstrap.accept().await.unwrap();
                tokio::spawn(serve_bootstrap(tcp, map.clone()));
            }
        });
    }
    let (nodes, watched) = watch::channel(BTreeMap::<i32, ()>::new());
    let mut listeners = NodePortListeners::start(ports, LOOPBACK, watched);
    nodes.send_replace(BTreeMap::from([(1, ()), (2, ()), (3, ())]));
    let mut bound = 0;
    while bound < 3 {
        match next(&mut listeners).await {
            NodePortEvent::Bound { .. } => bound += 1,
            other => panic!("expected bindings, got {other:?}"),
        }
    }

    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap_addr.to_string())
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    for partition in 0..3 {
        producer
            .send_result(
                FutureRecord::<(), str>::to("orders")
                    .partition(partition)
                    .payload("hello"),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let mut reached = std::collections::BTreeSet::new();
    let mut held = Vec::new();
    while reached.len() < 3 {
        match next(&mut listeners).await {
            NodePortEvent::Accepted(conn) => {
                reached.insert(conn.node_id);
                held.push(conn);
            }
            other => panic!("expected connections, got {other:?}"),
        }
    }
    assert_eq!(reached, std::collections::BTreeSet::from([1, 2, 3]));
    tokio::task::spawn_blocking(move || drop(producer))
        .await
        .unwrap();
}
