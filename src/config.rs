//! Configuration: one TOML file, every key documented in the embedded default.
//!
//! Two sets of values, kept apart on purpose:
//! - the **embedded development default** ([`DEFAULT_CONFIG`]): what `palisade serve` runs
//!   without `--config` and what `palisade config print-default` prints, every key spelt out
//!   and commented; loopback only, topics auto-created, `admin` a super user;
//! - the **production defaults** of keys a config file omits (each section's `Default`): no
//!   auto-created topics, no super users, no metrics endpoint, audit on. Every key has one, so
//!   a file names only what it cares about, and a file written for this version still loads
//!   after a later version adds keys. A new key follows the same pattern: a field with
//!   `#[serde(default = ...)]` (or its section's `Default`) and a commented entry in the
//!   embedded default.
//!
//! Unknown keys are errors (`deny_unknown_fields` everywhere): a misspelt security setting
//! must never be silently ignored. Loading reports every problem of a file at once, each at
//! its line and column ([`diagnostics`]).
//!
//! # Layout
//!
//! - this file: the schema, its production defaults, loading and conversions;
//! - [`validate`]: the semantic checks, each naming the key it is about;
//! - [`diagnostics`]: key paths to line:col, and every serde error of a file in one run.

pub mod diagnostics;
mod validate;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::storage::{FlushPolicy, StorageConfig, TopicConfig};
pub use diagnostics::Problem;

/// The embedded development default, with a comment on every key.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem found, each placed in the file.
    #[error("{}", render(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// `invalid config file `F` (N problems):` then one `F:line:col: message` per line.
fn render(path: &Path, problems: &[Problem]) -> String {
    let mut out = format!(
        "invalid config file `{}` ({} problem{}):",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        let _ = write!(
            out,
            "\n  {}:{}:{}: {}",
            path.display(),
            p.line,
            p.column,
            p.message
        );
    }
    out
}

/// The broker configuration. Every section may be omitted (production defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub broker: BrokerSection,
    /// At least one is required; there is no default listener.
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub sasl: SaslSection,
    #[serde(default)]
    pub authorization: AuthorizationSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub topic_defaults: TopicDefaultsSection,
    #[serde(default)]
    pub groups: GroupsSection,
    #[serde(default)]
    pub log: LogSection,
    /// The audit trail (on when the section is absent).
    #[serde(default)]
    pub audit: crate::audit::AuditSection,
    /// The Prometheus endpoint (off when the section is absent).
    #[serde(default)]
    pub metrics: crate::metrics::MetricsSection,
    #[serde(default)]
    pub plugins: crate::plugin::PluginSettings,
    /// Client byte-rate quotas (none when the section is absent).
    #[serde(default)]
    pub quotas: crate::quota::QuotaSettings,
    /// Gateway mode: an upstream Kafka cluster serves the data (off when the section is absent).
    #[serde(default)]
    pub gateway: crate::upstream::GatewaySection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSection {
    pub node_id: i32,
    pub cluster_id: String,
    /// Off unless set: a typo in a topic name must not create a topic.
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

impl Default for BrokerSection {
    fn default() -> Self {
        BrokerSection {
            node_id: 0,
            cluster_id: "palisade".to_string(),
            auto_create_topics: false,
            default_partitions: 1,
            shutdown_grace_ms: 5000,
            max_auto_create_per_request: default_max_auto_create_per_request(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Unique among listeners; defaults to the protocol's name.
    #[serde(default)]
    pub name: String,
    /// Required: there is no safe default address.
    pub bind: SocketAddr,
    /// `host:port` advertised in Metadata; defaults to the bound address.
    #[serde(default)]
    pub advertised: Option<String>,
    /// Kafka's listener security protocol; required.
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
    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
}

/// The `[sasl]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaslSection {
    pub credentials: PathBuf,
    pub session_lifetime_ms: u64,
    pub pre_auth_max_frame_bytes: i32,
    pub auth_timeout_ms: u64,
    pub failed_login_delay_ms: u64,
    pub max_failed_login_delay_ms: u64,
}

impl Default for SaslSection {
    fn default() -> Self {
        SaslSection {
            credentials: PathBuf::from(crate::sasl::DEFAULT_CREDENTIALS_PATH),
            session_lifetime_ms: 3_600_000,
            pre_auth_max_frame_bytes: 524_288,
            auth_timeout_ms: 10_000,
            failed_login_delay_ms: 500,
            max_failed_login_delay_ms: 10_000,
        }
    }
}

/// The `[authorization]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizationSection {
    pub policy_dir: PathBuf,
    /// None unless set: every principal is decided by the policies.
    pub super_users: Vec<String>,
}

impl Default for AuthorizationSection {
    fn default() -> Self {
        AuthorizationSection {
            policy_dir: PathBuf::from("./policies"),
            super_users: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_frame_bytes: 100 << 20,
            max_connections: 10_000,
            max_connections_per_ip: 1000,
            connections_per_ip_overrides: std::collections::HashMap::new(),
            new_connections_per_second_per_ip: 200,
            max_decompressed_batch_bytes: 64 << 20,
            idle_timeout_ms: 600_000,
            memory_budget_bytes: default_memory_budget_bytes(),
            fetch_max_bytes: default_fetch_max_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
pub(crate) const MIN_OPEN_FILES: usize = 4;

fn default_max_open_files() -> usize {
    crate::storage::DEFAULT_MAX_OPEN_FILES
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            data_dir: PathBuf::from("./data"),
            flush: FlushPolicy::GroupCommit,
            flush_interval_ms: 1000,
            retention_check_interval_ms: 60_000,
            max_partitions: default_max_partitions(),
            max_open_files: default_max_open_files(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicDefaultsSection {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub cleanup_policy: String,
    pub max_message_bytes: i32,
    pub message_timestamp_type: String,
}

impl Default for TopicDefaultsSection {
    fn default() -> Self {
        TopicDefaultsSection {
            retention_ms: 604_800_000,
            retention_bytes: -1,
            segment_bytes: 1 << 30,
            segment_ms: 604_800_000,
            cleanup_policy: "delete".to_string(),
            max_message_bytes: 1_048_588,
            message_timestamp_type: "CreateTime".to_string(),
        }
    }
}

impl TopicDefaultsSection {
    /// `(config key, Kafka topic config name, value)` of every default.
    fn entries(&self) -> [(&'static str, &'static str, String); 7] {
        [
            (
                "retention_ms",
                "retention.ms",
                self.retention_ms.to_string(),
            ),
            (
                "retention_bytes",
                "retention.bytes",
                self.retention_bytes.to_string(),
            ),
            (
                "segment_bytes",
                "segment.bytes",
                self.segment_bytes.to_string(),
            ),
            ("segment_ms", "segment.ms", self.segment_ms.to_string()),
            (
                "cleanup_policy",
                "cleanup.policy",
                self.cleanup_policy.clone(),
            ),
            (
                "max_message_bytes",
                "max.message.bytes",
                self.max_message_bytes.to_string(),
            ),
            (
                "message_timestamp_type",
                "message.timestamp.type",
                self.message_timestamp_type.clone(),
            ),
        ]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

impl Default for GroupsSection {
    fn default() -> Self {
        GroupsSection {
            initial_rebalance_delay_ms: 0,
            min_session_timeout_ms: 1000,
            max_session_timeout_ms: 1_800_000,
            max_group_size: 1000,
            offset_metadata_max_bytes: 4096,
            max_member_metadata_bytes: default_max_member_metadata_bytes(),
            max_offsets_per_group: default_max_offsets_per_group(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `human` or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `palisade=debug`.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: "human".to_string(),
            level: "info".to_string(),
        }
    }
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

    /// Parses and validates config text; `path` names the source in errors. Reports every
    /// problem found, not only the first.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let parsed = diagnostics::deserialize::<Config>(text);
        let mut problems = parsed.problems;
        if let Some(mut config) = parsed.value {
            config.apply_listener_defaults(&parsed.repaired);
            // With keys blanked, a check of a key the file does not set may only be seeing its
            // default in place of the broken entry: report checks of keys the file sets.
            let clean = problems.is_empty();
            let issues: Vec<_> = validate::validate(&config)
                .into_iter()
                .filter(|issue| clean || diagnostics::is_set(&parsed.repaired, &issue.path))
                .collect();
            problems.extend(diagnostics::locate_all(&parsed.repaired, issues));
            if problems.is_empty() {
                return Ok(config);
            }
        }
        problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }

    /// Defaults that depend on other keys of a listener.
    fn apply_listener_defaults(&mut self, text: &str) {
        for (i, listener) in self.listeners.iter_mut().enumerate() {
            if listener.name.is_empty() {
                listener.name = listener.protocol.name().to_string();
            }
            // An omitted `client_auth` is `required` (the certificate is the identity), except
            // on SASL_SSL, where SASL authenticates clients and Kafka asks for no certificate.
            let client_auth = diagnostics::KeyPath::parse("listeners")
                .index(i)
                .key("tls")
                .key("client_auth");
            if let Some(tls) = &mut listener.tls {
                if listener.protocol == SecurityProtocol::SaslSsl
                    && !diagnostics::is_set(text, &client_auth)
                {
                    tls.client_auth = crate::tls::ClientAuth::None;
                }
            }
        }
    }

    /// Topic defaults as storage understands them, validated like a topic config.
    pub fn topic_defaults(&self) -> Result<TopicConfig, crate::storage::StorageError> {
        let mut config = TopicConfig::default();
        for (_, kafka_name, value) in self.topic_defaults.entries() {
            config.set(kafka_name, &value)?;
        }
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

    /// One SASL_SSL listener with its certificates, a data dir and a policy dir: all a
    /// production file needs to say.
    const MINIMAL: &str = r#"
[[listeners]]
bind = "0.0.0.0:9093"
protocol = "SASL_SSL"
[listeners.tls]
cert = "/etc/palisade/server.pem"
key = "/etc/palisade/server-key.pem"

[storage]
data_dir = "/var/lib/palisade"

[authorization]
policy_dir = "/etc/palisade/policies"
"#;

    #[test]
    fn a_minimal_file_loads_with_the_safe_production_defaults() {
        let config = Config::parse(MINIMAL, Path::new("min.toml")).unwrap();
        assert!(!config.broker.auto_create_topics);
        assert!(config.authorization.super_users.is_empty());
        assert!(config.audit.file && config.audit.topic && config.audit.fsync);
        assert!(config.metrics.bind.is_none());
        assert!(config.quotas.producer_byte_rate.is_none());
        let listener = &config.listeners[0];
        assert_eq!(listener.name, "SASL_SSL");
        assert_eq!(listener.sasl_mechanisms, default_mechanisms());
        assert!(!listener.allow_insecure_non_loopback && !listener.allow_plain_without_tls);
        let tls = listener.tls.as_ref().unwrap();
        assert_eq!(tls.client_auth, crate::tls::ClientAuth::None);
        assert_eq!(config.storage.data_dir, PathBuf::from("/var/lib/palisade"));
        assert_eq!(config.storage.flush, FlushPolicy::GroupCommit);
        // Omitted, an SSL listener's client certificates stay required.
        let ssl = MINIMAL.replace("SASL_SSL", "SSL");
        let err = Config::parse(&ssl, Path::new("ssl.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("client_ca"), "{err}");
        // Clear text off loopback still needs its opt-in when everything else is omitted.
        let clear = "[[listeners]]\nbind = \"0.0.0.0:9092\"\nprotocol = \"PLAINTEXT\"\n";
        let err = Config::parse(clear, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow_insecure_non_loopback"), "{err}");
    }

    #[test]
    fn production_defaults_differ_from_the_dev_default_only_where_documented() {
        let dev = Config::dev_default().unwrap();
        let prod = Config::parse(
            "[[listeners]]\nbind = \"127.0.0.1:9092\"\nprotocol = \"PLAINTEXT\"\n",
            Path::new("p.toml"),
        )
        .unwrap();
        let same = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        };
        same(&dev.limits, &prod.limits);
        same(&dev.sasl, &prod.sasl);
        same(&dev.storage, &prod.storage);
        same(&dev.topic_defaults, &prod.topic_defaults);
        same(&dev.groups, &prod.groups);
        same(&dev.log, &prod.log);
        same(&dev.audit, &prod.audit);
        same(&dev.plugins, &prod.plugins);
        same(&dev.quotas, &prod.quotas);
        same(&dev.gateway, &prod.gateway);
        same(
            &dev.authorization.policy_dir,
            &prod.authorization.policy_dir,
        );
        same(
            &dev.broker.default_partitions,
            &prod.broker.default_partitions,
        );
        same(
            &dev.broker.shutdown_grace_ms,
            &prod.broker.shutdown_grace_ms,
        );
        // What the embedded default's comments say differs ("Omitted: ...").
        assert!(dev.broker.auto_create_topics && !prod.broker.auto_create_topics);
        assert_eq!(dev.authorization.super_users, vec!["admin".to_string()]);
        assert!(prod.authorization.super_users.is_empty());
        assert!(dev.metrics.bind.is_some() && prod.metrics.bind.is_none());
        assert_eq!(prod.broker.cluster_id, "palisade");
        assert!(DEFAULT_CONFIG.contains("Omitted: \"palisade\""));
    }

    #[test]
    fn every_key_of_the_embedded_default_may_be_omitted() {
        // A file written for this version lacks every key a later version adds: each key
        // must have a default. Only a listener's address, protocol and certificate are required.
        let required = ["bind", "protocol", "cert", "key", "client_ca"];
        let lines: Vec<&str> = DEFAULT_CONFIG.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some((key, _)) = line.split_once(" = ") else {
                continue;
            };
            if line.starts_with('#') || required.contains(&key) {
                continue;
            }
            let mut without = lines.clone();
            without.remove(i);
            let text = without.join("\n");
            if let Err(e) = Config::parse(&text, Path::new("d.toml")) {
                panic!("without `{key}` (line {}): {e}", i + 1);
            }
        }
    }

    #[test]
    fn gateway_problems_are_placed_at_their_keys() {
        let text = "[[listeners]]\nbind = \"127.0.0.1:9092\"\nprotocol = \"PLAINTEXT\"\n\n\
                    [gateway]\nbootstrap_servers = [\"nohost\"]\nrequest_timeout_ms = 0\n\n\
                    [gateway.sasl]\nmechanism = \"SCRAM-SHA-512\"\n";
        let Err(ConfigError::Invalid { problems, .. }) = Config::parse(text, Path::new("g.toml"))
        else {
            panic!("accepted");
        };
        let at: Vec<(usize, usize)> = problems.iter().map(|p| (p.line, p.column)).collect();
        // bootstrap_servers, request_timeout_ms, then the two missing sasl keys at the section.
        assert_eq!(at, vec![(6, 1), (7, 1), (9, 10), (9, 10)], "{problems:#?}");
        assert!(problems[0].message.contains("`nohost` is not host:port"));
        // Without [gateway], a file loads in broker mode as before.
        let broker = Config::parse(MINIMAL, Path::new("min.toml")).unwrap();
        assert!(!broker.gateway.is_enabled());
    }

    #[test]
    fn every_problem_is_reported_at_its_line_and_column_in_one_run() {
        let text = "[broker]\nauto_create_topicz = true\ndefault_partitions = \"one\"\n\n\
                    [[listeners]]\nbind = \"0.0.0.0:9092\"\nprotocol = \"PLAINTEXT\"\n\n\
                    [log]\nformat = \"xml\"\n";
        let Err(ConfigError::Invalid { problems, .. }) = Config::parse(text, Path::new("m.toml"))
        else {
            panic!("accepted");
        };
        let at: Vec<(usize, usize)> = problems.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(at, vec![(2, 1), (3, 22), (6, 1), (10, 1)], "{problems:#?}");
        assert!(problems[0]
            .message
            .contains("unknown field `auto_create_topicz`"));
        assert!(problems[1].message.contains("invalid type"));
        assert!(problems[2].message.contains("allow_insecure_non_loopback"));
        assert!(problems[3].message.contains("`log.format`"));
    }
}
