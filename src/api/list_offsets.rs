//! ListOffsets, in front of the backend: Describe on each topic; a topic the principal may not
//! describe answers TOPIC_AUTHORIZATION_FAILED for its partitions and never reaches the backend.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::ListOffsetsTopic;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::backend;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let access = Access::new(broker, ctx);
    let (allowed, refused): (Vec<ListOffsetsTopic>, Vec<ListOffsetsTopic>) =
        std::mem::take(&mut req.topics)
            .into_iter()
            .partition(|t| access.topic(Action::Describe, &t.name.0));
    req.topics = allowed;
    let mut topics = if req.topics.is_empty() {
        Vec::new()
    } else {
        let asked = req.topics.clone();
        match backend::list_offsets(&*broker.backend, ctx.call(), req).await {
            Ok(response) => response.topics,
            Err(e) => {
                tracing::warn!(principal = %ctx.principal, "list offsets failed: {e}");
                failed(asked, e.code())
            }
        }
    };
    topics.extend(failed(refused, ResponseError::TopicAuthorizationFailed));
    ListOffsetsResponse::default().with_topics(topics)
}

fn failed(topics: Vec<ListOffsetsTopic>, code: ResponseError) -> Vec<ListOffsetsTopicResponse> {
    topics
        .into_iter()
        .map(|t| {
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect()
}
