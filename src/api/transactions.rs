//! The transaction APIs in front of a backend that keeps transactions (an upstream cluster;
//! the local log has none, and broker mode does not serve them), decided as Kafka's own
//! authorizer decides them:
//!
//! - every step of a transaction (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//!   TxnOffsetCommit) needs Write on its transactional id: `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`;
//! - AddPartitionsToTxn needs Write on each topic; one refused topic fails the whole request,
//!   as in Kafka: refused partitions answer `TOPIC_AUTHORIZATION_FAILED`, the others
//!   `OPERATION_NOT_ATTEMPTED`, and none is added. Kafka's internal topics are never added;
//! - AddOffsetsToTxn needs Read on the group: `GROUP_AUTHORIZATION_FAILED`;
//! - TxnOffsetCommit needs Read on the group, then Read on each topic: refused topics answer
//!   `TOPIC_AUTHORIZATION_FAILED` and the others are committed;
//! - DescribeTransactions needs Describe on each transactional id, and shows only the topics
//!   the principal may Describe; ListTransactions lists only the ids it may Describe.
//!
//! A refused request, or refused part of one, never reaches the backend, and a request with
//! nothing left is answered without it. A backend that fails answers `COORDINATOR_NOT_AVAILABLE`:
//! the client looks the coordinator up again and retries.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse,
    TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::backend::{self, BackendError};
use crate::broker::Broker;

const TXN_DENIED: i16 = ResponseError::TransactionalIdAuthorizationFailed.code();
const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const NOT_ATTEMPTED: i16 = ResponseError::OperationNotAttempted.code();

/// Kafka's internal topics: a transaction never writes them directly, whatever policy says
/// (Kafka leaves them out of the topics it authorizes, so they are always refused).
const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// Versions from here on are the batched broker-to-broker form of AddPartitionsToTxn.
const ADD_PARTITIONS_BATCHED: i16 = 4;

/// Logs a transaction request the backend failed and gives its (retriable) error code.
fn failed(ctx: &RequestContext, e: &BackendError) -> i16 {
    tracing::warn!(
        principal = %ctx.principal,
        api = ?ctx.api_key,
        "transaction request failed: {e}"
    );
    e.group_code().code()
}

/// Each partition of `topics` answering `code(topic)`.
fn partition_results(
    topics: &[AddPartitionsToTxnTopic],
    code: impl Fn(&AddPartitionsToTxnTopic) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let code = code(t);
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// Adds partitions to the transaction only if the principal may write the transactional id
/// and every topic named; otherwise nothing is added and nothing is forwarded.
pub async fn add_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let answer =
        |results| AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    if ctx.api_version >= ADD_PARTITIONS_BATCHED {
        // Never advertised (clients do not send it): refused rather than forwarded blind.
        return AddPartitionsToTxnResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code());
    }
    let access = Access::new(broker, ctx);
    let topics = &req.v3_and_below_topics;
    if !access.transactional_id(Action::Write, &req.v3_and_below_transactional_id) {
        return answer(partition_results(topics, |_| TXN_DENIED));
    }
    let refused: HashSet<&str> = topics
        .iter()
        .map(|t| &**t.name)
        .filter(|name| INTERNAL_TOPICS.contains(name) || !access.topic(Action::Write, name))
        .collect();
    if !refused.is_empty() {
        return answer(partition_results(topics, |t| {
            if refused.contains(&**t.name) {
                TOPIC_DENIED
            } else {
                NOT_ATTEMPTED
            }
        }));
    }
    let asked = req.v3_and_below_topics.clone();
    backend::add_partitions_to_txn(&*broker.backend, ctx.call(), req)
        .await
        .unwrap_or_else(|e| {
            let code = failed(ctx, &e);
            answer(partition_results(&asked, |_| code))
        })
}

pub async fn add_offsets(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let refused = |code| AddOffsetsToTxnResponse::default().with_error_code(code);
    let access = Access::new(broker, ctx);
    if !access.transactional_id(Action::Write, &req.transactional_id) {
        return refused(TXN_DENIED);
    }
    if !access.group(Action::Read, &req.group_id) {
        return refused(GROUP_DENIED);
    }
    backend::add_offsets_to_txn(&*broker.backend, ctx.call(), req)
        .await
        .unwrap_or_else(|e| refused(failed(ctx, &e)))
}

pub async fn end(broker: &Broker, ctx: &RequestContext, req: EndTxnRequest) -> EndTxnResponse {
    // The default names no producer (id and epoch -1).
    let refused = |code| EndTxnResponse::default().with_error_code(code);
    if !Access::new(broker, ctx).transactional_id(Action::Write, &req.transactional_id) {
        return refused(TXN_DENIED);
    }
    backend::end_txn(&*broker.backend, ctx.call(), req)
        .await
        .unwrap_or_else(|e| refused(failed(ctx, &e)))
}

/// Each partition of `topics` answering `code`.
fn commit_results(
    topics: &[TxnOffsetCommitRequestTopic],
    code: i16,
) -> Vec<TxnOffsetCommitResponseTopic> {
    topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// Commits offsets in the transaction for the topics the principal may Read.
pub async fn offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let answer = |topics| TxnOffsetCommitResponse::default().with_topics(topics);
    let access = Access::new(broker, ctx);
    if !access.transactional_id(Action::Write, &req.transactional_id) {
        return answer(commit_results(&req.topics, TXN_DENIED));
    }
    if !access.group(Action::Read, &req.group_id) {
        return answer(commit_results(&req.topics, GROUP_DENIED));
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| access.topic(Action::Read, &t.name));
    let mut response = if allowed.is_empty() {
        TxnOffsetCommitResponse::default()
    } else {
        let asked = allowed.clone();
        req.topics = allowed;
        backend::txn_offset_commit(&*broker.backend, ctx.call(), req)
            .await
            .unwrap_or_else(|e| answer(commit_results(&asked, failed(ctx, &e))))
    };
    response
        .topics
        .extend(commit_results(&denied, TOPIC_DENIED));
    response
}

/// The state of `id` as an error.
fn state_error(id: TransactionalId, code: i16) -> TransactionState {
    TransactionState::default()
        .with_transactional_id(id)
        .with_error_code(code)
}

/// Describes the transactions the principal may Describe, with the topics it may Describe.
pub async fn describe(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let access = Access::new(broker, ctx);
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut req.transactional_ids)
        .into_iter()
        .partition(|id| access.transactional_id(Action::Describe, id));
    let mut response = if allowed.is_empty() {
        DescribeTransactionsResponse::default()
    } else {
        let asked: HashSet<TransactionalId> = allowed.iter().cloned().collect();
        req.transactional_ids = allowed;
        match backend::describe_transactions(&*broker.backend, ctx.call(), req).await {
            // Only what was asked goes back, whatever else the backend answers.
            Ok(mut r) => {
                r.transaction_states
                    .retain(|s| asked.contains(&s.transactional_id));
                r
            }
            Err(e) => {
                let code = failed(ctx, &e);
                DescribeTransactionsResponse::default().with_transaction_states(
                    asked.into_iter().map(|id| state_error(id, code)).collect(),
                )
            }
        }
    };
    for state in &mut response.transaction_states {
        state
            .topics
            .retain(|t| access.topic(Action::Describe, &t.topic));
    }
    response
        .transaction_states
        .extend(denied.into_iter().map(|id| state_error(id, TXN_DENIED)));
    response
}

/// Lists the transactions the principal may Describe (the others are left out, as in Kafka).
pub async fn list(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut response = backend::list_transactions(&*broker.backend, ctx.call(), req)
        .await
        .unwrap_or_else(|e| ListTransactionsResponse::default().with_error_code(failed(ctx, &e)));
    let access = Access::new(broker, ctx);
    response
        .transaction_states
        .retain(|s| access.transactional_id(Action::Describe, &s.transactional_id));
    response
}

#[cfg(test)]
#[path = "transactions_tests.rs"]
mod tests;
