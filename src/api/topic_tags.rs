//! The fronts' side of topic tags (`palisade.tags`): taken out of CreateTopics and
//! IncrementalAlterConfigs before they reach the backend, written to the broker's
//! [`TagStore`](crate::topic_tags::TagStore) once the backend has done its part, and shown by
//! DescribeConfigs beside the backend's configs. No backend ever sees the key: an upstream
//! Kafka cluster refuses it, and tags decide authorization, so they stay with the layer that
//! enforces it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, RequestContext};
use crate::backend;
use crate::broker::Broker;
use crate::topic_tags::{parse_tags, value_of, TagError, TopicTags, TAGS_CONFIG};

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// How DescribeConfigs marks a config set on the topic itself.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;

/// A refusal: the Kafka error and a message for the client.
pub type Refusal = (ResponseError, String);

fn invalid(e: &TagError) -> Refusal {
    (ResponseError::InvalidConfig, e.to_string())
}

/// The tags a topic asks to be created with (unparsed, for authorization): its last
/// `palisade.tags` config; none without one.
pub fn requested_at_creation(t: &CreatableTopic) -> Vec<String> {
    t.configs
        .iter()
        .rev()
        .find(|c| c.name.as_str() == TAGS_CONFIG)
        .map(|c| parse_tags(c.value.as_deref().unwrap_or_default()))
        .unwrap_or_default()
}

/// Takes every `palisade.tags` config out of a topic to create; the last one is the tags it
/// gets (checked against the bounds every store keeps).
pub fn take_from_creation(t: &mut CreatableTopic) -> Result<TopicTags, Refusal> {
    let mut value = None;
    t.configs.retain(|c| {
        let is_tags = c.name.as_str() == TAGS_CONFIG;
        if is_tags {
            value = Some(c.value.as_deref().unwrap_or_default().to_string());
        }
        !is_tags
    });
    match value {
        Some(value) => TopicTags::parse(&value).map_err(|e| invalid(&e)),
        None => Ok(TopicTags::none()),
    }
}

/// Gives a topic the backend just created the tags it was created with (and no stale ones
/// from an earlier topic of the same name). On failure the topic exists with other tags than
/// asked: the client is told so, and the error logged.
pub fn settle_created(broker: &Broker, name: &str, tags: &TopicTags) -> Result<(), Refusal> {
    if *broker.topic_tags.get(name) == *tags.as_slice() {
        return Ok(());
    }
    broker.topic_tags.set(name, tags).map_err(|e| {
        tracing::error!(
            topic = name,
            "a created topic's tags could not be stored: {e}"
        );
        (
            ResponseError::KafkaStorageError,
            format!(
                "topic `{name}` was created, but its tags could not be stored ({e}); set them \
                 with IncrementalAlterConfigs"
            ),
        )
    })
}

/// Lists a created topic's tags among the configs its result shows (v5+).
pub fn show_created(result: &mut CreatableTopicResult, tags: &TopicTags) {
    if let (Some(configs), false) = (result.configs.as_mut(), tags.as_slice().is_empty()) {
        configs.push(
            CreatableTopicConfigs::default()
                .with_name(str_bytes(TAGS_CONFIG))
                .with_value(Some(str_bytes(tags.value())))
                .with_config_source(SOURCE_DYNAMIC_TOPIC),
        );
    }
}

/// The tags `r`'s changes leave the topic with, when they touch `palisade.tags` (unparsed,
/// for authorization; the last change wins).
pub fn requested_by_alter(r: &AlterConfigsResource) -> Option<Vec<String>> {
    r.configs
        .iter()
        .filter(|c| c.name.as_str() == TAGS_CONFIG)
        .fold(None, |_, c| match c.config_operation {
            OP_SET => Some(parse_tags(c.value.as_deref().unwrap_or_default())),
            OP_DELETE => Some(Vec::new()),
            _ => None,
        })
}

/// Takes every `palisade.tags` change out of a resource; the tags it leaves the topic with
/// (the last change wins), or `None` when it has none. Only SET and DELETE apply to tags.
pub fn take_from_alter(r: &mut AlterConfigsResource) -> Result<Option<TopicTags>, Refusal> {
    let (changes, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut r.configs)
        .into_iter()
        .partition(|c| c.name.as_str() == TAGS_CONFIG);
    r.configs = rest;
    let mut tags = None;
    for c in changes {
        tags = Some(match c.config_operation {
            OP_SET => {
                TopicTags::parse(c.value.as_deref().unwrap_or_default()).map_err(|e| invalid(&e))?
            }
            OP_DELETE => TopicTags::none(),
            other => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!(
                        "config operation {other} on `{TAGS_CONFIG}` is not supported (only SET \
                         and DELETE)"
                    ),
                ))
            }
        });
    }
    Ok(tags)
}

/// Retags a topic whose other changes (if any) the backend applied.
pub fn retag(broker: &Broker, name: &str, tags: &TopicTags) -> Result<(), Refusal> {
    broker.topic_tags.set(name, tags).map_err(|e| match e {
        TagError::UnknownTopic(_) => (ResponseError::UnknownTopicOrPartition, e.to_string()),
        e if e.is_invalid() => invalid(&e),
        e => {
            tracing::error!(topic = name, "retagging failed: {e}");
            (ResponseError::KafkaStorageError, e.to_string())
        }
    })
}

/// Whether each of `names` is a topic the backend knows (asked as Metadata): a resource that
/// only retags never reaches the backend as a config change, but must still name a topic.
pub async fn known_topics(
    broker: &Broker,
    ctx: &RequestContext,
    names: &[StrBytes],
) -> Result<Vec<bool>, backend::BackendError> {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(n.clone()))))
                .collect(),
        ));
    // The broker's own request, at a version every backend serves.
    let call = backend::Call {
        api_version: 12,
        ..ctx.call()
    };
    let response = backend::metadata(&*broker.backend, call, request).await?;
    Ok(names
        .iter()
        .map(|n| {
            response
                .topics
                .iter()
                .any(|t| t.error_code == 0 && t.name.as_ref().is_some_and(|t| t.0 == *n))
        })
        .collect())
}

/// Adds a described topic's tags to the backend's configs, when they were asked for (all
/// configs, or `palisade.tags` by name): its `palisade.tags` as set on the topic, placed
/// among the others by name. Whatever the backend said about the key is replaced.
pub fn describe(broker: &Broker, result: &mut DescribeConfigsResult, keys: Option<&[StrBytes]>) {
    if result.error_code != 0 {
        return;
    }
    result.configs.retain(|c| c.name.as_str() != TAGS_CONFIG);
    if keys.is_some_and(|keys| !keys.iter().any(|k| k.as_str() == TAGS_CONFIG)) {
        return;
    }
    let tags = broker.topic_tags.get(result.resource_name.as_str());
    if tags.is_empty() {
        return;
    }
    let at = result
        .configs
        .iter()
        .position(|c| c.name.as_str() > TAGS_CONFIG)
        .unwrap_or(result.configs.len());
    result.configs.insert(
        at,
        DescribeConfigsResourceResult::default()
            .with_name(str_bytes(TAGS_CONFIG))
            .with_value(Some(str_bytes(value_of(&tags))))
            .with_config_source(SOURCE_DYNAMIC_TOPIC),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;

    fn creatable(configs: &[(&str, &str)]) -> CreatableTopic {
        CreatableTopic::default().with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(str_bytes(*k))
                        .with_value(Some(str_bytes(*v)))
                })
                .collect(),
        )
    }

    fn alterable(changes: &[(&str, i8, &str)]) -> AlterConfigsResource {
        AlterConfigsResource::default().with_configs(
            changes
                .iter()
                .map(|(k, op, v)| {
                    AlterableConfig::default()
                        .with_name(str_bytes(*k))
                        .with_config_operation(*op)
                        .with_value(Some(str_bytes(*v)))
                })
                .collect(),
        )
    }

    #[test]
    fn creation_tags_leave_the_request_and_the_last_wins() {
        let mut t = creatable(&[
            (TAGS_CONFIG, "a"),
            ("retention.ms", "1000"),
            (TAGS_CONFIG, "b, c"),
        ]);
        assert_eq!(requested_at_creation(&t), ["b", "c"]);
        assert_eq!(take_from_creation(&mut t).unwrap().as_slice(), ["b", "c"]);
        assert_eq!(t.configs.len(), 1);
        assert_eq!(t.configs[0].name.as_str(), "retention.ms");

        let mut untagged = creatable(&[("retention.ms", "1000")]);
        assert_eq!(
            take_from_creation(&mut untagged).unwrap(),
            TopicTags::none()
        );

        let mut bad = creatable(&[(TAGS_CONFIG, &"x,".repeat(100))]);
        let (code, _) = take_from_creation(&mut bad).unwrap_err();
        assert_eq!(code, ResponseError::InvalidConfig);
        assert!(bad.configs.is_empty());
    }

    #[test]
    fn alter_tags_leave_the_resource_and_only_set_and_delete_apply() {
        let mut r = alterable(&[
            ("retention.ms", OP_SET, "1000"),
            (TAGS_CONFIG, OP_SET, "a"),
            (TAGS_CONFIG, OP_DELETE, ""),
        ]);
        assert_eq!(requested_by_alter(&r), Some(vec![]));
        assert_eq!(take_from_alter(&mut r).unwrap(), Some(TopicTags::none()));
        assert_eq!(r.configs.len(), 1);

        let mut untouched = alterable(&[("retention.ms", OP_SET, "1000")]);
        assert_eq!(take_from_alter(&mut untouched).unwrap(), None);

        let mut append = alterable(&[(TAGS_CONFIG, 2, "a")]);
        let (code, message) = take_from_alter(&mut append).unwrap_err();
        assert_eq!(code, ResponseError::InvalidRequest);
        assert!(message.contains("only SET and DELETE"), "{message}");
    }
}
