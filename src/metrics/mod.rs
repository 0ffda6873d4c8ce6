//! Prometheus metrics: the broker's counters, gauges and histograms, and a text endpoint.
//!
//! # Layout
//!
//! - [`family`]: labelled [`Family`] of [`Counter`], [`Gauge`] or [`Histogram`] series.
//! - [`http`]: the `GET /metrics` endpoint (`[metrics] bind`).
//!
//! [`Metrics`] names every family the broker records. The plugin host registers its calls
//! through [`Metrics::plugin_call`], [`Metrics::plugin_rejection`] and friends.

pub mod family;
pub mod http;

use std::time::Duration;

pub use family::{Counter, Family, Gauge, Histogram, Render};

/// The name of a Kafka API as a label value (`Produce`, `Fetch` ...), without allocating.
pub fn api_name(key: kafka_protocol::messages::ApiKey) -> &'static str {
    static NAMES: std::sync::LazyLock<Vec<(i16, String)>> = std::sync::LazyLock::new(|| {
        use crate::protocol::apis::{APIS, TRANSACTION_APIS};
        APIS.iter()
            .chain(TRANSACTION_APIS)
            .map(|e| (e.key as i16, format!("{:?}", e.key)))
            .collect()
    });
    NAMES
        .iter()
        .find(|(k, _)| *k == key as i16)
        .map_or("other", |(_, n)| n.as_str())
}

/// Every metric the broker exports. Held by the broker in an `Arc`; cheap to record into.
pub struct Metrics {
    pub requests: Family<Counter>,
    pub request_latency: Family<Histogram>,
    pub bytes_in: Family<Counter>,
    pub bytes_out: Family<Counter>,
    pub logins: Family<Counter>,
    pub decisions: Family<Counter>,
    pub plugin_calls: Family<Counter>,
    pub plugin_rejections: Family<Counter>,
    pub plugin_traps: Family<Counter>,
    pub plugin_timeouts: Family<Counter>,
    pub plugin_latency: Family<Histogram>,
    pub reloads: Family<Counter>,
    pub reload_failures: Family<Counter>,
    pub connections: Family<Counter>,
    pub open_connections: Family<Gauge>,
    pub throttled: Family<Counter>,
    pub audit_events: Family<Counter>,
    pub audit_lost: Family<Counter>,
    pub audit_queue: Family<Gauge>,
    pub audit_backpressure: Family<Counter>,
    pub audit_write_latency: Family<Histogram>,
    pub audit_topic_backlog: Family<Gauge>,
    pub audit_topic_dropped: Family<Counter>,
    pub tls_expiry: Family<Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            requests: Family::new("palisade_requests_total", "Requests served, per Kafka API.", &["api"]),
            request_latency: Family::new(
                "palisade_request_latency_seconds",
                "Time from decoded request to applied effect, per Kafka API.",
                &["api"],
            ),
            bytes_in: Family::new("palisade_bytes_in_total", "Record bytes produced, per topic.", &["topic"]),
            bytes_out: Family::new("palisade_bytes_out_total", "Record bytes fetched, per topic.", &["topic"]),
            logins: Family::new(
                "palisade_logins_total",
                "SASL logins and TLS client certificates, per mechanism and result.",
                &["mechanism", "result"],
            ),
            decisions: Family::new(
                "palisade_authz_decisions_total",
                "Authorization decisions, per action and result.",
                &["action", "result"],
            ),
            plugin_calls: Family::new("palisade_plugin_calls_total", "Plugin calls, per plugin.", &["plugin"]),
            plugin_rejections: Family::new(
                "palisade_plugin_rejections_total",
                "Batches a plugin rejected, per plugin.",
                &["plugin"],
            ),
            plugin_traps: Family::new("palisade_plugin_traps_total", "Plugin traps, per plugin.", &["plugin"]),
            plugin_timeouts: Family::new(
                "palisade_plugin_timeouts_total",
                "Plugin calls stopped at their deadline, per plugin.",
                &["plugin"],
            ),
            plugin_latency: Family::new(
                "palisade_plugin_latency_seconds",
                "Plugin call duration, per plugin.",
                &["plugin"],
            ),
            reloads: Family::new(
                "palisade_reload_generations_total",
                "Hot reloads applied (policies, credentials, tls, plugins).",
                &["kind"],
            ),
            reload_failures: Family::new(
                "palisade_reload_failures_total",
                "Hot reloads refused (the last good generation kept serving).",
                &["kind"],
            ),
            connections: Family::new(
                "palisade_connections_accepted_total",
                "Connections accepted, per listener.",
                &["listener"],
            ),
            open_connections: Family::new(
                "palisade_connections_open",
                "Connections open now, per listener.",
                &["listener"],
            ),
            throttled: Family::new(
                "palisade_throttled_total",
                "Connections refused by admission limits and logins delayed by throttling.",
                &["kind"],
            ),
            audit_events: Family::new(
                "palisade_audit_events_total",
                "Audit events written, per sink.",
                &["sink"],
            ),
            audit_lost: Family::new(
                "palisade_audit_events_lost_total",
                "Audit events lost because the audit buffer stayed full (also an error log and an audit_events_lost event).",
                &[],
            ),
            audit_queue: Family::new(
                "palisade_audit_queue_events",
                "Audit events waiting for the writer (sink lag).",
                &[],
            ),
            audit_backpressure: Family::new(
                "palisade_audit_backpressure_total",
                "Times record() found the audit buffer full and waited.",
                &[],
            ),
            audit_write_latency: Family::new(
                "palisade_audit_write_latency_seconds",
                "Time for the writer to write (and fsync) one drained batch of events.",
                &[],
            ),
            audit_topic_backlog: Family::new(
                "palisade_audit_topic_backlog_events",
                "Gateway mode: audit lines waiting to be written to the audit topic on the upstream.",
                &[],
            ),
            audit_topic_dropped: Family::new(
                "palisade_audit_topic_dropped_total",
                "Gateway mode: audit lines dropped from the upstream audit topic's copy (backlog full, refused, or left at shutdown); the audit file keeps them.",
                &[],
            ),
            tls_expiry: Family::new(
                "palisade_tls_expiry_timestamp_seconds",
                "Unix time at which the soonest-expiring certificate (notAfter) or CRL (nextUpdate) of each kind stops being usable, per listener (kinds: certificate, chain, client_ca, crl).",
                &["listener", "kind"],
            ),
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let families: [&dyn Render; 24] = [
            &self.requests,
            &self.request_latency,
            &self.bytes_in,
            &self.bytes_out,
            &self.logins,
            &self.decisions,
            &self.plugin_calls,
            &self.plugin_rejections,
            &self.plugin_traps,
            &self.plugin_timeouts,
            &self.plugin_latency,
            &self.reloads,
            &self.reload_failures,
            &self.connections,
            &self.open_connections,
            &self.throttled,
            &self.audit_events,
            &self.audit_lost,
            &self.audit_queue,
            &self.audit_backpressure,
            &self.audit_write_latency,
            &self.audit_topic_backlog,
            &self.audit_topic_dropped,
            &self.tls_expiry,
        ];
        for f in families {
            f.render(&mut out);
        }
        out
    }

    /// A plugin call that completed (allowed or rejected), with its duration.
    pub fn plugin_call(&self, plugin: &str, took: Duration) {
        self.plugin_calls.with(&[plugin]).inc();
        self.plugin_latency.with(&[plugin]).observe(took);
    }

    /// A batch a plugin rejected.
    pub fn plugin_rejection(&self, plugin: &str) {
        self.plugin_rejections.with(&[plugin]).inc();
    }

    /// A plugin trap.
    pub fn plugin_trap(&self, plugin: &str) {
        self.plugin_traps.with(&[plugin]).inc();
    }

    /// A plugin call stopped at its deadline.
    pub fn plugin_timeout(&self, plugin: &str) {
        self.plugin_timeouts.with(&[plugin]).inc();
    }

    /// A hot reload of `kind` (`policies`, `credentials`, `tls`, `plugins`): applied or refused.
    pub fn reload(&self, kind: &str, applied: bool) {
        if applied {
            self.reloads.with(&[kind]).inc();
        } else {
            self.reload_failures.with(&[kind]).inc();
        }
    }
}

/// `[metrics]`: the Prometheus endpoint. Without `bind` there is no endpoint (the production
/// choice: nothing listens that was not asked for); the dev default binds loopback.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address of `GET /metrics`; absent = no endpoint.
    #[serde(default)]
    pub bind: Option<std::net::SocketAddr>,
    /// Permit a non-loopback `bind` (metrics name topics, listeners and principals' actions).
    #[serde(default)]
    pub allow_non_loopback: bool,
}

impl MetricsSection {
    pub fn validate(&self) -> Result<(), String> {
        match self.bind {
            Some(addr) if !addr.ip().is_loopback() && !self.allow_non_loopback => Err(format!(
                "`metrics.bind` = {addr} is not a loopback address; set `metrics.allow_non_loopback = true` to expose metrics there"
            )),
            _ => Ok(()),
        }
    }
}
