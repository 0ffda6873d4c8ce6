//! The state of one group: its members, generation, chosen protocol and committed offsets.
//!
//! Transitions (prepare/complete rebalance, member removal) live in `rebalance.rs`; this file
//! holds the data and the read-only questions asked about it.

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;
use tokio::time::Instant;

use super::member::{JoinedMember, Member, MemberSpec};

/// Classic group states, as Kafka names them in DescribeGroups and ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub const ALL: [GroupState; 5] = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses a state name case-insensitively (ListGroups v4 `states_filter`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// One committed offset, as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// The first-join delay (`group.initial.rebalance.delay.ms`): while it runs, the join phase of
/// a group that was empty does not complete even if every known member has joined, so that
/// consumers started together land in one generation.
#[derive(Debug, Clone, Copy)]
pub(super) struct InitialDelay {
    pub until: Instant,
    /// Each new member extends `until` by the delay, never past this.
    pub max: Instant,
}

#[derive(Debug)]
pub(super) struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// In join order: the first member becomes leader when there is none.
    pub members: IndexMap<String, Member>,
    /// group.instance.id -> member id of static members.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, expected back before this deadline.
    pub pending: HashMap<String, Instant>,
    /// PreparingRebalance completes at this instant at the latest, dropping members that did
    /// not rejoin.
    pub join_deadline: Option<Instant>,
    pub initial_delay: Option<InitialDelay>,
    /// topic -> partition -> offset.
    pub offsets: BTreeMap<String, BTreeMap<i32, CommittedOffset>>,
}

impl Group {
    pub fn new(id: &str) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            join_deadline: None,
            initial_delay: None,
            offsets: BTreeMap::new(),
        }
    }

    /// A group with nothing worth keeping: no members, no pending joins, no offsets.
    pub fn is_disposable(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && self.pending.is_empty()
            && self.offsets.is_empty()
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Protocol names every member other than `except` supports, in no particular order.
    fn candidates_excluding(&self, except: Option<&str>) -> Option<Vec<String>> {
        let mut others = self
            .members
            .values()
            .filter(|m| Some(m.id.as_str()) != except);
        let first = others.next()?;
        let mut names: Vec<String> = first
            .spec
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        for member in others {
            names.retain(|n| member.supports(n));
        }
        Some(names)
    }

    /// Whether a member with `spec` (and id `member_id`, if already in the group) can join:
    /// same protocol type and at least one protocol every other member also supports.
    pub fn supports_protocols(&self, member_id: Option<&str>, spec: &MemberSpec) -> bool {
        if spec.protocol_type.is_empty() || spec.protocols.is_empty() {
            return false;
        }
        match self.candidates_excluding(member_id) {
            None => true,
            Some(candidates) => {
                self.protocol_type.as_deref() == Some(spec.protocol_type.as_str())
                    && spec
                        .protocols
                        .iter()
                        .any(|(n, _)| candidates.iter().any(|c| c == n))
            }
        }
    }

    /// Kafka's selection: among protocols all members support, each member votes for its
    /// most preferred; the most voted wins, ties going to the leader's preference order.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates_excluding(None)?;
        let mut votes: Vec<(String, usize)> = Vec::new();
        for member in self.members.values() {
            if let Some(vote) = member.vote(&candidates) {
                match votes.iter_mut().find(|(name, _)| name == vote) {
                    Some((_, count)) => *count += 1,
                    None => votes.push((vote.to_string(), 1)),
                }
            }
        }
        let best = votes.iter().map(|(_, c)| *c).max()?;
        let leader = self
            .leader
            .as_deref()
            .and_then(|id| self.members.get(id))
            .or_else(|| self.members.values().next())?;
        leader
            .spec
            .protocols
            .iter()
            .map(|(name, _)| name)
            .find(|name| votes.iter().any(|(v, c)| v == *name && *c == best))
            .cloned()
    }

    /// Every member has a parked JoinGroup and no member id handed out is still outstanding.
    pub fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(Member::is_awaiting_join)
    }

    /// What the leader receives in its JoinGroup response.
    pub fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.spec.instance_id.clone(),
                metadata: m.metadata_for(protocol),
            })
            .collect()
    }

    /// The static member id registered for `instance_id` differs from `member_id`.
    pub fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|iid| self.static_members.get(iid))
            .is_some_and(|registered| registered != member_id)
    }

    /// The earliest instant at which the reaper has something to do for this group.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self
            .members
            .values()
            .filter(|m| !m.kept_alive())
            .map(|m| m.deadline);
        members
            .chain(self.pending.values().copied())
            .chain(self.join_deadline)
            .chain(self.initial_delay.map(|d| d.until))
            .min()
    }
}
