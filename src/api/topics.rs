//! CreateTopics, DeleteTopics, CreatePartitions, and topic auto-creation.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};

use super::access::Access;
use super::errors::storage_error;
use super::RequestContext;
use crate::authz::Action;
use crate::broker::Broker;
use crate::storage::{LogManager, StorageError, Topic, TopicConfig};

/// Runs a topic change on the blocking pool: creating or deleting thousands of partitions
/// touches tens of thousands of files, and the connection's runtime must keep serving other
/// clients meanwhile.
async fn off_runtime<T: Send + 'static>(
    broker: &Broker,
    work: impl FnOnce(&LogManager) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    let logs = Arc::clone(&broker.logs);
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

/// Creates a topic with the broker defaults on first use, when the config allows it and the
/// principal may create it (Create on the cluster or on the topic, as Kafka asks); otherwise
/// `TOPIC_AUTHORIZATION_FAILED`, as Kafka answers an unauthorized auto-creation.
pub fn auto_create(
    broker: &Broker,
    access: &Access<'_>,
    name: &str,
) -> Result<Arc<Topic>, ResponseError> {
    if !broker.config.broker.auto_create_topics {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    if !may_create(access, name, &broker.topic_defaults.tags()) {
        return Err(ResponseError::TopicAuthorizationFailed);
    }
    let partitions = broker.config.broker.default_partitions;
    match broker
        .logs
        .create_topic(name, partitions, broker.topic_defaults.clone())
    {
        Ok(t) => {
            tracing::info!(topic = name, partitions, "auto-created topic");
            broker.audit.record(
                crate::audit::Event::topic_created(
                    &crate::audit::Origin::of_request(access.context()),
                    name,
                    partitions,
                )
                .reason("auto-created on first use"),
            );
            Ok(t)
        }
        // Another request created it between our lookup and create.
        Err(StorageError::TopicExists(_)) => broker
            .logs
            .topic(name)
            .ok_or(ResponseError::UnknownTopicOrPartition),
        Err(StorageError::InvalidConfig(_)) => Err(ResponseError::InvalidTopicException),
        Err(e) => Err(storage_error(&e)),
    }
}

/// Create on the cluster, or on the topic as it will be tagged.
fn may_create(access: &Access<'_>, name: &str, tags: &[String]) -> bool {
    access.cluster(Action::Create) || access.topic_tagged(Action::Create, name, tags)
}

fn denied(action: &str, name: &str) -> Refusal {
    (
        ResponseError::TopicAuthorizationFailed,
        format!("not authorized to {action} topic `{name}`"),
    )
}

use super::str_bytes;

/// A refusal: the Kafka error and a message for the client.
type Refusal = (ResponseError, String);

/// What a successful (not validate-only) creation produced.
struct Created {
    topic: Arc<Topic>,
    config: TopicConfig,
    partitions: i32,
}

pub async fn create(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let v = ctx.api_version;
    let access = Access::new(broker, ctx);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        results.push({
            let mut result = CreatableTopicResult::default().with_name(t.name.clone());
            match create_one(broker, &access, &t, req.validate_only).await {
                Ok(None) => {}
                Ok(Some(created)) => {
                    broker.audit.record(crate::audit::Event::topic_created(
                        &crate::audit::Origin::of_request(ctx),
                        created.topic.name(),
                        created.partitions,
                    ));
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
            result
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// Validates and (unless `validate_only`) creates one topic.
async fn create_one(
    broker: &Broker,
    access: &Access<'_>,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
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
        -1 => broker.config.broker.default_partitions,
        n if n > 0 => n,
        n => {
            return Err((
                ResponseError::InvalidPartitions,
                format!("partition count {n} must be positive"),
            ))
        }
    };
    let mut config = broker.topic_defaults.clone();
    for c in &t.configs {
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        config
            .set(&c.name, &value)
            .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    }
    // Decided on the tags the topic will carry, so a policy can let a team create only
    // topics tagged for it.
    if !may_create(access, &name, &config.tags()) {
        return Err(denied("create", &name));
    }
    if validate_only {
        if broker.logs.topic(&name).is_some() {
            return Err((
                ResponseError::TopicAlreadyExists,
                format!("topic `{name}` already exists"),
            ));
        }
        broker
            .logs
            .check_partition_limit(usize::try_from(partitions).unwrap_or(usize::MAX))
            .map_err(|e| (create_error(&e), e.to_string()))?;
        return Ok(None);
    }
    let topic = {
        let (name, config) = (name.clone(), config.clone());
        off_runtime(broker, move |logs| {
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

pub async fn delete(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let v = ctx.api_version;
    let access = Access::new(broker, ctx);
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
        responses.push({
            let topic = match &name {
                Some(n) => broker.logs.topic(n),
                None => broker.logs.topic_by_id(id),
            };
            let mut result = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(str_bytes(n))));
            let allowed = match (&topic, &name) {
                (Some(t), _) => access.topic(Action::Delete, t.name()),
                (None, Some(n)) => access.topic(Action::Delete, n),
                (None, None) => true,
            };
            let outcome = match topic {
                // Denied before existence is revealed.
                _ if !allowed => Err(denied("delete", name.as_deref().unwrap_or_default())),
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
                    off_runtime(broker, move |logs| logs.delete_topic(&deleting))
                        .await
                        .map(|()| name)
                        .map_err(|e| (storage_error(&e), e.to_string()))
                }
            };
            match outcome {
                Ok(deleted) => {
                    broker.groups.topic_deleted(&deleted);
                    tracing::info!(topic = %deleted, "deleted topic");
                    broker.audit.record(crate::audit::Event::topic_deleted(
                        &crate::audit::Origin::of_request(ctx),
                        &deleted,
                    ));
                }
                Err((code, message)) => {
                    result.error_code = code.code();
                    if v >= 5 {
                        result.error_message = Some(str_bytes(message));
                    }
                }
            }
            result
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let access = Access::new(broker, ctx);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        results.push({
            let name = t.name.0.to_string();
            let outcome = match broker.logs.topic(&name) {
                _ if !access.topic(Action::Alter, &name) => Err(denied("alter", &name)),
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
                Some(topic) if req.validate_only => broker
                    .logs
                    .check_partition_limit(count(t.count.saturating_sub(topic.partition_count())))
                    .map_err(|e| (storage_error(&e), e.to_string())),
                Some(_) => {
                    let (name, total) = (name.clone(), t.count);
                    off_runtime(broker, move |logs| logs.create_partitions(&name, total))
                        .await
                        .map_err(|e| (storage_error(&e), e.to_string()))
                }
            };
            let mut result = CreatePartitionsTopicResult::default().with_name(t.name);
            if let Err((code, message)) = outcome {
                result.error_code = code.code();
                result.error_message = Some(str_bytes(message));
            }
            result
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

fn count(partitions: i32) -> usize {
    usize::try_from(partitions).unwrap_or(0)
}
