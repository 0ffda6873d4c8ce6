//! Consumer groups: the coordinator state machine (join, sync, heartbeat, leave, rebalance)
//! and durable committed offsets.
//!
//! STUB: the API below is the contract the protocol handlers are written against.

use std::path::Path;
use std::sync::Arc;

use kafka_protocol::messages::*;

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

pub struct GroupCoordinator;

impl GroupCoordinator {
    /// Loads group state and committed offsets from `<data>/groups/`.
    pub fn open(_data_dir: &Path) -> Result<Arc<Self>, GroupError> {
        todo!()
    }
    pub async fn join_group(
        &self,
        _origin: &MemberOrigin,
        _req: JoinGroupRequest,
        _version: i16,
    ) -> JoinGroupResponse {
        todo!()
    }
    pub async fn sync_group(&self, _req: SyncGroupRequest, _version: i16) -> SyncGroupResponse {
        todo!()
    }
    pub async fn heartbeat(&self, _req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        todo!()
    }
    pub async fn leave_group(&self, _req: LeaveGroupRequest, _version: i16) -> LeaveGroupResponse {
        todo!()
    }
    pub async fn offset_commit(
        &self,
        _req: OffsetCommitRequest,
        _version: i16,
    ) -> OffsetCommitResponse {
        todo!()
    }
    pub async fn offset_fetch(
        &self,
        _req: OffsetFetchRequest,
        _version: i16,
    ) -> OffsetFetchResponse {
        todo!()
    }
    pub async fn list_groups(&self, _req: ListGroupsRequest, _version: i16) -> ListGroupsResponse {
        todo!()
    }
    pub async fn describe_groups(
        &self,
        _req: DescribeGroupsRequest,
        _version: i16,
    ) -> DescribeGroupsResponse {
        todo!()
    }
    pub async fn delete_groups(
        &self,
        _req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        todo!()
    }
    /// Forgets committed offsets of a deleted topic.
    pub fn topic_deleted(&self, _topic: &str) {
        todo!()
    }
    /// Flushes state; called on shutdown.
    pub fn shutdown(&self) -> Result<(), GroupError> {
        todo!()
    }
}
