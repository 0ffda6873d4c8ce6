//! Appends and reads: offsets, segment rolls, the sparse index, timestamps.

use super::*;
use crate::storage::batch::BatchFrame;
use crate::storage::test_util::*;
use crate::storage::*;

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
        .append(batch(Spec::new(2, 10).ts(5)), Durability::Durable)
        .await
        .unwrap();
    assert!(info.log_append_time >= fsutil::now_ms() - 60_000);
    let stored = p.read(0, 1000).unwrap().records;
    let header = batch::StoredHeader::parse(&stored).unwrap();
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
            Durability::Durable,
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
    p.append(batch(Spec::new(1, 1)), Durability::Durable)
        .await
        .unwrap();
    assert_eq!(waiter.await.unwrap(), 101);
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
        Durability::Durable,
    )
    .await
    .unwrap();
    p.append(
        batch(Spec::new(10, 5).ts(200).ts_step(10)),
        Durability::Durable,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_see_only_whole_contiguous_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let p = mgr
        .create_topic("t", 1, small_segments(8_000))
        .unwrap()
        .partition(0)
        .unwrap();
    let reader = {
        let p = std::sync::Arc::clone(&p);
        tokio::task::spawn_blocking(move || {
            let mut offset = 0;
            while offset < 600 {
                let r = p.read(offset, 3_000).unwrap();
                for (base, last, bytes) in split(&r.records) {
                    assert_eq!(base, offset, "contiguous");
                    assert!(batch::crc_ok(&bytes), "whole batch at {base}");
                    offset = last + 1;
                }
                assert!(offset <= r.high_watermark);
            }
        })
    };
    for i in 0..200u8 {
        p.append(batch(Spec::new(3, 60).fill(i)), Durability::Durable)
            .await
            .unwrap();
    }
    reader.await.unwrap();
}

#[tokio::test]
async fn segments_roll_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let mut config = TopicConfig::default();
    config.set("segment.ms", "300").unwrap();
    let topic = mgr.create_topic("aging", 1, config).unwrap();
    let p = topic.partition(0).unwrap();
    append_n(&p, 2, 10).await;
    let pdir = dir.path().join("aging-0");
    assert_eq!(
        files(&pdir, "log").len(),
        1,
        "rolled before segment.ms passed"
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let bytes = batch_bytes(Spec::new(3, 10));
    let info = p
        .append(append_batch(&bytes), Durability::Durable)
        .await
        .unwrap();
    assert_eq!(info.base_offset, 6);
    let logs = files(&pdir, "log");
    assert_eq!(logs.len(), 2, "no roll after segment.ms: {logs:?}");
    assert_eq!(logs[1], "00000000000000000006.log");
}
