//! Topic metadata, configs, producer ids.

use crate::storage::test_util::*;
use crate::storage::*;

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
}

#[tokio::test]
async fn segment_files_stay_within_the_cache_and_reopen_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        max_open_files: 8,
        ..test_util::config(dir.path())
    };
    {
        let mgr = LogManager::open(config.clone()).unwrap();
        let topic = mgr.create_topic("t", 30, TopicConfig::default()).unwrap();
        assert!(
            mgr.open_segment_files() <= 8,
            "{}",
            mgr.open_segment_files()
        );
        for p in topic.partitions() {
            p.append(
                batch(Spec::new(2, 10).fill(p.index() as u8)),
                Durability::Durable,
            )
            .await
            .unwrap();
        }
        for p in topic.partitions() {
            let all = read_all(&p);
            assert_eq!(all.len(), 1, "partition {}", p.index());
            assert_eq!(all[0].1, 1);
        }
        assert!(
            mgr.open_segment_files() <= 8,
            "{}",
            mgr.open_segment_files()
        );
        mgr.shutdown().unwrap();
    }
    let mgr = LogManager::open(config).unwrap();
    assert!(mgr.open_segment_files() <= 8);
    let topic = mgr.topic("t").unwrap();
    for p in topic.partitions() {
        assert_eq!(p.high_watermark(), 2);
        p.append(batch(Spec::new(1, 10)), Durability::Durable)
            .await
            .unwrap();
        assert_eq!(read_all(&p).len(), 2);
    }
}

#[test]
fn partition_limit_refuses_before_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = LogManager::open(StorageConfig {
        max_partitions: 10,
        ..test_util::config(dir.path())
    })
    .unwrap();
    mgr.create_topic("a", 6, TopicConfig::default()).unwrap();
    assert!(matches!(
        mgr.create_topic("b", 5, TopicConfig::default()),
        Err(StorageError::PartitionLimit { .. })
    ));
    assert!(!dir.path().join("b-0").exists());
    assert!(matches!(
        mgr.create_partitions("a", 11),
        Err(StorageError::PartitionLimit { .. })
    ));
    assert!(!dir.path().join("a-6").exists());
    assert!(mgr.check_partition_limit(5).is_err());
    mgr.check_partition_limit(4).unwrap();
    mgr.create_partitions("a", 10).unwrap();
}

#[test]
fn failed_creation_leaves_no_directory_and_delete_removes_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = open(dir.path());
    // A file where partition 3's directory would go makes the creation fail half way.
    std::fs::write(dir.path().join("t-3"), b"in the way").unwrap();
    assert!(mgr.create_topic("t", 6, TopicConfig::default()).is_err());
    assert!(mgr.topic("t").is_none());
    for i in [0, 1, 2, 4, 5] {
        assert!(!dir.path().join(format!("t-{i}")).exists(), "t-{i} left");
    }
    std::fs::remove_file(dir.path().join("t-3")).unwrap();

    mgr.create_topic("t", 2, TopicConfig::default()).unwrap();
    mgr.create_topic("t-1", 1, TopicConfig::default()).unwrap();
    // Partitions of a CreatePartitions a crash cut short: on disk, not in the metadata.
    std::fs::create_dir(dir.path().join("t-2")).unwrap();
    std::fs::create_dir(dir.path().join("t-17")).unwrap();
    std::fs::create_dir(dir.path().join("t-x")).unwrap();
    mgr.delete_topic("t").unwrap();
    for name in ["t-0", "t-1", "t-2", "t-17"] {
        assert!(!dir.path().join(name).exists(), "{name} left");
    }
    // Another topic's partitions and directories that are no partition stay.
    assert!(dir.path().join("t-1-0").exists());
    assert!(dir.path().join("t-x").exists());
    assert_eq!(mgr.topic("t-1").unwrap().partition_count(), 1);
}

/// A crash between writing a metadata file's replacement and renaming it leaves the
/// temporary file behind; opening the log removes every such leftover (topics file, producer
/// ids, a partition's log-start checkpoint) and nothing else.
#[tokio::test]
async fn leftovers_of_an_interrupted_metadata_write_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mgr = open(dir.path());
        mgr.create_topic("a", 1, TopicConfig::default()).unwrap();
        mgr.allocate_producer_id().unwrap();
    }
    let leftover = |path: std::path::PathBuf| {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        path.with_file_name(format!(".{name}.0123456789abcdef.tmp"))
    };
    let meta = dir.path().join("meta");
    let files = [
        leftover(meta.join("topics.json")),
        leftover(meta.join("producer-ids.json")),
        leftover(dir.path().join("a-0").join("log-start-offset")),
    ];
    for f in &files {
        std::fs::write(f, b"half written").unwrap();
    }
    let unrelated = dir.path().join("a-0").join(".keep.tmp");
    std::fs::write(&unrelated, b"not ours").unwrap();
    let mgr = open(dir.path());
    assert_eq!(mgr.topics().len(), 1);
    for f in &files {
        assert!(!f.exists(), "{} was left behind", f.display());
    }
    assert!(
        unrelated.exists(),
        "a file that is no leftover of ours was removed"
    );
}
