//! The servers a comparison tool runs its workload against, each a separate process so that
//! its memory and CPU can be read from `/proc` apart from the client's.
//!
//! A [`Server`] is what a workload needs: a bootstrap address, the process id to measure, and
//! a name for the table. Each kind of server is one constructor in its own file; the process
//! stops when the `Server` is dropped.
//!
//! Needs the bench to include `tests/common` as `mod common` (free ports, Metadata probe, the
//! Kafka jars' folder, Palisade's test config).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod kafka;
pub mod palisade;
pub mod palisade_gateway;
pub mod process;

use std::path::PathBuf;
use std::time::Duration;

/// How long a server may take to answer Metadata after its process started (a JVM on two
/// cores shared with builds takes tens of seconds).
pub const START_LIMIT: Duration = Duration::from_secs(240);

/// A running server process.
pub struct Server {
    /// Names the server in the table.
    pub name: String,
    /// `host:port` of its PLAINTEXT listener.
    pub bootstrap: String,
    /// The process whose memory and CPU are measured (the JVM itself for Kafka, not a script).
    pub pid: u32,
    /// Its folder: config, data and logs.
    pub dir: PathBuf,
    /// How it was configured, one line for the tool's header.
    pub settings: String,
    /// Owns the process; dropping it stops the server.
    _process: Box<dyn Send>,
}

impl Server {
    /// The server's memory now (peak and current resident set).
    pub fn memory(&self) -> process::Memory {
        process::memory(self.pid)
    }

    /// CPU seconds (user + system, all threads) the server has used since it started.
    pub fn cpu_seconds(&self) -> f64 {
        process::cpu_seconds(self.pid)
    }
}

/// Waits until `bootstrap` answers Metadata listing one broker; fails with `log_tail()` when
/// `exited()` says the process is gone or it does not get there within [`START_LIMIT`].
fn wait_serving(
    name: &str,
    bootstrap: &str,
    mut exited: impl FnMut() -> bool,
    log_tail: impl Fn() -> String,
) {
    let addr: std::net::SocketAddr = bootstrap.parse().unwrap();
    let served = crate::common::wait::wait_for(START_LIMIT, || {
        assert!(!exited(), "{name} exited while starting:\n{}", log_tail());
        crate::common::kafka_cluster::metadata_brokers(addr)
            .filter(|brokers| brokers.len() == 1)
            .map(|_| ())
    });
    assert!(
        served.is_some(),
        "{name} did not answer Metadata within {START_LIMIT:?}:\n{}",
        log_tail()
    );
}

/// The last 40 lines of the file at `path`, for failure messages.
fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    format!("--- {}\n{}\n", path.display(), lines[from..].join("\n"))
}
