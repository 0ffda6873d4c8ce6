//! Metadata: brokers, topics and partitions, with v0's "empty = all" semantics.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::access::Access;
use super::{topics, RequestContext};
use crate::authz::Action;
use crate::broker::Broker;
use crate::storage::Topic;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: MetadataRequest,
) -> MetadataResponse {
    let v = ctx.api_version;
    // v0: an empty list means every topic; v1+: null means every topic, [] none.
    let all = match &req.topics {
        None => true,
        Some(t) => v == 0 && t.is_empty(),
    };
    // v0-v3 have no flag and always auto-create (when the broker allows it).
    let may_create = v < 4 || req.allow_auto_topic_creation;
    let access = Access::new(broker, ctx);
    // One request creates at most this many topics: a list of thousands of unknown names
    // must not turn into thousands of topics.
    let mut creations_left = broker.config.broker.max_auto_create_per_request;
    // Only topics the principal may Describe are listed; asking for one by name it may not
    // describe answers TOPIC_AUTHORIZATION_FAILED whether or not it exists, and by id the
    // same UNKNOWN_TOPIC_ID as for an id that does not exist.
    let topics = if all {
        broker
            .logs
            .topics()
            .iter()
            .filter(|t| access.topic(Action::Describe, t.name()))
            .map(|t| describe_topic(broker, t))
            .collect()
    } else {
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|requested| {
                let found = match &requested.name {
                    Some(name) => Some(name.0.to_string()),
                    None => broker
                        .logs
                        .topic_by_id(requested.topic_id)
                        .map(|t| t.name().to_string())
                        .filter(|name| access.topic(Action::Describe, name)),
                };
                match found {
                    Some(name) if !access.topic(Action::Describe, &name) => {
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name))))
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    }
                    Some(name) => {
                        lookup_or_create(broker, &access, &name, may_create, &mut creations_left)
                    }
                    None => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(requested.topic_id),
                }
            })
            .collect()
    };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.node_id))
            .with_host(StrBytes::from_string(ctx.advertised_host.clone()))
            .with_port(ctx.advertised_port)])
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.node_id))
        .with_topics(topics)
}

fn lookup_or_create(
    broker: &Broker,
    access: &Access<'_>,
    name: &str,
    may_create: bool,
    creations_left: &mut usize,
) -> MetadataResponseTopic {
    let topic = match broker.logs.topic(name) {
        Some(t) => Ok(t),
        None if may_create && *creations_left > 0 => {
            *creations_left -= 1;
            topics::auto_create(broker, access, name)
        }
        None => Err(ResponseError::UnknownTopicOrPartition),
    };
    match topic {
        Ok(t) => describe_topic(broker, &t),
        Err(e) => MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
            .with_error_code(e.code()),
    }
}

fn describe_topic(broker: &Broker, topic: &Arc<Topic>) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id);
    let partitions = (0..topic.partition_count())
        .map(|i| {
            MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            topic.name().to_string(),
        ))))
        .with_topic_id(topic.id())
        .with_is_internal(crate::audit::is_audit_topic(topic.name()))
        .with_partitions(partitions)
}
