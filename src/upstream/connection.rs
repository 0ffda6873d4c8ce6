//! [`Connection`]: one logged-in connection to one upstream broker, pipelined.
//!
//! Set-up ([`super::handshake`]), in order: TCP (within `connect_timeout`), TLS when
//! configured, ApiVersions (the upstream's ranges are kept: a request in a version it does not
//! accept is refused here, never sent), then SASL (SaslHandshake v1, SaslAuthenticate) when a
//! credential is given.
//!
//! Then requests are pipelined: up to `max_in_flight` at once. A writer task owns the write
//! half, so a caller that gives up mid-request never leaves half a frame on the wire; a reader
//! task matches each response to the oldest outstanding request. Kafka answers a connection's
//! requests in order, so a response whose correlation id is not the oldest one's is a broken
//! upstream: every outstanding request fails and the connection closes. So do a timeout, a
//! frame over `max_response_bytes` and a close by the upstream; the caller reconnects.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Decodable;
use parking_lot::Mutex;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::UpstreamError;
use super::frame::{self, read_response};
use super::secret::Credential;
use super::settings::GatewaySection;
use super::tls::{client_config, UpstreamTlsError};
use super::versions::ApiVersionRanges;

/// How the gateway connects to upstream brokers.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The client id of the gateway's own requests (ApiVersions, SASL, Metadata).
    pub client_id: String,
    /// TLS to the upstream, when configured.
    pub tls: Option<Arc<ClientConfig>>,
    /// Who to log in as; `None`: no SASL.
    pub credential: Option<Arc<Credential>>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_response_bytes: i32,
    pub max_in_flight: usize,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("client_id", &self.client_id)
            .field("tls", &self.tls.is_some())
            .field("credential", &self.credential)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

/// The client id the gateway's own requests carry.
pub const GATEWAY_CLIENT_ID: &str = "palisade-gateway";

impl ConnectOptions {
    /// Options from `[gateway]` (the TLS files are read now), logging in as `credential`.
    pub fn from_settings(
        section: &GatewaySection,
        credential: Option<Arc<Credential>>,
    ) -> Result<Self, UpstreamTlsError> {
        let tls = if section.tls.enabled {
            Some(client_config(&section.tls)?)
        } else {
            None
        };
        Ok(ConnectOptions {
            client_id: GATEWAY_CLIENT_ID.to_string(),
            tls,
            credential,
            connect_timeout: Duration::from_millis(section.connect_timeout_ms),
            request_timeout: Duration::from_millis(section.request_timeout_ms),
            max_response_bytes: section.max_response_bytes,
            max_in_flight: section.max_in_flight.max(1),
        })
    }

    /// Plaintext, no SASL, default limits (tests and tools).
    pub fn plaintext() -> Self {
        let defaults = GatewaySection::default();
        ConnectOptions {
            client_id: GATEWAY_CLIENT_ID.to_string(),
            tls: None,
            credential: None,
            connect_timeout: Duration::from_millis(defaults.connect_timeout_ms),
            request_timeout: Duration::from_millis(defaults.request_timeout_ms),
            max_response_bytes: defaults.max_response_bytes,
            max_in_flight: defaults.max_in_flight,
        }
    }
}

pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub(super) type Stream = Box<dyn Io>;

/// One request waiting for its response.
struct Waiter {
    correlation: i32,
    api: ApiKey,
    reply: oneshot::Sender<Result<Bytes, UpstreamError>>,
    _permit: OwnedSemaphorePermit,
}

/// Requests written and not yet answered, oldest first; `closed` once the connection failed.
#[derive(Default)]
struct Outstanding {
    queue: VecDeque<Waiter>,
    closed: Option<String>,
}

struct Outgoing {
    frame: Bytes,
    waiter: Option<Waiter>,
}

/// A request body ready to send.
struct Encoded {
    api: ApiKey,
    body: BytesMut,
    /// False for a Produce with acks = 0, which Kafka never answers.
    expects_response: bool,
}

/// A request queued on a connection ([`Connection::submit`]), its response to come.
pub struct Submitted {
    connection: Arc<Connection>,
    api: ApiKey,
    version: i16,
    reply: Option<oneshot::Receiver<Result<Bytes, UpstreamError>>>,
    deadline: tokio::time::Instant,
}

impl Submitted {
    /// The response, within the request timeout counted from submission; `None` for a
    /// Produce with acks = 0.
    pub async fn response(self) -> Result<Option<ResponseKind>, UpstreamError> {
        let Submitted {
            connection,
            api,
            version,
            reply,
            deadline,
        } = self;
        let Some(reply) = reply else {
            return Ok(None);
        };
        let mut body = match tokio::time::timeout_at(
            deadline,
            connection.receive(api, version, reply),
        )
        .await
        {
            Ok(body) => body?,
            Err(_) => return Err(connection.timed_out(api)),
        };
        ResponseKind::decode(api, &mut body, version)
            .map(Some)
            .map_err(|e| UpstreamError::Decode {
                address: connection.address.clone(),
                api,
                version,
                message: e.to_string(),
            })
    }
}

/// One connection to one upstream broker, logged in, shared by many callers.
pub struct Connection {
    address: String,
    versions: ApiVersionRanges,
    outgoing: mpsc::Sender<Outgoing>,
    outstanding: Arc<Mutex<Outstanding>>,
    in_flight: Arc<Semaphore>,
    next_correlation: AtomicI32,
    request_timeout: Duration,
    /// When the upstream ends the SASL session (KIP-368): the connection is retired before.
    session_deadline: Option<Instant>,
    tasks: [JoinHandle<()>; 2],
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address)
            .field("closed", &self.outstanding.lock().closed)
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Connection {
    /// Connects to `address` (`host:port`), negotiates versions and logs in.
    pub async fn connect(address: &str, options: &ConnectOptions) -> Result<Self, UpstreamError> {
        let mut setup = super::handshake::Setup {
            address: address.to_string(),
            options,
            correlation: 0,
        };
        let mut stream = setup.open().await?;
        let versions = setup.api_versions(&mut stream).await?;
        let session_deadline = match &options.credential {
            Some(credential) => setup.login(&mut stream, &versions, credential).await?,
            None => None,
        };
        Ok(Self::start(
            setup.address,
            stream,
            versions,
            options,
            setup.correlation + 1,
            session_deadline,
        ))
    }

    fn start(
        address: String,
        stream: Stream,
        versions: ApiVersionRanges,
        options: &ConnectOptions,
        first_correlation: i32,
        session_deadline: Option<Instant>,
    ) -> Self {
        let (read, write) = tokio::io::split(stream);
        let outstanding = Arc::new(Mutex::new(Outstanding::default()));
        let max_in_flight = options.max_in_flight.max(1);
        let (tx, rx) = mpsc::channel(max_in_flight);
        let reader = tokio::spawn(read_loop(
            address.clone(),
            read,
            options.max_response_bytes,
            Arc::clone(&outstanding),
        ));
        let writer = tokio::spawn(write_loop(
            address.clone(),
            write,
            rx,
            Arc::clone(&outstanding),
        ));
        Connection {
            address,
            versions,
            outgoing: tx,
            outstanding,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            next_correlation: AtomicI32::new(first_correlation),
            request_timeout: options.request_timeout,
            session_deadline,
            tasks: [reader, writer],
        }
    }

    /// The broker's `host:port` as configured or learned from Metadata.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The API versions the upstream accepts.
    pub fn versions(&self) -> &ApiVersionRanges {
        &self.versions
    }

    /// Whether new requests may use this connection: not failed, and its SASL session not
    /// about to expire.
    pub fn is_usable(&self) -> bool {
        self.outstanding.lock().closed.is_none()
            && self.session_deadline.is_none_or(|d| Instant::now() < d)
    }

    /// Sends a typed request; `Ok(None)` only for a Produce with acks = 0, which Kafka never
    /// answers.
    pub async fn send(
        &self,
        version: i16,
        client_id: Option<&str>,
        request: &RequestKind,
    ) -> Result<Option<ResponseKind>, UpstreamError> {
        let Encoded {
            api,
            body,
            expects_response,
        } = self.encode(version, request)?;
        let Some(mut response) = self
            .send_raw(api, version, client_id, &body, expects_response)
            .await?
        else {
            return Ok(None);
        };
        ResponseKind::decode(api, &mut response, version)
            .map(Some)
            .map_err(|e| UpstreamError::Decode {
                address: self.address.clone(),
                api,
                version,
                message: e.to_string(),
            })
    }

    /// [`Connection::send`] for requests that are always answered.
    pub async fn call(
        &self,
        version: i16,
        client_id: Option<&str>,
        request: &RequestKind,
    ) -> Result<ResponseKind, UpstreamError> {
        self.send(version, client_id, request)
            .await?
            .ok_or_else(|| UpstreamError::NoResponseExpected {
                address: self.address.clone(),
            })
    }

    /// Sends a request whose body is already encoded (pass-through) and returns the response
    /// body, its header removed; `Ok(None)` when `expects_response` is false (acks = 0).
    pub async fn send_raw(
        &self,
        api: ApiKey,
        version: i16,
        client_id: Option<&str>,
        body: &[u8],
        expects_response: bool,
    ) -> Result<Option<Bytes>, UpstreamError> {
        self.check_version(api, version)?;
        let timeout = self.request_timeout;
        match tokio::time::timeout(
            timeout,
            self.round_trip(api, version, client_id, body, expects_response),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(api)),
        }
    }

    /// A typed request's body, refused here when its version is one the upstream does not
    /// accept.
    fn encode(&self, version: i16, request: &RequestKind) -> Result<Encoded, UpstreamError> {
        let api = super::request_key::api_key_of(request).ok_or_else(|| {
            UpstreamError::UnknownRequestKind {
                address: self.address.clone(),
            }
        })?;
        self.check_version(api, version)?;
        let expects_response = !matches!(request, RequestKind::Produce(p) if p.acks == 0);
        let mut body = BytesMut::new();
        request
            .encode(&mut body, version)
            .map_err(|e| UpstreamError::Encode {
                address: self.address.clone(),
                api,
                version,
                message: e.to_string(),
            })?;
        Ok(Encoded {
            api,
            body,
            expects_response,
        })
    }

    /// A version the upstream does not accept is refused here, never sent.
    fn check_version(&self, api: ApiKey, version: i16) -> Result<(), UpstreamError> {
        if self.versions.supports(api, version) {
            return Ok(());
        }
        Err(UpstreamError::UnsupportedVersion {
            address: self.address.clone(),
            api,
            version,
            range: self.versions.describe(api),
        })
    }

    async fn round_trip(
        &self,
        api: ApiKey,
        version: i16,
        client_id: Option<&str>,
        body: &[u8],
        expects_response: bool,
    ) -> Result<Option<Bytes>, UpstreamError> {
        let reply = self
            .enqueue(api, version, client_id, body, expects_response)
            .await?;
        match reply {
            Some(reply) => self.receive(api, version, reply).await.map(Some),
            None => Ok(None),
        }
    }

    /// Queues a request for the writer; once this returns, its place in the connection's
    /// order is fixed. The receiver is `None` when no response is expected.
    async fn enqueue(
        &self,
        api: ApiKey,
        version: i16,
        client_id: Option<&str>,
        body: &[u8],
        expects_response: bool,
    ) -> Result<Option<oneshot::Receiver<Result<Bytes, UpstreamError>>>, UpstreamError> {
        let closed = |reason: String| UpstreamError::Closed {
            address: self.address.clone(),
            reason,
        };
        let permit = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .map_err(|_| closed("connection dropped".into()))?;
        if let Some(reason) = &self.outstanding.lock().closed {
            return Err(closed(reason.clone()));
        }
        let correlation = self.next_correlation();
        let frame =
            frame::encode_request(api, version, correlation, client_id, body).map_err(|e| {
                UpstreamError::Encode {
                    address: self.address.clone(),
                    api,
                    version,
                    message: e.to_string(),
                }
            })?;
        let (waiter, reply) = if expects_response {
            let (tx, rx) = oneshot::channel();
            let waiter = Waiter {
                correlation,
                api,
                reply: tx,
                _permit: permit,
            };
            (Some(waiter), Some(rx))
        } else {
            (None, None)
        };
        self.outgoing
            .send(Outgoing { frame, waiter })
            .await
            .map_err(|_| closed(self.close_reason()))?;
        Ok(reply)
    }

    /// Waits for a queued request's response and strips its header.
    async fn receive(
        &self,
        api: ApiKey,
        version: i16,
        reply: oneshot::Receiver<Result<Bytes, UpstreamError>>,
    ) -> Result<Bytes, UpstreamError> {
        let mut response = reply.await.map_err(|_| UpstreamError::Closed {
            address: self.address.clone(),
            reason: self.close_reason(),
        })??;
        ResponseHeader::decode(&mut response, api.response_header_version(version)).map_err(
            |e| UpstreamError::Decode {
                address: self.address.clone(),
                api,
                version,
                message: format!("response header: {e}"),
            },
        )?;
        Ok(response)
    }

    /// Sends a typed request in two steps: the returned future completes once the request
    /// has its place in the connection's order (later submissions go after it), and yields
    /// the [`Submitted`] request, whose response comes later. For a caller that must keep
    /// several requests in order without waiting for each answer (a client's pipelined
    /// produces).
    pub async fn submit(
        self: &Arc<Self>,
        version: i16,
        client_id: Option<&str>,
        request: &RequestKind,
    ) -> Result<Submitted, UpstreamError> {
        let Encoded {
            api,
            body,
            expects_response,
        } = self.encode(version, request)?;
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let reply = match tokio::time::timeout_at(
            deadline,
            self.enqueue(api, version, client_id, &body, expects_response),
        )
        .await
        {
            Ok(reply) => reply?,
            Err(_) => return Err(self.timed_out(api)),
        };
        Ok(Submitted {
            connection: Arc::clone(self),
            api,
            version,
            reply,
            deadline,
        })
    }

    /// Retires the connection after a request went unanswered in time.
    fn timed_out(&self, api: ApiKey) -> UpstreamError {
        // The upstream may answer later, or never: either way this connection's state is
        // unknown, so it is retired (as Kafka's own clients do).
        self.close(format!(
            "no {api:?} response within {} ms",
            self.request_timeout.as_millis()
        ));
        UpstreamError::Timeout {
            address: self.address.clone(),
            api,
            timeout_ms: millis(self.request_timeout),
        }
    }

    fn next_correlation(&self) -> i32 {
        // Wraps after 2^31 requests; only uniqueness among the requests in flight matters.
        let id = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        id & i32::MAX
    }

    fn close_reason(&self) -> String {
        self.outstanding
            .lock()
            .closed
            .clone()
            .unwrap_or_else(|| "connection dropped".into())
    }

    /// Fails every outstanding request and stops both tasks.
    pub fn close(&self, reason: String) {
        fail_all(&self.address, &self.outstanding, None, reason);
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Fails every outstanding request: the oldest with `first` (the error that broke the
/// connection) if given, the others as closed with `reason`.
fn fail_all(
    address: &str,
    outstanding: &Mutex<Outstanding>,
    mut first: Option<UpstreamError>,
    reason: String,
) {
    let waiters: Vec<Waiter> = {
        let mut o = outstanding.lock();
        if o.closed.is_none() {
            o.closed = Some(reason.clone());
        }
        o.queue.drain(..).collect()
    };
    for waiter in waiters {
        let error = first.take().unwrap_or_else(|| UpstreamError::Closed {
            address: address.to_string(),
            reason: reason.clone(),
        });
        let _ = waiter.reply.send(Err(error));
    }
}

async fn write_loop(
    address: String,
    mut write: WriteHalf<Stream>,
    mut rx: mpsc::Receiver<Outgoing>,
    outstanding: Arc<Mutex<Outstanding>>,
) {
    while let Some(out) = rx.recv().await {
        if let Some(waiter) = out.waiter {
            let mut o = outstanding.lock();
            if let Some(reason) = &o.closed {
                let _ = waiter.reply.send(Err(UpstreamError::Closed {
                    address: address.clone(),
                    reason: reason.clone(),
                }));
                continue;
            }
            o.queue.push_back(waiter);
        }
        let mut result = write.write_all(&out.frame).await;
        // Frames queued behind this one go out in the same flush.
        if result.is_ok() && rx.is_empty() {
            result = write.flush().await;
        }
        if let Err(e) = result {
            fail_all(&address, &outstanding, None, format!("write failed: {e}"));
            return;
        }
    }
}

async fn read_loop(
    address: String,
    mut read: ReadHalf<Stream>,
    limit: i32,
    outstanding: Arc<Mutex<Outstanding>>,
) {
    loop {
        let frame = match read_response(&mut read, limit).await {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                fail_all(
                    &address,
                    &outstanding,
                    None,
                    "closed by the upstream".into(),
                );
                return;
            }
            Err(source) => {
                let reason = format!("bad response frame: {source}");
                let error = UpstreamError::Frame {
                    address: address.clone(),
                    source,
                };
                fail_all(&address, &outstanding, Some(error), reason);
                return;
            }
        };
        let got = frame::correlation_id(&frame).unwrap_or(-1);
        let oldest = outstanding.lock().queue.pop_front();
        match oldest {
            Some(waiter) if waiter.correlation == got => {
                let _ = waiter.reply.send(Ok(frame));
            }
            Some(waiter) => {
                let reason = format!(
                    "response to correlation id {got} where {} ({:?}) was due",
                    waiter.correlation, waiter.api
                );
                let _ = waiter.reply.send(Err(UpstreamError::Correlation {
                    address: address.clone(),
                    expected: waiter.correlation,
                    got,
                }));
                fail_all(&address, &outstanding, None, reason);
                return;
            }
            None => {
                let reason =
                    format!("response to correlation id {got}, but no request is outstanding");
                fail_all(&address, &outstanding, None, reason);
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
