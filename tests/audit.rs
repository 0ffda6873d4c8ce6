//! The audit trail end to end: real clients (librdkafka, raw protocol clients, the real
//! `palisade` binary) trigger every event type; both sinks (the hash-chained file and the
//! `__palisade_audit` topic read back with a stock consumer) must hold them, and only auditors
//! may read the topic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod audit_support;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use audit_support::*;
use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use palisade::broker::Running;
use palisade::config::Config;
use palisade::sasl::Mechanism;
use palisade::tls::{generate_dev_pki, DevPki};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PLAINTEXT: usize = 0;
const SASL_SSL: usize = 1;
/// Every user's password; it must never reach the trail.
const PASSWORD: &str = "Audit-Pa55word-7Qx9";
const WRONG: &str = "Wrong-Pa55word-K3v8";

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

fn add_user(running: &Running, name: &str) {
    running
        .broker
        .credentials
        .update(|s| s.add_user(name, &Mechanism::ALL, 4096, PASSWORD.as_bytes()))
        .unwrap();
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
        let config = rustls::ClientConfig::builder_with_provider(palisade::tls::provider())
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

    // Nor can a super user: who reads the audit trail is for policy alone.
    let denied = read_audit_topic(
        &bootstrap,
        &admin_settings,
        "admin-peek",
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
            "the super user read {} audit events",
            values.len()
        ),
    }

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
