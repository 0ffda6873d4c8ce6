//! Which authorization decisions are audited, and how: every denial, every allow of an
//! administrative operation, and allows of data operations per `audit.data_operations` (off,
//! first use per session per (action, resource), or all). Every decision is counted in the
//! metrics. The enforcement point (`api::access`) reports each decision here as a [`Decided`].
//!
//! The decisions one Kafka request makes are gathered in its [`RequestDecisions`] and written
//! when the request ends, as one event per (action, resource kind, outcome, deciding policies,
//! reason): a Metadata naming 100,000 topics writes a few bounded lines (the count and the first
//! [`MAX_NAMED`] names), not 100,000. A plugin's questions are audited once per connection,
//! topic and answer (plugins ask per batch).

use parking_lot::Mutex;

use super::event::{Event, EventType, Origin, Outcome};
use super::handle::Audit;
use super::settings::DataOperations;
use crate::authz::{Action, Decision, ResourceKind};
use crate::request::Caller;

/// Resource names listed in one aggregated decision event; the rest are counted.
pub const MAX_NAMED: usize = 100;

/// Distinct (action, kind, outcome, policies, reason) groups one request keeps apart; past
/// it, further decisions join the group of their action, kind and outcome.
const MAX_GROUPS: usize = 64;

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

/// One decision, as the enforcement point reports it.
#[derive(Debug, Clone, Copy)]
pub struct Decided<'a> {
    /// Who asked, over which connection.
    pub caller: &'a Caller,
    /// The principal the question was about (the caller's own, unless a plugin asked about
    /// another).
    pub principal: &'a str,
    /// The plugin that asked, if one did.
    pub plugin: Option<&'a str>,
    pub action: Action,
    pub kind: ResourceKind,
    pub name: &'a str,
    pub decision: &'a Decision,
    /// Set when a rule of the broker rather than a policy decided (the audit topic is
    /// read-only; a question the API does not ask).
    pub refusal: Option<&'a str>,
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

    fn decided(d: &Decided<'_>) -> Event {
        let mut origin = Origin::from(d.caller);
        if d.principal != d.caller.principal.name {
            origin.principal = Some(format!("User:{}", d.principal));
        }
        let mut e = Event::authz(&origin, d.action, d.kind, d.name, d.decision);
        if let Some(reason) = d.refusal {
            e = e.reason(reason);
        }
        if let Some(plugin) = d.plugin {
            e = e.detail("plugin", plugin);
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

    /// Counts the decision and audits it when the rules above say so: into `request` when the
    /// decision belongs to a Kafka request (written when the request ends), else at once.
    /// Call it at the enforcement point, once per (action, resource) decided.
    pub fn decision(&self, d: &Decided<'_>, request: Option<&RequestDecisions>) {
        self.count_decision(d.action, d.decision);
        let Some(inner) = self.inner() else { return };
        let first_use = |key: &str| d.caller.audit_session.first(key);
        let audited = if d.plugin.is_some() {
            // The outcome is part of the key: a policy change that flips the answer is
            // audited.
            first_use(&format!(
                "plugin\0{}\0{}\0{}\0{}",
                d.action.name(),
                d.principal,
                d.name,
                d.decision.allowed
            ))
        } else {
            !d.decision.allowed
                || !is_data_operation(d.action)
                || match inner.data_operations {
                    DataOperations::Off => false,
                    DataOperations::All => true,
                    DataOperations::FirstUse => first_use(&format!(
                        "{}\0{}\0{}",
                        d.action.name(),
                        resource_label(d.kind, ""),
                        d.name
                    )),
                }
        };
        if !audited {
            return;
        }
        match request {
            Some(request) => request.add(d),
            None => self.record(Event::decided(d)),
        }
    }
}

/// The audited decisions of one request, written as grouped events when it is dropped (the
/// request has ended).
pub struct RequestDecisions {
    audit: Audit,
    groups: Mutex<Vec<Group>>,
}

impl std::fmt::Debug for RequestDecisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestDecisions")
            .field("groups", &self.groups.lock().len())
            .finish()
    }
}

/// Decisions alike but for the resource.
struct Group {
    /// The event of the first decision; the others add to its count and names.
    event: Event,
    count: u64,
    /// Labels of the first [`MAX_NAMED`] resources.
    names: Vec<String>,
}

impl Group {
    fn same_kind(&self, e: &Event) -> bool {
        self.event.operation == e.operation
            && self.event.result == e.result
            && kind_of(&self.event) == kind_of(e)
    }

    fn same(&self, e: &Event) -> bool {
        self.same_kind(e)
            && self.event.principal == e.principal
            && self.event.policy_ids == e.policy_ids
            && self.event.policy_generation == e.policy_generation
            && self.event.reason == e.reason
    }

    fn add(&mut self, e: &Event) {
        self.count += 1;
        if self.names.len() < MAX_NAMED {
            if let Some(label) = &e.resource {
                self.names.push(label.clone());
            }
        }
    }

    fn into_event(self) -> Event {
        let Group {
            mut event,
            count,
            names,
        } = self;
        if count > 1 {
            let listed = names.len() as u64;
            event = event
                .detail("count", count)
                .detail("resources", names)
                .detail("unlisted", count.saturating_sub(listed));
        }
        event
    }
}

/// `topic` of `topic:orders`.
fn kind_of(e: &Event) -> Option<&str> {
    e.resource
        .as_deref()
        .and_then(|r| r.split_once(':'))
        .map(|(kind, _)| kind)
}

impl RequestDecisions {
    /// Gathers the decisions of one request for `audit`.
    pub fn new(audit: Audit) -> Self {
        RequestDecisions {
            audit,
            groups: Mutex::new(Vec::new()),
        }
    }

    fn add(&self, d: &Decided<'_>) {
        let event = Event::decided(d);
        let mut groups = self.groups.lock();
        let position = groups.iter().position(|g| g.same(&event)).or_else(|| {
            (groups.len() >= MAX_GROUPS)
                .then(|| groups.iter().position(|g| g.same_kind(&event)))
                .flatten()
        });
        match position.and_then(|i| groups.get_mut(i)) {
            Some(group) => group.add(&event),
            None => {
                let names = event.resource.iter().cloned().collect();
                groups.push(Group {
                    event,
                    count: 1,
                    names,
                });
            }
        }
    }
}

impl Drop for RequestDecisions {
    fn drop(&mut self) {
        for group in std::mem::take(&mut *self.groups.lock()) {
            self.audit.record(group.into_event());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Principal;
    use crate::request::FirstUse;

    fn caller() -> Caller {
        Caller {
            principal: Principal::anonymous(),
            peer: "10.0.0.1:5000".parse().unwrap(),
            listener: "PLAINTEXT".into(),
            tls: false,
            client_id: Some("c".into()),
            audit_session: FirstUse::default(),
        }
    }

    fn denied() -> Decision {
        Decision {
            allowed: false,
            determining: Vec::new(),
            errors: Vec::new(),
            generation: 1,
            super_user: false,
            cached: false,
        }
    }

    #[test]
    fn one_request_groups_its_decisions_and_bounds_the_names() {
        let c = caller();
        let d = denied();
        let names: Vec<String> = (0..10_000).map(|i| format!("t{i}")).collect();
        let mut groups = Vec::new();
        {
            let request = RequestDecisions::new(Audit::disabled());
            for name in &names {
                request.add(&Decided {
                    caller: &c,
                    principal: "ANONYMOUS",
                    plugin: None,
                    action: Action::Describe,
                    kind: ResourceKind::Topic,
                    name,
                    decision: &d,
                    refusal: None,
                });
            }
            groups.extend(
                std::mem::take(&mut *request.groups.lock())
                    .into_iter()
                    .map(Group::into_event),
            );
        }
        assert_eq!(groups.len(), 1);
        let e = &groups[0];
        assert_eq!(e.resource.as_deref(), Some("topic:t0"));
        assert_eq!(e.detail["count"], 10_000);
        assert_eq!(e.detail["resources"].as_array().unwrap().len(), MAX_NAMED);
        assert_eq!(e.detail["unlisted"], 10_000 - MAX_NAMED as u64);
        assert_eq!(e.principal.as_deref(), Some("User:ANONYMOUS"));
    }
}
