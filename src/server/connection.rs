//! One client connection: read a frame, decode, dispatch, write the response, in order.
//!
//! Requests are applied strictly one after another, as Kafka does. A response that must wait
//! (an acks=all produce waiting for its group commit) does not hold up reading: it goes to
//! the connection's writer task, which sends responses in request order. Up to
//! [`MAX_IN_FLIGHT`] responses may be pending; then reading pauses (backpressure).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, WriteHalf};
use tokio::sync::{mpsc, watch};

use crate::api::{api_versions, RequestContext};
use crate::broker::Broker;
use crate::protocol::codec::{self, HeaderPrefix};
use crate::protocol::dispatch::{self, Reply};
use crate::server::frame::{self, FrameError};

/// Responses that may wait for the writer at once, per connection.
pub const MAX_IN_FLIGHT: usize = 32;

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
    WriterGone,
}

/// A response on its way to the writer, in request order.
enum Outgoing {
    Encoded(Bytes),
    Deferred {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        response: std::pin::Pin<Box<dyn std::future::Future<Output = ResponseKind> + Send>>,
    },
}

/// Serves one connection until the client leaves, misbehaves, or shutdown is signalled.
pub async fn serve<S>(
    stream: S,
    info: ConnectionInfo,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let (out_tx, out_rx) = mpsc::channel(MAX_IN_FLIGHT);
    let writer_task = tokio::spawn(write_responses(writer, out_rx, info.peer));
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
        let outgoing = match handle_frame(&broker, &info, frame).await {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(reason) => break Close::Protocol(reason),
        };
        if out_tx.send(outgoing).await.is_err() {
            break Close::WriterGone;
        }
    };
    match &close {
        Close::Eof | Close::Shutdown | Close::WriterGone => {
            tracing::debug!(peer = %info.peer, listener = %info.listener, "connection closed: {close:?}")
        }
        Close::Idle => tracing::info!(peer = %info.peer, "closing idle connection"),
        Close::Frame(e) => tracing::warn!(peer = %info.peer, "closing connection: {e}"),
        Close::Protocol(reason) => {
            tracing::warn!(peer = %info.peer, "closing connection: {reason}")
        }
    }
    // Requests already applied still get their responses (a clean EOF or shutdown drains);
    // a protocol violation closes at once, as Kafka does.
    drop(out_tx);
    if matches!(close, Close::Frame(_) | Close::Protocol(_)) {
        writer_task.abort();
    }
    let _ = writer_task.await;
}

/// Writes responses in request order, waiting for deferred ones as their turn comes.
async fn write_responses<W: AsyncWrite>(
    mut writer: WriteHalf<W>,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
) {
    while let Some(outgoing) = rx.recv().await {
        let bytes = match outgoing {
            Outgoing::Encoded(bytes) => bytes,
            Outgoing::Deferred {
                api_key,
                version,
                correlation_id,
                response,
            } => {
                let response = response.await;
                match codec::encode_response(api_key, version, correlation_id, &response) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        tracing::warn!(%peer, "closing connection: {e}");
                        break;
                    }
                }
            }
        };
        if let Err(e) = writer.write_all(&bytes).await {
            tracing::debug!(%peer, "write failed: {e}");
            break;
        }
    }
    let _ = writer.shutdown().await;
}

/// Decodes and dispatches one request. `Err` closes the connection with a reason;
/// `Ok(None)` means no response is due (acks=0).
async fn handle_frame(
    broker: &Broker,
    info: &ConnectionInfo,
    frame: Bytes,
) -> Result<Option<Outgoing>, String> {
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
                .map(|b| Some(Outgoing::Encoded(b)))
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
    match dispatch::dispatch(broker, &ctx, entry.key, request.body)
        .await
        .map_err(|e| e.to_string())?
    {
        Reply::None => Ok(None),
        Reply::Ready(body) => codec::encode_response(entry.key, api_version, correlation_id, &body)
            .map(|b| Some(Outgoing::Encoded(b)))
            .map_err(|e| e.to_string()),
        Reply::Deferred(response) => Ok(Some(Outgoing::Deferred {
            api_key: entry.key,
            version: api_version,
            correlation_id,
            response,
        })),
    }
}
