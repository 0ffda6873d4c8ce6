//! The API table: which Kafka APIs and versions Palisade serves, and the handler for each.
//!
//! ApiVersions answers from [`APIS`], so what is advertised and what is handled cannot drift;
//! a test walks the table and fails for any entry that [`dispatch`] does not route.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use crate::api::{self, groups, RequestContext};
use crate::broker::Broker;
use crate::server::append_order::AppendOrder;

/// One served API and its version range (never wider than `kafka-protocol` can encode).
#[derive(Debug, Clone, Copy)]
pub struct ApiEntry {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn entry(key: ApiKey, min: i16, max: i16) -> ApiEntry {
    ApiEntry { key, min, max }
}

/// Every API the broker serves. Transactions are deliberately absent.
pub const APIS: &[ApiEntry] = &[
    entry(ApiKey::Produce, 3, 9),
    entry(ApiKey::Fetch, 4, 12),
    entry(ApiKey::ListOffsets, 1, 8),
    entry(ApiKey::Metadata, 0, 12),
    entry(ApiKey::OffsetCommit, 2, 8),
    entry(ApiKey::OffsetFetch, 1, 8),
    entry(ApiKey::FindCoordinator, 0, 4),
    entry(ApiKey::JoinGroup, 0, 9),
    entry(ApiKey::Heartbeat, 0, 4),
    entry(ApiKey::LeaveGroup, 0, 5),
    entry(ApiKey::SyncGroup, 0, 5),
    entry(ApiKey::DescribeGroups, 0, 5),
    entry(ApiKey::ListGroups, 0, 4),
    entry(ApiKey::ApiVersions, 0, 3),
    entry(ApiKey::CreateTopics, 2, 7),
    entry(ApiKey::DeleteTopics, 1, 6),
    entry(ApiKey::DeleteRecords, 0, 2),
    entry(ApiKey::InitProducerId, 0, 4),
    entry(ApiKey::DescribeConfigs, 1, 4),
    entry(ApiKey::CreatePartitions, 0, 3),
    entry(ApiKey::DeleteGroups, 0, 2),
    entry(ApiKey::IncrementalAlterConfigs, 0, 1),
    entry(ApiKey::DescribeCluster, 0, 1),
    entry(ApiKey::DescribeUserScramCredentials, 0, 0),
    entry(ApiKey::AlterUserScramCredentials, 0, 0),
    entry(ApiKey::DescribeClientQuotas, 0, 1),
    entry(ApiKey::AlterClientQuotas, 0, 1),
    entry(ApiKey::DescribeAcls, 1, 3),
    entry(ApiKey::CreateAcls, 1, 3),
    entry(ApiKey::DeleteAcls, 1, 3),
    // Answered by the connection's session (server::session), never by dispatch. v0 is
    // advertised because librdkafka requires it to enable SASL at all, but a v0 handshake
    // (raw SASL tokens without Kafka framing afterwards) is refused.
    entry(ApiKey::SaslHandshake, 0, 1),
    entry(ApiKey::SaslAuthenticate, 0, 2),
];

/// The table entry for a raw API key, if served.
pub fn lookup(api_key: i16) -> Option<&'static ApiEntry> {
    APIS.iter().find(|e| e.key as i16 == api_key)
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("no handler for {0:?}")]
    NoHandler(ApiKey),
}

/// A handler's answer.
pub enum Reply {
    /// No response is due (Produce with acks=0).
    None,
    /// The response, complete.
    Ready(Box<ResponseKind>),
    /// The response completes later: an acks=all produce waiting for its group commit, or a
    /// pipelined produce (topics with plugins) whose appends are still to come, in turn. The
    /// connection may read on meanwhile.
    Deferred(Pin<Box<dyn Future<Output = ResponseKind> + Send>>),
}

/// Routes a decoded request to its handler.
///
/// For every request but Produce, every effect of the request has happened, in request order,
/// by the time this returns: it first waits for the connection's pipelined produces
/// (`order.settle()`), so it also sees the effects of every earlier request. A Produce has run
/// its checks (authorization, validation, auto-creation) by then; its appends have happened too
/// unless a topic has produce plugins: then they happen later, in the connection's request
/// order, before any later request of the connection is applied (`api::produce_pipeline`).
pub async fn dispatch(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    api_key: ApiKey,
    body: RequestKind,
    order: &mut AppendOrder,
) -> Result<Reply, DispatchError> {
    if !matches!(body, RequestKind::Produce(_)) {
        order.settle().await;
    }
    let response = match body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api::api_versions::handle(ctx, r)),
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(api::metadata::handle(broker, ctx, r).await)
        }
        RequestKind::Produce(r) => {
            return Ok(match api::produce::handle(broker, ctx, r, order).await {
                Some(done) => {
                    Reply::Deferred(Box::pin(async move { ResponseKind::Produce(done.await) }))
                }
                None => Reply::None,
            })
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(api::fetch::handle(broker, ctx, r).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(api::list_offsets::handle(broker, ctx, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(api::topics::create(broker, ctx, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(api::topics::delete(broker, ctx, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(api::topics::create_partitions(broker, ctx, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(api::configs::describe(broker, ctx, r))
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(api::configs::incremental_alter(broker, ctx, r))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(api::cluster::describe(broker, ctx, r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(api::cluster::find_coordinator(broker, ctx, r))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(api::delete_records::handle(broker, ctx, r))
        }
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            api::scram_credentials::describe(broker, ctx, r),
        ),
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(api::scram_credentials::alter(broker, ctx, r))
        }
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(api::client_quotas::describe(broker, ctx, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(api::client_quotas::alter(broker, ctx, r))
        }
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(api::acls::create(broker, ctx, r)),
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(api::acls::describe(broker, ctx, r))
        }
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(api::acls::delete(broker, ctx, r)),
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(api::producer_id::handle(broker, ctx, r))
        }
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(groups::join(broker, ctx, r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync(broker, ctx, r).await),
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(groups::heartbeat(broker, ctx, r).await)
        }
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave(broker, ctx, r).await),
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(groups::offset_commit(broker, ctx, r).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(groups::offset_fetch(broker, ctx, r).await)
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list(broker, ctx, r).await),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe(broker, ctx, r).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(groups::delete(broker, ctx, r).await)
        }
        _ => return Err(DispatchError::NoHandler(api_key)),
    };
    Ok(Reply::Ready(Box::new(response)))
}
