//! The upstream backend (gateway mode): every request the layers in front have passed is
//! forwarded to the upstream Kafka cluster, on the client connection's own upstream connection
//! to the node the client addressed ([`crate::backend::Lane`]), logged in as the client's
//! upstream identity; every broker address in the answer is rewritten to the gateway's own
//! ([`crate::gateway::rewrite`]) before the layers see it.
//!
//! - here: the backend and its lanes' connections;
//! - [`apis`]: the API table, intersected with the upstream's;
//! - [`forward`]: what a request looks like on its way upstream (fetch sessions);
//! - [`produce`]: a produce forwarded in the connection's order, acknowledged by the upstream.

mod apis;
mod forward;
mod produce;

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::{RequestKind, ResponseKind};

use super::produce::{ProduceAck, ProduceBatches};
use super::{Backend, BackendError, Call};
use crate::gateway::addressing::AddressMap;
use crate::gateway::rewrite::{self, UnaddressableWarnings};
use crate::upstream::{Connection, UpstreamCluster, UpstreamError, UpstreamIdentities};

/// The upstream cluster, and how its nodes are addressed on each listener.
pub struct Upstream {
    cluster: Arc<UpstreamCluster>,
    identities: Arc<UpstreamIdentities>,
    /// Per listener name: where clients reach each node through it.
    addresses: HashMap<String, AddressMap>,
    warnings: UnaddressableWarnings,
    apis: apis::GatewayApis,
}

impl Upstream {
    pub fn new(
        cluster: Arc<UpstreamCluster>,
        identities: Arc<UpstreamIdentities>,
        addresses: HashMap<String, AddressMap>,
    ) -> Self {
        Upstream {
            cluster,
            identities,
            addresses,
            warnings: UnaddressableWarnings::default(),
            apis: apis::GatewayApis::new(),
        }
    }

    /// The cluster this backend forwards to.
    pub fn cluster(&self) -> &Arc<UpstreamCluster> {
        &self.cluster
    }

    /// Intersects the API table with what an upstream broker offers, asked with the service
    /// account.
    pub async fn learn_versions(&self) {
        let first = self.cluster.nodes().nodes.keys().next().copied();
        if let Some(node) = first {
            match self.cluster.connection(node).await {
                Ok(conn) => self.apis.learn(conn.versions()),
                Err(e) => tracing::warn!("upstream API versions not learned yet: {e}"),
            }
        }
    }

    /// The lane's upstream connection, dialled on first use (and again once it failed), to the
    /// node the client addressed; from the bootstrap address, to the first node that answers.
    async fn connection(&self, call: Call<'_>) -> Result<Arc<Connection>, BackendError> {
        let credential = self
            .identities
            .for_principal(&call.caller.principal.name)
            .map_err(|e| BackendError::Refused(e.to_string()))?;
        let mut slot = call.lane.upstream().lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| c.is_usable()) {
            return Ok(Arc::clone(conn));
        }
        *slot = None;
        let mut candidates: Vec<i32> = match call.lane.node() {
            Some(node) => vec![node],
            None => self.cluster.nodes().nodes.keys().copied().collect(),
        };
        if candidates.is_empty() {
            // Nothing learned yet (the upstream was down at start): ask now rather than at the
            // next periodic refresh.
            match self.cluster.refresh().await {
                Ok(map) => candidates = map.nodes.keys().copied().collect(),
                Err(e) => return Err(BackendError::Unavailable(e.to_string())),
            }
        }
        let mut failures = Vec::new();
        for node in candidates {
            match self.cluster.dial(node, credential.as_ref()).await {
                Ok(conn) => {
                    self.apis.learn(conn.versions());
                    let conn = Arc::new(conn);
                    *slot = Some(Arc::clone(&conn));
                    return Ok(conn);
                }
                Err(e) => failures.push(e),
            }
        }
        Err(self.unavailable(failures))
    }

    /// The error for a lane whose node cannot be reached: retriable, and a hint that the node
    /// map may be stale.
    fn unavailable(&self, failures: Vec<UpstreamError>) -> BackendError {
        self.cluster.request_refresh();
        let message = failures
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        match failures.first() {
            Some(UpstreamError::SaslRefused { .. }) => BackendError::Refused(message),
            _ => BackendError::Unavailable(message),
        }
    }

    /// Rewrites the broker addresses of `response` for the caller's listener.
    fn rewrite(&self, call: Call<'_>, response: &mut ResponseKind) -> Result<(), BackendError> {
        let Some(map) = self.addresses.get(&call.caller.listener) else {
            return Err(BackendError::Unavailable(format!(
                "listener `{}` has no address map for the upstream's nodes",
                call.caller.listener
            )));
        };
        let rewritten = rewrite::response(response, call.api_version, map)
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        self.warnings.note(&rewritten, map);
        Ok(())
    }

    /// Asks another node than the lane's, on the shared connection of the caller's identity.
    async fn elsewhere(
        &self,
        call: Call<'_>,
        request: &RequestKind,
    ) -> Result<ResponseKind, BackendError> {
        let credential = self
            .identities
            .for_principal(&call.caller.principal.name)
            .map_err(|e| BackendError::Refused(e.to_string()))?;
        let others: Vec<i32> = self
            .cluster
            .nodes()
            .nodes
            .keys()
            .copied()
            .filter(|id| Some(*id) != call.lane.node())
            .collect();
        let mut failures = Vec::new();
        for node in others {
            let conn = match self.cluster.connection_as(node, credential.as_ref()).await {
                Ok(conn) => conn,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            match conn
                .call(call.api_version, call.caller.client_id.as_deref(), request)
                .await
            {
                Ok(response) => return Ok(response),
                Err(e) => failures.push(e),
            }
        }
        Err(self.unavailable(failures))
    }

    /// After a failed exchange: a connection that failed is not used again by the lane.
    async fn forget_failed(&self, call: Call<'_>) {
        let mut slot = call.lane.upstream().lock().await;
        if slot.as_ref().is_some_and(|c| !c.is_usable()) {
            *slot = None;
        }
    }
}

impl Backend for Upstream {
    fn serve<'a>(
        &'a self,
        call: Call<'a>,
        request: RequestKind,
    ) -> BoxFuture<'a, Result<ResponseKind, BackendError>> {
        async move {
            let request = forward::prepare(request);
            let client_id = call.caller.client_id.as_deref();
            let answered = match self.connection(call).await {
                Ok(conn) => match conn.call(call.api_version, client_id, &request).await {
                    Ok(response) => Ok(response),
                    Err(e) => {
                        self.forget_failed(call).await;
                        Err(self.unavailable(vec![e]))
                    }
                },
                Err(e) => Err(e),
            };
            let mut response = match answered {
                Ok(response) => response,
                // The node the client addressed is down or gone, but any node answers this:
                // ask another, so the client learns where to go (a client that only ever
                // asks its connection to a dead node for Metadata would never find the new
                // leader).
                Err(BackendError::Unavailable(first)) if forward::any_node_answers(&request) => {
                    self.elsewhere(call, &request)
                        .await
                        .map_err(|e| BackendError::Unavailable(format!("{first}; {e}")))?
                }
                Err(e) => return Err(e),
            };
            self.rewrite(call, &mut response)?;
            Ok(response)
        }
        .boxed()
    }

    fn produce<'a>(&'a self, call: Call<'a>, request: ProduceBatches) -> BoxFuture<'a, ProduceAck> {
        produce::forward(self, call, request).boxed()
    }

    fn has_topic(&self, _name: &str) -> Option<bool> {
        None
    }

    fn apis(&self) -> Arc<[crate::protocol::apis::ApiEntry]> {
        self.apis.get()
    }
}
