//! Constructors for every audited event type, so that call sites stay one line and every
//! event of a type carries the same fields.
//!
//! Resources are written `kind:name` (`topic:orders`, `user:alice`, `policy:/etc/palisade`).

use super::event::{Event, EventType, Origin, Outcome};

fn outcome(ok: bool) -> Outcome {
    if ok {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

/// Config keys whose values may be secrets: their values never enter the trail.
pub fn is_sensitive_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "sasl",
        "ssl",
        "key",
    ]
    .iter()
    .any(|s| k.contains(s))
}

impl Event {
    /// A SASL login (or a TLS client certificate accepted/refused). `reason` explains a
    /// failure; it must never hold the secret (SASL errors are safe by construction).
    pub fn authentication(origin: &Origin, ok: bool, reason: Option<&str>) -> Event {
        let mut e = Event::new(EventType::Authentication, outcome(ok))
            .from(origin)
            .operation("Authenticate");
        e.reason = reason.map(str::to_string);
        e
    }

    /// A KIP-368 re-authentication on an open connection.
    pub fn reauthentication(origin: &Origin, ok: bool, reason: Option<&str>) -> Event {
        let mut e = Event::new(EventType::Reauthentication, outcome(ok))
            .from(origin)
            .operation("Reauthenticate");
        e.reason = reason.map(str::to_string);
        e
    }

    /// A connection closed because its SASL session lifetime ended.
    pub fn session_expired(origin: &Origin) -> Event {
        Event::new(EventType::SessionExpired, Outcome::Success)
            .from(origin)
            .reason("session lifetime ended without re-authentication")
    }

    pub fn topic_created(origin: &Origin, topic: &str, partitions: i32) -> Event {
        Event::new(EventType::TopicCreated, Outcome::Success)
            .from(origin)
            .resource(format!("topic:{topic}"))
            .operation("Create")
            .detail("partitions", partitions)
    }

    pub fn topic_deleted(origin: &Origin, topic: &str) -> Event {
        Event::new(EventType::TopicDeleted, Outcome::Success)
            .from(origin)
            .resource(format!("topic:{topic}"))
            .operation("Delete")
    }

    /// A topic config change: `changes` are `(key, new value)` (`None` = reset to default).
    pub fn topic_config_changed(
        origin: &Origin,
        topic: &str,
        changes: &[(String, Option<String>)],
    ) -> Event {
        let map: serde_json::Map<String, serde_json::Value> = changes
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.clone().map_or(serde_json::Value::Null, Into::into),
                )
            })
            .collect();
        Event::new(EventType::TopicConfigChanged, Outcome::Success)
            .from(origin)
            .resource(format!("topic:{topic}"))
            .operation("AlterConfigs")
            .detail("changes", serde_json::Value::Object(map))
    }

    /// Quotas of `entity` set (`Some`) or removed (`None`), or the change refused.
    pub fn client_quota_changed(
        origin: &Origin,
        entity: &str,
        changes: &[(String, Option<u64>)],
        refusal: Option<&str>,
    ) -> Event {
        let map: serde_json::Map<String, serde_json::Value> = changes
            .iter()
            .map(|(k, v)| (k.clone(), v.map_or(serde_json::Value::Null, Into::into)))
            .collect();
        let mut e = Event::new(EventType::ClientQuotaChanged, outcome(refusal.is_none()))
            .from(origin)
            .resource(format!("quota:{entity}"))
            .operation("AlterClientQuotas")
            .detail("changes", serde_json::Value::Object(map));
        e.reason = refusal.map(str::to_string);
        e
    }

    /// A refused administrative change (topic create/delete/config, credentials ...), for
    /// call sites that refuse before any decision event exists.
    pub fn refused(
        event_type: EventType,
        origin: &Origin,
        resource: &str,
        operation: &str,
        reason: &str,
    ) -> Event {
        Event::new(event_type, Outcome::Failure)
            .from(origin)
            .resource(resource)
            .operation(operation)
            .reason(reason)
    }

    /// An ACL binding created (`created = true`) or deleted; `binding` describes it
    /// (`principal=User:alice,operation=Read,resource=topic:orders,permission=Allow`).
    pub fn acl_changed(origin: &Origin, created: bool, binding: &str, ok: bool) -> Event {
        let t = if created {
            EventType::AclCreated
        } else {
            EventType::AclDeleted
        };
        Event::new(t, outcome(ok))
            .from(origin)
            .resource(format!("acl:{binding}"))
            .operation(if created { "CreateAcls" } else { "DeleteAcls" })
    }

    pub fn user_added(origin: &Origin, user: &str) -> Event {
        Event::new(EventType::UserAdded, Outcome::Success)
            .from(origin)
            .resource(format!("user:{user}"))
            .operation("AddUser")
    }

    pub fn user_removed(origin: &Origin, user: &str) -> Event {
        Event::new(EventType::UserRemoved, Outcome::Success)
            .from(origin)
            .resource(format!("user:{user}"))
            .operation("RemoveUser")
    }

    /// A credential of `user` set or deleted (`mechanism` names which; never the secret).
    pub fn user_credential_changed(
        origin: &Origin,
        user: &str,
        mechanism: Option<&str>,
        ok: bool,
        reason: Option<&str>,
    ) -> Event {
        let mut e = Event::new(EventType::UserCredentialChanged, outcome(ok))
            .from(origin)
            .resource(format!("user:{user}"))
            .operation("AlterUserScramCredentials");
        if let Some(m) = mechanism {
            e = e.detail("credential_mechanism", m);
        }
        e.reason = reason.map(str::to_string);
        e
    }

    /// A policy generation installed; `sha256` is the digest of exactly what was loaded.
    pub fn policy_loaded(dir: &str, generation: u64, sha256: &str, policies: usize) -> Event {
        let mut e = Event::new(EventType::PolicyLoaded, Outcome::Success)
            .from(&Origin::broker())
            .resource(format!("policy:{dir}"))
            .operation("Load")
            .detail("sha256", sha256)
            .detail("policies", policies);
        e.policy_generation = Some(generation);
        e
    }

    /// A policy change refused; `kept` is the generation that keeps serving, `sha256` the
    /// digest of the refused directory content.
    pub fn policy_rejected(dir: &str, kept: u64, sha256: &str, reason: &str) -> Event {
        let mut e = Event::new(EventType::PolicyRejected, Outcome::Failure)
            .from(&Origin::broker())
            .resource(format!("policy:{dir}"))
            .operation("Load")
            .reason(reason)
            .detail("sha256", sha256);
        e.policy_generation = Some(kept);
        e
    }

    /// A plugin loaded; `sha256` is the digest of its component.
    pub fn plugin_loaded(plugin: &str, sha256: &str) -> Event {
        Event::new(EventType::PluginLoaded, Outcome::Success)
            .from(&Origin::broker())
            .resource(format!("plugin:{plugin}"))
            .operation("Load")
            .detail("sha256", sha256)
    }

    /// A plugin refused at load (bad manifest, component, or permissions).
    pub fn plugin_load_refused(plugin: &str, reason: &str) -> Event {
        Event::new(EventType::PluginRejected, Outcome::Failure)
            .from(&Origin::broker())
            .resource(format!("plugin:{plugin}"))
            .operation("Load")
            .reason(reason)
    }

    /// A plugin rejected a client's batch (`topic` it was produced to).
    pub fn plugin_rejected(origin: &Origin, plugin: &str, topic: &str, reason: &str) -> Event {
        Event::new(EventType::PluginRejected, Outcome::Deny)
            .from(origin)
            .resource(format!("topic:{topic}"))
            .operation("Write")
            .reason(reason)
            .detail("plugin", plugin)
    }

    /// A plugin trapped while handling a client's batch (the batch was refused).
    pub fn plugin_trapped(origin: &Origin, plugin: &str, topic: &str, trap: &str) -> Event {
        Event::new(EventType::PluginTrapped, Outcome::Failure)
            .from(origin)
            .resource(format!("topic:{topic}"))
            .operation("Write")
            .reason(trap)
            .detail("plugin", plugin)
    }

    /// A plugin call stopped at its deadline (the batch was refused).
    pub fn plugin_timed_out(origin: &Origin, plugin: &str, topic: &str, deadline_ms: u64) -> Event {
        Event::new(EventType::PluginTimedOut, Outcome::Failure)
            .from(origin)
            .resource(format!("topic:{topic}"))
            .operation("Write")
            .reason(format!("deadline of {deadline_ms} ms exceeded"))
            .detail("plugin", plugin)
    }

    /// A listener's TLS material reloaded (`ok`) or refused (the old material keeps serving).
    pub fn certificate_reload(
        listener: &str,
        ok: bool,
        generation: u64,
        reason: Option<&str>,
    ) -> Event {
        let t = if ok {
            EventType::CertificateReloaded
        } else {
            EventType::CertificateRejected
        };
        let mut e = Event::new(t, outcome(ok))
            .from(&Origin::broker())
            .resource(format!("listener:{listener}"))
            .operation("ReloadCertificates")
            .detail("tls_generation", generation);
        e.listener = Some(listener.to_string());
        e.reason = reason.map(str::to_string);
        e
    }

    /// A connection refused by an admission limit; `refused` counts the refusals this event
    /// stands for (refusals are aggregated per second under a flood).
    pub fn connection_limited(
        listener: &str,
        source_ip: &str,
        reason: &str,
        refused: u64,
    ) -> Event {
        let mut e = Event::new(EventType::ConnectionLimited, Outcome::Deny)
            .operation("Connect")
            .reason(reason)
            .detail("refused", refused);
        e.listener = Some(listener.to_string());
        e.source_ip = Some(source_ip.to_string());
        e
    }

    /// Failed logins from one address delayed by `delay_ms` (the throttle applied).
    pub fn login_throttled(origin: &Origin, failures: u32, delay_ms: u64) -> Event {
        Event::new(EventType::LoginThrottled, Outcome::Deny)
            .from(origin)
            .operation("Authenticate")
            .reason("repeated failed logins from this address")
            .detail("failures", failures)
            .detail("delay_ms", delay_ms)
    }

    /// A connection over its `quota` (a Kafka quota key) told to wait `throttle_ms`, the
    /// first time on this connection: the trail shows who hit a quota, not every throttle.
    pub fn quota_throttled(origin: &Origin, quota: &str, entity: &str, throttle_ms: u64) -> Event {
        Event::new(EventType::QuotaThrottled, Outcome::Deny)
            .from(origin)
            .resource(format!("quota:{entity}"))
            .operation(quota)
            .reason("over its client quota; answered with throttle_time_ms and muted")
            .detail("throttle_ms", throttle_ms)
    }

    /// Events lost while the audit buffer was full.
    pub fn audit_events_lost(count: u64) -> Event {
        Event::new(EventType::AuditEventsLost, Outcome::Failure)
            .from(&Origin::broker())
            .reason("the audit buffer stayed full; events were not recorded")
            .detail("count", count)
    }
}
