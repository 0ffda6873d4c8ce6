//! The `authorize` host function's question to the policy engine, behind a small trait so the
//! plugin host does not depend on how authorization is wired into the broker.

use std::net::IpAddr;

use crate::authz::{Action, Authorizer, Request, RequestContextFacts, Resource};

/// The connection facts of the call a plugin is serving, for context-dependent policies.
#[derive(Debug, Clone)]
pub struct CallFacts {
    pub ip: IpAddr,
    pub listener: String,
    pub tls: bool,
    /// `anonymous`, `mtls`, `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub authentication: &'static str,
    pub client_id: String,
    /// The connection's first-use memory, so a plugin asking per batch is audited once per
    /// connection, topic and answer kind rather than per batch.
    pub session: crate::audit::SessionAudit,
}

/// Plugin `plugin` asks: "may `principal` do `action` on topic `topic`?" Errors and unknown
/// actions are a deny.
pub trait PolicyOracle: Send + Sync {
    fn allowed(&self, question: &Question<'_>, facts: &CallFacts) -> bool;
}

/// One `authorize` call of a plugin.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub plugin: &'a str,
    pub principal: &'a str,
    pub action: &'a str,
    pub topic: &'a str,
}

/// A shared oracle (the broker keeps its `Arc<Authorizer>`).
impl<T: PolicyOracle + ?Sized> PolicyOracle for std::sync::Arc<T> {
    fn allowed(&self, question: &Question<'_>, facts: &CallFacts) -> bool {
        (**self).allowed(question, facts)
    }
}

/// Denies everything: the oracle of a broker without policies.
#[derive(Debug, Default)]
pub struct DenyAll;

impl PolicyOracle for DenyAll {
    fn allowed(&self, _: &Question<'_>, _: &CallFacts) -> bool {
        false
    }
}

/// The broker's oracle: the Cedar authorizer, with the topic's tags (config `palisade.tags`)
/// looked up in storage so tag-based policies decide `Decrypt` as they decide `Read`. Each
/// decision lands in the audit trail (first use per connection, topic and outcome).
pub struct BrokerOracle {
    pub authorizer: std::sync::Arc<Authorizer>,
    pub logs: std::sync::Arc<crate::storage::LogManager>,
    pub audit: crate::audit::Audit,
}

impl PolicyOracle for BrokerOracle {
    fn allowed(&self, question: &Question<'_>, facts: &CallFacts) -> bool {
        let Ok(action) = question.action.parse::<Action>() else {
            return false;
        };
        let tags = self
            .logs
            .topic(question.topic)
            .map_or_else(|| std::sync::Arc::from(Vec::new()), |t| t.tags());
        let decision = ask(&self.authorizer, question, action, &tags, facts);
        self.audit
            .plugin_decision(question, action, facts, &decision);
        decision.allowed
    }
}

fn ask(
    authorizer: &Authorizer,
    question: &Question<'_>,
    action: Action,
    tags: &[String],
    facts: &CallFacts,
) -> crate::authz::Decision {
    let request = Request {
        principal: question.principal,
        action,
        resource: Resource::Topic {
            name: question.topic,
            tags,
        },
        context: RequestContextFacts {
            ip: facts.ip,
            listener: &facts.listener,
            tls: facts.tls,
            authentication: facts.authentication,
            client_id: &facts.client_id,
            time: crate::authz::request::unix_now(),
        },
    };
    authorizer.authorize(&request)
}

/// The authorizer alone (topics without tags, no audit): for tests and tools without storage.
impl PolicyOracle for Authorizer {
    fn allowed(&self, question: &Question<'_>, facts: &CallFacts) -> bool {
        question
            .action
            .parse::<Action>()
            .is_ok_and(|action| ask(self, question, action, &[], facts).allowed)
    }
}
