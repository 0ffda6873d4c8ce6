//! Join, sync, heartbeat, leave, expiry, static members, describe/list.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::*;

use super::helpers::*;
use crate::group::GroupState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_join_concurrently_get_one_generation_and_one_leader() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 100);
    let (a, b) = tokio::join!(join(&c, "g", "", b"ma", 7), join(&c, "g", "", b"mb", 7));
    assert_eq!((a.error_code, b.error_code), (0, 0));
    assert_eq!(a.generation_id, 1);
    assert_eq!(b.generation_id, 1);
    assert_eq!(a.leader, b.leader);
    assert_eq!(a.protocol_name.as_deref(), Some("range"));
    assert_eq!(a.protocol_type.as_deref(), Some("consumer"));
    let (leader, follower) = if a.members.is_empty() {
        (&b, &a)
    } else {
        (&a, &b)
    };
    assert_eq!(leader.leader, leader.member_id);
    assert!(follower.members.is_empty());
    let mut seen: Vec<(String, Vec<u8>)> = leader
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.metadata.to_vec()))
        .collect();
    seen.sort();
    let mut expected = vec![
        (a.member_id.to_string(), b"ma".to_vec()),
        (b.member_id.to_string(), b"mb".to_vec()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    encodes(&a, 7);
}

#[tokio::test]
async fn join_v4_requires_member_id_and_v3_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 0);
    let first = c
        .join_group(&origin("rdkafka"), join_req("g4", "", 3000, b"m"), 4)
        .await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    assert!(first.member_id.starts_with("rdkafka-"));
    assert_eq!(first.generation_id, -1);
    encodes(&first, 4);
    let second = c
        .join_group(
            &origin("rdkafka"),
            join_req("g4", &first.member_id, 3000, b"m"),
            4,
        )
        .await;
    assert_eq!(second.error_code, 0);
    assert_eq!(second.member_id, first.member_id);
    assert_eq!(second.generation_id, 1);

    let old = c
        .join_group(&origin("python"), join_req("g3", "", 3000, b"m"), 3)
        .await;
    assert_eq!(old.error_code, 0);
    assert_eq!(old.generation_id, 1);
    assert_eq!(old.members.len(), 1);
    encodes(&old, 3);
    encodes(&old, 0);
}

#[tokio::test]
async fn join_validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 0);
    let r = c
        .join_group(&origin("x"), join_req("", "", 3000, b"m"), 5)
        .await;
    assert_eq!(r.error_code, ResponseError::InvalidGroupId.code());
    let r = c
        .join_group(&origin("x"), join_req("g", "", 1, b"m"), 5)
        .await;
    assert_eq!(r.error_code, ResponseError::InvalidSessionTimeout.code());
    let r = c
        .join_group(&origin("x"), join_req("g", "nobody", 3000, b"m"), 5)
        .await;
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);

    let ok = join(&c, "g", "", b"m", 5).await;
    assert_eq!(ok.error_code, 0);
    let mut other = join_req("g", "", 3000, b"m");
    other.protocol_type = s("connect");
    let r = c.join_group(&origin("x"), other, 5).await;
    assert_eq!(
        r.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let mut other = join_req("g", "", 3000, b"m");
    other.protocols.retain(|p| p.name.as_str() == "sticky");
    let r = c.join_group(&origin("x"), other, 5).await;
    assert_eq!(
        r.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
}

#[tokio::test(start_paused = true)]
async fn sync_delivers_each_member_its_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 100);
    let (a, b) = tokio::join!(join(&c, "g", "", b"ma", 5), join(&c, "g", "", b"mb", 5));
    let (leader, follower, follower_meta) = if a.members.is_empty() {
        (b, a, b"ma")
    } else {
        (a, b, b"mb")
    };
    let gen = leader.generation_id;
    let (l, f) = (leader.member_id.to_string(), follower.member_id.to_string());
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
    // Heartbeats between join and sync are fine.
    assert_eq!(heartbeat(&c, "g", &f, gen).await, 0);

    // The follower arrives first and waits for the leader.
    let follower_sync = tokio::spawn({
        let c = c.clone();
        let f = f.clone();
        async move { c.sync_group(sync_req("g", &f, gen, &[]), 5).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!follower_sync.is_finished());
    let ls = c
        .sync_group(
            sync_req("g", &l, gen, &[(&l, b"for-leader"), (&f, b"for-follower")]),
            5,
        )
        .await;
    let fs = follower_sync.await.unwrap();
    assert_eq!((ls.error_code, fs.error_code), (0, 0));
    assert_eq!(&ls.assignment[..], b"for-leader");
    assert_eq!(&fs.assignment[..], b"for-follower");
    assert_eq!(ls.protocol_name.as_deref(), Some("range"));
    encodes(&ls, 5);
    encodes(&fs, 0);
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));

    // A late SyncGroup in Stable returns the stored assignment.
    let again = c.sync_group(sync_req("g", &f, gen, &[]), 3).await;
    assert_eq!(&again.assignment[..], b"for-follower");

    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![s("g").into(), s("missing").into()];
    let d = c.describe_groups(req, 5).await;
    encodes(&d, 5);
    encodes(&d, 0);
    assert_eq!(d.groups[0].group_state.as_str(), "Stable");
    assert_eq!(d.groups[0].protocol_data.as_str(), "range");
    assert_eq!(d.groups[0].members.len(), 2);
    let fm = d.groups[0]
        .members
        .iter()
        .find(|m| m.member_id.as_str() == f)
        .unwrap();
    assert_eq!(&fm.member_assignment[..], b"for-follower");
    assert_eq!(&fm.member_metadata[..], follower_meta);
    assert_eq!(d.groups[1].group_state.as_str(), "Dead");
    assert_eq!(d.groups[1].error_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_makes_the_other_member_rejoin_alone() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 100);
    let (l, f, gen) = stable_pair(&c, "g").await;

    let mut leave = LeaveGroupRequest::default();
    leave.group_id = s("g").into();
    let mut who = MemberIdentity::default();
    who.member_id = s(&l);
    leave.members = vec![who];
    let resp = c.leave_group(leave, 3).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.members[0].error_code, 0);
    encodes(&resp, 3);

    assert_eq!(heartbeat(&c, "g", &f, gen).await, REBALANCE_IN_PROGRESS);
    let rejoin = join(&c, "g", &f, b"mb", 5).await;
    assert_eq!(rejoin.error_code, 0);
    assert_eq!(rejoin.generation_id, gen + 1);
    assert_eq!(rejoin.leader.as_str(), f);
    assert_eq!(rejoin.members.len(), 1);
    let sync = c
        .sync_group(sync_req("g", &f, gen + 1, &[(&f, b"everything")]), 5)
        .await;
    assert_eq!(&sync.assignment[..], b"everything");
    assert_eq!(heartbeat(&c, "g", &f, gen + 1).await, 0);
    // The leaver is gone.
    assert_eq!(heartbeat(&c, "g", &l, gen + 1).await, UNKNOWN_MEMBER_ID);

    // v0 leave of the last member empties the group.
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = s("g").into();
    leave.member_id = s(&f);
    let resp = c.leave_group(leave.clone(), 0).await;
    assert_eq!(resp.error_code, 0);
    encodes(&resp, 0);
    let resp = c.leave_group(leave, 1).await;
    assert_eq!(resp.error_code, UNKNOWN_MEMBER_ID);
}

#[tokio::test(start_paused = true)]
async fn silent_member_expires_and_the_other_rebalances() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 0);
    // Two v3 members with a 300 ms session.
    let mut ra = join_req("g", "", 300, b"ma");
    ra.rebalance_timeout_ms = 2000;
    let a = c.join_group(&origin("a"), ra, 3).await;
    assert_eq!(a.error_code, 0);
    let a_id = a.member_id.to_string();
    let sync = c
        .sync_group(sync_req("g", &a_id, 1, &[(&a_id, b"x")]), 3)
        .await;
    assert_eq!(sync.error_code, 0);
    // b joins; a learns about the rebalance through its heartbeat and rejoins.
    let b_join = tokio::spawn({
        let c = c.clone();
        async move {
            c.join_group(&origin("b"), join_req("g", "", 300, b"mb"), 3)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(heartbeat(&c, "g", &a_id, 1).await, REBALANCE_IN_PROGRESS);
    let a2 = c
        .join_group(&origin("a"), join_req("g", &a_id, 300, b"ma"), 3)
        .await;
    let b = b_join.await.unwrap();
    assert_eq!((a2.generation_id, b.generation_id), (2, 2));
    let b_id = b.member_id.to_string();
    let leader = a2.leader.to_string();
    let (ls, fs) = tokio::join!(
        c.sync_group(
            sync_req("g", &leader, 2, &[(&a_id, b"1"), (&b_id, b"2")]),
            3
        ),
        c.sync_group(
            sync_req("g", if leader == a_id { &b_id } else { &a_id }, 2, &[]),
            3
        )
    );
    assert_eq!((ls.error_code, fs.error_code), (0, 0));

    // Only b heartbeats; a's session expires.
    let mut saw_rebalance = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match heartbeat(&c, "g", &b_id, 2).await {
            0 => {}
            code => {
                assert_eq!(code, REBALANCE_IN_PROGRESS);
                saw_rebalance = true;
                break;
            }
        }
    }
    assert!(saw_rebalance, "b never heard of the rebalance");
    assert_eq!(heartbeat(&c, "g", &a_id, 2).await, UNKNOWN_MEMBER_ID);
    let b3 = c
        .join_group(&origin("b"), join_req("g", &b_id, 300, b"mb"), 3)
        .await;
    assert_eq!(b3.generation_id, 3);
    assert_eq!(b3.members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn member_that_does_not_rejoin_is_dropped_at_the_rebalance_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 0);
    let mut ra = join_req("g", "", 5000, b"ma");
    ra.rebalance_timeout_ms = 200;
    let a = c.join_group(&origin("a"), ra, 3).await;
    let a_id = a.member_id.to_string();
    c.sync_group(sync_req("g", &a_id, 1, &[]), 3).await;
    // b joins, a never rejoins: after a's 200 ms rebalance timeout b gets a generation alone.
    let started = tokio::time::Instant::now();
    let mut rb = join_req("g", "", 5000, b"mb");
    rb.rebalance_timeout_ms = 200;
    let b = c.join_group(&origin("b"), rb, 3).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(2));
    assert_eq!(b.error_code, 0);
    assert_eq!(b.generation_id, 2);
    assert_eq!(b.leader, b.member_id);
    assert_eq!(b.members.len(), 1);
    assert_eq!(heartbeat(&c, "g", &a_id, 1).await, UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn wrong_generation_and_unknown_member_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 100);
    let (l, f, gen) = stable_pair(&c, "g").await;
    let r = c.sync_group(sync_req("g", &f, gen + 5, &[]), 5).await;
    assert_eq!(r.error_code, ILLEGAL_GENERATION);
    let r = c.sync_group(sync_req("g", "ghost", gen, &[]), 5).await;
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    let r = c.sync_group(sync_req("nogroup", &l, gen, &[]), 5).await;
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(heartbeat(&c, "g", &l, gen - 1).await, ILLEGAL_GENERATION);
    assert_eq!(heartbeat(&c, "g", "ghost", gen).await, UNKNOWN_MEMBER_ID);
    assert_eq!(
        heartbeat(&c, "", &l, gen).await,
        ResponseError::InvalidGroupId.code()
    );

    let r = c
        .offset_commit(commit_req("g", &l, gen + 1, &[("t", 0, 5, "")]), 8)
        .await;
    assert_eq!(commit_errors(&r), vec![ILLEGAL_GENERATION]);
    let r = c
        .offset_commit(commit_req("g", "ghost", gen, &[("t", 0, 5, "")]), 8)
        .await;
    assert_eq!(commit_errors(&r), vec![UNKNOWN_MEMBER_ID]);
    // A simple consumer may not commit into an active group.
    let r = c
        .offset_commit(commit_req("g", "", -1, &[("t", 0, 5, "")]), 8)
        .await;
    assert_eq!(commit_errors(&r), vec![UNKNOWN_MEMBER_ID]);
    let r = c
        .offset_commit(commit_req("g", &l, gen, &[("t", 0, 5, "")]), 8)
        .await;
    assert_eq!(commit_errors(&r), vec![0]);
    encodes(&r, 8);
    encodes(&r, 2);
}

#[tokio::test]
async fn static_member_restart_keeps_its_place_and_fences_the_old_id() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 100);
    let static_join = |member: &str| {
        let mut r = join_req("g", member, 3000, b"m");
        r.group_instance_id = Some(s("host-1"));
        r
    };
    let leader = join(&c, "g", "", b"m", 5);
    let static_origin = origin("s");
    let first = c.join_group(&static_origin, static_join(""), 5);
    let (leader, first) = tokio::join!(leader, first);
    // Static members skip MEMBER_ID_REQUIRED.
    assert_eq!(first.error_code, 0);
    assert_eq!(first.generation_id, leader.generation_id);
    let gen = first.generation_id;
    let (lid, sid) = (leader.member_id.to_string(), first.member_id.to_string());
    let (a, b) = if leader.members.is_empty() {
        (sid.clone(), lid.clone())
    } else {
        (lid.clone(), sid.clone())
    };
    let (x, y) = tokio::join!(
        c.sync_group(
            sync_req("g", &a, gen, &[(&sid, b"static-part"), (&lid, b"other")]),
            5
        ),
        c.sync_group(sync_req("g", &b, gen, &[]), 5)
    );
    assert_eq!((x.error_code, y.error_code), (0, 0));
    if leader.members.is_empty() {
        // The static member happened to lead; the restart then rebalances, nothing to check.
        return;
    }
    // Restart with the same instance id: new member id, same generation, no rebalance.
    let restarted = c.join_group(&origin("s"), static_join(""), 5).await;
    assert_eq!(restarted.error_code, 0);
    assert_eq!(restarted.generation_id, gen);
    assert_ne!(restarted.member_id.as_str(), sid);
    let sync = c
        .sync_group(sync_req("g", &restarted.member_id, gen, &[]), 5)
        .await;
    assert_eq!(&sync.assignment[..], b"static-part");
    let mut hb = heartbeat_req("g", &sid, gen);
    hb.group_instance_id = Some(s("host-1"));
    let r = c.heartbeat(hb, 4).await;
    assert_eq!(r.error_code, ResponseError::FencedInstanceId.code());
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));

    // LeaveGroup v4 by instance id.
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = s("g").into();
    let mut who = MemberIdentity::default();
    who.group_instance_id = Some(s("host-1"));
    leave.members = vec![who];
    let resp = c.leave_group(leave, 4).await;
    assert_eq!(resp.members[0].error_code, 0);
    assert_eq!(heartbeat(&c, "g", &lid, gen).await, REBALANCE_IN_PROGRESS);
}

#[tokio::test]
async fn list_groups_with_state_filter() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 100);
    stable_pair(&c, "active").await;
    let r = c
        .offset_commit(commit_req("idle", "", -1, &[("t", 0, 1, "")]), 2)
        .await;
    assert_eq!(commit_errors(&r), vec![0]);

    let all = c.list_groups(ListGroupsRequest::default(), 4).await;
    let names: Vec<&str> = all.groups.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(names, vec!["active", "idle"]);
    assert_eq!(all.groups[0].group_state.as_str(), "Stable");
    assert_eq!(all.groups[0].protocol_type.as_str(), "consumer");
    encodes(&all, 4);
    encodes(&all, 0);

    let mut req = ListGroupsRequest::default();
    req.states_filter = vec![s("empty")];
    let empty = c.list_groups(req, 4).await;
    let names: Vec<&str> = empty.groups.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(names, vec!["idle"]);
    encodes(&c.list_groups(ListGroupsRequest::default(), 5).await, 5);
}

#[tokio::test(start_paused = true)]
async fn rebalance_phases_gate_sync_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 100);
    let (a, b) = tokio::join!(join(&c, "g", "", b"ma", 5), join(&c, "g", "", b"mb", 5));
    let gen = a.generation_id;
    let (l, f) = if a.members.is_empty() {
        (b.member_id.to_string(), a.member_id.to_string())
    } else {
        (a.member_id.to_string(), b.member_id.to_string())
    };
    // CompletingRebalance: commits must wait for the assignment.
    let r = c
        .offset_commit(commit_req("g", &f, gen, &[("t", 0, 1, "")]), 7)
        .await;
    assert_eq!(commit_errors(&r), vec![REBALANCE_IN_PROGRESS]);
    let (ls, fs) = tokio::join!(
        c.sync_group(sync_req("g", &l, gen, &[(&l, b"1"), (&f, b"2")]), 4),
        c.sync_group(sync_req("g", &f, gen, &[]), 4)
    );
    assert_eq!((ls.error_code, fs.error_code), (0, 0));

    // A third member triggers a rebalance: sync is refused, but the old generation may still
    // commit (a revoking consumer commits before rejoining).
    let third = tokio::spawn({
        let c = c.clone();
        async move { join(&c, "g", "", b"mc", 5).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    let r = c.sync_group(sync_req("g", &f, gen, &[]), 4).await;
    assert_eq!(r.error_code, REBALANCE_IN_PROGRESS);
    let r = c
        .offset_commit(commit_req("g", &f, gen, &[("t", 0, 9, "")]), 7)
        .await;
    assert_eq!(commit_errors(&r), vec![0]);
    let (ra, rb) = tokio::join!(join(&c, "g", &l, b"ma", 5), join(&c, "g", &f, b"mb", 5));
    let rc = third.await.unwrap();
    assert_eq!(ra.generation_id, gen + 1);
    assert_eq!(rb.generation_id, gen + 1);
    assert_eq!(rc.generation_id, gen + 1);
    assert_eq!(ra.members.len(), 3, "the old leader stays leader");
}

#[tokio::test(start_paused = true)]
async fn follower_parked_in_sync_is_released_when_the_leader_dies() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 100);
    let short = |member: &str| join_req("g", member, 200, b"m");
    let (oa, ob) = (origin("a"), origin("b"));
    let (a, b) = tokio::join!(
        c.join_group(&oa, short(""), 3),
        c.join_group(&ob, short(""), 3)
    );
    let gen = a.generation_id;
    let f = if a.members.is_empty() {
        a.member_id
    } else {
        b.member_id
    };
    // The leader never syncs and never heartbeats; the follower's parked sync must end.
    let started = tokio::time::Instant::now();
    let r = c.sync_group(sync_req("g", &f, gen, &[]), 3).await;
    assert_eq!(r.error_code, REBALANCE_IN_PROGRESS);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn shutdown_answers_parked_joins() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), 5_000);
    let parked = tokio::spawn({
        let c = c.clone();
        async move { join(&c, "g", "", b"m", 5).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!parked.is_finished());
    c.shutdown().unwrap();
    let r = parked.await.unwrap();
    assert_eq!(r.error_code, ResponseError::CoordinatorNotAvailable.code());
}

#[tokio::test]
async fn protocol_metadata_above_the_member_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::group::GroupSettings {
        max_member_metadata_bytes: 1024,
        ..crate::group::GroupSettings::default()
    };
    let c = crate::group::GroupCoordinator::open_with(dir.path(), settings).unwrap();
    // Two protocols of 600 bytes each: 1,200 bytes plus names, above the 1 KiB cap.
    static BIG: [u8; 600] = [7; 600];
    let r = c
        .join_group(&origin("a"), join_req("g", "", 3000, &BIG), 5)
        .await;
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    assert_eq!(
        c.group_state("g"),
        None,
        "nothing is kept of the refused join"
    );
    // Within the cap the same member is admitted.
    static SMALL: [u8; 400] = [7; 400];
    let r = join(&c, "g", "", &SMALL, 5).await;
    assert_eq!(r.error_code, 0);
}

#[tokio::test]
async fn joins_beyond_the_group_size_get_group_max_size_reached() {
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::group::GroupSettings {
        max_group_size: 2,
        ..crate::group::GroupSettings::default()
    };
    let c = crate::group::GroupCoordinator::open_with(dir.path(), settings).unwrap();
    // v4+: each new member is first held as pending, which counts toward the size.
    let a = c
        .join_group(&origin("a"), join_req("g", "", 3000, b"m"), 5)
        .await;
    let b = c
        .join_group(&origin("b"), join_req("g", "", 3000, b"m"), 5)
        .await;
    assert_eq!(
        (a.error_code, b.error_code),
        (MEMBER_ID_REQUIRED, MEMBER_ID_REQUIRED)
    );
    let third = c
        .join_group(&origin("c"), join_req("g", "", 3000, b"m"), 5)
        .await;
    assert_eq!(third.error_code, ResponseError::GroupMaxSizeReached.code());
}
