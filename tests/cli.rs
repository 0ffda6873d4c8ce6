//! The `palisade` binary's configuration commands.
#![allow(clippy::unwrap_used)]

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
    std::fs::write(&bad, "[broker]\nnode_id = 0\n").unwrap();
    let (ok, _, err) = palisade(&["serve", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("bad.toml") && err.contains("missing field"),
        "{err}"
    );
}

#[test]
fn verify_on_an_empty_data_dir_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = palisade(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(ok, "{out}{err}");
}
