//! [`Access`]: the authorization questions one request's handler asks, answered by the
//! broker's Cedar [`Authorizer`](crate::authz::Authorizer).
//!
//! Handlers ask per resource (a Produce to two topics is decided per topic) and turn a denial
//! into the error code their response carries for that resource; see [`crate::authz::api_map`]
//! for which pairs each API needs. Topic tags come from the topic's `palisade.tags` config; a
//! topic that does not exist has none, so a policy keyed on tags cannot reveal its existence.

use std::sync::Arc;

use crate::api::RequestContext;
use crate::authz::{Action, Request, Resource};
use crate::broker::Broker;

/// Asks on behalf of one request.
#[derive(Clone, Copy)]
pub struct Access<'a> {
    broker: &'a Broker,
    ctx: &'a RequestContext,
}

impl<'a> Access<'a> {
    pub fn new(broker: &'a Broker, ctx: &'a RequestContext) -> Self {
        Access { broker, ctx }
    }

    /// Whether `action` on `resource` is allowed. The enforcement point: every decision is
    /// counted and audited here (denials always; allows per `audit.data_operations`).
    pub fn allows(&self, action: Action, resource: Resource<'_>) -> bool {
        let request = Request::from_api(self.ctx, action, resource);
        // Who reads the audit trail is for policy alone: super users do not bypass it.
        let audit_topic = matches!(resource, Resource::Topic { name, .. }
            if crate::audit::protect::is_audit_topic(name));
        let decision = if audit_topic {
            self.broker.authorizer.evaluate(&request)
        } else {
            self.broker.authorizer.authorize(&request)
        };
        self.broker.audit.decision(
            self.ctx,
            action,
            resource.kind(),
            resource.name(),
            &decision,
        );
        decision.allowed
    }

    /// The request being decided.
    pub fn context(&self) -> &'a RequestContext {
        self.ctx
    }

    /// `action` on the topic `name`, with the tags it has now (none if it does not exist).
    pub fn topic(&self, action: Action, name: &str) -> bool {
        let tags = self.topic_tags(name);
        self.topic_tagged(action, name, &tags)
    }

    /// `action` on the topic `name` as if it carried `tags` (creating a topic, retagging it).
    pub fn topic_tagged(&self, action: Action, name: &str, tags: &[String]) -> bool {
        self.allows(action, Resource::Topic { name, tags })
    }

    /// The tags of topic `name` (empty when it does not exist).
    pub fn topic_tags(&self, name: &str) -> Arc<[String]> {
        self.broker
            .logs
            .topic(name)
            .map_or_else(|| Arc::from(Vec::new()), |t| t.tags())
    }

    pub fn group(&self, action: Action, name: &str) -> bool {
        self.allows(action, Resource::Group(name))
    }

    pub fn transactional_id(&self, action: Action, id: &str) -> bool {
        self.allows(action, Resource::TransactionalId(id))
    }

    pub fn cluster(&self, action: Action) -> bool {
        self.allows(action, Resource::Cluster)
    }
}
