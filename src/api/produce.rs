//! Produce: validate each partition's record batch, append it, acknowledge per `acks`.
//!
//! All partitions of one request are appended concurrently, so with acks=all their fsyncs
//! are shared by one group commit instead of paid one after another.

use bytes::BytesMut;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors::storage_error;
use super::{topics, RequestContext};
use crate::broker::Broker;
use crate::records::{self, RecordError};
use crate::storage::{AppendBatch, Durability, ProducerInfo};

/// Returns `None` for acks=0: the client expects no response at all.
pub async fn handle(
    broker: &Broker,
    _ctx: &RequestContext,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let durability = match acks {
        -1 => Ok(Durability::Durable),
        0 | 1 => Ok(Durability::Written),
        _ => Err(ResponseError::InvalidRequiredAcks),
    };
    let transactional = req.transactional_id.is_some();
    let topics = join_all(
        req.topic_data
            .into_iter()
            .map(|t| produce_topic(broker, t, durability, transactional)),
    )
    .await;
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(topics))
}

async fn produce_topic(
    broker: &Broker,
    t: TopicProduceData,
    durability: Result<Durability, ResponseError>,
    transactional: bool,
) -> TopicProduceResponse {
    let name = t.name.0.to_string();
    let name = &name;
    let topic = match broker.logs.topic(name) {
        Some(topic) => Ok(topic),
        None => topics::auto_create(broker, name),
    };
    let partitions = join_all(t.partition_data.into_iter().map(|p| {
        let topic = topic.clone();
        async move {
            let index = p.index;
            let result = match (&topic, durability) {
                (Err(e), _) => Err((*e, None)),
                (_, Err(e)) => Err((e, None)),
                (Ok(_), Ok(_)) if transactional => Err((
                    ResponseError::TransactionalIdAuthorizationFailed,
                    Some("transactions are not supported".to_string()),
                )),
                (Ok(topic), Ok(durability)) => match topic.partition(index) {
                    None => Err((ResponseError::UnknownTopicOrPartition, None)),
                    Some(partition) => append(broker, &partition, topic.config().max_message_bytes, p, durability).await,
                },
            };
            let response = PartitionProduceResponse::default().with_index(index);
            match result {
                Ok(info) => response
                    .with_base_offset(info.base_offset)
                    .with_log_append_time_ms(info.log_append_time)
                    .with_log_start_offset(info.log_start_offset),
                Err((code, message)) => {
                    if code != ResponseError::UnknownTopicOrPartition {
                        tracing::debug!(topic = %name, partition = index, "produce refused: {code:?} {}", message.as_deref().unwrap_or(""));
                    }
                    response
                        .with_error_code(code.code())
                        .with_base_offset(-1)
                        .with_error_message(message.map(StrBytes::from_string))
                }
            }
        }
    }))
    .await;
    TopicProduceResponse::default()
        .with_name(t.name)
        .with_partition_responses(partitions)
}

async fn append(
    broker: &Broker,
    partition: &crate::storage::Partition,
    max_message_bytes: i32,
    p: PartitionProduceData,
    durability: Durability,
) -> Result<crate::storage::AppendInfo, (ResponseError, Option<String>)> {
    let records = p
        .records
        .ok_or((ResponseError::InvalidRecord, Some("no records".to_string())))?;
    if i32::try_from(records.len()).map_or(true, |n| n > max_message_bytes) {
        return Err((
            ResponseError::MessageTooLarge,
            Some(format!(
                "batch of {} bytes exceeds max.message.bytes {max_message_bytes}",
                records.len()
            )),
        ));
    }
    let mut batches =
        records::validate_batches(&records, broker.config.limits.max_decompressed_batch_bytes)
            .map_err(|e| (record_error(&e), Some(e.to_string())))?;
    // Produce v3+ carries exactly one batch per partition (as Kafka enforces).
    let batch = match (batches.pop(), batches.is_empty()) {
        (Some(b), true) => b,
        _ => {
            return Err((
                ResponseError::InvalidRecord,
                Some(
                    "a produce request must carry exactly one record batch per partition"
                        .to_string(),
                ),
            ))
        }
    };
    if batch.header.is_transactional() || batch.header.is_control() {
        return Err((
            ResponseError::InvalidRecord,
            Some("transactional and control batches are not supported".to_string()),
        ));
    }
    let h = &batch.header;
    let append = AppendBatch {
        bytes: BytesMut::from(&batch.bytes[..]),
        record_count: h.record_count,
        max_timestamp: h.max_timestamp,
        producer: ProducerInfo {
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            record_count: h.record_count,
        },
    };
    partition
        .append(append, durability)
        .await
        .map_err(|e| (storage_error(&e), Some(e.to_string())))
}

fn record_error(e: &RecordError) -> ResponseError {
    match e {
        RecordError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        RecordError::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
        RecordError::DecompressionLimit(_) => ResponseError::MessageTooLarge,
        RecordError::Malformed(_) => ResponseError::InvalidRecord,
        RecordError::Truncated(_) | RecordError::CrcMismatch { .. } | RecordError::Corrupt(_) => {
            ResponseError::CorruptMessage
        }
    }
}
