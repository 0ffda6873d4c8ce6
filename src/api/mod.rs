//! Kafka API handlers, one module per API family. Each handler takes the shared
//! [`Broker`](crate::broker::Broker), the [`RequestContext`] and the decoded request, and returns
//! the response; errors are expressed as Kafka error codes inside the response.

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
pub mod produce;
pub mod produce_pipeline;
pub mod producer_id;
pub mod scram_credentials;
pub mod topics;

use std::net::SocketAddr;

use kafka_protocol::protocol::StrBytes;

/// A response string field from anything string-like.
pub(crate) fn str_bytes(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// What a handler knows about the request beyond its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub peer: SocketAddr,
    /// The address and port the client connected to, advertised back in Metadata.
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Who is asking, as the listener's security protocol established it.
    pub principal: crate::principal::Principal,
    /// The listener the request arrived on.
    pub listener: String,
    /// The connection's memory for first-use auditing of data operations.
    pub audit_session: crate::audit::SessionAudit,
    /// Whether that listener terminates TLS.
    pub tls: bool,
}
