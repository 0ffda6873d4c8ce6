//! ListOffsets from the local logs: earliest, latest, max timestamp, or the first offset at a
//! timestamp.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::Local;
use crate::api::errors::storage_code;
use crate::storage::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub(super) fn serve(local: &Local, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = local.logs.topic(&t.name.0);
            let partitions =
                t.partitions
                    .into_iter()
                    .map(|p| {
                        let response = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index);
                        match topic
                            .as_ref()
                            .and_then(|topic| topic.partition(p.partition_index))
                        {
                            None => response
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                            Some(partition) => lookup(&partition, p.timestamp, version, response),
                        }
                    })
                    .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn lookup(
    partition: &Partition,
    timestamp: i64,
    version: i16,
    r: ListOffsetsPartitionResponse,
) -> ListOffsetsPartitionResponse {
    // The leader epoch exists from v4 on; earlier versions must leave the default.
    let r = if version >= 4 {
        r.with_leader_epoch(0)
    } else {
        r
    };
    match timestamp {
        LATEST => r.with_offset(partition.high_watermark()).with_timestamp(-1),
        EARLIEST | EARLIEST_LOCAL => r
            .with_offset(partition.log_start_offset())
            .with_timestamp(-1),
        MAX_TIMESTAMP => match partition.max_timestamp() {
            Some((ts, offset)) => r.with_offset(offset).with_timestamp(ts),
            None => r.with_offset(-1).with_timestamp(-1),
        },
        ts if ts < 0 => r.with_error_code(ResponseError::InvalidRequest.code()),
        ts => match partition.offset_for_timestamp(ts) {
            Ok(Some((offset, found_ts))) => r.with_offset(offset).with_timestamp(found_ts),
            Ok(None) => r.with_offset(-1).with_timestamp(-1),
            Err(e) => r.with_error_code(storage_code(&e)),
        },
    }
}
