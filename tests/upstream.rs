//! The gateway's upstream client against real brokers: an in-process Palisade broker (PLAINTEXT
//! and SASL_SSL with SCRAM), a second one whose certificate names another host, and a scripted
//! Metadata server for node maps a single broker cannot produce. Also `palisade config check`
//! on a gateway config, through the real binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataRequest, MetadataResponse, RequestHeader,
    RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use palisade::broker::Running;
use palisade::config::Config;
use palisade::sasl::Mechanism;
use palisade::tls::generate_dev_pki;
use palisade::upstream::frame::FrameError;
use palisade::upstream::{
    ClientMechanism, ConnectOptions, Connection, Credential, Secret, UpstreamCluster,
    UpstreamError, UpstreamTls,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PLAINTEXT: usize = 0;
const SASL_SSL: usize = 1;
const SSL: usize = 2;
const USER: &str = "svc";
const PASSWORD: &str = "svc-password-123";

/// A Palisade broker from the dev default (PLAINTEXT, SASL_SSL, SSL on ephemeral ports) with
/// the user `svc`, and its CA.
struct Upstream {
    running: Running,
    ca: PathBuf,
    /// Certificate and key of the client `gateway` (CN=gateway), issued by the same CA.
    client: (PathBuf, PathBuf),
    _dir: tempfile::TempDir,
}

impl Upstream {
    /// `server_names`: the names the broker's certificate is issued for (the dev PKI's
    /// localhost/127.0.0.1 when empty).
    async fn start(server_names: &[&str]) -> Upstream {
        Self::start_with(server_names, &[]).await
    }

    /// [`Upstream::start`] with replacements in the config text.
    async fn start_with(server_names: &[&str], extra: &[(&str, &str)]) -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let pki = generate_dev_pki(&certs, &["gateway".to_string()], false).unwrap();
        if let Some(first) = server_names.first() {
            let issued = pki.ca.issue_server(first, server_names).unwrap();
            std::fs::write(
                &pki.server_cert,
                format!("{}{}", issued.cert_pem, pki.ca.cert_pem()),
            )
            .unwrap();
            std::fs::write(&pki.server_key, issued.key_pem).unwrap();
        }
        let text = common::secure_config_text(dir.path(), &certs, extra);
        let running = Running::start(Config::parse(&text, Path::new("<upstream>")).unwrap())
            .await
            .unwrap();
        running
            .broker
            .credentials
            .update(|s| s.add_user(USER, &Mechanism::ALL, 4096, PASSWORD.as_bytes()))
            .unwrap();
        running
            .broker
            .credentials
            .update(|s| s.add_user("alice", &Mechanism::ALL, 4096, b"alice-password-1"))
            .unwrap();
        Upstream {
            running,
            client: (pki.clients[0].cert.clone(), pki.clients[0].key.clone()),
            ca: pki.ca_cert,
            _dir: dir,
        }
    }

    fn address(&self, listener: usize) -> String {
        self.running.addresses[listener].to_string()
    }

    fn port(&self, listener: usize) -> u16 {
        self.running.addresses[listener].port()
    }
}

fn tls_options(ca: &Path, verify_hostname: bool) -> ConnectOptions {
    let settings = UpstreamTls {
        enabled: true,
        ca_file: Some(ca.to_path_buf()),
        verify_hostname,
        cert_file: None,
        key_file: None,
    };
    ConnectOptions {
        tls: Some(palisade::upstream::tls::client_config(&settings).unwrap()),
        ..ConnectOptions::plaintext()
    }
}

fn with_login(
    mut options: ConnectOptions,
    mechanism: ClientMechanism,
    password: &str,
) -> ConnectOptions {
    options.credential = Some(Arc::new(Credential {
        mechanism,
        username: USER.into(),
        password: Secret::new(password),
    }));
    options
}

/// Metadata v12 for no topics through `conn`; the broker ids it names.
async fn broker_ids(conn: &Connection) -> Vec<i32> {
    let request = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![])));
    match conn.call(12, Some("test"), &request).await.unwrap() {
        ResponseKind::Metadata(m) => m.brokers.iter().map(|b| b.node_id.0).collect(),
        other => panic!("{other:?}"),
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_connect_learns_versions_and_the_node_map() {
    let upstream = Upstream::start(&[]).await;
    let conn = Connection::connect(&upstream.address(PLAINTEXT), &ConnectOptions::plaintext())
        .await
        .unwrap();
    assert!(conn.versions().supports(ApiKey::Metadata, 12));
    assert!(conn.versions().supports(ApiKey::Produce, 9));
    assert_eq!(broker_ids(&conn).await, vec![0]);

    let cluster = UpstreamCluster::new(
        vec![upstream.address(PLAINTEXT)],
        ConnectOptions::plaintext(),
        Duration::from_secs(30),
    );
    let map = cluster.refresh().await.unwrap();
    assert_eq!(map.cluster_id.as_deref(), Some("palisade-dev-cluster"));
    let node = &map.nodes[&0];
    assert_eq!(node.address(), upstream.address(PLAINTEXT));
    let conn = cluster.connection(0).await.unwrap();
    assert_eq!(broker_ids(&conn).await, vec![0]);
    // The same connection serves the next caller.
    assert!(Arc::ptr_eq(&conn, &cluster.connection(0).await.unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_every_sasl_mechanism_log_in_and_serve_requests() {
    let upstream = Upstream::start(&[]).await;
    for host in ["127.0.0.1", "localhost"] {
        for mechanism in [
            ClientMechanism::ScramSha512,
            ClientMechanism::ScramSha256,
            ClientMechanism::Plain,
        ] {
            let options = with_login(tls_options(&upstream.ca, true), mechanism, PASSWORD);
            let address = format!("{host}:{}", upstream.port(SASL_SSL));
            let conn = Connection::connect(&address, &options)
                .await
                .unwrap_or_else(|e| panic!("{mechanism} to {address}: {e}"));
            assert_eq!(broker_ids(&conn).await, vec![0], "{mechanism}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_with_the_upstreams_message() {
    let upstream = Upstream::start(&[]).await;
    let options = with_login(
        tls_options(&upstream.ca, true),
        ClientMechanism::ScramSha512,
        "not-the-password",
    );
    let err = Connection::connect(&upstream.address(SASL_SSL), &options)
        .await
        .unwrap_err();
    match &err {
        UpstreamError::SaslRefused {
            username,
            code,
            message,
            ..
        } => {
            assert_eq!((username.as_str(), *code), (USER, 58));
            assert!(message.contains("authentication failed"), "{message}");
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(text.contains(&upstream.address(SASL_SSL)), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
    assert!(!err.is_retriable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_with_its_own_credential_gets_its_own_connection() {
    let upstream = Upstream::start(&[]).await;
    let options = with_login(
        tls_options(&upstream.ca, true),
        ClientMechanism::ScramSha512,
        PASSWORD,
    );
    let cluster = UpstreamCluster::new(
        vec![upstream.address(SASL_SSL)],
        options,
        Duration::from_secs(30),
    );
    cluster.refresh().await.unwrap();
    let service = cluster.connection(0).await.unwrap();
    let alice = |password: &str| {
        Arc::new(Credential {
            mechanism: ClientMechanism::ScramSha256,
            username: "alice".into(),
            password: Secret::new(password),
        })
    };
    let own = cluster
        .connection_as(0, Some(&alice("alice-password-1")))
        .await
        .unwrap();
    assert!(!Arc::ptr_eq(&service, &own));
    assert_eq!(broker_ids(&own).await, vec![0]);
    // The credential really is alice's: with her wrong password the upstream refuses her.
    let err = cluster
        .connection_as(0, Some(&alice("wrong-password-1")))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("sasl login as `alice` refused"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_retired_before_its_sasl_session_expires() {
    let upstream = Upstream::start_with(
        &[],
        &[(
            "session_lifetime_ms = 3600000",
            "session_lifetime_ms = 1000",
        )],
    )
    .await;
    let options = with_login(
        tls_options(&upstream.ca, true),
        ClientMechanism::ScramSha512,
        PASSWORD,
    );
    let cluster = UpstreamCluster::new(
        vec![upstream.address(SASL_SSL)],
        options,
        Duration::from_secs(30),
    );
    cluster.refresh().await.unwrap();
    let first = cluster.connection(0).await.unwrap();
    assert!(first.is_usable());
    assert!(
        common::eventually(Duration::from_secs(30), || {
            let first = Arc::clone(&first);
            async move { !first.is_usable() }
        })
        .await,
        "still usable after its session lifetime"
    );
    // The next caller gets a fresh, logged-in connection.
    let second = cluster.connection(0).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &second) && second.is_usable());
    assert_eq!(broker_ids(&second).await, vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_presents_the_configured_client_certificate() {
    let upstream = Upstream::start(&[]).await;
    let address = upstream.address(SSL);
    // The SSL listener requires a client certificate: without one the upstream refuses.
    let without = Connection::connect(&address, &tls_options(&upstream.ca, true)).await;
    assert!(without.is_err(), "connected without a client certificate");
    let settings = UpstreamTls {
        enabled: true,
        ca_file: Some(upstream.ca.clone()),
        verify_hostname: true,
        cert_file: Some(upstream.client.0.clone()),
        key_file: Some(upstream.client.1.clone()),
    };
    let options = ConnectOptions {
        tls: Some(palisade::upstream::tls::client_config(&settings).unwrap()),
        ..ConnectOptions::plaintext()
    };
    let conn = Connection::connect(&address, &options).await.unwrap();
    assert_eq!(broker_ids(&conn).await, vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_or_from_another_ca_is_refused() {
    let upstream = Upstream::start(&["other.example"]).await;
    let address = upstream.address(SASL_SSL);
    let login = |options| with_login(options, ClientMechanism::ScramSha512, PASSWORD);
    let err = Connection::connect(&address, &login(tls_options(&upstream.ca, true)))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::TlsHandshake { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("certificate not valid for name \"127.0.0.1\""),
        "{err}"
    );
    // Host name verification off: the chain is still checked, so the same CA passes ...
    let conn = Connection::connect(&address, &login(tls_options(&upstream.ca, false)))
        .await
        .unwrap();
    assert_eq!(broker_ids(&conn).await, vec![0]);
    // ... and another CA does not.
    let other = tempfile::tempdir().unwrap();
    let other_pki = generate_dev_pki(other.path(), &[], false).unwrap();
    let err = Connection::connect(&address, &login(tls_options(&other_pki.ca_cert, false)))
        .await
        .unwrap_err();
    // (Both dev CAs have the same name: the signature is what fails.)
    assert!(matches!(err, UpstreamError::TlsHandshake { .. }), "{err}");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_size_limit_is_refused() {
    let upstream = Upstream::start(&[]).await;
    let options = ConnectOptions {
        max_response_bytes: 64,
        ..ConnectOptions::plaintext()
    };
    // Palisade's ApiVersions answer is a few hundred bytes.
    let err = Connection::connect(&upstream.address(PLAINTEXT), &options)
        .await
        .unwrap_err();
    match err {
        UpstreamError::Frame {
            source: FrameError::TooLarge { size, limit: 64 },
            ..
        } => assert!(size > 64),
        other => panic!("{other}"),
    }
}

/// A scripted upstream answering ApiVersions and Metadata; Metadata names the brokers in
/// `brokers` (node id, port on 127.0.0.1) at the time of the request.
struct FakeMetadata {
    address: SocketAddr,
    brokers: Arc<parking_lot::Mutex<Vec<(i32, u16)>>>,
}

impl FakeMetadata {
    async fn start(brokers: Vec<(i32, u16)>) -> FakeMetadata {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let brokers = Arc::new(parking_lot::Mutex::new(brokers));
        let shared = Arc::clone(&brokers);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_fake(stream, Arc::clone(&shared)));
            }
        });
        FakeMetadata { address, brokers }
    }
}

async fn serve_fake(
    mut stream: tokio::net::TcpStream,
    brokers: Arc<parking_lot::Mutex<Vec<(i32, u16)>>>,
) {
    loop {
        let Ok(size) = stream.read_i32().await else {
            return;
        };
        let mut frame = vec![0; size as usize];
        stream.read_exact(&mut frame).await.unwrap();
        let mut frame = Bytes::from(frame);
        let api = ApiKey::try_from(frame.clone().get_i16()).unwrap();
        let version = frame.clone().slice(2..).get_i16();
        let header =
            RequestHeader::decode(&mut frame, api.request_header_version(version)).unwrap();
        let mut out = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, api.response_header_version(version))
            .unwrap();
        match api {
            ApiKey::ApiVersions => ApiVersionsResponse::default()
                .with_api_keys(vec![
                    ApiVersion::default()
                        .with_api_key(ApiKey::ApiVersions as i16)
                        .with_max_version(3),
                    ApiVersion::default()
                        .with_api_key(ApiKey::Metadata as i16)
                        .with_max_version(12),
                ])
                .encode(&mut out, version)
                .unwrap(),
            ApiKey::Metadata => MetadataResponse::default()
                .with_cluster_id(Some(StrBytes::from_static_str("fake-cluster")))
                .with_controller_id(BrokerId(0))
                .with_brokers(
                    brokers
                        .lock()
                        .iter()
                        .map(|(id, port)| {
                            MetadataResponseBroker::default()
                                .with_node_id(BrokerId(*id))
                                .with_host(StrBytes::from_static_str("127.0.0.1"))
                                .with_port(i32::from(*port))
                        })
                        .collect(),
                )
                .encode(&mut out, version)
                .unwrap(),
            other => panic!("fake upstream got {other:?}"),
        }
        let mut sized = BytesMut::new();
        sized.put_i32(out.len() as i32);
        sized.put_slice(&out);
        stream.write_all(&sized).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_down_fails_clearly_while_another_serves() {
    let upstream = Upstream::start(&[]).await;
    let down = closed_port();
    let fake = FakeMetadata::start(vec![(0, upstream.port(PLAINTEXT)), (7, down)]).await;
    let cluster = UpstreamCluster::new(
        vec![fake.address.to_string()],
        ConnectOptions::plaintext(),
        Duration::from_secs(30),
    );
    let map = cluster.refresh().await.unwrap();
    assert_eq!(map.nodes.keys().copied().collect::<Vec<_>>(), vec![0, 7]);
    assert_eq!(map.cluster_id.as_deref(), Some("fake-cluster"));

    let err = cluster.connection(7).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Connect { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{down}")),
        "{err}"
    );
    assert!(err.is_retriable());
    // Within its backoff the node is not dialled again; the answer says when it will be.
    let again = cluster.connection(7).await.unwrap_err();
    assert!(
        matches!(again, UpstreamError::NodeUnavailable { node_id: 7, .. }),
        "{again}"
    );
    assert!(again.to_string().contains("connection failed"), "{again}");
    // The other node serves meanwhile.
    let conn = cluster.connection(0).await.unwrap();
    assert_eq!(broker_ids(&conn).await, vec![0]);
    assert!(matches!(
        cluster.connection(3).await,
        Err(UpstreamError::UnknownNode { node_id: 3 })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_appears_in_metadata_appears_in_the_map() {
    let fake = FakeMetadata::start(vec![(1, 19001)]).await;
    let cluster = Arc::new(UpstreamCluster::new(
        vec![fake.address.to_string()],
        ConnectOptions::plaintext(),
        Duration::from_secs(3600),
    ));
    let mut nodes = cluster.subscribe();
    cluster.refresh().await.unwrap();
    assert!(nodes.has_changed().unwrap());
    assert_eq!(
        nodes
            .borrow_and_update()
            .nodes
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![1]
    );
    // An unchanged map wakes nobody.
    cluster.refresh().await.unwrap();
    assert!(!nodes.has_changed().unwrap());

    // A new node, picked up by the refresher when asked (its schedule is an hour away).
    let _refresher = cluster.spawn_refresher();
    fake.brokers.lock().push((2, 19002));
    cluster.request_refresh();
    tokio::time::timeout(Duration::from_secs(30), nodes.changed())
        .await
        .expect("no refresh within 30 s")
        .unwrap();
    let map = nodes.borrow_and_update().clone();
    assert_eq!(map.nodes.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(map.nodes[&2].address(), "127.0.0.1:19002");
}

/// Runs `palisade config check FILE` in `dir`; (success, stdout, stderr).
async fn config_check(dir: &Path, file: &Path) -> (bool, String, String) {
    let (dir, file) = (dir.to_path_buf(), file.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["config", "check"])
            .arg(&file)
            .current_dir(&dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// A gateway config file: one loopback listener, the shipped policies, and `gateway`.
fn gateway_file(dir: &Path, gateway: &str) -> PathBuf {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let file = dir.join("gateway.toml");
    std::fs::write(
        &file,
        format!(
            "[[listeners]]\nbind = \"127.0.0.1:0\"\nprotocol = \"PLAINTEXT\"\n\n\
             [storage]\ndata_dir = {:?}\n\n[authorization]\npolicy_dir = {:?}\n\n{gateway}",
            dir.join("data"),
            policies,
        ),
    )
    .unwrap();
    file
}

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("upstream.password");
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_logs_in_and_reports_nodes_versions_and_transactions() {
    let upstream = Upstream::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = |password: &str| {
        format!(
            "[gateway]\nbootstrap_servers = [\"{}\"]\n\
             [gateway.tls]\nenabled = true\nca_file = {:?}\n\
             [gateway.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"{USER}\"\npassword_file = {:?}\n",
            upstream.address(SASL_SSL),
            upstream.ca,
            password_file(dir.path(), password),
        )
    };
    let file = gateway_file(dir.path(), &gateway(PASSWORD));
    let (ok, out, err) = config_check(dir.path(), &file).await;
    assert!(ok, "{out}{err}");
    for expected in [
        "upstream: cluster id palisade-dev-cluster, controller 0, 1 node(s), TLS, logged in as `svc` with SCRAM-SHA-512".to_string(),
        format!("  node 0 {} rack -: ok", upstream.address(SASL_SSL)),
        "  Produce: v3-v9 (palisade v3-v9)".to_string(),
        "  Metadata: v0-v12 (palisade v0-v12)".to_string(),
        // Listed with the gateway's transaction APIs, which a Palisade upstream lacks.
        "  EndTxn: not offered (palisade v0-v4)".to_string(),
        "transactions: not supported by the upstream (missing AddPartitionsToTxn".to_string(),
    ] {
        assert!(out.contains(&expected), "`{expected}` not in\n{out}");
    }
    assert!(out.contains(": ok"), "{out}");

    // A wrong password: the upstream's refusal, and a failing exit status.
    let file = gateway_file(dir.path(), &gateway("wrong-password-1"));
    let (ok, out, err) = config_check(dir.path(), &file).await;
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("sasl login as `svc` refused by the upstream")
            && err.contains("authentication failed"),
        "{err}"
    );
    assert!(!err.contains("wrong-password-1") && !out.contains("wrong-password-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_fails_clearly_against_a_closed_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let file = gateway_file(
        dir.path(),
        &format!(
            "[gateway]\nbootstrap_servers = [\"127.0.0.1:{port}\"]\nconnect_timeout_ms = 5000\n"
        ),
    );
    let (ok, out, err) = config_check(dir.path(), &file).await;
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains(&format!(
            "error: gateway: no upstream broker answered Metadata: upstream `127.0.0.1:{port}`: connection failed"
        )),
        "{err}"
    );
    assert!(!out.contains(": ok"), "{out}");
}
