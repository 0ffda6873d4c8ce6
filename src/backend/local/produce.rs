//! Appends a produce's batches to this node's logs, in the connection's order, and answers
//! once each is as durable as `acks` asks. Every batch of a request is written first; only then
//! does the answer wait, for all of them at once, so with acks=all their fsyncs are shared by
//! one group commit.
//!
//! The checks that belong to the log are here: the partition exists, the batch fits the
//! topic's `max.message.bytes`, it is valid (unless the layers in front validated it for the
//! plugins), and it is neither transactional nor a control batch (this node has no
//! transaction coordinator).

use futures::future::join_all;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::protocol::StrBytes;

use super::Local;
use crate::api::errors::storage_error;
use crate::backend::produce::{PartitionBatch, ProduceAck, ProduceBatches};
use crate::records::{single_batch, BatchHeader};
use crate::storage::{AppendBatch, AppendInfo, Durability, PendingAppend, ProducerInfo, Topic};

/// A partition's result: decided now, or written and waiting for its fsync.
enum Outcome {
    Done(Result<AppendInfo, (ResponseError, String)>),
    Pending(PendingAppend),
}

pub(super) fn append(local: &Local, request: ProduceBatches) -> ProduceAck {
    let durability = match request.acks {
        -1 => Durability::Durable,
        _ => Durability::Written,
    };
    let transactional = request
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.is_empty());
    let written: Vec<_> = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = local.logs.topic(&t.name.0);
            let partitions: Vec<(i32, Outcome)> = t
                .partitions
                .into_iter()
                .map(|p| {
                    let index = p.index;
                    let outcome = match (&topic, transactional) {
                        (None, _) => Outcome::Done(Err((
                            ResponseError::UnknownTopicOrPartition,
                            format!("topic `{}` does not exist", t.name.0),
                        ))),
                        (Some(_), true) => Outcome::Done(Err((
                            ResponseError::TransactionalIdAuthorizationFailed,
                            "transactions are not supported by this broker".to_string(),
                        ))),
                        (Some(topic), false) => append_one(local, topic, p, durability),
                    };
                    (index, outcome)
                })
                .collect();
            (t.name, partitions)
        })
        .collect();
    async move {
        let responses = join_all(written.into_iter().map(|(name, partitions)| async move {
            let partitions = join_all(partitions.into_iter().map(|(index, outcome)| async move {
                let result = match outcome {
                    Outcome::Done(r) => r,
                    Outcome::Pending(p) => p
                        .durable()
                        .await
                        .map_err(|e| (storage_error(&e), e.to_string())),
                };
                partition_response(index, result)
            }))
            .await;
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions)
        }))
        .await;
        Ok(ProduceResponse::default().with_responses(responses))
    }
    .boxed()
}

/// Checks one partition's batch against the log and appends it.
fn append_one(local: &Local, topic: &Topic, p: PartitionBatch, durability: Durability) -> Outcome {
    let Some(partition) = topic.partition(p.index) else {
        return Outcome::Done(Err((
            ResponseError::UnknownTopicOrPartition,
            format!("partition {} does not exist", p.index),
        )));
    };
    let max_message_bytes = topic.config().max_message_bytes;
    if i32::try_from(p.records.len()).map_or(true, |n| n > max_message_bytes) {
        return Outcome::Done(Err((
            ResponseError::MessageTooLarge,
            format!(
                "batch of {} bytes exceeds max.message.bytes {max_message_bytes}",
                p.records.len()
            ),
        )));
    }
    let header: BatchHeader = match p.validated {
        Some(header) => header,
        None => match single_batch(&p.records, local.max_decompressed_batch_bytes) {
            Ok(batch) => batch.header,
            Err(refusal) => return Outcome::Done(Err((refusal.code, refusal.message))),
        },
    };
    if header.is_transactional() || header.is_control() {
        return Outcome::Done(Err((
            ResponseError::InvalidRecord,
            "transactional and control batches are not supported".to_string(),
        )));
    }
    let append = AppendBatch {
        bytes: bytes::BytesMut::from(&p.records[..]),
        record_count: header.record_count,
        max_timestamp: header.max_timestamp,
        producer: ProducerInfo {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            record_count: header.record_count,
        },
    };
    match partition.append_now(append, durability) {
        Ok(pending) => Outcome::Pending(pending),
        Err(e) => Outcome::Done(Err((storage_error(&e), e.to_string()))),
    }
}

fn partition_response(
    index: i32,
    result: Result<AppendInfo, (ResponseError, String)>,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(info) => response
            .with_base_offset(info.base_offset)
            .with_log_append_time_ms(info.log_append_time)
            .with_log_start_offset(info.log_start_offset),
        Err((code, message)) => response
            .with_error_code(code.code())
            .with_base_offset(-1)
            .with_error_message(Some(StrBytes::from_string(message))),
    }
}
