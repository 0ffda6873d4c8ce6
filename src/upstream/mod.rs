//! The upstream side of gateway mode: reaching an existing Kafka cluster, logging in to it and
//! talking to its brokers. A leaf: it knows Kafka's wire protocol, TLS and SASL, never how
//! Palisade serves its own clients.
//!
//! # Layout
//!
//! - [`settings`]: the `[gateway]` config section, including how nodes are addressed.
//! - [`secret`]: passwords read from private files, never printed.
//! - [`identity`]: which upstream credential a gateway principal uses (identity map file,
//!   service account, or refused).
//! - [`tls`]: the rustls client config (CA, host name verification, client certificate).
//! - [`sasl_client`]: PLAIN and SCRAM-SHA-256/512 as a client, sans-io.
//! - [`frame`]: request frames, and response frames read against a size limit.
//! - [`versions`]: the API version ranges an upstream broker offers.
//! - [`connection`]: [`Connection`], one pipelined, logged-in connection to one broker;
//!   `handshake` opens it (TCP, TLS, ApiVersions, SASL).
//! - [`cluster`]: [`UpstreamCluster`], the node map from Metadata and a connection per node.
//! - [`probe`]: what `palisade config check` reports about the upstream.
//! - [`error`]: [`UpstreamError`], every failure naming the broker's address.

pub mod cluster;
pub mod connection;
pub mod error;
pub mod frame;
mod handshake;
pub mod identity;
pub mod probe;
mod request_key;
pub mod sasl_client;
pub mod secret;
pub mod settings;
pub mod tls;
pub mod versions;

pub use cluster::{Node, NodeMap, UpstreamCluster};
pub use connection::{ConnectOptions, Connection, Submitted};
pub use error::UpstreamError;
pub use identity::{Unforwarded, UpstreamIdentities};
pub use secret::{Credential, Secret};
pub use settings::{
    Addressing, ClientMechanism, GatewaySection, Unmapped, UpstreamSasl, UpstreamTls,
};
pub use versions::ApiVersionRanges;
