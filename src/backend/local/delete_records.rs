//! DeleteRecords on the local logs: advance a partition's log start offset.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::Local;
use crate::api::errors::storage_code;

pub(super) fn serve(local: &Local, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = local.logs.topic(&t.name.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    let Some(partition) = topic
                        .as_ref()
                        .and_then(|topic| topic.partition(p.partition_index))
                    else {
                        return r
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_low_watermark(-1);
                    };
                    // -1 means "up to the high watermark".
                    let target = if p.offset == -1 {
                        partition.high_watermark()
                    } else {
                        p.offset
                    };
                    match partition.delete_records_before(target) {
                        Ok(low) => {
                            tracing::info!(topic = %t.name.0, partition = p.partition_index, low_watermark = low, "deleted records");
                            r.with_low_watermark(low)
                        }
                        Err(e) => r.with_error_code(storage_code(&e)).with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
