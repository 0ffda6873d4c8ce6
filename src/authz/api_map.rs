//! Which (action, resource) pairs each Kafka API needs, after Kafka's "operations and resources
//! on protocols" table. One table for every API the broker serves: a test walks the dispatch
//! table and fails for any API without an entry here.
//!
//! A request is allowed per resource it names (a Produce to two topics is decided per topic);
//! [`Check::Each`] pairs are all required for every named resource of that kind, and
//! [`Check::AnyOf`] pairs are alternatives (Kafka accepts Create on the cluster *or* on the
//! topic for CreateTopics).

use kafka_protocol::messages::ApiKey;

use super::schema::{Action, ResourceKind};

/// What one API requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Served to anyone who passed authentication (ApiVersions, the SASL exchange itself).
    None,
    /// Every pair is required, each on the resources of its kind the request names.
    Each(&'static [(Action, ResourceKind)]),
    /// Any one of the pairs suffices.
    AnyOf(&'static [(Action, ResourceKind)]),
}

use Action::*;
use ResourceKind::*;

/// The requirement of `key`, or `None` for an API this table does not know (then the request
/// must be refused: fail closed).
pub fn required(key: ApiKey) -> Option<Check> {
    let check = match key {
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => Check::None,
        ApiKey::Produce => Check::Each(&[(Write, Topic)]),
        ApiKey::Fetch => Check::Each(&[(Read, Topic)]),
        ApiKey::ListOffsets => Check::Each(&[(Describe, Topic)]),
        // Topics the principal may not Describe are left out of the answer; auto-creation
        // additionally needs Create (cluster or topic).
        ApiKey::Metadata => Check::Each(&[(Describe, Topic)]),
        ApiKey::OffsetCommit => Check::Each(&[(Read, ConsumerGroup), (Read, Topic)]),
        ApiKey::OffsetFetch => Check::Each(&[(Describe, ConsumerGroup), (Describe, Topic)]),
        ApiKey::FindCoordinator => Check::Each(&[(Describe, ConsumerGroup)]),
        ApiKey::JoinGroup | ApiKey::SyncGroup | ApiKey::Heartbeat | ApiKey::LeaveGroup => {
            Check::Each(&[(Read, ConsumerGroup)])
        }
        ApiKey::DescribeGroups => Check::Each(&[(Describe, ConsumerGroup)]),
        // Kafka lists the groups the principal may Describe (or all, with Describe on the
        // cluster).
        ApiKey::ListGroups => Check::AnyOf(&[(Describe, Cluster), (Describe, ConsumerGroup)]),
        ApiKey::DeleteGroups => Check::Each(&[(Delete, ConsumerGroup)]),
        ApiKey::CreateTopics => Check::AnyOf(&[(Create, Cluster), (Create, Topic)]),
        ApiKey::DeleteTopics => Check::Each(&[(Delete, Topic)]),
        ApiKey::DeleteRecords => Check::Each(&[(Delete, Topic)]),
        ApiKey::CreatePartitions => Check::Each(&[(Alter, Topic)]),
        ApiKey::InitProducerId => Check::Each(&[(IdempotentWrite, Cluster)]),
        ApiKey::DescribeConfigs => {
            Check::AnyOf(&[(DescribeConfigs, Topic), (DescribeConfigs, Cluster)])
        }
        ApiKey::IncrementalAlterConfigs => {
            Check::AnyOf(&[(AlterConfigs, Topic), (AlterConfigs, Cluster)])
        }
        ApiKey::DescribeCluster => Check::Each(&[(Describe, Cluster)]),
        ApiKey::DescribeUserScramCredentials => Check::Each(&[(Describe, Cluster)]),
        ApiKey::DescribeClientQuotas => Check::Each(&[(DescribeConfigs, Cluster)]),
        ApiKey::AlterClientQuotas => Check::Each(&[(AlterConfigs, Cluster)]),
        ApiKey::AlterUserScramCredentials => Check::Each(&[(Alter, Cluster)]),
        ApiKey::DescribeAcls => Check::Each(&[(Describe, Cluster)]),
        ApiKey::CreateAcls | ApiKey::DeleteAcls => Check::Each(&[(Alter, Cluster)]),
        _ => return None,
    };
    Some(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::dispatch::APIS;

    #[test]
    fn every_served_api_has_an_entry() {
        let missing: Vec<ApiKey> = APIS
            .iter()
            .map(|e| e.key)
            .filter(|k| required(*k).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "APIs without authorization entry: {missing:?}"
        );
    }

    #[test]
    fn every_pair_names_an_action_that_applies_to_its_resource() {
        for entry in APIS {
            let pairs = match required(entry.key) {
                Some(Check::Each(p)) | Some(Check::AnyOf(p)) => p,
                _ => continue,
            };
            for (action, kind) in pairs {
                assert!(
                    action.applies_to(*kind),
                    "{:?}: {action:?} does not apply to {kind:?}",
                    entry.key
                );
            }
        }
    }

    #[test]
    fn only_the_pre_login_apis_need_nothing() {
        let free: Vec<ApiKey> = APIS
            .iter()
            .map(|e| e.key)
            .filter(|k| required(*k) == Some(Check::None))
            .collect();
        assert_eq!(
            free,
            vec![
                ApiKey::ApiVersions,
                ApiKey::SaslHandshake,
                ApiKey::SaslAuthenticate
            ]
        );
    }

    #[test]
    fn unknown_apis_fail_closed() {
        assert_eq!(required(ApiKey::EndTxn), None);
        assert_eq!(required(ApiKey::DescribeDelegationToken), None);
    }
}
