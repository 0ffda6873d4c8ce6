//! Tasks that run beside the listeners for the broker's lifetime: the metrics endpoint, the
//! audit of credential store changes and the daily TLS expiry check. Policy and TLS reloads are
//! audited as they happen (`audit::reloads`), attached here.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::server::listener::Listener;

pub struct SideTasks {
    pub metrics_address: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds the metrics endpoint (if configured) and starts the side tasks.
pub async fn start(
    broker: &Arc<Broker>,
    listeners: &[Listener],
) -> Result<SideTasks, std::io::Error> {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut metrics_address = None;
    if let Some(addr) = broker.config.metrics.bind {
        let socket = crate::metrics::http::bind(addr).await?;
        metrics_address = socket.local_addr().ok();
        tracing::info!(address = ?metrics_address, "metrics endpoint listening");
        tasks.push(tokio::spawn(crate::metrics::http::serve(
            socket,
            broker.metrics.clone(),
            stopped.clone(),
        )));
    }
    tasks.push(tokio::spawn(crate::audit::reloads::credentials(
        broker.audit.clone(),
        broker.metrics.clone(),
        broker.credentials.clone(),
        stopped.clone(),
    )));
    crate::audit::reloads::policies(&broker.authorizer, &broker.audit, &broker.metrics);
    let tls: Vec<_> = listeners
        .iter()
        .filter_map(|l| l.tls.clone().map(|t| (l.name.clone(), t)))
        .collect();
    for (listener, reloader) in &tls {
        crate::audit::reloads::tls(listener, reloader, &broker.audit, &broker.metrics);
    }
    tasks.push(tokio::spawn(crate::audit::reloads::tls_expiries(
        tls,
        broker.metrics.clone(),
        stopped,
    )));
    Ok(SideTasks {
        metrics_address,
        stop,
        tasks,
    })
}

impl SideTasks {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
