//! Consumer groups: the coordinator state machine (join, sync, heartbeat, leave, rebalance)
//! and durable committed offsets.
//!
//! This broker is a single node, so it coordinates every group. The classic Kafka group
//! protocol is implemented; KIP-848 (`ConsumerGroupHeartbeat`) is not.
//!
//! # Layout
//!
//! - [`member`]: one member and the answers parked for it during a rebalance.
//! - [`state`]: one group's data and the questions asked about it.
//! - [`rebalance`]: state transitions and the timed work (expiry, join deadlines).
//! - [`join`], [`sync`], [`heartbeat`]: the membership APIs (heartbeat also holds LeaveGroup).
//! - [`offsets`]: OffsetCommit / OffsetFetch; [`offset_store`]: their durable log.
//! - [`admin`]: ListGroups, DescribeGroups, DeleteGroups.
//! - [`reaper`]: the background task that expires sessions and ends join phases.
//!
//! All group state sits behind one synchronous lock that is never held across an `.await`:
//! delayed responses are `oneshot` channels awaited after the lock is released.
//!
//! For callers: `join_group` may take up to the group's rebalance timeout to answer and
//! `sync_group` until the leader's SyncGroup arrives (or the leader's session expires); both
//! are cancel-safe (dropping the future is harmless). Every method answers with a response,
//! errors included, and never panics on client input.

mod admin;
mod heartbeat;
mod join;
mod member;
mod offset_store;
mod offsets;
mod reaper;
mod rebalance;
mod state;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use parking_lot::Mutex;
use tokio::sync::Notify;

pub use state::GroupState;

use offset_store::OffsetStore;
use state::Group;

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("i/o error on `{path}`: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt group state in `{path}`: {reason}")]
    Corrupt {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// Who sent a request, as the coordinator needs it.
#[derive(Debug, Clone)]
pub struct MemberOrigin {
    pub client_id: String,
    pub client_host: String,
}

/// API versions the coordinator handles: `(api, min, max)`. ApiVersions advertises these.
///
/// OffsetCommit starts at v2 and OffsetFetch at v1 because `kafka-protocol` 0.18 cannot decode
/// older versions. OffsetCommit v9 / OffsetFetch v9 only matter to KIP-848 groups.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
];

/// The `(min, max)` versions of `api` the coordinator handles, if it handles it.
pub fn supported_versions(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
}

/// Coordinator settings (Kafka's `group.*` broker settings).
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// `group.initial.rebalance.delay.ms`: how long the first join of an empty group waits
    /// for more members. Kafka defaults to 3 s; zero keeps tests fast.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// `group.max.size`.
    pub max_group_size: usize,
    /// `offset.metadata.max.bytes`.
    pub max_metadata_bytes: usize,
    /// Largest protocol metadata (names and bytes of all protocols) one member may join with.
    pub max_member_metadata_bytes: usize,
    /// Most partitions one group may hold committed offsets for.
    pub max_offsets_per_group: usize,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            initial_rebalance_delay: Duration::ZERO,
            min_session_timeout: Duration::from_millis(1_000),
            max_session_timeout: Duration::from_millis(1_800_000),
            max_group_size: usize::MAX,
            max_metadata_bytes: 4096,
            max_member_metadata_bytes: 1024 * 1024,
            max_offsets_per_group: 100_000,
        }
    }
}

/// Shared coordinator state; the reaper task holds a `Weak` to it.
pub(crate) struct Inner {
    settings: GroupSettings,
    groups: Mutex<HashMap<String, Group>>,
    store: OffsetStore,
    /// Wakes the reaper when a new, possibly earlier, deadline appears.
    wake: Arc<Notify>,
    reaper_started: AtomicBool,
    closed: AtomicBool,
}

pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

impl GroupCoordinator {
    /// Loads group state and committed offsets from `<data>/groups/`.
    pub fn open(data_dir: &Path) -> Result<Arc<Self>, GroupError> {
        Self::open_with(data_dir, GroupSettings::default())
    }

    /// Like [`GroupCoordinator::open`] with explicit settings.
    pub fn open_with(data_dir: &Path, settings: GroupSettings) -> Result<Arc<Self>, GroupError> {
        let (store, records) = OffsetStore::open(&data_dir.join("groups"))?;
        let mut groups = HashMap::new();
        offsets::replay(&mut groups, records);
        // Compact on open: the log then holds one line per live offset.
        store.rewrite(&offsets::snapshot(&groups))?;
        tracing::info!(groups = groups.len(), "group coordinator opened");
        Ok(Arc::new(GroupCoordinator {
            inner: Arc::new(Inner {
                settings,
                groups: Mutex::new(groups),
                store,
                wake: Arc::new(Notify::new()),
                reaper_started: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            }),
        }))
    }

    pub fn settings(&self) -> &GroupSettings {
        &self.inner.settings
    }

    pub async fn join_group(
        &self,
        origin: &MemberOrigin,
        req: JoinGroupRequest,
        version: i16,
    ) -> JoinGroupResponse {
        self.inner.ensure_reaper();
        self.inner.join_group(origin, req, version).await
    }

    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        self.inner.ensure_reaper();
        self.inner.sync_group(req, version).await
    }

    pub async fn heartbeat(&self, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
        self.inner.ensure_reaper();
        self.inner.heartbeat(req, version)
    }

    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        self.inner.ensure_reaper();
        self.inner.leave_group(req, version)
    }

    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        self.inner.ensure_reaper();
        self.inner.offset_commit(req, version).await
    }

    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        self.inner.offset_fetch(req, version)
    }

    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        self.inner.list_groups(req, version)
    }

    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        self.inner.describe_groups(req, version)
    }

    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        version: i16,
    ) -> DeleteGroupsResponse {
        self.inner.delete_groups(req, version).await
    }

    /// Forgets committed offsets of a deleted topic.
    pub fn topic_deleted(&self, topic: &str) {
        self.inner.topic_deleted(topic);
    }

    /// The state of `group_id`, if the coordinator knows the group.
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.inner.groups.lock().get(group_id).map(|g| g.state)
    }

    /// Flushes state; called on shutdown. Parked JoinGroup/SyncGroup requests are answered
    /// with COORDINATOR_NOT_AVAILABLE so their connections can close.
    pub fn shutdown(&self) -> Result<(), GroupError> {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        let mut groups = self.inner.groups.lock();
        for group in groups.values_mut() {
            group.fail_all_waiters(ResponseError::CoordinatorNotAvailable.code());
        }
        // Compaction under the lock: no commit can slip between snapshot and rewrite.
        self.inner.store.rewrite(&offsets::snapshot(&groups))?;
        tracing::info!("group coordinator shut down");
        Ok(())
    }
}

impl Inner {
    /// Starts the reaper on first use: `open` is synchronous and may run outside a runtime.
    fn ensure_reaper(self: &Arc<Self>) {
        if !self.reaper_started.swap(true, Ordering::SeqCst) {
            reaper::spawn(Arc::downgrade(self), self.wake.clone());
        }
    }
}
