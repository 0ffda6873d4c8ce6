//! Heartbeat and LeaveGroup: keep a session alive, or end it.
//!
//! A heartbeat during PreparingRebalance answers REBALANCE_IN_PROGRESS: that is how members
//! learn they must rejoin. During CompletingRebalance it succeeds (clients may heartbeat
//! between their JoinGroup and SyncGroup), as in Kafka 2.4+.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, LeaveGroupRequest, LeaveGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::state::{Group, GroupState};
use super::Inner;

impl Inner {
    pub(super) fn heartbeat(&self, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
        let mut resp = HeartbeatResponse::default();
        resp.error_code = match self.heartbeat_locked(&req, version) {
            Ok(()) => 0,
            Err(e) => e.code(),
        };
        resp
    }

    fn heartbeat_locked(&self, req: &HeartbeatRequest, version: i16) -> Result<(), ResponseError> {
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let instance_id = if version >= 3 {
            req.group_instance_id.as_ref().map(|s| s.as_str())
        } else {
            None
        };
        let mut groups = self.groups.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if group.is_fenced(instance_id, member_id) {
            return Err(ResponseError::FencedInstanceId);
        }
        if group.state == GroupState::Empty || group.state == GroupState::Dead {
            return Err(ResponseError::UnknownMemberId);
        }
        let generation = group.generation;
        let state = group.state;
        let member = group
            .members
            .get_mut(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if req.generation_id != generation {
            return Err(ResponseError::IllegalGeneration);
        }
        member.touch(Instant::now());
        match state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    pub(super) fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        // v0-2 name one member; v3+ a batch, each by member id and/or group.instance.id.
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    if let Some(reason) = m.reason.as_ref() {
                        tracing::debug!(member = %m.member_id.as_str(), reason = %reason.as_str(), "leave reason");
                    }
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let group_id = req.group_id.as_str();
        let mut resp = LeaveGroupResponse::default();
        if group_id.is_empty() {
            resp.error_code = ResponseError::InvalidGroupId.code();
            return resp;
        }
        let results: Vec<(String, Option<String>, i16)> = {
            let mut groups = self.groups.lock();
            let now = Instant::now();
            leaving
                .into_iter()
                .map(|(member_id, instance_id)| {
                    let outcome = match groups.get_mut(group_id) {
                        None => Err(ResponseError::UnknownMemberId),
                        Some(group) => leave_one(group, &member_id, instance_id.as_deref(), now),
                    };
                    let code = outcome.err().map_or(0, |e| e.code());
                    (member_id, instance_id, code)
                })
                .collect()
        };
        self.wake.notify_one();
        if version >= 3 {
            resp.members = results
                .into_iter()
                .map(|(member_id, instance_id, code)| {
                    let mut m = MemberResponse::default();
                    m.member_id = StrBytes::from_string(member_id);
                    m.group_instance_id = instance_id.map(StrBytes::from_string);
                    m.error_code = code;
                    m
                })
                .collect();
        } else {
            resp.error_code = results.first().map_or(0, |(_, _, code)| *code);
        }
        resp
    }
}

/// Removes one member named by id, or (static members) by group.instance.id.
fn leave_one(
    group: &mut Group,
    member_id: &str,
    instance_id: Option<&str>,
    now: Instant,
) -> Result<(), ResponseError> {
    let target = match instance_id {
        Some(iid) => {
            let registered = group
                .static_members
                .get(iid)
                .cloned()
                .ok_or(ResponseError::UnknownMemberId)?;
            if !member_id.is_empty() && registered != member_id {
                return Err(ResponseError::FencedInstanceId);
            }
            registered
        }
        None => member_id.to_string(),
    };
    if group.remove_member(&target, now, "member left the group") {
        Ok(())
    } else if group.pending.remove(&target).is_some() {
        // A member that never finished joining.
        group.maybe_complete_join(now);
        Ok(())
    } else {
        Err(ResponseError::UnknownMemberId)
    }
}
