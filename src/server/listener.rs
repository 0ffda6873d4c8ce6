//! The accept loop: one per configured listener, bounded by a shared connection semaphore.

use std::sync::Arc;

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::broker::Broker;
use crate::server::connection::{self, ConnectionInfo};
use crate::server::limits::Admission;

/// A bound listener and what it advertises.
pub struct Listener {
    pub name: String,
    pub socket: TcpListener,
    pub advertised_host: String,
    pub advertised_port: i32,
}

/// Accepts connections until shutdown. Each connection holds a permit of `limit` until it
/// ends, which is also how shutdown knows when every connection has finished.
pub async fn accept_loop(
    listener: Listener,
    broker: Arc<Broker>,
    limit: Arc<Semaphore>,
    admission: Arc<Admission>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Refusals are logged at most once a second with a count, so a flood cannot flood the log.
    let mut refusals = 0u64;
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        // Take a permit before accepting: at the limit, new clients wait in the backlog
        // instead of costing us a task and buffers.
        let permit = tokio::select! {
            _ = shutdown.changed() => return,
            p = limit.clone().acquire_owned() => match p {
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
        let admitted = match admission.admit(peer.ip()) {
            Ok(a) => a,
            Err(refused) => {
                refusals += 1;
                if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(listener = %listener.name, refused_since_last_log = refusals, "connection refused: {refused}");
                    refusals = 0;
                    last_refusal_log = Some(Instant::now());
                }
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let info = ConnectionInfo {
            peer,
            listener: listener.name.clone(),
            advertised_host: listener.advertised_host.clone(),
            advertised_port: listener.advertised_port,
        };
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            connection::serve(stream, info, broker, shutdown).await;
            drop(admitted);
            drop(permit);
        });
    }
}
