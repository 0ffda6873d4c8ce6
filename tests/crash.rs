//! Crash safety with the real binary: produce with acks=all, `kill -9` mid-stream, restart;
//! every acknowledged message is present exactly once and in order, and every message a
//! consumer tailing the topic saw before the crash is still there. Five rounds per run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

mod common;

const PARTITIONS: i32 = 3;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the broker when dropped, so a failing assertion never leaves it running.
struct Broker(Child);

impl Broker {
    fn kill9(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn create_topic(bootstrap: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    for r in rt
        .block_on(admin.create_topics([&t], &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap();
    }
}

fn start(dir: &Path, port: u16) -> Broker {
    let bind = format!("bind = \"127.0.0.1:{port}\"");
    let config =
        common::plaintext_config_text(&dir.join("data"), &[("bind = \"127.0.0.1:0\"", &bind)]);
    let path = dir.join("palisade.toml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Records what the broker acknowledged, per partition, in acknowledgement order.
#[derive(Clone, Default)]
struct Acks(Arc<Mutex<HashMap<i32, Vec<String>>>>);

impl ClientContext for Acks {}
impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            let v = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            self.0
                .lock()
                .unwrap()
                .entry(m.partition())
                .or_default()
                .push(v);
        }
    }
}

/// Records what a consumer tailing `topic` receives until `stop` is set.
fn tail(
    bootstrap: &str,
    topic: &str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(i32, String)>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("tail-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Acquire) {
            // Errors are expected once the broker is killed.
            if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                let v = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                seen.push((m.partition(), v));
            }
        }
        seen
    })
}

fn read_all(bootstrap: &str, topic: &str) -> HashMap<i32, Vec<String>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("verify-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut out: HashMap<i32, Vec<String>> = HashMap::new();
    let mut ends = HashMap::new();
    for p in 0..PARTITIONS {
        ends.insert(
            p,
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1,
        );
    }
    c.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |out: &HashMap<i32, Vec<String>>| {
        ends.iter()
            .all(|(p, end)| out.get(p).map_or(0, |v| v.len()) as i64 >= *end)
    };
    while !done(&out) {
        assert!(
            Instant::now() < deadline,
            "could not read back the whole log"
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            out.entry(m.partition())
                .or_default()
                .push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    out
}

#[test]
fn kill_9_mid_stream_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let topic = "crash";
    let mut acked_total: HashMap<i32, Vec<String>> = HashMap::new();
    let mut seen_total: Vec<(i32, String)> = Vec::new();
    for round in 0..5 {
        let broker = start(dir.path(), port);
        if round == 0 {
            create_topic(&bootstrap, topic);
        }
        let stop_tail = Arc::new(AtomicBool::new(false));
        let tailing = tail(&bootstrap, topic, Arc::clone(&stop_tail));
        let acks = Acks::default();
        let producer: ThreadedProducer<Acks> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "5000")
            .create_with_context(acks.clone())
            .unwrap();
        // Produce until enough is acknowledged, then kill -9 while more is in flight.
        let target = 2000 + round * 500;
        let mut i = 0usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let acked: usize = acks.0.lock().unwrap().values().map(Vec::len).sum();
            if acked >= target {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: only {acked} acknowledged"
            );
            let value = format!("r{round}-{i}");
            let partition = (i % PARTITIONS as usize) as i32;
            if producer
                .send(
                    BaseRecord::<(), _>::to(topic)
                        .partition(partition)
                        .payload(&value),
                )
                .is_ok()
            {
                i += 1;
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        broker.kill9();
        stop_tail.store(true, Ordering::Release);
        seen_total.extend(tailing.join().unwrap());
        drop(producer);
        for (p, values) in acks.0.lock().unwrap().drain() {
            acked_total.entry(p).or_default().extend(values);
        }

        let broker = start(dir.path(), port);
        let log = read_all(&bootstrap, topic);
        // No dirty reads: what a consumer was given had to survive the crash.
        let stored: HashMap<i32, std::collections::HashSet<&String>> = log
            .iter()
            .map(|(p, values)| (*p, values.iter().collect()))
            .collect();
        for (p, v) in &seen_total {
            assert!(
                stored.get(p).is_some_and(|stored| stored.contains(v)),
                "round {round}: `{v}` was consumed from partition {p} before the crash, then lost"
            );
        }
        for (p, acked) in &acked_total {
            let stored = log.get(p).cloned().unwrap_or_default();
            let mut positions = HashMap::new();
            for (pos, v) in stored.iter().enumerate() {
                assert!(
                    positions.insert(v.clone(), pos).is_none(),
                    "round {round}: `{v}` stored twice in partition {p}"
                );
            }
            let mut last = None;
            for v in acked {
                let pos = *positions.get(v).unwrap_or_else(|| {
                    panic!("round {round}: acknowledged `{v}` lost from partition {p}")
                });
                assert!(
                    last.is_none_or(|l| pos > l),
                    "round {round}: `{v}` out of order in partition {p}"
                );
                last = Some(pos);
            }
        }
        let status = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["verify", "--data-dir"])
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        broker.kill9();
        assert!(
            status.status.success(),
            "round {round}: verify after recovery failed: {}",
            String::from_utf8_lossy(&status.stdout)
        );
    }
}
