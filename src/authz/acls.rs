//! Kafka ACL bindings as Cedar policies: what CreateAcls, DescribeAcls and DeleteAcls manage.
//!
//! Every binding becomes one policy in the managed file [`ACL_FILE`] of the policy folder,
//! validated and reloaded like any other policy file. The binding itself is kept in the
//! policy's annotations (`@kafka_resource_type`, `@kafka_resource_name`, `@kafka_pattern`,
//! `@kafka_principal`, `@kafka_host`, `@kafka_operation`, `@kafka_permission`), so the file is
//! the only state and DescribeAcls reads it back exactly.
//!
//! Translation, following Kafka's semantics:
//! - `ALLOW` is `permit`, `DENY` is `forbid` (so deny wins, as in Kafka);
//! - principal `User:NAME` is `principal == Palisade::User::"NAME"`, `User:*` any principal;
//! - host `*` is any address, otherwise `context.ip == ip("HOST")`;
//! - `LITERAL` names one resource (`*` every resource of the type), `PREFIXED` every resource
//!   whose name starts with the prefix (`resource.name like "prefix*"`);
//! - operation `ALL` is every action that applies to the resource type; an `ALLOW` of Read,
//!   Write, Delete or Alter also allows Describe, and of AlterConfigs also DescribeConfigs.

use std::fmt::Write as _;
use std::str::FromStr;

use cedar_policy::PolicySet;

use super::schema::{Action, ResourceKind, CLUSTER_ID};

/// The managed file inside the policy folder.
pub const ACL_FILE: &str = "kafka-acls.cedar";

/// Kafka's resource type codes.
pub mod resource_type {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
}

/// Kafka's pattern type codes.
pub mod pattern_type {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's operation codes (ANY = 1 in filters, ALL = 2).
pub mod operation {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
}

/// Kafka's permission type codes.
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// One Kafka ACL binding, in Kafka's codes and strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBinding {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    /// `User:NAME` or `User:*`.
    pub principal: String,
    /// An IP address or `*`.
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// A binding Palisade cannot store, with the reason for the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidAcl(pub String);

/// Kafka operation code -> action, for concrete operations.
fn action_of(op: i8) -> Option<Action> {
    Some(match op {
        3 => Action::Read,
        4 => Action::Write,
        5 => Action::Create,
        6 => Action::Delete,
        7 => Action::Alter,
        8 => Action::Describe,
        9 => Action::ClusterAction,
        10 => Action::DescribeConfigs,
        11 => Action::AlterConfigs,
        12 => Action::IdempotentWrite,
        _ => return None,
    })
}

fn kind_of(resource_type: i8) -> Option<ResourceKind> {
    Some(match resource_type {
        resource_type::TOPIC => ResourceKind::Topic,
        resource_type::GROUP => ResourceKind::ConsumerGroup,
        resource_type::CLUSTER => ResourceKind::Cluster,
        resource_type::TRANSACTIONAL_ID => ResourceKind::TransactionalId,
        _ => return None,
    })
}

/// A Cedar string literal.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// A Cedar `like` pattern matching names that start with `prefix`.
fn like_prefix(prefix: &str) -> String {
    let mut p = String::new();
    for c in prefix.chars() {
        match c {
            '*' => p.push_str("\\*"),
            '"' => p.push_str("\\\""),
            '\\' => p.push_str("\\\\"),
            c => p.push(c),
        }
    }
    format!("\"{p}*\"")
}

impl AclBinding {
    /// Checks the binding against what Palisade can express.
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        let kind = kind_of(self.resource_type).ok_or_else(|| {
            InvalidAcl(format!(
                "resource type {} is not supported (topic, group, cluster, transactional id)",
                self.resource_type
            ))
        })?;
        if !matches!(
            self.pattern_type,
            pattern_type::LITERAL | pattern_type::PREFIXED
        ) {
            return Err(InvalidAcl(format!(
                "pattern type {} is not a concrete pattern (LITERAL or PREFIXED)",
                self.pattern_type
            )));
        }
        if self.resource_name.is_empty() {
            return Err(InvalidAcl("empty resource name".into()));
        }
        if kind == ResourceKind::Cluster && self.resource_name != CLUSTER_ID {
            return Err(InvalidAcl(format!(
                "the cluster resource is named `{CLUSTER_ID}`, not `{}`",
                self.resource_name
            )));
        }
        match self.principal.strip_prefix("User:") {
            Some(name) if !name.is_empty() => {}
            _ => {
                return Err(InvalidAcl(format!(
                    "principal `{}` must be `User:NAME` or `User:*`",
                    self.principal
                )))
            }
        }
        if self.host != "*" && self.host.parse::<std::net::IpAddr>().is_err() {
            return Err(InvalidAcl(format!(
                "host `{}` must be `*` or an IP address",
                self.host
            )));
        }
        if !matches!(self.permission, permission::ALLOW | permission::DENY) {
            return Err(InvalidAcl(format!(
                "permission type {} must be ALLOW or DENY",
                self.permission
            )));
        }
        if self.actions().is_empty() {
            return Err(InvalidAcl(format!(
                "operation {} does not apply to resource type {}",
                self.operation, self.resource_type
            )));
        }
        Ok(())
    }

    /// The Cedar actions this binding grants or denies.
    fn actions(&self) -> Vec<Action> {
        let Some(kind) = kind_of(self.resource_type) else {
            return Vec::new();
        };
        let mut actions: Vec<Action> = if self.operation == operation::ALL {
            Action::ALL
                .into_iter()
                .filter(|a| *a != Action::Decrypt && a.applies_to(kind))
                .collect()
        } else {
            action_of(self.operation)
                .filter(|a| a.applies_to(kind))
                .into_iter()
                .collect()
        };
        if self.permission == permission::ALLOW {
            let implied: Vec<Action> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::Read | Action::Write | Action::Delete | Action::Alter => {
                        Some(Action::Describe)
                    }
                    Action::AlterConfigs => Some(Action::DescribeConfigs),
                    _ => None,
                })
                .filter(|a| a.applies_to(kind))
                .collect();
            actions.extend(implied);
        }
        actions.sort_unstable();
        actions.dedup();
        actions
    }

    /// A stable id: the same binding always gets the same id.
    pub fn id(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            self.resource_type.to_string(),
            self.resource_name.clone(),
            self.pattern_type.to_string(),
            self.principal.clone(),
            self.host.clone(),
            self.operation.to_string(),
            self.permission.to_string(),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let digest = hex::encode(h.finalize());
        format!("kafka-acl-{}", digest.get(..16).unwrap_or(&digest))
    }

    /// The binding as one annotated Cedar policy (validated first).
    pub fn to_cedar(&self) -> Result<String, InvalidAcl> {
        self.validate()?;
        let kind = kind_of(self.resource_type).ok_or_else(|| InvalidAcl("resource type".into()))?;
        let mut out = String::new();
        let _ = writeln!(out, "@id({})", quoted(&self.id()));
        for (key, value) in [
            ("kafka_resource_type", self.resource_type.to_string()),
            ("kafka_resource_name", self.resource_name.clone()),
            ("kafka_pattern", self.pattern_type.to_string()),
            ("kafka_principal", self.principal.clone()),
            ("kafka_host", self.host.clone()),
            ("kafka_operation", self.operation.to_string()),
            ("kafka_permission", self.permission.to_string()),
        ] {
            let _ = writeln!(out, "@{key}({})", quoted(&value));
        }
        let effect = if self.permission == permission::ALLOW {
            "permit"
        } else {
            "forbid"
        };
        let principal = match self.principal.strip_prefix("User:") {
            Some("*") | None => "principal".to_string(),
            Some(name) => format!("principal == Palisade::User::{}", quoted(name)),
        };
        let actions: Vec<String> = self
            .actions()
            .iter()
            .map(|a| format!("Palisade::Action::{}", quoted(a.name())))
            .collect();
        let type_name = kind.type_name();
        let mut conditions = Vec::new();
        let resource = match (self.pattern_type, self.resource_name.as_str()) {
            (pattern_type::LITERAL, "*") => format!("resource is {type_name}"),
            (pattern_type::LITERAL, name) => {
                format!("resource == {type_name}::{}", quoted(name))
            }
            (_, prefix) => {
                if kind != ResourceKind::Cluster {
                    conditions.push(format!("resource.name like {}", like_prefix(prefix)));
                }
                format!("resource is {type_name}")
            }
        };
        if self.host != "*" {
            conditions.push(format!("context.ip == ip({})", quoted(&self.host)));
        }
        let _ = write!(
            out,
            "{effect}(\n  {principal},\n  action in [{}],\n  {resource}\n)",
            actions.join(", ")
        );
        if !conditions.is_empty() {
            let _ = write!(out, "\nwhen {{ {} }}", conditions.join(" && "));
        }
        out.push_str(";\n");
        Ok(out)
    }
}

/// The managed file's text for `bindings`.
pub fn render(bindings: &[AclBinding]) -> Result<String, InvalidAcl> {
    let mut out = String::from(
        "// Managed by Palisade: Kafka ACLs created with CreateAcls (kafka-acls, AdminClient).\n\
         // Change them through the Kafka ACL APIs; edits here are read back but may be rewritten.\n",
    );
    for b in bindings {
        out.push('\n');
        out.push_str(&b.to_cedar()?);
    }
    Ok(out)
}

/// The bindings stored in a managed file's text (policies without the annotations are
/// ignored: they are not ACLs).
pub fn parse(text: &str) -> Result<Vec<AclBinding>, InvalidAcl> {
    let set = PolicySet::from_str(text).map_err(|e| InvalidAcl(format!("{ACL_FILE}: {e}")))?;
    let mut bindings = Vec::new();
    for policy in set.policies() {
        let get = |k: &str| policy.annotation(k).map(str::to_string);
        let num = |k: &str| get(k).and_then(|v| v.parse::<i8>().ok());
        let (
            Some(resource_type),
            Some(resource_name),
            Some(pattern_type),
            Some(principal),
            Some(host),
            Some(operation),
            Some(permission),
        ) = (
            num("kafka_resource_type"),
            get("kafka_resource_name"),
            num("kafka_pattern"),
            get("kafka_principal"),
            get("kafka_host"),
            num("kafka_operation"),
            num("kafka_permission"),
        )
        else {
            continue;
        };
        bindings.push(AclBinding {
            resource_type,
            resource_name,
            pattern_type,
            principal,
            host,
            operation,
            permission,
        });
    }
    Ok(bindings)
}

/// A DescribeAcls / DeleteAcls filter.
#[derive(Debug, Clone)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    /// Kafka's filter semantics (ANY fields match everything; MATCH patterns match literal
    /// equals, the literal wildcard and prefixes of the name).
    pub fn matches(&self, b: &AclBinding) -> bool {
        let type_ok =
            self.resource_type == resource_type::ANY || self.resource_type == b.resource_type;
        let name_ok = match (&self.resource_name, self.pattern_type) {
            (None, _) => true,
            (Some(name), pattern_type::MATCH) => match b.pattern_type {
                pattern_type::LITERAL => b.resource_name == *name || b.resource_name == "*",
                pattern_type::PREFIXED => name.starts_with(&b.resource_name),
                _ => false,
            },
            (Some(name), _) => b.resource_name == *name,
        };
        let pattern_ok = match self.pattern_type {
            pattern_type::ANY | pattern_type::MATCH => true,
            p => p == b.pattern_type,
        };
        let principal_ok = self.principal.as_ref().is_none_or(|p| *p == b.principal);
        let host_ok = self.host.as_ref().is_none_or(|h| *h == b.host);
        let op_ok = self.operation == operation::ANY || self.operation == b.operation;
        let perm_ok = self.permission == permission::ANY || self.permission == b.permission;
        type_ok && name_ok && pattern_ok && principal_ok && host_ok && op_ok && perm_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(name: &str, pattern: i8, op: i8, perm: i8) -> AclBinding {
        AclBinding {
            resource_type: resource_type::TOPIC,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn bindings_round_trip_through_the_managed_file() {
        let bindings = vec![
            binding("orders", pattern_type::LITERAL, 4, permission::ALLOW),
            binding(
                "pay*\"x",
                pattern_type::PREFIXED,
                operation::ALL,
                permission::DENY,
            ),
            AclBinding {
                resource_type: resource_type::CLUSTER,
                resource_name: CLUSTER_ID.into(),
                pattern_type: pattern_type::LITERAL,
                principal: "User:*".into(),
                host: "10.0.0.1".into(),
                operation: 12,
                permission: permission::ALLOW,
            },
        ];
        let text = render(&bindings).unwrap();
        assert_eq!(parse(&text).unwrap(), bindings);
        assert!(text.contains("like \"pay\\*\\\"x*\""), "{text}");
    }

    #[test]
    fn allow_write_implies_describe_and_deny_does_not() {
        let allow = binding("t", pattern_type::LITERAL, 4, permission::ALLOW)
            .to_cedar()
            .unwrap();
        assert!(
            allow.contains("\"Describe\"") && allow.contains("\"Write\""),
            "{allow}"
        );
        let deny = binding("t", pattern_type::LITERAL, 4, permission::DENY)
            .to_cedar()
            .unwrap();
        assert!(
            !deny.contains("\"Describe\"") && deny.starts_with("@id"),
            "{deny}"
        );
    }

    #[test]
    fn unsupported_bindings_are_refused_with_a_reason() {
        let mut b = binding("t", pattern_type::MATCH, 4, permission::ALLOW);
        assert!(b.validate().is_err());
        b.pattern_type = pattern_type::LITERAL;
        b.principal = "Group:x".into();
        assert!(b.validate().unwrap_err().0.contains("User:NAME"));
        b.principal = "User:alice".into();
        b.host = "not-an-ip".into();
        assert!(b.validate().is_err());
        b.host = "*".into();
        b.operation = 12; // IdempotentWrite does not apply to topics
        assert!(b.validate().is_err());
    }

    #[test]
    fn filters_follow_kafka_semantics() {
        let lit = binding("orders", pattern_type::LITERAL, 4, permission::ALLOW);
        let pre = binding("ord", pattern_type::PREFIXED, 3, permission::ALLOW);
        let any = AclFilter {
            resource_type: resource_type::ANY,
            resource_name: None,
            pattern_type: pattern_type::ANY,
            principal: None,
            host: None,
            operation: operation::ANY,
            permission: permission::ANY,
        };
        assert!(any.matches(&lit) && any.matches(&pre));
        let matching = AclFilter {
            resource_name: Some("orders".into()),
            pattern_type: pattern_type::MATCH,
            ..any.clone()
        };
        assert!(matching.matches(&lit) && matching.matches(&pre));
        let literal = AclFilter {
            resource_name: Some("orders".into()),
            pattern_type: pattern_type::LITERAL,
            ..any.clone()
        };
        assert!(literal.matches(&lit) && !literal.matches(&pre));
        let reads = AclFilter {
            operation: 3,
            ..any
        };
        assert!(!reads.matches(&lit) && reads.matches(&pre));
    }
}
