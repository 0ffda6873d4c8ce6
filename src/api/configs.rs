//! DescribeConfigs and IncrementalAlterConfigs, in front of the backend: DescribeConfigs or
//! AlterConfigs on each topic, DescribeConfigs on the cluster for broker configs; a refused
//! resource, and any kind of resource but these, never reaches the backend. Every applied
//! change is audited here.
//!
//! Retagging (`palisade.tags`) moves a topic between policies, so it is decided here too: the
//! principal must also be allowed to alter the topic as it will be tagged, so nobody tags a
//! topic out of a forbid or into another team's permits.

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
use super::RequestContext;
use crate::audit::{Event, Origin};
use crate::authz::Action;
use crate::backend;
use crate::broker::Broker;
use crate::storage::{parse_tags, TAGS_CONFIG};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

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
    response.results.extend(refused);
    response
}

/// The tags `r`'s changes leave the topic with, when they touch `palisade.tags`.
fn new_tags(broker: &Broker, r: &AlterConfigsResource) -> Option<Vec<String>> {
    r.configs
        .iter()
        .filter(|c| c.name.as_str() == TAGS_CONFIG)
        .fold(None, |_, c| match c.config_operation {
            OP_SET => Some(parse_tags(c.value.as_deref().unwrap_or_default())),
            OP_DELETE => Some(broker.topic_defaults.tags().to_vec()),
            _ => None,
        })
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
            match new_tags(broker, &r) {
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
    req.resources = allowed;
    let mut response = if asked.is_empty() {
        IncrementalAlterConfigsResponse::default()
    } else {
        match backend::incremental_alter_configs(&*broker.backend, ctx.call(), req).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(principal = %ctx.principal, "alter configs failed: {e}");
                let failed = asked.iter().map(|r| {
                    AlterConfigsResourceResponse::default()
                        .with_resource_type(r.resource_type)
                        .with_resource_name(r.resource_name.clone())
                        .with_error_code(e.code().code())
                        .with_error_message(Some(s(e.to_string())))
                });
                IncrementalAlterConfigsResponse::default().with_responses(failed.collect())
            }
        }
    };
    if !validate_only {
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
