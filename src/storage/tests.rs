//! Behaviour tests of the storage engine, on real files in temporary directories.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::sync::Arc;

use super::test_util::{batch, batch_bytes, open, read_all, split, Spec};
use super::*;

fn small_segments(bytes: u64) -> TopicConfig {
    TopicConfig {
        segment_bytes: bytes,
        ..TopicConfig::default()
    }
}

fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(&format!(".{ext}")))
        .collect();
    names.sort();
    names
}

async fn append_n(p: &Partition, n: usize, value_len: usize) -> Vec<Vec<u8>> {
    let mut originals = Vec::new();
    for i in 0..n {
        let bytes = batch_bytes(Spec::new(3, value_len).fill(b'a' + (i % 26) as u8));
        let info = p
            .append(test_util::append_batch(&bytes), Durability::Written)
            .await
            .unwrap();
        assert_eq!(info.base_offset, (i * 3) as i64);
        originals.push(bytes);
    }
    originals
}

/// The stored form of an original batch: only the base offset differs.
fn same_batch(stored: &[u8], original: &[u8]) -> bool {
    stored.len() == original.len() && stored[8..] == original[8..]
}

#[tokio::test]
async fn append_read_round_trip_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let topic = mgr
        .create_topic("orders", 1, small_segments(2_000))
        .unwrap();
    let p = topic.partition(0).unwrap();
    let originals = append_n(&p, 40, 100).await;
    assert_eq!(p.high_watermark(), 120);
    let pdir = dir.path().join("orders-0");
    let logs = files(&pdir, "log");
    assert!(logs.len() > 5, "expected rolls, got {logs:?}");
    assert_eq!(logs[0], "00000000000000000000.log");
    let all = read_all(&p);
    assert_eq!(all.len(), 40);
    for (i, (base, last, bytes)) in all.iter().enumerate() {
        assert_eq!((*base, *last), ((i * 3) as i64, (i * 3 + 2) as i64));
        assert!(same_batch(bytes, &originals[i]));
        assert_eq!(BatchFrame::peek(bytes).unwrap().base_offset, *base);
    }
    // An offset inside a batch returns that whole batch first.
    let r = p.read(61, 1).unwrap();
    let got = split(&r.records);
    assert_eq!(got.len(), 1, "max_bytes 1 still returns exactly one batch");
    assert_eq!(got[0].0, 60);
    // At the high watermark: empty; beyond: out of range.
    assert!(p.read(120, 1000).unwrap().records.is_empty());
    assert!(matches!(
        p.read(121, 1000),
        Err(StorageError::OffsetOutOfRange(121))
    ));
    assert!(matches!(
        p.read(-1, 1000),
        Err(StorageError::OffsetOutOfRange(-1))
    ));
}

use super::batch::BatchFrame;

#[tokio::test]
async fn sparse_index_lookup_in_the_middle_of_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let p = mgr
        .create_topic("t", 1, TopicConfig::default())
        .unwrap()
        .partition(0)
        .unwrap();
    let originals = append_n(&p, 200, 300).await;
    let index = std::fs::read(dir.path().join("t-0/00000000000000000000.index")).unwrap();
    assert!(
        index.len() >= 8 * 10,
        "sparse index should have entries, has {} bytes",
        index.len()
    );
    for target in [0i64, 1, 299, 301, 450, 597, 599] {
        let r = p.read(target, 2_000).unwrap();
        let got = split(&r.records);
        assert!(!got.is_empty());
        let idx = (target / 3) as usize;
        assert_eq!(got[0].0, idx as i64 * 3, "first batch for offset {target}");
        assert!(same_batch(&got[0].2, &originals[idx]));
        assert!(r.records.len() <= 2_000 || got.len() == 1);
    }
}

#[tokio::test]
async fn recovery_truncates_a_torn_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let originals = {
        let mgr = open(dir.path());
        let p = mgr
            .create_topic("t", 1, TopicConfig::default())
            .unwrap()
            .partition(0)
            .unwrap();
        let originals = append_n(&p, 10, 50).await;
        mgr.shutdown().unwrap();
        originals
    };
    let log = dir.path().join("t-0/00000000000000000000.log");
    let valid_len = std::fs::metadata(&log).unwrap().len();
    let half = batch_bytes(Spec::new(3, 50));
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(&half[..half.len() / 2]);
    std::fs::write(&log, &bytes).unwrap();

    let mgr = open(dir.path());
    let p = mgr.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.high_watermark(), 30);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), valid_len);
    let all = read_all(&p);
    assert_eq!(all.len(), 10);
    for (stored, original) in all.iter().zip(&originals) {
        assert!(same_batch(&stored.2, original));
    }
    let info = p
        .append(batch(Spec::new(1, 10)), Durability::Durable)
        .await
        .unwrap();
    assert_eq!(info.base_offset, 30);
    mgr.shutdown().unwrap();
    let (findings, checked) = verify_data_dir(dir.path()).unwrap();
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(checked, 11);
}

#[tokio::test]
async fn recovery_truncates_a_batch_with_a_bad_crc() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mgr = open(dir.path());
        let p = mgr
            .create_topic("t", 1, TopicConfig::default())
            .unwrap()
            .partition(0)
            .unwrap();
        append_n(&p, 5, 50).await;
        mgr.shutdown().unwrap();
    }
    let log = dir.path().join("t-0/00000000000000000000.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    let mgr = open(dir.path());
    let p = mgr.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.high_watermark(), 12);
    assert_eq!(read_all(&p).len(), 4);
}

#[tokio::test]
async fn indexes_are_rebuilt_after_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let before = {
        let mgr = open(dir.path());
        let p = mgr
            .create_topic("t", 1, small_segments(20_000))
            .unwrap()
            .partition(0)
            .unwrap();
        append_n(&p, 150, 400).await;
        mgr.shutdown().unwrap();
        let mut contents = Vec::new();
        for ext in ["index", "timeindex"] {
            for name in files(&pdir, ext) {
                contents.push((name.clone(), std::fs::read(pdir.join(&name)).unwrap()));
                std::fs::remove_file(pdir.join(&name)).unwrap();
            }
        }
        contents
    };
    assert!(before.iter().any(|(_, c)| !c.is_empty()));
    let mgr = open(dir.path());
    let p = mgr.topic("t").unwrap().partition(0).unwrap();
    for (name, contents) in &before {
        assert_eq!(
            &std::fs::read(pdir.join(name)).unwrap(),
            contents,
            "{name} rebuilt identically"
        );
    }
    let r = split(&p.read(301, 100).unwrap().records);
    assert_eq!(r[0].0, 300);
    assert_eq!(read_all(&p).len(), 150);
}

#[tokio::test]
async fn retention_by_size_deletes_old_segments_and_moves_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let config = TopicConfig {
        retention_bytes: 5_000,
        ..small_segments(2_000)
    };
    let p = mgr
        .create_topic("t", 1, config)
        .unwrap()
        .partition(0)
        .unwrap();
    append_n(&p, 60, 100).await;
    let pdir = dir.path().join("t-0");
    let before = files(&pdir, "log").len();
    let deleted = mgr.run_retention();
    assert!(deleted > 0);
    let logs = files(&pdir, "log");
    assert_eq!(logs.len(), before - deleted);
    assert_eq!(files(&pdir, "chain").len(), logs.len());
    let first_base: i64 = logs[0].trim_end_matches(".log").parse().unwrap();
    assert_eq!(p.log_start_offset(), first_base);
    let total: u64 = logs
        .iter()
        .map(|n| std::fs::metadata(pdir.join(n)).unwrap().len())
        .sum();
    assert!(total <= 5_000 + 2_000, "kept {total} bytes");
    assert!(matches!(
        p.read(0, 100),
        Err(StorageError::OffsetOutOfRange(0))
    ));
    assert_eq!(read_all(&p).first().unwrap().0, first_base);
    // The remaining segments still verify, chained from the first kept segment.
    mgr.shutdown().unwrap();
    let (findings, _) = verify_data_dir(dir.path()).unwrap();
    assert!(findings.is_empty(), "{findings:?}");
}

#[tokio::test]
async fn retention_by_time_keeps_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let config = TopicConfig {
        retention_ms: 86_400_000,
        ..small_segments(1_000)
    };
    let p = mgr
        .create_topic("t", 1, config)
        .unwrap()
        .partition(0)
        .unwrap();
    let old = fsutil::now_ms() - 10 * 86_400_000;
    for _ in 0..20 {
        p.append(batch(Spec::new(2, 100).ts(old)), Durability::Written)
            .await
            .unwrap();
    }
    let recent = fsutil::now_ms();
    p.append(batch(Spec::new(2, 100).ts(recent)), Durability::Written)
        .await
        .unwrap();
    let pdir = dir.path().join("t-0");
    assert!(files(&pdir, "log").len() > 3);
    mgr.run_retention();
    let logs = files(&pdir, "log");
    assert_eq!(logs.len(), 1, "only the active segment survives: {logs:?}");
    let active_base: i64 = logs[0].trim_end_matches(".log").parse().unwrap();
    assert!(active_base > 0);
    assert_eq!(p.log_start_offset(), active_base);
    assert_eq!(p.high_watermark(), 42);
    assert_eq!(read_all(&p).last().unwrap().0, 40);
    // Even when everything is expired, the active segment stays.
    p.append(batch(Spec::new(2, 100).ts(old)), Durability::Written)
        .await
        .unwrap();
    assert_eq!(p.max_timestamp().unwrap().0, recent);
}

#[tokio::test]
async fn delete_records_before_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mgr = open(dir.path());
        let p = mgr
            .create_topic("t", 1, TopicConfig::default())
            .unwrap()
            .partition(0)
            .unwrap();
        append_n(&p, 10, 20).await;
        assert_eq!(p.delete_records_before(7).unwrap(), 7);
        assert_eq!(
            p.delete_records_before(3).unwrap(),
            7,
            "never moves backwards"
        );
        assert!(matches!(
            p.delete_records_before(31),
            Err(StorageError::OffsetOutOfRange(31))
        ));
        let r = p.read(7, 10).unwrap();
        assert_eq!(r.log_start_offset, 7);
        assert_eq!(split(&r.records)[0].0, 6, "the batch containing offset 7");
        assert!(p.read(6, 10).is_err());
        mgr.shutdown().unwrap();
    }
    let mgr = open(dir.path());
    let p = mgr.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.log_start_offset(), 7);
    assert_eq!(p.delete_records_before(-1).unwrap(), 30);
}

#[tokio::test]
async fn idempotent_duplicates_gaps_and_fencing() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let p = mgr
        .create_topic("t", 1, TopicConfig::default())
        .unwrap()
        .partition(0)
        .unwrap();
    let pid = mgr.allocate_producer_id().unwrap();
    let send =
        |epoch: i16, seq: i32, records: i32| batch(Spec::new(records, 10).idem(pid, epoch, seq));

    assert!(matches!(
        p.append(send(0, 5, 1), Durability::Written).await,
        Err(StorageError::OutOfOrderSequence(_))
    ));
    let first = p.append(send(0, 0, 3), Durability::Written).await.unwrap();
    let second = p.append(send(0, 3, 2), Durability::Written).await.unwrap();
    assert_eq!((first.base_offset, second.base_offset), (0, 3));
    let dup = p.append(send(0, 0, 3), Durability::Written).await.unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 0);
    assert_eq!(p.high_watermark(), 5, "duplicates are not appended");
    assert!(matches!(
        p.append(send(0, 7, 1), Durability::Written).await,
        Err(StorageError::OutOfOrderSequence(_))
    ));
    assert!(matches!(
        p.append(send(1, 5, 1), Durability::Written).await,
        Err(StorageError::OutOfOrderSequence(_))
    ));
    p.append(send(1, 0, 1), Durability::Written).await.unwrap();
    assert!(matches!(
        p.append(send(0, 5, 1), Durability::Written).await,
        Err(StorageError::ProducerFenced(_))
    ));
    mgr.shutdown().unwrap();
    drop(p);
    drop(mgr);

    // The state is rebuilt from the log on open.
    let mgr = open(dir.path());
    let p = mgr.topic("t").unwrap().partition(0).unwrap();
    let dup = p.append(send(1, 0, 1), Durability::Written).await.unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 5);
    assert!(matches!(
        p.append(send(0, 1, 1), Durability::Written).await,
        Err(StorageError::ProducerFenced(_))
    ));
    assert_eq!(
        p.append(send(1, 1, 1), Durability::Written)
            .await
            .unwrap()
            .base_offset,
        6
    );
    assert!(
        mgr.allocate_producer_id().unwrap() > pid,
        "producer ids are never reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_fsyncs_between_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let topic = mgr.create_topic("t", 2, TopicConfig::default()).unwrap();
    let before = mgr.fsync_count();
    let appends = 400usize;
    let mut tasks = Vec::new();
    for i in 0..appends {
        let p = topic.partition((i % 2) as i32).unwrap();
        tasks.push(tokio::spawn(async move {
            p.append(batch(Spec::new(1, 100)), Durability::Durable)
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let fsyncs = mgr.fsync_count() - before;
    eprintln!(
        "{fsyncs} fsyncs in {} rounds for {appends} appends",
        mgr.flush_rounds()
    );
    assert!(fsyncs > 0, "durable appends must fsync");
    // Each round syncs a segment's log and chain (2 fsyncs); without sharing this would be
    // 2 per append.
    assert!(
        fsyncs < appends as u64 / 2,
        "{fsyncs} fsyncs for {appends} appends"
    );
    assert!(mgr.flush_rounds() < appends as u64 / 4);
    assert_eq!(
        topic.partition(0).unwrap().high_watermark() + topic.partition(1).unwrap().high_watermark(),
        400
    );
}

#[tokio::test]
async fn page_cache_policy_acknowledges_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        flush: FlushPolicy::PageCache,
        ..test_util::config(dir.path())
    };
    let mgr = LogManager::open(config).unwrap();
    let p = mgr
        .create_topic("t", 1, TopicConfig::default())
        .unwrap()
        .partition(0)
        .unwrap();
    p.append(batch(Spec::new(1, 10)), Durability::Durable)
        .await
        .unwrap();
    // The background flush (every 200 ms) syncs the dirty segment.
    for _ in 0..50 {
        if mgr.fsync_count() > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("background flush did not run");
}

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

#[tokio::test]
async fn topic_metadata_and_producer_ids_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (id, pid) = {
        let mgr = open(dir.path());
        let mut config = TopicConfig::default();
        config.set("retention.ms", "1000").unwrap();
        config.set("compression.type", "zstd").unwrap();
        let t = mgr.create_topic("a", 3, config).unwrap();
        mgr.create_topic("b", 1, TopicConfig::default()).unwrap();
        mgr.create_topic("gone", 1, TopicConfig::default()).unwrap();
        mgr.delete_topic("gone").unwrap();
        mgr.create_partitions("a", 5).unwrap();
        assert!(matches!(
            mgr.create_partitions("a", 4),
            Err(StorageError::InvalidPartitions(_))
        ));
        assert!(matches!(
            mgr.create_topic("a", 1, TopicConfig::default()),
            Err(StorageError::TopicExists(_))
        ));
        assert!(matches!(
            mgr.create_topic("bad/name", 1, TopicConfig::default()),
            Err(StorageError::InvalidConfig(_))
        ));
        assert!(matches!(
            mgr.create_topic("..", 1, TopicConfig::default()),
            Err(StorageError::InvalidConfig(_))
        ));
        assert!(matches!(
            mgr.create_topic("x", 0, TopicConfig::default()),
            Err(StorageError::InvalidPartitions(_))
        ));
        let pid = mgr.allocate_producer_id().unwrap();
        assert_eq!(mgr.allocate_producer_id().unwrap(), pid + 1);
        let mut altered = t.config();
        altered.set("segment.bytes", "100000").unwrap();
        mgr.alter_topic_config("a", altered).unwrap();
        (t.id(), pid + 1)
    };
    assert!(!dir.path().join("gone-0").exists());
    let mgr = open(dir.path());
    let names: Vec<String> = mgr.topics().iter().map(|t| t.name().to_string()).collect();
    assert_eq!(names, ["a", "b"]);
    let a = mgr.topic_by_id(id).unwrap();
    assert_eq!(a.name(), "a");
    assert_eq!(a.partition_count(), 5);
    assert!(a.partition(4).is_some() && a.partition(5).is_none());
    let config = a.config();
    assert_eq!((config.retention_ms, config.segment_bytes), (1000, 100_000));
    assert_eq!(
        config.extra.get("compression.type").map(String::as_str),
        Some("zstd")
    );
    assert!(mgr.allocate_producer_id().unwrap() > pid);
}

#[test]
fn topic_config_set_validates_and_lists_entries() {
    let mut c = TopicConfig::default();
    assert!(c.set("retention.ms", "-2").is_err());
    assert!(c.set("segment.bytes", "abc").is_err());
    assert!(c.set("message.timestamp.type", "Now").is_err());
    assert!(c.set("no.such.config", "1").is_err());
    c.set("cleanup.policy", "compact,delete").unwrap();
    c.set("message.timestamp.type", "LogAppendTime").unwrap();
    let entries = c.entries();
    assert!(entries.contains(&("segment.bytes".into(), "1073741824".into())));
    assert!(entries.contains(&("message.timestamp.type".into(), "LogAppendTime".into())));
    c.reset("message.timestamp.type").unwrap();
    assert_eq!(c.message_timestamp_type, "CreateTime");
    assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
}

#[tokio::test]
async fn log_append_time_rewrites_timestamp_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let mut config = TopicConfig::default();
    config
        .set("message.timestamp.type", "LogAppendTime")
        .unwrap();
    let p = mgr
        .create_topic("t", 1, config)
        .unwrap()
        .partition(0)
        .unwrap();
    let info = p
        .append(batch(Spec::new(2, 10).ts(5)), Durability::Written)
        .await
        .unwrap();
    assert!(info.log_append_time >= fsutil::now_ms() - 60_000);
    let stored = p.read(0, 1000).unwrap().records;
    let header = batch::BatchHeader::parse(&stored).unwrap();
    assert_eq!(header.max_timestamp, info.log_append_time);
    assert_ne!(header.attributes & batch::TIMESTAMP_TYPE_BIT, 0);
    assert!(batch::crc_ok(&stored));
}

#[tokio::test]
async fn timestamps_lookup_and_high_watermark_watch() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let p = mgr
        .create_topic("t", 1, small_segments(3_000))
        .unwrap()
        .partition(0)
        .unwrap();
    let mut watch = p.watch_high_watermark();
    for i in 0..50i64 {
        p.append(
            batch(Spec::new(2, 100).ts(1_000 + i * 10)),
            Durability::Written,
        )
        .await
        .unwrap();
    }
    assert!(watch.has_changed().unwrap());
    assert_eq!(*watch.borrow_and_update(), 100);
    assert_eq!(p.offset_for_timestamp(0).unwrap(), Some((0, 1_000)));
    assert_eq!(p.offset_for_timestamp(1_255).unwrap(), Some((52, 1_260)));
    assert_eq!(p.offset_for_timestamp(1_490).unwrap(), Some((98, 1_490)));
    assert_eq!(p.offset_for_timestamp(1_491).unwrap(), None);
    assert_eq!(p.max_timestamp(), Some((1_490, 99)));
    let waiter = tokio::spawn(async move {
        watch.changed().await.unwrap();
        *watch.borrow()
    });
    p.append(batch(Spec::new(1, 1)), Durability::Written)
        .await
        .unwrap();
    assert_eq!(waiter.await.unwrap(), 101);
}

#[tokio::test]
async fn deleted_topic_partitions_reject_appends_and_large_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let config = TopicConfig {
        max_message_bytes: 500,
        ..TopicConfig::default()
    };
    let p = mgr
        .create_topic("t", 1, config)
        .unwrap()
        .partition(0)
        .unwrap();
    assert!(matches!(
        p.append(batch(Spec::new(1, 1_000)), Durability::Written)
            .await,
        Err(StorageError::BatchTooLarge(_, 500))
    ));
    mgr.delete_topic("t").unwrap();
    assert!(!dir.path().join("t-0").exists());
    assert!(p
        .append(batch(Spec::new(1, 10)), Durability::Written)
        .await
        .is_err());
    assert!(mgr.topic("t").is_none());
    let _ = Arc::clone(&mgr);
}

#[tokio::test]
async fn failed_fsync_takes_the_log_dir_offline() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let p = mgr
        .create_topic("t", 1, TopicConfig::default())
        .unwrap()
        .partition(0)
        .unwrap();
    p.append(batch(Spec::new(1, 10)), Durability::Durable)
        .await
        .unwrap();
    mgr.health()
        .inject_fsync_error
        .store(true, std::sync::atomic::Ordering::Release);
    let err = p
        .append(batch(Spec::new(1, 10)), Durability::Durable)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::LogDirFailed(..)), "{err}");
    // Never retried into an acknowledgement: everything after fails too.
    let err = p
        .append(batch(Spec::new(1, 10)), Durability::Written)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::LogDirFailed(..)), "{err}");
    assert!(matches!(
        p.read(0, 100),
        Err(StorageError::LogDirFailed(..))
    ));
    assert!(mgr.shutdown().is_err());
}

#[tokio::test]
async fn appends_after_shutdown_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let p = mgr
        .create_topic("t", 1, TopicConfig::default())
        .unwrap()
        .partition(0)
        .unwrap();
    mgr.shutdown().unwrap();
    assert!(p
        .append(batch(Spec::new(1, 10)), Durability::Written)
        .await
        .is_err());
    assert_eq!(p.high_watermark(), 0);
}

#[tokio::test]
async fn offset_for_timestamp_finds_the_record_inside_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let p = mgr
        .create_topic("t", 1, TopicConfig::default())
        .unwrap()
        .partition(0)
        .unwrap();
    // Offsets 0..10 with timestamps 100, 110, ..., 190; then 10..20 with 200..290.
    p.append(
        batch(Spec::new(10, 5).ts(100).ts_step(10)),
        Durability::Written,
    )
    .await
    .unwrap();
    p.append(
        batch(Spec::new(10, 5).ts(200).ts_step(10)),
        Durability::Written,
    )
    .await
    .unwrap();
    assert_eq!(p.offset_for_timestamp(135).unwrap(), Some((4, 140)));
    assert_eq!(p.offset_for_timestamp(195).unwrap(), Some((10, 200)));
    assert_eq!(p.offset_for_timestamp(290).unwrap(), Some((19, 290)));
    assert_eq!(p.max_timestamp(), Some((290, 19)));
    p.delete_records_before(12).unwrap();
    assert_eq!(p.offset_for_timestamp(0).unwrap(), Some((12, 220)));
}

#[tokio::test]
#[ignore = "throughput measurement, run by hand"]
async fn read_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let p = mgr.create_topic("t", 1, small_segments(16 << 20)).unwrap().partition(0).unwrap();
    let bytes = batch_bytes(Spec::new(16, 1000));
    for _ in 0..4000 {
        p.append(test_util::append_batch(&bytes), Durability::Written).await.unwrap();
    }
    let total_bytes = bytes.len() as f64 * 4000.0;
    let start = std::time::Instant::now();
    for _ in 0..5 {
        let mut offset = 0;
        while offset < p.high_watermark() {
            let r = p.read(offset, 1 << 20).unwrap();
            let last = split(&r.records).last().unwrap().1;
            offset = last + 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!("read {:.0} MB/s", total_bytes * 5.0 / secs / 1e6);
}
