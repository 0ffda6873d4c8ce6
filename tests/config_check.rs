//! `palisade config check` against the real binary: a hand-written file naming only a few keys
//! is valid, and every mistake of a file is reported in one run at its line and column.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::Command;

/// Runs `palisade config check FILE` in `dir`; returns (success, stdout, stderr).
fn check(dir: &Path, file: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["config", "check"])
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_file_with_only_the_keys_a_user_cares_about_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    palisade::tls::generate_dev_pki(&certs, &[], false).unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let file = dir.path().join("palisade.toml");
    std::fs::write(
        &file,
        format!(
            "[[listeners]]\nbind = \"127.0.0.1:0\"\nprotocol = \"SASL_SSL\"\n\
             [listeners.tls]\ncert = {:?}\nkey = {:?}\n\n\
             [storage]\ndata_dir = {:?}\n\n\
             [authorization]\npolicy_dir = {:?}\n",
            certs.join("server.pem"),
            certs.join("server-key.pem"),
            dir.path().join("data"),
            policies,
        ),
    )
    .unwrap();
    let (ok, out, err) = check(dir.path(), &file);
    assert!(ok, "{out}{err}");
    assert!(out.contains(": ok"), "{out}");
}

#[test]
fn three_mistakes_give_three_errors_with_line_and_column_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mistakes.toml");
    let text = "\
[broker]
auto_create_topicz = true
default_partitions = \"two\"

[[listeners]]
bind = \"0.0.0.0:9092\"
protocol = \"PLAINTEXT\"
";
    std::fs::write(&file, text).unwrap();
    let (ok, _, err) = check(dir.path(), &file);
    assert!(!ok, "{err}");
    let name = file.display().to_string();
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 3, "{err}");
    // An unknown key (with what to do), a value of the wrong type, a semantic check.
    assert!(
        errors[0].starts_with(&format!(
            "error: {name}:2:1: unknown field `auto_create_topicz`"
        )) && errors[0].contains("print-default"),
        "{err}"
    );
    assert!(
        errors[1].starts_with(&format!("error: {name}:3:22: invalid type")),
        "{err}"
    );
    assert!(
        errors[2].starts_with(&format!("error: {name}:6:1: listener `PLAINTEXT`"))
            && errors[2].contains("allow_insecure_non_loopback"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_alone_is_still_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    let text = "[[listeners]]\nbind = \"127.0.0.1:9092\"\nprotocol = \"PLAINTEXT\"\n\n[sasl]\nauth_timeout = 5000\n";
    std::fs::write(&file, text).unwrap();
    let (ok, _, err) = check(dir.path(), &file);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{}:6:1: unknown field `auth_timeout`",
            file.display()
        )),
        "{err}"
    );
}
