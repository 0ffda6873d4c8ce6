//! One member of a classic consumer group, and the answers parked for it while a rebalance runs.
//!
//! JoinGroup and SyncGroup responses are delayed until the group reaches the next step; the
//! handler parks a `oneshot::Sender` on the member and awaits the receiver outside every lock.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone)]
pub(super) struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a JoinGroup caller receives, independent of the request version.
#[derive(Debug, Clone, Default)]
pub(super) struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only; followers get an empty list.
    pub members: Vec<JoinedMember>,
}

impl JoinOutcome {
    pub fn error(error: i16, member_id: &str) -> Self {
        JoinOutcome {
            error,
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// What a SyncGroup caller receives.
#[derive(Debug, Clone, Default)]
pub(super) struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: i16) -> Self {
        SyncOutcome {
            error,
            ..Default::default()
        }
    }
}

/// The parts of a JoinGroup request that describe the member.
#[derive(Debug, Clone)]
pub(super) struct MemberSpec {
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
}

#[derive(Debug)]
pub(super) struct Member {
    pub id: String,
    pub spec: MemberSpec,
    pub assignment: Bytes,
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// The session expires at this instant unless a heartbeat (or join/sync) pushes it.
    pub deadline: Instant,
}

impl Member {
    pub fn new(id: String, spec: MemberSpec, now: Instant) -> Self {
        let deadline = now + spec.session_timeout;
        Member {
            id,
            spec,
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            deadline,
        }
    }

    pub fn touch(&mut self, now: Instant) {
        self.deadline = now + self.spec.session_timeout;
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.spec.protocols.iter().any(|(name, _)| name == protocol)
    }

    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.spec
            .protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    /// The first protocol of the member's preference list that is in `candidates`.
    pub fn vote<'a>(&'a self, candidates: &[String]) -> Option<&'a str> {
        self.spec
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.iter().any(|c| c == name))
    }

    pub fn same_protocols(&self, spec: &MemberSpec) -> bool {
        self.spec.protocol_type == spec.protocol_type && self.spec.protocols == spec.protocols
    }

    pub fn is_awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    /// Members with a parked JoinGroup/SyncGroup are not expired: they cannot heartbeat while
    /// their request is parked (Kafka's `shouldKeepAlive`). A closed waiter means the client
    /// hung up, so it no longer keeps the member alive.
    pub fn kept_alive(&self) -> bool {
        self.join_waiter.as_ref().is_some_and(|w| !w.is_closed())
            || self.sync_waiter.as_ref().is_some_and(|w| !w.is_closed())
    }

    /// Answers any parked request with `error` (the member is being removed or fenced).
    pub fn fail_waiters(&mut self, error: i16) {
        if let Some(waiter) = self.join_waiter.take() {
            // The receiver may be gone (client disconnected); nothing to do then.
            let _ = waiter.send(JoinOutcome::error(error, &self.id));
        }
        if let Some(waiter) = self.sync_waiter.take() {
            let _ = waiter.send(SyncOutcome::error(error));
        }
    }
}
