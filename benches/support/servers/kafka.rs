//! One Apache Kafka broker with Kafka's defaults: a single KRaft node that is broker and
//! controller, from the jars `.ci/kafka/fetch.sh` cached, run by `.ci/kafka/cluster.sh node`
//! (which SIGKILLs the JVM when this process closes the script's standard input or dies).
//!
//! "Defaults" means what `bin/kafka-server-start.sh` would run: Kafka's built-in value for every
//! broker setting except those a single node cannot do without (roles, ids, listeners, the log
//! folder, and replication factor 1 for the internal topics, whose default of 3 one node cannot
//! meet; Kafka's own single-node `config/server.properties` sets the same), and the JVM options
//! of `kafka-server-start.sh`/`kafka-run-class.sh` (1 GiB heap, G1). Nothing is tuned either way.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{tail, wait_serving, Server};

/// Any base64 of 16 bytes names the cluster ("palisade-bench-1").
const CLUSTER_ID: &str = "cGFsaXNhZGUtYmVuY2gtMQ";
/// `kafka-server-start.sh`'s default `KAFKA_HEAP_OPTS` is `-Xmx1G -Xms1G`.
const HEAP: &str = "1g";
/// `kafka-run-class.sh`'s default performance options beyond what `cluster.sh` always passes
/// (`-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true`), and the `-Xms1G` of the
/// default heap options (it overrides `cluster.sh`'s `-Xms64m`: the last one wins).
const JVM_OPTS: &str = "-Xms1g -server -XX:InitiatingHeapOccupancyPercent=35 \
                        -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15";

/// The node script, holding the JVM; closing its standard input kills the JVM.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// Formats `dir` for one node and starts it; returns once it answers Metadata.
pub fn start(name: &str, dir: &Path) -> Server {
    let libs = crate::common::kafka_cluster::require_kafka_libs();
    let ports = crate::common::kafka_cluster::free_ports(2);
    let (broker_port, controller_port) = (ports[0], ports[1]);
    let node = dir.join("node1");
    std::fs::create_dir_all(node.join("data")).unwrap();
    let properties = node.join("server.properties");
    std::fs::write(
        &properties,
        server_properties(&node, broker_port, controller_port),
    )
    .unwrap();
    std::fs::write(node.join("log4j2.properties"), log_config(&node)).unwrap();

    let format = Command::new("java")
        .args(["-XX:TieredStopAtLevel=1", "-cp"])
        .arg(format!("{}/*", libs.display()))
        .args(["kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c"])
        .arg(&properties)
        .output()
        .unwrap();
    assert!(
        format.status.success(),
        "formatting Kafka's storage failed: {}{}",
        String::from_utf8_lossy(&format.stdout),
        String::from_utf8_lossy(&format.stderr)
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/kafka/cluster.sh");
    let child = Command::new("bash")
        .arg(script)
        .args(["node", &dir.display().to_string(), "1"])
        .env("KAFKA_BROKER_PORTS", broker_port.to_string())
        .env("KAFKA_CONTROLLER_PORTS", controller_port.to_string())
        .env("KAFKA_HEAP", HEAP)
        .env("KAFKA_JVM_OPTS", JVM_OPTS)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut script = Node(child);
    let logs = || {
        format!(
            "{}{}",
            tail(&node.join("server.log")),
            tail(&node.join("stdout.log"))
        )
    };
    let bootstrap = format!("127.0.0.1:{broker_port}");
    wait_serving(
        name,
        &bootstrap,
        || matches!(script.0.try_wait(), Ok(Some(_))),
        logs,
    );
    // `cluster.sh node` writes the JVM's pid before it waits on its standard input.
    let pid = std::fs::read_to_string(node.join("pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .expect("cluster.sh node wrote no pid file");
    Server {
        name: name.to_string(),
        bootstrap,
        pid,
        dir: dir.to_path_buf(),
        settings: format!(
            "Apache Kafka 4.4.0, one KRaft node, defaults, JVM -Xmx{HEAP} G1 MaxGCPauseMillis=20 {JVM_OPTS}"
        ),
        _process: Box::new(script),
    }
}

fn server_properties(node: &Path, broker_port: u16, controller_port: u16) -> String {
    format!(
        "process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{broker_port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs={data}
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
",
        data = node.join("data").display()
    )
}

/// Kafka's INFO log into `server.log` (the JVM's console output goes to `stdout.log`).
fn log_config(node: &Path) -> String {
    format!(
        "rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName={}
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
",
        node.join("server.log").display()
    )
}
