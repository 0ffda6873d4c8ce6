//! The state every request handler shares.

use std::sync::Arc;

use crate::config::Config;
use crate::group::GroupCoordinator;
use crate::storage::LogManager;

/// One running broker: configuration, logs and the group coordinator.
pub struct Broker {
    pub config: Arc<Config>,
    pub logs: Arc<LogManager>,
    pub groups: Arc<GroupCoordinator>,
    pub node_id: i32,
    pub cluster_id: String,
}
