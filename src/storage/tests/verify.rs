//! The offline tamper-evidence check.

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

/// Appends `n` batches of 3 records of 100 bytes filled with `fill`.
async fn append_filled(p: &Partition, n: usize, fill: u8) {
    use crate::storage::test_util::{append_batch, batch_bytes, Spec};
    for _ in 0..n {
        let bytes = batch_bytes(Spec::new(3, 100).fill(fill));
        p.append(append_batch(&bytes), Durability::Durable)
            .await
            .unwrap();
    }
}

/// A data dir with topic `t` of `partitions` partitions, `n` batches each filled with `fill`.
async fn log_of(partitions: i32, n: usize, fill: u8) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let t = mgr
        .create_topic("t", partitions, small_segments(3_000))
        .unwrap();
    for i in 0..partitions {
        append_filled(&t.partition(i).unwrap(), n, fill).await;
    }
    mgr.shutdown().unwrap();
    dir
}

fn reasons(report: &VerifyReport) -> Vec<String> {
    report
        .findings
        .iter()
        .map(
            |VerifyFinding::Mismatch {
                 partition,
                 offset,
                 reason,
             }| { format!("{partition}@{offset}: {reason}") },
        )
        .collect()
}

#[tokio::test]
async fn an_anchor_finds_a_consistent_rewrite_a_truncation_and_a_lost_partition() {
    let original = log_of(2, 30, b'a').await;
    let anchor = verify_data_dir_report(original.path()).unwrap().heads;
    assert_eq!(anchor[0].next_offset, 90);

    // Appends after the anchor keep it valid.
    {
        let mgr = open(original.path());
        append_filled(&mgr.topic("t").unwrap().partition(0).unwrap(), 5, b'b').await;
        mgr.shutdown().unwrap();
    }
    let report = verify_against(original.path(), &anchor).unwrap();
    assert!(
        report.findings.is_empty() && report.notes.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.heads[0].next_offset, 105);

    // The same offsets with other bytes, log and chain consistent: only the anchor sees it.
    let rewritten = log_of(2, 30, b'z').await;
    assert!(verify_data_dir(rewritten.path()).unwrap().0.is_empty());
    let report = verify_against(rewritten.path(), &anchor).unwrap();
    assert_eq!(
        reasons(&report),
        [
            "t-0@90: rewritten: the chain up to this offset differs from the anchored head",
            "t-1@90: rewritten: the chain up to this offset differs from the anchored head",
        ]
    );

    // Fewer batches, and a partition gone.
    let shorter = log_of(1, 20, b'a').await;
    let report = verify_against(shorter.path(), &anchor).unwrap();
    assert_eq!(
        reasons(&report),
        [
            "t-1@90: partition missing: it is in the anchor but not on disk",
            "t-0@60: truncated: the log ends before the anchored offset 90",
        ]
    );
}

#[tokio::test]
async fn an_anchor_older_than_the_retained_log_is_noted_not_failed() {
    let dir = log_of(1, 1, b'a').await;
    let anchor = verify_data_dir_report(dir.path()).unwrap().heads;
    assert_eq!(anchor[0].next_offset, 3);
    {
        let mgr = open(dir.path());
        append_filled(&mgr.topic("t").unwrap().partition(0).unwrap(), 40, b'b').await;
        mgr.shutdown().unwrap();
    }
    // Retention deletes the oldest segment (all four of its files). The reopen above rolled a
    // new segment at offset 3, whose chain header still vouches for the anchored head.
    let pdir = dir.path().join("t-0");
    let drop_oldest = || {
        let first = files(&pdir, "log")[0].trim_end_matches(".log").to_string();
        for ext in ["log", "index", "timeindex", "chain"] {
            std::fs::remove_file(pdir.join(format!("{first}.{ext}"))).unwrap();
        }
    };
    drop_oldest();
    let report = verify_against(dir.path(), &anchor).unwrap();
    assert!(
        report.findings.is_empty() && report.notes.is_empty(),
        "{report:?}"
    );
    // One more: now nothing retained reaches back to the anchored offset.
    drop_oldest();
    let report = verify_against(dir.path(), &anchor).unwrap();
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(report.notes.len(), 1);
    assert!(
        report.notes[0].contains("predates the retained log"),
        "{:?}",
        report.notes
    );
}
