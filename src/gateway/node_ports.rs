//! One listener per upstream node (the port-per-node scheme), following the set of nodes.
//!
//! The set of upstream nodes comes from a `watch` channel (the upstream client publishes what
//! Metadata says). When a node appears, its port ([`PortRange::listen_port`]) is bound and its
//! connections are handed out tagged with its node id. A port that cannot be bound (in use,
//! not permitted) or a node outside the range is reported once as [`NodePortEvent::Failed`],
//! with the port and node named, and tried again at the next change of the node set, or
//! after [`RETRY_FAILED`] (a port held by a process that has since exited frees up by itself).
//!
//! A node that disappears keeps its listener. The port belongs to that node id by the port
//! rule whatever happens, so closing it frees nothing for another node; and nodes leave
//! Metadata while they restart or are briefly partitioned: clients that still hold the old
//! Metadata then reach the gateway, which answers them with retriable errors, instead of a
//! refused connection. Listeners close when [`NodePortListeners`] is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::addressing::{PortRange, Unaddressable};

/// Events waiting for the caller; accept loops wait (the kernel's backlog holds connections)
/// when it is full.
const EVENT_QUEUE: usize = 64;
/// How long a node without a listener waits before its port is tried again.
pub const RETRY_FAILED: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the node listeners report.
#[derive(Debug)]
pub enum NodePortEvent {
    /// A node's port is bound and accepting.
    Bound { node_id: i32, addr: SocketAddr },
    /// A client connected to a node's port.
    Accepted(NodeConnection),
    /// A node could not get its listener; tried again when the node set changes.
    Failed(NodePortError),
}

/// A connection to one node's port.
#[derive(Debug)]
pub struct NodeConnection {
    pub node_id: i32,
    pub stream: TcpStream,
    pub peer: SocketAddr,
}

/// A node that has no listener.
#[derive(Debug, thiserror::Error)]
pub enum NodePortError {
    #[error("cannot listen on port {port} ({addr}) for upstream node {node_id}: {source}")]
    Bind {
        node_id: i32,
        port: u16,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("upstream node {node_id} gets no listener: {source}")]
    Unaddressable {
        node_id: i32,
        #[source]
        source: Unaddressable,
    },
}

impl NodePortError {
    /// The node left without a listener.
    pub fn node_id(&self) -> i32 {
        match self {
            Self::Bind { node_id, .. } | Self::Unaddressable { node_id, .. } => *node_id,
        }
    }
}

/// The listeners of every node seen so far; dropping this closes them all.
#[derive(Debug)]
pub struct NodePortListeners {
    events: mpsc::Receiver<NodePortEvent>,
    supervisor: JoinHandle<()>,
}

impl NodePortListeners {
    /// Starts following `nodes` (keyed by node id; the values are not read), binding each
    /// node's port on `bind_ip`. Must be called within a tokio runtime.
    pub fn start<T>(
        range: Arc<PortRange>,
        bind_ip: IpAddr,
        nodes: watch::Receiver<BTreeMap<i32, T>>,
    ) -> Self
    where
        T: Send + Sync + 'static,
    {
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        let supervisor = tokio::spawn(supervise(range, bind_ip, nodes, tx));
        Self { events, supervisor }
    }

    /// The next event. While this value lives the listeners keep running, even once nobody
    /// publishes node sets any more, so `None` means they stopped.
    pub async fn next(&mut self) -> Option<NodePortEvent> {
        self.events.recv().await
    }
}

impl Drop for NodePortListeners {
    fn drop(&mut self) {
        // The supervisor owns the accept loops (a JoinSet): aborting it closes every listener.
        self.supervisor.abort();
    }
}

async fn supervise<T>(
    range: Arc<PortRange>,
    bind_ip: IpAddr,
    mut nodes: watch::Receiver<BTreeMap<i32, T>>,
    events: mpsc::Sender<NodePortEvent>,
) {
    let mut listening = JoinSet::new();
    let mut bound: BTreeSet<i32> = BTreeSet::new();
    // Nodes whose failure was reported: reported once, until they are bound or leave.
    let mut reported: BTreeSet<i32> = BTreeSet::new();
    loop {
        let current: BTreeSet<i32> = nodes.borrow_and_update().keys().copied().collect();
        reported.retain(|id| current.contains(id));
        let mut bind_failed = false;
        let unbound: Vec<i32> = current.difference(&bound).copied().collect();
        for node_id in unbound {
            match bind(&range, bind_ip, node_id).await {
                Ok((listener, configured)) => {
                    let addr = listener.local_addr().unwrap_or(configured);
                    bound.insert(node_id);
                    reported.remove(&node_id);
                    listening.spawn(accept_loop(node_id, listener, events.clone()));
                    if events
                        .send(NodePortEvent::Bound { node_id, addr })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => {
                    bind_failed |= matches!(error, NodePortError::Bind { .. });
                    if reported.insert(node_id) {
                        tracing::warn!(%error, "gateway node listener");
                        if events.send(NodePortEvent::Failed(error)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        // A port in use may free up by itself; a node outside the range never gets a port.
        let retry = async {
            if !bind_failed {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(RETRY_FAILED).await;
        };
        tokio::select! {
            () = retry => {}
            changed = nodes.changed() => {
                if changed.is_err() {
                    // Nobody publishes nodes any more: keep serving the bound ones.
                    events.closed().await;
                    return;
                }
            }
            () = events.closed() => return,
        }
    }
}

async fn bind(
    range: &PortRange,
    bind_ip: IpAddr,
    node_id: i32,
) -> Result<(TcpListener, SocketAddr), NodePortError> {
    let port = range
        .listen_port(node_id)
        .map_err(|source| NodePortError::Unaddressable { node_id, source })?;
    let addr = SocketAddr::new(bind_ip, port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| NodePortError::Bind {
            node_id,
            port,
            addr,
            source,
        })?;
    Ok((listener, addr))
}

async fn accept_loop(node_id: i32, listener: TcpListener, events: mpsc::Sender<NodePortEvent>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let connection = NodeConnection {
                    node_id,
                    stream,
                    peer,
                };
                if events
                    .send(NodePortEvent::Accepted(connection))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(node_id, %error, "gateway node listener: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
