//! Credential reload logs name the file and never contain keys, salts or passwords.
//! (Its own test binary: a scoped `tracing` subscriber is unreliable next to parallel tests.)
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use base64::Engine;
use palisade::sasl::{Authenticator, CredentialStore, Mechanism, SharedCredentials};

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

#[test]
fn logs_name_the_file_but_never_keys_or_passwords() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.json");
    let shared = SharedCredentials::open(&path).unwrap();
    let mut store = CredentialStore::load(&path).unwrap();
    store
        .add_user("alice", &Mechanism::ALL, 4096, b"hunter2")
        .unwrap();
    store.save(&path).unwrap();
    assert!(shared.reload().unwrap());

    // Authenticate (and fail) with PLAIN while the subscriber records everything.
    let current = shared.current();
    for message in [&b"\0alice\0hunter2"[..], b"\0alice\0hunter3"] {
        let _ = Authenticator::new("PLAIN", &current).unwrap().step(message);
    }

    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replacen("\"version\": 1", "\"version\": x", 1)).unwrap();
    assert!(shared.reload().is_err());

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("credentials reloaded"), "{logs}");
    assert!(
        logs.contains("credentials.json") && logs.contains("keeping the last good"),
        "{logs}"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    for mechanism in Mechanism::ALL {
        let c = current.lookup("alice", mechanism).unwrap();
        for secret in [&c.stored_key, &c.server_key, &c.salt] {
            assert!(!logs.contains(&b64.encode(secret)), "{logs}");
        }
    }
    assert!(!logs.contains("hunter"), "{logs}");
}
