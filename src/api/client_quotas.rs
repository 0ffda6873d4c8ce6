//! DescribeClientQuotas and AlterClientQuotas (KIP-546): read and set the broker's byte-rate
//! quotas from a stock admin tool (`kafka-configs --entity-type users|clients`).
//!
//! Describe needs DescribeConfigs on the cluster, alter AlterConfigs on it (Kafka's table).
//! Describe answers the quotas in force: the config file's and the altered ones together.
//! Each altered entry is audited (`client_quota_changed`) with what it set or removed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::EntryData as AlterEntry;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    alter_client_quotas_response, AlterClientQuotasRequest, AlterClientQuotasResponse,
    DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::broker::Broker;
use crate::quota::{AlterError, Entity, Name, QuotaKind};

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
/// Kafka's `ip` entity (connection_creation_rate): Palisade's per-IP limits live in `[limits]`.
const IP: &str = "ip";

use super::str_bytes as s;

/// Which part of an entity a protocol entity type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    User,
    ClientId,
}

fn part(entity_type: &str) -> Result<Part, String> {
    match entity_type {
        USER => Ok(Part::User),
        CLIENT_ID => Ok(Part::ClientId),
        IP => Err("ip quotas are not set here: per-IP connection limits are `[limits]` settings of the broker config".into()),
        other => Err(format!("unknown quota entity type `{other}` (user or client-id)")),
    }
}

// ---------------------------------------------------------------------------------------------
// Describe

/// One component of a describe filter.
struct Filter {
    part: Part,
    matches: Match,
}

enum Match {
    Exact(String),
    Default,
    Specified,
}

fn filter(c: &ComponentData) -> Result<Filter, String> {
    let part = part(c.entity_type.as_str())?;
    let matches = match (c.match_type, &c._match) {
        (0, Some(name)) => Match::Exact(name.to_string()),
        (0, None) => return Err("an exact match needs a name".into()),
        (1, _) => Match::Default,
        (2, _) => Match::Specified,
        (t, _) => return Err(format!("unknown match type {t}")),
    };
    Ok(Filter { part, matches })
}

fn component(entity: &Entity, part: Part) -> Option<&Name> {
    match part {
        Part::User => entity.user.as_ref(),
        Part::ClientId => entity.client_id.as_ref(),
    }
}

fn selected(entity: &Entity, filters: &[Filter], strict: bool) -> bool {
    let all_match = filters
        .iter()
        .all(|f| match (component(entity, f.part), &f.matches) {
            (Some(Name::Named(n)), Match::Exact(want)) => n == want,
            (Some(Name::Default), Match::Default) => true,
            (Some(Name::Named(_)), Match::Specified) => true,
            _ => false,
        });
    let parts = usize::from(entity.user.is_some()) + usize::from(entity.client_id.is_some());
    all_match && (!strict || parts == filters.len())
}

fn entity_data(entity: &Entity) -> Vec<EntityData> {
    let mut out = Vec::new();
    if let Some(u) = &entity.user {
        out.push(
            EntityData::default()
                .with_entity_type(s(USER))
                .with_entity_name(u.as_protocol().map(s)),
        );
    }
    if let Some(c) = &entity.client_id {
        out.push(
            EntityData::default()
                .with_entity_type(s(CLIENT_ID))
                .with_entity_name(c.as_protocol().map(s)),
        );
    }
    out
}

pub fn describe(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let refuse = |code: ResponseError, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(s(message)))
    };
    if !Access::new(broker, ctx).cluster(Action::DescribeConfigs) {
        return refuse(
            ResponseError::ClusterAuthorizationFailed,
            "not authorized to describe client quotas (DescribeConfigs on the cluster)".into(),
        );
    }
    let filters = match req
        .components
        .iter()
        .map(filter)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(f) => f,
        Err(message) => return refuse(ResponseError::InvalidRequest, message),
    };
    let twice = filters
        .iter()
        .enumerate()
        .any(|(i, f)| filters.iter().skip(i + 1).any(|g| g.part == f.part));
    if twice {
        return refuse(
            ResponseError::InvalidRequest,
            "each entity type may appear once in a filter".into(),
        );
    }
    let table = broker.quotas.effective();
    let mut entries: Vec<EntryData> = Vec::new();
    let mut last: Option<&Entity> = None;
    // The table is ordered by entity, so one entity's quotas are adjacent.
    for ((entity, kind), rate) in table.iter() {
        if !selected(entity, &filters, req.strict) {
            continue;
        }
        // Precision: byte rates are far below 2^53.
        let value = ValueData::default()
            .with_key(s(kind.key()))
            .with_value(*rate as f64);
        match (last, entries.last_mut()) {
            (Some(prev), Some(entry)) if prev == entity => entry.values.push(value),
            _ => entries.push(
                EntryData::default()
                    .with_entity(entity_data(entity))
                    .with_values(vec![value]),
            ),
        }
        last = Some(entity);
    }
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

// ---------------------------------------------------------------------------------------------
// Alter

type Change = (Entity, QuotaKind, Option<u64>);

/// The entity and changes of one entry, or why it is refused.
fn parse_entry(entry: &AlterEntry) -> Result<(Entity, Vec<Change>), String> {
    let mut user = None;
    let mut client_id = None;
    for e in &entry.entity {
        let slot = match part(e.entity_type.as_str())? {
            Part::User => &mut user,
            Part::ClientId => &mut client_id,
        };
        if slot.is_some() {
            return Err(format!(
                "entity type `{}` appears twice",
                e.entity_type.as_str()
            ));
        }
        *slot = Some(match &e.entity_name {
            None => Name::Default,
            Some(n) => Name::Named(n.to_string()),
        });
    }
    let entity = Entity::new(user, client_id)?;
    let mut changes = Vec::new();
    for op in &entry.ops {
        let key = op.key.as_str();
        let kind = QuotaKind::from_key(key).ok_or_else(|| {
            format!("unsupported quota `{key}` (producer_byte_rate or consumer_byte_rate)")
        })?;
        if changes.iter().any(|(_, k, _)| *k == kind) {
            return Err(format!("`{key}` is changed twice"));
        }
        let rate = if op.remove {
            None
        } else {
            Some(byte_rate(key, op.value)?)
        };
        changes.push((entity.clone(), kind, rate));
    }
    Ok((entity, changes))
}

/// A quota value as bytes per second: a whole, positive number.
fn byte_rate(key: &str, value: f64) -> Result<u64, String> {
    // 2^53: every whole number up to it is exact in an f64.
    const MAX: f64 = 9_007_199_254_740_992.0;
    if !(value.is_finite() && (1.0..=MAX).contains(&value) && value.fract() == 0.0) {
        return Err(format!(
            "`{key}` must be a whole number of bytes per second, at least 1 (got {value})"
        ));
    }
    // Checked just above: whole, positive, below 2^53.
    Ok(value as u64)
}

fn alter_result(
    entry: &AlterEntry,
    error: Option<(ResponseError, String)>,
) -> alter_client_quotas_response::EntryData {
    let entity = entry
        .entity
        .iter()
        .map(|e| {
            alter_client_quotas_response::EntityData::default()
                .with_entity_type(e.entity_type.clone())
                .with_entity_name(e.entity_name.clone())
        })
        .collect();
    let r = alter_client_quotas_response::EntryData::default().with_entity(entity);
    match error {
        None => r,
        Some((code, message)) => r
            .with_error_code(code.code())
            .with_error_message(Some(s(message))),
    }
}

pub fn alter(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    if !Access::new(broker, ctx).cluster(Action::AlterConfigs) {
        tracing::warn!(principal = %ctx.principal, "AlterClientQuotas denied");
        let denied = "not authorized to alter client quotas (AlterConfigs on the cluster)";
        return AlterClientQuotasResponse::default().with_entries(
            req.entries
                .iter()
                .map(|e| {
                    alter_result(
                        e,
                        Some((ResponseError::ClusterAuthorizationFailed, denied.into())),
                    )
                })
                .collect(),
        );
    }
    let parsed: Vec<_> = req.entries.iter().map(parse_entry).collect();
    let changes: Vec<Change> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .flat_map(|(_, c)| c.iter().cloned())
        .collect();
    // The valid entries apply together; a storage failure fails each of them.
    let stored = if req.validate_only || changes.is_empty() {
        Ok(())
    } else {
        broker.quotas.alter(&changes)
    };
    let origin = crate::audit::Origin::of_request(ctx);
    let results = req
        .entries
        .iter()
        .zip(parsed)
        .map(|(entry, parsed)| {
            let error = match (&parsed, &stored) {
                (Err(message), _) => Some((ResponseError::InvalidRequest, message.clone())),
                (Ok(_), Err(e @ AlterError::TooMany(_))) => {
                    Some((ResponseError::InvalidRequest, e.to_string()))
                }
                (Ok(_), Err(e @ AlterError::Store(_))) => {
                    Some((ResponseError::UnknownServerError, e.to_string()))
                }
                (Ok(_), Ok(())) => None,
            };
            if let Ok((entity, entity_changes)) = &parsed {
                if !req.validate_only {
                    audit(broker, &origin, entity, entity_changes, error.as_ref().map(|(_, m)| m.as_str()));
                }
            }
            if let Some((_, message)) = &error {
                tracing::warn!(principal = %ctx.principal, "client quota change refused: {message}");
            }
            alter_result(entry, error)
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(results)
}

fn audit(
    broker: &Broker,
    origin: &crate::audit::Origin,
    entity: &Entity,
    changes: &[Change],
    refusal: Option<&str>,
) {
    let set: Vec<(String, Option<u64>)> = changes
        .iter()
        .map(|(_, kind, rate)| (kind.key().to_string(), *rate))
        .collect();
    if refusal.is_none() {
        tracing::info!(entity = %entity, changes = ?set, "client quotas changed");
    }
    broker
        .audit
        .record(crate::audit::Event::client_quota_changed(
            origin,
            &entity.to_string(),
            &set,
            refusal,
        ));
}
