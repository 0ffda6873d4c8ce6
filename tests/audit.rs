//! The audit trail end to end: real clients (librdkafka, the raw protocol client, the real
//! `palisade` binary) trigger events; both sinks (the hash-chained file and the
//! `__palisade_audit` topic read back with a stock consumer) must hold them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use palisade::broker::Running;
use palisade::config::Config;
use palisade::sasl::Mechanism;
use palisade::tls::{generate_dev_pki, DevPki};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AUDIT_TOPIC: &str = "__palisade_audit";
const PLAINTEXT: usize = 0;
const SASL_SSL: usize = 1;
/// Every user's password; it must never reach the trail.
const PASSWORD: &str = "Audit-Pa55word-7Qx9";
const WRONG: &str = "Wrong-Pa55word-K3v8";
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

// ---------------------------------------------------------------------------------------------
// Fixture: dev PKI, the shipped policies (auditors group included) copied into a temp dir.
// ---------------------------------------------------------------------------------------------

struct Fixture {
    dir: tempfile::TempDir,
    pki: DevPki,
    policies: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let pki =
            generate_dev_pki(&dir.path().join("certs"), &["alice".to_string()], false).unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        for entry in std::fs::read_dir(&shipped).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, policies.join(path.file_name().unwrap())).unwrap();
            }
        }
        Fixture { dir, pki, policies }
    }

    fn config(&self, extra: &[(&str, &str)]) -> Config {
        let text = common::secure_config_text(self.dir.path(), &self.pki.dir, extra).replace(
            &common::allow_all_policy_dir(),
            &common::policy_dir_line(&self.policies),
        );
        Config::parse(&text, Path::new("<audit test>")).unwrap()
    }

    fn audit_dir(&self) -> PathBuf {
        self.dir.path().join("data").join("audit")
    }

    fn credentials(&self) -> PathBuf {
        self.dir.path().join("credentials.json")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

fn add_user(running: &Running, name: &str) {
    running
        .broker
        .credentials
        .update(|s| s.add_user(name, &Mechanism::ALL, 4096, PASSWORD.as_bytes()))
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Reading both sinks
// ---------------------------------------------------------------------------------------------

/// Every line of the audit files in `dir`, parsed, in order.
fn file_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn find<'a>(
    events: &'a [Value],
    event_type: &str,
    pred: impl Fn(&Value) -> bool,
) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["event_type"] == event_type && pred(e))
}

/// Waits until the file sink holds an event matching `pred`.
fn wait_in_file(dir: &Path, event_type: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = parse(&file_lines(dir));
        if let Some(e) = find(&events, event_type, &pred) {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no `{event_type}` event in the audit file; have:\n{}",
            events
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn client_config(bootstrap: &str, settings: &[(&str, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("socket.timeout.ms", "5000")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "500")
        .set("message.timeout.ms", "10000");
    for (k, v) in settings {
        c.set(*k, v);
    }
    c
}

fn sasl(ca: &Path, mechanism: &str, user: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "SASL_SSL".into()),
        ("sasl.mechanism", mechanism.into()),
        ("sasl.username", user.into()),
        ("sasl.password", password.into()),
        ("ssl.ca.location", ca.display().to_string()),
    ]
}

/// Reads the audit topic from the beginning with a stock consumer until `until` holds for the
/// values read (or 20 s pass). `Err` carries the first error the consumer reported.
fn read_audit_topic(
    bootstrap: &str,
    settings: &[(&'static str, String)],
    group: &str,
    timeout: Duration,
    until: impl Fn(&[String]) -> bool,
) -> Result<Vec<String>, KafkaError> {
    let mut settings = settings.to_vec();
    settings.push(("group.id", group.to_string()));
    let consumer: BaseConsumer = client_config(bootstrap, &settings).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(AUDIT_TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                values.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
            Some(Err(e)) => return Err(e),
            None if until(&values) => return Ok(values),
            None => {}
        }
    }
    Ok(values)
}

// ---------------------------------------------------------------------------------------------
// A raw Kafka client over TLS (SASL PLAIN login, re-authentication)
// ---------------------------------------------------------------------------------------------

struct TlsRaw {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    correlation: i32,
}

impl TlsRaw {
    async fn connect(addr: std::net::SocketAddr, ca: &Path) -> TlsRaw {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        TlsRaw {
            stream,
            correlation: 0,
        }
    }

    async fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Option<Resp> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("audit-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        self.stream.write_all(&frame).await.ok()?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await.ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        let mut buf = bytes::Bytes::from(buf);
        ResponseHeader::decode(&mut buf, key.response_header_version(version)).unwrap();
        let resp = Resp::decode(&mut buf, version).unwrap();
        assert_eq!(buf.remaining(), 0);
        Some(resp)
    }

    async fn plain_login(&mut self, user: &str, password: &str) -> SaslAuthenticateResponse {
        let hs: SaslHandshakeResponse = self
            .request(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            )
            .await
            .unwrap();
        assert_eq!(hs.error_code, 0);
        self.request(
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(format!("\0{user}\0{password}").into_bytes().into()),
        )
        .await
        .unwrap()
    }

    /// True once the broker closes the connection (within `within`).
    async fn closed_within(&mut self, within: Duration) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(within, self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Raw plaintext requests
// ---------------------------------------------------------------------------------------------

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn alter_config(raw: &mut common::Raw, topic: &str, key: &str, value: &str) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::*;
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ]);
    let resp: IncrementalAlterConfigsResponse =
        raw.request(ApiKey::IncrementalAlterConfigs, 1, &req).await;
    resp.responses[0].error_code
}

// =============================================================================================
// Every event type reaches both sinks
// =============================================================================================

#[test]
fn every_event_type_reaches_the_file_and_the_topic_and_only_auditors_read_it() {
    init_tracing();
    let fx = Fixture::new();
    let rt = runtime();
    let running = rt.block_on(async {
        Running::start(fx.config(&[
            (
                "session_lifetime_ms = 3600000",
                "session_lifetime_ms = 2500",
            ),
            (
                "data_operations = \"first-use\"",
                "data_operations = \"all\"",
            ),
        ]))
        .await
        .unwrap()
    });
    let audit = fx.audit_dir();
    let plaintext = running.addresses[PLAINTEXT];
    let sasl_addr = running.addresses[SASL_SSL];
    let bootstrap = sasl_addr.to_string();
    let ca = fx.pki.ca_cert.clone();

    // Policy generation loaded at start, with its hash.
    let loaded = wait_in_file(&audit, "policy_loaded", |_| true);
    assert_eq!(loaded["detail"]["sha256"].as_str().unwrap().len(), 64);

    // Users added through the store (the credential watcher diffs the store).
    for user in ["admin", "audrey", "alice"] {
        add_user(&running, user);
    }
    wait_in_file(&audit, "user_added", |e| e["resource"] == "user:audrey");

    // `palisade user add/remove` edits the file; the watcher notices and the trail says so.
    let bin = env!("CARGO_BIN_EXE_palisade");
    let store = fx.credentials().display().to_string();
    let mut add = Command::new(bin)
        .args([
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--store",
            &store,
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    }
    assert!(add.wait().unwrap().success());
    wait_in_file(&audit, "user_added", |e| {
        e["resource"] == "user:carol" && e["detail"]["source"] == "credential_store"
    });
    let removed = Command::new(bin)
        .args(["user", "remove", "carol", "--store", &store])
        .status()
        .unwrap();
    assert!(removed.success());
    wait_in_file(&audit, "user_removed", |e| e["resource"] == "user:carol");

    // A super user creates and later deletes a topic with a stock admin client.
    let admin_settings = sasl(&ca, "SCRAM-SHA-512", "admin", PASSWORD);
    let admin: AdminClient<DefaultClientContext> =
        client_config(&bootstrap, &admin_settings).create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let created = futures::executor::block_on(admin.create_topics(
        &[NewTopic::new("audited", 1, TopicReplication::Fixed(1))],
        &opts,
    ))
    .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let e = wait_in_file(&audit, "topic_created", |e| {
        e["resource"] == "topic:audited"
    });
    assert_eq!(e["principal"], "User:admin");
    assert_eq!(e["mechanism"], "SCRAM-SHA-512");
    wait_in_file(&audit, "authentication", |e| {
        e["principal"] == "User:admin" && e["result"] == "success"
    });
    // Super user decisions on administrative operations are audited as allows.
    wait_in_file(&audit, "authorization", |e| {
        e["principal"] == "User:admin" && e["operation"] == "Create" && e["result"] == "allow"
    });

    // Config change, ACLs and a SCRAM credential through the raw client (ANONYMOUS on the
    // loopback PLAINTEXT listener, which the shipped dev policy allows).
    rt.block_on(async {
        let mut raw = common::Raw::connect(plaintext).await;
        assert_eq!(alter_config(&mut raw, "audited", "retention.ms", "86400000").await, 0);

        use kafka_protocol::messages::create_acls_request::AclCreation;
        let creation = AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s("audited"))
            .with_resource_pattern_type(3)
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(3)
            .with_permission_type(3);
        let resp: CreateAclsResponse = raw
            .request(
                ApiKey::CreateAcls,
                2,
                &CreateAclsRequest::default().with_creations(vec![creation]),
            )
            .await;
        assert_eq!(resp.results[0].error_code, 0, "{:?}", resp.results[0].error_message);
        use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
        let filter = DeleteAclsFilter::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(s("audited")))
            .with_pattern_type_filter(3)
            .with_principal_filter(Some(s("User:alice")))
            .with_host_filter(Some(s("*")))
            .with_operation(3)
            .with_permission_type(3);
        let resp: DeleteAclsResponse = raw
            .request(
                ApiKey::DeleteAcls,
                2,
                &DeleteAclsRequest::default().with_filters(vec![filter]),
            )
            .await;
        assert_eq!(resp.filter_results[0].error_code, 0);

        use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
        let upsert = ScramCredentialUpsertion::default()
            .with_name(s("dave"))
            .with_mechanism(2)
            .with_iterations(4096)
            .with_salt(bytes::Bytes::from_static(b"0123456789abcdef"))
            .with_salted_password(bytes::Bytes::from(vec![7u8; 64]));
        let resp: AlterUserScramCredentialsResponse = raw
            .request(
                ApiKey::AlterUserScramCredentials,
                0,
                &AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert]),
            )
            .await;
        assert_eq!(resp.results[0].error_code, 0, "{:?}", resp.results[0].error_message);
    });
    let e = wait_in_file(&audit, "topic_config_changed", |e| {
        e["resource"] == "topic:audited"
    });
    assert_eq!(e["detail"]["changes"]["retention.ms"], "86400000");
    assert_eq!(e["principal"], "User:ANONYMOUS");
    wait_in_file(&audit, "acl_created", |e| {
        e["resource"]
            .as_str()
            .unwrap()
            .contains("principal=User:alice")
    });
    wait_in_file(&audit, "acl_deleted", |_| true);
    let e = wait_in_file(&audit, "user_credential_changed", |e| {
        e["resource"] == "user:dave" && e["principal"] == "User:ANONYMOUS"
    });
    assert_eq!(e["result"], "success");

    // A denied produce (alice's team may not write untagged topics): a real producer.
    let alice = sasl(&ca, "SCRAM-SHA-256", "alice", PASSWORD);
    let producer: FutureProducer = client_config(&bootstrap, &alice).create().unwrap();
    let sent = futures::executor::block_on(producer.send(
        FutureRecord::to("audited").key("k").payload("v"),
        Duration::from_secs(10),
    ));
    assert!(sent.is_err(), "alice may not write `audited`");
    // librdkafka asks Metadata first; the Describe is denied, so it never sends the Produce.
    let e = wait_in_file(&audit, "authorization", |e| {
        e["principal"] == "User:alice" && e["resource"] == "topic:audited" && e["result"] == "deny"
    });
    assert!(
        e["operation"] == "Describe" || e["operation"] == "Write",
        "{e}"
    );
    assert_eq!(e["reason"], "no policy permits it (default deny)");
    assert!(e["policy_generation"].as_u64().unwrap() >= 1);
    assert!(e["policy_ids"].is_array());
    assert_eq!(e["listener"], "SASL_SSL");
    drop(producer);

    // Wrong passwords, twice from one address: failures, then the throttle applies.
    for _ in 0..2 {
        let wrong = sasl(&ca, "SCRAM-SHA-256", "alice", WRONG);
        let c: BaseConsumer = client_config(&bootstrap, &wrong).create().unwrap();
        assert!(c.fetch_metadata(None, Duration::from_secs(3)).is_err());
    }
    let e = wait_in_file(&audit, "authentication", |e| e["result"] == "failure");
    assert_eq!(e["reason"], "authentication failed");
    wait_in_file(&audit, "login_throttled", |_| true);

    // Re-authentication, then a session that expires (raw TLS client, PLAIN).
    rt.block_on(async {
        let mut c = TlsRaw::connect(sasl_addr, &ca).await;
        assert_eq!(c.plain_login("alice", PASSWORD).await.error_code, 0);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(c.plain_login("alice", PASSWORD).await.error_code, 0);
        assert!(c.closed_within(Duration::from_secs(6)).await);
    });
    wait_in_file(&audit, "reauthentication", |e| {
        e["principal"] == "User:alice" && e["result"] == "success"
    });
    wait_in_file(&audit, "session_expired", |e| {
        e["principal"] == "User:alice"
    });

    // A broken policy file is refused (the last good generation keeps serving) ...
    let broken = fx.policies.join("99-broken.cedar");
    std::fs::write(
        &broken,
        "permit(principal, action, resource) when { oops };",
    )
    .unwrap();
    let e = wait_in_file(&audit, "policy_rejected", |_| true);
    assert_eq!(
        e["detail"]["sha256"].as_str().unwrap(),
        palisade::authz::load::content_digest(&fx.policies),
        "the hash of the refused content"
    );
    assert!(
        e["reason"].as_str().unwrap().contains("99-broken.cedar"),
        "{e}"
    );
    let rejected_seq = e["seq"].as_u64().unwrap();
    // ... and the repaired folder loads as a new generation, with the hash of what it holds.
    std::fs::remove_file(&broken).unwrap();
    let reloaded = wait_in_file(&audit, "policy_loaded", |e| {
        e["seq"].as_u64().unwrap() > rejected_seq
    });
    assert_ne!(reloaded["policy_generation"], loaded["policy_generation"]);
    assert_eq!(
        reloaded["detail"]["sha256"].as_str().unwrap(),
        palisade::authz::load::content_digest(&fx.policies)
    );

    // The admin deletes the topic.
    let deleted = futures::executor::block_on(admin.delete_topics(&["audited"], &opts)).unwrap();
    assert!(deleted[0].is_ok());
    wait_in_file(&audit, "topic_deleted", |e| {
        e["resource"] == "topic:audited"
    });
    drop(admin);

    // Certificates: a broken server certificate is refused, a new valid one is loaded.
    let good_cert = std::fs::read(&fx.pki.server_cert).unwrap();
    std::fs::write(&fx.pki.server_cert, "not a certificate").unwrap();
    wait_in_file(&audit, "certificate_rejected", |e| {
        e["listener"] == "SASL_SSL"
    });
    let other_dir = fx.dir.path().join("certs2");
    let other = generate_dev_pki(&other_dir, &[], false).unwrap();
    let tmp = fx.pki.dir.join("server.pem.tmp");
    std::fs::write(&tmp, std::fs::read(&other.server_cert).unwrap()).unwrap();
    std::fs::copy(&other.server_key, &fx.pki.server_key).unwrap();
    std::fs::rename(&tmp, &fx.pki.server_cert).unwrap();
    wait_in_file(&audit, "certificate_reloaded", |e| {
        e["listener"] == "SASL_SSL"
    });
    let ca = other.ca_cert.clone();
    assert_ne!(good_cert, std::fs::read(&fx.pki.server_cert).unwrap());

    // The auditor reads the trail with a stock consumer; it equals the file, line for line.
    let audrey = sasl(&ca, "SCRAM-SHA-512", "audrey", PASSWORD);
    let expected_types = [
        "authentication",
        "reauthentication",
        "session_expired",
        "authorization",
        "topic_created",
        "topic_deleted",
        "topic_config_changed",
        "acl_created",
        "acl_deleted",
        "user_added",
        "user_removed",
        "user_credential_changed",
        "policy_loaded",
        "policy_rejected",
        "certificate_reloaded",
        "certificate_rejected",
        "login_throttled",
    ];
    let file_now = file_lines(&audit);
    let topic = read_audit_topic(
        &bootstrap,
        &audrey,
        "audit-siem",
        Duration::from_secs(20),
        |values| values.len() >= file_now.len(),
    )
    .unwrap();
    assert!(
        topic.len() >= file_now.len(),
        "{} < {}",
        topic.len(),
        file_now.len()
    );
    assert_eq!(
        &topic[..file_now.len()],
        &file_now[..],
        "topic and file differ"
    );
    let topic_events = parse(&topic);
    let file_events = parse(&file_lines(&audit));
    for t in expected_types {
        assert!(
            find(&file_events, t, |_| true).is_some(),
            "`{t}` not in the file"
        );
        assert!(
            find(&topic_events, t, |_| true).is_some(),
            "`{t}` not in the topic"
        );
    }

    // A client the policies do not permit cannot read the audit topic.
    let alice = sasl(&ca, "SCRAM-SHA-256", "alice", PASSWORD);
    let denied = read_audit_topic(
        &bootstrap,
        &alice,
        "orders-peek",
        Duration::from_secs(6),
        |v| !v.is_empty(),
    );
    match denied {
        Err(e) => assert_eq!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::TopicAuthorizationFailed),
            "{e}"
        ),
        Ok(values) => assert!(
            values.is_empty(),
            "alice read {} audit events",
            values.len()
        ),
    }
    // The audit topic is not even described to her (Metadata leaves it out).
    let e = wait_in_file(&audit, "authorization", |e| {
        e["principal"] == "User:alice"
            && e["resource"] == "topic:__palisade_audit"
            && e["result"] == "deny"
    });
    assert_eq!(e["policy_ids"][0], "audit-topic-auditors-only", "{e}");

    // No secret anywhere in the trail.
    let everything = file_lines(&audit).join("\n");
    for secret in [PASSWORD, WRONG] {
        assert!(
            !everything.contains(secret),
            "a password reached the audit trail"
        );
    }

    rt.block_on(running.shutdown());
    // The trail of this whole run verifies with the real binary.
    let out = Command::new(bin)
        .args(["audit", "verify"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// =============================================================================================
// Tamper evidence: `palisade audit verify` on the real binary
// =============================================================================================

fn verify(paths: &[&Path]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["audit", "verify"])
        .args(paths)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    f(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn verify_detects_an_edited_a_deleted_and_a_swapped_line_across_rotation() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Small files so the trail rotates; events from real requests.
        let b = common::BackgroundBroker::start(
            dir.path(),
            &[("rotate_bytes = 104857600", "rotate_bytes = 4096")],
        );
        let addr = b.running.as_ref().unwrap().addresses[0];
        b.rt.block_on(async {
            let mut raw = common::Raw::connect(addr).await;
            for i in 0..40 {
                common::create_topic(&mut raw, &format!("t{i}"), 1, &[]).await;
            }
        });
    }
    let audit = dir.path().join("audit");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected rotation, got {files:?}");
    let (ok, out) = verify(&[&audit]);
    assert!(ok, "{out}");
    assert!(out.starts_with("ok:"), "{out}");

    // The files passed explicitly in the wrong order: detected at the first line out of place.
    let (ok, out) = verify(&[&files[1], &files[0]]);
    assert!(!ok, "{out}");

    let backup = tempfile::tempdir().unwrap();
    let keep = |p: &Path| backup.path().join(p.file_name().unwrap());
    for f in &files {
        std::fs::copy(f, keep(f)).unwrap();
    }
    let restore = || {
        for f in &files {
            std::fs::copy(keep(f), f).unwrap();
        }
    };
    let target = &files[1];
    let name = target.file_name().unwrap().to_str().unwrap().to_string();

    // One edited field of line 3 of the second file.
    rewrite(target, |l| {
        l[2] = l[2].replace("\"result\":\"", "\"result\":\"x")
    });
    let (ok, out) = verify(&[&audit]);
    assert!(!ok, "edit not detected");
    assert!(out.contains(&format!("{name}:3:")), "{out}");
    assert!(out.contains("altered"), "{out}");
    restore();

    // One deleted line.
    rewrite(target, |l| {
        l.remove(4);
    });
    let (ok, out) = verify(&[&audit]);
    assert!(!ok, "deletion not detected");
    assert!(out.contains(&format!("{name}:5:")), "{out}");
    restore();

    // Two lines swapped.
    rewrite(target, |l| l.swap(1, 2));
    let (ok, out) = verify(&[&audit]);
    assert!(!ok, "swap not detected");
    assert!(out.contains(&format!("{name}:2:")), "{out}");
    restore();

    // The first line of the trail removed.
    rewrite(&files[0], |l| {
        l.remove(0);
    });
    let (ok, out) = verify(&[&audit]);
    assert!(!ok, "removal of the first event not detected: {out}");
    restore();

    let (ok, out) = verify(&[&audit]);
    assert!(ok, "restored trail: {out}");
}

// =============================================================================================
// The audit topic is read-only for every client, super users included
// =============================================================================================

#[test]
fn no_client_not_even_a_super_user_can_write_delete_trim_or_reconfigure_the_audit_topic() {
    let dir = tempfile::tempdir().unwrap();
    // ANONYMOUS (the raw and librdkafka clients on PLAINTEXT) is a super user here.
    let b = common::BackgroundBroker::start(
        dir.path(),
        &[(
            "super_users = [\"admin\"]",
            "super_users = [\"admin\", \"ANONYMOUS\"]",
        )],
    );
    let addr = b.running.as_ref().unwrap().addresses[0];
    let bootstrap = addr.to_string();
    let broker = b.running.as_ref().unwrap().broker.clone();
    let topic = broker
        .logs
        .topic(AUDIT_TOPIC)
        .expect("audit topic created at start");
    assert_eq!(topic.config().retention_ms, 365 * 24 * 3_600_000);
    assert_eq!(topic.config().cleanup_policy, "delete");

    // A stock producer.
    let producer: FutureProducer = client_config(&bootstrap, &[]).create().unwrap();
    let sent = futures::executor::block_on(
        producer.send(
            FutureRecord::to(AUDIT_TOPIC)
                .key("k")
                .payload("forged event"),
            Duration::from_secs(10),
        ),
    );
    match sent {
        Err((e, _)) => assert_eq!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::TopicAuthorizationFailed),
            "{e}"
        ),
        Ok(d) => panic!("produced to the audit topic: {d:?}"),
    }
    // A stock admin client.
    let admin: AdminClient<DefaultClientContext> = client_config(&bootstrap, &[]).create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let deleted = futures::executor::block_on(admin.delete_topics(&[AUDIT_TOPIC], &opts)).unwrap();
    assert!(
        matches!(
            &deleted[0],
            Err((_, RDKafkaErrorCode::TopicAuthorizationFailed))
        ),
        "{deleted:?}"
    );

    b.rt.block_on(async {
        let mut raw = common::Raw::connect(addr).await;
        // Produce (acks=all) with the raw client.
        let records = common::batch(
            &[b"forged"],
            kafka_protocol::records::Compression::None,
            None,
        );
        let resp: ProduceResponse = raw
            .request(
                ApiKey::Produce,
                9,
                &common::produce_request(AUDIT_TOPIC, 0, -1, records),
            )
            .await;
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code,
            TOPIC_AUTHORIZATION_FAILED
        );
        // Shorter retention, compaction, even validate-only.
        assert_eq!(
            alter_config(&mut raw, AUDIT_TOPIC, "retention.ms", "1000").await,
            TOPIC_AUTHORIZATION_FAILED
        );
        assert_eq!(
            alter_config(&mut raw, AUDIT_TOPIC, "cleanup.policy", "compact").await,
            TOPIC_AUTHORIZATION_FAILED
        );
        // DeleteRecords.
        use kafka_protocol::messages::delete_records_request::*;
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(s(AUDIT_TOPIC)))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(-1)])]);
        let resp: DeleteRecordsResponse = raw.request(ApiKey::DeleteRecords, 2, &req).await;
        assert_eq!(
            resp.topics[0].partitions[0].error_code,
            TOPIC_AUTHORIZATION_FAILED
        );
        // DeleteTopics with the raw client.
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topic_names(vec![TopicName(s(AUDIT_TOPIC))]);
        let resp: DeleteTopicsResponse = raw.request(ApiKey::DeleteTopics, 5, &req).await;
        assert_eq!(resp.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    });

    // Nothing changed: same config, nothing forged, nothing trimmed; each attempt is audited.
    let topic = broker.logs.topic(AUDIT_TOPIC).unwrap();
    assert_eq!(topic.config().retention_ms, 365 * 24 * 3_600_000);
    assert_eq!(topic.config().cleanup_policy, "delete");
    assert_eq!(topic.partition(0).unwrap().log_start_offset(), 0);
    let audit = dir.path().join("audit");
    for op in ["Write", "Delete", "AlterConfigs"] {
        let e = wait_in_file(&audit, "authorization", |e| {
            e["resource"] == "topic:__palisade_audit"
                && e["operation"] == op
                && e["result"] == "deny"
        });
        assert_eq!(e["principal"], "User:ANONYMOUS");
    }
    let values = read_audit_topic(
        &bootstrap,
        &[],
        "audit-check",
        Duration::from_secs(20),
        |v| !v.is_empty(),
    )
    .unwrap();
    assert!(!values.is_empty());
    assert!(values.iter().all(|v| !v.contains("forged")));
}

// =============================================================================================
// data_operations: off, first-use, all
// =============================================================================================

fn produce_three_times(dir: &Path, mode: &str) -> usize {
    let b = common::BackgroundBroker::start(
        dir,
        &[(
            "data_operations = \"first-use\"",
            &format!("data_operations = \"{mode}\""),
        )],
    );
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = common::Raw::connect(addr).await;
        common::create_topic(&mut raw, "data", 1, &[]).await;
        for _ in 0..3 {
            let records = common::batch(&[b"v"], kafka_protocol::records::Compression::None, None);
            let resp: ProduceResponse = raw
                .request(
                    ApiKey::Produce,
                    9,
                    &common::produce_request("data", 0, -1, records),
                )
                .await;
            assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        }
    });
    drop(b);
    parse(&file_lines(&dir.join("audit")))
        .iter()
        .filter(|e| {
            e["event_type"] == "authorization"
                && e["operation"] == "Write"
                && e["resource"] == "topic:data"
                && e["result"] == "allow"
        })
        .count()
}

#[test]
fn data_operation_allows_are_audited_never_once_per_session_or_always() {
    let off = tempfile::tempdir().unwrap();
    let first = tempfile::tempdir().unwrap();
    let all = tempfile::tempdir().unwrap();
    assert_eq!(produce_three_times(off.path(), "off"), 0);
    assert_eq!(produce_three_times(first.path(), "first-use"), 1);
    assert_eq!(produce_three_times(all.path(), "all"), 3);
}

// =============================================================================================
// Metrics under load, connection limits
// =============================================================================================

fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    out
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[test]
fn metrics_move_under_load_and_connection_limits_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::BackgroundBroker::start(
        dir.path(),
        &[(
            "max_connections_per_ip = 1000",
            "max_connections_per_ip = 4",
        )],
    );
    let running = b.running.as_ref().unwrap();
    let metrics = running.metrics_address.expect("metrics endpoint bound");
    assert!(metrics.ip().is_loopback());
    let bootstrap = running.addresses[0].to_string();
    let produce = "palisade_requests_total{api=\"Produce\"}";
    let bytes_in = "palisade_bytes_in_total{topic=\"load\"}";
    let before = scrape(metrics);

    // A load of real produce requests in the background, scraped while it runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = std::thread::spawn({
        let bootstrap = bootstrap.clone();
        let stop = stop.clone();
        move || {
            let producer: FutureProducer = client_config(&bootstrap, &[("linger.ms", "0".into())])
                .create()
                .unwrap();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let payload = format!("message {i}");
                futures::executor::block_on(producer.send(
                    FutureRecord::to("load").key("k").payload(&payload),
                    Duration::from_secs(10),
                ))
                .unwrap();
                i += 1;
            }
            i
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    let during = scrape(metrics);
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = load.join().unwrap();
    assert!(sent > 10, "only {sent} messages in the load");
    let after = scrape(metrics);
    assert!(
        metric(&during, produce) > metric(&before, produce),
        "{during}"
    );
    assert!(metric(&after, produce) >= metric(&during, produce) + 1.0);
    assert!(metric(&after, bytes_in) > metric(&during, bytes_in));
    assert!(
        metric(
            &after,
            "palisade_connections_accepted_total{listener=\"PLAINTEXT\"}"
        ) >= 1.0
    );
    assert!(after.contains("palisade_request_latency_seconds_bucket{api=\"Produce\",le=\"+Inf\"}"));
    assert!(metric(&after, "palisade_audit_events_total{sink=\"file\"}") > 0.0);
    assert!(
        metric(
            &after,
            "palisade_reload_generations_total{kind=\"policies\"}"
        ) >= 1.0
    );

    // More connections from one address than allowed: refused, audited, counted.
    let held: Vec<std::net::TcpStream> = (0..6)
        .map(|_| std::net::TcpStream::connect(running.addresses[0]).unwrap())
        .collect();
    let audit = dir.path().join("audit");
    let e = wait_in_file(&audit, "connection_limited", |_| true);
    assert_eq!(e["source_ip"], "127.0.0.1");
    assert_eq!(e["listener"], "PLAINTEXT");
    assert!(
        metric(
            &scrape(metrics),
            "palisade_throttled_total{kind=\"connection\"}"
        ) >= 1.0
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    // ... and in the topic (the allow-all test policies let ANONYMOUS read it).
    let values = read_audit_topic(
        &bootstrap,
        &[],
        "audit-metrics",
        Duration::from_secs(20),
        |v| v.iter().any(|l| l.contains("\"connection_limited\"")),
    )
    .unwrap();
    assert!(values.iter().any(|l| l.contains("\"connection_limited\"")));

    // Anything but GET /metrics is not served.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(metrics).unwrap();
    s.write_all(b"GET /secrets HTTP/1.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
}
