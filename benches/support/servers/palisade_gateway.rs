//! Palisade in gateway mode: the release binary (`palisade serve`) with the dev default config
//! reduced to its PLAINTEXT listener, `[gateway] bootstrap_servers` naming an upstream cluster
//! (the Kafka target), so its layers sit in front of that cluster, with no plugins or with the
//! ones a caller installs. Clients bootstrap at its listener; upstream node N is served on
//! `port_base + N` (node ids from 0), a block of free loopback ports.

use std::net::TcpListener;
use std::path::Path;

use super::Server;

/// Node ids 0..NODE_PORTS get a port: one KRaft node numbered 1 needs two.
const NODE_PORTS: u16 = 16;

/// Starts a gateway over `dir` in front of `upstream` (`host:port`); returns once it answers
/// Metadata (with the upstream's one broker).
pub fn start(name: &str, dir: &Path, upstream: &str) -> Server {
    start_with(name, dir, upstream, &[], "no plugins")
}

/// [`start`] with the `extra` config replacements (a plugin folder, a keyring), which
/// `described` names in the tool's header.
pub fn start_with(
    name: &str,
    dir: &Path,
    upstream: &str,
    extra: &[(&str, &str)],
    described: &str,
) -> Server {
    let port = crate::common::kafka_cluster::free_ports(1)[0];
    let bootstrap = format!("bootstrap_servers = [{upstream:?}]");
    let port_base = format!("port_base = {}", free_port_block(NODE_PORTS, port));
    let mut replacements = vec![
        (
            "# bootstrap_servers = [\"kafka-1.internal:9093\", \"kafka-2.internal:9093\"]",
            bootstrap.as_str(),
        ),
        ("port_base = 19092", port_base.as_str()),
    ];
    replacements.extend_from_slice(extra);
    let mut server = super::palisade::start_on(name, dir, port, &replacements);
    server.settings = format!(
        "dev default config as a gateway in front of {upstream}, PLAINTEXT listener, {port_base}, \
         {described}"
    );
    server
}

/// The first port of `n` consecutive free loopback ports, none of them `avoid`.
fn free_port_block(n: u16, avoid: u16) -> u16 {
    (0..400u16)
        .map(|i| 30000 + i * 50)
        .find(|&base| {
            !(base..base + n).contains(&avoid)
                && (base..base + n)
                    .map_while(|p| TcpListener::bind(("127.0.0.1", p)).ok())
                    .count()
                    == usize::from(n)
        })
        .expect("no block of free ports")
}
