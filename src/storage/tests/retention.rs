//! Retention by size and time, DeleteRecords.

use super::*;
use crate::storage::test_util::*;
use crate::storage::*;

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
        p.append(batch(Spec::new(2, 100).ts(old)), Durability::Durable)
            .await
            .unwrap();
    }
    let recent = fsutil::now_ms();
    p.append(batch(Spec::new(2, 100).ts(recent)), Durability::Durable)
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
    p.append(batch(Spec::new(2, 100).ts(old)), Durability::Durable)
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
