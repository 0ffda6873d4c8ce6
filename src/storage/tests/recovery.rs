//! Opening after a crash: torn tails, bad CRCs, lost indexes.

use super::*;
use crate::storage::test_util::*;
use crate::storage::*;

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
async fn recovery_cuts_the_log_back_to_what_the_chain_covers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mgr = open(dir.path());
        let p = mgr
            .create_topic("t", 1, TopicConfig::default())
            .unwrap()
            .partition(0)
            .unwrap();
        append_n(&p, 6, 40).await;
        mgr.shutdown().unwrap();
    }
    // A crash where the log's last page reached the disk but the chain's did not.
    let chain_path = dir.path().join("t-0/00000000000000000000.chain");
    let len = std::fs::metadata(&chain_path).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&chain_path)
        .unwrap();
    file.set_len(len - chain::ENTRY_LEN - 10).unwrap();
    drop(file);
    let mgr = open(dir.path());
    let p = mgr.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(
        p.high_watermark(),
        12,
        "batches without a chain entry are dropped"
    );
    assert_eq!(read_all(&p).len(), 4);
    p.append(batch(Spec::new(1, 1)), Durability::Durable)
        .await
        .unwrap();
    mgr.shutdown().unwrap();
    let (findings, checked) = verify_data_dir(dir.path()).unwrap();
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(checked, 5);
}

#[tokio::test]
async fn interrupted_topic_deletion_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let leftover = dir.path().join("old-0.0123456789abcdef-delete");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("00000000000000000000.log"), b"junk").unwrap();
    let _mgr = open(dir.path());
    assert!(!leftover.exists());
}
