//! Semantic checks of a deserialized [`Config`]: every problem, each with the key it is about.

use std::collections::HashSet;

use super::diagnostics::{Issue, KeyPath};
use super::{Config, ListenerConfig};

/// Every problem of `config`; empty when it is valid.
pub fn validate(config: &Config) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut push =
        |path: &str, message: String| issues.push(Issue::new(KeyPath::parse(path), message));

    if config.listeners.is_empty() {
        push(
            "listeners",
            "at least one `[[listeners]]` entry is required".into(),
        );
    }
    if config.limits.max_frame_bytes <= 0 {
        push(
            "limits.max_frame_bytes",
            "`limits.max_frame_bytes` must be positive".into(),
        );
    }
    // Durations become deadlines (`Instant + duration`); bound them so no setting can
    // overflow one.
    const HOUR_MS: u64 = 3_600_000;
    const YEAR_MS: u64 = 365 * 24 * HOUR_MS;
    for (key, value, max) in [
        ("sasl.auth_timeout_ms", config.sasl.auth_timeout_ms, HOUR_MS),
        (
            "sasl.session_lifetime_ms",
            config.sasl.session_lifetime_ms,
            YEAR_MS,
        ),
        (
            "sasl.failed_login_delay_ms",
            config.sasl.failed_login_delay_ms,
            HOUR_MS,
        ),
        (
            "sasl.max_failed_login_delay_ms",
            config.sasl.max_failed_login_delay_ms,
            HOUR_MS,
        ),
        (
            "limits.idle_timeout_ms",
            config.limits.idle_timeout_ms,
            YEAR_MS,
        ),
        (
            "broker.shutdown_grace_ms",
            config.broker.shutdown_grace_ms,
            HOUR_MS,
        ),
        (
            "storage.flush_interval_ms",
            config.storage.flush_interval_ms,
            HOUR_MS,
        ),
        (
            "storage.retention_check_interval_ms",
            config.storage.retention_check_interval_ms,
            YEAR_MS,
        ),
        (
            "groups.initial_rebalance_delay_ms",
            config.groups.initial_rebalance_delay_ms,
            HOUR_MS,
        ),
        (
            "groups.max_session_timeout_ms",
            config.groups.max_session_timeout_ms,
            YEAR_MS,
        ),
    ] {
        if value > max {
            push(
                key,
                format!("`{key}` = {value} is above the maximum of {max}"),
            );
        }
    }
    // Sizes, counts and timeouts where zero would refuse everything or never expire.
    for (key, positive) in [
        ("sasl.auth_timeout_ms", config.sasl.auth_timeout_ms > 0),
        (
            "sasl.pre_auth_max_frame_bytes",
            config.sasl.pre_auth_max_frame_bytes > 0,
        ),
        ("limits.max_connections", config.limits.max_connections > 0),
        (
            "limits.memory_budget_bytes",
            config.limits.memory_budget_bytes > 0,
        ),
        ("limits.fetch_max_bytes", config.limits.fetch_max_bytes > 0),
        ("storage.max_partitions", config.storage.max_partitions > 0),
    ] {
        if !positive {
            push(key, format!("`{key}` must be positive"));
        }
    }
    for ip in config.limits.connections_per_ip_overrides.keys() {
        if ip.parse::<std::net::IpAddr>().is_err() {
            push(
                "limits.connections_per_ip_overrides",
                format!("`limits.connections_per_ip_overrides`: `{ip}` is not an IP address"),
            );
        }
    }
    if config.storage.max_open_files < super::MIN_OPEN_FILES {
        push(
            "storage.max_open_files",
            format!(
                "`storage.max_open_files` must be at least {} (one segment's files)",
                super::MIN_OPEN_FILES
            ),
        );
    }
    if config.broker.default_partitions <= 0 {
        push(
            "broker.default_partitions",
            "`broker.default_partitions` must be positive".into(),
        );
    }
    if !matches!(config.log.format.as_str(), "human" | "json") {
        push(
            "log.format",
            format!(
                "`log.format` must be `human` or `json`, not `{}`",
                config.log.format
            ),
        );
    }
    for (key, kafka_name, value) in config.topic_defaults.entries() {
        let mut probe = crate::storage::TopicConfig::default();
        if let Err(e) = probe.set(kafka_name, &value) {
            push(
                &format!("topic_defaults.{key}"),
                format!("`topic_defaults.{key}`: {e}"),
            );
        }
    }

    // Sections that check themselves: each message is placed at the key it names.
    for (section, result) in [
        ("quotas", config.quotas.entries().map(|_| ())),
        ("audit", config.audit.validate()),
        ("metrics", config.metrics.validate()),
        ("plugins", config.plugins.validate()),
    ] {
        if let Err(message) = result {
            issues.push(Issue::in_section(KeyPath::parse(section), message));
        }
    }

    for message in config.gateway.validate() {
        issues.push(Issue::in_section(KeyPath::parse("gateway"), message));
    }

    let mut names = HashSet::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        let at = KeyPath::parse("listeners").index(i);
        if !names.insert(listener.name.as_str()) {
            issues.push(Issue::new(
                at.clone().key("name"),
                format!("listener name `{}` is used twice", listener.name),
            ));
        }
        validate_listener(listener, &at, &mut issues);
    }
    issues
}

fn validate_listener(l: &ListenerConfig, at: &KeyPath, issues: &mut Vec<Issue>) {
    let name = &l.name;
    let mut push =
        |key: &str, message: String| issues.push(Issue::new(at.clone().key(key), message));
    match (l.protocol.uses_tls(), &l.tls) {
        (true, None) => push(
            "protocol",
            format!(
                "listener `{name}`: {:?} needs a `[listeners.tls]` section",
                l.protocol
            ),
        ),
        (false, Some(_)) => push(
            "tls",
            format!(
                "listener `{name}`: {:?} does not use TLS; remove its `tls` section",
                l.protocol
            ),
        ),
        (true, Some(tls)) => {
            if let Err(e) = tls.validate() {
                issues.push(Issue::in_section(
                    at.clone().key("tls"),
                    format!("listener `{name}`: {e}"),
                ));
            }
        }
        (false, None) => {}
    }
    let mut push =
        |key: &str, message: String| issues.push(Issue::new(at.clone().key(key), message));
    if !l.protocol.uses_tls() && !l.bind.ip().is_loopback() && !l.allow_insecure_non_loopback {
        push(
            "bind",
            format!(
                "listener `{name}`: {:?} on the non-loopback address {} sends data in clear text; use SSL/SASL_SSL or set `allow_insecure_non_loopback = true`",
                l.protocol, l.bind
            ),
        );
    }
    if let Some(adv) = &l.advertised {
        if super::parse_host_port(adv).is_none() {
            push(
                "advertised",
                format!("listener `{name}`: advertised `{adv}` is not host:port"),
            );
        }
    }
    if l.protocol.uses_sasl() {
        if l.sasl_mechanisms.is_empty() {
            push(
                "sasl_mechanisms",
                format!("listener `{name}`: `sasl_mechanisms` is empty"),
            );
        }
        for m in &l.sasl_mechanisms {
            if !crate::sasl::SUPPORTED_MECHANISMS.contains(&m.as_str()) {
                push(
                    "sasl_mechanisms",
                    format!(
                        "listener `{name}`: unknown SASL mechanism `{m}` (supported: {})",
                        crate::sasl::SUPPORTED_MECHANISMS.join(", ")
                    ),
                );
            }
        }
        let plain = l.sasl_mechanisms.iter().any(|m| m == "PLAIN");
        if plain && !l.protocol.uses_tls() && !l.allow_plain_without_tls {
            push(
                "sasl_mechanisms",
                format!(
                    "listener `{name}`: PLAIN on SASL_PLAINTEXT sends passwords in clear text; use SASL_SSL or set `allow_plain_without_tls = true`"
                ),
            );
        }
    }
}
