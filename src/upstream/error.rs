//! [`UpstreamError`]: every way talking to the upstream cluster fails, each naming the address.

use kafka_protocol::messages::ApiKey;

use super::frame::FrameError;
use super::sasl_client::SaslClientError;

/// A failure reaching, logging in to or talking with one upstream broker.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream `{address}`: cannot resolve the host: {source}")]
    Resolve {
        address: String,
        source: std::io::Error,
    },
    #[error("upstream `{address}`: connection failed: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("upstream `{address}`: no connection within {timeout_ms} ms")]
    ConnectTimeout { address: String, timeout_ms: u64 },
    #[error("upstream `{address}`: tls settings: {message}")]
    TlsSettings { address: String, message: String },
    #[error("upstream `{address}`: tls handshake failed: {source}")]
    TlsHandshake {
        address: String,
        source: std::io::Error,
    },
    #[error("upstream `{address}`: sasl handshake: the upstream does not offer {mechanism} (it offers: {offered})")]
    SaslMechanism {
        address: String,
        mechanism: String,
        offered: String,
    },
    #[error("upstream `{address}`: sasl login as `{username}` refused by the upstream (error code {code}): {message}")]
    SaslRefused {
        address: String,
        username: String,
        code: i16,
        message: String,
    },
    #[error("upstream `{address}`: sasl login as `{username}`: {source}")]
    SaslClient {
        address: String,
        username: String,
        source: SaslClientError,
    },
    #[error("upstream `{address}`: {api:?} failed with error code {code}")]
    ErrorCode {
        address: String,
        api: ApiKey,
        code: i16,
    },
    #[error("upstream `{address}`: {api:?} v{version} is not supported by the upstream (it accepts {range})")]
    UnsupportedVersion {
        address: String,
        api: ApiKey,
        version: i16,
        range: String,
    },
    #[error("upstream `{address}`: no {api:?} response within {timeout_ms} ms")]
    Timeout {
        address: String,
        api: ApiKey,
        timeout_ms: u64,
    },
    #[error("upstream `{address}`: connection closed: {reason}")]
    Closed { address: String, reason: String },
    #[error("upstream `{address}`: bad response frame: {source}")]
    Frame { address: String, source: FrameError },
    #[error("upstream `{address}`: response to correlation id {got} where {expected} was due")]
    Correlation {
        address: String,
        expected: i32,
        got: i32,
    },
    #[error("upstream `{address}`: cannot encode {api:?} v{version} request: {message}")]
    Encode {
        address: String,
        api: ApiKey,
        version: i16,
        message: String,
    },
    #[error("upstream `{address}`: malformed {api:?} v{version} response: {message}")]
    Decode {
        address: String,
        api: ApiKey,
        version: i16,
        message: String,
    },
    #[error("upstream `{address}`: a request of a kind the gateway cannot name is not sent")]
    UnknownRequestKind { address: String },
    #[error("upstream `{address}`: a Produce with acks=0 gets no response; use `send`")]
    NoResponseExpected { address: String },
    #[error("upstream node {node_id} is not in the cluster's metadata")]
    UnknownNode { node_id: i32 },
    #[error("upstream node {node_id} (`{address}`) is unavailable, retrying in {retry_in_ms} ms; last error: {last}")]
    NodeUnavailable {
        node_id: i32,
        address: String,
        retry_in_ms: u64,
        last: String,
    },
    #[error("no upstream broker answered Metadata: {0}")]
    NoBroker(String),
}

impl UpstreamError {
    /// Whether trying again later may succeed (a node down, a timeout, a closed connection)
    /// rather than a setting or credential that must change first.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect { .. }
                | UpstreamError::ConnectTimeout { .. }
                | UpstreamError::Timeout { .. }
                | UpstreamError::Closed { .. }
                | UpstreamError::NodeUnavailable { .. }
                | UpstreamError::NoBroker(_)
                | UpstreamError::Resolve { .. }
        )
    }
}
