//! The cost of the audit trail on produce throughput, measured with a real client.
//!
//! `cargo bench --bench audit_load -- [--messages N] [--size BYTES]`
//!
//! Starts four in-process brokers on loopback (each over its own temp dir, group-commit flush,
//! the allow-all test policies): no audit at all (`audit.file` and `audit.topic` off), then
//! audit on with `data_operations` = off, first-use and all. Against each it runs the same
//! librdkafka produce (acks=1, 3 partitions, batched as librdkafka batches) and a produce of
//! one request per message (each acknowledged before the next: the worst case for "all",
//! which audits every request's Write decision). Rounds are interleaved over the four brokers
//! and the median is shown; every row's ratio is against the no-audit row of the same shape,
//! measured in the same run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use support::{create, median, produce, produce_one_by_one, t, Row};

/// Messages sent one request at a time, per round.
const ONE_BY_ONE: usize = 3_000;
/// Rounds over the four brokers; the median is reported (the machine is shared and noisy).
const ROUNDS: usize = 3;

fn start_broker(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    audit: Option<&str>,
) -> palisade::broker::Running {
    let mode = format!("data_operations = \"{}\"", audit.unwrap_or("off"));
    let mut extra = vec![("data_operations = \"first-use\"", mode.as_str())];
    if audit.is_none() {
        extra.push(("file = true", "file = false"));
        extra.push(("topic = true", "topic = false"));
    }
    let text = common::plaintext_config_text(dir, &extra);
    support::start_broker_from(rt, &text, "<audit_load>")
}

fn main() {
    let Some((a, rt)) = support::setup() else {
        return;
    };
    println!(
        "palisade audit load: {} messages of {} bytes (batched, acks=1) and {ONE_BY_ONE} of 100 bytes one request each; 3 partitions, loopback; median of {ROUNDS} interleaved rounds",
        a.messages, a.size
    );
    let modes: [(&str, Option<&str>); 4] = [
        ("no audit", None),
        ("audit, data_operations=off", Some("off")),
        ("audit, data_operations=first-use", Some("first-use")),
        ("audit, data_operations=all", Some("all")),
    ];
    let dirs: Vec<tempfile::TempDir> = modes.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let brokers: Vec<palisade::broker::Running> = modes
        .iter()
        .zip(&dirs)
        .map(|((_, mode), dir)| start_broker(&rt, dir.path(), *mode))
        .collect();
    let mut batched: Vec<Vec<Row>> = modes.iter().map(|_| Vec::new()).collect();
    let mut single: Vec<Vec<Row>> = modes.iter().map(|_| Vec::new()).collect();
    let mut events = vec![(0.0, 0.0); modes.len()];
    for b in &brokers {
        let bootstrap = b.addresses[0].to_string();
        for round in 0..ROUNDS {
            create(&rt, &bootstrap, &format!("batched{round}"));
            create(&rt, &bootstrap, &format!("single{round}"));
        }
    }
    for round in 0..ROUNDS {
        for (i, ((label, _), b)) in modes.iter().zip(&brokers).enumerate() {
            let bootstrap = b.addresses[0].to_string();
            let before = audit_events(b);
            let topic = format!("batched{round}");
            batched[i].push(produce(
                &format!("batched 1 KiB, {label}"),
                &t(&bootstrap, &topic),
                "1",
                a.messages,
                a.size,
            ));
            let mid = audit_events(b);
            single[i].push(produce_one_by_one(
                &format!("one request per message, {label}"),
                &bootstrap,
                &format!("single{round}"),
                ONE_BY_ONE,
            ));
            let after = audit_events(b);
            events[i] = (mid - before, after - mid);
        }
    }
    println!(
        "{:<52} {:>10} {:>9} {:>8} {:>8} {:>8} {:>14}",
        "scenario", "msgs/s", "MB/s", "p50 ms", "p99 ms", "ratio", "events/round"
    );
    for (which, rows) in [(0, batched), (1, single)] {
        let rows: Vec<Row> = rows.into_iter().map(median).collect();
        let base = rows[0].msgs_per_s;
        for (i, r) in rows.iter().enumerate() {
            let e = if which == 0 { events[i].0 } else { events[i].1 };
            println!(
                "{:<52} {:>10.0} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>14.0}",
                r.name,
                r.msgs_per_s,
                r.mb_per_s,
                r.p50_ms,
                r.p99_ms,
                r.msgs_per_s / base,
                e
            );
        }
    }
    for b in brokers {
        rt.block_on(b.shutdown());
    }
}

/// Audit events written to the file sink so far (from the broker's own metrics), once the
/// writer has drained what is queued (it runs behind the data path by design).
fn audit_events(running: &palisade::broker::Running) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.broker.audit.queued() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(20));
    running.broker.metrics.audit_events.with(&["file"]).get() as f64
}
