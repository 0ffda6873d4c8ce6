//! The front door's cost, measured with a real client (librdkafka via `rdkafka`).
//!
//! `cargo bench --bench secure_load -- [--messages N] [--size BYTES]`
//!
//! One in-process broker with the dev default's three listeners (PLAINTEXT, SASL_SSL, SSL with
//! client certificates) over a fresh dev PKI. Prints produce (acks=1) and consume throughput
//! over SASL_SSL with SCRAM-SHA-512 and over mTLS, each as a ratio against PLAINTEXT in the
//! same run; TLS handshakes per second (server-auth and mutual); and login latency p50/p99 (a
//! new librdkafka client from connect to its first Metadata answer, SCRAM-SHA-512 over TLS).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use support::{
    args, client_config, consume, create, percentile, print_rows, produce, t, Row, Target,
};

fn secure_config(dir: &Path) -> palisade::config::Config {
    let certs = dir.join("certs").display().to_string();
    let mut text = palisade::config::DEFAULT_CONFIG.to_string();
    for port in ["9092", "9093", "9094", "9644"] {
        text = text
            .replace(
                &format!("bind = \"127.0.0.1:{port}\""),
                "bind = \"127.0.0.1:0\"",
            )
            .replace(&format!("advertised = \"127.0.0.1:{port}\"\n"), "");
    }
    let text = text
        .replace("\"./certs/", &format!("\"{certs}/"))
        .replace(
            "data_dir = \"./data\"",
            &format!("data_dir = \"{}/data\"", dir.display()),
        )
        .replace(
            "credentials = \"./credentials.json\"",
            &format!("credentials = \"{}/credentials.json\"", dir.display()),
        )
        .replace("level = \"info\"", "level = \"warn\"")
        .replace(
            "policy_dir = \"./policies\"",
            &format!(
                "policy_dir = \"{}/tests/fixtures/allow-all\"",
                env!("CARGO_MANIFEST_DIR")
            ),
        )
        // The handshake measurement opens connections as fast as it can from one address.
        .replace(
            "new_connections_per_second_per_ip = 200",
            "new_connections_per_second_per_ip = 0",
        );
    palisade::config::Config::parse(&text, Path::new("<secure_load>")).unwrap()
}

/// TLS handshakes per second from 4 concurrent clients for `seconds`.
fn handshakes(
    rt: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    client: Arc<rustls::ClientConfig>,
    seconds: u64,
) -> f64 {
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let connector = tokio_rustls::TlsConnector::from(client);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                    connector.connect(name, tcp).await.unwrap();
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        total as f64 / seconds as f64
    })
}

fn tls_client(certs: &Path, client_cert: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(palisade::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(certs.join(cert))
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_file(certs.join(key)).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    })
}

fn main() {
    if support::smoke_mode() {
        return;
    }
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    palisade::tls::generate_dev_pki(&certs, &["alice".to_string()], false).unwrap();
    let mut store = palisade::sasl::CredentialStore::new().unwrap();
    store
        .add_user(
            "alice",
            &[palisade::sasl::Mechanism::ScramSha512],
            4096,
            b"alice-secret",
        )
        .unwrap();
    store.save(&dir.path().join("credentials.json")).unwrap();
    let rt = support::runtime();
    let running = rt
        .block_on(palisade::broker::Running::start(secure_config(dir.path())))
        .unwrap();
    let plain = running.addresses[0].to_string();
    let sasl = running.addresses[1].to_string();
    let ssl = running.addresses[2].to_string();
    let ca = certs.join("ca.pem").display().to_string();
    let alice_cert = certs.join("alice.pem").display().to_string();
    let alice_key = certs.join("alice-key.pem").display().to_string();
    let scram: Vec<(&str, &str)> = vec![
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "alice"),
        ("sasl.password", "alice-secret"),
        ("ssl.ca.location", ca.as_str()),
    ];
    let mtls: Vec<(&str, &str)> = vec![
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.as_str()),
        ("ssl.certificate.location", alice_cert.as_str()),
        ("ssl.key.location", alice_key.as_str()),
    ];
    for topic in ["plain", "scram", "mtls"] {
        create(&rt, &plain, topic);
    }
    println!(
        "palisade secure load: {} messages of {} bytes, 3 partitions, loopback",
        a.messages, a.size
    );
    let on = |bootstrap, client, topic| Target {
        bootstrap,
        client,
        topic,
    };
    let rows: Vec<Row> = vec![
        produce(
            "produce acks=1, PLAINTEXT",
            &t(&plain, "plain"),
            "1",
            a.messages,
            a.size,
        ),
        produce(
            "produce acks=1, SASL_SSL SCRAM-SHA-512",
            &on(&sasl, &scram, "scram"),
            "1",
            a.messages,
            a.size,
        ),
        produce(
            "produce acks=1, SSL with client certificate",
            &on(&ssl, &mtls, "mtls"),
            "1",
            a.messages,
            a.size,
        ),
        consume("consume, PLAINTEXT", &t(&plain, "plain"), a.messages),
        consume(
            "consume, SASL_SSL SCRAM-SHA-512",
            &on(&sasl, &scram, "scram"),
            a.messages,
        ),
        consume(
            "consume, SSL with client certificate",
            &on(&ssl, &mtls, "mtls"),
            a.messages,
        ),
    ];
    print_rows(&rows[..3], 0);
    print_rows(&rows[3..], 0);

    let server_auth = handshakes(&rt, running.addresses[1], tls_client(&certs, None), 3);
    let mutual = handshakes(
        &rt,
        running.addresses[2],
        tls_client(&certs, Some(("alice.pem", "alice-key.pem"))),
        3,
    );
    println!(
        "TLS handshakes/s (4 concurrent clients): server-auth {server_auth:.0}, mutual {mutual:.0}"
    );

    let mut logins = Vec::new();
    for _ in 0..40 {
        let started = Instant::now();
        let c: BaseConsumer = client_config(&sasl, &scram).create().unwrap();
        c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
        logins.push(started.elapsed().as_micros() as u64);
    }
    logins.sort_unstable();
    println!(
        "login latency (new client: TCP + TLS + SCRAM-SHA-512 + first Metadata, 40 logins): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&logins, 0.5),
        percentile(&logins, 0.99)
    );
    rt.block_on(running.shutdown());
}
