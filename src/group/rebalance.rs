//! Group state transitions: start a rebalance, complete the join phase, remove members,
//! and the timed work the reaper drives (session expiry, join deadlines).
//!
//! Everything here runs under the coordinator's group lock and never awaits; parked
//! JoinGroup/SyncGroup requests are answered through their `oneshot` senders.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::time::Instant;

use super::member::{JoinOutcome, SyncOutcome};
use super::state::{Group, GroupState, InitialDelay};

impl Group {
    /// Moves the group to PreparingRebalance: members must rejoin before the join deadline.
    pub fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration, reason: &str) {
        if self.state == GroupState::CompletingRebalance {
            // Assignments of the aborted generation are void; parked followers must rejoin.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncOutcome::error(
                        ResponseError::RebalanceInProgress.code(),
                    ));
                }
            }
        }
        let was_empty = self.state == GroupState::Empty;
        let rebalance_timeout = self
            .members
            .values()
            .map(|m| m.spec.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.state = GroupState::PreparingRebalance;
        self.join_deadline = Some(now + rebalance_timeout);
        self.initial_delay = if was_empty && !initial_delay.is_zero() {
            Some(InitialDelay {
                until: now + initial_delay.min(rebalance_timeout),
                max: now + rebalance_timeout,
            })
        } else {
            None
        };
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            reason,
            "preparing rebalance"
        );
    }

    /// A member joined during the first-join delay: give others a little more time.
    pub fn extend_initial_delay(&mut self, now: Instant, initial_delay: Duration) {
        if let Some(delay) = self.initial_delay.as_mut() {
            delay.until = (now + initial_delay).min(delay.max).max(delay.until);
        }
    }

    /// Completes the join phase if nothing is left to wait for.
    pub fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(delay) = self.initial_delay {
            if now < delay.until {
                return;
            }
            self.initial_delay = None;
        }
        if self.all_joined() {
            self.complete_join(now);
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, the generation advances,
    /// a protocol is chosen and every parked JoinGroup is answered.
    pub fn complete_join(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join())
            .map(|m| m.id.clone())
            .collect();
        for id in stale {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time");
            self.detach_member(&id, ResponseError::UnknownMemberId.code());
        }
        self.join_deadline = None;
        self.initial_delay = None;
        self.generation = self.generation.wrapping_add(1).max(1);

        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            tracing::info!(group = %self.id, generation = self.generation, "group is empty");
            return;
        }
        let Some(protocol) = self.select_protocol() else {
            // Cannot happen: joins are refused unless a common protocol exists. Fail safe.
            tracing::warn!(group = %self.id, "no common protocol; dropping all members");
            let ids: Vec<String> = self.members.keys().cloned().collect();
            for id in ids {
                self.detach_member(&id, ResponseError::InconsistentGroupProtocol.code());
            }
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            return;
        };
        self.protocol_name = Some(protocol);
        let leader_present = self
            .leader
            .as_deref()
            .is_some_and(|id| self.members.contains_key(id));
        if !leader_present {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let all = self.joined_members();
        let leader = self.leader.clone().unwrap_or_default();
        for member in self.members.values_mut() {
            member.touch(now);
            if let Some(waiter) = member.join_waiter.take() {
                let members = if member.id == leader {
                    all.clone()
                } else {
                    Vec::new()
                };
                let _ = waiter.send(JoinOutcome {
                    error: 0,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: leader.clone(),
                    member_id: member.id.clone(),
                    members,
                });
            }
        }
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            leader = %leader,
            members = self.members.len(),
            "join phase complete"
        );
    }

    /// Removes a member without any state transition; answers its parked requests.
    fn detach_member(&mut self, member_id: &str, error: i16) -> bool {
        let Some(mut member) = self.members.shift_remove(member_id) else {
            return false;
        };
        member.fail_waiters(error);
        if let Some(iid) = member.spec.instance_id.as_deref() {
            if self.static_members.get(iid).map(String::as_str) == Some(member_id) {
                self.static_members.remove(iid);
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        true
    }

    /// Removes a member (LeaveGroup, session expiry) and rebalances the rest.
    pub fn remove_member(&mut self, member_id: &str, now: Instant, reason: &str) -> bool {
        if !self.detach_member(member_id, ResponseError::UnknownMemberId.code()) {
            return false;
        }
        tracing::info!(group = %self.id, member = %member_id, reason, "member removed");
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                // Never an initial delay here: the group was not empty.
                self.prepare_rebalance(now, Duration::ZERO, reason);
                self.maybe_complete_join(now);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
        true
    }

    /// Timed work: expire pending ids and silent members, end the first-join delay, enforce
    /// the join deadline.
    pub fn expire(&mut self, now: Instant) {
        let pending_before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.deadline <= now && !m.kept_alive())
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.remove_member(&id, now, "session timeout expired");
        }
        if self.pending.len() != pending_before {
            self.maybe_complete_join(now);
        }
        if self.state == GroupState::PreparingRebalance {
            if self.initial_delay.is_some_and(|d| d.until <= now) {
                self.maybe_complete_join(now);
            }
            if self.join_deadline.is_some_and(|d| d <= now) {
                self.complete_join(now);
            }
        }
    }

    /// Answers every parked request (coordinator shutdown).
    pub fn fail_all_waiters(&mut self, error: i16) {
        for member in self.members.values_mut() {
            member.fail_waiters(error);
        }
    }
}
