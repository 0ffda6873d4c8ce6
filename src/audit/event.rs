//! [`Event`]: one audit record, serialized as one JSON object.
//!
//! The fields are those of the classic audit example (timestamp, event_type, principal,
//! result, source_ip, resource, operation) plus listener, mechanism, client_id and reason;
//! authorization decisions add the determining policy ids and the policy generation. Every
//! field is always present (`null` when it does not apply) so that a SIEM sees one schema.
//! Nothing here ever holds a secret: constructors take names, never passwords, keys or
//! payloads.

use std::collections::BTreeMap;

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Authentication,
    Reauthentication,
    SessionExpired,
    Authorization,
    TopicCreated,
    TopicDeleted,
    TopicConfigChanged,
    /// A client quota set or removed through AlterClientQuotas.
    ClientQuotaChanged,
    AclCreated,
    AclDeleted,
    UserAdded,
    UserRemoved,
    UserCredentialChanged,
    PolicyLoaded,
    PolicyRejected,
    PluginLoaded,
    PluginRejected,
    PluginTrapped,
    PluginTimedOut,
    CertificateReloaded,
    CertificateRejected,
    ConnectionLimited,
    LoginThrottled,
    /// A connection first throttled by a client quota (once per connection and quota).
    QuotaThrottled,
    /// The audit buffer stayed full and events were lost; `detail.count` says how many.
    AuditEventsLost,
}

impl EventType {
    pub fn name(self) -> &'static str {
        match self {
            EventType::Authentication => "authentication",
            EventType::Reauthentication => "reauthentication",
            EventType::SessionExpired => "session_expired",
            EventType::Authorization => "authorization",
            EventType::TopicCreated => "topic_created",
            EventType::TopicDeleted => "topic_deleted",
            EventType::TopicConfigChanged => "topic_config_changed",
            EventType::ClientQuotaChanged => "client_quota_changed",
            EventType::AclCreated => "acl_created",
            EventType::AclDeleted => "acl_deleted",
            EventType::UserAdded => "user_added",
            EventType::UserRemoved => "user_removed",
            EventType::UserCredentialChanged => "user_credential_changed",
            EventType::PolicyLoaded => "policy_loaded",
            EventType::PolicyRejected => "policy_rejected",
            EventType::PluginLoaded => "plugin_loaded",
            EventType::PluginRejected => "plugin_rejected",
            EventType::PluginTrapped => "plugin_trapped",
            EventType::PluginTimedOut => "plugin_timed_out",
            EventType::CertificateReloaded => "certificate_reloaded",
            EventType::CertificateRejected => "certificate_rejected",
            EventType::ConnectionLimited => "connection_limited",
            EventType::LoginThrottled => "login_throttled",
            EventType::QuotaThrottled => "quota_throttled",
            EventType::AuditEventsLost => "audit_events_lost",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Allow,
    Deny,
}

/// Who (and from where) caused an event; shared by the events of one request or connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub principal: Option<String>,
    pub source_ip: Option<String>,
    pub listener: Option<String>,
    pub mechanism: Option<String>,
    pub client_id: Option<String>,
}

impl From<&crate::request::Caller> for Origin {
    /// The origin of a request (or plugin call) the broker serves.
    fn from(caller: &crate::request::Caller) -> Self {
        Origin {
            principal: Some(caller.principal.to_string()),
            source_ip: Some(caller.peer.ip().to_string()),
            listener: Some(caller.listener.clone()),
            mechanism: Some(caller.mechanism().to_string()),
            client_id: caller.client_id.clone(),
        }
    }
}

impl Origin {
    /// The origin of a request the broker serves (see the `From<&Caller>` conversion).
    pub fn of_request(caller: &crate::request::Caller) -> Self {
        Origin::from(caller)
    }

    /// The broker itself (file watchers, reloads, startup).
    pub fn broker() -> Self {
        Origin {
            principal: Some("palisade".to_string()),
            ..Origin::default()
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// RFC 3339, UTC, millisecond precision: when the event happened.
    pub timestamp: String,
    pub event_type: EventType,
    pub principal: Option<String>,
    pub result: Outcome,
    pub source_ip: Option<String>,
    pub resource: Option<String>,
    pub operation: Option<String>,
    pub listener: Option<String>,
    pub mechanism: Option<String>,
    pub client_id: Option<String>,
    pub reason: Option<String>,
    /// Authorization decisions: the policies that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_ids: Option<Vec<String>>,
    /// Authorization decisions and policy reloads: the policy generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_generation: Option<u64>,
    /// Event-specific facts (hashes, counts, plugin names ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, serde_json::Value>,
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

impl Event {
    /// An event of `event_type` with `result`, stamped now, with no other field set.
    pub fn new(event_type: EventType, result: Outcome) -> Self {
        Event {
            timestamp: now_rfc3339(),
            event_type,
            principal: None,
            result,
            source_ip: None,
            resource: None,
            operation: None,
            listener: None,
            mechanism: None,
            client_id: None,
            reason: None,
            policy_ids: None,
            policy_generation: None,
            detail: BTreeMap::new(),
        }
    }

    /// Fills principal, source, listener, mechanism and client id from `origin`.
    pub fn from(mut self, origin: &Origin) -> Self {
        self.principal = origin.principal.clone();
        self.source_ip = origin.source_ip.clone();
        self.listener = origin.listener.clone();
        self.mechanism = origin.mechanism.clone();
        self.client_id = origin.client_id.clone();
        self
    }

    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn operation(mut self, operation: impl Into<String>) -> Self {
        self.operation = Some(operation.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    pub fn mechanism(mut self, mechanism: impl Into<String>) -> Self {
        self.mechanism = Some(mechanism.into());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.detail.insert(key.to_string(), value.into());
        self
    }
}
