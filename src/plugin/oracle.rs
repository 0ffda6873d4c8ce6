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
}

/// "May `principal` do `action` on topic `topic`?" Errors and unknown actions are a deny.
pub trait PolicyOracle: Send + Sync {
    fn allowed(&self, principal: &str, action: &str, topic: &str, facts: &CallFacts) -> bool;
}

/// A shared oracle (the broker keeps its `Arc<Authorizer>`).
impl<T: PolicyOracle + ?Sized> PolicyOracle for std::sync::Arc<T> {
    fn allowed(&self, principal: &str, action: &str, topic: &str, facts: &CallFacts) -> bool {
        (**self).allowed(principal, action, topic, facts)
    }
}

/// Denies everything: the oracle of a broker without policies.
#[derive(Debug, Default)]
pub struct DenyAll;

impl PolicyOracle for DenyAll {
    fn allowed(&self, _: &str, _: &str, _: &str, _: &CallFacts) -> bool {
        false
    }
}

/// The broker's oracle: the Cedar authorizer, with the topic's tags (config `palisade.tags`)
/// looked up in storage so tag-based policies decide `Decrypt` as they decide `Read`.
pub struct BrokerOracle {
    pub authorizer: std::sync::Arc<Authorizer>,
    pub logs: std::sync::Arc<crate::storage::LogManager>,
}

impl PolicyOracle for BrokerOracle {
    fn allowed(&self, principal: &str, action: &str, topic: &str, facts: &CallFacts) -> bool {
        let tags = self
            .logs
            .topic(topic)
            .map_or_else(|| std::sync::Arc::from(Vec::new()), |t| t.tags());
        ask(&self.authorizer, principal, action, topic, &tags, facts)
    }
}

fn ask(
    authorizer: &Authorizer,
    principal: &str,
    action: &str,
    topic: &str,
    tags: &[String],
    facts: &CallFacts,
) -> bool {
    let Ok(action) = action.parse::<Action>() else {
        return false;
    };
    let request = Request {
        principal,
        action,
        resource: Resource::Topic { name: topic, tags },
        context: RequestContextFacts {
            ip: facts.ip,
            listener: &facts.listener,
            tls: facts.tls,
            authentication: facts.authentication,
            client_id: &facts.client_id,
            time: crate::authz::request::unix_now(),
        },
    };
    authorizer.authorize(&request).allowed
}

/// The authorizer alone (topics without tags): for tests and tools without storage.
impl PolicyOracle for Authorizer {
    fn allowed(&self, principal: &str, action: &str, topic: &str, facts: &CallFacts) -> bool {
        ask(self, principal, action, topic, &[], facts)
    }
}
