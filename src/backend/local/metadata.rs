//! Metadata from the local logs: this node is every partition's leader and the controller.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Local;
use crate::backend::Call;
use crate::storage::Topic;

/// Every topic, or those asked for by name or id; unknown ones answer
/// UNKNOWN_TOPIC_OR_PARTITION (by name) or UNKNOWN_TOPIC_ID (by id). Never creates a topic:
/// auto-creation is decided in front of the backend.
pub(super) fn serve(local: &Local, call: Call<'_>, req: MetadataRequest) -> MetadataResponse {
    // v0: an empty list means every topic; v1+: null means every topic, [] none.
    let all = match &req.topics {
        None => true,
        Some(t) => call.api_version == 0 && t.is_empty(),
    };
    let topics = if all {
        local
            .logs
            .topics()
            .iter()
            .map(|t| describe_topic(local, t))
            .collect()
    } else {
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|requested| match &requested.name {
                Some(name) => match local.logs.topic(&name.0) {
                    Some(t) => describe_topic(local, &t),
                    None => MetadataResponseTopic::default()
                        .with_name(Some(name.clone()))
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                },
                None => match local.logs.topic_by_id(requested.topic_id) {
                    Some(t) => describe_topic(local, &t),
                    None => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(requested.topic_id),
                },
            })
            .collect()
    };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(local.node_id))
            .with_host(StrBytes::from_string(call.advertised_host.to_string()))
            .with_port(call.advertised_port)])
        .with_cluster_id(Some(StrBytes::from_string(local.cluster_id.clone())))
        .with_controller_id(BrokerId(local.node_id))
        .with_topics(topics)
}

fn describe_topic(local: &Local, topic: &Arc<Topic>) -> MetadataResponseTopic {
    let node = BrokerId(local.node_id);
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
