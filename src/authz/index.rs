//! [`PolicyIndex`]: policies pre-partitioned by (action, resource type) at load time.
//!
//! Cedar has no index and evaluates every policy of the set it is given (~1 µs each). A
//! policy's scope names the actions (`action == ..`, `action in [..]`, or any) and the resource
//! type (`resource is T`, `resource == T::".."`, or any) it can apply to; it is added to the
//! [`Partition`] of every pair that scope and the schema's `appliesTo` allow, so a decision
//! evaluates only the policies that could apply.
//!
//! Within a partition, policies are bucketed by principal scope: `principal == X` and
//! `principal in X` (also `principal is T in X`) go to the bucket of `X`, any other principal
//! scope to the "any" bucket. A policy of the bucket `X` can only apply to a principal that is
//! `X` or has `X` among its (transitive) ancestors, so a decision evaluates the "any" bucket
//! plus the buckets of the principal and of its groups ([`Partition::policies_for`]); the
//! merged sets are built lazily and kept per principal for the generation.
//!
//! Each partition also records which context attributes its policies read ([`ContextUse`]),
//! so the decision cache keys on exactly those and skips time-dependent partitions.

use std::collections::HashMap;
use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, EntityUid, Policy, PolicySet, PrincipalConstraint, ResourceConstraint,
};
use parking_lot::RwLock;
use serde_json::Value;

use super::diagnostics::PolicyDiagnostic;
use super::ids::ParsedPolicy;
use super::schema::{Action, ResourceKind};

/// Which `context` attributes the policies of a partition read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextUse {
    /// `context.time`: decisions depend on the clock and are never cached.
    pub time: bool,
    /// `context.client_id`: the client id becomes part of the cache key.
    pub client_id: bool,
    /// `context` used other than through a known attribute: never cached.
    pub whole: bool,
}

impl ContextUse {
    /// Whether a decision under these policies may be cached.
    pub fn cacheable(self) -> bool {
        !self.time && !self.whole
    }

    fn merge(&mut self, other: ContextUse) {
        self.time |= other.time;
        self.client_id |= other.client_id;
        self.whole |= other.whole;
    }
}

/// The policies that could apply to one (action, resource type) pair.
#[derive(Debug, Default)]
pub struct Partition {
    /// Every policy of the partition.
    pub set: PolicySet,
    pub context_use: ContextUse,
    /// Policies whose principal scope is unconstrained (or only `is T`).
    any: Arc<PolicySet>,
    /// Policies whose principal scope is `== X` or `in X`, by `X`.
    by_principal: HashMap<EntityUid, Vec<Policy>>,
    /// Merged sets ("any" plus the principal's buckets) by principal name. Only principals
    /// with at least one non-empty bucket are kept: bounded by the users of `entities.json`
    /// plus the principals policies name.
    merged: RwLock<HashMap<String, Arc<PolicySet>>>,
}

impl Partition {
    fn add(&mut self, policy: &Policy) -> Result<(), String> {
        self.set.add(policy.clone()).map_err(|e| e.to_string())?;
        match principal_bucket(policy) {
            Some(uid) => self
                .by_principal
                .entry(uid)
                .or_default()
                .push(policy.clone()),
            None => Arc::make_mut(&mut self.any)
                .add(policy.clone())
                .map_err(|e| e.to_string())?,
        }
        Ok(())
    }

    /// The policies that may apply to the principal `name`, given `scope`: its uid and the
    /// uids of its (transitive) ancestors. Policies left out have a principal scope that
    /// cannot match, so Cedar would neither satisfy them nor report errors for them.
    pub fn policies_for(
        &self,
        name: &str,
        scope: impl FnOnce() -> Vec<EntityUid>,
    ) -> Arc<PolicySet> {
        if self.by_principal.is_empty() {
            return Arc::clone(&self.any);
        }
        if let Some(set) = self.merged.read().get(name) {
            return Arc::clone(set);
        }
        let mut scope = scope();
        scope.sort_unstable();
        scope.dedup();
        let buckets: Vec<&Vec<Policy>> = scope
            .iter()
            .filter_map(|uid| self.by_principal.get(uid))
            .collect();
        if buckets.is_empty() {
            return Arc::clone(&self.any);
        }
        let mut set = (*self.any).clone();
        for policy in buckets.into_iter().flatten() {
            if set.add(policy.clone()).is_err() {
                // Cannot happen (ids are unique); evaluating everything is always correct.
                return Arc::new(self.set.clone());
            }
        }
        let set = Arc::new(set);
        self.merged
            .write()
            .insert(name.to_string(), Arc::clone(&set));
        set
    }
}

/// The bucket of a policy: the `X` of `principal == X`, `principal in X` or
/// `principal is T in X`; `None` for an unconstrained principal (or `is T` only).
fn principal_bucket(policy: &Policy) -> Option<EntityUid> {
    match policy.principal_constraint() {
        PrincipalConstraint::Any | PrincipalConstraint::Is(_) => None,
        PrincipalConstraint::Eq(uid)
        | PrincipalConstraint::In(uid)
        | PrincipalConstraint::IsIn(_, uid) => Some(uid),
    }
}

/// Every partition of one generation.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    /// By [`slot`]; `None` where the action does not apply to the type.
    partitions: Vec<Option<Partition>>,
}

/// The position of `(action, kind)` in [`PolicyIndex::partitions`].
fn slot(action: Action, kind: ResourceKind) -> usize {
    action as usize * ResourceKind::ALL.len() + kind as usize
}

impl PolicyIndex {
    /// Partitions `policies` (already validated against the schema).
    pub fn build(policies: &[ParsedPolicy]) -> Result<Self, Vec<PolicyDiagnostic>> {
        let mut partitions: Vec<Option<Partition>> = Vec::new();
        partitions.resize_with(Action::ALL.len() * ResourceKind::ALL.len(), || None);
        for action in Action::ALL {
            for &kind in action.resource_kinds() {
                if let Some(p) = partitions.get_mut(slot(action, kind)) {
                    *p = Some(Partition::default());
                }
            }
        }
        let mut errors = Vec::new();
        for p in policies {
            let actions = actions_of(p);
            let kinds = kinds_of(p);
            let used = context_use(p);
            for &action in &actions {
                for &kind in &kinds {
                    let Some(Some(partition)) = partitions.get_mut(slot(action, kind)) else {
                        continue; // the schema says this action never applies to this type
                    };
                    if let Err(e) = partition.add(&p.policy) {
                        errors.push(PolicyDiagnostic {
                            file: p.origin.file.to_string(),
                            line: p.origin.line,
                            column: 1,
                            message: e,
                            help: None,
                        });
                    }
                    partition.context_use.merge(used);
                }
            }
        }
        if errors.is_empty() {
            Ok(PolicyIndex { partitions })
        } else {
            Err(errors)
        }
    }

    /// The partition for `(action, kind)`; `None` when the action does not apply to the type.
    pub fn get(&self, action: Action, kind: ResourceKind) -> Option<&Partition> {
        self.partitions.get(slot(action, kind))?.as_ref()
    }
}

fn actions_of(p: &ParsedPolicy) -> Vec<Action> {
    match p.policy.action_constraint() {
        ActionConstraint::Any => Action::ALL.to_vec(),
        ActionConstraint::Eq(uid) => Action::from_uid(&uid).into_iter().collect(),
        ActionConstraint::In(uids) => uids.iter().filter_map(Action::from_uid).collect(),
    }
}

fn kinds_of(p: &ParsedPolicy) -> Vec<ResourceKind> {
    let one = |kind: Option<ResourceKind>| kind.into_iter().collect();
    match p.policy.resource_constraint() {
        ResourceConstraint::Any | ResourceConstraint::In(_) => ResourceKind::ALL.to_vec(),
        ResourceConstraint::Eq(uid) => one(ResourceKind::from_type_name(uid.type_name())),
        ResourceConstraint::Is(ty) | ResourceConstraint::IsIn(ty, _) => {
            one(ResourceKind::from_type_name(&ty))
        }
    }
}

/// Which context attributes a policy reads, from its JSON form. A policy that cannot be
/// rendered as JSON is treated as reading the whole context (never cached).
pub fn context_use(p: &ParsedPolicy) -> ContextUse {
    let mut used = ContextUse::default();
    match p.policy.to_json() {
        Ok(json) => walk(&json, &mut used),
        Err(_) => used.whole = true,
    }
    used
}

fn is_context_var(v: &Value) -> bool {
    v.get("Var").and_then(Value::as_str) == Some("context")
}

fn walk(v: &Value, used: &mut ContextUse) {
    match v {
        Value::Object(map) => {
            for (key, inner) in map {
                let attr_access =
                    (key == "." || key == "has") && inner.get("left").is_some_and(is_context_var);
                if attr_access {
                    match inner.get("attr").and_then(Value::as_str) {
                        Some("time") => used.time = true,
                        Some("client_id") => used.client_id = true,
                        Some(_) => {}
                        None => used.whole = true,
                    }
                } else if key == "Var" && inner.as_str() == Some("context") {
                    used.whole = true;
                } else {
                    walk(inner, used);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| walk(i, used)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::ids::parse_file;

    fn index(text: &str) -> PolicyIndex {
        PolicyIndex::build(&parse_file("t.cedar", text).unwrap()).unwrap()
    }

    #[test]
    fn policies_land_only_in_partitions_they_can_apply_to() {
        let idx = index(
            r#"permit(principal, action == Palisade::Action::"Read", resource is Palisade::Topic);
               permit(principal, action in [Palisade::Action::"Write", Palisade::Action::"Describe"], resource);
               forbid(principal, action, resource == Palisade::ConsumerGroup::"g");"#,
        );
        let count = |a, k| idx.get(a, k).unwrap().set.policies().count();
        assert_eq!(count(Action::Read, ResourceKind::Topic), 1);
        assert_eq!(count(Action::Read, ResourceKind::ConsumerGroup), 1);
        assert_eq!(count(Action::Write, ResourceKind::Topic), 1);
        assert_eq!(count(Action::Describe, ResourceKind::Cluster), 1);
        assert_eq!(count(Action::Describe, ResourceKind::ConsumerGroup), 2);
        assert_eq!(count(Action::Create, ResourceKind::Topic), 0);
        assert!(idx.get(Action::Read, ResourceKind::Cluster).is_none());
    }

    #[test]
    fn context_use_is_detected() {
        let idx = index(
            r#"permit(principal, action == Palisade::Action::"Read", resource) when { context.time > 5 };
               permit(principal, action == Palisade::Action::"Write", resource) when { context has client_id && context.client_id == "x" };
               permit(principal, action == Palisade::Action::"Describe", resource) when { context.tls };"#,
        );
        let read = idx
            .get(Action::Read, ResourceKind::Topic)
            .unwrap()
            .context_use;
        assert!(read.time && !read.cacheable());
        let write = idx
            .get(Action::Write, ResourceKind::Topic)
            .unwrap()
            .context_use;
        assert!(write.client_id && write.cacheable());
        let describe = idx
            .get(Action::Describe, ResourceKind::Topic)
            .unwrap()
            .context_use;
        assert_eq!(describe, ContextUse::default());
    }
}
