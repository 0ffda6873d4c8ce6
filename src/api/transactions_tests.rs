//! The transaction fronts against a backend that records what reaches it: refused requests
//! (and refused parts) never do, allowed ones arrive unchanged and their answers come back,
//! and a failing backend gives the client a retriable code.

use std::path::Path;
use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::*;
use crate::api::produce::order::AppendOrder;
use crate::api::{producer_id, router};
use crate::backend::recording::Recording;
use crate::config::Config;
use crate::principal::{AuthMethod, Principal};
use crate::protocol::apis::TRANSACTION_APIS;
use crate::request::{Caller, FirstUse};

const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();

/// alice may write and describe `tx-ok`, use the topics `ok-*` and read the group `g-ok`;
/// nothing else. `admin` is a super user.
const POLICY: &str = r#"
@id("alice-txn")
permit(
  principal == Palisade::User::"alice",
  action in [Palisade::Action::"Write", Palisade::Action::"Describe"],
  resource == Palisade::TransactionalId::"tx-ok"
);
@id("alice-topics")
permit(
  principal == Palisade::User::"alice",
  action in [Palisade::Action::"Write", Palisade::Action::"Read", Palisade::Action::"Describe"],
  resource is Palisade::Topic
) when { resource.name like "ok-*" };
@id("alice-group")
permit(
  principal == Palisade::User::"alice",
  action == Palisade::Action::"Read",
  resource == Palisade::ConsumerGroup::"g-ok"
);
"#;

/// A broker with [`POLICY`] in front of `backend`.
struct Front {
    dir: tempfile::TempDir,
    broker: Arc<Broker>,
    backend: Arc<Recording>,
}

impl Front {
    fn new(backend: Arc<Recording>) -> Front {
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/schema.cedarschema"),
            policies.join("schema.cedarschema"),
        )
        .unwrap();
        std::fs::write(policies.join("transactions.cedar"), POLICY).unwrap();
        let text = format!(
            "[[listeners]]\nbind = \"127.0.0.1:0\"\nprotocol = \"PLAINTEXT\"\n\
             [sasl]\ncredentials = {:?}\n\
             [authorization]\npolicy_dir = {:?}\nsuper_users = [\"admin\"]\n\
             [storage]\ndata_dir = {:?}\n\
             [audit]\ntopic = false\ndata_operations = \"all\"\n",
            dir.path().join("credentials.json").display().to_string(),
            policies.display().to_string(),
            dir.path().join("data").display().to_string(),
        );
        let config = Config::parse(&text, Path::new("<test>")).unwrap();
        let mut broker = Broker::open(config).unwrap();
        Arc::get_mut(&mut broker)
            .expect("nothing else holds a broker just opened")
            .backend = backend.clone();
        Front {
            dir,
            broker,
            backend,
        }
    }

    fn ctx(&self, who: &str, api_key: ApiKey, api_version: i16) -> RequestContext {
        RequestContext {
            api_key,
            api_version,
            correlation_id: 7,
            caller: Caller {
                principal: Principal {
                    name: who.into(),
                    method: AuthMethod::Sasl("SCRAM-SHA-256"),
                },
                peer: "10.0.0.9:40000".parse().unwrap(),
                listener: "SASL_SSL".into(),
                tls: true,
                client_id: Some("transactions-test".into()),
                audit_session: FirstUse::default(),
            },
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            decisions: crate::audit::RequestDecisions::new(self.broker.audit.clone()),
            lane: crate::backend::Lane::default(),
        }
    }

    /// Every line of the audit trail, once the broker has closed it.
    fn audit_lines(&self) -> Vec<String> {
        self.broker.close();
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(self.dir.path().join("data/audit")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            lines.extend(text.lines().map(str::to_string));
        }
        lines
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn txn(id: &str) -> TransactionalId {
    TransactionalId(s(id))
}

fn add_partitions_request(id: &str, topics: &[(&str, &[i32])]) -> AddPartitionsToTxnRequest {
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn(id))
        .with_v3_and_below_producer_id(ProducerId(42))
        .with_v3_and_below_producer_epoch(3)
        .with_v3_and_below_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partitions(partitions.to_vec())
                })
                .collect(),
        )
}

/// (topic, partition, error code) of every partition result, sorted.
fn add_partitions_codes(r: &AddPartitionsToTxnResponse) -> Vec<(String, i32, i16)> {
    let mut codes: Vec<_> = r
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.partition_error_code,
                )
            })
        })
        .collect();
    codes.sort();
    codes
}

fn add_offsets_request(id: &str, group: &str) -> AddOffsetsToTxnRequest {
    AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn(id))
        .with_producer_id(ProducerId(42))
        .with_producer_epoch(3)
        .with_group_id(GroupId(s(group)))
}

fn end_request(id: &str) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(txn(id))
        .with_producer_id(ProducerId(42))
        .with_producer_epoch(3)
        .with_committed(true)
}

fn commit_request(id: &str, group: &str, topics: &[(&str, &[i32])]) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest::default()
        .with_transactional_id(txn(id))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(42))
        .with_producer_epoch(3)
        .with_generation_id(5)
        .with_member_id(s("member-1"))
        .with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|&p| {
                                    TxnOffsetCommitRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(100 + i64::from(p))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn commit_codes(r: &TxnOffsetCommitResponse) -> Vec<(String, i32, i16)> {
    let mut codes: Vec<_> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    codes.sort();
    codes
}

fn codes(list: &[(&str, i32, i16)]) -> Vec<(String, i32, i16)> {
    let mut v: Vec<_> = list
        .iter()
        .map(|(t, p, c)| (t.to_string(), *p, *c))
        .collect();
    v.sort();
    v
}

/// A backend answering every transaction request with success (and a recognisable throttle).
fn succeeding() -> Arc<Recording> {
    Recording::answering(succeed)
}

fn succeed(request: &RequestKind) -> Result<ResponseKind, crate::backend::BackendError> {
    {
        Ok(match request {
            RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default()
                    .with_throttle_time_ms(11)
                    .with_results_by_topic_v3_and_below(
                        r.v3_and_below_topics
                            .iter()
                            .map(|t| {
                                AddPartitionsToTxnTopicResult::default()
                                    .with_name(t.name.clone())
                                    .with_results_by_partition(
                                        t.partitions
                                            .iter()
                                            .map(|&p| {
                                                AddPartitionsToTxnPartitionResult::default()
                                                    .with_partition_index(p)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
            ),
            RequestKind::AddOffsetsToTxn(_) => ResponseKind::AddOffsetsToTxn(
                AddOffsetsToTxnResponse::default().with_throttle_time_ms(12),
            ),
            RequestKind::EndTxn(_) => {
                ResponseKind::EndTxn(EndTxnResponse::default().with_throttle_time_ms(13))
            }
            RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(
                TxnOffsetCommitResponse::default()
                    .with_throttle_time_ms(14)
                    .with_topics(
                        r.topics
                            .iter()
                            .map(|t| {
                                TxnOffsetCommitResponseTopic::default()
                                    .with_name(t.name.clone())
                                    .with_partitions(
                                        t.partitions
                                            .iter()
                                            .map(|p| {
                                                TxnOffsetCommitResponsePartition::default()
                                                    .with_partition_index(p.partition_index)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
            ),
            RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(
                DescribeTransactionsResponse::default().with_transaction_states(
                    r.transactional_ids
                        .iter()
                        .map(|id| {
                            TransactionState::default()
                                .with_transactional_id(id.clone())
                                .with_transaction_state(s("Ongoing"))
                        })
                        .collect(),
                ),
            ),
            RequestKind::ListTransactions(_) => ResponseKind::ListTransactions(
                ListTransactionsResponse::default().with_transaction_states(vec![
                    ListedState::default().with_transactional_id(txn("tx-ok")),
                    ListedState::default().with_transactional_id(txn("tx-secret")),
                ]),
            ),
            RequestKind::InitProducerId(_) => ResponseKind::InitProducerId(
                InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(42))
                    .with_producer_epoch(0),
            ),
            other => {
                return Err(crate::backend::BackendError::Unsupported(
                    crate::backend::request_name(other),
                ))
            }
        })
    }
}

// =============================================================================================
// Refused transactional ids
// =============================================================================================

#[tokio::test]
async fn a_refused_transactional_id_never_reaches_the_backend() {
    let f = Front::new(succeeding());
    let b = &f.broker;

    let r = add_partitions(
        b,
        &f.ctx("alice", ApiKey::AddPartitionsToTxn, 3),
        add_partitions_request("tx-denied", &[("ok-a", &[0, 1])]),
    )
    .await;
    assert_eq!(
        add_partitions_codes(&r),
        codes(&[("ok-a", 0, TXN_DENIED), ("ok-a", 1, TXN_DENIED)])
    );

    let r = add_offsets(
        b,
        &f.ctx("alice", ApiKey::AddOffsetsToTxn, 3),
        add_offsets_request("tx-denied", "g-ok"),
    )
    .await;
    assert_eq!(r.error_code, TXN_DENIED);

    let r = end(
        b,
        &f.ctx("alice", ApiKey::EndTxn, 3),
        end_request("tx-denied"),
    )
    .await;
    assert_eq!(r.error_code, TXN_DENIED);
    assert_eq!((r.producer_id, r.producer_epoch), (ProducerId(-1), -1));

    let r = offset_commit(
        b,
        &f.ctx("alice", ApiKey::TxnOffsetCommit, 3),
        commit_request("tx-denied", "g-ok", &[("ok-a", &[0]), ("secret", &[2])]),
    )
    .await;
    assert_eq!(
        commit_codes(&r),
        codes(&[("ok-a", 0, TXN_DENIED), ("secret", 2, TXN_DENIED)])
    );

    // InitProducerId's front: the same refusal before the backend.
    let r = producer_id::handle(
        b,
        &f.ctx("alice", ApiKey::InitProducerId, 4),
        InitProducerIdRequest::default()
            .with_transactional_id(Some(txn("tx-denied")))
            .with_transaction_timeout_ms(60_000),
    )
    .await;
    assert_eq!(r.error_code, TXN_DENIED);

    assert_eq!(f.backend.requests(), Vec::new());
    // Each refusal is in the audit trail, naming the transactional id.
    let denied: Vec<_> = f
        .audit_lines()
        .into_iter()
        .filter(|l| l.contains("transactional_id:tx-denied") && l.contains("\"deny\""))
        .collect();
    assert!(!denied.is_empty(), "no audited refusal of tx-denied");
}

#[tokio::test]
async fn a_refused_group_never_reaches_the_backend() {
    let f = Front::new(succeeding());
    let b = &f.broker;
    let r = add_offsets(
        b,
        &f.ctx("alice", ApiKey::AddOffsetsToTxn, 3),
        add_offsets_request("tx-ok", "g-other"),
    )
    .await;
    assert_eq!(r.error_code, GROUP_DENIED);
    let r = offset_commit(
        b,
        &f.ctx("alice", ApiKey::TxnOffsetCommit, 3),
        commit_request("tx-ok", "g-other", &[("ok-a", &[0])]),
    )
    .await;
    assert_eq!(commit_codes(&r), codes(&[("ok-a", 0, GROUP_DENIED)]));
    assert_eq!(f.backend.requests(), Vec::new());
}

// =============================================================================================
// Partly refused requests
// =============================================================================================

#[tokio::test]
async fn a_partly_refused_add_partitions_adds_nothing_and_forwards_nothing() {
    let f = Front::new(succeeding());
    let r = add_partitions(
        &f.broker,
        &f.ctx("alice", ApiKey::AddPartitionsToTxn, 3),
        add_partitions_request("tx-ok", &[("ok-a", &[0, 1]), ("secret", &[0])]),
    )
    .await;
    assert_eq!(
        add_partitions_codes(&r),
        codes(&[
            ("ok-a", 0, NOT_ATTEMPTED),
            ("ok-a", 1, NOT_ATTEMPTED),
            ("secret", 0, TOPIC_DENIED),
        ])
    );
    assert_eq!(f.backend.requests(), Vec::new());
}

#[tokio::test]
async fn internal_topics_are_never_added_even_by_a_super_user() {
    let f = Front::new(succeeding());
    let r = add_partitions(
        &f.broker,
        &f.ctx("admin", ApiKey::AddPartitionsToTxn, 3),
        add_partitions_request("tx-any", &[("__transaction_state", &[0]), ("orders", &[0])]),
    )
    .await;
    assert_eq!(
        add_partitions_codes(&r),
        codes(&[
            ("__transaction_state", 0, TOPIC_DENIED),
            ("orders", 0, NOT_ATTEMPTED),
        ])
    );
    assert_eq!(f.backend.requests(), Vec::new());
}

#[tokio::test]
async fn a_txn_offset_commit_forwards_only_readable_topics_and_merges_the_answers() {
    let f = Front::new(succeeding());
    let request = commit_request("tx-ok", "g-ok", &[("ok-a", &[0, 1]), ("secret", &[2])]);
    let r = offset_commit(
        &f.broker,
        &f.ctx("alice", ApiKey::TxnOffsetCommit, 3),
        request.clone(),
    )
    .await;
    assert_eq!(
        commit_codes(&r),
        codes(&[("ok-a", 0, 0), ("ok-a", 1, 0), ("secret", 2, TOPIC_DENIED)])
    );
    assert_eq!(r.throttle_time_ms, 14, "the backend's answer is the base");
    let mut forwarded = request;
    forwarded.topics.retain(|t| &*t.name == "ok-a");
    assert_eq!(
        f.backend.requests(),
        vec![RequestKind::TxnOffsetCommit(forwarded)]
    );
    // Only unreadable topics: answered without the backend.
    let r = offset_commit(
        &f.broker,
        &f.ctx("alice", ApiKey::TxnOffsetCommit, 3),
        commit_request("tx-ok", "g-ok", &[("secret", &[0])]),
    )
    .await;
    assert_eq!(commit_codes(&r), codes(&[("secret", 0, TOPIC_DENIED)]));
    assert_eq!(f.backend.requests().len(), 1);
}

#[tokio::test]
async fn describe_and_list_show_only_what_the_principal_may_describe() {
    let backend = Recording::answering(|request| match request {
        RequestKind::DescribeTransactions(_) => Ok(ResponseKind::DescribeTransactions(
            DescribeTransactionsResponse::default().with_transaction_states(vec![
                TransactionState::default()
                    .with_transactional_id(txn("tx-ok"))
                    .with_transaction_state(s("Ongoing"))
                    .with_topics(vec![
                        TopicData::default()
                            .with_topic(TopicName(s("ok-a")))
                            .with_partitions(vec![0]),
                        TopicData::default()
                            .with_topic(TopicName(s("secret")))
                            .with_partitions(vec![1]),
                    ]),
                // Not asked for: never passed on.
                TransactionState::default().with_transactional_id(txn("tx-secret")),
            ]),
        )),
        other => succeed(other),
    });
    let f = Front::new(backend);
    let r = describe(
        &f.broker,
        &f.ctx("alice", ApiKey::DescribeTransactions, 0),
        DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![txn("tx-ok"), txn("tx-denied")]),
    )
    .await;
    let states: Vec<_> = r
        .transaction_states
        .iter()
        .map(|s| {
            let topics: Vec<String> = s.topics.iter().map(|t| t.topic.to_string()).collect();
            (s.transactional_id.to_string(), s.error_code, topics)
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("tx-ok".to_string(), 0, vec!["ok-a".to_string()]),
            ("tx-denied".to_string(), TXN_DENIED, vec![]),
        ]
    );
    assert_eq!(
        f.backend.requests(),
        vec![RequestKind::DescribeTransactions(
            DescribeTransactionsRequest::default().with_transactional_ids(vec![txn("tx-ok")])
        )]
    );

    let r = list(
        &f.broker,
        &f.ctx("alice", ApiKey::ListTransactions, 1),
        ListTransactionsRequest::default(),
    )
    .await;
    let listed: Vec<String> = r
        .transaction_states
        .iter()
        .map(|s| s.transactional_id.to_string())
        .collect();
    assert_eq!(listed, vec!["tx-ok".to_string()]);
}

// =============================================================================================
// Allowed requests pass through unchanged
// =============================================================================================

#[tokio::test]
async fn allowed_requests_reach_the_backend_unchanged_and_its_answers_come_back() {
    let f = Front::new(succeeding());
    let b = &f.broker;
    let add = add_partitions_request("tx-ok", &[("ok-a", &[0, 1]), ("ok-b", &[3])]);
    let r = add_partitions(
        b,
        &f.ctx("alice", ApiKey::AddPartitionsToTxn, 3),
        add.clone(),
    )
    .await;
    assert_eq!(r.throttle_time_ms, 11);
    assert_eq!(
        add_partitions_codes(&r),
        codes(&[("ok-a", 0, 0), ("ok-a", 1, 0), ("ok-b", 3, 0)])
    );

    let offsets = add_offsets_request("tx-ok", "g-ok");
    let r = add_offsets(
        b,
        &f.ctx("alice", ApiKey::AddOffsetsToTxn, 4),
        offsets.clone(),
    )
    .await;
    assert_eq!((r.error_code, r.throttle_time_ms), (0, 12));

    let commit = commit_request("tx-ok", "g-ok", &[("ok-a", &[0])]);
    let r = offset_commit(
        b,
        &f.ctx("alice", ApiKey::TxnOffsetCommit, 4),
        commit.clone(),
    )
    .await;
    assert_eq!(r.throttle_time_ms, 14);
    assert_eq!(commit_codes(&r), codes(&[("ok-a", 0, 0)]));

    let r = end(b, &f.ctx("alice", ApiKey::EndTxn, 4), end_request("tx-ok")).await;
    assert_eq!((r.error_code, r.throttle_time_ms), (0, 13));

    assert_eq!(
        f.backend.requests(),
        vec![
            RequestKind::AddPartitionsToTxn(add),
            RequestKind::AddOffsetsToTxn(offsets),
            RequestKind::TxnOffsetCommit(commit),
            RequestKind::EndTxn(end_request("tx-ok")),
        ]
    );
    // Forwarded at the version the client chose.
    assert_eq!(f.backend.versions(), vec![3, 4, 4, 4]);
}

// =============================================================================================
// A failing backend
// =============================================================================================

#[tokio::test]
async fn a_failing_backend_answers_coordinator_not_available() {
    let f = Front::new(Recording::unreachable());
    let b = &f.broker;
    let r = add_partitions(
        b,
        &f.ctx("alice", ApiKey::AddPartitionsToTxn, 3),
        add_partitions_request("tx-ok", &[("ok-a", &[0, 1])]),
    )
    .await;
    assert_eq!(
        add_partitions_codes(&r),
        codes(&[
            ("ok-a", 0, COORDINATOR_NOT_AVAILABLE),
            ("ok-a", 1, COORDINATOR_NOT_AVAILABLE)
        ])
    );
    let r = add_offsets(
        b,
        &f.ctx("alice", ApiKey::AddOffsetsToTxn, 3),
        add_offsets_request("tx-ok", "g-ok"),
    )
    .await;
    assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE);
    let r = end(b, &f.ctx("alice", ApiKey::EndTxn, 3), end_request("tx-ok")).await;
    assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE);
    let r = offset_commit(
        b,
        &f.ctx("alice", ApiKey::TxnOffsetCommit, 3),
        commit_request("tx-ok", "g-ok", &[("ok-a", &[0]), ("secret", &[1])]),
    )
    .await;
    assert_eq!(
        commit_codes(&r),
        codes(&[
            ("ok-a", 0, COORDINATOR_NOT_AVAILABLE),
            ("secret", 1, TOPIC_DENIED)
        ])
    );
    let r = describe(
        b,
        &f.ctx("alice", ApiKey::DescribeTransactions, 0),
        DescribeTransactionsRequest::default().with_transactional_ids(vec![txn("tx-ok")]),
    )
    .await;
    let states: Vec<_> = r
        .transaction_states
        .iter()
        .map(|s| (s.transactional_id.to_string(), s.error_code))
        .collect();
    assert_eq!(
        states,
        vec![("tx-ok".to_string(), COORDINATOR_NOT_AVAILABLE)]
    );
    let r = list(
        b,
        &f.ctx("alice", ApiKey::ListTransactions, 1),
        ListTransactionsRequest::default(),
    )
    .await;
    assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE);
    // A transactional producer retries a coordinator it cannot reach; any other code makes
    // some clients give up on the transaction.
    let r = producer_id::handle(
        b,
        &f.ctx("alice", ApiKey::InitProducerId, 4),
        InitProducerIdRequest::default()
            .with_transactional_id(Some(txn("tx-ok")))
            .with_transaction_timeout_ms(60_000),
    )
    .await;
    assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE);
    // Every allowed request was tried.
    assert_eq!(f.backend.requests().len(), 7);
}

// =============================================================================================
// Routing
// =============================================================================================

/// A request of each transaction API, as alice may send it.
fn sample(key: ApiKey) -> RequestKind {
    match key {
        ApiKey::AddPartitionsToTxn => {
            RequestKind::AddPartitionsToTxn(add_partitions_request("tx-ok", &[("ok-a", &[0])]))
        }
        ApiKey::AddOffsetsToTxn => {
            RequestKind::AddOffsetsToTxn(add_offsets_request("tx-ok", "g-ok"))
        }
        ApiKey::EndTxn => RequestKind::EndTxn(end_request("tx-ok")),
        ApiKey::TxnOffsetCommit => {
            RequestKind::TxnOffsetCommit(commit_request("tx-ok", "g-ok", &[("ok-a", &[0])]))
        }
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(
            DescribeTransactionsRequest::default().with_transactional_ids(vec![txn("tx-ok")]),
        ),
        ApiKey::ListTransactions => {
            RequestKind::ListTransactions(ListTransactionsRequest::default())
        }
        other => panic!("no sample request for {other:?}: add one"),
    }
}

#[tokio::test]
async fn the_router_serves_every_transaction_api_through_its_front() {
    let f = Front::new(succeeding());
    for entry in TRANSACTION_APIS {
        let ctx = f.ctx("alice", entry.key, entry.max);
        let mut order = AppendOrder::default();
        let reply = router::handle(&f.broker, &ctx, sample(entry.key), &mut order)
            .await
            .unwrap_or_else(|e| panic!("{:?} is not routed: {e}", entry.key));
        let router::Reply::Ready(response) = reply else {
            panic!("{:?}: no immediate answer", entry.key);
        };
        // The answer is of the API asked, and the request reached the backend.
        let asked = crate::backend::request_name(&sample(entry.key));
        assert_eq!(format!("{response:?}").split('(').next(), Some(asked));
        let last = f.backend.requests().pop();
        assert_eq!(last, Some(sample(entry.key)), "{:?}", entry.key);
        // Counted under its own name in the request metrics.
        assert_eq!(
            crate::metrics::api_name(entry.key),
            format!("{:?}", entry.key)
        );
    }
    assert_eq!(f.backend.requests().len(), TRANSACTION_APIS.len());
}

#[tokio::test]
async fn the_batched_broker_form_of_add_partitions_is_refused_not_forwarded() {
    let f = Front::new(succeeding());
    let r = add_partitions(
        &f.broker,
        &f.ctx("admin", ApiKey::AddPartitionsToTxn, 4),
        AddPartitionsToTxnRequest::default(),
    )
    .await;
    assert_eq!(r.error_code, ResponseError::UnsupportedVersion.code());
    assert_eq!(f.backend.requests(), Vec::new());
}
