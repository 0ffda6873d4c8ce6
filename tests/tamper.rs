//! Tamper evidence: one changed byte in a segment is named by `palisade verify`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::process::Command;

use common::Raw;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

fn verify(data: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["verify", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Byte positions of each batch in a segment file: (base offset, start, length).
fn batches(segment: &[u8]) -> Vec<(i64, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 12 <= segment.len() {
        let base = i64::from_be_bytes(segment[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(segment[pos + 8..pos + 12].try_into().unwrap()) as usize + 12;
        out.push((base, pos, len));
        pos += len;
    }
    out
}

#[tokio::test]
async fn one_changed_byte_is_named_by_partition_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    common::create_topic(&mut raw, "ledger", 2, &[]).await;
    for i in 0..10 {
        for partition in 0..2 {
            let value = format!("entry {i}");
            let resp: ProduceResponse = raw
                .request(
                    ApiKey::Produce,
                    9,
                    &common::produce_request(
                        "ledger",
                        partition,
                        -1,
                        common::batch(&[value.as_bytes()], Compression::None, None),
                    ),
                )
                .await;
            assert_eq!(resp.responses[0].partition_responses[0].base_offset, i);
        }
    }
    broker.shutdown().await;

    let (ok, out) = verify(dir.path());
    assert!(ok, "clean log reported as tampered: {out}");

    let segment_path = dir.path().join("ledger-1").join("00000000000000000000.log");
    let mut segment = std::fs::read(&segment_path).unwrap();
    let (base, start, len) = batches(&segment)[6];
    assert_eq!(base, 6);
    // Change one byte of the record value ("entry 6" -> "entry 7"), leaving lengths intact.
    segment[start + len - 2] ^= 0x01;
    std::fs::write(&segment_path, &segment).unwrap();

    let (ok, out) = verify(dir.path());
    assert!(!ok, "tampered log passed verify: {out}");
    assert!(
        out.contains("ledger-1") && out.contains("offset 6"),
        "{out}"
    );
    assert!(
        !out.contains("ledger-0"),
        "untouched partition reported: {out}"
    );
}

/// A data dir whose topic `ledger` holds `entries` values `"{prefix} {i}"` in one partition,
/// written by a real broker.
async fn ledger(dir: &std::path::Path, prefix: &str, entries: i64) {
    let broker = common::start(dir).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    common::create_topic(&mut raw, "ledger", 1, &[]).await;
    for i in 0..entries {
        let value = format!("{prefix} {i}");
        let resp: ProduceResponse = raw
            .request(
                ApiKey::Produce,
                9,
                &common::produce_request(
                    "ledger",
                    0,
                    -1,
                    common::batch(&[value.as_bytes()], Compression::None, None),
                ),
            )
            .await;
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }
    broker.shutdown().await;
}

fn verify_with(data: &std::path::Path, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["verify", "--data-dir"])
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A log rewritten together with its chain passes a plain verify (the chain has no secret)
/// but not a verify against the heads an earlier run wrote.
#[tokio::test]
async fn an_anchor_from_an_earlier_run_finds_a_log_rewritten_with_its_chain() {
    let original = tempfile::tempdir().unwrap();
    ledger(original.path(), "entry", 10).await;
    let heads = original.path().join("heads.json");
    let (ok, out) = verify_with(
        original.path(),
        &["--heads-out".as_ref(), heads.as_os_str()],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("head ledger-0 next_offset=10 sha256="),
        "{out}"
    );
    let anchor = std::fs::read_to_string(&heads).unwrap();
    assert!(
        anchor.contains("\"format\": \"palisade-heads-v1\""),
        "{anchor}"
    );
    // The same log verified against its own heads (the ledger and the audit topic).
    let (ok, out) = verify_with(original.path(), &["--anchor".as_ref(), heads.as_os_str()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("2 partition(s) still reach their anchored heads"),
        "{out}"
    );

    // Same offsets, other values, chain recomputed by a real broker: consistent on its own.
    let forged = tempfile::tempdir().unwrap();
    ledger(forged.path(), "forged", 10).await;
    let (ok, out) = verify_with(forged.path(), &[]);
    assert!(ok, "{out}");
    let (ok, out) = verify_with(forged.path(), &["--anchor".as_ref(), heads.as_os_str()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("TAMPERED ledger-0 offset 10: rewritten"),
        "{out}"
    );
    // A broken anchor file is refused with its place.
    std::fs::write(
        &heads,
        "{\"format\": \"palisade-heads-v1\",\n \"heads\": 5}",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["verify", "--data-dir"])
        .arg(original.path())
        .arg("--anchor")
        .arg(&heads)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
}
