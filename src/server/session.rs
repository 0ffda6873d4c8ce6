//! A connection's security state: who it is, and on SASL listeners the exchange that
//! establishes it (SaslHandshake v1 + SaslAuthenticate, KIP-368 re-authentication).
//!
//! The gate is the one place that decides what an unauthenticated connection may send: on a
//! SASL listener only ApiVersions, SaslHandshake and SaslAuthenticate, each checked by API key
//! before the body is decoded. "Authenticated" means a verified principal, never "the
//! exchange reached its last message".

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

pub use crate::api::router::SaslOutcome;
use crate::config::SecurityProtocol;
use crate::principal::{attempted_name, mechanism_name, AuthMethod, Principal};
use crate::sasl::{Authenticator, SharedCredentials, Step, UserFingerprint};

/// Security settings a session needs, fixed per listener.
#[derive(Clone)]
pub struct SessionPolicy {
    pub protocol: SecurityProtocol,
    pub mechanisms: Vec<String>,
    pub credentials: SharedCredentials,
    /// KIP-368 maximum session lifetime; `None` = unlimited.
    pub lifetime: Option<Duration>,
    /// Delays refused logins, doubling per repeated failure from one address.
    pub throttle: std::sync::Arc<super::login_throttle::LoginThrottle>,
    pub pre_auth_max_frame_bytes: i32,
    pub max_frame_bytes: i32,
    pub auth_timeout: Duration,
}

/// Where a session reports logins: the audit trail and the metrics.
#[derive(Clone, Default)]
pub struct Observer {
    pub audit: crate::audit::Audit,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub listener: String,
}

pub struct Session {
    policy: SessionPolicy,
    observer: Observer,
    peer: std::net::IpAddr,
    principal: Principal,
    authenticated: bool,
    exchange: Option<(&'static str, Authenticator)>,
    fingerprint: Option<UserFingerprint>,
    expires: Option<Instant>,
    /// Unauthenticated SASL connections must log in before this instant.
    deadline: Instant,
}

impl Session {
    /// A new connection's session; `tls_principal` is the mapped client certificate, if any.
    /// `accepted` is when the TCP connection was accepted: the login deadline covers the TLS
    /// handshake and the SASL exchange together.
    pub fn new(
        policy: SessionPolicy,
        peer: std::net::IpAddr,
        accepted: Instant,
        tls_principal: Option<String>,
    ) -> Self {
        let principal = match tls_principal {
            Some(name) => Principal {
                name,
                method: AuthMethod::Mtls,
            },
            None => Principal::anonymous(),
        };
        let deadline = accepted + policy.auth_timeout;
        Session {
            authenticated: !policy.protocol.uses_sasl(),
            observer: Observer::default(),
            policy,
            peer,
            principal,
            exchange: None,
            fingerprint: None,
            expires: None,
            deadline,
        }
    }

    /// Reports logins to `observer` (the broker's audit and metrics).
    pub fn observed_by(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Who this session is, for audit events.
    pub fn origin(&self) -> crate::audit::Origin {
        crate::audit::Origin {
            principal: (!self.principal.is_anonymous() || self.authenticated)
                .then(|| self.principal.to_string()),
            source_ip: Some(self.peer.to_string()),
            listener: Some(self.observer.listener.clone()),
            mechanism: Some(self.principal.method.name().to_string()),
            client_id: None,
        }
    }

    /// Audits a login attempt that ended (`mechanism` as negotiated). `attempted` is the user
    /// name a failed attempt claimed (already escaped and bounded): brute force against one
    /// account shows in the trail under that account.
    fn audit_login(
        &self,
        reauth: bool,
        mechanism: &str,
        ok: bool,
        reason: Option<&str>,
        attempted: Option<&str>,
    ) {
        let result = if ok { "success" } else { "failure" };
        self.observer
            .metrics
            .logins
            .with(&[mechanism, result])
            .inc();
        let mut origin = self.origin();
        origin.mechanism = Some(mechanism.to_string());
        if let (None, Some(name)) = (&origin.principal, attempted) {
            origin.principal = Some(format!("User:{name}"));
        }
        let mut event = if reauth {
            crate::audit::Event::reauthentication(&origin, ok, reason)
        } else {
            crate::audit::Event::authentication(&origin, ok, reason)
        };
        if let Some(name) = attempted {
            event = event.detail("attempted_user", name);
        }
        self.observer.audit.record(event);
    }

    /// The largest frame accepted in the current state.
    pub fn frame_limit(&self) -> i32 {
        if self.authenticated {
            self.policy.max_frame_bytes
        } else {
            self.policy
                .pre_auth_max_frame_bytes
                .min(self.policy.max_frame_bytes)
        }
    }

    /// Time left to finish logging in, while not yet authenticated.
    pub fn login_time_left(&self) -> Option<Duration> {
        (!self.authenticated).then(|| self.deadline.saturating_duration_since(Instant::now()))
    }

    /// When the SASL session ends unless the client re-authenticates (KIP-368).
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires
    }

    /// The user and credential fingerprint to watch, once authenticated by SASL.
    pub fn credential(&self) -> Option<(&str, UserFingerprint)> {
        self.fingerprint
            .map(|fp| (self.principal.name.as_str(), fp))
    }

    pub fn credentials(&self) -> &SharedCredentials {
        &self.policy.credentials
    }

    /// Whether a request with `api_key` may be decoded and served now.
    pub fn gate(&self, api_key: ApiKey) -> Result<(), String> {
        let sasl_api = matches!(
            api_key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        );
        if !self.policy.protocol.uses_sasl() || sasl_api {
            return Ok(());
        }
        if !self.authenticated {
            return Err(format!("{api_key:?} before authentication"));
        }
        if self.expires.is_some_and(|e| Instant::now() >= e) {
            return Err(format!(
                "{api_key:?} after the session of `{}` expired without re-authentication",
                self.principal.name
            ));
        }
        Ok(())
    }

    pub fn handshake(
        &mut self,
        req: &SaslHandshakeRequest,
        version: i16,
    ) -> (SaslHandshakeResponse, SaslOutcome) {
        let offered: Vec<StrBytes> = self
            .policy
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(offered);
        if !self.policy.protocol.uses_sasl() {
            return (
                response.with_error_code(ResponseError::IllegalSaslState.code()),
                SaslOutcome::Close("SaslHandshake on a listener without SASL".into()),
            );
        }
        if version == 0 {
            return (
                response.with_error_code(ResponseError::UnsupportedVersion.code()),
                SaslOutcome::Close(
                    "SaslHandshake v0 (unframed SASL tokens) is not supported".into(),
                ),
            );
        }
        if self.exchange.is_some() {
            return (
                response.with_error_code(ResponseError::IllegalSaslState.code()),
                SaslOutcome::Close("SaslHandshake during an exchange".into()),
            );
        }
        let wanted = req.mechanism.as_str();
        let offered = self.policy.mechanisms.iter().any(|m| m == wanted);
        let authenticator = mechanism_name(wanted).filter(|_| offered).and_then(|m| {
            Authenticator::new(m, &self.policy.credentials.current())
                .ok()
                .map(|a| (m, a))
        });
        match authenticator {
            Some(exchange) => {
                self.exchange = Some(exchange);
                (response, SaslOutcome::Continue)
            }
            None => {
                self.audit_login(
                    self.authenticated,
                    "unsupported",
                    false,
                    Some("unsupported SASL mechanism"),
                    None,
                );
                (
                    response.with_error_code(ResponseError::UnsupportedSaslMechanism.code()),
                    SaslOutcome::Close(format!(
                        "unsupported SASL mechanism `{}`",
                        wanted.chars().take(64).collect::<String>()
                    )),
                )
            }
        }
    }

    pub async fn authenticate(
        &mut self,
        req: &SaslAuthenticateRequest,
        version: i16,
    ) -> (SaslAuthenticateResponse, SaslOutcome) {
        let response = SaslAuthenticateResponse::default();
        let Some((mechanism, mut authenticator)) = self.exchange.take() else {
            return (
                response
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate without a SaslHandshake",
                    ))),
                SaslOutcome::Close("SaslAuthenticate without a SaslHandshake".into()),
            );
        };
        let result = authenticator.step(&req.auth_bytes);
        match result {
            Ok(Step::Continue(message)) => {
                self.exchange = Some((mechanism, authenticator));
                (
                    response.with_auth_bytes(Bytes::from(message)),
                    SaslOutcome::Continue,
                )
            }
            Ok(Step::Done {
                server_final,
                principal,
            }) => {
                if self.authenticated
                    && self.fingerprint.is_some()
                    && principal != self.principal.name
                {
                    return self
                        .fail(
                            response,
                            mechanism,
                            ResponseError::SaslAuthenticationFailed.code(),
                            "re-authentication as a different principal is not allowed",
                            Some(&attempted_name(&principal)),
                        )
                        .await;
                }
                let reauth = self.authenticated;
                self.authenticated = true;
                self.principal = Principal {
                    name: principal,
                    method: AuthMethod::Sasl(mechanism),
                };
                self.fingerprint = authenticator.fingerprint();
                self.policy.throttle.succeeded(self.peer);
                self.expires = self.policy.lifetime.map(|l| Instant::now() + l);
                tracing::info!(
                    principal = %self.principal,
                    mechanism,
                    reauthentication = reauth,
                    "authenticated"
                );
                self.audit_login(reauth, mechanism, true, None, None);
                let mut response = response.with_auth_bytes(Bytes::from(server_final));
                if version >= 1 {
                    let ms = self
                        .policy
                        .lifetime
                        .map_or(0, |l| i64::try_from(l.as_millis()).unwrap_or(i64::MAX));
                    response = response.with_session_lifetime_ms(ms);
                }
                (response, SaslOutcome::Continue)
            }
            Err(e) => {
                let code = e.kafka_error_code();
                let attempted = authenticator.attempted_user().map(attempted_name);
                self.fail(
                    response,
                    mechanism,
                    code,
                    &e.to_string(),
                    attempted.as_deref(),
                )
                .await
            }
        }
    }

    /// A failed login: answered only after the configured delay (slows guessing), then closed.
    /// `attempted` is the user name it claimed, escaped and bounded ([`attempted_name`]).
    async fn fail(
        &mut self,
        response: SaslAuthenticateResponse,
        mechanism: &'static str,
        code: i16,
        message: &str,
        attempted: Option<&str>,
    ) -> (SaslAuthenticateResponse, SaslOutcome) {
        tracing::warn!(
            peer = %self.peer,
            mechanism,
            user = %attempted.unwrap_or("-"),
            "login refused: {message}"
        );
        self.audit_login(
            self.authenticated,
            mechanism,
            false,
            Some(message),
            attempted,
        );
        let delay = self.policy.throttle.failed(self.peer);
        let failures = self.policy.throttle.failures(self.peer);
        if failures > 1 {
            self.observer.metrics.throttled.with(&["login"]).inc();
            self.observer
                .audit
                .record(crate::audit::Event::login_throttled(
                    &self.origin(),
                    failures,
                    u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                ));
        }
        tokio::time::sleep(delay).await;
        (
            response
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message.to_string()))),
            SaslOutcome::Close(format!("login refused ({mechanism}): {message}")),
        )
    }
}

/// The router reaches the login through this (the session is the server's, the routing the
/// API layer's).
impl crate::api::router::Login for Session {
    fn principal(&self) -> &Principal {
        Session::principal(self)
    }

    fn gate(&self, api_key: ApiKey) -> Result<(), String> {
        Session::gate(self, api_key)
    }

    fn handshake(
        &mut self,
        req: &SaslHandshakeRequest,
        version: i16,
    ) -> (SaslHandshakeResponse, SaslOutcome) {
        Session::handshake(self, req, version)
    }

    fn authenticate(
        &mut self,
        req: &SaslAuthenticateRequest,
        version: i16,
    ) -> impl std::future::Future<Output = (SaslAuthenticateResponse, SaslOutcome)> + Send {
        Session::authenticate(self, req, version)
    }
}
