//! DescribeConfigs and IncrementalAlterConfigs for topics (and a read-only broker view).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::broker::Broker;
use crate::storage::TopicConfig;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

use super::str_bytes as s;

pub fn describe(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let access = Access::new(broker, ctx);
    let defaults: Vec<(String, String)> = broker.topic_defaults.entries();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted = |key: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
            };
            match r.resource_type {
                RESOURCE_TOPIC
                    if !access.topic(Action::DescribeConfigs, r.resource_name.as_str()) =>
                {
                    result
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                        .with_error_message(Some(s(format!(
                            "not authorized to describe the configs of topic `{}`",
                            r.resource_name.as_str()
                        ))))
                }
                RESOURCE_BROKER if !access.cluster(Action::DescribeConfigs) => result
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                    .with_error_message(Some(s(
                        "not authorized to describe broker configs (DescribeConfigs on the cluster)",
                    ))),
                RESOURCE_TOPIC => match broker.logs.topic(&r.resource_name) {
                    None => result
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(s(format!(
                            "unknown topic `{}`",
                            r.resource_name.as_str()
                        )))),
                    Some(topic) => {
                        let configs = topic
                            .config()
                            .entries()
                            .into_iter()
                            .filter(|(k, _)| wanted(k))
                            .map(|(k, v)| {
                                let is_default =
                                    defaults.iter().any(|(dk, dv)| *dk == k && *dv == v);
                                DescribeConfigsResourceResult::default()
                                    .with_name(s(k))
                                    .with_value(Some(s(v)))
                                    .with_config_source(if is_default {
                                        SOURCE_DEFAULT
                                    } else {
                                        SOURCE_DYNAMIC_TOPIC
                                    })
                            })
                            .collect();
                        result.with_configs(configs)
                    }
                },
                RESOURCE_BROKER
                    if r.resource_name.as_str() == broker.node_id.to_string()
                        || r.resource_name.is_empty() =>
                {
                    let configs = [
                        (
                            "auto.create.topics.enable",
                            broker.config.broker.auto_create_topics.to_string(),
                        ),
                        (
                            "num.partitions",
                            broker.config.broker.default_partitions.to_string(),
                        ),
                    ]
                    .into_iter()
                    .filter(|(k, _)| wanted(k))
                    .map(|(k, v)| {
                        DescribeConfigsResourceResult::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                            .with_read_only(true)
                            .with_config_source(SOURCE_DEFAULT)
                    })
                    .collect();
                    result.with_configs(configs)
                }
                _ => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(s("only topic and broker configs can be described"))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

pub fn incremental_alter(
    broker: &Broker,
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let access = Access::new(broker, ctx);
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let outcome = (|| -> Result<(), (ResponseError, String)> {
                if r.resource_type != RESOURCE_TOPIC {
                    return Err((
                        ResponseError::InvalidRequest,
                        "only topic configs can be altered".into(),
                    ));
                }
                let name = r.resource_name.as_str();
                // The audit topic's retention and configs are the broker's: no client changes
                // them, validate_only included (refused by `access` for everyone).
                let not_authorized = || {
                    (
                        ResponseError::TopicAuthorizationFailed,
                        format!("not authorized to alter the configs of topic `{name}`"),
                    )
                };
                if !access.topic(Action::AlterConfigs, name) {
                    return Err(not_authorized());
                }
                let topic = broker.logs.topic(name).ok_or((
                    ResponseError::UnknownTopicOrPartition,
                    format!("unknown topic `{name}`"),
                ))?;
                let mut config = topic.config();
                for c in &r.configs {
                    apply(
                        &mut config,
                        &broker.topic_defaults,
                        c.config_operation,
                        &c.name,
                        c.value.as_deref(),
                    )?;
                }
                // Retagging moves a topic between policies: the principal must also be allowed
                // to alter it as it will be tagged, so nobody tags a topic out of a forbid or
                // into another team's permits.
                let new_tags = config.tags();
                if *new_tags != *topic.tags()
                    && !access.topic_tagged(Action::AlterConfigs, name, &new_tags)
                {
                    return Err(not_authorized());
                }
                if req.validate_only {
                    return Ok(());
                }
                broker
                    .logs
                    .alter_topic_config(name, config)
                    .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
                tracing::info!(topic = name, "altered topic config");
                let changes: Vec<(String, Option<String>)> = r
                    .configs
                    .iter()
                    .map(|c| {
                        let value = (c.config_operation == OP_SET)
                            .then(|| c.value.as_deref().unwrap_or_default().to_string());
                        (c.name.to_string(), value)
                    })
                    .collect();
                broker
                    .audit
                    .record(crate::audit::Event::topic_config_changed(
                        &crate::audit::Origin::of_request(ctx),
                        name,
                        &changes,
                    ));
                Ok(())
            })();
            match outcome {
                Ok(()) => response,
                Err((code, message)) => response
                    .with_error_code(code.code())
                    .with_error_message(Some(s(message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn apply(
    config: &mut TopicConfig,
    defaults: &TopicConfig,
    op: i8,
    key: &str,
    value: Option<&str>,
) -> Result<(), (ResponseError, String)> {
    let invalid = |e: crate::storage::StorageError| (ResponseError::InvalidConfig, e.to_string());
    match op {
        OP_SET => config.set(key, value.unwrap_or_default()).map_err(invalid),
        OP_DELETE => match defaults.entries().into_iter().find(|(k, _)| k == key) {
            Some((_, default)) => config.set(key, &default).map_err(invalid),
            None => {
                config.extra.remove(key);
                Ok(())
            }
        },
        other => Err((
            ResponseError::InvalidRequest,
            format!("config operation {other} on `{key}` is not supported (only SET and DELETE)"),
        )),
    }
}
