//! Kafka API handlers, one module per API family.

use std::net::SocketAddr;

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
}
