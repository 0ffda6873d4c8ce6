//! One client connection: read a frame, decode, dispatch, write the response, in order.
//!
//! Requests on one connection are handled one at a time, as Kafka does (it mutes a channel
//! until its response is sent), so responses can never be reordered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use crate::api::{api_versions, RequestContext};
use crate::broker::Broker;
use crate::protocol::codec::{self, HeaderPrefix};
use crate::protocol::dispatch;
use crate::server::frame::{self, FrameError};

/// Per-connection facts fixed at accept time.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub listener: String,
    pub advertised_host: String,
    pub advertised_port: i32,
}

/// Why a connection ended, for the log line.
#[derive(Debug)]
enum Close {
    Eof,
    Shutdown,
    Idle,
    Frame(FrameError),
    Protocol(String),
    Write(std::io::Error),
}

/// Serves one connection until the client leaves, misbehaves, or shutdown is signalled.
pub async fn serve<S>(
    stream: S,
    info: ConnectionInfo,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let limit = broker.config.limits.max_frame_bytes;
    let idle = match broker.config.limits.idle_timeout_ms {
        0 => Duration::MAX,
        ms => Duration::from_millis(ms),
    };
    let close = loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.changed() => break Close::Shutdown,
            r = tokio::time::timeout(idle, frame::read_frame(&mut reader, limit)) => r,
        };
        let frame = match frame {
            Err(_) => break Close::Idle,
            Ok(Ok(Some(f))) => f,
            Ok(Ok(None)) => break Close::Eof,
            Ok(Err(e)) => break Close::Frame(e),
        };
        let response = match handle_frame(&broker, &info, frame).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(reason) => break Close::Protocol(reason),
        };
        if let Err(e) = writer.write_all(&response).await {
            break Close::Write(e);
        }
    };
    match close {
        Close::Eof | Close::Shutdown => {
            tracing::debug!(peer = %info.peer, listener = %info.listener, "connection closed: {close:?}")
        }
        Close::Idle => tracing::info!(peer = %info.peer, "closing idle connection"),
        Close::Frame(e) => tracing::warn!(peer = %info.peer, "closing connection: {e}"),
        Close::Protocol(reason) => {
            tracing::warn!(peer = %info.peer, "closing connection: {reason}")
        }
        Close::Write(e) => tracing::debug!(peer = %info.peer, "write failed: {e}"),
    }
    let _ = writer.shutdown().await;
}

/// Decodes, dispatches and encodes one request. `Err` closes the connection with a reason;
/// `Ok(None)` means no response is due (acks=0).
async fn handle_frame(
    broker: &Broker,
    info: &ConnectionInfo,
    frame: bytes::Bytes,
) -> Result<Option<bytes::Bytes>, String> {
    let HeaderPrefix {
        api_key,
        api_version,
        correlation_id,
    } = codec::peek_header(&frame).map_err(|e| e.to_string())?;
    let Some(entry) = dispatch::lookup(api_key) else {
        return Err(format!("unknown or unsupported api key {api_key}"));
    };
    if api_version < entry.min || api_version > entry.max {
        if entry.key == ApiKey::ApiVersions {
            // Kafka answers an ApiVersions it cannot parse with v0 and its own ranges so the
            // client can retry with a version both sides know.
            let body = ResponseKind::ApiVersions(api_versions::unsupported_version());
            return codec::encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)
                .map(Some)
                .map_err(|e| e.to_string());
        }
        return Err(format!(
            "unsupported version {api_version} of {:?} (supported {}..={})",
            entry.key, entry.min, entry.max
        ));
    }
    let request =
        codec::decode_request(entry.key, api_version, frame).map_err(|e| e.to_string())?;
    let ctx = RequestContext {
        api_version,
        correlation_id,
        client_id: request.header.client_id.as_ref().map(|s| s.to_string()),
        peer: info.peer,
        advertised_host: info.advertised_host.clone(),
        advertised_port: info.advertised_port,
    };
    let response = dispatch::dispatch(broker, &ctx, entry.key, request.body)
        .await
        .map_err(|e| e.to_string())?;
    match response {
        None => Ok(None),
        Some(body) => codec::encode_response(entry.key, api_version, correlation_id, &body)
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}
