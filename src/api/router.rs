//! The one router: every request frame of a connection, SASL included, goes from its header to
//! its handler here, and every response leaves through [`ResponseMeta::encode`].
//!
//! In order: the header is peeked; an unknown API or a version outside the API table
//! (`protocol::apis`) is refused before the body is parsed; the connection's [`Login`] gates everything but ApiVersions and
//! SASL before login; the body is decoded; the connection's earlier pipelined produces settle
//! (every request but a Produce observes all earlier requests' effects, see
//! [`super::produce::order`]); SASL requests go to the login; a throttled fetch is answered
//! empty ([`super::quota_gate`]); the handler runs; the request is charged to its quota and
//! counted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};

use super::produce::order::AppendOrder;
use super::{api_versions, groups, quota_gate, RequestContext};
use crate::broker::Broker;
use crate::principal::Principal;
use crate::protocol::codec::{self, CodecError, HeaderPrefix};
use crate::request::{Caller, ConnectionInfo, FirstUse};

/// What the connection must do after a SASL request.
pub enum SaslOutcome {
    /// Send the response and keep serving.
    Continue,
    /// Send the response, then close (failed or illegal exchange).
    Close(String),
}

/// The connection's login, as the router needs it (the server's session implements it).
pub trait Login {
    /// Who the connection is now.
    fn principal(&self) -> &Principal;
    /// Whether a request of `api_key` may be decoded and served now; `Err` closes the
    /// connection with the reason.
    fn gate(&self, api_key: ApiKey) -> Result<(), String>;
    fn handshake(
        &mut self,
        req: &SaslHandshakeRequest,
        version: i16,
    ) -> (SaslHandshakeResponse, SaslOutcome);
    fn authenticate(
        &mut self,
        req: &SaslAuthenticateRequest,
        version: i16,
    ) -> impl Future<Output = (SaslAuthenticateResponse, SaslOutcome)> + Send;
}

/// The connection's state a request may use or change.
pub struct Conn<'a, L> {
    pub info: &'a ConnectionInfo,
    pub login: &'a mut L,
    pub audit_session: &'a FirstUse,
    pub order: &'a mut AppendOrder,
    pub quotas: &'a mut crate::quota::QuotaCache,
    pub lane: &'a crate::backend::Lane,
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

/// Which request a response answers: enough to encode it.
#[derive(Debug, Clone, Copy)]
pub struct ResponseMeta {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
}

impl ResponseMeta {
    /// The one place a response is encoded (size prefix, header, body).
    pub fn encode(&self, body: &ResponseKind) -> Result<Bytes, CodecError> {
        codec::encode_response(self.api_key, self.version, self.correlation_id, body)
    }
}

/// One routed request.
pub struct Routed {
    pub meta: ResponseMeta,
    pub reply: Reply,
    /// Close after sending the reply (a refused login or SASL misuse).
    pub close_after: Option<String>,
    /// Read nothing more for this long (a quota's throttle).
    pub mute: Duration,
}

impl Routed {
    fn reply(meta: ResponseMeta, body: ResponseKind) -> Self {
        Routed {
            meta,
            reply: Reply::Ready(Box::new(body)),
            close_after: None,
            mute: Duration::ZERO,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("unknown or unsupported api key {0}")]
    UnknownApi(i16),
    #[error("unsupported version {version} of {api:?} (supported {min}..={max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    /// Refused by the login gate (a request before login, after expiry).
    #[error("{0}")]
    Gate(String),
    #[error("no handler for {0:?}")]
    NoHandler(ApiKey),
}

/// Routes one request frame. `Err` closes the connection with the reason (Kafka's answer to a
/// protocol violation).
pub async fn route<L: Login>(
    broker: &Arc<Broker>,
    conn: Conn<'_, L>,
    frame: Bytes,
) -> Result<Routed, RouteError> {
    let Conn {
        info,
        login,
        audit_session,
        order,
        quotas,
        lane,
    } = conn;
    let HeaderPrefix {
        api_key,
        api_version,
        correlation_id,
    } = codec::peek_header(&frame)?;
    let table = broker.backend.apis();
    let entry = *table
        .iter()
        .find(|e| e.key as i16 == api_key)
        .ok_or(RouteError::UnknownApi(api_key))?;
    // Before login only the SASL APIs pass; the body of anything else is never parsed.
    login.gate(entry.key).map_err(RouteError::Gate)?;
    let meta = ResponseMeta {
        api_key: entry.key,
        version: api_version,
        correlation_id,
    };
    if api_version < entry.min || api_version > entry.max {
        if entry.key == ApiKey::ApiVersions {
            // Kafka answers an ApiVersions it cannot parse with v0 and its own ranges so the
            // client can retry with a version both sides know.
            let body = ResponseKind::ApiVersions(api_versions::unsupported_version(&table));
            return Ok(Routed::reply(ResponseMeta { version: 0, ..meta }, body));
        }
        return Err(RouteError::UnsupportedVersion {
            api: entry.key,
            version: api_version,
            min: entry.min,
            max: entry.max,
        });
    }
    let request_bytes = frame.len();
    let mut request = codec::decode_request(entry.key, api_version, frame)?;
    if !matches!(request.body, RequestKind::Produce(_)) {
        // Every request but a Produce (SASL included) comes after the earlier ones' effects.
        order.settle().await;
    }
    let sasl = match &request.body {
        RequestKind::SaslHandshake(r) => {
            let (resp, outcome) = login.handshake(r, api_version);
            Some((ResponseKind::SaslHandshake(resp), outcome))
        }
        RequestKind::SaslAuthenticate(r) => {
            let (resp, outcome) = login.authenticate(r, api_version).await;
            Some((ResponseKind::SaslAuthenticate(resp), outcome))
        }
        _ => None,
    };
    if let Some((body, outcome)) = sasl {
        return Ok(Routed {
            close_after: match outcome {
                SaslOutcome::Continue => None,
                SaslOutcome::Close(reason) => Some(reason),
            },
            ..Routed::reply(meta, body)
        });
    }
    let ctx = RequestContext {
        api_key: entry.key,
        api_version,
        correlation_id,
        caller: Caller {
            principal: login.principal().clone(),
            peer: info.peer,
            listener: info.listener.clone(),
            tls: info.tls,
            client_id: request.header.client_id.as_ref().map(|s| s.to_string()),
            audit_session: audit_session.clone(),
        },
        advertised_host: info.advertised_host.clone(),
        advertised_port: info.advertised_port,
        decisions: crate::audit::RequestDecisions::new(broker.audit.clone()),
        lane: lane.clone(),
    };
    if let Some((body, mute)) = quota_gate::before_fetch(broker, &ctx, quotas, &mut request.body) {
        return Ok(Routed {
            mute,
            ..Routed::reply(meta, body)
        });
    }
    let started = std::time::Instant::now();
    let reply = handle(broker, &ctx, request.body, order).await?;
    let (reply, mute) = quota_gate::charge(broker, &ctx, quotas, entry.key, request_bytes, reply);
    let api = crate::metrics::api_name(entry.key);
    broker.metrics.requests.with(&[api]).inc();
    broker
        .metrics
        .request_latency
        .with(&[api])
        .observe(started.elapsed());
    Ok(Routed {
        meta,
        reply,
        close_after: None,
        mute,
    })
}

/// Runs the handler of a decoded, authenticated request (SASL requests are the login's, not
/// a handler's).
///
/// Every request but Produce is applied by the time this returns. A Produce has run its checks
/// (authorization, validation, auto-creation) by then; its appends have happened too unless a
/// topic has produce plugins: then they happen later, in the connection's request order,
/// before any later request of the connection is applied ([`super::produce::order`]).
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    body: RequestKind,
    order: &mut AppendOrder,
) -> Result<Reply, RouteError> {
    use super::{
        acls, client_quotas, cluster, configs, delete_records, fetch, list_offsets, metadata,
        produce, producer_id, scram_credentials, topics, transactions,
    };
    let response = match body {
        RequestKind::ApiVersions(r) => {
            ResponseKind::ApiVersions(api_versions::handle(&broker.backend.apis(), r))
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, ctx, r).await),
        RequestKind::Produce(r) => {
            return Ok(match produce::handle(broker, ctx, r, order).await {
                Some(done) => {
                    Reply::Deferred(Box::pin(async move { ResponseKind::Produce(done.await) }))
                }
                None => Reply::None,
            })
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(broker, ctx, r).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, ctx, r).await)
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(topics::create(broker, ctx, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(topics::delete(broker, ctx, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(topics::create_partitions(broker, ctx, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe(broker, ctx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(broker, ctx, r).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(cluster::describe(broker, ctx, r).await)
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(cluster::find_coordinator(broker, ctx, r).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(broker, ctx, r).await)
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(scram_credentials::describe(broker, ctx, r))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(scram_credentials::alter(broker, ctx, r))
        }
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(client_quotas::describe(broker, ctx, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(client_quotas::alter(broker, ctx, r))
        }
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create(broker, ctx, r)),
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(acls::describe(broker, ctx, r)),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete(broker, ctx, r)),
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(producer_id::handle(broker, ctx, r).await)
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
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(transactions::add_partitions(broker, ctx, r).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(transactions::add_offsets(broker, ctx, r).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(transactions::end(broker, ctx, r).await),
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(transactions::offset_commit(broker, ctx, r).await)
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(transactions::describe(broker, ctx, r).await)
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(transactions::list(broker, ctx, r).await)
        }
        _ => return Err(RouteError::NoHandler(ctx.api_key)),
    };
    Ok(Reply::Ready(Box::new(response)))
}
