//! The one authorization enforcement point. Every question goes through [`enforce`]: the
//! Kafka API handlers' (through [`Access`]), the audit topic's rule, and the plugins'
//! `authorize` host call (through [`PluginAccess`]). It
//!
//! 1. checks a handler's question against its API's entry in [`crate::authz::api_map`]: a
//!    question the table does not list for that API is a bug, denied and logged as an error
//!    (and a failed assertion in debug builds, so tests find it);
//! 2. refuses every change of the audit topic, super users included, and leaves reading it to
//!    policy alone (no super user bypass);
//! 3. asks the Cedar [`Authorizer`] otherwise, with the topic's tags looked up here (in the
//!    [`TagStore`]; a topic that does not exist has none, so a policy keyed on tags cannot
//!    reveal its existence);
//! 4. counts and audits the decision ([`crate::audit::decisions`]): a request's decisions as a
//!    few grouped events when it ends, a plugin's once per connection, topic and answer.
//!
//! Handlers ask per resource (a Produce to two topics is decided per topic) and turn a denial
//! into the error code their response carries for that resource.

use std::sync::Arc;

use kafka_protocol::messages::ApiKey;

use crate::api::RequestContext;
use crate::audit::{protect, Audit, Decided, RequestDecisions};
use crate::authz::{api_map, Action, Authorizer, Decision, Request, Resource};
use crate::broker::Broker;
use crate::plugin::oracle::{PolicyOracle, Question};
use crate::request::Caller;
use crate::topic_tags::TagStore;

/// Who asks on the caller's behalf.
#[derive(Debug, Clone, Copy)]
pub enum Asker<'a> {
    /// The handler of a Kafka request of this API.
    Api(ApiKey),
    /// A plugin (its name), through the `authorize` host call.
    Plugin(&'a str),
}

/// What enforcement reads: the policies, the topics' tags, the audit trail.
#[derive(Clone, Copy)]
pub struct Point<'a> {
    pub authorizer: &'a Authorizer,
    pub tags: &'a dyn TagStore,
    pub audit: &'a Audit,
}

impl<'a> Point<'a> {
    pub fn of(broker: &'a Broker) -> Self {
        Point {
            authorizer: &broker.authorizer,
            tags: &*broker.topic_tags,
            audit: &broker.audit,
        }
    }

    /// The tags of topic `name` (empty when it does not exist).
    pub fn topic_tags(&self, name: &str) -> Arc<[String]> {
        self.tags.get(name)
    }
}

/// Decides whether `principal` may do `action` on `resource`, asked by `asker` over `caller`'s
/// connection; counts and audits the decision (into `request` when it belongs to one). The
/// only place the broker decides.
pub fn enforce(
    point: Point<'_>,
    caller: &Caller,
    asker: Asker<'_>,
    principal: &str,
    action: Action,
    resource: Resource<'_>,
    request: Option<&RequestDecisions>,
) -> bool {
    let kind = resource.kind();
    let audit_topic =
        matches!(resource, Resource::Topic { name, .. } if protect::is_audit_topic(name));
    let question = Request::asked_by(caller, principal, action, resource);
    let listed = match asker {
        Asker::Api(key) => api_map::asks(key, action, kind),
        Asker::Plugin(_) => true,
    };
    debug_assert!(
        listed,
        "{asker:?} asked {action} on {}, which authz::api_map does not list for it",
        kind.type_name()
    );
    let unlisted;
    let (decision, refusal) = match asker {
        Asker::Api(key) if !listed => {
            tracing::error!(
                api = ?key,
                action = %action,
                resource = kind.type_name(),
                "a handler asked a question its API's entry in the authorization table does \
                 not list; denied"
            );
            unlisted = format!(
                "{key:?} does not ask `{action}` on `{}` (authorization table): denied",
                kind.type_name()
            );
            (
                Decision::refused(point.authorizer.generation()),
                Some(unlisted.as_str()),
            )
        }
        _ if audit_topic && protect::changes_topic(action) => {
            tracing::warn!(
                principal,
                operation = %action,
                "refused a change of the audit topic"
            );
            (
                Decision::refused(point.authorizer.generation()),
                Some(protect::REFUSAL),
            )
        }
        // Who reads the audit trail is for policy alone: super users do not bypass it.
        _ if audit_topic => (point.authorizer.evaluate(&question), None),
        _ => (point.authorizer.authorize(&question), None),
    };
    point.audit.decision(
        &Decided {
            caller,
            principal,
            plugin: match asker {
                Asker::Plugin(name) => Some(name),
                Asker::Api(_) => None,
            },
            action,
            kind,
            name: resource.name(),
            decision: &decision,
            refusal,
        },
        request,
    );
    decision.allowed
}

/// Asks on behalf of one Kafka request, as its API.
#[derive(Clone, Copy)]
pub struct Access<'a> {
    point: Point<'a>,
    ctx: &'a RequestContext,
}

impl<'a> Access<'a> {
    pub fn new(broker: &'a Broker, ctx: &'a RequestContext) -> Self {
        Access {
            point: Point::of(broker),
            ctx,
        }
    }

    /// Whether the request's principal may do `action` on `resource` ([`enforce`]).
    pub fn allows(&self, action: Action, resource: Resource<'_>) -> bool {
        enforce(
            self.point,
            &self.ctx.caller,
            Asker::Api(self.ctx.api_key),
            &self.ctx.caller.principal.name,
            action,
            resource,
            Some(&self.ctx.decisions),
        )
    }

    /// The request being decided.
    pub fn context(&self) -> &'a RequestContext {
        self.ctx
    }

    /// `action` on the topic `name`, with the tags it has now (none if it does not exist) and,
    /// while a creation of it is in flight, with the tags that creation asked for as well
    /// ([`crate::topic_tags::creations`]): allowed only when every decision allows.
    pub fn topic(&self, action: Action, name: &str) -> bool {
        let tags = self.topic_tags(name);
        self.topic_tagged(action, name, &tags)
            && self
                .point
                .tags
                .creations()
                .asked(name)
                .iter()
                .all(|asked| self.topic_tagged(action, name, asked))
    }

    /// `action` on the topic `name` as if it carried `tags` (creating a topic, retagging it).
    pub fn topic_tagged(&self, action: Action, name: &str, tags: &[String]) -> bool {
        self.allows(action, Resource::Topic { name, tags })
    }

    /// The tags of topic `name` (empty when it does not exist).
    pub fn topic_tags(&self, name: &str) -> Arc<[String]> {
        self.point.topic_tags(name)
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

/// The plugins' `authorize` host call: "may `principal` do `action` on topic `topic`?",
/// decided by [`enforce`] like every other question (the same tags, the same audit topic
/// rule, audited). An unknown action is a deny.
pub struct PluginAccess {
    authorizer: Arc<Authorizer>,
    tags: Arc<dyn TagStore>,
    audit: Audit,
}

impl PluginAccess {
    /// `tags` must be the broker's own store ([`Broker::topic_tags`]): plugins' questions are
    /// decided on the same tags as the requests'.
    pub fn new(authorizer: Arc<Authorizer>, tags: Arc<dyn TagStore>, audit: Audit) -> Self {
        PluginAccess {
            authorizer,
            tags,
            audit,
        }
    }
}

impl PolicyOracle for PluginAccess {
    fn allowed(&self, question: &Question<'_>, caller: &Caller) -> bool {
        let Ok(action) = question.action.parse::<Action>() else {
            tracing::debug!(
                plugin = question.plugin,
                "plugin asked about an unknown action; denied"
            );
            return false;
        };
        let point = Point {
            authorizer: &self.authorizer,
            tags: &*self.tags,
            audit: &self.audit,
        };
        let decide = |tags: &[String]| {
            enforce(
                point,
                caller,
                Asker::Plugin(question.plugin),
                question.principal,
                action,
                Resource::Topic {
                    name: question.topic,
                    tags,
                },
                None,
            )
        };
        // As for requests: under the stored tags and those of any creation in flight.
        decide(&point.topic_tags(question.topic))
            && point
                .tags
                .creations()
                .asked(question.topic)
                .iter()
                .all(|asked| decide(asked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AUDIT_TOPIC;
    use crate::principal::{AuthMethod, Principal};
    use crate::request::FirstUse;

    fn caller(name: &str, method: AuthMethod) -> Caller {
        Caller {
            principal: Principal {
                name: name.into(),
                method,
            },
            peer: "127.0.0.1:40000".parse().unwrap(),
            listener: "PLAINTEXT".into(),
            tls: false,
            client_id: None,
            audit_session: FirstUse::default(),
        }
    }

    /// The rule is decided here, before any backend is asked, on the topic's name alone: in
    /// gateway mode the audit topic lives on the upstream and the local log has no such topic,
    /// and every change is still refused to everyone (super user, anonymous, named user) even
    /// under a policy that permits everything.
    #[test]
    fn the_audit_topic_is_read_only_to_every_client_whatever_the_backend() {
        let policies =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/allow-all");
        let authorizer = Authorizer::load(&policies, ["admin"]).unwrap();
        let data = tempfile::tempdir().unwrap();
        // Gateway mode's tag store: it knows nothing of the audit topic.
        let tags = crate::topic_tags::file::FileTags::open(data.path()).unwrap();
        assert!(tags.get(AUDIT_TOPIC).is_empty());
        let audit = Audit::disabled();
        let point = Point {
            authorizer: &authorizer,
            tags: &tags,
            audit: &audit,
        };
        let changes = [
            (ApiKey::Produce, Action::Write),
            (ApiKey::DeleteTopics, Action::Delete),
            (ApiKey::DeleteRecords, Action::Delete),
            (ApiKey::IncrementalAlterConfigs, Action::AlterConfigs),
            (ApiKey::CreatePartitions, Action::Alter),
            (ApiKey::CreateTopics, Action::Create),
        ];
        for who in [
            caller("admin", AuthMethod::Sasl("SCRAM-SHA-512")),
            caller("ANONYMOUS", AuthMethod::Anonymous),
            caller("alice", AuthMethod::Mtls),
        ] {
            let name = who.principal.name.clone();
            let ask = |api, action, topic| {
                let resource = Resource::Topic {
                    name: topic,
                    tags: &[],
                };
                enforce(point, &who, Asker::Api(api), &name, action, resource, None)
            };
            for (api, action) in changes {
                assert!(
                    !ask(api, action, AUDIT_TOPIC),
                    "{name} {action} the audit topic"
                );
                // The same question about another topic is allowed: the refusal is the rule's.
                assert!(ask(api, action, "orders"), "{name} {action} orders");
            }
            // Reading it is left to policy (here: permitted).
            assert!(
                ask(ApiKey::Fetch, Action::Read, AUDIT_TOPIC),
                "{name} reads"
            );
            // So is a plugin's question: the rule applies to it too.
            let resource = Resource::Topic {
                name: AUDIT_TOPIC,
                tags: &[],
            };
            assert!(!enforce(
                point,
                &who,
                Asker::Plugin("probe"),
                &name,
                Action::Write,
                resource,
                None
            ));
        }
    }
    /// While a creation asking for tags is in flight, a decision on the topic holds under
    /// those tags too: a `forbid` keyed on them applies before they are stored.
    #[test]
    fn a_topic_being_created_is_decided_under_the_tags_it_asked_for_too() {
        use crate::plugin::oracle::{PolicyOracle, Question};
        use crate::topic_tags::{TagStore, TopicTags};
        let fixture =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/allow-all");
        let policies = tempfile::tempdir().unwrap();
        for f in ["allow-all.cedar", "schema.cedarschema"] {
            std::fs::copy(fixture.join(f), policies.path().join(f)).unwrap();
        }
        std::fs::write(
            policies.path().join("classified.cedar"),
            "forbid(principal, action == Palisade::Action::\"Read\", resource is Palisade::Topic) \
             when { resource.tags.contains(\"classified\") };\n",
        )
        .unwrap();
        let authorizer = Arc::new(Authorizer::load(policies.path(), ["admin"]).unwrap());
        let data = tempfile::tempdir().unwrap();
        let tags: Arc<dyn TagStore> =
            Arc::new(crate::topic_tags::file::FileTags::open(data.path()).unwrap());
        let access = PluginAccess::new(authorizer, tags.clone(), Audit::disabled());
        let alice = caller("alice", AuthMethod::Mtls);
        let question = Question {
            plugin: "reader",
            principal: "alice",
            action: "Read",
            topic: "secrets",
        };
        assert!(access.allowed(&question, &alice), "untagged: allowed");
        let creating = tags
            .creations()
            .begin("secrets", &["classified".to_string()]);
        assert!(
            !access.allowed(&question, &alice),
            "decided as untagged while its creation is in flight"
        );
        // Another topic is not affected.
        let other = Question {
            topic: "orders",
            ..question
        };
        assert!(access.allowed(&other, &alice));
        // Stored, then the creation ends: the stored tags decide.
        tags.set("secrets", &TopicTags::parse("classified").unwrap())
            .unwrap();
        drop(creating);
        assert!(!access.allowed(&question, &alice));
        assert!(tags.creations().asked("secrets").is_empty());
    }
}
