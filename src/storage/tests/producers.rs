//! Idempotent producer sequence checks.

use crate::storage::test_util::*;
use crate::storage::*;

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
        p.append(send(0, 5, 1), Durability::Durable).await,
        Err(StorageError::OutOfOrderSequence(_))
    ));
    let first = p.append(send(0, 0, 3), Durability::Durable).await.unwrap();
    let second = p.append(send(0, 3, 2), Durability::Durable).await.unwrap();
    assert_eq!((first.base_offset, second.base_offset), (0, 3));
    let dup = p.append(send(0, 0, 3), Durability::Durable).await.unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 0);
    assert_eq!(p.high_watermark(), 5, "duplicates are not appended");
    assert!(matches!(
        p.append(send(0, 7, 1), Durability::Durable).await,
        Err(StorageError::OutOfOrderSequence(_))
    ));
    assert!(matches!(
        p.append(send(1, 5, 1), Durability::Durable).await,
        Err(StorageError::OutOfOrderSequence(_))
    ));
    p.append(send(1, 0, 1), Durability::Durable).await.unwrap();
    assert!(matches!(
        p.append(send(0, 5, 1), Durability::Durable).await,
        Err(StorageError::ProducerFenced(_))
    ));
    mgr.shutdown().unwrap();
    drop(p);
    drop(mgr);

    // The state is rebuilt from the log on open.
    let mgr = open(dir.path());
    let p = mgr.topic("t").unwrap().partition(0).unwrap();
    let dup = p.append(send(1, 0, 1), Durability::Durable).await.unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 5);
    assert!(matches!(
        p.append(send(0, 1, 1), Durability::Durable).await,
        Err(StorageError::ProducerFenced(_))
    ));
    assert_eq!(
        p.append(send(1, 1, 1), Durability::Durable)
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
