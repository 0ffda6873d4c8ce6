//! JoinGroup: admit or update a member and park its response until the join phase completes.
//!
//! Follows Kafka's `GroupCoordinator.handleJoinGroup`: new dynamic members first receive
//! MEMBER_ID_REQUIRED (v4+), static members (v5+ `group.instance.id`) replace their previous
//! member id, and a known member whose protocols are unchanged in a stable group gets the
//! current generation back without a rebalance.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::member::{JoinOutcome, Member, MemberSpec};
use super::state::{Group, GroupState};
use super::{Inner, MemberOrigin};

/// The answer is known now, or will arrive on the receiver.
enum Step {
    Done(JoinOutcome),
    Wait(oneshot::Receiver<JoinOutcome>),
}

fn err(error: ResponseError, member_id: &str) -> Step {
    Step::Done(JoinOutcome::error(error.code(), member_id))
}

/// Kafka's member id shape: `<client.id or group.instance.id>-<uuid>`.
fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

impl Inner {
    pub(super) async fn join_group(
        &self,
        origin: &MemberOrigin,
        req: JoinGroupRequest,
        version: i16,
    ) -> JoinGroupResponse {
        let step = self.join_locked(origin, &req, version);
        self.wake.notify_one();
        let outcome = match step {
            Step::Done(outcome) => outcome,
            Step::Wait(rx) => rx.await.unwrap_or_else(|_| {
                // The member was replaced while parked; make the client rejoin.
                JoinOutcome::error(
                    ResponseError::RebalanceInProgress.code(),
                    req.member_id.as_str(),
                )
            }),
        };
        to_response(outcome, version)
    }

    fn join_locked(&self, origin: &MemberOrigin, req: &JoinGroupRequest, version: i16) -> Step {
        let member_id = req.member_id.as_str();
        let group_id = req.group_id.as_str();
        if group_id.is_empty() {
            return err(ResponseError::InvalidGroupId, member_id);
        }
        let session_ms = u64::try_from(req.session_timeout_ms).unwrap_or(0);
        let session_timeout = Duration::from_millis(session_ms);
        if session_timeout < self.settings.min_session_timeout
            || session_timeout > self.settings.max_session_timeout
        {
            return err(ResponseError::InvalidSessionTimeout, member_id);
        }
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        let rebalance_timeout = match u64::try_from(req.rebalance_timeout_ms) {
            Ok(ms) if version >= 1 && ms > 0 => Duration::from_millis(ms),
            _ => session_timeout,
        };
        // A member's protocol metadata is held for as long as its session lives: bounded so
        // that a few joins cannot pin a large share of memory.
        let metadata_bytes = req.protocols.iter().fold(0usize, |n, p| {
            n.saturating_add(p.name.len())
                .saturating_add(p.metadata.len())
        });
        if metadata_bytes > self.settings.max_member_metadata_bytes {
            tracing::warn!(
                group = %group_id.escape_debug(),
                bytes = metadata_bytes,
                limit = self.settings.max_member_metadata_bytes,
                "join refused: protocol metadata larger than `groups.max_member_metadata_bytes`"
            );
            return err(ResponseError::InvalidRequest, member_id);
        }
        let spec = MemberSpec {
            instance_id: if version >= 5 {
                req.group_instance_id.as_ref().map(|s| s.to_string())
            } else {
                None
            },
            client_id: origin.client_id.clone(),
            client_host: origin.client_host.clone(),
            session_timeout,
            rebalance_timeout,
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
        };
        if spec.protocol_type.is_empty() || spec.protocols.is_empty() {
            return err(ResponseError::InconsistentGroupProtocol, member_id);
        }

        if let Some(reason) = req.reason.as_ref().filter(|_| version >= 8) {
            tracing::debug!(group = %group_id, member = %member_id, reason = %reason.as_str(), "join reason");
        }
        let now = Instant::now();
        let delay = self.settings.initial_rebalance_delay;
        let mut groups = self.groups.lock();
        if !member_id.is_empty() && !groups.contains_key(group_id) {
            return err(ResponseError::UnknownMemberId, member_id);
        }
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id));
        if member_id.is_empty() {
            self.join_new(group, spec, version, now, delay)
        } else {
            self.join_known(group, member_id, spec, now, delay)
        }
    }

    fn join_new(
        &self,
        group: &mut Group,
        spec: MemberSpec,
        version: i16,
        now: Instant,
        delay: Duration,
    ) -> Step {
        if let Some(old_id) = spec
            .instance_id
            .as_deref()
            .and_then(|iid| group.static_members.get(iid))
            .cloned()
        {
            return rejoin_static(group, &old_id, spec, now, delay);
        }
        if !group.supports_protocols(None, &spec) {
            return err(ResponseError::InconsistentGroupProtocol, "");
        }
        if group.members.len() + group.pending.len() >= self.settings.max_group_size {
            return err(ResponseError::GroupMaxSizeReached, "");
        }
        let prefix = spec.instance_id.as_deref().unwrap_or(&spec.client_id);
        let member_id = new_member_id(prefix);
        if version >= 4 && spec.instance_id.is_none() {
            // KIP-394: the client must come back with this id, so that a client whose
            // response got lost does not leave a ghost member behind.
            group
                .pending
                .insert(member_id.clone(), now + spec.session_timeout);
            return err(ResponseError::MemberIdRequired, &member_id);
        }
        add_member(group, member_id, spec, now, delay)
    }

    fn join_known(
        &self,
        group: &mut Group,
        member_id: &str,
        spec: MemberSpec,
        now: Instant,
        delay: Duration,
    ) -> Step {
        if group.is_fenced(spec.instance_id.as_deref(), member_id) {
            return err(ResponseError::FencedInstanceId, member_id);
        }
        if !group.members.contains_key(member_id) {
            if group.pending.contains_key(member_id) {
                if !group.supports_protocols(None, &spec) {
                    return err(ResponseError::InconsistentGroupProtocol, member_id);
                }
                group.pending.remove(member_id);
                return add_member(group, member_id.to_string(), spec, now, delay);
            }
            return err(ResponseError::UnknownMemberId, member_id);
        }
        if !group.supports_protocols(Some(member_id), &spec) {
            return err(ResponseError::InconsistentGroupProtocol, member_id);
        }
        let unchanged = group
            .members
            .get(member_id)
            .is_some_and(|m| m.same_protocols(&spec));
        match group.state {
            GroupState::Empty | GroupState::Dead => err(ResponseError::UnknownMemberId, member_id),
            GroupState::PreparingRebalance => park_join(group, member_id, spec, now),
            GroupState::CompletingRebalance if unchanged => {
                // The client lost its JoinGroup response: send it again.
                Step::Done(current_outcome(group, member_id))
            }
            GroupState::Stable if unchanged && !group.is_leader(member_id) => {
                if let Some(member) = group.members.get_mut(member_id) {
                    member.touch(now);
                }
                Step::Done(current_outcome(group, member_id))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                group.prepare_rebalance(now, delay, "member rejoined");
                park_join(group, member_id, spec, now)
            }
        }
    }
}

/// A static member restarted: it takes over its previous member id's place (and assignment).
fn rejoin_static(
    group: &mut Group,
    old_id: &str,
    spec: MemberSpec,
    now: Instant,
    delay: Duration,
) -> Step {
    if !group.supports_protocols(Some(old_id), &spec) {
        return err(ResponseError::InconsistentGroupProtocol, "");
    }
    let Some(mut member) = group.members.shift_remove(old_id) else {
        // Stale mapping; admit as a new member.
        let prefix = spec.instance_id.clone().unwrap_or_default();
        return add_member(group, new_member_id(&prefix), spec, now, delay);
    };
    // The previous incarnation's parked requests are fenced.
    member.fail_waiters(ResponseError::FencedInstanceId.code());
    let iid = spec.instance_id.clone().unwrap_or_default();
    let new_id = new_member_id(&iid);
    let unchanged = member.same_protocols(&spec);
    member.id = new_id.clone();
    member.spec = spec;
    member.touch(now);
    group.static_members.insert(iid, new_id.clone());
    if group.is_leader(old_id) {
        group.leader = Some(new_id.clone());
    }
    group.members.insert(new_id.clone(), member);
    tracing::info!(group = %group.id, old = %old_id, new = %new_id, "static member rejoined");
    if group.state == GroupState::Stable && unchanged && !group.is_leader(&new_id) {
        // Keep the current assignment: SyncGroup hands it to the new member id.
        return Step::Done(current_outcome(group, &new_id));
    }
    if group.state != GroupState::PreparingRebalance {
        group.prepare_rebalance(now, delay, "static member rejoined");
    }
    let spec = match group.members.get(&new_id) {
        Some(m) => m.spec.clone(),
        None => return err(ResponseError::UnknownMemberId, &new_id),
    };
    park_join(group, &new_id, spec, now)
}

fn add_member(
    group: &mut Group,
    member_id: String,
    spec: MemberSpec,
    now: Instant,
    delay: Duration,
) -> Step {
    if group.members.is_empty() {
        group.protocol_type = Some(spec.protocol_type.clone());
    }
    if let Some(iid) = spec.instance_id.clone() {
        group.static_members.insert(iid, member_id.clone());
    }
    if group.leader.is_none() {
        group.leader = Some(member_id.clone());
    }
    let member = Member::new(member_id.clone(), spec.clone(), now);
    group.members.insert(member_id.clone(), member);
    tracing::info!(group = %group.id, member = %member_id, "member added");
    match group.state {
        GroupState::PreparingRebalance => group.extend_initial_delay(now, delay),
        _ => group.prepare_rebalance(now, delay, "new member joined"),
    }
    park_join(group, &member_id, spec, now)
}

/// Updates the member from its request and parks its response until the join completes.
fn park_join(group: &mut Group, member_id: &str, spec: MemberSpec, now: Instant) -> Step {
    let (tx, rx) = oneshot::channel();
    let Some(member) = group.members.get_mut(member_id) else {
        return err(ResponseError::UnknownMemberId, member_id);
    };
    if let Some(previous) = member.join_waiter.replace(tx) {
        // A retried JoinGroup supersedes the parked one.
        let _ = previous.send(JoinOutcome::error(
            ResponseError::RebalanceInProgress.code(),
            member_id,
        ));
    }
    member.spec = spec;
    member.touch(now);
    group.maybe_complete_join(now);
    Step::Wait(rx)
}

/// The current generation as the member would have received it.
fn current_outcome(group: &Group, member_id: &str) -> JoinOutcome {
    JoinOutcome {
        error: 0,
        generation: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader: group.leader.clone().unwrap_or_default(),
        member_id: member_id.to_string(),
        members: if group.is_leader(member_id) {
            group.joined_members()
        } else {
            Vec::new()
        },
    }
}

fn to_response(outcome: JoinOutcome, version: i16) -> JoinGroupResponse {
    let mut resp = JoinGroupResponse::default();
    resp.error_code = outcome.error;
    resp.generation_id = outcome.generation;
    // protocol_type exists from v7; protocol_name is nullable from v7 only (Kafka sends "").
    if version >= 7 {
        resp.protocol_type = outcome.protocol_type.map(StrBytes::from_string);
        resp.protocol_name = outcome.protocol_name.map(StrBytes::from_string);
    } else {
        resp.protocol_name = Some(StrBytes::from_string(
            outcome.protocol_name.unwrap_or_default(),
        ));
    }
    resp.leader = StrBytes::from_string(outcome.leader);
    resp.member_id = StrBytes::from_string(outcome.member_id);
    resp.members = outcome
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default();
            member.member_id = StrBytes::from_string(m.member_id);
            if version >= 5 {
                member.group_instance_id = m.instance_id.map(StrBytes::from_string);
            }
            member.metadata = m.metadata;
            member
        })
        .collect();
    resp
}
