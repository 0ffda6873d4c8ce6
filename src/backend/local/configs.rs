//! DescribeConfigs and IncrementalAlterConfigs on the local logs: topic configs, and a
//! read-only view of the broker's. Topic tags (`palisade.tags`) are not among them: the
//! layers in front keep them (`crate::topic_tags`), and this backend refuses the key as an
//! upstream Kafka cluster would.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};

use super::Local;
use crate::api::str_bytes as s;
use crate::storage::{TopicConfig, TAGS_CONFIG};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub(super) fn describe(local: &Local, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let defaults: Vec<(String, String)> = local.topic_defaults.entries();
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
                RESOURCE_TOPIC => match local.logs.topic(&r.resource_name) {
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
                            .filter(|(k, _)| k != TAGS_CONFIG && wanted(k))
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
                    if r.resource_name.as_str() == local.node_id.to_string()
                        || r.resource_name.is_empty() =>
                {
                    let configs = [
                        (
                            "auto.create.topics.enable",
                            local.auto_create_topics.to_string(),
                        ),
                        ("num.partitions", local.default_partitions.to_string()),
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

/// Applies each resource's changes (already authorized in front, retagging included).
pub(super) fn incremental_alter(
    local: &Local,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
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
                let topic = local.logs.topic(name).ok_or((
                    ResponseError::UnknownTopicOrPartition,
                    format!("unknown topic `{name}`"),
                ))?;
                let apply_all = |config: &mut TopicConfig| {
                    r.configs.iter().try_for_each(|c| {
                        apply(
                            config,
                            &local.topic_defaults,
                            c.config_operation,
                            &c.name,
                            c.value.as_deref(),
                        )
                    })
                };
                if req.validate_only {
                    return apply_all(&mut topic.config());
                }
                // Applied to the config as it is when saved, so a concurrent change of
                // another key (a retag in front) is kept.
                local
                    .logs
                    .update_topic_config(name, apply_all)
                    .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))??;
                tracing::info!(topic = name, "altered topic config");
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
    refuse_tags(key)?;
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

/// Refuses `palisade.tags` as the unknown topic config it is to a backend: tags are kept in
/// front of it, and one reaching it means a layer failed to take it out.
pub(super) fn refuse_tags(key: &str) -> Result<(), (ResponseError, String)> {
    if key == TAGS_CONFIG {
        return Err((
            ResponseError::InvalidConfig,
            format!("unknown topic config `{key}` (topic tags are kept in front of the backend)"),
        ));
    }
    Ok(())
}
