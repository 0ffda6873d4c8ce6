//! `palisade user add|list|remove` against the real binary.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use palisade::sasl::{Authenticator, CredentialStore, Step, DEFAULT_CREDENTIALS_PATH};

/// Runs `palisade args...` in `dir` with `stdin`; returns (success, stdout, stderr).
fn palisade(dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit before reading stdin (refused early): ignore a broken pipe.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn add_list_remove_in_the_default_store() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = palisade(
        dir.path(),
        &["user", "add", "alice", "--password-stdin"],
        "s3cret-Passw0rd\n",
    );
    assert!(ok, "{out}{err}");
    assert!(!out.contains("s3cret") && !err.contains("s3cret"));

    let path = dir.path().join(DEFAULT_CREDENTIALS_PATH);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("s3cret-Passw0rd"));

    // The stored keys accept the password (PLAIN checks it against the SCRAM keys).
    let store = CredentialStore::load(&path).unwrap();
    let mut auth = Authenticator::new("PLAIN", &store).unwrap();
    assert!(matches!(
        auth.step(b"\0alice\0s3cret-Passw0rd"),
        Ok(Step::Done { principal, .. }) if principal == "alice"
    ));

    let (ok, out, _) = palisade(dir.path(), &["user", "list"], "");
    assert!(ok);
    assert_eq!(out, "alice\tSCRAM-SHA-256,SCRAM-SHA-512\n");

    let (ok, _, err) = palisade(dir.path(), &["user", "remove", "unknown"], "");
    assert!(!ok);
    assert!(err.contains("unknown user `unknown`"), "{err}");

    let (ok, _, err) = palisade(dir.path(), &["user", "remove", "alice"], "");
    assert!(ok, "{err}");
    let (ok, out, _) = palisade(dir.path(), &["user", "list"], "");
    assert!(ok);
    assert_eq!(out, "");
}

#[test]
fn mechanism_store_and_iteration_flags() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("users.json");
    let store = store.to_str().unwrap();
    let (ok, out, err) = palisade(
        dir.path(),
        &[
            "user",
            "add",
            "bob",
            "--mechanism",
            "SCRAM-SHA-256",
            "--iterations",
            "4096",
            "--password-stdin",
            "--store",
            store,
        ],
        "bob-Passw0rd-42\r\n",
    );
    assert!(ok, "{out}{err}");
    let (_, out, _) = palisade(dir.path(), &["user", "list", "--store", store], "");
    assert_eq!(out, "bob\tSCRAM-SHA-256\n");
    let loaded = CredentialStore::load(Path::new(store)).unwrap();
    let mut auth = Authenticator::new("PLAIN", &loaded).unwrap();
    assert!(
        auth.step(b"\0bob\0bob-Passw0rd-42").is_ok(),
        "CRLF is not part of the password"
    );

    let refused: &[(&[&str], &str, &str)] = &[
        (
            &[
                "user",
                "add",
                "c",
                "--iterations",
                "1000",
                "--password-stdin",
            ],
            "pw\n",
            "iterations",
        ),
        (
            &["user", "add", "c", "--mechanism", "MD5", "--password-stdin"],
            "pw\n",
            "MD5",
        ),
        (&["user", "add", "c", "--password-stdin"], "\n", "empty"),
        (&["user", "add", "c"], "pw\n", "--password-stdin"),
        (
            &["user", "add", "a\tb", "--password-stdin"],
            "pw\n",
            "control",
        ),
    ];
    for (args, stdin, expected) in refused {
        let (ok, _, err) = palisade(dir.path(), args, stdin);
        assert!(!ok, "{args:?}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    // Nothing was written by the refused commands.
    assert!(!dir.path().join(DEFAULT_CREDENTIALS_PATH).exists());
}

#[test]
fn a_world_readable_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, _) = palisade(
        dir.path(),
        &["user", "add", "a", "--password-stdin"],
        "a-long-enough-pw\n",
    );
    assert!(ok);
    let path = dir.path().join(DEFAULT_CREDENTIALS_PATH);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, _, err) = palisade(dir.path(), &["user", "list"], "");
    assert!(!ok);
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn a_short_password_is_refused_unless_allowed_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    // Eleven characters (counted as characters, not bytes: "é" is two bytes).
    let (ok, _, err) = palisade(
        dir.path(),
        &["user", "add", "carol", "--password-stdin"],
        "short-passé\n",
    );
    assert!(!ok);
    assert!(err.contains("11 characters; at least 12"), "{err}");
    assert!(
        !dir.path().join(DEFAULT_CREDENTIALS_PATH).exists(),
        "nothing is written for a refused password"
    );
    let (ok, out, err) = palisade(
        dir.path(),
        &["user", "add", "carol", "--password-stdin"],
        "twelve-chars\n",
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = palisade(
        dir.path(),
        &[
            "user",
            "add",
            "dev",
            "--password-stdin",
            "--allow-short-password",
        ],
        "dev\n",
    );
    assert!(ok, "{out}{err}");
    let (_, out, _) = palisade(dir.path(), &["user", "list"], "");
    assert!(out.contains("carol") && out.contains("dev"), "{out}");
}
