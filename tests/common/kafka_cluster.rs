//! A real Apache Kafka cluster for tests: KRaft, every node broker and controller (node ids
//! 1..N), on free loopback ports, run by `.ci/kafka/cluster.sh` from the jars that
//! `.ci/kafka/fetch.sh` cached (`.ci/run` fetches them; tests never download).
//!
//! A node is a `cluster.sh node DIR ID` child whose standard input this process holds: closing
//! it (kill, drop, or this process dying in any way) makes the script SIGKILL the JVM, so no
//! broker outlives the test binary even when the shared cluster (a static, never dropped) is
//! used.
//!
//! Start-up takes tens of seconds on a busy machine: tests of one binary share one cluster
//! ([`KafkaCluster::shared`]); a test that kills or restarts nodes holds [`KafkaCluster::disrupt`]
//! while the others hold [`KafkaCluster::calm`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::wait::wait_for;

/// How long a node may take to answer after its JVM started (two cores shared with builds).
const START_LIMIT: Duration = Duration::from_secs(240);
/// Metadata version of the readiness probe (flexible, lists every registered broker).
const METADATA_VERSION: i16 = 12;

/// The folder of Kafka's jars, as `.ci/kafka/fetch.sh` and `cluster.sh` name it.
pub fn kafka_libs() -> PathBuf {
    let home = match std::env::var_os("PALISADE_KAFKA_HOME") {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
            .join(".cache/palisade/kafka-4.4.0"),
    };
    home.join("libs")
}

/// The jars' folder; fails the test (never skips it) when `fetch.sh` has not filled it.
pub fn require_kafka_libs() -> PathBuf {
    let libs = kafka_libs();
    assert!(
        libs.join(".complete").is_file(),
        "Apache Kafka's jars are not in {}: run `bash .ci/kafka/fetch.sh` first (.ci/run does)",
        libs.display()
    );
    libs
}

/// `libs/*`, the classpath of Kafka's broker, tools and Java client.
pub fn kafka_classpath() -> String {
    format!("{}/*", require_kafka_libs().display())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/kafka/cluster.sh")
}

pub struct KafkaCluster {
    dir: PathBuf,
    broker_ports: Vec<u16>,
    controller_ports: Vec<u16>,
    /// Index `id - 1`: the running node, or `None` once killed.
    nodes: Mutex<Vec<Option<Child>>>,
    disruption: RwLock<()>,
}

impl KafkaCluster {
    /// Formats `dir` for `n` nodes and starts them; returns once every node answers Metadata
    /// listing all `n` brokers.
    pub fn start(dir: &Path, n: usize) -> KafkaCluster {
        assert!(n >= 1, "a cluster has at least one node");
        require_kafka_libs();
        let ports = free_ports(2 * n);
        let cluster = KafkaCluster {
            dir: dir.to_path_buf(),
            broker_ports: ports[..n].to_vec(),
            controller_ports: ports[n..].to_vec(),
            nodes: Mutex::new((0..n).map(|_| None).collect()),
            disruption: RwLock::new(()),
        };
        let out = cluster
            .command()
            .args(["format", &dir.display().to_string()])
            .output()
            .expect("run cluster.sh format");
        assert!(
            out.status.success(),
            "cluster.sh format failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for id in 1..=n as i32 {
            cluster.spawn(id);
        }
        for id in 1..=n as i32 {
            cluster.wait_serving(id);
        }
        cluster
    }

    /// One three-node cluster per test binary, in `target/tmp/kafka-cluster/<binary>` (emptied
    /// first). Its nodes are killed when the binary exits.
    /// A start that failed fails every test asking for it, with the first failure's message.
    pub fn shared() -> &'static KafkaCluster {
        static SHARED: OnceLock<Result<KafkaCluster, String>> = OnceLock::new();
        let started = SHARED.get_or_init(|| {
            let binary = std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "tests".into());
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("kafka-cluster")
                .join(binary);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let started = std::time::Instant::now();
            let cluster = std::panic::catch_unwind(|| KafkaCluster::start(&dir, 3)).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            });
            // For the run's log (how much of the binary's time the cluster took), never asserted.
            eprintln!(
                "kafka cluster of 3 nodes started in {:?}",
                started.elapsed()
            );
            cluster
        });
        match started {
            Ok(cluster) => cluster,
            Err(message) => panic!("the shared Kafka cluster did not start: {message}"),
        }
    }

    /// Held by tests that need every node up; [`disrupt`](Self::disrupt) waits for them.
    pub fn calm(&self) -> RwLockReadGuard<'_, ()> {
        self.disruption.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Held by a test that kills or restarts nodes, alone.
    pub fn disrupt(&self) -> RwLockWriteGuard<'_, ()> {
        self.disruption.write().unwrap_or_else(|e| e.into_inner())
    }

    /// `host:port,...` of every node's broker listener.
    pub fn bootstrap(&self) -> String {
        (1..=self.size() as i32)
            .map(|id| self.node_address(id))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn size(&self) -> usize {
        self.broker_ports.len()
    }

    /// `127.0.0.1:port` of node `id`'s broker listener.
    pub fn node_address(&self, id: i32) -> String {
        format!("127.0.0.1:{}", self.broker_ports[id as usize - 1])
    }

    /// The node's folder (server.properties, server.log, data/).
    pub fn node_dir(&self, id: i32) -> PathBuf {
        self.dir.join(format!("node{id}"))
    }

    /// SIGKILLs node `id` and waits until its process is gone.
    pub fn kill(&self, id: i32) {
        let child = self.nodes.lock().unwrap()[id as usize - 1].take();
        if let Some(child) = child {
            stop(child);
        }
    }

    /// Starts node `id` again on its ports and data; returns once it answers Metadata listing
    /// every broker.
    pub fn restart(&self, id: i32) {
        self.kill(id);
        self.spawn(id);
        self.wait_serving(id);
    }

    /// The brokers node `id` lists in Metadata, or `None` when it does not answer.
    pub fn brokers_seen_by(&self, id: i32) -> Option<Vec<i32>> {
        metadata_brokers(self.node_address(id).parse().unwrap())
    }

    fn command(&self) -> Command {
        let ports = |p: &[u16]| p.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
        let mut cmd = Command::new("bash");
        cmd.arg(script())
            .env("KAFKA_BROKER_PORTS", ports(&self.broker_ports))
            .env("KAFKA_CONTROLLER_PORTS", ports(&self.controller_ports))
            .env("KAFKA_HEAP", "384m")
            // C1 only: a third less CPU to start on two shared cores; tests need no peak
            // throughput (benchmarks run `cluster.sh start` with the full JIT).
            .env("KAFKA_JVM_OPTS", "-XX:TieredStopAtLevel=1");
        cmd
    }

    fn spawn(&self, id: i32) {
        let child = self
            .command()
            .args(["node", &self.dir.display().to_string(), &id.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn cluster.sh node");
        self.nodes.lock().unwrap()[id as usize - 1] = Some(child);
    }

    /// Waits until node `id` answers Metadata listing every broker of the cluster; fails the
    /// test with the tail of its log when it exits or does not get there in time.
    fn wait_serving(&self, id: i32) {
        let all = self.size();
        let served = wait_for(START_LIMIT, || {
            if let Some(child) = self.nodes.lock().unwrap()[id as usize - 1].as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "kafka node {id} exited ({status}) while starting:\n{}",
                        self.log_tail(id)
                    );
                }
            }
            self.brokers_seen_by(id)
                .filter(|brokers| brokers.len() == all)
                .map(|_| ())
        });
        assert!(
            served.is_some(),
            "kafka node {id} did not list all {all} brokers within {START_LIMIT:?}:\n{}",
            self.log_tail(id)
        );
    }

    /// The last lines of node `id`'s server.log and stdout, for failure messages.
    pub fn log_tail(&self, id: i32) -> String {
        let mut out = String::new();
        for name in ["server.log", "stdout.log"] {
            let text = std::fs::read_to_string(self.node_dir(id).join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            out.push_str(&format!("--- {name}\n{}\n", lines[from..].join("\n")));
        }
        out
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        let children: Vec<Child> = self
            .nodes
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for child in children {
            stop(child);
        }
    }
}

/// Closes the node script's standard input (it SIGKILLs the JVM and waits for it), then reaps
/// the script.
fn stop(mut child: Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

/// `n` distinct free loopback ports below Linux's ephemeral range (32768 and up), so that no
/// client connection's local port takes a killed node's port before it restarts there.
pub fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Test binaries running side by side start at different places.
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    let mut held = Vec::with_capacity(n);
    let mut tries = 0;
    while held.len() < n {
        tries += 1;
        assert!(
            tries < SPAN,
            "no {n} free loopback ports in {FIRST}..{}",
            FIRST + SPAN
        );
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = u16::try_from(FIRST + offset).unwrap();
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The broker ids a Metadata request to `addr` lists, or `None` when nothing answers within 5 s.
pub fn metadata_brokers(addr: SocketAddr) -> Option<Vec<i32>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(METADATA_VERSION)
        .with_correlation_id(1)
        .encode(
            &mut body,
            ApiKey::Metadata.request_header_version(METADATA_VERSION),
        )
        .ok()?;
    MetadataRequest::default()
        .with_topics(Some(vec![]))
        .encode(&mut body, METADATA_VERSION)
        .ok()?;
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).ok()?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let len = usize::try_from(i32::from_be_bytes(size)).ok()?;
    let mut response = vec![0u8; len];
    stream.read_exact(&mut response).ok()?;
    let mut response = bytes::Bytes::from(response);
    ResponseHeader::decode(
        &mut response,
        ApiKey::Metadata.response_header_version(METADATA_VERSION),
    )
    .ok()?;
    let metadata = MetadataResponse::decode(&mut response, METADATA_VERSION).ok()?;
    if response.has_remaining() {
        return None;
    }
    Some(metadata.brokers.iter().map(|b| b.node_id.0).collect())
}
