//! CreateTopics, DeleteTopics and CreatePartitions on the local logs.
//!
//! Topic changes run on the blocking pool: creating or deleting thousands of partitions touches
//! tens of thousands of files, and the runtime must keep serving other clients meanwhile.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};

use super::Local;
use crate::api::errors::storage_error;
use crate::api::str_bytes;
use crate::backend::Call;
use crate::storage::{LogManager, StorageError, Topic, TopicConfig};

/// A refusal: the Kafka error and a message for the client.
type Refusal = (ResponseError, String);

async fn off_runtime<T: Send + 'static>(
    local: &Local,
    work: impl FnOnce(&LogManager) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    let logs = Arc::clone(&local.logs);
    let dir = logs.data_dir().to_path_buf();
    tokio::task::spawn_blocking(move || work(&logs))
        .await
        .unwrap_or_else(|err| {
            Err(StorageError::Io {
                path: dir,
                source: std::io::Error::other(format!("topic change did not complete: {err}")),
            })
        })
}

/// What a successful (not validate-only) creation produced.
struct Created {
    topic: Arc<Topic>,
    config: TopicConfig,
    partitions: i32,
}

pub(super) async fn create(
    local: &Local,
    call: Call<'_>,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let v = call.api_version;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut result = CreatableTopicResult::default().with_name(t.name.clone());
        match create_one(local, &t, req.validate_only).await {
            Ok(None) => {}
            Ok(Some(created)) => {
                if v >= 5 {
                    result.num_partitions = created.partitions;
                    result.replication_factor = 1;
                    result.configs = Some(
                        created
                            .config
                            .entries()
                            .into_iter()
                            .map(|(k, val)| {
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(k))
                                    .with_value(Some(str_bytes(val)))
                                    .with_config_source(5)
                            })
                            .collect(),
                    );
                }
                if v >= 7 {
                    result.topic_id = created.topic.id();
                }
            }
            Err((code, message)) => {
                result.error_code = code.code();
                if v >= 1 {
                    result.error_message = Some(str_bytes(message));
                }
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// Validates and (unless `validate_only`) creates one topic.
async fn create_one(
    local: &Local,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<Option<Created>, Refusal> {
    let name = t.name.0.to_string();
    if t.replication_factor > 1 {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {} is larger than the 1 broker",
                t.replication_factor
            ),
        ));
    }
    if !t.assignments.is_empty() {
        return Err((
            ResponseError::InvalidRequest,
            "manual replica assignment is not supported".into(),
        ));
    }
    let partitions = match t.num_partitions {
        -1 => local.default_partitions,
        n if n > 0 => n,
        n => {
            return Err((
                ResponseError::InvalidPartitions,
                format!("partition count {n} must be positive"),
            ))
        }
    };
    let mut config = local.topic_defaults.clone();
    for c in &t.configs {
        super::configs::refuse_tags(&c.name)?;
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        config
            .set(&c.name, &value)
            .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    }
    if validate_only {
        if local.logs.topic(&name).is_some() {
            return Err((
                ResponseError::TopicAlreadyExists,
                format!("topic `{name}` already exists"),
            ));
        }
        local
            .logs
            .check_partition_limit(usize::try_from(partitions).unwrap_or(usize::MAX))
            .map_err(|e| (create_error(&e), e.to_string()))?;
        return Ok(None);
    }
    let topic = {
        let (name, config) = (name.clone(), config.clone());
        off_runtime(local, move |logs| {
            logs.create_topic(&name, partitions, config)
        })
        .await
        .map_err(|e| (create_error(&e), e.to_string()))?
    };
    tracing::info!(topic = %name, partitions, "created topic");
    Ok(Some(Created {
        topic,
        config,
        partitions,
    }))
}

fn create_error(e: &StorageError) -> ResponseError {
    match e {
        StorageError::InvalidConfig(_) => ResponseError::InvalidTopicException,
        other => storage_error(other),
    }
}

pub(super) async fn delete(
    local: &Local,
    call: Call<'_>,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let v = call.api_version;
    // v0-v5 name topics in `topic_names`; v6+ in `topics` by name or id.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if v >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let topic = match &name {
            Some(n) => local.logs.topic(n),
            None => local.logs.topic_by_id(id),
        };
        let mut result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(str_bytes(n))));
        let outcome = match topic {
            None if name.is_none() => Err((
                ResponseError::UnknownTopicId,
                "unknown topic id".to_string(),
            )),
            None => Err((
                ResponseError::UnknownTopicOrPartition,
                "unknown topic".to_string(),
            )),
            Some(t) => {
                if v >= 6 {
                    result.topic_id = t.id();
                    result.name = Some(TopicName(str_bytes(t.name())));
                }
                let name = t.name().to_string();
                let deleting = name.clone();
                off_runtime(local, move |logs| logs.delete_topic(&deleting))
                    .await
                    .map(|()| name)
                    .map_err(|e| (storage_error(&e), e.to_string()))
            }
        };
        match outcome {
            Ok(deleted) => {
                local.groups.topic_deleted(&deleted);
                tracing::info!(topic = %deleted, "deleted topic");
            }
            Err((code, message)) => {
                result.error_code = code.code();
                if v >= 5 {
                    result.error_message = Some(str_bytes(message));
                }
            }
        }
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub(super) async fn create_partitions(
    local: &Local,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let outcome = match local.logs.topic(&name) {
            None => Err((
                ResponseError::UnknownTopicOrPartition,
                format!("unknown topic `{name}`"),
            )),
            Some(_) if t.assignments.is_some() => Err((
                ResponseError::InvalidRequest,
                "manual replica assignment is not supported".into(),
            )),
            Some(topic) if t.count <= topic.partition_count() => Err((
                ResponseError::InvalidPartitions,
                format!(
                    "topic `{name}` has {} partitions; the new count must be larger, not {}",
                    topic.partition_count(),
                    t.count
                ),
            )),
            Some(topic) if req.validate_only => local
                .logs
                .check_partition_limit(count(t.count.saturating_sub(topic.partition_count())))
                .map_err(|e| (storage_error(&e), e.to_string())),
            Some(_) => {
                let (name, total) = (name.clone(), t.count);
                off_runtime(local, move |logs| logs.create_partitions(&name, total))
                    .await
                    .map_err(|e| (storage_error(&e), e.to_string()))
            }
        };
        let mut result = CreatePartitionsTopicResult::default().with_name(t.name);
        if let Err((code, message)) = outcome {
            result.error_code = code.code();
            result.error_message = Some(str_bytes(message));
        }
        results.push(result);
    }
    CreatePartitionsResponse::default().with_results(results)
}

fn count(partitions: i32) -> usize {
    usize::try_from(partitions).unwrap_or(0)
}
