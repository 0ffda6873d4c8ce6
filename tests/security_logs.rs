//! A full SASL/TLS session with every log level on must not leak a secret: passwords, SCRAM
//! proofs, salted passwords, keys, or private key material.
//! (Its own test binary so that the global `tracing` subscriber is this test's.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use palisade::broker::Running;
use palisade::config::Config;
use palisade::sasl::Mechanism;
use palisade::tls::generate_dev_pki;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256, Sha512};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing_subscriber::EnvFilter;

const PASSWORD: &str = "alice-Pa55word-7Qx9";
const WRONG: &str = "wrong-Pa55word-K3v8";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

struct Conn {
    stream: Tls,
    correlation: i32,
}

async fn connect(addr: SocketAddr, ca: &Path, cert: Option<(&Path, &Path)>) -> Conn {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(palisade::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        Some((cert, key)) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            builder
                .with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .unwrap()
    .unwrap();
    Conn {
        stream,
        correlation: 0,
    }
}

impl Conn {
    async fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("log-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut framed = BytesMut::new();
        framed.put_i32(body.len() as i32);
        framed.put_slice(&body);
        self.stream.write_all(&framed).await.unwrap();
        let mut size = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut size))
            .await
            .unwrap()
            .unwrap();
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut frame))
            .await
            .unwrap()
            .unwrap();
        let mut frame = Bytes::from(frame);
        ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
        let resp = Resp::decode(&mut frame, version).unwrap();
        assert_eq!(frame.remaining(), 0);
        resp
    }

    async fn metadata(&mut self) {
        let _: MetadataResponse = self
            .request(
                ApiKey::Metadata,
                9,
                &MetadataRequest::default().with_topics(None),
            )
            .await;
    }

    async fn handshake(&mut self, mechanism: &str) {
        let req = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(mechanism.to_string()));
        let resp: SaslHandshakeResponse = self.request(ApiKey::SaslHandshake, 1, &req).await;
        assert_eq!(resp.error_code, 0);
    }

    async fn authenticate(&mut self, bytes: &[u8]) -> SaslAuthenticateResponse {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(bytes));
        self.request(ApiKey::SaslAuthenticate, 2, &req).await
    }
}

/// Secrets of one SCRAM exchange, as the client computed them.
struct ScramSecrets {
    proof: Vec<u8>,
    salted_password: Vec<u8>,
    client_key: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

fn hmac(sha512: bool, key: &[u8], data: &[u8]) -> Vec<u8> {
    if sha512 {
        let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    } else {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
}

/// A SCRAM login with `password` (may be wrong); returns the error code and the secrets.
async fn scram(c: &mut Conn, sha512: bool, user: &str, password: &str) -> (i16, ScramSecrets) {
    c.handshake(if sha512 {
        "SCRAM-SHA-512"
    } else {
        "SCRAM-SHA-256"
    })
    .await;
    let nonce = B64.encode(uuid::Uuid::new_v4().as_bytes());
    let bare = format!("n={user},r={nonce}");
    let first = c.authenticate(format!("n,,{bare}").as_bytes()).await;
    assert_eq!(first.error_code, 0);
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    let attr = |name: &str| {
        server_first
            .split(',')
            .find_map(|a| a.strip_prefix(name))
            .unwrap()
            .to_string()
    };
    let (r, salt, iterations) = (
        attr("r="),
        B64.decode(attr("s=")).unwrap(),
        attr("i=").parse::<u32>().unwrap(),
    );
    let mut salted = vec![0u8; if sha512 { 64 } else { 32 }];
    if sha512 {
        pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, iterations, &mut salted);
    } else {
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    }
    let without_proof = format!("c=biws,r={r}");
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let client_key = hmac(sha512, &salted, b"Client Key");
    let stored_key = if sha512 {
        Sha512::digest(&client_key).to_vec()
    } else {
        Sha256::digest(&client_key).to_vec()
    };
    let signature = hmac(sha512, &stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let server_key = hmac(sha512, &salted, b"Server Key");
    let resp = c
        .authenticate(format!("{without_proof},p={}", B64.encode(&proof)).as_bytes())
        .await;
    (
        resp.error_code,
        ScramSecrets {
            proof,
            salted_password: salted,
            client_key,
            stored_key,
            server_key,
        },
    )
}

/// The base64 body lines of a PEM file (what would show if a key were logged).
fn pem_body_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_sasl_and_tls_session_logs_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("trace"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let pki = generate_dev_pki(&certs, &["alice".to_string()], false).unwrap();
    let text = common::secure_config_text(
        dir.path(),
        &certs,
        &[("level = \"warn\"", "level = \"trace\"")],
    );
    let running = Running::start(Config::parse(&text, Path::new("<logs>")).unwrap())
        .await
        .unwrap();
    running
        .broker
        .credentials
        .update(|s| s.add_user("alice", &Mechanism::ALL, 4096, PASSWORD.as_bytes()))
        .unwrap();
    let sasl = running.addresses[1];
    let ssl = running.addresses[2];

    let mut secrets = Vec::new();
    // Successful SCRAM logins (both hashes), then a re-authentication, then requests.
    for sha512 in [false, true] {
        let mut c = connect(sasl, &pki.ca_cert, None).await;
        let (code, s) = scram(&mut c, sha512, "alice", PASSWORD).await;
        assert_eq!(code, 0);
        secrets.push(s);
        c.metadata().await;
        let (code, s) = scram(&mut c, sha512, "alice", PASSWORD).await;
        assert_eq!(code, 0);
        secrets.push(s);
        c.metadata().await;
    }
    // Failed SCRAM logins: wrong password, unknown user.
    for user in ["alice", "mallory"] {
        let mut c = connect(sasl, &pki.ca_cert, None).await;
        let (code, s) = scram(&mut c, false, user, WRONG).await;
        assert_eq!(code, 58);
        secrets.push(s);
    }
    // PLAIN: success and failure.
    for (password, expected) in [(PASSWORD, 0), (WRONG, 58)] {
        let mut c = connect(sasl, &pki.ca_cert, None).await;
        c.handshake("PLAIN").await;
        let resp = c
            .authenticate(format!("\0alice\0{password}").as_bytes())
            .await;
        assert_eq!(resp.error_code, expected);
        if expected == 0 {
            c.metadata().await;
        }
    }
    // A PLAIN failure whose user name tries to forge a log line and is far too long.
    let hostile = format!("eve\nforged-line {}", "x".repeat(400));
    {
        let mut c = connect(sasl, &pki.ca_cert, None).await;
        c.handshake("PLAIN").await;
        let resp = c
            .authenticate(format!("\0{hostile}\0{WRONG}").as_bytes())
            .await;
        assert_eq!(resp.error_code, 58);
    }
    // mTLS.
    let alice = &pki.clients[0];
    let mut c = connect(ssl, &pki.ca_cert, Some((&alice.cert, &alice.key))).await;
    c.metadata().await;
    drop(c);
    // The user removed while connected.
    let mut c = connect(sasl, &pki.ca_cert, None).await;
    assert_eq!(scram(&mut c, true, "alice", PASSWORD).await.0, 0);
    running
        .broker
        .credentials
        .update(|s| s.remove_user("alice"))
        .unwrap();
    let mut buf = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(3), c.stream.read(&mut buf)).await;
    running.shutdown().await;

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    // The capture works and is verbose: the session is there.
    assert!(logs.contains("authenticated"), "{logs}");
    assert!(logs.contains("login refused"), "{logs}");
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "nothing below INFO captured"
    );

    let mut forbidden: Vec<(String, String)> = vec![
        ("password".into(), PASSWORD.into()),
        ("wrong password".into(), WRONG.into()),
        (
            "PLAIN message".into(),
            B64.encode(format!("\0alice\0{PASSWORD}")),
        ),
    ];
    for (i, s) in secrets.iter().enumerate() {
        for (what, bytes) in [
            ("client proof", &s.proof),
            ("salted password", &s.salted_password),
            ("client key", &s.client_key),
            ("stored key", &s.stored_key),
            ("server key", &s.server_key),
        ] {
            forbidden.push((format!("{what} #{i} (base64)"), B64.encode(bytes)));
            forbidden.push((format!("{what} #{i} (hex)"), hex::encode(bytes)));
            forbidden.push((
                format!("{what} #{i} (debug)"),
                format!("{:?}", &bytes[..8])
                    .trim_end_matches(']')
                    .to_string(),
            ));
        }
    }
    for key in [&pki.server_key, &pki.ca_key, &alice.key] {
        for line in pem_body_lines(key) {
            forbidden.push((format!("PEM body of {}", key.display()), line));
        }
    }
    let leaks: Vec<&String> = forbidden
        .iter()
        .filter(|(_, secret)| logs.contains(secret.as_str()))
        .map(|(what, _)| what)
        .collect();
    assert!(leaks.is_empty(), "secrets in the logs: {leaks:?}");

    // The audit trail of the same session: the file sink and the audit topic's log segments.
    let trail = audit_trail_bytes(&dir.path().join("data"));
    assert!(
        trail.contains("\"event_type\":\"authentication\"")
            && trail.contains("\"result\":\"failure\""),
        "the session is in the audit trail"
    );
    let leaks: Vec<&String> = forbidden
        .iter()
        .filter(|(_, secret)| trail.contains(secret.as_str()))
        .map(|(what, _)| what)
        .collect();
    assert!(leaks.is_empty(), "secrets in the audit trail: {leaks:?}");

    // Failed logins name the account they tried, in the trail and in the log line: SCRAM
    // (wrong password, unknown user) and PLAIN alike.
    let failures: Vec<serde_json::Value> = audit_file_events(&dir.path().join("data"))
        .into_iter()
        .filter(|e| e["event_type"] == "authentication" && e["result"] == "failure")
        .collect();
    for (principal, mechanism) in [
        ("User:alice", "SCRAM-SHA-256"),
        ("User:mallory", "SCRAM-SHA-256"),
        ("User:alice", "PLAIN"),
    ] {
        assert!(
            failures
                .iter()
                .any(|e| e["principal"] == principal && e["mechanism"] == mechanism),
            "no failed {mechanism} login of {principal} in {failures:#?}"
        );
    }
    assert!(logs.contains("user=mallory"), "{logs}");
    // The hostile name: escaped (no forged line), bounded to 256 bytes, in both.
    let eve = failures
        .iter()
        .find_map(|e| {
            e["principal"]
                .as_str()
                .filter(|p| p.starts_with("User:eve"))
        })
        .expect("the hostile PLAIN failure is audited");
    let name = eve.strip_prefix("User:").unwrap();
    assert!(name.starts_with("eve\\nforged-line xxx"), "{name}");
    assert!(
        name.len() <= 256 && name.ends_with('…'),
        "{} bytes",
        name.len()
    );
    assert!(logs.contains(&format!("user={name}")), "{logs}");
    assert!(
        !logs.lines().any(|l| l.starts_with("forged-line")),
        "a user name forged a log line"
    );
}

/// The events of the audit files (the file sink), in order.
fn audit_file_events(data: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<_> = std::fs::read_dir(data.join("audit"))
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
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every byte of the audit files and of the audit topic's partition directory, as text.
fn audit_trail_bytes(data: &Path) -> String {
    let mut out = String::new();
    let mut dirs = vec![data.join("audit")];
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("__palisade_audit"))
        {
            dirs.push(path);
        }
    }
    assert!(
        dirs.len() >= 2,
        "no audit topic partition directory in {dirs:?}"
    );
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}
