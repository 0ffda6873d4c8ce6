//! The set of topics in one data directory: open/recovery, create/delete/alter, the
//! flusher and retention threads, producer id allocation.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::flusher::{DirHealth, Flusher};
use super::fsutil::{io_err, now_ms, sync_dir};
use super::partition::{DirContext, Partition};
use super::retention::{spawn_periodic, StopSignal};
use super::topic_meta::{
    load_topics, save_topics, validate_topic_name, ProducerIdAllocator, TopicRecord,
};
use super::{StorageConfig, StorageError, TopicConfig};

/// More partitions than this in one request is almost certainly a mistake.
const MAX_PARTITIONS: i32 = 100_000;

pub struct Topic {
    name: String,
    id: uuid::Uuid,
    config: Arc<RwLock<TopicConfig>>,
    /// `palisade.tags`, parsed once per config change: policies read them on every request.
    tags: RwLock<Arc<[String]>>,
    partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn id(&self) -> uuid::Uuid {
        self.id
    }
    pub fn config(&self) -> TopicConfig {
        self.config.read().clone()
    }
    /// The topic's tags (config `palisade.tags`).
    pub fn tags(&self) -> Arc<[String]> {
        self.tags.read().clone()
    }
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.read().len()).unwrap_or(i32::MAX)
    }
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let index = usize::try_from(index).ok()?;
        self.partitions.read().get(index).cloned()
    }
    /// Every partition, in index order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }

    fn record(&self) -> TopicRecord {
        TopicRecord {
            name: self.name.clone(),
            id: self.id.to_string(),
            partitions: self.partition_count(),
            config: self.config(),
        }
    }
}

pub struct LogManager {
    config: StorageConfig,
    ctx: DirContext,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes metadata changes so `topics.json` is written in order.
    admin: Mutex<()>,
    producer_ids: Mutex<ProducerIdAllocator>,
    retention_stop: Arc<StopSignal>,
    retention_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl LogManager {
    pub fn open(config: StorageConfig) -> Result<Arc<Self>, StorageError> {
        let data_dir = config.data_dir.clone();
        let meta = data_dir.join("meta");
        std::fs::create_dir_all(&meta).map_err(io_err(&meta))?;
        remove_leftover_deletions(&data_dir)?;

        let health = Arc::new(DirHealth::new(&data_dir));
        let interval =
            (config.flush_interval_ms > 0).then(|| Duration::from_millis(config.flush_interval_ms));
        let flusher =
            Arc::new(Flusher::start(Arc::clone(&health), interval).map_err(io_err(&data_dir))?);
        let ctx = DirContext {
            health,
            flusher,
            policy: config.flush,
        };

        let mut topics = BTreeMap::new();
        for record in load_topics(&data_dir)? {
            let id = uuid::Uuid::parse_str(&record.id).map_err(|err| StorageError::Corrupt {
                path: super::topic_meta::topics_path(&data_dir),
                reason: format!("bad topic id for `{}`: {err}", record.name),
            })?;
            record.config.warn_if_compaction_requested(&record.name);
            let topic_config = Arc::new(RwLock::new(record.config));
            let mut partitions = Vec::new();
            for index in 0..record.partitions {
                partitions.push(Partition::open(
                    &data_dir,
                    &record.name,
                    index,
                    Arc::clone(&topic_config),
                    &ctx,
                )?);
            }
            let tags = RwLock::new(topic_config.read().tags());
            let topic = Topic {
                name: record.name.clone(),
                id,
                tags,
                config: topic_config,
                partitions: RwLock::new(partitions),
            };
            topics.insert(record.name, Arc::new(topic));
        }
        let producer_ids = ProducerIdAllocator::open(&data_dir)?;
        let retention_interval = Duration::from_millis(config.retention_check_interval_ms.max(1));
        let manager = Arc::new(Self {
            config,
            ctx,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            producer_ids: Mutex::new(producer_ids),
            retention_stop: Arc::new(StopSignal::default()),
            retention_thread: Mutex::new(None),
        });
        let thread = spawn_periodic(
            "palisade-retention",
            Arc::downgrade(&manager),
            retention_interval,
            Arc::clone(&manager.retention_stop),
            |m: &LogManager| {
                m.run_retention();
            },
        )
        .map_err(io_err(&data_dir))?;
        *manager.retention_thread.lock() = Some(thread);
        Ok(manager)
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    fn save(&self, topics: &BTreeMap<String, Arc<Topic>>) -> Result<(), StorageError> {
        save_topics(
            self.data_dir(),
            topics.values().map(|t| t.record()).collect(),
        )
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
    ) -> Result<Arc<Topic>, StorageError> {
        validate_topic_name(name)?;
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(StorageError::InvalidPartitions(format!(
                "{partitions} (must be 1 to {MAX_PARTITIONS})"
            )));
        }
        config.validate()?;
        let _admin = self.admin.lock();
        self.ctx.health.check()?;
        if self.topics.read().contains_key(name) {
            return Err(StorageError::TopicExists(name.to_string()));
        }
        config.warn_if_compaction_requested(name);
        let topic_config = Arc::new(RwLock::new(config));
        let mut opened = Vec::new();
        for index in 0..partitions {
            // A directory here is an orphan of a crash before `topics.json` was written.
            let dir = self.data_dir().join(format!("{name}-{index}"));
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            }
            opened.push(Partition::open(
                self.data_dir(),
                name,
                index,
                Arc::clone(&topic_config),
                &self.ctx,
            )?);
        }
        sync_dir(self.data_dir()).map_err(io_err(self.data_dir()))?;
        let tags = RwLock::new(topic_config.read().tags());
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id: uuid::Uuid::new_v4(),
            tags,
            config: topic_config,
            partitions: RwLock::new(opened),
        });
        let mut topics = self.topics.read().clone();
        topics.insert(name.to_string(), Arc::clone(&topic));
        self.save(&topics)?;
        *self.topics.write() = topics;
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<(), StorageError> {
        let _admin = self.admin.lock();
        let mut topics = self.topics.read().clone();
        let topic = topics
            .remove(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        self.save(&topics)?;
        *self.topics.write() = topics;
        let mut doomed = Vec::new();
        for partition in topic.partitions() {
            partition.close();
            // Rename first: a crash before removal leaves a `-delete` dir cleaned on open.
            let dir = self.data_dir().join(partition.name());
            let target = self.data_dir().join(format!(
                "{}.{}-delete",
                partition.name(),
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::rename(&dir, &target).map_err(io_err(&dir))?;
            doomed.push(target);
        }
        sync_dir(self.data_dir()).map_err(io_err(self.data_dir()))?;
        for dir in doomed {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }

    pub fn create_partitions(&self, name: &str, new_total: i32) -> Result<(), StorageError> {
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        let current = topic.partition_count();
        if new_total <= current || new_total > MAX_PARTITIONS {
            return Err(StorageError::InvalidPartitions(format!(
                "topic `{name}` has {current} partitions; {new_total} must be more and at most {MAX_PARTITIONS}"
            )));
        }
        let mut added = Vec::new();
        for index in current..new_total {
            let dir = self.data_dir().join(format!("{name}-{index}"));
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            }
            added.push(Partition::open(
                self.data_dir(),
                name,
                index,
                Arc::clone(&topic.config),
                &self.ctx,
            )?);
        }
        sync_dir(self.data_dir()).map_err(io_err(self.data_dir()))?;
        topic.partitions.write().extend(added);
        self.save(&self.topics.read())
    }

    pub fn alter_topic_config(&self, name: &str, config: TopicConfig) -> Result<(), StorageError> {
        config.validate()?;
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        let tags = config.tags();
        config.warn_if_compaction_requested(name);
        let previous = std::mem::replace(&mut *topic.config.write(), config);
        if let Err(err) = self.save(&self.topics.read()) {
            *topic.config.write() = previous;
            return Err(err);
        }
        *topic.tags.write() = tags;
        Ok(())
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// Applies retention to every partition now; returns the number of segments deleted.
    pub fn run_retention(&self) -> usize {
        let now = now_ms();
        let mut deleted = 0;
        for topic in self.topics() {
            for partition in topic.partitions() {
                match partition.enforce_retention(now) {
                    Ok(n) => deleted += n,
                    Err(err) => {
                        tracing::warn!(partition = %partition.name(), %err, "retention failed")
                    }
                }
            }
        }
        deleted
    }

    /// Number of fsyncs the flusher issued (metrics; tests use it to check group commit).
    pub fn fsync_count(&self) -> u64 {
        self.ctx.flusher.fsync_count()
    }

    /// Number of group-commit rounds so far.
    pub fn flush_rounds(&self) -> u64 {
        self.ctx.flusher.round_count()
    }

    /// (partition name, next offset, head digest) of every partition, for anchoring the
    /// tamper-evidence chain outside the broker.
    pub fn head_digests(&self) -> Vec<(String, i64, [u8; 32])> {
        let mut heads = Vec::new();
        for topic in self.topics() {
            for partition in topic.partitions() {
                let (next, digest) = partition.head_digest();
                heads.push((partition.name(), next, digest));
            }
        }
        heads
    }

    pub fn shutdown(&self) -> Result<(), StorageError> {
        self.retention_stop.stop();
        if let Some(thread) = self.retention_thread.lock().take() {
            if thread.thread().id() != std::thread::current().id() && thread.join().is_err() {
                tracing::error!("retention thread panicked");
            }
        }
        self.ctx.health.check()?;
        self.ctx.health.close();
        // Taking each writer lock waits for appends already past the health check.
        for topic in self.topics() {
            for partition in topic.partitions() {
                drop(partition.writer.lock());
            }
        }
        self.ctx.flusher.flush_blocking()?;
        for topic in self.topics() {
            for partition in topic.partitions() {
                partition.sync_all()?;
            }
        }
        self.ctx.flusher.stop();
        self.ctx.health.check_failed()
    }

    #[cfg(test)]
    pub(super) fn health(&self) -> &DirHealth {
        &self.ctx.health
    }

    /// Runs a flush round now and waits for it.
    #[cfg(test)]
    pub(super) fn flush_now(&self) -> Result<(), StorageError> {
        self.ctx.flusher.flush_blocking()
    }

    pub fn allocate_producer_id(&self) -> Result<i64, StorageError> {
        self.ctx.health.check()?;
        self.producer_ids.lock().allocate()
    }
}

impl Drop for LogManager {
    fn drop(&mut self) {
        self.retention_stop.stop();
    }
}

/// Finishes topic deletions a crash interrupted (`<topic>-<n>.<id>-delete` directories).
fn remove_leftover_deletions(data_dir: &Path) -> Result<(), StorageError> {
    for entry in std::fs::read_dir(data_dir).map_err(io_err(data_dir))? {
        let path = entry.map_err(io_err(data_dir))?.path();
        let doomed = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("-delete"));
        if doomed && path.is_dir() {
            tracing::info!(dir = %path.display(), "removing partially deleted topic directory");
            std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}
