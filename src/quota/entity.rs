//! Quota entities: who a quota applies to, and which one applies to a connection.
//!
//! Kafka's model (KIP-55): an entity is a user, a client id, or both; either part may name one
//! user (client id) or be the default for all of them. For one quota type, a connection is
//! governed by the first entity in [`candidates`] that has that quota, and shares its bucket
//! with every connection the same entity resolves to ([`Entity::bucket_for`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `<default>` spelling kafka-configs uses, accepted in the config file too.
pub const DEFAULT_NAME: &str = "<default>";

/// One part of an entity: a name, or the default for every name without a quota of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Name {
    Default,
    Named(String),
}

impl Name {
    /// `<default>` is the default; anything else a name.
    pub fn parse(text: &str) -> Name {
        if text == DEFAULT_NAME {
            Name::Default
        } else {
            Name::Named(text.to_string())
        }
    }

    /// The protocol's form: `None` for the default.
    pub fn as_protocol(&self) -> Option<&str> {
        match self {
            Name::Default => None,
            Name::Named(n) => Some(n),
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Default => f.write_str(DEFAULT_NAME),
            Name::Named(n) => f.write_str(n),
        }
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Name::parse(&s))
    }
}

/// A user, a client id, or both (never neither).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Name>,
}

impl Entity {
    pub fn new(user: Option<Name>, client_id: Option<Name>) -> Result<Entity, String> {
        if user.is_none() && client_id.is_none() {
            return Err("a quota entity names a user, a client id or both".into());
        }
        Ok(Entity { user, client_id })
    }

    /// The bucket this entity meters a connection of `user` with `client_id` in: each
    /// default part stands for the connection's own name, so every user under a user
    /// default gets a bucket of its own.
    pub fn bucket_for(&self, user: &str, client_id: &str) -> Bucket {
        Bucket {
            user: self.user.as_ref().map(|_| user.to_string()),
            client_id: self.client_id.as_ref().map(|_| client_id.to_string()),
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.user, &self.client_id) {
            (Some(u), Some(c)) => write!(f, "user={u}, client-id={c}"),
            (Some(u), None) => write!(f, "user={u}"),
            (None, Some(c)) => write!(f, "client-id={c}"),
            (None, None) => f.write_str("(none)"),
        }
    }
}

/// What one bucket meters: the concrete user and/or client id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bucket {
    pub user: Option<String>,
    pub client_id: Option<String>,
}

/// The entities that may govern a connection of `user` with `client_id`, most specific first
/// (Kafka's precedence: user and client id, user with the default client id, user, the
/// default user with the client id, ..., the default client id).
pub fn candidates(user: &str, client_id: &str) -> [Entity; 8] {
    let u = || Some(Name::Named(user.to_string()));
    let c = || Some(Name::Named(client_id.to_string()));
    let du = || Some(Name::Default);
    let dc = || Some(Name::Default);
    [
        Entity {
            user: u(),
            client_id: c(),
        },
        Entity {
            user: u(),
            client_id: dc(),
        },
        Entity {
            user: u(),
            client_id: None,
        },
        Entity {
            user: du(),
            client_id: c(),
        },
        Entity {
            user: du(),
            client_id: dc(),
        },
        Entity {
            user: du(),
            client_id: None,
        },
        Entity {
            user: None,
            client_id: c(),
        },
        Entity {
            user: None,
            client_id: dc(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_parts_meter_each_name_apart() {
        let default_user = Entity::new(Some(Name::Default), None).unwrap();
        assert_eq!(
            default_user.bucket_for("alice", "app"),
            Bucket {
                user: Some("alice".into()),
                client_id: None
            }
        );
        assert_ne!(
            default_user.bucket_for("alice", "app"),
            default_user.bucket_for("bob", "app")
        );
        // One user's connections share the bucket whatever their client ids.
        assert_eq!(
            default_user.bucket_for("alice", "a"),
            default_user.bucket_for("alice", "b")
        );
    }

    #[test]
    fn candidates_run_from_most_to_least_specific() {
        let c = candidates("alice", "app");
        assert_eq!(c[0].to_string(), "user=alice, client-id=app");
        assert_eq!(c[2].to_string(), "user=alice");
        assert_eq!(c[5].to_string(), "user=<default>");
        assert_eq!(c[7].to_string(), "client-id=<default>");
    }

    #[test]
    fn an_entity_names_something() {
        assert!(Entity::new(None, None).is_err());
        assert_eq!(Name::parse("<default>"), Name::Default);
        assert_eq!(Name::parse("x").as_protocol(), Some("x"));
    }
}
