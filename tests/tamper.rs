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
