//! Request builders and small client-side flows shared by the tests.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::group::{GroupCoordinator, GroupSettings, MemberOrigin};

pub const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();
pub const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();
pub const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
pub const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn settings(initial_delay_ms: u64) -> GroupSettings {
    GroupSettings {
        initial_rebalance_delay: Duration::from_millis(initial_delay_ms),
        min_session_timeout: Duration::from_millis(10),
        ..GroupSettings::default()
    }
}

pub fn open(dir: &Path, initial_delay_ms: u64) -> Arc<GroupCoordinator> {
    GroupCoordinator::open_with(dir, settings(initial_delay_ms)).unwrap()
}

pub fn origin(client: &str) -> MemberOrigin {
    MemberOrigin {
        client_id: client.to_string(),
        client_host: "/127.0.0.1".to_string(),
    }
}

/// A consumer JoinGroup offering `range` then `roundrobin`, metadata = `meta`.
pub fn join_req(
    group: &str,
    member: &str,
    session_ms: i32,
    meta: &'static [u8],
) -> JoinGroupRequest {
    let protocol = |name: &str| {
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s(name);
        p.metadata = Bytes::from_static(meta);
        p
    };
    let mut req = JoinGroupRequest::default();
    req.group_id = s(group).into();
    req.member_id = s(member);
    req.session_timeout_ms = session_ms;
    req.rebalance_timeout_ms = session_ms;
    req.protocol_type = s("consumer");
    req.protocols = vec![protocol("range"), protocol("roundrobin")];
    req
}

/// Joins like librdkafka does: retry once with the id from MEMBER_ID_REQUIRED.
pub async fn join(
    c: &GroupCoordinator,
    group: &str,
    member: &str,
    meta: &'static [u8],
    version: i16,
) -> JoinGroupResponse {
    let resp = c
        .join_group(
            &origin("client"),
            join_req(group, member, 3000, meta),
            version,
        )
        .await;
    if resp.error_code != MEMBER_ID_REQUIRED {
        return resp;
    }
    let member = resp.member_id.to_string();
    c.join_group(
        &origin("client"),
        join_req(group, &member, 3000, meta),
        version,
    )
    .await
}

pub fn sync_req(
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupRequest {
    let mut req = SyncGroupRequest::default();
    req.group_id = s(group).into();
    req.member_id = s(member);
    req.generation_id = generation;
    req.assignments = assignments
        .iter()
        .map(|(m, a)| {
            let mut x = SyncGroupRequestAssignment::default();
            x.member_id = s(m);
            x.assignment = Bytes::from_static(a);
            x
        })
        .collect();
    req
}

pub fn heartbeat_req(group: &str, member: &str, generation: i32) -> HeartbeatRequest {
    let mut req = HeartbeatRequest::default();
    req.group_id = s(group).into();
    req.member_id = s(member);
    req.generation_id = generation;
    req
}

pub async fn heartbeat(c: &GroupCoordinator, group: &str, member: &str, generation: i32) -> i16 {
    c.heartbeat(heartbeat_req(group, member, generation), 4)
        .await
        .error_code
}

/// Commit `(topic, partition, offset, metadata)` entries.
pub fn commit_req(
    group: &str,
    member: &str,
    generation: i32,
    entries: &[(&str, i32, i64, &str)],
) -> OffsetCommitRequest {
    let mut req = OffsetCommitRequest::default();
    req.group_id = s(group).into();
    req.member_id = s(member);
    req.generation_id_or_member_epoch = generation;
    for (topic, partition, offset, metadata) in entries {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_metadata = Some(s(metadata));
        match req.topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = OffsetCommitRequestTopic::default();
                t.name = s(topic).into();
                t.partitions.push(p);
                req.topics.push(t);
            }
        }
    }
    req
}

/// Every partition error code of a commit response, in order.
pub fn commit_errors(resp: &OffsetCommitResponse) -> Vec<i16> {
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// OffsetFetch v1-7 for the given topics (`None`: all topics).
pub fn fetch_req(group: &str, topics: Option<&[(&str, &[i32])]>) -> OffsetFetchRequest {
    let mut req = OffsetFetchRequest::default();
    req.group_id = s(group).into();
    req.topics = topics.map(|ts| {
        ts.iter()
            .map(|(name, parts)| {
                let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
                t.name = s(name).into();
                t.partition_indexes = parts.to_vec();
                t
            })
            .collect()
    });
    req
}

/// (topic, partition, offset, metadata) of a v1-7 fetch response.
pub fn fetched(resp: &OffsetFetchResponse) -> Vec<(String, i32, i64, String)> {
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                )
            })
        })
        .collect()
}

/// Encodes a response the way the dispatch layer will; panics if the encoder refuses it.
pub fn encodes<T: Encodable>(resp: &T, version: i16) {
    let mut buf = BytesMut::new();
    resp.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encoding at v{version} failed: {e}"));
}

/// A Stable two-member group: returns (leader, follower, generation).
pub async fn stable_pair(c: &GroupCoordinator, group: &str) -> (String, String, i32) {
    let (a, b) = tokio::join!(join(c, group, "", b"ma", 5), join(c, group, "", b"mb", 5));
    assert_eq!(a.error_code, 0);
    assert_eq!(b.error_code, 0);
    assert_eq!(a.generation_id, b.generation_id);
    let (leader, follower) = if a.members.is_empty() { (b, a) } else { (a, b) };
    let gen = leader.generation_id;
    let (l, f) = (leader.member_id.to_string(), follower.member_id.to_string());
    let follower_sync = c.sync_group(sync_req(group, &f, gen, &[]), 5);
    let leader_sync = c.sync_group(sync_req(group, &l, gen, &[(&l, b"A-l"), (&f, b"A-f")]), 5);
    let (fs, ls) = tokio::join!(follower_sync, leader_sync);
    assert_eq!(fs.error_code, 0);
    assert_eq!(ls.error_code, 0);
    (l, f, gen)
}
