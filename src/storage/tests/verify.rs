//! The offline tamper-evidence check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;
use crate::storage::test_util::*;
use crate::storage::*;

#[tokio::test]
async fn verify_detects_changed_bytes_and_missing_chain_entries() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mgr = open(dir.path());
        let t = mgr
            .create_topic("audit.log", 2, small_segments(3_000))
            .unwrap();
        append_n(&t.partition(0).unwrap(), 30, 100).await;
        append_n(&t.partition(1).unwrap(), 30, 100).await;
        mgr.shutdown().unwrap();
    }
    let (findings, checked) = verify_data_dir(dir.path()).unwrap();
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(checked, 60);
    let report = verify_data_dir_report(dir.path()).unwrap();
    assert_eq!(report.heads.len(), 2);
    assert_eq!(report.heads[0].next_offset, 90);

    // Flip one byte in the body of the batch at offset 45 in partition 1.
    let pdir = dir.path().join("audit.log-1");
    let (log, pos) = locate(&pdir, 45);
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[pos + 70] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let (findings, _) = verify_data_dir(dir.path()).unwrap();
    assert_eq!(findings.len(), 1);
    let VerifyFinding::Mismatch {
        partition,
        offset,
        reason,
    } = &findings[0];
    assert_eq!((partition.as_str(), *offset), ("audit.log-1", 45));
    assert!(reason.contains("bytes changed"), "{reason}");

    // Delete one chain entry in partition 0.
    let pdir = dir.path().join("audit.log-0");
    let chain_path = pdir.join(&files(&pdir, "chain")[1]);
    let mut chain = std::fs::read(&chain_path).unwrap();
    let start = (chain::HEADER_LEN + chain::ENTRY_LEN) as usize;
    chain.drain(start..start + chain::ENTRY_LEN as usize);
    std::fs::write(&chain_path, &chain).unwrap();
    let (findings, _) = verify_data_dir(dir.path()).unwrap();
    assert_eq!(findings.len(), 2);
    let VerifyFinding::Mismatch {
        partition, reason, ..
    } = &findings[0];
    assert_eq!(partition, "audit.log-0");
    assert!(reason.contains("chain entry missing"), "{reason}");
}

/// The `.log` file and position of the batch with base offset `offset`.
fn locate(pdir: &Path, offset: i64) -> (std::path::PathBuf, usize) {
    for name in files(pdir, "log") {
        let path = pdir.join(&name);
        let bytes = std::fs::read(&path).unwrap();
        let mut pos = 0;
        for (base, _, b) in split(&bytes) {
            if base == offset {
                return (path, pos);
            }
            pos += b.len();
        }
    }
    panic!("offset {offset} not found");
}

#[tokio::test]
async fn verify_detects_tail_truncation_and_reordering() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mgr = open(dir.path());
        let t = mgr.create_topic("t", 2, TopicConfig::default()).unwrap();
        append_n(&t.partition(0).unwrap(), 5, 100).await;
        append_n(&t.partition(1).unwrap(), 5, 100).await;
        mgr.shutdown().unwrap();
    }
    let log0 = dir.path().join("t-0/00000000000000000000.log");
    let bytes = std::fs::read(&log0).unwrap();
    let batches = split(&bytes);
    std::fs::write(&log0, &bytes[..bytes.len() - batches[4].2.len()]).unwrap();
    let log1 = dir.path().join("t-1/00000000000000000000.log");
    let batches = split(&std::fs::read(&log1).unwrap());
    let mut swapped = Vec::new();
    for i in [0, 2, 1, 3, 4] {
        swapped.extend_from_slice(&batches[i].2);
    }
    std::fs::write(&log1, &swapped).unwrap();
    let (findings, _) = verify_data_dir(dir.path()).unwrap();
    let VerifyFinding::Mismatch { offset, reason, .. } = &findings[0];
    assert_eq!(*offset, 12);
    assert!(reason.contains("truncated"), "{reason}");
    let VerifyFinding::Mismatch {
        partition, offset, ..
    } = &findings[1];
    assert_eq!((partition.as_str(), *offset), ("t-1", 3));
}
