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
#[serde(deny_unknown_fields, default)]
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
    /// Gateway mode: replication factor of the audit topic the gateway creates on the
    /// upstream; 0 = min(3, the upstream's brokers).
    pub upstream_replication_factor: i16,
    /// Gateway mode: audit lines held for the upstream topic while it cannot be written, at
    /// most this many; past it the oldest are dropped from the backlog (counted; the file
    /// keeps them).
    pub upstream_backlog_events: usize,
    /// Gateway mode: the same bound in bytes of lines.
    pub upstream_backlog_bytes: u64,
    /// Gateway mode: how long a clean shutdown tries to write the backlog to the upstream.
    pub upstream_flush_ms: u64,
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
            upstream_replication_factor: 0,
            upstream_backlog_events: 100_000,
            upstream_backlog_bytes: 32 * 1024 * 1024,
            upstream_flush_ms: 5_000,
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
        if self.upstream_replication_factor < 0 {
            return Err("`audit.upstream_replication_factor` must be 0 (automatic) or more".into());
        }
        if !(1..=10_000_000).contains(&self.upstream_backlog_events) {
            return Err("`audit.upstream_backlog_events` must be 1 to 10000000".into());
        }
        if !(64 * 1024..=1024 * 1024 * 1024).contains(&self.upstream_backlog_bytes) {
            return Err("`audit.upstream_backlog_bytes` must be 65536 to 1073741824".into());
        }
        if self.upstream_flush_ms > 60_000 {
            return Err("`audit.upstream_flush_ms` must be at most 60000".into());
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

#[cfg(test)]
mod tests {
    use crate::config::{Config, DEFAULT_CONFIG};
    use std::path::Path;

    fn check(from: &str, to: &str) -> Result<Config, String> {
        assert!(DEFAULT_CONFIG.contains(from), "{from}");
        Config::parse(&DEFAULT_CONFIG.replace(from, to), Path::new("a.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_default_audits_to_file_and_topic_with_a_year_of_retention() {
        let c = Config::dev_default().unwrap();
        assert!(c.audit.file && c.audit.topic);
        assert_eq!(c.audit.topic_retention_ms, 31_536_000_000);
        assert_eq!(c.audit.data_operations, super::DataOperations::FirstUse);
        assert!(c.metrics.bind.unwrap().ip().is_loopback());
        // A config written before the gateway keys existed loads with their defaults.
        let older: String = DEFAULT_CONFIG
            .lines()
            .filter(|l| !l.starts_with("upstream_"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(!older.contains("upstream_backlog_events"));
        let c = Config::parse(&older, Path::new("a.toml")).unwrap();
        assert_eq!(c.audit.upstream_replication_factor, 0);
        assert_eq!(c.audit.upstream_backlog_events, 100_000);
        assert_eq!(c.audit.upstream_backlog_bytes, 32 << 20);
        assert_eq!(c.audit.upstream_flush_ms, 5_000);
    }

    #[test]
    fn config_check_refuses_a_short_retention_bad_modes_and_a_public_metrics_address() {
        let err = check(
            "topic_retention_ms = 31536000000",
            "topic_retention_ms = 1000",
        )
        .unwrap_err();
        assert!(err.contains("audit.topic_retention_ms"), "{err}");
        assert!(check(
            "topic_retention_ms = 31536000000",
            "topic_retention_ms = -1"
        )
        .is_ok());
        let err = check(
            "data_operations = \"first-use\"",
            "data_operations = \"sometimes\"",
        )
        .unwrap_err();
        assert!(err.contains("sometimes"), "{err}");
        let err = check("buffer_events = 65536", "buffer_events = 0").unwrap_err();
        assert!(err.contains("audit.buffer_events"), "{err}");
        let err = check(
            "upstream_backlog_events = 100000",
            "upstream_backlog_events = 0",
        )
        .unwrap_err();
        assert!(err.contains("audit.upstream_backlog_events"), "{err}");
        let err = check(
            "upstream_replication_factor = 0",
            "upstream_replication_factor = -1",
        )
        .unwrap_err();
        assert!(err.contains("audit.upstream_replication_factor"), "{err}");
        let err = check(
            "upstream_backlog_bytes = 33554432",
            "upstream_backlog_bytes = 100",
        )
        .unwrap_err();
        assert!(err.contains("audit.upstream_backlog_bytes"), "{err}");
        let err = check("upstream_flush_ms = 5000", "upstream_flush_ms = 600000").unwrap_err();
        assert!(err.contains("audit.upstream_flush_ms"), "{err}");
        let err = check("full_wait_ms = 50", "full_wait_ms = 50\nfsync_every = 3").unwrap_err();
        assert!(err.contains("fsync_every"), "{err}");
        let err = check("bind = \"127.0.0.1:9644\"", "bind = \"0.0.0.0:9644\"").unwrap_err();
        assert!(err.contains("allow_non_loopback"), "{err}");
        let public = DEFAULT_CONFIG
            .replace("bind = \"127.0.0.1:9644\"", "bind = \"0.0.0.0:9644\"")
            .replace("allow_non_loopback = false", "allow_non_loopback = true");
        assert!(Config::parse(&public, Path::new("a.toml")).is_ok());
        // Without `bind` there is no endpoint.
        let c = check("bind = \"127.0.0.1:9644\"\n", "").unwrap();
        assert!(c.metrics.bind.is_none());
    }
}
