//! What is asked: [`Request`] (principal, [`Action`], [`Resource`], [`RequestContextFacts`])
//! and its Cedar form (request + the few entities it needs).
//!
//! The principal is `Palisade::User::"<name>"`; its attributes and groups come from the
//! generation's `entities.json` (a user not listed there has neither). The resource entity is
//! built from the request itself: a topic carries its `name` and its `tags` (the topic config
//! `palisade.tags`, comma separated), which the caller looks up: authorization never reads
//! the log.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use cedar_policy::{Context, Entities, Entity, RestrictedExpression};

use super::load::Generation;
use super::schema::{
    uid, Action, ResourceKind, CLUSTER_ID, CLUSTER_TYPE, CONSUMER_GROUP_TYPE, TOPIC_TYPE,
    TRANSACTIONAL_ID_TYPE, USER_TYPE,
};
use crate::request::Caller;

/// The resource a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource<'a> {
    /// A topic and its tags (from its `palisade.tags` config).
    Topic {
        name: &'a str,
        tags: &'a [String],
    },
    /// A consumer group.
    Group(&'a str),
    TransactionalId(&'a str),
    Cluster,
}

impl Resource<'_> {
    pub fn kind(&self) -> ResourceKind {
        match self {
            Resource::Topic { .. } => ResourceKind::Topic,
            Resource::Group(_) => ResourceKind::ConsumerGroup,
            Resource::TransactionalId(_) => ResourceKind::TransactionalId,
            Resource::Cluster => ResourceKind::Cluster,
        }
    }

    /// The entity id: the topic, group or transactional id name, or `kafka-cluster`.
    pub fn name(&self) -> &str {
        match self {
            Resource::Topic { name, .. } => name,
            Resource::Group(name) | Resource::TransactionalId(name) => name,
            Resource::Cluster => CLUSTER_ID,
        }
    }

    /// The topic's tags; empty for other resources.
    pub fn tags(&self) -> &[String] {
        match self {
            Resource::Topic { tags, .. } => tags,
            _ => &[],
        }
    }
}

/// The facts about the connection that policies may test (`context.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestContextFacts<'a> {
    /// The client's address (`context.ip`).
    pub ip: IpAddr,
    /// The listener name (`context.listener`), e.g. `PLAINTEXT`.
    pub listener: &'a str,
    /// Whether the connection is TLS (`context.tls`).
    pub tls: bool,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `mtls` or `anonymous` (see
    /// [`AuthMethod::name`](crate::principal::AuthMethod::name)).
    pub authentication: &'a str,
    /// The client id of the request header (empty when absent).
    pub client_id: &'a str,
    /// Unix seconds (`context.time`).
    pub time: i64,
}

/// The current time in unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl<'a> From<&'a Caller> for RequestContextFacts<'a> {
    /// The caller's connection as policies see it, at the time now.
    fn from(caller: &'a Caller) -> Self {
        RequestContextFacts {
            ip: caller.peer.ip(),
            listener: &caller.listener,
            tls: caller.tls,
            authentication: caller.mechanism(),
            client_id: caller.client_id_or_empty(),
            time: unix_now(),
        }
    }
}

/// `ip("<ip>")`. `RestrictedExpression::new_ip` runs Cedar's parser on the name `ip` every
/// time (about a fifth of a cold decision), so the expressions are remembered per thread and
/// address (at most [`IP_MEMO`] of them).
fn ip_expression(ip: IpAddr) -> RestrictedExpression {
    thread_local! {
        static MEMO: RefCell<HashMap<IpAddr, RestrictedExpression>> = RefCell::new(HashMap::new());
    }
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        if let Some(e) = memo.get(&ip) {
            return e.clone();
        }
        if memo.len() >= IP_MEMO {
            memo.clear();
        }
        let e = RestrictedExpression::new_ip(ip.to_string());
        memo.insert(ip, e.clone());
        e
    })
}

/// How many `ip(..)` expressions each thread remembers.
const IP_MEMO: usize = 1024;

/// One authorization question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Request<'a> {
    /// The principal's name (`Palisade::User::"<name>"`).
    pub principal: &'a str,
    pub action: Action,
    pub resource: Resource<'a>,
    pub context: RequestContextFacts<'a>,
}

impl<'a> Request<'a> {
    /// May `principal` do `action` on `resource`, asked over `caller`'s connection (the
    /// caller's own principal for a Kafka request; a plugin may ask about another).
    pub fn asked_by(
        caller: &'a Caller,
        principal: &'a str,
        action: Action,
        resource: Resource<'a>,
    ) -> Self {
        Request {
            principal,
            action,
            resource,
            context: RequestContextFacts::from(caller),
        }
    }

    /// The Cedar request and entities for this request under `generation`.
    pub(crate) fn cedar_form(
        &self,
        generation: &Generation,
    ) -> Result<(cedar_policy::Request, Entities), String> {
        let principal_uid = uid(USER_TYPE, self.principal)?;
        let principal = match generation.users.get(self.principal) {
            Some(user) => user.entity.clone(),
            None => Entity::new_no_attrs(principal_uid.clone(), HashSet::new()),
        };
        let resource = self.resource_entity()?;
        let resource_uid = resource.uid();
        let c = &self.context;
        let context = Context::from_pairs([
            ("ip".to_string(), ip_expression(c.ip)),
            (
                "listener".to_string(),
                RestrictedExpression::new_string(c.listener.to_string()),
            ),
            ("tls".to_string(), RestrictedExpression::new_bool(c.tls)),
            (
                "authentication".to_string(),
                RestrictedExpression::new_string(c.authentication.to_string()),
            ),
            (
                "client_id".to_string(),
                RestrictedExpression::new_string(c.client_id.to_string()),
            ),
            ("time".to_string(), RestrictedExpression::new_long(c.time)),
        ])
        .map_err(|e| format!("context: {e}"))?;
        let request = cedar_policy::Request::new(
            principal_uid,
            self.action.uid()?,
            resource_uid,
            context,
            None,
        )
        .map_err(|e| format!("request: {e}"))?;
        let entities = Entities::from_entities([principal, resource], None)
            .map_err(|e| format!("entities: {e}"))?;
        Ok((request, entities))
    }

    fn resource_entity(&self) -> Result<Entity, String> {
        let name_attr = |name: &str| {
            [(
                "name".to_string(),
                RestrictedExpression::new_string(name.to_string()),
            )]
        };
        let entity = match self.resource {
            Resource::Topic { name, tags } => {
                let mut attrs: std::collections::HashMap<_, _> = name_attr(name).into();
                attrs.insert(
                    "tags".to_string(),
                    RestrictedExpression::new_set(
                        tags.iter()
                            .map(|t| RestrictedExpression::new_string(t.clone())),
                    ),
                );
                Entity::new(uid(TOPIC_TYPE, name)?, attrs, HashSet::new())
            }
            Resource::Group(name) => Entity::new(
                uid(CONSUMER_GROUP_TYPE, name)?,
                name_attr(name).into(),
                HashSet::new(),
            ),
            Resource::TransactionalId(name) => Entity::new(
                uid(TRANSACTIONAL_ID_TYPE, name)?,
                name_attr(name).into(),
                HashSet::new(),
            ),
            Resource::Cluster => {
                return Ok(Entity::new_no_attrs(
                    uid(CLUSTER_TYPE, CLUSTER_ID)?,
                    HashSet::new(),
                ))
            }
        };
        entity.map_err(|e| format!("resource: {e}"))
    }
}
