//! Produce: validate each partition's record batch, append it, acknowledge per `acks`.
//!
//! Every batch of a request is written first; only then does the response wait, for all of
//! them at once, so with acks=all their fsyncs are shared by one group commit.

use std::future::Future;

use bytes::BytesMut;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::access::Access;
use super::errors::storage_error;
use super::{topics, RequestContext};
use crate::authz::Action;
use crate::broker::Broker;
use crate::records::{self, RecordError};
use crate::storage::{AppendBatch, AppendInfo, Durability, PendingAppend, ProducerInfo};

/// A partition's result: decided now, or a written batch still waiting for its fsync.
enum Outcome {
    Done(Result<AppendInfo, Refusal>),
    Pending(PendingAppend),
}

/// A partition's refusal: the error code, a message, and per-record errors (plugins).
struct Refusal {
    code: ResponseError,
    message: Option<String>,
    record_errors: Vec<(i32, String)>,
}

impl From<(ResponseError, Option<String>)> for Refusal {
    fn from((code, message): (ResponseError, Option<String>)) -> Self {
        Refusal {
            code,
            message,
            record_errors: Vec::new(),
        }
    }
}

/// A plugin's refusal carries per-record errors only from Produce v8 on, as `INVALID_RECORD`;
/// older clients get `POLICY_VIOLATION` and the message.
fn plugin_refusal(r: crate::plugin::Rejection, api_version: i16) -> Refusal {
    if api_version >= 8 {
        Refusal {
            code: ResponseError::InvalidRecord,
            message: Some(r.message),
            record_errors: r.record_errors,
        }
    } else {
        Refusal {
            code: ResponseError::PolicyViolation,
            message: Some(r.message),
            record_errors: Vec::new(),
        }
    }
}

/// Phase one, run in request order: validate and write every batch. Returns `None` for
/// acks=0 (the client expects no response at all), else the second phase: a future that
/// completes the response once every batch is as durable as `acks` asks. Appends therefore
/// never reorder, while the connection may read its next request during the group commit.
pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ProduceRequest,
) -> Option<impl Future<Output = ProduceResponse> + Send + 'static> {
    let acks = req.acks;
    let durability = match acks {
        -1 => Ok(Durability::Durable),
        0 | 1 => Ok(Durability::Written),
        _ => Err(ResponseError::InvalidRequiredAcks),
    };
    let transactional = req.transactional_id.as_ref().is_some_and(|t| !t.is_empty());
    let access = Access::new(broker, ctx);
    let written: Vec<(TopicName, Vec<(i32, Outcome)>)> = req
        .topic_data
        .into_iter()
        .map(|t| write_topic(broker, ctx, &access, t, durability, transactional))
        .collect();
    if acks == 0 {
        return None;
    }
    Some(async move {
        let topics = join_all(written.into_iter().map(|(name, partitions)| async move {
            let partitions = join_all(partitions.into_iter().map(|(index, outcome)| {
                let name = name.clone();
                async move {
                    let result = match outcome {
                        Outcome::Done(r) => r,
                        Outcome::Pending(p) => p
                            .durable()
                            .await
                            .map_err(|e| (storage_error(&e), Some(e.to_string())).into()),
                    };
                    partition_response(&name, index, result)
                }
            }))
            .await;
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions)
        }))
        .await;
        ProduceResponse::default().with_responses(topics)
    })
}

fn write_topic(
    broker: &Broker,
    ctx: &RequestContext,
    access: &Access<'_>,
    t: TopicProduceData,
    durability: Result<Durability, ResponseError>,
    transactional: bool,
) -> (TopicName, Vec<(i32, Outcome)>) {
    let name = t.name.0.to_string();
    // No client writes the audit topic, super users included. Write is decided before
    // existence, so a denied principal cannot probe for topics.
    let topic = if crate::audit::protect::guard(broker, ctx, &name, "Write").is_err()
        || !access.topic(Action::Write, &name)
    {
        Err(ResponseError::TopicAuthorizationFailed)
    } else {
        match broker.logs.topic(&name) {
            Some(topic) => Ok(topic),
            None => topics::auto_create(broker, access, &name),
        }
    };
    let partitions = t
        .partition_data
        .into_iter()
        .map(|p| {
            let index = p.index;
            let outcome = match (&topic, durability) {
                (Err(e), _) => Outcome::Done(Err((*e, None).into())),
                (_, Err(e)) => Outcome::Done(Err((e, None).into())),
                (Ok(_), Ok(_)) if transactional => Outcome::Done(Err((
                    ResponseError::TransactionalIdAuthorizationFailed,
                    Some("transactions are not supported".to_string()),
                )
                    .into())),
                (Ok(topic), Ok(durability)) => match topic.partition(index) {
                    None => {
                        Outcome::Done(Err((ResponseError::UnknownTopicOrPartition, None).into()))
                    }
                    Some(partition) => {
                        let bytes = p.records.as_ref().map_or(0, |r| r.len() as u64);
                        match append(
                            broker,
                            ctx,
                            (&name, index),
                            &partition,
                            topic.config().max_message_bytes,
                            p,
                            durability,
                        ) {
                            Ok(pending) => {
                                broker.metrics.bytes_in.with(&[&name]).add(bytes);
                                Outcome::Pending(pending)
                            }
                            Err(refusal) => Outcome::Done(Err(refusal)),
                        }
                    }
                },
            };
            (index, outcome)
        })
        .collect();
    (t.name, partitions)
}

fn partition_response(
    topic: &TopicName,
    index: i32,
    result: Result<AppendInfo, Refusal>,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(info) => response
            .with_base_offset(info.base_offset)
            .with_log_append_time_ms(info.log_append_time)
            .with_log_start_offset(info.log_start_offset),
        Err(Refusal {
            code,
            message,
            record_errors,
        }) => {
            if code != ResponseError::UnknownTopicOrPartition {
                tracing::debug!(
                    topic = %topic.0,
                    partition = index,
                    "produce refused: {code:?} {}",
                    message.as_deref().unwrap_or("")
                );
            }
            response
                .with_error_code(code.code())
                .with_base_offset(-1)
                .with_error_message(message.map(StrBytes::from_string))
                .with_record_errors(
                    record_errors
                        .into_iter()
                        .map(|(batch_index, m)| {
                            BatchIndexAndErrorMessage::default()
                                .with_batch_index(batch_index)
                                .with_batch_index_error_message(Some(StrBytes::from_string(m)))
                        })
                        .collect(),
                )
        }
    }
}

fn append(
    broker: &Broker,
    ctx: &RequestContext,
    (topic, index): (&str, i32),
    partition: &crate::storage::Partition,
    max_message_bytes: i32,
    p: PartitionProduceData,
    durability: Durability,
) -> Result<PendingAppend, Refusal> {
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
        )
            .into());
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
            )
                .into())
        }
    };
    if batch.header.is_transactional() || batch.header.is_control() {
        return Err((
            ResponseError::InvalidRecord,
            Some("transactional and control batches are not supported".to_string()),
        )
            .into());
    }
    // The topic's plugins see the batch after validation and before it is stored.
    let replaced = crate::plugin::gate::produce(broker, ctx, topic, index, &batch.bytes)
        .map_err(|r| plugin_refusal(r, ctx.api_version))?;
    let h = &batch.header;
    let append = AppendBatch {
        bytes: BytesMut::from(replaced.as_deref().unwrap_or(&batch.bytes[..])),
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
        .append_now(append, durability)
        .map_err(|e| (storage_error(&e), Some(e.to_string())).into())
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
