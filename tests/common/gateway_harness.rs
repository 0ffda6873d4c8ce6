//! A Palisade gateway in front of any upstream (a Kafka cluster, tansu, a Palisade broker), and
//! the Python client scenarios (`tests/gateway/scenarios.py`) run against it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::BackgroundBroker;

/// Node ports each gateway reserves: upstream node ids `node_id_base ..= node_id_base + 15`.
pub const NODE_PORTS: u16 = 16;

/// `n` consecutive free loopback ports. Each call of this process gets a block no other call
/// got (tests of one binary run side by side).
pub fn free_port_block(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for _ in 0..400 {
        let call = NEXT.fetch_add(1, Ordering::Relaxed);
        let slot = (std::process::id() * 13 + call * 17) % 1000;
        let base = 21000 + u16::try_from(slot).unwrap() * 20;
        let held: Vec<_> = (base..base + n)
            .map_while(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(n) {
            return base;
        }
    }
    panic!("no block of {n} free ports");
}

/// A running gateway and the first of its node ports.
pub struct Gateway {
    pub broker: BackgroundBroker,
    pub port_base: u16,
}

impl Gateway {
    /// A gateway in front of `bootstrap` (`host:port,...`), its data in `dir`, the upstream's
    /// lowest node id `node_id_base`, `extra` replacements applied to the test config.
    pub fn start(bootstrap: &str, node_id_base: i32, dir: &Path, extra: &[(&str, &str)]) -> Self {
        let servers: Vec<String> = bootstrap.split(',').map(|s| format!("{s:?}")).collect();
        let bootstrap = format!("bootstrap_servers = [{}]", servers.join(", "));
        let port_base = free_port_block(NODE_PORTS);
        let port_line = format!("port_base = {port_base}");
        let base_line = format!("node_id_base = {node_id_base}");
        let mut all: Vec<(&str, &str)> = vec![
            (
                "# bootstrap_servers = [\"kafka-1.internal:9093\", \"kafka-2.internal:9093\"]",
                &bootstrap,
            ),
            ("port_base = 19092", &port_line),
            ("node_id_base = 0", &base_line),
        ];
        all.extend_from_slice(extra);
        Gateway {
            broker: BackgroundBroker::start(dir, &all),
            port_base,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.broker.bootstrap()
    }

    /// Whether `address` (`host:port`) is one of this gateway's node ports.
    pub fn is_node_port(&self, address: &str) -> bool {
        address
            .strip_prefix("127.0.0.1:")
            .and_then(|p| p.parse::<u16>().ok())
            .is_some_and(|p| (self.port_base..self.port_base + NODE_PORTS).contains(&p))
    }
}

/// The Python scenarios script.
pub fn scenarios_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/scenarios.py")
}

/// Runs `scenarios.py args...`; the JSON object it printed last. Fails the test with the
/// script's output when it exits non-zero or prints no JSON.
pub fn python_scenario(args: &[&str]) -> serde_json::Value {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(scenarios_script())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scenarios.py {args:?} exited {}:\n{stdout}\n{stderr}\n(the Python clients: `{python} \
         -m pip install confluent-kafka==2.16.1 kafka-python==3.0.12`, .ci/run does)",
        out.status
    );
    stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("scenarios.py {args:?} printed no JSON:\n{stdout}\n{stderr}"))
}

/// The strings of JSON array `v` (empty when it is none).
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A copy of the allow-all policies in `dir`/policies plus `extra` (a Cedar file's text, as
/// `extra.cedar`); the `policy_dir` line naming it.
pub fn policies_with(dir: &Path, extra: &str) -> String {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/allow-all");
    for f in ["allow-all.cedar", "schema.cedarschema"] {
        std::fs::copy(fixture.join(f), policies.join(f)).unwrap();
    }
    std::fs::write(policies.join("extra.cedar"), extra).unwrap();
    super::policy_dir_line(&policies)
}

/// A forbid of every Write to topic `topic`.
pub fn forbid_writes(topic: &str) -> String {
    format!(
        "@id(\"no-writes-to-{topic}\")\nforbid(principal, action == Palisade::Action::\"Write\", \
         resource is Palisade::Topic) when {{ resource.name == {topic:?} }};\n"
    )
}
