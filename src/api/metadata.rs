//! Metadata, in front of the backend: only topics the principal may Describe are listed.
//!
//! - Asking for a topic by name that the principal may not describe answers
//!   TOPIC_AUTHORIZATION_FAILED whether or not it exists, and the name never reaches the
//!   backend.
//! - By id, a topic it may not describe answers the same UNKNOWN_TOPIC_ID as an id that does
//!   not exist.
//! - All topics (v0: an empty list; v1+: null): the backend's list, filtered.
//! - Auto-creation is decided here, never by the backend: an unknown topic asked for by name,
//!   when the request allows creation (v0-v3 always do), is created through
//!   [`topics::auto_create`] (the broker's setting, then Create, as Kafka asks), at most
//!   `broker.max_auto_create_per_request` per request, and described again.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};

use super::access::Access;
use super::{topics, RequestContext};
use crate::authz::Action;
use crate::backend;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: MetadataRequest,
) -> MetadataResponse {
    let v = ctx.api_version;
    let all = match &req.topics {
        None => true,
        Some(t) => v == 0 && t.is_empty(),
    };
    // v0-v3 have no flag and always auto-create (when the broker allows it).
    let may_create = v < 4 || req.allow_auto_topic_creation;
    req.allow_auto_topic_creation = false;
    let access = Access::new(broker, ctx);
    let mut refused = Vec::new();
    if let Some(asked) = req.topics.as_mut().filter(|_| !all) {
        let (allowed, denied): (Vec<MetadataRequestTopic>, Vec<MetadataRequestTopic>) =
            std::mem::take(asked)
                .into_iter()
                .partition(|t| match &t.name {
                    Some(name) => access.topic(Action::Describe, &name.0),
                    // By id: decided once the backend has named it.
                    None => true,
                });
        *asked = allowed;
        refused = denied
            .into_iter()
            .map(|t| {
                MetadataResponseTopic::default()
                    .with_name(t.name)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            })
            .collect();
    }
    // Names decided above; a request whose names were all refused asks for nothing (which
    // v0 cannot say: its empty list means every topic).
    let named: Vec<TopicName> = req
        .topics
        .iter()
        .flatten()
        .filter_map(|t| t.name.clone())
        .collect();
    let nothing_asked = !all && req.topics.as_ref().is_some_and(|t| t.is_empty());
    let mut response = match backend::metadata(&*broker.backend, ctx.call(), req).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(principal = %ctx.principal, "metadata failed: {e}");
            if matches!(e, backend::BackendError::Refused(_)) {
                // Refused for good (no upstream identity): no topic may be reached. Clients
                // treat TOPIC_AUTHORIZATION_FAILED as final (librdkafka fails the messages at
                // once; CLUSTER_AUTHORIZATION_FAILED here would be retried until they time
                // out); the log line above says why.
                refused.extend(named.iter().map(|name| {
                    MetadataResponseTopic::default()
                        .with_name(Some(name.clone()))
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                }));
            }
            // Otherwise no topic is described without the backend's answer; the client retries.
            return MetadataResponse::default().with_topics(refused);
        }
    };
    if nothing_asked {
        response.topics.clear();
    }
    if !all && may_create {
        auto_create(broker, ctx, &access, &mut response).await;
    }
    response.topics = std::mem::take(&mut response.topics)
        .into_iter()
        .filter_map(|t| {
            let Some(name) = &t.name else {
                return Some(t);
            };
            if named.contains(name) || access.topic(Action::Describe, &name.0) {
                Some(t)
            } else if all {
                // Listed without being asked for: left out.
                None
            } else {
                // Asked by id: as if the id did not exist.
                Some(
                    MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(t.topic_id),
                )
            }
        })
        .collect();
    response.topics.extend(refused);
    response
}

/// Creates the unknown topics the request named, when allowed, and describes them again.
async fn auto_create(
    broker: &Broker,
    ctx: &RequestContext,
    access: &Access<'_>,
    response: &mut MetadataResponse,
) {
    // One request creates at most this many topics: a list of thousands of unknown names
    // must not turn into thousands of topics.
    let mut creations_left = broker.config.broker.max_auto_create_per_request;
    let mut created = Vec::new();
    for t in &mut response.topics {
        let Some(name) = t.name.clone() else {
            continue;
        };
        if t.error_code != ResponseError::UnknownTopicOrPartition.code() || creations_left == 0 {
            continue;
        }
        creations_left -= 1;
        match topics::auto_create(broker, access, &name.0).await {
            Ok(_) => created.push(name),
            Err(code) => t.error_code = code.code(),
        }
    }
    if created.is_empty() {
        return;
    }
    let again = MetadataRequest::default().with_topics(Some(
        created
            .iter()
            .map(|name| MetadataRequestTopic::default().with_name(Some(name.clone())))
            .collect(),
    ));
    let described = match backend::metadata(&*broker.backend, ctx.call(), again).await {
        Ok(described) => described.topics,
        Err(e) => {
            tracing::warn!(principal = %ctx.principal, "metadata of created topics failed: {e}");
            return;
        }
    };
    for fresh in described {
        if let Some(t) = response.topics.iter_mut().find(|t| t.name == fresh.name) {
            *t = fresh;
        }
    }
}
