//! The one authorization enforcement point, from outside: every path that decides (the Kafka
//! API handlers, the audit topic's rule, the plugins' `authorize` host call) gives the same
//! answer, every question a handler asks is one its API's table entry lists, plugin decisions
//! land in the audit trail, and one request's decisions are a bounded number of audit lines.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod audit_support;
mod common;

use std::path::Path;

use audit_support::{file_lines, parse, wait_in_file};
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use palisade::api::access::Access;
use palisade::api::produce::order::AppendOrder;
use palisade::api::router::{handle, Reply};
use palisade::api::RequestContext;
use palisade::authz::Action;
use palisade::broker::{Broker, Running};
use palisade::plugin::oracle::Question;
use palisade::principal::{AuthMethod, Principal};
use palisade::protocol::apis::{APIS, TRANSACTION_APIS};
use palisade::request::{Caller, FirstUse};

const AUDIT_TOPIC: &str = "__palisade_audit";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A broker over `dir` with the shipped policies (without the dev loopback rule when
/// `loopback` is false) and `admin` as its super user.
async fn broker(dir: &Path, loopback: bool, extra: &[(&str, &str)]) -> Running {
    let policies = dir.join("policies");
    common::copy_shipped_policies(&policies);
    if !loopback {
        std::fs::remove_file(policies.join("00-dev-loopback.cedar")).unwrap();
    }
    let allow_all = common::allow_all_policy_dir();
    let policy_line = common::policy_dir_line(&policies);
    let mut replacements = vec![(allow_all.as_str(), policy_line.as_str())];
    replacements.extend_from_slice(extra);
    common::start_with(dir, &replacements).await
}

fn caller(name: &str, method: AuthMethod, listener: &str, ip: &str) -> Caller {
    Caller {
        principal: Principal {
            name: name.into(),
            method,
        },
        peer: format!("{ip}:40000").parse().unwrap(),
        listener: listener.into(),
        tls: listener.contains("SSL"),
        client_id: Some("enforcement-test".into()),
        audit_session: FirstUse::default(),
    }
}

fn context(broker: &Broker, api_key: ApiKey, api_version: i16, caller: Caller) -> RequestContext {
    RequestContext {
        api_key,
        api_version,
        correlation_id: 1,
        caller,
        advertised_host: "127.0.0.1".into(),
        advertised_port: 9092,
        decisions: palisade::audit::RequestDecisions::new(broker.audit.clone()),
        lane: palisade::backend::Lane::default(),
    }
}

// =============================================================================================
// One answer through every path
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_gives_the_same_answer_and_super_users_do_not_bypass_the_audit_topic() {
    let dir = tempfile::tempdir().unwrap();
    let running = broker(dir.path(), true, &[]).await;
    let broker = running.broker.clone();
    let oracle = broker.plugins.services().oracle();
    let admin = || {
        caller(
            "admin",
            AuthMethod::Sasl("SCRAM-SHA-512"),
            "SASL_SSL",
            "10.0.0.5",
        )
    };
    let loopback = || caller("ANONYMOUS", AuthMethod::Anonymous, "PLAINTEXT", "127.0.0.1");
    let stranger = || caller("mallory", AuthMethod::Sasl("PLAIN"), "SASL_SSL", "10.0.0.6");
    // (who, action, the API that asks it, topic, expected answer)
    let cases: Vec<(Caller, Action, ApiKey, &str, bool)> = vec![
        // Reading the audit trail is for policy alone: a super user is denied by its forbid.
        (admin(), Action::Read, ApiKey::Fetch, AUDIT_TOPIC, false),
        (
            admin(),
            Action::Describe,
            ApiKey::Metadata,
            AUDIT_TOPIC,
            false,
        ),
        // Changing it is refused to everyone, super users and the dev loopback rule included.
        (admin(), Action::Write, ApiKey::Produce, AUDIT_TOPIC, false),
        (
            admin(),
            Action::Delete,
            ApiKey::DeleteTopics,
            AUDIT_TOPIC,
            false,
        ),
        (
            loopback(),
            Action::Write,
            ApiKey::Produce,
            AUDIT_TOPIC,
            false,
        ),
        // Elsewhere a super user bypasses policy, and policy decides for everyone else.
        (admin(), Action::Read, ApiKey::Fetch, "orders", true),
        (admin(), Action::Write, ApiKey::Produce, "orders", true),
        (loopback(), Action::Read, ApiKey::Fetch, "orders", true),
        (stranger(), Action::Read, ApiKey::Fetch, "orders", false),
    ];
    for (who, action, api, topic, expected) in cases {
        let ctx = context(&broker, api, 12, who.clone());
        let by_handler = Access::new(&broker, &ctx).topic(action, topic);
        let by_plugin = oracle.allowed(
            &Question {
                plugin: "probe",
                principal: &who.principal.name,
                action: action.name(),
                topic,
            },
            &who,
        );
        let name = &who.principal.name;
        assert_eq!(
            by_handler, expected,
            "{name} {action} {topic} through the handlers"
        );
        assert_eq!(
            by_plugin, expected,
            "{name} {action} {topic} through the plugin host call"
        );
    }
    // Decrypt is only a plugin's question: the audit topic is policy's alone there too.
    let who = admin();
    let decrypt = Question {
        plugin: "probe",
        principal: "admin",
        action: "Decrypt",
        topic: AUDIT_TOPIC,
    };
    assert!(!oracle.allowed(&decrypt, &who));

    // The plugin's decisions are in the audit trail like any other, with the plugin's name
    // and the caller's connection in the one mechanism vocabulary.
    let audit = dir.path().join("audit");
    let e = wait_in_file(&audit, "authorization", |e| {
        e["detail"]["plugin"] == "probe"
            && e["operation"] == "Decrypt"
            && e["resource"] == format!("topic:{AUDIT_TOPIC}")
    });
    assert_eq!(e["result"], "deny", "{e}");
    assert_eq!(e["principal"], "User:admin", "{e}");
    assert_eq!(e["policy_ids"][0], "audit-topic-auditors-only", "{e}");
    assert_eq!(e["mechanism"], "SCRAM-SHA-512", "{e}");
    assert_eq!(e["source_ip"], "10.0.0.5", "{e}");
    let e = wait_in_file(&audit, "authorization", |e| {
        e["detail"]["plugin"] == "probe"
            && e["operation"] == "Write"
            && e["principal"] == "User:ANONYMOUS"
    });
    assert_eq!(e["result"], "deny", "{e}");
    assert_eq!(e["mechanism"], "anonymous", "{e}");
    assert_eq!(
        e["reason"], "the audit topic is written by the broker only",
        "{e}"
    );
    running.shutdown().await;
}

// =============================================================================================
// Handlers and the API table agree
// =============================================================================================

const TOPIC: &str = "walk-topic";
const GROUP: &str = "walk-group";
const TX: &str = "walk-tx";

/// Requests of API `key` naming every kind of resource the API can name (existing and
/// missing topics, a group, a transactional id), in the forms that ask different questions.
fn samples(key: ApiKey, records: &Bytes) -> Vec<(i16, RequestKind)> {
    use kafka_protocol::messages::*;
    let topic = |n: &str| TopicName(s(n));
    match key {
        ApiKey::Produce => {
            use produce_request::*;
            let data = |n: &str| {
                TopicProduceData::default()
                    .with_name(topic(n))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records.clone()))])
            };
            vec![(
                9,
                RequestKind::Produce(
                    ProduceRequest::default()
                        .with_acks(1)
                        .with_timeout_ms(5000)
                        .with_topic_data(vec![data(TOPIC), data("walk-auto-produce")]),
                ),
            )]
        }
        ApiKey::Fetch => vec![(12, RequestKind::Fetch(common::fetch_now(TOPIC, 0)))],
        ApiKey::ListOffsets => {
            use list_offsets_request::*;
            vec![(
                7,
                RequestKind::ListOffsets(
                    ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_topics(vec![ListOffsetsTopic::default()
                            .with_name(topic(TOPIC))
                            .with_partitions(vec![ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1)])]),
                ),
            )]
        }
        ApiKey::Metadata => {
            use metadata_request::*;
            let named = |n: &str| MetadataRequestTopic::default().with_name(Some(topic(n)));
            vec![
                (
                    12,
                    RequestKind::Metadata(
                        MetadataRequest::default()
                            .with_topics(Some(vec![named(TOPIC), named("walk-auto-metadata")]))
                            .with_allow_auto_topic_creation(true),
                    ),
                ),
                (
                    12,
                    RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
                ),
            ]
        }
        ApiKey::OffsetCommit => {
            use offset_commit_request::*;
            vec![(
                8,
                RequestKind::OffsetCommit(
                    OffsetCommitRequest::default()
                        .with_group_id(GroupId(s(GROUP)))
                        .with_generation_id_or_member_epoch(-1)
                        .with_topics(vec![OffsetCommitRequestTopic::default()
                            .with_name(topic(TOPIC))
                            .with_partitions(vec![OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(0)])]),
                ),
            )]
        }
        ApiKey::OffsetFetch => {
            use offset_fetch_request::*;
            vec![
                (
                    7,
                    RequestKind::OffsetFetch(
                        OffsetFetchRequest::default()
                            .with_group_id(GroupId(s(GROUP)))
                            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                                .with_name(topic(TOPIC))
                                .with_partition_indexes(vec![0])])),
                    ),
                ),
                (
                    8,
                    RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                        OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s(GROUP)))
                            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                                .with_name(topic(TOPIC))
                                .with_partition_indexes(vec![0])])),
                    ])),
                ),
            ]
        }
        ApiKey::FindCoordinator => [(0i8, GROUP), (1, TX)]
            .into_iter()
            .flat_map(|(kind, id)| {
                [
                    (
                        4,
                        RequestKind::FindCoordinator(
                            FindCoordinatorRequest::default()
                                .with_key_type(kind)
                                .with_coordinator_keys(vec![s(id)]),
                        ),
                    ),
                    (
                        3,
                        RequestKind::FindCoordinator(
                            FindCoordinatorRequest::default()
                                .with_key_type(kind)
                                .with_key(s(id)),
                        ),
                    ),
                ]
            })
            .collect(),
        ApiKey::JoinGroup => {
            use join_group_request::*;
            vec![(
                9,
                RequestKind::JoinGroup(
                    JoinGroupRequest::default()
                        .with_group_id(GroupId(s(GROUP)))
                        .with_session_timeout_ms(10_000)
                        .with_rebalance_timeout_ms(10_000)
                        .with_protocol_type(s("consumer"))
                        .with_protocols(vec![JoinGroupRequestProtocol::default()
                            .with_name(s("range"))
                            .with_metadata(Bytes::from_static(b"m"))]),
                ),
            )]
        }
        ApiKey::SyncGroup => vec![(
            5,
            RequestKind::SyncGroup(
                SyncGroupRequest::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_member_id(s("nobody")),
            ),
        )],
        ApiKey::Heartbeat => vec![(
            4,
            RequestKind::Heartbeat(
                HeartbeatRequest::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_member_id(s("nobody")),
            ),
        )],
        ApiKey::LeaveGroup => vec![(
            5,
            RequestKind::LeaveGroup(
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_members(vec![
                        leave_group_request::MemberIdentity::default().with_member_id(s("nobody"))
                    ]),
            ),
        )],
        ApiKey::DescribeGroups => vec![(
            5,
            RequestKind::DescribeGroups(
                DescribeGroupsRequest::default().with_groups(vec![GroupId(s(GROUP))]),
            ),
        )],
        ApiKey::ListGroups => vec![(4, RequestKind::ListGroups(ListGroupsRequest::default()))],
        ApiKey::DeleteGroups => vec![(
            2,
            RequestKind::DeleteGroups(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("walk-gone"))]),
            ),
        )],
        ApiKey::CreateTopics => {
            use create_topics_request::*;
            vec![(
                7,
                RequestKind::CreateTopics(
                    CreateTopicsRequest::default()
                        .with_timeout_ms(5000)
                        .with_validate_only(true)
                        .with_topics(vec![CreatableTopic::default()
                            .with_name(topic("walk-created"))
                            .with_num_partitions(1)
                            .with_replication_factor(1)]),
                ),
            )]
        }
        ApiKey::DeleteTopics => {
            use delete_topics_request::*;
            vec![
                (
                    6,
                    RequestKind::DeleteTopics(
                        DeleteTopicsRequest::default()
                            .with_timeout_ms(5000)
                            .with_topics(vec![DeleteTopicState::default()
                                .with_name(Some(topic("walk-never-existed")))]),
                    ),
                ),
                (
                    5,
                    RequestKind::DeleteTopics(
                        DeleteTopicsRequest::default()
                            .with_timeout_ms(5000)
                            .with_topic_names(vec![topic(AUDIT_TOPIC)]),
                    ),
                ),
            ]
        }
        ApiKey::DeleteRecords => {
            use delete_records_request::*;
            vec![(
                2,
                RequestKind::DeleteRecords(
                    DeleteRecordsRequest::default()
                        .with_timeout_ms(5000)
                        .with_topics(vec![DeleteRecordsTopic::default()
                            .with_name(topic(TOPIC))
                            .with_partitions(vec![DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(0)])]),
                ),
            )]
        }
        ApiKey::InitProducerId => vec![
            (
                4,
                RequestKind::InitProducerId(
                    InitProducerIdRequest::default()
                        .with_transaction_timeout_ms(60_000)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                ),
            ),
            (
                4,
                RequestKind::InitProducerId(
                    InitProducerIdRequest::default()
                        .with_transactional_id(Some(TransactionalId(s(TX))))
                        .with_transaction_timeout_ms(60_000)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                ),
            ),
        ],
        ApiKey::DescribeConfigs => {
            use describe_configs_request::*;
            vec![(
                4,
                RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(
                    vec![
                        DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s(TOPIC)),
                        DescribeConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(s("0")),
                    ],
                )),
            )]
        }
        ApiKey::CreatePartitions => {
            use create_partitions_request::*;
            vec![(
                3,
                RequestKind::CreatePartitions(
                    CreatePartitionsRequest::default()
                        .with_timeout_ms(5000)
                        .with_validate_only(true)
                        .with_topics(vec![CreatePartitionsTopic::default()
                            .with_name(topic(TOPIC))
                            .with_count(2)]),
                ),
            )]
        }
        ApiKey::IncrementalAlterConfigs => {
            use incremental_alter_configs_request::*;
            let resource = |kind: i8, name: &str| {
                AlterConfigsResource::default()
                    .with_resource_type(kind)
                    .with_resource_name(s(name))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(s("1000")))])
            };
            vec![(
                1,
                RequestKind::IncrementalAlterConfigs(
                    IncrementalAlterConfigsRequest::default()
                        .with_validate_only(true)
                        .with_resources(vec![resource(2, TOPIC), resource(4, "0")]),
                ),
            )]
        }
        ApiKey::DescribeCluster => vec![(
            1,
            RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        )],
        ApiKey::DescribeUserScramCredentials => vec![(
            0,
            RequestKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::default(),
            ),
        )],
        ApiKey::AlterUserScramCredentials => vec![(
            0,
            RequestKind::AlterUserScramCredentials(AlterUserScramCredentialsRequest::default()),
        )],
        ApiKey::DescribeClientQuotas => vec![(
            1,
            RequestKind::DescribeClientQuotas(DescribeClientQuotasRequest::default()),
        )],
        ApiKey::AlterClientQuotas => vec![(
            1,
            RequestKind::AlterClientQuotas(AlterClientQuotasRequest::default()),
        )],
        ApiKey::DescribeAcls => vec![(
            3,
            RequestKind::DescribeAcls(
                DescribeAclsRequest::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ),
        )],
        ApiKey::CreateAcls => vec![(3, RequestKind::CreateAcls(CreateAclsRequest::default()))],
        ApiKey::DeleteAcls => vec![(3, RequestKind::DeleteAcls(DeleteAclsRequest::default()))],
        ApiKey::ApiVersions => vec![(3, RequestKind::ApiVersions(ApiVersionsRequest::default()))],
        // The transaction APIs (served in front of an upstream; the local backend refuses them
        // after the front has decided).
        ApiKey::AddPartitionsToTxn => {
            use add_partitions_to_txn_request::*;
            vec![(
                3,
                RequestKind::AddPartitionsToTxn(
                    AddPartitionsToTxnRequest::default()
                        .with_v3_and_below_transactional_id(TransactionalId(s(TX)))
                        .with_v3_and_below_topics(vec![
                            AddPartitionsToTxnTopic::default()
                                .with_name(topic(TOPIC))
                                .with_partitions(vec![0]),
                            AddPartitionsToTxnTopic::default()
                                .with_name(topic(AUDIT_TOPIC))
                                .with_partitions(vec![0]),
                        ]),
                ),
            )]
        }
        ApiKey::AddOffsetsToTxn => vec![(
            4,
            RequestKind::AddOffsetsToTxn(
                AddOffsetsToTxnRequest::default()
                    .with_transactional_id(TransactionalId(s(TX)))
                    .with_group_id(GroupId(s(GROUP))),
            ),
        )],
        ApiKey::EndTxn => vec![(
            4,
            RequestKind::EndTxn(
                EndTxnRequest::default()
                    .with_transactional_id(TransactionalId(s(TX)))
                    .with_committed(true),
            ),
        )],
        ApiKey::TxnOffsetCommit => {
            use txn_offset_commit_request::*;
            vec![(
                4,
                RequestKind::TxnOffsetCommit(
                    TxnOffsetCommitRequest::default()
                        .with_transactional_id(TransactionalId(s(TX)))
                        .with_group_id(GroupId(s(GROUP)))
                        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                            .with_name(topic(TOPIC))
                            .with_partitions(vec![
                                TxnOffsetCommitRequestPartition::default().with_partition_index(0)
                            ])]),
                ),
            )]
        }
        ApiKey::DescribeTransactions => vec![(
            0,
            RequestKind::DescribeTransactions(
                DescribeTransactionsRequest::default()
                    .with_transactional_ids(vec![TransactionalId(s(TX))]),
            ),
        )],
        ApiKey::ListTransactions => vec![(
            1,
            RequestKind::ListTransactions(ListTransactionsRequest::default()),
        )],
        // Answered by the connection's login, never by a handler.
        ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => Vec::new(),
        other => panic!("no sample request for {other:?}: add one so its questions are checked"),
    }
}

/// Walks every served API as a super user (the deepest paths: auto-creation, validation) and
/// as a principal policy denies, over a connection the dev rule does not cover. A question a
/// handler asks that its API's table entry does not list fails a debug assertion at the
/// enforcement point and is audited as refused; neither may happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_asks_only_the_questions_its_table_entry_lists() {
    let dir = tempfile::tempdir().unwrap();
    let running = broker(
        dir.path(),
        false,
        &[(
            "data_operations = \"first-use\"",
            "data_operations = \"all\"",
        )],
    )
    .await;
    let broker = running.broker.clone();
    broker
        .logs
        .create_topic(TOPIC, 1, broker.topic_defaults.clone())
        .unwrap();
    let records = common::batch(&[b"v"], kafka_protocol::records::Compression::None, None);
    let mut walked = 0;
    for who in ["admin", "mallory"] {
        for entry in APIS.iter().chain(TRANSACTION_APIS) {
            for (version, body) in samples(entry.key, &records) {
                let ctx = context(
                    &broker,
                    entry.key,
                    version,
                    caller(
                        who,
                        AuthMethod::Sasl("SCRAM-SHA-256"),
                        "SASL_SSL",
                        "10.0.0.8",
                    ),
                );
                let mut order = AppendOrder::default();
                let reply = handle(&broker, &ctx, body, &mut order)
                    .await
                    .unwrap_or_else(|e| panic!("{:?}: {e}", entry.key));
                if let Reply::Deferred(done) = reply {
                    done.await;
                }
                order.settle().await;
                walked += 1;
            }
        }
    }
    assert!(
        walked >= 2 * (APIS.len() - 2 + TRANSACTION_APIS.len()),
        "walked {walked} requests"
    );
    running.shutdown().await;
    // Both outcomes were audited (the walk reached the decisions) and none was a question
    // outside the table.
    let events = parse(&file_lines(&dir.path().join("audit")));
    let decisions: Vec<_> = events
        .iter()
        .filter(|e| e["event_type"] == "authorization")
        .collect();
    assert!(decisions.iter().any(|e| e["result"] == "allow"));
    assert!(decisions.iter().any(|e| e["result"] == "deny"));
    let unlisted: Vec<_> = decisions
        .iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("authorization table"))
        })
        .collect();
    assert!(
        unlisted.is_empty(),
        "questions outside the table: {unlisted:#?}"
    );
}

// =============================================================================================
// One request, a bounded number of audit lines
// =============================================================================================

/// A Metadata naming 10,000 unknown topics a principal may not Describe: the trail holds a
/// handful of lines for it, with the count and the first names, not 10,000 events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_naming_10000_denied_topics_is_a_bounded_number_of_audit_lines() {
    let dir = tempfile::tempdir().unwrap();
    let running = broker(dir.path(), false, &[]).await;
    let names: Vec<String> = (0..10_000).map(|i| format!("probe-{i:05}")).collect();
    let mut raw = common::Raw::connect(running.addresses[0]).await;
    let req = MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| {
                    metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(s(n))))
                })
                .collect(),
        ))
        .with_allow_auto_topic_creation(true);
    let resp: MetadataResponse = raw.request(ApiKey::Metadata, 12, &req).await;
    assert_eq!(resp.topics.len(), 10_000);
    assert!(resp.topics.iter().all(|t| t.error_code == 29), "all denied");
    drop(raw);
    running.shutdown().await;

    let events = parse(&file_lines(&dir.path().join("audit")));
    let denials: Vec<_> = events
        .iter()
        .filter(|e| {
            e["event_type"] == "authorization"
                && e["operation"] == "Describe"
                && e["principal"] == "User:ANONYMOUS"
                && e["result"] == "deny"
        })
        .collect();
    assert_eq!(
        denials.len(),
        1,
        "one event for the request: {}",
        denials.len()
    );
    let e = denials[0];
    assert_eq!(e["detail"]["count"], 10_000, "{e}");
    let listed = e["detail"]["resources"].as_array().unwrap();
    assert_eq!(listed.len(), 100, "{e}");
    assert_eq!(listed[0], "topic:probe-00000");
    assert_eq!(e["detail"]["unlisted"], 9_900);
    assert_eq!(e["resource"], "topic:probe-00000");
    assert_eq!(e["client_id"], "raw-test");
    let lines = file_lines(&dir.path().join("audit"));
    let bytes: usize = lines.iter().map(String::len).sum();
    eprintln!(
        "whole trail after a Metadata naming 10,000 denied topics: {} lines, {bytes} bytes",
        lines.len()
    );
    assert!(
        lines.len() < 50 && bytes < 64 * 1024,
        "{} lines, {bytes} bytes in the trail",
        lines.len()
    );
}
