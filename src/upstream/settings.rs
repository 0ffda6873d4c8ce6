//! The `[gateway]` section: the upstream cluster, how to reach and log in to it, and how its
//! brokers are presented to clients.
//!
//! Every key has a safe default, so `[gateway]` may be absent (broker mode) and a file written
//! for this version keeps loading. Secrets are never config values: passwords are read from
//! files ([`super::secret`]), and the files must be private (mode 0600).
//!
//! # Broker addresses presented to clients
//!
//! Each upstream node is presented as its own address, never as one node:
//! - `addressing = "port"`: node `N` is served on `bind_host:(port_base + N - node_id_base)`
//!   and advertised as `advertised_host` with that port. With the defaults (`port_base =
//!   19092`, `node_id_base = 0`) node 0 is port 19092, node 3 is port 19095. A node whose port
//!   would fall outside `port_base..=65535` is not served (its clients get retriable errors).
//! - `addressing = "sni"`: every node shares the TLS listener's port; node `N` is advertised
//!   as `broker-N.<sni_domain>` and picked by the TLS server name (a wildcard certificate for
//!   `*.<sni_domain>` covers them all).

use std::path::PathBuf;

use serde::Deserialize;

use crate::sasl::Mechanism;

/// The `[gateway]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// On or off; omitted, the gateway is on exactly when `bootstrap_servers` is set.
    pub enabled: Option<bool>,
    /// `host:port` of upstream brokers to learn the cluster from.
    pub bootstrap_servers: Vec<String>,
    pub tls: UpstreamTls,
    pub sasl: UpstreamSasl,
    /// Optional 0600 file mapping gateway principals to their own upstream credentials.
    pub identity_map_file: Option<PathBuf>,
    /// Principals absent from the identity map: use the service account, or refuse them.
    pub unmapped: Unmapped,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub metadata_refresh_ms: u64,
    /// Largest upstream response accepted (bytes); a larger size prefix closes the connection
    /// before anything is allocated.
    pub max_response_bytes: i32,
    /// Requests in flight at once on one upstream connection; further requests wait.
    pub max_in_flight: usize,
    pub addressing: Addressing,
    /// Host the per-node listeners bind (port addressing).
    pub bind_host: String,
    /// Host advertised to clients for every node (port addressing); omitted: `bind_host`.
    pub advertised_host: Option<String>,
    /// Port of the node whose id is `node_id_base`; node N gets `port_base + N - node_id_base`.
    pub port_base: u16,
    /// The lowest upstream node id (Kafka clusters often number from 0 or 1).
    pub node_id_base: i32,
    /// Domain of the per-node names in SNI addressing: `broker-<id>.<sni_domain>`.
    pub sni_domain: Option<String>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            enabled: None,
            bootstrap_servers: Vec::new(),
            tls: UpstreamTls::default(),
            sasl: UpstreamSasl::default(),
            identity_map_file: None,
            unmapped: Unmapped::ServiceAccount,
            connect_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            metadata_refresh_ms: 30_000,
            max_response_bytes: 100 << 20,
            max_in_flight: 64,
            addressing: Addressing::Port,
            bind_host: "127.0.0.1".to_string(),
            advertised_host: None,
            port_base: 19092,
            node_id_base: 0,
            sni_domain: None,
        }
    }
}

/// `[gateway.tls]`: TLS to the upstream brokers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTls {
    pub enabled: bool,
    /// PEM bundle of the CAs trusted to issue the upstream brokers' certificates.
    pub ca_file: Option<PathBuf>,
    /// Check that each broker's certificate names the host it is reached at.
    pub verify_hostname: bool,
    /// Client certificate chain (PEM) for mTLS to the upstream; with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Private key of `cert_file` (PEM).
    pub key_file: Option<PathBuf>,
}

impl Default for UpstreamTls {
    fn default() -> Self {
        UpstreamTls {
            enabled: false,
            ca_file: None,
            verify_hostname: true,
            cert_file: None,
            key_file: None,
        }
    }
}

/// `[gateway.sasl]`: the service account the gateway logs in to the upstream with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSasl {
    /// Omitted: no SASL to the upstream.
    pub mechanism: Option<ClientMechanism>,
    pub username: String,
    /// File holding the password (mode 0600; one trailing newline is ignored).
    pub password_file: Option<PathBuf>,
    /// Permit PLAIN to an upstream reached without TLS (the password crosses in clear text).
    pub allow_plain_without_tls: bool,
}

/// A SASL mechanism the gateway speaks as a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum ClientMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl ClientMechanism {
    /// The IANA name sent in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            ClientMechanism::Plain => "PLAIN",
            ClientMechanism::ScramSha256 => "SCRAM-SHA-256",
            ClientMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The SCRAM hash, or `None` for PLAIN.
    pub fn scram(self) -> Option<Mechanism> {
        match self {
            ClientMechanism::Plain => None,
            ClientMechanism::ScramSha256 => Some(Mechanism::ScramSha256),
            ClientMechanism::ScramSha512 => Some(Mechanism::ScramSha512),
        }
    }
}

impl std::fmt::Display for ClientMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What happens to a principal the identity map does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Unmapped {
    /// Its requests reach the upstream as the `[gateway.sasl]` service account.
    #[serde(rename = "service-account")]
    ServiceAccount,
    /// Its requests are refused at the gateway.
    #[serde(rename = "refuse")]
    Refuse,
}

/// How upstream nodes are told apart by clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Addressing {
    /// A port per node.
    #[serde(rename = "port")]
    Port,
    /// One TLS port, the node chosen by the TLS server name.
    #[serde(rename = "sni")]
    Sni,
}

/// Durations become deadlines; bounded so none overflows one.
const MAX_TIMEOUT_MS: u64 = 3_600_000;

impl GatewaySection {
    /// Whether gateway mode is on: `enabled`, or else the presence of `bootstrap_servers`.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(!self.bootstrap_servers.is_empty())
    }

    /// The host clients are told to connect to for every node (port addressing).
    pub fn advertised_host(&self) -> &str {
        self.advertised_host.as_deref().unwrap_or(&self.bind_host)
    }

    /// The port node `node_id` is served on (port addressing): `port_base + node_id -
    /// node_id_base`, or `None` when that is below `port_base` or above 65535.
    pub fn port_for(&self, node_id: i32) -> Option<u16> {
        let offset = i64::from(node_id) - i64::from(self.node_id_base);
        if offset < 0 {
            return None;
        }
        u16::try_from(i64::from(self.port_base) + offset).ok()
    }

    /// The name node `node_id` is advertised as in SNI addressing.
    pub fn sni_name(&self, node_id: i32) -> Option<String> {
        self.sni_domain
            .as_ref()
            .map(|domain| format!("broker-{node_id}.{domain}"))
    }

    /// Every problem of the section, each naming its key in backticks. Nothing is checked
    /// while the gateway is off, except that the keys parse.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.is_enabled() {
            return problems;
        }
        if self.bootstrap_servers.is_empty() {
            problems.push(
                "`gateway.bootstrap_servers` is empty: the gateway needs at least one upstream `host:port`"
                    .to_string(),
            );
        }
        for server in &self.bootstrap_servers {
            if crate::config::parse_host_port(server).is_none() {
                problems.push(format!(
                    "`gateway.bootstrap_servers`: `{server}` is not host:port"
                ));
            }
        }
        for (key, value) in [
            ("gateway.connect_timeout_ms", self.connect_timeout_ms),
            ("gateway.request_timeout_ms", self.request_timeout_ms),
            ("gateway.metadata_refresh_ms", self.metadata_refresh_ms),
        ] {
            if value == 0 {
                problems.push(format!("`{key}` must be positive"));
            } else if value > MAX_TIMEOUT_MS {
                problems.push(format!(
                    "`{key}` = {value} is above the maximum of {MAX_TIMEOUT_MS}"
                ));
            }
        }
        if self.max_response_bytes <= 0 {
            problems.push("`gateway.max_response_bytes` must be positive".to_string());
        }
        if self.max_in_flight == 0 {
            problems.push("`gateway.max_in_flight` must be positive".to_string());
        }
        self.validate_tls(&mut problems);
        self.validate_sasl(&mut problems);
        if self.unmapped == Unmapped::ServiceAccount
            && self.identity_map_file.is_some()
            && self.sasl.mechanism.is_none()
        {
            problems.push(
                "`gateway.unmapped` = \"service-account\" needs a service account in `[gateway.sasl]`, or set `unmapped = \"refuse\"`"
                    .to_string(),
            );
        }
        self.validate_addressing(&mut problems);
        problems
    }

    fn validate_tls(&self, problems: &mut Vec<String>) {
        let tls = &self.tls;
        if !tls.enabled {
            if tls.ca_file.is_some() || tls.cert_file.is_some() || tls.key_file.is_some() {
                problems.push(
                    "`gateway.tls.enabled` is false but TLS files are set: set `enabled = true` or remove them"
                        .to_string(),
                );
            }
            return;
        }
        if tls.ca_file.is_none() {
            problems.push(
                "`gateway.tls.ca_file` is required with TLS (the system bundle is usually /etc/ssl/certs/ca-certificates.crt)"
                    .to_string(),
            );
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            problems.push(
                "`gateway.tls.cert_file` and `gateway.tls.key_file` go together: set both or neither"
                    .to_string(),
            );
        }
    }

    fn validate_sasl(&self, problems: &mut Vec<String>) {
        let sasl = &self.sasl;
        let Some(mechanism) = sasl.mechanism else {
            if !sasl.username.is_empty() || sasl.password_file.is_some() {
                problems.push(
                    "`gateway.sasl.mechanism` is not set but credentials are: name the mechanism"
                        .to_string(),
                );
            }
            return;
        };
        if sasl.username.is_empty() {
            problems.push(format!(
                "`gateway.sasl.username` is required with {mechanism}"
            ));
        }
        if sasl.password_file.is_none() {
            problems.push(format!(
                "`gateway.sasl.password_file` is required with {mechanism} (passwords are read from files only)"
            ));
        }
        if mechanism == ClientMechanism::Plain && !self.tls.enabled && !sasl.allow_plain_without_tls
        {
            problems.push(
                "`gateway.sasl.mechanism` = PLAIN without `[gateway.tls]` sends the password in clear text; enable TLS or set `allow_plain_without_tls = true`"
                    .to_string(),
            );
        }
    }

    fn validate_addressing(&self, problems: &mut Vec<String>) {
        match self.addressing {
            Addressing::Port => {
                if self.port_base == 0 {
                    problems.push("`gateway.port_base` must be a port (1-65535)".to_string());
                }
                if self.node_id_base < 0 {
                    problems.push("`gateway.node_id_base` must not be negative".to_string());
                }
                if self.bind_host.is_empty() {
                    problems.push("`gateway.bind_host` is empty".to_string());
                }
                let unspecified = self
                    .bind_host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_unspecified());
                if unspecified && self.advertised_host.is_none() {
                    problems.push(format!(
                        "`gateway.advertised_host` is required when `bind_host` = `{}` (clients cannot connect to it)",
                        self.bind_host
                    ));
                }
                if self.advertised_host.as_deref() == Some("") {
                    problems.push("`gateway.advertised_host` is empty".to_string());
                }
            }
            Addressing::Sni => match self.sni_domain.as_deref() {
                None | Some("") => problems.push(
                    "`gateway.sni_domain` is required with `addressing = \"sni\"` (nodes are named broker-<id>.<sni_domain>)"
                        .to_string(),
                ),
                Some(domain) if !is_dns_name(domain) => problems.push(format!(
                    "`gateway.sni_domain`: `{domain}` is not a DNS name"
                )),
                Some(_) => {}
            },
        }
    }
}

impl GatewaySection {
    /// The security checklist's findings about the upstream side (warnings, not errors).
    pub fn posture_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.is_enabled() {
            return out;
        }
        let all_loopback = self.bootstrap_servers.iter().all(|s| {
            crate::config::parse_host_port(s).is_some_and(|(host, _)| {
                host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            })
        });
        if !self.tls.enabled && !all_loopback {
            out.push("gateway: the upstream is reached without TLS (`gateway.tls.enabled = false`): records and logins cross the network in clear text".into());
        }
        if self.tls.enabled && !self.tls.verify_hostname {
            out.push("gateway: `gateway.tls.verify_hostname = false` accepts any certificate of the CA for any upstream broker".into());
        }
        if self.sasl.allow_plain_without_tls && !self.tls.enabled {
            out.push("gateway: `gateway.sasl.allow_plain_without_tls` sends the upstream password in clear text".into());
        }
        out
    }
}

/// Letters, digits, `-` and dots between non-empty labels.
fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> GatewaySection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn absent_or_without_bootstrap_is_off_and_valid() {
        let off = GatewaySection::default();
        assert!(!off.is_enabled());
        assert!(off.validate().is_empty());
        let on = parse("bootstrap_servers = [\"k:9092\"]");
        assert!(on.is_enabled());
        assert!(on.validate().is_empty(), "{:?}", on.validate());
        let forced_off = parse("enabled = false\nbootstrap_servers = [\"k:9092\"]");
        assert!(!forced_off.is_enabled());
        let on_without_servers = parse("enabled = true");
        assert!(on_without_servers.validate()[0].contains("bootstrap_servers"));
    }

    #[test]
    fn every_mistake_is_named() {
        let g = parse(
            r#"
            bootstrap_servers = ["nohost", "k:9092"]
            request_timeout_ms = 0
            connect_timeout_ms = 99999999999
            max_response_bytes = -1
            bind_host = "0.0.0.0"
            [tls]
            enabled = true
            cert_file = "c.pem"
            [sasl]
            mechanism = "PLAIN"
            "#,
        );
        let problems = g.validate().join("\n");
        for expected in [
            "`nohost` is not host:port",
            "`gateway.request_timeout_ms` must be positive",
            "`gateway.connect_timeout_ms` = 99999999999",
            "`gateway.max_response_bytes`",
            "`gateway.advertised_host` is required",
            "`gateway.tls.ca_file` is required",
            "`gateway.tls.cert_file` and `gateway.tls.key_file`",
            "`gateway.sasl.username` is required",
            "`gateway.sasl.password_file` is required",
        ] {
            assert!(problems.contains(expected), "{expected} not in\n{problems}");
        }
        // PLAIN over TLS is fine; without TLS it needs the opt-in.
        assert!(!problems.contains("clear text"), "{problems}");
        let clear = parse(
            "bootstrap_servers = [\"k:9092\"]\n[sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword_file = \"p\"",
        );
        assert!(clear.validate().join("").contains("clear text"));
    }

    #[test]
    fn unknown_keys_and_mechanisms_are_refused() {
        assert!(toml::from_str::<GatewaySection>("bootstrap = []").is_err());
        assert!(toml::from_str::<GatewaySection>("[sasl]\nmechanism = \"GSSAPI\"").is_err());
        assert!(toml::from_str::<GatewaySection>("[sasl]\npassword = \"x\"").is_err());
        assert!(toml::from_str::<GatewaySection>("unmapped = \"anonymous\"").is_err());
    }

    #[test]
    fn clear_text_and_unverified_names_are_on_the_checklist() {
        assert!(GatewaySection::default().posture_warnings().is_empty());
        let local = parse("bootstrap_servers = [\"127.0.0.1:9092\", \"localhost:9093\"]");
        assert!(local.posture_warnings().is_empty());
        let remote = parse("bootstrap_servers = [\"kafka-1:9092\"]");
        assert!(remote.posture_warnings()[0].contains("without TLS"));
        let unverified = parse(
            "bootstrap_servers = [\"kafka-1:9093\"]\n[tls]\nenabled = true\nca_file = \"ca.pem\"\nverify_hostname = false",
        );
        let w = unverified.posture_warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("verify_hostname = false"));
    }

    #[test]
    fn port_rule_and_sni_names() {
        let g = parse("port_base = 19092\nnode_id_base = 1");
        assert_eq!(g.port_for(1), Some(19092));
        assert_eq!(g.port_for(4), Some(19095));
        assert_eq!(g.port_for(0), None);
        assert_eq!(g.port_for(i32::MAX), None);
        assert_eq!(parse("port_base = 65535").port_for(0), Some(65535));
        assert_eq!(parse("port_base = 65535").port_for(1), None);
        let sni = parse("addressing = \"sni\"\nsni_domain = \"kafka.example.com\"");
        assert_eq!(
            sni.sni_name(3).as_deref(),
            Some("broker-3.kafka.example.com")
        );
        let missing = parse("bootstrap_servers = [\"k:1\"]\naddressing = \"sni\"");
        assert!(missing.validate()[0].contains("sni_domain"));
        let bad =
            parse("bootstrap_servers = [\"k:1\"]\naddressing = \"sni\"\nsni_domain = \"a..b\"");
        assert!(bad.validate()[0].contains("not a DNS name"));
    }
}
