//! The accept loop: one per configured listener, bounded by a shared connection semaphore.

use std::sync::Arc;

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::broker::Broker;
use crate::server::connection::{self, ConnectionInfo};
use crate::server::limits::Admission;
use crate::server::session::{Session, SessionPolicy};
use crate::tls::TlsReloader;

/// Completes the TLS handshake (within the login deadline), maps the client certificate to a
/// principal, then serves the connection. Every new handshake uses the material current at
/// accept time, so rotated certificates apply to new connections only.
async fn serve_tls(
    stream: tokio::net::TcpStream,
    mut info: ConnectionInfo,
    broker: Arc<Broker>,
    policy: SessionPolicy,
    tls: &TlsReloader,
    accepted_at: Instant,
    shutdown: watch::Receiver<bool>,
) {
    // A gateway's SNI listener routes by the server name, refused in the handshake when it
    // names no node.
    let sni = broker
        .gateway
        .as_ref()
        .and_then(|g| g.sni_domain(&info.listener));
    let handshake = async {
        match sni {
            None => tls.acceptor().accept(stream).await.map(|s| (s, None)),
            Some(domain) => crate::gateway::sni::accept(stream, domain, tls.current())
                .await
                .map(|c| (c.stream, Some(c.route)))
                .map_err(|e| std::io::Error::other(e.to_string())),
        }
    };
    let accepted = tokio::time::timeout(policy.auth_timeout, handshake).await;
    let stream = match accepted {
        Ok(Ok((s, route))) => {
            if let Some(crate::gateway::addressing::Route::Node(node)) = route {
                info.upstream_node = Some(node);
            }
            s
        }
        Ok(Err(e)) => {
            tracing::warn!(peer = %info.peer, listener = %info.listener, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::warn!(peer = %info.peer, listener = %info.listener, "TLS handshake timed out");
            return;
        }
    };
    let principal = match crate::tls::peer_principal(stream.get_ref().1, tls.principal_mapper()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(peer = %info.peer, listener = %info.listener, "client certificate refused: {e}");
            audit_certificate(&broker, &info, None, Some(&e.to_string()));
            return;
        }
    };
    if let Some(name) = &principal {
        audit_certificate(&broker, &info, Some(name), None);
    }
    let session = Session::new(policy, info.peer.ip(), accepted_at, principal)
        .observed_by(observer(&broker, &info.listener));
    connection::serve(stream, info, broker, session, shutdown).await;
}

/// Audits a TLS client certificate accepted (`principal`) or refused (`refusal`).
fn audit_certificate(
    broker: &Broker,
    info: &ConnectionInfo,
    principal: Option<&str>,
    refusal: Option<&str>,
) {
    let ok = refusal.is_none();
    broker
        .metrics
        .logins
        .with(&["mtls", if ok { "success" } else { "failure" }])
        .inc();
    let origin = crate::audit::Origin {
        principal: principal.map(str::to_string),
        source_ip: Some(info.peer.ip().to_string()),
        listener: Some(info.listener.clone()),
        mechanism: Some("mtls".to_string()),
        client_id: None,
    };
    broker
        .audit
        .record(crate::audit::Event::authentication(&origin, ok, refusal));
}

fn observer(broker: &Broker, listener: &str) -> crate::server::session::Observer {
    crate::server::session::Observer {
        audit: broker.audit.clone(),
        metrics: broker.metrics.clone(),
        listener: listener.to_string(),
    }
}

/// A bound listener and what it advertises.
pub struct Listener {
    pub name: String,
    pub socket: TcpListener,
    pub advertised_host: String,
    pub advertised_port: i32,
    /// TLS material (reloaded from disk) for SSL and SASL_SSL listeners.
    pub tls: Option<Arc<TlsReloader>>,
    pub policy: SessionPolicy,
}

/// What every connection of one listener shares: its name, security and advertised address.
/// A gateway's per-node ports serve their listener's connections with the same.
#[derive(Clone)]
pub struct ListenerMeta {
    pub name: String,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub tls: Option<Arc<TlsReloader>>,
    pub policy: SessionPolicy,
}

impl Listener {
    pub fn meta(&self) -> ListenerMeta {
        ListenerMeta {
            name: self.name.clone(),
            advertised_host: self.advertised_host.clone(),
            advertised_port: self.advertised_port,
            tls: self.tls.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// What the accept loops of the whole server share: the connection bound, the per-address
/// limits and the shutdown signal.
#[derive(Clone)]
pub struct Gate {
    pub broker: Arc<Broker>,
    pub limit: Arc<Semaphore>,
    pub admission: Arc<Admission>,
    pub shutdown: watch::Receiver<bool>,
}

/// Refused connections, logged at most once a second with a count, so a flood cannot flood
/// the log.
#[derive(Default)]
struct Refusals {
    count: u64,
    last_log: Option<Instant>,
}

/// Accepts connections until shutdown. Each connection holds a permit of `limit` until it
/// ends, which is also how shutdown knows when every connection has finished.
pub async fn accept_loop(listener: Listener, gate: Gate) {
    let meta = listener.meta();
    let mut shutdown = gate.shutdown.clone();
    let mut refusals = Refusals::default();
    loop {
        // Take a permit before accepting: at the limit, new clients wait in the backlog
        // instead of costing us a task and buffers.
        let permit = tokio::select! {
            _ = shutdown.changed() => return,
            p = gate.limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = listener.socket.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(listener = %listener.name, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        serve_accepted(&gate, &meta, stream, peer, None, permit, &mut refusals);
    }
}

/// Serves the connections of one listener's per-node ports (gateway mode), as
/// [`accept_loop`] serves the listener's own port: the same limits, security and session,
/// each connection standing for its upstream node.
pub async fn node_accept_loop(
    meta: ListenerMeta,
    mut ports: crate::gateway::node_ports::NodePortListeners,
    gate: Gate,
) {
    use crate::gateway::node_ports::NodePortEvent;
    let mut shutdown = gate.shutdown.clone();
    let mut refusals = Refusals::default();
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => return,
            e = ports.next() => match e {
                Some(e) => e,
                None => return,
            },
        };
        match event {
            NodePortEvent::Bound { node_id, addr } => {
                tracing::info!(listener = %meta.name, node_id, address = %addr, "listening for upstream node");
            }
            NodePortEvent::Failed(e) => {
                tracing::warn!(listener = %meta.name, "{e}");
            }
            NodePortEvent::Accepted(c) => {
                let permit = tokio::select! {
                    _ = shutdown.changed() => return,
                    p = gate.limit.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                };
                serve_accepted(
                    &gate,
                    &meta,
                    c.stream,
                    c.peer,
                    Some(c.node_id),
                    permit,
                    &mut refusals,
                );
            }
        }
    }
}

/// Admits an accepted connection (per-address limits) and serves it on a task of its own.
fn serve_accepted(
    gate: &Gate,
    meta: &ListenerMeta,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    upstream_node: Option<i32>,
    permit: tokio::sync::OwnedSemaphorePermit,
    refusals: &mut Refusals,
) {
    let broker = &gate.broker;
    let accepted_at = Instant::now();
    let admitted = match gate.admission.admit(peer.ip()) {
        Ok(a) => a,
        Err(refused) => {
            refusals.count += 1;
            broker.metrics.throttled.with(&["connection"]).inc();
            if refusals
                .last_log
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
            {
                tracing::warn!(listener = %meta.name, refused_since_last_log = refusals.count, "connection refused: {refused}");
                // Audited like the log line: one event per second standing for the count.
                broker.audit.record(crate::audit::Event::connection_limited(
                    &meta.name,
                    &peer.ip().to_string(),
                    &refused.to_string(),
                    refusals.count,
                ));
                refusals.count = 0;
                refusals.last_log = Some(Instant::now());
            }
            drop(stream);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let info = ConnectionInfo {
        peer,
        listener: meta.name.clone(),
        tls: meta.tls.is_some(),
        advertised_host: meta.advertised_host.clone(),
        advertised_port: meta.advertised_port,
        upstream_node,
    };
    broker.metrics.connections.with(&[&meta.name]).inc();
    let open = broker.metrics.open_connections.with(&[&meta.name]);
    open.inc();
    let broker = broker.clone();
    let shutdown = gate.shutdown.clone();
    let policy = meta.policy.clone();
    let tls = meta.tls.clone();
    tokio::spawn(async move {
        match tls {
            None => {
                let session = Session::new(policy, info.peer.ip(), accepted_at, None)
                    .observed_by(observer(&broker, &info.listener));
                connection::serve(stream, info, broker, session, shutdown).await;
            }
            Some(tls) => serve_tls(stream, info, broker, policy, &tls, accepted_at, shutdown).await,
        }
        open.dec();
        drop(admitted);
        drop(permit);
    });
}
