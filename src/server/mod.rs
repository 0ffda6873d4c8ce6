//! Listeners and connections: bind, accept, serve, and shut down gracefully.

pub mod connection;
pub mod frame;
pub mod limits;
pub mod listener;
pub mod login_throttle;
pub mod session;
pub mod side_tasks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::broker::Broker;
use crate::config::{parse_host_port, Config};
use listener::Listener;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("listener `{listener}`: {source}")]
    Tls {
        listener: String,
        source: crate::tls::TlsError,
    },
}

/// Binds every configured listener and loads its TLS material. Port 0 binds an ephemeral
/// port; the advertised port then follows the bound one.
pub async fn bind(
    config: &Config,
    credentials: &crate::sasl::SharedCredentials,
) -> Result<Vec<Listener>, BindError> {
    let mut out = Vec::new();
    // One throttle for all listeners: guessing on another port does not reset the count.
    let throttle = Arc::new(login_throttle::LoginThrottle::new(
        Duration::from_millis(config.sasl.failed_login_delay_ms),
        Duration::from_millis(config.sasl.max_failed_login_delay_ms),
    ));
    for l in &config.listeners {
        let tls = match &l.tls {
            Some(settings) => Some(Arc::new(
                crate::tls::TlsReloader::start(settings.clone()).map_err(|source| {
                    BindError::Tls {
                        listener: l.name.clone(),
                        source,
                    }
                })?,
            )),
            None => None,
        };
        let socket = TcpListener::bind(l.bind).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot bind listener `{}` to {}: {e}", l.name, l.bind),
            )
        })?;
        let local = socket.local_addr()?;
        let (host, port) = match l.advertised.as_deref().and_then(parse_host_port) {
            Some((host, port)) if l.bind.port() != 0 => (host, port),
            Some((host, _)) => (host, i32::from(local.port())),
            None => (local.ip().to_string(), i32::from(local.port())),
        };
        let policy = session::SessionPolicy {
            protocol: l.protocol,
            mechanisms: l.sasl_mechanisms.clone(),
            credentials: credentials.clone(),
            lifetime: match config.sasl.session_lifetime_ms {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            throttle: throttle.clone(),
            pre_auth_max_frame_bytes: config.sasl.pre_auth_max_frame_bytes,
            max_frame_bytes: config.limits.max_frame_bytes,
            auth_timeout: Duration::from_millis(config.sasl.auth_timeout_ms),
        };
        out.push(Listener {
            name: l.name.clone(),
            socket,
            advertised_host: host,
            advertised_port: port,
            tls,
            policy,
        });
    }
    Ok(out)
}

/// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
/// (up to the configured grace period) and returns.
pub async fn run(broker: Arc<Broker>, listeners: Vec<Listener>, shutdown: impl Future) {
    let max = broker.config.limits.max_connections;
    let limit = Arc::new(Semaphore::new(max));
    let admission = limits::Admission::new(broker.config.admission_limits());
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = listener::Gate {
        broker: broker.clone(),
        limit: limit.clone(),
        admission,
        shutdown: stop_rx,
    };
    let mut accepts = Vec::new();
    let node_ports = crate::gateway::serve::node_ports(&broker, &listeners);
    for (meta, ports) in node_ports {
        accepts.push(tokio::spawn(listener::node_accept_loop(
            meta,
            ports,
            gate.clone(),
        )));
    }
    for l in listeners {
        tracing::info!(listener = %l.name, address = ?l.socket.local_addr().ok(), "listening");
        accepts.push(tokio::spawn(listener::accept_loop(l, gate.clone())));
    }
    shutdown.await;
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    let _ = stop_tx.send(true);
    for a in accepts {
        let _ = a.await;
    }
    let grace = Duration::from_millis(broker.config.broker.shutdown_grace_ms);
    let drained = async {
        let Ok(max) = u32::try_from(max) else { return };
        let _ = limit.acquire_many(max).await;
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!("shutdown grace period over with connections still open");
    }
}
