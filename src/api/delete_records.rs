//! DeleteRecords, in front of the backend: Delete on each topic (the audit topic is never
//! trimmed by a client, super users included: `access`); a refused topic never reaches the
//! backend.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_request::DeleteRecordsTopic;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::backend;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let access = Access::new(broker, ctx);
    let (allowed, refused): (Vec<DeleteRecordsTopic>, Vec<DeleteRecordsTopic>) =
        std::mem::take(&mut req.topics)
            .into_iter()
            .partition(|t| access.topic(Action::Delete, &t.name.0));
    req.topics = allowed;
    let mut topics = if req.topics.is_empty() {
        Vec::new()
    } else {
        let asked = req.topics.clone();
        match backend::delete_records(&*broker.backend, ctx.call(), req).await {
            Ok(response) => response.topics,
            Err(e) => {
                tracing::warn!(principal = %ctx.principal, "delete records failed: {e}");
                failed(asked, e.code())
            }
        }
    };
    topics.extend(failed(refused, ResponseError::TopicAuthorizationFailed));
    DeleteRecordsResponse::default().with_topics(topics)
}

fn failed(topics: Vec<DeleteRecordsTopic>, code: ResponseError) -> Vec<DeleteRecordsTopicResult> {
    topics
        .into_iter()
        .map(|t| {
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_low_watermark(-1)
                                .with_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect()
}
