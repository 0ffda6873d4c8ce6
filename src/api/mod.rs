//! Kafka API handlers, one module per API family. Each handler takes the shared
//! [`Broker`](crate::broker::Broker), the [`RequestContext`] and the decoded request, and returns
//! the response; errors are expressed as Kafka error codes inside the response. Every
//! authorization question goes through [`access`], the one enforcement point.

pub mod access;
pub mod acls;
pub mod api_versions;
pub mod client_quotas;
pub mod cluster;
pub mod configs;
pub mod delete_records;
pub mod errors;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod plugins;
pub mod produce;
pub mod producer_id;
pub mod quota_gate;
pub mod router;
pub mod scram_credentials;
pub mod topic_tags;
pub mod topics;
pub mod transactions;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

use crate::request::Caller;

/// A response string field from anything string-like.
pub(crate) fn str_bytes(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// What a handler knows about the request beyond its body: who sent it (its [`Caller`],
/// which the context dereferences to: `ctx.principal`, `ctx.peer` ...) and the request's own
/// facts.
#[derive(Debug)]
pub struct RequestContext {
    /// The API the request is, as routed (authorization checks its questions against it).
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    /// Who is asking, over which connection.
    pub caller: Caller,
    /// The address and port the client connected to, advertised back in Metadata.
    pub advertised_host: String,
    pub advertised_port: i32,
    /// The request's audited authorization decisions, written as a few grouped events when
    /// the request (this context) ends.
    pub decisions: crate::audit::RequestDecisions,
    /// The connection's lane to the backend.
    pub lane: crate::backend::Lane,
}

impl RequestContext {
    /// This request as the backend sees it.
    pub fn call(&self) -> crate::backend::Call<'_> {
        crate::backend::Call {
            api_version: self.api_version,
            caller: &self.caller,
            advertised_host: &self.advertised_host,
            advertised_port: self.advertised_port,
            lane: &self.lane,
        }
    }
}

impl std::ops::Deref for RequestContext {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}
