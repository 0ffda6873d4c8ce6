//! A client connection's lane to the backend: which upstream node the connection stands for,
//! and the backend's state for that one connection.
//!
//! Gateway mode gives every client connection its own upstream connection, to the node the
//! client addressed. Kafka serves one request of a connection at a time, so a consumer's
//! long-polling Fetch on a shared connection would hold up every other client's requests
//! behind it; and the upstream's quotas, throttling and logs then see one client per
//! connection, as they would without the gateway. The local backend needs no such state.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::upstream::Connection;

/// Shared by every request of one client connection (cheap to clone).
#[derive(Clone, Default, Debug)]
pub struct Lane(Arc<LaneState>);

#[derive(Default, Debug)]
struct LaneState {
    node: Option<i32>,
    upstream: Mutex<Option<Arc<Connection>>>,
}

impl Lane {
    /// The lane of a connection that addressed upstream node `node` (`None`: the bootstrap
    /// address, or broker mode).
    pub fn new(node: Option<i32>) -> Self {
        Lane(Arc::new(LaneState {
            node,
            upstream: Mutex::new(None),
        }))
    }

    /// The upstream node the connection addressed, if any.
    pub fn node(&self) -> Option<i32> {
        self.0.node
    }

    /// The lane's upstream connection, opened on first use (the gateway backend's).
    pub(crate) fn upstream(&self) -> &Mutex<Option<Arc<Connection>>> {
        &self.0.upstream
    }
}
