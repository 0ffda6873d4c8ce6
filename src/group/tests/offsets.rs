//! Offset commit/fetch, durability across reopen, torn logs, deletion.

use std::io::Write;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;

use super::helpers::*;
use crate::group::{supported_versions, GroupCoordinator, GroupSettings, SUPPORTED};

#[tokio::test]
async fn simple_consumer_commit_then_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 0);
    let r = c
        .offset_commit(
            commit_req(
                "g",
                "",
                -1,
                &[("t", 0, 42, "meta-0"), ("t", 1, 7, ""), ("u", 0, 3, "x")],
            ),
            8,
        )
        .await;
    assert_eq!(commit_errors(&r), vec![0, 0, 0]);

    let req = fetch_req("g", Some(&[("t", &[0, 1, 2])]));
    for v in 1..=7 {
        let resp = c.offset_fetch(req.clone(), v).await;
        encodes(&resp, v);
        assert_eq!(
            fetched(&resp),
            vec![
                ("t".into(), 0, 42, "meta-0".into()),
                ("t".into(), 1, 7, "".into()),
                ("t".into(), 2, -1, "".into()),
            ]
        );
    }
    // Null topics (v2+): every topic of the group.
    let all = c.offset_fetch(fetch_req("g", None), 2).await;
    assert_eq!(fetched(&all).len(), 3);
    // Unknown group: -1 without error.
    let none = c
        .offset_fetch(fetch_req("other", Some(&[("t", &[0])])), 3)
        .await;
    assert_eq!(fetched(&none), vec![("t".into(), 0, -1, "".into())]);
    assert_eq!(none.error_code, 0);
    // Overwrite.
    let r = c
        .offset_commit(commit_req("g", "", -1, &[("t", 0, 43, "again")]), 2)
        .await;
    assert_eq!(commit_errors(&r), vec![0]);
    let resp = c
        .offset_fetch(fetch_req("g", Some(&[("t", &[0])])), 1)
        .await;
    assert_eq!(fetched(&resp), vec![("t".into(), 0, 43, "again".into())]);
}

#[tokio::test]
async fn commit_errors_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 0);
    let long = "x".repeat(5000);
    let r = c
        .offset_commit(
            commit_req("g", "", -1, &[("t", 0, 1, &long), ("t", 1, 2, "")]),
            8,
        )
        .await;
    assert_eq!(
        commit_errors(&r),
        vec![ResponseError::OffsetMetadataTooLarge.code(), 0]
    );
    // A member generation for a group that does not exist.
    let r = c
        .offset_commit(commit_req("nope", "m", 3, &[("t", 0, 1, "")]), 8)
        .await;
    assert_eq!(commit_errors(&r), vec![ILLEGAL_GENERATION]);
}

#[tokio::test]
async fn offset_fetch_v8_answers_several_groups() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 0);
    c.offset_commit(commit_req("g1", "", -1, &[("t", 0, 10, "a")]), 8)
        .await;
    c.offset_commit(
        commit_req("g2", "", -1, &[("t", 0, 20, "b"), ("u", 3, 30, "")]),
        8,
    )
    .await;
    let group = |id: &str, topics: Option<Vec<(&str, Vec<i32>)>>| {
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = s(id).into();
        g.topics = topics.map(|ts| {
            ts.into_iter()
                .map(|(name, parts)| {
                    let mut t = OffsetFetchRequestTopics::default();
                    t.name = s(name).into();
                    t.partition_indexes = parts;
                    t
                })
                .collect()
        });
        g
    };
    let mut req = OffsetFetchRequest::default();
    req.groups = vec![
        group("g1", Some(vec![("t", vec![0, 1])])),
        group("g2", None),
        group("unknown", Some(vec![("t", vec![0])])),
    ];
    let resp = c.offset_fetch(req, 8).await;
    encodes(&resp, 8);
    assert!(resp.topics.is_empty());
    assert_eq!(resp.groups.len(), 3);
    type Shape = (String, i16, Vec<(String, i32, i64)>);
    let shape: Vec<Shape> = resp
        .groups
        .iter()
        .map(|g| {
            let parts = g
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.name.to_string(), p.partition_index, p.committed_offset))
                })
                .collect();
            (g.group_id.to_string(), g.error_code, parts)
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (
                "g1".into(),
                0,
                vec![("t".into(), 0, 10), ("t".into(), 1, -1)]
            ),
            (
                "g2".into(),
                0,
                vec![("t".into(), 0, 20), ("u".into(), 3, 30)]
            ),
            ("unknown".into(), 0, vec![("t".into(), 0, -1)]),
        ]
    );
    let meta = resp.groups[0].topics[0].partitions[0]
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(meta.as_str(), "a");
}

#[tokio::test]
async fn offsets_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = open(dir.path(), 0);
        for i in 0..5 {
            let r = c
                .offset_commit(
                    commit_req("g", "", -1, &[("t", 0, i, "m"), ("t", 1, 100 + i, "")]),
                    8,
                )
                .await;
            assert_eq!(commit_errors(&r), vec![0, 0]);
        }
        // No shutdown: a crash right after the responses.
    }
    let c = open(dir.path(), 0);
    let resp = c.offset_fetch(fetch_req("g", None), 7).await;
    assert_eq!(
        fetched(&resp),
        vec![
            ("t".into(), 0, 4, "m".into()),
            ("t".into(), 1, 104, "".into())
        ]
    );
    // Reopen compacted the log to one line per offset.
    let log = std::fs::read_to_string(dir.path().join("groups/offsets.log")).unwrap();
    assert_eq!(log.lines().count(), 2);
    c.shutdown().unwrap();
    let c = open(dir.path(), 0);
    assert_eq!(
        fetched(&c.offset_fetch(fetch_req("g", None), 7).await).len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_are_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = open(dir.path(), 0);
        let mut tasks = Vec::new();
        for p in 0..32 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                let r = c
                    .offset_commit(
                        commit_req("g", "", -1, &[("t", p, i64::from(p) * 10, "")]),
                        8,
                    )
                    .await;
                commit_errors(&r)
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), vec![0]);
        }
    }
    let c = open(dir.path(), 0);
    let resp = c.offset_fetch(fetch_req("g", None), 7).await;
    let got = fetched(&resp);
    assert_eq!(got.len(), 32);
    assert!(got.iter().all(|(_, p, o, _)| *o == i64::from(*p) * 10));
}

#[tokio::test]
async fn torn_last_line_is_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = open(dir.path(), 0);
        c.offset_commit(commit_req("g", "", -1, &[("t", 0, 5, "ok")]), 8)
            .await;
        c.offset_commit(commit_req("g", "", -1, &[("t", 1, 6, "ok")]), 8)
            .await;
    }
    let path = dir.path().join("groups/offsets.log");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"0badc0de {\"type\":\"commit\",\"group\":\"g\",\"top")
        .unwrap();
    drop(f);
    let c = open(dir.path(), 0);
    let resp = c.offset_fetch(fetch_req("g", None), 7).await;
    assert_eq!(
        fetched(&resp),
        vec![
            ("t".into(), 0, 5, "ok".into()),
            ("t".into(), 1, 6, "ok".into())
        ]
    );
    // New commits after recovery land on a clean line.
    c.offset_commit(commit_req("g", "", -1, &[("t", 2, 7, "")]), 8)
        .await;
    drop(c);
    let c = open(dir.path(), 0);
    assert_eq!(
        fetched(&c.offset_fetch(fetch_req("g", None), 7).await).len(),
        3
    );
}

#[tokio::test]
async fn delete_groups_refuses_active_groups() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 100);
    stable_pair(&c, "busy").await;
    c.offset_commit(commit_req("idle", "", -1, &[("t", 0, 1, "")]), 8)
        .await;
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![s("busy").into(), s("idle").into(), s("missing").into()];
    let resp = c.delete_groups(req, 2).await;
    encodes(&resp, 2);
    let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![
            ResponseError::NonEmptyGroup.code(),
            0,
            ResponseError::GroupIdNotFound.code()
        ]
    );
    let gone = c
        .offset_fetch(fetch_req("idle", Some(&[("t", &[0])])), 5)
        .await;
    assert_eq!(fetched(&gone), vec![("t".into(), 0, -1, "".into())]);
    drop(c);
    let c = open(dir.path(), 0);
    let gone = c.offset_fetch(fetch_req("idle", None), 5).await;
    assert!(fetched(&gone).is_empty());
}

#[tokio::test]
async fn deleted_topic_offsets_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 0);
    c.offset_commit(
        commit_req("g", "", -1, &[("t", 0, 1, ""), ("u", 0, 2, "")]),
        8,
    )
    .await;
    c.topic_deleted("t");
    let resp = c.offset_fetch(fetch_req("g", None), 7).await;
    assert_eq!(fetched(&resp), vec![("u".into(), 0, 2, "".into())]);
    c.shutdown().unwrap();
    drop(c);
    let c = GroupCoordinator::open_with(dir.path(), GroupSettings::default()).unwrap();
    let resp = c.offset_fetch(fetch_req("g", None), 7).await;
    assert_eq!(fetched(&resp), vec![("u".into(), 0, 2, "".into())]);
}

#[test]
fn supported_table_matches_the_codec() {
    use kafka_protocol::messages::ApiKey;
    assert_eq!(supported_versions(ApiKey::JoinGroup), Some((0, 9)));
    assert_eq!(supported_versions(ApiKey::Produce), None);
    for (api, min, max) in SUPPORTED {
        let range = api.valid_versions();
        assert!(range.min <= *min && *max <= range.max, "{api:?}");
    }
}

#[tokio::test]
async fn compaction_keeps_only_live_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 0);
    for i in 0..50 {
        c.offset_commit(commit_req("g", "", -1, &[("t", 0, i, "")]), 8)
            .await;
    }
    let log = dir.path().join("groups/offsets.log");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 50);
    c.inner.compact().unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    // Commits after a compaction still append and survive.
    c.offset_commit(commit_req("g", "", -1, &[("t", 0, 77, "")]), 8)
        .await;
    drop(c);
    let c = open(dir.path(), 0);
    let resp = c.offset_fetch(fetch_req("g", None), 7).await;
    assert_eq!(fetched(&resp), vec![("t".into(), 0, 77, "".into())]);
}

#[tokio::test]
async fn a_group_stores_offsets_for_a_bounded_number_of_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let settings = GroupSettings {
        max_offsets_per_group: 2,
        ..GroupSettings::default()
    };
    let c = GroupCoordinator::open_with(dir.path(), settings).unwrap();
    let r = c
        .offset_commit(
            commit_req(
                "g",
                "",
                -1,
                &[("t", 0, 1, ""), ("t", 1, 1, ""), ("t", 2, 1, "")],
            ),
            8,
        )
        .await;
    let refused = ResponseError::PolicyViolation.code();
    assert_eq!(commit_errors(&r), vec![0, 0, refused]);
    // Updating a stored partition is still accepted; a new one is not, in any group's topic.
    let r = c
        .offset_commit(
            commit_req("g", "", -1, &[("t", 1, 5, ""), ("u", 0, 1, "")]),
            8,
        )
        .await;
    assert_eq!(commit_errors(&r), vec![0, refused]);
    let resp = c
        .offset_fetch(fetch_req("g", Some(&[("t", &[0, 1, 2]), ("u", &[0])])), 7)
        .await;
    assert_eq!(
        fetched(&resp),
        vec![
            ("t".into(), 0, 1, "".into()),
            ("t".into(), 1, 5, "".into()),
            ("t".into(), 2, -1, "".into()),
            ("u".into(), 0, -1, "".into()),
        ]
    );
    // Another group has its own allowance.
    let r = c
        .offset_commit(commit_req("h", "", -1, &[("t", 2, 1, "")]), 8)
        .await;
    assert_eq!(commit_errors(&r), vec![0]);
}
