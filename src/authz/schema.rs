//! The Cedar vocabulary Palisade speaks: entity type names, the Kafka-mirroring [`Action`]s,
//! the [`ResourceKind`]s they apply to, and the `Palisade::Action::"..."` uids.
//!
//! The schema itself lives in `policies/schema.cedarschema`; [`SCHEMA_FILE`] names it. The
//! tables here must agree with its `appliesTo` clauses (a test checks that every pair listed in
//! [`Action::resource_kinds`] validates against the shipped schema).

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};

/// The schema file inside a policy directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The optional entities file (group membership, user attributes) inside a policy directory.
pub const ENTITIES_FILE: &str = "entities.json";
/// The Cedar namespace of every Palisade type.
pub const NAMESPACE: &str = "Palisade";

/// A Kafka operation, as a Cedar action `Palisade::Action::"<name>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    /// Decrypting record payloads (the plugin work).
    Decrypt,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Read,
        Action::Write,
        Action::Create,
        Action::Delete,
        Action::Alter,
        Action::Describe,
        Action::ClusterAction,
        Action::DescribeConfigs,
        Action::AlterConfigs,
        Action::IdempotentWrite,
        Action::Decrypt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Read => "Read",
            Action::Write => "Write",
            Action::Create => "Create",
            Action::Delete => "Delete",
            Action::Alter => "Alter",
            Action::Describe => "Describe",
            Action::ClusterAction => "ClusterAction",
            Action::DescribeConfigs => "DescribeConfigs",
            Action::AlterConfigs => "AlterConfigs",
            Action::IdempotentWrite => "IdempotentWrite",
            Action::Decrypt => "Decrypt",
        }
    }

    /// The resource kinds this action applies to, as Kafka applies its operations (and as the
    /// schema's `appliesTo` says).
    pub fn resource_kinds(self) -> &'static [ResourceKind] {
        use ResourceKind::*;
        match self {
            Action::Read => &[Topic, ConsumerGroup],
            Action::Write => &[Topic, TransactionalId],
            Action::Create => &[Topic, Cluster],
            Action::Delete => &[Topic, ConsumerGroup],
            Action::Alter => &[Topic, Cluster],
            Action::Describe => &[Topic, ConsumerGroup, TransactionalId, Cluster],
            Action::ClusterAction => &[Cluster],
            Action::DescribeConfigs => &[Topic, Cluster],
            Action::AlterConfigs => &[Topic, Cluster],
            Action::IdempotentWrite => &[Cluster],
            Action::Decrypt => &[Topic],
        }
    }

    pub fn applies_to(self, kind: ResourceKind) -> bool {
        self.resource_kinds().contains(&kind)
    }

    /// `Palisade::Action::"<name>"`.
    pub fn uid(self) -> Result<EntityUid, String> {
        uid(ACTION_TYPE, self.name())
    }

    /// The action named by a `Palisade::Action::"<name>"` uid, if it is one of ours.
    pub fn from_uid(uid: &EntityUid) -> Option<Action> {
        if uid.type_name().to_string() != ACTION_TYPE {
            return None;
        }
        uid.id().unescaped().parse().ok()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown action name.
#[derive(Debug, thiserror::Error)]
#[error("unknown action `{0}` (expected one of Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Decrypt)")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownAction(s.to_string()))
    }
}

/// The Cedar entity type of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Topic,
    ConsumerGroup,
    TransactionalId,
    Cluster,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 4] = [
        ResourceKind::Topic,
        ResourceKind::ConsumerGroup,
        ResourceKind::TransactionalId,
        ResourceKind::Cluster,
    ];

    /// The fully qualified Cedar type name, e.g. `Palisade::Topic`.
    pub fn type_name(self) -> &'static str {
        match self {
            ResourceKind::Topic => TOPIC_TYPE,
            ResourceKind::ConsumerGroup => CONSUMER_GROUP_TYPE,
            ResourceKind::TransactionalId => TRANSACTIONAL_ID_TYPE,
            ResourceKind::Cluster => CLUSTER_TYPE,
        }
    }

    pub fn from_type_name(name: &EntityTypeName) -> Option<ResourceKind> {
        let name = name.to_string();
        ResourceKind::ALL
            .iter()
            .copied()
            .find(|k| k.type_name() == name)
    }
}

pub const USER_TYPE: &str = "Palisade::User";
pub const GROUP_TYPE: &str = "Palisade::Group";
pub const TOPIC_TYPE: &str = "Palisade::Topic";
pub const CONSUMER_GROUP_TYPE: &str = "Palisade::ConsumerGroup";
pub const TRANSACTIONAL_ID_TYPE: &str = "Palisade::TransactionalId";
pub const CLUSTER_TYPE: &str = "Palisade::Cluster";
pub const ACTION_TYPE: &str = "Palisade::Action";
/// The id of the one cluster entity, `Palisade::Cluster::"kafka-cluster"` (Kafka's name for it).
pub const CLUSTER_ID: &str = "kafka-cluster";

/// Builds `Type::"id"`; errors only if `type_name` is not a Cedar type name.
pub fn uid(type_name: &str, id: &str) -> Result<EntityUid, String> {
    Ok(EntityUid::from_type_name_and_id(
        parsed_type_name(type_name)?,
        EntityId::new(id),
    ))
}

/// `type_name` parsed; the known type names are parsed once (Cedar's parser costs
/// microseconds, and every decision names three entities).
fn parsed_type_name(type_name: &str) -> Result<EntityTypeName, String> {
    static KNOWN: LazyLock<Vec<(&'static str, EntityTypeName)>> = LazyLock::new(|| {
        [
            USER_TYPE,
            GROUP_TYPE,
            TOPIC_TYPE,
            CONSUMER_GROUP_TYPE,
            TRANSACTIONAL_ID_TYPE,
            CLUSTER_TYPE,
            ACTION_TYPE,
        ]
        .into_iter()
        .filter_map(|name| Some((name, EntityTypeName::from_str(name).ok()?)))
        .collect()
    });
    if let Some((_, ty)) = KNOWN.iter().find(|(name, _)| *name == type_name) {
        return Ok(ty.clone());
    }
    EntityTypeName::from_str(type_name).map_err(|e| format!("bad entity type `{type_name}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_names_and_uids() {
        for a in Action::ALL {
            assert_eq!(a.name().parse::<Action>().ok(), Some(a));
            assert_eq!(Action::from_uid(&a.uid().unwrap()), Some(a));
        }
        assert!("Frobnicate".parse::<Action>().is_err());
    }

    #[test]
    fn kinds_round_trip_through_type_names() {
        for k in ResourceKind::ALL {
            let ty = EntityTypeName::from_str(k.type_name()).ok();
            assert_eq!(ty.as_ref().and_then(ResourceKind::from_type_name), Some(k));
        }
    }
}
