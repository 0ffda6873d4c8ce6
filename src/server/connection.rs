//! One client connection: read a frame, hand it to the router, write the response, in order.
//!
//! Requests are applied strictly one after another, as Kafka does. A response that must wait
//! (an acks=all produce waiting for its group commit) does not hold up reading: it goes to
//! the connection's writer task, which sends responses in request order. Up to
//! [`MAX_IN_FLIGHT`] responses may be pending; then reading pauses (backpressure).
//!
//! One exception to "applied before the next is read" is the pipelined produce; its rule is
//! [`AppendOrder`]'s. When the connection ends, its pipelined appends finish before `serve`
//! returns (shutdown waits for `serve`, then flushes the logs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ResponseKind;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, WriteHalf};
use tokio::sync::{mpsc, watch};

use crate::api::produce::order::AppendOrder;
use crate::api::router::{self, Conn, Reply, ResponseMeta, Routed};
use crate::broker::Broker;
use crate::memory_budget::Reservation;
use crate::server::frame::{self, FrameError};
use crate::server::session::Session;

pub use crate::request::ConnectionInfo;

/// Sleeps until `at`, or forever when there is no such instant (the select branch using it is
/// then disabled anyway).
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Responses that may wait for the writer at once, per connection.
pub const MAX_IN_FLIGHT: usize = 32;

/// Why a connection ended, for the log line.
#[derive(Debug)]
enum Close {
    Eof,
    Shutdown,
    Idle,
    LoginDeadline,
    SessionExpired,
    CredentialsChanged,
    /// A refused login or SASL misuse: the response is sent, then the connection closes.
    Auth(String),
    Frame(FrameError),
    Protocol(String),
    WriterGone,
}

/// A response on its way to the writer, in request order.
enum Outgoing {
    /// Encoded bytes and their share of the memory budget, held until written.
    Budgeted(Bytes, Reservation),
    Deferred {
        meta: ResponseMeta,
        /// The request's share of the memory budget, held until its response is written: a
        /// produce's batches stay in memory until the backend has them (and, forwarded, while
        /// they wait for the upstream), so a slow backend slows its clients instead of growing
        /// the process.
        _request: Reservation,
        response: std::pin::Pin<Box<dyn std::future::Future<Output = ResponseKind> + Send>>,
    },
}

/// Serves one connection until the client leaves, misbehaves, or shutdown is signalled.
pub async fn serve<S>(
    stream: S,
    info: ConnectionInfo,
    broker: Arc<Broker>,
    mut session: Session,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let (out_tx, out_rx) = mpsc::channel(MAX_IN_FLIGHT);
    let writer_task = tokio::spawn(write_responses(writer, out_rx, info.peer));
    let idle = match broker.config.limits.idle_timeout_ms {
        0 => Duration::MAX,
        ms => Duration::from_millis(ms),
    };
    let mut credentials = session.credentials().subscribe();
    let audit_session = crate::request::FirstUse::default();
    let mut order = AppendOrder::default();
    let mut quota_cache = crate::quota::QuotaCache::default();
    let lane = crate::backend::Lane::new(info.upstream_node);
    let mut muted_until: Option<tokio::time::Instant> = None;
    let close = loop {
        if let Some(until) = muted_until.take() {
            // Throttled by a quota: the response went out; the next request waits.
            tokio::select! {
                biased;
                _ = shutdown.changed() => break Close::Shutdown,
                _ = tokio::time::sleep_until(until) => {}
            }
        }
        // Before login the whole exchange has a deadline; after it, the idle timeout applies.
        let (wait, on_timeout) = match session.login_time_left() {
            Some(left) if left < idle => (left, Close::LoginDeadline),
            _ => (idle, Close::Idle),
        };
        let expires = session.expires_at();
        let limit = session.frame_limit();
        let frame = tokio::select! {
            biased;
            _ = shutdown.changed() => break Close::Shutdown,
            _ = credentials.changed(), if session.credential().is_some() => {
                if let Some((user, fingerprint)) = session.credential() {
                    if credentials.borrow().get(user) != Some(&fingerprint) {
                        break Close::CredentialsChanged;
                    }
                }
                continue;
            }
            _ = sleep_until(expires), if expires.is_some() => break Close::SessionExpired,
            r = tokio::time::timeout(wait, frame::read_frame(&mut reader, limit, &broker.memory)) => r,
        };
        // The request's memory stays reserved until it has been handled.
        let frame::Frame {
            body: frame,
            reservation: request_memory,
        } = match frame {
            Err(_) => break on_timeout,
            Ok(Ok(Some(f))) => f,
            Ok(Ok(None)) => break Close::Eof,
            Ok(Err(e)) => break Close::Frame(e),
        };
        let connection = Conn {
            info: &info,
            login: &mut session,
            audit_session: &audit_session,
            order: &mut order,
            quotas: &mut quota_cache,
            lane: &lane,
        };
        let routed = match router::route(&broker, connection, frame).await {
            Ok(routed) => routed,
            Err(e) => break Close::Protocol(e.to_string()),
        };
        let Routed {
            meta,
            reply,
            close_after,
            mute,
        } = routed;
        let outgoing = match outgoing(&broker, meta, reply, request_memory, &mut shutdown).await {
            Ok(outgoing) => outgoing,
            Err(close) => break close,
        };
        if let Some(outgoing) = outgoing {
            if out_tx.send(outgoing).await.is_err() {
                break Close::WriterGone;
            }
        }
        if let Some(reason) = close_after {
            break Close::Auth(reason);
        }
        if !mute.is_zero() {
            muted_until = Some(tokio::time::Instant::now() + mute);
        }
    };
    match &close {
        Close::Eof | Close::Shutdown | Close::WriterGone => {
            tracing::debug!(peer = %info.peer, listener = %info.listener, "connection closed: {close:?}")
        }
        Close::Idle => tracing::info!(peer = %info.peer, "closing idle connection"),
        Close::LoginDeadline => {
            tracing::warn!(peer = %info.peer, listener = %info.listener, "closing connection: no login before the deadline")
        }
        Close::SessionExpired => {
            tracing::info!(peer = %info.peer, principal = %session.principal(), "closing connection: session expired without re-authentication");
            broker
                .audit
                .record(crate::audit::Event::session_expired(&session.origin()));
        }
        Close::CredentialsChanged => {
            tracing::info!(peer = %info.peer, principal = %session.principal(), "closing connection: credentials removed or changed")
        }
        Close::Auth(reason) => {
            tracing::warn!(peer = %info.peer, listener = %info.listener, "closing connection: {reason}")
        }
        Close::Frame(e) => tracing::warn!(peer = %info.peer, "closing connection: {e}"),
        Close::Protocol(reason) => {
            tracing::warn!(peer = %info.peer, "closing connection: {reason}")
        }
    }
    // Requests already applied still get their responses (a clean EOF, shutdown or a refused
    // login drains); a protocol violation closes at once, as Kafka does.
    drop(out_tx);
    if matches!(close, Close::Frame(_) | Close::Protocol(_)) {
        writer_task.abort();
    }
    let _ = writer_task.await;
    // Pipelined appends run on tasks of their own: they finish before the connection counts
    // as ended, whether or not their responses could be sent.
    order.settle().await;
}

/// Writes responses in request order, waiting for deferred ones as their turn comes.
async fn write_responses<W: AsyncWrite>(
    mut writer: WriteHalf<W>,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
) {
    while let Some(outgoing) = rx.recv().await {
        // The reservation is released once the bytes are written (or abandoned).
        let (bytes, _reservation) = match outgoing {
            Outgoing::Budgeted(bytes, reservation) => (bytes, Some(reservation)),
            Outgoing::Deferred { meta, response, .. } => {
                let response = response.await;
                match meta.encode(&response) {
                    Ok(bytes) => (bytes, None),
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

/// Turns a routed reply into what the writer sends. A ready response is encoded here and held
/// against the memory budget until it is written; the connection reads nothing more while it
/// waits for memory (its request's frame is already released). Deferred responses (produce
/// acknowledgements) are small, encoded by the writer when they complete, and not counted.
async fn outgoing(
    broker: &Broker,
    meta: ResponseMeta,
    reply: Reply,
    request: Reservation,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Outgoing>, Close> {
    let body = match reply {
        Reply::None => return Ok(None),
        Reply::Deferred(response) => {
            return Ok(Some(Outgoing::Deferred {
                meta,
                _request: request,
                response,
            }))
        }
        Reply::Ready(body) => body,
    };
    drop(request);
    let bytes = meta
        .encode(&body)
        .map_err(|e| Close::Protocol(e.to_string()))?;
    drop(body);
    tokio::select! {
        biased;
        _ = shutdown.changed() => Err(Close::Shutdown),
        r = broker.memory.reserve(bytes.len()) => match r {
            Ok(reservation) => Ok(Some(Outgoing::Budgeted(bytes, reservation))),
            Err(e) => Err(Close::Protocol(format!("response refused: {e}"))),
        },
    }
}
