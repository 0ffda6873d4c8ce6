//! CreateTopics, DeleteTopics, CreatePartitions and topic auto-creation, in front of the
//! backend: Create (on the cluster, or on the topic as it will be tagged), Delete and Alter on
//! each topic, decided before existence is revealed; a refused topic never reaches the
//! backend. Every topic created or deleted is audited here. Topic tags are kept here too
//! ([`super::topic_tags`]): taken out of a creation before it is forwarded, stored once the
//! backend created the topic, forgotten when it deleted it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, MetadataRequest, TopicName,
};

use super::access::Access;
use super::topic_tags;
use super::{str_bytes, RequestContext};
use crate::audit::{Event, Origin};
use crate::authz::Action;
use crate::backend;
use crate::broker::Broker;
use crate::topic_tags::TopicTags;

/// Creates a topic with the broker defaults on first use, when the config allows it and the
/// principal may create it (Create on the cluster or on the topic, as Kafka asks); otherwise
/// `TOPIC_AUTHORIZATION_FAILED`, as Kafka answers an unauthorized auto-creation. A topic that
/// another request created meanwhile counts as created.
pub async fn auto_create(
    broker: &Broker,
    access: &Access<'_>,
    name: &str,
) -> Result<(), ResponseError> {
    if !broker.config.broker.auto_create_topics {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    // An auto-created topic has no tags.
    if !may_create(access, name, &[]) {
        return Err(ResponseError::TopicAuthorizationFailed);
    }
    let ctx = access.context();
    let partitions = broker.config.broker.default_partitions;
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(str_bytes(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)]);
    // The broker's own request, at a version every backend serves.
    let call = backend::Call {
        api_version: 5,
        ..ctx.call()
    };
    let response = backend::create_topics(&*broker.backend, call, request)
        .await
        .map_err(|e| {
            tracing::warn!(topic = name, "auto-creation failed: {e}");
            e.code()
        })?;
    let code = response
        .topics
        .first()
        .map_or(ResponseError::UnknownServerError.code(), |t| t.error_code);
    match ResponseError::try_from_code(code) {
        None => {
            topic_tags::settle_created(broker, name, &TopicTags::none()).map_err(|(e, _)| e)?;
            tracing::info!(topic = name, partitions, "auto-created topic");
            broker.audit.record(
                Event::topic_created(&Origin::of_request(ctx), name, partitions)
                    .reason("auto-created on first use"),
            );
            Ok(())
        }
        // Another request created it between the lookup and the creation.
        Some(ResponseError::TopicAlreadyExists) => Ok(()),
        Some(ResponseError::InvalidConfig) => Err(ResponseError::InvalidTopicException),
        Some(e) => Err(e),
    }
}

/// Create on the cluster, or on the topic as it will be tagged.
fn may_create(access: &Access<'_>, name: &str, tags: &[String]) -> bool {
    access.cluster(Action::Create) || access.topic_tagged(Action::Create, name, tags)
}

fn denied(action: &str, name: &str) -> String {
    format!("not authorized to {action} topic `{name}`")
}

pub async fn create(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let v = ctx.api_version;
    let access = Access::new(broker, ctx);
    // Decided on the tags the topic will carry, so a policy can let a team create only
    // topics tagged for it.
    let (allowed, refused): (Vec<CreatableTopic>, Vec<CreatableTopic>) =
        std::mem::take(&mut req.topics)
            .into_iter()
            .partition(|t| may_create(&access, &t.name.0, &topic_tags::requested_at_creation(t)));
    let refusal = |name: TopicName, (code, message): topic_tags::Refusal| {
        let result = CreatableTopicResult::default()
            .with_name(name)
            .with_error_code(code.code());
        if v >= 1 {
            result.with_error_message(Some(str_bytes(message)))
        } else {
            result
        }
    };
    let mut refused: Vec<CreatableTopicResult> = refused
        .into_iter()
        .map(|t| {
            let message = denied("create", &t.name.0);
            refusal(t.name, (ResponseError::TopicAuthorizationFailed, message))
        })
        .collect();
    // The tags leave the request here: the backend creates the topic without them.
    let mut forwarded = Vec::with_capacity(allowed.len());
    let mut tags: Vec<(TopicName, TopicTags)> = Vec::with_capacity(allowed.len());
    for mut t in allowed {
        match topic_tags::take_from_creation(&mut t) {
            Ok(asked) => {
                tags.push((t.name.clone(), asked));
                forwarded.push(t);
            }
            Err(invalid) => refused.push(refusal(t.name, invalid)),
        }
    }
    // Until their tags are stored, the topics being created are decided under those tags too.
    let creations = broker.topic_tags.creations();
    let _in_flight: Vec<_> = tags
        .iter()
        .filter(|(_, asked)| !asked.as_slice().is_empty())
        .map(|(name, asked)| creations.begin(&name.0, asked.as_slice()))
        .collect();
    let validate_only = req.validate_only;
    let asked: Vec<(TopicName, i32)> = forwarded
        .iter()
        .map(|t| (t.name.clone(), t.num_partitions))
        .collect();
    req.topics = forwarded;
    let mut response = if req.topics.is_empty() {
        CreateTopicsResponse::default()
    } else {
        match backend::create_topics(&*broker.backend, ctx.call(), req).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(principal = %ctx.principal, "create topics failed: {e}");
                let failed = asked.iter().map(|(name, _)| {
                    CreatableTopicResult::default()
                        .with_name(name.clone())
                        .with_error_code(e.code().code())
                });
                CreateTopicsResponse::default().with_topics(failed.collect())
            }
        }
    };
    if !validate_only {
        for created in response.topics.iter_mut().filter(|t| t.error_code == 0) {
            let none = TopicTags::none();
            let asked_tags = tags
                .iter()
                .find(|(name, _)| *name == created.name)
                .map_or(&none, |(_, t)| t);
            // The topic exists whatever happens to its tags: audited below either way.
            match topic_tags::settle_created(broker, &created.name.0, asked_tags) {
                Ok(()) => topic_tags::show_created(created, asked_tags),
                Err((code, message)) => {
                    created.error_code = code.code();
                    if v >= 1 {
                        created.error_message = Some(str_bytes(message));
                    }
                }
            }
            // v5+ answers the count; before, the request's (or the default) is what was made.
            let partitions = if v >= 5 {
                created.num_partitions
            } else {
                asked
                    .iter()
                    .find(|(name, _)| *name == created.name)
                    .map_or(-1, |(_, n)| *n)
            };
            let partitions = match partitions {
                -1 => broker.config.broker.default_partitions,
                n => n,
            };
            broker.audit.record(Event::topic_created(
                &Origin::of_request(ctx),
                &created.name.0,
                partitions,
            ));
        }
    }
    response.topics.extend(refused);
    response
}

pub async fn delete(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let v = ctx.api_version;
    let access = Access::new(broker, ctx);
    // v0-v5 name topics in `topic_names`; v6+ in `topics` by name or id. A topic named by id
    // is decided on its name, which only the backend knows; an id it does not know is left
    // to it (UNKNOWN_TOPIC_ID).
    let targets: Vec<DeleteTopicState> = if v >= 6 {
        std::mem::take(&mut req.topics)
    } else {
        std::mem::take(&mut req.topic_names)
            .into_iter()
            .map(|n| DeleteTopicState::default().with_name(Some(n)))
            .collect()
    };
    let names = resolve_ids(broker, ctx, &targets).await;
    let resolved: Vec<(uuid::Uuid, TopicName)> = targets
        .iter()
        .zip(&names)
        .filter_map(|(t, name)| Some((t.topic_id, name.clone()?)))
        .filter(|(id, _)| !id.is_nil())
        .collect();
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for (t, name) in targets.into_iter().zip(names) {
        match name {
            Some(name) if !access.topic(Action::Delete, &name.0) => {
                let result = DeletableTopicResult::default()
                    .with_name(Some(name.clone()))
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                refused.push(if v >= 5 {
                    result.with_error_message(Some(str_bytes(denied("delete", &name.0))))
                } else {
                    result
                });
            }
            _ => allowed.push(t),
        }
    }
    let asked: Vec<Option<TopicName>> = allowed.iter().map(|t| t.name.clone()).collect();
    if v >= 6 {
        req.topics = allowed;
    } else {
        req.topic_names = allowed.into_iter().filter_map(|t| t.name).collect();
    }
    let mut response = if asked.is_empty() {
        DeleteTopicsResponse::default()
    } else {
        match backend::delete_topics(&*broker.backend, ctx.call(), req).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(principal = %ctx.principal, "delete topics failed: {e}");
                let failed = asked.into_iter().map(|name| {
                    DeletableTopicResult::default()
                        .with_name(name)
                        .with_error_code(e.code().code())
                });
                DeleteTopicsResponse::default().with_responses(failed.collect())
            }
        }
    };
    for deleted in response.responses.iter().filter(|t| t.error_code == 0) {
        // A topic deleted by id may come back without its name: the one resolved above.
        let name = deleted.name.as_ref().or_else(|| {
            resolved
                .iter()
                .find(|(id, _)| *id == deleted.topic_id)
                .map(|(_, name)| name)
        });
        if let Some(name) = name {
            // Tags left behind would be inherited by a topic created later under this name.
            if let Err(e) = broker.topic_tags.remove(&name.0) {
                tracing::error!(topic = %name.0, "a deleted topic's tags could not be removed: {e}");
            }
            broker
                .audit
                .record(Event::topic_deleted(&Origin::of_request(ctx), &name.0));
        }
    }
    response.responses.extend(refused);
    response
}

/// The name of each target: its own, or the one the backend gives its id (`None`: unknown).
async fn resolve_ids(
    broker: &Broker,
    ctx: &RequestContext,
    targets: &[DeleteTopicState],
) -> Vec<Option<TopicName>> {
    let by_id: Vec<MetadataRequestTopic> = targets
        .iter()
        .filter(|t| t.name.is_none())
        .map(|t| MetadataRequestTopic::default().with_topic_id(t.topic_id))
        .collect();
    let mut known = Vec::new();
    if !by_id.is_empty() {
        let request = MetadataRequest::default().with_topics(Some(by_id));
        // Topic ids in Metadata exist from v10 on.
        let call = backend::Call {
            api_version: 12,
            ..ctx.call()
        };
        match backend::metadata(&*broker.backend, call, request).await {
            Ok(response) => {
                known = response
                    .topics
                    .into_iter()
                    .filter_map(|t| t.name.map(|name| (t.topic_id, name)))
                    .collect();
            }
            Err(e) => tracing::warn!("resolving topic ids failed: {e}"),
        }
    }
    targets
        .iter()
        .map(|t| match &t.name {
            Some(name) => Some(name.clone()),
            None => known
                .iter()
                .find(|(id, _)| *id == t.topic_id)
                .map(|(_, name)| name.clone()),
        })
        .collect()
}

pub async fn create_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let access = Access::new(broker, ctx);
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| access.topic(Action::Alter, &t.name.0));
    let refused = refused.into_iter().map(|t| {
        let message = denied("alter", &t.name.0);
        CreatePartitionsTopicResult::default()
            .with_name(t.name)
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(message)))
    });
    let asked: Vec<TopicName> = allowed.iter().map(|t| t.name.clone()).collect();
    req.topics = allowed;
    let mut response = if asked.is_empty() {
        CreatePartitionsResponse::default()
    } else {
        match backend::create_partitions(&*broker.backend, ctx.call(), req).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(principal = %ctx.principal, "create partitions failed: {e}");
                let failed = asked.into_iter().map(|name| {
                    CreatePartitionsTopicResult::default()
                        .with_name(name)
                        .with_error_code(e.code().code())
                });
                CreatePartitionsResponse::default().with_results(failed.collect())
            }
        }
    };
    response.results.extend(refused);
    response
}
