//! The `palisade` binary's configuration commands.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::process::Command;

fn palisade(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn printed_default_passes_check_and_a_misspelt_key_fails_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, default, _) = palisade(&["config", "print-default"]);
    assert!(ok);
    assert!(default.contains("bind = \"127.0.0.1:9092\""));
    // The dev default's TLS listeners need certificates: without them check fails, naming them.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &default).unwrap();
    let (ok, _, err) = palisade(&["config", "check", good.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("SASL_SSL") && err.contains("server.pem"),
        "{err}"
    );
    let certs = dir.path().join("certs");
    let (ok, _, err) = palisade(&["certs", "dev", "--dir", certs.to_str().unwrap()]);
    assert!(ok, "{err}");
    let default = default.replace("\"./certs/", &format!("\"{}/", certs.display()));
    std::fs::write(&good, &default).unwrap();
    let (ok, out, err) = palisade(&["config", "check", good.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    // A key that does not match the certificate is found before `serve` would start.
    std::fs::copy(certs.join("ca-key.pem"), certs.join("server-key.pem")).unwrap();
    let (ok, _, err) = palisade(&["config", "check", good.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("server-key.pem") || err.contains("key"),
        "{err}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        default.replace("flush_interval_ms", "flush_intervall_ms"),
    )
    .unwrap();
    let (ok, _, err) = palisade(&["config", "check", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("flush_intervall_ms") && err.contains("bad.toml"),
        "{err}"
    );

    let invalid = dir.path().join("invalid.toml");
    std::fs::write(
        &invalid,
        default.replace("max_frame_bytes = 104857600", "max_frame_bytes = -5"),
    )
    .unwrap();
    let (ok, _, err) = palisade(&["config", "check", invalid.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("max_frame_bytes"), "{err}");
}

#[test]
fn serve_refuses_a_bad_config_instead_of_starting() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    // Every other key has a default; a listener does not.
    std::fs::write(&bad, "[broker]\nnode_id = 0\n").unwrap();
    let (ok, _, err) = palisade(&["serve", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("bad.toml:1:1") && err.contains("`[[listeners]]` entry is required"),
        "{err}"
    );
}

#[test]
fn verify_on_an_empty_data_dir_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = palisade(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(ok, "{out}{err}");
}

/// The security checklist: the dev default passes `config check` with warnings and fails it
/// with `--strict`; the same config hardened (no clear-text listener, quotas) passes both.
#[test]
fn config_check_strict_applies_the_security_checklist() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let (ok, _, err) = palisade(&["certs", "dev", "--dir", certs.to_str().unwrap()]);
    assert!(ok, "{err}");
    let default =
        palisade::config::DEFAULT_CONFIG.replace("\"./certs/", &format!("\"{}/", certs.display()));
    let dev = dir.path().join("dev.toml");
    std::fs::write(&dev, &default).unwrap();
    let (ok, _, err) = palisade(&["config", "check", dev.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("warning: listener `PLAINTEXT`"), "{err}");
    assert!(err.contains("warning: quotas:"), "{err}");
    let (ok, _, err) = palisade(&["config", "check", "--strict", dev.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("security checklist warning(s) with --strict"),
        "{err}"
    );

    // Hardened: the PLAINTEXT listener removed, quotas for every user, audit as shipped.
    let first = default.find("\n[[listeners]]\n").unwrap();
    let second = first + 1 + default[first + 1..].find("\n[[listeners]]\n").unwrap();
    let hardened = format!("{}{}", &default[..first], &default[second..]).replace(
        "max_throttle_ms = 10000\n",
        "max_throttle_ms = 10000\nproducer_byte_rate = 10485760\nconsumer_byte_rate = 52428800\n",
    );
    let prod = dir.path().join("prod.toml");
    std::fs::write(&prod, &hardened).unwrap();
    let (ok, out, err) = palisade(&["config", "check", "--strict", prod.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(!err.contains("warning"), "{err}");
    // Each checklist item is a warning of its own: turning the audit off is caught.
    let no_audit = hardened
        .replace("\nfile = true", "\nfile = false")
        .replace("\ntopic = true", "\ntopic = false");
    std::fs::write(&prod, no_audit).unwrap();
    let (ok, _, err) = palisade(&["config", "check", "--strict", prod.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("warning: audit: both sinks are off"), "{err}");
}
