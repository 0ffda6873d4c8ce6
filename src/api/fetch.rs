//! Fetch, in front of the backend: Read on each topic, decided once per request (a long-poll
//! finishes under the decision it started with); the topics' fetch plugins over the records
//! the backend returned, for this principal; the bytes-out metric.
//!
//! An unreadable topic answers TOPIC_AUTHORIZATION_FAILED for its partitions and never reaches
//! the backend, so the answer does not depend on its existence; like any error, it makes the
//! fetch answer at once instead of waiting for data.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::backend;
use crate::broker::Broker;

/// The error of a partition whose fetch plugins failed. Kafka has no plugin error for Fetch;
/// librdkafka treats an unknown partition error as temporary (it reports it to the
/// application and retries after a back-off), which is what a failing plugin needs.
const PLUGIN_FETCH_ERROR: ResponseError = ResponseError::PolicyViolation;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut req: FetchRequest) -> FetchResponse {
    let access = Access::new(broker, ctx);
    let (allowed, refused): (Vec<FetchTopic>, Vec<FetchTopic>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| access.topic(Action::Read, &t.topic.0));
    if !refused.is_empty() {
        // Errors are answered at once, as Kafka does.
        req.max_wait_ms = 0;
    }
    req.topics = allowed;
    let mut responses = if req.topics.is_empty() {
        Vec::new()
    } else {
        let asked = req.topics.clone();
        match backend::fetch(&*broker.backend, ctx.call(), req).await {
            Ok(response) => response.responses,
            Err(e) => {
                tracing::warn!(principal = %ctx.principal, "fetch failed: {e}");
                failed(&asked, e.code())
            }
        }
    };
    for t in &mut responses {
        for p in &mut t.partitions {
            run_plugins(broker, ctx, &t.topic.0, p);
        }
    }
    responses.extend(failed(&refused, ResponseError::TopicAuthorizationFailed));
    count_bytes_out(broker, &responses);
    FetchResponse::default().with_responses(responses)
}

/// The topic's fetch plugins see the partition's records for this principal; a failure answers
/// the partition with an error, never with the raw records.
fn run_plugins(broker: &Broker, ctx: &RequestContext, topic: &str, p: &mut PartitionData) {
    let Some(records) = p.records.take() else {
        return;
    };
    match super::plugins::fetch(broker, &ctx.caller, topic, p.partition_index, records) {
        Ok(records) => p.records = Some(records),
        Err(_) => p.error_code = PLUGIN_FETCH_ERROR.code(),
    }
}

/// Every partition of `topics` answered with `code` and no records.
fn failed(topics: &[FetchTopic], code: ResponseError) -> Vec<FetchableTopicResponse> {
    topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition)
                                .with_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect()
}

/// Counts the record bytes sent, per topic.
fn count_bytes_out(broker: &Broker, responses: &[FetchableTopicResponse]) {
    for t in responses {
        let n: usize = t
            .partitions
            .iter()
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .sum();
        if n > 0 {
            broker.metrics.bytes_out.with(&[&t.topic.0]).add(n as u64);
        }
    }
}
