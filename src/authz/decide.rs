//! [`Authorizer`]: the current [`Generation`], the decision cache and the super users; and
//! [`decide`], one cold Cedar evaluation.
//!
//! Semantics, stricter than plain Cedar:
//! - default deny; a `forbid` that applies beats any `permit`;
//! - **any evaluation error denies**. Cedar skips a policy whose condition errors, so a
//!   `forbid` that errors would silently stop forbidding; here the error itself denies, and
//!   the erroring policies are reported as determining;
//! - configured super users are allowed without evaluating policies (logged at info).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use cedar_policy::{AuthorizationError, Decision as CedarDecision};
use parking_lot::Mutex;

use super::cache::DecisionCache;
use super::diagnostics::PolicyDiagnostic;
use super::ids::PolicyRef;
use super::load::{Generation, PolicyStore};
use super::request::Request;
use super::schema::{uid, USER_TYPE};

/// The answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The policies that decided: the permits that allowed, the forbids that denied, or the
    /// policies whose evaluation errored. Empty for a default deny and for super users.
    pub determining: Vec<PolicyRef>,
    /// Evaluation errors (each one denies), as `policy `id`: message`.
    pub errors: Vec<String>,
    /// The generation that decided.
    pub generation: u64,
    /// Allowed because the principal is a configured super user (no policy evaluated).
    pub super_user: bool,
    /// Answered from the decision cache.
    pub cached: bool,
}

impl Decision {
    /// Denied by a rule of the broker before any policy (the audit topic is read-only, a
    /// question its API does not ask): no policy determined it.
    pub fn refused(generation: u64) -> Self {
        Decision {
            allowed: false,
            determining: Vec::new(),
            errors: Vec::new(),
            generation,
            super_user: false,
            cached: false,
        }
    }

    fn deny_with_error(generation: u64, error: String) -> Self {
        Decision {
            allowed: false,
            determining: Vec::new(),
            errors: vec![error],
            generation,
            super_user: false,
            cached: false,
        }
    }
}

fn origin_of(generation: &Generation, id: &str) -> PolicyRef {
    generation.origin(id).cloned().unwrap_or_else(|| PolicyRef {
        id: Arc::from(id),
        file: Arc::from("<unknown>"),
        line: 0,
    })
}

/// Evaluates `request` against `generation` with Cedar, without cache or super users.
pub fn decide(
    cedar: &cedar_policy::Authorizer,
    generation: &Generation,
    request: &Request<'_>,
) -> Decision {
    let number = generation.number;
    let kind = request.resource.kind();
    let Some(partition) = generation.index.get(request.action, kind) else {
        return Decision::deny_with_error(
            number,
            format!(
                "action `{}` does not apply to `{}`",
                request.action,
                kind.type_name()
            ),
        );
    };
    let (cedar_request, entities) = match request.cedar_form(generation) {
        Ok(r) => r,
        Err(e) => return Decision::deny_with_error(number, e),
    };
    let policies = partition.policies_for(request.principal, || {
        match generation.users.get(request.principal) {
            Some(user) => user.scope.clone(),
            None => uid(USER_TYPE, request.principal).into_iter().collect(),
        }
    });
    let response = cedar.is_authorized(&cedar_request, &policies, &entities);
    let diagnostics = response.diagnostics();
    let mut errors = Vec::new();
    let mut erroring = Vec::new();
    for e in diagnostics.errors() {
        match e {
            AuthorizationError::PolicyEvaluationError(e) => {
                erroring.push(origin_of(generation, e.policy_id().as_ref()));
            }
        }
        errors.push(e.to_string());
    }
    let allowed = response.decision() == CedarDecision::Allow && errors.is_empty();
    let determining = if errors.is_empty() {
        diagnostics
            .reason()
            .map(|id| origin_of(generation, id.as_ref()))
            .collect()
    } else {
        erroring
    };
    Decision {
        allowed,
        determining,
        errors,
        generation: number,
        super_user: false,
        cached: false,
    }
}

/// Decides requests against the current generation. Share it in an `Arc`.
#[derive(Debug)]
pub struct Authorizer {
    current: ArcSwap<Generation>,
    last_error: Mutex<Option<Vec<PolicyDiagnostic>>>,
    cache: DecisionCache,
    super_users: HashSet<String>,
    /// Super user bypasses already logged (see `log_super_user`).
    super_user_seen: Mutex<HashSet<SuperUserUse>>,
    cedar: cedar_policy::Authorizer,
    /// One reload at a time, and who hears of them (the audit trail).
    pub(super) reloads: crate::reload::Reloads,
}

type SuperUserUse = (
    String,
    super::schema::Action,
    super::schema::ResourceKind,
    String,
);

/// How many distinct super user bypasses are remembered before the memory starts over.
const SUPER_USER_SEEN_MAX: usize = 10_000;

impl Authorizer {
    /// An authorizer serving `generation`; `super_users` (principal names) bypass policy.
    pub fn new<S: Into<String>>(
        generation: Generation,
        super_users: impl IntoIterator<Item = S>,
    ) -> Self {
        Authorizer {
            current: ArcSwap::from_pointee(generation),
            last_error: Mutex::new(None),
            cache: DecisionCache::default(),
            super_users: super_users.into_iter().map(Into::into).collect(),
            super_user_seen: Mutex::new(HashSet::new()),
            cedar: cedar_policy::Authorizer::new(),
            reloads: crate::reload::Reloads::default(),
        }
    }

    /// Loads `dir` ([`PolicyStore::load`]) and serves it.
    pub fn load<S: Into<String>>(
        dir: &Path,
        super_users: impl IntoIterator<Item = S>,
    ) -> Result<Self, Vec<PolicyDiagnostic>> {
        Ok(Authorizer::new(PolicyStore::load(dir)?, super_users))
    }

    /// Decides `request`: super users first, then the cache, then Cedar.
    pub fn authorize(&self, request: &Request<'_>) -> Decision {
        // In-flight requests keep the generation they started with.
        let generation = self.current.load();
        if self.super_users.contains(request.principal) {
            self.log_super_user(request);
            return Decision {
                allowed: true,
                determining: Vec::new(),
                errors: Vec::new(),
                generation: generation.number,
                super_user: true,
                cached: false,
            };
        }
        self.evaluate(request)
    }

    /// Decides `request` by policy alone, with no super user bypass (the cache still
    /// answers). For resources that policy must govern for everyone, such as the audit topic.
    pub fn evaluate(&self, request: &Request<'_>) -> Decision {
        let generation = self.current.load();
        let context_use = generation
            .index
            .get(request.action, request.resource.kind())
            .map(|p| p.context_use);
        let cacheable = context_use.is_some_and(|u| u.cacheable());
        let with_client_id = context_use.is_some_and(|u| u.client_id);
        if cacheable {
            if let Some(mut hit) = self.cache.get(generation.number, request, with_client_id) {
                hit.cached = true;
                return hit;
            }
        }
        let decision = decide(&self.cedar, &generation, request);
        if cacheable {
            self.cache
                .insert(generation.number, request, with_client_id, &decision);
        }
        if !decision.allowed {
            tracing::debug!(
                principal = request.principal,
                action = %request.action,
                resource = request.resource.name(),
                errors = ?decision.errors,
                "denied"
            );
        }
        decision
    }

    /// Logs a super user's bypass once per (principal, action, resource) and generation: every
    /// bypass is visible, without a log line per produce request.
    fn log_super_user(&self, request: &Request<'_>) {
        let key = (
            request.principal.to_string(),
            request.action,
            request.resource.kind(),
            request.resource.name().to_string(),
        );
        let mut seen = self.super_user_seen.lock();
        if seen.contains(&key) {
            return;
        }
        if seen.len() >= SUPER_USER_SEEN_MAX {
            seen.clear();
        }
        seen.insert(key);
        tracing::info!(
            principal = request.principal,
            action = %request.action,
            resource = request.resource.name(),
            "super user bypasses policy"
        );
    }

    /// The generation serving new requests.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// The number of the generation serving new requests.
    pub fn generation(&self) -> u64 {
        self.current.load().number
    }

    /// The diagnostics of the last refused reload; `None` once a reload succeeds.
    pub fn last_error(&self) -> Option<Vec<PolicyDiagnostic>> {
        self.last_error.lock().clone()
    }

    /// Serves `generation` from now on and forgets cached decisions.
    pub fn install(&self, generation: Generation) {
        let number = generation.number;
        self.current.store(Arc::new(generation));
        self.cache.clear();
        self.super_user_seen.lock().clear();
        *self.last_error.lock() = None;
        tracing::debug!(generation = number, "policy generation installed");
    }

    /// Reloads the current generation's directory ([`crate::reload::run`]). A broken
    /// directory keeps the current generation; every diagnostic is logged (file:line:col) and
    /// kept for [`last_error`].
    ///
    /// [`last_error`]: Authorizer::last_error
    pub fn reload(&self) -> Result<u64, Vec<PolicyDiagnostic>> {
        match crate::reload::run(self) {
            Ok(swapped) => Ok(swapped.unwrap_or_else(|| self.generation())),
            Err(diagnostics) => {
                *self.last_error.lock() = Some(diagnostics.clone());
                Err(diagnostics)
            }
        }
    }

    /// Tells `observer` of every later reload that swapped or was refused, whoever started it
    /// (the watcher, an ACL change).
    pub fn observe(&self, observer: crate::reload::Observer) {
        self.reloads.observe(observer);
    }

    /// How many decisions are cached.
    pub fn cached_decisions(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::request::{RequestContextFacts, Resource};
    use crate::authz::schema::Action;

    const SCHEMA: &str = include_str!("../../policies/schema.cedarschema");

    /// alice is in team-a and dept; bob is in team-b. (The schema does not nest groups.)
    const ENTITIES: &str = r#"[
      { "uid": { "type": "Palisade::Group", "id": "dept" }, "attrs": {}, "parents": [] },
      { "uid": { "type": "Palisade::Group", "id": "team-a" }, "attrs": {}, "parents": [] },
      { "uid": { "type": "Palisade::Group", "id": "team-b" }, "attrs": {}, "parents": [] },
      { "uid": { "type": "Palisade::User", "id": "alice" }, "attrs": {},
        "parents": [{ "type": "Palisade::Group", "id": "team-a" },
                    { "type": "Palisade::Group", "id": "dept" }] },
      { "uid": { "type": "Palisade::User", "id": "bob" }, "attrs": {},
        "parents": [{ "type": "Palisade::Group", "id": "team-b" }] }
    ]"#;

    fn authorizer(policies: &str) -> (tempfile::TempDir, Authorizer) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schema.cedarschema"), SCHEMA).unwrap();
        std::fs::write(dir.path().join("entities.json"), ENTITIES).unwrap();
        std::fs::write(dir.path().join("p.cedar"), policies).unwrap();
        let a = Authorizer::load(dir.path(), Vec::<String>::new()).unwrap();
        (dir, a)
    }

    fn write<'a>(principal: &'a str, tags: &'a [String]) -> Request<'a> {
        Request {
            principal,
            action: Action::Write,
            resource: Resource::Topic { name: "t", tags },
            context: RequestContextFacts {
                ip: "192.168.1.1".parse().unwrap(),
                listener: "PLAINTEXT",
                tls: false,
                authentication: "PLAIN",
                client_id: "",
                time: 1,
            },
        }
    }

    fn ids(d: &Decision) -> Vec<&str> {
        d.determining.iter().map(|r| &*r.id).collect()
    }

    #[test]
    fn principal_buckets_apply_only_to_their_principals() {
        let (_dir, a) = authorizer(
            r#"@id("b-write") permit(principal in Palisade::Group::"team-b", action, resource);
               @id("a-write") permit(principal in Palisade::Group::"team-a", action, resource is Palisade::Topic) when { resource.tags.contains("ok") };
               @id("dept-no") forbid(principal in Palisade::Group::"dept", action, resource is Palisade::Topic) when { resource.tags.contains("secret") };
               @id("carol") permit(principal == Palisade::User::"carol", action, resource);
               @id("any-err") forbid(principal, action, resource is Palisade::Topic) when { resource.tags.contains("boom") && context.time + 9223372036854775807 < 0 };"#,
        );
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none = tags(&[]);
        let ok = tags(&["ok"]);
        let secret = tags(&["ok", "secret"]);
        let boom = tags(&["ok", "boom"]);

        // A permit scoped to another group does not apply.
        let d = a.authorize(&write("alice", &none));
        assert!(!d.allowed && d.determining.is_empty() && d.errors.is_empty());
        // bob's group permit applies to bob only.
        let d = a.authorize(&write("bob", &secret));
        assert!(d.allowed);
        assert_eq!(ids(&d), ["b-write"]);
        // alice's own group permit applies.
        let d = a.authorize(&write("alice", &ok));
        assert!(d.allowed);
        assert_eq!(ids(&d), ["a-write"]);
        // A forbid scoped to one of alice's groups applies and wins.
        let d = a.authorize(&write("alice", &secret));
        assert!(!d.allowed);
        assert_eq!(ids(&d), ["dept-no"]);
        // A principal named by `==` only, not in entities.json.
        assert!(a.authorize(&write("carol", &none)).allowed);
        assert!(!a.authorize(&write("dave", &none)).allowed);
        // An erroring unconstrained forbid still denies everyone, reported as determining.
        for who in ["alice", "bob", "carol"] {
            let d = a.authorize(&write(who, &boom));
            assert!(!d.allowed, "{who}");
            assert_eq!(ids(&d), ["any-err"], "{who}");
            assert!(!d.errors.is_empty());
        }
    }
}
