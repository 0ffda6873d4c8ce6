//! Produce, in front of the backend: check each partition's record batch, run its topic's
//! plugins, hand the batches to the backend in the connection's order, and acknowledge per
//! `acks` once the backend has. This module owns the whole path; each step is one file:
//!
//! - [`check`]: authorization, the topic, acks, and each topic's chain (and its batches,
//!   validated, when the chain must read them);
//! - [`plugins`]: the one place a produce chain runs;
//! - [`pipeline`]: a request with plugins, its chains off the connection's task;
//! - [`order`]: the connection's append order, which keeps hand-overs in request order;
//! - here: the request, the hand-over ([`hand_over`]) and the response, which merges the
//!   refusals made in front with the backend's answer.
//!
//! What the backend does with the batches (append to the local log, or forward to the
//! upstream) is the backend's: see `backend::produce`.

pub mod check;
pub mod order;
pub mod pipeline;
pub mod plugins;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::backend::produce::{PartitionBatch, ProduceAck, ProduceBatches, TopicBatches};
use crate::backend::Call;
use crate::broker::Broker;
use check::{check_topic, Accepted, CheckedTopic, RequestRefusal};
use order::AppendOrder;

/// The response of a produce with acks other than 0, completing once `acks` is satisfied.
pub type ProduceReply = Pin<Box<dyn Future<Output = ProduceResponse> + Send>>;

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

/// A partition of the request on its way to the response: refused in front, or handed to the
/// backend with so many bytes.
enum Slot {
    Refused(Refusal),
    HandedOver { received: u64 },
}

/// The request's partitions in request order, each with its slot.
type Shape = Vec<(TopicName, Vec<(i32, Slot)>)>;

/// The parts of the request that are the same for every partition.
#[derive(Clone)]
struct Envelope {
    acks: i16,
    timeout_ms: i32,
    transactional_id: Option<StrBytes>,
}

/// Checks every batch, in request order, then hands them to the backend: here, or pipelined
/// when a topic of the request has produce plugins. Returns `None` for acks=0 (the client
/// expects no response at all), else a future that completes the response once the backend
/// acknowledged every batch as `acks` asks. Hand-overs never reorder, while the connection may
/// read its next request while the acknowledgement is pending (and, pipelined, while the
/// plugins run).
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ProduceRequest,
    order: &mut AppendOrder,
) -> Option<ProduceReply> {
    let envelope = Envelope {
        acks: req.acks,
        timeout_ms: req.timeout_ms,
        transactional_id: req.transactional_id.map(|t| t.0).filter(|t| !t.is_empty()),
    };
    let access = Access::new(broker, ctx);
    let whole_request = RequestRefusal(if !matches!(envelope.acks, -1..=1) {
        Some(ResponseError::InvalidRequiredAcks)
    } else if envelope
        .transactional_id
        .as_ref()
        .is_some_and(|id| !access.transactional_id(Action::Write, id))
    {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else {
        None
    });
    // One generation of plugins for the whole request: each topic's chain is decided here,
    // once, and a reload in the middle of the request changes nothing of it.
    let generation = broker.plugins.generation();
    let mut checked: Vec<CheckedTopic> = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let chain = plugins::chain_of(&generation, &t.name.0);
        checked.push(check_topic(broker, &access, t, whole_request, chain).await);
    }
    drop(generation);
    let pipelined = checked
        .iter()
        .any(|t| !t.chain.is_empty() && t.partitions.iter().any(|(_, c)| c.is_ok()));
    if pipelined {
        return pipeline::run(broker, ctx, checked, envelope, order).await;
    }
    // No plugin sees these batches: hand them over here, after whatever the connection still
    // has in the pipeline.
    order.settle().await;
    let accepted = checked
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|(index, c)| (index, c.map(|a| (a, None))))
                .collect();
            (t.name, partitions)
        })
        .collect();
    let (shape, ack) = hand_over(broker, ctx.call(), &envelope, accepted).await;
    (envelope.acks != 0).then(|| Box::pin(respond(Arc::clone(broker), shape, ack)) as ProduceReply)
}

/// A partition after the checks and plugins: accepted (with the plugins' replacement, if
/// any) or refused.
type Ready = Vec<(
    TopicName,
    Vec<(i32, Result<(Accepted, Option<Bytes>), Refusal>)>,
)>;

/// Gives the backend every accepted batch of the request, as one request; the refused ones
/// stay in the shape for the response. Called in the connection's append order.
async fn hand_over(
    broker: &Broker,
    call: Call<'_>,
    envelope: &Envelope,
    ready: Ready,
) -> (Shape, Option<ProduceAck>) {
    let mut topics = Vec::new();
    let shape: Shape = ready
        .into_iter()
        .map(|(name, partitions)| {
            let mut batches = Vec::new();
            let slots = partitions
                .into_iter()
                .map(|(index, r)| {
                    let slot = match r {
                        Err(refusal) => Slot::Refused(refusal),
                        Ok((accepted, replaced)) => {
                            let received = accepted.records.len() as u64;
                            batches.push(PartitionBatch {
                                index,
                                records: replaced.unwrap_or(accepted.records),
                                validated: accepted.batch.map(|b| b.header),
                            });
                            Slot::HandedOver { received }
                        }
                    };
                    (index, slot)
                })
                .collect();
            if !batches.is_empty() {
                topics.push(TopicBatches {
                    name: name.clone(),
                    partitions: batches,
                });
            }
            (name, slots)
        })
        .collect();
    if topics.is_empty() {
        return (shape, None);
    }
    let request = ProduceBatches {
        acks: envelope.acks,
        timeout_ms: envelope.timeout_ms,
        transactional_id: envelope.transactional_id.clone(),
        topics,
    };
    let ack = broker.backend.produce(call, request).await;
    (shape, Some(ack))
}

/// Waits for the backend's acknowledgement and builds the response in request order: each
/// partition's refusal, or the backend's answer for it.
async fn respond(broker: Arc<Broker>, shape: Shape, ack: Option<ProduceAck>) -> ProduceResponse {
    let answered = match ack {
        Some(ack) => ack.await,
        None => Ok(ProduceResponse::default()),
    };
    let mut by_partition: HashMap<(TopicName, i32), PartitionProduceResponse> = HashMap::new();
    let failure = match answered {
        Ok(response) => {
            for topic in response.responses {
                for p in topic.partition_responses {
                    by_partition.insert((topic.name.clone(), p.index), p);
                }
            }
            None
        }
        Err(e) => Some(e),
    };
    let topics = shape
        .into_iter()
        .map(|(name, slots)| {
            let partitions = slots
                .into_iter()
                .map(|(index, slot)| match slot {
                    Slot::Refused(refusal) => refused(&name, index, refusal),
                    Slot::HandedOver { received } => {
                        match by_partition.remove(&(name.clone(), index)) {
                            Some(p) => {
                                if p.error_code == 0 {
                                    broker.metrics.bytes_in.with(&[&name.0]).add(received);
                                }
                                p
                            }
                            None => {
                                let (code, message) = match &failure {
                                    Some(e) => (e.code(), e.to_string()),
                                    None => (
                                        ResponseError::UnknownServerError,
                                        "the backend gave no answer for this partition; retry"
                                            .to_string(),
                                    ),
                                };
                                refused(&name, index, (code, Some(message)).into())
                            }
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(topics)
}

fn refused(topic: &TopicName, index: i32, refusal: Refusal) -> PartitionProduceResponse {
    let Refusal {
        code,
        message,
        record_errors,
    } = refusal;
    if code != ResponseError::UnknownTopicOrPartition {
        tracing::debug!(
            topic = %topic.0,
            partition = index,
            "produce refused: {code:?} {}",
            message.as_deref().unwrap_or("")
        );
    }
    PartitionProduceResponse::default()
        .with_index(index)
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
