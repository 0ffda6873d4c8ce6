//! DescribeConfigs and IncrementalAlterConfigs, in front of the backend: DescribeConfigs or
//! AlterConfigs on each topic, DescribeConfigs on the cluster for broker configs; a refused
//! resource, and any kind of resource but these, never reaches the backend. Every applied
//! change is audited here.
//!
//! Retagging (`palisade.tags`) moves a topic between policies, so it is decided here too: the
//! principal must also be allowed to alter the topic as it will be tagged, so nobody tags a
//! topic out of a forbid or into another team's permits. Tags are kept here as well, never by
//! the backend ([`super::topic_tags`]): a retag is taken out of the request, the rest is
//! forwarded, and the tags are stored once the backend applied it; DescribeConfigs shows them
//! beside the backend's configs.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};

use super::access::Access;
use super::topic_tags;
use super::RequestContext;
use crate::audit::{Event, Origin};
use crate::authz::Action;
use crate::backend;
use crate::broker::Broker;
use crate::topic_tags::TopicTags;
use kafka_protocol::protocol::StrBytes;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;

use super::str_bytes as s;

pub async fn describe(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let access = Access::new(broker, ctx);
    let mut refused = Vec::new();
    let mut allowed: Vec<DescribeConfigsResource> = Vec::new();
    for r in std::mem::take(&mut req.resources) {
        let name = r.resource_name.as_str();
        let refusal = match r.resource_type {
            RESOURCE_TOPIC if !access.topic(Action::DescribeConfigs, name) => Some((
                ResponseError::TopicAuthorizationFailed,
                format!("not authorized to describe the configs of topic `{name}`"),
            )),
            RESOURCE_BROKER if !access.cluster(Action::DescribeConfigs) => Some((
                ResponseError::ClusterAuthorizationFailed,
                "not authorized to describe broker configs (DescribeConfigs on the cluster)"
                    .to_string(),
            )),
            RESOURCE_TOPIC | RESOURCE_BROKER => None,
            _ => Some((
                ResponseError::InvalidRequest,
                "only topic and broker configs can be described".to_string(),
            )),
        };
        match refusal {
            Some((code, message)) => refused.push(
                DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code.code())
                    .with_error_message(Some(s(message))),
            ),
            None => allowed.push(r),
        }
    }
    let asked: Vec<(i8, _)> = allowed
        .iter()
        .map(|r| (r.resource_type, r.resource_name.clone()))
        .collect();
    // The keys each topic was described with: its tags are added to the backend's answer.
    let keys: Vec<(StrBytes, Option<Vec<StrBytes>>)> = allowed
        .iter()
        .filter(|r| r.resource_type == RESOURCE_TOPIC)
        .map(|r| (r.resource_name.clone(), r.configuration_keys.clone()))
        .collect();
    req.resources = allowed;
    let mut response = if asked.is_empty() {
        DescribeConfigsResponse::default()
    } else {
        match backend::describe_configs(&*broker.backend, ctx.call(), req).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(principal = %ctx.principal, "describe configs failed: {e}");
                let failed = asked.into_iter().map(|(kind, name)| {
                    DescribeConfigsResult::default()
                        .with_resource_type(kind)
                        .with_resource_name(name)
                        .with_error_code(e.code().code())
                        .with_error_message(Some(s(e.to_string())))
                });
                DescribeConfigsResponse::default().with_results(failed.collect())
            }
        }
    };
    for result in response
        .results
        .iter_mut()
        .filter(|r| r.resource_type == RESOURCE_TOPIC)
    {
        if let Some((_, wanted)) = keys.iter().find(|(n, _)| *n == result.resource_name) {
            topic_tags::describe(broker, result, wanted.as_deref());
        }
    }
    response.results.extend(refused);
    response
}

pub async fn incremental_alter(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let access = Access::new(broker, ctx);
    let mut refused = Vec::new();
    let mut allowed: Vec<AlterConfigsResource> = Vec::new();
    for r in std::mem::take(&mut req.resources) {
        let name = r.resource_name.to_string();
        // The audit topic's retention and configs are the broker's: no client changes
        // them, validate_only included (refused by `access` for everyone).
        let not_authorized = || {
            (
                ResponseError::TopicAuthorizationFailed,
                format!("not authorized to alter the configs of topic `{name}`"),
            )
        };
        let refusal = if r.resource_type != RESOURCE_TOPIC {
            Some((
                ResponseError::InvalidRequest,
                "only topic configs can be altered".to_string(),
            ))
        } else if !access.topic(Action::AlterConfigs, &name) {
            Some(not_authorized())
        } else {
            match topic_tags::requested_by_alter(&r) {
                Some(tags)
                    if *tags != *access.topic_tags(&name)
                        && !access.topic_tagged(Action::AlterConfigs, &name, &tags) =>
                {
                    Some(not_authorized())
                }
                _ => None,
            }
        };
        match refusal {
            Some((code, message)) => refused.push(
                AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code.code())
                    .with_error_message(Some(s(message))),
            ),
            None => allowed.push(r),
        }
    }
    let validate_only = req.validate_only;
    let asked = allowed.clone();
    // Retags leave the request here; a resource that only retags is not forwarded.
    let mut retags: Vec<(StrBytes, TopicTags)> = Vec::new();
    let mut retag_only: Vec<StrBytes> = Vec::new();
    let mut forwarded: Vec<AlterConfigsResource> = Vec::with_capacity(allowed.len());
    for mut r in allowed {
        match topic_tags::take_from_alter(&mut r) {
            Err(refusal) => refused.push(answer(&r, Err(refusal))),
            Ok(None) => forwarded.push(r),
            Ok(Some(tags)) => {
                retags.push((r.resource_name.clone(), tags));
                if r.configs.is_empty() {
                    retag_only.push(r.resource_name);
                } else {
                    forwarded.push(r);
                }
            }
        }
    }
    let backend_failed = |r: &AlterConfigsResource, e: &backend::BackendError| {
        answer(r, Err((e.code(), e.to_string())))
    };
    let mut response = if forwarded.is_empty() {
        IncrementalAlterConfigsResponse::default()
    } else {
        let sent = forwarded.clone();
        req.resources = forwarded;
        match backend::incremental_alter_configs(&*broker.backend, ctx.call(), req).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(principal = %ctx.principal, "alter configs failed: {e}");
                let failed = sent.iter().map(|r| backend_failed(r, &e));
                IncrementalAlterConfigsResponse::default().with_responses(failed.collect())
            }
        }
    };
    if !retag_only.is_empty() {
        let known = topic_tags::known_topics(broker, ctx, &retag_only).await;
        for (i, name) in retag_only.into_iter().enumerate() {
            let r = AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(name);
            response.responses.push(match &known {
                Ok(known) if known.get(i).copied().unwrap_or(false) => answer(&r, Ok(())),
                Ok(_) => {
                    let message = format!("unknown topic `{}`", r.resource_name.as_str());
                    answer(&r, Err((ResponseError::UnknownTopicOrPartition, message)))
                }
                Err(e) => {
                    tracing::warn!(principal = %ctx.principal, "alter configs failed: {e}");
                    backend_failed(&r, e)
                }
            });
        }
    }
    if !validate_only {
        for (name, tags) in &retags {
            let Some(done) = response
                .responses
                .iter_mut()
                .find(|d| d.error_code == 0 && d.resource_name == *name)
            else {
                continue;
            };
            if let Err((code, message)) = topic_tags::retag(broker, name, tags) {
                done.error_code = code.code();
                done.error_message = Some(s(message));
            }
        }
        for done in response.responses.iter().filter(|r| r.error_code == 0) {
            let Some(r) = asked.iter().find(|r| r.resource_name == done.resource_name) else {
                continue;
            };
            let changes: Vec<(String, Option<String>)> = r
                .configs
                .iter()
                .map(|c| {
                    let value = (c.config_operation == OP_SET)
                        .then(|| c.value.as_deref().unwrap_or_default().to_string());
                    (c.name.to_string(), value)
                })
                .collect();
            broker.audit.record(Event::topic_config_changed(
                &Origin::of_request(ctx),
                &r.resource_name,
                &changes,
            ));
        }
    }
    response.responses.extend(refused);
    response
}

/// `r`'s answer made here: success, or a refusal with its message.
fn answer(
    r: &AlterConfigsResource,
    outcome: Result<(), topic_tags::Refusal>,
) -> AlterConfigsResourceResponse {
    let response = AlterConfigsResourceResponse::default()
        .with_resource_type(r.resource_type)
        .with_resource_name(r.resource_name.clone());
    match outcome {
        Ok(()) => response,
        Err((code, message)) => response
            .with_error_code(code.code())
            .with_error_message(Some(s(message))),
    }
}
