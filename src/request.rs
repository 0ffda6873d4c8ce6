//! [`Caller`]: who is asking and over which connection, the one description of a request's
//! origin that the API handlers, authorization, the audit trail and plugins all read.
//!
//! A leaf: it imports only [`crate::principal`]. The layers above convert from it
//! (`authz::RequestContextFacts`, `audit::Origin`, the plugin contract's `CallContext`) rather
//! than each keeping its own copy of the same facts.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::principal::Principal;

/// Per-connection facts fixed at accept time.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub listener: String,
    /// Whether the listener terminates TLS (`context.tls` in policies).
    pub tls: bool,
    /// The address and port the client connected to, advertised back in Metadata.
    pub advertised_host: String,
    pub advertised_port: i32,
    /// In gateway mode, the upstream node this connection stands for (its port or SNI name);
    /// `None` for the bootstrap address and in broker mode.
    pub upstream_node: Option<i32>,
}

/// Who sent a request, and how it reached the broker.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who, and how that was established (its [`AuthMethod`](crate::principal::AuthMethod)
    /// names the mechanism, in the one vocabulary of [`AuthMethod::name`]).
    ///
    /// [`AuthMethod::name`]: crate::principal::AuthMethod::name
    pub principal: Principal,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener the connection arrived on.
    pub listener: String,
    /// Whether that listener terminates TLS.
    pub tls: bool,
    /// The client id of the request header (absent when the client sent none).
    pub client_id: Option<String>,
    /// The connection's memory of what was already audited (first use per session).
    pub audit_session: FirstUse,
}

impl Caller {
    /// The mechanism in the one vocabulary (`anonymous`, `mtls`, `PLAIN`, `SCRAM-SHA-256`,
    /// `SCRAM-SHA-512`).
    pub fn mechanism(&self) -> &'static str {
        self.principal.method.name()
    }

    /// The client id, empty when absent (as policies see it).
    pub fn client_id_or_empty(&self) -> &str {
        self.client_id.as_deref().unwrap_or("")
    }
}

/// Keys most remembered per connection; past it every use counts as a first (more audit,
/// never less).
const MAX_REMEMBERED: usize = 4096;

/// A connection's memory of keys already seen: true the first time per key. Cheap to clone
/// (one `Arc`); the clones share the memory.
#[derive(Clone, Default, Debug)]
pub struct FirstUse {
    seen: Arc<Mutex<HashSet<String>>>,
}

impl FirstUse {
    /// True the first time this connection presents `key`.
    pub fn first(&self, key: &str) -> bool {
        let mut seen = self.seen.lock();
        if seen.contains(key) {
            return false;
        }
        if seen.len() < MAX_REMEMBERED {
            seen.insert(key.to_string());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_is_per_key_and_shared_by_clones() {
        let s = FirstUse::default();
        assert!(s.first("a"));
        assert!(!s.first("a"));
        assert!(s.first("b"));
        assert!(!s.clone().first("b"));
        assert!(s.clone().first("c"));
        assert!(!s.first("c"));
    }
}
