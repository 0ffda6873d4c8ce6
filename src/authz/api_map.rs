//! Which (action, resource) pairs each Kafka API needs, after Kafka's "operations and resources
//! on protocols" table. One table for every API the broker serves: a test walks the router
//! table and fails for any API without an entry here, and the enforcement point
//! (`api::access`) checks every question a request's handler asks against its API's entry
//! ([`asks`]): a question the table does not list for that API is denied and logged as an
//! error (a handler and this table disagree: a bug, failed closed).
//!
//! A request is allowed per resource it names (a Produce to two topics is decided per topic):
//! [`Check::each`] pairs are required for every named resource of that kind,
//! [`Check::any_of`] pairs are alternatives (Kafka accepts Create on the cluster *or* on the
//! topic for CreateTopics), and [`Check::when`] pairs are asked only by one form of the request
//! (auto-creating a topic, an InitProducerId without a transactional id).

use kafka_protocol::messages::ApiKey;

use super::schema::{Action, ResourceKind};

/// One (action, resource kind) pair.
pub type Pair = (Action, ResourceKind);

/// What one API requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Required on every resource of the pair's kind the request names.
    pub each: &'static [Pair],
    /// Alternatives: any one suffices.
    pub any_of: &'static [Pair],
    /// Asked only by one form of the request (see the entry's comment).
    pub when: &'static [Pair],
}

impl Check {
    /// Served to anyone who passed authentication (ApiVersions, the SASL exchange itself).
    pub const NONE: Check = Check {
        each: &[],
        any_of: &[],
        when: &[],
    };

    const fn each(each: &'static [Pair]) -> Check {
        Check {
            each,
            any_of: &[],
            when: &[],
        }
    }

    const fn any_of(any_of: &'static [Pair]) -> Check {
        Check {
            each: &[],
            any_of,
            when: &[],
        }
    }

    /// Every pair this API may ask.
    pub fn pairs(&self) -> impl Iterator<Item = &Pair> {
        self.each.iter().chain(self.any_of).chain(self.when)
    }
}

use Action::*;
use ResourceKind::*;

/// Auto-creating a topic: Create on the cluster or on the topic (as it will be tagged).
const AUTO_CREATE: &[Pair] = &[(Create, Cluster), (Create, Topic)];

/// The requirement of `key`, or `None` for an API this table does not know (then the request
/// must be refused: fail closed).
pub fn required(key: ApiKey) -> Option<Check> {
    let check = match key {
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => Check::NONE,
        // Writing to a topic that does not exist auto-creates it (when the config allows); a
        // transactional produce also needs Write on its transactional id, as in Kafka.
        ApiKey::Produce => Check {
            when: AUTO_CREATE,
            ..Check::each(&[(Write, Topic), (Write, TransactionalId)])
        },
        ApiKey::Fetch => Check::each(&[(Read, Topic)]),
        ApiKey::ListOffsets => Check::each(&[(Describe, Topic)]),
        // Topics the principal may not Describe are left out of the answer; auto-creation
        // additionally needs Create (cluster or topic).
        ApiKey::Metadata => Check {
            when: AUTO_CREATE,
            ..Check::each(&[(Describe, Topic)])
        },
        ApiKey::OffsetCommit => Check::each(&[(Read, ConsumerGroup), (Read, Topic)]),
        ApiKey::OffsetFetch => Check::each(&[(Describe, ConsumerGroup), (Describe, Topic)]),
        // The coordinator of a group, or of a transactional id (key type 1).
        ApiKey::FindCoordinator => {
            Check::each(&[(Describe, ConsumerGroup), (Describe, TransactionalId)])
        }
        ApiKey::JoinGroup | ApiKey::SyncGroup | ApiKey::Heartbeat | ApiKey::LeaveGroup => {
            Check::each(&[(Read, ConsumerGroup)])
        }
        ApiKey::DescribeGroups => Check::each(&[(Describe, ConsumerGroup)]),
        // Kafka lists the groups the principal may Describe (or all, with Describe on the
        // cluster).
        ApiKey::ListGroups => Check::any_of(&[(Describe, Cluster), (Describe, ConsumerGroup)]),
        ApiKey::DeleteGroups => Check::each(&[(Delete, ConsumerGroup)]),
        ApiKey::CreateTopics => Check::any_of(AUTO_CREATE),
        ApiKey::DeleteTopics => Check::each(&[(Delete, Topic)]),
        ApiKey::DeleteRecords => Check::each(&[(Delete, Topic)]),
        ApiKey::CreatePartitions => Check::each(&[(Alter, Topic)]),
        // Write on the transactional id when the request names one; IdempotentWrite on the
        // cluster when it does not.
        ApiKey::InitProducerId => Check {
            when: &[(IdempotentWrite, Cluster)],
            ..Check::each(&[(Write, TransactionalId)])
        },
        // The transaction APIs (gateway mode): Write on the transactional id for every step,
        // and on what the step touches: each topic added, the group whose offsets join.
        ApiKey::AddPartitionsToTxn => Check::each(&[(Write, TransactionalId), (Write, Topic)]),
        ApiKey::AddOffsetsToTxn => Check::each(&[(Write, TransactionalId), (Read, ConsumerGroup)]),
        ApiKey::EndTxn => Check::each(&[(Write, TransactionalId)]),
        ApiKey::TxnOffsetCommit => Check::each(&[
            (Write, TransactionalId),
            (Read, ConsumerGroup),
            (Read, Topic),
        ]),
        // Transactions the principal may not Describe are refused (named) or left out
        // (listed); so are the topics of a described one it may not Describe.
        ApiKey::DescribeTransactions => {
            Check::each(&[(Describe, TransactionalId), (Describe, Topic)])
        }
        ApiKey::ListTransactions => Check::each(&[(Describe, TransactionalId)]),
        ApiKey::DescribeConfigs => {
            Check::each(&[(DescribeConfigs, Topic), (DescribeConfigs, Cluster)])
        }
        ApiKey::IncrementalAlterConfigs => {
            Check::each(&[(AlterConfigs, Topic), (AlterConfigs, Cluster)])
        }
        ApiKey::DescribeCluster => Check::each(&[(Describe, Cluster)]),
        ApiKey::DescribeUserScramCredentials => Check::each(&[(Describe, Cluster)]),
        ApiKey::DescribeClientQuotas => Check::each(&[(DescribeConfigs, Cluster)]),
        ApiKey::AlterClientQuotas => Check::each(&[(AlterConfigs, Cluster)]),
        ApiKey::AlterUserScramCredentials => Check::each(&[(Alter, Cluster)]),
        ApiKey::DescribeAcls => Check::each(&[(Describe, Cluster)]),
        ApiKey::CreateAcls | ApiKey::DeleteAcls => Check::each(&[(Alter, Cluster)]),
        _ => return None,
    };
    Some(check)
}

/// Whether a request of API `key` may ask `action` on a resource of `kind`: the table lists
/// the pair for that API.
pub fn asks(key: ApiKey, action: Action, kind: ResourceKind) -> bool {
    required(key).is_some_and(|check| check.pairs().any(|p| *p == (action, kind)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::apis::{APIS, TRANSACTION_APIS};

    #[test]
    fn every_served_api_has_an_entry() {
        let missing: Vec<ApiKey> = APIS
            .iter()
            .chain(TRANSACTION_APIS)
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
        for entry in APIS.iter().chain(TRANSACTION_APIS) {
            let Some(check) = required(entry.key) else {
                continue;
            };
            for (action, kind) in check.pairs() {
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
            .chain(TRANSACTION_APIS)
            .map(|e| e.key)
            .filter(|k| required(*k) == Some(Check::NONE))
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
        // Inter-broker and unserved APIs have no entry, so nothing they ask is allowed.
        assert_eq!(required(ApiKey::WriteTxnMarkers), None);
        assert_eq!(required(ApiKey::DescribeDelegationToken), None);
        assert!(!asks(ApiKey::WriteTxnMarkers, Write, TransactionalId));
    }

    #[test]
    fn asks_lists_only_the_pairs_of_the_api() {
        assert!(asks(ApiKey::Produce, Write, Topic));
        assert!(asks(ApiKey::Produce, Create, Cluster));
        assert!(asks(ApiKey::Produce, Write, TransactionalId));
        assert!(!asks(ApiKey::Produce, Read, Topic));
        assert!(asks(ApiKey::FindCoordinator, Describe, TransactionalId));
        assert!(asks(ApiKey::InitProducerId, Write, TransactionalId));
        assert!(asks(ApiKey::AddPartitionsToTxn, Write, Topic));
        assert!(!asks(ApiKey::AddPartitionsToTxn, Read, ConsumerGroup));
        assert!(asks(ApiKey::TxnOffsetCommit, Read, Topic));
        assert!(!asks(ApiKey::EndTxn, Write, Topic));
        assert!(!asks(ApiKey::Fetch, Alter, Cluster));
    }
}
