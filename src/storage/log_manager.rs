//! The set of topics in one data directory: open/recovery, create/delete/alter, the
//! flusher and retention threads, producer id allocation.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use super::file_cache::FileCache;
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

/// Topic changes in progress. The file work of a creation runs without the lock; the
/// reservation keeps the name taken and its partitions counted against the limit meanwhile.
#[derive(Default)]
struct AdminState {
    /// Topic name -> partitions it is adding.
    pending: HashMap<String, usize>,
}

/// One topic's change in progress; dropping it uncommitted releases the name.
struct Reservation<'a> {
    manager: &'a LogManager,
    name: String,
}

impl Reservation<'_> {
    /// Applies the change's metadata under the admin lock and releases the name in the same
    /// step, so its partitions are never counted twice.
    fn commit(self, apply: impl FnOnce() -> Result<(), StorageError>) -> Result<(), StorageError> {
        let mut admin = self.manager.admin.lock();
        let result = self.manager.ctx.health.check().and_then(|()| apply());
        admin.pending.remove(&self.name);
        self.manager.admin_idle.notify_all();
        result
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut admin = self.manager.admin.lock();
        if admin.pending.remove(&self.name).is_some() {
            self.manager.admin_idle.notify_all();
        }
    }
}

fn count(partitions: i32) -> usize {
    usize::try_from(partitions).unwrap_or(0)
}

/// The `<name>-<n>` directories of topic `name` in `data_dir` (another topic's directories
/// never match: theirs end in `-<n>` after a name that is not `name`).
fn partition_dirs(data_dir: &Path, name: &str) -> Result<Vec<PathBuf>, StorageError> {
    let prefix = format!("{name}-");
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(data_dir).map_err(io_err(data_dir))? {
        let path = entry.map_err(io_err(data_dir))?.path();
        let is_partition = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(&prefix))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_partition && path.is_dir() {
            dirs.push(path);
        }
    }
    Ok(dirs)
}

fn remove_dir_if_present(dir: &Path) -> Result<(), StorageError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(StorageError::Io {
            path: dir.to_path_buf(),
            source: err,
        }),
    }
}

pub struct LogManager {
    config: StorageConfig,
    ctx: DirContext,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes metadata changes so `topics.json` is written in order; holds the changes in
    /// progress.
    admin: Mutex<AdminState>,
    /// Signalled when a change in progress ends.
    admin_idle: Condvar,
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
            files: FileCache::new(config.max_open_files),
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
            admin: Mutex::new(AdminState::default()),
            admin_idle: Condvar::new(),
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
        let reservation = self.reserve(name, |existing| match existing {
            Some(_) => Err(StorageError::TopicExists(name.to_string())),
            None => Ok(count(partitions)),
        })?;
        config.warn_if_compaction_requested(name);
        // Directories of this name are orphans of a crash before `topics.json` was written.
        self.remove_partition_dirs(name)?;
        let topic_config = Arc::new(RwLock::new(config));
        let opened = self.open_partitions(name, 0..partitions, &topic_config)?;
        let tags = RwLock::new(topic_config.read().tags());
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id: uuid::Uuid::new_v4(),
            tags,
            config: topic_config,
            partitions: RwLock::new(opened),
        });
        let committed = reservation.commit(|| {
            let mut topics = self.topics.read().clone();
            topics.insert(name.to_string(), Arc::clone(&topic));
            self.save(&topics)?;
            *self.topics.write() = topics;
            Ok(())
        });
        if let Err(err) = committed {
            self.undo_partitions(&topic.partitions());
            return Err(err);
        }
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<(), StorageError> {
        let doomed = {
            let mut admin = self.admin.lock();
            self.wait_for_change(&mut admin, name);
            let mut topics = self.topics.read().clone();
            let topic = topics
                .remove(name)
                .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
            self.save(&topics)?;
            *self.topics.write() = topics;
            for partition in topic.partitions() {
                partition.close();
            }
            // Renamed before the lock is released, so a creation of the same name never meets
            // them; a crash before removal leaves `-delete` dirs that are cleaned on open.
            // Every `<name>-<n>` goes, orphans of an interrupted creation included.
            let mut doomed = Vec::new();
            for dir in partition_dirs(self.data_dir(), name)? {
                let target = self.data_dir().join(format!(
                    "{}.{}-delete",
                    dir.file_name().and_then(|n| n.to_str()).unwrap_or(name),
                    uuid::Uuid::new_v4().simple()
                ));
                std::fs::rename(&dir, &target).map_err(io_err(&dir))?;
                doomed.push(target);
            }
            sync_dir(self.data_dir()).map_err(io_err(self.data_dir()))?;
            doomed
        };
        for dir in doomed {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }

    pub fn create_partitions(&self, name: &str, new_total: i32) -> Result<(), StorageError> {
        let mut current = 0;
        let reservation = self.reserve(name, |existing| {
            let topic = existing.ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
            current = topic.partition_count();
            if new_total <= current || new_total > MAX_PARTITIONS {
                return Err(StorageError::InvalidPartitions(format!(
                    "topic `{name}` has {current} partitions; {new_total} must be more and at most {MAX_PARTITIONS}"
                )));
            }
            Ok(count(new_total.saturating_sub(current)))
        })?;
        // A pending change keeps the topic from being deleted or changed meanwhile.
        let topic = self
            .topic(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        for index in current..new_total {
            remove_dir_if_present(&self.data_dir().join(format!("{name}-{index}")))?;
        }
        let added = self.open_partitions(name, current..new_total, &topic.config)?;
        let committed = reservation.commit(|| {
            topic.partitions.write().extend(added.iter().cloned());
            let saved = self.save(&self.topics.read());
            if saved.is_err() {
                topic
                    .partitions
                    .write()
                    .truncate(usize::try_from(current).unwrap_or(0));
            }
            saved
        });
        if let Err(err) = committed {
            self.undo_partitions(&added);
            return Err(err);
        }
        Ok(())
    }

    /// Refuses `adding` partitions that would pass the broker's limit (for requests that only
    /// validate).
    pub fn check_partition_limit(&self, adding: usize) -> Result<(), StorageError> {
        let admin = self.admin.lock();
        self.within_limit(&admin, adding)
    }

    fn within_limit(&self, admin: &AdminState, adding: usize) -> Result<(), StorageError> {
        let existing: usize = self
            .topics
            .read()
            .values()
            .map(|t| t.partitions.read().len())
            .sum::<usize>()
            .saturating_add(admin.pending.values().sum());
        let limit = self.config.max_partitions;
        if existing.saturating_add(adding) > limit {
            return Err(StorageError::PartitionLimit {
                adding,
                existing,
                limit,
            });
        }
        Ok(())
    }

    /// Waits until no change of `name` is in progress (callers run on blocking threads).
    fn wait_for_change(&self, admin: &mut parking_lot::MutexGuard<'_, AdminState>, name: &str) {
        while admin.pending.contains_key(name) {
            self.admin_idle.wait(admin);
        }
    }

    /// Takes `name` for one change: `check` sees the topic as it is and returns how many
    /// partitions the change adds, counted against the limit until it is committed or undone.
    fn reserve(
        &self,
        name: &str,
        check: impl FnOnce(Option<&Arc<Topic>>) -> Result<usize, StorageError>,
    ) -> Result<Reservation<'_>, StorageError> {
        let mut admin = self.admin.lock();
        self.wait_for_change(&mut admin, name);
        self.ctx.health.check()?;
        let adding = check(self.topics.read().get(name))?;
        self.within_limit(&admin, adding)?;
        admin.pending.insert(name.to_string(), adding);
        Ok(Reservation {
            manager: self,
            name: name.to_string(),
        })
    }

    /// Opens new partitions `indexes` of `name`; on failure nothing of them is left on disk.
    fn open_partitions(
        &self,
        name: &str,
        indexes: std::ops::Range<i32>,
        config: &Arc<RwLock<TopicConfig>>,
    ) -> Result<Vec<Arc<Partition>>, StorageError> {
        let mut opened = Vec::new();
        let mut result = Ok(());
        for index in indexes.clone() {
            match Partition::open(self.data_dir(), name, index, Arc::clone(config), &self.ctx) {
                Ok(partition) => opened.push(partition),
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
        }
        let result =
            result.and_then(|()| sync_dir(self.data_dir()).map_err(io_err(self.data_dir())));
        if let Err(err) = result {
            for partition in &opened {
                partition.close();
            }
            drop(opened);
            for index in indexes {
                let dir = self.data_dir().join(format!("{name}-{index}"));
                if let Err(cleanup) = remove_dir_if_present(&dir) {
                    tracing::warn!(%cleanup, "could not remove a partition of a failed creation");
                }
            }
            return Err(err);
        }
        Ok(opened)
    }

    /// Removes partitions whose creation could not be committed.
    fn undo_partitions(&self, partitions: &[Arc<Partition>]) {
        for partition in partitions {
            partition.close();
            let dir = self.data_dir().join(partition.name());
            if let Err(err) = remove_dir_if_present(&dir) {
                tracing::warn!(%err, "could not remove a partition of a failed creation");
            }
        }
    }

    /// Removes every `<name>-<n>` directory (only under a reservation of `name`).
    fn remove_partition_dirs(&self, name: &str) -> Result<(), StorageError> {
        for dir in partition_dirs(self.data_dir(), name)? {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }

    pub fn alter_topic_config(&self, name: &str, config: TopicConfig) -> Result<(), StorageError> {
        self.update_topic_config(name, |current| {
            *current = config;
            Ok::<(), StorageError>(())
        })?
    }

    /// Reads topic `name`'s config, applies `change` and saves the result, all under the
    /// admin lock, so two changes of different keys (a retag and a retention change) never
    /// undo each other. A failed `change` (its error is the inner one) saves nothing.
    pub fn update_topic_config<E>(
        &self,
        name: &str,
        change: impl FnOnce(&mut TopicConfig) -> Result<(), E>,
    ) -> Result<Result<(), E>, StorageError> {
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        let mut config = topic.config();
        if let Err(e) = change(&mut config) {
            return Ok(Err(e));
        }
        config.validate()?;
        let tags = config.tags();
        config.warn_if_compaction_requested(name);
        let previous = std::mem::replace(&mut *topic.config.write(), config);
        if let Err(err) = self.save(&self.topics.read()) {
            *topic.config.write() = previous;
            return Err(err);
        }
        *topic.tags.write() = tags;
        Ok(Ok(()))
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

    /// Segment file descriptors held open now (bounded by `max_open_files`).
    pub fn open_segment_files(&self) -> usize {
        self.ctx.files.open_count()
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
