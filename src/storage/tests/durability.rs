//! Group commit, the page-cache policy, fsync failure, shutdown.

use crate::storage::test_util::*;
use crate::storage::*;

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

/// A tailing consumer (the high watermark a fetch long poll waits on, and the read itself)
/// never sees a batch whose fsync failed, whatever the producer's acks.
async fn refused_batch_stays_invisible(durability: Durability) {
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
    let mut tail = p.watch_high_watermark();
    assert_eq!(*tail.borrow_and_update(), 1);
    mgr.health()
        .inject_fsync_error
        .store(true, std::sync::atomic::Ordering::Release);
    let pending = p.append_now(batch(Spec::new(2, 10)), durability).unwrap();
    // Written to the page cache, not yet synced: nothing new for consumers.
    assert_eq!(p.high_watermark(), 1);
    assert!(!tail.has_changed().unwrap());
    match p.read(1, 1 << 20) {
        Ok(read) => assert!(read.records.is_empty(), "unsynced batch was readable"),
        Err(err) => assert!(matches!(err, StorageError::LogDirFailed(..)), "{err}"),
    }
    let acked = pending.durable().await;
    assert_eq!(acked.is_ok(), durability == Durability::Written);
    // The round fails the directory; the batch is never published.
    mgr.flush_now().unwrap_err();
    assert_eq!(p.high_watermark(), 1);
    assert!(!tail.has_changed().unwrap());
}

#[tokio::test]
async fn acks_all_batch_whose_fsync_fails_is_never_visible() {
    refused_batch_stays_invisible(Durability::Durable).await;
}

#[tokio::test]
async fn acks_one_batch_whose_fsync_fails_is_never_visible() {
    refused_batch_stays_invisible(Durability::Written).await;
}

#[tokio::test]
async fn acks_one_batch_becomes_visible_once_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    let p = mgr
        .create_topic("t", 1, TopicConfig::default())
        .unwrap()
        .partition(0)
        .unwrap();
    let rounds = mgr.flush_rounds();
    let mut tail = p.watch_high_watermark();
    p.append(batch(Spec::new(3, 10)), Durability::Written)
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), tail.changed())
        .await
        .expect("an acks=1 batch never became visible")
        .unwrap();
    assert_eq!(*tail.borrow(), 3);
    assert!(
        mgr.flush_rounds() > rounds,
        "published before any fsync round"
    );
    assert_eq!(p.read(0, 1 << 20).unwrap().high_watermark, 3);
}

#[tokio::test]
async fn page_cache_policy_publishes_at_the_write() {
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
    let _pending = p
        .append_now(batch(Spec::new(2, 10)), Durability::Written)
        .unwrap();
    assert_eq!(p.high_watermark(), 2);
}
