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
//! <data>/<topic>-<partition>/log-start-offset   DeleteRecords checkpoint (atomic write)
//! <data>/meta/producer-ids.json           producer ids reserved ahead, in blocks of 1000
//! <data>/<topic>-<partition>.<id>-delete  a deletion in progress, removed on open
//! ```
//!
//! # Durability
//! Appends write into the page cache under the partition's writer lock. Under
//! `FlushPolicy::GroupCommit` every append asks the flusher thread for a round, which fsyncs
//! each dirty `.log` and `.chain` once for all appends meanwhile; only after that round
//! succeeded does the high watermark cover the batch (so consumers never read what a failed
//! fsync or a crash can take back), and `Durability::Durable` (acks=all) is acknowledged then.
//! `Durability::Written` (acks=0/1) is acknowledged at the write but becomes visible with the
//! round too. Under `FlushPolicy::PageCache` the high watermark moves at the write, as in
//! Kafka. A failed fsync takes the directory offline for good.
//!
//! # Module map
//! - `batch`: the v2 batch header fields storage reads and rewrites.
//! - `segment`, `index`, `time_index`, `chain`: one segment's files.
//! - `partition`: append (offsets, producer checks, roll); `read`: the read path.
//! - `flusher`: group commit and log directory failure.
//! - `recovery`: validating and truncating segments on open, index rebuild.
//! - `retention`: time/size retention and the log start offset.
//! - `log_manager`: topics, metadata, background threads; `topic_meta`: configs.
//! - `verify`: offline check of the tamper-evidence chain.
//!
//! # Tamper evidence
//! Every stored batch is chained: `digest_n = SHA-256(digest_{n-1} || batch_n)`, starting
//! from 32 zero bytes. `verify` detects any edited, inserted, deleted or reordered batch
//! while the chain files are intact, and a log truncated relative to its chain. It cannot
//! detect a consistent rewrite of both log and chain (there is no secret key): record the
//! head digests (`LogManager::head_digests`, `verify_data_dir_report`) outside the broker.
//! Recovery after a crash truncates the chain to the log (a torn tail is expected then), so
//! run `verify` before restarting a broker suspected of tampering.

use std::path::PathBuf;

mod batch;
mod chain;
mod entry_file;
mod file_cache;
mod flusher;
mod fsutil;
mod high_watermark;
mod index;
mod log_manager;
mod partition;
mod producer_state;
mod read;
mod recovery;
mod retention;
mod scan;
mod segment;
mod time_index;
mod topic_meta;
pub use topic_meta::{cleanup_includes, parse_tags, TAGS_CONFIG};
mod verify;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

pub use log_manager::{LogManager, Topic};
pub use partition::{Partition, PendingAppend};
pub use topic_meta::validate_topic_name;
pub use verify::{
    verify_against, verify_data_dir, verify_data_dir_report, PartitionHead, VerifyReport,
};

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
    /// Partitions the broker holds in all, counting creations in progress; a creation that
    /// would pass it is refused before anything is created.
    pub max_partitions: usize,
    /// Segment files (log, indexes, chain) held open at once; the least recently used are
    /// closed and reopened on demand.
    pub max_open_files: usize,
}

/// Default of [`StorageConfig::max_partitions`].
pub const DEFAULT_MAX_PARTITIONS: usize = 10_000;
/// Default of [`StorageConfig::max_open_files`].
pub const DEFAULT_MAX_OPEN_FILES: usize = 1_024;

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
    /// `cleanup.policy`: "delete" (compaction is accepted but not performed yet: see
    /// [`TopicConfig::warn_if_compaction_requested`]).
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
    #[error("{adding} more partitions would pass the broker's limit of {limit} ({existing} exist or are being created)")]
    PartitionLimit {
        adding: usize,
        existing: usize,
        limit: usize,
    },
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
    pub records: bytes::Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
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
