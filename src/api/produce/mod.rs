//! Produce: check each partition's record batch, run its topic's plugins, append it,
//! acknowledge per `acks`. This module owns the whole path; each step is one file:
//!
//! - [`check`]: authorization, topic, partition and batch checks, and each topic's chain;
//! - [`plugins`]: the one place a produce chain runs;
//! - [`pipeline`]: a request with plugins, its chains off the connection's task;
//! - [`order`]: the connection's append order, which keeps appends in request order;
//! - here: the request, the appends ([`commit`]) and the response.
//!
//! Every batch of a request is written first; only then does the response wait, for all of
//! them at once, so with acks=all their fsyncs are shared by one group commit.

pub mod check;
pub mod order;
pub mod pipeline;
pub mod plugins;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::access::Access;
use super::errors::storage_error;
use super::RequestContext;
use crate::broker::Broker;
use crate::storage::{AppendBatch, AppendInfo, Durability, PendingAppend, ProducerInfo};
use check::{check_topic, Checked, CheckedTopic};
use order::AppendOrder;

/// The response of a produce with acks other than 0, completing once `acks` is satisfied.
pub type ProduceReply = Pin<Box<dyn Future<Output = ProduceResponse> + Send>>;

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

/// One topic's partition results, in request order.
type Written = Vec<(TopicName, Vec<(i32, Outcome)>)>;

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
    // One generation of plugins for the whole request: each topic's chain is decided here,
    // once, and a reload in the middle of the request changes nothing of it.
    let generation = broker.plugins.generation();
    let mut checked: Vec<CheckedTopic> = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let chain = plugins::chain_of(&generation, &t.name.0);
        checked.push(check_topic(broker, &access, t, durability, transactional, chain).await);
    }
    drop(generation);
    let pipelined = checked
        .iter()
        .any(|t| !t.chain.is_empty() && t.partitions.iter().any(|(_, c)| c.is_ok()));
    if pipelined {
        return pipeline::run(broker, ctx, checked, acks, order).await;
    }
    // No plugin sees these batches: append here, after whatever the connection still has in
    // the pipeline.
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
                        Ok(c) => commit(broker, &topic, c, None),
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
async fn respond(written: Written) -> ProduceResponse {
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

/// Appends a checked batch, or the replacement its topic's plugins returned for it. The
/// producer-id sequence checks happen here, so commits must run in request order.
fn commit(broker: &Broker, topic: &str, c: Checked, replaced: Option<Bytes>) -> Outcome {
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
