//! SyncGroup: the leader hands in assignments; followers wait for them.
//!
//! Follows Kafka's `GroupCoordinator.handleSyncGroup`: a follower arriving before the leader is
//! parked; the leader's request moves the group to Stable and answers everyone.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::member::SyncOutcome;
use super::state::{Group, GroupState};
use super::Inner;

enum Step {
    Done(SyncOutcome),
    Wait(oneshot::Receiver<SyncOutcome>),
}

fn err(error: ResponseError) -> Step {
    Step::Done(SyncOutcome::error(error.code()))
}

impl Inner {
    pub(super) async fn sync_group(
        &self,
        req: SyncGroupRequest,
        version: i16,
    ) -> SyncGroupResponse {
        let outcome = match self.sync_locked(&req, version) {
            Step::Done(outcome) => outcome,
            Step::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| SyncOutcome::error(ResponseError::RebalanceInProgress.code())),
        };
        let mut resp = SyncGroupResponse::default();
        resp.error_code = outcome.error;
        resp.assignment = outcome.assignment;
        if version >= 5 {
            resp.protocol_type = outcome.protocol_type.map(StrBytes::from_string);
            resp.protocol_name = outcome.protocol_name.map(StrBytes::from_string);
        }
        resp
    }

    fn sync_locked(&self, req: &SyncGroupRequest, version: i16) -> Step {
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        if group_id.is_empty() {
            return err(ResponseError::InvalidGroupId);
        }
        let instance_id = if version >= 3 {
            req.group_instance_id.as_ref().map(|s| s.as_str())
        } else {
            None
        };
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return err(ResponseError::UnknownMemberId);
        };
        if group.is_fenced(instance_id, member_id) {
            return err(ResponseError::FencedInstanceId);
        }
        if !group.members.contains_key(member_id) {
            return err(ResponseError::UnknownMemberId);
        }
        if req.generation_id != group.generation {
            return err(ResponseError::IllegalGeneration);
        }
        if version >= 5 && !protocol_matches(group, req) {
            return err(ResponseError::InconsistentGroupProtocol);
        }
        let now = Instant::now();
        match group.state {
            GroupState::Empty | GroupState::Dead => err(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => err(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                let Some(member) = group.members.get_mut(member_id) else {
                    return err(ResponseError::UnknownMemberId);
                };
                member.touch(now);
                let assignment = member.assignment.clone();
                Step::Done(success(group, assignment))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let Some(member) = group.members.get_mut(member_id) else {
                    return err(ResponseError::UnknownMemberId);
                };
                member.touch(now);
                if let Some(previous) = member.sync_waiter.replace(tx) {
                    let _ = previous.send(SyncOutcome::error(
                        ResponseError::RebalanceInProgress.code(),
                    ));
                }
                if group.is_leader(member_id) {
                    let assignments = req
                        .assignments
                        .iter()
                        .map(|a| (a.member_id.as_str(), a.assignment.clone()));
                    complete_sync(group, assignments);
                }
                Step::Wait(rx)
            }
        }
    }
}

/// v5 clients name the protocol they think the group uses; it must match.
fn protocol_matches(group: &Group, req: &SyncGroupRequest) -> bool {
    let type_ok = req
        .protocol_type
        .as_ref()
        .is_none_or(|t| group.protocol_type.as_deref() == Some(t.as_str()));
    let name_ok = req
        .protocol_name
        .as_ref()
        .is_none_or(|n| group.protocol_name.as_deref() == Some(n.as_str()));
    type_ok && name_ok
}

fn success(group: &Group, assignment: Bytes) -> SyncOutcome {
    SyncOutcome {
        error: 0,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        assignment,
    }
}

/// Stores the leader's assignments (members it left out get an empty one), moves the group
/// to Stable and answers every parked SyncGroup.
fn complete_sync<'a>(group: &mut Group, assignments: impl Iterator<Item = (&'a str, Bytes)>) {
    for member in group.members.values_mut() {
        member.assignment = Bytes::new();
    }
    for (member_id, assignment) in assignments {
        match group.members.get_mut(member_id) {
            Some(member) => member.assignment = assignment,
            None => {
                tracing::debug!(group = %group.id, member = %member_id, "assignment for unknown member ignored")
            }
        }
    }
    group.state = GroupState::Stable;
    let template = success(group, Bytes::new());
    for member in group.members.values_mut() {
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(SyncOutcome {
                assignment: member.assignment.clone(),
                ..template.clone()
            });
        }
    }
    tracing::info!(group = %group.id, generation = group.generation, "group is stable");
}
