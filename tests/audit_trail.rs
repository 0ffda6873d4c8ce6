//! The audit trail's guarantees beyond single events: `palisade audit verify` (real binary)
//! detects edits, deletions and reordering across rotated files; no client, super users
//! included, can change the audit topic; `data_operations` modes; metrics under load.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod audit_support;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use audit_support::*;
use kafka_protocol::messages::*;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

// =============================================================================================
// Tamper evidence: `palisade audit verify` on the real binary
// =============================================================================================

fn verify(paths: &[&Path]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["audit", "verify"])
        .args(paths)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    f(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn verify_detects_an_edited_a_deleted_and_a_swapped_line_across_rotation() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Small files so the trail rotates; events from real requests.
        let b = common::BackgroundBroker::start(
            dir.path(),
            &[("rotate_bytes = 104857600", "rotate_bytes = 4096")],
        );
        let addr = b.running.as_ref().unwrap().addresses[0];
        b.rt.block_on(async {
            let mut raw = common::Raw::connect(addr).await;
            for i in 0..40 {
                common::create_topic(&mut raw, &format!("t{i}"), 1, &[]).await;
            }
        });
    }
    let audit = dir.path().join("audit");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected rotation, got {files:?}");
    let (ok, out) = verify(&[&audit]);
    assert!(ok, "{out}");
    assert!(out.starts_with("ok:"), "{out}");

    // The files passed explicitly in the wrong order: detected at the first line out of place.
    let (ok, out) = verify(&[&files[1], &files[0]]);
    assert!(!ok, "{out}");

    let backup = tempfile::tempdir().unwrap();
    let keep = |p: &Path| backup.path().join(p.file_name().unwrap());
    for f in &files {
        std::fs::copy(f, keep(f)).unwrap();
    }
    let restore = || {
        for f in &files {
            std::fs::copy(keep(f), f).unwrap();
        }
    };
    let target = &files[1];
    let name = target.file_name().unwrap().to_str().unwrap().to_string();

    // One edited field of line 3 of the second file.
    rewrite(target, |l| {
        l[2] = l[2].replace("\"result\":\"", "\"result\":\"x")
    });
    let (ok, out) = verify(&[&audit]);
    assert!(!ok, "edit not detected");
    assert!(out.contains(&format!("{name}:3:")), "{out}");
    assert!(out.contains("altered"), "{out}");
    restore();

    // One deleted line.
    rewrite(target, |l| {
        l.remove(4);
    });
    let (ok, out) = verify(&[&audit]);
    assert!(!ok, "deletion not detected");
    assert!(out.contains(&format!("{name}:5:")), "{out}");
    restore();

    // Two lines swapped.
    rewrite(target, |l| l.swap(1, 2));
    let (ok, out) = verify(&[&audit]);
    assert!(!ok, "swap not detected");
    assert!(out.contains(&format!("{name}:2:")), "{out}");
    restore();

    // The first line of the trail removed.
    rewrite(&files[0], |l| {
        l.remove(0);
    });
    let (ok, out) = verify(&[&audit]);
    assert!(!ok, "removal of the first event not detected: {out}");
    restore();

    let (ok, out) = verify(&[&audit]);
    assert!(ok, "restored trail: {out}");
}

// =============================================================================================
// The audit topic is read-only for every client, super users included
// =============================================================================================

#[test]
fn no_client_not_even_a_super_user_can_write_delete_trim_or_reconfigure_the_audit_topic() {
    let dir = tempfile::tempdir().unwrap();
    // ANONYMOUS (the raw and librdkafka clients on PLAINTEXT) is a super user here.
    let b = common::BackgroundBroker::start(
        dir.path(),
        &[(
            "super_users = [\"admin\"]",
            "super_users = [\"admin\", \"ANONYMOUS\"]",
        )],
    );
    let addr = b.running.as_ref().unwrap().addresses[0];
    let bootstrap = addr.to_string();
    let broker = b.running.as_ref().unwrap().broker.clone();
    let topic = broker
        .logs
        .topic(AUDIT_TOPIC)
        .expect("audit topic created at start");
    assert_eq!(topic.config().retention_ms, 365 * 24 * 3_600_000);
    assert_eq!(topic.config().cleanup_policy, "delete");

    // A stock producer.
    let producer: FutureProducer = client_config(&bootstrap, &[]).create().unwrap();
    let sent = futures::executor::block_on(
        producer.send(
            FutureRecord::to(AUDIT_TOPIC)
                .key("k")
                .payload("forged event"),
            Duration::from_secs(10),
        ),
    );
    match sent {
        Err((e, _)) => assert_eq!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::TopicAuthorizationFailed),
            "{e}"
        ),
        Ok(d) => panic!("produced to the audit topic: {d:?}"),
    }
    // A stock admin client.
    let admin: AdminClient<DefaultClientContext> = client_config(&bootstrap, &[]).create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let deleted = futures::executor::block_on(admin.delete_topics(&[AUDIT_TOPIC], &opts)).unwrap();
    assert!(
        matches!(
            &deleted[0],
            Err((_, RDKafkaErrorCode::TopicAuthorizationFailed))
        ),
        "{deleted:?}"
    );

    b.rt.block_on(async {
        let mut raw = common::Raw::connect(addr).await;
        // Produce (acks=all) with the raw client.
        let records = common::batch(
            &[b"forged"],
            kafka_protocol::records::Compression::None,
            None,
        );
        let resp: ProduceResponse = raw
            .request(
                ApiKey::Produce,
                9,
                &common::produce_request(AUDIT_TOPIC, 0, -1, records),
            )
            .await;
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code,
            TOPIC_AUTHORIZATION_FAILED
        );
        // Shorter retention, compaction, even validate-only.
        assert_eq!(
            alter_config(&mut raw, AUDIT_TOPIC, "retention.ms", "1000").await,
            TOPIC_AUTHORIZATION_FAILED
        );
        assert_eq!(
            alter_config(&mut raw, AUDIT_TOPIC, "cleanup.policy", "compact").await,
            TOPIC_AUTHORIZATION_FAILED
        );
        // DeleteRecords.
        use kafka_protocol::messages::delete_records_request::*;
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(s(AUDIT_TOPIC)))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(-1)])]);
        let resp: DeleteRecordsResponse = raw.request(ApiKey::DeleteRecords, 2, &req).await;
        assert_eq!(
            resp.topics[0].partitions[0].error_code,
            TOPIC_AUTHORIZATION_FAILED
        );
        // DeleteTopics with the raw client.
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topic_names(vec![TopicName(s(AUDIT_TOPIC))]);
        let resp: DeleteTopicsResponse = raw.request(ApiKey::DeleteTopics, 5, &req).await;
        assert_eq!(resp.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    });

    // Nothing changed: same config, nothing forged, nothing trimmed; each attempt is audited.
    let topic = broker.logs.topic(AUDIT_TOPIC).unwrap();
    assert_eq!(topic.config().retention_ms, 365 * 24 * 3_600_000);
    assert_eq!(topic.config().cleanup_policy, "delete");
    assert_eq!(topic.partition(0).unwrap().log_start_offset(), 0);
    let audit = dir.path().join("audit");
    for op in ["Write", "Delete", "AlterConfigs"] {
        let e = wait_in_file(&audit, "authorization", |e| {
            e["resource"] == "topic:__palisade_audit"
                && e["operation"] == op
                && e["result"] == "deny"
        });
        assert_eq!(e["principal"], "User:ANONYMOUS");
    }
    let values = read_audit_topic(
        &bootstrap,
        &[],
        "audit-check",
        Duration::from_secs(20),
        |v| !v.is_empty(),
    )
    .unwrap();
    assert!(!values.is_empty());
    assert!(values.iter().all(|v| !v.contains("forged")));
}

// =============================================================================================
// data_operations: off, first-use, all
// =============================================================================================

fn produce_three_times(dir: &Path, mode: &str) -> usize {
    let b = common::BackgroundBroker::start(
        dir,
        &[(
            "data_operations = \"first-use\"",
            &format!("data_operations = \"{mode}\""),
        )],
    );
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = common::Raw::connect(addr).await;
        common::create_topic(&mut raw, "data", 1, &[]).await;
        for _ in 0..3 {
            let records = common::batch(&[b"v"], kafka_protocol::records::Compression::None, None);
            let resp: ProduceResponse = raw
                .request(
                    ApiKey::Produce,
                    9,
                    &common::produce_request("data", 0, -1, records),
                )
                .await;
            assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        }
    });
    drop(b);
    parse(&file_lines(&dir.join("audit")))
        .iter()
        .filter(|e| {
            e["event_type"] == "authorization"
                && e["operation"] == "Write"
                && e["resource"] == "topic:data"
                && e["result"] == "allow"
        })
        .count()
}

#[test]
fn data_operation_allows_are_audited_never_once_per_session_or_always() {
    let off = tempfile::tempdir().unwrap();
    let first = tempfile::tempdir().unwrap();
    let all = tempfile::tempdir().unwrap();
    assert_eq!(produce_three_times(off.path(), "off"), 0);
    assert_eq!(produce_three_times(first.path(), "first-use"), 1);
    assert_eq!(produce_three_times(all.path(), "all"), 3);
}

// =============================================================================================
// Metrics under load, connection limits
// =============================================================================================

use common::metrics_page::{metric, scrape};

#[test]
fn metrics_move_under_load_and_connection_limits_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::BackgroundBroker::start(
        dir.path(),
        &[(
            "max_connections_per_ip = 1000",
            "max_connections_per_ip = 4",
        )],
    );
    let running = b.running.as_ref().unwrap();
    let metrics = running.metrics_address.expect("metrics endpoint bound");
    assert!(metrics.ip().is_loopback());
    let bootstrap = running.addresses[0].to_string();
    let produce = "palisade_requests_total{api=\"Produce\"}";
    let bytes_in = "palisade_bytes_in_total{topic=\"load\"}";
    let before = scrape(metrics);

    // A load of real produce requests in the background, scraped while it runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = std::thread::spawn({
        let bootstrap = bootstrap.clone();
        let stop = stop.clone();
        move || {
            let producer: FutureProducer = client_config(&bootstrap, &[("linger.ms", "0".into())])
                .create()
                .unwrap();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let payload = format!("message {i}");
                futures::executor::block_on(producer.send(
                    FutureRecord::to("load").key("k").payload(&payload),
                    Duration::from_secs(10),
                ))
                .unwrap();
                i += 1;
            }
            i
        }
    });
    // Scrape while the load runs: the counters move between two scrapes, not only at the end.
    let during = common::wait_for(Duration::from_secs(60), || {
        let text = scrape(metrics);
        (metric(&text, produce) > metric(&before, produce)).then_some(text)
    });
    let during =
        during.unwrap_or_else(|| panic!("no produce counted under load: {}", scrape(metrics)));
    let moved = common::wait_until(Duration::from_secs(60), || {
        let now = scrape(metrics);
        metric(&now, produce) >= metric(&during, produce) + 10.0
            && metric(&now, bytes_in) > metric(&during, bytes_in)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = load.join().unwrap();
    assert!(moved.is_some(), "the counters stopped moving under load");
    assert!(sent > 10, "only {sent} messages in the load");
    let after = scrape(metrics);
    assert!(metric(&after, produce) >= metric(&during, produce) + 10.0);
    assert!(metric(&after, bytes_in) > metric(&during, bytes_in));
    assert!(
        metric(
            &after,
            "palisade_connections_accepted_total{listener=\"PLAINTEXT\"}"
        ) >= 1.0
    );
    assert!(after.contains("palisade_request_latency_seconds_bucket{api=\"Produce\",le=\"+Inf\"}"));
    assert!(metric(&after, "palisade_audit_events_total{sink=\"file\"}") > 0.0);
    assert!(
        metric(
            &after,
            "palisade_reload_generations_total{kind=\"policies\"}"
        ) >= 1.0
    );

    // More connections from one address than allowed: refused, audited, counted.
    let held: Vec<std::net::TcpStream> = (0..6)
        .map(|_| std::net::TcpStream::connect(running.addresses[0]).unwrap())
        .collect();
    let audit = dir.path().join("audit");
    let e = wait_in_file(&audit, "connection_limited", |_| true);
    assert_eq!(e["source_ip"], "127.0.0.1");
    assert_eq!(e["listener"], "PLAINTEXT");
    assert!(
        metric(
            &scrape(metrics),
            "palisade_throttled_total{kind=\"connection\"}"
        ) >= 1.0
    );
    // The consumer below needs a slot of this address again: wait until the broker has seen
    // the held connections close.
    drop(held);
    common::wait_until(Duration::from_secs(10), || {
        common::api_versions_answered(running.addresses[0])
    })
    .expect("the held connections' slots were never freed");
    // ... and in the topic (the allow-all test policies let ANONYMOUS read it).
    let values = read_audit_topic(
        &bootstrap,
        &[],
        "audit-metrics",
        Duration::from_secs(20),
        |v| v.iter().any(|l| l.contains("\"connection_limited\"")),
    )
    .unwrap();
    assert!(values.iter().any(|l| l.contains("\"connection_limited\"")));

    // Anything but GET /metrics is not served.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(metrics).unwrap();
    s.write_all(b"GET /secrets HTTP/1.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
}

fn verify_args(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["audit", "verify"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A broker's trail whose events are topic creations `prefix0..` (after the start-up events).
fn trail_of(dir: &Path, prefix: &str, topics: usize) {
    let b = common::BackgroundBroker::start(dir, &[]);
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = common::Raw::connect(addr).await;
        for i in 0..topics {
            common::create_topic(&mut raw, &format!("{prefix}{i}"), 1, &[]).await;
        }
    });
}

/// The chain has no secret: a trail rewritten with a recomputed chain passes a plain verify.
/// The head an earlier run wrote does not let it pass.
#[test]
fn an_anchored_head_finds_a_trail_replaced_by_another_consistent_one() {
    let dir = tempfile::tempdir().unwrap();
    trail_of(dir.path(), "a", 5);
    let audit = dir.path().join("audit");
    let head = dir.path().join("head.json");
    let (ok, out) = verify_args(&[audit.as_os_str(), "--head-out".as_ref(), head.as_os_str()]);
    assert!(ok, "{out}");
    assert!(out.contains("head seq="), "{out}");
    // More events later (a restart and more topics): the anchored event is still there.
    trail_of(dir.path(), "b", 3);
    let (ok, out) = verify_args(&[audit.as_os_str(), "--anchor".as_ref(), head.as_os_str()]);
    assert!(ok, "{out}");
    assert!(out.contains("is unchanged"), "{out}");

    // Another broker's trail, consistent on its own, put in its place.
    let other = tempfile::tempdir().unwrap();
    trail_of(other.path(), "a", 20);
    let other_audit = other.path().join("audit");
    let (ok, out) = verify_args(&[other_audit.as_os_str()]);
    assert!(ok, "{out}");
    let (ok, out) = verify_args(&[
        other_audit.as_os_str(),
        "--anchor".as_ref(),
        head.as_os_str(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("TAMPERED") && out.contains("rewritten"),
        "{out}"
    );
}
