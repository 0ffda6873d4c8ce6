//! One client connection: read a frame, decode, dispatch, write the response, in order.
//!
//! Requests are applied strictly one after another, as Kafka does. A response that must wait
//! (an acks=all produce waiting for its group commit) does not hold up reading: it goes to
//! the connection's writer task, which sends responses in request order. Up to
//! [`MAX_IN_FLIGHT`] responses may be pending; then reading pauses (backpressure).
//!
//! One exception to "applied before the next is read": a produce to topics with plugins is
//! pipelined. Its checks run in order here; its plugin chains run off this task, and its appends
//! follow in request order ([`AppendOrder`]). Every other request waits for those appends before
//! it is applied, so it observes all earlier requests as if they had run one after another. When
//! the connection ends, its pipelined appends finish before `serve` returns (shutdown waits for
//! `serve`, then flushes the logs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, WriteHalf};
use tokio::sync::{mpsc, watch};

use crate::api::{api_versions, RequestContext};
use crate::broker::Broker;
use crate::memory_budget::Reservation;
use crate::protocol::codec::{self, HeaderPrefix};
use crate::protocol::dispatch::{self, Reply};
use crate::server::append_order::AppendOrder;
use crate::server::frame::{self, FrameError};
use crate::server::quota_gate;
use crate::server::session::{SaslOutcome, Session};

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

/// Per-connection facts fixed at accept time.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub listener: String,
    /// Whether the listener terminates TLS (`context.tls` in policies).
    pub tls: bool,
    pub advertised_host: String,
    pub advertised_port: i32,
}

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

/// What one request produced.
struct Handled {
    outgoing: Option<Outgoing>,
    /// Close after sending `outgoing`.
    close_after: Option<String>,
    /// Read nothing more for this long (a quota's throttle).
    mute: Duration,
}

/// A response on its way to the writer, in request order.
enum Outgoing {
    Encoded(Bytes),
    /// Encoded bytes and their share of the memory budget, held until written.
    Budgeted(Bytes, Reservation),
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
            reservation: _request_memory,
        } = match frame {
            Err(_) => break on_timeout,
            Ok(Ok(Some(f))) => f,
            Ok(Ok(None)) => break Close::Eof,
            Ok(Err(e)) => break Close::Frame(e),
        };
        let connection = Conn {
            info: &info,
            session: &mut session,
            audit_session: &audit_session,
            order: &mut order,
            quotas: &mut quota_cache,
        };
        let handled = match handle_frame(&broker, connection, frame).await {
            Ok(h) => h,
            Err(reason) => break Close::Protocol(reason),
        };
        let outgoing = match handled.outgoing {
            Some(outgoing) => match budget_response(&broker, outgoing, &mut shutdown).await {
                Ok(outgoing) => Some(outgoing),
                Err(close) => break close,
            },
            None => None,
        };
        if let Some(outgoing) = outgoing {
            if out_tx.send(outgoing).await.is_err() {
                break Close::WriterGone;
            }
        }
        if let Some(reason) = handled.close_after {
            break Close::Auth(reason);
        }
        if !handled.mute.is_zero() {
            muted_until = Some(tokio::time::Instant::now() + handled.mute);
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
            Outgoing::Encoded(bytes) => (bytes, None),
            Outgoing::Budgeted(bytes, reservation) => (bytes, Some(reservation)),
            Outgoing::Deferred {
                api_key,
                version,
                correlation_id,
                response,
            } => {
                let response = response.await;
                match codec::encode_response(api_key, version, correlation_id, &response) {
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

/// Holds an encoded response against the memory budget until it is written. The connection
/// reads nothing more while the response waits for memory; its request's frame is already
/// released. Deferred responses (produce acknowledgements) are small and not counted.
async fn budget_response(
    broker: &Broker,
    outgoing: Outgoing,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Outgoing, Close> {
    let Outgoing::Encoded(bytes) = outgoing else {
        return Ok(outgoing);
    };
    tokio::select! {
        biased;
        _ = shutdown.changed() => Err(Close::Shutdown),
        r = broker.memory.reserve(bytes.len()) => match r {
            Ok(reservation) => Ok(Outgoing::Budgeted(bytes, reservation)),
            Err(e) => Err(Close::Protocol(format!("response refused: {e}"))),
        },
    }
}

/// The connection's state a request may use or change.
struct Conn<'a> {
    info: &'a ConnectionInfo,
    session: &'a mut Session,
    audit_session: &'a crate::request::FirstUse,
    order: &'a mut AppendOrder,
    quotas: &'a mut crate::quota::QuotaCache,
}

/// Decodes and dispatches one request. `Err` closes the connection with a reason;
/// `Ok(None)` means no response is due (acks=0).
async fn handle_frame(
    broker: &Arc<Broker>,
    connection: Conn<'_>,
    frame: Bytes,
) -> Result<Handled, String> {
    let Conn {
        info,
        session,
        audit_session,
        order,
        quotas,
    } = connection;
    let respond = |outgoing: Outgoing| Handled {
        outgoing: Some(outgoing),
        close_after: None,
        mute: Duration::ZERO,
    };
    let HeaderPrefix {
        api_key,
        api_version,
        correlation_id,
    } = codec::peek_header(&frame).map_err(|e| e.to_string())?;
    let Some(entry) = dispatch::lookup(api_key) else {
        return Err(format!("unknown or unsupported api key {api_key}"));
    };
    // Before login only the SASL APIs pass; the body of anything else is never parsed.
    session.gate(entry.key)?;
    if api_version < entry.min || api_version > entry.max {
        if entry.key == ApiKey::ApiVersions {
            // Kafka answers an ApiVersions it cannot parse with v0 and its own ranges so the
            // client can retry with a version both sides know.
            let body = ResponseKind::ApiVersions(api_versions::unsupported_version());
            return codec::encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)
                .map(|b| respond(Outgoing::Encoded(b)))
                .map_err(|e| e.to_string());
        }
        return Err(format!(
            "unsupported version {api_version} of {:?} (supported {}..={})",
            entry.key, entry.min, entry.max
        ));
    }
    let request_bytes = frame.len();
    let mut request =
        codec::decode_request(entry.key, api_version, frame).map_err(|e| e.to_string())?;
    if matches!(entry.key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
        // Like every request, a (re-)authentication comes after the earlier ones' effects.
        order.settle().await;
    }
    let sasl = match &request.body {
        RequestKind::SaslHandshake(r) => {
            let (resp, outcome) = session.handshake(r, api_version);
            Some((ResponseKind::SaslHandshake(resp), outcome))
        }
        RequestKind::SaslAuthenticate(r) => {
            let (resp, outcome) = session.authenticate(r, api_version).await;
            Some((ResponseKind::SaslAuthenticate(resp), outcome))
        }
        _ => None,
    };
    if let Some((body, outcome)) = sasl {
        let bytes = codec::encode_response(entry.key, api_version, correlation_id, &body)
            .map_err(|e| e.to_string())?;
        return Ok(Handled {
            outgoing: Some(Outgoing::Encoded(bytes)),
            close_after: match outcome {
                SaslOutcome::Continue => None,
                SaslOutcome::Close(reason) => Some(reason),
            },
            mute: Duration::ZERO,
        });
    }
    let ctx = RequestContext {
        api_key: entry.key,
        api_version,
        correlation_id,
        caller: crate::request::Caller {
            principal: session.principal().clone(),
            peer: info.peer,
            listener: info.listener.clone(),
            tls: info.tls,
            client_id: request.header.client_id.as_ref().map(|s| s.to_string()),
            audit_session: audit_session.clone(),
        },
        advertised_host: info.advertised_host.clone(),
        advertised_port: info.advertised_port,
        decisions: crate::audit::RequestDecisions::new(broker.audit.clone()),
    };
    if let Some((body, mute)) = quota_gate::before_fetch(broker, &ctx, quotas, &mut request.body) {
        return codec::encode_response(entry.key, api_version, correlation_id, &body)
            .map(|b| Handled {
                mute,
                ..respond(Outgoing::Encoded(b))
            })
            .map_err(|e| e.to_string());
    }
    let started = std::time::Instant::now();
    let reply = dispatch::dispatch(broker, &ctx, entry.key, request.body, order)
        .await
        .map_err(|e| e.to_string())?;
    let (reply, mute) = quota_gate::charge(broker, &ctx, quotas, entry.key, request_bytes, reply);
    let api = crate::metrics::api_name(entry.key);
    broker.metrics.requests.with(&[api]).inc();
    broker
        .metrics
        .request_latency
        .with(&[api])
        .observe(started.elapsed());
    let handled = match reply {
        Reply::None => Handled {
            outgoing: None,
            close_after: None,
            mute: Duration::ZERO,
        },
        Reply::Ready(body) => codec::encode_response(entry.key, api_version, correlation_id, &body)
            .map(|b| respond(Outgoing::Encoded(b)))
            .map_err(|e| e.to_string())?,
        Reply::Deferred(response) => respond(Outgoing::Deferred {
            api_key: entry.key,
            version: api_version,
            correlation_id,
            response,
        }),
    };
    Ok(Handled { mute, ..handled })
}
