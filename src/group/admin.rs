//! ListGroups, DescribeGroups and DeleteGroups.
//!
//! As in Kafka, an empty group id is valid for DescribeGroups and DeleteGroups (it names a
//! group like any other); an unknown group describes as `Dead` with no error.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::offset_store::Record;
use super::state::{Group, GroupState};
use super::Inner;

/// Kafka's group type name for classic groups (ListGroups v5).
const CLASSIC: &str = "classic";

impl Inner {
    pub(super) fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let states: Vec<GroupState> = if version >= 4 {
            // An unknown state name matches nothing, as in Kafka.
            req.states_filter
                .iter()
                .map(|s| GroupState::parse(s.as_str()))
                .collect::<Option<Vec<_>>>()
                .unwrap_or_else(|| vec![GroupState::Dead])
        } else {
            Vec::new()
        };
        let types_ok = version < 5
            || req.types_filter.is_empty()
            || req
                .types_filter
                .iter()
                .any(|t| t.as_str().eq_ignore_ascii_case(CLASSIC));
        let groups = self.groups.lock();
        let mut listed: Vec<ListedGroup> = groups
            .values()
            .filter(|g| types_ok && (states.is_empty() || states.contains(&g.state)))
            .map(|g| {
                let mut entry = ListedGroup::default();
                entry.group_id = StrBytes::from_string(g.id.clone()).into();
                entry.protocol_type =
                    StrBytes::from_string(g.protocol_type.clone().unwrap_or_default());
                if version >= 4 {
                    entry.group_state = StrBytes::from_static_str(g.state.name());
                }
                if version >= 5 {
                    entry.group_type = StrBytes::from_static_str(CLASSIC);
                }
                entry
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        let mut resp = ListGroupsResponse::default();
        resp.groups = listed;
        resp
    }

    pub(super) fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let groups = self.groups.lock();
        let mut resp = DescribeGroupsResponse::default();
        resp.groups = req
            .groups
            .iter()
            .map(|id| {
                let mut described = match groups.get(id.as_str()) {
                    Some(group) => describe(group, version),
                    None => {
                        let mut d = DescribedGroup::default();
                        d.group_state = StrBytes::from_static_str(GroupState::Dead.name());
                        d
                    }
                };
                described.group_id = id.clone();
                if version >= 3 && req.include_authorized_operations {
                    // No ACLs in this module: report every group operation as allowed
                    // (READ=3, DELETE=6, DESCRIBE=8 as bit positions).
                    described.authorized_operations = (1 << 3) | (1 << 6) | (1 << 8);
                }
                described
            })
            .collect();
        resp
    }

    pub(super) async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        let mut records = Vec::new();
        let (results, seq) = {
            let mut groups = self.groups.lock();
            let results: Vec<DeletableGroupResult> = req
                .groups_names
                .iter()
                .map(|id| {
                    let error = match groups.get(id.as_str()) {
                        None => ResponseError::GroupIdNotFound.code(),
                        Some(g) if !g.members.is_empty() || g.state != GroupState::Empty => {
                            ResponseError::NonEmptyGroup.code()
                        }
                        Some(_) => {
                            groups.remove(id.as_str());
                            records.push(Record::DeleteGroup {
                                group: id.to_string(),
                            });
                            tracing::info!(group = %id.as_str(), "group deleted");
                            0
                        }
                    };
                    let mut result = DeletableGroupResult::default();
                    result.group_id = id.clone();
                    result.error_code = error;
                    result
                })
                .collect();
            let seq = (!records.is_empty()).then(|| self.store.append(&records));
            (results, seq)
        };
        if let Some(seq) = seq {
            if let Err(e) = self.store.sync(seq).await {
                tracing::error!(error = %e, "group deletion not durable");
            }
        }
        let mut resp = DeleteGroupsResponse::default();
        resp.results = results;
        resp
    }
}

/// Kafka reports member metadata and assignments only for Stable groups.
fn describe(group: &Group, version: i16) -> DescribedGroup {
    let stable = group.state == GroupState::Stable;
    let protocol = if stable {
        group.protocol_name.clone().unwrap_or_default()
    } else {
        String::new()
    };
    let mut d = DescribedGroup::default();
    d.group_state = StrBytes::from_static_str(group.state.name());
    d.protocol_type = StrBytes::from_string(group.protocol_type.clone().unwrap_or_default());
    d.protocol_data = StrBytes::from_string(protocol.clone());
    d.members = group
        .members
        .values()
        .map(|m| {
            let mut member = DescribedGroupMember::default();
            member.member_id = StrBytes::from_string(m.id.clone());
            if version >= 4 {
                member.group_instance_id = m.spec.instance_id.clone().map(StrBytes::from_string);
            }
            member.client_id = StrBytes::from_string(m.spec.client_id.clone());
            member.client_host = StrBytes::from_string(m.spec.client_host.clone());
            if stable {
                member.member_metadata = m.metadata_for(&protocol);
                member.member_assignment = m.assignment.clone();
            }
            member
        })
        .collect();
    d
}
