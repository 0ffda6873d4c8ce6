//! DeleteRecords: advance a partition's log start offset.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::access::Access;
use super::errors::storage_code;
use super::RequestContext;
use crate::authz::Action;
use crate::broker::Broker;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let access = Access::new(broker, ctx);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            // The audit topic is never trimmed by a client, super users included (`access`).
            let allowed = access.topic(Action::Delete, &t.name.0);
            let topic = allowed.then(|| broker.logs.topic(&t.name.0)).flatten();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                    if !allowed {
                        return r.with_error_code(ResponseError::TopicAuthorizationFailed.code()).with_low_watermark(-1);
                    }
                    let Some(partition) = topic.as_ref().and_then(|topic| topic.partition(p.partition_index)) else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code()).with_low_watermark(-1);
                    };
                    // -1 means "up to the high watermark".
                    let target = if p.offset == -1 { partition.high_watermark() } else { p.offset };
                    match partition.delete_records_before(target) {
                        Ok(low) => {
                            tracing::info!(topic = %t.name.0, partition = p.partition_index, low_watermark = low, "deleted records");
                            r.with_low_watermark(low)
                        }
                        Err(e) => r.with_error_code(storage_code(&e)).with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
