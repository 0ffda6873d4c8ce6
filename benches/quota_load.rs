//! The cost of client quotas on produce and fetch, and how closely a quota holds a real client
//! to its rate.
//!
//! `cargo bench --bench quota_load -- [--messages N] [--size BYTES]`
//!
//! Three in-process brokers on loopback (each over its own temp dir, the allow-all test
//! policies): no quotas; quotas in force but never reached (every user 10 GB/s both ways,
//! plus overrides for others, so each request resolves and meters); and a produce quota of
//! 20 MB/s per user. Against each: librdkafka produce (acks=1, 3 partitions, batched), one
//! request per message, and a consumer reading the batched topic. Rounds are interleaved and
//! the median is shown (each broker runs first, second and third once, so none always
//! follows another's writeback); ratios are against the no-quota row of the same shape.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use support::{consume, create, median, produce, produce_one_by_one, t, Row};

const ONE_BY_ONE: usize = 3_000;
const ROUNDS: usize = 3;
/// The throttled broker's produce quota (bytes per second).
const LIMIT: u64 = 20_000_000;

fn start_broker(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    quotas: &str,
) -> palisade::broker::Running {
    let end = "max_throttle_ms = 10000\n";
    let section = format!("{end}{quotas}\n");
    let text = common::plaintext_config_text(dir, &[(end, section.as_str())]);
    support::start_broker_from(rt, &text, "<quota_load>")
}

fn main() {
    let Some((a, rt)) = support::setup() else {
        return;
    };
    println!(
        "palisade quota load: {} messages of {} bytes (batched, acks=1), {ONE_BY_ONE} of 100 bytes one request each, then consumed; 3 partitions, loopback; median of {ROUNDS} interleaved rounds",
        a.messages, a.size
    );
    let unreached = "producer_byte_rate = 10000000000\nconsumer_byte_rate = 10000000000\n[[quotas.overrides]]\nuser = \"etl\"\nproducer_byte_rate = 1000\n[[quotas.overrides]]\nclient_id = \"batch\"\nconsumer_byte_rate = 1000";
    let limited = format!("producer_byte_rate = {LIMIT}");
    let modes: [(&str, &str); 3] = [
        ("no quotas", ""),
        ("quotas in force, not reached", unreached),
        ("produce quota 20 MB/s", &limited),
    ];
    let dirs: Vec<tempfile::TempDir> = modes.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let brokers: Vec<palisade::broker::Running> = modes
        .iter()
        .zip(&dirs)
        .map(|((_, q), dir)| start_broker(&rt, dir.path(), q))
        .collect();
    for b in &brokers {
        let bootstrap = b.addresses[0].to_string();
        for round in 0..ROUNDS {
            create(&rt, &bootstrap, &format!("batched{round}"));
            create(&rt, &bootstrap, &format!("single{round}"));
        }
    }
    let shapes = 3;
    let mut rows: Vec<Vec<Vec<Row>>> = (0..shapes)
        .map(|_| modes.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..ROUNDS {
        // Each broker takes each place in the order once: a run right after a fast one
        // shares the disk with its writeback, which otherwise always hit the same broker.
        for k in 0..modes.len() {
            let i = (k + round) % modes.len();
            let ((label, _), b) = (&modes[i], &brokers[i]);
            let bootstrap = b.addresses[0].to_string();
            let topic = format!("batched{round}");
            let target = t(&bootstrap, &topic);
            rows[0][i].push(produce(
                &format!("batched {} B, {label}", a.size),
                &target,
                "1",
                a.messages,
                a.size,
            ));
            rows[1][i].push(produce_one_by_one(
                &format!("one request per message, {label}"),
                &bootstrap,
                &format!("single{round}"),
                ONE_BY_ONE,
            ));
            rows[2][i].push(consume(&format!("consume, {label}"), &target, a.messages));
        }
    }
    println!(
        "{:<52} {:>10} {:>9} {:>8} {:>8} {:>8}",
        "scenario", "msgs/s", "MB/s", "p50 ms", "p99 ms", "ratio"
    );
    for shape in rows {
        let shape: Vec<Row> = shape.into_iter().map(median).collect();
        let base = shape[0].msgs_per_s;
        for r in &shape {
            println!(
                "{:<52} {:>10.0} {:>9.1} {:>8.2} {:>8.2} {:>8.2}",
                r.name,
                r.msgs_per_s,
                r.mb_per_s,
                r.p50_ms,
                r.p99_ms,
                r.msgs_per_s / base
            );
        }
    }
    // The limited broker's produce: the value bytes a client got through against the quota,
    // which meters whole requests (headers and batch framing included).
    for b in &brokers {
        let throttled = b
            .broker
            .metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("palisade_throttled_total{kind=\"produce_quota\"}"))
            .map(str::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        if !throttled.is_empty() {
            println!("{throttled} (limit {} MB/s)", LIMIT as f64 / 1e6);
        }
    }
    for b in brokers {
        rt.block_on(b.shutdown());
    }
}
