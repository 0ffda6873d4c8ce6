//! The cost of the audit trail on produce throughput, measured with a real client.
//!
//! `cargo bench --bench audit_load -- [--messages N] [--size BYTES]`
//!
//! Starts four in-process brokers on loopback (each over its own temp dir, group-commit flush,
//! the allow-all test policies): no audit at all (`audit.file` and `audit.topic` off), then
//! audit on with `data_operations` = off, first-use and all. Against each it runs the same
//! librdkafka produce (acks=1, 3 partitions, batched as librdkafka batches) and a produce of
//! many small requests (linger.ms=0, 100-byte messages: one request per message or so, the
//! worst case for "all", which audits every request's Write decision). Every row shows its
//! ratio against the no-audit row of the same shape, measured in the same run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use support::{args, client_config, create, percentile, produce, t, Latencies, Row};

const SMALL_MESSAGES: usize = 20_000;

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
    let config =
        palisade::config::Config::parse(&text, std::path::Path::new("<audit_load>")).unwrap();
    rt.block_on(palisade::broker::Running::start(config))
        .unwrap()
}

/// Many small produce requests: linger.ms=0 and at most 5 in flight.
fn produce_small(name: &str, bootstrap: &str, topic: &str, n: usize) -> Row {
    let ctx = Latencies::default();
    let p: ThreadedProducer<Latencies> = client_config(bootstrap, &[])
        .set("acks", "1")
        .set("linger.ms", "0")
        .set("max.in.flight.requests.per.connection", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(ctx.clone())
        .unwrap();
    let payload = vec![b'x'; 100];
    let start = Instant::now();
    for i in 0..n {
        let mut record = BaseRecord::<(), _, _>::with_opaque_to(topic, Box::new(Instant::now()))
            .partition((i % 3) as i32)
            .payload(&payload);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(
        ctx.errors.load(Ordering::Relaxed),
        0,
        "{name}: delivery errors"
    );
    let mut lat = ctx.micros.lock().unwrap().clone();
    lat.sort_unstable();
    Row {
        name: name.to_string(),
        msgs_per_s: n as f64 / elapsed,
        mb_per_s: (n * 100) as f64 / elapsed / 1e6,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
    }
}

fn main() {
    let a = args();
    if std::env::args().any(|x| x == "--test") {
        return; // `cargo test --benches` smoke mode: nothing to measure
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "palisade audit load: {} messages of {} bytes (batched) and {SMALL_MESSAGES} of 100 bytes (small requests), acks=1, 3 partitions, loopback",
        a.messages, a.size
    );
    let modes: [(&str, Option<&str>); 4] = [
        ("no audit", None),
        ("audit, data_operations=off", Some("off")),
        ("audit, data_operations=first-use", Some("first-use")),
        ("audit, data_operations=all", Some("all")),
    ];
    let mut batched = Vec::new();
    let mut small = Vec::new();
    for (label, mode) in modes {
        let dir = tempfile::tempdir().unwrap();
        let running = start_broker(&rt, dir.path(), mode);
        let bootstrap = running.addresses[0].to_string();
        create(&rt, &bootstrap, "batched");
        create(&rt, &bootstrap, "small");
        let events_before = audit_events(&running);
        let row = produce(
            &format!("batched 1 KiB, {label}"),
            &t(&bootstrap, "batched"),
            "1",
            a.messages,
            a.size,
        );
        let events_mid = audit_events(&running);
        batched.push((row, events_mid - events_before));
        let row = produce_small(
            &format!("small requests, {label}"),
            &bootstrap,
            "small",
            SMALL_MESSAGES,
        );
        small.push((row, audit_events(&running) - events_mid));
        rt.block_on(running.shutdown());
    }
    println!(
        "{:<52} {:>10} {:>9} {:>8} {:>8} {:>8} {:>9}",
        "scenario", "msgs/s", "MB/s", "p50 ms", "p99 ms", "ratio", "events"
    );
    for rows in [&batched, &small] {
        let base = rows[0].0.mb_per_s;
        for (r, events) in rows.iter() {
            println!(
                "{:<52} {:>10.0} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>9.0}",
                r.name,
                r.msgs_per_s,
                r.mb_per_s,
                r.p50_ms,
                r.p99_ms,
                r.mb_per_s / base,
                events
            );
        }
    }
}

/// Audit events written to the file sink so far (from the broker's own metrics).
fn audit_events(running: &palisade::broker::Running) -> f64 {
    running.broker.metrics.audit_events.with(&["file"]).get() as f64
}
