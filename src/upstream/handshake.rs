//! The sequential exchanges that open a [`super::Connection`], before pipelining starts: TCP
//! (every resolved address tried), TLS, ApiVersions (retried in the highest version both sides
//! accept when the upstream refuses ours), then the SASL login.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes, VersionRange};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::connection::{millis, ConnectOptions, Stream};
use super::error::UpstreamError;
use super::frame::{self, read_response};
use super::sasl_client::{Next, SaslClient, SaslClientError};
use super::secret::Credential;
use super::tls::server_name;
use super::versions::ApiVersionRanges;

/// The version of ApiVersions asked first; an upstream that does not accept it answers in v0
/// with its range, and the exchange is repeated in the highest version both accept.
const API_VERSIONS_VERSION: i16 = 3;

/// The sequential exchanges before pipelining starts.
pub(super) struct Setup<'a> {
    pub(super) address: String,
    pub(super) options: &'a ConnectOptions,
    pub(super) correlation: i32,
}

impl Setup<'_> {
    pub(super) async fn open(&self) -> Result<Stream, UpstreamError> {
        let timeout = self.options.connect_timeout;
        let opened = tokio::time::timeout(timeout, async {
            let tcp = self.tcp().await?;
            match &self.options.tls {
                None => Ok::<Stream, UpstreamError>(Box::new(tcp)),
                Some(config) => {
                    let host = crate::config::parse_host_port(&self.address)
                        .map(|(h, _)| h)
                        .unwrap_or_default();
                    let name =
                        server_name(&host).map_err(|message| UpstreamError::TlsSettings {
                            address: self.address.clone(),
                            message,
                        })?;
                    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                    let tls = connector.connect(name, tcp).await.map_err(|source| {
                        UpstreamError::TlsHandshake {
                            address: self.address.clone(),
                            source,
                        }
                    })?;
                    Ok(Box::new(tls) as Stream)
                }
            }
        })
        .await;
        opened.unwrap_or_else(|_| {
            Err(UpstreamError::ConnectTimeout {
                address: self.address.clone(),
                timeout_ms: millis(timeout),
            })
        })
    }

    /// TCP to the first resolved address that accepts.
    async fn tcp(&self) -> Result<TcpStream, UpstreamError> {
        let addrs = tokio::net::lookup_host(&self.address)
            .await
            .map_err(|source| UpstreamError::Resolve {
                address: self.address.clone(),
                source,
            })?;
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address resolved");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok(tcp);
                }
                Err(e) => last = e,
            }
        }
        Err(UpstreamError::Connect {
            address: self.address.clone(),
            source: last,
        })
    }

    /// One request and its response, nothing else in flight.
    async fn exchange<Req: Encodable, Resp: Decodable>(
        &mut self,
        stream: &mut Stream,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, UpstreamError> {
        let body = self.exchange_raw(stream, api, version, request).await?;
        self.decode(api, version, body)
    }

    fn decode<Resp: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        mut body: Bytes,
    ) -> Result<Resp, UpstreamError> {
        Resp::decode(&mut body, version).map_err(|e| UpstreamError::Decode {
            address: self.address.clone(),
            api,
            version,
            message: e.to_string(),
        })
    }

    /// The response body (header removed) of one request.
    async fn exchange_raw<Req: Encodable>(
        &mut self,
        stream: &mut Stream,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Bytes, UpstreamError> {
        let address = self.address.clone();
        let encode_error = |e: anyhow::Error| UpstreamError::Encode {
            address: address.clone(),
            api,
            version,
            message: e.to_string(),
        };
        let mut body = BytesMut::new();
        request.encode(&mut body, version).map_err(encode_error)?;
        self.correlation += 1;
        let correlation = self.correlation;
        let frame = frame::encode_request(
            api,
            version,
            correlation,
            Some(&self.options.client_id),
            &body,
        )
        .map_err(encode_error)?;
        let timeout = self.options.request_timeout;
        let limit = self.options.max_response_bytes;
        let exchanged = tokio::time::timeout(timeout, async {
            stream.write_all(&frame).await?;
            stream.flush().await?;
            read_response(stream, limit).await
        })
        .await;
        let mut response = match exchanged {
            Err(_) => {
                return Err(UpstreamError::Timeout {
                    address,
                    api,
                    timeout_ms: millis(timeout),
                })
            }
            Ok(Err(source)) => return Err(UpstreamError::Frame { address, source }),
            Ok(Ok(None)) => {
                return Err(UpstreamError::Closed {
                    address,
                    reason: format!("closed by the upstream before answering {api:?}"),
                })
            }
            Ok(Ok(Some(response))) => response,
        };
        let header = ResponseHeader::decode(&mut response, api.response_header_version(version))
            .map_err(|e| UpstreamError::Decode {
                address: address.clone(),
                api,
                version,
                message: format!("response header: {e}"),
            })?;
        if header.correlation_id != correlation {
            return Err(UpstreamError::Correlation {
                address,
                expected: correlation,
                got: header.correlation_id,
            });
        }
        Ok(response)
    }

    pub(super) async fn api_versions(
        &mut self,
        stream: &mut Stream,
    ) -> Result<ApiVersionRanges, UpstreamError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("palisade-gateway"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let api = ApiKey::ApiVersions;
        let body = self
            .exchange_raw(stream, api, API_VERSIONS_VERSION, &request)
            .await?;
        // Every version starts with the error code; UNSUPPORTED_VERSION comes as v0.
        let code = body
            .get(..2)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map_or(0, i16::from_be_bytes);
        let response: ApiVersionsResponse = if code == UNSUPPORTED_VERSION {
            let v0: ApiVersionsResponse = self.decode(api, 0, body)?;
            let version = ApiVersionRanges::from_response(&v0)
                .highest_common(
                    api,
                    VersionRange {
                        min: 0,
                        max: API_VERSIONS_VERSION,
                    },
                )
                .ok_or_else(|| UpstreamError::ErrorCode {
                    address: self.address.clone(),
                    api,
                    code,
                })?;
            self.exchange(stream, api, version, &request).await?
        } else {
            self.decode(api, API_VERSIONS_VERSION, body)?
        };
        if response.error_code != 0 {
            return Err(UpstreamError::ErrorCode {
                address: self.address.clone(),
                api,
                code: response.error_code,
            });
        }
        Ok(ApiVersionRanges::from_response(&response))
    }

    /// SASL: handshake, then as many SaslAuthenticate rounds as the mechanism takes. Returns
    /// when the session must be renewed, if the upstream limits it.
    pub(super) async fn login(
        &mut self,
        stream: &mut Stream,
        versions: &ApiVersionRanges,
        credential: &Credential,
    ) -> Result<Option<Instant>, UpstreamError> {
        let username = credential.username.clone();
        let mechanism = credential.mechanism.name();
        let handshake: SaslHandshakeResponse = self
            .exchange(
                stream,
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism)),
            )
            .await?;
        if handshake.error_code != 0 {
            return Err(UpstreamError::SaslMechanism {
                address: self.address.clone(),
                mechanism: mechanism.to_string(),
                offered: handshake
                    .mechanisms
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let version = versions
            .highest_common(ApiKey::SaslAuthenticate, VersionRange { min: 0, max: 2 })
            .ok_or_else(|| UpstreamError::UnsupportedVersion {
                address: self.address.clone(),
                api: ApiKey::SaslAuthenticate,
                version: 2,
                range: versions.describe(ApiKey::SaslAuthenticate),
            })?;
        let address = self.address.clone();
        let client_error = |source| UpstreamError::SaslClient {
            address: address.clone(),
            username: username.clone(),
            source,
        };
        let mut client = SaslClient::new(credential).map_err(client_error)?;
        let mut message = client.start().map_err(client_error)?;
        loop {
            let started = Instant::now();
            let response: SaslAuthenticateResponse = self
                .exchange(
                    stream,
                    ApiKey::SaslAuthenticate,
                    version,
                    &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message)),
                )
                .await?;
            if response.error_code != 0 {
                return Err(UpstreamError::SaslRefused {
                    address: self.address.clone(),
                    username,
                    code: response.error_code,
                    message: response
                        .error_message
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                });
            }
            // PBKDF2 runs off the async threads.
            let auth_bytes = response.auth_bytes;
            let (returned, next) = tokio::task::spawn_blocking(move || {
                let next = client.step(&auth_bytes);
                (client, next)
            })
            .await
            .map_err(|_| UpstreamError::SaslClient {
                address: self.address.clone(),
                username: username.clone(),
                source: SaslClientError::Internal("login task failed"),
            })?;
            client = returned;
            match next.map_err(client_error)? {
                Next::Send(m) => message = m,
                Next::Done => {
                    let lifetime = u64::try_from(response.session_lifetime_ms).unwrap_or(0);
                    // Retired at 90% of the session so no request meets the upstream's cut-off.
                    return Ok((lifetime > 0)
                        .then(|| started.checked_add(Duration::from_millis(lifetime / 10 * 9)))
                        .flatten());
                }
            }
        }
    }
}

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;
