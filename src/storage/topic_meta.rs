//! Topic configuration (Kafka names, defaults, validation), topic name rules, and the
//! durable metadata files under `<data>/meta/`: `topics.json` and `producer-ids.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::fsutil::{atomic_write, remove_leftovers};
use super::{StorageError, TopicConfig};

/// Kafka topic configs Palisade stores and returns but does not interpret.
const PASSTHROUGH_CONFIGS: &[&str] = &[
    TAGS_CONFIG,
    "compression.type",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.storage.enable",
    "segment.index.bytes",
    "segment.jitter.ms",
    "unclean.leader.election.enable",
];

impl Default for TopicConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        Self {
            retention_ms: 604_800_000,
            retention_bytes: -1,
            segment_bytes: 1 << 30,
            segment_ms: 604_800_000,
            cleanup_policy: "delete".into(),
            max_message_bytes: 1_048_588,
            message_timestamp_type: "CreateTime".into(),
            extra: BTreeMap::new(),
        }
    }
}

fn invalid(key: &str, value: &str, why: &str) -> StorageError {
    StorageError::InvalidConfig(format!("invalid value `{value}` for `{key}`: {why}"))
}

fn parse_num<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    key: &str,
    value: &str,
    min: T,
) -> Result<T, StorageError> {
    let n: T = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not a number"))?;
    if n < min {
        return Err(invalid(key, value, &format!("must be at least {min}")));
    }
    Ok(n)
}

/// The topic config holding a topic's tags for policies, comma separated.
pub const TAGS_CONFIG: &str = "palisade.tags";

/// Tags from a `palisade.tags` value: comma separated, trimmed, empty entries dropped.
pub fn parse_tags(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether a `cleanup.policy` value (`delete`, `compact` or both, comma separated) includes
/// `which`.
pub fn cleanup_includes(policy: &str, which: &str) -> bool {
    policy.split(',').any(|p| p.trim() == which)
}

impl TopicConfig {
    /// Compaction is accepted (Kafka Connect and Streams create compacted topics and check the
    /// setting) but not performed: superseded and tombstoned records are kept (until retention
    /// deletes them with `compact,delete`; for good with `compact` alone). Said whenever such
    /// a topic is created, altered or opened, because a tombstone that does not erase matters
    /// (GDPR erasure requests rely on it).
    pub fn warn_if_compaction_requested(&self, topic: &str) {
        if cleanup_includes(&self.cleanup_policy, "compact") {
            tracing::warn!(
                topic,
                cleanup_policy = %self.cleanup_policy,
                "compaction is not performed by this broker: records superseded by a later value or a tombstone are kept (with compact,delete until retention.ms/retention.bytes delete them; with compact alone for good)"
            );
        }
    }

    /// The parsed `palisade.tags`.
    pub fn tags(&self) -> std::sync::Arc<[String]> {
        self.extra
            .get(TAGS_CONFIG)
            .map(|v| parse_tags(v))
            .unwrap_or_default()
            .into()
    }

    /// Sets one config by its Kafka name, validating the value (IncrementalAlterConfigs SET,
    /// CreateTopics configs).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        match key {
            "retention.ms" => self.retention_ms = parse_num(key, value, -1i64)?,
            "retention.bytes" => self.retention_bytes = parse_num(key, value, -1i64)?,
            "segment.bytes" => {
                let n: u64 = parse_num(key, value, 14u64)?;
                if n > i32::MAX as u64 {
                    return Err(invalid(key, value, "must be at most 2147483647"));
                }
                self.segment_bytes = n;
            }
            "segment.ms" => self.segment_ms = parse_num(key, value, 1i64)?,
            "cleanup.policy" => {
                let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
                parts.sort_unstable();
                parts.dedup();
                if parts.is_empty() || parts.iter().any(|p| *p != "delete" && *p != "compact") {
                    return Err(invalid(key, value, "must be `delete`, `compact` or both"));
                }
                self.cleanup_policy = value.trim().to_string();
            }
            "max.message.bytes" => self.max_message_bytes = parse_num(key, value, 0i32)?,
            "message.timestamp.type" => match value {
                "CreateTime" | "LogAppendTime" => self.message_timestamp_type = value.to_string(),
                _ => {
                    return Err(invalid(
                        key,
                        value,
                        "must be `CreateTime` or `LogAppendTime`",
                    ))
                }
            },
            _ if PASSTHROUGH_CONFIGS.contains(&key) => {
                self.extra.insert(key.to_string(), value.to_string());
            }
            _ => {
                return Err(StorageError::InvalidConfig(format!(
                    "unknown topic config `{key}`"
                )))
            }
        }
        Ok(())
    }

    /// Resets one config to its default (IncrementalAlterConfigs DELETE).
    pub fn reset(&mut self, key: &str) -> Result<(), StorageError> {
        let defaults = Self::default();
        match defaults.entries().into_iter().find(|(k, _)| k == key) {
            Some((_, value)) => self.set(key, &value),
            None if PASSTHROUGH_CONFIGS.contains(&key) => {
                self.extra.remove(key);
                Ok(())
            }
            None => Err(StorageError::InvalidConfig(format!(
                "unknown topic config `{key}`"
            ))),
        }
    }

    /// A copy of `self` with `overrides` applied (CreateTopics).
    pub fn with_overrides<'a>(
        &self,
        overrides: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, StorageError> {
        let mut config = self.clone();
        for (key, value) in overrides {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Every config with its value, sorted by name (DescribeConfigs).
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut entries: Vec<(String, String)> = vec![
            ("cleanup.policy".into(), self.cleanup_policy.clone()),
            (
                "max.message.bytes".into(),
                self.max_message_bytes.to_string(),
            ),
            (
                "message.timestamp.type".into(),
                self.message_timestamp_type.clone(),
            ),
            ("retention.bytes".into(), self.retention_bytes.to_string()),
            ("retention.ms".into(), self.retention_ms.to_string()),
            ("segment.bytes".into(), self.segment_bytes.to_string()),
            ("segment.ms".into(), self.segment_ms.to_string()),
        ];
        entries.extend(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        entries.sort();
        entries
    }

    /// Checks a whole config (e.g. one built by hand or read from disk).
    pub fn validate(&self) -> Result<(), StorageError> {
        let mut copy = Self::default();
        for (key, value) in self.entries() {
            copy.set(&key, &value)?;
        }
        Ok(())
    }
}

/// Kafka's topic name rules: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), StorageError> {
    let bad =
        |why: &str| StorageError::InvalidConfig(format!("invalid topic name `{name}`: {why}"));
    if name.is_empty() || name.len() > 249 {
        return Err(bad("must be 1 to 249 characters"));
    }
    if name == "." || name == ".." {
        return Err(bad("`.` and `..` are reserved"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(bad(
            "only ASCII letters, digits, `.`, `_` and `-` are allowed",
        ));
    }
    Ok(())
}

/// One topic in `topics.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub id: String,
    pub partitions: i32,
    pub config: TopicConfig,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct TopicsFile {
    version: u32,
    topics: Vec<TopicRecord>,
}

pub fn topics_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("topics.json")
}

pub fn load_topics(data_dir: &Path) -> Result<Vec<TopicRecord>, StorageError> {
    let path = topics_path(data_dir);
    remove_leftovers(&path)?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<TopicsFile>(&bytes)
            .map(|f| f.topics)
            .map_err(|err| StorageError::Corrupt {
                path,
                reason: err.to_string(),
            }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(StorageError::Io { path, source }),
    }
}

pub fn save_topics(data_dir: &Path, topics: Vec<TopicRecord>) -> Result<(), StorageError> {
    let path = topics_path(data_dir);
    let file = TopicsFile { version: 1, topics };
    let bytes = serde_json::to_vec_pretty(&file).map_err(|err| StorageError::Corrupt {
        path: path.clone(),
        reason: err.to_string(),
    })?;
    atomic_write(&path, &bytes)
}

/// Ids are reserved on disk in blocks ahead of use, so a restart skips to the next block.
const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(serde::Serialize, serde::Deserialize)]
struct ProducerIdsFile {
    reserved_until: i64,
}

pub struct ProducerIdAllocator {
    path: PathBuf,
    next: i64,
    reserved_until: i64,
}

impl ProducerIdAllocator {
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        let path = data_dir.join("meta").join("producer-ids.json");
        remove_leftovers(&path)?;
        let reserved_until = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<ProducerIdsFile>(&bytes)
                    .map_err(|err| StorageError::Corrupt {
                        path: path.clone(),
                        reason: err.to_string(),
                    })?
                    .reserved_until
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => return Err(StorageError::Io { path, source }),
        };
        Ok(Self {
            path,
            next: reserved_until,
            reserved_until,
        })
    }

    pub fn allocate(&mut self) -> Result<i64, StorageError> {
        if self.next >= self.reserved_until {
            let reserved_until = self.next.saturating_add(PRODUCER_ID_BLOCK);
            let bytes = serde_json::to_vec(&ProducerIdsFile { reserved_until }).map_err(|err| {
                StorageError::Corrupt {
                    path: self.path.clone(),
                    reason: err.to_string(),
                }
            })?;
            atomic_write(&self.path, &bytes)?;
            self.reserved_until = reserved_until;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

impl super::StorageConfig {
    /// Settings with Palisade's defaults: group commit, a background flush every second,
    /// retention checked every five minutes (Kafka's default), Kafka topic defaults.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            flush: super::FlushPolicy::GroupCommit,
            flush_interval_ms: 1000,
            retention_check_interval_ms: 300_000,
            topic_defaults: TopicConfig::default(),
            max_partitions: super::DEFAULT_MAX_PARTITIONS,
            max_open_files: super::DEFAULT_MAX_OPEN_FILES,
        }
    }
}
