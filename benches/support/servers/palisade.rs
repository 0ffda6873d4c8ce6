//! Palisade in broker mode: the release binary (`palisade serve`) as its own process, with the
//! dev default config reduced to its PLAINTEXT listener (as the in-process load tools use it:
//! `tests/common::plaintext_config_text`), on a free loopback port.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{tail, wait_serving, Server};

/// Kills the broker when dropped.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Palisade over `dir` (config, data and log there) with the dev default config, after
/// the `extra` text replacements; returns once it answers Metadata.
pub fn start(name: &str, dir: &Path, extra: &[(&str, &str)]) -> Server {
    start_on(
        name,
        dir,
        crate::common::kafka_cluster::free_ports(1)[0],
        extra,
    )
}

/// [`start`] with its PLAINTEXT listener on `port`.
pub fn start_on(name: &str, dir: &Path, port: u16, extra: &[(&str, &str)]) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let bind = format!("bind = \"127.0.0.1:{port}\"");
    let mut replacements = vec![("bind = \"127.0.0.1:0\"", bind.as_str())];
    replacements.extend_from_slice(extra);
    let config = crate::common::plaintext_config_text(&dir.join("data"), &replacements);
    let settings = config
        .lines()
        .find(|l| l.starts_with("flush = "))
        .unwrap_or("flush = ?")
        .to_string();
    let path = dir.join("palisade.toml");
    std::fs::write(&path, config).unwrap();
    let log_path = dir.join("palisade.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["serve", "--config"])
        .arg(&path)
        // The config's relative folders (audit, plugins) land in `dir`, not in the checkout.
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut broker = Broker(child);
    let bootstrap = format!("127.0.0.1:{port}");
    wait_serving(
        name,
        &bootstrap,
        || matches!(broker.0.try_wait(), Ok(Some(_))),
        || tail(&log_path),
    );
    Server {
        name: name.to_string(),
        bootstrap,
        pid,
        dir: dir.to_path_buf(),
        settings: format!("dev default config, PLAINTEXT listener, {settings}"),
        _process: Box::new(broker),
    }
}
