//! Gateway mode: Palisade in front of an existing Kafka cluster.
//!
//! # Layout
//!
//! - [`addressing`]: where clients reach each upstream node (a port per node, or SNI names).
//! - [`rewrite`]: every broker address in upstream responses, rewritten to the gateway's.
//! - [`api_versions`]: what the gateway advertises: its table, the upstream's and the
//!   rewriter's, intersected.
//! - [`sni`]: TLS connections routed by their server name.
//! - [`node_ports`]: one listener per upstream node, following the set of nodes.
//! - [`serve`]: gateway mode as `palisade serve` runs it (the backend, each listener's node
//!   ports).

pub mod addressing;
pub mod api_versions;
pub mod node_ports;
pub mod rewrite;
pub mod serve;
pub mod sni;
