//! The broker-wide memory budget, seen from outside: hostile frames cannot drive the real
//! binary's memory past the budget, a frame larger than the budget is refused, and a Fetch
//! cannot be amplified into a response larger than the broker's `fetch_max_bytes`.
//! In gateway mode, a slow upstream holds the gateway to its budget and slows its clients.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Raw;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1 << 20;
/// Small enough to keep the test cheap, large enough that two 100 MiB frames fit at once.
const BUDGET: usize = 256 * MIB;
const DECLARED: usize = 100 * MIB;
/// Connections declaring a 100 MiB frame and sending it a few bytes at a time.
const SLOW: usize = 1000;
/// Connections sending a whole 100 MiB frame as fast as they can.
const FULL: usize = 50;

/// Kills the broker when dropped, so a failing assertion never leaves it running.
struct Broker(Child);

impl Broker {
    /// `palisade serve --config <config>`, its output discarded.
    fn serve(config: &std::path::Path) -> Broker {
        Broker(
            Command::new(env!("CARGO_BIN_EXE_palisade"))
                .args(["serve", "--config"])
                .arg(config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The highest RSS a process reached while sampled (every 20 ms).
struct PeakRss {
    peak: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl PeakRss {
    fn sample(pid: u32) -> PeakRss {
        let peak = Arc::new(AtomicU64::new(0));
        let sampling = Arc::new(AtomicBool::new(true));
        let thread = std::thread::spawn({
            let (peak, sampling) = (peak.clone(), sampling.clone());
            move || {
                while sampling.load(Ordering::Relaxed) {
                    if let Some(rss) = rss_bytes(pid) {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        PeakRss {
            peak,
            sampling,
            thread,
        }
    }

    /// Stops sampling; the peak seen.
    fn stop(self) -> u64 {
        self.sampling.store(false, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

async fn slow_sender(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    if s.write_all(&(DECLARED as i32).to_be_bytes()).await.is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        if s.write_all(&[0u8; 64]).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Dropped in the middle of its frame: the broker must give back what it reserved.
}

/// Sends one whole frame of zeros (a Produce v0 the broker refuses once read) and waits for
/// the broker to close the connection. Returns whether the whole frame was written.
async fn full_sender(addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    let chunk = vec![0u8; MIB];
    let mut ok = s.write_all(&(DECLARED as i32).to_be_bytes()).await.is_ok();
    for _ in 0..DECLARED / MIB {
        ok = ok && s.write_all(&chunk).await.is_ok();
    }
    let mut sink = [0u8; 1024];
    while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    ok
}

/// One produce (acks=all: answered once the record is visible) and one fetch of it; panics
/// unless both succeed.
async fn normal_round(raw: &mut Raw, round: usize) {
    let value = format!("round-{round}");
    let batch = common::batch(&[value.as_bytes()], Compression::None, None);
    let produced: ProduceResponse = raw
        .request(
            ApiKey::Produce,
            9,
            &common::produce_request("normal", 0, -1, batch),
        )
        .await;
    let p = &produced.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce refused during the attack");
    let fetched: FetchResponse = raw
        .request(
            ApiKey::Fetch,
            12,
            &common::fetch_now("normal", p.base_offset),
        )
        .await;
    let f = &fetched.responses[0].partitions[0];
    assert_eq!(f.error_code, 0, "fetch refused during the attack");
    let records = f.records.clone().unwrap_or_default();
    assert!(
        records.windows(value.len()).any(|w| w == value.as_bytes()),
        "fetch did not return the record just produced"
    );
}

#[test]
fn hostile_frames_keep_the_brokers_memory_under_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("bind = \"127.0.0.1:{port}\"");
    let budget = format!("memory_budget_bytes = {BUDGET}");
    let config = common::plaintext_config_text(
        &dir.path().join("data"),
        &[
            ("bind = \"127.0.0.1:0\"", &bind),
            ("memory_budget_bytes = 536870912", &budget),
            (
                "max_connections_per_ip = 1000",
                "max_connections_per_ip = 0",
            ),
            (
                "new_connections_per_second_per_ip = 200",
                "new_connections_per_second_per_ip = 0",
            ),
        ],
    );
    let path = dir.path().join("palisade.toml");
    std::fs::write(&path, config).unwrap();
    let broker = Broker::serve(&path);
    let pid = broker.0.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let idle_rss = rss_bytes(pid).unwrap();

    // RSS is sampled from start to end of the attack.
    let sampler = PeakRss::sample(pid);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (rounds, full_done) = rt.block_on(async move {
        let mut normal = Raw::connect(addr).await;
        common::create_topic(&mut normal, "normal", 1, &[]).await;
        normal_round(&mut normal, 0).await;

        let stop_slow = Arc::new(AtomicBool::new(false));
        let mut slow = Vec::new();
        for _ in 0..SLOW {
            slow.push(tokio::spawn(slow_sender(addr, stop_slow.clone())));
        }
        let full: Vec<_> = (0..FULL).map(|_| tokio::spawn(full_sender(addr))).collect();

        // The normal client is served while both kinds of hostile connections are active.
        let mut rounds = 0;
        while rounds < 20 {
            rounds += 1;
            normal_round(&mut normal, rounds).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Slow senders disappear in the middle of their frames; what they held is released,
        // so every full sender is eventually read (and refused as a bad request).
        stop_slow.store(true, Ordering::Relaxed);
        for s in slow {
            s.await.unwrap();
        }
        let mut full_done = 0;
        for f in full {
            while !f.is_finished() {
                rounds += 1;
                normal_round(&mut normal, rounds).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            full_done += usize::from(f.await.unwrap());
        }
        normal_round(&mut normal, rounds + 1).await;
        (rounds, full_done)
    });
    let peak = sampler.stop();
    eprintln!(
        "idle RSS {} MiB, peak RSS {} MiB under {SLOW} slow and {FULL} full 100 MiB frames \
         (budget {} MiB); {rounds} produce+fetch rounds served",
        idle_rss >> 20,
        peak >> 20,
        BUDGET >> 20
    );
    assert_eq!(full_done, FULL, "every full frame was sent");
    assert!(
        peak < (BUDGET + 200 * MIB) as u64,
        "peak RSS {} MiB is above the budget + 200 MiB",
        peak >> 20
    );
}

#[tokio::test]
async fn a_frame_larger_than_the_whole_budget_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_with(
        dir.path(),
        &[(
            "memory_budget_bytes = 536870912",
            "memory_budget_bytes = 1048576",
        )],
    )
    .await;
    let addr = broker.addresses[0];
    // Within max_frame_bytes but above the whole budget: it could never fit, so it is refused
    // at once instead of waiting forever.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&(2 * MIB as i32).to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
        .await
        .expect("the broker kept waiting for a frame that can never fit");
    assert!(matches!(closed, Ok(0) | Err(_)), "connection not closed");
    // A frame that fits is served.
    let mut raw = Raw::connect(addr).await;
    let v: ApiVersionsResponse = raw
        .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(v.error_code, 0);
    broker.shutdown().await;
}

/// One Fetch naming the same partition many times with the largest `max_bytes`.
fn amplified_fetch(topic: &str, copies: usize) -> FetchRequest {
    use kafka_protocol::messages::fetch_request::*;
    use kafka_protocol::protocol::StrBytes;
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(i32::MAX)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                (0..copies)
                    .map(|_| {
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(i32::MAX)
                    })
                    .collect(),
            )])
}

/// How many times the amplified fetch names the partition.
const COPIES: usize = 100;

#[tokio::test]
async fn a_fetch_naming_a_partition_many_times_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // A small broker cap keeps the test cheap; the default is Kafka's 55 MB.
    let broker = common::start_with(
        dir.path(),
        &[("fetch_max_bytes = 57671680", "fetch_max_bytes = 1048576")],
    )
    .await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    common::create_topic(&mut raw, "amp", 1, &[]).await;
    // 4 MiB in 64 batches of 64 KiB.
    let value = vec![b'x'; 64 * 1024];
    for _ in 0..64 {
        let batch = common::batch(&[&value], Compression::None, None);
        let r: ProduceResponse = raw
            .request(
                ApiKey::Produce,
                9,
                &common::produce_request("amp", 0, 1, batch),
            )
            .await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }

    raw.send_request(ApiKey::Fetch, 12, &amplified_fetch("amp", COPIES))
        .await;
    let frame = raw.read_frame().await.expect("connection closed");
    // Without the cap and the de-duplication this is COPIES copies of 4 MiB.
    assert!(
        frame.len() < 1024 * 1024 + 64 * 1024 + COPIES * 64,
        "a {} byte response to a fetch capped at 1 MiB",
        frame.len()
    );
    let r: FetchResponse = {
        use bytes::Buf;
        use kafka_protocol::protocol::Decodable;
        let mut frame = frame;
        let _ =
            ResponseHeader::decode(&mut frame, ApiKey::Fetch.response_header_version(12)).unwrap();
        let r = FetchResponse::decode(&mut frame, 12).unwrap();
        assert_eq!(frame.remaining(), 0);
        r
    };
    let partitions = &r.responses[0].partitions;
    assert_eq!(
        partitions.len(),
        COPIES,
        "every named partition is answered"
    );
    let with_records = partitions
        .iter()
        .filter(|p| p.records.as_ref().is_some_and(|r| !r.is_empty()))
        .count();
    assert_eq!(with_records, 1, "the partition is read once");
    assert!(partitions.iter().all(|p| p.error_code == 0));
    // The client still progresses: the first batch is always returned.
    assert!(partitions[0].records.as_ref().unwrap().len() >= 64 * 1024);
    broker.shutdown().await;
}

/// Connections producing through the gateway, each as fast as it can write.
const FLOOD: usize = 8;
/// 1 MiB produce requests each flood connection sends, without waiting for answers.
const FLOOD_REQUESTS: usize = 40;
/// The gateway's budget in that test.
const GATEWAY_BUDGET: usize = 32 * MIB;

#[test]
fn a_slow_upstream_slows_the_gateways_clients_instead_of_growing_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    // The upstream: a Palisade broker that lets client id `flood` produce 200 KB/s.
    let upstream = common::BackgroundBroker::start(
        &dir.path().join("upstream"),
        &[(
            "max_throttle_ms = 10000\n",
            "max_throttle_ms = 10000\n[[quotas.overrides]]\nclient_id = \"flood\"\nproducer_byte_rate = 200000\n",
        )],
    );
    let upstream_addr = upstream.running.as_ref().unwrap().addresses[0];
    upstream.rt.block_on(async {
        let mut raw = Raw::connect(upstream_addr).await;
        common::create_topic(&mut raw, "flood", 1, &[]).await;
    });

    // The gateway, a process of its own so its memory can be read, with a 32 MiB budget.
    let port = free_port();
    let node_ports = free_port();
    let bind = format!("bind = \"127.0.0.1:{port}\"");
    let budget = format!("memory_budget_bytes = {GATEWAY_BUDGET}");
    let bootstrap = format!("bootstrap_servers = [\"{upstream_addr}\"]");
    let port_base = format!("port_base = {node_ports}");
    let config = common::plaintext_config_text(
        &dir.path().join("gateway"),
        &[
            ("bind = \"127.0.0.1:0\"", &bind),
            ("memory_budget_bytes = 536870912", &budget),
            ("max_frame_bytes = 104857600", "max_frame_bytes = 4194304"),
            ("fetch_max_bytes = 57671680", "fetch_max_bytes = 4194304"),
            (
                "# bootstrap_servers = [\"kafka-1.internal:9093\", \"kafka-2.internal:9093\"]",
                &bootstrap,
            ),
            ("port_base = 19092", &port_base),
        ],
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let gateway = Broker::serve(&path);
    let pid = gateway.0.id();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        common::wait::wait_for(Duration::from_secs(60), || common::api_versions_answered(
            addr
        )
        .then_some(()))
        .is_some(),
        "the gateway did not start"
    );
    let idle_rss = rss_bytes(pid).unwrap();
    let sampler = PeakRss::sample(pid);

    // The flood: 8 connections offer 320 MiB at once. The upstream takes 200 KB/s, so the
    // gateway must stop reading them, not hold what the upstream has not taken yet.
    let value = vec![b'v'; MIB - 1024];
    let batch = common::batch(&[&value], Compression::None, None);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let written = Arc::new(AtomicU64::new(0));
    for _ in 0..FLOOD {
        let (batch, written) = (batch.clone(), written.clone());
        rt.spawn(async move {
            let mut raw = Raw::connect(addr).await;
            raw.client_id = "flood".into();
            for _ in 0..FLOOD_REQUESTS {
                let request = common::produce_request("flood", 0, 1, batch.clone());
                raw.send_request(ApiKey::Produce, 9, &request).await;
                written.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // Until the upstream has taken ten of them (about ten seconds at its rate)...
    let upstream_holds = || {
        upstream.rt.block_on(async {
            let mut raw = Raw::connect(upstream_addr).await;
            let resp: FetchResponse = raw
                .request(ApiKey::Fetch, 12, &common::fetch_now("flood", 0))
                .await;
            resp.responses[0].partitions[0].high_watermark
        })
    };
    let took = common::wait::wait_for(Duration::from_secs(240), || {
        (upstream_holds() >= 10).then_some(())
    });
    let peak = sampler.stop();
    assert!(took.is_some(), "the upstream never got the flood's records");
    let sent = written.load(Ordering::Relaxed);
    eprintln!(
        "gateway idle RSS {} MiB, peak {} MiB, budget {} MiB; {sent} of {} requests written \
         by the clients while the upstream took 10",
        idle_rss >> 20,
        peak >> 20,
        GATEWAY_BUDGET >> 20,
        FLOOD * FLOOD_REQUESTS
    );
    // ...the gateway held at most its budget (and buffers) of them, and its clients were
    // slowed: most of what they offered is still unwritten.
    assert!(
        peak < idle_rss + (3 * GATEWAY_BUDGET + 64 * MIB) as u64,
        "the gateway grew by {} MiB with a {} MiB budget",
        (peak - idle_rss) >> 20,
        GATEWAY_BUDGET >> 20
    );
    assert!(
        (sent as usize) < FLOOD * FLOOD_REQUESTS / 2,
        "the clients were not slowed: {sent} requests written"
    );
    drop(rt);
}
