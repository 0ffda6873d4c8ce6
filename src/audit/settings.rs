//! The `[audit]` config section.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Which authorization *allows* of data operations are audited (denials and administrative
/// allows always are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DataOperations {
    #[serde(rename = "off")]
    Off,
    /// Once per session per (action, resource).
    #[serde(rename = "first-use")]
    FirstUse,
    #[serde(rename = "all")]
    All,
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Write the hash-chained JSON Lines files.
    pub file: bool,
    /// Directory of the audit files; relative to `storage.data_dir` unless absolute.
    pub dir: PathBuf,
    /// Start a new file once the current one would pass this size.
    pub rotate_bytes: u64,
    /// fsync the file after each drained batch of events.
    pub fsync: bool,
    /// Also append every event to the internal topic `__palisade_audit`.
    pub topic: bool,
    /// `retention.ms` of the audit topic (-1 = forever); at least one day.
    pub topic_retention_ms: i64,
    pub data_operations: DataOperations,
    /// Events buffered for the writer at most.
    pub buffer_events: usize,
    /// How long `record` waits for room in a full buffer before counting the event as lost.
    pub full_wait_ms: u64,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            file: true,
            dir: PathBuf::from("audit"),
            rotate_bytes: 100 * 1024 * 1024,
            fsync: true,
            topic: true,
            topic_retention_ms: 365 * 24 * 3_600_000,
            data_operations: DataOperations::FirstUse,
            buffer_events: 65_536,
            full_wait_ms: 50,
        }
    }
}

const DAY_MS: i64 = 24 * 3_600_000;

impl AuditSection {
    pub fn validate(&self) -> Result<(), String> {
        if self.rotate_bytes < 4096 {
            return Err("`audit.rotate_bytes` must be at least 4096".into());
        }
        if self.topic_retention_ms != -1 && self.topic_retention_ms < DAY_MS {
            return Err(format!(
                "`audit.topic_retention_ms` = {} is shorter than one day ({DAY_MS}); use -1 to keep forever",
                self.topic_retention_ms
            ));
        }
        if !(1..=10_000_000).contains(&self.buffer_events) {
            return Err("`audit.buffer_events` must be 1 to 10000000".into());
        }
        if self.full_wait_ms > 10_000 {
            return Err("`audit.full_wait_ms` must be at most 10000".into());
        }
        if self.file && self.dir.as_os_str().is_empty() {
            return Err("`audit.dir` is empty".into());
        }
        Ok(())
    }

    /// The audit directory, resolved against `data_dir`.
    pub fn resolved_dir(&self, data_dir: &Path) -> PathBuf {
        if self.dir.is_absolute() {
            self.dir.clone()
        } else {
            data_dir.join(&self.dir)
        }
    }
}
