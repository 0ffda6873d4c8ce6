//! The `authorize` host function's question to the policy engine, behind a small trait so the
//! plugin host does not depend on how authorization is wired into the broker: the broker
//! answers with `api::access::PluginAccess`, its one enforcement point.

use crate::request::Caller;

/// Plugin `plugin` asks: "may `principal` do `action` on topic `topic`?", during a call made
/// for `caller`. Errors and unknown actions are a deny.
pub trait PolicyOracle: Send + Sync {
    fn allowed(&self, question: &Question<'_>, caller: &Caller) -> bool;
}

/// One `authorize` call of a plugin.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub plugin: &'a str,
    pub principal: &'a str,
    pub action: &'a str,
    pub topic: &'a str,
}

/// A shared oracle.
impl<T: PolicyOracle + ?Sized> PolicyOracle for std::sync::Arc<T> {
    fn allowed(&self, question: &Question<'_>, caller: &Caller) -> bool {
        (**self).allowed(question, caller)
    }
}

/// Denies everything: the oracle of a broker without policies.
#[derive(Debug, Default)]
pub struct DenyAll;

impl PolicyOracle for DenyAll {
    fn allowed(&self, _: &Question<'_>, _: &Caller) -> bool {
        false
    }
}
