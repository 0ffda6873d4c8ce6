//! Durable partition logs: segments, indexes, the tamper-evidence chain, group commit,
//! recovery and retention.
//!
//! # Layout on disk
//! ```text
//! <data>/meta/topics.json                 topic names, ids, partition counts, configs
//! <data>/<topic>-<partition>/<base>.log   record batches, stored exactly as validated
//! <data>/<topic>-<partition>/<base>.index sparse offset index (relative offset -> position)
//! <data>/<topic>-<partition>/<base>.timeindex
//! <data>/<topic>-<partition>/<base>.chain SHA-256 chain, one digest per batch
//! ```
//!
//! STUB: the public API below is the contract the protocol handlers are written against.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

/// How appends reach stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlushPolicy {
    /// acks=all waits for an fsync shared by every batch that arrived meanwhile.
    GroupCommit,
    /// Acknowledge after the write reaches the page cache; a background task fsyncs every
    /// `flush_interval_ms` (Kafka's default behaviour).
    PageCache,
}

/// Storage-wide settings (from the `[storage]` config section).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub flush: FlushPolicy,
    pub flush_interval_ms: u64,
    pub retention_check_interval_ms: u64,
    /// Defaults for topics that do not override them.
    pub topic_defaults: TopicConfig,
}

/// Per-topic settings, as Kafka names them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicConfig {
    /// `retention.ms`; -1 = unlimited.
    pub retention_ms: i64,
    /// `retention.bytes` per partition; -1 = unlimited.
    pub retention_bytes: i64,
    /// `segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `cleanup.policy`: "delete" (compaction is accepted but not performed yet).
    pub cleanup_policy: String,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: i32,
    /// `message.timestamp.type`: "CreateTime" or "LogAppendTime".
    pub message_timestamp_type: String,
    /// Free-form configs Palisade does not interpret (kept so DescribeConfigs returns them).
    pub extra: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    #[error("partition {1} of topic `{0}` does not exist")]
    UnknownPartition(String, i32),
    #[error("offset {0} is out of range")]
    OffsetOutOfRange(i64),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("batch of {0} bytes exceeds max.message.bytes {1}")]
    BatchTooLarge(usize, i32),
    #[error("out of order sequence number for producer {0}")]
    OutOfOrderSequence(i64),
    #[error("producer {0} is fenced by a newer epoch")]
    ProducerFenced(i64),
    #[error("log directory `{0}` failed and is offline: {1}")]
    LogDirFailed(PathBuf, String),
    #[error("i/o error on `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt data in `{path}`: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The idempotence header fields of an incoming batch (producer_id < 0: not idempotent).
#[derive(Debug, Clone, Copy)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

/// A validated record batch (magic 2, CRC checked) ready to be appended.
#[derive(Debug, Clone)]
pub struct AppendBatch {
    /// The batch bytes exactly as received; storage rewrites base offset (and, for
    /// LogAppendTime topics, the max timestamp) before writing.
    pub bytes: bytes::BytesMut,
    pub record_count: i32,
    pub max_timestamp: i64,
    pub producer: ProducerInfo,
}

/// Whether the caller waits for the fsync (acks=all under group commit) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Return once the batch is in the page cache.
    Written,
    /// Return once the batch is on stable storage (per the flush policy).
    Durable,
}

#[derive(Debug, Clone, Copy)]
pub struct AppendInfo {
    pub base_offset: i64,
    /// -1 unless the topic uses LogAppendTime.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// True when the batch was a retried duplicate of an idempotent producer and was not
    /// appended again.
    pub duplicate: bool,
}

#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches starting at or before the requested offset; may be empty.
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

pub struct LogManager;
pub struct Topic;
pub struct Partition;

impl LogManager {
    /// Opens (creating if needed) the data directory and recovers every partition.
    pub fn open(_config: StorageConfig) -> Result<Arc<Self>, StorageError> {
        todo!()
    }
    pub fn data_dir(&self) -> &Path {
        todo!()
    }
    pub fn create_topic(
        &self,
        _name: &str,
        _partitions: i32,
        _config: TopicConfig,
    ) -> Result<Arc<Topic>, StorageError> {
        todo!()
    }
    pub fn delete_topic(&self, _name: &str) -> Result<(), StorageError> {
        todo!()
    }
    pub fn create_partitions(&self, _name: &str, _new_total: i32) -> Result<(), StorageError> {
        todo!()
    }
    pub fn alter_topic_config(
        &self,
        _name: &str,
        _config: TopicConfig,
    ) -> Result<(), StorageError> {
        todo!()
    }
    pub fn topic(&self, _name: &str) -> Option<Arc<Topic>> {
        todo!()
    }
    pub fn topic_by_id(&self, _id: uuid::Uuid) -> Option<Arc<Topic>> {
        todo!()
    }
    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        todo!()
    }
    /// Flushes everything and stops background tasks (called on shutdown).
    pub fn shutdown(&self) -> Result<(), StorageError> {
        todo!()
    }
}

impl Topic {
    pub fn name(&self) -> &str {
        todo!()
    }
    pub fn id(&self) -> uuid::Uuid {
        todo!()
    }
    pub fn config(&self) -> TopicConfig {
        todo!()
    }
    pub fn partition_count(&self) -> i32 {
        todo!()
    }
    pub fn partition(&self, _index: i32) -> Option<Arc<Partition>> {
        todo!()
    }
}

impl Partition {
    pub async fn append(
        &self,
        _batch: AppendBatch,
        _durability: Durability,
    ) -> Result<AppendInfo, StorageError> {
        todo!()
    }
    /// Reads whole batches from `offset` up to about `max_bytes` (at least one batch when
    /// `offset` has data, even if larger than `max_bytes`, as Kafka does).
    pub fn read(&self, _offset: i64, _max_bytes: usize) -> Result<ReadResult, StorageError> {
        todo!()
    }
    pub fn high_watermark(&self) -> i64 {
        todo!()
    }
    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }
    /// The earliest offset whose timestamp is >= `timestamp`, with that timestamp.
    pub fn offset_for_timestamp(
        &self,
        _timestamp: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        todo!()
    }
    /// The largest timestamp in the log and its offset (ListOffsets -3, KIP-734).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        todo!()
    }
    /// Advances the log start offset (DeleteRecords); returns the new low watermark.
    pub fn delete_records_before(&self, _offset: i64) -> Result<i64, StorageError> {
        todo!()
    }
    /// A receiver that changes whenever the high watermark moves (Fetch long-poll wake-up).
    pub fn watch_high_watermark(&self) -> tokio::sync::watch::Receiver<i64> {
        todo!()
    }
}

impl LogManager {
    /// Hands out a producer id that was never handed out before, also across restarts.
    pub fn allocate_producer_id(&self) -> Result<i64, StorageError> {
        todo!()
    }
}

/// What `palisade verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyFinding {
    /// The batch at `offset` no longer hashes to its chained digest, or the chain itself is
    /// broken there.
    Mismatch {
        partition: String,
        offset: i64,
        reason: String,
    },
}

/// Walks every partition under `data_dir` and checks every batch against the chain.
/// Returns the first finding per partition (empty = clean) and the number of batches checked.
pub fn verify_data_dir(_data_dir: &Path) -> Result<(Vec<VerifyFinding>, u64), StorageError> {
    todo!()
}

impl Default for TopicConfig {
    fn default() -> Self {
        todo!()
    }
}

impl TopicConfig {
    /// Sets one config by its Kafka name, validating the value.
    pub fn set(&mut self, _key: &str, _value: &str) -> Result<(), StorageError> {
        todo!()
    }
    /// Every config as (Kafka name, value).
    pub fn entries(&self) -> Vec<(String, String)> {
        todo!()
    }
}
