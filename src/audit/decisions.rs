//! Which authorization decisions are audited: every denial, every allow of an administrative
//! operation, and allows of data operations per `audit.data_operations` (off, first use per
//! session per (action, resource), or all). Every decision is counted in the metrics.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;

use super::event::{Event, EventType, Origin, Outcome};
use super::handle::Audit;
use super::settings::DataOperations;
use crate::authz::{Action, Decision, ResourceKind};

/// Most (action, resource) pairs remembered per session for first-use; past it every allow
/// is audited (more audit, never less).
const MAX_REMEMBERED: usize = 4096;

/// Data operations: the per-record path (produce, fetch, metadata, offsets). Everything else
/// (create, delete, alter, configs, cluster actions, decrypt) is administrative.
pub fn is_data_operation(action: Action) -> bool {
    matches!(
        action,
        Action::Read | Action::Write | Action::Describe | Action::IdempotentWrite
    )
}

/// `topic:orders`, `group:billing`, `cluster:kafka-cluster`, `transactional_id:tx`.
pub fn resource_label(kind: ResourceKind, name: &str) -> String {
    let k = match kind {
        ResourceKind::Topic => "topic",
        ResourceKind::ConsumerGroup => "group",
        ResourceKind::Cluster => "cluster",
        ResourceKind::TransactionalId => "transactional_id",
    };
    format!("{k}:{name}")
}

/// Per-connection memory for first-use auditing. Cheap to clone (one `Arc`).
#[derive(Clone, Default, Debug)]
pub struct SessionAudit {
    seen: Arc<Mutex<HashSet<(Action, ResourceKind, String)>>>,
}

impl SessionAudit {
    /// True the first time this session uses (action, kind, name).
    fn first_use(&self, action: Action, kind: ResourceKind, name: &str) -> bool {
        let mut seen = self.seen.lock();
        if seen.contains(&(action, kind, name.to_string())) {
            return false;
        }
        if seen.len() < MAX_REMEMBERED {
            seen.insert((action, kind, name.to_string()));
        }
        true
    }
}

impl Event {
    /// An authorization decision: the determining policy ids and the generation that decided.
    pub fn authz(
        origin: &Origin,
        action: Action,
        kind: ResourceKind,
        name: &str,
        decision: &Decision,
    ) -> Event {
        let result = if decision.allowed {
            Outcome::Allow
        } else {
            Outcome::Deny
        };
        let mut e = Event::new(EventType::Authorization, result)
            .from(origin)
            .resource(resource_label(kind, name))
            .operation(action.name());
        e.policy_ids = Some(
            decision
                .determining
                .iter()
                .map(|p| p.id.to_string())
                .collect(),
        );
        e.policy_generation = Some(decision.generation);
        if decision.super_user {
            e = e.reason("super user");
        } else if !decision.errors.is_empty() {
            e = e.reason(decision.errors.join("; "));
        } else if !decision.allowed && decision.determining.is_empty() {
            e = e.reason("no policy permits it (default deny)");
        }
        e
    }
}

impl Audit {
    fn count_decision(&self, action: Action, decision: &Decision) {
        if let Some(metrics) = self.metrics() {
            metrics
                .decisions
                .with(&[
                    action.name(),
                    if decision.allowed { "allow" } else { "deny" },
                ])
                .inc();
        }
    }

    /// A plugin's `authorize` question (Decrypt, say) and its answer: counted, and audited the
    /// first time per connection that it gets this answer for this action and topic (plugins
    /// ask once per batch; the trail must not grow per batch).
    pub fn plugin_decision(
        &self,
        question: &crate::plugin::oracle::Question<'_>,
        action: Action,
        facts: &crate::plugin::CallFacts,
        decision: &Decision,
    ) {
        self.count_decision(action, decision);
        // The outcome is part of the key: a policy change that flips the answer is audited.
        let key = format!(
            "{}\0{}",
            question.topic,
            if decision.allowed { "allow" } else { "deny" }
        );
        if !facts.session.first_use(action, ResourceKind::Topic, &key) {
            return;
        }
        let origin = Origin {
            // Plugins name users as the call context does, without the entity type.
            principal: Some(format!("User:{}", question.principal)),
            source_ip: Some(facts.ip.to_string()),
            listener: Some(facts.listener.clone()),
            mechanism: Some(facts.authentication.to_string()),
            client_id: Some(facts.client_id.clone()).filter(|c| !c.is_empty()),
        };
        self.record(
            Event::authz(
                &origin,
                action,
                ResourceKind::Topic,
                question.topic,
                decision,
            )
            .detail("plugin", question.plugin),
        );
    }

    /// Counts the decision and audits it when the rules above say so. Call it at the
    /// enforcement point, once per (action, resource) decided.
    pub fn decision(
        &self,
        ctx: &crate::api::RequestContext,
        action: Action,
        kind: ResourceKind,
        name: &str,
        decision: &Decision,
    ) {
        self.count_decision(action, decision);
        let Some(inner) = self.inner() else { return };
        let audited = !decision.allowed
            || !is_data_operation(action)
            || match inner.data_operations {
                DataOperations::Off => false,
                DataOperations::All => true,
                DataOperations::FirstUse => ctx.audit_session.first_use(action, kind, name),
            };
        if audited {
            let origin = Origin::of_request(ctx);
            self.record(Event::authz(&origin, action, kind, name, decision));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_is_per_action_and_resource() {
        let s = SessionAudit::default();
        assert!(s.first_use(Action::Write, ResourceKind::Topic, "a"));
        assert!(!s.first_use(Action::Write, ResourceKind::Topic, "a"));
        assert!(s.first_use(Action::Read, ResourceKind::Topic, "a"));
        assert!(s.first_use(Action::Write, ResourceKind::Topic, "b"));
        assert!(s
            .clone()
            .first_use(Action::Describe, ResourceKind::Topic, "a"));
        assert!(!s.first_use(Action::Describe, ResourceKind::Topic, "a"));
    }
}
