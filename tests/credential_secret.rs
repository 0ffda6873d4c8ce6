//! The credential store's fake-salt secret: random per store, never the one that was once
//! published in this repository, and replaceable without touching users.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use palisade::broker::Running;
use palisade::config::Config;
use palisade::sasl::{CredentialStore, Mechanism};
use palisade::tls::generate_dev_pki;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The git blob of the `credentials.json` this repository once tracked. The test reads the
/// published secret from history so that the value itself is written nowhere in the source.
const PUBLISHED_STORE_BLOB: &str = "5589b7e8dd391b7830683a5e456ee2da9d4b02c7";

const PASSWORD: &str = "a-long-passphrase";

fn published_secret() -> String {
    let out = Command::new("git")
        .args(["cat-file", "blob", PUBLISHED_STORE_BLOB])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git must be installed to read the published store from history");
    assert!(
        out.status.success(),
        "the published credentials.json is not in this checkout's history: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    file["secret"].as_str().unwrap().to_string()
}

/// Runs `palisade args...` in `dir` with `stdin`; returns (success, stdout + stderr).
fn palisade(dir: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn secret_of(path: &Path) -> String {
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    file["secret"].as_str().unwrap().to_string()
}

/// `dir/credentials.json` with user alice, its secret replaced by the published one.
fn store_with_published_secret(dir: &Path) -> PathBuf {
    let (ok, out) = palisade(
        dir,
        &["user", "add", "alice", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{out}");
    let path = dir.join("credentials.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(&secret_of(&path), &published_secret());
    std::fs::write(&path, text).unwrap();
    assert_eq!(mode(&path), 0o600);
    path
}

#[test]
fn a_fresh_store_gets_its_own_random_secret_with_mode_0600() {
    let published = published_secret();
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let (ok, out) = palisade(
            dir.path(),
            &["user", "add", "alice", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
        assert!(ok, "{out}");
        let path = dir.path().join("credentials.json");
        assert_eq!(mode(&path), 0o600);
        let secret = secret_of(&path);
        assert_eq!(B64.decode(&secret).unwrap().len(), 32);
        assert_ne!(secret, published);
        secrets.push(secret);
    }
    assert_ne!(secrets[0], secrets[1], "two stores share a secret");
}

#[test]
fn the_published_secret_is_refused_at_start_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_published_secret(dir.path());
    let certs = dir.path().join("certs");
    generate_dev_pki(&certs, &[], false).unwrap();
    let config = dir.path().join("palisade.toml");
    std::fs::write(&config, common::secure_config_text(dir.path(), &certs, &[])).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A broker that accepted the store would run until killed: bound the wait.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve started with the published secret");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    let fix = format!("palisade user rotate-secret --store {}", store.display());
    assert!(
        stderr.contains("published") && stderr.contains(&fix),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&published_secret()),
        "the secret is in the message"
    );

    // The user commands refuse it the same way, and leave the file as it was.
    let before = std::fs::read(&store).unwrap();
    let (ok, out) = palisade(dir.path(), &["user", "list"], "");
    assert!(!ok && out.contains("rotate-secret"), "{out}");
    assert_eq!(std::fs::read(&store).unwrap(), before);
}

#[test]
fn rotate_secret_replaces_it_and_users_still_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_published_secret(dir.path());
    let published_store = CredentialStore::load_to_rotate(&store).unwrap();

    let (ok, out) = palisade(dir.path(), &["user", "rotate-secret"], "");
    assert!(ok, "{out}");
    assert_eq!(mode(&store), 0o600);
    assert_ne!(secret_of(&store), published_secret());
    let rotated = CredentialStore::load(&store).unwrap();
    assert_eq!(rotated.list_users(), published_store.list_users());
    assert_eq!(
        rotated.fingerprint("alice"),
        published_store.fingerprint("alice")
    );
    // Unknown users now get salts nobody can predict from the published value.
    let m = Mechanism::ScramSha512;
    assert_ne!(
        rotated.fake_credential("ghost", m).unwrap().salt,
        published_store.fake_credential("ghost", m).unwrap().salt
    );

    // A broker over the rotated store: alice logs in with SCRAM over TLS, a wrong password
    // does not.
    let certs = dir.path().join("certs");
    let pki = generate_dev_pki(&certs, &[], false).unwrap();
    let text = common::secure_config_text(dir.path(), &certs, &[]);
    let config = Config::parse(&text, Path::new("<rotation test>")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let running: Running = rt.block_on(Running::start(config)).unwrap();
    let sasl_ssl = running.addresses[1].to_string();
    let metadata = |password: &str, wait: Duration| {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &sasl_ssl)
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", "alice")
            .set("sasl.password", password)
            .set("ssl.ca.location", pki.ca_cert.display().to_string())
            .create()
            .unwrap();
        consumer.fetch_metadata(None, wait)
    };
    assert!(
        metadata(PASSWORD, Duration::from_secs(30)).is_ok(),
        "alice cannot log in after rotation"
    );
    assert!(metadata("a-wrong-passphrase", Duration::from_secs(3)).is_err());
    rt.block_on(running.shutdown());
}
