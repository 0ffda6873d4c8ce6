//! Configuration: one TOML file, every key documented in the embedded default.
//!
//! `palisade serve` without `--config` runs [`DEFAULT_CONFIG`]; `palisade config print-default`
//! prints it. Unknown keys are errors (`deny_unknown_fields` everywhere): a misspelt security
//! setting must never be silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::storage::{FlushPolicy, StorageConfig, TopicConfig};

/// The embedded development default, with a comment on every key.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file `{path}`: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The broker configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub broker: BrokerSection,
    pub listeners: Vec<ListenerConfig>,
    pub limits: LimitsSection,
    pub sasl: SaslSection,
    pub authorization: AuthorizationSection,
    pub storage: StorageSection,
    pub topic_defaults: TopicDefaultsSection,
    pub groups: GroupsSection,
    pub log: LogSection,
    /// The audit trail (on by default when the section is absent).
    #[serde(default)]
    pub audit: crate::audit::AuditSection,
    /// The Prometheus endpoint (off when the section is absent).
    #[serde(default)]
    pub metrics: crate::metrics::MetricsSection,
    /// Optional so configs written before plugins existed still load.
    #[serde(default)]
    pub plugins: crate::plugin::PluginSettings,
    /// Client byte-rate quotas (none when the section is absent).
    #[serde(default)]
    pub quotas: crate::quota::QuotaSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSection {
    pub node_id: i32,
    pub cluster_id: String,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub shutdown_grace_ms: u64,
    /// Topics one Metadata request may auto-create; the rest get UNKNOWN_TOPIC_OR_PARTITION.
    #[serde(default = "default_max_auto_create_per_request")]
    pub max_auto_create_per_request: usize,
}

fn default_max_auto_create_per_request() -> usize {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub name: String,
    pub bind: SocketAddr,
    /// `host:port` advertised in Metadata; defaults to the bound address.
    #[serde(default)]
    pub advertised: Option<String>,
    /// Kafka's listener security protocol.
    pub protocol: SecurityProtocol,
    /// TLS material and client-certificate policy; required for `SSL` and `SASL_SSL`.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsSettings>,
    /// SASL mechanisms offered on `SASL_*` listeners.
    #[serde(default = "default_mechanisms")]
    pub sasl_mechanisms: Vec<String>,
    /// Permit `PLAINTEXT`/`SASL_PLAINTEXT` on a non-loopback address (traffic in clear text).
    #[serde(default)]
    pub allow_insecure_non_loopback: bool,
    /// Permit `PLAIN` on `SASL_PLAINTEXT` (passwords in clear text on the wire).
    #[serde(default)]
    pub allow_plain_without_tls: bool,
}

fn default_mechanisms() -> Vec<String> {
    crate::sasl::SUPPORTED_MECHANISMS
        .iter()
        .map(|m| m.to_string())
        .collect()
}

/// Kafka's listener security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SecurityProtocol {
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    #[serde(rename = "SSL")]
    Ssl,
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// The `[sasl]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslSection {
    pub credentials: PathBuf,
    pub session_lifetime_ms: u64,
    pub pre_auth_max_frame_bytes: i32,
    pub auth_timeout_ms: u64,
    pub failed_login_delay_ms: u64,
    pub max_failed_login_delay_ms: u64,
}

/// The `[authorization]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationSection {
    pub policy_dir: PathBuf,
    pub super_users: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_frame_bytes: i32,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub connections_per_ip_overrides: std::collections::HashMap<String, usize>,
    pub new_connections_per_second_per_ip: u32,
    pub max_decompressed_batch_bytes: usize,
    pub idle_timeout_ms: u64,
    /// Request and response bytes held in memory at once, broker-wide (Kafka's
    /// `queued.max.request.bytes`, on by default).
    #[serde(default = "default_memory_budget_bytes")]
    pub memory_budget_bytes: usize,
    /// Kafka's broker `fetch.max.bytes`: the largest Fetch response, whatever the client asks.
    #[serde(default = "default_fetch_max_bytes")]
    pub fetch_max_bytes: i32,
}

fn default_memory_budget_bytes() -> usize {
    512 * 1024 * 1024
}

fn default_fetch_max_bytes() -> i32 {
    57_671_680
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub data_dir: PathBuf,
    pub flush: FlushPolicy,
    pub flush_interval_ms: u64,
    pub retention_check_interval_ms: u64,
    /// Partitions of all topics together; creations beyond it are refused.
    #[serde(default = "default_max_partitions")]
    pub max_partitions: usize,
    /// Segment files held open at once (least recently used are closed, reopened on demand).
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
}

fn default_max_partitions() -> usize {
    crate::storage::DEFAULT_MAX_PARTITIONS
}

/// A segment has four files; fewer descriptors could not serve even one append.
const MIN_OPEN_FILES: usize = 4;

fn default_max_open_files() -> usize {
    crate::storage::DEFAULT_MAX_OPEN_FILES
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicDefaultsSection {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub cleanup_policy: String,
    pub max_message_bytes: i32,
    pub message_timestamp_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsSection {
    pub initial_rebalance_delay_ms: u64,
    pub min_session_timeout_ms: u64,
    pub max_session_timeout_ms: u64,
    pub max_group_size: usize,
    pub offset_metadata_max_bytes: usize,
    /// Largest protocol metadata one JoinGroup may carry (held for the member's session).
    #[serde(default = "default_max_member_metadata_bytes")]
    pub max_member_metadata_bytes: usize,
    /// Most partitions one group may hold committed offsets for.
    #[serde(default = "default_max_offsets_per_group")]
    pub max_offsets_per_group: usize,
}

fn default_max_member_metadata_bytes() -> usize {
    1024 * 1024
}

fn default_max_offsets_per_group() -> usize {
    100_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `human` or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `palisade=debug`.
    pub level: String,
}

impl Config {
    /// The embedded development default.
    pub fn dev_default() -> Result<Self, ConfigError> {
        Self::parse(DEFAULT_CONFIG, Path::new("<embedded default>"))
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.listeners.is_empty() {
            return Err("at least one `[[listeners]]` entry is required".into());
        }
        let mut names = std::collections::HashSet::new();
        for listener in &self.listeners {
            if !names.insert(listener.name.as_str()) {
                return Err(format!("listener name `{}` is used twice", listener.name));
            }
            validate_listener(listener)?;
            if let Some(adv) = &listener.advertised {
                parse_host_port(adv).ok_or_else(|| {
                    format!(
                        "listener `{}`: advertised `{adv}` is not host:port",
                        listener.name
                    )
                })?;
            }
        }
        self.quotas.entries()?;
        if self.limits.max_frame_bytes <= 0 {
            return Err("`limits.max_frame_bytes` must be positive".into());
        }
        if self.limits.memory_budget_bytes == 0 {
            return Err("`limits.memory_budget_bytes` must be positive".into());
        }
        if self.limits.fetch_max_bytes <= 0 {
            return Err("`limits.fetch_max_bytes` must be positive".into());
        }
        // Durations become deadlines (`Instant + duration`); bound them so no setting can
        // overflow one.
        const HOUR_MS: u64 = 3_600_000;
        const YEAR_MS: u64 = 365 * 24 * HOUR_MS;
        for (key, value, max) in [
            ("sasl.auth_timeout_ms", self.sasl.auth_timeout_ms, HOUR_MS),
            (
                "sasl.session_lifetime_ms",
                self.sasl.session_lifetime_ms,
                YEAR_MS,
            ),
            (
                "sasl.failed_login_delay_ms",
                self.sasl.failed_login_delay_ms,
                HOUR_MS,
            ),
            (
                "sasl.max_failed_login_delay_ms",
                self.sasl.max_failed_login_delay_ms,
                HOUR_MS,
            ),
            (
                "limits.idle_timeout_ms",
                self.limits.idle_timeout_ms,
                YEAR_MS,
            ),
            (
                "broker.shutdown_grace_ms",
                self.broker.shutdown_grace_ms,
                HOUR_MS,
            ),
            (
                "storage.flush_interval_ms",
                self.storage.flush_interval_ms,
                HOUR_MS,
            ),
            (
                "storage.retention_check_interval_ms",
                self.storage.retention_check_interval_ms,
                YEAR_MS,
            ),
            (
                "groups.initial_rebalance_delay_ms",
                self.groups.initial_rebalance_delay_ms,
                HOUR_MS,
            ),
            (
                "groups.max_session_timeout_ms",
                self.groups.max_session_timeout_ms,
                YEAR_MS,
            ),
        ] {
            if value > max {
                return Err(format!("`{key}` = {value} is above the maximum of {max}"));
            }
        }
        if self.sasl.auth_timeout_ms == 0 {
            return Err("`sasl.auth_timeout_ms` must be positive".into());
        }
        if self.sasl.pre_auth_max_frame_bytes <= 0 {
            return Err("`sasl.pre_auth_max_frame_bytes` must be positive".into());
        }
        if self.limits.max_connections == 0 {
            return Err("`limits.max_connections` must be positive".into());
        }
        for ip in self.limits.connections_per_ip_overrides.keys() {
            ip.parse::<std::net::IpAddr>().map_err(|_| {
                format!("`limits.connections_per_ip_overrides`: `{ip}` is not an IP address")
            })?;
        }
        if self.storage.max_partitions == 0 {
            return Err("`storage.max_partitions` must be positive".into());
        }
        if self.storage.max_open_files < MIN_OPEN_FILES {
            return Err(format!(
                "`storage.max_open_files` must be at least {MIN_OPEN_FILES} (one segment's files)"
            ));
        }
        if self.broker.default_partitions <= 0 {
            return Err("`broker.default_partitions` must be positive".into());
        }
        self.audit.validate()?;
        self.metrics.validate()?;
        if !matches!(self.log.format.as_str(), "human" | "json") {
            return Err(format!(
                "`log.format` must be `human` or `json`, not `{}`",
                self.log.format
            ));
        }
        self.topic_defaults()
            .map_err(|e| format!("`topic_defaults`: {e}"))?;
        self.plugins.validate()?;
        Ok(())
    }

    /// Topic defaults as storage understands them, validated like a topic config.
    pub fn topic_defaults(&self) -> Result<TopicConfig, crate::storage::StorageError> {
        let d = &self.topic_defaults;
        let mut config = TopicConfig::default();
        config.set("retention.ms", &d.retention_ms.to_string())?;
        config.set("retention.bytes", &d.retention_bytes.to_string())?;
        config.set("segment.bytes", &d.segment_bytes.to_string())?;
        config.set("segment.ms", &d.segment_ms.to_string())?;
        config.set("cleanup.policy", &d.cleanup_policy)?;
        config.set("max.message.bytes", &d.max_message_bytes.to_string())?;
        config.set("message.timestamp.type", &d.message_timestamp_type)?;
        Ok(config)
    }

    /// Connection admission limits (validated: override keys are IP addresses).
    pub fn admission_limits(&self) -> crate::server::limits::AdmissionLimits {
        let l = &self.limits;
        crate::server::limits::AdmissionLimits {
            max_per_ip: l.max_connections_per_ip,
            per_ip_overrides: l
                .connections_per_ip_overrides
                .iter()
                .filter_map(|(ip, n)| ip.parse().ok().map(|ip| (ip, *n)))
                .collect(),
            new_per_second_per_ip: l.new_connections_per_second_per_ip,
        }
    }

    /// The group coordinator settings.
    pub fn group_settings(&self) -> crate::group::GroupSettings {
        let g = &self.groups;
        crate::group::GroupSettings {
            initial_rebalance_delay: std::time::Duration::from_millis(g.initial_rebalance_delay_ms),
            min_session_timeout: std::time::Duration::from_millis(g.min_session_timeout_ms),
            max_session_timeout: std::time::Duration::from_millis(g.max_session_timeout_ms),
            max_group_size: if g.max_group_size == 0 {
                usize::MAX
            } else {
                g.max_group_size
            },
            max_metadata_bytes: g.offset_metadata_max_bytes,
            max_member_metadata_bytes: g.max_member_metadata_bytes,
            max_offsets_per_group: g.max_offsets_per_group,
        }
    }

    /// The storage settings, with `data_dir` resolved against the working directory.
    pub fn storage_config(&self) -> Result<StorageConfig, crate::storage::StorageError> {
        Ok(StorageConfig {
            data_dir: self.storage.data_dir.clone(),
            flush: self.storage.flush,
            flush_interval_ms: self.storage.flush_interval_ms,
            retention_check_interval_ms: self.storage.retention_check_interval_ms,
            topic_defaults: self.topic_defaults()?,
            max_partitions: self.storage.max_partitions,
            max_open_files: self.storage.max_open_files,
        })
    }
}

fn validate_listener(l: &ListenerConfig) -> Result<(), String> {
    let name = &l.name;
    match (l.protocol.uses_tls(), &l.tls) {
        (true, None) => {
            return Err(format!(
                "listener `{name}`: {:?} needs a `[listeners.tls]` section",
                l.protocol
            ))
        }
        (false, Some(_)) => {
            return Err(format!(
                "listener `{name}`: {:?} does not use TLS; remove its `tls` section",
                l.protocol
            ))
        }
        (true, Some(tls)) => tls
            .validate()
            .map_err(|e| format!("listener `{name}`: {e}"))?,
        (false, None) => {}
    }
    if !l.protocol.uses_tls() && !l.bind.ip().is_loopback() && !l.allow_insecure_non_loopback {
        return Err(format!(
            "listener `{name}`: {:?} on the non-loopback address {} sends data in clear text; use SSL/SASL_SSL or set `allow_insecure_non_loopback = true`",
            l.protocol, l.bind
        ));
    }
    if l.protocol.uses_sasl() {
        if l.sasl_mechanisms.is_empty() {
            return Err(format!("listener `{name}`: `sasl_mechanisms` is empty"));
        }
        for m in &l.sasl_mechanisms {
            if !crate::sasl::SUPPORTED_MECHANISMS.contains(&m.as_str()) {
                return Err(format!(
                    "listener `{name}`: unknown SASL mechanism `{m}` (supported: {})",
                    crate::sasl::SUPPORTED_MECHANISMS.join(", ")
                ));
            }
        }
        if m_plain(l) && !l.protocol.uses_tls() && !l.allow_plain_without_tls {
            return Err(format!(
                "listener `{name}`: PLAIN on SASL_PLAINTEXT sends passwords in clear text; use SASL_SSL or set `allow_plain_without_tls = true`"
            ));
        }
    }
    Ok(())
}

fn m_plain(l: &ListenerConfig) -> bool {
    l.sasl_mechanisms.iter().any(|m| m == "PLAIN")
}

/// Splits `host:port` (IPv6 hosts in brackets).
///
/// ```
/// use palisade::config::parse_host_port;
/// assert_eq!(parse_host_port("broker-1:9093"), Some(("broker-1".to_string(), 9093)));
/// assert_eq!(parse_host_port("[::1]:9092"), Some(("::1".to_string(), 9092)));
/// assert_eq!(parse_host_port("no-port"), None);
/// assert_eq!(parse_host_port(":9092"), None);
/// ```
pub fn parse_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), i32::from(port)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn embedded_default_parses_and_binds_loopback_only() {
        let config = Config::dev_default().unwrap();
        assert!(config.listeners.iter().all(|l| l.bind.ip().is_loopback()));
        assert_eq!(config.storage.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn unknown_key_is_an_error_naming_key_and_file() {
        let text = DEFAULT_CONFIG.replace("[broker]", "[broker]\nauto_create_topicz = true");
        let err = Config::parse(&text, Path::new("my.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auto_create_topicz"), "{err}");
        assert!(err.contains("my.toml"), "{err}");
    }

    #[test]
    fn clear_text_listener_on_a_public_address_needs_an_explicit_opt_in() {
        let public = DEFAULT_CONFIG.replace("bind = \"127.0.0.1:9092\"", "bind = \"0.0.0.0:9092\"");
        let err = Config::parse(&public, Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow_insecure_non_loopback"), "{err}");
        let opted_in = public.replace(
            "protocol = \"PLAINTEXT\"",
            "protocol = \"PLAINTEXT\"\nallow_insecure_non_loopback = true",
        );
        assert!(Config::parse(&opted_in, Path::new("p.toml")).is_ok());
        // TLS listeners may bind anywhere.
        let tls_public =
            DEFAULT_CONFIG.replace("bind = \"127.0.0.1:9093\"", "bind = \"0.0.0.0:9093\"");
        assert!(Config::parse(&tls_public, Path::new("p.toml")).is_ok());
    }

    #[test]
    fn tls_protocols_need_tls_settings_and_plain_needs_tls() {
        let no_tls = DEFAULT_CONFIG.replacen("[listeners.tls]", "[listeners.tls_removed]", 1);
        assert!(Config::parse(&no_tls, Path::new("t.toml")).is_err());
        let sasl_plaintext = DEFAULT_CONFIG.replacen(
            "protocol = \"SASL_SSL\"",
            "protocol = \"SASL_PLAINTEXT\"",
            1,
        );
        let err = Config::parse(&sasl_plaintext, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        // SASL_PLAINTEXT with a tls section, and with PLAIN offered: both refused.
        assert!(
            err.contains("does not use TLS") || err.contains("allow_plain_without_tls"),
            "{err}"
        );
    }

    #[test]
    fn durations_are_bounded() {
        let huge = DEFAULT_CONFIG.replace(
            "auth_timeout_ms = 10000",
            "auth_timeout_ms = 9223372036854775807",
        );
        let err = Config::parse(&huge, Path::new("d.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sasl.auth_timeout_ms"), "{err}");
        let zero = DEFAULT_CONFIG.replace("auth_timeout_ms = 10000", "auth_timeout_ms = 0");
        assert!(Config::parse(&zero, Path::new("d.toml")).is_err());
    }

    #[test]
    fn every_default_key_has_a_comment() {
        let mut previous = "";
        for line in DEFAULT_CONFIG.lines() {
            let t = line.trim();
            if t.contains('=') && !t.starts_with('#') {
                assert!(previous.trim().starts_with('#'), "key without comment: {t}");
            }
            previous = line;
        }
    }
}
