//! Produce: validate each partition's record batch, run its topic's plugins, append it,
//! acknowledge per `acks`.
//!
//! Every batch of a request is written first; only then does the response wait, for all of
//! them at once, so with acks=all their fsyncs are shared by one group commit.
//!
//! Checks (authorization, topic, batch validation) always run here, on the connection's task.
//! A request with a batch for a topic with produce plugins is then pipelined
//! ([`super::produce_pipeline`]): its chains and appends run off the connection's task, the
//! appends still in request order. Any other request is appended here, at once, after any
//! pipelined produce of the connection has appended.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
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
use crate::records::{self, RecordError, ValidatedBatch};
use crate::server::append_order::AppendOrder;
use crate::storage::{
    AppendBatch, AppendInfo, Durability, Partition, PendingAppend, ProducerInfo, Topic,
};

/// The response of a produce with acks other than 0, completing once `acks` is satisfied.
pub type ProduceReply = Pin<Box<dyn Future<Output = ProduceResponse> + Send>>;

/// A partition's result: decided now, or a written batch still waiting for its fsync.
pub(super) enum Outcome {
    Done(Result<AppendInfo, Refusal>),
    Pending(PendingAppend),
}

/// A partition's refusal: the error code, a message, and per-record errors (plugins).
pub(super) struct Refusal {
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
pub(super) fn plugin_refusal(r: crate::plugin::Rejection, api_version: i16) -> Refusal {
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

/// A partition's batch that passed every check, ready for its topic's plugins and the log.
pub(super) struct Checked {
    pub(super) partition: Arc<Partition>,
    pub(super) batch: ValidatedBatch,
    pub(super) durability: Durability,
    /// The size of the records as received, for the bytes-in metric.
    received: u64,
}

/// One topic of a request after the checks.
pub(super) struct CheckedTopic {
    pub(super) name: TopicName,
    /// Whether the topic had a produce chain when the request was checked.
    pub(super) plugins: bool,
    pub(super) partitions: Vec<(i32, Result<Checked, Refusal>)>,
}

/// One topic's partition results, in request order.
pub(super) type Written = Vec<(TopicName, Vec<(i32, Outcome)>)>;

/// Checks every batch, in request order, then appends them: here, or pipelined when a topic of
/// the request has produce plugins. Returns `None` for acks=0 (the client expects no response
/// at all), else a future that completes the response once every batch is as durable as `acks`
/// asks. Appends never reorder, while the connection may read its next request during the
/// group commit (and, pipelined, while the plugins run).
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ProduceRequest,
    order: &mut AppendOrder,
) -> Option<ProduceReply> {
    let acks = req.acks;
    let durability = match acks {
        -1 => Ok(Durability::Durable),
        0 | 1 => Ok(Durability::Written),
        _ => Err(ResponseError::InvalidRequiredAcks),
    };
    let transactional = req.transactional_id.as_ref().is_some_and(|t| !t.is_empty());
    let access = Access::new(broker, ctx);
    let generation = broker.plugins.generation();
    let checked: Vec<CheckedTopic> = req
        .topic_data
        .into_iter()
        .map(|t| {
            let plugins = !generation.is_empty() && !generation.produce_chain(&t.name.0).is_empty();
            check_topic(broker, &access, t, durability, transactional, plugins)
        })
        .collect();
    drop(generation);
    let pipelined = checked
        .iter()
        .any(|t| t.plugins && t.partitions.iter().any(|(_, c)| c.is_ok()));
    if pipelined {
        return super::produce_pipeline::run(broker, ctx, checked, acks, order).await;
    }
    // Nothing to transform off the connection's task: append here, after whatever the
    // connection still has in the pipeline.
    order.settle().await;
    let written: Written = checked
        .into_iter()
        .map(|t| {
            let topic = t.name.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|(index, c)| {
                    let outcome = match c {
                        Err(refusal) => Outcome::Done(Err(refusal)),
                        // A reload may have added plugins since the check: the newest
                        // generation applies, here on the connection's task.
                        Ok(c) => match crate::plugin::gate::produce(
                            broker,
                            &ctx.caller,
                            &topic,
                            index,
                            &c.batch.bytes,
                        ) {
                            Ok(replaced) => commit(broker, &topic, c, replaced),
                            Err(r) => Outcome::Done(Err(plugin_refusal(r, ctx.api_version))),
                        },
                    };
                    (index, outcome)
                })
                .collect();
            (t.name, partitions)
        })
        .collect();
    (acks != 0).then(|| Box::pin(respond(written)) as ProduceReply)
}

/// Waits for every written batch of a request to be as durable as asked, and builds the
/// response.
pub(super) async fn respond(written: Written) -> ProduceResponse {
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
}

fn check_topic(
    broker: &Broker,
    access: &Access<'_>,
    t: TopicProduceData,
    durability: Result<Durability, ResponseError>,
    transactional: bool,
    plugins: bool,
) -> CheckedTopic {
    let name = t.name.0.to_string();
    // Write is decided before existence, so a denied principal cannot probe for topics (and
    // no client, super users included, writes the audit topic: see `access`).
    let topic = if !access.topic(Action::Write, &name) {
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
            let checked = match (&topic, durability) {
                (Err(e), _) => Err((*e, None).into()),
                (_, Err(e)) => Err((e, None).into()),
                (Ok(_), Ok(_)) if transactional => Err((
                    ResponseError::TransactionalIdAuthorizationFailed,
                    Some("transactions are not supported".to_string()),
                )
                    .into()),
                (Ok(topic), Ok(durability)) => check_partition(broker, topic, p, durability),
            };
            (index, checked)
        })
        .collect();
    CheckedTopic {
        name: t.name,
        plugins,
        partitions,
    }
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

fn check_partition(
    broker: &Broker,
    topic: &Topic,
    p: PartitionProduceData,
    durability: Durability,
) -> Result<Checked, Refusal> {
    let partition = topic
        .partition(p.index)
        .ok_or((ResponseError::UnknownTopicOrPartition, None))?;
    let max_message_bytes = topic.config().max_message_bytes;
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
    Ok(Checked {
        partition,
        batch,
        durability,
        received: records.len() as u64,
    })
}

/// Appends a checked batch, or the replacement its topic's plugins returned for it. The
/// producer-id sequence checks happen here, so commits must run in request order.
pub(super) fn commit(broker: &Broker, topic: &str, c: Checked, replaced: Option<Bytes>) -> Outcome {
    let h = &c.batch.header;
    let append = AppendBatch {
        bytes: BytesMut::from(replaced.as_deref().unwrap_or(&c.batch.bytes[..])),
        record_count: h.record_count,
        max_timestamp: h.max_timestamp,
        producer: ProducerInfo {
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            record_count: h.record_count,
        },
    };
    match c.partition.append_now(append, c.durability) {
        Ok(pending) => {
            broker.metrics.bytes_in.with(&[topic]).add(c.received);
            Outcome::Pending(pending)
        }
        Err(e) => Outcome::Done(Err((storage_error(&e), Some(e.to_string())).into())),
    }
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
