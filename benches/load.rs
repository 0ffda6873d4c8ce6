//! Load tool driven by a real client (librdkafka via the `rdkafka` crate).
//!
//! `cargo bench --bench load -- [--messages N] [--size BYTES] [--seconds S]`
//!
//! Starts in-process brokers (one per flush policy) on loopback over temp dirs and prints, for
//! 1 KiB messages: produce msgs/s, MB/s and p50/p99 ack latency for acks=1 and acks=all, consume
//! MB/s, and at a fixed 1,000 msg/s the p50/p99 ack and end-to-end latency. Every row shows its
//! ratio against the first row (acks=1 produce) measured in the same run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use support::{consume, create, percentile, print_rows, produce, t, Latencies, Row};

/// Fetch throughput of the broker itself: a minimal client of our own (kafka-protocol over
/// one TCP connection) fetching all 3 partitions from the beginning with 16 MiB per partition,
/// counting record bytes without parsing them. Shows what the broker serves when the client is
/// not the bottleneck; librdkafka's per-message consumer path is measured separately above.
fn raw_fetch(
    rt: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    topic: &str,
    end: i64,
) -> Row {
    use bytes::{Buf, BufMut, BytesMut};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{
        ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    rt.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut offsets = [0i64; 3];
        let (mut bytes, mut batches) = (0usize, 0usize);
        let start = Instant::now();
        let mut correlation = 0;
        while offsets.iter().any(|o| *o < end) {
            correlation += 1;
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(64 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(
                        (0..3)
                            .map(|p| {
                                FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(offsets[p as usize])
                                    .with_partition_max_bytes(16 << 20)
                            })
                            .collect(),
                    )]);
            let mut buf = BytesMut::new();
            buf.put_i32(0);
            RequestHeader::default()
                .with_request_api_key(ApiKey::Fetch as i16)
                .with_request_api_version(11)
                .with_correlation_id(correlation)
                .encode(&mut buf, ApiKey::Fetch.request_header_version(11))
                .unwrap();
            req.encode(&mut buf, 11).unwrap();
            let len = (buf.len() - 4) as i32;
            buf[..4].copy_from_slice(&len.to_be_bytes());
            stream.write_all(&buf).await.unwrap();
            let size = stream.read_i32().await.unwrap() as usize;
            let mut frame = vec![0u8; size];
            stream.read_exact(&mut frame).await.unwrap();
            let mut frame = bytes::Bytes::from(frame);
            ResponseHeader::decode(&mut frame, ApiKey::Fetch.response_header_version(11)).unwrap();
            let resp = FetchResponse::decode(&mut frame, 11).unwrap();
            for p in &resp.responses[0].partitions {
                let mut records = p.records.clone().unwrap_or_default();
                bytes += records.len();
                // Advance past the last whole batch: base offset + last offset delta + 1.
                while records.remaining() >= 61 {
                    let base = i64::from_be_bytes(records[..8].try_into().unwrap());
                    let len = i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize + 12;
                    if len > records.remaining() {
                        break;
                    }
                    let delta = i32::from_be_bytes(records[23..27].try_into().unwrap()) as i64;
                    offsets[p.partition_index as usize] = base + delta + 1;
                    batches += 1;
                    records.advance(len);
                }
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        Row {
            name: format!("consume, minimal raw-protocol client ({batches} batches)"),
            msgs_per_s: (end * 3) as f64 / elapsed,
            mb_per_s: bytes as f64 / elapsed / 1e6,
            p50_ms: f64::NAN,
            p99_ms: f64::NAN,
        }
    })
}

/// 1,000 msg/s acks=all for `seconds`: ack latency, and end-to-end latency (send to receipt by
/// a consumer that is long-polling the whole time).
fn paced(bootstrap: &str, topic: &str, size: usize, seconds: u64) -> (Row, Row) {
    let ctx = Latencies::default();
    let p: ThreadedProducer<Latencies> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("socket.nagle.disable", "true")
        .create_with_context(ctx.clone())
        .unwrap();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "load-e2e")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "500")
        .set("fetch.min.bytes", "1")
        .set("socket.nagle.disable", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::End).unwrap();
    c.assign(&tpl).unwrap();
    // Let the consumer reach the end of the partition before timing anything.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(2) {
        c.poll(Duration::from_millis(50));
    }
    let total = (seconds * 1000) as usize;
    let origin = Instant::now();
    let e2e = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let done = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (e2e, done) = (e2e.clone(), done.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(seconds + 30);
            while done.load(Ordering::Relaxed) < total && Instant::now() < deadline {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    let payload = m.payload().unwrap_or_default();
                    let sent = u64::from_be_bytes(payload[..8].try_into().unwrap());
                    let now = origin.elapsed().as_micros() as u64;
                    e2e.lock().unwrap().push(now.saturating_sub(sent));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut payload = vec![b'x'; size.max(8)];
    for i in 0..total {
        let due = origin + Duration::from_millis(i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = origin.elapsed().as_micros() as u64;
        payload[..8].copy_from_slice(&now.to_be_bytes());
        let record = BaseRecord::<(), _, _>::with_opaque_to(topic, Box::new(Instant::now()))
            .partition(0)
            .payload(&payload);
        p.send(record).map_err(|(e, _)| e).unwrap();
    }
    p.flush(Duration::from_secs(60)).unwrap();
    reader.join().unwrap();
    let mut acks = ctx.micros.lock().unwrap().clone();
    acks.sort_unstable();
    let mut e2e = e2e.lock().unwrap().clone();
    e2e.sort_unstable();
    let rate = total as f64 / seconds as f64;
    (
        Row {
            name: "acks=all at 1,000 msg/s: ack latency".into(),
            msgs_per_s: rate,
            mb_per_s: rate * size as f64 / 1e6,
            p50_ms: percentile(&acks, 0.5),
            p99_ms: percentile(&acks, 0.99),
        },
        Row {
            name: format!(
                "acks=all at 1,000 msg/s: end-to-end ({} received)",
                e2e.len()
            ),
            msgs_per_s: rate,
            mb_per_s: rate * size as f64 / 1e6,
            p50_ms: percentile(&e2e, 0.5),
            p99_ms: percentile(&e2e, 0.99),
        },
    )
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn start_broker(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    flush: &str,
) -> palisade::broker::Running {
    let flush_line = format!("flush = \"{flush}\"");
    let text =
        common::plaintext_config_text(dir, &[("flush = \"group-commit\"", flush_line.as_str())]);
    support::start_broker_from(rt, &text, "<load>")
}

fn main() {
    let Some((a, rt)) = support::setup() else {
        return;
    };
    let durable_dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let durable = start_broker(&rt, durable_dir.path(), "group-commit");
    let cache = start_broker(&rt, cache_dir.path(), "page-cache");
    let (d, c) = (
        durable.addresses[0].to_string(),
        cache.addresses[0].to_string(),
    );
    for (b, t) in [(&d, "acks1"), (&d, "acksall"), (&c, "cache"), (&d, "paced")] {
        create(&rt, b, t);
    }
    println!(
        "palisade load: {} messages of {} bytes, 3 partitions, loopback",
        a.messages, a.size
    );
    let (d, c) = (d.as_str(), c.as_str());
    let mut rows = vec![
        produce(
            "produce acks=1 (group-commit broker)",
            &t(d, "acks1"),
            "1",
            a.messages,
            a.size,
        ),
        produce(
            "produce acks=all, fsync group commit",
            &t(d, "acksall"),
            "all",
            a.messages,
            a.size,
        ),
        produce(
            "produce acks=all, page-cache flush policy",
            &t(c, "cache"),
            "all",
            a.messages,
            a.size,
        ),
    ];
    rows.push(consume(
        "consume (from beginning)",
        &t(d, "acksall"),
        a.messages,
    ));
    rows.push(raw_fetch(
        &rt,
        durable.addresses[0],
        "acksall",
        (a.messages / 3) as i64,
    ));
    let (ack, e2e) = paced(d, "paced", a.size, a.seconds);
    rows.push(ack);
    rows.push(e2e);
    print_rows(&rows, 0);
    println!(
        "peak RSS of this process (brokers + clients): {:.0} MB",
        rss_mb()
    );
    rt.block_on(durable.shutdown());
    rt.block_on(cache.shutdown());
}
